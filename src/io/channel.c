/* SPDX-License-Identifier: MIT */
/*
 * The channel set: threads with an io_uring, an image fd and registered
 * buffers each; their job queues; and the sync that orders rounds. How a
 * channel moves a job's pages is in transfer.c, which pages and what they
 * mean in the job's policy (policy.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "channel_impl.h"
#include "error.h"
#include "codec.h"

const struct mrs_chan_hooks *mrs_chan_test_hooks;

unsigned mrs_default_channels(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > MRS_CHANNELS_MAX ? MRS_CHANNELS_MAX : (unsigned)n;
}

/* Record the first error of the set and make every channel stop taking work. */
void mrs_chan_fail(struct mrs_chanset *cs, int code, const char *fmt, ...)
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

/* ---- the channel thread ------------------------------------------------- */

bool mrs_chan_next_job(struct channel *ch)
{
	struct job_node *n;
	struct job_rec *rec;

	if (ch->rec_count == JOB_RECS)
		return false; /* wait for old jobs to retire */
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
	ch->cur_rec = (ch->rec_head + ch->rec_count++) % JOB_RECS;
	rec = &ch->recs[ch->cur_rec];
	rec->job = n->job;
	rec->outstanding = 0;
	rec->built = false;
	free(n);
	return true;
}

void mrs_chan_account_job(struct channel *ch, const struct mrs_job *job)
{
	struct mrs_chanset *cs = ch->set;

	atomic_fetch_sub(&ch->backlog, 1);
	atomic_fetch_add(&cs->pages_done, job->npages);
	pthread_mutex_lock(&cs->lock);
	atomic_fetch_sub(&cs->jobs_pending, 1);
	pthread_cond_signal(&cs->job_done);
	pthread_mutex_unlock(&cs->lock);
}

/*
 * The ring failed: nothing in it will be reaped any more, so let go of
 * every request it held, or their jobs would stay unfinished and the
 * channel would never go idle for a sync or close. The kernel may still
 * be using their buffers; close frees them only after io_uring_queue_exit.
 */
static void abandon_ring(struct channel *ch)
{
	ch->ring_dead = true;
	ch->nunsent = 0;
	for (unsigned i = 0; i < ch->set->cfg.depth; i++)
		if (ch->reqs[i].in_ring)
			mrs_chan_drop(ch, &ch->reqs[i]);
}

static int wait_cqe(struct channel *ch, struct io_uring_cqe **cqe)
{
	const struct mrs_chan_hooks *hooks = ch->set->cfg.hooks;
	struct __kernel_timespec brief = {0, 200 * 1000};
	int ret;

	if (hooks && hooks->before_wait && (ret = hooks->before_wait(hooks->ctx, ch->id)))
		return ret;
	return ch->nstore ? io_uring_wait_cqe_timeout(&ch->ring, cqe, &brief)
			  : io_uring_wait_cqe(&ch->ring, cqe);
}

/*
 * Wait for at least one completion and handle all that are ready. With
 * loaded runs queued for storing, wait only briefly: the store lock may
 * come free before any I/O completes.
 */
static void reap(struct channel *ch)
{
	struct io_uring_cqe *cqe;
	int ret;

	do
		ret = wait_cqe(ch, &cqe);
	while (ret == -EINTR);
	if (ret == -ETIME)
		return;
	if (ret < 0) {
		mrs_chan_fail(ch->set, ret, "channel %u: waiting for I/O: %s", ch->id,
			      strerror(-ret));
		abandon_ring(ch);
		return;
	}
	while (io_uring_peek_cqe(&ch->ring, &cqe) == 0) {
		struct request *rq = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&ch->ring, cqe);
		if (rq->in_ring) /* not one given up when a submit failed */
			mrs_chan_complete(ch, rq, res);
	}
}

/* Submit attempts refused for lack of kernel resources with nothing to reap, before giving up. */
#define SUBMIT_TRIES 1000

