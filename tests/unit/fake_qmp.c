/* SPDX-License-Identifier: MIT */
/*
 * The scripted fake QMP server (fake_qmp.h). One thread serves one client;
 * all its socket I/O is non-blocking and waits in poll() together with a
 * stop pipe, so fake_qmp_free() can end it wherever it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fake_qmp.h"

#define DEFAULT_GREETING                                                                           \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "          \
	"\"package\": \"" FAKE_QMP_PACKAGE "\"}, \"capabilities\": [\"oob\"]}}\r\n"

struct received {
	char *cmd;
	char *args;
	int fd;
};

struct fake_qmp {
	const struct fake_qmp_step *steps;
	size_t n, next;
	const char *greeting;
	int listen_fd, sock, stop[2];
	char *path;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	struct received *recs;
	size_t nrecs;
	char failure[512];
	char *buf; /* bytes read and not yet taken as commands */
	size_t len, cap;
	int pending_fd; /* arrived with bytes of a command not yet complete */
};

static void fail(struct fake_qmp *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct fake_qmp *f, const char *fmt, ...)
{
	va_list ap;

	if (f->failure[0])
		return; /* the first failure is the one that explains the rest */
	va_start(ap, fmt);
	vsnprintf(f->failure, sizeof(f->failure), fmt, ap);
	va_end(ap);
}

/* Wait for events on fd or a stop: 0 ready, -1 stopped or failed. */
static int wait_for(struct fake_qmp *f, int fd, short events, int timeout_ms)
{
	struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = f->stop[0], .events = POLLIN}};

	for (;;) {
		int n = poll(p, 2, timeout_ms);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || p[1].revents)
			return -1;
		return n == 0 ? 1 : 0; /* 1: timed out (only with a timeout) */
	}
}

static int send_bytes(struct fake_qmp *f, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(f->sock, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			if (wait_for(f, f->sock, POLLOUT, -1))
				return -1;
		} else if (!(n < 0 && errno == EINTR)) {
			return -1; /* the client went: not a failure of the script */
		}
	}
	return 0;
}

/* Until the client has read everything sent so far (SIOCOUTQ: bytes not yet read). */
static int wait_drained(struct fake_qmp *f)
{
	int queued;

	while (!ioctl(f->sock, SIOCOUTQ, &queued) && queued > 0)
		if (wait_for(f, -1, 0, 1) < 0)
			return -1;
	return 0;
}

/* Send text as it is, one byte a read if trickle. */
static int send_text(struct fake_qmp *f, const char *text, bool trickle)
{
	size_t len = strlen(text);
	int rc = 0;

	if (!trickle)
		return send_bytes(f, text, len);
	for (size_t i = 0; !rc && i < len; i++)
		rc = send_bytes(f, text + i, 1) || wait_drained(f);
	return rc;
}

static void record(struct fake_qmp *f, const char *cmd, json_t *args, int fd)
{
	struct received *r;

	pthread_mutex_lock(&f->lock);
	r = realloc(f->recs, (f->nrecs + 1) * sizeof(*r));
	if (!r)
		abort();
	f->recs = r;
	r[f->nrecs].cmd = strdup(cmd);
	r[f->nrecs].args = args ? json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	r[f->nrecs].fd = fd;
	f->nrecs++;
	pthread_mutex_unlock(&f->lock);
}

static void take_fds(struct fake_qmp *f, struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[8];

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		memcpy(fds, CMSG_DATA(c), (nfd < 8 ? nfd : 8) * sizeof(int));
		for (size_t i = 0; i < nfd && i < 8; i++) {
			if (f->pending_fd < 0) {
				f->pending_fd = fds[i];
			} else {
				fail(f, "more than one descriptor came with one command");
				close(fds[i]);
			}
		}
	}
}

/* Read more bytes (and any descriptors): 0, or -1 when the client went or we were stopped. */
static int read_more(struct fake_qmp *f)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(8 * sizeof(int))];
	} ctl;

	for (;;) {
		struct iovec iov;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		if (f->cap - f->len < 4096) {
			f->cap = f->cap ? f->cap * 2 : 8192;
			f->buf = realloc(f->buf, f->cap);
			if (!f->buf)
				abort();
		}
		iov = (struct iovec){f->buf + f->len, f->cap - f->len};
		mh.msg_control = ctl.space;
		mh.msg_controllen = sizeof(ctl.space);
		n = recvmsg(f->sock, &mh, MSG_CMSG_CLOEXEC);
		if (n > 0) {
			take_fds(f, &mh);
			f->len += (size_t)n;
			return 0;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_for(f, f->sock, POLLIN, -1))
				return -1;
			continue;
		}
		return -1;
	}
}

