/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "error.h"
#include "codec.h"
#include "ram.h"

int mrs_block_name_check(const char *name, struct mrs_error *err)
{
	size_t len = strlen(name);

	if (len == 0 || len >= MRS_NAME_FIELD)
		return mrs_err(err, -MRS_EUSAGE, "block name '%s' must be 1 to %u bytes long", name,
			       MRS_NAME_FIELD - 1);
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '=' || *p == ',' || *p == 0x7f)
			return mrs_err(err, -MRS_EUSAGE,
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
		/* A value the user gave (size=) or a file no block can be: a usage mistake. */
		ret = mrs_err(err, -MRS_EUSAGE,
			      "'%s': size %" PRIu64
			      " is not a positive multiple of the page size %" PRIu64,
			      spec->path, m->size, m->page_size);
		goto fail;
	}
	if (m->size > have) {
		ret = mrs_err(err, -MRS_EUSAGE,
			      "'%s' holds %" PRIu64 " bytes, fewer than the %" PRIu64 " asked for",
			      spec->path, have, m->size);
		goto fail;
	}
	return 0;
fail:
	mrs_ram_close(m);
	return ret;
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

/* A target that does not exist yet: its directory must, writable by us. */
static int probe_missing(struct mrs_ram_map *m, struct mrs_error *err)
{
	char *copy = strdup(m->path), *dir;
	struct stat st;
	int ret = 0;

	if (!copy)
		return mrs_err(err, -ENOMEM, "out of memory");
	dir = dirname(copy);
	if (stat(dir, &st))
		ret = mrs_err_errno(err, -errno, "cannot open target '%s'", m->path);
	else if (!S_ISDIR(st.st_mode))
		ret = mrs_err_errno(err, -ENOTDIR, "cannot open target '%s'", m->path);
	else if (faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS))
		ret = mrs_err_errno(err, -errno, "cannot create target '%s'", m->path);
	if (!ret) {
		m->dev = st.st_dev;
		m->ino = st.st_ino;
	}
	free(copy);
	return ret;
}

/*
 * A link that is a process's descriptor is that process's memory (a memfd
 * of a running QEMU, typically): --force is not the answer to suggest.
 */
static int refuse_link(const char *path, struct mrs_error *err)
{
	char who[128];
	int pid;

	if (!mrs_ram_is_proc_fd(path, &pid))
		return mrs_err(err, -ELOOP,
			       "target '%s' is a symbolic link; use --force to write through it",
			       path);
	mrs_ram_describe_process(pid, who, sizeof(who));
	return mrs_err(err, -ELOOP,
		       "target '%s' is a descriptor of %s: if it is a running QEMU's memfd, "
		       "writing it would overwrite that guest's RAM; restore with --qmp into a "
		       "QEMU waiting with -incoming defer (--force writes through the link into "
		       "whatever it is)",
		       path, who);
}

