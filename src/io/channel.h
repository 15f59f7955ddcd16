/* SPDX-License-Identifier: MIT */
/*
 * Channels: the threads that move pages between RAM and the image.
 *
 * Each channel owns one io_uring, one fd of the image (so O_DIRECT can be
 * set on channel fds while metadata keeps its buffered fd) and a pool of
 * buffers registered with its ring. The main thread only decides what to
 * transfer, as jobs (a range of pages of one block, and the policy that
 * chooses among them); channels do the I/O, in runs of contiguous pages of
 * up to max_request bytes (transfer.c), and the per-page work in their own
 * threads: the job's policy (zero detection, xxh3-64, policy.h) runs there.
 *
 * Sync (docs/DESIGN.md, "Channels and when they sync"): mrs_chanset_sync()
 * returns only when every job queued before it has completed on every
 * channel. Save calls it between dirty rounds and before writing bitmaps and
 * checksum tables, because a page written by channel 0 in round N and by
 * channel 1 in round N+1 must land in that order; restore and verify call it
 * once, at the end. Nothing else waits for channels.
 */
#ifndef MRS_CHANNEL_H
#define MRS_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrsnap.h"

#define MRS_CHANNELS_MAX    64u
#define MRS_DEPTH_DEFAULT   32u
#define MRS_DEPTH_MAX	    1024u
#define MRS_REQUEST_DEFAULT (1024u * 1024u)
/*
 * Buffer memory of a whole channel set: every byte in flight sits in a
 * channel buffer, so this bounds memory use (and I/O in flight) whatever the
 * guest's size or page size. Each channel gets an equal share; a page larger
 * than a buffer (1 GiB hugetlbfs pages) is moved in buffer-sized pieces.
 */
#define MRS_BUFFER_BUDGET (48u * 1024u * 1024u)
/*
 * The longest gap a request bridges: a run of pages to move may carry up to
 * this many bytes of pages not to be moved (zero or unchanged pages on save,
 * absent ones on load and verify) rather than end and start a new request.
 * From fio on the work disk: a request costs 7-10 us beyond its bytes, a
 * 4 KiB page 1.6-2.4 us, so a gap of up to 4 such pages costs less carried
 * than cut (docs/PERFORMANCE.md, "Bridging gaps"). Pages larger than this
 * are never bridged.
 */
#define MRS_BRIDGE_BYTES (16u * 1024u)

/* One RAM block as channels see it. */
struct mrs_chan_block {
	const char *name;
	const char *path; /* of its RAM file, for messages; NULL for verify */
	/*
	 * The block's RAM as a file: save reads pages from it, load writes
	 * them to it at page * page_size; -1 for verify. Channels never map
	 * it: reading into their own buffers costs less than page faults, and
	 * their memory use does not grow with guest RAM.
	 */
	int fd;
	/*
	 * Load only, for files that cannot be written with write(2) (hugetlbfs):
	 * a shared mapping of the block, which loaded pages are copied into.
	 */
	uint8_t *mem;
	uint64_t page_size;
	uint64_t page_count;
	uint64_t pages_offset; /* of its page region in the image */
	/*
	 * Save: fd is a file whose holes SEEK_DATA finds cheaply (tmpfs):
	 * pages in holes are zero, and are skipped without reading them.
	 */
	bool sparse;
};

/*
 * What the image holds for each page of a block, as far as a job knows it:
 * whether the page is present, and the xxh3-64 of its bytes there (0 for an
 * absent page). Save keeps it up to date with what it has written; load and
 * verify get it from the image's bitmap and checksum table. The engine
 * owns it and hands it to each job; only the job's policy reads or writes
 * it, and only the entries of the job's own pages, so the main thread may
 * read it after a sync (docs/DESIGN.md, "Channels and when they sync").
 */
struct mrs_page_state {
	uint64_t *hashes;
	uint8_t *present;
};

/*
 * What a job does with its pages: a policy (policy.h). The three kinds:
 *   save:   read a range of the block into channel buffers, hash each page
 *           of the copy, and write the non-zero (or, with CHANGED_ONLY,
 *           changed) pages from the copy: the stored hash is always that of
 *           the bytes written, however the guest changes its memory
 *           meanwhile;
 *   load:   read the present pages of a range and write them to the block;
 *   verify: read the present pages of a range and check their hashes.
 */
struct mrs_page_ops;
extern const struct mrs_page_ops mrs_save_ops, mrs_load_ops, mrs_verify_ops;

/* Job flags: parameters of a policy. */
#define MRS_JOB_CHANGED_ONLY 0x1u /* save: skip pages whose hash equals the last written */
#define MRS_JOB_CHECK	     0x2u /* load: check each page's hash once read; fail on mismatch */

struct mrs_job {
	const struct mrs_page_ops *ops;
	unsigned flags;
	uint32_t block;
	uint64_t first_page;
	uint64_t npages;
	struct mrs_page_state *pages; /* the block's; read and written by ops only */
};

/* One I/O request as fault-injection hooks see it. */
struct mrs_io {
	bool write;
	bool target; /* to the block's file (load), not the image */
	uint32_t block;
	uint64_t offset; /* in the file */
	uint32_t len;	 /* a before_submit hook may lower it to force a short transfer */
};

/*
 * Fault injection for tests: production code passes none. Hooks run in the
 * channel's thread, but for on_sync.
 */
