/* SPDX-License-Identifier: MIT */
/*
 * The public API as a client sees it: built with include/ only on its
 * include path and linked against the installed library (src/libmrsnap.la,
 * its exported symbols only), so a function missing from src/libmrsnap.sym
 * fails the link. Above all: options and reports grow by their size field
 * (include/mrsnap.h, "Structs that grow").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

#define RAM_BYTES (4u << 20)
#define PAGES	  (RAM_BYTES / 4096)

struct fix {
	char *dir, *ram, *image, *target;
	struct mrs_ram spec;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	uint8_t *buf = malloc(RAM_BYTES);
	int fd;

	f->dir = mrs_test_tmpdir();
	if (asprintf(&f->ram, "%s/ram", f->dir) < 0 ||
	    asprintf(&f->image, "%s/vm.img", f->dir) < 0 ||
	    asprintf(&f->target, "%s/target", f->dir) < 0)
		return -1;
	mrs_test_fill(buf, RAM_BYTES, 7);
	fd = open(f->ram, O_RDWR | O_CREAT, 0600);
	if (fd < 0 || write(fd, buf, RAM_BYTES) != (ssize_t)RAM_BYTES) {
		free(buf);
		return -1;
	}
	close(fd);
	free(buf);
	f->spec = (struct mrs_ram){"pc.ram", f->ram, 0};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	mrs_test_tmpdir_remove(f->dir);
	free(f->ram);
	free(f->image);
	free(f->target);
	free(f);
	return 0;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/*
 * What a caller built against an older header passes: the first fields of
 * today's structs, and no more. Their layout must be a prefix of today's,
 * without tail padding (a new field never goes where an old struct had
 * padding: mrsnap.h).
 */
struct old_io_opts {
	size_t size;
	unsigned channels;
	unsigned depth;
};
struct old_save_opts {
	size_t size;
	const struct mrs_io_opts *io;
	int force;
	int no_fsync;
};
struct old_save_report {
	size_t size;
	unsigned channels;
	uint64_t pages_total;
	uint64_t pages_present;
};
struct old_restore_report {
	size_t size;
	unsigned channels;
	uint32_t nblocks; /* but not the targets it points to */
};
_Static_assert(offsetof(struct old_io_opts, channels) == offsetof(struct mrs_io_opts, channels),
	       "old_io_opts is a prefix");
_Static_assert(offsetof(struct old_save_opts, no_fsync) == offsetof(struct mrs_save_opts, no_fsync),
	       "old_save_opts is a prefix");
_Static_assert(sizeof(struct old_io_opts) == offsetof(struct mrs_io_opts, depth) + sizeof(unsigned),
	       "old_io_opts has no tail padding");
_Static_assert(sizeof(struct old_save_opts) ==
		   offsetof(struct mrs_save_opts, no_fsync) + sizeof(int),
	       "old_save_opts has no tail padding");
_Static_assert(offsetof(struct old_save_report, pages_present) ==
		   offsetof(struct mrs_save_report, pages_present),
	       "old_save_report is a prefix");
_Static_assert(offsetof(struct old_restore_report, nblocks) ==
		   offsetof(struct mrs_restore_report, nblocks),
	       "old_restore_report is a prefix");

#define GARBAGE 0xa5
#define CANARY	0x5a

/* Memory for a struct of size bytes followed by more bytes of fill. */
static void *buffer(size_t size, size_t more, int fill)
{
	unsigned char *p = malloc(size + more);

	memset(p, fill, size + more);
	return p;
}

static int all_bytes(const void *p, size_t n, int v)
{
	for (size_t i = 0; i < n; i++)
		if (((const unsigned char *)p)[i] != v)
			return 0;
	return 1;
}

/*
 * Old, smaller options: the library reads only size bytes. The garbage
 * after them would, if read, ask for a live snapshot (no freezer: refused),
 * a queue depth out of range and an invalid progress callback.
 * Catches a library that copies sizeof(its struct) from the caller (seen:
 * "a live snapshot takes at most 100000 rounds, not 2779096485").
 */
static void test_old_smaller_options_work(void **state)
{
	struct fix *f = *state;
	size_t more = sizeof(struct mrs_save_opts) + sizeof(struct mrs_io_opts);
	struct old_io_opts *io = buffer(sizeof(*io), more, GARBAGE);
	struct old_save_opts *o = buffer(sizeof(*o), more, GARBAGE);
	struct mrs_error err = {0};

	*io = (struct old_io_opts){sizeof(*io), 2, 8};
	*o = (struct old_save_opts){sizeof(*o), (const struct mrs_io_opts *)io, 0, 1};
	if (mrs_save(f->image, &f->spec, 1, (const struct mrs_save_opts *)o, NULL, &err))
		fail_msg("an old, smaller mrs_save_opts was refused: %s", err.msg);
	assert_int_equal(mrs_verify(f->image, NULL, NULL, &err), 0);
	/* Its force field is read, though: it is within its size. */
	assert_int_equal(
	    mrs_save(f->image, &f->spec, 1, (const struct mrs_save_opts *)o, NULL, &err), -EEXIST);
	o->force = 1;
	assert_int_equal(
	    mrs_save(f->image, &f->spec, 1, (const struct mrs_save_opts *)o, NULL, &err), 0);
	free(io);
	free(o);
}

