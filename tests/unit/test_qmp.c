/* SPDX-License-Identifier: MIT */
/*
 * The QMP client (src/qemu/qmp.c) against the scripted fake server
 * (fake_qmp.h): what it sends, what it makes of each kind of answer, and
 * that every failure says what happened and leaves the connection in a
 * known state. Timeouts here are what a test waits for, never a measure of
 * speed: no test asserts how long anything took.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_qmp.h"
#include "helpers.h"
#include "qmp.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SHORT_MS      200 /* for waits that are meant to time out */

struct conn {
	struct fake_qmp *f;
	struct mrs_qmp *q;
	struct mrs_error err;
};

/* A client connected over a socketpair to a server playing steps. */
static void open_pair(struct conn *c, const struct fake_qmp_step *steps, size_t n, unsigned ms)
{
	int fd;
	int rc;

	memset(c, 0, sizeof(*c));
	c->f = fake_qmp_pair(steps, n, NULL, &fd);
	rc = mrs_qmp_connect_fd(&c->q, fd, ms, &c->err);
	if (rc)
		print_error("connect: %s\n", c->err.msg);
	assert_int_equal(rc, 0);
}

/* Close the client, then check that the server saw its whole script. */
static void close_pair(struct conn *c)
{
	const char *why;

	mrs_qmp_close(c->q);
	why = fake_qmp_finish(c->f);
	if (why)
		print_error("fake QMP: %s\n", why);
	assert_null(why);
	fake_qmp_free(c->f);
}

/* Catches a version not built from major.minor.micro, a lost package, and a client that skips
 * qmp_capabilities (QEMU then refuses every command). */
static void test_greeting(void **state)
{
	struct conn c;

	(void)state;
	open_pair(&c, NULL, 0, 0);
	assert_string_equal(mrs_qmp_version(c.q), "7.2.0");
	assert_string_equal(mrs_qmp_package(c.q), FAKE_QMP_PACKAGE);
	assert_int_equal(fake_qmp_count(c.f), 1);
	assert_string_equal(fake_qmp_cmd(c.f, 0), "qmp_capabilities");
	assert_null(fake_qmp_args(c.f, 0));
	close_pair(&c);
}

/* Catches a first message that is not a greeting being taken as one. */
static void test_greeting_not_qmp(void **state)
{
	struct mrs_error err = {0};
	struct mrs_qmp *q;
	struct fake_qmp *f;
	int fd;

	(void)state;
	f = fake_qmp_pair(NULL, 0, "{\"hello\": 1}\n", &fd);
	assert_int_equal(mrs_qmp_connect_fd(&q, fd, 0, &err), -EPROTO);
	assert_null(q);
	assert_msg_has(&err, "not a QMP greeting");
	fake_qmp_free(f);
}

/* Catches a refused qmp_capabilities going unnoticed (every later command would fail). */
static void test_capabilities_refused(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "qmp_capabilities", .error = "Capabilities negotiation is already complete"},
	};
	struct mrs_error err = {0};
	struct mrs_qmp *q;
	struct fake_qmp *f;
	int fd;

	(void)state;
	f = fake_qmp_pair(steps, 1,
			  "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 8, \"minor\": 1, "
			  "\"micro\": 3}, \"package\": \"\"}, \"capabilities\": []}}\n",
			  &fd);
	assert_int_equal(mrs_qmp_connect_fd(&q, fd, 0, &err), -EREMOTEIO);
	assert_msg_has(&err, "QEMU refused 'qmp_capabilities': Capabilities negotiation");
	assert_null(fake_qmp_finish(f));
	fake_qmp_free(f);
}

/* Catches a lost or wrong "return" value, arguments not sent as given, and no id in the command
 * (the fake echoes the id: a reply without one is not taken as the reply). */
