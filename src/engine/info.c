/* SPDX-License-Identifier: MIT */
/* mrs_image_info(): what an image holds, from its metadata alone. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine.h"
#include "error.h"
#include "reader.h"

void mrs_block_to_info(const struct mrs_block_header *bh, struct mrs_block_info *out)
{
	memcpy(out->name, bh->name, sizeof(out->name));
	memcpy(out->path, bh->path, sizeof(out->path));
	out->size = bh->size;
	out->page_size = bh->page_size;
	out->page_count = bh->page_count;
	out->pages_present = bh->pages_present;
	out->bitmap_offset = bh->bitmap_offset;
	out->hashes_offset = bh->hashes_offset;
	out->pages_offset = bh->pages_offset;
}

int mrs_image_info(const char *path, struct mrs_image_info **out, struct mrs_error *err)
{
	struct mrs_image_reader img;
	struct mrs_image_info *info;
	const struct mrs_image_meta *m = &img.meta;
	struct stat st;
	int ret;

	*out = NULL;
	/* Damaged metadata is an error here too: info checks the bitmaps and
	 * checksum tables whose counts it reports, without keeping them. */
	ret = mrs_image_reader_open(&img, path, MRS_META_INCOMPLETE_OK | MRS_META_CHECK_TABLES_ONLY,
				    err);
	if (ret)
		return ret;
	info = calloc(1, sizeof(*info));
	if (info) {
		info->blocks = calloc(m->sb.block_count, sizeof(*info->blocks));
		info->rounds = calloc(m->stream.nrounds + 1, sizeof(*info->rounds));
	}
	if (!info || !info->blocks || !info->rounds) {
		mrs_image_info_free(info);
		mrs_image_reader_close(&img);
		return mrs_err(err, -ENOMEM, "out of memory");
	}
	info->version = m->sb.version;
	info->complete = !!(m->sb.flags & MRS_SB_COMPLETE);
	info->live = !!(m->sb.flags & MRS_SB_LIVE);
	info->created_ns = m->sb.created_ns;
	memcpy(info->tool_version, m->sb.tool_version, sizeof(info->tool_version));
	info->file_size = m->file_size;
	if (fstat(img.fd, &st) == 0)
		info->disk_size = (uint64_t)st.st_blocks * 512;
	info->nblocks = m->sb.block_count;
	for (uint32_t b = 0; b < info->nblocks; b++)
		mrs_block_to_info(&m->blocks[b], &info->blocks[b]);
	info->nrounds = m->stream.nrounds;
	for (uint32_t r = 0; r < info->nrounds; r++)
		mrs_round_to_info(&m->stream.rounds[r], &info->rounds[r]);
	if (m->stream.has_device) {
		const struct mrs_device_rec *d = &m->stream.device;

		info->devstate.present = 1;
		info->devstate.offset = d->offset;
		info->devstate.length = d->length;
		info->devstate.checksum = d->checksum;
		memcpy(info->devstate.producer, d->producer, sizeof(info->devstate.producer));
		memcpy(info->devstate.machine, d->machine, sizeof(info->devstate.machine));
	}
	mrs_image_reader_close(&img);
	*out = info;
	return 0;
}

void mrs_image_info_free(struct mrs_image_info *info)
{
	if (!info)
		return;
	free(info->blocks);
	free(info->rounds);
	free(info);
}