struct mrs_chan_hooks {
	void (*before_submit)(void *ctx, unsigned channel, struct mrs_io *io);
	/* Sees each completion result and returns the one the channel acts on. */
	int (*on_complete)(void *ctx, unsigned channel, const struct mrs_io *io, int res);
	void *ctx;
	/*
	 * Before the channel hands its prepared requests to the kernel: 0 to
	 * go ahead, or an error it takes as io_uring_submit's result, as if
	 * the kernel had taken none of them.
	 */
	int (*before_flush)(void *ctx, unsigned channel);
	/* Before it waits for completions: 0, or an error it takes as the wait's result. */
	int (*before_wait)(void *ctx, unsigned channel);
	/* In the caller's thread, as mrs_chanset_sync returns: how tests count an engine's syncs.
	 */
	void (*on_sync)(void *ctx);
};

struct mrs_chan_config {
	const char *path;     /* the image, opened once per channel (or its name in messages) */
	bool writable;	      /* open it read-write (save) or read-only */
	bool direct;	      /* O_DIRECT on channel fds */
	unsigned channels;    /* 1..MRS_CHANNELS_MAX */
	unsigned depth;	      /* requests in flight per channel; 0: default */
	uint32_t max_request; /* bytes per request; 0: default */
	const struct mrs_chan_hooks *hooks;
	/*
	 * Restore and verify: fd is the image as the engine opened and
	 * validated it. Each channel opens its own description of that same
	 * file through /proc/self/fd/N (O_DIRECT needs one of its own), never
	 * path again, which may meanwhile name another file.
	 */
	bool reopen_fd;
	int fd;
};

/* Counters, summed over channels. Read them after a sync. */
struct mrs_chan_stats {
	uint64_t pages_scanned;
	uint64_t pages_dirty;	/* save: non-zero pages that had to be written */
	uint64_t pages_written; /* save: the pages the policy wrote, not bridged ones */
	uint64_t pages_bridged; /* carried in a request without being moved (a gap) */
	uint64_t pages_zeroed;	/* save: present before, zero now */
	uint64_t pages_read;	/* load, verify: present pages read, not bridged ones */
	uint64_t pages_skipped; /* save: in holes of a sparse block's file, never read */
	uint64_t pages_bad;	/* verify: hash mismatches */
	uint64_t bytes_written;
	uint64_t bytes_read;
	uint64_t requests;
	uint64_t punches;   /* save: fallocate(PUNCH_HOLE) calls for pages that became zero */
	uint64_t resubmits; /* short transfers and -EAGAIN completed by resubmission */
};

/* A page whose content did not match its hash (verify). */
struct mrs_bad_page {
	uint32_t block;
	uint64_t page;
	uint64_t expected, actual;
};

struct mrs_chanset;

/*
 * Hooks for channel sets whose config names none: how tests inject faults
 * into the engines (save, restore, verify) without a test-only path in
 * them. NULL in production; not exported from the library.
 */
extern const struct mrs_chan_hooks *mrs_chan_test_hooks;

/* Open the channels' fds and rings and start their threads. */
int mrs_chanset_open(struct mrs_chanset **out, const struct mrs_chan_config *cfg,
		     struct mrs_chan_block *blocks, uint32_t nblocks, struct mrs_error *err);

/*
 * Queue a job on a channel (the least busy one for queue_any). Returns 0, or
 * the error that has already stopped the set (nothing new is started then).
 */
int mrs_chanset_queue(struct mrs_chanset *cs, unsigned channel, const struct mrs_job *job,
		      struct mrs_error *err);
int mrs_chanset_queue_any(struct mrs_chanset *cs, const struct mrs_job *job, struct mrs_error *err);

/*
 * Wait until at most max_pending jobs are queued and unfinished over all
 * channels, or timeout_ms passes, or the set fails. True if there is room.
 * Lets the main thread queue a little ahead of the channels and report
 * progress in between, instead of queueing a whole round at once.
 */
bool mrs_chanset_wait_room(struct mrs_chanset *cs, unsigned max_pending, unsigned timeout_ms);

/* Pages of finished jobs and bytes transferred so far; callable any time. */
void mrs_chanset_progress(struct mrs_chanset *cs, uint64_t *pages_done, uint64_t *bytes_moved);

/*
 * Wait until every job queued so far has completed on every channel. Returns
 * 0, or the first error any channel met (channel, block, offset, errno).
 */
int mrs_chanset_sync(struct mrs_chanset *cs, struct mrs_error *err);

/* Counters so far; call after a sync. */
void mrs_chanset_stats(struct mrs_chanset *cs, struct mrs_chan_stats *sum);
/* Bytes of buffers the set holds, all channels: at most MRS_BUFFER_BUDGET. */
size_t mrs_chanset_buffer_bytes(const struct mrs_chanset *cs);

/* Pages that failed verification, in no particular order; valid until close. */
const struct mrs_bad_page *mrs_chanset_bad_pages(const struct mrs_chanset *cs, size_t *count);

/*
 * Stop the channels: queued jobs are dropped, requests in flight are waited
 * for (so buffers and mappings may be freed afterwards), threads joined, fds
 * closed. Call mrs_chanset_sync() first to finish the work. NULL is fine.
 */
void mrs_chanset_close(struct mrs_chanset *cs);

/* Check a channel count and queue depth against the limits; -EINVAL if out. */
int mrs_chan_check_limits(unsigned channels, unsigned depth, struct mrs_error *err);

/* Online CPUs, the default channel count (at least 1, at most MRS_CHANNELS_MAX). */
unsigned mrs_default_channels(void);

#endif
