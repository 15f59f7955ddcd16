/* SPDX-License-Identifier: MIT */
/*
 * A snapshot against a base image (mrs_save_opts.base): the new image starts
 * as a copy-on-write clone of the base's page regions, its page state is
 * seeded from the base's bitmaps and checksum tables, and its first round
 * writes only what changed (docs/DESIGN.md, "Snapshots against a base").
 * The base is opened read-only, validated like any image a reader opens,
 * and never written.
 */
#ifndef MRS_BASE_H
#define MRS_BASE_H

#include <stdbool.h>
#include <stdint.h>

#include "channel.h"
#include "codec.h"
#include "ram.h"
#include "reader.h"

struct mrs_base {
	const char *path; /* NULL: no base, and every call below does nothing */
	struct mrs_image_reader img;
	uint32_t *of;	       /* per block of the new image: its index in the base */
	bool *shared;	       /* per block: its page region was cloned and its state seeded */
	uint32_t nshared;      /* blocks shared */
	int refusal;	       /* why a block could not be cloned (the first), or 0 */
	bool counted;	       /* the first round is over and reused counted */
	uint64_t pages_reused; /* pages the first round found as the base held them */
};

/*
 * Open and check the base before anything is created: a complete, valid
 * image (damaged or incomplete: -EPROTO), not the file at image (the new
 * image's path), with the same blocks as the sources (names, sizes, page
 * sizes; in any order): a difference is -MRS_EUSAGE naming it. path NULL:
 * no base.
 */
int mrs_base_open(struct mrs_base *b, const char *path, const char *image,
		  const struct mrs_ram_map *src, uint32_t n, struct mrs_error *err);

/*
 * Once the new image (fd) is planned and its page state allocated: clone
 * each block's page region from the base and seed its page state (present
 * and hashes) from the base's bitmap and checksum table. A block the
 * filesystem refuses to clone (mrs_clone_refused) keeps an empty state, so
 * it is written in full; any other failure is an error.
 */
int mrs_base_share(struct mrs_base *b, int fd, const struct mrs_block_header *bh,
		   struct mrs_page_state *pages, uint32_t n, struct mrs_error *err);

/*
 * Flags of the first round: MRS_JOB_CHANGED_ONLY once a block is seeded, so
 * that pages whose hash is the base's are left as cloned. (An empty state
 * makes that round write every non-zero page, as without a base.)
 */
unsigned mrs_base_first_round_flags(const struct mrs_base *b);

/* After each round; after the first, counts the pages left as the base held them. */
void mrs_base_round_done(struct mrs_base *b, const struct mrs_page_state *pages, uint32_t n);

/* The base's part of the save report. */
void mrs_base_report(const struct mrs_base *b, struct mrs_save_report *report);

void mrs_base_close(struct mrs_base *b);

#endif
