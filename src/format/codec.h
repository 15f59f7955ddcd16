/* SPDX-License-Identifier: MIT */
/*
 * The on-disk image format, version 1: constants, the in-memory form of each
 * structure, encode/decode between the two, and layout arithmetic.
 *
 * Nothing here does I/O: callers hand in byte buffers. man/mrsnap-image.5 is
 * the byte-by-byte description; keep the two in step.
 *
 * Byte order: every integer is little-endian; every xxh3-64 digest is stored
 * in xxHash's canonical (big-endian) form, as xxhsum prints it.
 */
#ifndef MRS_CODEC_H
#define MRS_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#include "mrsnap.h"

#define MRS_FORMAT_VERSION 1

#define MRS_SB_MAGIC	     "MRSNAPIM" /* 8 bytes, no terminator on disk */
#define MRS_SB_SIZE	     256u	/* encoded superblock */
#define MRS_SB_AREA	     4096u	/* space reserved for it at offset 0 */
#define MRS_SB_COMPLETE	     ((uint64_t)1 << 0)
#define MRS_SB_LIVE	     ((uint64_t)1 << 1)
#define MRS_SB_KNOWN_FLAGS   (MRS_SB_COMPLETE | MRS_SB_LIVE)
#define MRS_TOOL_VERSION_LEN 32u

#define MRS_BH_MAGIC	"MRSBLOCK"
#define MRS_BH_SIZE	4096u
#define MRS_NAME_FIELD	64u   /* name: 1..63 bytes plus NUL */
#define MRS_PATH_FIELD	3896u /* source path: 0..3895 bytes plus NUL */
#define MRS_MAX_BLOCKS	1024u
#define MRS_MIN_PAGE	4096u
#define MRS_MAX_PAGE	(1u << 30)
#define MRS_META_ALIGN	4096u		/* bitmaps, checksum tables, stream */
#define MRS_PAGES_ALIGN (1024u * 1024u) /* page regions: O_DIRECT anywhere */
#define MRS_HASH_SIZE	8u		/* one xxh3-64 per page */
/*
 * The control stream is read whole into memory, so its length is capped:
 * readers refuse a longer one before allocating anything for it, and
 * writers cannot make one (mrs_stream_append fails with -EFBIG).
 */
#define MRS_STREAM_MAX (16u * 1024u * 1024u)
/*
 * The device-state region (a VMM's opaque state, described by the stream's
 * DEVICE record): 4 KiB-aligned anywhere in the file, overlapping nothing.
 */
#define MRS_DEVICE_ALIGN 4096u

struct mrs_superblock {
	uint32_t version;
	uint64_t flags;
	uint64_t created_ns; /* wall clock, nanoseconds since the Unix epoch */
	char tool_version[MRS_TOOL_VERSION_LEN];
	uint32_t block_count;
	uint64_t block_table_offset;
	uint64_t stream_offset;
	uint64_t stream_length; /* 0 until the image is complete */
};

struct mrs_block_header {
	uint32_t index;
	uint64_t size;
	uint32_t page_size;
	uint64_t page_count;
	uint64_t pages_present;
	uint64_t bitmap_offset;
	uint64_t bitmap_length;
	uint64_t hashes_offset;
	uint64_t hashes_length;
	uint64_t pages_offset;
	uint64_t bitmap_checksum;
	uint64_t hashes_checksum;
	char name[MRS_NAME_FIELD];
	char path[MRS_PATH_FIELD];
};

/* Little-endian and canonical-digest helpers, for this file and the stream. */
void mrs_put_le32(uint8_t *p, uint32_t v);
void mrs_put_le64(uint8_t *p, uint64_t v);
uint32_t mrs_get_le32(const uint8_t *p);
uint64_t mrs_get_le64(const uint8_t *p);
void mrs_put_hash(uint8_t *p, uint64_t h);
uint64_t mrs_get_hash(const uint8_t *p);

