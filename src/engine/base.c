/* SPDX-License-Identifier: MIT */
/*
 * The base of a snapshot: checked before anything is created, then its page
 * regions cloned into the new image and its tables taken as the new image's
 * page state, so that the first round (MRS_JOB_CHANGED_ONLY) writes only the
 * pages whose hash differs, clears the pages that became zero, and leaves
 * the rest as cloned. What the new image's bitmap and checksum table say is
 * then what it holds, as after any round (docs/DESIGN.md, "Snapshots
 * against a base").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base.h"
#include "clone.h"
#include "error.h"

/* One source against the base block of its name: found, same size, same page size. */
static int match_block(struct mrs_base *b, const struct mrs_ram_map *src, uint32_t i,
		       struct mrs_error *err)
{
	const struct mrs_image_meta *m = &b->img.meta;
	const struct mrs_block_header *bh;
	uint32_t j = 0;
	char names[512];

	while (j < m->sb.block_count && strcmp(m->blocks[j].name, src->name))
		j++;
	if (j == m->sb.block_count) {
		mrs_meta_block_names(m, names, sizeof(names));
		return mrs_err(err, -MRS_EUSAGE, "the base '%s' has no block '%s' (it has: %s)",
			       b->path, src->name, names);
	}
	bh = &m->blocks[j];
	if (bh->size != src->size)
		return mrs_err(err, -MRS_EUSAGE,
			       "block '%s' is %" PRIu64 " bytes, and %" PRIu64
			       " in the base '%s': a base must have the same blocks",
			       src->name, src->size, bh->size, b->path);
	if (bh->page_size != src->page_size)
		return mrs_err(err, -MRS_EUSAGE,
			       "block '%s' has %" PRIu64 "-byte pages, and %" PRIu32
			       "-byte pages in the base '%s': a base must have the same blocks",
			       src->name, src->page_size, bh->page_size, b->path);
	b->of[i] = j;
	return 0;
}

/* Every source has its block in the base, and the base no block more. */
static int match_blocks(struct mrs_base *b, const struct mrs_ram_map *src, uint32_t n,
			struct mrs_error *err)
{
	const struct mrs_image_meta *m = &b->img.meta;

	b->of = calloc(n, sizeof(*b->of));
	b->shared = calloc(n, sizeof(*b->shared));
	if (!b->of || !b->shared)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		int ret = match_block(b, &src[i], i, err);

		if (ret)
			return ret;
	}
	/* Names are unique on both sides, so equal counts mean the same names. */
	for (uint32_t j = 0; m->sb.block_count != n && j < m->sb.block_count; j++) {
		uint32_t i = 0;

		while (i < n && b->of[i] != j)
			i++;
		if (i == n)
			return mrs_err(err, -MRS_EUSAGE,
				       "the base '%s' has block '%s', which this snapshot has not: "
				       "a base must have the same blocks",
				       b->path, m->blocks[j].name);
	}
	return 0;
}

/* The base is never the file it would be replaced by (with force, or through a link). */
static int check_not_image(const struct mrs_base *b, const char *image, struct mrs_error *err)
{
	struct stat st;

	if (stat(image, &st) == 0 && st.st_dev == b->img.dev && st.st_ino == b->img.ino)
		return mrs_err(err, -MRS_EUSAGE,
			       "the base '%s' is the image '%s' itself: a snapshot never writes "
			       "its base, so the new image needs another path",
			       b->path, image);
	return 0;
}

int mrs_base_open(struct mrs_base *b, const char *path, const char *image,
		  const struct mrs_ram_map *src, uint32_t n, struct mrs_error *err)
{
	int ret;

	memset(b, 0, sizeof(*b));
	b->img.fd = -1;
	if (!path)
		return 0;
	if (!*path)
		return mrs_err(err, -EINVAL, "the base is an empty path");
	b->path = path;
	/* Read-only, validated: an incomplete or damaged base is refused here (-EPROTO). */
	ret = mrs_image_reader_open(&b->img, path, 0, err);
	if (ret) {
		mrs_err_prefix(err, "base");
		return ret;
	}
	ret = check_not_image(b, image, err);
	if (!ret)
		ret = match_blocks(b, src, n, err);
	if (!ret)
		ret = mrs_image_reader_blocks(&b->img, err);
	return ret;
}

/*
 * A block the filesystem would not clone: what the attempt may have cloned
 * already is punched out again, so the block starts as holes like any new
 * image's (if punching fails, stale bytes stay in pages whose bit is clear,
 * which the format allows).
 */
static void unshare(int fd, const struct mrs_block_header *bh, uint64_t len)
{
	(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)bh->pages_offset,
			(off_t)len);
}

int mrs_base_share(struct mrs_base *b, int fd, const struct mrs_block_header *bh,
		   struct mrs_page_state *pages, uint32_t n, struct mrs_error *err)
{
	for (uint32_t i = 0; b->path && i < n; i++) {
		const struct mrs_block_header *from = &b->img.meta.blocks[b->of[i]];
		const struct mrs_page_state *seed = &b->img.pages[b->of[i]];
		uint64_t len = bh[i].page_count * bh[i].page_size;
		int ret =
		    mrs_clone_range(fd, bh[i].pages_offset, b->img.fd, from->pages_offset, len);

		if (ret && !mrs_clone_refused(ret))
			return mrs_err_errno(err, ret, "cannot clone block '%s' from the base '%s'",
					     bh[i].name, b->path);
		if (ret) {
			unshare(fd, &bh[i], len);
			if (!b->refusal)
				b->refusal = ret;
			continue;
		}
		memcpy(pages[i].hashes, seed->hashes, bh[i].page_count * sizeof(*seed->hashes));
		memcpy(pages[i].present, seed->present, bh[i].page_count);
		b->shared[i] = true;
		b->nshared++;
	}
	return 0;
}

unsigned mrs_base_first_round_flags(const struct mrs_base *b)
{
	return b->nshared ? MRS_JOB_CHANGED_ONLY : 0;
}

void mrs_base_round_done(struct mrs_base *b, const struct mrs_page_state *pages, uint32_t n)
{
	if (!b->path || b->counted)
		return;
	b->counted = true;
	/*
	 * A page the first round wrote has a hash other than the base's (it
	 * was written because it differed), and one it cleared is absent: what
	 * is present with the base's hash is what was left as cloned.
	 */
	for (uint32_t i = 0; i < n; i++) {
		const struct mrs_page_state *seed = &b->img.pages[b->of[i]];
		uint64_t count = b->img.meta.blocks[b->of[i]].page_count;

		for (uint64_t p = 0; b->shared[i] && p < count; p++)
			b->pages_reused += seed->present[p] && pages[i].present[p] &&
					   pages[i].hashes[p] == seed->hashes[p];
	}
}

void mrs_base_report(const struct mrs_base *b, struct mrs_save_report *report)
{
	report->base_pages_reused = b->pages_reused;
	report->base_blocks_shared = b->nshared;
	report->base_refusal = b->refusal;
}

void mrs_base_close(struct mrs_base *b)
{
	if (b->path)
		mrs_image_reader_close(&b->img);
	free(b->of);
	free(b->shared);
	memset(b, 0, sizeof(*b));
}
