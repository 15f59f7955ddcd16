/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "error.h"
#include "format.h"

struct job_node {
	struct mrs_job job;
	struct job_node *next;
};

/* One request in flight: a run of contiguous pages of one block. */
struct request {
	struct mrs_io io;  /* what was asked, as hooks see it */
	uint8_t *buf;	   /* data for io.offset */
	uint32_t done;	   /* bytes transferred so far */
	uint32_t full_len; /* bytes of the whole run */
	uint64_t first_page;
	uint32_t npages;
	enum mrs_job_kind kind; /* what to do on completion */
	unsigned flags;
	bool busy;
};

struct channel {
	/* Written only at setup. */
	struct mrs_chanset *set;
	unsigned id;
	int fd;
	struct io_uring ring;
	bool ring_ok;
	pthread_t thread;
	bool started;
	struct request *reqs; /* depth of them; request i owns pool slot i */
	uint8_t *pool;	      /* allocated by the thread the first time a job needs it */

	/* Protected by lock. */
	pthread_mutex_t lock;
	pthread_cond_t wake; /* a job, a sync request or quit */
	struct job_node *head, *tail;
	bool sync_pending;
	bool quit;

	/* Read by any thread to pick a channel; jobs queued and not yet done. */
	atomic_uint backlog;

	/* Thread-local to the channel (read by main only after a sync). */
	struct mrs_job cur;
	bool have_cur;
	uint64_t cursor; /* next page of cur to look at */
	unsigned inflight;
	struct mrs_chan_stats stats;
};

struct mrs_chanset {
	/* Written only at setup. */
	struct mrs_chan_config cfg;
	struct mrs_chan_block *blocks;
	uint32_t nblocks;
	size_t buf_size; /* bytes of one pool slot */
	size_t buf_align;
	struct channel *ch;
	unsigned nch;

	/* Set once, by the first channel to fail; read by everyone. */
	atomic_bool failed;
	/* Set by close: drop queued jobs, finish what is in flight, exit. */
	atomic_bool closing;

	/* Progress, for the main thread to read while channels work. */
	atomic_uint_fast64_t pages_done;  /* pages of finished jobs */
	atomic_uint_fast64_t bytes_moved; /* bytes written or read so far */
	atomic_uint jobs_pending;	  /* queued and not yet finished, all channels */

	/* Protected by lock. */
	pthread_mutex_t lock;
	pthread_cond_t acked;	 /* acks_pending reached 0 */
	pthread_cond_t job_done; /* a job finished: room for more */
	unsigned acks_pending;
	struct mrs_error first_err;
	struct mrs_bad_page *bad;
	size_t nbad, bad_cap;

	/* Main thread only. */
	uint64_t syncs;
	unsigned next_rr;
};

unsigned mrs_default_channels(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > MRS_CHANNELS_MAX ? MRS_CHANNELS_MAX : (unsigned)n;
}

/* Record the first error of the set and make every channel stop taking work. */
static void set_fail(struct mrs_chanset *cs, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_fail(struct mrs_chanset *cs, int code, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&cs->lock);
	if (!atomic_load(&cs->failed)) {
		cs->first_err.code = code;
		va_start(ap, fmt);
		vsnprintf(cs->first_err.msg, sizeof(cs->first_err.msg), fmt, ap);
		va_end(ap);
		atomic_store(&cs->failed, true);
	}
	pthread_mutex_unlock(&cs->lock);
}

static void io_fail(struct channel *ch, const struct request *rq, int res)
{
	struct mrs_chanset *cs = ch->set;

	set_fail(cs, res,
		 "channel %u: %s of block '%s' at offset 0x%" PRIx64 " (%" PRIu32 " bytes): %s",
		 ch->id, rq->io.write ? "write" : "read", cs->blocks[rq->io.block].name,
		 rq->io.offset, rq->io.len, strerror(-res));
}

static bool page_is_zero(const uint8_t *p, uint64_t len)
{
	const uint64_t *w = (const uint64_t *)p;

	/* Non-zero data usually shows in the first words; then compare in bulk. */
	if (w[0] | w[1] | w[2] | w[3])
		return false;
	return memcmp(p, p + 32, len - 32) == 0;
}

