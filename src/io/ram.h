/* SPDX-License-Identifier: MIT */
/*
 * RAM blocks as files: the sources a snapshot maps and reads, and the
 * targets a restore creates, sizes, clears and maps.
 */
#ifndef MRS_RAM_H
#define MRS_RAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mrsnap.h"

struct mrs_ram_map {
	char *name;
	char *path;
	int fd;
	uint8_t *mem; /* a shared mapping, only for targets write(2) cannot fill (hugetlbfs) */
	uint64_t size;
	uint64_t page_size; /* the backing's page size: 4096, or hugetlbfs's */
	bool blockdev;
	bool sparse; /* on tmpfs: holes are cheap to find with SEEK_DATA */
	/* Restore targets only. */
	bool exists;  /* it existed when probed: fd is open on it, have is its size */
	bool created; /* made by mrs_ram_prepare_target, so removed again on failure */
	bool changed; /* what it held before is gone (cut, cleared or written) */
	uint64_t have;
	dev_t dev; /* of the file; of its directory when it does not exist yet */
	ino_t ino;
};

/* Open a source read-only. spec->size 0: the size of the file or device. */
int mrs_ram_open_source(struct mrs_ram_map *m, const struct mrs_ram *spec, struct mrs_error *err);

/*
 * Restore targets are first probed, which changes nothing: a missing one
 * must be creatable in an existing directory; an existing one must be a
 * regular file or a block device of at least size bytes, and a symlink only
 * with follow (the caller's force, or a VMM's own /proc/PID/fd/N); it is opened (read-write,
 * without O_CREAT) and its device, inode and size noted. The engine checks its own rules on that,
 * and only then prepares the targets: creates the missing ones (0600, O_EXCL), sizes regular files
 * and makes every byte zero (mapping it on hugetlbfs).
 */
int mrs_ram_probe_target(struct mrs_ram_map *m, const char *name, const char *path, uint64_t size,
			 bool follow, struct mrs_error *err);
int mrs_ram_prepare_target(struct mrs_ram_map *m, struct mrs_error *err);

/* Whether two probed targets are one file (for missing ones: one name in one directory). */
bool mrs_ram_same_target(const struct mrs_ram_map *a, const struct mrs_ram_map *b);

/*
 * A process other than except (0: none excepted) that has the file with
 * this device and inode mapped (from /proc/PID/maps: a running guest's
 * RAM), or 0. Processes whose maps cannot be read (other users', as
 * non-root) are not seen.
 */
int mrs_ram_mapped_by(dev_t dev, ino_t ino, int except);
/* Whether process pid maps the file with this device and inode. */
bool mrs_ram_mapped_by_pid(int pid, dev_t dev, ino_t ino);

/*
 * A process's name for messages: "pid 1234 (qemu-system-x86)", or "pid
 * 1234, which no longer runs".
 */
void mrs_ram_describe_process(int pid, char *buf, size_t len);

/* Whether path is /proc/PID/fd/N, a descriptor of a process (*pid: PID). */
bool mrs_ram_is_proc_fd(const char *path, int *pid);

/* After a failure: remove a target that mrs_ram_prepare_target created. */
void mrs_ram_discard_target(struct mrs_ram_map *m);

/*
 * For a probed regular target: the bytes free on its filesystem (room) and
 * those its file holds now, which clearing it gives back (freed).
 */
int mrs_ram_target_room(const struct mrs_ram_map *m, uint64_t *room, uint64_t *freed,
			struct mrs_error *err);

/* Make what was loaded into a target durable. */
int mrs_ram_flush(struct mrs_ram_map *m, struct mrs_error *err);

void mrs_ram_close(struct mrs_ram_map *m);

#endif
