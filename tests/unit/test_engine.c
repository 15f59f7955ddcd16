/* SPDX-License-Identifier: MIT */
/*
 * The engines under injected faults: whatever fails, save leaves no image
 * (and no temporary file), restore reports the failure, and the messages
 * name what failed. Faults come in through -Wl,--wrap= on pwrite, fsync,
 * rename, renameat2 and link, and through mrs_chan_test_hooks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "channel.h"

/* ---- the wrapped calls ---------------------------------------------------- */

/* pwrite: fail every call after the first `pwrite_ok` with `pwrite_err`; -1: never. */
static int pwrite_ok = -1, pwrite_err = ENOSPC, pwrite_calls;
static int fsync_err, rename_err;

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

ssize_t __wrap_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (pwrite_ok >= 0 && pwrite_calls++ >= pwrite_ok) {
		errno = pwrite_err;
		return -1;
	}
	return __real_pwrite(fd, buf, len, off);
}

int __wrap_fsync(int fd)
{
	if (fsync_err) {
		errno = fsync_err;
		return -1;
	}
	return __real_fsync(fd);
}

int __wrap_rename(const char *a, const char *b)
{
	if (rename_err) {
		errno = rename_err;
		return -1;
	}
	return __real_rename(a, b);
}

int __wrap_renameat2(int da, const char *a, int db, const char *b, unsigned flags)
{
	if (rename_err) {
		errno = rename_err;
		return -1;
	}
	return __real_renameat2(da, a, db, b, flags);
}

int __wrap_link(const char *a, const char *b)
{
	if (rename_err) {
		errno = rename_err;
		return -1;
	}
	return __real_link(a, b);
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
	pwrite_calls = 0;
	fsync_err = rename_err = 0;
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

static struct mrs_save_opts save_opts(void)
{
	struct mrs_save_opts o = {.io = {.channels = 2}};
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
	struct mrs_restore_opts ro = {.io = {.channels = 2}};
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_error err = {0};

	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, NULL), 0);
	mrs_chan_test_hooks = &hooks;
	assert_int_equal(mrs_restore(f->image, &t, 1, &ro, NULL, &err), -EIO);
	assert_msg_has(&err, "channel 0: read of image '");
	assert_msg_has(&err, f->image);
	assert_msg_has(&err, "(block 'pc.ram', page 0x");
	assert_msg_has(&err, "Input/output error");
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
	struct mrs_restore_opts ro = {.io = {.channels = 2}};
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

static int no_op_freeze(void *ctx, struct mrs_error *err)
{
	return 0;
}

static void test_engines_sync_once_per_pass(void **state)
{
	static atomic_int syncs;
	static const struct mrs_chan_hooks hooks = {.on_sync = count_sync, .ctx = &syncs};
	static const struct mrs_freezer_ops ops = {
	    .name = "test", .freeze = no_op_freeze, .thaw = no_op_freeze};
	struct fix *f = *state;
	struct mrs_save_opts o = save_opts();
	struct mrs_restore_opts ro = {.io = {.channels = 3}};
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_save_report report;
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
	assert_int_equal(mrs_verify(f->image, &ro.io, NULL, &err), 0);
	assert_int_equal(atomic_load(&syncs), 1);

	/* Live: one sync per round, the final frozen one included. */
	assert_int_equal(mrs_freezer_new(&fr, &ops, NULL, &err), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_save_metadata_enospc_at_every_write, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_save_fsync_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_rename_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_eio, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_target_write_error_names_it, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_engines_sync_once_per_pass, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_target_cannot_be_created, setup, teardown),
	};
	if (!mrs_test_have_io_uring())
		return TEST_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