/* io_uring_submit, or what a hook says it returned; then forget what the kernel took. */
static int submit_ring(struct channel *ch)
{
	const struct mrs_chan_hooks *hooks = ch->set->cfg.hooks;
	int ret = hooks && hooks->before_flush ? hooks->before_flush(hooks->ctx, ch->id) : 0;
	unsigned left;

	if (!ret)
		ret = io_uring_submit(&ch->ring);
	left = io_uring_sq_ready(&ch->ring);
	while (ch->nunsent > left) {
		ch->unsent_head = (ch->unsent_head + 1) % ch->set->cfg.depth;
		ch->nunsent--;
	}
	return ret;
}

/*
 * A submit failed for good: the kernel never saw the unsent requests, so
 * they will never complete; let them go. Their SQEs stay in the ring, which
 * this channel no longer submits.
 */
static void drop_unsent(struct channel *ch, int ret)
{
	mrs_chan_fail(ch->set, ret, "channel %u: cannot submit I/O: %s", ch->id, strerror(-ret));
	ch->ring_dead = true;
	while (ch->nunsent) {
		struct request *rq = ch->unsent[ch->unsent_head];

		ch->unsent_head = (ch->unsent_head + 1) % ch->set->cfg.depth;
		ch->nunsent--;
		mrs_chan_drop(ch, rq);
	}
}

/*
 * Hand the kernel every prepared request: new ones from filling, and
 * resubmissions and next stages from completions. Done on every turn of the
 * loop, before waiting, so that nothing waits on a request the kernel has
 * not seen. -EAGAIN and -EBUSY say the kernel is short of resources or of
 * room for completions: reap what is in flight first (the caller's next
 * wait), or with nothing in flight, pause and try again.
 */
static void flush_requests(struct channel *ch)
{
	unsigned tries = 0;

	while (!ch->ring_dead && io_uring_sq_ready(&ch->ring)) {
		int ret = submit_ring(ch);

		if (ret > 0 || ret == -EINTR)
			continue;
		if (ret == 0 || ret == -EAGAIN || ret == -EBUSY) {
			struct timespec pause = {0, 1000 * 1000};

			if (ch->inflight > ch->nunsent)
				return; /* completions to reap first */
			if (++tries < SUBMIT_TRIES) {
				nanosleep(&pause, NULL);
				continue;
			}
			ret = ret ? ret : -EAGAIN;
		}
		drop_unsent(ch, ret);
		return;
	}
}

