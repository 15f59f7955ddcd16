/* SPDX-License-Identifier: MIT */
/*
 * The engines under injected faults: whatever fails, save leaves no image
 * (and no temporary file), restore reports the failure, and the messages
 * name what failed. Faults come in through -Wl,--wrap= on pwrite, fsync,
 * rename, renameat2, link and io_uring_queue_init, and through
 * mrs_chan_test_hooks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liburing.h>

#include "helpers.h"
#include "channel.h"
#include "codec.h"

/* ---- the wrapped calls ---------------------------------------------------- */

/* pwrite: fail every call after the first `pwrite_ok` with `pwrite_err`; -1: never. */
static int pwrite_ok = -1, pwrite_err = ENOSPC, pwrite_calls;
static int fsync_err, rename_err;
static int fsync_dir_err; /* fsync of a directory only */

ssize_t __real_pwrite(int fd, const void *buf, size_t len, off_t off);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t len, off_t off);
int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __real_rename(const char *a, const char *b);
int __wrap_rename(const char *a, const char *b);
int __real_renameat2(int da, const char *a, int db, const char *b, unsigned flags);
int __wrap_renameat2(int da, const char *a, int db, const char *b, unsigned flags);
int __real_link(const char *a, const char *b);
int __wrap_link(const char *a, const char *b);
int __real_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags);
int __wrap_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags);

/* io_uring_queue_init (a channel being set up): fail with ring_err; run at_ring_setup first. */
static int ring_err;
static void (*at_ring_setup)(void);

/*
 * The order of the calls that make an image durable, as the wrappers see
 * them: each pwrite (and whether it is a superblock saying COMPLETE), fsync
 * and rename. record() also says which errno to inject, if any: fsync number
 * fsync_fail_at fails, and while stopped_pid is stopped every pwrite fails.
 */
enum call { CALL_PWRITE, CALL_FSYNC, CALL_RENAME };
struct event {
	enum call call;
	int fd;
	uint64_t off;
	bool complete; /* a pwrite of a superblock with MRS_SB_COMPLETE */
};
static struct event events[4096];
static int nevents, fsync_calls, fsync_fail_at = -1, stopped_pid;

static char proc_state(int pid);

/*
 * A superblock whose flags (offset 16, little-endian, mrsnap-image(5)) say
 * COMPLETE: read raw, since a crash leaves whatever was written, decodable
 * or not.
 */
static bool is_complete_superblock(const void *buf, size_t len, off_t off)
{
	return off == 0 && len == MRS_SB_SIZE && !memcmp(buf, MRS_SB_MAGIC, 8) &&
	       (mrs_get_le64((const uint8_t *)buf + 16) & MRS_SB_COMPLETE);
}

static int record(enum call call, int fd, const void *buf, size_t len, off_t off)
{
	if (nevents < (int)(sizeof(events) / sizeof(events[0])))
		events[nevents++] =
		    (struct event){call, fd, (uint64_t)off,
				   call == CALL_PWRITE && is_complete_superblock(buf, len, off)};
	if (call == CALL_FSYNC && fsync_calls++ == fsync_fail_at)
		return EIO;
	if (call == CALL_PWRITE && stopped_pid && proc_state(stopped_pid) == 'T')
		return ENOSPC;
	return 0;
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	int e = record(CALL_PWRITE, fd, buf, len, off);

	if (e) {
		errno = e;
		return -1;
	}
	if (pwrite_ok >= 0 && pwrite_calls++ >= pwrite_ok) {
		errno = pwrite_err;
		return -1;
	}
	return __real_pwrite(fd, buf, len, off);
}

int __wrap_fsync(int fd)
{
	struct stat st;
	int e = record(CALL_FSYNC, fd, NULL, 0, 0);

	if (e) {
		errno = e;
		return -1;
	}
	if (fsync_dir_err && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		errno = fsync_dir_err;
		return -1;
	}
	if (fsync_err) {
		errno = fsync_err;
		return -1;
	}
	return __real_fsync(fd);
}

int __wrap_rename(const char *a, const char *b)
{
	record(CALL_RENAME, -1, NULL, 0, 0);
	if (rename_err) {
		errno = rename_err;
		return -1;
	}
	return __real_rename(a, b);
}

