/* SPDX-License-Identifier: MIT */
/*
 * Channels: pages land where they belong, syncs order rounds, restore and
 * verify wait once, and failures (EIO, ENOSPC, short transfers) are handled.
 * Faults come in through struct mrs_chan_hooks, never through #ifdefs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "channel.h"
#include "codec.h"
#include "pass.h"
#include "policy.h"

#define MAXB 4

/* An image file and the RAM blocks it is written from or read into. */
struct img {
	char *dir, *path;
	int fd; /* buffered, for the test's own checks */
	uint32_t n;
	struct mrs_chan_block blocks[MAXB];
	struct mrs_page_state pages[MAXB]; /* what the image holds, as the policies keep it */
	/* Each block's RAM: a memfd (blocks[b].fd), and the test's own view of it. */
	uint8_t *mem[MAXB];
	size_t mem_len[MAXB];
};

/* RAM as a VMM keeps it: a file, here a memfd, mapped shared. */
static uint8_t *make_ram(size_t len, int *fd)
{
	void *p;

	*fd = memfd_create("ram", MFD_CLOEXEC);
	assert_true(*fd >= 0);
	assert_int_equal(ftruncate(*fd, (off_t)len), 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

/* Page i of block b: zero when i % 5 == 0, else bytes that depend on (b, i, gen). */
static void fill_page(uint8_t *p, uint64_t len, uint32_t b, uint64_t i, uint64_t gen)
{
	if (i % 5 == 0)
		memset(p, 0, len);
	else
		mrs_test_fill(p, len, ((uint64_t)b << 40) ^ (i << 8) ^ gen);
}

/* The image and blocks as img_init makes them, but with RAM left as holes (zero). */
static void img_init_holes(struct img *im, const char *dir, uint32_t n, const uint64_t *pages,
			   uint64_t page_size)
{
	struct mrs_block_header bh[MAXB] = {0};
	struct mrs_error err = {0};
	uint64_t stream;

	memset(im, 0, sizeof(*im));
	im->dir = mrs_test_tmpdir_in(dir);
	assert_true(asprintf(&im->path, "%s/image", im->dir) > 0);
	im->fd = open(im->path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(im->fd >= 0);
	im->n = n;
	for (uint32_t b = 0; b < n; b++) {
		bh[b].index = b;
		bh[b].size = pages[b] * page_size;
		bh[b].page_size = (uint32_t)page_size;
		snprintf(bh[b].name, sizeof(bh[b].name), "ram%u", b);
	}
	assert_int_equal(mrs_layout_plan(bh, n, &stream, &err), 0);
	assert_int_equal(ftruncate(im->fd, (off_t)stream), 0);
	for (uint32_t b = 0; b < n; b++) {
		struct mrs_chan_block *cb = &im->blocks[b];

		cb->name = strdup(bh[b].name);
		/* Only messages use it: a label for the memfd. */
		assert_true(asprintf((char **)&cb->path, "%s.mem", bh[b].name) > 0);
		cb->page_size = page_size;
		cb->page_count = pages[b];
		cb->pages_offset = bh[b].pages_offset;
		im->mem_len[b] = pages[b] * page_size;
		im->mem[b] = make_ram(im->mem_len[b], &cb->fd);
		im->pages[b].hashes = calloc(pages[b], sizeof(uint64_t));
		im->pages[b].present = calloc(pages[b], 1);
	}
}

static void img_init(struct img *im, const char *dir, uint32_t n, const uint64_t *pages,
		     uint64_t page_size)
{
	img_init_holes(im, dir, n, pages, page_size);
	for (uint32_t b = 0; b < n; b++)
		for (uint64_t i = 0; i < pages[b]; i++)
			fill_page(im->mem[b] + i * page_size, page_size, b, i, 0);
}

static void img_free(struct img *im)
{
	for (uint32_t b = 0; b < im->n; b++) {
		free((char *)im->blocks[b].name);
		free((char *)im->blocks[b].path);
		munmap(im->mem[b], im->mem_len[b]);
		if (im->blocks[b].fd >= 0)
			close(im->blocks[b].fd);
		free(im->pages[b].hashes);
		free(im->pages[b].present);
	}
	close(im->fd);
	free(im->path);
	mrs_test_tmpdir_remove(im->dir);
}

static struct mrs_chan_config config(const struct img *im, unsigned channels, bool writable)
{
	struct mrs_chan_config cfg = {
	    .path = im->path,
	    .writable = writable,
	    .channels = channels,
	};
	return cfg;
}

/* Queue jobs of job_pages pages covering every block, spread over the channels. */
static void queue_all(struct mrs_chanset *cs, struct img *im, const struct mrs_page_ops *ops,
		      unsigned flags, uint64_t job_pages)
{
	struct mrs_error err = {0};

	for (uint32_t b = 0; b < im->n; b++) {
		for (uint64_t p = 0; p < im->blocks[b].page_count; p += job_pages) {
			uint64_t left = im->blocks[b].page_count - p;
			struct mrs_job job = {
			    .ops = ops,
			    .flags = flags,
			    .block = b,
			    .first_page = p,
			    .npages = left < job_pages ? left : job_pages,
			    .pages = &im->pages[b],
			};
			/* A set that failed already refuses more; the sync reports why. */
			if (mrs_chanset_queue_any(cs, &job, &err))
				return;
		}
	}
}

/* Save every block through the given channels; the channel set is closed after. */
static void save_all(struct img *im, struct mrs_chan_config *cfg, unsigned flags,
		     struct mrs_chan_stats *stats)
{
	struct mrs_chanset *cs;
	struct mrs_error err = {0};

	if (mrs_chanset_open(&cs, cfg, im->blocks, im->n, &err))
		fail_msg("%s", err.msg);
	queue_all(cs, im, &mrs_save_ops, flags, 37);
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	if (stats)
		mrs_chanset_stats(cs, stats);
	mrs_chanset_close(cs);
}

/* Every page of the image file: present pages hold the block's bytes, others nothing. */
static void check_image(const struct img *im)
{
	uint64_t page_size = im->blocks[0].page_size;
	uint8_t *buf = malloc(page_size), *zero = calloc(1, page_size);

	for (uint32_t b = 0; b < im->n; b++) {
		const struct mrs_chan_block *cb = &im->blocks[b];
		const struct mrs_page_state *ps = &im->pages[b];

		for (uint64_t i = 0; i < cb->page_count; i++) {
			const uint8_t *want = im->mem[b] + i * page_size;
			bool is_zero = !memcmp(want, zero, page_size);

			assert_int_equal(pread(im->fd, buf, page_size,
					       (off_t)(cb->pages_offset + i * page_size)),
					 (ssize_t)page_size);
			if (memcmp(buf, want, page_size))
				fail_msg("block %u page %lu differs in the image", b,
					 (unsigned long)i);
			assert_int_equal(ps->present[i], !is_zero);
			assert_true(ps->hashes[i] == (is_zero ? 0 : mrs_hash(want, page_size)));
		}
	}
	free(buf);
	free(zero);
}

static void test_save_every_page_lands_in_place(void **state)
{
	static const uint64_t pages[] = {300, 77, 1024};
	struct mrs_chan_stats st;
	struct img im;

	for (unsigned channels = 1; channels <= 4; channels += 3) {
		struct mrs_chan_config cfg;

		img_init(&im, NULL, 3, pages, 4096);
		cfg = config(&im, channels, true);
		save_all(&im, &cfg, 0, &st);
		check_image(&im);
		assert_int_equal(st.pages_scanned, 300 + 77 + 1024);
		assert_int_equal(st.pages_written, 240 + 61 + 819);
		/* Every 5th page is zero: a gap of one page, bridged by the write. */
		assert_true(st.pages_bridged > 0);
		assert_int_equal(st.bytes_written, (st.pages_written + st.pages_bridged) * 4096);
		img_free(&im);
	}
}

static void test_save_huge_pages(void **state)
{
	static const uint64_t pages[] = {11, 3};
	struct mrs_chan_config cfg;
	struct mrs_chan_stats st;
	struct img im;

	/* 2 MiB pages with 1 MiB requests: one page per request and per buffer. */
	img_init(&im, NULL, 2, pages, 2u << 20);
	cfg = config(&im, 2, true);
	save_all(&im, &cfg, 0, &st);
	check_image(&im);
	assert_int_equal(st.requests, 8 + 2);
	img_free(&im);
}

static void corrupt_page(struct img *im, uint32_t b, uint64_t page, uint64_t at);

/*
 * Pages larger than a channel's share of MRS_BUFFER_BUDGET (issue #10, item
 * 16): each channel used to take at least 4 buffers of a page, 4 GiB each
 * with 1 GiB pages. Now the set's buffers stay within the budget and such
 * pages move in buffer-sized pieces, hashed as one page. Here 16 channels
 * have 3 MiB each, less than a 4 MiB page: save, a changed-only round,
 * verify and load all go through the pieces. Seen failing with the old
 * buffer sizing (the budget assertion).
 */
static void test_pages_larger_than_a_buffer(void **state)
{
	static const uint64_t pages[] = {10};
	const uint64_t ps = 4u << 20;
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_chan_stats st;
	struct mrs_error err = {0};
	const struct mrs_bad_page *bad;
	size_t nbad;
	uint8_t *orig;
	struct img im;

	img_init(&im, NULL, 1, pages, ps);
	cfg = config(&im, 16, true);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	assert_true(mrs_chanset_buffer_bytes(cs) <= MRS_BUFFER_BUDGET);
	mrs_chanset_close(cs);
	save_all(&im, &cfg, 0, &st);
	check_image(&im);
	assert_int_equal(st.pages_written, 8);
	fill_page(im.mem[0] + 3 * ps, ps, 0, 3, 7);
	save_all(&im, &cfg, MRS_JOB_CHANGED_ONLY, &st);
	check_image(&im);
	assert_int_equal(st.pages_written, 1);
	assert_int_equal(st.bytes_written, ps);

	/* Load it back, checking hashes, into RAM that was cleared. */
	orig = malloc(im.mem_len[0]);
	memcpy(orig, im.mem[0], im.mem_len[0]);
	memset(im.mem[0], 0, im.mem_len[0]);
	cfg.writable = false;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	queue_all(cs, &im, &mrs_load_ops, MRS_JOB_CHECK, 1);
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	mrs_chanset_close(cs);
	assert_memory_equal(im.mem[0], orig, im.mem_len[0]);
	free(orig);

	/* A bad last byte of a page: verify reports it, a checked load fails. */
	corrupt_page(&im, 0, 7, ps - 1);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	queue_all(cs, &im, &mrs_verify_ops, 0, 1);
	assert_int_equal(mrs_chanset_sync(cs, &err), 0);
	bad = mrs_chanset_bad_pages(cs, &nbad);
	assert_int_equal(nbad, 1);
	assert_int_equal(bad[0].page, 7);
	mrs_chanset_close(cs);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	queue_all(cs, &im, &mrs_load_ops, MRS_JOB_CHECK, 1);
	assert_int_equal(mrs_chanset_sync(cs, &err), -EBADMSG);
	assert_msg_has(&err, "block 'ram0': page 7 (guest offset 0x1c00000) does not match");
	mrs_chanset_close(cs);
	img_free(&im);
}

/*
 * 1 GiB pages, as on hugetlbfs with 1 GiB pages (to the channels a page
 * size is just a number): RAM and image are sparse files, so only the few
 * bytes written below take room. The buffers stay within the budget (the
 * old sizing took 4 GiB a channel), the image gets the page's bytes and
 * keeps its holes, and verify checks the whole page's hash, its last
 * byte included.
 */
static void test_gib_pages_stay_within_the_budget(void **state)
{
	static const uint64_t pages[] = {2};
	const uint64_t ps = 1u << 30;
	static const uint64_t at[] = {0, (512u << 20) + 12345, (1u << 30) - 4096};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_chan_stats st;
	struct mrs_error err = {0};
	const struct mrs_bad_page *bad;
	uint8_t data[4096], got[4096];
	size_t nbad;
	struct img im;

	img_init_holes(&im, NULL, 1, pages, ps);
	im.blocks[0].sparse = true; /* a memfd: holes are found with SEEK_DATA */
	for (unsigned i = 0; i < 3; i++) {
		mrs_test_fill(data, sizeof(data), i + 1);
		assert_int_equal(pwrite(im.blocks[0].fd, data, sizeof(data), (off_t)at[i]),
				 (ssize_t)sizeof(data));
	}
	cfg = config(&im, 2, true);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	assert_true(mrs_chanset_buffer_bytes(cs) <= MRS_BUFFER_BUDGET);
	queue_all(cs, &im, &mrs_save_ops, 0, 1);
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	mrs_chanset_stats(cs, &st);
	mrs_chanset_close(cs);
	assert_int_equal(st.pages_written, 1);
	assert_int_equal(im.pages[0].present[0], 1);
	assert_int_equal(im.pages[0].present[1], 0);
	/* Only the pieces with data were written: the rest stayed holes. */
	assert_true(st.bytes_written <= 3 * MRS_REQUEST_DEFAULT);
	for (unsigned i = 0; i < 3; i++) {
		mrs_test_fill(data, sizeof(data), i + 1);
		assert_int_equal(
		    pread(im.fd, got, sizeof(got), (off_t)(im.blocks[0].pages_offset + at[i])),
		    (ssize_t)sizeof(got));
		assert_memory_equal(got, data, sizeof(data));
	}

	cfg.writable = false;
	for (int corrupted = 0; corrupted < 2; corrupted++) {
		if (corrupted)
			corrupt_page(&im, 0, 0, ps - 1);
		assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
		queue_all(cs, &im, &mrs_verify_ops, 0, 1);
		assert_int_equal(mrs_chanset_sync(cs, &err), 0);
		mrs_chanset_stats(cs, &st);
		bad = mrs_chanset_bad_pages(cs, &nbad);
		assert_int_equal(st.pages_read, 1);
		assert_int_equal(nbad, (size_t)corrupted);
		if (corrupted)
			assert_int_equal(bad[0].page, 0);
		mrs_chanset_close(cs);
	}
	img_free(&im);
}

/*
 * A block whose file has holes: the holes' pages are zero without being
 * read (counted as skipped), and a page that was written and is now a hole
 * is punched out like any page that became zero.
 */
static void test_sparse_file_holes_skipped(void **state)
{
	static const uint64_t pages[] = {1024};
	struct mrs_chan_config cfg;
	struct mrs_chan_stats st;
	struct img im;
	int fd;

	img_init(&im, NULL, 1, pages, 4096);
	fd = im.blocks[0].fd;
	/* pages 100..899 become a hole; 951 written now, a hole later */
	assert_int_equal(
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100 * 4096, 800 * 4096), 0);
	im.blocks[0].sparse = true;
	cfg = config(&im, 2, true);
	save_all(&im, &cfg, 0, &st);
	check_image(&im);
	assert_int_equal(st.pages_scanned, 1024);
	assert_true(st.pages_skipped >= 800 - 2 * 64); /* jobs may split the hole */
	assert_int_equal(im.pages[0].present[951], 1);

	assert_int_equal(
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 951 * 4096, 4096), 0);
	save_all(&im, &cfg, MRS_JOB_CHANGED_ONLY, &st);
	check_image(&im);
	assert_int_equal(im.pages[0].present[951], 0);
	assert_int_equal(st.pages_zeroed, 1);
	img_free(&im);
}

/* Round 2 sees page 3 changed, page 4 zero now, page 6 unchanged. */
static void test_changed_only_and_punch(void **state)
{
	static const uint64_t pages[] = {64};
	struct mrs_chan_config cfg;
	struct mrs_chan_stats st;
	struct img im;
	uint8_t *mem;

	img_init(&im, NULL, 1, pages, 4096);
	cfg = config(&im, 2, true);
	save_all(&im, &cfg, 0, NULL);
	mem = im.mem[0];
	fill_page(mem + 3 * 4096, 4096, 0, 3, 99);
	memset(mem + 4 * 4096, 0, 4096);
	save_all(&im, &cfg, MRS_JOB_CHANGED_ONLY, &st);
	check_image(&im);
	assert_int_equal(st.pages_dirty, 1);
	assert_int_equal(st.pages_written, 1);
	assert_int_equal(st.pages_zeroed, 1);
	img_free(&im);
}

/*
 * The ordering test from the project's seeds. Page 99 goes out through
 * channel 0 in round 1 (content A) and through channel 1 in round 2
 * (content B). Channel 0 is made slow: it holds its write until channel 1's
 * write has completed, or for 300 ms at most. With a sync between the rounds
 * round 2 cannot start before round 1 is done, so the image keeps B. Without
 * the sync, channel 1's write lands first and channel 0 overwrites it with
 * stale A: test_ordering_without_sync_keeps_stale_bytes shows that, so this
 * test fails if the sync stops doing its job.
 */
struct slow_ch0 {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool ch0_built; /* channel 0 has copied page 99 and is about to submit */
	bool ch1_done;	/* channel 1's write has completed */
};

static void slow_before_submit(void *ctx, unsigned channel, struct mrs_io *io)
{
	struct slow_ch0 *s = ctx;
	struct timespec until;

	if (channel != 0)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 300 * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	s->ch0_built = true;
	pthread_cond_broadcast(&s->cond);
	while (!s->ch1_done && pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
		;
	pthread_mutex_unlock(&s->lock);
}

static int slow_on_complete(void *ctx, unsigned channel, const struct mrs_io *io, int res)
{
	struct slow_ch0 *s = ctx;

	if (channel == 1) {
		pthread_mutex_lock(&s->lock);
		s->ch1_done = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	return res;
}

static void run_ordering(bool sync_between_rounds, uint8_t *final_byte)
{
	static const uint64_t pages[] = {128};
	struct slow_ch0 slow = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
	struct mrs_chan_hooks hooks = {
	    .before_submit = slow_before_submit, .on_complete = slow_on_complete, .ctx = &slow};
	struct mrs_job job = {&mrs_save_ops, 0, 0, 99, 1, NULL};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	uint8_t *page99;
	struct img im;

	img_init(&im, NULL, 1, pages, 4096);
	job.pages = &im.pages[0];
	page99 = im.mem[0] + 99 * 4096;
	cfg = config(&im, 2, true);
	cfg.hooks = &hooks;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);

	memset(page99, 'A', 4096); /* round 1 */
	assert_int_equal(mrs_chanset_queue(cs, 0, &job, &err), 0);
	pthread_mutex_lock(&slow.lock);
	while (!slow.ch0_built)
		pthread_cond_wait(&slow.cond, &slow.lock);
	pthread_mutex_unlock(&slow.lock);
	if (sync_between_rounds)
		assert_int_equal(mrs_chanset_sync(cs, &err), 0);

	memset(page99, 'B', 4096); /* round 2 */
	job.flags |= MRS_JOB_CHANGED_ONLY;
	assert_int_equal(mrs_chanset_queue(cs, 1, &job, &err), 0);
	assert_int_equal(mrs_chanset_sync(cs, &err), 0);
	mrs_chanset_close(cs);

	assert_int_equal(
	    pread(im.fd, final_byte, 1, (off_t)(im.blocks[0].pages_offset + 99 * 4096)), 1);
	img_free(&im);
}

static void test_ordering_sync_between_rounds(void **state)
{
	uint8_t byte;

	run_ordering(true, &byte);
	assert_int_equal(byte, 'B');
}

static void test_ordering_without_sync_keeps_stale_bytes(void **state)
{
	uint8_t byte;

	run_ordering(false, &byte);
	assert_int_equal(byte, 'A'); /* what the sync above prevents */
}

/*
 * The same order through the engines' own path, mrs_pass_run (issue #10: a
 * build without the wait between rounds passed every restore comparison).
 * One job per round: round 0's goes to channel 0, round 1's to channel 1
 * (the least busy, searched from the one after the last used). Channel 0
 * holds its write of round 0 until channel 1 has written, or for 300 ms.
 * With the pass waiting for its jobs before it returns, round 1 starts only
 * after round 0 landed and the image keeps round 1's bytes; seen failing
 * (the image kept round 0's stale bytes) with the wait and the sync taken
 * out of mrs_pass_run.
 */
static void test_pass_rounds_stay_ordered(void **state)
{
	static const uint64_t pages[] = {64};
	struct slow_ch0 slow = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
	struct mrs_chan_hooks hooks = {
	    .before_submit = slow_before_submit, .on_complete = slow_on_complete, .ctx = &slow};
	struct mrs_io_opts io = {.progress_ms = 1000};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct img im;
	uint8_t byte;

	img_init(&im, NULL, 1, pages, 4096);
	for (uint64_t i = 0; i < 64; i++)
		memset(im.mem[0] + i * 4096, 'A', 4096);
	cfg = config(&im, 2, true);
	cfg.hooks = &hooks;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	struct mrs_pass pass = {cs, im.blocks, im.pages, 1, &mrs_save_ops, 0, "round 0", &io, 2};

	assert_int_equal(mrs_pass_run(&pass, &err), 0);
	/* Change memory only once channel 0 has its copy of round 0. */
	pthread_mutex_lock(&slow.lock);
	while (!slow.ch0_built)
		pthread_cond_wait(&slow.cond, &slow.lock);
	pthread_mutex_unlock(&slow.lock);
	for (uint64_t i = 0; i < 64; i++)
		memset(im.mem[0] + i * 4096, 'B', 4096);
	pass.flags = MRS_JOB_CHANGED_ONLY;
	pass.phase = "round 1";
	assert_int_equal(mrs_pass_run(&pass, &err), 0);
	mrs_chanset_close(cs);
	for (uint64_t i = 0; i < 64; i++) {
		assert_int_equal(
		    pread(im.fd, &byte, 1, (off_t)(im.blocks[0].pages_offset + i * 4096)), 1);
		if (byte != 'B')
			fail_msg("page %lu of the image kept round 0's bytes", (unsigned long)i);
	}
	img_free(&im);
}

/*
 * Save an image, then load it back into fresh memory in random order, with
 * the one sync at the end. (How often the engines sync is counted in
 * test_engine, test_engines_sync_once_per_pass.)
 */
static void test_restore_random_order_syncs_once(void **state)
{
	static const uint64_t pages[] = {500, 129, 1000};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct mrs_job jobs[200];
	size_t njobs = 0;
	uint8_t *orig[3];
	struct img im;

	img_init(&im, NULL, 3, pages, 4096);
	cfg = config(&im, 2, true);
	save_all(&im, &cfg, 0, NULL);
	for (uint32_t b = 0; b < 3; b++) {
		orig[b] = malloc(im.mem_len[b]);
		memcpy(orig[b], im.mem[b], im.mem_len[b]);
		memset(im.mem[b], 0xee, im.mem_len[b]);
		for (uint64_t p = 0; p < pages[b]; p += 23) {
			uint64_t left = pages[b] - p;

			jobs[njobs++] = (struct mrs_job){.ops = &mrs_load_ops,
							 .flags = MRS_JOB_CHECK,
							 .block = b,
							 .first_page = p,
							 .npages = left < 23 ? left : 23,
							 .pages = &im.pages[b]};
		}
	}
	srand(42);
	for (size_t i = njobs - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1);
		struct mrs_job t = jobs[i];

		jobs[i] = jobs[j];
		jobs[j] = t;
	}
	cfg = config(&im, 4, false);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 3, &err), 0);
	for (size_t i = 0; i < njobs; i++)
		assert_int_equal(mrs_chanset_queue(cs, (unsigned)rand() % 4, &jobs[i], &err), 0);
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	mrs_chanset_close(cs);
	for (uint32_t b = 0; b < 3; b++) {
		/* Absent (zero) pages are not read: they keep what the target had. */
		for (uint64_t i = 0; i < pages[b]; i++) {
			const uint8_t *got = im.mem[b] + i * 4096;

			if (im.pages[b].present[i])
				assert_memory_equal(got, orig[b] + i * 4096, 4096);
			else
				assert_int_equal(got[0], 0xee);
		}
		free(orig[b]);
	}
	img_free(&im);
}

