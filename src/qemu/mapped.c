/* SPDX-License-Identifier: MIT */
/*
 * With --qmp, a block is QEMU's RAM only if QEMU maps its file: a --ram
 * override taken by name alone could be any file, and would give an image
 * that verifies and a guest that is broken (or, restoring, RAM loaded where
 * QEMU never looks, and device state that kills it). What the block's path
 * leads to (a memfd's /proc/PID/fd/N leads to the memfd's inode, which its
 * mapping shows too) is looked for in QEMU's /proc/PID/maps, the way
 * restore looks for the processes that map a target (mrs_ram_mapped_by_pid).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "qemu_impl.h"
#include "ram.h"

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

static int check_one(const struct mrs_qemu *q, const struct mrs_ram *r, struct mrs_error *err)
{
	char has[4400];
	struct stat st;
	int rc = stat(r->path, &st), e = errno;

	if (rc == 0 && mrs_ram_mapped_by_pid(q->pid, st.st_dev, st.st_ino))
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
	int ret = 0;

	if (q->pid <= 0)
		return mrs_err(err, -ESRCH,
			       "QEMU's pid is not known, so its RAM files cannot be checked");
	for (unsigned i = 0; !ret && i < nram; i++)
		ret = check_one(q, &ram[i], err);
	return ret;
}
