/* SPDX-License-Identifier: MIT */
/*
 * Device state through the engines, with a fake VMM on the other end of
 * the socketpair: a thread that writes (source) or reads (sink) at its own
 * pace, in pieces, so that the socket fills and the library has to stream.
 * RAM files live in a temporary directory, as in test_engine.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "codec.h"
#include "stream.h"

#define RAM_BYTES (4u << 20)
/* Several MiB, not a multiple of any buffer: the last piece is short. */
#define STATE_BYTES ((5u << 20) + 12345u)

/* ---- a fake VMM ---------------------------------------------------------- */

struct vmm {
	int fd; /* its own copy of the library's socket end; -1: none */
	pthread_t thread;
	bool running;
	size_t len;	  /* source: bytes to write */
	bool never_close; /* source: keep the socket open after writing */
	bool hang_up;	  /* sink: close without reading anything */
	int start_ret, finish_ret;
	int starts, finishes;
	uint64_t finish_bytes;
	int frozen_at_start; /* the freezer's state when start was called */
	uint8_t *got;	     /* sink: what it read */
	size_t got_len;
	const char *damage; /* sink: flip a byte of this image at damage_at when started */
	uint64_t damage_at;
};

static void damage(const char *path, uint64_t off);

static int freezes, thaws;

/* The bytes a source sends: position-dependent, so a lost or moved piece shows. */
static uint8_t *state_bytes(size_t len)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	mrs_test_fill(b, len, 42);
	return b;
}

