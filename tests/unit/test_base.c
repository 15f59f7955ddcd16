/* SPDX-License-Identifier: MIT */
/*
 * Snapshots against a base (src/engine/base.c) and restore --clone
 * (src/engine/clone_restore.c), on any filesystem: the clone itself comes
 * in through -Wl,--wrap=mrs_clone_range,--wrap=mrs_clone_probe, which
 * copies the bytes (what a clone makes the new file read as), refuses as a
 * filesystem without shared extents does, or fails. tests/cli/cow.sh does
 * the same on a real XFS with reflink.
 *
 * What each test catches (each seen failing once by breaking the code):
 *  - test_first_round_writes_only_changes, on 1, 2, 3 and 8 channels:
 *    the page state not seeded from the base (the memcpy of present and
 *    hashes in mrs_base_share() left out), a first round without
 *    MRS_JOB_CHANGED_ONLY (mrs_base_first_round_flags() returning 0): every
 *    page written, pages_written wrong; trusting the base for a changed
 *    page (unchanged() in policy_save.c ignoring the hash): too few pages
 *    written (and the RAM restored wrong, which tests/cli/cow.sh shows); a
 *    page that became zero left present (zero_page() not clearing it): the
 *    present count wrong;
 *  - test_refused_clone_writes_in_full: a refused block seeded anyway (the
 *    `continue` in mrs_base_share() dropped);
 *  - test_clone_error_fails: an I/O error taken as a refusal (the
 *    mrs_clone_refused() test dropped: the save succeeds);
 *  - test_clone_restore_punches_absent: punch_absent() returning 0 at once
 *    leaves data in absent pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "clone.h"

#define PAGE	 4096u
#define PC_PAGES 256u
#define VG_PAGES 64u

/* ---- the wrapped clone ------------------------------------------------------ */

enum clone_mode { CLONE_COPY, CLONE_REFUSE, CLONE_REFUSE_SECOND, CLONE_FAIL };
static enum clone_mode clone_mode;
static int clone_calls;

int __real_mrs_clone_range(int dst, uint64_t dst_off, int src, uint64_t src_off, uint64_t len);
int __wrap_mrs_clone_range(int dst, uint64_t dst_off, int src, uint64_t src_off, uint64_t len);
int __real_mrs_clone_probe(const char *dir, int src, uint64_t src_off, uint64_t len);
int __wrap_mrs_clone_probe(const char *dir, int src, uint64_t src_off, uint64_t len);

/* What a clone leaves the destination reading as: the source's bytes, holes as zeros. */
static int copy_range(int dst, uint64_t dst_off, int src, uint64_t src_off, uint64_t len)
{
	static uint8_t buf[1 << 16];

	for (uint64_t at = 0; at < len; at += sizeof(buf)) {
		size_t n = len - at < sizeof(buf) ? (size_t)(len - at) : sizeof(buf);

		if (pread(src, buf, n, (off_t)(src_off + at)) != (ssize_t)n ||
		    pwrite(dst, buf, n, (off_t)(dst_off + at)) != (ssize_t)n)
			return -EIO;
	}
	return 0;
}

int __wrap_mrs_clone_range(int dst, uint64_t dst_off, int src, uint64_t src_off, uint64_t len)
{
	clone_calls++;
	switch (clone_mode) {
	case CLONE_REFUSE:
		return -EOPNOTSUPP;
	case CLONE_REFUSE_SECOND:
		if (clone_calls == 2)
			return -EXDEV;
		break;
	case CLONE_FAIL:
		return -EIO;
	default:
		break;
	}
	return copy_range(dst, dst_off, src, src_off, len);
}

int __wrap_mrs_clone_probe(const char *dir, int src, uint64_t src_off, uint64_t len)
{
	(void)dir, (void)src, (void)src_off, (void)len;
	return clone_mode == CLONE_REFUSE ? -EOPNOTSUPP : 0;
}

/* ---- RAM files and their changes ---------------------------------------------- */

struct fix {
	char *dir;
	char pc[512], vga[512], base[512], image[512], out_pc[512], out_vga[512];
	struct mrs_ram ram[2];
	uint8_t present[2][PC_PAGES]; /* per block: the page is non-zero in the base */
};

static void put_page(const char *path, uint64_t p, uint64_t seed)
{
	static uint8_t page[PAGE];
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	if (seed)
		mrs_test_fill(page, PAGE, seed);
	else
		memset(page, 0, PAGE);
	assert_int_equal(pwrite(fd, page, PAGE, (off_t)(p * PAGE)), PAGE);
	close(fd);
}

