/* SPDX-License-Identifier: MIT */
/*
 * qmp: send QMP commands to a QEMU, for the end-to-end tests and the QEMU
 * benchmark (tests/qemu/lib.sh, scripts/bench-qemu). It is the tests' own
 * plumbing, kept apart from mrsnap's QMP client so that a bug there cannot
 * hide itself in the tests.
 *
 *   qmp [-T] [-w SECONDS] SOCKET COMMAND...
 *
 * Each COMMAND is a JSON object ('{"execute": "migrate", "arguments": ...}')
 * or a bare command name without arguments (stop, cont, query-status). The
 * pseudo-command wait-migration polls query-migrate until its status is
 * completed (then prints that reply) or failed or cancelled (an error). The
 * "return" of each command is printed on stdout, one compact JSON line each;
 * events are skipped. With -T, a line "ms N" follows each, N the milliseconds
 * from sending the command to its reply (for wait-migration: to completion).
 * A reply that is an error prints QEMU's text on stderr and exits 1; no reply
 * within SECONDS (default 60) exits 2.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int timeout_ms = 60000;
static char inbuf[1 << 20];
static size_t inlen;

static void die(int code, const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "qmp: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	exit(code);
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int connect_qmp(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(a.sun_path))
		die(1, "socket path too long: %s%s", path, "");
	strcpy(a.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die(1, "cannot connect to %s: %s", path, strerror(errno));
	return fd;
}

/* The next JSON object QEMU sends (it ends each with a newline). */
static json_t *read_message(int fd)
{
	for (;;) {
		char *nl = memchr(inbuf, '\n', inlen);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (nl) {
			json_error_t e;
			json_t *m = json_loadb(inbuf, (size_t)(nl - inbuf), 0, &e);

			inlen -= (size_t)(nl + 1 - inbuf);
			memmove(inbuf, nl + 1, inlen);
			if (!m)
				die(1, "QEMU sent what is not JSON: %s%s", e.text, "");
			return m;
		}
		if (inlen == sizeof(inbuf))
			die(1, "a QMP message longer than %s%s", "1 MiB", "");
		if (poll(&p, 1, timeout_ms) == 0)
			die(2, "no answer from QEMU within the timeout%s%s", "", "");
		n = read(fd, inbuf + inlen, sizeof(inbuf) - inlen);
		if (n <= 0)
			die(1, "QEMU closed the QMP socket%s%s", "", "");
		inlen += (size_t)n;
	}
}

/* Send one command and return its reply's "return"; an error reply exits. */
static json_t *execute(int fd, json_t *cmd)
{
	char *text = json_dumps(cmd, JSON_COMPACT);
	size_t len = strlen(text);
	json_t *m, *ret;

	text[len] = '\n';
	if (write(fd, text, len + 1) != (ssize_t)(len + 1))
		die(1, "cannot send to QEMU: %s%s", strerror(errno), "");
	text[len] = 0;
	while ((m = read_message(fd)) && json_object_get(m, "event"))
		json_decref(m);
	if (json_object_get(m, "error")) {
		const char *desc =
		    json_string_value(json_object_get(json_object_get(m, "error"), "desc"));
		die(1, "%s: QEMU says: %s", text, desc ? desc : "(no description)");
	}
	ret = json_incref(json_object_get(m, "return"));
	if (!ret)
		die(1, "%s: a reply without \"return\"%s", text, "");
	json_decref(m);
	free(text);
	return ret;
}

static json_t *parse_command(const char *arg)
{
	json_error_t e;
	json_t *cmd;

	if (arg[0] != '{')
		return json_pack("{s:s}", "execute", arg);
	cmd = json_loads(arg, 0, &e);
	if (!cmd || !json_is_object(cmd))
		die(1, "not a JSON object: %s (%s)", arg, e.text);
	return cmd;
}

static json_t *wait_migration(int fd)
{
	json_t *q = json_pack("{s:s}", "execute", "query-migrate");

	for (;;) {
		json_t *r = execute(fd, q);
		const char *s = json_string_value(json_object_get(r, "status"));

		if (s && !strcmp(s, "completed")) {
			json_decref(q);
			return r;
		}
		if (s && (!strcmp(s, "failed") || !strcmp(s, "cancelled"))) {
			const char *d = json_string_value(json_object_get(r, "error-desc"));
			die(1, "migration %s: %s", s, d ? d : "(QEMU gives no reason)");
		}
		json_decref(r);
		usleep(2000);
	}
}

/* One COMMAND argument, run. */
static json_t *run(int fd, const char *arg)
{
	json_t *cmd, *r;

	if (!strcmp(arg, "wait-migration"))
		return wait_migration(fd);
	cmd = parse_command(arg);
	r = execute(fd, cmd);
	json_decref(cmd);
	return r;
}

int main(int argc, char **argv)
{
	bool timing = false;
	int opt, fd;
	json_t *greeting;

	while ((opt = getopt(argc, argv, "Tw:")) != -1) {
		if (opt == 'T')
			timing = true;
		else if (opt == 'w')
			timeout_ms = atoi(optarg) * 1000;
		else
			return 1;
	}
	if (argc - optind < 1) {
		fprintf(stderr, "usage: qmp [-T] [-w SECONDS] SOCKET COMMAND...\n");
		return 1;
	}
	fd = connect_qmp(argv[optind]);
	greeting = read_message(fd);
	if (!json_object_get(greeting, "QMP"))
		die(1, "%s did not greet as QMP does%s", argv[optind], "");
	json_decref(greeting);
	json_decref(run(fd, "qmp_capabilities"));
	for (int i = optind + 1; i < argc; i++) {
		double t0 = now_ms();
		json_t *r;
		char *out;

		r = run(fd, argv[i]);
		out = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("%s\n", out);
		if (timing)
			printf("ms %.1f\n", now_ms() - t0);
		fflush(stdout);
		free(out);
		json_decref(r);
	}
	close(fd);
	return 0;
}