/* The next command as a JSON object (the descriptor that came with it in *fd), or NULL at the end.
 */
static json_t *next_command(struct fake_qmp *f, int *fd)
{
	for (;;) {
		char *nl = f->len ? memchr(f->buf, '\n', f->len) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - f->buf);
			json_error_t jerr;
			json_t *j = json_loadb(f->buf, n, 0, &jerr);

			f->len -= n + 1;
			memmove(f->buf, nl + 1, f->len);
			if (!j || !json_is_string(json_object_get(j, "execute"))) {
				fail(f, "the client sent a line that is not a QMP command (%s)",
				     j ? "no \"execute\"" : jerr.text);
				json_decref(j);
				continue;
			}
			*fd = f->pending_fd;
			f->pending_fd = -1;
			return j;
		}
		if (read_more(f))
			return NULL;
	}
}

/* {"return": value, "id": id} or {"error": {...}, "id": id}, as a line. */
static char *reply_text(struct fake_qmp *f, json_t *cmd, const char *ret, const char *error)
{
	json_t *r = json_object(), *id = json_object_get(cmd, "id"), *value;
	char *text, *line = NULL;

	if (error) {
		value = json_pack("{s:s,s:s}", "class", "GenericError", "desc", error);
		json_object_set_new(r, "error", value);
	} else {
		value = ret ? json_loads(ret, JSON_DECODE_ANY, NULL) : json_object();
		if (!value)
			fail(f, "step %zu: .ret is not JSON: %s", f->next, ret);
		json_object_set_new(r, "return", value ? value : json_object());
	}
	if (id)
		json_object_set(r, "id", id);
	text = json_dumps(r, JSON_COMPACT);
	if (!text || asprintf(&line, "%s\r\n", text) < 0)
		abort();
	free(text);
	json_decref(r);
	return line;
}

/* Everything a step sends in answer, in one buffer so that it goes in one write. */
static char *answer_text(struct fake_qmp *f, const struct fake_qmp_step *s, json_t *cmd)
{
	char *reply = NULL, *all;
	const char *before = s->events ? s->events : "",
		   *after = s->events_after ? s->events_after : "";
	size_t lb = strlen(before), la = strlen(after);

	if (s->action == FAKE_QMP_ANSWER && !s->raw)
		reply = reply_text(f, cmd, s->ret, s->error);
	if (asprintf(&all, "%s%s%s%s%s", before, lb && before[lb - 1] != '\n' ? "\n" : "",
		     s->action != FAKE_QMP_ANSWER ? ""
		     : s->raw			  ? s->raw
						  : reply,
		     after, la && after[la - 1] != '\n' ? "\n" : "") < 0)
		abort();
	free(reply);
	return all;
}

/* Play one step for cmd: 0 to go on, -1 when the connection is over. */
static int play(struct fake_qmp *f, const struct fake_qmp_step *s, json_t *cmd)
{
	char *text = answer_text(f, s, cmd);
	int rc = send_text(f, text, s->trickle);

	free(text);
	return rc || s->action == FAKE_QMP_CLOSE ? -1 : 0;
}

/* A command the script did not expect: say so, and answer as QEMU would. */
static int unexpected(struct fake_qmp *f, json_t *cmd, const char *name, const char *expected)
{
	char *line;
	char desc[300];
	int rc;

	if (expected)
		snprintf(desc, sizeof(desc), "command %zu: expected '%s', got '%s'", f->nrecs - 1,
			 expected, name);
	else
		snprintf(desc, sizeof(desc), "command %zu: '%s' is past the end of the script",
			 f->nrecs - 1, name);
	fail(f, "%s", desc);
	line = reply_text(f, cmd, NULL, desc);
	rc = send_bytes(f, line, strlen(line));
	free(line);
	return rc;
}

static int serve_one(struct fake_qmp *f, bool *hung)
{
	int fd = -1;
	json_t *cmd = next_command(f, &fd);
	const char *name;
	const struct fake_qmp_step *s;
	int rc;

	if (!cmd)
		return -1;
	name = json_string_value(json_object_get(cmd, "execute"));
	record(f, name, json_object_get(cmd, "arguments"), fd);
	if (*hung) {
		rc = 0; /* a client that goes on after a silence gets silence */
	} else if (f->greeting == NULL && f->nrecs == 1) {
		rc = strcmp(name, "qmp_capabilities") ? unexpected(f, cmd, name, "qmp_capabilities")
						      : play(f, &(struct fake_qmp_step){0}, cmd);
	} else if (f->next >= f->n) {
		rc = unexpected(f, cmd, name, NULL);
	} else if ((s = &f->steps[f->next])->cmd && strcmp(s->cmd, name)) {
		rc = unexpected(f, cmd, name, s->cmd);
	} else {
		f->next++;
		*hung = s->action == FAKE_QMP_HANG;
		rc = play(f, s, cmd); /* a hang still sends its events */
	}
	json_decref(cmd);
	return rc;
}

