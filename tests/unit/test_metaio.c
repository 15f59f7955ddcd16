/* SPDX-License-Identifier: MIT */
/* Image metadata written through a buffered fd and read back, validated. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "metaio.h"

#define NBLOCKS 2

struct fixture {
	char *dir;
	char *path;
	int fd;
	struct mrs_superblock sb;
	struct mrs_block_header blocks[NBLOCKS];
	uint8_t *bitmaps[NBLOCKS];
	uint64_t *hashes[NBLOCKS];
};

/* Write the metadata of a two-block image, complete or not. */
static void write_image(struct fixture *f, bool complete)
{
	static const uint64_t sizes[NBLOCKS] = {3 * 1024 * 1024 + 4096 * 5, 4 * 1024 * 1024};
	struct mrs_stream_buf s = {0};
	struct mrs_error err = {0};
	struct mrs_round r = {.number = 0, .pages_written = 3};
	size_t flushed = 0;

	memset(&f->sb, 0, sizeof(f->sb));
	f->sb.version = MRS_FORMAT_VERSION;
	f->sb.block_count = NBLOCKS;
	f->sb.block_table_offset = MRS_SB_AREA;
	strcpy(f->sb.tool_version, "mrsnap test");
	for (int i = 0; i < NBLOCKS; i++) {
		memset(&f->blocks[i], 0, sizeof(f->blocks[i]));
		f->blocks[i].index = (uint32_t)i;
		f->blocks[i].size = sizes[i];
		f->blocks[i].page_size = i == 0 ? 4096 : 2 * 1024 * 1024;
		snprintf(f->blocks[i].name, MRS_NAME_FIELD, "ram%d", i);
		snprintf(f->blocks[i].path, MRS_PATH_FIELD, "/dev/shm/ram%d", i);
	}
	assert_int_equal(mrs_layout_plan(f->blocks, NBLOCKS, &f->sb.stream_offset, &err), 0);
	assert_int_equal(ftruncate(f->fd, (off_t)f->sb.stream_offset), 0);
	assert_int_equal(mrs_meta_write_superblock(f->fd, &f->sb, &err), 0);
	for (int i = 0; i < NBLOCKS; i++) {
		struct mrs_block_header *b = &f->blocks[i];

		free(f->bitmaps[i]);
		free(f->hashes[i]);
		f->bitmaps[i] = calloc(1, b->bitmap_length);
		f->hashes[i] = calloc(b->page_count, sizeof(uint64_t));
		for (uint64_t p = 0; p < b->page_count; p += 2) {
			mrs_bitmap_set(f->bitmaps[i], p);
			f->hashes[i][p] = 0x1000 + p * 77 + (uint64_t)i;
		}
		assert_int_equal(mrs_meta_write_tables(f->fd, b, f->bitmaps[i], f->hashes[i], &err),
				 0);
	}
	assert_int_equal(mrs_meta_write_headers(f->fd, MRS_SB_AREA, f->blocks, NBLOCKS, &err), 0);
	assert_int_equal(mrs_stream_append_blocks(&s, NBLOCKS, MRS_SB_AREA), 0);
	assert_int_equal(mrs_stream_append_eos(&s), 0);
	assert_int_equal(mrs_stream_append_round(&s, &r), 0);
	assert_int_equal(mrs_stream_append_eos(&s), 0);
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_int_equal(mrs_meta_write_stream(f->fd, f->sb.stream_offset, &s, &flushed, &err), 0);
	assert_int_equal(flushed, s.len);
	if (complete) {
		f->sb.stream_length = s.len;
		f->sb.flags |= MRS_SB_COMPLETE;
		assert_int_equal(mrs_meta_write_superblock(f->fd, &f->sb, &err), 0);
	}
	mrs_stream_buf_free(&s);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = mrs_test_tmpdir();
	if (asprintf(&f->path, "%s/image", f->dir) < 0)
		return -1;
	f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (f->fd < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->fd);
	for (int i = 0; i < NBLOCKS; i++) {
		free(f->bitmaps[i]);
		free(f->hashes[i]);
	}
	free(f->path);
	mrs_test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct mrs_image_meta m;
	struct mrs_error err = {0};

	write_image(f, true);
	if (mrs_meta_read(f->fd, 0, &m, &err))
		fail_msg("%s", err.msg);
	assert_memory_equal(&m.sb, &f->sb, sizeof(m.sb));
	for (int i = 0; i < NBLOCKS; i++) {
		assert_memory_equal(&m.blocks[i], &f->blocks[i], sizeof(m.blocks[i]));
		assert_memory_equal(m.bitmaps[i], f->bitmaps[i], f->blocks[i].bitmap_length);
		assert_memory_equal(m.hashes[i], f->hashes[i], f->blocks[i].page_count * 8);
		assert_int_equal(m.blocks[i].pages_present, (f->blocks[i].page_count + 1) / 2);
	}
	assert_int_equal(m.stream.nrounds, 1);
	assert_int_equal(m.stream.rounds[0].pages_written, 3);
	mrs_meta_free(&m);
}