static void *source_main(void *arg)
{
	struct vmm *v = arg;
	uint8_t *b = state_bytes(v->len);
	size_t at = 0;

	for (unsigned i = 0; at < v->len; i++) {
		size_t piece = 4099u * (i % 37 + 1);
		ssize_t n;

		if (piece > v->len - at)
			piece = v->len - at;
		/* MSG_NOSIGNAL: the library may close its end on a failure. */
		n = send(v->fd, b + at, piece, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		at += (size_t)n;
	}
	free(b);
	if (!v->never_close) {
		close(v->fd);
		v->fd = -1;
	}
	return NULL;
}

static void *sink_main(void *arg)
{
	struct vmm *v = arg;
	size_t cap = 1 << 20;

	v->got = malloc(cap);
	if (v->hang_up) {
		close(v->fd);
		v->fd = -1;
		return NULL;
	}
	for (;;) {
		ssize_t n;

		if (v->got_len == cap)
			v->got = realloc(v->got, cap *= 2);
		n = read(v->fd, v->got + v->got_len,
			 cap - v->got_len < 70001 ? cap - v->got_len : 70001);
		if (n <= 0)
			break;
		v->got_len += (size_t)n;
	}
	close(v->fd);
	v->fd = -1;
	return NULL;
}

static int vmm_start(struct vmm *v, int fd, void *(*fn)(void *), struct mrs_error *err)
{
	v->starts++;
	v->frozen_at_start = freezes - thaws;
	if (v->start_ret) {
		snprintf(err->msg, sizeof(err->msg), "the fake VMM refuses to start");
		return err->code = v->start_ret;
	}
	if (v->damage)
		damage(v->damage, v->damage_at);
	/* The fd stays the library's: the VMM works on its own copy. */
	v->fd = dup(fd);
	assert_true(v->fd >= 0);
	assert_int_equal(pthread_create(&v->thread, NULL, fn, v), 0);
	v->running = true;
	return 0;
}

static void vmm_join(struct vmm *v)
{
	if (v->running)
		pthread_join(v->thread, NULL);
	v->running = false;
}

static int vmm_finish(struct vmm *v, uint64_t bytes, struct mrs_error *err)
{
	v->finishes++;
	v->finish_bytes = bytes;
	vmm_join(v);
	if (v->finish_ret) {
		snprintf(err->msg, sizeof(err->msg), "the fake VMM says the transfer failed");
		return err->code = v->finish_ret;
	}
	return 0;
}

static int source_start(void *ctx, int fd, struct mrs_error *err)
{
	return vmm_start(ctx, fd, source_main, err);
}

static int sink_start(void *ctx, int fd, struct mrs_error *err)
{
	return vmm_start(ctx, fd, sink_main, err);
}

static int any_finish(void *ctx, uint64_t bytes, struct mrs_error *err)
{
	return vmm_finish(ctx, bytes, err);
}

/* After a test: the VMM's thread joined and its socket closed. */
static void vmm_done(struct vmm *v)
{
	if (v->fd >= 0)
		close(v->fd); /* a never-closing source: its send fails, its thread ends */
	v->fd = -1;
	vmm_join(v);
	free(v->got);
	v->got = NULL;
}

static struct mrs_devstate_source source_for(struct vmm *v)
{
	struct mrs_devstate_source s = MRS_DEVSTATE_SOURCE_INIT;

	s.start = source_start;
	s.finish = any_finish;
	s.ctx = v;
	s.producer = "QEMU 7.2.0";
	s.machine = "pc-i440fx-7.2";
	return s;
}

static struct mrs_devstate_sink sink_for(struct vmm *v)
{
	struct mrs_devstate_sink s = MRS_DEVSTATE_SINK_INIT;

	s.start = sink_start;
	s.finish = any_finish;
	s.ctx = v;
	return s;
}

/* ---- a counting freezer, and the fixture ---------------------------------- */

static int count_freeze(void *ctx, struct mrs_error *err)
{
	(void)ctx;
	(void)err;
	freezes++;
	return 0;
}

static int count_thaw(void *ctx, struct mrs_error *err)
{
	(void)ctx;
	(void)err;
	thaws++;
	return 0;
}

struct fix {
	char *dir, *ram, *image, *target;
	struct mrs_ram spec, to_target;
	struct mrs_freezer *fz;
	struct mrs_io_opts io;
	struct vmm vmm;
};

static void write_pattern(const char *path, size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	mrs_test_fill(b, len, seed);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
	free(b);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static int setup(void **state)
{
	static const struct mrs_freezer_ops ops = {sizeof(ops), count_freeze, count_thaw, NULL};
	struct fix *f = calloc(1, sizeof(*f));

	f->dir = mrs_test_tmpdir();
	if (asprintf(&f->ram, "%s/ram", f->dir) < 0 ||
	    asprintf(&f->image, "%s/vm.img", f->dir) < 0 ||
	    asprintf(&f->target, "%s/target", f->dir) < 0)
		return -1;
	write_pattern(f->ram, RAM_BYTES, 7);
	f->spec = (struct mrs_ram){"pc.ram", f->ram, 0};
	f->to_target = (struct mrs_ram){"pc.ram", f->target, 0};
	if (mrs_freezer_new(&f->fz, &ops, NULL, NULL))
		return -1;
	f->io = (struct mrs_io_opts)MRS_IO_OPTS_INIT;
	f->io.channels = 2;
	f->vmm = (struct vmm){.fd = -1, .len = STATE_BYTES};
	freezes = thaws = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	vmm_done(&f->vmm);
	mrs_freezer_free(f->fz);
	mrs_test_tmpdir_remove(f->dir);
	free(f->ram);
	free(f->image);
	free(f->target);
	free(f);
	return 0;
}

static struct mrs_save_opts save_opts(struct fix *f, const struct mrs_devstate_source *src)
{
	struct mrs_save_opts o = MRS_SAVE_OPTS_INIT;

	o.io = &f->io;
	o.freezers = &f->fz;
	o.nfreezers = 1;
	o.devstate = src;
	return o;
}

static struct mrs_restore_opts restore_opts(struct fix *f, const struct mrs_devstate_sink *sink)
{
	struct mrs_restore_opts o = MRS_RESTORE_OPTS_INIT;

	o.io = &f->io;
	o.devstate = sink;
	return o;
}

/* Nothing but the RAM file and the target in the directory: no image, no temporary file. */
static void assert_no_image(const struct fix *f)
{
	struct dirent *de;
	DIR *d = opendir(f->dir);

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "ram") && strcmp(de->d_name, "target"))
			fail_msg("'%s' was left behind", de->d_name);
	closedir(d);
}