static uint8_t *slot_buf(struct channel *ch, const struct request *rq)
{
	return ch->pool + (size_t)(rq - ch->reqs) * ch->set->buf_size;
}

static int ensure_pool(struct channel *ch)
{
	struct mrs_chanset *cs = ch->set;
	void *p;

	if (ch->pool)
		return 0;
	if (posix_memalign(&p, cs->buf_align, cs->buf_size * cs->cfg.depth)) {
		set_fail(cs, -ENOMEM, "channel %u: cannot allocate %zu bytes of buffers", ch->id,
			 cs->buf_size * cs->cfg.depth);
		return -ENOMEM;
	}
	ch->pool = p;
	return 0;
}

static struct request *free_request(struct channel *ch)
{
	for (unsigned i = 0; i < ch->set->cfg.depth; i++)
		if (!ch->reqs[i].busy)
			return &ch->reqs[i];
	return NULL;
}

/* Take the next job from the queue into cur; false when there is none. */
static bool next_job(struct channel *ch)
{
	struct job_node *n;

	pthread_mutex_lock(&ch->lock);
	n = ch->head;
	if (n) {
		ch->head = n->next;
		if (!ch->head)
			ch->tail = NULL;
	}
	pthread_mutex_unlock(&ch->lock);
	if (!n)
		return false;
	ch->cur = n->job;
	ch->cursor = n->job.first_page;
	ch->have_cur = true;
	free(n);
	return true;
}

static void finish_job(struct channel *ch)
{
	struct mrs_chanset *cs = ch->set;

	ch->have_cur = false;
	atomic_fetch_sub(&ch->backlog, 1);
	atomic_fetch_add(&cs->pages_done, ch->cur.npages);
	pthread_mutex_lock(&cs->lock);
	atomic_fetch_sub(&cs->jobs_pending, 1);
	pthread_cond_signal(&cs->job_done);
	pthread_mutex_unlock(&cs->lock);
}

/* Punch out a page that was written before and is zero now. */
static void punch_page(struct channel *ch, const struct mrs_chan_block *b, uint64_t page)
{
	uint64_t off = b->pages_offset + page * b->page_size;

	/* Without punch support the stale bytes stay; the clear bit hides them. */
	if (fallocate(ch->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)b->page_size) &&
	    errno != EOPNOTSUPP)
		set_fail(ch->set, -errno,
			 "channel %u: cannot punch out page %" PRIu64
			 " of block '%s' at offset 0x%" PRIx64 ": %s",
			 ch->id, page, b->name, off, strerror(errno));
	ch->stats.pages_zeroed++;
}

/*
 * Save: decide for one page whether it joins the run being built. Returns
 * true if it was added (its bytes are at rq->buf + rq->full_len on return
 * when copying).
 */
static bool save_page(struct channel *ch, struct request *rq, uint64_t page)
{
	struct mrs_chan_block *b = &ch->set->blocks[ch->cur.block];
	const uint8_t *src = b->mem + page * b->page_size;
	uint64_t h;

	ch->stats.pages_scanned++;
	if (page_is_zero(src, b->page_size)) {
		if (b->present[page]) {
			punch_page(ch, b, page);
			b->present[page] = 0;
			b->hashes[page] = 0;
		}
		return false;
	}
	h = mrs_hash(src, b->page_size);
	if ((ch->cur.flags & MRS_JOB_CHANGED_ONLY) && b->present[page] && b->hashes[page] == h)
		return false;
	ch->stats.pages_dirty++;
	if (ch->cur.flags & MRS_JOB_COPY) {
		/*
		 * The guest may change the page while we work: what we store as
		 * its hash must be the hash of exactly the bytes we write, or an
		 * A-B-A change would leave stale bytes behind a matching hash.
		 */
		uint8_t *dst = rq->buf + rq->full_len;

		memcpy(dst, src, b->page_size);
		h = mrs_hash(dst, b->page_size);
	}
	b->hashes[page] = h;
	b->present[page] = 1;
	return true;
}

/* Load and verify: a page joins the run if the image has it. */
static bool read_page(struct channel *ch, uint64_t page)
{
	ch->stats.pages_scanned++;
	return ch->set->blocks[ch->cur.block].present[page];
}

