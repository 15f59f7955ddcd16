/* SPDX-License-Identifier: MIT */
/*
 * The QMP client (qmp.h): line-framed JSON objects over a unix socket.
 *
 * QEMU writes one JSON object a line. The socket is non-blocking and every
 * wait goes through poll() with what is left of the step's deadline, so no
 * read or write can hang past the connection's timeout. Once a reply may
 * still be on its way (timeout) or the stream cannot be trusted (protocol
 * error, closed socket, half-sent command), the connection is marked broken
 * and every later call fails at once with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "qmp.h"

#define READ_CHUNK 65536
#define QUOTE_MAX  48 /* bytes of a bad line quoted in its error */
/* How often a connect to a full listen queue is tried again. */
#define CONNECT_RETRY_MS 10

struct mrs_qmp {
	int fd;
	unsigned timeout_ms;
	pid_t peer_pid;
	char version[64];
	char *package;
	char *buf; /* bytes received and not yet taken as messages */
	size_t len, cap;
	json_t *events[MRS_QMP_EVENT_QUEUE];  /* a ring, oldest at head */
	size_t ev_bytes[MRS_QMP_EVENT_QUEUE]; /* the length of each one's line */
	size_t ev_total;		      /* their sum */
	unsigned ev_head, ev_count;
	size_t line_len; /* of the message take_line() gave last */
	json_int_t next_id;
	struct mrs_error broken; /* code != 0: unusable, and why */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or deadline passes: 0, -ETIMEDOUT or -errno. */
static int wait_ready(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Record err as the reason the connection is unusable; returns its code. */
static int mark_broken(struct mrs_qmp *q, const struct mrs_error *err, int code)
{
	if (err)
		q->broken = *err;
	else
		q->broken = (struct mrs_error){.code = code, .msg = "an earlier call failed"};
	q->broken.code = code;
	return code;
}

static int check_usable(const struct mrs_qmp *q, struct mrs_error *err)
{
	if (!q->broken.code)
		return 0;
	return mrs_err(err, q->broken.code,
		       "the QMP connection is unusable since an earlier failure: %s",
		       q->broken.msg);
}

/* The start of a line that is not QMP, printable, for an error message. */
static void quote_line(const char *line, size_t len, char *out, size_t size)
{
	size_t n = len < QUOTE_MAX ? len : QUOTE_MAX, i;

	if (n >= size)
		n = size - 1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];

		out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[n] = '\0';
	if (len > n && n >= 3)
		memcpy(out + n - 3, "...", 3);
}

static bool all_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/*
 * Take the first complete line in the buffer as a JSON object: 1 and *msg
 * set, 0 if no complete line is there yet, -EPROTO if it is not an object or
 * longer than MRS_QMP_MAX_MESSAGE.
 */
static int take_line(struct mrs_qmp *q, json_t **msg, const char *during, struct mrs_error *err)
{
	char *nl;
	size_t n;
	json_t *j;
	json_error_t jerr;
	char quoted[QUOTE_MAX + 1];

	while (q->len && (nl = memchr(q->buf, '\n', q->len))) {
		n = (size_t)(nl - q->buf);
		if (n > MRS_QMP_MAX_MESSAGE)
			break;
		j = all_space(q->buf, n) ? NULL : json_loadb(q->buf, n, 0, &jerr);
		if (!j && !all_space(q->buf, n)) {
			quote_line(q->buf, n, quoted, sizeof(quoted));
			return mrs_err(err, -EPROTO,
				       "QEMU sent a line that is not JSON %s: '%s' (%s)", during,
				       quoted, jerr.text);
		}
		if (j && !json_is_object(j)) {
			json_decref(j);
			quote_line(q->buf, n, quoted, sizeof(quoted));
			return mrs_err(err, -EPROTO,
				       "QEMU sent a line that is not a JSON object %s: '%s'",
				       during, quoted);
		}
		q->len -= n + 1;
		memmove(q->buf, nl + 1, q->len);
		if (j) {
			*msg = j;
			q->line_len = n;
			return 1;
		}
	}
	if (q->len > MRS_QMP_MAX_MESSAGE)
		return mrs_err(err, -EPROTO, "QEMU sent a QMP message longer than %u bytes %s",
			       (unsigned)MRS_QMP_MAX_MESSAGE, during);
	return 0;
}

/* Make room for one more read, the buffer never growing past one message and its newline. */
static int make_room(struct mrs_qmp *q, struct mrs_error *err)
{
	size_t want, max = (size_t)MRS_QMP_MAX_MESSAGE + 1;
	char *p;

	if (q->cap - q->len >= READ_CHUNK || q->cap == max)
		return 0;
	want = q->cap ? q->cap * 2 : READ_CHUNK;
	while (want - q->len < READ_CHUNK && want < max)
		want *= 2;
	if (want > max)
		want = max;
	p = realloc(q->buf, want);
	if (!p)
		return mrs_err(err, -ENOMEM, "no memory for a QMP message of %zu bytes", want);
	q->buf = p;
	q->cap = want;
	return 0;
}

/*
 * The next message from QEMU, waiting until deadline at most. -ETIMEDOUT
 * comes without a message (the caller knows what was awaited); every other
 * failure says what happened, "during" naming what was going on.
 */
static int read_message(struct mrs_qmp *q, int64_t deadline, json_t **msg, const char *during,
			struct mrs_error *err)
{
	for (;;) {
		ssize_t n;
		int rc = take_line(q, msg, during, err);

		if (rc)
			return rc < 0 ? rc : 0;
		rc = make_room(q, err);
		if (rc)
			return rc;
		n = recv(q->fd, q->buf + q->len, q->cap - q->len, 0);
		if (n > 0) {
			q->len += (size_t)n;
			continue;
		}
		if (n == 0)
			return mrs_err(err, -ECONNRESET, "QEMU closed the QMP connection %s",
				       during);
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			return mrs_err(err, -ECONNRESET, "QEMU closed the QMP connection %s",
				       during);
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return mrs_err_errno(err, -errno, "cannot read from QEMU's QMP socket %s",
					     during);
		rc = wait_ready(q->fd, POLLIN, deadline);
		if (rc == -ETIMEDOUT)
			return rc;
		if (rc)
			return mrs_err_errno(err, rc, "cannot wait for QEMU's QMP socket %s",
					     during);
	}
}

static json_t *dequeue_event(struct mrs_qmp *q)
{
	json_t *ev;

	if (!q->ev_count)
		return NULL;
	ev = q->events[q->ev_head];
	q->ev_total -= q->ev_bytes[q->ev_head];
	q->ev_head = (q->ev_head + 1) % MRS_QMP_EVENT_QUEUE;
	q->ev_count--;
	return ev;
}

/*
 * Queue ev, bytes long on the wire. The oldest go while the queue holds too
 * many events or too many bytes, so a chatty or hostile peer cannot grow
 * memory (64 events of 16 MiB each would be 1 GiB); the newest stays even
 * if it alone is over MRS_QMP_EVENT_BYTES (it is within MRS_QMP_MAX_MESSAGE).
 */
static void queue_event(struct mrs_qmp *q, json_t *ev, size_t bytes)
{
	unsigned tail;

	while (q->ev_count &&
	       (q->ev_count == MRS_QMP_EVENT_QUEUE || q->ev_total + bytes > MRS_QMP_EVENT_BYTES))
		json_decref(dequeue_event(q));
	tail = (q->ev_head + q->ev_count) % MRS_QMP_EVENT_QUEUE;
	q->events[tail] = ev;
	q->ev_bytes[tail] = bytes;
	q->ev_total += bytes;
	q->ev_count++;
}

static bool is_event(json_t *msg)
{
	return json_is_string(json_object_get(msg, "event"));
}

/* The command's bytes: {"execute": cmd, "arguments": args, "id": id} and a newline. */
static char *encode_command(const char *cmd, json_t *args, json_int_t id)
{
	json_t *j = json_object();
	char *text = NULL, *line = NULL;

	if (!j || json_object_set_new(j, "execute", json_string(cmd)) ||
	    (args && json_object_set(j, "arguments", args)) ||
	    json_object_set_new(j, "id", json_integer(id)))
		goto out;
	text = json_dumps(j, JSON_COMPACT);
	if (text && asprintf(&line, "%s\n", text) < 0)
		line = NULL;
out:
	free(text);
	json_decref(j);
	return line;
}

/*
 * Send len bytes, fd (if >= 0) riding with the first ones that go: QEMU's
 * getfd takes the descriptor that arrives with the command's bytes.
 */
static int send_all(struct mrs_qmp *q, const char *bytes, size_t len, int fd, int64_t deadline)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;