static void corrupt_page(struct img *im, uint32_t b, uint64_t page, uint64_t at)
{
	uint8_t byte;
	off_t off = (off_t)(im->blocks[b].pages_offset + page * im->blocks[b].page_size + at);

	assert_int_equal(pread(im->fd, &byte, 1, off), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(im->fd, &byte, 1, off), 1);
}

static void test_verify_reports_each_bad_page(void **state)
{
	static const uint64_t pages[] = {200, 50};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	const struct mrs_bad_page *bad;
	struct mrs_chan_stats st;
	size_t nbad;
	struct img im;

	img_init(&im, NULL, 2, pages, 4096);
	cfg = config(&im, 2, true);
	save_all(&im, &cfg, 0, NULL);
	corrupt_page(&im, 1, 33, 4095);
	for (uint32_t b = 0; b < 2; b++) {
		close(im.blocks[b].fd);
		im.blocks[b].fd = -1; /* verify has no RAM to write to */
	}
	cfg = config(&im, 3, false);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 2, &err), 0);
	queue_all(cs, &im, &mrs_verify_ops, 0, 16);
	assert_int_equal(mrs_chanset_sync(cs, &err), 0);
	mrs_chanset_stats(cs, &st);
	bad = mrs_chanset_bad_pages(cs, &nbad);
	assert_int_equal(nbad, 1);
	assert_int_equal(bad[0].block, 1);
	assert_int_equal(bad[0].page, 33);
	assert_true(bad[0].expected == im.pages[1].hashes[33]);
	assert_true(bad[0].actual != bad[0].expected);
	assert_int_equal(st.pages_read, 160 + 40);
	assert_int_equal(st.pages_bad, 1);
	mrs_chanset_close(cs);
	img_free(&im);
}