int __wrap_renameat2(int da, const char *a, int db, const char *b, unsigned flags)
{
	record(CALL_RENAME, -1, NULL, 0, 0);
	if (rename_err) {
		errno = rename_err;
		return -1;
	}
	return __real_renameat2(da, a, db, b, flags);
}

int __wrap_link(const char *a, const char *b)
{
	record(CALL_RENAME, -1, NULL, 0, 0);
	if (rename_err) {
		errno = rename_err;
		return -1;
	}
	return __real_link(a, b);
}

int __wrap_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
	if (at_ring_setup) {
		void (*once)(void) = at_ring_setup;

		at_ring_setup = NULL;
		once();
	}
	if (ring_err)
		return -ring_err;
	return __real_io_uring_queue_init(entries, ring, flags);
}

/* ---- fixture ------------------------------------------------------------- */

struct fix {
	char *dir, *ram, *image, *target;
	struct mrs_ram spec;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	uint8_t *buf = malloc(1 << 20);
	int fd;

	f->dir = mrs_test_tmpdir();
	if (asprintf(&f->ram, "%s/ram", f->dir) < 0 ||
	    asprintf(&f->image, "%s/vm.img", f->dir) < 0 ||
	    asprintf(&f->target, "%s/target", f->dir) < 0)
		return -1;
	fd = open(f->ram, O_RDWR | O_CREAT, 0600);
	for (int i = 0; i < 8; i++) { /* 8 MiB, a zero MiB in the middle */
		mrs_test_fill(buf, 1 << 20, (uint64_t)i + 1);
		if (i == 3)
			memset(buf, 0, 1 << 20);
		if (__real_pwrite(fd, buf, 1 << 20, (off_t)i << 20) != 1 << 20)
			return -1;
	}
	close(fd);
	free(buf);
	f->spec = (struct mrs_ram){"pc.ram", f->ram, 0};
	pwrite_ok = -1;
	pwrite_err = ENOSPC;
	pwrite_calls = 0;
	fsync_err = rename_err = fsync_dir_err = ring_err = 0;
	at_ring_setup = NULL;
	nevents = fsync_calls = stopped_pid = 0;
	fsync_fail_at = -1;
	mrs_chan_test_hooks = NULL;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	mrs_chan_test_hooks = NULL;
	mrs_test_tmpdir_remove(f->dir);
	free(f->ram);
	free(f->image);
	free(f->target);
	free(f);
	return 0;
}

/* Nothing but the RAM file in the directory: no image, no temporary file. */
static void assert_nothing_left(const struct fix *f)
{
	struct dirent *de;
	DIR *d = opendir(f->dir);

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' || strstr(de->d_name, "mrsnap-tmp"))
			if (strcmp(de->d_name, "ram") && strcmp(de->d_name, "target"))
				fail_msg("'%s' was left behind", de->d_name);
	closedir(d);
}

static const struct mrs_io_opts io2 = {.size = sizeof(struct mrs_io_opts), .channels = 2};
static const struct mrs_io_opts io3 = {.size = sizeof(struct mrs_io_opts), .channels = 3};

static struct mrs_save_opts save_opts(void)
{
	struct mrs_save_opts o = {.size = sizeof(o), .io = &io2};
	return o;
}

static void test_save_metadata_enospc_at_every_write(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	int writes;

	/* Count the metadata writes of a good snapshot... */
	pwrite_ok = 1000000;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	writes = pwrite_calls;
	assert_true(writes >= 5); /* superblock, header, tables, stream, superblock */
	unlink(f->image);
	/* ...then fail each one in turn. */
	for (int k = 0; k < writes; k++) {
		struct mrs_error err = {0};

		pwrite_ok = k;
		pwrite_calls = 0;
		assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -ENOSPC);
		assert_msg_has(&err, "No space left on device");
		assert_msg_has(&err, "cannot write");
		assert_nothing_left(f);
	}
}

static void test_save_fsync_fails(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_error err = {0};

	fsync_err = EIO;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -EIO);
	assert_msg_has(&err, "cannot sync");
	assert_nothing_left(f);
	/* --no-fsync never calls it. */
	o.no_fsync = 1;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), 0);
}

