/* SPDX-License-Identifier: MIT */
/*
 * A pass: one kind of job (one page policy) over every page of every block,
 * fed to the channels a little at a time so that the calling thread can
 * report progress and notice a cancel request, and finished with one sync.
 */
#ifndef MRS_PASS_H
#define MRS_PASS_H

#include <stdint.h>

#include "channel.h"
#include "mrsnap.h"

struct mrs_pass {
	struct mrs_chanset *cs;
	const struct mrs_chan_block *blocks;
	struct mrs_page_state *pages; /* per block, handed to every job */
	uint32_t nblocks;
	const struct mrs_page_ops *ops; /* mrs_save_ops, mrs_load_ops, mrs_verify_ops */
	unsigned flags;			/* MRS_JOB_*: the policy's parameters */
	const char *phase;		/* for progress: "round 0", "restore", ... */
	const struct mrs_io_opts *io;	/* progress callback and interval */
	unsigned channels;
};

/* Run the pass and sync. -ECANCELED if the progress callback asked to stop. */
int mrs_pass_run(const struct mrs_pass *pass, struct mrs_error *err);

/* Call the progress callback outside a pass (metadata, fsync). -ECANCELED to stop. */
int mrs_progress_report(const struct mrs_io_opts *io, const char *phase, uint64_t done,
			uint64_t total, uint64_t moved, uint64_t start_ns);

/* Monotonic time in nanoseconds. */
uint64_t mrs_now_ns(void);

/* Fill in defaults for zero fields of io (channels, depth, interval); -EINVAL if out of range. */
int mrs_io_opts_resolve(const struct mrs_io_opts *in, struct mrs_io_opts *out,
			struct mrs_error *err);

#endif