/*
 * Build the next request from the current job: a run of contiguous pages,
 * at most max_request bytes (or one page, if pages are larger). Returns false
 * when the job has no more pages to transfer.
 */
static bool build_request(struct channel *ch, struct request *rq)
{
	struct mrs_chanset *cs = ch->set;
	const struct mrs_job *job = &ch->cur;
	struct mrs_chan_block *b = &cs->blocks[job->block];
	uint64_t end = job->first_page + job->npages;
	bool copy = job->kind == MRS_JOB_SAVE ? (job->flags & MRS_JOB_COPY) : !b->mem;
	uint64_t limit = cs->cfg.max_request > b->page_size ? cs->cfg.max_request : b->page_size;

	memset(rq, 0, sizeof(*rq));
	rq->kind = job->kind;
	rq->flags = job->flags;
	rq->buf = copy ? slot_buf(ch, rq) : NULL;
	while (ch->cursor < end && !atomic_load(&cs->failed)) {
		uint64_t page = ch->cursor++;
		bool take =
		    job->kind == MRS_JOB_SAVE ? save_page(ch, rq, page) : read_page(ch, page);

		if (take) {
			if (!rq->npages) {
				rq->first_page = page;
				if (!copy)
					rq->buf = b->mem + page * b->page_size;
			}
			rq->npages++;
			rq->full_len += (uint32_t)b->page_size;
			if (rq->full_len + b->page_size > limit)
				break;
		} else if (rq->npages) {
			break; /* the run ends at the first page not taken */
		}
	}
	if (!rq->npages)
		return false;
	rq->io.write = job->kind == MRS_JOB_SAVE;
	rq->io.block = job->block;
	rq->io.offset = b->pages_offset + rq->first_page * b->page_size;
	rq->io.len = rq->full_len;
	return true;
}

static void submit_request(struct channel *ch, struct request *rq)
{
	const struct mrs_chan_hooks *hooks = ch->set->cfg.hooks;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ch->ring);

	/* depth requests at most, and the ring has depth entries: never NULL. */
	rq->io.offset = ch->set->blocks[rq->io.block].pages_offset +
			rq->first_page * ch->set->blocks[rq->io.block].page_size + rq->done;
	rq->io.len = rq->full_len - rq->done;
	if (hooks && hooks->before_submit)
		hooks->before_submit(hooks->ctx, ch->id, &rq->io);
	if (rq->io.write)
		io_uring_prep_write(sqe, ch->fd, rq->buf + rq->done, rq->io.len, rq->io.offset);
	else
		io_uring_prep_read(sqe, ch->fd, rq->buf + rq->done, rq->io.len, rq->io.offset);
	io_uring_sqe_set_data(sqe, rq);
	rq->busy = true;
	ch->inflight++;
	ch->stats.requests++;
}

static void record_bad_page(struct channel *ch, uint32_t block, uint64_t page, uint64_t want,
			    uint64_t got)
{
	struct mrs_chanset *cs = ch->set;

	pthread_mutex_lock(&cs->lock);
	if (cs->nbad == cs->bad_cap) {
		size_t cap = cs->bad_cap ? 2 * cs->bad_cap : 64;
		struct mrs_bad_page *n = realloc(cs->bad, cap * sizeof(*n));

		if (!n) {
			pthread_mutex_unlock(&cs->lock);
			set_fail(cs, -ENOMEM, "out of memory recording bad pages");
			return;
		}
		cs->bad = n;
		cs->bad_cap = cap;
	}
	cs->bad[cs->nbad++] = (struct mrs_bad_page){block, page, want, got};
	pthread_mutex_unlock(&cs->lock);
}

/* A read completed in full: check the pages' hashes if asked to. */
static void check_pages(struct channel *ch, struct request *rq)
{
	struct mrs_chanset *cs = ch->set;
	struct mrs_chan_block *b = &cs->blocks[rq->io.block];

	for (uint32_t i = 0; i < rq->npages; i++) {
		uint64_t page = rq->first_page + i;
		uint64_t got = mrs_hash(rq->buf + (uint64_t)i * b->page_size, b->page_size);

		if (got == b->hashes[page])
			continue;
		ch->stats.pages_bad++;
		if (rq->kind == MRS_JOB_VERIFY) {
			record_bad_page(ch, rq->io.block, page, b->hashes[page], got);
			continue;
		}
		set_fail(cs, -EBADMSG,
			 "block '%s': page %" PRIu64 " (guest offset 0x%" PRIx64
			 ") does not match its checksum (expected %016" PRIx64 ", read %016" PRIx64
			 ")",
			 b->name, page, page * b->page_size, b->hashes[page], got);
		return;
	}
}

