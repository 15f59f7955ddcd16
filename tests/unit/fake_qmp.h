/* SPDX-License-Identifier: MIT */
/*
 * A scripted fake QMP server for unit tests, run in a thread.
 *
 * It sends a greeting, answers qmp_capabilities, then takes the commands the
 * client sends one by one, each against the next step of a script: the step
 * names the command it expects and says what to do with it (answer, refuse,
 * close the socket, never answer, send bytes of its own). Every command it
 * receives is recorded (name, arguments, any descriptor passed with it), so a
 * test can check what its code under test sent. Example:
 *
 *   static const struct fake_qmp_step steps[] = {
 *           {.cmd = "stop"},                                  // {"return": {}}
 *           {.cmd = "query-status", .ret = "{\"status\": \"paused\"}"},
 *           {.cmd = "migrate", .error = "Migration is disabled"},
 *           {.cmd = "cont", .events = "{\"event\": \"RESUME\"}"},
 *   };
 *   struct fake_qmp *f = fake_qmp_listen(dir, steps, 4, NULL);
 *   ... mrs_qmp_connect(&q, fake_qmp_path(f), 0, &err) ...
 *   mrs_qmp_close(q);                 // the server ends when the client goes
 *   assert_null(fake_qmp_finish(f));  // or the first thing that went wrong
 *   ... fake_qmp_cmd(f, 4) is "cont", fake_qmp_count(f) is 5 ...
 *   fake_qmp_free(f);
 *
 * Recorded commands are numbered from 0 in arrival order; qmp_capabilities,
 * answered by the server itself, is number 0 unless a greeting of the
 * test's own is given (then the script handles everything).
 */
#ifndef MRS_FAKE_QMP_H
#define MRS_FAKE_QMP_H

#include <stdbool.h>
#include <stddef.h>

enum fake_qmp_action {
	FAKE_QMP_ANSWER = 0, /* .raw if set, else .error if set, else {"return": .ret} */
	FAKE_QMP_CLOSE,	     /* close the socket instead of answering (events still go first) */
	FAKE_QMP_HANG,	     /* send the events, never answer; read on until the client goes */
};

struct fake_qmp_step {
	const char *cmd; /* the command expected ("execute"); NULL: any */
	enum fake_qmp_action action;
	const char *ret;    /* JSON text of the "return" value; NULL: {} */
	const char *error;  /* reply {"error": {"class": "GenericError", "desc": error}} */
	const char *raw;    /* bytes sent as they are instead of a reply (the id is not added) */
	const char *events; /* event objects, one a line (newline added), sent before the reply */
	const char *events_after; /* the same, sent after the reply */
	bool trickle;		  /* send this step's bytes one at a time, each only once the
				     client has read the one before (a message split across reads) */
};

struct fake_qmp;

/*
 * The greeting sent first. NULL: the default below (QEMU 7.2.0, package
 * FAKE_QMP_PACKAGE), and qmp_capabilities is answered by the server. A
 * greeting of the test's own (a line, newline included; "" for none) is sent
 * as it is and the script must handle qmp_capabilities itself.
 */
#define FAKE_QMP_PACKAGE "Debian 1:7.2+dfsg-7+deb12u6"

/*
 * Serve the script on one end of a socketpair; *client_fd gets the other
 * (for mrs_qmp_connect_fd). steps are borrowed until fake_qmp_free.
 */
struct fake_qmp *fake_qmp_pair(const struct fake_qmp_step *steps, size_t n, const char *greeting,
			       int *client_fd);
/* Serve it to the first client of a unix socket listening at DIR/qmp.sock. */
struct fake_qmp *fake_qmp_listen(const char *dir, const struct fake_qmp_step *steps, size_t n,
				 const char *greeting);
/* The socket path of a listening server (NULL for a pair). */
const char *fake_qmp_path(const struct fake_qmp *f);

/*
 * Wait for the server to end (the client closed its end, or the socket was
 * closed by a step) and return NULL if the script ran as written, else what
 * went wrong first ("command 2: expected 'cont', got 'stop'"; "1 step(s) not
 * reached"). Call it after the client is closed.
 */
const char *fake_qmp_finish(struct fake_qmp *f);
/* Stop the server whatever it is doing (if not finished) and free it. */
void fake_qmp_free(struct fake_qmp *f);

/*
 * What was received; i counts from 0 in arrival order. Read it while the
 * client sends nothing (between its calls, or after fake_qmp_finish); the
 * strings are valid until fake_qmp_free.
 */
size_t fake_qmp_count(struct fake_qmp *f);
const char *fake_qmp_cmd(struct fake_qmp *f, size_t i);
/* Its "arguments" as compact JSON with sorted keys, or NULL if it had none. */
const char *fake_qmp_args(struct fake_qmp *f, size_t i);
/* The descriptor passed with it (the server's copy, open until fake_qmp_free), or -1. */
int fake_qmp_fd(struct fake_qmp *f, size_t i);

#endif
