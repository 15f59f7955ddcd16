/* SPDX-License-Identifier: MIT */
/*
 * A QMP client: one connection to a QEMU monitor socket, on jansson.
 *
 * The connection is synchronous: a command is sent and its reply awaited
 * (with the connection's timeout); events that arrive meanwhile are queued,
 * to be taken with mrs_qmp_wait_event() or dropped. Nothing here knows what a
 * command means: src/qemu/qemu.c does. Errors follow the library's model
 * (-errno and a message in err); QEMU's own error text is quoted in the
 * message:
 *   -EREMOTEIO   QEMU answered with an error ("QEMU refused 'migrate': ...")
 *   -ETIMEDOUT   no reply (or event) in time
 *   -ECONNRESET  QEMU closed the connection (or sent something that is not QMP:
 *                -EPROTO)
 */
#ifndef MRS_QMP_H
#define MRS_QMP_H

#include <jansson.h>
#include <sys/types.h>

#include "mrsnap.h"

struct mrs_qmp;

#define MRS_QMP_TIMEOUT_MS 10000 /* default for every command */

/*
 * Connect to the unix socket at path, read the greeting, and negotiate
 * capabilities (qmp_capabilities). timeout_ms: for each step and, after,
 * each command; 0: MRS_QMP_TIMEOUT_MS.
 */
int mrs_qmp_connect(struct mrs_qmp **out, const char *path, unsigned timeout_ms,
		    struct mrs_error *err);
/* The same over a connected socket (tests: a socketpair); fd is the client's now. */
int mrs_qmp_connect_fd(struct mrs_qmp **out, int fd, unsigned timeout_ms, struct mrs_error *err);
void mrs_qmp_close(struct mrs_qmp *q);

/* The QEMU version from the greeting: "7.2.0" (major.minor.micro), and its package string. */
const char *mrs_qmp_version(const struct mrs_qmp *q);
const char *mrs_qmp_package(const struct mrs_qmp *q);
/* The process at the other end of the socket (SO_PEERCRED); 0 if not known. */
pid_t mrs_qmp_peer_pid(const struct mrs_qmp *q);

/*
 * Run cmd with args (a JSON object, or NULL; borrowed, not stolen) and wait
 * for its reply. On success *ret (if ret is not NULL) holds the "return"
 * value, a new reference the caller json_decref()s.
 */
int mrs_qmp_cmd(struct mrs_qmp *q, const char *cmd, json_t *args, json_t **ret,
		struct mrs_error *err);
/* The same, with fd passed along with the command's bytes (SCM_RIGHTS): for getfd. */
int mrs_qmp_cmd_fd(struct mrs_qmp *q, const char *cmd, json_t *args, int fd, json_t **ret,
		   struct mrs_error *err);

/*
 * Wait up to timeout_ms for the event named (queued ones first; others are
 * dropped). *data (may be NULL) gets its "data" member, a new reference.
 */
int mrs_qmp_wait_event(struct mrs_qmp *q, const char *event, unsigned timeout_ms, json_t **data,
		       struct mrs_error *err);

#endif