/* After a failure, or on close: drop the current job and everything queued. */
static void discard_jobs(struct channel *ch)
{
	struct job_node *n;

	mrs_chan_abandon_job(ch);
	pthread_mutex_lock(&ch->lock);
	while ((n = ch->head)) {
		ch->head = n->next;
		pthread_mutex_unlock(&ch->lock);
		mrs_chan_account_job(ch, &n->job);
		free(n);
		pthread_mutex_lock(&ch->lock);
	}
	ch->tail = NULL;
	pthread_mutex_unlock(&ch->lock);
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
			mrs_chan_fill(ch);
		flush_requests(ch);
		/* Store loaded runs; wait for the lock only when nothing else is to do. */
		mrs_chan_store(ch, !ch->inflight);
		if (ch->inflight) {
			reap(ch);
			continue;
		}
		/* Nothing in flight: answer a sync, quit, or sleep. */
		pthread_mutex_lock(&ch->lock);
		idle = !ch->have_cur && !ch->head && !ch->rec_count && !ch->nstore;
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

/* ---- setting up --------------------------------------------------------- */

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
			    "'%s': the filesystem does not support O_DIRECT; run without "
			    "--direct",
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

/*
 * The image for a channel: by name, or a new description of the fd the
 * engine validated. O_NOFOLLOW would refuse /proc/self/fd/N, a magic link.
 */
static int open_image(const struct mrs_chan_config *cfg, int flags)
{
	char proc[32];

	if (!cfg->reopen_fd)
		return open(cfg->path, flags | O_NOFOLLOW);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", cfg->fd);
	return open(proc, flags);
}

static int open_channel_fd(struct mrs_chanset *cs, struct channel *ch, struct mrs_error *err)
{
	int flags = (cs->cfg.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;

	ch->fd = open_image(&cs->cfg, flags | (cs->cfg.direct ? O_DIRECT : 0));
	if (ch->fd >= 0)
		return 0;
	if (errno == EINVAL && cs->cfg.direct)
		return mrs_err(err, -EINVAL,
			       "cannot open '%s' with O_DIRECT: the filesystem does not support it "
			       "(tmpfs?); run without --direct",
			       cs->cfg.path);
	return mrs_err_errno(err, -errno, "channel %u: cannot open '%s'", ch->id, cs->cfg.path);
}

/*
 * The channel's buffers, registered with its ring when the kernel lets us
 * (saving a page-pinning walk per O_DIRECT request); unregistered buffers
 * work too, a little slower.
 */
static int setup_buffers(struct mrs_chanset *cs, struct channel *ch, struct mrs_error *err)
{
	struct iovec *iov;
	void *p;

	if (posix_memalign(&p, cs->buf_align, cs->buf_size * cs->nslots))
		return mrs_err(err, -ENOMEM, "channel %u: cannot allocate %zu bytes of buffers",
			       ch->id, cs->buf_size * cs->nslots);
	ch->pool = p;
	ch->slot_refs = calloc(cs->nslots, sizeof(*ch->slot_refs));
	ch->free_slots = calloc(cs->nslots, sizeof(*ch->free_slots));
	iov = calloc(cs->nslots, sizeof(*iov));
	if (!ch->slot_refs || !ch->free_slots || !iov) {
		free(iov);
		return mrs_err(err, -ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < cs->nslots; i++) {
		ch->free_slots[i] = cs->nslots - 1 - i;
		iov[i].iov_base = ch->pool + (size_t)i * cs->buf_size;
		iov[i].iov_len = cs->buf_size;
	}
	ch->nfree_slots = cs->nslots;
	ch->fixed = io_uring_register_buffers(&ch->ring, iov, cs->nslots) == 0;
	free(iov);
	return 0;
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
	ch->store_q = calloc(cs->cfg.depth, sizeof(*ch->store_q));
	ch->unsent = calloc(cs->cfg.depth, sizeof(*ch->unsent));
	ch->segs = calloc((size_t)cs->cfg.depth * cs->max_segs, sizeof(*ch->segs));
	if (!ch->reqs || !ch->store_q || !ch->unsent || !ch->segs)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < cs->cfg.depth; i++)
		ch->reqs[i].segs = ch->segs + (size_t)i * cs->max_segs;
	ret = open_channel_fd(cs, ch, err);
	if (ret)
		return ret;
	ret = io_uring_queue_init(cs->cfg.depth, &ch->ring, 0);
	if (ret)
		return mrs_err_errno(err, ret, "channel %u: io_uring is not available", id);
	ch->ring_ok = true;
	ret = setup_buffers(cs, ch, err);
	if (ret)
		return ret;
	ret = pthread_create(&ch->thread, NULL, channel_main, ch);
	if (ret)
		return mrs_err_errno(err, -ret, "channel %u: cannot start a thread", id);
	ch->started = true;
	return 0;
}

int mrs_chan_check_limits(unsigned channels, unsigned depth, struct mrs_error *err)
{
	if (channels < 1 || channels > MRS_CHANNELS_MAX)
		return mrs_err(err, -EINVAL, "channel count %u is not within 1..%u", channels,
			       MRS_CHANNELS_MAX);
	if (depth < 1 || depth > MRS_DEPTH_MAX)
		return mrs_err(err, -EINVAL, "queue depth %u is not within 1..%u", depth,
			       MRS_DEPTH_MAX);
	return 0;
}

static int check_config(struct mrs_chan_config *cfg, struct mrs_error *err)
{
	int ret;

	if (!cfg->depth)
		cfg->depth = MRS_DEPTH_DEFAULT;
	ret = mrs_chan_check_limits(cfg->channels, cfg->depth, err);
	if (ret)
		return ret;
	if (!cfg->max_request)
		cfg->max_request = MRS_REQUEST_DEFAULT;
	if (cfg->max_request % MRS_MIN_PAGE)
		return mrs_err(err, -EINVAL, "request size %" PRIu32 " is not a multiple of %u",
			       cfg->max_request, MRS_MIN_PAGE);
	return 0;
}

/*
 * Buffer size and count, within the budget: a channel's share of it holds
 * its buffers, whatever the page size. A buffer holds one request, or one
 * page larger than a request when such a page fits in the share; pages
 * larger still (1 GiB hugetlbfs pages) are moved a buffer at a time.
 */
static void size_buffers(struct mrs_chanset *cs)
{
	size_t share = MRS_BUFFER_BUDGET / cs->cfg.channels;
	size_t nslots;

	cs->buf_size = cs->cfg.max_request < share ? cs->cfg.max_request : share;
	cs->buf_size -= cs->buf_size % MRS_MIN_PAGE;
	for (uint32_t i = 0; i < cs->nblocks; i++)
		if (cs->blocks[i].page_size > cs->buf_size && cs->blocks[i].page_size <= share)
			cs->buf_size = cs->blocks[i].page_size;
	nslots = share / cs->buf_size;
	cs->nslots = nslots > cs->cfg.depth ? cs->cfg.depth : (unsigned)nslots;
	/* Segments are separated by gaps of at least one page. */
	cs->max_segs = (unsigned)(cs->buf_size / MRS_MIN_PAGE / 2 + 1);
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
	if (!cs->cfg.hooks)
		cs->cfg.hooks = mrs_chan_test_hooks;
	cs->blocks = blocks;
	cs->nblocks = nblocks;
	pthread_mutex_init(&cs->lock, NULL);
	pthread_cond_init(&cs->acked, NULL);
	pthread_cond_init(&cs->job_done, NULL);
	ret = check_config(&cs->cfg, err);
	if (ret)
		goto fail;
	cs->store_lock = calloc(nblocks, sizeof(*cs->store_lock));
	if (!cs->store_lock) {
		ret = mrs_err(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < nblocks; i++)
		pthread_mutex_init(&cs->store_lock[i], NULL);
	size_buffers(cs);
	cs->buf_align = 4096;
	if (cs->cfg.direct) {
		fd = open_image(cfg, O_RDONLY | O_CLOEXEC);
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

/* ---- the main thread's side --------------------------------------------- */

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
	if (cs->cfg.hooks && cs->cfg.hooks->on_sync)
		cs->cfg.hooks->on_sync(cs->cfg.hooks->ctx);
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
		sum->pages_bridged += s->pages_bridged;
		sum->pages_zeroed += s->pages_zeroed;
		sum->pages_read += s->pages_read;
		sum->pages_skipped += s->pages_skipped;
		sum->pages_bad += s->pages_bad;
		sum->bytes_written += s->bytes_written;
		sum->bytes_read += s->bytes_read;
		sum->requests += s->requests;
		sum->punches += s->punches;
		sum->resubmits += s->resubmits;
	}
}

size_t mrs_chanset_buffer_bytes(const struct mrs_chanset *cs)
{
	return cs->buf_size * cs->nslots * cs->nch;
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
		free(ch->store_q);
		free(ch->unsent);
		free(ch->segs);
		free(ch->pool);
		free(ch->slot_refs);
		free(ch->free_slots);
		pthread_mutex_destroy(&ch->lock);
		pthread_cond_destroy(&ch->wake);
	}
	free(cs->ch);
	for (uint32_t i = 0; cs->store_lock && i < cs->nblocks; i++)
		pthread_mutex_destroy(&cs->store_lock[i]);
	free(cs->store_lock);
	free(cs->bad);
	pthread_mutex_destroy(&cs->lock);
	pthread_cond_destroy(&cs->acked);
	pthread_cond_destroy(&cs->job_done);
	free(cs);
}
