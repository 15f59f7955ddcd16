/* SPDX-License-Identifier: MIT */
/*
 * A QMP client: one connection to a QEMU monitor socket, on jansson.
 *
 * QEMU writes one JSON object a line, as its monitors do by default (a
 * monitor with pretty=on spreads them over lines: not supported, -EPROTO).
 * The connection is synchronous: a command is sent and its reply awaited
 * (with the connection's timeout); events that arrive meanwhile are queued,
 * to be taken with mrs_qmp_wait_event() or dropped. Nothing here knows what a
 * command means: src/qemu/qemu.c does. Errors follow the library's model
 * (-errno and a message in err); QEMU's own error text is quoted in the
 * message:
 *   -EREMOTEIO   QEMU answered with an error ("QEMU refused 'migrate': ...")
 *   -ETIMEDOUT   no reply (or event) in time
 *   -ECONNRESET  QEMU closed the connection
 *   -EPROTO      QEMU sent something that is not QMP (a line that is not a JSON
 *                object, one longer than MRS_QMP_MAX_MESSAGE, a reply that is
 *                not the one awaited); the start of the line is quoted
 * After -ETIMEDOUT from a command, -ECONNRESET or -EPROTO the connection is
 * unusable (a late reply could be taken for the next one's): every later call
 * fails at once with that first reason. -EREMOTEIO and a wait_event timeout
 * leave it usable.
 */
#ifndef MRS_QMP_H
#define MRS_QMP_H

#include <jansson.h>
#include <sys/types.h>

#include "mrsnap.h"

struct mrs_qmp;

#define MRS_QMP_TIMEOUT_MS 10000 /* default for every command */
/* The longest line (one JSON message) taken from QEMU; more is -EPROTO. */
#define MRS_QMP_MAX_MESSAGE (16u << 20)
/*
 * Events queued while a command waits, and the bytes of their lines; beyond
 * either, the oldest are dropped (the newest is kept whatever its size).
 */
#define MRS_QMP_EVENT_QUEUE 64
#define MRS_QMP_EVENT_BYTES (1u << 20)

/*
 * Connect to the unix socket at path, read the greeting, and negotiate
 * capabilities (qmp_capabilities). timeout_ms: for each step (the connect
 * too: -ETIMEDOUT while QEMU's listen queue stays full, another client
 * holding its one QMP connection) and, after, each command; 0:
 * MRS_QMP_TIMEOUT_MS.
 */
int mrs_qmp_connect(struct mrs_qmp **out, const char *path, unsigned timeout_ms,
		    struct mrs_error *err);
/*
 * The same over a connected socket (tests: a socketpair); fd is the client's
 * now, closed by mrs_qmp_close() or, on failure, before this returns.
 */
int mrs_qmp_connect_fd(struct mrs_qmp **out, int fd, unsigned timeout_ms, struct mrs_error *err);
void mrs_qmp_close(struct mrs_qmp *q);
/* The timeout of the commands that follow (0: MRS_QMP_TIMEOUT_MS). */
void mrs_qmp_set_timeout(struct mrs_qmp *q, unsigned timeout_ms);

/*
 * The QEMU version from the greeting: "7.2.0" (major.minor.micro), and its
 * package string as QEMU sent it ("" if none).
 */
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
 * Wait up to timeout_ms (0: the connection's timeout) for the event named
 * (queued ones first; others are dropped). *data (may be NULL) gets its
 * "data" member, a new reference (NULL if the event has none).
 */
int mrs_qmp_wait_event(struct mrs_qmp *q, const char *event, unsigned timeout_ms, json_t **data,
		       struct mrs_error *err);

#endif