static void test_incomplete_refused(void **state)
{
	struct fixture *f = *state;
	struct mrs_image_meta m;
	struct mrs_error err = {0};

	write_image(f, false);
	assert_int_equal(mrs_meta_read(f->fd, 0, &m, &err), -EPROTO);
	assert_msg_has(&err, "incomplete");
	/* info may still describe it. */
	assert_int_equal(mrs_meta_read(f->fd, MRS_META_INCOMPLETE_OK, &m, &err), 0);
	assert_false(m.sb.flags & MRS_SB_COMPLETE);
	assert_int_equal(m.sb.block_count, NBLOCKS);
	mrs_meta_free(&m);
}

/*
 * Damaged tables are refused whether they are kept (restore, verify) or only
 * checked (info: MRS_META_CHECK_TABLES_ONLY; a build where info skipped the
 * tables said "complete: yes" of an image restore refused).
 */
static void test_damaged_tables_refused(void **state)
{
	static const unsigned modes[] = {0, MRS_META_INCOMPLETE_OK | MRS_META_CHECK_TABLES_ONLY};
	struct fixture *f = *state;
	struct mrs_image_meta m;
	struct mrs_error err = {0};
	uint8_t byte;

	for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		unsigned flags = modes[i];

		write_image(f, true);
		assert_int_equal(pread(f->fd, &byte, 1, (off_t)f->blocks[1].bitmap_offset), 1);
		byte ^= 0x40;
		assert_int_equal(pwrite(f->fd, &byte, 1, (off_t)f->blocks[1].bitmap_offset), 1);
		assert_int_equal(mrs_meta_read(f->fd, flags, &m, &err), -EPROTO);
		assert_msg_has(&err, "block 'ram1': bitmap checksum mismatch");

		write_image(f, true);
		assert_int_equal(pwrite(f->fd, "x", 1, (off_t)f->blocks[0].hashes_offset + 17), 1);
		assert_int_equal(mrs_meta_read(f->fd, flags, &m, &err), -EPROTO);
		assert_msg_has(&err, "block 'ram0': checksum table checksum mismatch");

		/* A checksum for an absent page (1), with the table's own checksum right. */
		write_image(f, true);
		f->hashes[0][1] = 0x5eed;
		assert_int_equal(
		    mrs_meta_write_tables(f->fd, &f->blocks[0], f->bitmaps[0], f->hashes[0], &err),
		    0);
		assert_int_equal(
		    mrs_meta_write_headers(f->fd, MRS_SB_AREA, f->blocks, NBLOCKS, &err), 0);
		assert_int_equal(mrs_meta_read(f->fd, flags, &m, &err), -EPROTO);
		assert_msg_has(&err, "block 'ram0': page 1 is absent but has a checksum");

		write_image(f, true);
		assert_int_equal(pwrite(f->fd, "x", 1, (off_t)f->sb.stream_offset + 20), 1);
		assert_int_equal(mrs_meta_read(f->fd, flags, &m, &err), -EPROTO);
		assert_msg_has(&err, "checksum mismatch");
	}
}

/* Checking the tables without keeping them: what info does, in bounded memory. */
static void test_check_tables_only(void **state)
{
	struct fixture *f = *state;
	struct mrs_image_meta m;
	struct mrs_error err = {0};

	write_image(f, true);
	if (mrs_meta_read(f->fd, MRS_META_CHECK_TABLES_ONLY, &m, &err))
		fail_msg("%s", err.msg);
	assert_null(m.bitmaps);
	assert_null(m.hashes);
	assert_int_equal(m.blocks[0].pages_present, (f->blocks[0].page_count + 1) / 2);
	mrs_meta_free(&m);
}

