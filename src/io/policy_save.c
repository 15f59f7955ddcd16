/* SPDX-License-Identifier: MIT */
/*
 * The save policy: which pages of RAM a round writes to the image, and the
 * page state that says what the image holds for each (struct
 * mrs_page_state: present, and the hash of what was last written).
 *
 * A page is written unless it is zero, or (MRS_JOB_CHANGED_ONLY, the rounds
 * after the first) its hash equals the one last written. A page that was
 * present and is zero now is cleared and punched out. Pages in holes of a
 * sparse RAM file are zero without being read.
 */
#include <errno.h>
#include <unistd.h>

#include "codec.h"
#include "policy.h"

/*
 * A page that is zero now: never written, or cleared if it was; the
 * transport makes its bytes zero with the runs around it (mrs_page_clear).
 */
static void zero_page(const struct mrs_page_job *j, uint64_t page)
{
	mrs_page_clear(j, page, j->pages->present[page]);
	if (j->pages->present[page]) {
		j->stats->pages_zeroed++;
		j->pages->present[page] = 0;
		j->pages->hashes[page] = 0;
	}
}

/*
 * Pages from page on (below end) that lie in a hole of the block's file,
 * and so read as zero: found with SEEK_DATA, and never read or hashed.
 * Guest memory a VM never touched is such a hole in its RAM file.
 */
static uint64_t hole_pages(const struct mrs_chan_block *b, uint64_t page, uint64_t end)
{
	off_t at = (off_t)(page * b->page_size);
	off_t data;

	if (!b->sparse)
		return 0;
	data = lseek(b->fd, at, SEEK_DATA); /* the fd's offset is unused: all reads are pread */
	if (data < 0)
		return errno == ENXIO ? end - page : 0; /* ENXIO: no data up to EOF */
	if (data <= at)
		return 0;
	return (uint64_t)(data - at) / b->page_size < end - page
		   ? (uint64_t)(data - at) / b->page_size
		   : end - page;
}

/* Skip the holes, then read a buffer's worth: every page not in a hole is looked at. */
static void save_plan_run(const struct mrs_page_job *j, uint64_t page, uint64_t end, uint64_t max,
			  struct mrs_run *run)
{
	uint64_t n = hole_pages(j->block, page, end);

	for (uint64_t i = 0; i < n; i++)
		zero_page(j, page + i);
	j->stats->pages_skipped += n;
	run->skip = n;
	run->npages = end - page - n < max ? end - page - n : max;
}

/* A non-zero page the image already holds, in a round that writes only changes. */
static bool unchanged(const struct mrs_page_job *j, uint64_t page, uint64_t hash)
{
	return (j->job->flags & MRS_JOB_CHANGED_ONLY) && j->pages->present[page] &&
	       j->pages->hashes[page] == hash;
}

/* What the image holds for the page from now on: bytes whose hash is hash. */
static void record_written(const struct mrs_page_job *j, uint64_t page, uint64_t hash)
{
	j->pages->hashes[page] = hash;
	j->pages->present[page] = 1;
}

/*
 * Decide for one page, from the copy in the channel's buffer, whether it is
 * written. Its hash is computed from that copy, the bytes that will be
 * written: a guest changing the page meanwhile cannot make the hash and the
 * image disagree (docs/DESIGN.md, "The A-B-A rule").
 */
static bool save_page_read(const struct mrs_page_job *j, uint64_t page, const uint8_t *copy)
{
	uint64_t ps = j->block->page_size, h;

	if (mrs_page_is_zero(copy, ps)) {
		zero_page(j, page);
		return false;
	}
	h = mrs_hash(copy, ps);
	if (unchanged(j, page, h))
		return false;
	j->stats->pages_dirty++;
	record_written(j, page, h);
	return true;
}

/*
 * A page larger than a buffer, from a first look that wrote nothing. It is
 * recorded only once written (save_large_page_written), with the hash of
 * the pieces written, not of this look.
 */
static bool save_large_page_read(const struct mrs_page_job *j, uint64_t page, uint64_t hash,
				 bool zero)
{
	if (zero) {
		zero_page(j, page);
		return false;
	}
	if (unchanged(j, page, hash))
		return false;
	j->stats->pages_dirty++;
	return true;
}

const struct mrs_page_ops mrs_save_ops = {
    .flow = MRS_FLOW_RAM_TO_IMAGE,
    .plan_run = save_plan_run,
    .page_read = save_page_read,
    .large_page_read = save_large_page_read,
    .large_page_written = record_written,
};