static void complete_request(struct channel *ch, struct request *rq, int res)
{
	const struct mrs_chan_hooks *hooks = ch->set->cfg.hooks;

	ch->inflight--;
	if (hooks && hooks->on_complete)
		res = hooks->on_complete(hooks->ctx, ch->id, &rq->io, res);
	if (atomic_load(&ch->set->failed))
		goto done;
	/* Judge against the whole run: a hook may have cut the request short. */
	if (res == -EAGAIN || res == -EINTR ||
	    (res > 0 && (uint32_t)res < rq->full_len - rq->done)) {
		/* Short transfer or try again: resubmit what is left. */
		rq->done += res > 0 ? (uint32_t)res : 0;
		ch->stats.resubmits++;
		submit_request(ch, rq);
		return;
	}
	if (res == 0 && rq->io.len)
		res = -ENODATA; /* end of file inside a page region */
	if (res < 0) {
		io_fail(ch, rq, res);
		goto done;
	}
	atomic_fetch_add(&ch->set->bytes_moved, rq->full_len);
	if (rq->io.write) {
		ch->stats.pages_written += rq->npages;
		ch->stats.bytes_written += rq->full_len;
	} else {
		ch->stats.pages_read += rq->npages;
		ch->stats.bytes_read += rq->full_len;
		if (rq->kind == MRS_JOB_VERIFY || (rq->flags & MRS_JOB_CHECK))
			check_pages(ch, rq);
	}
done:
	rq->busy = false;
}

/* Wait for at least one completion (if wait) and handle all that are ready. */
static void reap(struct channel *ch, bool wait)
{
	struct io_uring_cqe *cqe;
	int ret;

	if (wait) {
		do
			ret = io_uring_wait_cqe(&ch->ring, &cqe);
		while (ret == -EINTR);
		if (ret < 0) {
			/* The ring itself failed: nothing can be reaped any more. */
			set_fail(ch->set, ret, "channel %u: waiting for I/O: %s", ch->id,
				 strerror(-ret));
			ch->inflight = 0;
			return;
		}
	}
	while (io_uring_peek_cqe(&ch->ring, &cqe) == 0) {
		struct request *rq = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&ch->ring, cqe);
		complete_request(ch, rq, res);
	}
}

/* Queue as many requests as there are free slots and work for. */
static void fill(struct channel *ch)
{
	struct request *rq;

	while (ch->inflight < ch->set->cfg.depth && !atomic_load(&ch->set->failed)) {
		if (!ch->have_cur && !next_job(ch))
			break;
		if (ch->cur.kind == MRS_JOB_SAVE ? (ch->cur.flags & MRS_JOB_COPY)
						 : !ch->set->blocks[ch->cur.block].mem)
			if (ensure_pool(ch))
				break;
		rq = free_request(ch);
		if (!build_request(ch, rq)) {
			finish_job(ch);
			continue;
		}
		submit_request(ch, rq);
	}
}

/*
 * Hand the kernel every prepared request: new ones from fill() and
 * resubmissions from reap(). Done on every turn of the loop, before waiting,
 * so that nothing waits on a request the kernel has not seen.
 */
static void flush_requests(struct channel *ch)
{
	int ret;

	if (!io_uring_sq_ready(&ch->ring))
		return;
	ret = io_uring_submit(&ch->ring);
	if (ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -EINTR)
		set_fail(ch->set, ret, "channel %u: cannot submit I/O: %s", ch->id, strerror(-ret));
}

/* After a failure: drop the current job and everything queued. */
static void discard_jobs(struct channel *ch)
{
	if (ch->have_cur)
		finish_job(ch);
	while (next_job(ch))
		finish_job(ch);
}