static void test_stream_past_end_refused(void **state)
{
	struct fixture *f = *state;
	struct mrs_image_meta m;
	struct mrs_error err = {0};

	write_image(f, true);
	f->sb.stream_length = MRS_STREAM_MAX; /* longer than the file, not than the cap */
	assert_int_equal(mrs_meta_write_superblock(f->fd, &f->sb, &err), 0);
	assert_int_equal(mrs_meta_read(f->fd, 0, &m, &err), -EPROTO);
	assert_msg_has(&err, "control stream");
	assert_msg_has(&err, "past the end of the file");

	/* A truncated file: the page region of the last block is cut off. */
	write_image(f, true);
	assert_int_equal(ftruncate(f->fd, (off_t)f->blocks[1].pages_offset + 4096), 0);
	assert_int_equal(mrs_meta_read(f->fd, 0, &m, &err), -EPROTO);
	assert_msg_has(&err, "past the end of the file");
}

/* ---- hostile images: valid checksums, lying fields ------------------------ */

/*
 * Allocation sizes, through -Wl,--wrap: a hostile image must be refused
 * before anything is allocated in proportion to what it claims.
 */
static size_t largest_alloc;
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

void *__wrap_malloc(size_t n)
{
	if (n > largest_alloc)
		largest_alloc = n;
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	if (n * size > largest_alloc)
		largest_alloc = n * size;
	return __real_calloc(n, size);
}

/*
 * fstat, through -Wl,--wrap: fstat_extra bytes more than the file has, as if
 * it were cut between the size check and the reads.
 */
static off_t fstat_extra;
int __real_fstat(int fd, struct stat *st);
int __wrap_fstat(int fd, struct stat *st);

int __wrap_fstat(int fd, struct stat *st)
{
	int ret = __real_fstat(fd, st);

	if (ret == 0)
		st->st_size += fstat_extra;
	return ret;
}

/* Rewrite the block headers with the fixture's (changed) fields, checksums and all. */
static void rewrite_header(struct fixture *f)
{
	struct mrs_error err = {0};

	assert_int_equal(mrs_meta_write_headers(f->fd, MRS_SB_AREA, f->blocks, NBLOCKS, &err), 0);
}

/* Read the image; it must be refused with needle in the message, cheaply. */
static void assert_refused(struct fixture *f, const char *needle)
{
	struct mrs_image_meta m;
	struct mrs_error err = {0};

	largest_alloc = 0;
	assert_int_equal(mrs_meta_read(f->fd, 0, &m, &err), -EPROTO);
	if (largest_alloc > (1u << 20))
		fail_msg("refusing a hostile image allocated %zu bytes (%s)", largest_alloc,
			 err.msg);
	assert_msg_has(&err, needle);
}

static void test_hostile_offsets(void **state)
{
	struct fixture *f = *state;

	write_image(f, true);
	f->blocks[1].pages_offset += 1ull << 40; /* past the end of the file */
	rewrite_header(f);
	assert_refused(f, "page region of block 1");
	assert_refused(f, "past the end of the file");

	write_image(f, true);
	f->blocks[1].pages_offset = f->blocks[0].pages_offset; /* on top of block 0 */
	rewrite_header(f);
	assert_refused(f, "overlaps");

	write_image(f, true);
	f->blocks[0].hashes_offset = UINT64_MAX - 4095; /* offset + length overflows */
	rewrite_header(f);
	assert_refused(f, "past the end of the file");
}

static void test_hostile_sizes(void **state)
{
	struct fixture *f = *state;

	/* 2^40 pages, every length consistent with it: only the file size says no. */
	write_image(f, true);
	f->blocks[0].size = (1ull << 40) * 4096;
	f->blocks[0].page_count = 1ull << 40;
	f->blocks[0].bitmap_length = mrs_bitmap_bytes(1ull << 40);
	f->blocks[0].hashes_length = (1ull << 40) * 8;
	rewrite_header(f);
	assert_refused(f, "past the end of the file");
}