static void test_save_rename_fails(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_error err = {0};

	rename_err = ENOSPC;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -ENOSPC);
	assert_msg_has(&err, "cannot rename");
	assert_nothing_left(f);
	o.force = 1; /* the other rename call */
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -ENOSPC);
	assert_nothing_left(f);
}

/* A file of len bytes that depend on seed. */
static void write_file(const char *path, size_t len, uint64_t seed)
{
	uint8_t *buf = malloc(len);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_non_null(buf);
	assert_true(fd >= 0);
	mrs_test_fill(buf, len, seed);
	assert_int_equal(__real_pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
	free(buf);
}

/* The whole of a file, in memory. */
static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, *len, 0), (ssize_t)*len);
	close(fd);
	return buf;
}

static void assert_same_file(const char *a, const char *b)
{
	size_t la, lb;
	uint8_t *x = read_file(a, &la), *y = read_file(b, &lb);

	if (la != lb || memcmp(x, y, la))
		fail_msg("'%s' and '%s' differ", a, b);
	free(x);
	free(y);
}

/*
 * The complete flag is the image's last metadata write, after an fsync that
 * follows every other write, and is made durable by an fsync before the
 * rename. A build that wrote COMPLETE in the first superblock passed every
 * other test: this one then fails on "2 superblocks say COMPLETE" (seen, by
 * setting the flag in plan_image); with the fsync before the flag dropped,
 * on "no fsync between the last other write and COMPLETE" (seen); with the
 * fsync after it dropped, on "no fsync after COMPLETE" (seen).
 */
static void assert_complete_last_and_synced(const char *what)
{
	int at = -1, ncomplete = 0, fd, last_other = -1, sync_before = -1, sync_after = -1;
	int renamed = -1;

	for (int i = 0; i < nevents; i++)
		if (events[i].complete) {
			at = i;
			ncomplete++;
		}
	if (ncomplete != 1)
		fail_msg("%s: %d superblocks say COMPLETE, not 1", what, ncomplete);
	fd = events[at].fd;
	for (int i = 0; i < nevents; i++) {
		if (events[i].fd != fd && events[i].call != CALL_RENAME)
			continue;
		if (events[i].call == CALL_PWRITE && i != at)
			last_other = i;
		if (events[i].call == CALL_FSYNC && i < at)
			sync_before = i;
		if (events[i].call == CALL_FSYNC && i > at && sync_after < 0)
			sync_after = i;
		if (events[i].call == CALL_RENAME && renamed < 0)
			renamed = i;
	}
	if (last_other > at)
		fail_msg("%s: a metadata write (call %d, offset %llu) follows COMPLETE (call %d)",
			 what, last_other, (unsigned long long)events[last_other].off, at);
	if (sync_before < last_other)
		fail_msg("%s: no fsync between the last other write (call %d) and COMPLETE "
			 "(call %d)",
			 what, last_other, at);
	if (sync_after < 0)
		fail_msg("%s: no fsync after COMPLETE (call %d)", what, at);
	if (renamed < sync_after)
		fail_msg("%s: the rename (call %d) comes before the fsync after COMPLETE (call %d)",
			 what, renamed, sync_after);
	/*
	 * The first superblock comes after the block headers (offset 4096 on):
	 * a superblock written first pointed, until the headers followed, at
	 * headers info could not read while verify called the image merely
	 * incomplete (a faults.sh kill found it; with the superblock written
	 * first again this fails).
	 */
	for (int i = 0; i < nevents; i++) {
		if (events[i].fd != fd || events[i].call != CALL_PWRITE)
			continue;
		if (events[i].off == 0)
			fail_msg(
			    "%s: the first metadata write is the superblock, before the headers",
			    what);
		break;
	}
}

static int freeze_nothing(void *ctx, struct mrs_error *err)
{
	(void)ctx;
	(void)err;
	return 0;
}

/* A freezer that freezes nothing: the engines' freezing paths without a guest. */
static const struct mrs_freezer_ops nothing = {sizeof(nothing), freeze_nothing, freeze_nothing,
					       NULL};

static void test_save_complete_is_last_and_synced(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_freezer *fz;

	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	assert_complete_last_and_synced("non-live");
	unlink(f->image);
	assert_int_equal(mrs_freezer_new(&fz, &nothing, NULL, NULL), 0);
	o.live = 1;
	o.freezers = &fz;
	o.nfreezers = 1;
	nevents = 0;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	assert_complete_last_and_synced("live");
	mrs_freezer_free(fz);
}

