/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "error.h"
#include "format.h"
#include "ram.h"

int mrs_ram_check_name(const char *name, struct mrs_error *err)
{
	size_t len = strlen(name);

	if (len == 0 || len >= MRS_NAME_FIELD)
		return mrs_err(err, -EINVAL, "block name '%s' must be 1 to %u bytes long", name,
			       MRS_NAME_FIELD - 1);
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '=' || *p == ',' || *p == 0x7f)
			return mrs_err(err, -EINVAL,
				       "block name '%s' holds a control character, '=' or ','",
				       name);
	return 0;
}

/* Whether the file is on tmpfs (memfd too), where SEEK_DATA is a quick walk. */
static bool on_tmpfs(int fd)
{
	struct statfs sfs;

	return fstatfs(fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC;
}

/* Page size of the backing: hugetlbfs's huge page size, else 4 KiB. */
static uint64_t backing_page_size(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC && sfs.f_bsize > 0)
		return (uint64_t)sfs.f_bsize;
	return MRS_MIN_PAGE;
}

/* The size of what fd holds: a regular file's length or a block device's. */
static int backing_size(struct mrs_ram_map *m, uint64_t *size, struct mrs_error *err)
{
	struct stat st;

	if (fstat(m->fd, &st))
		return mrs_err_errno(err, -errno, "cannot stat '%s'", m->path);
	if (S_ISBLK(st.st_mode)) {
		m->blockdev = true;
		if (ioctl(m->fd, BLKGETSIZE64, size))
			return mrs_err_errno(err, -errno, "cannot get the size of '%s'", m->path);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return mrs_err(err, -EINVAL, "'%s' is neither a regular file nor a block device",
			       m->path);
	*size = (uint64_t)st.st_size;
	return 0;
}

static int map(struct mrs_ram_map *m, int prot, struct mrs_error *err)
{
	void *p = mmap(NULL, m->size, prot, MAP_SHARED, m->fd, 0);

	if (p == MAP_FAILED)
		return mrs_err_errno(err, -errno, "cannot map '%s'", m->path);
	m->mem = p;
	return 0;
}

static int init_map(struct mrs_ram_map *m, const char *name, const char *path,
		    struct mrs_error *err)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	m->name = strdup(name);
	m->path = strdup(path);
	if (!m->name || !m->path)
		return mrs_err(err, -ENOMEM, "out of memory");
	return 0;
}

/*
 * A RAM source is a regular file or a block device. Anything else is refused
 * before it is opened: opening a FIFO for reading waits for a writer, and
 * opening a character device can have effects of its own.
 */