/* Save with the fake source, which must succeed. */
static void save_with_state(struct fix *f, int live)
{
	struct mrs_devstate_source src = source_for(&f->vmm);
	struct mrs_save_opts o = save_opts(f, &src);
	struct mrs_save_report rep = MRS_SAVE_REPORT_INIT;
	struct mrs_error err = {0};

	o.live = live;
	if (mrs_save(f->image, &f->spec, 1, &o, &rep, &err))
		fail_msg("save: %s", err.msg);
	assert_int_equal(rep.devstate_bytes, STATE_BYTES);
	assert_true(rep.devstate_ns > 0);
	assert_true(rep.image_size >= STATE_BYTES);
	mrs_save_report_free(&rep);
	vmm_done(&f->vmm);
	assert_int_equal(f->vmm.finishes, 1);
	assert_int_equal(f->vmm.finish_bytes, STATE_BYTES);
	assert_int_equal(freezes, thaws);
}

/* ---- the tests ----------------------------------------------------------- */

/*
 * Save, info, verify, restore: the source is started while the guest is
 * frozen, info describes the region (checksum of exactly the bytes sent),
 * verify checks it, and a sink receives exactly those bytes after the RAM
 * is back. Catches the device state saved after the thaw (frozen_at_start),
 * a lost, repeated or reordered piece (the checksum and the sink's bytes),
 * and a record info or verify ignores.
 */
static void test_round_trip(void **state)
{
	struct fix *f = *state;
	uint8_t *want = state_bytes(STATE_BYTES);

	if (!mrs_test_have_io_uring())
		skip();
	for (int live = 0; live < 2; live++) {
		struct mrs_devstate_sink sink;
		struct mrs_restore_opts ro;
		struct mrs_restore_report rr = MRS_RESTORE_REPORT_INIT;
		struct mrs_verify_report vr = MRS_VERIFY_REPORT_INIT;
		struct mrs_image_info *info;
		struct mrs_error err = {0};
		uint8_t *a, *b;
		size_t alen, blen;

		f->vmm = (struct vmm){.fd = -1, .len = STATE_BYTES};
		save_with_state(f, live);
		assert_int_equal(f->vmm.frozen_at_start, 1);

		assert_int_equal(mrs_image_info(f->image, &info, &err), 0);
		assert_true(info->devstate.present);
		assert_int_equal(info->devstate.length, STATE_BYTES);
		assert_int_equal(info->devstate.offset % 4096, 0);
		assert_int_equal(info->devstate.checksum, mrs_hash(want, STATE_BYTES));
		assert_string_equal(info->devstate.producer, "QEMU 7.2.0");
		assert_string_equal(info->devstate.machine, "pc-i440fx-7.2");
		mrs_image_info_free(info);

		if (mrs_verify(f->image, NULL, &vr, &err))
			fail_msg("verify: %s", err.msg);
		assert_int_equal(vr.devstate_bytes, STATE_BYTES);
		assert_int_equal(vr.devstate_bad, 0);
		mrs_verify_report_free(&vr);

		f->vmm = (struct vmm){.fd = -1};
		sink = sink_for(&f->vmm);
		ro = restore_opts(f, &sink);
		if (mrs_restore(f->image, &f->to_target, 1, &ro, &rr, &err))
			fail_msg("restore: %s", err.msg);
		assert_int_equal(rr.devstate_bytes, STATE_BYTES);
		assert_int_equal(rr.devstate_skipped, 0);
		mrs_restore_report_free(&rr);
		assert_int_equal(f->vmm.finish_bytes, STATE_BYTES);
		assert_int_equal(f->vmm.got_len, STATE_BYTES);
		assert_memory_equal(f->vmm.got, want, STATE_BYTES);
		vmm_done(&f->vmm);
		a = read_all(f->ram, &alen);
		b = read_all(f->target, &blen);
		assert_int_equal(alen, blen);
		assert_memory_equal(a, b, alen);
		free(a);
		free(b);
		unlink(f->image);
		unlink(f->target);
	}
	free(want);
}

/*
 * No sink: the RAM is restored as before and the report says the device
 * state was skipped. Catches a restore that silently drops it (the flag),
 * or one that refuses a RAM-only restore of an image with device state.
 */
