/* SPDX-License-Identifier: MIT */
/*
 * restore --clone: the checks that change nothing (each target new or
 * without data, each region aligned, a probe clone into an unnamed file of
 * each target's directory), the verify that comes first when asked, and the
 * clones themselves with the absent pages punched out after.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "clone.h"
#include "clone_restore.h"
#include "error.h"
#include "pass.h"

/* An existing target: empty, or only holes (a VMM's fresh mem-path file); a clone replaces it. */
static int check_no_data(const struct mrs_ram_map *t, struct mrs_error *err)
{
	if (t->have == 0 || (lseek(t->fd, 0, SEEK_DATA) < 0 && errno == ENXIO))
		return 0;
	return mrs_err(err, -EEXIST,
		       "target '%s' of block '%s' holds data: --clone writes only a new file, "
		       "an empty one or one of holes; nothing was written",
		       t->path, t->name);
}

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

/*
 * An existing target in memory (tmpfs, hugetlbfs) never shares a disk
 * file's extents. Said first, and plainly: a VMM's memfd backend
 * (/proc/PID/fd/N) has no directory the probe could clone into.
 */
static int check_not_memory(const struct mrs_ram_map *t, const char *image, struct mrs_error *err)
{
	struct statfs fs;

	if (fstatfs(t->fd, &fs))
		return mrs_err_errno(err, -errno, "cannot stat the filesystem of target '%s'",
				     t->path);
	if (fs.f_type != TMPFS_MAGIC && fs.f_type != HUGETLBFS_MAGIC)
		return 0;
	return mrs_err(err, -EXDEV,
		       "target '%s' of block '%s' is memory (tmpfs or hugetlbfs: a memfd backend, "
		       "or /dev/shm), which cannot share the extents of '%s': --clone needs a file "
		       "on the image's filesystem (QEMU: memory-backend-file with its mem-path "
		       "there); nothing was written",
		       t->path, t->name, image);
}

/* The directory the target's file is (or will be) in: where the probe clones to. */
static char *target_dir(const struct mrs_ram_map *t)
{
	char *real = t->exists ? realpath(t->path, NULL) : strdup(t->path);
	char *dir = NULL;

	if (real)
		dir = strdup(dirname(real));
	free(real);
	return dir;
}

/* A first block's worth of the region cloned into an unnamed file next to the target. */
static int probe(const struct mrs_image_reader *img, const struct mrs_block_header *bh,
		 const struct mrs_ram_map *t, uint64_t unit, struct mrs_error *err)
{
	char *dir = target_dir(t);
	int ret;

	if (!dir)
		return mrs_err_errno(err, -errno, "cannot find the directory of target '%s'",
				     t->path);
	ret = mrs_clone_probe(dir, img->fd, bh->pages_offset, unit);
	free(dir);
	if (ret == -EXDEV)
		return mrs_err(err, ret,
			       "target '%s' of block '%s' is on another filesystem than '%s': "
			       "--clone needs both on one filesystem that shares extents (XFS "
			       "with reflink, btrfs); nothing was written",
			       t->path, t->name, img->path);
	if (ret)
		return mrs_err(err, ret,
			       "target '%s' of block '%s' cannot share the extents of '%s': %s "
			       "(--clone needs a filesystem that shares extents: XFS with reflink, "
			       "btrfs); nothing was written",
			       t->path, t->name, img->path, strerror(-ret));
	return 0;
}

int mrs_clone_check(const struct mrs_image_reader *img, const struct mrs_ram_map *dst, uint32_t n,
		    struct mrs_error *err)
{
	uint64_t unit = mrs_clone_unit(img->fd);

	for (uint32_t b = 0; b < n; b++) {
		const struct mrs_block_header *bh = &img->meta.blocks[b];
		const struct mrs_ram_map *t = &dst[b];
		uint64_t len = bh->page_count * bh->page_size;
		int ret;

		if (t->blockdev)
			return mrs_err(err, -EINVAL,
				       "target '%s' of block '%s' is a block device: --clone makes "
				       "files that share the image's extents; nothing was written",
				       t->path, t->name);
		ret = t->exists ? check_no_data(t, err) : 0;
		if (!ret && t->exists)
			ret = check_not_memory(t, img->path, err);
		if (ret)
			return ret;
		if (!unit || bh->pages_offset % unit || len % unit)
			return mrs_err(
			    err, -EINVAL,
			    "block '%s' cannot be cloned: its page region (%" PRIu64
			    " bytes at %" PRIu64 ") is not aligned to the %" PRIu64
			    "-byte blocks of the filesystem of '%s'; nothing was written",
			    bh->name, len, bh->pages_offset, unit, img->path);
		ret = probe(img, bh, t, unit, err);
		if (ret)
			return ret;
	}
	return 0;
}