/* Whether any file in the directory says it is a complete image. */
static void assert_nothing_complete(const struct fix *f)
{
	struct dirent *de;
	DIR *d = opendir(f->dir);

	assert_non_null(d);
	while ((de = readdir(d))) {
		uint8_t buf[MRS_SB_SIZE];
		char path[4096];
		int fd;

		snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		if (pread(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) &&
		    is_complete_superblock(buf, sizeof(buf), 0))
			fail_msg("'%s' says it is a complete image", de->d_name);
		close(fd);
	}
	closedir(d);
}

/* Each fsync of a snapshot failing in turn: an error, and no image anywhere. */
static void test_save_fsync_fails_at_every_call(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	int syncs;

	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	syncs = fsync_calls;
	assert_true(syncs >= 3); /* before COMPLETE, after it, the directory */
	unlink(f->image);
	for (int k = 0; k < syncs; k++) {
		struct mrs_error err = {0};
		int ret;

		fsync_calls = 0;
		fsync_fail_at = k;
		ret = mrs_save(f->image, &f->spec, 1, &o, NULL, &err);
		if (k < syncs - 1) { /* the last is the directory's, after the rename */
			assert_int_equal(ret, -EIO);
			assert_msg_has(&err, "sync");
			assert_nothing_left(f);
			assert_nothing_complete(f);
		}
		unlink(f->image);
	}
}

/* ---- freezing: a real process stopped with SIGSTOP ---------------------- */

static char proc_state(int pid)
{
	char path[64], buf[512], *paren;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	paren = strrchr(buf, ')');
	return paren ? paren[2] : 0;
}

/* A stand-in guest that only sleeps; its state letter tells frozen or not. */
static int start_child(void)
{
	int pid = fork();

	if (pid == 0)
		for (;;)
			pause();
	assert_true(pid > 0);
	return pid;
}

static void stop_child(int pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/*
 * A final live round that fails (its stream record cannot be written while
 * the guest is stopped) still thaws the guest. A build that skipped the thaw
 * there passed every other test; this one then fails with the child still
 * in state T (seen, by dropping the thaw in mrs_save's failure path).
 */
static void test_live_final_round_fails_thaws(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_freezer *fz;
	struct mrs_error err = {0};
	int child = start_child();

	assert_int_equal(mrs_freezer_new_pids(&fz, &child, 1, &err), 0);
	o.live = 1;
	o.freezers = &fz;
	o.nfreezers = 1;
	stopped_pid = child;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -ENOSPC);
	stopped_pid = 0;
	assert_msg_has(&err, "No space left on device");
	if (proc_state(child) == 'T')
		fail_msg("the guest is still stopped after the final round failed");
	assert_nothing_left(f);
	mrs_freezer_free(fz);
	stop_child(child);
}

/*
 * leave_frozen: the guest stays stopped after a good snapshot, and is
 * thawed when the snapshot fails after its final round (here: fsync).
 * Without the thaw on that failure path it fails with "leave_frozen: the
 * guest is still stopped after a failed snapshot" (seen).
 */
static void test_leave_frozen(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_freezer *fz;
	struct mrs_error err = {0};
	int child = start_child();

	assert_int_equal(mrs_freezer_new_pids(&fz, &child, 1, &err), 0);
	o.live = 1;
	o.leave_frozen = 1;
	o.freezers = &fz;
	o.nfreezers = 1;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), 0);
	assert_int_equal(proc_state(child), 'T');
	assert_int_equal(mrs_freezer_thaw(fz, &err), 0);
	for (int i = 0; i < 1000 && proc_state(child) == 'T'; i++)
		usleep(1000);
	assert_int_not_equal(proc_state(child), 'T');
	unlink(f->image);
	fsync_err = EIO;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -EIO);
	if (proc_state(child) == 'T')
		fail_msg("leave_frozen: the guest is still stopped after a failed snapshot");
	assert_nothing_left(f);
	/* Without a freezer it is a mistake. */
	o.nfreezers = 0;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -MRS_EUSAGE);
	mrs_freezer_free(fz);
	stop_child(child);
}

