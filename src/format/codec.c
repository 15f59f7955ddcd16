/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "error.h"
#include "codec.h"

/* Superblock field offsets (see mrsnap-image(5)). */
enum {
	SB_MAGIC = 0,
	SB_VERSION = 8,
	SB_SIZE_FIELD = 12,
	SB_FLAGS = 16,
	SB_CREATED = 24,
	SB_TOOL = 32,
	SB_BLOCK_COUNT = 64,
	SB_BH_SIZE = 68,
	SB_BLOCK_TABLE = 72,
	SB_STREAM_OFFSET = 80,
	SB_STREAM_LENGTH = 88,
	SB_CHECKSUM = MRS_SB_SIZE - 8,
};

/* Block header field offsets. */
enum {
	BH_MAGIC = 0,
	BH_SIZE_FIELD = 8,
	BH_INDEX = 12,
	BH_SIZE = 16,
	BH_PAGE_SIZE = 24,
	BH_FLAGS = 28,
	BH_PAGE_COUNT = 32,
	BH_PRESENT = 40,
	BH_BITMAP_OFFSET = 48,
	BH_BITMAP_LENGTH = 56,
	BH_HASHES_OFFSET = 64,
	BH_HASHES_LENGTH = 72,
	BH_PAGES_OFFSET = 80,
	BH_BITMAP_CHECKSUM = 88,
	BH_HASHES_CHECKSUM = 96,
	BH_NAME = 128,
	BH_PATH = BH_NAME + MRS_NAME_FIELD,
	BH_CHECKSUM = MRS_BH_SIZE - 8,
};

_Static_assert(BH_PATH + MRS_PATH_FIELD == BH_CHECKSUM, "block header fields must tile");
_Static_assert(SB_TOOL + MRS_TOOL_VERSION_LEN == SB_BLOCK_COUNT, "superblock fields must tile");

void mrs_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void mrs_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t mrs_get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t mrs_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void mrs_put_hash(uint8_t *p, uint64_t h)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(h >> (56 - 8 * i));
}

uint64_t mrs_get_hash(const uint8_t *p)
{
	uint64_t h = 0;

	for (int i = 0; i < 8; i++)
		h = (h << 8) | p[i];
	return h;
}

uint64_t mrs_hash(const void *buf, size_t len)
{
	return XXH3_64bits(buf, len);
}

/* struct mrs_hash_state is xxhash's own state: callers see only the name. */
struct mrs_hash_state *mrs_hash_begin(void)
{
	XXH3_state_t *st = XXH3_createState();

	if (st)
		XXH3_64bits_reset(st);
	return (struct mrs_hash_state *)st;
}

void mrs_hash_add(struct mrs_hash_state *st, const void *buf, size_t len)
{
	XXH3_64bits_update((XXH3_state_t *)st, buf, len);
}

uint64_t mrs_hash_end(struct mrs_hash_state *st)
{
	uint64_t h = XXH3_64bits_digest((XXH3_state_t *)st);

	XXH3_freeState((XXH3_state_t *)st);
	return h;
}

bool mrs_add_ok(uint64_t a, uint64_t b, uint64_t *sum)
{
	return !__builtin_add_overflow(a, b, sum);
}

bool mrs_align_up_ok(uint64_t v, uint64_t align, uint64_t *out)
{
	uint64_t bumped;

	if (!mrs_add_ok(v, align - 1, &bumped))
		return false;
	*out = bumped & ~(align - 1);
	return true;
}

bool mrs_page_size_ok(uint64_t page_size)
{
	return page_size >= MRS_MIN_PAGE && page_size <= MRS_MAX_PAGE &&
	       (page_size & (page_size - 1)) == 0;
}

uint64_t mrs_bitmap_bytes(uint64_t page_count)
{
	/* page_count <= 2^52 (size < 2^64, page >= 4 KiB): no overflow here. */
	return (page_count + 63) / 64 * 8;
}

