/* SPDX-License-Identifier: MIT */
/* Encode/decode of the superblock and block headers, and layout arithmetic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "codec.h"

#define GiB (1024ull * 1024 * 1024)
#define MiB (1024ull * 1024)

static struct mrs_superblock sample_sb(void)
{
	struct mrs_superblock sb = {
	    .version = MRS_FORMAT_VERSION,
	    .flags = MRS_SB_COMPLETE | MRS_SB_LIVE,
	    .created_ns = 1795000000123456789ull,
	    .block_count = 3,
	    .block_table_offset = MRS_SB_AREA,
	    .stream_offset = 0x123456789000ull,
	    .stream_length = 4242,
	};
	strcpy(sb.tool_version, "mrsnap 0.1.0");
	return sb;
}

static struct mrs_block_header sample_bh(void)
{
	struct mrs_block_header bh = {
	    .index = 2,
	    .size = 6 * GiB,
	    .page_size = 4096,
	    .page_count = 6 * GiB / 4096,
	    .pages_present = 12345,
	    .bitmap_offset = 0x10000,
	    .bitmap_length = mrs_bitmap_bytes(6 * GiB / 4096),
	    .hashes_offset = 0x40000,
	    .hashes_length = 6 * GiB / 4096 * 8,
	    .pages_offset = 0x100000000ull,
	    .bitmap_checksum = 0x0123456789abcdefull,
	    .hashes_checksum = 0xfedcba9876543210ull,
	};
	strcpy(bh.name, "pc.ram");
	strcpy(bh.path, "/dev/shm/vm0.ram");
	return bh;
}

static void test_byte_order(void **state)
{
	uint8_t b[8];

	mrs_put_le32(b, 0x11223344);
	assert_memory_equal(b, "\x44\x33\x22\x11", 4);
	assert_int_equal(mrs_get_le32(b), 0x11223344);
	mrs_put_le64(b, 0x1122334455667788ull);
	assert_memory_equal(b, "\x88\x77\x66\x55\x44\x33\x22\x11", 8);
	assert_true(mrs_get_le64(b) == 0x1122334455667788ull);
	/* Digests are canonical big-endian, as xxhsum prints them. */
	mrs_put_hash(b, 0x1122334455667788ull);
	assert_memory_equal(b, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	assert_true(mrs_get_hash(b) == 0x1122334455667788ull);
}

static void test_superblock_round_trip(void **state)
{
	struct mrs_superblock in = sample_sb(), out;
	struct mrs_error err = {0};
	uint8_t buf[MRS_SB_SIZE];

	mrs_sb_encode(&in, buf);
	assert_memory_equal(buf, MRS_SB_MAGIC, 8);
	assert_int_equal(mrs_sb_decode(buf, &out, &err), 0);
	assert_memory_equal(&in, &out, sizeof(in));
}

static void test_block_header_round_trip(void **state)
{
	struct mrs_block_header in = sample_bh(), out;
	struct mrs_error err = {0};
	uint8_t buf[MRS_BH_SIZE];

	mrs_bh_encode(&in, buf);
	assert_int_equal(mrs_bh_decode(buf, &out, &err), 0);
	assert_memory_equal(&in, &out, sizeof(in));
}

/* Flipping any bit of any byte of the superblock must be detected. */
static void test_superblock_any_byte_corruption(void **state)
{
	struct mrs_superblock sb = sample_sb(), out;
	uint8_t good[MRS_SB_SIZE], bad[MRS_SB_SIZE];

	mrs_sb_encode(&sb, good);
	for (unsigned i = 0; i < MRS_SB_SIZE; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			struct mrs_error err = {0};

			memcpy(bad, good, sizeof(bad));
			bad[i] ^= (uint8_t)(1u << bit);
			if (mrs_sb_decode(bad, &out, &err) == 0)
				fail_msg("flipping bit %u of superblock byte %u went unnoticed",
					 bit, i);
		}
	}
}