/* A RAM file of npages, page p zero when p % zero_every == 0 (a hole), else data. */
static void make_ram(const char *path, uint64_t npages, uint64_t zero_every, uint64_t seed,
		     uint8_t *present)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(npages * PAGE)), 0);
	close(fd);
	for (uint64_t p = 0; p < npages; p++) {
		present[p] = p % zero_every != 0;
		if (present[p])
			put_page(path, p, seed * 100000 + p + 1);
	}
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	f->dir = mrs_test_tmpdir();
	snprintf(f->pc, sizeof(f->pc), "%s/pc.ram", f->dir);
	snprintf(f->vga, sizeof(f->vga), "%s/vga.ram", f->dir);
	snprintf(f->base, sizeof(f->base), "%s/base.img", f->dir);
	snprintf(f->image, sizeof(f->image), "%s/new.img", f->dir);
	snprintf(f->out_pc, sizeof(f->out_pc), "%s/pc.out", f->dir);
	snprintf(f->out_vga, sizeof(f->out_vga), "%s/vga.out", f->dir);
	make_ram(f->pc, PC_PAGES, 5, 1, f->present[0]);
	make_ram(f->vga, VG_PAGES, 7, 2, f->present[1]);
	f->ram[0] = (struct mrs_ram){"pc.ram", f->pc, 0};
	f->ram[1] = (struct mrs_ram){"vga.ram", f->vga, 0};
	clone_mode = CLONE_COPY;
	clone_calls = 0;
	*state = f;
	return 0;
}

/* The RAM as setup made it, and no image. */
static void fresh(struct fix *f)
{
	unlink(f->base);
	unlink(f->image);
	make_ram(f->pc, PC_PAGES, 5, 1, f->present[0]);
	make_ram(f->vga, VG_PAGES, 7, 2, f->present[1]);
}

