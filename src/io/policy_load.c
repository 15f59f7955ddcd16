/* SPDX-License-Identifier: MIT */
/*
 * The load and verify policies: which pages of the image a job reads (the
 * present ones, by the page state the image's bitmap gave), and what is
 * checked once they are read (their hashes, against its checksum table).
 * Load stores them in RAM and, with MRS_JOB_CHECK, fails on the first
 * mismatch; verify stores nothing and records every mismatch.
 */
#include <errno.h>
#include <inttypes.h>

#include "codec.h"
#include "policy.h"

/* Skip the absent pages; then a run of present ones. */
static void plan_present(const struct mrs_page_job *j, uint64_t page, uint64_t end, uint64_t max,
			 struct mrs_run *run)
{
	const uint8_t *present = j->pages->present;
	uint64_t p = page, first;

	while (p < end && !present[p])
		p++;
	run->skip = p - page;
	for (first = p; p < end && present[p] && p - first < max;)
		p++;
	run->npages = p - first;
}

/* A page whose bytes do not match its hash: recorded (verify), or the end of the load. */
static bool bad_page(const struct mrs_page_job *j, uint64_t page, uint64_t got, bool fatal)
{
	const struct mrs_chan_block *b = j->block;
	uint64_t want = j->pages->hashes[page];

	j->stats->pages_bad++;
	if (!fatal) {
		mrs_page_record_bad(j, page, want, got);
		return true;
	}
	mrs_page_fail(j, -EBADMSG,
		      "block '%s': page %" PRIu64 " (guest offset 0x%" PRIx64
		      ") does not match its checksum (expected %016" PRIx64 ", read %016" PRIx64
		      ")",
		      b->name, page, page * b->page_size, want, got);
	return false;
}

static bool check_hash(const struct mrs_page_job *j, uint64_t page, uint64_t got, bool fatal)
{
	return got == j->pages->hashes[page] || bad_page(j, page, got, fatal);
}

/* ---- load --------------------------------------------------------------- */

static bool load_checks(const struct mrs_page_job *j)
{
	return j->job->flags & MRS_JOB_CHECK;
}

static bool load_page_read(const struct mrs_page_job *j, uint64_t page, const uint8_t *bytes)
{
	if (!load_checks(j))
		return true;
	return check_hash(j, page, mrs_hash(bytes, j->block->page_size), true);
}

static bool load_large_page_read(const struct mrs_page_job *j, uint64_t page, uint64_t hash,
				 bool zero)
{
	return !load_checks(j) || check_hash(j, page, hash, true);
}

const struct mrs_page_ops mrs_load_ops = {
    .flow = MRS_FLOW_IMAGE_TO_RAM,
    .plan_run = plan_present,
    .page_read = load_page_read,
    .large_page_read = load_large_page_read,
    .needs_hash = load_checks,
};

/* ---- verify ------------------------------------------------------------- */

static bool verify_page_read(const struct mrs_page_job *j, uint64_t page, const uint8_t *bytes)
{
	return check_hash(j, page, mrs_hash(bytes, j->block->page_size), false);
}

static bool verify_large_page_read(const struct mrs_page_job *j, uint64_t page, uint64_t hash,
				   bool zero)
{
	return check_hash(j, page, hash, false);
}

static bool always(const struct mrs_page_job *j)
{
	return true;
}

const struct mrs_page_ops mrs_verify_ops = {
    .flow = MRS_FLOW_IMAGE_TO_NONE,
    .plan_run = plan_present,
    .page_read = verify_page_read,
    .large_page_read = verify_large_page_read,
    .needs_hash = always,
};