bool mrs_text_field_ok(const uint8_t *field, size_t size, size_t *len)
{
	const uint8_t *nul = memchr(field, 0, size);

	if (!nul)
		return false;
	*len = (size_t)(nul - field);
	for (const uint8_t *p = nul; p < field + size; p++)
		if (*p)
			return false;
	return true;
}

void mrs_put_text(uint8_t *field, const char *text, size_t size)
{
	memcpy(field, text, strnlen(text, size - 1));
}

void mrs_sb_encode(const struct mrs_superblock *sb, uint8_t out[MRS_SB_SIZE])
{
	memset(out, 0, MRS_SB_SIZE);
	memcpy(out + SB_MAGIC, MRS_SB_MAGIC, 8);
	mrs_put_le32(out + SB_VERSION, sb->version);
	mrs_put_le32(out + SB_SIZE_FIELD, MRS_SB_SIZE);
	mrs_put_le64(out + SB_FLAGS, sb->flags);
	mrs_put_le64(out + SB_CREATED, sb->created_ns);
	mrs_put_text(out + SB_TOOL, sb->tool_version, MRS_TOOL_VERSION_LEN);
	mrs_put_le32(out + SB_BLOCK_COUNT, sb->block_count);
	mrs_put_le32(out + SB_BH_SIZE, MRS_BH_SIZE);
	mrs_put_le64(out + SB_BLOCK_TABLE, sb->block_table_offset);
	mrs_put_le64(out + SB_STREAM_OFFSET, sb->stream_offset);
	mrs_put_le64(out + SB_STREAM_LENGTH, sb->stream_length);
	mrs_put_hash(out + SB_CHECKSUM, mrs_hash(out, SB_CHECKSUM));
}

int mrs_sb_decode(const uint8_t in[MRS_SB_SIZE], struct mrs_superblock *sb, struct mrs_error *err)
{
	uint64_t want, got;
	size_t len;

	/* Whatever fails, the caller gets defined fields, never its old bytes. */
	memset(sb, 0, sizeof(*sb));
	if (memcmp(in + SB_MAGIC, MRS_SB_MAGIC, 8) != 0)
		return mrs_err(err, -EPROTO, "not an mrsnap image (bad magic)");
	sb->version = mrs_get_le32(in + SB_VERSION);
	if (sb->version != MRS_FORMAT_VERSION)
		return mrs_err(err, -EPROTONOSUPPORT,
			       "image format version %" PRIu32
			       " is not supported (this mrsnap reads version %d)",
			       sb->version, MRS_FORMAT_VERSION);
	want = mrs_get_hash(in + SB_CHECKSUM);
	got = mrs_hash(in, SB_CHECKSUM);
	if (want != got)
		return mrs_err(err, -EPROTO,
			       "superblock checksum mismatch (stored %016" PRIx64
			       ", computed %016" PRIx64 ")",
			       want, got);
	if (mrs_get_le32(in + SB_SIZE_FIELD) != MRS_SB_SIZE)
		return mrs_err(err, -EPROTO, "superblock size %" PRIu32 " is not %u",
			       mrs_get_le32(in + SB_SIZE_FIELD), MRS_SB_SIZE);
	sb->flags = mrs_get_le64(in + SB_FLAGS);
	if (sb->flags & ~MRS_SB_KNOWN_FLAGS)
		return mrs_err(err, -EPROTO,
			       "unknown superblock flags 0x%" PRIx64 " at offset 0x%x",
			       sb->flags & ~MRS_SB_KNOWN_FLAGS, SB_FLAGS);
	sb->created_ns = mrs_get_le64(in + SB_CREATED);
	if (!mrs_text_field_ok(in + SB_TOOL, MRS_TOOL_VERSION_LEN, &len))
		return mrs_err(err, -EPROTO, "superblock tool version is not terminated");
	memcpy(sb->tool_version, in + SB_TOOL, MRS_TOOL_VERSION_LEN);
	sb->block_count = mrs_get_le32(in + SB_BLOCK_COUNT);
	if (sb->block_count == 0 || sb->block_count > MRS_MAX_BLOCKS)
		return mrs_err(err, -EPROTO, "block count %" PRIu32 " is not within 1..%u",
			       sb->block_count, MRS_MAX_BLOCKS);
	if (mrs_get_le32(in + SB_BH_SIZE) != MRS_BH_SIZE)
		return mrs_err(err, -EPROTO, "block header size %" PRIu32 " is not %u",
			       mrs_get_le32(in + SB_BH_SIZE), MRS_BH_SIZE);
	sb->block_table_offset = mrs_get_le64(in + SB_BLOCK_TABLE);
	sb->stream_offset = mrs_get_le64(in + SB_STREAM_OFFSET);
	sb->stream_length = mrs_get_le64(in + SB_STREAM_LENGTH);
	if ((sb->flags & MRS_SB_COMPLETE) && sb->stream_length == 0)
		return mrs_err(err, -EPROTO, "superblock says complete but records no stream");
	if (sb->stream_length > MRS_STREAM_MAX)
		return mrs_err(err, -EPROTO,
			       "control stream at offset 0x%" PRIx64 " is %" PRIu64
			       " bytes long, more than the %u a stream may have",
			       sb->stream_offset, sb->stream_length, MRS_STREAM_MAX);
	return 0;
}

