/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "imagefile.h"

static int refuse_existing(const char *path, bool force, struct mrs_error *err)
{
	struct stat st;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		return mrs_err_errno(err, -errno, "cannot stat '%s'", path);
	}
	if (S_ISDIR(st.st_mode))
		return mrs_err(err, -EISDIR, "'%s' is a directory", path);
	if (force)
		return 0;
	if (S_ISLNK(st.st_mode))
		return mrs_err(err, -EEXIST,
			       "'%s' is a symbolic link; use --force to replace the link (it is "
			       "never followed)",
			       path);
	return mrs_err(err, -EEXIST, "'%s' exists; use --force to overwrite it", path);
}

int mrs_imagefile_create(struct mrs_imagefile *f, const char *path, bool force,
			 struct mrs_error *err)
{
	char *d = strdup(path), *b = strdup(path);
	int ret;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	if (!d || !b || !(f->path = strdup(path))) {
		ret = mrs_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = refuse_existing(path, force, err);
	if (ret)
		goto out;
	if (asprintf(&f->tmp, "%s/.%s.mrsnap-tmp.XXXXXX", dirname(d), basename(b)) < 0) {
		f->tmp = NULL;
		ret = mrs_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* mkostemp: O_CREAT|O_EXCL, mode 0600, never through a symlink. */
	f->fd = mkostemp(f->tmp, O_CLOEXEC);
	if (f->fd < 0) {
		ret =
		    mrs_err_errno(err, -errno, "cannot create a temporary file next to '%s'", path);
		free(f->tmp);
		f->tmp = NULL;
	}
out:
	free(d);
	free(b);
	return ret;
}

static int sync_dir(const char *path, struct mrs_error *err)
{
	char *d = strdup(path);
	int fd, ret = 0;

	if (!d)
		return mrs_err(err, -ENOMEM, "out of memory");
	fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd))
		ret = mrs_err_errno(err, -errno, "cannot sync directory '%s'", d);
	if (fd >= 0)
		close(fd);
	free(d);
	return ret;
}

int mrs_imagefile_publish(struct mrs_imagefile *f, bool force, bool no_fsync, struct mrs_error *err)
{
	int ret;

	if (force) {
		ret = rename(f->tmp, f->path);
	} else {
		ret = renameat2(AT_FDCWD, f->tmp, AT_FDCWD, f->path, RENAME_NOREPLACE);
		/* Filesystems without RENAME_NOREPLACE: link() refuses to replace too. */
		if (ret && errno == EINVAL) {
			ret = link(f->tmp, f->path);
			if (!ret)
				unlink(f->tmp);
		}
	}
	if (ret) {
		if (errno == EEXIST)
			return mrs_err(
			    err, -EEXIST,
			    "'%s' appeared while the snapshot ran; use --force to overwrite "
			    "it",
			    f->path);
		return mrs_err_errno(err, -errno, "cannot rename '%s' to '%s'", f->tmp, f->path);
	}
	free(f->tmp);
	f->tmp = NULL;
	return no_fsync ? 0 : sync_dir(f->path, err);
}

void mrs_imagefile_discard(struct mrs_imagefile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp)
		unlink(f->tmp);
	free(f->tmp);
	free(f->path);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}