/* xxh3-64 of a buffer: the one hash the format uses. */
uint64_t mrs_hash(const void *buf, size_t len);
/* The same hash of a page given in pieces, in order: begin (NULL: no memory), add, end (frees). */
struct mrs_hash_state;
struct mrs_hash_state *mrs_hash_begin(void);
void mrs_hash_add(struct mrs_hash_state *st, const void *buf, size_t len);
uint64_t mrs_hash_end(struct mrs_hash_state *st);

/* A fixed-size text field: NUL-terminated inside the field, NUL-padded (*len: its length). */
bool mrs_text_field_ok(const uint8_t *field, size_t size, size_t *len);
/* Copy text into a zeroed field, always leaving room for the terminator. */
void mrs_put_text(uint8_t *field, const char *text, size_t size);

void mrs_sb_encode(const struct mrs_superblock *sb, uint8_t out[MRS_SB_SIZE]);
/*
 * Decode and check a superblock: magic, version, checksum, flags, sizes.
 * Returns 0, -EPROTO for a damaged superblock or -EPROTONOSUPPORT for
 * another format version (a code no I/O path returns: see mrsnap.h).
 * On failure *sb is zeroed, but for the fields decoded before the fault.
 */
int mrs_sb_decode(const uint8_t in[MRS_SB_SIZE], struct mrs_superblock *sb, struct mrs_error *err);

void mrs_bh_encode(const struct mrs_block_header *bh, uint8_t out[MRS_BH_SIZE]);
/*
 * Decode and check one block header on its own (not its place in the file).
 * On failure *bh is zeroed, but for the fields decoded before the fault.
 */
int mrs_bh_decode(const uint8_t in[MRS_BH_SIZE], struct mrs_block_header *bh,
		  struct mrs_error *err);

/* Bytes of the presence bitmap for page_count pages (whole 8-byte words). */
uint64_t mrs_bitmap_bytes(uint64_t page_count);

/* Checked arithmetic: false on overflow. */
bool mrs_add_ok(uint64_t a, uint64_t b, uint64_t *sum);
bool mrs_align_up_ok(uint64_t v, uint64_t align, uint64_t *out);

bool mrs_page_size_ok(uint64_t page_size);

/*
 * Plan a new image: given index, name, path, size and page_size of each
 * block, fill in page_count and every offset and length, and return the
 * offset at which the control stream starts (after the last page region).
 */
int mrs_layout_plan(struct mrs_block_header *blocks, uint32_t n, uint64_t *stream_offset,
		    struct mrs_error *err);

/*
 * Check the layout of an image read from a file of file_size bytes: every
 * region lies inside the file, is aligned as required, and overlaps no other.
 */
int mrs_layout_check(const struct mrs_superblock *sb, const struct mrs_block_header *blocks,
		     uint64_t file_size, struct mrs_error *err);

/*
 * The same, with the device-state region [dev_offset, dev_offset+dev_length)
 * too (dev_length 0: none): aligned to MRS_DEVICE_ALIGN, inside the file,
 * overlapping no other region.
 */
int mrs_layout_check_device(const struct mrs_superblock *sb, const struct mrs_block_header *blocks,
			    uint64_t dev_offset, uint64_t dev_length, uint64_t file_size,
			    struct mrs_error *err);

/*
 * Where a writer puts the device-state region of an image whose stream
 * starts at stream_offset: past the longest stream there can be
 * (MRS_STREAM_MAX), 1 MiB-aligned, so the stream never reaches it whatever
 * the rounds, and the gap is a hole. false on overflow.
 */
bool mrs_devstate_offset(uint64_t stream_offset, uint64_t *offset);

/*
 * Check a decoded bitmap: no bit set past page_count, and the number of set
 * bits equal to pages_present.
 */
int mrs_bitmap_check(const struct mrs_block_header *bh, const uint8_t *bitmap,
		     struct mrs_error *err);

static inline bool mrs_bitmap_test(const uint8_t *bitmap, uint64_t page)
{
	return bitmap[page / 8] & (1u << (page % 8));
}

static inline void mrs_bitmap_set(uint8_t *bitmap, uint64_t page)
{
	bitmap[page / 8] |= (uint8_t)(1u << (page % 8));
}

#endif
