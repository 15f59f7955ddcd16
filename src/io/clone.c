/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "clone.h"

int mrs_clone_range(int dst, uint64_t dst_off, int src, uint64_t src_off, uint64_t len)
{
	struct file_clone_range r = {
	    .src_fd = src,
	    .src_offset = src_off,
	    .src_length = len, /* never 0: that would mean "to the end of src" */
	    .dest_offset = dst_off,
	};

	if (!len)
		return 0;
	return ioctl(dst, FICLONERANGE, &r) ? -errno : 0;
}

bool mrs_clone_refused(int code)
{
	return code == -EOPNOTSUPP || code == -EXDEV || code == -EINVAL || code == -ENOTTY;
}

int mrs_clone_probe(const char *dir, int src, uint64_t src_off, uint64_t len)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	int ret;

	if (fd < 0)
		return -errno;
	ret = mrs_clone_range(fd, 0, src, src_off, len);
	close(fd);
	return ret;
}

uint64_t mrs_clone_unit(int fd)
{
	struct statfs fs;

	return fstatfs(fd, &fs) || fs.f_bsize <= 0 ? 0 : (uint64_t)fs.f_bsize;
}