	while (len) {
		struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		if (fd >= 0) {
			memset(&ctl, 0, sizeof(ctl));
			mh.msg_control = ctl.space;
			mh.msg_controllen = sizeof(ctl.space);
			CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
			CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
			CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), &fd, sizeof(int));
		}
		n = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
		if (n > 0) {
			bytes += n;
			len -= (size_t)n;
			fd = -1; /* it went with these bytes */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		n = wait_ready(q->fd, POLLOUT, deadline);
		if (n)
			return (int)n;
	}
	return 0;
}

static int send_command(struct mrs_qmp *q, const char *cmd, json_t *args, int fd, json_int_t id,
			int64_t deadline, struct mrs_error *err)
{
	char *line;
	int rc;

	if (args && !json_is_object(args))
		return mrs_err(err, -EINVAL, "the arguments of QMP command '%s' are not an object",
			       cmd);
	line = encode_command(cmd, args, id);
	if (!line)
		return mrs_err(err, -EINVAL, "cannot encode QMP command '%s' as JSON", cmd);
	rc = send_all(q, line, strlen(line), fd, deadline);
	free(line);
	if (rc == -EPIPE || rc == -ECONNRESET)
		rc = mrs_err(err, -ECONNRESET, "QEMU closed the QMP connection during '%s'", cmd);
	else if (rc == -ETIMEDOUT)
		rc = mrs_err(err, rc, "QEMU did not take '%s' within %u ms", cmd, q->timeout_ms);
	else if (rc)
		rc = mrs_err_errno(err, rc, "cannot send '%s' to QEMU", cmd);
	return rc ? mark_broken(q, err, rc) : 0;
}