/*
 * Old, smaller reports: the library fills what they have and writes
 * nothing past their size (the canary stays); what the fields they lack
 * would point to is the library's to free, and _free() reads nothing past
 * their size either (the canary would be freed as a pointer).
 * Catches a report copied out in full (canary overwritten, seen) and a
 * _free() that reads the caller's report as a full one (seen: SIGSEGV);
 * under scripts/check --sanitize also memory handed to a report too small
 * to hold its pointer (seen: LeakSanitizer, 8199 bytes in 5 allocations).
 */
static void test_old_smaller_reports_work(void **state)
{
	struct fix *f = *state;
	size_t more = sizeof(struct mrs_restore_report) + sizeof(struct mrs_save_report);
	struct old_save_report *sr = buffer(sizeof(*sr), more, CANARY);
	struct old_restore_report *rr = buffer(sizeof(*rr), more, CANARY);
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_error err = {0};

	sr->size = sizeof(*sr);
	assert_int_equal(mrs_save(f->image, &f->spec, 1, NULL, (struct mrs_save_report *)sr, &err),
			 0);
	assert_true(sr->channels >= 1);
	assert_int_equal(sr->pages_total, PAGES);
	assert_int_equal(sr->pages_present, PAGES);
	assert_true(all_bytes(sr + 1, more, CANARY));
	mrs_save_report_free((struct mrs_save_report *)sr);
	assert_true(all_bytes(sr + 1, more, CANARY));

	rr->size = sizeof(*rr);
	assert_int_equal(mrs_restore(f->image, &t, 1, NULL, (struct mrs_restore_report *)rr, &err),
			 0);
	assert_int_equal(rr->nblocks, 1);
	assert_true(all_bytes(rr + 1, more, CANARY));
	mrs_restore_report_free((struct mrs_restore_report *)rr);
	assert_true(all_bytes(rr + 1, more, CANARY));
	free(sr);
	free(rr);
}

/*
 * A struct from a newer header, bigger than the library's: fine while the
 * fields this library does not know are zero, refused (-EINVAL, nothing
 * done) as soon as one is set, for every options struct.
 * Catches a library that ignores the bytes it does not know (seen).
 */
static void test_bigger_options_need_a_zero_tail(void **state)
{
	struct fix *f = *state;
	const size_t more = 16;
	struct mrs_save_opts *so = buffer(sizeof(*so), more, 0);
	struct mrs_restore_opts *ro = buffer(sizeof(*ro), more, 0);
	struct mrs_verify_opts *vo = buffer(sizeof(*vo), more, 0);
	struct mrs_io_opts *io = buffer(sizeof(*io), more, 0);
	struct mrs_ram t = {"pc.ram", f->target, 0};
	struct mrs_error err = {0};

	so->size = sizeof(*so) + more;
	ro->size = sizeof(*ro) + more;
	vo->size = sizeof(*vo) + more;
	io->size = sizeof(*io) + more;
	so->io = ro->io = vo->io = io;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, so, NULL, &err), 0);
	assert_int_equal(mrs_restore(f->image, &t, 1, ro, NULL, &err), 0);
	assert_int_equal(mrs_verify(f->image, vo, NULL, &err), 0);

	/* One byte set in each tail in turn: the call is refused, and says which struct. */
	struct {
		unsigned char *tail;
		const char *name;
	} tails[] = {
	    {(unsigned char *)(so + 1) + more - 1, "mrs_save_opts"},
	    {(unsigned char *)(ro + 1), "mrs_restore_opts"},
	    {(unsigned char *)(vo + 1) + 3, "mrs_verify_opts"},
	    {(unsigned char *)(io + 1), "mrs_io_opts"},
	};
	so->force = 1;
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		*tails[i].tail = 1;
		memset(&err, 0, sizeof(err));
		assert_int_equal(unlink(f->target), 0);
		assert_int_equal(mrs_save(f->image, &f->spec, 1, so, NULL, &err),
				 i == 0 || i == 3 ? -EINVAL : 0);
		assert_int_equal(mrs_restore(f->image, &t, 1, ro, NULL, &err),
				 i == 1 || i == 3 ? -EINVAL : 0);
		assert_int_equal(exists(f->target), !(i == 1 || i == 3));
		if (!exists(f->target))
			assert_int_equal(close(open(f->target, O_CREAT | O_WRONLY, 0600)), 0);
		assert_int_equal(mrs_verify(f->image, vo, NULL, &err),
				 i == 2 || i == 3 ? -EINVAL : 0);
		assert_msg_has(&err, tails[i].name);
		assert_msg_has(&err, "does not know");
		*tails[i].tail = 0;
	}
	free(so);
	free(ro);
	free(vo);
	free(io);
}

