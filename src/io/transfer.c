/* SPDX-License-Identifier: MIT */
/*
 * What a channel does with its jobs, as transport: read runs of pages into
 * its buffers (from RAM or from the image), turn them into I/O requests,
 * complete them, resubmitting short transfers, and store loaded runs in the
 * blocks' files; pages larger than a buffer in pieces. Which pages a run
 * holds and what a page read means is the job's policy (policy.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel_impl.h"
#include "codec.h"
#include "metaio.h"
#include "policy.h"

/* What building a request came to. */
enum built {
	BUILT,	 /* a request is ready to submit */
	BLOCKED, /* no buffer free: wait for a completion */
	DONE,	 /* the job has no more pages to move */
	MOVED,	 /* a page larger than a buffer was moved, without a request */
};

/* The block's RAM file, as messages name it. */
static const char *ram_path(const struct mrs_chan_block *b)
{
	return b->path ? b->path : "(none)";
}

/* ---- buffers ------------------------------------------------------------ */

static uint8_t *slot_ptr(const struct channel *ch, unsigned slot)
{
	return ch->pool + (size_t)slot * ch->set->buf_size;
}

static bool take_slot(struct channel *ch, unsigned *slot)
{
	if (!ch->nfree_slots)
		return false;
	*slot = ch->free_slots[--ch->nfree_slots];
	ch->slot_refs[*slot] = 1;
	return true;
}

static void put_slot(struct channel *ch, unsigned slot)
{
	if (--ch->slot_refs[slot] == 0)
		ch->free_slots[ch->nfree_slots++] = slot;
}

/* ---- jobs --------------------------------------------------------------- */

/* Retire finished jobs, oldest first. */
static void retire_jobs(struct channel *ch)
{
	while (ch->rec_count) {
		struct job_rec *rec = &ch->recs[ch->rec_head];

		if (!rec->built || rec->outstanding)
			return;
		mrs_chan_account_job(ch, &rec->job);
		ch->rec_head = (ch->rec_head + 1) % JOB_RECS;
		ch->rec_count--;
	}
}

static void flush_punch(struct channel *ch);

/* The current job has made all its requests (and punched what became zero). */
static void finish_building(struct channel *ch)
{
	flush_punch(ch);
	ch->recs[ch->cur_rec].built = true;
	ch->have_cur = false;
	retire_jobs(ch);
}

void mrs_chan_abandon_job(struct channel *ch)
{
	ch->punch.npages = 0; /* the set has failed or is closing: the image is not complete */
	ch->punch.any = false;
	if (ch->chunk.valid) {
		put_slot(ch, ch->chunk.slot);
		ch->chunk.valid = false;
	}
	if (ch->have_cur)
		finish_building(ch);
}

/* ---- policies ----------------------------------------------------------- */

/* What the job's policy is shown of a job (the current one, or a request's). */
static struct mrs_page_job page_job(struct channel *ch, const struct mrs_job *job)
{
	return (struct mrs_page_job){ch, job, &ch->set->blocks[job->block], job->pages, &ch->stats};
}

