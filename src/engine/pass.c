/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <time.h>

#include "error.h"
#include "pass.h"

/* Pages per job: enough to amortise queueing, small enough to balance channels. */
#define JOB_BYTES (8u << 20)
/* Jobs queued ahead per channel. */
#define JOBS_AHEAD	    4u
#define PROGRESS_MS_DEFAULT 200u

uint64_t mrs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int mrs_io_opts_resolve(const struct mrs_io_opts *in, struct mrs_io_opts *out,
			struct mrs_error *err)
{
	*out = in ? *in : (struct mrs_io_opts){0};
	if (!out->channels)
		out->channels = mrs_default_channels();
	if (!out->depth)
		out->depth = MRS_DEPTH_DEFAULT;
	if (!out->progress_ms)
		out->progress_ms = PROGRESS_MS_DEFAULT;
	/* Checked here too, so that bad options fail before any file is made. */
	return mrs_chan_check_limits(out->channels, out->depth, err);
}

int mrs_progress_report(const struct mrs_io_opts *io, const char *phase, uint64_t done,
			uint64_t total, uint64_t moved, uint64_t start_ns)
{
	struct mrs_progress p = {phase, done, total, moved, mrs_now_ns() - start_ns, 0};

	if (io->progress && io->progress(io->progress_ctx, &p))
		return -ECANCELED;
	return 0;
}

/* Where a pass stands, for progress reports. */
struct ticker {
	const struct mrs_pass *pass;
	uint64_t base_pages, base_moved; /* the channel set's counters when the pass began */
	uint64_t total_pages;
	uint64_t unit; /* progress counts pages; with mixed page sizes bytes are approximate */
	uint64_t start, last;
};

/* Report progress if it is time (or if forced); non-zero if the caller wants to stop. */
static int tick(struct ticker *t, bool force)
{
	uint64_t pages, moved, now = mrs_now_ns();

	if (!force && now - t->last < (uint64_t)t->pass->io->progress_ms * 1000000ull)
		return 0;
	t->last = now;
	mrs_chanset_progress(t->pass->cs, &pages, &moved);
	return mrs_progress_report(t->pass->io, t->pass->phase, (pages - t->base_pages) * t->unit,
				   t->total_pages * t->unit, moved - t->base_moved, t->start);
}

int mrs_pass_run(const struct mrs_pass *pass, struct mrs_error *err)
{
	unsigned ahead = pass->channels * JOBS_AHEAD, ms = pass->io->progress_ms;
	struct ticker t = {.pass = pass, .unit = pass->blocks[0].page_size};
	int ret;

	t.start = t.last = mrs_now_ns();
	for (uint32_t b = 0; b < pass->nblocks; b++)
		t.total_pages += pass->blocks[b].page_count;
	mrs_chanset_progress(pass->cs, &t.base_pages, &t.base_moved);
	for (uint32_t b = 0; b < pass->nblocks; b++) {
		const struct mrs_chan_block *cb = &pass->blocks[b];
		uint64_t step = JOB_BYTES / cb->page_size ? JOB_BYTES / cb->page_size : 1;

		for (uint64_t first = 0; first < cb->page_count; first += step) {
			struct mrs_job job = {
			    .ops = pass->ops,
			    .flags = pass->flags,
			    .block = b,
			    .first_page = first,
			    .npages = cb->page_count - first < step ? cb->page_count - first : step,
			    .pages = &pass->pages[b],
			};
			bool room;

			do {
				room = mrs_chanset_wait_room(pass->cs, ahead, ms);
				if (tick(&t, false))
					goto cancel;
			} while (!room);
			ret = mrs_chanset_queue_any(pass->cs, &job, err);
			if (ret)
				return ret;
		}
	}
	while (!mrs_chanset_wait_room(pass->cs, 0, ms))
		if (tick(&t, false))
			goto cancel;
	ret = mrs_chanset_sync(pass->cs, err);
	if (!ret)
		tick(&t, true);
	return ret;
cancel:
	/* The caller closes the set, which drops what is queued. */
	return mrs_err(err, -ECANCELED, "interrupted");
}