/* QEMU's {"error": {"class", "desc"}} as our error. */
static int refused(const char *cmd, json_t *error, struct mrs_error *err)
{
	const char *desc = json_string_value(json_object_get(error, "desc"));
	const char *cls = json_string_value(json_object_get(error, "class"));

	if (!desc)
		desc = cls ? cls : "(no description)";
	return mrs_err(err, -EREMOTEIO, "QEMU refused '%s': %s", cmd, desc);
}

/* Read until the reply with id comes, queueing events met on the way. */
static int await_reply(struct mrs_qmp *q, const char *cmd, json_int_t id, int64_t deadline,
		       json_t **ret, struct mrs_error *err)
{
	char during[160];

	snprintf(during, sizeof(during), "during '%s'", cmd);
	for (;;) {
		json_t *msg = NULL, *value, *error, *jid;
		int rc = read_message(q, deadline, &msg, during, err);

		if (rc == -ETIMEDOUT)
			rc = mrs_err(err, rc, "QEMU did not answer '%s' within %u ms", cmd,
				     q->timeout_ms);
		if (rc)
			return mark_broken(q, err, rc);
		if (is_event(msg)) {
			queue_event(q, msg, q->line_len);
			continue;
		}
		value = json_object_get(msg, "return");
		error = json_object_get(msg, "error");
		jid = json_object_get(msg, "id");
		if ((!value && !error) || !json_is_integer(jid) || json_integer_value(jid) != id) {
			json_decref(msg);
			rc = mrs_err(err, -EPROTO,
				     "QEMU sent a QMP message %s that is not its reply (id %lld)",
				     during, (long long)id);
			return mark_broken(q, err, rc);
		}
		rc = error ? refused(cmd, error, err) : 0;
		if (!rc && ret)
			*ret = json_incref(value);
		json_decref(msg);
		return rc;
	}
}

int mrs_qmp_cmd_fd(struct mrs_qmp *q, const char *cmd, json_t *args, int fd, json_t **ret,
		   struct mrs_error *err)
{
	int64_t deadline = now_ms() + q->timeout_ms;
	json_int_t id;
	int rc;

	if (ret)
		*ret = NULL;
	rc = check_usable(q, err);
	if (rc)
		return rc;
	id = ++q->next_id;
	rc = send_command(q, cmd, args, fd, id, deadline, err);
	return rc ? rc : await_reply(q, cmd, id, deadline, ret, err);
}

