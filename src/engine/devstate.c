/* SPDX-License-Identifier: MIT */
/*
 * Device state between a VMM and the image's device-state region, through
 * a socketpair (devstate.h). The VMM writes or reads at its own pace; the
 * library never holds more than one buffer of it and waits only in poll(),
 * a tick at a time, so a cancel request is seen and a hung VMM times out.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "devstate.h"
#include "error.h"
#include "metaio.h"
#include "pass.h"

/* One buffer of device state: video RAM makes it tens of MiB, never held whole. */
#define DEVSTATE_CHUNK (1024u * 1024u)
/* The longest poll() between two looks at the progress callback and the clock. */
#define TICK_MS_MAX 200u

/* Where a transfer stands: for progress, cancel, and the idle timeout. */
struct pump {
	const struct mrs_io_opts *io;
	const char *doing; /* "receiving", "sending", "checking" */
	uint64_t start, last_move, last_report;
	uint64_t done, total; /* total 0: not known in advance */
};

static void pump_init(struct pump *p, const struct mrs_io_opts *io, const char *doing,
		      uint64_t total)
{
	uint64_t now = mrs_now_ns();

	*p = (struct pump){.io = io,
			   .doing = doing,
			   .start = now,
			   .last_move = now,
			   .last_report = now,
			   .total = total};
}

static void pump_moved(struct pump *p, uint64_t n)
{
	p->done += n;
	p->last_move = mrs_now_ns();
}

static int tick_ms(const struct pump *p)
{
	return (int)(p->io->progress_ms < TICK_MS_MAX ? p->io->progress_ms : TICK_MS_MAX);
}

/* The progress callback when it is due (it may cancel), and the idle timeout. */
static int pump_tick(struct pump *p, struct mrs_error *err)
{
	uint64_t now = mrs_now_ns();

	if (now - p->last_report >= p->io->progress_ms * 1000000ull) {
		p->last_report = now;
		if (mrs_progress_report(p->io, "device state", p->done, p->total, p->done,
					p->start))
			return mrs_err(err, -ECANCELED, "interrupted while %s the device state",
				       p->doing);
	}
	if (now - p->last_move >= MRS_DEVSTATE_IDLE_TIMEOUT_MS * 1000000ull)
		return mrs_err(err, -ETIMEDOUT,
			       "the VMM moved no device state for %u s (while %s it, after %" PRIu64
			       " bytes)",
			       MRS_DEVSTATE_IDLE_TIMEOUT_S, p->doing, p->done);
	return 0;
}

/* Wait until sock is ready for events (or hung up), ticking meanwhile. */
static int wait_ready(int sock, short events, struct pump *p, struct mrs_error *err)
{
	for (;;) {
		struct pollfd pfd = {.fd = sock, .events = events};
		int n = poll(&pfd, 1, tick_ms(p));
		int ret;

		if (n < 0 && errno != EINTR)
			return mrs_err_errno(err, -errno, "cannot wait for the device state");
		ret = pump_tick(p, err);
		if (ret)
			return ret;
		if (n > 0)
			return 0;
	}
}

/* A VMM callback's failure, with its own message when it gave one. */
static int vmm_failed(int ret, const struct mrs_error *cerr, struct mrs_error *err,
		      const char *what)
{
	if (ret > 0)
		ret = -EIO; /* only negative errnos leave the library */
	if (cerr->msg[0])
		return mrs_err(err, ret, "%s: %s", what, cerr->msg);
	return mrs_err(err, ret, "%s: %s", what, strerror(-ret));
}

static int text_check(const char *text, const char *what, struct mrs_error *err)
{
	if (text && strlen(text) >= MRS_DEVICE_TEXT)
		return mrs_err(err, -MRS_EUSAGE,
			       "the device state's %s is %zu bytes long, at most %u are recorded",
			       what, strlen(text), MRS_DEVICE_TEXT - 1);
	return 0;
}

int mrs_devstate_source_check(const struct mrs_devstate_source *src, struct mrs_error *err)
{
	int ret;

	if (!src->start || !src->finish)
		return mrs_err(err, -MRS_EUSAGE, "a device-state source needs start and finish");
	ret = text_check(src->producer, "producer", err);
	return ret ? ret : text_check(src->machine, "machine", err);
}

int mrs_devstate_sink_check(const struct mrs_devstate_sink *sink, struct mrs_error *err)
{
	if (!sink->start || !sink->finish)
		return mrs_err(err, -MRS_EUSAGE, "a device-state sink needs start and finish");
	return 0;
}

/* Write out and hash what the buffer holds. */
static int flush_chunk(int fd, struct mrs_device_rec *rec, struct mrs_hash_state *st,
		       const uint8_t *buf, size_t *fill, struct mrs_error *err)
{
	int ret = mrs_pwrite_all(fd, buf, *fill, rec->offset + rec->length);

	if (ret)
		return mrs_err_errno(err, ret, "cannot write the device state at offset 0x%" PRIx64,
				     rec->offset + rec->length);
	mrs_hash_add(st, buf, *fill);
	rec->length += *fill;
	*fill = 0;
	return 0;
}