static void test_restore_without_sink_skips(void **state)
{
	struct fix *f = *state;
	struct mrs_restore_opts ro = restore_opts(f, NULL);
	struct mrs_restore_report rr = MRS_RESTORE_REPORT_INIT;
	struct mrs_error err = {0};

	if (!mrs_test_have_io_uring())
		skip();
	save_with_state(f, 0);
	if (mrs_restore(f->image, &f->to_target, 1, &ro, &rr, &err))
		fail_msg("restore: %s", err.msg);
	assert_int_equal(rr.devstate_skipped, 1);
	assert_int_equal(rr.devstate_bytes, 0);
	assert_string_equal(rr.devstate_producer, "QEMU 7.2.0");
	mrs_restore_report_free(&rr);
}

/* Flip one byte of the image at off. */
static void damage(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

/*
 * One damaged byte of the region: verify fails naming the device state,
 * and a restore with a sink fails before any target changed (an existing
 * one keeps its bytes and mtime, a missing one is not created) and before
 * the VMM is started. Catches a restore that checks the state only while
 * sending it, after the RAM was written, and a verify that skips it.
 */
static void test_damaged_state(void **state)
{
	struct fix *f = *state;
	struct mrs_devstate_sink sink;
	struct mrs_restore_opts ro;
	struct mrs_verify_report vr = MRS_VERIFY_REPORT_INIT;
	struct mrs_image_info *info;
	struct mrs_error err = {0};
	struct stat before, after;
	uint8_t *old, *now;
	size_t oldlen, nowlen;
	char *missing;

	if (!mrs_test_have_io_uring())
		skip();
	save_with_state(f, 0);
	assert_int_equal(mrs_image_info(f->image, &info, &err), 0);
	damage(f->image, info->devstate.offset + STATE_BYTES / 2);
	mrs_image_info_free(info);

	assert_int_equal(mrs_verify(f->image, NULL, &vr, &err), -EBADMSG);
	assert_msg_has(&err, "device state");
	assert_msg_has(&err, "did NOT match its checksum");
	assert_int_equal(vr.devstate_bad, 1);
	assert_int_equal(vr.pages_bad, 0);
	mrs_verify_report_free(&vr);

	write_pattern(f->target, RAM_BYTES, 99);
	old = read_all(f->target, &oldlen);
	assert_int_equal(stat(f->target, &before), 0);
	f->vmm = (struct vmm){.fd = -1};
	sink = sink_for(&f->vmm);
	ro = restore_opts(f, &sink);
	assert_int_equal(mrs_restore(f->image, &f->to_target, 1, &ro, NULL, &err), -EBADMSG);
	assert_msg_has(&err, "device state");
	assert_msg_has(&err, "nothing was written");
	assert_int_equal(f->vmm.starts, 0);
	assert_int_equal(stat(f->target, &after), 0);
	now = read_all(f->target, &nowlen);
	assert_int_equal(oldlen, nowlen);
	assert_memory_equal(old, now, oldlen);
	assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	free(old);
	free(now);

	assert_true(asprintf(&missing, "%s/new-target", f->dir) > 0);
	f->to_target.path = missing;
	assert_int_equal(mrs_restore(f->image, &f->to_target, 1, &ro, NULL, &err), -EBADMSG);
	assert_int_equal(access(missing, F_OK), -1);
	free(missing);
}

/*
 * The source's finish fails, or its start does: no image, the freezer
 * thawed, the VMM's own message in ours. Catches an image published with
 * device state the VMM disowned, and a guest left frozen.
 */
static void test_source_failures(void **state)
{
	struct fix *f = *state;
	struct mrs_error err = {0};

	if (!mrs_test_have_io_uring())
		skip();
	for (int which = 0; which < 2; which++) {
		struct mrs_devstate_source src;
		struct mrs_save_opts o;

		f->vmm = (struct vmm){.fd = -1, .len = STATE_BYTES};
		if (which == 0)
			f->vmm.finish_ret = -EIO;
		else
			f->vmm.start_ret = -ECONNREFUSED;
		src = source_for(&f->vmm);
		o = save_opts(f, &src);
		freezes = thaws = 0;
		assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err),
				 which ? -ECONNREFUSED : -EIO);
		assert_msg_has(&err, which ? "cannot start saving the device state: the fake VMM "
					     "refuses to start"
					   : "the VMM did not save its device state: the fake VMM "
					     "says the transfer failed");
		assert_int_equal(freezes, 1);
		assert_int_equal(thaws, 1);
		vmm_done(&f->vmm);
		assert_no_image(f);
	}
}