int mrs_qmp_cmd(struct mrs_qmp *q, const char *cmd, json_t *args, json_t **ret,
		struct mrs_error *err)
{
	return mrs_qmp_cmd_fd(q, cmd, args, -1, ret, err);
}

/* Take the event named from msg if it is one: 1, or 0 (and msg is dropped). */
static int take_if_named(json_t *msg, const char *event, json_t **data)
{
	int match = !strcmp(json_string_value(json_object_get(msg, "event")), event);

	if (match && data)
		*data = json_incref(json_object_get(msg, "data"));
	json_decref(msg);
	return match;
}

int mrs_qmp_wait_event(struct mrs_qmp *q, const char *event, unsigned timeout_ms, json_t **data,
		       struct mrs_error *err)
{
	int64_t deadline = now_ms() + (timeout_ms ? timeout_ms : q->timeout_ms);
	char during[160];
	json_t *msg;
	int rc;

	if (data)
		*data = NULL;
	rc = check_usable(q, err);
	if (rc)
		return rc;
	while ((msg = dequeue_event(q)))
		if (take_if_named(msg, event, data))
			return 0;
	snprintf(during, sizeof(during), "while waiting for event '%s'", event);
	for (;;) {
		rc = read_message(q, deadline, &msg, during, err);
		/* No command is in flight, so a late event does not desynchronise us. */
		if (rc == -ETIMEDOUT)
			return mrs_err(err, rc, "QEMU sent no event '%s' within %u ms", event,
				       timeout_ms ? timeout_ms : q->timeout_ms);
		if (rc)
			return mark_broken(q, err, rc);
		if (!is_event(msg)) {
			json_decref(msg);
			rc = mrs_err(err, -EPROTO,
				     "QEMU sent a QMP message %s that is not an event", during);
			return mark_broken(q, err, rc);
		}
		if (take_if_named(msg, event, data))
			return 0;
	}
}

/* {"QMP": {"version": {"qemu": {"major", "minor", "micro"}, "package"}, ...}} */
static int parse_greeting(struct mrs_qmp *q, json_t *msg, struct mrs_error *err)
{
	json_t *version = json_object_get(json_object_get(msg, "QMP"), "version");
	json_t *qemu = json_object_get(version, "qemu");
	json_t *major = json_object_get(qemu, "major"), *minor = json_object_get(qemu, "minor"),
	       *micro = json_object_get(qemu, "micro");
	const char *package = json_string_value(json_object_get(version, "package"));

	if (!json_is_object(json_object_get(msg, "QMP")))
		return mrs_err(err, -EPROTO, "QEMU's first message is not a QMP greeting");
	if (!json_is_integer(major) || !json_is_integer(minor) || !json_is_integer(micro))
		return mrs_err(err, -EPROTO,
			       "QEMU's QMP greeting has no version major.minor.micro");
	snprintf(q->version, sizeof(q->version), "%lld.%lld.%lld",
		 (long long)json_integer_value(major), (long long)json_integer_value(minor),
		 (long long)json_integer_value(micro));
	q->package = strdup(package ? package : "");
	if (!q->package)
		return mrs_err(err, -ENOMEM, "no memory for QEMU's package name");
	return 0;
}

static int greet(struct mrs_qmp *q, struct mrs_error *err)
{
	json_t *msg = NULL;
	int rc = read_message(q, now_ms() + q->timeout_ms, &msg, "before its greeting", err);

	if (rc == -ETIMEDOUT)
		rc =
		    mrs_err(err, rc,
			    "QEMU sent no QMP greeting within %u ms (QEMU serves one QMP client at "
			    "a time: another client may hold it)",
			    q->timeout_ms);
	if (!rc) {
		rc = parse_greeting(q, msg, err);
		json_decref(msg);
	}
	if (rc)
		return mark_broken(q, err, rc);
	return mrs_qmp_cmd(q, "qmp_capabilities", NULL, NULL, err);
}

static pid_t peer_pid_of(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || len != sizeof(cred))
		return 0;
	return cred.pid;
}

