/* SPDX-License-Identifier: MIT */
/*
 * With --qmp, a block is QEMU's RAM only if QEMU maps its file: a --ram
 * override taken by name alone could be any file, and would give an image
 * that verifies and a guest that is broken (or, restoring, RAM loaded where
 * QEMU never looks, and device state that kills it). The files QEMU maps
 * are read from /proc/PID/maps (device and inode of each mapping) and
 * compared with what the block's path leads to (a memfd's /proc/PID/fd/N
 * leads to the memfd's inode, which its mapping shows too).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "error.h"
#include "qemu_impl.h"

/* One file QEMU maps. */
struct mapped_file {
	dev_t dev;
	ino_t ino;
};

struct mapped {
	struct mapped_file *files;
	size_t n, cap;
};

static int add_file(struct mapped *m, dev_t dev, ino_t ino)
{
	struct mapped_file *grown;

	for (size_t i = 0; i < m->n; i++)
		if (m->files[i].dev == dev && m->files[i].ino == ino)
			return 0;
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		grown = realloc(m->files, m->cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		m->files = grown;
	}
	m->files[m->n++] = (struct mapped_file){dev, ino};
	return 0;
}

/* "ADDR PERMS OFFSET MAJ:MIN INODE PATH": every mapping of a file (inode not 0). */
static int read_maps(int pid, struct mapped *m, struct mrs_error *err)
{
	char path[64], line[4352];
	FILE *f;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return mrs_err_errno(
		    err, -errno, "cannot read which files QEMU (pid %d) maps, in '%s'", pid, path);
	while (!ret && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		unsigned long long ino;

		if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &ino) == 3 && ino)
			ret = add_file(m, makedev(maj, min), (ino_t)ino);
	}
	fclose(f);
	return ret ? mrs_err(err, ret, "out of memory") : 0;
}

static bool is_mapped(const struct mapped *m, const struct stat *st)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->files[i].dev == st->st_dev && m->files[i].ino == st->st_ino)
			return true;
	return false;
}

static const struct mrs_qemu_backend *backend_named(const struct mrs_qemu *q, const char *name)
{
	for (unsigned i = 0; i < q->nbackends; i++)
		if (!strcmp(q->backends[i].id, name))
			return &q->backends[i];
	return NULL;
}

/* What QEMU has for the block: "its mem-path '/dev/shm/a.ram'", "a memfd", or nothing. */
static void what_qemu_has(const struct mrs_qemu *q, const char *name, char *buf, size_t len)
{
	const struct mrs_qemu_backend *b = backend_named(q, name);

	if (!b)
		snprintf(buf, len, "QEMU has no memory backend '%s'", name);
	else if (b->mem_path)
		snprintf(
		    buf, len,
		    "QEMU's backend '%s' maps its mem-path '%s' (leave --ram %s out to use it)",
		    name, b->mem_path, name);
	else
		snprintf(buf, len,
			 "QEMU's backend '%s' is a %s (leave --ram %s out and mrsnap finds it)",
			 name, b->type, name);
}

static int check_one(const struct mrs_qemu *q, const struct mapped *m, const struct mrs_ram *r,
		     struct mrs_error *err)
{
	char has[4400];
	struct stat st;
	int rc = stat(r->path, &st), e = errno;

	if (rc == 0 && is_mapped(m, &st))
		return 0;
	what_qemu_has(q, r->name, has, sizeof(has));
	if (rc && e == ENOENT)
		return mrs_err(err, -MRS_EUSAGE,
			       "block '%s': '%s' does not exist, so it is no memory of QEMU's (pid "
			       "%d): %s",
			       r->name, r->path, q->pid, has);
	if (rc)
		return mrs_err_errno(err, -e, "block '%s': cannot look at '%s'", r->name, r->path);
	return mrs_err(err, -MRS_EUSAGE,
		       "block '%s': '%s' is not a file QEMU (pid %d) maps, so it is not the "
		       "guest's RAM: %s",
		       r->name, r->path, q->pid, has);
}

int mrs_qemu_check_mapped(struct mrs_qemu *q, const struct mrs_ram *ram, unsigned nram,
			  struct mrs_error *err)
{
	struct mapped m = {0};
	int ret;

	if (q->pid <= 0)
		return mrs_err(err, -ESRCH,
			       "QEMU's pid is not known, so its RAM files cannot be checked");
	ret = read_maps(q->pid, &m, err);
	for (unsigned i = 0; !ret && i < nram; i++)
		ret = check_one(q, &m, &ram[i], err);
	free(m.files);
	return ret;
}