static void ack_sync(struct channel *ch)
{
	struct mrs_chanset *cs = ch->set;

	pthread_mutex_lock(&cs->lock);
	if (--cs->acks_pending == 0)
		pthread_cond_broadcast(&cs->acked);
	pthread_mutex_unlock(&cs->lock);
}

static void *channel_main(void *arg)
{
	struct channel *ch = arg;

	for (;;) {
		bool idle;

		if (atomic_load(&ch->set->failed) || atomic_load(&ch->set->closing))
			discard_jobs(ch);
		else
			fill(ch);
		flush_requests(ch);
		if (ch->inflight) {
			reap(ch, true);
			continue;
		}
		/* Nothing in flight: answer a sync, quit, or sleep. */
		pthread_mutex_lock(&ch->lock);
		idle = !ch->have_cur && !ch->head;
		if (idle && ch->sync_pending) {
			ch->sync_pending = false;
			pthread_mutex_unlock(&ch->lock);
			ack_sync(ch);
			continue;
		}
		if (ch->quit && idle) {
			pthread_mutex_unlock(&ch->lock);
			break;
		}
		if (idle)
			pthread_cond_wait(&ch->wake, &ch->lock);
		pthread_mutex_unlock(&ch->lock);
	}
	discard_jobs(ch);
	return NULL;
}

/* Memory alignment for O_DIRECT buffers, from statx when the kernel says. */
static int dio_alignment(int fd, const char *path, size_t *mem_align, struct mrs_error *err)
{
	struct statx stx;

	*mem_align = 4096;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		if (stx.stx_dio_offset_align == 0)
			return mrs_err(
			    err, -EINVAL,
			    "'%s': the filesystem does not support O_DIRECT; run without --direct",
			    path);
		if (stx.stx_dio_offset_align > MRS_MIN_PAGE)
			return mrs_err(err, -EINVAL,
				       "'%s': O_DIRECT needs %" PRIu32
				       "-byte aligned offsets, more than a page",
				       path, stx.stx_dio_offset_align);
		if (stx.stx_dio_mem_align > *mem_align)
			*mem_align = stx.stx_dio_mem_align;
	}
	return 0;
}