/* Read sock until end of file into the region, a buffer at a time, hashing. */
static int receive(int sock, int fd, struct mrs_device_rec *rec, struct pump *p,
		   struct mrs_error *err)
{
	uint8_t *buf = malloc(DEVSTATE_CHUNK);
	struct mrs_hash_state *st = mrs_hash_begin();
	size_t fill = 0;
	bool eof = false;
	int ret = 0;

	if (!buf || !st)
		ret = mrs_err(err, -ENOMEM, "out of memory for the device state");
	while (!ret && !eof) {
		ssize_t n;

		ret = wait_ready(sock, POLLIN, p, err);
		if (ret)
			break;
		n = recv(sock, buf + fill, DEVSTATE_CHUNK - fill, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			ret = mrs_err_errno(err, -errno, "cannot receive the device state");
			break;
		}
		eof = n == 0;
		pump_moved(p, (uint64_t)n);
		fill += (size_t)n;
		if (fill == DEVSTATE_CHUNK || (eof && fill))
			ret = flush_chunk(fd, rec, st, buf, &fill, err);
	}
	if (st)
		rec->checksum = mrs_hash_end(st);
	free(buf);
	return ret;
}

static int make_pair(int sv[2], struct mrs_error *err)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return mrs_err_errno(err, -errno, "cannot make a socket for the device state");
	return 0;
}

int mrs_devstate_save(const struct mrs_devstate_source *src, int fd, const struct mrs_io_opts *io,
		      struct mrs_device_rec *rec, uint64_t *ns, struct mrs_error *err)
{
	struct mrs_error cerr = {0};
	uint64_t t0 = mrs_now_ns();
	struct pump p;
	int sv[2], ret;

	rec->length = 0;
	/* mrs_devstate_source_check() saw that they fit. */
	snprintf(rec->producer, sizeof(rec->producer), "%s", src->producer ? src->producer : "");
	snprintf(rec->machine, sizeof(rec->machine), "%s", src->machine ? src->machine : "");
	ret = make_pair(sv, err);
	if (ret)
		return ret;
	ret = src->start(src->ctx, sv[1], &cerr);
	/* The VMM has its own copy now (or none): end of file is when it closes it. */
	close(sv[1]);
	if (ret) {
		close(sv[0]);
		return vmm_failed(ret, &cerr, err, "cannot start saving the device state");
	}
	pump_init(&p, io, "receiving", 0);
	ret = receive(sv[0], fd, rec, &p, err);
	close(sv[0]);
	if (ret)
		return ret;
	ret = src->finish(src->ctx, rec->length, &cerr);
	if (ret)
		return vmm_failed(ret, &cerr, err, "the VMM did not save its device state");
	if (!rec->length)
		return mrs_err(err, -EPROTO, "the VMM sent no device state");
	*ns = mrs_now_ns() - t0;
	return 0;
}

/* Read len bytes of the region at off: the reader checked it lies inside the file. */
static int read_chunk(int fd, const struct mrs_device_rec *rec, uint64_t off, uint8_t *buf,
		      size_t len, struct mrs_error *err)
{
	ssize_t n = mrs_pread_all(fd, buf, len, rec->offset + off);

	if (n < 0)
		return mrs_err_errno(err, (int)n,
				     "cannot read the device state at offset 0x%" PRIx64,
				     rec->offset + off);
	if ((size_t)n < len)
		return mrs_err(err, -EPROTO,
			       "cannot read the device state at offset 0x%" PRIx64
			       ": the file ends at 0x%" PRIx64,
			       rec->offset + off, rec->offset + off + (uint64_t)n);
	return 0;
}

static size_t chunk_at(const struct mrs_device_rec *rec, uint64_t off)
{
	return rec->length - off < DEVSTATE_CHUNK ? (size_t)(rec->length - off) : DEVSTATE_CHUNK;
}

int mrs_devstate_check(int fd, const struct mrs_device_rec *rec, const struct mrs_io_opts *io,
		       struct mrs_error *err)
{
	uint8_t *buf = malloc(DEVSTATE_CHUNK);
	struct mrs_hash_state *st = mrs_hash_begin();
	uint64_t sum;
	struct pump p;
	int ret = 0;