/*
 * Verify reports every bad page, whichever channel found it, and the last
 * page of blocks whose page counts are no multiple of the run size (issue
 * #10: a build that kept only channel 0's bad pages, or skipped a block's
 * last run, passed). Runs are 16 pages; jobs of 125 pages go to channels in
 * turn, so each of the 4 channels finds bad pages. Seen failing with
 * record_bad_page() (now mrs_page_record_bad()) keeping only channel 0's,
 * and with build_read() dropping the run that reaches a block's end.
 */
static void test_verify_reports_bad_pages_of_every_channel(void **state)
{
	static const uint64_t pages[] = {1000, 77};
	/* block, page: one in a job of each channel, and each block's last page */
	static const struct {
		uint32_t b;
		uint64_t page;
	} corrupt[] = {{0, 11}, {0, 131}, {0, 261}, {0, 391}, {0, 999}, {1, 76}};
	const size_t ncorrupt = sizeof(corrupt) / sizeof(corrupt[0]);
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	const struct mrs_bad_page *bad;
	unsigned channel = 0;
	size_t nbad;
	struct img im;

	img_init(&im, NULL, 2, pages, 4096);
	cfg = config(&im, 2, true);
	save_all(&im, &cfg, 0, NULL);
	for (size_t i = 0; i < ncorrupt; i++) {
		assert_int_equal(im.pages[corrupt[i].b].present[corrupt[i].page], 1);
		corrupt_page(&im, corrupt[i].b, corrupt[i].page, 100);
	}
	cfg = config(&im, 4, false);
	cfg.max_request = 16 * 4096;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 2, &err), 0);
	for (uint32_t b = 0; b < 2; b++)
		for (uint64_t p = 0; p < pages[b]; p += 125) {
			struct mrs_job job = {.ops = &mrs_verify_ops,
					      .block = b,
					      .first_page = p,
					      .npages = pages[b] - p < 125 ? pages[b] - p : 125,
					      .pages = &im.pages[b]};

			assert_int_equal(mrs_chanset_queue(cs, channel++ % 4, &job, &err), 0);
		}
	assert_int_equal(mrs_chanset_sync(cs, &err), 0);
	bad = mrs_chanset_bad_pages(cs, &nbad);
	for (size_t i = 0; i < ncorrupt; i++) {
		size_t k = 0;

		while (k < nbad && (bad[k].block != corrupt[i].b || bad[k].page != corrupt[i].page))
			k++;
		if (k == nbad)
			fail_msg("bad page %lu of block %u was not reported",
				 (unsigned long)corrupt[i].page, corrupt[i].b);
	}
	assert_int_equal(nbad, ncorrupt);
	mrs_chanset_close(cs);
	img_free(&im);
}