static int thaw_fails(void *ctx, struct mrs_error *err)
{
	(void)ctx;
	err->code = -ECHILD;
	snprintf(err->msg, sizeof(err->msg), "the test's thaw fails");
	return -ECHILD;
}

/*
 * A thaw that fails after the final round keeps the image, which is
 * complete: it is in place and verifies, the report is filled, and the
 * thaw's error says both facts. Before, the image was discarded (seen).
 */
static void test_failed_thaw_keeps_image(void **state)
{
	static const struct mrs_freezer_ops ops = {sizeof(ops), freeze_nothing, thaw_fails, NULL};
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_save_report report = MRS_SAVE_REPORT_INIT;
	struct mrs_freezer *fz;
	struct mrs_error err = {0};

	assert_int_equal(mrs_freezer_new(&fz, &ops, NULL, NULL), 0);
	o.freezers = &fz;
	o.nfreezers = 1;
	for (int live = 0; live < 2; live++) {
		o.live = live;
		report = (struct mrs_save_report)MRS_SAVE_REPORT_INIT;
		assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, &report, &err), -ECHILD);
		assert_msg_has(&err, "is complete, but the guest may still be frozen");
		assert_msg_has(&err, "cannot thaw the guest: the test's thaw fails");
		assert_int_equal(mrs_verify(f->image, NULL, NULL, NULL), 0);
		assert_true(report.nrounds >= 1 && report.pages_present > 0);
		mrs_save_report_free(&report);
		unlink(f->image);
	}
	/* After another failure, that failure's code is returned, err or not. */
	rename_err = ENOSPC;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -ENOSPC);
	assert_msg_has(&err, "cannot rename");
	assert_msg_has(&err, "; and the guest may still be frozen: cannot thaw the guest");
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), -ENOSPC);
	assert_nothing_left(f);
	mrs_freezer_free(fz);
}

/* EIO on the nth image read of channel 0. */
static atomic_int reads_seen;
static int eio_on_read(void *ctx, unsigned channel, const struct mrs_io *io, int res)
{
	if (channel == 0 && !io->write && atomic_fetch_add(&reads_seen, 1) == 2)
		return -EIO;
	return res;
}

static void test_restore_eio(void **state)
{
	static const struct mrs_chan_hooks hooks = {.on_complete = eio_on_read};
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_restore_opts ro = {.size = sizeof(ro), .io = &io2};
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_error err = {0};

	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	mrs_chan_test_hooks = &hooks;
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), -EIO);
	assert_msg_has(&err, "channel 0: read of image '");
	assert_msg_has(&err, f->image);
	assert_msg_has(&err, "(block 'pc.ram', page 0x");
	assert_msg_has(&err, "Input/output error");
	/* The target it created is gone again (a build that left it failed here). */
	assert_int_equal(access(f->target, F_OK), -1);
	/* One that existed stays, and the message says it was written to. */
	write_file(f->target, 1 << 20, 99);
	reads_seen = 0;
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), -EIO);
	assert_msg_has(&err, "target '");
	assert_msg_has(&err, "' was partly written");
	assert_int_equal(access(f->target, F_OK), 0);
	/* The image itself is untouched: it verifies. */
	mrs_chan_test_hooks = NULL;
	assert_int_equal(mrs_verify(f->image, NULL, NULL, &err), 0);
}

/* ENOSPC on the nth write to a restore target. */
static atomic_int target_writes;
static int enospc_on_target(void *ctx, unsigned channel, const struct mrs_io *io, int res)
{
	if (io->target && atomic_fetch_add(&target_writes, 1) == 1)
		return -ENOSPC;
	return res;
}

/* The message names the target (the guest's RAM file), not the image. */
static void test_restore_target_write_error_names_it(void **state)
{
	static const struct mrs_chan_hooks hooks = {.on_complete = enospc_on_target};
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_restore_opts ro = {.size = sizeof(ro), .io = &io2};
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_error err = {0};
	char want[4200];

	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	mrs_chan_test_hooks = &hooks;
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), -ENOSPC);
	snprintf(want, sizeof(want), "write to RAM file '%s' at offset 0x", f->target);
	assert_msg_has(&err, want);
	assert_msg_has(&err, "(block 'pc.ram'): No space left on device");
}