static int teardown(void **state)
{
	struct fix *f = *state;

	mrs_test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	uint8_t *buf;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void assert_same_file(const char *a, const char *b)
{
	size_t la, lb;
	uint8_t *x = slurp(a, &la), *y = slurp(b, &lb);

	assert_int_equal(la, lb);
	assert_memory_equal(x, y, la);
	free(x);
	free(y);
}

/*
 * What a guest does between two snapshots: pc.ram pages p % 11 == 3 get new
 * bytes (some were zero), p % 13 == 1 that are not among them become zero;
 * vga.ram pages p % 9 == 2 get new bytes. Returns the pages that change, and
 * counts into *zeroed those present in the base that became zero, into
 * *kept those present that stay as they were.
 */
static unsigned change_ram(struct fix *f, uint64_t seed, unsigned *zeroed, unsigned *kept)
{
	unsigned changed = 0;

	*zeroed = *kept = 0;
	for (uint64_t p = 0; p < PC_PAGES; p++) {
		if (p % 11 == 3) {
			put_page(f->pc, p, seed * 7777 + p + 1);
			changed++;
		} else if (p % 13 == 1 && f->present[0][p]) {
			put_page(f->pc, p, 0);
			(*zeroed)++;
		} else {
			*kept += f->present[0][p];
		}
	}
	for (uint64_t p = 0; p < VG_PAGES; p++) {
		if (p % 9 == 2) {
			put_page(f->vga, p, seed * 5555 + p + 1);
			changed++;
		} else {
			*kept += f->present[1][p];
		}
	}
	return changed;
}

static void assert_restores_ram(struct fix *f, const char *image)
{
	struct mrs_ram t[2] = {{"pc.ram", f->out_pc, 0}, {"vga.ram", f->out_vga, 0}};
	struct mrs_error err = {0};

	unlink(f->out_pc);
	unlink(f->out_vga);
	assert_int_equal(mrs_verify(image, NULL, NULL, &err), 0);
	assert_int_equal(mrs_restore(image, t, 2, NULL, NULL, &err), 0);
	assert_same_file(f->out_pc, f->pc);
	assert_same_file(f->out_vga, f->vga);
}

/* ---- the tests --------------------------------------------------------------- */

static void test_first_round_writes_only_changes(void **state)
{
	static const unsigned channel_counts[] = {1, 2, 3, 8};
	struct fix *f = *state;

	for (size_t c = 0; c < sizeof(channel_counts) / sizeof(channel_counts[0]); c++) {
		struct mrs_io_opts io = MRS_IO_OPTS_INIT;
		struct mrs_save_opts o = MRS_SAVE_OPTS_INIT;
		struct mrs_save_report r = MRS_SAVE_REPORT_INIT;
		struct mrs_error err = {0};
		unsigned zeroed, kept, changed;
		size_t blen;
		uint8_t *before;

		fresh(f);
		io.channels = channel_counts[c];
		o.io = &io;
		assert_int_equal(mrs_save(f->base, f->ram, 2, &o, NULL, &err), 0);
		before = slurp(f->base, &blen);
		changed = change_ram(f, c + 1, &zeroed, &kept);
		o.base = f->base;
		assert_int_equal(mrs_save(f->image, f->ram, 2, &o, &r, &err), 0);
		assert_int_equal(r.base_blocks_shared, 2);
		assert_int_equal(r.base_refusal, 0);
		/* Only the pages that changed are written; the zeroed ones cleared. */
		assert_int_equal(r.pages_written, changed);
		assert_int_equal(r.rounds[0].pages_written, changed);
		assert_int_equal(r.rounds[0].pages_zeroed, zeroed);
		assert_int_equal(r.base_pages_reused, kept);
		assert_int_equal(r.pages_present, kept + changed);
		assert_int_equal(r.bytes_written, (uint64_t)changed * PAGE);
		mrs_save_report_free(&r);
		/* The base is never written; the new image needs it not. */
		{
			size_t alen;
			uint8_t *after = slurp(f->base, &alen);

			assert_int_equal(alen, blen);
			assert_memory_equal(after, before, blen);
			free(after);
		}
		free(before);
		unlink(f->base);
		assert_restores_ram(f, f->image);
	}
}

/* A live snapshot against a base: round 0 compares with it, live rounds go on. */
static int freeze_nothing(void *ctx, struct mrs_error *err)
{
	(void)ctx, (void)err;
	return 0;
}

static void test_live_against_base(void **state)
{
	static const struct mrs_freezer_ops nothing = {sizeof(nothing), freeze_nothing,
						       freeze_nothing, NULL};
	struct fix *f = *state;
	struct mrs_save_opts o = MRS_SAVE_OPTS_INIT;
	struct mrs_save_report r = MRS_SAVE_REPORT_INIT;
	struct mrs_error err = {0};
	struct mrs_freezer *fz;
	unsigned zeroed, kept, changed;

	assert_int_equal(mrs_save(f->base, f->ram, 2, NULL, NULL, &err), 0);
	changed = change_ram(f, 9, &zeroed, &kept);
	assert_int_equal(mrs_freezer_new(&fz, &nothing, NULL, &err), 0);
	o.base = f->base;
	o.live = 1;
	o.max_rounds = 2;
	o.freezers = &fz;
	o.nfreezers = 1;
	assert_int_equal(mrs_save(f->image, f->ram, 2, &o, &r, &err), 0);
	assert_int_equal(r.nrounds, 2);
	assert_int_equal(r.rounds[0].pages_written, changed);
	assert_int_equal(r.rounds[1].pages_written, 0); /* nothing changed since */
	assert_int_equal(r.base_pages_reused, kept);
	mrs_save_report_free(&r);
	mrs_freezer_free(fz);
	assert_restores_ram(f, f->image);
}

static void test_refused_clone_writes_in_full(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = MRS_SAVE_OPTS_INIT;
	struct mrs_save_report r = MRS_SAVE_REPORT_INIT;
	struct mrs_error err = {0};
	unsigned zeroed, kept, changed;

	assert_int_equal(mrs_save(f->base, f->ram, 2, NULL, NULL, &err), 0);
	changed = change_ram(f, 3, &zeroed, &kept);
	o.base = f->base;
	clone_mode = CLONE_REFUSE;
	assert_int_equal(mrs_save(f->image, f->ram, 2, &o, &r, &err), 0);
	assert_int_equal(r.base_blocks_shared, 0);
	assert_int_equal(r.base_refusal, -EOPNOTSUPP);
	assert_int_equal(r.base_pages_reused, 0);
	assert_int_equal(r.pages_written, kept + changed);
	mrs_save_report_free(&r);
	assert_restores_ram(f, f->image);
	unlink(f->image);

	/* One block refused (another filesystem, say), the other shared. */
	clone_mode = CLONE_REFUSE_SECOND;
	clone_calls = 0;
	assert_int_equal(mrs_save(f->image, f->ram, 2, &o, &r, &err), 0);
	assert_int_equal(r.base_blocks_shared, 1);
	assert_int_equal(r.base_refusal, -EXDEV);
	assert_true(r.base_pages_reused > 0);
	assert_true(r.pages_written > changed);
	mrs_save_report_free(&r);
	assert_restores_ram(f, f->image);
}

/* Nothing in the directory but the RAM files and the names given. */
static void assert_dir_holds(const struct fix *f, unsigned nfiles)
{
	char cmd[1024];
	FILE *p;
	unsigned n = 0;
	char line[512];

	snprintf(cmd, sizeof(cmd), "ls -A '%s'", f->dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		n++;
	pclose(p);
	assert_int_equal(n, nfiles);
}

static void test_clone_error_fails(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = MRS_SAVE_OPTS_INIT;
	struct mrs_error err = {0};

	assert_int_equal(mrs_save(f->base, f->ram, 2, NULL, NULL, &err), 0);
	o.base = f->base;
	clone_mode = CLONE_FAIL;
	assert_int_equal(mrs_save(f->image, f->ram, 2, &o, NULL, &err), -EIO);
	assert_msg_has(&err, "cannot clone block 'pc.ram' from the base '");
	assert_int_equal(access(f->image, F_OK), -1);
	assert_dir_holds(f, 3); /* pc.ram, vga.ram, base.img: no temporary file */
}

static void test_bad_bases_refused(void **state)
{
	struct fix *f = *state;
	struct mrs_save_opts o = MRS_SAVE_OPTS_INIT;
	struct mrs_ram one = {"pc.ram", f->pc, 0}, half = {"pc.ram", f->pc, PC_PAGES * PAGE / 2};
	struct mrs_ram two[2] = {{"pc.ram", f->pc, 0}, {"vga", f->vga, 0}};
	struct mrs_error err = {0};

	assert_int_equal(mrs_save(f->base, f->ram, 2, NULL, NULL, &err), 0);
	o.base = f->base;
	assert_int_equal(mrs_save(f->image, &one, 1, &o, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "has block 'vga.ram', which this snapshot has not");
	assert_int_equal(mrs_save(f->image, &half, 1, &o, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "block 'pc.ram' is 524288 bytes, and 1048576 in the base");
	assert_int_equal(mrs_save(f->image, two, 2, &o, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "has no block 'vga' (it has: pc.ram, vga.ram)");
	o.force = 1;
	assert_int_equal(mrs_save(f->base, f->ram, 2, &o, NULL, &err), -MRS_EUSAGE);
	assert_msg_has(&err, "is the image '");
	o.base = f->pc; /* not an image */
	assert_int_equal(mrs_save(f->image, f->ram, 2, &o, NULL, &err), -EPROTO);
	assert_msg_has(&err, "base: '");
	o.base = "";
	assert_int_equal(mrs_save(f->image, f->ram, 2, &o, NULL, &err), -EINVAL);
	assert_int_equal(clone_calls, 0);
	assert_dir_holds(f, 3);
}

/*
 * restore --clone where the "clone" brings the image's bytes as data, zeros
 * of absent pages included (as a write bridging them would leave them):
 * the target reads as the RAM, and its only data are the present pages.
 */
static void test_clone_restore_punches_absent(void **state)
{
	struct fix *f = *state;
	struct mrs_restore_opts ro = MRS_RESTORE_OPTS_INIT;
	struct mrs_restore_report rr = MRS_RESTORE_REPORT_INIT;
	struct mrs_ram t[2] = {{"pc.ram", f->out_pc, 0}, {"vga.ram", f->out_vga, 0}};
	struct mrs_error err = {0};
	uint64_t data = 0, present = 0;
	off_t at = 0, d;
	int fd;

	assert_int_equal(mrs_save(f->image, f->ram, 2, NULL, NULL, &err), 0);
	ro.clone = 1;
	assert_int_equal(mrs_restore(f->image, t, 2, &ro, &rr, &err), 0);
	assert_int_equal(rr.cloned, 1);
	assert_int_equal(rr.pages_read, 0);
	mrs_restore_report_free(&rr);
	assert_same_file(f->out_pc, f->pc);
	assert_same_file(f->out_vga, f->vga);
	fd = open(f->out_pc, O_RDONLY);
	assert_true(fd >= 0);
	while ((d = lseek(fd, at, SEEK_DATA)) >= 0) {
		at = lseek(fd, d, SEEK_HOLE);
		data += (uint64_t)(at - d);
	}
	close(fd);
	for (uint64_t p = 0; p < PC_PAGES; p++)
		present += f->present[0][p];
	assert_int_equal(data, present * PAGE);

	/* A target with data is refused before anything is written. */
	unlink(f->out_vga);
	assert_int_equal(mrs_restore(f->image, t, 2, &ro, NULL, &err), -EEXIST);
	assert_msg_has(&err, "holds data");
	assert_int_equal(access(f->out_vga, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_first_round_writes_only_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_live_against_base, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_clone_writes_in_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clone_error_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_bases_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clone_restore_punches_absent, setup, teardown),
	};
	if (!mrs_test_have_io_uring())
		return TEST_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