static void test_load_check_fails_on_mismatch(void **state)
{
	static const uint64_t pages[] = {100};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct img im;

	img_init(&im, NULL, 1, pages, 4096);
	cfg = config(&im, 2, true);
	save_all(&im, &cfg, 0, NULL);
	corrupt_page(&im, 0, 7, 0);
	cfg = config(&im, 2, false);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	queue_all(cs, &im, &mrs_load_ops, MRS_JOB_CHECK, 10);
	assert_int_equal(mrs_chanset_sync(cs, &err), -EBADMSG);
	assert_msg_has(&err, "block 'ram0': page 7 (guest offset 0x7000) does not match");
	mrs_chanset_close(cs);
	img_free(&im);
}

/* Fail the nth request of one channel with a given error. */
struct inject {
	unsigned channel;
	int nth;
	int res;
	enum { ANY_IO, IMAGE_READS, TARGET_WRITES } which;
	atomic_int seen;
	/* Short transfers: cut every request to at most this many bytes. */
	uint32_t cut;
	atomic_int cuts;
};

static int inject_on_complete(void *ctx, unsigned channel, const struct mrs_io *io, int res)
{
	struct inject *in = ctx;

	if (channel != in->channel || (in->which == IMAGE_READS && io->write) ||
	    (in->which == TARGET_WRITES && !io->target))
		return res;
	if (atomic_fetch_add(&in->seen, 1) + 1 == in->nth)
		return in->res;
	return res;
}

