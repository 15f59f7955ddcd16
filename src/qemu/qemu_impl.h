/* SPDX-License-Identifier: MIT */
/*
 * What the parts of src/qemu/ share: one QEMU session (struct mrs_qemu of
 * include/mrsnap.h) over one QMP connection. qemu.c owns the session and
 * the few commands every part needs (status, cont); backends.c finds the
 * RAM; freezer.c stops and resumes the guest; devstate.c moves the device
 * state through QEMU's migration stream. Nothing outside src/qemu/ knows QMP.
 */
#ifndef MRS_QEMU_IMPL_H
#define MRS_QEMU_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "mrsnap.h"
#include "qmp.h"

/* The descriptor's name in QEMU (getfd) and the migration URI that uses it. */
#define MRS_QEMU_FDNAME "mrsnap-devstate"

/* The migration capabilities mrsnap switches on: x-ignore-shared, events. */
#define MRS_QEMU_NCAPS 2

/* A memory backend, as qom-get describes it. */
struct mrs_qemu_backend {
	char *id;	/* "pc.ram": the RAM block's name */
	char *type;	/* "memory-backend-file" */
	char *mem_path; /* a file backend's mem-path; NULL for others */
	uint64_t size;
	bool share;
};

struct mrs_qemu {
	struct mrs_qmp *qmp;
	char *path; /* of the socket: to reach QEMU again if the connection broke */
	unsigned timeout_ms;
	int pid;
	char producer[64]; /* "QEMU 7.2.22" */
	char machine[64];  /* "pc-i440fx-7.2" */
	/* Restoring: what made the image's device state, for messages. */
	char image_producer[64];
	char image_machine[64];

	struct mrs_qemu_backend *backends;
	unsigned nbackends;
	bool backends_read;
	struct mrs_ram *ram; /* what mrs_qemu_ram() returned; names and paths owned */
	unsigned nram;

	/*
	 * x-ignore-shared and events as they were before mrsnap, and whether
	 * mrsnap changed them (they are put back on every way out).
	 */
	bool caps_before[MRS_QEMU_NCAPS];
	bool caps_changed;

	bool paused_before;	/* freeze found the guest paused: left so */
	bool stop_sent;		/* freeze sent stop: the guest is ours to resume */
	bool migration_started; /* migrate or migrate-incoming was accepted ... */
	bool migration_ended;	/* ... and QEMU said how it ended */
	char warning[512];	/* "" or what mrs_qemu_warning() returns */
};

/*
 * A QMP command. After a failure that leaves the connection unusable
 * (timeout, closed, not QMP), a command that must go through (cont) can
 * use mrs_qemu_cmd_again(): it connects again first.
 */
int mrs_qemu_cmd(struct mrs_qemu *q, const char *cmd, json_t *args, json_t **ret,
		 struct mrs_error *err);
int mrs_qemu_cmd_again(struct mrs_qemu *q, const char *cmd, json_t *args, json_t **ret,
		       struct mrs_error *err);

/* query-status: whether the guest runs, and QEMU's word for its state ("paused"). */
int mrs_qemu_status(struct mrs_qemu *q, bool *running, char *status, size_t len,
		    struct mrs_error *err);

/* cont, through a new connection if need be. */
int mrs_qemu_cont(struct mrs_qemu *q, struct mrs_error *err);

/* Forget the list mrs_qemu_ram() handed out. */
void mrs_qemu_free_ram(struct mrs_qemu *q);

/* The backends, read once per session (qom-list /objects, qom-get). */
int mrs_qemu_read_backends(struct mrs_qemu *q, struct mrs_error *err);

/*
 * The migration capabilities mrsnap needs, x-ignore-shared and events:
 * read first (query-migrate-capabilities), then switched on, right before
 * the migration that needs them. A QEMU left with x-ignore-shared would
 * send no shared RAM in its user's next migrate, so
 * mrs_qemu_restore_capabilities() puts them back once that migration is
 * over (and mrs_qemu_close() as a last resort), through a new connection
 * if need be; it does nothing if nothing was changed, and a failure is a
 * warning (mrs_qemu_warning()): what went well is not undone for it.
 */
int mrs_qemu_set_capabilities(struct mrs_qemu *q, struct mrs_error *err);
void mrs_qemu_restore_capabilities(struct mrs_qemu *q);

/* A migration status after which none runs ("completed", "cancelled", ...). */
bool mrs_qemu_migration_over(const char *status);

/* Adds to what mrs_qemu_warning() returns. */
void mrs_qemu_add_warning(struct mrs_qemu *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Best effort, after a failure: a migration mrsnap started (or sent and had
 * no answer for) is cancelled, through a new connection if need be, and its
 * end awaited (so that the capabilities can be put back).
 */
void mrs_qemu_cancel_migration(struct mrs_qemu *q);

#endif