static void test_return_value(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "query-status", .ret = "{\"status\": \"running\", \"running\": true}"},
	    {.cmd = "qom-get"},
	};
	struct conn c;
	json_t *ret = NULL,
	       *args = json_pack("{s:s,s:s}", "path", "/objects/pc.ram", "property", "size");

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "query-status", NULL, &ret, &c.err), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
	assert_true(json_is_true(json_object_get(ret, "running")));
	json_decref(ret);
	assert_int_equal(mrs_qmp_cmd(c.q, "qom-get", args, NULL, &c.err), 0);
	assert_string_equal(fake_qmp_args(c.f, 2),
			    "{\"path\":\"/objects/pc.ram\",\"property\":\"size\"}");
	json_decref(args);
	close_pair(&c);
}

/* Catches QEMU's refusal not quoted, or taken for success, and a connection left unusable after
 * a refusal (a refusal is an answer: the stream is still in step). */
static void test_error_reply(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "migrate",
	     .error = "Migration is disabled when VirtFS export path '/x' is mounted"},
	    {.cmd = "cont"},
	};
	struct conn c;
	json_t *ret = (json_t *)1;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "migrate", NULL, &ret, &c.err), -EREMOTEIO);
	assert_null(ret);
	assert_msg_has(&c.err, "QEMU refused 'migrate': Migration is disabled when VirtFS export "
			       "path '/x' is mounted");
	assert_int_equal(mrs_qmp_cmd(c.q, "cont", NULL, NULL, &c.err), 0);
	close_pair(&c);
}

/* Catches a closed socket reported as anything else, and a closed connection used again. */
static void test_close_mid_command(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "migrate", .action = FAKE_QMP_CLOSE},
	};
	struct conn c;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "migrate", NULL, NULL, &c.err), -ECONNRESET);
	assert_msg_has(&c.err, "QEMU closed the QMP connection during 'migrate'");
	assert_int_equal(mrs_qmp_cmd(c.q, "cont", NULL, NULL, &c.err), -ECONNRESET);
	assert_msg_has(&c.err, "unusable");
	assert_msg_has(&c.err, "during 'migrate'");
	close_pair(&c);
}

/* Catches a command that waits forever, a timeout not named, and a connection used again after
 * one (the late reply would be taken for the next command's): the next call must fail at once,
 * sending nothing. */
static void test_timeout(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "query-migrate", .action = FAKE_QMP_HANG},
	};
	struct conn c;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	mrs_qmp_set_timeout(c.q, SHORT_MS);
	assert_int_equal(mrs_qmp_cmd(c.q, "query-migrate", NULL, NULL, &c.err), -ETIMEDOUT);
	assert_msg_has(&c.err, "QEMU did not answer 'query-migrate' within 200 ms");
	assert_int_equal(mrs_qmp_cmd(c.q, "cont", NULL, NULL, &c.err), -ETIMEDOUT);
	assert_msg_has(&c.err, "unusable");
	assert_int_equal(mrs_qmp_wait_event(c.q, "RESUME", 0, NULL, &c.err), -ETIMEDOUT);
	assert_msg_has(&c.err, "unusable");
	mrs_qmp_close(c.q);
	assert_null(fake_qmp_finish(c.f));
	/* qmp_capabilities and query-migrate only: "cont" never went out. */
	assert_int_equal(fake_qmp_count(c.f), 2);
	fake_qmp_free(c.f);
}

/* Catches a line that is not JSON being skipped or taken as a reply, and its text not quoted. */
static void test_garbage_line(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "query-status", .raw = "hello\tworld\n"},
	};
	struct conn c;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "query-status", NULL, NULL, &c.err), -EPROTO);
	assert_msg_has(&c.err, "not JSON during 'query-status': 'hello?world'");
	assert_int_equal(mrs_qmp_cmd(c.q, "cont", NULL, NULL, &c.err), -EPROTO);
	assert_msg_has(&c.err, "unusable");
	close_pair(&c);
}

/* Catches JSON that is not an object (QMP sends only objects) being accepted. */
static void test_not_an_object(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "query-status", .raw = "[1, 2, 3]\n"},
	};
	struct conn c;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "query-status", NULL, NULL, &c.err), -EPROTO);
	assert_msg_has(&c.err, "not a JSON object during 'query-status': '[1, 2, 3]'");
	close_pair(&c);
}

/* Catches a reply to some other command (another id) being taken as this one's. */
static void test_wrong_id(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "query-status", .raw = "{\"return\": {}, \"id\": 99}\n"},
	};
	struct conn c;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "query-status", NULL, NULL, &c.err), -EPROTO);
	assert_msg_has(&c.err, "not its reply");
	close_pair(&c);
}