static void cut_before_submit(void *ctx, unsigned channel, struct mrs_io *io)
{
	struct inject *in = ctx;

	if (io->len > in->cut) {
		io->len = in->cut;
		atomic_fetch_add(&in->cuts, 1);
	}
}

static void test_injected_eio_stops_everything(void **state)
{
	static const uint64_t pages[] = {2048};
	struct inject in = {.channel = 1, .nth = 3, .res = -EIO};
	struct mrs_chan_hooks hooks = {.on_complete = inject_on_complete, .ctx = &in};
	struct mrs_job job = {&mrs_save_ops, 0, 0, 0, 16, NULL};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct img im;

	img_init(&im, NULL, 1, pages, 4096);
	job.pages = &im.pages[0];
	cfg = config(&im, 3, true);
	cfg.hooks = &hooks;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	queue_all(cs, &im, &mrs_save_ops, 0, 16);
	assert_int_equal(mrs_chanset_sync(cs, &err), -EIO);
	/* The file and whose offset: the image's, with the block and page there. */
	assert_msg_has(&err, "channel 1: write to image '");
	assert_msg_has(&err, im.path);
	assert_msg_has(&err, "' at offset 0x");
	assert_msg_has(&err, "(block 'ram0', page 0x");
	assert_msg_has(&err, "): Input/output error");
	/* The set stays stopped: nothing new is taken. */
	memset(&err, 0, sizeof(err));
	assert_int_equal(mrs_chanset_queue(cs, 0, &job, &err), -EIO);
	assert_msg_has(&err, "channel 1");
	mrs_chanset_close(cs);
	img_free(&im);
}

/*
 * Save one block of the given pages through two channels, then open a
 * read-only set with hooks and queue loads of every page: for tests of
 * failures on the load side.
 */
static struct mrs_chanset *save_then_load(struct img *im, const uint64_t *pages,
					  const struct mrs_chan_hooks *hooks)
{
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};

	img_init(im, NULL, 1, pages, 4096);
	cfg = config(im, 2, true);
	save_all(im, &cfg, 0, NULL);
	cfg = config(im, 2, false);
	cfg.hooks = hooks;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im->blocks, 1, &err), 0);
	queue_all(cs, im, &mrs_load_ops, 0, 8);
	return cs;
}

static void test_injected_eio_on_read(void **state)
{
	static const uint64_t pages[] = {512};
	struct inject in = {.channel = 0, .nth = 2, .res = -EIO, .which = IMAGE_READS};
	struct mrs_chan_hooks hooks = {.on_complete = inject_on_complete, .ctx = &in};
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct img im;

	cs = save_then_load(&im, pages, &hooks);
	assert_int_equal(mrs_chanset_sync(cs, &err), -EIO);
	assert_msg_has(&err, "channel 0: read of image '");
	assert_msg_has(&err, im.path);
	assert_msg_has(&err, "(block 'ram0', page 0x");
	mrs_chanset_close(cs);
	img_free(&im);
}

/* A target that cannot take the pages: the error names the block and the target. */
static void test_target_write_error(void **state)
{
	static const uint64_t pages[] = {256};
	struct inject in = {.channel = 1, .nth = 1, .res = -ENOSPC, .which = TARGET_WRITES};
	struct mrs_chan_hooks hooks = {.on_complete = inject_on_complete, .ctx = &in};
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct img im;

	cs = save_then_load(&im, pages, &hooks);
	assert_int_equal(mrs_chanset_sync(cs, &err), -ENOSPC);
	/* The guest's RAM file at an offset in it, not an image offset. */
	assert_msg_has(&err, "channel 1: write to RAM file 'ram0.mem' at offset 0x");
	assert_msg_has(&err, "(block 'ram0'): No space left on device");
	mrs_chanset_close(cs);
	img_free(&im);
}

/*
 * A RAM file shorter than its block: the message names the RAM file and an
 * offset in it (issue #10, item 20: it used to name only the block).
 */
static void test_ram_read_error_names_the_ram_file(void **state)
{
	static const uint64_t pages[] = {64};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct img im;

	img_init(&im, NULL, 1, pages, 4096);
	assert_int_equal(ftruncate(im.blocks[0].fd, 40 * 4096), 0);
	munmap(im.mem[0], im.mem_len[0]);
	im.mem_len[0] = 40 * 4096;
	im.mem[0] = mmap(NULL, im.mem_len[0], PROT_READ, MAP_SHARED, im.blocks[0].fd, 0);
	assert_true(im.mem[0] != MAP_FAILED);
	cfg = config(&im, 1, true);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	queue_all(cs, &im, &mrs_save_ops, 0, 64);
	assert_int_equal(mrs_chanset_sync(cs, &err), -ENODATA);
	assert_msg_has(&err, "channel 0: read of RAM file 'ram0.mem' at offset 0x28000 "
			     "(block 'ram0'): the file is shorter than the block");
	mrs_chanset_close(cs);
	img_free(&im);
}

static void test_short_transfers_are_resubmitted(void **state)
{
	static const uint64_t pages[] = {1000};
	struct inject in = {.channel = 99, .cut = 3 * 4096 + 100};
	struct mrs_chan_hooks hooks = {.before_submit = cut_before_submit, .ctx = &in};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_chan_stats st;
	struct mrs_error err = {0};
	uint8_t *orig;
	struct img im;

	img_init(&im, NULL, 1, pages, 4096);
	cfg = config(&im, 2, true);
	cfg.hooks = &hooks;
	save_all(&im, &cfg, 0, &st);
	check_image(&im);
	assert_true(atomic_load(&in.cuts) > 0);
	assert_true(st.resubmits >= (uint64_t)atomic_load(&in.cuts));

	orig = malloc(im.mem_len[0]);
	memcpy(orig, im.mem[0], im.mem_len[0]);
	memset(im.mem[0], 0, im.mem_len[0]);
	atomic_store(&in.cuts, 0);
	cfg.writable = false;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	queue_all(cs, &im, &mrs_load_ops, MRS_JOB_CHECK, 50);
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	mrs_chanset_stats(cs, &st);
	mrs_chanset_close(cs);
	assert_true(atomic_load(&in.cuts) > 0);
	assert_true(st.resubmits > 0);
	assert_memory_equal(im.mem[0], orig, im.mem_len[0]);
	free(orig);
	img_free(&im);
}

