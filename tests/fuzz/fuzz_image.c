/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the whole image open path (mrs_meta_read) on an
 * in-memory file.
 *
 * Images are mostly page regions aligned to 1 MiB, which a fuzzer gains
 * nothing from mutating. So an input describes a sparse file instead:
 *
 *   u64 file size, u64 tail offset, u32 head length (little-endian),
 *   head bytes (written at offset 0), tail bytes (written at tail offset)
 *
 * which places metadata at the start and a control stream after the page
 * regions, with holes between, as a real image has.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "format.h"
#include "meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FILE (64ull << 30) /* sparse: costs nothing, but keep it sane */

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
	int fd;

	if (size < 20)
		return 0;
	file_size = mrs_get_le64(data) % MAX_FILE;
	tail_at = mrs_get_le64(data + 8) % MAX_FILE;
	head_len = mrs_get_le32(data + 16);
	data += 20;
	size -= 20;
	if (head_len > size)
		head_len = (uint32_t)size;
	fd = memfd_create("image", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (ftruncate(fd, (off_t)file_size) == 0 &&
	    pwrite(fd, data, head_len, 0) == (ssize_t)head_len &&
	    pwrite(fd, data + head_len, size - head_len, (off_t)tail_at) ==
		(ssize_t)(size - head_len)) {
		open_image(fd, 0);
		open_image(fd, MRS_META_INCOMPLETE_OK | MRS_META_CHECK_TABLES_ONLY);
	}
	close(fd);
	return 0;
}