/*
 * A crafted image once made mrsnap allocate (and read) 525 MB before
 * refusing it: a sparse file, and a superblock whose stream_length, checksum
 * and all, covers most of it. The length is capped before anything is
 * allocated for it.
 */
static void test_hostile_stream_length(void **state)
{
	struct fixture *f = *state;
	struct mrs_error err = {0};

	write_image(f, true);
	f->sb.stream_length = 512ull << 20;
	assert_int_equal(ftruncate(f->fd, (off_t)(f->sb.stream_offset + f->sb.stream_length)), 0);
	assert_int_equal(mrs_meta_write_superblock(f->fd, &f->sb, &err), 0);
	assert_refused(f, "more than the 16777216 a stream may have");
}

/* 1024 block headers claimed by a small file: no 4 MiB of headers for it. */
static void test_hostile_block_count(void **state)
{
	struct fixture *f = *state;
	struct mrs_error err = {0};

	write_image(f, true);
	f->sb.block_count = MRS_MAX_BLOCKS;
	assert_int_equal(mrs_meta_write_superblock(f->fd, &f->sb, &err), 0);
	assert_int_equal(ftruncate(f->fd, 1 << 20), 0);
	assert_refused(f, "block table at offset 0x1000, 0x400000 bytes long, runs past the end");
}

/*
 * A file that ends early, where the layout check (told a larger size) could
 * not see it: damage named with its offset, not a made-up EIO (exit 3).
 */
static void test_file_ends_early(void **state)
{
	struct fixture *f = *state;
	struct mrs_image_meta m;
	struct mrs_error err = {0};
	uint64_t full;

	write_image(f, true);
	full = f->sb.stream_offset + f->sb.stream_length;
	assert_int_equal(ftruncate(f->fd, MRS_SB_AREA), 0);
	fstat_extra = (off_t)(full - MRS_SB_AREA);
	assert_int_equal(mrs_meta_read(f->fd, 0, &m, &err), -EPROTO);
	assert_msg_has(&err, "cannot read block header at offset 0x1000: the file ends at 0x1000");

	write_image(f, true);
	assert_int_equal(ftruncate(f->fd, (off_t)f->sb.stream_offset + 20), 0);
	fstat_extra = (off_t)(full - f->sb.stream_offset - 20);
	assert_int_equal(mrs_meta_read(f->fd, 0, &m, &err), -EPROTO);
	assert_msg_has(&err, "cannot read control stream at offset 0x");
	assert_msg_has(&err, "the file ends at 0x");
	fstat_extra = 0;
}

static void test_hostile_name(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[MRS_BH_SIZE];

	write_image(f, true);
	mrs_bh_encode(&f->blocks[0], buf);
	memset(buf + 128, 'x', MRS_NAME_FIELD); /* no terminator */
	mrs_put_hash(buf + MRS_BH_SIZE - 8, mrs_hash(buf, MRS_BH_SIZE - 8));
	assert_int_equal(pwrite(f->fd, buf, sizeof(buf), MRS_SB_AREA), (ssize_t)sizeof(buf));
	assert_refused(f, "block name is empty or not terminated");
}

static void test_hostile_bitmap(void **state)
{
	struct fixture *f = *state;
	struct mrs_block_header *b = &f->blocks[0];
	struct mrs_error err = {0};

	/* A bit past the last page, with the checksums and count made to agree. */
	write_image(f, true);
	mrs_bitmap_set(f->bitmaps[0], b->page_count + 3);
	assert_int_equal(mrs_meta_write_tables(f->fd, b, f->bitmaps[0], f->hashes[0], &err), 0);
	rewrite_header(f);
	assert_refused(f, "past the last page");
}

static void test_not_an_image(void **state)
{
	struct fixture *f = *state;
	struct mrs_image_meta m;
	struct mrs_error err = {0};
	char junk[8192];

	memset(junk, 'j', sizeof(junk));
	assert_int_equal(pwrite(f->fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	assert_int_equal(mrs_meta_read(f->fd, 0, &m, &err), -EPROTO);
	assert_msg_has(&err, "not an mrsnap image");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_incomplete_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_tables_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_check_tables_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream_past_end_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_offsets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_sizes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_stream_length, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_block_count, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_ends_early, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_bitmap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_an_image, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