/* A real ENOSPC: an image on a 1 MiB tmpfs, with 4 MiB of pages to write. */
static void test_enospc_on_small_tmpfs(void **state)
{
	static const uint64_t pages[] = {1024};
	char *mnt = mrs_test_tmpdir();
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct img im;

	if (mount("mrsnap-test", mnt, "tmpfs", 0, "size=1m,mode=0700")) {
		int e = errno;

		mrs_test_tmpdir_remove(mnt);
		print_message("skipped: cannot mount a small tmpfs: %s\n", strerror(e));
		skip();
	}
	img_init(&im, mnt, 1, pages, 4096);
	cfg = config(&im, 2, true);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	queue_all(cs, &im, &mrs_save_ops, 0, 64);
	assert_int_equal(mrs_chanset_sync(cs, &err), -ENOSPC);
	assert_msg_has(&err, "write to image '");
	assert_msg_has(&err, "(block 'ram0', page 0x");
	assert_msg_has(&err, "No space left on device");
	mrs_chanset_close(cs);
	img_free(&im);
	assert_int_equal(umount(mnt), 0);
	mrs_test_tmpdir_remove(mnt);
}

/*
 * Failures of the ring itself (issue #10, item 15): a submit the kernel
 * refuses, for now (-EAGAIN, -EBUSY) or for good, and a wait that fails.
 * These used to hang: a refused submit was ignored, leaving the channel
 * waiting for completions of requests the kernel never saw; a failed one
 * or a failed wait left jobs counting requests that would never complete,
 * so the channel never went idle and sync and close never returned. Each
 * test runs under a watchdog, so that a hang fails it (SIGALRM ends the
 * process) instead of stalling the suite; the bound is no timing
 * threshold: these tests take well under a second when they pass.
 * Seen failing (SIGALRM) with each of the old behaviours put back: -EAGAIN
 * ignored, a failed submit leaving inflight counted, a failed wait setting
 * inflight to 0 and dropping nothing.
 */
#define WATCHDOG_SECONDS 120

struct ring_faults {
	unsigned channel;
	int flush_res, wait_res;     /* what to inject */
	int flush_from, flush_count; /* from the nth flush on (1-based), this many times */
	int wait_nth;
	atomic_int flushes, waits, injected;
};

static int faulty_flush(void *ctx, unsigned channel)
{
	struct ring_faults *f = ctx;
	int n;

	if (channel != f->channel || !f->flush_res)
		return 0;
	n = atomic_fetch_add(&f->flushes, 1) + 1;
	if (n < f->flush_from || n >= f->flush_from + f->flush_count)
		return 0;
	atomic_fetch_add(&f->injected, 1);
	/* -EAGAIN, then -EBUSY: both mean "not now" */
	return f->flush_res == -EAGAIN && n % 2 ? -EBUSY : f->flush_res;
}

static int faulty_wait(void *ctx, unsigned channel)
{
	struct ring_faults *f = ctx;

	if (channel != f->channel || !f->wait_res)
		return 0;
	if (atomic_fetch_add(&f->waits, 1) + 1 != f->wait_nth)
		return 0;
	atomic_fetch_add(&f->injected, 1);
	return f->wait_res;
}

/* Save 2048 pages through 2 channels with the given faults; the sync's result. */
static int save_with_ring_faults(struct img *im, struct ring_faults *f, struct mrs_error *err)
{
	static const uint64_t pages[] = {2048};
	struct mrs_chan_hooks hooks = {
	    .ctx = f, .before_flush = faulty_flush, .before_wait = faulty_wait};
	struct mrs_job job = {&mrs_save_ops, 0, 0, 0, 16, &im->pages[0]};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	int ret;

	img_init(im, NULL, 1, pages, 4096);
	cfg = config(im, 2, true);
	cfg.depth = 8;
	cfg.max_request = 4 * 4096; /* many requests, so faults land in the middle */
	cfg.hooks = &hooks;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im->blocks, 1, err), 0);
	queue_all(cs, im, &mrs_save_ops, 0, 16);
	ret = mrs_chanset_sync(cs, err);
	if (ret) { /* the set stays stopped */
		struct mrs_error again = {0};

		assert_int_equal(mrs_chanset_queue(cs, 0, &job, &again), ret);
	}
	mrs_chanset_close(cs);
	return ret;
}

static void test_submit_eagain_ebusy_are_retried(void **state)
{
	struct ring_faults f = {
	    .channel = 0, .flush_res = -EAGAIN, .flush_from = 1, .flush_count = 12};
	struct mrs_error err = {0};
	struct img im;

	alarm(WATCHDOG_SECONDS);
	if (save_with_ring_faults(&im, &f, &err))
		fail_msg("%s", err.msg);
	alarm(0);
	assert_int_equal(atomic_load(&f.injected), 12);
	check_image(&im);
	img_free(&im);
}

static void test_submit_failure_stops_the_set(void **state)
{
	/* From the 4th flush on: by then requests are in flight, others not yet taken. */
	struct ring_faults f = {
	    .channel = 1, .flush_res = -EBADFD, .flush_from = 4, .flush_count = 1000000};
	struct mrs_error err = {0};
	struct img im;

	alarm(WATCHDOG_SECONDS);
	assert_int_equal(save_with_ring_faults(&im, &f, &err), -EBADFD);
	alarm(0);
	assert_msg_has(&err, "channel 1: cannot submit I/O: File descriptor in bad state");
	img_free(&im);
}

static void test_wait_failure_stops_the_set(void **state)
{
	struct ring_faults f = {.channel = 0, .wait_res = -EFAULT, .wait_nth = 3};
	struct mrs_error err = {0};
	struct img im;

	alarm(WATCHDOG_SECONDS);
	assert_int_equal(save_with_ring_faults(&im, &f, &err), -EFAULT);
	alarm(0);
	assert_msg_has(&err, "channel 0: waiting for I/O: Bad address");
	img_free(&im);
}

static void test_direct_io(void **state)
{
	static const uint64_t pages[] = {700, 300};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct img im;
	int fd;

	img_init(&im, NULL, 2, pages, 4096);
	fd = open(im.path, O_RDWR | O_DIRECT);
	if (fd < 0) {
		int e = errno;

		img_free(&im);
		print_message("skipped: O_DIRECT not supported under $TMPDIR: %s\n", strerror(e));
		skip();
	}
	close(fd);
	cfg = config(&im, 2, true);
	cfg.direct = true;
	save_all(&im, &cfg, 0, NULL);
	check_image(&im);
	fill_page(im.mem[1] + 9 * 4096, 4096, 1, 9, 5);
	save_all(&im, &cfg, MRS_JOB_CHANGED_ONLY, NULL);
	check_image(&im);
	/* And read back with O_DIRECT, loading and verifying. */
	cfg.writable = false;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 2, &err), 0);
	queue_all(cs, &im, &mrs_load_ops, MRS_JOB_CHECK, 100);
	queue_all(cs, &im, &mrs_verify_ops, 0, 100);
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	mrs_chanset_close(cs);
	img_free(&im);
}

/*
 * A policy is one ops table, and the transport asks it about every page it
 * moves and decides nothing itself (issue #11: channels move bytes, jobs
 * decide which). This one, defined here, writes pages 0, 1 and 3 of every
 * 8, zero ones included: plan_run skips pages 4..7, page_read refuses page
 * 2, a gap short enough to be bridged. The image gets those pages, and page
 * 2's bytes as part of one request of pages 0-3, but never as present; a
 * transport that skipped zero pages itself, ignored a skip (pages 4..7 are
 * never read, so never bridged), ran past the end of a run or took a
 * refused page for a written one would write or count others.
 * Seen failing with build_write() going on past a refused page, and with
 * the transport leaving zero pages out before asking the policy.
 */