int mrs_ram_probe_target(struct mrs_ram_map *m, const char *name, const char *path, uint64_t size,
			 bool follow, struct mrs_error *err)
{
	struct stat st, fst;
	int ret;

	ret = init_map(m, name, path, err);
	if (ret)
		goto fail;
	m->size = size;
	if (lstat(path, &st)) {
		ret = errno == ENOENT ? probe_missing(m, err)
				      : mrs_err_errno(err, -errno, "cannot stat target '%s'", path);
		if (ret)
			goto fail;
		return 0;
	}
	if (S_ISLNK(st.st_mode) && !follow) {
		ret = refuse_link(path, err);
		goto fail;
	}
	if (S_ISLNK(st.st_mode) && stat(path, &st)) {
		ret = mrs_err_errno(err, -errno, "cannot follow the symbolic link '%s'", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		ret = mrs_err(err, -EINVAL,
			      "target '%s' is neither a regular file nor a block device", path);
		goto fail;
	}
	/*
	 * Opening changes nothing: no O_CREAT, no O_TRUNC; and O_NONBLOCK, so
	 * that a FIFO put there since the stat cannot hang the open.
	 */
	m->fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW));
	if (m->fd < 0) {
		ret = mrs_err_errno(err, -errno, "cannot open target '%s'", path);
		goto fail;
	}
	if (fstat(m->fd, &fst) || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
		ret = mrs_err(err, -EAGAIN, "target '%s' was replaced while it was checked", path);
		goto fail;
	}
	if (fcntl(m->fd, F_SETFL, fcntl(m->fd, F_GETFL) & ~O_NONBLOCK)) {
		ret = mrs_err_errno(err, -errno, "cannot open target '%s'", path);
		goto fail;
	}
	ret = backing_size(m, &m->have, err);
	if (ret)
		goto fail;
	if (m->blockdev && m->have < size) {
		ret = mrs_err(err, -ENOSPC,
			      "target '%s' holds %" PRIu64 " bytes, block '%s' needs %" PRIu64,
			      path, m->have, name, size);
		goto fail;
	}
	m->exists = true;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	return 0;
fail:
	mrs_ram_close(m);
	return ret;
}

bool mrs_ram_same_target(const struct mrs_ram_map *a, const struct mrs_ram_map *b)
{
	const char *na = strrchr(a->path, '/'), *nb = strrchr(b->path, '/');

	if (a->exists != b->exists || a->dev != b->dev || a->ino != b->ino)
		return false;
	if (a->exists)
		return true;
	return !strcmp(na ? na + 1 : a->path, nb ? nb + 1 : b->path);
}

/*
 * Whether the mapping on this line of /proc/PID/maps is of the file. The
 * line's device is the filesystem's own, which stat(2) does not always
 * report (btrfs subvolumes, overlayfs): on an inode match with another
 * device, stat the mapping itself through map_files.
 */
static bool maps_line_is(const char *line, long pid, dev_t dev, ino_t ino)
{
	unsigned long start, end;
	unsigned maj, min;
	unsigned long long inode;
	char path[96];
	struct stat st;

	if (sscanf(line, "%lx-%lx %*s %*s %x:%x %llu", &start, &end, &maj, &min, &inode) != 5 ||
	    inode != (unsigned long long)ino || inode == 0)
		return false;
	if (maj == major(dev) && min == minor(dev))
		return true;
	snprintf(path, sizeof(path), "/proc/%ld/map_files/%lx-%lx", pid, start, end);
	return stat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

bool mrs_ram_mapped_by_pid(int pid, dev_t dev, ino_t ino)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return false; /* gone, or not ours to read */
	while (!found && getline(&line, &cap, f) > 0)
		found = maps_line_is(line, pid, dev, ino);
	free(line);
	fclose(f);
	return found;
}

void mrs_ram_describe_process(int pid, char *buf, size_t len)
{
	char path[64], comm[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (f && fgets(comm, sizeof(comm), f))
		comm[strcspn(comm, "\n")] = '\0';
	if (f)
		fclose(f);
	if (comm[0])
		snprintf(buf, len, "pid %d (%s)", pid, comm);
	else
		snprintf(buf, len, "pid %d, which no longer runs", pid);
}

bool mrs_ram_is_proc_fd(const char *path, int *pid)
{
	int fd, end = 0;

	return sscanf(path, "/proc/%d/fd/%d%n", pid, &fd, &end) == 2 && !path[end] && *pid > 0 &&
	       fd >= 0;
}

int mrs_ram_mapped_by(dev_t dev, ino_t ino, int except)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid > INT32_MAX || pid == except)
			continue;
		if (mrs_ram_mapped_by_pid((int)pid, dev, ino))
			found = (int)pid;
	}
	closedir(d);
	return found;
}

