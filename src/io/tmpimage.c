/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "tmpimage.h"

/* What a path that is not a regular file is, for messages. */
static const char *kind_of(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

/*
 * IMAGE is a regular file or does not exist; a symlink there may be replaced
 * (never followed) with force. Anything else (a device node, a FIFO, a
 * socket, a directory) is never replaced, force or not: the user named a
 * place for an image, not a thing to destroy.
 */
static int check_image_path(const char *path, bool force, struct mrs_error *err)
{
	struct stat st;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		return mrs_err_errno(err, -errno, "cannot stat '%s'", path);
	}
	if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
		return mrs_err(err, S_ISDIR(st.st_mode) ? -EISDIR : -EEXIST,
			       "'%s' is %s; an image is written only to a regular file (or a new "
			       "path), even with --force",
			       path, kind_of(st.st_mode));
	if (force)
		return 0;
	if (S_ISLNK(st.st_mode))
		return mrs_err(err, -EEXIST,
			       "'%s' is a symbolic link; use --force to replace the link (it is "
			       "never followed)",
			       path);
	return mrs_err(err, -EEXIST, "'%s' exists; use --force to overwrite it", path);
}

/* A path that can name a new file: not empty, not ending in '/'. */
static int check_image_name(const char *path, struct mrs_error *err)
{
	size_t len = strlen(path);

	if (len == 0)
		return mrs_err(err, -EINVAL, "the image path is empty");
	if (path[len - 1] == '/')
		return mrs_err(err, -EISDIR, "'%s' names a directory, not an image file", path);
	return 0;
}

/*
 * Temporary files are named .NAME.mrsnap-tmp.XXXXXX next to the image, and
 * their writer holds an flock on them until it exits. One whose lock can be
 * taken belongs to a snapshot that died (kill -9, power loss): remove it.
 */
static unsigned remove_stale(const char *dir, const char *base)
{
	char prefix[NAME_MAX + 1];
	unsigned removed = 0;
	struct dirent *de;
	DIR *d;
	int dfd;

	if (snprintf(prefix, sizeof(prefix), ".%s.mrsnap-tmp.", base) >= (int)sizeof(prefix))
		return 0;
	d = opendir(dir);
	if (!d)
		return 0;
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		struct stat st;
		int fd;

		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dfd, de->d_name, 0) == 0)
			removed++;
		close(fd);
	}
	closedir(d);
	return removed;
}

/*
 * Create the temporary file already locked: made unnamed (O_TMPFILE),
 * locked, and only then given its name, so that no other snapshot's cleanup
 * can ever see it unlocked. Filesystems without O_TMPFILE get a named file
 * locked right after creation.
 */
static int create_locked(struct mrs_tmpimage *f, const char *dir, const char *base)
{
	static const char chars[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	char proc[64];
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (asprintf(&f->tmp, "%s/.%s.mrsnap-tmp.XXXXXX", dir, base) < 0)
			return -ENOMEM;
		fd = mkostemp(f->tmp, O_CLOEXEC); /* O_EXCL, 0600, never through a symlink */
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB)) {
			int e = -errno;

			if (fd >= 0) {
				unlink(f->tmp);
				close(fd);
			}
			return e;
		}
		f->fd = fd;
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB))
		goto fail;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int tries = 0; tries < 100; tries++) {
		uint64_t r =
		    (uint64_t)random() ^ ((uint64_t)getpid() << 20) ^ (uint64_t)tries << 40;
		char suffix[7];

		for (int i = 0; i < 6; i++, r /= 62)
			suffix[i] = chars[r % 62];
		suffix[6] = '\0';
		free(f->tmp);
		if (asprintf(&f->tmp, "%s/.%s.mrsnap-tmp.%s", dir, base, suffix) < 0) {
			f->tmp = NULL;
			errno = ENOMEM;
			goto fail;
		}
		if (linkat(AT_FDCWD, proc, AT_FDCWD, f->tmp, AT_SYMLINK_FOLLOW) == 0) {
			f->fd = fd;
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
fail : {
	int e = -errno;

	free(f->tmp);
	f->tmp = NULL;
	close(fd);
	return e;
}
}

int mrs_tmpimage_create(struct mrs_tmpimage *f, const char *path, bool force,
			 struct mrs_error *err)
{
	char *d = strdup(path), *b = strdup(path), *dir, *base;
	int ret;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	if (!d || !b || !(f->path = strdup(path))) {
		ret = mrs_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = check_image_name(path, err);
	if (!ret)
		ret = check_image_path(path, force, err);
	if (ret)
		goto out;
	dir = dirname(d); /* may point into d, or at a static "." */
	base = basename(b);
	f->stale_removed = remove_stale(dir, base);
	ret = create_locked(f, dir, base);
	if (ret)
		ret = mrs_err_errno(err, ret, "cannot create a temporary file next to '%s'", path);
out:
	free(d);
	free(b);
	return ret;
}

/*
 * Runs after the rename, so a failure here must not read as "no image": the
 * image is complete and at its path (and with force, what was there before
 * is gone); only its directory entry may not survive a crash.
 */
static int sync_dir(const char *path, struct mrs_error *err)
{
	char *d = strdup(path);
	const char *dir;
	int fd, ret = 0;

	if (!d)
		return mrs_err(err, -ENOMEM,
			       "the image '%s' is complete and in place, but its directory could "
			       "not be synced: out of memory; it may not survive a crash",
			       path);
	dir = dirname(d);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd)) {
		int e = errno;

		ret = mrs_err(err, -e,
			      "the image '%s' is complete and in place, but its directory '%s' "
			      "could not be synced: %s; it may not survive a crash",
			      path, dir, strerror(e));
	}
	if (fd >= 0)
		close(fd);
	free(d);
	return ret;
}

int mrs_tmpimage_publish(struct mrs_tmpimage *f, bool force, bool no_fsync, struct mrs_error *err)
{
	int ret;

	if (force) {
		/*
		 * Look again: what is at the path now is what rename() replaces.
		 * (A narrow race remains against someone who can write to the
		 * directory; they could unlink the node themselves.)
		 */
		ret = check_image_path(f->path, true, err);
		if (ret)
			return ret;
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
	f->published = true;
	return no_fsync ? 0 : sync_dir(f->path, err);
}

void mrs_tmpimage_discard(struct mrs_tmpimage *f)
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
