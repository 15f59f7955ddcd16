/* SPDX-License-Identifier: MIT */
/*
 * Page policies: what the transport (transfer.c) asks about the pages it
 * moves. The transport reads runs of pages into its buffers and moves them
 * on (RAM to image, image to RAM, image to nowhere); a policy decides which
 * pages a run holds, what each page read means (zero? changed? damaged?),
 * and keeps the per-page state (struct mrs_page_state) that the engine owns.
 * The transport never looks at that state; the policies never touch a ring,
 * a buffer pool or a request.
 *
 * One ops table a kind of job (policy_save.c; policy_load.c for load and
 * verify), after QEMU's MultiFDMethods. A new way of choosing pages (an
 * incremental snapshot against a base image) is one more table.
 */
#ifndef MRS_POLICY_H
#define MRS_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "channel.h"

struct channel;

/* What a policy sees of the job it is asked about. Valid during the call. */
struct mrs_page_job {
	struct channel *ch; /* only for the services below */
	const struct mrs_job *job;
	const struct mrs_chan_block *block;
	struct mrs_page_state *pages; /* the block's; job->pages */
	struct mrs_chan_stats *stats; /* the channel's counters */
};

/* The pages a job's cursor comes to next: skip them, then move a run of npages. */
struct mrs_run {
	uint64_t skip;
	uint64_t npages;
};

/* Where a kind of job moves bytes. */
enum mrs_page_flow {
	MRS_FLOW_RAM_TO_IMAGE,	/* read RAM into buffers, write pages to the image (save) */
	MRS_FLOW_IMAGE_TO_RAM,	/* read the image into buffers, store pages in RAM (load) */
	MRS_FLOW_IMAGE_TO_NONE, /* read the image into buffers, and no further (verify) */
};

struct mrs_page_ops {
	enum mrs_page_flow flow;
	/*
	 * Plan a run from a job: from page on (below end), how many pages need
	 * no transfer, and how many after them to read into one buffer, at
	 * most max (at least 1 unless the skip reaches end). The transport
	 * always moves the cursor past the skipped pages, so a policy may
	 * settle their state here.
	 */
	void (*plan_run)(const struct mrs_page_job *j, uint64_t page, uint64_t end, uint64_t max,
			 struct mrs_run *run);
	/*
	 * A page was read whole into a buffer (from RAM or from the image),
	 * at bytes. RAM to image: true to write it, from these very bytes
	 * (so the state recorded now describes what the image will hold).
	 * From the image: true to let it go on; false once the policy has
	 * failed the set (the run then goes nowhere).
	 */
	bool (*page_read)(const struct mrs_page_job *j, uint64_t page, const uint8_t *bytes);
	/*
	 * A page larger than a buffer was read piece by piece: hash is that of
	 * all its bytes (0 from the image when needs_hash said no), zero says
	 * every piece was zero. Answers as page_read. From the image its
	 * pieces have already gone on by then.
	 */
	bool (*large_page_read)(const struct mrs_page_job *j, uint64_t page, uint64_t hash,
				bool zero);
	/*
	 * RAM to image, pages larger than a buffer only: the page was read
	 * again and written piece by piece; hash is that of the pieces
	 * written. (A page that fits a buffer is written from the copy
	 * page_read saw, so page_read records it.)
	 */
	void (*large_page_written)(const struct mrs_page_job *j, uint64_t page, uint64_t hash);
	/* From the image: whether large_page_read needs the hash (a pass over the page). */
	bool (*needs_hash)(const struct mrs_page_job *j);
};

/* ---- services of the transport, for policies ------------------------------- */

/* Fail the whole set with this error (the first failure of a set is kept). */
void mrs_page_fail(const struct mrs_page_job *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Save: a page of the job is zero now (was_present: the image held it).
 * The transport punches runs of such pages out, one range a run and only
 * if one of them was present, before the job counts as done; a run that a
 * write bridges gets its zeros from the write instead. Without punch
 * support the bytes stay; the cleared bit hides them.
 */
void mrs_page_clear(const struct mrs_page_job *j, uint64_t page, bool was_present);

/* Add a page whose bytes did not match its hash to the set's list (verify). */
void mrs_page_record_bad(const struct mrs_page_job *j, uint64_t page, uint64_t expected,
			 uint64_t got);

/* Whether len bytes at p are all zero (len a multiple of 32, at least 32). */
static inline bool mrs_page_is_zero(const uint8_t *p, uint64_t len)
{
	const uint64_t *w = (const uint64_t *)p;

	/* Non-zero data usually shows in the first words; then compare in bulk. */
	if (w[0] | w[1] | w[2] | w[3])
		return false;
	return memcmp(p, p + 32, len - 32) == 0;
}

#endif