static void test_block_header_any_byte_corruption(void **state)
{
	struct mrs_block_header bh = sample_bh(), out;
	static uint8_t good[MRS_BH_SIZE], bad[MRS_BH_SIZE];

	mrs_bh_encode(&bh, good);
	for (unsigned i = 0; i < MRS_BH_SIZE; i++) {
		struct mrs_error err = {0};

		memcpy(bad, good, sizeof(bad));
		bad[i] ^= (uint8_t)(1u << (i % 8));
		if (mrs_bh_decode(bad, &out, &err) == 0)
			fail_msg("corrupting block header byte %u went unnoticed", i);
	}
}

/* Recompute a header's checksum after a test changed its fields on purpose. */
static void reseal(uint8_t *buf, size_t size)
{
	mrs_put_hash(buf + size - 8, mrs_hash(buf, size - 8));
}

static void test_superblock_rejections(void **state)
{
	struct mrs_superblock sb = sample_sb(), out;
	struct mrs_error err = {0};
	uint8_t buf[MRS_SB_SIZE];

	mrs_sb_encode(&sb, buf);
	buf[16] |= 0x80; /* an unknown flag bit */
	reseal(buf, MRS_SB_SIZE);
	assert_int_equal(mrs_sb_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "unknown superblock flags 0x80");

	mrs_sb_encode(&sb, buf);
	mrs_put_le32(buf + 8, 2);
	reseal(buf, MRS_SB_SIZE);
	/* A code of its own, which no I/O error can be (ENOTSUP is EOPNOTSUPP). */
	assert_int_equal(mrs_sb_decode(buf, &out, &err), -EPROTONOSUPPORT);
	assert_msg_has(&err, "version 2");

	/* A stream longer than any reader reads whole (mrsnap-image(5)). */
	mrs_sb_encode(&sb, buf);
	mrs_put_le64(buf + 88, MRS_STREAM_MAX + 1ull);
	reseal(buf, MRS_SB_SIZE);
	assert_int_equal(mrs_sb_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "more than the 16777216 a stream may have");
	mrs_sb_encode(&sb, buf);
	mrs_put_le64(buf + 88, MRS_STREAM_MAX);
	reseal(buf, MRS_SB_SIZE);
	assert_int_equal(mrs_sb_decode(buf, &out, &err), 0);

	mrs_sb_encode(&sb, buf);
	mrs_put_le32(buf + 64, MRS_MAX_BLOCKS + 1);
	reseal(buf, MRS_SB_SIZE);
	assert_int_equal(mrs_sb_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "block count");

	mrs_sb_encode(&sb, buf);
	memset(buf + 32, 'x', MRS_TOOL_VERSION_LEN); /* no terminator */
	reseal(buf, MRS_SB_SIZE);
	assert_int_equal(mrs_sb_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "tool version");

	memcpy(buf, "NOTANIMG", 8);
	assert_int_equal(mrs_sb_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "not an mrsnap image");
}

/*
 * A decoder that fails leaves zeros, not the caller's old bytes: fuzz_headers
 * used to go on with a superblock left uninitialised by a bad magic.
 */
static void test_failed_decode_leaves_zeros(void **state)
{
	struct mrs_superblock sb = sample_sb(), out, zero_sb;
	struct mrs_block_header bh = sample_bh(), out_bh, zero_bh;
	struct mrs_error err = {0};
	static uint8_t buf[MRS_BH_SIZE];

	memset(&zero_sb, 0, sizeof(zero_sb));
	memset(&zero_bh, 0, sizeof(zero_bh));
	mrs_sb_encode(&sb, buf);
	memcpy(buf, "NOTANIMG", 8);
	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(mrs_sb_decode(buf, &out, &err), -EPROTO);
	assert_memory_equal(&out, &zero_sb, sizeof(out));

	mrs_bh_encode(&bh, buf);
	memcpy(buf, "NOTABLCK", 8);
	memset(&out_bh, 0xa5, sizeof(out_bh));
	assert_int_equal(mrs_bh_decode(buf, &out_bh, &err), -EPROTO);
	assert_memory_equal(&out_bh, &zero_bh, sizeof(out_bh));
	mrs_bh_encode(&bh, buf);
	buf[20] ^= 1; /* checksum mismatch */
	memset(&out_bh, 0xa5, sizeof(out_bh));
	assert_int_equal(mrs_bh_decode(buf, &out_bh, &err), -EPROTO);
	assert_memory_equal(&out_bh, &zero_bh, sizeof(out_bh));
}

