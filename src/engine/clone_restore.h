/* SPDX-License-Identifier: MIT */
/*
 * restore --clone (mrs_restore_opts.clone): each block's page region, a raw
 * sparse memory image at an aligned offset of the image, is cloned into its
 * target (FICLONERANGE) instead of being read and written: the target shares
 * the image's extents, and costs what the filesystem's metadata does,
 * whatever the size (docs/DESIGN.md, "Restore by cloning").
 */
#ifndef MRS_CLONE_RESTORE_H
#define MRS_CLONE_RESTORE_H

#include <stdint.h>

#include "channel.h"
#include "ram.h"
#include "reader.h"

/*
 * Before anything changes, for every probed target: a regular file that is
 * new, empty or holds only holes; the block's page region aligned to the
 * filesystem's blocks; and a probe clone into an unnamed file of the
 * target's directory succeeds. Each refusal names the target or block and
 * says that nothing was written.
 */
int mrs_clone_check(const struct mrs_image_reader *img, const struct mrs_ram_map *dst, uint32_t n,
		    struct mrs_error *err);

/*
 * Verify every present page of the image through the channels, before any
 * target is touched: a clone reads no checksum, so --clone --verify checks
 * first. -EBADMSG (nothing written) if a page did not match.
 */
int mrs_clone_verify(struct mrs_image_reader *img, struct mrs_chanset *cs,
		     const struct mrs_io_opts *io, struct mrs_error *err);

/*
 * Clone each block into its prepared target (sized, cleared), then punch
 * out the pages the image holds as absent where the clone brought bytes
 * (stale or zero bytes an image may keep there): the target reads as the
 * RAM that was saved, zero pages as holes.
 */
int mrs_clone_blocks(const struct mrs_image_reader *img, struct mrs_ram_map *dst, uint32_t n,
		     struct mrs_error *err);

#endif