/* Catches an unbounded message buffer: a line longer than MRS_QMP_MAX_MESSAGE is refused as
 * such (without the bound the client would grow without end, or mistake a full buffer for a
 * closed socket). */
static void test_oversized_line(void **state)
{
	struct fake_qmp_step steps[1] = {{.cmd = "query-status"}};
	size_t n = MRS_QMP_MAX_MESSAGE + 16;
	char *big = malloc(n + 1);
	struct conn c;

	(void)state;
	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n] = '\0';
	steps[0].raw = big;
	open_pair(&c, steps, 1, 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "query-status", NULL, NULL, &c.err), -EPROTO);
	assert_msg_has(&c.err, "longer than 16777216 bytes during 'query-status'");
	close_pair(&c);
	free(big);
}

/* Catches events met while a command waits being lost or taken out of order, and wait_event
 * keeping the events it skips (RESUME, passed on the way to the second STOP, must be gone); a
 * timed-out wait must leave the connection usable (no command was in flight). */
static void test_events_queued(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "stop",
	     .events =
		 "{\"event\": \"STOP\", \"data\": {\"reason\": \"x\"}}\n"
		 "{\"event\": \"RESUME\"}\n{\"event\": \"STOP\", \"data\": {\"reason\": \"y\"}}"},
	    {.cmd = "cont"},
	};
	struct conn c;
	json_t *data = NULL;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "stop", NULL, NULL, &c.err), 0);
	assert_int_equal(mrs_qmp_wait_event(c.q, "STOP", 0, &data, &c.err), 0);
	assert_string_equal(json_string_value(json_object_get(data, "reason")), "x");
	json_decref(data);
	assert_int_equal(mrs_qmp_wait_event(c.q, "STOP", 0, &data, &c.err), 0);
	assert_string_equal(json_string_value(json_object_get(data, "reason")), "y");
	json_decref(data);
	assert_int_equal(mrs_qmp_wait_event(c.q, "RESUME", SHORT_MS, &data, &c.err), -ETIMEDOUT);
	assert_null(data);
	assert_msg_has(&c.err, "QEMU sent no event 'RESUME' within 200 ms");
	assert_int_equal(mrs_qmp_cmd(c.q, "cont", NULL, NULL, &c.err), 0);
	close_pair(&c);
}

/* Events E0..E(n-1), one a line, with data {"n": i}. */
static char *numbered_events(unsigned n)
{
	char *s = calloc(n, 64);

	for (unsigned i = 0, at = 0; i < n; i++)
		at += (unsigned)sprintf(s + at, "{\"event\": \"E%u\", \"data\": {\"n\": %u}}\n", i,
					i);
	return s;
}

/* Catches an unbounded event queue (E0 must be gone), and one that drops the newest instead of
 * the oldest (E<last> must be there). */
static void test_event_queue_bound(void **state)
{
	unsigned n = MRS_QMP_EVENT_QUEUE + 6;
	char *events = numbered_events(n), last[16];
	struct fake_qmp_step steps[2] = {{.cmd = "stop", .events = events},
					 {.cmd = "stop", .events = events}};
	struct conn c;
	json_t *data = NULL;

	(void)state;
	snprintf(last, sizeof(last), "E%u", n - 1);
	open_pair(&c, steps, 2, 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "stop", NULL, NULL, &c.err), 0);
	assert_int_equal(mrs_qmp_wait_event(c.q, last, 0, &data, &c.err), 0);
	assert_int_equal(json_integer_value(json_object_get(data, "n")), n - 1);
	json_decref(data);
	assert_int_equal(mrs_qmp_cmd(c.q, "stop", NULL, NULL, &c.err), 0);
	assert_int_equal(mrs_qmp_wait_event(c.q, "E5", SHORT_MS, NULL, &c.err), -ETIMEDOUT);
	close_pair(&c);
	free(events);
}