/*
 * A report from a newer header: filled as far as the library knows, the
 * rest zeroed (whatever it held), never refused.
 */
static void test_bigger_report_tail_is_zeroed(void **state)
{
	struct fix *f = *state;
	const size_t more = 24;
	struct mrs_verify_report *r = buffer(sizeof(*r), more, CANARY);
	struct mrs_error err = {0};

	assert_int_equal(mrs_save(f->image, &f->spec, 1, NULL, NULL, &err), 0);
	r->size = sizeof(*r) + more;
	assert_int_equal(mrs_verify(f->image, NULL, r, &err), 0);
	assert_int_equal(r->pages_checked, PAGES);
	assert_int_equal(r->size, sizeof(*r) + more);
	assert_true(all_bytes(r + 1, more, 0));
	mrs_verify_report_free(r);
	free(r);
}

/*
 * A struct whose size was never set (zeroed, not _INIT) is a mistake, not
 * defaults. Catches a missing size check (seen: the save went ahead).
 */
static void test_uninitialised_size_refused(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = {.force = 1};
	struct mrs_save_report r = {0};
	struct mrs_io_opts io = {.channels = 1};
	struct mrs_save_opts with_io = {.size = sizeof(with_io), .io = &io};
	struct mrs_error err = {0};

	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, NULL, &err), -EINVAL);
	assert_msg_has(&err, "mrs_save_opts has size 0");
	assert_int_equal(mrs_save(f->image, &f->spec, 1, NULL, &r, &err), -EINVAL);
	assert_msg_has(&err, "mrs_save_report has size 0");
	mrs_save_report_free(&r); /* safe: it holds nothing */
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &with_io, NULL, &err), -EINVAL);
	assert_msg_has(&err, "mrs_io_opts has size 0");
	assert_false(exists(f->image));
	/* The macros set it. */
	o = (struct mrs_save_opts)MRS_SAVE_OPTS_INIT;
	r = (struct mrs_save_report)MRS_SAVE_REPORT_INIT;
	assert_int_equal(mrs_save(f->image, &f->spec, 1, &o, &r, &err), 0);
	assert_int_equal(r.nblocks, 1);
	mrs_save_report_free(&r);
}

static int no_op(void *ctx, struct mrs_error *err)
{
	(void)ctx;
	(void)err;
	return 0;
}

/* Freezer ops follow the same rule, and need both operations (tail check removed: seen failing). */
static void test_freezer_ops_by_size(void **state)
{
	struct mrs_freezer_ops *ops = buffer(sizeof(*ops), 8, 0);
	struct mrs_freezer *fz;
	struct mrs_error err = {0};

	(void)state;
	*ops = (struct mrs_freezer_ops){.size = sizeof(*ops) + 8, .freeze = no_op, .thaw = no_op};
	assert_int_equal(mrs_freezer_new(&fz, ops, NULL, &err), 0);
	assert_int_equal(mrs_freezer_freeze(fz, &err), 0);
	assert_int_equal(mrs_freezer_thaw(fz, &err), 0);
	mrs_freezer_free(fz);
	((unsigned char *)(ops + 1))[7] = 1;
	assert_int_equal(mrs_freezer_new(&fz, ops, NULL, &err), -EINVAL);
	assert_null(fz);
	assert_msg_has(&err, "mrs_freezer_ops");
	*ops = (struct mrs_freezer_ops)MRS_FREEZER_OPS_INIT;
	ops->freeze = no_op;
	assert_int_equal(mrs_freezer_new(&fz, ops, NULL, &err), -EINVAL);
	assert_msg_has(&err, "needs a freeze and a thaw");
	free(ops);
}

/*
 * The name rule the command line applies before it asks for anything; the
 * link fails if src/libmrsnap.sym does not export it (seen).
 */
static void test_block_name_check(void **state)
{
	struct mrs_error err = {0};
	char long_name[65];

	(void)state;
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	assert_int_equal(mrs_block_name_check("pc.ram", &err), 0);
	assert_int_equal(mrs_block_name_check(long_name + 1, &err), 0); /* 63 bytes */
	assert_int_equal(mrs_block_name_check(long_name, &err), -MRS_EUSAGE);
	assert_int_equal(mrs_block_name_check("", &err), -MRS_EUSAGE);
	assert_int_equal(mrs_block_name_check("a=b", &err), -MRS_EUSAGE);
	assert_int_equal(mrs_block_name_check("a,b", NULL), -MRS_EUSAGE);
	assert_int_equal(mrs_block_name_check("a\tb", &err), -MRS_EUSAGE);
	assert_msg_has(&err, "control character");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_old_smaller_options_work, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_old_smaller_reports_work, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bigger_options_need_a_zero_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bigger_report_tail_is_zeroed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uninitialised_size_refused, setup, teardown),
	    cmocka_unit_test(test_freezer_ops_by_size),
	    cmocka_unit_test(test_block_name_check),
	};
	if (!mrs_test_have_io_uring())
		return TEST_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
