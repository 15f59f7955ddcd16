/* SPDX-License-Identifier: MIT */
/*
 * Inside the channels: the structures shared by channel.c (the set, its
 * threads, queues and sync) and transfer.c (turning jobs into I/O). The
 * page policies (policy.h) see none of this.
 * Fields are grouped by who may touch them: that is where races hide.
 */
#ifndef MRS_CHANNEL_IMPL_H
#define MRS_CHANNEL_IMPL_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>

#include "channel.h"

/* What a request is doing now. */
enum stage {
	STAGE_IMAGE_WRITE, /* save: pages from a buffer to the image, through the ring */
	STAGE_IMAGE_READ,  /* load, verify: pages from the image into a buffer, through the ring */
};

/* A run of pages a request moves on: first is counted from the request's first page. */
struct segment {
	uint32_t first;
	uint32_t npages;
};

/*
 * One request in flight: a run of contiguous pages of one block, in one
 * buffer. The run may bridge short gaps (MRS_BRIDGE_BYTES) of pages its
 * job does not move: a read's segments are the pages that are moved on
 * (judged, stored); the gaps' bytes are read and dropped.
 */
struct request {
	struct mrs_io io; /* what was asked last, as hooks see it */
	enum stage stage;
	uint64_t base; /* file offset of the run in the image */
	uint8_t *buf;  /* the run's bytes, inside buffer `slot` */
	uint32_t done; /* bytes of this stage transferred so far */
	uint32_t len;  /* bytes of the run */
	uint64_t first_page;
	uint32_t npages;      /* of the run, bridged ones included */
	uint32_t bridged;     /* pages of gaps in the run */
	struct segment *segs; /* reads: the runs of pages moved on (set up once per request) */
	uint32_t nsegs;
	uint32_t block;
	unsigned slot; /* the buffer it holds a reference to */
	unsigned rec;  /* its job: index into channel.recs */
	bool busy;
	bool in_ring; /* submitted to the ring, its completion not yet handled */
};

/*
 * A job the channel has started. It is retired (progress counted, a main
 * thread waiting for room woken) once fully built and all its requests
 * have completed; jobs retire in order.
 */
struct job_rec {
	struct mrs_job job;
	unsigned outstanding; /* requests in flight */
	bool built;	      /* every request of the job has been made */
};

#define JOB_RECS 16u

/* Save reads RAM a buffer at a time; requests then write runs out of it. */
struct chunk {
	bool valid;
	unsigned slot;
	uint64_t first_page; /* of the block */
	uint32_t npages;
	uint32_t pos; /* next page of the chunk to look at */
};

struct job_node {
	struct mrs_job job;
	struct job_node *next;
};

struct channel {
	/* Written only at setup. */
	struct mrs_chanset *set;
	unsigned id;
	int fd; /* of the image */
	struct io_uring ring;
	bool ring_ok;
	bool fixed; /* buffers registered with the ring */
	pthread_t thread;
	bool started;
	struct request *reqs; /* depth of them */
	uint8_t *pool;	      /* nslots buffers of set->buf_size bytes */
	unsigned *slot_refs;  /* per buffer: requests (and a chunk) using it */
	unsigned *free_slots; /* a stack of unused buffers */

	/* Protected by lock. */
	pthread_mutex_t lock;
	pthread_cond_t wake; /* a job, a sync request or quit */
	struct job_node *head, *tail;
	bool sync_pending;
	bool quit;

	/* Read by any thread to pick a channel: jobs queued and not yet retired. */
	atomic_uint backlog;

	/* Thread-local to the channel (stats read by main only after a sync). */
	struct mrs_job cur; /* the job being built */
	bool have_cur;
	unsigned cur_rec;
	uint64_t cursor; /* next page of cur to look at */
	struct chunk chunk;
	/*
	 * Save: a run of pages of the current job that became zero, to be
	 * punched out as one range (any: one of them was present).
	 */
	struct {
		uint32_t block;
		uint64_t first, npages;
		bool any;
	} punch;
	struct job_rec recs[JOB_RECS]; /* a ring of started, unretired jobs */
	unsigned rec_head, rec_count;
	unsigned inflight; /* requests in the ring: submitted, or prepared and not yet taken */
	/*
	 * Requests prepared but not yet taken by the kernel, oldest first (a
	 * ring of depth entries): the kernel takes them in this order, so
	 * after a failed submit these are the ones it never saw.
	 */
	struct request **unsent;
	struct segment *segs; /* the requests' segments, max_segs each */
	unsigned unsent_head, nunsent;
	/* The ring failed (a wait, or a submit that cannot be retried): no more I/O through it. */
	bool ring_dead;
	struct request **store_q; /* loaded runs waiting for the block's store lock */
	unsigned nstore;
	unsigned nfree_slots;
	struct mrs_chan_stats stats;
};

struct mrs_chanset {
	/* Written only at setup. */
	struct mrs_chan_config cfg;
	struct mrs_chan_block *blocks;
	uint32_t nblocks;
	size_t buf_size; /* bytes of one buffer: a request, or one page, or a piece of one */
	size_t buf_align;
	unsigned nslots;   /* buffers per channel */
	unsigned max_segs; /* segments a request can hold */
	/*
	 * Per block: held while a channel writes loaded pages to the block's
	 * file. Writes to one file serialize on its inode lock in the kernel,
	 * which spins while it waits; waiting here sleeps instead, leaving the
	 * CPU to the other channels' hashing and I/O.
	 */
	pthread_mutex_t *store_lock;
	struct channel *ch;
	unsigned nch;

	/* Set once, by the first channel to fail; read by everyone. */
	atomic_bool failed;
	/* Set by close: drop queued jobs, finish what is in flight, exit. */
	atomic_bool closing;

	/* Progress, for the main thread to read while channels work. */
	atomic_uint_fast64_t pages_done;  /* pages of retired jobs */
	atomic_uint_fast64_t bytes_moved; /* image bytes written or read so far */
	atomic_uint jobs_pending;	  /* queued and not yet retired, all channels */

	/* Protected by lock. */
	pthread_mutex_t lock;
	pthread_cond_t acked;	 /* acks_pending reached 0 */
	pthread_cond_t job_done; /* a job retired: room for more */
	unsigned acks_pending;
	struct mrs_error first_err;
	struct mrs_bad_page *bad;
	size_t nbad, bad_cap;

	/* Main thread only. */
	unsigned next_rr;
};

/* channel.c */
void mrs_chan_fail(struct mrs_chanset *cs, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Take the next queued job into ch->cur; false if none (or no room to start one). */
bool mrs_chan_next_job(struct channel *ch);
/* A job leaves the channel, done or dropped: count it and wake the main thread. */
void mrs_chan_account_job(struct channel *ch, const struct mrs_job *job);

/* transfer.c */
/* Queue as many requests as there are free requests, buffers and work. */
void mrs_chan_fill(struct channel *ch);
/* Handle one completion. */
void mrs_chan_complete(struct channel *ch, struct request *rq, int res);
/* A request that will never complete through the ring (it failed): let it go. */
void mrs_chan_drop(struct channel *ch, struct request *rq);
/* Stop building the current job (failure or close). */
void mrs_chan_abandon_job(struct channel *ch);
/*
 * Write loaded runs on to their blocks' files. wait: block for the store
 * lock (nothing else to do); otherwise only if it is free at once.
 */
void mrs_chan_store(struct channel *ch, bool wait);

#endif
