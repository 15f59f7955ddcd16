/* SPDX-License-Identifier: MIT */
/*
 * The image file's life: created under a temporary name next to its final
 * path, published by rename once complete, removed if anything fails.
 */
#ifndef MRS_TMPIMAGE_H
#define MRS_TMPIMAGE_H

#include <stdbool.h>

#include "mrsnap.h"

struct mrs_tmpimage {
	char *path;		/* where the image will be */
	char *tmp;		/* where it is being written: DIR/.NAME.mrsnap-tmp.XXXXXX */
	int fd;			/* buffered fd of tmp, for metadata; holds an flock while we live */
	unsigned stale_removed; /* temporary files of dead snapshots removed on create */
	bool published;		/* renamed into place: what fails after that leaves it there */
};

/*
 * Refuse an existing path (unless force), remove temporary files that dead
 * snapshots left next to it, then create ours: 0600, locked.
 */
int mrs_tmpimage_create(struct mrs_tmpimage *f, const char *path, bool force,
			struct mrs_error *err);

/*
 * Move the finished image into place (refusing to replace a file that
 * appeared meanwhile, unless force) and, unless no_fsync, make the rename
 * durable by syncing the directory. If only that sync fails, the image is
 * in place: published is set, and the message says so.
 */
int mrs_tmpimage_publish(struct mrs_tmpimage *f, bool force, bool no_fsync, struct mrs_error *err);

/* Close, and remove the temporary file if it was not published. */
void mrs_tmpimage_discard(struct mrs_tmpimage *f);

#endif