static void test_plan_run(const struct mrs_page_job *j, uint64_t page, uint64_t end, uint64_t max,
			  struct mrs_run *run)
{
	uint64_t p = page;

	while (p < end && p % 8 >= 4)
		p++;
	run->skip = p - page;
	run->npages = 4 - p % 8;
	if (run->npages > end - p)
		run->npages = end - p;
	if (run->npages > max)
		run->npages = max;
}

static bool test_page_read(const struct mrs_page_job *j, uint64_t page, const uint8_t *bytes)
{
	if (page % 8 == 2)
		return false;
	j->pages->present[page] = 1;
	j->pages->hashes[page] = mrs_hash(bytes, j->block->page_size);
	return true;
}

static const struct mrs_page_ops test_ops = {
    .flow = MRS_FLOW_RAM_TO_IMAGE,
    .plan_run = test_plan_run,
    .page_read = test_page_read,
};

/*
 * Requests test_ops makes for jobs of job_pages: one for each group of 8
 * pages a job holds a written page of (0, 1 or 3) in, bridging page 2.
 */
static uint64_t expected_requests(uint64_t npages, uint64_t job_pages)
{
	uint64_t n = 0;

	for (uint64_t s = 0; s < npages; s += job_pages)
		for (uint64_t g = s / 8 * 8; g < s + job_pages && g < npages; g += 8) {
			bool any = false;

			for (uint64_t p = g; p < g + 4; p++)
				any = any || (p >= s && p < s + job_pages && p % 8 != 2);
			n += any;
		}
	return n;
}

static void test_a_policy_is_one_table(void **state)
{
	static const uint64_t pages[] = {64};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_chan_stats st;
	struct mrs_error err = {0};
	uint8_t *got = malloc(4096), *zero = calloc(1, 4096);
	struct img im;

	img_init(&im, NULL, 1, pages, 4096);
	cfg = config(&im, 2, true);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), 0);
	queue_all(cs, &im, &test_ops, 0, 13); /* jobs that start and end mid-group */
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	mrs_chanset_stats(cs, &st);
	mrs_chanset_close(cs);
	assert_int_equal(st.pages_written, 64 / 8 * 3);
	/* One request per group of pages 0-3 within a job, page 2 bridged in it. */
	assert_int_equal(st.requests, expected_requests(64, 13));
	for (uint64_t i = 0; i < 64; i++) {
		bool written = i % 8 == 0 || i % 8 == 1 || i % 8 == 3;
		/* page 2 between pages 1 and 3 of its own job (jobs of 13 pages) */
		bool bridged = i % 8 == 2 && (i - 1) / 13 == (i + 1) / 13;
		const uint8_t *want = written || bridged ? im.mem[0] + i * 4096 : zero;

		assert_int_equal(im.pages[0].present[i], written);
		assert_int_equal(
		    pread(im.fd, got, 4096, (off_t)(im.blocks[0].pages_offset + i * 4096)), 4096);
		if (memcmp(got, want, 4096))
			fail_msg("page %lu of the image is not what the policy chose",
				 (unsigned long)i);
	}
	free(got);
	free(zero);
	img_free(&im);
}

/* ---- bridged gaps ---------------------------------------------------------- */

/*
 * The page mix of test_bridged_gaps_never_present, 1024 pages: zero pages
 * one by one (0..255: every 3rd), runs of 32 (256..511: the first half of
 * every 64), gaps of exactly the longest bridged length and of one page
 * more (512..767), and no zero page at all (768..1023).
 */
#define BRIDGE_PAGES (MRS_BRIDGE_BYTES / 4096)
static bool mix_zero(uint64_t i)
{
	if (i < 256)
		return i % 3 == 0;
	if (i < 512)
		return (i - 256) % 64 < 32;
	if (i < 640)
		return (i - 512) % (BRIDGE_PAGES + 1) != 0;
	if (i < 768)
		return (i - 640) % (BRIDGE_PAGES + 2) != 0;
	return false;
}

static bool all_zero(const uint8_t *p)
{
	return p[0] == 0 && !memcmp(p, p + 1, 4095);
}

/* Save the block with jobs of job_pages, through a fresh channel set. */
static void save_jobs(struct img *im, struct mrs_chan_config *cfg, unsigned flags,
		      uint64_t job_pages, struct mrs_chan_stats *st)
{
	struct mrs_chanset *cs;
	struct mrs_error err = {0};

	assert_int_equal(mrs_chanset_open(&cs, cfg, im->blocks, im->n, &err), 0);
	queue_all(cs, im, &mrs_save_ops, flags, job_pages);
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	mrs_chanset_stats(cs, st);
	mrs_chanset_close(cs);
}

/* Long zero runs stay holes in the image: no data from the run's start to its end. */
static void assert_hole(const struct img *im, uint64_t first, uint64_t npages)
{
	off_t at = (off_t)(im->blocks[0].pages_offset + first * 4096);
	off_t data = lseek(im->fd, at, SEEK_DATA);

	if (data >= 0 && data < at + (off_t)(npages * 4096))
		fail_msg("pages %lu..%lu, zero, hold data in the image", (unsigned long)first,
			 (unsigned long)(first + npages - 1));
}

/* Bytes the image holds for an absent page, as a filesystem without punch support keeps them. */
static void stale_bytes(struct img *im, uint64_t page)
{
	uint8_t buf[4096];

	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(
	    pwrite(im->fd, buf, 4096, (off_t)(im->blocks[0].pages_offset + page * 4096)), 4096);
}

/*
 * Load the image into RAM full of 0xa5 and verify it: present pages come
 * back, and every absent page keeps 0xa5 (the target's own bytes, zero in
 * a real restore), though the image holds stale bytes for some of them and
 * reads bridge the gaps they are in. Verify finds nothing bad: the bytes
 * of a bridged gap are never judged.
 */
static void load_and_verify(struct img *im, struct mrs_chan_config cfg, const uint8_t *orig)
{
	struct mrs_chanset *cs;
	struct mrs_chan_stats st;
	struct mrs_error err = {0};
	size_t nbad;
	uint64_t present = 0;

	for (uint64_t i = 0; i < 1024; i++)
		present += im->pages[0].present[i];
	for (uint64_t i = 0; i < 1024; i++)
		if (!im->pages[0].present[i] && i % 2)
			stale_bytes(im, i);
	memset(im->mem[0], 0xa5, im->mem_len[0]);
	cfg.writable = false;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im->blocks, 1, &err), 0);
	queue_all(cs, im, &mrs_load_ops, MRS_JOB_CHECK, 100);
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	mrs_chanset_stats(cs, &st);
	mrs_chanset_close(cs);
	assert_true(st.pages_bridged > 0); /* the reads did bridge gaps */
	assert_int_equal(st.pages_read, present);
	for (uint64_t i = 0; i < 1024; i++) {
		const uint8_t *got = im->mem[0] + i * 4096;

		if (im->pages[0].present[i] && memcmp(got, orig + i * 4096, 4096))
			fail_msg("page %lu was not loaded", (unsigned long)i);
		if (!im->pages[0].present[i] && (got[0] != 0xa5 || memcmp(got, got + 1, 4095)))
			fail_msg("absent page %lu was written to the target", (unsigned long)i);
	}
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im->blocks, 1, &err), 0);
	queue_all(cs, im, &mrs_verify_ops, 0, 100);
	assert_int_equal(mrs_chanset_sync(cs, &err), 0);
	mrs_chanset_bad_pages(cs, &nbad);
	if (nbad)
		fail_msg("verify judged %zu bytes of bridged gaps", nbad);
	mrs_chanset_close(cs);
	/*
	 * And with O_DIRECT and no check, into a target that is zero where
	 * the image has no page, as a restore's is: it must stay so.
	 */
	memset(im->mem[0], 0, im->mem_len[0]);
	cfg.direct = true;
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im->blocks, 1, &err), 0);
	queue_all(cs, im, &mrs_load_ops, 0, 100);
	if (mrs_chanset_sync(cs, &err))
		fail_msg("%s", err.msg);
	mrs_chanset_close(cs);
	for (uint64_t i = 0; i < 1024; i++) {
		const uint8_t *got = im->mem[0] + i * 4096;

		if (im->pages[0].present[i] && memcmp(got, orig + i * 4096, 4096))
			fail_msg("page %lu was not loaded into the target", (unsigned long)i);
		if (!im->pages[0].present[i] && !all_zero(got))
			fail_msg("absent page %lu holds the image's stale bytes", (unsigned long)i);
	}
}