static void test_block_header_rejections(void **state)
{
	struct mrs_block_header bh = sample_bh(), out;
	struct mrs_error err = {0};
	static uint8_t buf[MRS_BH_SIZE];

	mrs_bh_encode(&bh, buf);
	memset(buf + 128, 'n', MRS_NAME_FIELD); /* a name without terminator */
	reseal(buf, MRS_BH_SIZE);
	assert_int_equal(mrs_bh_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "block name");

	bh = sample_bh();
	bh.page_count = 1ull << 40; /* a claim the size does not back */
	mrs_bh_encode(&bh, buf);
	assert_int_equal(mrs_bh_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "page count");

	bh = sample_bh();
	bh.page_size = 12288;
	mrs_bh_encode(&bh, buf);
	assert_int_equal(mrs_bh_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "page size 12288");

	bh = sample_bh();
	bh.pages_present = bh.page_count + 1;
	mrs_bh_encode(&bh, buf);
	assert_int_equal(mrs_bh_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "pages present");

	bh = sample_bh();
	mrs_bh_encode(&bh, buf);
	buf[28] = 1; /* block flags */
	reseal(buf, MRS_BH_SIZE);
	assert_int_equal(mrs_bh_decode(buf, &out, &err), -EPROTO);
	assert_msg_has(&err, "unknown block flags 0x1");
}

/* Plan n blocks of the given sizes and check every layout property. */
static void check_plan(const uint64_t *sizes, const uint32_t *page_sizes, uint32_t n)
{
	struct mrs_block_header *b = calloc(n, sizeof(*b));
	struct mrs_superblock sb = sample_sb();
	struct mrs_error err = {0};
	uint64_t stream;

	for (uint32_t i = 0; i < n; i++) {
		b[i].index = i;
		b[i].size = sizes[i];
		b[i].page_size = page_sizes[i];
		snprintf(b[i].name, sizeof(b[i].name), "block%u", i);
	}
	assert_int_equal(mrs_layout_plan(b, n, &stream, &err), 0);
	for (uint32_t i = 0; i < n; i++) {
		assert_true(b[i].page_count * b[i].page_size == b[i].size);
		assert_int_equal(b[i].pages_offset % MRS_PAGES_ALIGN, 0);
		assert_int_equal(b[i].bitmap_offset % MRS_META_ALIGN, 0);
		assert_int_equal(b[i].hashes_offset % MRS_META_ALIGN, 0);
		assert_true(b[i].bitmap_length * 8 >= b[i].page_count);
		/* The last page of the block still ends before the stream. */
		assert_true(b[i].pages_offset + (b[i].page_count - 1) * b[i].page_size +
				b[i].page_size <=
			    stream);
	}
	/* The layout checker agrees: everything inside the file, no overlap. */
	sb.block_count = n;
	sb.stream_offset = stream;
	sb.stream_length = 4096;
	assert_int_equal(mrs_layout_check(&sb, b, stream + 4096, &err), 0);
	/* One byte short and the stream runs past the end. */
	assert_int_equal(mrs_layout_check(&sb, b, stream + 4095, &err), -EPROTO);
	assert_msg_has(&err, "control stream at offset");
	/* The stream belongs to no block: a build that said "control stream of block 0" failed here. */
	assert_null(strstr(err.msg, "of block"));
	free(b);
}

static void test_layout_small(void **state)
{
	uint64_t sizes[] = {4096};
	uint32_t ps[] = {4096};

	check_plan(sizes, ps, 1);
}