static int open_channel_fd(struct mrs_chanset *cs, struct channel *ch, struct mrs_error *err)
{
	int flags = (cs->cfg.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW;

	ch->fd = open(cs->cfg.path, flags | (cs->cfg.direct ? O_DIRECT : 0));
	if (ch->fd >= 0)
		return 0;
	if (errno == EINVAL && cs->cfg.direct)
		return mrs_err(err, -EINVAL,
			       "cannot open '%s' with O_DIRECT: the filesystem does not support it "
			       "(tmpfs?); run without --direct",
			       cs->cfg.path);
	return mrs_err_errno(err, -errno, "channel %u: cannot open '%s'", ch->id, cs->cfg.path);
}

static int setup_channel(struct mrs_chanset *cs, unsigned id, struct mrs_error *err)
{
	struct channel *ch = &cs->ch[id];
	int ret;

	ch->set = cs;
	ch->id = id;
	ch->fd = -1;
	pthread_mutex_init(&ch->lock, NULL);
	pthread_cond_init(&ch->wake, NULL);
	ch->reqs = calloc(cs->cfg.depth, sizeof(*ch->reqs));
	if (!ch->reqs)
		return mrs_err(err, -ENOMEM, "out of memory");
	ret = open_channel_fd(cs, ch, err);
	if (ret)
		return ret;
	ret = io_uring_queue_init(cs->cfg.depth, &ch->ring, 0);
	if (ret)
		return mrs_err_errno(err, ret, "channel %u: io_uring is not available", id);
	ch->ring_ok = true;
	ret = pthread_create(&ch->thread, NULL, channel_main, ch);
	if (ret)
		return mrs_err_errno(err, -ret, "channel %u: cannot start a thread", id);
	ch->started = true;
	return 0;
}

static int check_config(struct mrs_chan_config *cfg, struct mrs_error *err)
{
	if (cfg->channels < 1 || cfg->channels > MRS_CHANNELS_MAX)
		return mrs_err(err, -EINVAL, "channel count %u is not within 1..%u", cfg->channels,
			       MRS_CHANNELS_MAX);
	if (!cfg->depth)
		cfg->depth = MRS_DEPTH_DEFAULT;
	if (cfg->depth > MRS_DEPTH_MAX)
		return mrs_err(err, -EINVAL, "queue depth %u is not within 1..%u", cfg->depth,
			       MRS_DEPTH_MAX);
	if (!cfg->max_request)
		cfg->max_request = MRS_REQUEST_DEFAULT;
	if (cfg->max_request % MRS_MIN_PAGE)
		return mrs_err(err, -EINVAL, "request size %" PRIu32 " is not a multiple of %u",
			       cfg->max_request, MRS_MIN_PAGE);
	return 0;
}

int mrs_chanset_open(struct mrs_chanset **out, const struct mrs_chan_config *cfg,
		     struct mrs_chan_block *blocks, uint32_t nblocks, struct mrs_error *err)
{
	struct mrs_chanset *cs;
	int ret, fd;

	*out = NULL;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return mrs_err(err, -ENOMEM, "out of memory");
	cs->cfg = *cfg;
	cs->blocks = blocks;
	cs->nblocks = nblocks;
	pthread_mutex_init(&cs->lock, NULL);
	pthread_cond_init(&cs->acked, NULL);
	pthread_cond_init(&cs->job_done, NULL);
	ret = check_config(&cs->cfg, err);
	if (ret)
		goto fail;
	/* A pool slot holds one request: max_request bytes, or one large page. */
	cs->buf_size = cs->cfg.max_request;
	for (uint32_t i = 0; i < nblocks; i++)
		if (blocks[i].page_size > cs->buf_size)
			cs->buf_size = blocks[i].page_size;
	cs->buf_align = 4096;
	if (cs->cfg.direct) {
		fd = open(cfg->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			ret = mrs_err_errno(err, -errno, "cannot open '%s'", cfg->path);
			goto fail;
		}
		ret = dio_alignment(fd, cfg->path, &cs->buf_align, err);
		close(fd);
		if (ret)
			goto fail;
	}
	cs->ch = calloc(cs->cfg.channels, sizeof(*cs->ch));
	if (!cs->ch) {
		ret = mrs_err(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < cs->cfg.channels; i++) {
		cs->nch = i + 1;
		ret = setup_channel(cs, i, err);
		if (ret)
			goto fail;
	}
	*out = cs;
	return 0;
fail:
	mrs_chanset_close(cs);
	return ret;
}

static int stopped(struct mrs_chanset *cs, struct mrs_error *err)
{
	int code;

	pthread_mutex_lock(&cs->lock);
	code = cs->first_err.code;
	if (err)
		*err = cs->first_err;
	pthread_mutex_unlock(&cs->lock);
	return code ? code : -EIO;
}

int mrs_chanset_queue(struct mrs_chanset *cs, unsigned channel, const struct mrs_job *job,
		      struct mrs_error *err)
{
	struct channel *ch = &cs->ch[channel % cs->nch];
	struct job_node *n;

	if (atomic_load(&cs->failed))
		return stopped(cs, err);
	if (job->block >= cs->nblocks ||
	    job->first_page + job->npages > cs->blocks[job->block].page_count ||
	    job->first_page + job->npages < job->first_page)
		return mrs_err(err, -EINVAL, "job outside block %" PRIu32, job->block);
	n = malloc(sizeof(*n));
	if (!n)
		return mrs_err(err, -ENOMEM, "out of memory");
	n->job = *job;
	n->next = NULL;
	atomic_fetch_add(&ch->backlog, 1);
	atomic_fetch_add(&cs->jobs_pending, 1);
	pthread_mutex_lock(&ch->lock);
	if (ch->tail)
		ch->tail->next = n;
	else
		ch->head = n;
	ch->tail = n;
	pthread_cond_signal(&ch->wake);
	pthread_mutex_unlock(&ch->lock);
	return 0;
}

int mrs_chanset_queue_any(struct mrs_chanset *cs, const struct mrs_job *job, struct mrs_error *err)
{
	unsigned best = cs->next_rr % cs->nch, best_load = UINT32_MAX;

	/* The least busy channel, starting the search after the last one used. */
	for (unsigned k = 0; k < cs->nch; k++) {
		unsigned i = (cs->next_rr + k) % cs->nch;
		unsigned load = atomic_load(&cs->ch[i].backlog);

		if (load < best_load) {
			best = i;
			best_load = load;
		}
	}
	cs->next_rr = best + 1;
	return mrs_chanset_queue(cs, best, job, err);
}

bool mrs_chanset_wait_room(struct mrs_chanset *cs, unsigned max_pending, unsigned timeout_ms)
{
	struct timespec until;
	bool room;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&cs->lock);
	while (atomic_load(&cs->jobs_pending) > max_pending && !atomic_load(&cs->failed))
		if (pthread_cond_timedwait(&cs->job_done, &cs->lock, &until))
			break;
	room = atomic_load(&cs->jobs_pending) <= max_pending || atomic_load(&cs->failed);
	pthread_mutex_unlock(&cs->lock);
	return room;
}

void mrs_chanset_progress(struct mrs_chanset *cs, uint64_t *pages_done, uint64_t *bytes_moved)
{
	*pages_done = atomic_load(&cs->pages_done);
	*bytes_moved = atomic_load(&cs->bytes_moved);
}

int mrs_chanset_sync(struct mrs_chanset *cs, struct mrs_error *err)
{
	pthread_mutex_lock(&cs->lock);
	cs->acks_pending = cs->nch;
	pthread_mutex_unlock(&cs->lock);
	for (unsigned i = 0; i < cs->nch; i++) {
		struct channel *ch = &cs->ch[i];

		pthread_mutex_lock(&ch->lock);
		ch->sync_pending = true;
		pthread_cond_signal(&ch->wake);
		pthread_mutex_unlock(&ch->lock);
	}
	pthread_mutex_lock(&cs->lock);
	while (cs->acks_pending)
		pthread_cond_wait(&cs->acked, &cs->lock);
	pthread_mutex_unlock(&cs->lock);
	cs->syncs++;
	if (atomic_load(&cs->failed))
		return stopped(cs, err);
	return 0;
}

void mrs_chanset_stats(struct mrs_chanset *cs, struct mrs_chan_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < cs->nch; i++) {
		const struct mrs_chan_stats *s = &cs->ch[i].stats;

		sum->pages_scanned += s->pages_scanned;
		sum->pages_dirty += s->pages_dirty;
		sum->pages_written += s->pages_written;
		sum->pages_zeroed += s->pages_zeroed;
		sum->pages_read += s->pages_read;
		sum->pages_bad += s->pages_bad;
		sum->bytes_written += s->bytes_written;
		sum->bytes_read += s->bytes_read;
		sum->requests += s->requests;
		sum->resubmits += s->resubmits;
	}
}