/*
 * A source that closes its end at once and says it succeeded: no image (a
 * DEVICE record of length 0 is one every reader refuses), the freezer
 * thawed. Catches an image published with an empty device state. Seen
 * failing with save's check of the length taken out.
 */
static void test_source_sends_nothing(void **state)
{
	struct fix *f = *state;
	struct mrs_devstate_source src;
	struct mrs_save_opts o;
	struct mrs_error err = {0};

	if (!mrs_test_have_io_uring())
		skip();
	f->vmm = (struct vmm){.fd = -1, .len = 0};
	src = source_for(&f->vmm);
	o = save_opts(f, &src);
	freezes = thaws = 0;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -EPROTO);
	assert_msg_has(&err, "the VMM sent no device state");
	assert_int_equal(f->vmm.finishes, 1);
	assert_int_equal(freezes, 1);
	assert_int_equal(thaws, 1);
	vmm_done(&f->vmm);
	assert_no_image(f);
}

static int cancel_calls;
/* Asks to stop at its third call while the device state moves (not in a round). */
static int cancel_soon(void *ctx, const struct mrs_progress *p)
{
	(void)ctx;
	if (strcmp(p->phase, "device state"))
		return 0;
	return ++cancel_calls >= 3;
}

/*
 * A source that never closes its end: the progress callback can cancel,
 * and the snapshot fails with no image and a thawed guest. Catches a
 * receive loop that blocks in read() with no way out but the timeout.
 */
static void test_source_never_closes(void **state)
{
	struct fix *f = *state;
	struct mrs_devstate_source src;
	struct mrs_save_opts o;
	struct mrs_error err = {0};

	if (!mrs_test_have_io_uring())
		skip();
	f->vmm = (struct vmm){.fd = -1, .len = 100000, .never_close = true};
	src = source_for(&f->vmm);
	o = save_opts(f, &src);
	f->io.progress = cancel_soon;
	f->io.progress_ms = 1;
	cancel_calls = 0;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -ECANCELED);
	assert_msg_has(&err, "interrupted while receiving the device state");
	assert_int_equal(f->vmm.finishes, 0);
	assert_int_equal(freezes, 1);
	assert_int_equal(thaws, 1);
	vmm_done(&f->vmm);
	assert_no_image(f);
}

/*
 * Usage: device state without a freezer, or a source without finish, is
 * refused before any file is made; a sink for a RAM-only image is refused
 * before any target is. Catches RAM and device state of two instants.
 */
static void test_usage(void **state)
{
	struct fix *f = *state;
	struct mrs_devstate_source src = source_for(&f->vmm);
	struct mrs_devstate_sink sink = sink_for(&f->vmm);
	struct mrs_save_opts o = save_opts(f, &src);
	struct mrs_restore_opts ro = restore_opts(f, &sink);
	struct mrs_error err = {0};
	char longname[80];

	o.nfreezers = 0;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "device state needs a way to freeze the guest");
	o.nfreezers = 1;
	memset(longname, 'q', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	src.producer = longname;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "producer is 79 bytes long");
	src.producer = NULL;
	src.finish = NULL;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -MRS_EUSAGE);
	assert_int_equal(f->vmm.starts, 0);
	assert_no_image(f);

	if (!mrs_test_have_io_uring())
		skip();
	o = save_opts(f, NULL);
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), 0);
	assert_int_equal(mrs_restore(f->image, &f->to_target, 1, &ro, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "holds no device state to load");
	assert_int_equal(access(f->target, F_OK), -1);
}