	pump_init(&p, io, "checking", rec->length);
	if (!buf || !st)
		ret = mrs_err(err, -ENOMEM, "out of memory for the device state");
	for (uint64_t off = 0; !ret && off < rec->length; off += chunk_at(rec, off)) {
		ret = read_chunk(fd, rec, off, buf, chunk_at(rec, off), err);
		if (!ret)
			mrs_hash_add(st, buf, chunk_at(rec, off));
		pump_moved(&p, chunk_at(rec, off));
		if (!ret)
			ret = pump_tick(&p, err);
	}
	sum = st ? mrs_hash_end(st) : 0;
	free(buf);
	if (!ret && sum != rec->checksum)
		ret = mrs_err(err, -EBADMSG,
			      "the device state (%" PRIu64 " bytes at offset 0x%" PRIx64
			      ") does NOT match its checksum",
			      rec->length, rec->offset);
	return ret;
}

/* Send len bytes, as fast as the VMM reads them. */
static int send_all(int sock, const uint8_t *buf, size_t len, const struct mrs_device_rec *rec,
		    struct pump *p, struct mrs_error *err)
{
	size_t sent = 0;

	while (sent < len) {
		int ret = wait_ready(sock, POLLOUT, p, err);
		ssize_t n;

		if (ret)
			return ret;
		/* MSG_NOSIGNAL: a VMM that went away is an error here, not SIGPIPE. */
		n = send(sock, buf + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return mrs_err(err, -EPIPE,
				       "the VMM stopped reading the device state after %" PRIu64
				       " of %" PRIu64 " bytes",
				       p->done, rec->length);
		if (n < 0)
			return mrs_err_errno(err, -errno, "cannot send the device state");
		sent += (size_t)n;
		pump_moved(p, (uint64_t)n);
	}
	return 0;
}

static int changed(size_t held_back, struct mrs_error *err)
{
	return mrs_err(err, -EBADMSG,
		       "the device state changed in the image while it was sent (it no longer "
		       "matches its checksum); its last %zu bytes were held back",
		       held_back);
}

/*
 * The region was checked before the RAM was written; the bytes sent are
 * hashed again, and the last piece goes out only if they still match, so a
 * region changed in between never reaches the VMM whole.
 */
static int send_region(int sock, int fd, const struct mrs_device_rec *rec, struct pump *p,
		       struct mrs_error *err)
{
	uint8_t *buf = malloc(DEVSTATE_CHUNK);
	struct mrs_hash_state *st = mrs_hash_begin();
	int ret = buf && st ? 0 : mrs_err(err, -ENOMEM, "out of memory for the device state");

	for (uint64_t off = 0; !ret && off < rec->length; off += chunk_at(rec, off)) {
		size_t len = chunk_at(rec, off);

		ret = read_chunk(fd, rec, off, buf, len, err);
		if (ret)
			break;
		mrs_hash_add(st, buf, len);
		if (off + len == rec->length) {
			uint64_t sum = mrs_hash_end(st);

			st = NULL;
			if (sum != rec->checksum) {
				ret = changed(len, err);
				break;
			}
		}
		ret = send_all(sock, buf, len, rec, p, err);
	}
	if (st)
		mrs_hash_end(st); /* only to free it */
	free(buf);
	if (!ret && shutdown(sock, SHUT_WR))
		ret = mrs_err_errno(err, -errno, "cannot end the device state");
	return ret;
}

/*
 * The VMM stopped reading (err says after how many bytes): why is its to
 * say (QEMU exited, its reason on its standard error), so finish is asked,
 * and its word goes first. The error stays -EPIPE.
 */
static int vmm_hung_up(const struct mrs_devstate_sink *sink, uint64_t sent, struct mrs_error *err)
{
	struct mrs_error cerr = {0};
	char stopped[256];

	if (!sink->finish(sink->ctx, sent, &cerr) || !cerr.msg[0] || !err)
		return -EPIPE;
	snprintf(stopped, sizeof(stopped), "%.200s", err->msg);
	return mrs_err(err, -EPIPE, "%.700s (%s)", cerr.msg, stopped);
}

int mrs_devstate_load(const struct mrs_devstate_sink *sink, int fd,
		      const struct mrs_device_rec *rec, const struct mrs_io_opts *io,
		      struct mrs_error *err)
{
	struct mrs_error cerr = {0};
	struct pump p;
	int sv[2], ret;

	ret = make_pair(sv, err);
	if (ret)
		return ret;
	ret = sink->start(sink->ctx, sv[1], &cerr);
	close(sv[1]);
	if (ret) {
		close(sv[0]);
		return vmm_failed(ret, &cerr, err, "cannot start loading the device state");
	}
	pump_init(&p, io, "sending", rec->length);
	ret = send_region(sv[0], fd, rec, &p, err);
	if (ret == -EPIPE)
		ret = vmm_hung_up(sink, p.done, err);
	/* Open until finish: the VMM may still be reading what was sent. */
	if (!ret) {
		ret = sink->finish(sink->ctx, rec->length, &cerr);
		if (ret)
			ret = vmm_failed(ret, &cerr, err, "the VMM did not load the device state");
	}
	close(sv[0]);
	return ret;
}
