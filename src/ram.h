/* SPDX-License-Identifier: MIT */
/*
 * RAM blocks as files: the sources a snapshot maps and reads, and the
 * targets a restore creates, sizes, clears and maps.
 */
#ifndef MRS_RAM_H
#define MRS_RAM_H

#include <stdbool.h>
#include <stdint.h>

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
};

/* Check a block name for an image: 1..63 bytes, printable, no '=' or ','. */
int mrs_ram_check_name(const char *name, struct mrs_error *err);

/* Open a source read-only. spec->size 0: the size of the file or device. */
int mrs_ram_open_source(struct mrs_ram_map *m, const struct mrs_ram *spec, struct mrs_error *err);

/*
 * Open (creating it 0600 if missing) a restore target for a block of size
 * bytes, refuse a symlink unless force, size a regular file and make every
 * byte zero (mapping it when it is on hugetlbfs). Called only after the image
 * has been validated: this is where a target is first changed.
 */
int mrs_ram_open_target(struct mrs_ram_map *m, const char *name, const char *path, uint64_t size,
			bool force, struct mrs_error *err);

/* Check a target path before anything is written anywhere: symlink, type. */
int mrs_ram_check_target(const char *path, bool force, struct mrs_error *err);

/* Make what was loaded into a target durable. */
int mrs_ram_flush(struct mrs_ram_map *m, struct mrs_error *err);

void mrs_ram_close(struct mrs_ram_map *m);

#endif