void mrs_bh_encode(const struct mrs_block_header *bh, uint8_t out[MRS_BH_SIZE])
{
	memset(out, 0, MRS_BH_SIZE);
	memcpy(out + BH_MAGIC, MRS_BH_MAGIC, 8);
	mrs_put_le32(out + BH_SIZE_FIELD, MRS_BH_SIZE);
	mrs_put_le32(out + BH_INDEX, bh->index);
	mrs_put_le64(out + BH_SIZE, bh->size);
	mrs_put_le32(out + BH_PAGE_SIZE, bh->page_size);
	mrs_put_le64(out + BH_PAGE_COUNT, bh->page_count);
	mrs_put_le64(out + BH_PRESENT, bh->pages_present);
	mrs_put_le64(out + BH_BITMAP_OFFSET, bh->bitmap_offset);
	mrs_put_le64(out + BH_BITMAP_LENGTH, bh->bitmap_length);
	mrs_put_le64(out + BH_HASHES_OFFSET, bh->hashes_offset);
	mrs_put_le64(out + BH_HASHES_LENGTH, bh->hashes_length);
	mrs_put_le64(out + BH_PAGES_OFFSET, bh->pages_offset);
	mrs_put_hash(out + BH_BITMAP_CHECKSUM, bh->bitmap_checksum);
	mrs_put_hash(out + BH_HASHES_CHECKSUM, bh->hashes_checksum);
	mrs_put_text(out + BH_NAME, bh->name, MRS_NAME_FIELD);
	mrs_put_text(out + BH_PATH, bh->path, MRS_PATH_FIELD);
	mrs_put_hash(out + BH_CHECKSUM, mrs_hash(out, BH_CHECKSUM));
}

/* The checks that need only the header's own fields. */
static int bh_check_fields(const struct mrs_block_header *bh, struct mrs_error *err)
{
	if (!mrs_page_size_ok(bh->page_size))
		return mrs_err(err, -EPROTO,
			       "page size %" PRIu32 " is not a power of two in %u..%u",
			       bh->page_size, MRS_MIN_PAGE, MRS_MAX_PAGE);
	if (bh->size == 0 || bh->size % bh->page_size)
		return mrs_err(err, -EPROTO,
			       "size %" PRIu64
			       " is not a positive multiple of the page size %" PRIu32,
			       bh->size, bh->page_size);
	if (bh->page_count != bh->size / bh->page_size)
		return mrs_err(err, -EPROTO,
			       "page count %" PRIu64 " does not match size / page size",
			       bh->page_count);
	if (bh->pages_present > bh->page_count)
		return mrs_err(err, -EPROTO, "%" PRIu64 " pages present of only %" PRIu64,
			       bh->pages_present, bh->page_count);
	if (bh->bitmap_length != mrs_bitmap_bytes(bh->page_count))
		return mrs_err(err, -EPROTO, "bitmap length %" PRIu64 " is not %" PRIu64,
			       bh->bitmap_length, mrs_bitmap_bytes(bh->page_count));
	if (bh->hashes_length != bh->page_count * MRS_HASH_SIZE)
		return mrs_err(err, -EPROTO, "checksum table length %" PRIu64 " is not %" PRIu64,
			       bh->hashes_length, bh->page_count * MRS_HASH_SIZE);
	return 0;
}