int mrs_clone_verify(struct mrs_image_reader *img, struct mrs_chanset *cs,
		     const struct mrs_io_opts *io, struct mrs_error *err)
{
	struct mrs_pass pass = {
	    .cs = cs,
	    .blocks = img->cb,
	    .pages = img->pages,
	    .nblocks = img->meta.sb.block_count,
	    .ops = &mrs_verify_ops,
	    .phase = "verify",
	    .io = io,
	    .channels = io->channels,
	};
	const struct mrs_bad_page *bad;
	size_t nbad;
	int ret = mrs_pass_run(&pass, err);

	if (ret)
		return ret;
	bad = mrs_chanset_bad_pages(cs, &nbad);
	if (nbad)
		return mrs_err(err, -EBADMSG,
			       "'%s': %zu page%s did NOT match %s checksum%s (block '%s', page "
			       "%" PRIu64 " among them); nothing was written",
			       img->path, nbad, nbad == 1 ? "" : "s", nbad == 1 ? "its" : "their",
			       nbad == 1 ? "" : "s", img->meta.blocks[bad[0].block].name,
			       bad[0].page);
	return 0;
}

/* Punch pages [first, end) of the target, absent from the image but brought by the clone. */
static int punch(const struct mrs_ram_map *t, uint64_t ps, uint64_t first, uint64_t end,
		 struct mrs_error *err)
{
	if (fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(first * ps),
		      (off_t)((end - first) * ps)))
		return mrs_err_errno(err, -errno,
				     "cannot punch the absent pages %" PRIu64 "-%" PRIu64
				     " out of target '%s'",
				     first, end - 1, t->path);
	return 0;
}

/*
 * Absent pages are holes in the image wherever mrsnap could punch them, but
 * an image may keep bytes there (a filesystem without punching, zero pages
 * written as part of a larger request): walk the target's data (SEEK_DATA,
 * SEEK_HOLE) and punch the absent runs in it, so that the syscalls follow
 * the data extents, never the pages.
 */
static int punch_absent(const struct mrs_ram_map *t, const struct mrs_block_header *bh,
			const uint8_t *present, struct mrs_error *err)
{
	uint64_t ps = bh->page_size, size = bh->page_count * ps;
	off_t at = 0;

	while ((uint64_t)at < size) {
		off_t data = lseek(t->fd, at, SEEK_DATA), hole;
		uint64_t p, end;

		if (data < 0 && errno == ENXIO)
			return 0;
		hole = data < 0 ? -1 : lseek(t->fd, data, SEEK_HOLE);
		if (hole < 0)
			return mrs_err_errno(err, -errno, "cannot find the data in target '%s'",
					     t->path);
		end = ((uint64_t)hole + ps - 1) / ps;
		end = end < bh->page_count ? end : bh->page_count;
		for (p = (uint64_t)data / ps; p < end;) {
			uint64_t q = p;

			while (q < end && !present[q])
				q++;
			int ret = q > p ? punch(t, ps, p, q, err) : 0;

			if (ret)
				return ret;
			while (q < end && present[q])
				q++;
			p = q;
		}
		at = hole;
	}
	return 0;
}

int mrs_clone_blocks(const struct mrs_image_reader *img, struct mrs_ram_map *dst, uint32_t n,
		     struct mrs_error *err)
{
	for (uint32_t b = 0; b < n; b++) {
		const struct mrs_block_header *bh = &img->meta.blocks[b];
		int ret = mrs_clone_range(dst[b].fd, 0, img->fd, bh->pages_offset,
					  bh->page_count * bh->page_size);

		if (ret)
			return mrs_err_errno(err, ret, "cannot clone block '%s' into target '%s'",
					     bh->name, dst[b].path);
		ret = punch_absent(&dst[b], bh, img->pages[b].present, err);
		if (ret)
			return ret;
	}
	return 0;
}