/*
 * A sink whose VMM hangs up without reading: the restore fails (not killed
 * by SIGPIPE), the message says the RAM targets were written, and they
 * hold the RAM. Catches a send without MSG_NOSIGNAL (the test process
 * dies) and a message that leaves the user guessing what is on disk.
 */
static void test_sink_hangs_up(void **state)
{
	struct fix *f = *state;
	struct mrs_devstate_sink sink;
	struct mrs_restore_opts ro;
	struct mrs_error err = {0};
	uint8_t *a, *b;
	size_t alen, blen;

	if (!mrs_test_have_io_uring())
		skip();
	save_with_state(f, 0);
	f->vmm = (struct vmm){.fd = -1, .hang_up = true};
	sink = sink_for(&f->vmm);
	ro = restore_opts(f, &sink);
	assert_int_equal(mrs_restore(f->image, &f->to_target, 1, &ro, NULL, &err), -EPIPE);
	assert_msg_has(&err, "the VMM stopped reading the device state after");
	assert_msg_has(&err, "the RAM targets were written, the device state was not loaded");
	/* Asked why, with what it got; a VMM with nothing to say leaves the message. */
	assert_int_equal(f->vmm.finishes, 1);
	assert_true(f->vmm.finish_bytes < STATE_BYTES);
	a = read_all(f->ram, &alen);
	b = read_all(f->target, &blen);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	free(a);
	free(b);
}

/*
 * A VMM that stops reading and can say why (QEMU exited: "its reason is on
 * its standard error"): its word leads the message, then how far the
 * sending came; the code stays -EPIPE. Catches a restore that does not ask
 * the sink's finish after a hang-up, or drops what it said.
 */
static void test_sink_hangs_up_and_says_why(void **state)
{
	struct fix *f = *state;
	struct mrs_devstate_sink sink;
	struct mrs_restore_opts ro;
	struct mrs_error err = {0};

	if (!mrs_test_have_io_uring())
		skip();
	save_with_state(f, 0);
	f->vmm = (struct vmm){.fd = -1, .hang_up = true, .finish_ret = -EIO};
	sink = sink_for(&f->vmm);
	ro = restore_opts(f, &sink);
	assert_int_equal(mrs_restore(f->image, &f->to_target, 1, &ro, NULL, &err), -EPIPE);
	assert_msg_has(&err, "the fake VMM says the transfer failed (the VMM stopped reading "
			     "the device state after");
	assert_true(strstr(err.msg, "the fake VMM says") < strstr(err.msg, "stopped reading"));
	assert_msg_has(&err, "the RAM targets were written, the device state was not loaded");
	assert_int_equal(f->vmm.finishes, 1);
}

/*
 * The region changes in the image after restore checked it (here: when the
 * sink starts, after the RAM was written): the VMM never gets the whole
 * stream, the restore fails naming it, finish is not called. Catches a
 * send that trusts the check made before the RAM was loaded.
 */
static void test_region_changed_while_sent(void **state)
{
	struct fix *f = *state;
	struct mrs_devstate_sink sink;
	struct mrs_restore_opts ro;
	struct mrs_image_info *info;
	struct mrs_error err = {0};

	if (!mrs_test_have_io_uring())
		skip();
	save_with_state(f, 0);
	assert_int_equal(mrs_image_info(f->image, &info, &err), 0);
	f->vmm =
	    (struct vmm){.fd = -1, .damage = f->image, .damage_at = info->devstate.offset + 10};
	mrs_image_info_free(info);
	sink = sink_for(&f->vmm);
	ro = restore_opts(f, &sink);
	assert_int_equal(mrs_restore(f->image, &f->to_target, 1, &ro, NULL, &err), -EBADMSG);
	assert_msg_has(&err, "the device state changed in the image while it was sent");
	assert_msg_has(&err, "the RAM targets were written");
	vmm_join(&f->vmm);
	assert_int_equal(f->vmm.finishes, 0);
	assert_true(f->vmm.got_len < STATE_BYTES);
}

/*
 * Rewrite the image's DEVICE record to point at offset (same stream
 * length, checksums recomputed), so that only the layout rule can refuse it.
 */