void mrs_page_fail(const struct mrs_page_job *j, int code, const char *fmt, ...)
{
	char msg[sizeof(((struct mrs_error *)0)->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mrs_chan_fail(j->ch->set, code, "%s", msg);
}

/*
 * Punch out len bytes of a page of the image from at: 0, -EOPNOTSUPP (the
 * filesystem cannot), or another error, which has failed the set.
 */
static int punch(struct channel *ch, const struct mrs_chan_block *b, uint64_t page, uint64_t at,
		 uint64_t len)
{
	uint64_t off = b->pages_offset + page * b->page_size + at;
	int e;

	if (!fallocate(ch->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return 0;
	e = errno;
	if (e != EOPNOTSUPP)
		mrs_chan_fail(ch->set, -e,
			      "channel %u: cannot punch a hole in image '%s' at offset 0x%" PRIx64
			      " (block '%s', page 0x%" PRIx64 "): %s",
			      ch->id, ch->set->cfg.path, off, b->name, page, strerror(e));
	return -e;
}

/*
 * Punch the pending run of pages that became zero out as one range, if any
 * of them was present (the others are holes already, or zeros a bridged
 * write put there: punching them too keeps the range whole). Without punch
 * support the stale bytes stay; the clear bits hide them.
 */
static void flush_punch(struct channel *ch)
{
	const struct mrs_chan_block *b = &ch->set->blocks[ch->punch.block];

	if (ch->punch.npages && ch->punch.any && !atomic_load(&ch->set->failed)) {
		punch(ch, b, ch->punch.first, 0, ch->punch.npages * b->page_size);
		ch->stats.punches++;
	}
	ch->punch.npages = 0;
	ch->punch.any = false;
}

void mrs_page_clear(const struct mrs_page_job *j, uint64_t page, bool was_present)
{
	struct channel *ch = j->ch;

	if (ch->punch.npages &&
	    (ch->punch.block != j->job->block || ch->punch.first + ch->punch.npages != page))
		flush_punch(ch);
	if (!ch->punch.npages) {
		ch->punch.block = j->job->block;
		ch->punch.first = page;
	}
	ch->punch.npages++;
	ch->punch.any = ch->punch.any || was_present;
}

/*
 * A gap of pages from first to page (not included) is bridged by a write
 * from their copy, which is zero for each page that became zero: a pending
 * punch that lies in the gap is not needed any more.
 */
static void bridged_write_zeroes(struct channel *ch, uint32_t block, uint64_t first, uint64_t page)
{
	if (ch->punch.npages && ch->punch.block == block && ch->punch.first >= first &&
	    ch->punch.first + ch->punch.npages <= page) {
		ch->punch.npages = 0;
		ch->punch.any = false;
	}
}

/* Read len bytes of the block's RAM file at off; false if that failed the set. */
static bool read_ram(struct channel *ch, const struct mrs_chan_block *b, uint8_t *buf, size_t len,
		     uint64_t off)
{
	ssize_t got = mrs_pread_all(b->fd, buf, len, off);

	if (got == (ssize_t)len)
		return true;
	mrs_chan_fail(ch->set, got < 0 ? (int)got : -ENODATA,
		      "channel %u: read of RAM file '%s' at offset 0x%" PRIx64 " (block '%s'): %s",
		      ch->id, ram_path(b), off + (got < 0 ? 0 : (uint64_t)got), b->name,
		      got < 0 ? strerror((int)-got) : "the file is shorter than the block");
	return false;
}

/*
 * Ask the policy for the next run of the current job, at most max pages,
 * and move the cursor past the pages it skips. DONE if none are left.
 */
static enum built plan_run(struct channel *ch, uint64_t max, uint64_t *npages)
{
	struct mrs_page_job pj = page_job(ch, &ch->cur);
	uint64_t end = ch->cur.first_page + ch->cur.npages;
	struct mrs_run run = {0, 0};

	ch->cur.ops->plan_run(&pj, ch->cursor, end, max, &run);
	ch->cursor += run.skip;
	ch->stats.pages_scanned += run.skip;
	*npages = run.npages;
	return ch->cursor >= end || !run.npages ? DONE : BUILT;
}

/* ---- RAM to image ------------------------------------------------------- */

/* Read the next buffer's worth of the job's pages from the block's file. */
static enum built read_chunk(struct channel *ch)
{
	const struct mrs_chan_block *b = &ch->set->blocks[ch->cur.block];
	uint64_t n;
	unsigned slot;

	if (plan_run(ch, ch->set->buf_size / b->page_size, &n) == DONE)
		return DONE;
	if (!take_slot(ch, &slot))
		return BLOCKED;
	if (!read_ram(ch, b, slot_ptr(ch, slot), n * b->page_size, ch->cursor * b->page_size)) {
		put_slot(ch, slot);
		return DONE;
	}
	ch->chunk = (struct chunk){true, slot, ch->cursor, (uint32_t)n, 0};
	ch->cursor += n;
	return BUILT;
}

/* Give up the chunk's own reference to its buffer once it has been scanned. */
static void release_chunk_if_done(struct channel *ch)
{
	if (ch->chunk.valid && ch->chunk.pos == ch->chunk.npages) {
		put_slot(ch, ch->chunk.slot);
		ch->chunk.valid = false;
	}
}

/* Pages of a block a gap may have and still be bridged (0: none). */
static uint64_t bridge_pages(const struct mrs_chan_block *b)
{
	return MRS_BRIDGE_BYTES / b->page_size;
}

/*
 * The next run of pages to write, from the copy in the chunk: the policy
 * says which pages of the copy are written. A run starts and ends with a
 * page it writes; a gap of pages it does not write (zero, or unchanged) of
 * up to bridge_pages() is written too, from the same copy, so that the
 * request stays large: the bitmap and the checksum table, which the policy
 * keeps, say what a page holds, not its bytes (docs/DESIGN.md, "Layout").
 * A longer gap ends the run, so long zero runs stay holes.
 */
static enum built build_write(struct channel *ch, struct request *rq)
{
	const struct mrs_chan_block *b = &ch->set->blocks[ch->cur.block];
	struct mrs_page_job pj = page_job(ch, &ch->cur);
	struct chunk *c = &ch->chunk;
	uint64_t gap = 0, gap_max = bridge_pages(b);

	for (;;) {
		if (!c->valid) {
			enum built r = read_chunk(ch);

			if (r != BUILT)
				return r;
		}
		while (c->pos < c->npages && !atomic_load(&ch->set->failed)) {
			uint64_t page = c->first_page + c->pos;
			const uint8_t *copy = slot_ptr(ch, c->slot) + (size_t)c->pos * b->page_size;

			c->pos++;
			ch->stats.pages_scanned++;
			if (ch->cur.ops->page_read(&pj, page, copy)) {
				if (!rq->npages) {
					rq->first_page = page;
					rq->buf = (uint8_t *)copy;
				} else if (gap) {
					bridged_write_zeroes(ch, rq->block, page - gap, page);
					rq->npages += (uint32_t)gap;
					rq->bridged += (uint32_t)gap;
					gap = 0;
				}
				rq->npages++;
			} else if (rq->npages && ++gap > gap_max) {
				break; /* too long a gap ends the run */
			}
		}
		if (rq->npages) {
			rq->stage = STAGE_IMAGE_WRITE;
			rq->slot = c->slot;
			ch->slot_refs[c->slot]++;
			release_chunk_if_done(ch);
			return BUILT;
		}
		c->pos = c->npages;
		release_chunk_if_done(ch);
		if (atomic_load(&ch->set->failed))
			return DONE;
	}
}

/* ---- image to RAM, or to nowhere ----------------------------------------- */

/* Add n pages at the cursor to a read as a segment, or to its last one if they follow it. */
static void add_segment(struct channel *ch, struct request *rq, uint64_t n)
{
	uint32_t at = (uint32_t)(ch->cursor - rq->first_page);
	struct segment *last = rq->nsegs ? &rq->segs[rq->nsegs - 1] : NULL;

	if (last && last->first + last->npages == at)
		last->npages += (uint32_t)n;
	else
		rq->segs[rq->nsegs++] = (struct segment){at, (uint32_t)n};
	rq->npages = at + (uint32_t)n;
	ch->cursor += n;
	ch->stats.pages_scanned += n;
}

/*
 * Grow a read past gaps of at most bridge_pages() pages the policy skips
 * (absent pages: their bytes are read and dropped), up to max pages. The
 * cursor always moves past the pages the policy skipped, bridged or not.
 */
static void bridge_read(struct channel *ch, struct request *rq, uint64_t max)
{
	const struct mrs_chan_block *b = &ch->set->blocks[ch->cur.block];
	struct mrs_page_job pj = page_job(ch, &ch->cur);
	uint64_t end = ch->cur.first_page + ch->cur.npages, gap_max = bridge_pages(b);

	while (gap_max && rq->npages < max && ch->cursor < end) {
		uint64_t room = max - rq->npages;
		struct mrs_run run = {0, 0};

		ch->cur.ops->plan_run(&pj, ch->cursor, end, room, &run);
		if (run.skip > gap_max || run.skip >= room || !run.npages) {
			ch->cursor += run.skip;
			ch->stats.pages_scanned += run.skip;
			return;
		}
		ch->cursor += run.skip;
		ch->stats.pages_scanned += run.skip;
		rq->bridged += (uint32_t)run.skip;
		add_segment(ch, rq, run.npages < room - run.skip ? run.npages : room - run.skip);
	}
}

static enum built build_read(struct channel *ch, struct request *rq)
{
	const struct mrs_chan_block *b = &ch->set->blocks[ch->cur.block];
	uint64_t max = ch->set->buf_size / b->page_size, n;

	if (plan_run(ch, max, &n) == DONE)
		return DONE;
	if (!take_slot(ch, &rq->slot))
		return BLOCKED;
	rq->first_page = ch->cursor;
	add_segment(ch, rq, n);
	bridge_read(ch, rq, max);
	rq->stage = STAGE_IMAGE_READ;
	rq->buf = slot_ptr(ch, rq->slot);
	return BUILT;
}

/* ---- requests ----------------------------------------------------------- */

static struct request *free_request(struct channel *ch)
{
	for (unsigned i = 0; i < ch->set->cfg.depth; i++)
		if (!ch->reqs[i].busy)
			return &ch->reqs[i];
	return NULL;
}

static enum built move_large_page(struct channel *ch);

static enum built build_request(struct channel *ch, struct request *rq)
{
	const struct mrs_chan_block *b = &ch->set->blocks[ch->cur.block];
	struct segment *segs = rq->segs; /* set up once, kept across requests */
	enum built r;

	if (b->page_size > ch->set->buf_size)
		return move_large_page(ch);
	memset(rq, 0, sizeof(*rq));
	rq->segs = segs;
	rq->block = ch->cur.block;
	rq->rec = ch->cur_rec;
	r = ch->cur.ops->flow == MRS_FLOW_RAM_TO_IMAGE ? build_write(ch, rq) : build_read(ch, rq);
	if (r != BUILT)
		return r;
	rq->len = rq->npages * (uint32_t)b->page_size;
	rq->base = b->pages_offset + rq->first_page * b->page_size;
	ch->recs[rq->rec].outstanding++;
	return BUILT;
}

static void submit(struct channel *ch, struct request *rq)
{
	const struct mrs_chan_hooks *hooks = ch->set->cfg.hooks;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ch->ring);
	uint8_t *buf = rq->buf + rq->done;

	/* depth requests at most, and the ring has depth entries: never NULL. */
	rq->io.write = rq->stage == STAGE_IMAGE_WRITE;
	rq->io.target = false; /* the ring only ever moves image pages */
	rq->io.block = rq->block;
	rq->io.offset = rq->base + rq->done;
	rq->io.len = rq->len - rq->done;
	if (hooks && hooks->before_submit)
		hooks->before_submit(hooks->ctx, ch->id, &rq->io);
	if (rq->io.write && ch->fixed)
		io_uring_prep_write_fixed(sqe, ch->fd, buf, rq->io.len, rq->io.offset,
					  (int)rq->slot);
	else if (rq->io.write)
		io_uring_prep_write(sqe, ch->fd, buf, rq->io.len, rq->io.offset);
	else if (ch->fixed)
		io_uring_prep_read_fixed(sqe, ch->fd, buf, rq->io.len, rq->io.offset,
					 (int)rq->slot);
	else
		io_uring_prep_read(sqe, ch->fd, buf, rq->io.len, rq->io.offset);
	io_uring_sqe_set_data(sqe, rq);
	rq->busy = true;
	rq->in_ring = true;
	ch->unsent[(ch->unsent_head + ch->nunsent++) % ch->set->cfg.depth] = rq;
	ch->inflight++;
	ch->stats.requests++;
}

void mrs_chan_fill(struct channel *ch)
{
	while (ch->inflight < ch->set->cfg.depth && !atomic_load(&ch->set->failed)) {
		struct request *rq;
		enum built r;

		if (!ch->have_cur && !mrs_chan_next_job(ch))
			break;
		rq = free_request(ch);
		if (!rq)
			break; /* all held by runs waiting to be stored */
		r = build_request(ch, rq);
		if (r == BLOCKED)
			break;
		if (r == MOVED)
			continue;
		if (r == DONE)
			finish_building(ch);
		else
			submit(ch, rq);
	}
}

void mrs_page_record_bad(const struct mrs_page_job *j, uint64_t page, uint64_t expected,
			 uint64_t got)
{
	struct mrs_chanset *cs = j->ch->set;

	pthread_mutex_lock(&cs->lock);
	if (cs->nbad == cs->bad_cap) {
		size_t cap = cs->bad_cap ? 2 * cs->bad_cap : 64;
		struct mrs_bad_page *n = realloc(cs->bad, cap * sizeof(*n));

		if (!n) {
			pthread_mutex_unlock(&cs->lock);
			mrs_chan_fail(cs, -ENOMEM, "out of memory recording bad pages");
			return;
		}
		cs->bad = n;
		cs->bad_cap = cap;
	}
	cs->bad[cs->nbad++] = (struct mrs_bad_page){j->job->block, page, expected, got};
	pthread_mutex_unlock(&cs->lock);
}

/*
 * A run was read in full: show the policy the pages of its segments (the
 * bytes of bridged gaps are not looked at); false if it failed the set.
 */
static bool judge_run(struct channel *ch, struct request *rq)
{
	const struct mrs_job *job = &ch->recs[rq->rec].job;
	struct mrs_page_job pj = page_job(ch, job);
	uint64_t ps = pj.block->page_size;

	for (uint32_t s = 0; s < rq->nsegs; s++)
		for (uint32_t i = rq->segs[s].first; i < rq->segs[s].first + rq->segs[s].npages;
		     i++)
			if (!job->ops->page_read(&pj, rq->first_page + i, rq->buf + i * ps))
				return false;
	return true;
}

/*
 * Name the file at fault and say whose offset it is: the image's (with the
 * page it holds) or the guest RAM file's.
 */
static void io_error(struct channel *ch, uint32_t block, bool write, bool ram, uint64_t offset,
		     int res)
{
	const struct mrs_chan_block *b = &ch->set->blocks[block];
	const char *what = write ? "write to" : "read of";

	if (ram)
		mrs_chan_fail(ch->set, res,
			      "channel %u: %s RAM file '%s' at offset 0x%" PRIx64
			      " (block '%s'): %s",
			      ch->id, what, ram_path(b), offset, b->name, strerror(-res));
	else
		mrs_chan_fail(ch->set, res,
			      "channel %u: %s image '%s' at offset 0x%" PRIx64
			      " (block '%s', page 0x%" PRIx64 "): %s",
			      ch->id, what, ch->set->cfg.path, offset, b->name,
			      (offset - b->pages_offset) / b->page_size, strerror(-res));
}

/* A request of the ring failed: the ring only moves image pages. */
static void io_fail(struct channel *ch, const struct request *rq, int res)
{
	io_error(ch, rq->block, rq->io.write, false, rq->io.offset, res);
}

/* The request is over, one way or another. */
static void finish(struct channel *ch, struct request *rq)
{
	put_slot(ch, rq->slot);
	rq->busy = false;
	ch->recs[rq->rec].outstanding--;
	retire_jobs(ch);
}

void mrs_chan_drop(struct channel *ch, struct request *rq)
{
	rq->in_ring = false;
	ch->inflight--;
	finish(ch, rq);
}

static bool piece_io(struct channel *ch, uint32_t block, bool write, bool ram, int fd, uint8_t *buf,
		     uint32_t len, uint64_t off);

/* Loaded bytes on to the block's file at off (the store lock is held); false if that failed the set. */
static bool store(struct channel *ch, uint32_t block, uint8_t *buf, uint32_t len, uint64_t off)
{
	const struct mrs_chan_block *b = &ch->set->blocks[block];

	if (b->mem) { /* hugetlbfs: no write(2), a mapping instead */
		memcpy(b->mem + off, buf, len);
		return true;
	}
	return piece_io(ch, block, true, true, b->fd, buf, len, off);
}

/*
 * Write the segments of one loaded run to its block's file (the store lock
 * is held): never the bytes of a bridged gap, so absent pages stay as the
 * target has them, zero (docs/DESIGN.md, "Layout").
 */
static void write_pages(struct channel *ch, struct request *rq)
{
	uint64_t ps = ch->set->blocks[rq->block].page_size;

	for (uint32_t s = 0; s < rq->nsegs; s++) {
		const struct segment *g = &rq->segs[s];

		if (!store(ch, rq->block, rq->buf + g->first * ps, (uint32_t)(g->npages * ps),
			   (rq->first_page + g->first) * ps))
			return;
	}
}

/*
 * Load: runs read from the image go on to the block's file with plain
 * pwrite, in the channel's thread: RAM files live on tmpfs or hugetlbfs,
 * where a write is a memory copy that never waits for a device. Writes to
 * one file serialize on its inode lock, which the kernel spins on; so
 * channels take a store lock of ours instead, queue their runs while
 * another channel holds it (their reads keep going meanwhile), and write
 * all they have queued when they get it.
 */
void mrs_chan_store(struct channel *ch, bool wait)
{
	pthread_mutex_t *lock;

	if (!ch->nstore)
		return;
	if (atomic_load(&ch->set->failed)) {
		while (ch->nstore)
			finish(ch, ch->store_q[--ch->nstore]);
		return;
	}
	/* Queued runs may be of several blocks: take them one block at a time. */
	lock = &ch->set->store_lock[ch->store_q[0]->block];
	if (wait)
		pthread_mutex_lock(lock);
	else if (pthread_mutex_trylock(lock))
		return;
	for (unsigned i = 0; i < ch->nstore;) {
		struct request *rq = ch->store_q[i];

		if (&ch->set->store_lock[rq->block] != lock) {
			i++;
			continue;
		}
		if (!atomic_load(&ch->set->failed))
			write_pages(ch, rq);
		ch->store_q[i] = ch->store_q[--ch->nstore];
		finish(ch, rq);
	}
	pthread_mutex_unlock(lock);
}

/* ---- pages larger than a buffer ------------------------------------------ */

/*
 * A page larger than a buffer (1 GiB hugetlbfs pages; 2 MiB ones with many
 * channels) does not fit in the buffer budget, so the channel moves it
 * itself, a buffer-sized piece at a time with pread and pwrite, hashing
 * the pieces in order. Such pages are few and large: a system call per
 * piece costs little next to the copy, and other channels go on meanwhile.
 */

/* One piece to or from the image or a target, with the hooks the ring's I/O has. */
static bool piece_io(struct channel *ch, uint32_t block, bool write, bool ram, int fd, uint8_t *buf,
		     uint32_t len, uint64_t off)
{
	const struct mrs_chan_hooks *hooks = ch->set->cfg.hooks;
	uint32_t done = 0;

	while (done < len) {
		struct mrs_io io = {write, ram, block, off + done, len - done};
		ssize_t n;

		if (hooks && hooks->before_submit)
			hooks->before_submit(hooks->ctx, ch->id, &io);
		n = write ? pwrite(fd, buf + done, io.len, (off_t)io.offset)
			  : pread(fd, buf + done, io.len, (off_t)io.offset);
		if (n < 0)
			n = -errno;
		if (hooks && hooks->on_complete)
			n = hooks->on_complete(hooks->ctx, ch->id, &io, (int)n);
		if (!ram) /* the counters are of image I/O (mrsnap(1), I/O counters) */
			ch->stats.requests++;
		if (n == -EINTR || n == -EAGAIN) {
			if (!ram)
				ch->stats.resubmits++;
			continue;
		}
		if (n == 0)
			n = write ? -EIO : -ENODATA; /* ENODATA: end of file inside a page region */
		if (n < 0) {
			io_error(ch, block, write, ram, io.offset, (int)n);
			return false;
		}
		done += (uint32_t)n;
	}
	return true;
}

/* A piece of a saved page to the image; a zero piece as a hole, so that images stay sparse. */
static bool write_piece(struct channel *ch, uint32_t block, uint64_t page, uint64_t at,
			uint8_t *buf, size_t len, bool zero)
{
	const struct mrs_chan_block *b = &ch->set->blocks[block];
	uint64_t off = b->pages_offset + page * b->page_size + at;

	if (zero) {
		int ret = punch(ch, b, page, at, len);

		if (ret != -EOPNOTSUPP) /* without punch support, zeros are written */
			return ret == 0;
	}
	if (!piece_io(ch, block, true, false, ch->fd, buf, (uint32_t)len, off))
		return false;
	atomic_fetch_add(&ch->set->bytes_moved, len);
	ch->stats.bytes_written += len;
	return true;
}

/*
 * Read a page of RAM piece by piece and hash it; with write, also write
 * each piece to the image from the copy that was hashed.
 */
static bool pass_over_ram_page(struct channel *ch, uint32_t block, uint64_t page, uint8_t *buf,
			       bool write, uint64_t *hash, bool *zero)
{
	const struct mrs_chan_block *b = &ch->set->blocks[block];
	struct mrs_hash_state *st = mrs_hash_begin();
	bool ok = true;

	if (!st) {
		mrs_chan_fail(ch->set, -ENOMEM, "out of memory");
		return false;
	}
	*zero = true;
	for (uint64_t at = 0; ok && at < b->page_size; at += ch->set->buf_size) {
		size_t len =
		    b->page_size - at < ch->set->buf_size ? b->page_size - at : ch->set->buf_size;
		bool z;

		ok = !atomic_load(&ch->set->failed) &&
		     read_ram(ch, b, buf, len, page * b->page_size + at);
		if (!ok)
			break;
		mrs_hash_add(st, buf, len);
		z = mrs_page_is_zero(buf, len);
		*zero = *zero && z;
		if (write)
			ok = write_piece(ch, block, page, at, buf, len, z);
	}
	*hash = mrs_hash_end(st);
	return ok;
}

/* RAM to image: the policy judges a first look; what it keeps is read again and written. */
static void write_large_page(struct channel *ch, uint8_t *buf)
{
	struct mrs_page_job pj = page_job(ch, &ch->cur);
	uint32_t block = ch->cur.block;
	uint64_t page = ch->cursor, h;
	bool zero;

	/* A first look, writing nothing: in later rounds most pages are unchanged. */
	if (!pass_over_ram_page(ch, block, page, buf, false, &h, &zero))
		return;
	if (!ch->cur.ops->large_page_read(&pj, page, h, zero))
		return;
	/*
	 * To be written: read it again, hashing and writing the same copy of
	 * each piece, so that the hash kept is that of the bytes in the image
	 * however the guest changed the page since the first look (A-B-A).
	 */
	if (!pass_over_ram_page(ch, block, page, buf, true, &h, &zero))
		return;
	ch->cur.ops->large_page_written(&pj, page, h);
	ch->stats.pages_written++;
}

/* A loaded piece on to the block's file, under the block's store lock. */
static bool store_piece(struct channel *ch, uint32_t block, uint8_t *buf, size_t len, uint64_t off)
{
	bool ok;

	pthread_mutex_lock(&ch->set->store_lock[block]);
	ok = store(ch, block, buf, (uint32_t)len, off);
	pthread_mutex_unlock(&ch->set->store_lock[block]);
	return ok;
}

/* From the image: read a page piece by piece, hash if the policy asks, store, judge. */
static void read_large_page(struct channel *ch, uint8_t *buf)
{
	struct mrs_page_job pj = page_job(ch, &ch->cur);
	const struct mrs_page_ops *ops = ch->cur.ops;
	uint32_t block = ch->cur.block;
	const struct mrs_chan_block *b = &ch->set->blocks[block];
	bool store = ops->flow == MRS_FLOW_IMAGE_TO_RAM;
	uint64_t page = ch->cursor, got;
	struct mrs_hash_state *st = NULL;
	bool ok = true;

	if (ops->needs_hash(&pj) && !(st = mrs_hash_begin())) {
		mrs_chan_fail(ch->set, -ENOMEM, "out of memory");
		return;
	}
	for (uint64_t at = 0; ok && at < b->page_size; at += ch->set->buf_size) {
		size_t len =
		    b->page_size - at < ch->set->buf_size ? b->page_size - at : ch->set->buf_size;

		ok = !atomic_load(&ch->set->failed) &&
		     piece_io(ch, block, false, false, ch->fd, buf, (uint32_t)len,
			      b->pages_offset + page * b->page_size + at);
		if (!ok)
			break;
		atomic_fetch_add(&ch->set->bytes_moved, len);
		ch->stats.bytes_read += len;
		if (st)
			mrs_hash_add(st, buf, len);
		/* With a check, a target may get pieces of a page that then fails it. */
		if (store)
			ok = store_piece(ch, block, buf, len, page * b->page_size + at);
	}
	got = st ? mrs_hash_end(st) : 0;
	if (!ok)
		return;
	ch->stats.pages_read++;
	ops->large_page_read(&pj, page, got, false);
}

/* Move the job's next page larger than a buffer, in the channel's thread. */
static enum built move_large_page(struct channel *ch)
{
	struct mrs_page_job pj = page_job(ch, &ch->cur);
	struct mrs_run run = {0, 0};
	unsigned slot;

	if (ch->cursor >= ch->cur.first_page + ch->cur.npages || atomic_load(&ch->set->failed))
		return DONE;
	if (!take_slot(ch, &slot))
		return BLOCKED;
	ch->stats.pages_scanned++;
	/* A page the policy skips (a hole, an absent page) is not read at all. */
	ch->cur.ops->plan_run(&pj, ch->cursor, ch->cursor + 1, 1, &run);
	if (!run.skip && ch->cur.ops->flow == MRS_FLOW_RAM_TO_IMAGE)
		write_large_page(ch, slot_ptr(ch, slot));
	else if (!run.skip)
		read_large_page(ch, slot_ptr(ch, slot));
	put_slot(ch, slot);
	ch->cursor++;
	return MOVED;
}

/*
 * The ring moved all bytes of a request: count them, and finish the request
 * (a loaded run once it is stored). Only image writes and image reads go
 * through the ring; target writes are pwrite()s (write_pages()).
 */
static void stage_done(struct channel *ch, struct request *rq)
{
	atomic_fetch_add(&ch->set->bytes_moved, rq->len);
	ch->stats.pages_bridged += rq->bridged;
	if (rq->stage == STAGE_IMAGE_WRITE) {
		ch->stats.pages_written += rq->npages - rq->bridged;
		ch->stats.bytes_written += rq->len;
	} else {
		ch->stats.pages_read += rq->npages - rq->bridged;
		ch->stats.bytes_read += rq->len;
		if (judge_run(ch, rq) && ch->recs[rq->rec].job.ops->flow == MRS_FLOW_IMAGE_TO_RAM &&
		    !atomic_load(&ch->set->failed)) {
			ch->store_q[ch->nstore++] = rq; /* finished once stored */
			return;
		}
	}
	finish(ch, rq);
}

void mrs_chan_complete(struct channel *ch, struct request *rq, int res)
{
	const struct mrs_chan_hooks *hooks = ch->set->cfg.hooks;

	rq->in_ring = false;
	ch->inflight--;
	if (hooks && hooks->on_complete)
		res = hooks->on_complete(hooks->ctx, ch->id, &rq->io, res);
	if (atomic_load(&ch->set->failed)) {
		finish(ch, rq);
		return;
	}
	/* Judge against the whole run: a hook may have cut the request short. */
	if (res == -EAGAIN || res == -EINTR || (res > 0 && (uint32_t)res < rq->len - rq->done)) {
		rq->done += res > 0 ? (uint32_t)res : 0;
		ch->stats.resubmits++;
		submit(ch, rq);
		return;
	}
	if (res == 0 && rq->len > rq->done)
		res = -ENODATA; /* end of file inside a page region */
	if (res < 0) {
		io_fail(ch, rq, res);
		finish(ch, rq);
		return;
	}
	rq->done = rq->len;
	stage_done(ch, rq);
}
