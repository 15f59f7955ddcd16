/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the superblock and block header decoders, and the
 * layout check over what they decode.
 *
 * Input: a 256-byte superblock followed by up to 4 block headers of 4096
 * bytes; the last 8 bytes, if any are left over, are the file size the
 * layout is checked against.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mrs_block_header bh[4];
	struct mrs_superblock sb;
	struct mrs_error err;
	uint64_t file_size = UINT64_MAX;
	unsigned n = 0;
	bool sb_ok;

	if (size < MRS_SB_SIZE)
		return 0;
	/* A superblock that did not decode says nothing (its fields are zero):
	 * the headers after it are still decoded, but no layout is checked. */
	sb_ok = mrs_sb_decode(data, &sb, &err) == 0;
	if (!sb_ok && size < 2 * MRS_SB_SIZE)
		return 0;
	data += MRS_SB_SIZE;
	size -= MRS_SB_SIZE;
	while (n < 4 && size >= MRS_BH_SIZE) {
		if (mrs_bh_decode(data, &bh[n], &err) == 0)
			n++;
		data += MRS_BH_SIZE;
		size -= MRS_BH_SIZE;
	}
	if (size >= 8)
		file_size = mrs_get_le64(data + size - 8);
	if (n) {
		uint8_t *bitmap = calloc(1, 64);

		sb.block_count = n;
		if (sb_ok)
			mrs_layout_check(&sb, bh, file_size, &err);
		/* The bitmap check on a small bitmap, when the header claims one that small. */
		if (bitmap && bh[0].bitmap_length <= 64)
			mrs_bitmap_check(&bh[0], bitmap, &err);
		free(bitmap);
	}
	return 0;
}