static void move_region(const char *path, uint64_t offset)
{
	uint8_t sbuf[MRS_SB_SIZE], *stream;
	struct mrs_superblock sb;
	struct mrs_stream_info info;
	struct mrs_stream_buf out = {0};
	struct mrs_error err = {0};
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, sbuf, sizeof(sbuf), 0), (ssize_t)sizeof(sbuf));
	assert_int_equal(mrs_sb_decode(sbuf, &sb, &err), 0);
	stream = malloc(sb.stream_length);
	assert_int_equal(pread(fd, stream, sb.stream_length, (off_t)sb.stream_offset),
			 (ssize_t)sb.stream_length);
	assert_int_equal(mrs_stream_parse(stream, sb.stream_length, sb.stream_offset, &info, &err),
			 0);
	assert_true(info.has_device);
	info.device.offset = offset;
	/* The writer's order: BLOCKS, EOS, then ROUND, EOS each, DEVICE, EOS, END. */
	assert_int_equal(mrs_stream_append_blocks(&out, info.block_count, info.block_table_offset),
			 0);
	assert_int_equal(mrs_stream_append_eos(&out), 0);
	for (uint32_t r = 0; r < info.nrounds; r++) {
		assert_int_equal(mrs_stream_append_round(&out, &info.rounds[r]), 0);
		assert_int_equal(mrs_stream_append_eos(&out), 0);
	}
	assert_int_equal(mrs_stream_append_device(&out, &info.device), 0);
	assert_int_equal(mrs_stream_append_eos(&out), 0);
	assert_int_equal(mrs_stream_append_end(&out), 0);
	assert_int_equal(out.len, sb.stream_length);
	assert_int_equal(pwrite(fd, out.data, out.len, (off_t)sb.stream_offset), (ssize_t)out.len);
	mrs_stream_buf_free(&out);
	mrs_stream_info_free(&info);
	free(stream);
	close(fd);
}

/*
 * An image whose DEVICE record points into its own page region or its
 * stream is refused by every reader, naming the region. Catches a reader
 * that parses the record but never checks its region against the rest of
 * the layout (the codec test covers the check itself, this its call).
 */
static void test_region_overlap_rejected(void **state)
{
	struct fix *f = *state;
	struct mrs_image_info *info;
	struct mrs_error err = {0};
	uint64_t pages;

	if (!mrs_test_have_io_uring())
		skip();
	save_with_state(f, 0);
	assert_int_equal(mrs_image_info(f->image, &info, &err), 0);
	pages = info->blocks[0].pages_offset;
	mrs_image_info_free(info);
	move_region(f->image, pages + 4096);
	assert_int_equal(mrs_verify(f->image, NULL, NULL, &err), -EPROTO);
	assert_msg_has(&err, "device-state region at 0x");
	assert_msg_has(&err, "overlaps page region of block 0");
	assert_int_equal(mrs_image_info(f->image, &info, &err), -EPROTO);
	assert_msg_has(&err, "device-state region");
}

/*
 * The source and sink are copied in by their size, like every options
 * struct: one never initialised (size 0) is refused naming it, before any
 * file or VMM is touched. Catches an api.c that hands the caller's struct
 * to the engine as it is.
 */
static void test_structs_by_size(void **state)
{
	struct fix *f = *state;
	struct mrs_devstate_source src = source_for(&f->vmm);
	struct mrs_devstate_sink sink = sink_for(&f->vmm);
	struct mrs_save_opts o = save_opts(f, &src);
	struct mrs_restore_opts ro = restore_opts(f, &sink);
	struct mrs_error err = {0};

	src.size = 0;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -EINVAL);
	assert_msg_has(&err, "mrs_devstate_source");
	sink.size = 0;
	assert_int_equal(mrs_restore(f->image, &f->to_target, 1, &ro, NULL, &err), -EINVAL);
	assert_msg_has(&err, "mrs_devstate_sink");
	assert_int_equal(f->vmm.starts, 0);
	assert_no_image(f);
	assert_int_equal(access(f->target, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_without_sink_skips, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_source_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_source_never_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_source_sends_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sink_hangs_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sink_hangs_up_and_says_why, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_region_overlap_rejected, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_structs_by_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_region_changed_while_sent, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
