/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the whole image open path (mrs_meta_read) on an
 * in-memory file.
 *
 * Images are mostly page regions aligned to 1 MiB, which a fuzzer gains
 * nothing from mutating. So an input describes a sparse file instead:
 *
 *   u64 file size, u64 tail offset, u32 head length, u32 fixes
 *   (little-endian), head bytes (written at offset 0), tail bytes (written
 *   at tail offset)
 *
 * which places metadata at the start and a control stream after the page
 * regions, with holes between, as a real image has.
 *
 * Every structure is checksummed, so a mutated field is almost always
 * refused for its checksum and the checks behind it are never reached (a
 * stream_length that made mrsnap allocate 525 MB went unfound that way).
 * The fixes bits make the target recompute checksums after mutation:
 *   FIX_SB       the superblock's
 *   FIX_HEADERS  each block header's found in the head (where the
 *                superblock says the table is)
 *   FIX_TABLES   in those headers, the checksums of bitmap and checksum
 *                table, when they lie in the head
 *   FIX_STREAM   each record's in the tail, and END's count and checksum
 * Seeds (tests/fuzz/mkseeds) set them all; the fuzzer flips them too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codec.h"
#include "metaio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Sparse, so it costs nothing on disk; but the checksum tables of a file
 * this large take file/512 bytes of memory (32 MiB), which must stay under
 * the malloc limit scripts/check runs the fuzzer with (-malloc_limit_mb=64)
 * so that only what a file cannot justify trips it.
 */
#define MAX_FILE (16ull << 30)

#define FIX_SB	    0x1u
#define FIX_HEADERS 0x2u
#define FIX_TABLES  0x4u
#define FIX_STREAM  0x8u

#define INPUT_HEADER 24u

static void reseal(uint8_t *buf, size_t size)
{
	mrs_put_hash(buf + size - 8, mrs_hash(buf, size - 8));
}

/* The checksum at bh + at of the len bytes at offset, if they lie in the head. */
static void fix_region(uint8_t *bh, size_t at, const uint8_t *head, size_t head_len,
		       uint64_t offset, uint64_t len)
{
	if (offset <= head_len && len <= head_len - offset)
		mrs_put_hash(bh + at, mrs_hash(head + offset, len));
}

static void fix_head(uint8_t *head, size_t len, unsigned fixes)
{
	uint64_t table;
	uint32_t count;

	if (len < MRS_SB_SIZE)
		return;
	table = mrs_get_le64(head + 72);
	count = mrs_get_le32(head + 64);
	for (uint32_t i = 0; i < count && i < MRS_MAX_BLOCKS; i++) {
		uint64_t at = table + (uint64_t)i * MRS_BH_SIZE;
		uint8_t *bh;

		if (at > len || MRS_BH_SIZE > len - at)
			break;
		bh = head + at;
		if (fixes & FIX_TABLES) {
			fix_region(bh, 88, head, len, mrs_get_le64(bh + 48), mrs_get_le64(bh + 56));
			fix_region(bh, 96, head, len, mrs_get_le64(bh + 64), mrs_get_le64(bh + 72));
		}
		if (fixes & FIX_HEADERS)
			reseal(bh, MRS_BH_SIZE);
	}
	if (fixes & FIX_SB)
		reseal(head, MRS_SB_SIZE);
}

/* Record checksums as mrsnap-image(5) defines them: flags, length, payload. */
static void fix_stream(uint8_t *s, size_t len)
{
	uint64_t records = 0;

	for (size_t pos = 0; len - pos >= MRS_REC_HEADER;) {
		uint8_t *rec = s + pos;
		uint32_t n = mrs_get_le32(rec + 4);
		uint8_t *tmp;

		if (n > len - pos - MRS_REC_HEADER)
			break;
		if (mrs_get_le32(rec) == MRS_REC_END && n == MRS_END_PAYLOAD) {
			mrs_put_le64(rec + MRS_REC_HEADER, records);
			mrs_put_hash(rec + MRS_REC_HEADER + 8, mrs_hash(s, pos));
		}
		tmp = malloc(8 + (size_t)n);
		if (!tmp)
			return;
		memcpy(tmp, rec, 8);
		memcpy(tmp + 8, rec + MRS_REC_HEADER, n);
		mrs_put_hash(rec + 8, mrs_hash(tmp, 8 + (size_t)n));
		free(tmp);
		pos += MRS_REC_HEADER + n;
		records++;
	}
}

static void open_image(int fd, unsigned flags)
{
	struct mrs_image_meta meta;
	struct mrs_error err;

	if (mrs_meta_read(fd, flags, &meta, &err) == 0)
		mrs_meta_free(&meta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t file_size, tail_at;
	uint32_t head_len;
	unsigned fixes;
	uint8_t *buf;
	int fd;

	if (size < INPUT_HEADER)
		return 0;
	file_size = mrs_get_le64(data) % MAX_FILE;
	tail_at = mrs_get_le64(data + 8) % MAX_FILE;
	head_len = mrs_get_le32(data + 16);
	fixes = mrs_get_le32(data + 20);
	data += INPUT_HEADER;
	size -= INPUT_HEADER;
	if (head_len > size)
		head_len = (uint32_t)size;
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	fix_head(buf, head_len, fixes);
	if (fixes & FIX_STREAM)
		fix_stream(buf + head_len, size - head_len);
	fd = memfd_create("image", MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, (off_t)file_size) == 0 &&
	    pwrite(fd, buf, head_len, 0) == (ssize_t)head_len &&
	    pwrite(fd, buf + head_len, size - head_len, (off_t)tail_at) ==
		(ssize_t)(size - head_len)) {
		open_image(fd, 0);
		open_image(fd, MRS_META_INCOMPLETE_OK | MRS_META_CHECK_TABLES_ONLY);
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return 0;
}