/* n events E0..E(n-1), one a line, each padded to just under a third of MRS_QMP_EVENT_BYTES. */
static char *large_events(unsigned n)
{
	size_t pad = MRS_QMP_EVENT_BYTES / 3 - 64, line = pad + 64, at = 0;
	char *s = malloc(n * line + 1);

	assert_non_null(s);
	for (unsigned i = 0; i < n; i++) {
		at += (size_t)sprintf(s + at, "{\"event\": \"E%u\", \"data\": {\"pad\": \"", i);
		memset(s + at, 'x', pad);
		at += pad;
		at += (size_t)sprintf(s + at, "\"}}\n");
		assert_true(at <= (i + 1) * line);
	}
	return s;
}

/*
 * Catches an event queue bounded by count alone: 64 events of up to 16 MiB
 * each would hold 1 GiB. Six events of a third of MRS_QMP_EVENT_BYTES each
 * come during a command: the queue must keep the newest three, E3..E5 (E5
 * and E3 found, each after its own command's events), and drop E0..E2 (E2
 * not found). Seen failing (E2 found) with the byte bound taken out.
 */
static void test_event_queue_bytes(void **state)
{
	char *events = large_events(6);
	struct fake_qmp_step steps[3] = {{.cmd = "stop", .events = events},
					 {.cmd = "stop", .events = events},
					 {.cmd = "stop", .events = events}};
	struct conn c;

	(void)state;
	open_pair(&c, steps, 3, 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "stop", NULL, NULL, &c.err), 0);
	assert_int_equal(mrs_qmp_wait_event(c.q, "E5", SHORT_MS, NULL, &c.err), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "stop", NULL, NULL, &c.err), 0);
	assert_int_equal(mrs_qmp_wait_event(c.q, "E3", SHORT_MS, NULL, &c.err), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "stop", NULL, NULL, &c.err), 0);
	assert_int_equal(mrs_qmp_wait_event(c.q, "E2", SHORT_MS, NULL, &c.err), -ETIMEDOUT);
	close_pair(&c);
	free(events);
}

/* Catches wait_event that does not read the socket, and one that gives up on an event other
 * than the one awaited (MIGRATION passes by first). */
static void test_event_after_reply(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "migrate",
	     .events_after = "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}\n"
			     "{\"event\": \"STOP\"}\n"},
	};
	struct conn c;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "migrate", NULL, NULL, &c.err), 0);
	/* Reply and events came in one write: the client must keep what follows the reply. */
	assert_int_equal(mrs_qmp_wait_event(c.q, "STOP", 0, NULL, &c.err), 0);
	close_pair(&c);
}

/* Catches a message split across reads being parsed before it is whole, or its first bytes
 * lost: the server sends the reply one byte a read. */
static void test_split_message(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    {.cmd = "query-version",
	     .ret = "{\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, \"package\": \"p\"}",
	     .events = "{\"event\": \"NIC_RX_FILTER_CHANGED\"}",
	     .trickle = true},
	};
	struct conn c;
	json_t *ret = NULL;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "query-version", NULL, &ret, &c.err), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ret, "qemu"), "minor")),
			 2);
	json_decref(ret);
	assert_int_equal(mrs_qmp_wait_event(c.q, "NIC_RX_FILTER_CHANGED", 0, NULL, &c.err), 0);
	close_pair(&c);
}

/* Catches a descriptor not passed, or passed apart from its command (QEMU's getfd takes the one
 * that comes with the command's bytes): what the server writes into its copy must come out of
 * the pipe the test kept. */
static void test_getfd(void **state)
{
	static const struct fake_qmp_step steps[] = {{.cmd = "getfd"}};
	struct conn c;
	json_t *args = json_pack("{s:s}", "fdname", "mrsnap-dev");
	int p[2];
	char got[8] = {0};

	(void)state;
	assert_int_equal(pipe(p), 0);
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd_fd(c.q, "getfd", args, p[1], NULL, &c.err), 0);
	close(p[1]);
	assert_string_equal(fake_qmp_args(c.f, 1), "{\"fdname\":\"mrsnap-dev\"}");
	assert_int_equal(fake_qmp_fd(c.f, 0), -1);
	assert_true(fake_qmp_fd(c.f, 1) >= 0);
	assert_int_equal(write(fake_qmp_fd(c.f, 1), "state", 5), 5);
	assert_int_equal(read(p[0], got, sizeof(got) - 1), 5);
	assert_string_equal(got, "state");
	close(p[0]);
	json_decref(args);
	close_pair(&c);
}

