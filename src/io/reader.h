/* SPDX-License-Identifier: MIT */
/*
 * An existing image opened for reading: its validated metadata, and the
 * channel view of its blocks. Shared by restore, verify and info.
 */
#ifndef MRS_READER_H
#define MRS_READER_H

#include <sys/types.h>

#include "channel.h"
#include "metaio.h"

struct mrs_image_reader {
	const char *path;
	int fd;	   /* buffered, metadata only; the channels reopen this file, not path */
	dev_t dev; /* of the file at fd: a restore target must not be it */
	ino_t ino;
	struct mrs_image_meta meta;
	struct mrs_chan_block *cb;    /* per block, for the channels */
	struct mrs_page_state *pages; /* per block: presence and hashes, as the image says */
};

/*
 * Open path and read and validate its metadata (see mrs_meta_read for
 * flags). A symlink the caller named is followed: reading is harmless, and
 * everything after this reads the one file opened here.
 */
int mrs_image_reader_open(struct mrs_image_reader *r, const char *path, unsigned flags,
			  struct mrs_error *err);

/*
 * Fill r->cb and r->pages from the metadata (presence per page from the
 * bitmaps, hashes from the checksum tables); fd is left -1 for the caller
 * to set.
 */
int mrs_image_reader_blocks(struct mrs_image_reader *r, struct mrs_error *err);

/* Open channels reading the image: the file at r->fd, never path again. */
int mrs_image_reader_channels(struct mrs_image_reader *r, const struct mrs_io_opts *io,
			      struct mrs_chanset **cs, struct mrs_error *err);

void mrs_image_reader_close(struct mrs_image_reader *r);

/* -EPROTO and friends: the image is at fault, not the machine. */
#endif