int mrs_bh_decode(const uint8_t in[MRS_BH_SIZE], struct mrs_block_header *bh, struct mrs_error *err)
{
	uint64_t want, got;
	size_t len;

	memset(bh, 0, sizeof(*bh)); /* as in mrs_sb_decode */
	if (memcmp(in + BH_MAGIC, MRS_BH_MAGIC, 8) != 0)
		return mrs_err(err, -EPROTO, "bad block header magic");
	want = mrs_get_hash(in + BH_CHECKSUM);
	got = mrs_hash(in, BH_CHECKSUM);
	if (want != got)
		return mrs_err(err, -EPROTO,
			       "block header checksum mismatch (stored %016" PRIx64
			       ", computed %016" PRIx64 ")",
			       want, got);
	if (mrs_get_le32(in + BH_SIZE_FIELD) != MRS_BH_SIZE)
		return mrs_err(err, -EPROTO, "block header size %" PRIu32 " is not %u",
			       mrs_get_le32(in + BH_SIZE_FIELD), MRS_BH_SIZE);
	if (mrs_get_le32(in + BH_FLAGS) != 0)
		return mrs_err(err, -EPROTO,
			       "unknown block flags 0x%" PRIx32 " at header offset 0x%x",
			       mrs_get_le32(in + BH_FLAGS), BH_FLAGS);
	if (!mrs_text_field_ok(in + BH_NAME, MRS_NAME_FIELD, &len) || len == 0)
		return mrs_err(err, -EPROTO, "block name is empty or not terminated");
	memcpy(bh->name, in + BH_NAME, MRS_NAME_FIELD);
	if (!mrs_text_field_ok(in + BH_PATH, MRS_PATH_FIELD, &len))
		return mrs_err(err, -EPROTO, "block '%s': source path is not terminated", bh->name);
	memcpy(bh->path, in + BH_PATH, MRS_PATH_FIELD);
	bh->index = mrs_get_le32(in + BH_INDEX);
	bh->size = mrs_get_le64(in + BH_SIZE);
	bh->page_size = mrs_get_le32(in + BH_PAGE_SIZE);
	bh->page_count = mrs_get_le64(in + BH_PAGE_COUNT);
	bh->pages_present = mrs_get_le64(in + BH_PRESENT);
	bh->bitmap_offset = mrs_get_le64(in + BH_BITMAP_OFFSET);
	bh->bitmap_length = mrs_get_le64(in + BH_BITMAP_LENGTH);
	bh->hashes_offset = mrs_get_le64(in + BH_HASHES_OFFSET);
	bh->hashes_length = mrs_get_le64(in + BH_HASHES_LENGTH);
	bh->pages_offset = mrs_get_le64(in + BH_PAGES_OFFSET);
	bh->bitmap_checksum = mrs_get_hash(in + BH_BITMAP_CHECKSUM);
	bh->hashes_checksum = mrs_get_hash(in + BH_HASHES_CHECKSUM);
	if (bh_check_fields(bh, err))
		return mrs_err_prefix(err, "block '%s'", bh->name);
	return 0;
}

/* Place len bytes at the next multiple of align at or after *cursor. */
static bool place(uint64_t *cursor, uint64_t align, uint64_t len, uint64_t *offset)
{
	if (!mrs_align_up_ok(*cursor, align, offset))
		return false;
	return mrs_add_ok(*offset, len, cursor);
}

