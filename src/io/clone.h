/* SPDX-License-Identifier: MIT */
/*
 * Sharing extents between files (FICLONERANGE): how a snapshot against a
 * base starts as a copy-on-write copy of the base's page regions, and how
 * restore --clone makes a target that shares the image's pages. Only
 * filesystems that share extents (XFS with reflink, btrfs) can; the others
 * refuse, and the callers decide what a refusal means.
 */
#ifndef MRS_CLONE_H
#define MRS_CLONE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Make len bytes of dst at dst_off share the extents of src at src_off
 * (both offsets and len multiples of the filesystem's block size). 0 or
 * -errno; on failure dst may hold part of the range already.
 */
int mrs_clone_range(int dst, uint64_t dst_off, int src, uint64_t src_off, uint64_t len);

/*
 * Whether a clone failed because these files cannot share extents, not
 * because something went wrong: -EOPNOTSUPP (the filesystem cannot), -EXDEV
 * (two filesystems), -EINVAL (a range the filesystem cannot clone, such as
 * one not aligned to its blocks), -ENOTTY (no such ioctl there).
 */
bool mrs_clone_refused(int code);

/*
 * Whether a file in directory dir could share the extents of len bytes of
 * src at src_off: they are cloned into an unnamed file there (O_TMPFILE),
 * which goes when it is closed. 0, or -errno: nothing is left either way.
 */
int mrs_clone_probe(const char *dir, int src, uint64_t src_off, uint64_t len);

/* The filesystem's block size for fd (what clone ranges must be aligned to), or 0. */
uint64_t mrs_clone_unit(int fd);

#endif