static void test_layout_above_4g_and_huge_pages(void **state)
{
	uint64_t sizes[] = {6 * GiB + 4096, 16 * GiB, 2 * MiB, 5 * GiB};
	uint32_t ps[] = {4096, 2 * MiB, 2 * MiB, 4096};

	check_plan(sizes, ps, 4);
}

static void test_layout_many_blocks(void **state)
{
	uint64_t sizes[MRS_MAX_BLOCKS];
	uint32_t ps[MRS_MAX_BLOCKS];

	for (unsigned i = 0; i < MRS_MAX_BLOCKS; i++) {
		sizes[i] = (uint64_t)(i % 7 + 1) * 4096 * 33;
		ps[i] = 4096;
	}
	check_plan(sizes, ps, MRS_MAX_BLOCKS);
}

static void test_layout_overflow(void **state)
{
	struct mrs_block_header b[2] = {0};
	struct mrs_error err = {0};
	uint64_t stream;

	b[0].size = 1ull << 63;
	b[0].page_size = 4096;
	b[1].size = 1ull << 63;
	b[1].page_size = 4096;
	assert_int_equal(mrs_layout_plan(b, 2, &stream, &err), -EFBIG);
	assert_msg_has(&err, "overflow");

	b[0].size = 4097; /* not a multiple of the page size */
	assert_int_equal(mrs_layout_plan(b, 1, &stream, &err), -EINVAL);
}

/* A valid plan of two blocks that tests then break in one way each. */
static void plan_two(struct mrs_superblock *sb, struct mrs_block_header b[2], uint64_t *file_size)
{
	struct mrs_error err = {0};

	memset(b, 0, 2 * sizeof(*b));
	*sb = sample_sb();
	sb->block_count = 2;
	for (int i = 0; i < 2; i++) {
		b[i].index = (uint32_t)i;
		b[i].size = 64 * MiB;
		b[i].page_size = 4096;
	}
	assert_int_equal(mrs_layout_plan(b, 2, &sb->stream_offset, &err), 0);
	sb->stream_length = 4096;
	*file_size = sb->stream_offset + 4096;
}

static void test_layout_check_rejections(void **state)
{
	struct mrs_superblock sb;
	struct mrs_block_header b[2];
	struct mrs_error err = {0};
	uint64_t size;

	plan_two(&sb, b, &size);
	b[1].pages_offset = b[0].pages_offset + MRS_PAGES_ALIGN; /* overlaps block 0 */
	assert_int_equal(mrs_layout_check(&sb, b, size, &err), -EPROTO);
	assert_msg_has(&err, "overlaps");

	plan_two(&sb, b, &size);
	b[0].hashes_offset = b[0].bitmap_offset; /* table over bitmap */
	assert_int_equal(mrs_layout_check(&sb, b, size, &err), -EPROTO);
	assert_msg_has(&err, "overlaps");

	plan_two(&sb, b, &size);
	b[1].pages_offset = UINT64_MAX - MRS_PAGES_ALIGN + 1; /* offset + size overflows */
	assert_int_equal(mrs_layout_check(&sb, b, size, &err), -EPROTO);
	assert_msg_has(&err, "past the end of the file");

	plan_two(&sb, b, &size);
	b[0].pages_offset += 4096; /* not 1 MiB aligned */
	assert_int_equal(mrs_layout_check(&sb, b, size, &err), -EPROTO);
	assert_msg_has(&err, "not aligned");

	plan_two(&sb, b, &size);
	sb.stream_offset = b[1].pages_offset; /* stream inside a page region */
	assert_int_equal(mrs_layout_check(&sb, b, size, &err), -EPROTO);
	assert_msg_has(&err, "overlaps");

	/* A small region nested inside a large one that is not its neighbour. */
	plan_two(&sb, b, &size);
	b[1].bitmap_offset = b[0].pages_offset + 8 * MiB;
	assert_int_equal(mrs_layout_check(&sb, b, size, &err), -EPROTO);
	assert_msg_has(&err, "overlaps");
}