/* Catches arguments that are not an object being sent (QEMU would refuse them less clearly). */
static void test_args_not_object(void **state)
{
	struct conn c;
	json_t *args = json_integer(1);

	(void)state;
	open_pair(&c, NULL, 0, 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "stop", args, NULL, &c.err), -EINVAL);
	assert_msg_has(&c.err, "arguments of QMP command 'stop' are not an object");
	json_decref(args);
	close_pair(&c);
}

/* Catches a wrong or missing peer pid (SO_PEERCRED) on a real listening socket: the server runs
 * in this process, so it is ours. Also connects by path, and names the path when it cannot. */
static void test_peer_pid_and_path(void **state)
{
	char *dir = mrs_test_tmpdir(), *missing;
	struct fake_qmp *f = fake_qmp_listen(dir, NULL, 0, NULL);
	struct mrs_error err = {0};
	struct mrs_qmp *q;

	(void)state;
	assert_int_equal(mrs_qmp_connect(&q, fake_qmp_path(f), 0, &err), 0);
	assert_int_equal(mrs_qmp_peer_pid(q), getpid());
	assert_string_equal(mrs_qmp_version(q), "7.2.0");
	mrs_qmp_close(q);
	assert_null(fake_qmp_finish(f));
	fake_qmp_free(f);

	assert_true(asprintf(&missing, "%s/none.sock", dir) > 0);
	assert_int_equal(mrs_qmp_connect(&q, missing, 0, &err), -ENOENT);
	assert_msg_has(&err, missing);
	free(missing);
	mrs_test_tmpdir_remove(dir);
}

/*
 * Catches connect failures that leave the user guessing (or repeat the
 * path): a file that is no socket, and a socket nobody listens on (QEMU
 * gone), each said in those words, naming the path once.
 */
static void test_connect_refused(void **state)
{
	char *dir = mrs_test_tmpdir(), *file, *sock;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct mrs_error err = {0};
	struct mrs_qmp *q;
	int fd;

	(void)state;
	assert_true(asprintf(&file, "%s/plain", dir) > 0);
	assert_true(asprintf(&sock, "%s/dead.sock", dir) > 0);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mrs_qmp_connect(&q, file, 0, &err), -ENOTSOCK);
	assert_msg_has(&err, "is not a socket");
	/* Bound, never listening: what a QEMU that exited leaves behind. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(mrs_qmp_connect(&q, sock, 0, &err), -ECONNREFUSED);
	assert_msg_has(&err, "no QEMU is listening on QMP socket");
	assert_null(strstr(strstr(err.msg, sock) + 1, sock)); /* the path once */
	close(fd);
	free(file);
	free(sock);
	mrs_test_tmpdir_remove(dir);
}

/*
 * Catches a blocking connect(): with QEMU's one QMP client elsewhere and
 * its listen queue full, connect() would wait for as long as that client
 * stays (here: forever). It must give up at the connection's timeout,
 * naming the socket and the likely cause. A watchdog (SIGALRM ends the
 * process) makes a hang fail the test instead of stalling the suite; its
 * bound is no timing threshold. Seen failing (SIGALRM) with the blocking
 * connect() put back.
 */