/*
 * How often each engine syncs its channels, counted by the channel set the
 * engine itself opened (issue #10: the old count in test_channel included
 * the test's own call and could not fail). Restore and verify sync once, at
 * the end; save once per round (DESIGN.md, "Channels, and when they sync").
 * Seen failing with an extra sync after restore's pass, and with save's
 * rounds run without their sync.
 */
static void count_sync(void *ctx)
{
	atomic_fetch_add((atomic_int *)ctx, 1);
}

static void test_engines_sync_once_per_pass(void **state)
{
	static atomic_int syncs;
	static const struct mrs_chan_hooks hooks = {.on_sync = count_sync, .ctx = &syncs};
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_restore_opts ro = {.size = sizeof(ro), .io = &io3};
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_save_report report = MRS_SAVE_REPORT_INIT;
	struct mrs_freezer *fr;
	struct mrs_error err = {0};

	mrs_chan_test_hooks = &hooks;
	atomic_store(&syncs, 0);
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, &report, NULL), 0);
	assert_int_equal(report.nrounds, 1);
	assert_int_equal(atomic_load(&syncs), 1);
	mrs_save_report_free(&report);

	atomic_store(&syncs, 0);
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), 0);
	assert_int_equal(atomic_load(&syncs), 1);

	atomic_store(&syncs, 0);
	assert_int_equal(
	    mrs_verify(f->image, &(struct mrs_verify_opts){sizeof(struct mrs_verify_opts), ro.io},
		       NULL, &err),
	    0);
	assert_int_equal(atomic_load(&syncs), 1);

	/* Live: one sync per round, the final frozen one included. */
	assert_int_equal(mrs_freezer_new(&fr, &nothing, NULL, &err), 0);
	o.live = 1;
	o.max_rounds = 4;
	o.freezers = &fr;
	o.nfreezers = 1;
	o.force = 1;
	atomic_store(&syncs, 0);
	if (mrs_save(f->image, &f->spec, 1, &o, &report, &err))
		fail_msg("%s", err.msg);
	assert_true(report.nrounds >= 2);
	assert_int_equal(atomic_load(&syncs), report.nrounds);
	mrs_save_report_free(&report);
	mrs_freezer_free(fr);
}

static void test_restore_target_cannot_be_created(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_ram t = {"pc.ram", "/nonexistent/dir/target", 0};
	struct mrs_error err = {0};

	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	assert_int_equal(mrs_restore(f->image, &t, 1, NULL, NULL, &err), -ENOENT);
	assert_msg_has(&err, "cannot open target '/nonexistent/dir/target'");
}

/*
 * Item 14: the directory sync comes after the rename, so when it fails the
 * new image is complete and in place (and with force the old one is gone).
 * The error must say so and the report mark it, not read as "no image". The
 * old code returned "cannot sync directory" as if nothing had been written.
 */
static void test_save_dir_sync_fails_after_rename(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_save_report report = MRS_SAVE_REPORT_INIT;
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_error err = {0};
	uint8_t *want = malloc(1 << 20), *got = malloc(1 << 20);
	int fd;

	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	/* New content for the replacement, so the image in place can be told apart. */
	mrs_test_fill(want, 1 << 20, 99);
	fd = open(f->ram, O_WRONLY);
	assert_int_equal(__real_pwrite(fd, want, 1 << 20, 0), 1 << 20);
	close(fd);
	o.force = 1;
	fsync_dir_err = EIO;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, &report, &err), -EIO);
	assert_msg_has(&err, "is complete and in place, but its directory");
	assert_msg_has(&err, "could not be synced: Input/output error");
	assert_msg_has(&err, "it may not survive a crash");
	assert_msg_has(&err, f->image);
	assert_int_equal(report.not_durable, 1);
	assert_int_equal(report.nrounds, 1);
	mrs_save_report_free(&report);
	fsync_dir_err = 0;
	/* The image at the path is the new one, complete: it verifies and restores. */
	assert_int_equal(mrs_verify(f->image, NULL, NULL, &err), 0);
	assert_int_equal(mrs_restore(f->image, &t, 1, NULL, NULL, &err), 0);
	fd = open(f->target, O_RDONLY);
	assert_int_equal(pread(fd, got, 1 << 20, 0), 1 << 20);
	close(fd);
	assert_memory_equal(got, want, 1 << 20);
	assert_int_equal(unlink(f->image), 0);
	assert_nothing_left(f); /* and no temporary file */
	free(want);
	free(got);
}