int mrs_layout_plan(struct mrs_block_header *blocks, uint32_t n, uint64_t *stream_offset,
		    struct mrs_error *err)
{
	uint64_t cursor;

	if (n == 0 || n > MRS_MAX_BLOCKS)
		return mrs_err(err, -EINVAL, "an image holds 1 to %u blocks, not %" PRIu32,
			       MRS_MAX_BLOCKS, n);
	cursor = MRS_SB_AREA + (uint64_t)n * MRS_BH_SIZE;
	/* Metadata first, so the page regions form one tail of the file. */
	for (uint32_t i = 0; i < n; i++) {
		struct mrs_block_header *b = &blocks[i];

		if (!mrs_page_size_ok(b->page_size) || b->size == 0 || b->size % b->page_size)
			return mrs_err(err, -EINVAL,
				       "block '%s': size %" PRIu64
				       " is not a positive multiple of page size %" PRIu32,
				       b->name, b->size, b->page_size);
		b->page_count = b->size / b->page_size;
		b->bitmap_length = mrs_bitmap_bytes(b->page_count);
		b->hashes_length = b->page_count * MRS_HASH_SIZE;
		if (!place(&cursor, MRS_META_ALIGN, b->bitmap_length, &b->bitmap_offset) ||
		    !place(&cursor, MRS_META_ALIGN, b->hashes_length, &b->hashes_offset))
			goto overflow;
	}
	for (uint32_t i = 0; i < n; i++)
		if (!place(&cursor, MRS_PAGES_ALIGN, blocks[i].size, &blocks[i].pages_offset))
			goto overflow;
	if (!mrs_align_up_ok(cursor, MRS_META_ALIGN, stream_offset))
		goto overflow;
	return 0;
overflow:
	return mrs_err(err, -EFBIG, "the blocks are too large for one image (offsets overflow)");
}

struct region {
	uint64_t start, end;
	const char *what;
	uint32_t block;
};

