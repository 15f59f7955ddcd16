/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "reader.h"

/* An image is a regular file; then reads may block again. */
static int check_regular(struct mrs_image_reader *r, struct mrs_error *err)
{
	struct stat st;

	if (fstat(r->fd, &st))
		return mrs_err_errno(err, -errno, "cannot stat '%s'", r->path);
	if (!S_ISREG(st.st_mode))
		return mrs_err(err, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
			       "'%s' is not a regular file, so not an image", r->path);
	if (fcntl(r->fd, F_SETFL, 0))
		return mrs_err_errno(err, -errno, "cannot set up '%s'", r->path);
	/* Who it is, so that restore can refuse it as a target under any name. */
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	return 0;
}

int mrs_image_reader_open(struct mrs_image_reader *r, const char *path, unsigned flags,
			  struct mrs_error *err)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->path = path;
	/* O_NONBLOCK: a FIFO must be refused, not waited on for a writer. */
	r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (r->fd < 0)
		return mrs_err_errno(err, -errno, "cannot open '%s'", path);
	ret = check_regular(r, err);
	if (ret) {
		close(r->fd);
		r->fd = -1;
		return ret;
	}
	ret = mrs_meta_read(r->fd, flags, &r->meta, err);
	if (ret) {
		close(r->fd);
		r->fd = -1;
		mrs_err_prefix(err, "'%s'", path);
		return ret; /* not mrs_err_prefix's: with a NULL err, that is -EIO */
	}
	return 0;
}

int mrs_image_reader_blocks(struct mrs_image_reader *r, struct mrs_error *err)
{
	uint32_t n = r->meta.sb.block_count;

	r->cb = calloc(n, sizeof(*r->cb));
	r->pages = calloc(n, sizeof(*r->pages));
	if (!r->cb || !r->pages)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		const struct mrs_block_header *bh = &r->meta.blocks[i];
		struct mrs_chan_block *cb = &r->cb[i];
		struct mrs_page_state *ps = &r->pages[i];

		cb->name = bh->name;
		cb->fd = -1;
		cb->page_size = bh->page_size;
		cb->page_count = bh->page_count;
		cb->pages_offset = bh->pages_offset;
		ps->hashes = r->meta.hashes[i];
		ps->present = malloc(bh->page_count);
		if (!ps->present)
			return mrs_err(err, -ENOMEM, "out of memory");
		for (uint64_t p = 0; p < bh->page_count; p++)
			ps->present[p] = mrs_bitmap_test(r->meta.bitmaps[i], p);
	}
	return 0;
}

int mrs_image_reader_channels(struct mrs_image_reader *r, const struct mrs_io_opts *io,
			      struct mrs_chanset **cs, struct mrs_error *err)
{
	struct mrs_chan_config cfg = {
	    .path = r->path,
	    .reopen_fd = true,
	    .fd = r->fd,
	    .direct = io->direct,
	    .channels = io->channels,
	    .depth = io->depth,
	};

	return mrs_chanset_open(cs, &cfg, r->cb, r->meta.sb.block_count, err);
}

void mrs_image_reader_close(struct mrs_image_reader *r)
{
	for (uint32_t i = 0; r->pages && i < r->meta.sb.block_count; i++)
		free(r->pages[i].present);
	free(r->pages);
	free(r->cb);
	mrs_meta_free(&r->meta);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}