/*
 * Item 17: an empty path or one ending in '/' cannot be renamed to, so it is
 * refused before any page is written (the old code wrote a whole image into
 * ". .mrsnap-tmp.*" and then failed at the rename).
 */
static void test_save_refuses_unusable_path(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_error err = {0};
	char *slash;

	assert_int_equal(asprintf(&slash, "%s/new/", f->dir) > 0, 1);
	pwrite_ok = 0; /* any write at all fails, with a message the checks below reject */
	pwrite_err = EROFS;
	assert_int_equal(mrs_save("", &f->spec, 1, &o, NULL, &err), -EINVAL);
	assert_msg_has(&err, "the image path is empty");
	assert_int_equal(mrs_save(slash, &f->spec, 1, &o, NULL, &err), -EISDIR);
	assert_msg_has(&err, "names a directory, not an image file");
	assert_int_equal(pwrite_calls, 0);
	assert_nothing_left(f);
	free(slash);
}

/*
 * Restore must fail when making a target durable fails: a build without the
 * final flush of the targets, or one that ignored its error, passed every
 * other test. The image is only read, so every fsync here is a target's.
 */
static void test_restore_flush_fails(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_restore_opts ro = {.size = sizeof(ro), .io = &io2};
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_error err = {0};

	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	fsync_err = EIO;
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), -EIO);
	assert_msg_has(&err, "cannot flush target '");
	assert_msg_has(&err, "Input/output error");
	/* What it created is removed, flushed or not. */
	assert_int_equal(access(f->target, F_OK), -1);
	fsync_err = 0;
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), 0);
	assert_same_file(f->ram, f->target);
}

/*
 * A channel that cannot be set up (here: no io_uring) fails the restore
 * before any target is touched. The old engine cut and zeroed the targets
 * first and opened the channels after, so this left a target of zeros.
 */
static void test_restore_channel_setup_fails_before_targets(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_restore_opts ro = {.size = sizeof(ro), .io = &io2};
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_error err = {0};
	char *before, *missing;

	assert_true(asprintf(&before, "%s/target.before", f->dir) > 0);
	assert_true(asprintf(&missing, "%s/missing", f->dir) > 0);
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	write_file(f->target, 3 << 20, 42);
	write_file(before, 3 << 20, 42);
	ring_err = ENOSYS;
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), -ENOSYS);
	assert_msg_has(&err, "io_uring is not available");
	assert_same_file(before, f->target);
	/* Nor is a missing target created. */
	t.path = missing;
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), -ENOSYS);
	assert_int_equal(access(missing, F_OK), -1);
	unlink(before);
	free(before);
	free(missing);
}

/* Put another image where the one being restored was (a concurrent snapshot --force). */
static char *swap_from, *swap_to;
static void swap_image(void)
{
	assert_int_equal(__real_rename(swap_from, swap_to), 0);
}

/*
 * The channels read the image that was validated, not what its name points
 * to by the time they start: channels that reopened the image by name
 * loaded the replacement's pages under the first image's metadata.
 */
static void test_restore_reads_the_validated_image(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_restore_opts ro = {.size = sizeof(ro), .io = &io2};
	struct mrs_ram big, other;
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_error err = {0};
	char *big_ram, *other_ram, *other_img;

	/* 24 MiB: three jobs, so the second channel loads pages too. */
	assert_true(asprintf(&big_ram, "%s/big.ram", f->dir) > 0);
	assert_true(asprintf(&other_ram, "%s/other.ram", f->dir) > 0);
	assert_true(asprintf(&other_img, "%s/other.img", f->dir) > 0);
	write_file(big_ram, 24 << 20, 5);
	write_file(other_ram, 24 << 20, 6);
	big = (struct mrs_ram){"pc.ram", big_ram, 0};
	other = (struct mrs_ram){"pc.ram", other_ram, 0};
	assert_int_equal(mrs_save(f->image, &big, 1, &o, NULL, NULL), 0);
	assert_int_equal(mrs_save(other_img, &other, 1, &o, NULL, NULL), 0);
	swap_from = other_img;
	swap_to = f->image;
	at_ring_setup = swap_image;
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), 0);
	assert_null(at_ring_setup); /* the swap did happen, during channel setup */
	assert_same_file(big_ram, f->target);
	unlink(big_ram);
	unlink(other_ram);
	free(big_ram);
	free(other_ram);
	free(other_img);
}