static int check_openable(const char *path, struct mrs_error *err)
{
	struct stat st;

	if (stat(path, &st))
		return mrs_err_errno(err, -errno, "cannot open '%s'", path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return mrs_err(err, -EINVAL, "'%s' is neither a regular file nor a block device",
			       path);
	return 0;
}

int mrs_ram_open_source(struct mrs_ram_map *m, const struct mrs_ram *spec, struct mrs_error *err)
{
	uint64_t have;
	int ret;

	ret = init_map(m, spec->name, spec->path, err);
	if (ret)
		goto fail;
	ret = check_openable(spec->path, err);
	if (ret)
		goto fail;
	/* O_NONBLOCK: should a FIFO appear after the check, open() must not wait for a writer. */
	m->fd = open(spec->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (m->fd < 0) {
		ret = mrs_err_errno(err, -errno, "cannot open '%s'", spec->path);
		goto fail;
	}
	ret = backing_size(m, &have, err);
	if (!ret && fcntl(m->fd, F_SETFL, 0))
		ret = mrs_err_errno(err, -errno, "cannot set up '%s'", spec->path);
	if (ret)
		goto fail;
	m->page_size = backing_page_size(m->fd);
	m->sparse = on_tmpfs(m->fd);
	m->size = spec->size ? spec->size : have;
	if (m->size == 0 || m->size % m->page_size) {
		ret = mrs_err(err, -EINVAL,
			      "'%s': size %" PRIu64
			      " is not a positive multiple of the page size %" PRIu64,
			      spec->path, m->size, m->page_size);
		goto fail;
	}
	if (m->size > have) {
		ret = mrs_err(err, -EINVAL,
			      "'%s' holds %" PRIu64 " bytes, fewer than the %" PRIu64 " asked for",
			      spec->path, have, m->size);
		goto fail;
	}
	return 0;
fail:
	mrs_ram_close(m);
	return ret;
}

int mrs_ram_check_target(const char *path, bool force, struct mrs_error *err)
{
	struct stat st;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0; /* created later */
		return mrs_err_errno(err, -errno, "cannot stat target '%s'", path);
	}
	if (S_ISLNK(st.st_mode) && !force)
		return mrs_err(err, -ELOOP,
			       "target '%s' is a symbolic link; use --force to write through it",
			       path);
	if (S_ISLNK(st.st_mode) && stat(path, &st))
		return mrs_err_errno(err, -errno, "cannot stat target '%s'", path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return mrs_err(err, -EINVAL,
			       "target '%s' is neither a regular file nor a block device", path);
	return 0;
}

/* Zero the block's part of a block device: BLKZEROOUT if it can, writes if not. */
static int zero_blockdev(struct mrs_ram_map *m, struct mrs_error *err)
{
	uint64_t range[2] = {0, m->size};
	static const uint8_t zeros[1 << 16];

	if (ioctl(m->fd, BLKZEROOUT, range) == 0)
		return 0;
	for (uint64_t off = 0; off < m->size; off += sizeof(zeros)) {
		uint64_t n = m->size - off < sizeof(zeros) ? m->size - off : sizeof(zeros);

		if (pwrite(m->fd, zeros, n, (off_t)off) != (ssize_t)n)
			return mrs_err_errno(err, -(errno ? errno : EIO),
					     "cannot clear target '%s'", m->path);
	}
	return 0;
}

int mrs_ram_open_target(struct mrs_ram_map *m, const char *name, const char *path, uint64_t size,
			bool force, struct mrs_error *err)
{
	int flags = O_RDWR | O_CREAT | O_CLOEXEC | (force ? 0 : O_NOFOLLOW);
	uint64_t have;
	int ret;

	ret = init_map(m, name, path, err);
	if (ret)
		goto fail;
	m->fd = open(path, flags, 0600);
	if (m->fd < 0) {
		ret = errno == ELOOP ? mrs_err(err, -ELOOP,
					       "target '%s' is a symbolic link; use --force to "
					       "write through it",
					       path)
				     : mrs_err_errno(err, -errno, "cannot open target '%s'", path);
		goto fail;
	}
	ret = backing_size(m, &have, err);
	if (ret)
		goto fail;
	m->size = size;
	m->page_size = backing_page_size(m->fd);
	if (m->blockdev) {
		if (have < size) {
			ret = mrs_err(err, -ENOSPC,
				      "target '%s' holds %" PRIu64
				      " bytes, block '%s' needs %" PRIu64,
				      path, have, name, size);
			goto fail;
		}
		ret = zero_blockdev(m, err);
	} else if (ftruncate(m->fd, 0) || ftruncate(m->fd, (off_t)size)) {
		/* Cutting to 0 first is what makes absent pages read as zero. */
		ret = mrs_err_errno(err, -errno, "cannot size target '%s' to %" PRIu64 " bytes",
				    path, size);
	}
	/* hugetlbfs has no write(2): pages go in through a mapping. */
	if (!ret && m->page_size > MRS_MIN_PAGE)
		ret = map(m, PROT_READ | PROT_WRITE, err);
	if (ret)
		goto fail;
	return 0;
fail:
	mrs_ram_close(m);
	return ret;
}

int mrs_ram_flush(struct mrs_ram_map *m, struct mrs_error *err)
{
	if ((m->mem && msync(m->mem, m->size, MS_SYNC)) || fsync(m->fd))
		return mrs_err_errno(err, -errno, "cannot flush target '%s'", m->path);
	return 0;
}

void mrs_ram_close(struct mrs_ram_map *m)
{
	if (m->mem)
		munmap(m->mem, m->size);
	if (m->fd >= 0)
		close(m->fd);
	free(m->name);
	free(m->path);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}