uint64_t mrs_chanset_syncs(const struct mrs_chanset *cs)
{
	return cs->syncs;
}

const struct mrs_bad_page *mrs_chanset_bad_pages(const struct mrs_chanset *cs, size_t *count)
{
	*count = cs->nbad;
	return cs->bad;
}

void mrs_chanset_close(struct mrs_chanset *cs)
{
	if (!cs)
		return;
	atomic_store(&cs->closing, true);
	for (unsigned i = 0; i < cs->nch; i++) {
		struct channel *ch = &cs->ch[i];

		pthread_mutex_lock(&ch->lock);
		ch->quit = true;
		pthread_cond_signal(&ch->wake);
		pthread_mutex_unlock(&ch->lock);
	}
	for (unsigned i = 0; i < cs->nch; i++) {
		struct channel *ch = &cs->ch[i];

		if (ch->started)
			pthread_join(ch->thread, NULL);
		if (ch->ring_ok)
			io_uring_queue_exit(&ch->ring);
		if (ch->fd >= 0)
			close(ch->fd);
		free(ch->reqs);
		free(ch->pool);
		pthread_mutex_destroy(&ch->lock);
		pthread_cond_destroy(&ch->wake);
	}
	free(cs->ch);
	free(cs->bad);
	pthread_mutex_destroy(&cs->lock);
	pthread_cond_destroy(&cs->acked);
	pthread_cond_destroy(&cs->job_done);
	free(cs);
}