static int accept_client(struct fake_qmp *f)
{
	if (wait_for(f, f->listen_fd, POLLIN, -1))
		return -1;
	f->sock = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (f->sock < 0) {
		fail(f, "accept: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void *serve(void *arg)
{
	struct fake_qmp *f = arg;
	bool hung = false;

	if (f->listen_fd >= 0 && accept_client(f))
		return NULL;
	if (send_text(f, f->greeting ? f->greeting : DEFAULT_GREETING, false))
		goto out;
	while (!serve_one(f, &hung))
		;
out:
	/* Closing here, not in free, is what lets a client see the end of the stream. */
	close(f->sock);
	f->sock = -1;
	return NULL;
}

static struct fake_qmp *alloc(const struct fake_qmp_step *steps, size_t n, const char *greeting)
{
	struct fake_qmp *f = calloc(1, sizeof(*f));

	if (!f || pipe2(f->stop, O_CLOEXEC))
		abort();
	f->steps = steps;
	f->n = n;
	f->greeting = greeting;
	f->listen_fd = f->sock = f->pending_fd = -1;
	pthread_mutex_init(&f->lock, NULL);
	return f;
}

static struct fake_qmp *start(struct fake_qmp *f)
{
	if (pthread_create(&f->thread, NULL, serve, f))
		abort();
	f->running = true;
	return f;
}

struct fake_qmp *fake_qmp_pair(const struct fake_qmp_step *steps, size_t n, const char *greeting,
			       int *client_fd)
{
	struct fake_qmp *f = alloc(steps, n, greeting);
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	f->sock = sv[0];
	if (fcntl(f->sock, F_SETFL, O_NONBLOCK))
		abort();
	*client_fd = sv[1];
	return start(f);
}

struct fake_qmp *fake_qmp_listen(const char *dir, const struct fake_qmp_step *steps, size_t n,
				 const char *greeting)
{
	struct fake_qmp *f = alloc(steps, n, greeting);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (asprintf(&f->path, "%s/qmp.sock", dir) < 0 || strlen(f->path) >= sizeof(sa.sun_path))
		abort();
	strcpy(sa.sun_path, f->path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(f->listen_fd, 1))
		abort();
	return start(f);
}

const char *fake_qmp_path(const struct fake_qmp *f)
{
	return f->path;
}

static void join(struct fake_qmp *f)
{
	if (f->running)
		pthread_join(f->thread, NULL);
	f->running = false;
}

const char *fake_qmp_finish(struct fake_qmp *f)
{
	join(f);
	if (!f->failure[0] && f->next < f->n)
		fail(f, "%zu step(s) not reached, the first '%s'", f->n - f->next,
		     f->steps[f->next].cmd ? f->steps[f->next].cmd : "(any)");
	return f->failure[0] ? f->failure : NULL;
}

void fake_qmp_free(struct fake_qmp *f)
{
	if (!f)
		return;
	if (f->running && write(f->stop[1], "x", 1) != 1)
		abort();
	join(f);
	for (size_t i = 0; i < f->nrecs; i++) {
		free(f->recs[i].cmd);
		free(f->recs[i].args);
		if (f->recs[i].fd >= 0)
			close(f->recs[i].fd);
	}
	if (f->pending_fd >= 0)
		close(f->pending_fd);
	if (f->sock >= 0)
		close(f->sock);
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	if (f->path)
		unlink(f->path);
	close(f->stop[0]);
	close(f->stop[1]);
	pthread_mutex_destroy(&f->lock);
	free(f->recs);
	free(f->buf);
	free(f->path);
	free(f);
}

size_t fake_qmp_count(struct fake_qmp *f)
{
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->nrecs;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static struct received *rec_at(struct fake_qmp *f, size_t i)
{
	struct received *r;

	pthread_mutex_lock(&f->lock);
	r = i < f->nrecs ? &f->recs[i] : NULL;
	pthread_mutex_unlock(&f->lock);
	return r;
}

const char *fake_qmp_cmd(struct fake_qmp *f, size_t i)
{
	struct received *r = rec_at(f, i);

	return r ? r->cmd : NULL;
}

const char *fake_qmp_args(struct fake_qmp *f, size_t i)
{
	struct received *r = rec_at(f, i);

	return r ? r->args : NULL;
}

int fake_qmp_fd(struct fake_qmp *f, size_t i)
{
	struct received *r = rec_at(f, i);

	return r ? r->fd : -1;
}