#define WATCHDOG_SECONDS 120
static void test_connect_queue_full(void **state)
{
	char *dir = mrs_test_tmpdir(), *sock;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct mrs_error err = {0};
	struct mrs_qmp *q;
	int lfd, held[8];
	unsigned n = 0;

	(void)state;
	assert_true(asprintf(&sock, "%s/busy.sock", dir) > 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	/* Fill the queue with connections never accepted, until one is refused for room. */
	for (;;) {
		assert_true(n < ARRAY_SIZE(held));
		held[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (connect(held[n], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			assert_int_equal(errno, EAGAIN);
			close(held[n]);
			break;
		}
		n++;
	}
	alarm(WATCHDOG_SECONDS);
	assert_int_equal(mrs_qmp_connect(&q, sock, SHORT_MS, &err), -ETIMEDOUT);
	alarm(0);
	assert_null(q);
	assert_msg_has(&err, sock);
	assert_msg_has(&err, "one QMP client at a time");
	while (n)
		close(held[--n]);
	close(lfd);
	free(sock);
	mrs_test_tmpdir_remove(dir);
}

/* Catches a greeting that never comes making connect wait forever. */
static void test_no_greeting(void **state)
{
	struct mrs_error err = {0};
	struct mrs_qmp *q;
	struct fake_qmp *f;
	int fd;

	(void)state;
	f = fake_qmp_pair(NULL, 0, "", &fd);
	assert_int_equal(mrs_qmp_connect_fd(&q, fd, SHORT_MS, &err), -ETIMEDOUT);
	assert_msg_has(&err, "QEMU sent no QMP greeting within 200 ms");
	assert_msg_has(&err, "one QMP client at a time"); /* the likely cause, said */
	fake_qmp_free(f);
}

/* The fake itself, which the QEMU driver's tests rely on: a command other than the script's
 * is refused and reported by fake_qmp_finish, and so is a step never reached. */
static void test_fake_reports_mismatch(void **state)
{
	static const struct fake_qmp_step steps[] = {{.cmd = "stop"}, {.cmd = "cont"}};
	struct conn c;
	const char *why;

	(void)state;
	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "cont", NULL, NULL, &c.err), -EREMOTEIO);
	assert_msg_has(&c.err, "expected 'stop', got 'cont'");
	mrs_qmp_close(c.q);
	why = fake_qmp_finish(c.f);
	assert_non_null(why);
	assert_string_equal(why, "command 1: expected 'stop', got 'cont'");
	fake_qmp_free(c.f);

	open_pair(&c, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qmp_cmd(c.q, "stop", NULL, NULL, &c.err), 0);
	mrs_qmp_close(c.q);
	why = fake_qmp_finish(c.f);
	assert_non_null(why);
	assert_string_equal(why, "1 step(s) not reached, the first 'cont'");
	fake_qmp_free(c.f);
}

/* Whether prog is an executable in $PATH. */
static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char *copy = strdup(path ? path : "/usr/bin:/bin"), *dir, *save = NULL, *full;
	bool found = false;

	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		if (asprintf(&full, "%s/%s", dir, prog) < 0)
			abort();
		found = access(full, X_OK) == 0;
		free(full);
	}
	free(copy);
	return found;
}

/* QEMU's socket appears some time after it starts: try for up to 30 s (a bound, not a measure). */
static int connect_when_ready(struct mrs_qmp **q, const char *sock, struct mrs_error *err)
{
	int rc = -ENOENT;

	for (int i = 0; i < 1500 && (rc == -ENOENT || rc == -ECONNREFUSED); i++) {
		rc = mrs_qmp_connect(q, sock, 0, err);
		if (rc == -ENOENT || rc == -ECONNREFUSED)
			nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
	}
	return rc;
}

/* The QEMU of test_real_qemu, killed by its teardown even when an assertion failed. */
static pid_t real_qemu_pid;

static int kill_real_qemu(void **state)
{
	(void)state;
	if (real_qemu_pid > 0) {
		kill(real_qemu_pid, SIGKILL);
		waitpid(real_qemu_pid, NULL, 0);
	}
	real_qemu_pid = 0;
	return 0;
}

/* The client against the real QEMU, when it is installed: its greeting's version is the one
 * query-version gives, query-status answers, a refusal quotes QEMU's text, getfd takes our
 * descriptor, the peer is QEMU's pid, and the SHUTDOWN event after quit is seen. Catches
 * whatever the fake gets wrong about QEMU. */