static int region_cmp(const void *a, const void *b)
{
	const struct region *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Regions of the whole image (superblock, block table, stream) have no block. */
#define NO_BLOCK UINT32_MAX

/* "control stream", "bitmap of block 2": for messages. */
static const char *region_name(char *buf, size_t len, const char *what, uint32_t block)
{
	if (block == NO_BLOCK)
		return what;
	snprintf(buf, len, "%s of block %" PRIu32, what, block);
	return buf;
}

/* Add [offset, offset+len) to the list after checking it fits in the file. */
static int region_add(struct region *r, size_t *count, uint64_t offset, uint64_t len,
		      uint64_t align, const char *what, uint32_t block, uint64_t file_size,
		      struct mrs_error *err)
{
	char name[64];
	uint64_t end;

	if (offset % align)
		return mrs_err(err, -EPROTO, "%s at offset 0x%" PRIx64 " is not aligned to %" PRIu64
			       " bytes",
			       region_name(name, sizeof(name), what, block), offset, align);
	if (!mrs_add_ok(offset, len, &end) || end > file_size)
		return mrs_err(err, -EPROTO,
			       "%s at offset 0x%" PRIx64 " (%" PRIu64
			       " bytes) runs past the end of the file (%" PRIu64 " bytes)",
			       region_name(name, sizeof(name), what, block), offset, len, file_size);
	r[*count] = (struct region){offset, end, what, block};
	(*count)++;
	return 0;
}

/* The layout, with the device-state region if dev_length is not 0. */
static int layout_check(const struct mrs_superblock *sb, const struct mrs_block_header *blocks,
			uint64_t dev_offset, uint64_t dev_length, uint64_t file_size,
			struct mrs_error *err)
{
	uint32_t n = sb->block_count;
	size_t count = 0, max = 4 + 3 * (size_t)n;
	struct region *r;
	int ret;

	r = calloc(max, sizeof(*r));
	if (!r)
		return mrs_err(err, -ENOMEM, "out of memory");
	ret = region_add(r, &count, 0, MRS_SB_AREA, 1, "superblock", NO_BLOCK, file_size, err);
	if (!ret)
		ret = region_add(r, &count, sb->block_table_offset, (uint64_t)n * MRS_BH_SIZE,
				 MRS_META_ALIGN, "block table", NO_BLOCK, file_size, err);
	if (!ret && sb->stream_length)
		ret = region_add(r, &count, sb->stream_offset, sb->stream_length, MRS_META_ALIGN,
				 "control stream", NO_BLOCK, file_size, err);
	if (!ret && dev_length)
		ret = region_add(r, &count, dev_offset, dev_length, MRS_DEVICE_ALIGN,
				 "device-state region", NO_BLOCK, file_size, err);
	for (uint32_t i = 0; !ret && i < n; i++) {
		const struct mrs_block_header *b = &blocks[i];

		ret = region_add(r, &count, b->bitmap_offset, b->bitmap_length, 8, "bitmap", i,
				 file_size, err);
		if (!ret)
			ret = region_add(r, &count, b->hashes_offset, b->hashes_length, 8,
					 "checksum table", i, file_size, err);
		if (!ret)
			ret = region_add(r, &count, b->pages_offset, b->size, MRS_PAGES_ALIGN,
					 "page region", i, file_size, err);
	}
	if (ret)
		goto out;
	qsort(r, count, sizeof(*r), region_cmp);
	/* Sorted by start, a region overlaps an earlier one iff it starts
	 * before the furthest end seen so far (regions are never empty). */
	for (size_t i = 1, far = 0; i < count; i++) {
		if (r[i].start < r[far].end) {
			char a[64], b[64];

			ret = mrs_err(err, -EPROTO, "%s at 0x%" PRIx64 " overlaps %s at 0x%" PRIx64,
				      region_name(a, sizeof(a), r[i].what, r[i].block), r[i].start,
				      region_name(b, sizeof(b), r[far].what, r[far].block),
				      r[far].start);
			goto out;
		}
		if (r[i].end > r[far].end)
			far = i;
	}
out:
	free(r);
	return ret;
}

int mrs_layout_check(const struct mrs_superblock *sb, const struct mrs_block_header *blocks,
		     uint64_t file_size, struct mrs_error *err)
{
	return layout_check(sb, blocks, 0, 0, file_size, err);
}

int mrs_layout_check_device(const struct mrs_superblock *sb, const struct mrs_block_header *blocks,
			    uint64_t dev_offset, uint64_t dev_length, uint64_t file_size,
			    struct mrs_error *err)
{
	return layout_check(sb, blocks, dev_offset, dev_length, file_size, err);
}

bool mrs_devstate_offset(uint64_t stream_offset, uint64_t *offset)
{
	uint64_t end;

	return mrs_add_ok(stream_offset, MRS_STREAM_MAX, &end) &&
	       mrs_align_up_ok(end, MRS_PAGES_ALIGN, offset);
}

int mrs_bitmap_check(const struct mrs_block_header *bh, const uint8_t *bitmap,
		     struct mrs_error *err)
{
	uint64_t set = 0;

	for (uint64_t byte = 0; byte < bh->bitmap_length; byte++) {
		uint8_t v = bitmap[byte];

		if (!v)
			continue;
		set += (uint64_t)__builtin_popcount(v);
		/* The highest set bit of this byte must be a real page. */
		if (byte * 8 + (uint64_t)(31 - __builtin_clz(v)) >= bh->page_count)
			return mrs_err(err, -EPROTO,
				       "block '%s': bitmap marks page %" PRIu64
				       " present, past the last page %" PRIu64,
				       bh->name, byte * 8 + (uint64_t)(31 - __builtin_clz(v)),
				       bh->page_count - 1);
	}
	if (set != bh->pages_present)
		return mrs_err(err, -EPROTO,
			       "block '%s': bitmap marks %" PRIu64
			       " pages present, header says %" PRIu64,
			       bh->name, set, bh->pages_present);
	return 0;
}