/*
 * Make a regular target exactly m->size bytes of zeros, absent pages then
 * reading as zero. Holes are punched rather than the file cut to 0 and
 * grown again: a process that maps the file (a guest restored into with
 * --force) would take SIGBUS on any page it touched between the two
 * truncations. Only where punching is not supported is the file cut.
 */
static int clear_file(struct mrs_ram_map *m, struct mrs_error *err)
{
	struct stat st;
	off_t keep;

	if (fstat(m->fd, &st))
		return mrs_err_errno(err, -errno, "cannot stat target '%s'", m->path);
	keep = st.st_size < (off_t)m->size ? st.st_size : (off_t)m->size;
	if (st.st_size > (off_t)m->size && ftruncate(m->fd, (off_t)m->size))
		goto size_failed;
	if (keep && fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, keep)) {
		if (errno != EOPNOTSUPP)
			return mrs_err_errno(err, -errno, "cannot clear target '%s'", m->path);
		if (ftruncate(m->fd, 0))
			goto size_failed;
	}
	if (ftruncate(m->fd, (off_t)m->size))
		goto size_failed;
	return 0;
size_failed:
	return mrs_err_errno(err, -errno, "cannot size target '%s' to %" PRIu64 " bytes", m->path,
			     m->size);
}

int mrs_ram_target_room(const struct mrs_ram_map *m, uint64_t *room, uint64_t *freed,
			struct mrs_error *err)
{
	struct statvfs vfs;
	struct statfs fs;
	struct stat st;
	char *dir = NULL;
	int ret;

	*freed = 0;
	if (m->exists) {
		ret = fstatvfs(m->fd, &vfs) || fstatfs(m->fd, &fs);
		if (!ret && fstat(m->fd, &st) == 0)
			*freed = (uint64_t)st.st_blocks * 512; /* given back when it is cleared */
	} else {
		char *copy = strdup(m->path);

		if (!copy)
			return mrs_err(err, -ENOMEM, "out of memory");
		dir = dirname(copy);
		ret = statvfs(dir, &vfs) || statfs(dir, &fs);
		free(copy);
	}
	if (ret)
		return mrs_err_errno(err, -errno, "cannot tell the free space for target '%s'",
				     m->path);
	*room = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	/*
	 * hugetlbfs: the free count is the pool's, and a file's pages are not in
	 * st_blocks; pages it already holds would be counted as missing. Its
	 * pool is set aside for guests beforehand, so do not second-guess it.
	 * A tmpfs without a size (the kernel's own, where memfds live) says it
	 * has no block at all: it is limited only by memory.
	 */
	if (fs.f_type == HUGETLBFS_MAGIC || (fs.f_type == TMPFS_MAGIC && vfs.f_blocks == 0))
		*room = UINT64_MAX;
	return 0;
}

int mrs_ram_prepare_target(struct mrs_ram_map *m, struct mrs_error *err)
{
	struct stat st;
	int ret = 0;

	if (!m->exists) {
		/* O_EXCL: a file that appeared since the probe was not checked. */
		m->fd = open(m->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (m->fd < 0)
			return mrs_err_errno(err, -errno, "cannot create target '%s'", m->path);
		m->created = true;
		if (fstat(m->fd, &st) == 0) {
			m->dev = st.st_dev;
			m->ino = st.st_ino;
		}
	}
	m->changed = true;
	m->page_size = backing_page_size(m->fd);
	if (m->blockdev)
		ret = zero_blockdev(m, err);
	else
		ret = clear_file(m, err);
	/* hugetlbfs has no write(2): pages go in through a mapping. */
	if (!ret && m->page_size > MRS_MIN_PAGE)
		ret = map(m, PROT_READ | PROT_WRITE, err);
	return ret;
}

void mrs_ram_discard_target(struct mrs_ram_map *m)
{
	struct stat now;

	/* Only while the name is still the file made here. */
	if (m->created && lstat(m->path, &now) == 0 && now.st_dev == m->dev && now.st_ino == m->ino)
		unlink(m->path);
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