static void test_real_qemu(void **state)
{
	char *dir = mrs_test_tmpdir(), *sock, *qmp_arg, vers[64];
	struct mrs_error err = {0};
	struct mrs_qmp *q = NULL;
	json_t *ret = NULL, *v, *args;
	pid_t pid;
	int status, p[2];

	(void)state;
	if (!in_path("qemu-system-x86_64")) {
		mrs_test_tmpdir_remove(dir);
		skip(); /* says "SKIPPED": qemu-system-x86_64 is not installed */
	}
	assert_true(asprintf(&sock, "%s/qmp.sock", dir) > 0);
	assert_true(asprintf(&qmp_arg, "unix:%s,server=on,wait=off", sock) > 0);
	char *argv[] = {"qemu-system-x86_64",
			"-nodefaults",
			"-display",
			"none",
			"-machine",
			"none",
			"-qmp",
			qmp_arg,
			NULL};
	assert_int_equal(posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ), 0);
	real_qemu_pid = pid;
	if (connect_when_ready(&q, sock, &err)) {
		print_error("connect to QEMU: %s\n", err.msg);
		fail();
	}
	assert_int_equal(mrs_qmp_peer_pid(q), pid);

	assert_int_equal(mrs_qmp_cmd(q, "query-version", NULL, &ret, &err), 0);
	v = json_object_get(ret, "qemu");
	snprintf(vers, sizeof(vers), "%lld.%lld.%lld",
		 (long long)json_integer_value(json_object_get(v, "major")),
		 (long long)json_integer_value(json_object_get(v, "minor")),
		 (long long)json_integer_value(json_object_get(v, "micro")));
	assert_string_equal(mrs_qmp_version(q), vers);
	assert_string_equal(mrs_qmp_package(q), json_string_value(json_object_get(ret, "package")));
	json_decref(ret);

	assert_int_equal(mrs_qmp_cmd(q, "query-status", NULL, &ret, &err), 0);
	assert_non_null(json_string_value(json_object_get(ret, "status")));
	json_decref(ret);

	assert_int_equal(mrs_qmp_cmd(q, "no-such-command", NULL, NULL, &err), -EREMOTEIO);
	assert_msg_has(&err, "QEMU refused 'no-such-command': The command no-such-command has not "
			     "been found");

	/* Without a descriptor getfd is refused; with one it is taken, and closefd finds it. */
	args = json_pack("{s:s}", "fdname", "mrsnap-test");
	assert_int_equal(mrs_qmp_cmd(q, "getfd", args, NULL, &err), -EREMOTEIO);
	assert_msg_has(&err, "SCM_RIGHTS");
	assert_int_equal(pipe(p), 0);
	assert_int_equal(mrs_qmp_cmd_fd(q, "getfd", args, p[1], NULL, &err), 0);
	assert_int_equal(mrs_qmp_cmd(q, "closefd", args, NULL, &err), 0);
	close(p[0]);
	close(p[1]);
	json_decref(args);

	assert_int_equal(mrs_qmp_cmd(q, "quit", NULL, NULL, &err), 0);
	assert_int_equal(mrs_qmp_wait_event(q, "SHUTDOWN", 0, NULL, &err), 0);
	mrs_qmp_close(q);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	real_qemu_pid = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(qmp_arg);
	free(sock);
	mrs_test_tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_greeting),
	    cmocka_unit_test(test_greeting_not_qmp),
	    cmocka_unit_test(test_capabilities_refused),
	    cmocka_unit_test(test_return_value),
	    cmocka_unit_test(test_error_reply),
	    cmocka_unit_test(test_close_mid_command),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_garbage_line),
	    cmocka_unit_test(test_not_an_object),
	    cmocka_unit_test(test_wrong_id),
	    cmocka_unit_test(test_oversized_line),
	    cmocka_unit_test(test_events_queued),
	    cmocka_unit_test(test_event_queue_bound),
	    cmocka_unit_test(test_event_queue_bytes),
	    cmocka_unit_test(test_event_after_reply),
	    cmocka_unit_test(test_split_message),
	    cmocka_unit_test(test_getfd),
	    cmocka_unit_test(test_args_not_object),
	    cmocka_unit_test(test_peer_pid_and_path),
	    cmocka_unit_test(test_no_greeting),
	    cmocka_unit_test(test_connect_refused),
	    cmocka_unit_test(test_connect_queue_full),
	    cmocka_unit_test(test_fake_reports_mismatch),
	    cmocka_unit_test_teardown(test_real_qemu, kill_real_qemu),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