/*
 * Requests bridge short gaps (MRS_BRIDGE_BYTES) of pages they do not move,
 * and that must never make such a page present: on 1, 2, 3 and 8
 * channels, with jobs that start and end inside the patterns, a first
 * round, then a changed-only round in which scattered pages changed,
 * others stayed the same between them, some present pages became zero one
 * by one and a run of 32 did; after each, the bitmap and checksum table
 * say exactly which pages are non-zero and what they hold, the image holds
 * every page's bytes (zero for absent ones: its page region stays a raw
 * memory image), runs of 32 zero pages stay holes, the pages written are
 * just the changed ones, and pages that became zero cost no punch each.
 * Then a load and a verify (load_and_verify).
 * Seen failing: with save_page_read() marking a zero page present (the
 * bitmap check), with write_pages() storing a whole bridged run (0xa5
 * overwritten), with judge_run() judging bridged pages (verify's bad
 * pages), with the bridge length unbounded (the hole check), and with a
 * punch per page that became zero (the punch count).
 */
static void test_bridged_gaps_never_present(void **state)
{
	static const unsigned counts[] = {1, 2, 3, 8};
	static const uint64_t pages[] = {1024};

	for (unsigned c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct mrs_chan_config cfg;
		struct mrs_chan_stats st;
		uint64_t nonzero = 0, changed = 0, zeroed = 0;
		uint8_t *mem, *orig;
		struct img im;

		img_init(&im, NULL, 1, pages, 4096);
		mem = im.mem[0];
		for (uint64_t i = 0; i < 1024; i++) {
			if (mix_zero(i))
				memset(mem + i * 4096, 0, 4096);
			nonzero += !all_zero(mem + i * 4096);
		}
		cfg = config(&im, counts[c], true);
		save_jobs(&im, &cfg, 0, 100, &st);
		check_image(&im);
		assert_int_equal(st.pages_written, nonzero);
		assert_true(st.pages_bridged > 0);
		for (uint64_t r = 256; r < 512; r += 64)
			assert_hole(&im, r, 32);
		for (uint64_t r = 640 + 1; r + BRIDGE_PAGES + 1 < 768; r += BRIDGE_PAGES + 2)
			assert_hole(&im, r, BRIDGE_PAGES + 1);

		/* A changed-only round: a few pages change, some become zero. */
		for (uint64_t i = 0; i < 1024; i++) {
			bool change = (i < 128 && i % 3 == 2) || (i >= 768 && i % 3 == 0);
			bool zero_now = (i < 128 && i % 3 == 1) || (i >= 900 && i < 932);

			if (zero_now) {
				zeroed += im.pages[0].present[i];
				memset(mem + i * 4096, 0, 4096);
			} else if (change) {
				mrs_test_fill(mem + i * 4096, 4096, i ^ 0x77000);
				changed++;
			}
		}
		save_jobs(&im, &cfg, MRS_JOB_CHANGED_ONLY, 100, &st);
		check_image(&im);
		assert_int_equal(st.pages_written, changed);
		assert_int_equal(st.pages_zeroed, zeroed);
		assert_true(st.pages_bridged > 0);
		/* 60 pages became zero; job edges and the run of 32 cost a few punches. */
		assert_true(st.punches <= 8);
		assert_hole(&im, 900, 32);

		orig = malloc(im.mem_len[0]);
		memcpy(orig, mem, im.mem_len[0]);
		load_and_verify(&im, cfg, orig);
		free(orig);
		img_free(&im);
	}
}

static void test_bad_config(void **state)
{
	static const uint64_t pages[] = {10};
	struct mrs_chan_config cfg;
	struct mrs_chanset *cs;
	struct mrs_error err = {0};
	struct img im;

	img_init(&im, NULL, 1, pages, 4096);
	cfg = config(&im, 0, true);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), -EINVAL);
	assert_msg_has(&err, "channel count 0");
	cfg = config(&im, 65, true);
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), -EINVAL);
	cfg = config(&im, 2, true);
	cfg.path = "/nonexistent/image";
	assert_int_equal(mrs_chanset_open(&cs, &cfg, im.blocks, 1, &err), -ENOENT);
	assert_msg_has(&err, "cannot open '/nonexistent/image'");
	img_free(&im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_save_every_page_lands_in_place),
	    cmocka_unit_test(test_save_huge_pages),
	    cmocka_unit_test(test_pages_larger_than_a_buffer),
	    cmocka_unit_test(test_gib_pages_stay_within_the_budget),
	    cmocka_unit_test(test_changed_only_and_punch),
	    cmocka_unit_test(test_sparse_file_holes_skipped),
	    cmocka_unit_test(test_ordering_sync_between_rounds),
	    cmocka_unit_test(test_ordering_without_sync_keeps_stale_bytes),
	    cmocka_unit_test(test_pass_rounds_stay_ordered),
	    cmocka_unit_test(test_restore_random_order_syncs_once),
	    cmocka_unit_test(test_verify_reports_each_bad_page),
	    cmocka_unit_test(test_verify_reports_bad_pages_of_every_channel),
	    cmocka_unit_test(test_load_check_fails_on_mismatch),
	    cmocka_unit_test(test_injected_eio_stops_everything),
	    cmocka_unit_test(test_injected_eio_on_read),
	    cmocka_unit_test(test_target_write_error),
	    cmocka_unit_test(test_ram_read_error_names_the_ram_file),
	    cmocka_unit_test(test_short_transfers_are_resubmitted),
	    cmocka_unit_test(test_enospc_on_small_tmpfs),
	    cmocka_unit_test(test_submit_eagain_ebusy_are_retried),
	    cmocka_unit_test(test_submit_failure_stops_the_set),
	    cmocka_unit_test(test_wait_failure_stops_the_set),
	    cmocka_unit_test(test_direct_io),
	    cmocka_unit_test(test_a_policy_is_one_table),
	    cmocka_unit_test(test_bridged_gaps_never_present),
	    cmocka_unit_test(test_bad_config),
	};
	if (!mrs_test_have_io_uring())
		return TEST_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