/*
 * A mistake in what the engines are asked is -MRS_EUSAGE, which the command
 * maps to exit 2, whichever engine finds it; restore's were -ENOENT and
 * -EINVAL (exit 3), and did not say which names the image has.
 */
/*
 * Requests bridge short gaps of zero pages (MRS_BRIDGE_BYTES), and the
 * image must still say those pages are absent: through the engines, on 1,
 * 2, 3 and 8 channels, a RAM file with zero pages one by one and in runs
 * of 32 is saved; the image's bitmap counts exactly its non-zero pages (and
 * the loader, which checks that an absent page has checksum 0, accepts it:
 * verify passes), and a restore over a target full of other bytes gives
 * back the RAM exactly, zero pages included. Seen failing with
 * save_page_read() marking zero pages present (the count). That absent
 * pages are never stored, whatever the image holds for them, is
 * test_channel's test_bridged_gaps_never_present.
 */
static void test_bridged_zero_pages_stay_absent(void **state)
{
	static const unsigned counts[] = {1, 2, 3, 8};
	struct fix *f = *state;
	uint8_t *buf = malloc(4 << 20);
	uint64_t nonzero = 0;
	int fd;

	mrs_test_fill(buf, 4 << 20, 5);
	for (uint64_t i = 0; i < 1024; i++) {
		bool zero = i < 512 ? i % 3 == 0 : (i - 512) % 64 < 32;

		if (zero)
			memset(buf + i * 4096, 0, 4096);
		nonzero += !zero;
	}
	fd = open(f->ram, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(__real_pwrite(fd, buf, 4 << 20, 0), 4 << 20);
	close(fd);
	free(buf);
	for (unsigned c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct mrs_io_opts io = {.size = sizeof(io), .channels = counts[c]};
		struct mrs_save_opts o = {.size = sizeof(o), .io = &io};
		struct mrs_restore_opts ro = {.size = sizeof(ro), .io = &io, .verify = 1};
		struct mrs_ram t = {"pc.ram", f->target, 0};
		struct mrs_image_info *info;
		struct mrs_error err = {0};

		unlink(f->image);
		if (mrs_save(f->image, &f->spec, 1, &o, NULL, &err))
			fail_msg("%s", err.msg);
		assert_int_equal(mrs_image_info(f->image, &info, &err), 0);
		assert_int_equal(info->blocks[0].pages_present, nonzero);
		mrs_image_info_free(info);
		if (mrs_verify(f->image, NULL, NULL, &err))
			fail_msg("%s", err.msg);
		write_file(f->target, 4 << 20, 1000 + c);
		if (mrs_restore(f->image, &t, 1, &ro, NULL, &err))
			fail_msg("%s", err.msg);
		assert_same_file(f->ram, f->target);
	}
}

static void test_usage_mistakes(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_ram twice[2] = {f->spec, f->spec};
	struct mrs_ram t[2] = {{"pc.ram", f->target, 0}, {"pc.ram", f->target, 0}};
	struct mrs_error err = {0};

	assert_int_equal(mrs_save(f->image, twice, 2, &o, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "block name 'pc.ram' is given twice");
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	assert_int_equal(mrs_restore(f->image, t, 2, NULL, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "block 'pc.ram' is given twice");
	t[0].name = "vga";
	assert_int_equal(mrs_restore(f->image, t, 1, NULL, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "the image has no block named 'vga' (it has: pc.ram)");
	assert_int_equal(access(f->target, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_save_metadata_enospc_at_every_write, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_save_fsync_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_rename_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_complete_is_last_and_synced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_fsync_fails_at_every_call, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_live_final_round_fails_thaws, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leave_frozen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_thaw_keeps_image, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_eio, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_target_write_error_names_it, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_engines_sync_once_per_pass, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_target_cannot_be_created, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_refuses_unusable_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_dir_sync_fails_after_rename, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_flush_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_channel_setup_fails_before_targets, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_restore_reads_the_validated_image, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_usage_mistakes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bridged_zero_pages_stay_absent, setup, teardown),
	};
	if (!mrs_test_have_io_uring())
		return TEST_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