int mrs_qmp_connect_fd(struct mrs_qmp **out, int fd, unsigned timeout_ms, struct mrs_error *err)
{
	struct mrs_qmp *q;
	int flags, rc;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q) {
		close(fd);
		return mrs_err(err, -ENOMEM, "no memory for a QMP connection");
	}
	q->fd = fd;
	q->timeout_ms = timeout_ms ? timeout_ms : MRS_QMP_TIMEOUT_MS;
	q->peer_pid = peer_pid_of(fd);
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		rc = mrs_err_errno(err, -errno, "cannot make the QMP socket non-blocking");
		mrs_qmp_close(q);
		return rc;
	}
	rc = greet(q, err);
	if (rc) {
		mrs_qmp_close(q);
		return rc;
	}
	*out = q;
	return 0;
}

/* Why no QEMU answered at path, in the user's words. */
static int connect_failed(const char *path, int code, struct mrs_error *err)
{
	struct stat st;

	if (stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return mrs_err(err, -ENOTSOCK, "QMP socket '%s' is not a socket", path);
	if (code == -ECONNREFUSED)
		return mrs_err(err, code,
			       "no QEMU is listening on QMP socket '%s' (connection refused: the "
			       "QEMU that made it has exited?)",
			       path);
	return mrs_err_errno(err, code, "cannot connect to QMP socket '%s'", path);
}

/*
 * Connect the non-blocking fd to sa by deadline: 0, -ETIMEDOUT or -errno.
 * QEMU accepts one QMP client at a time; while another holds it, new
 * connections wait in the listen queue, and once that is full a blocking
 * connect() would wait for as long as the other client stays. A unix
 * socket's non-blocking connect() does not go in progress then: it fails
 * with EAGAIN at once, and poll() on the unconnected socket says nothing
 * about room in the queue, so the connect is retried after short sleeps
 * (poll() with no descriptor) until the deadline.
 */
static int connect_within(int fd, const struct sockaddr_un *sa, int64_t deadline)
{
	for (;;) {
		int64_t left;
		int rc = 0;
		socklen_t len = sizeof(rc);

		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) { /* not for unix sockets today; cheap to honour */
			rc = wait_ready(fd, POLLOUT, deadline);
			if (!rc && getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &len) < 0)
				rc = errno;
			return rc > 0 ? -rc : rc;
		}
		if (errno != EAGAIN)
			return -errno;
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		poll(NULL, 0, left < CONNECT_RETRY_MS ? (int)left : CONNECT_RETRY_MS);
	}
}

int mrs_qmp_connect(struct mrs_qmp **out, const char *path, unsigned timeout_ms,
		    struct mrs_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return mrs_err(
		    err, -ENAMETOOLONG,
		    "QMP socket path '%s' is longer than a unix socket allows (%zu bytes)", path,
		    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return mrs_err_errno(err, -errno, "cannot create a unix socket for QMP");
	rc = connect_within(fd, &sa, now_ms() + (timeout_ms ? timeout_ms : MRS_QMP_TIMEOUT_MS));
	if (rc == -ETIMEDOUT)
		rc =
		    mrs_err(err, rc,
			    "QMP socket '%s' took no connection within %u ms (its queue is full: "
			    "QEMU serves one QMP client at a time, and another client may hold it)",
			    path, timeout_ms ? timeout_ms : MRS_QMP_TIMEOUT_MS);
	else if (rc)
		rc = connect_failed(path, rc, err);
	if (rc) {
		close(fd);
		return rc;
	}
	rc = mrs_qmp_connect_fd(out, fd, timeout_ms, err);
	if (rc)
		mrs_err_prefix(err, "QMP socket '%s'", path);
	return rc;
}

void mrs_qmp_close(struct mrs_qmp *q)
{
	json_t *ev;

	if (!q)
		return;
	while ((ev = dequeue_event(q)))
		json_decref(ev);
	if (q->fd >= 0)
		close(q->fd);
	free(q->buf);
	free(q->package);
	free(q);
}

void mrs_qmp_set_timeout(struct mrs_qmp *q, unsigned timeout_ms)
{
	q->timeout_ms = timeout_ms ? timeout_ms : MRS_QMP_TIMEOUT_MS;
}

const char *mrs_qmp_version(const struct mrs_qmp *q)
{
	return q->version;
}

const char *mrs_qmp_package(const struct mrs_qmp *q)
{
	return q->package;
}

pid_t mrs_qmp_peer_pid(const struct mrs_qmp *q)
{
	return q->peer_pid;
}