/*
 * The device-state region is checked like every other region: the writer's
 * place for it passes; unaligned, past the end of the file, or overlapping
 * the stream or a page region fails, naming it. Catches a reader that
 * would let the VMM's bytes alias the image's own metadata or pages.
 */
static void test_layout_device_region(void **state)
{
	struct mrs_superblock sb;
	struct mrs_block_header b[2];
	struct mrs_error err = {0};
	uint64_t size, dev;

	plan_two(&sb, b, &size);
	assert_true(mrs_devstate_offset(sb.stream_offset, &dev));
	assert_int_equal(dev % MRS_PAGES_ALIGN, 0);
	assert_true(dev >= sb.stream_offset + MRS_STREAM_MAX);
	assert_int_equal(mrs_layout_check_device(&sb, b, dev, 300000, dev + 300000, &err), 0);
	/* Past the end of the file. */
	assert_int_equal(mrs_layout_check_device(&sb, b, dev, 300000, dev + 299999, &err), -EPROTO);
	assert_msg_has(&err, "device-state region at offset");
	assert_msg_has(&err, "past the end of the file");
	/* Not 4 KiB aligned. */
	assert_int_equal(mrs_layout_check_device(&sb, b, dev + 512, 300000, dev + MiB, &err),
			 -EPROTO);
	assert_msg_has(&err, "device-state region at offset");
	assert_msg_has(&err, "not aligned");
	/* Over the stream. */
	assert_int_equal(mrs_layout_check_device(&sb, b, sb.stream_offset, 8192, size + 8192, &err),
			 -EPROTO);
	assert_msg_has(&err, "device-state region");
	assert_msg_has(&err, "overlaps");
	/* Over a page region. */
	assert_int_equal(
	    mrs_layout_check_device(&sb, b, b[1].pages_offset + 4096, 4096, size, &err), -EPROTO);
	assert_msg_has(&err, "device-state region");
	assert_msg_has(&err, "overlaps page region of block 1");
	assert_false(mrs_devstate_offset(UINT64_MAX - 4096, &dev));
}

static void test_bitmap_check(void **state)
{
	struct mrs_block_header bh = {.page_count = 10, .bitmap_length = 8, .pages_present = 2};
	struct mrs_error err = {0};
	uint8_t bitmap[8] = {0};

	strcpy(bh.name, "pc.ram");
	mrs_bitmap_set(bitmap, 0);
	mrs_bitmap_set(bitmap, 9);
	assert_true(mrs_bitmap_test(bitmap, 9));
	assert_false(mrs_bitmap_test(bitmap, 8));
	assert_int_equal(mrs_bitmap_check(&bh, bitmap, &err), 0);

	mrs_bitmap_set(bitmap, 10); /* past the last page */
	bh.pages_present = 3;
	assert_int_equal(mrs_bitmap_check(&bh, bitmap, &err), -EPROTO);
	assert_msg_has(&err, "page 10");

	bitmap[1] = 0x02; /* page 9 only */
	assert_int_equal(mrs_bitmap_check(&bh, bitmap, &err), -EPROTO);
	assert_msg_has(&err, "marks 2 pages present, header says 3");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_byte_order),
	    cmocka_unit_test(test_superblock_round_trip),
	    cmocka_unit_test(test_block_header_round_trip),
	    cmocka_unit_test(test_superblock_any_byte_corruption),
	    cmocka_unit_test(test_block_header_any_byte_corruption),
	    cmocka_unit_test(test_superblock_rejections),
	    cmocka_unit_test(test_block_header_rejections),
	    cmocka_unit_test(test_failed_decode_leaves_zeros),
	    cmocka_unit_test(test_layout_small),
	    cmocka_unit_test(test_layout_above_4g_and_huge_pages),
	    cmocka_unit_test(test_layout_many_blocks),
	    cmocka_unit_test(test_layout_overflow),
	    cmocka_unit_test(test_layout_check_rejections),
	    cmocka_unit_test(test_layout_device_region),
	    cmocka_unit_test(test_bitmap_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
