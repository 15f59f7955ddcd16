/* SPDX-License-Identifier: MIT */
/*
 * The snapshot engine: map the RAM blocks, plan the image, write every
 * non-zero page through the channels, then the metadata, and only then mark
 * the image complete and move it into place.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "channel.h"
#include "engine.h"
#include "error.h"
#include "codec.h"
#include "devstate.h"
#include "freeze.h"
#include "live.h"
#include "reader.h"
#include "tmpimage.h"
#include "metaio.h"
#include "pass.h"
#include "ram.h"
#include "stream.h"

struct save {
	const struct mrs_save_opts *opts;
	struct mrs_io_opts io;
	uint64_t start;

	struct mrs_ram_map *src; /* nopen of n opened */
	uint32_t n, nopen;

	struct mrs_tmpimage file;
	struct mrs_superblock sb;
	struct mrs_block_header *bh;
	struct mrs_chan_block *cb;
	struct mrs_page_state *pages; /* per block: what the image holds, kept by the channels */
	struct mrs_chanset *cs;

	struct mrs_stream_buf stream;
	size_t flushed;
	struct mrs_round_info *rounds;
	uint32_t nrounds;
	enum mrs_stop_reason stop_reason;
	uint64_t frozen_at, downtime_ns; /* frozen_at: 0 while the guest runs */
	uint64_t estimated_downtime_ns;	 /* the frozen round's, when the live rounds ended */
	mrs_progress_fn progress;	 /* the caller's, called through save_progress */
	void *progress_ctx;
	struct mrs_chan_stats totals; /* the channels' counters after the last round */
	bool has_device;	      /* the device state is in the image: s->device says where */
	struct mrs_device_rec device;
	uint64_t devstate_ns;
	struct mrs_base base; /* opts->base: what the first round compares with */
};

#define DOWNTIME_MS_DEFAULT 300u
#define MAX_ROUNDS_DEFAULT  30u

static int check_specs(const struct mrs_ram *ram, unsigned n, struct mrs_error *err)
{
	if (n == 0 || n > MRS_MAX_BLOCKS)
		return mrs_err(err, -MRS_EUSAGE, "a snapshot takes 1 to %u RAM blocks, not %u",
			       MRS_MAX_BLOCKS, n);
	for (unsigned i = 0; i < n; i++) {
		int ret = mrs_block_name_check(ram[i].name, err);

		if (ret)
			return ret;
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(ram[i].name, ram[j].name))
				return mrs_err(err, -MRS_EUSAGE, "block name '%s' is given twice",
					       ram[i].name);
	}
	return 0;
}

static int check_live_opts(const struct mrs_save_opts *o, struct mrs_error *err)
{
	if (o->live && !o->nfreezers)
		return mrs_err(err, -MRS_EUSAGE, "a live snapshot needs a way to freeze the guest");
	if (o->live && o->max_rounds == 1)
		return mrs_err(err, -MRS_EUSAGE, "a live snapshot takes at least 2 rounds");
	/* More would not fit in a control stream that readers accept. */
	if (o->live && o->max_rounds > MRS_MAX_ROUNDS)
		return mrs_err(err, -MRS_EUSAGE, "a live snapshot takes at most %u rounds, not %u",
			       MRS_MAX_ROUNDS, o->max_rounds);
	if (o->leave_frozen && !o->nfreezers)
		return mrs_err(err, -MRS_EUSAGE, "leave_frozen needs a way to freeze the guest");
	/* Without a frozen guest, RAM and device state would be of two instants. */
	if (o->devstate && !o->nfreezers)
		return mrs_err(err, -MRS_EUSAGE,
			       "saving device state needs a way to freeze the guest");
	return o->devstate ? mrs_devstate_source_check(o->devstate, err) : 0;
}

/* The caller's progress callback, told whether the guest is frozen now. */
static int save_progress(void *ctx, const struct mrs_progress *p)
{
	struct save *s = ctx;
	struct mrs_progress q = *p;

	q.frozen = s->frozen_at != 0;
	return s->progress(s->progress_ctx, &q);
}

static int open_sources(struct save *s, const struct mrs_ram *ram, struct mrs_error *err)
{
	s->src = calloc(s->n, sizeof(*s->src));
	if (!s->src)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (; s->nopen < s->n; s->nopen++) {
		int ret = mrs_ram_open_source(&s->src[s->nopen], &ram[s->nopen], err);

		if (ret)
			return mrs_err_prefix(err, "block '%s'", ram[s->nopen].name);
	}
	return 0;
}

/*
 * An IMAGE that is one of the files being saved would be renamed over the
 * guest's RAM (with --force): refused, whatever --force says.
 */
static int check_image_not_source(const struct save *s, const char *path, const struct mrs_ram *ram,
				  struct mrs_error *err)
{
	struct stat img, src;

	if (stat(path, &img))
		return 0; /* no file there yet: not a source */
	for (unsigned i = 0; i < s->nopen; i++)
		if (fstat(s->src[i].fd, &src) == 0 && src.st_dev == img.st_dev &&
		    src.st_ino == img.st_ino)
			return mrs_err(err, -MRS_EUSAGE,
				       "image '%s' is the file of block '%s' ('%s'), the guest's "
				       "RAM being saved: give the image another path",
				       path, ram[i].name, ram[i].path);
	return 0;
}

/* Record the source's absolute path, so that restore finds it from anywhere (none for a memfd). */
static void record_path(struct mrs_block_header *bh, const char *path)
{
	char *abs;
	const char *p;
	int pid;

	/*
	 * A descriptor of a process (a memfd of QEMU's) names nothing a later
	 * restore could use: it is gone then, or a running guest's memory.
	 */
	if (mrs_ram_is_proc_fd(path, &pid))
		return;
	abs = realpath(path, NULL);
	p = abs ? abs : path;

	if (strlen(p) < sizeof(bh->path))
		memcpy(bh->path, p, strlen(p) + 1);
	free(abs);
}

static int plan_image(struct save *s, struct mrs_error *err)
{
	struct timespec now;
	int ret;

	s->bh = calloc(s->n, sizeof(*s->bh));
	s->cb = calloc(s->n, sizeof(*s->cb));
	s->pages = calloc(s->n, sizeof(*s->pages));
	if (!s->bh || !s->cb || !s->pages)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < s->n; i++) {
		s->bh[i].index = i;
		s->bh[i].size = s->src[i].size;
		s->bh[i].page_size = (uint32_t)s->src[i].page_size;
		memcpy(s->bh[i].name, s->src[i].name, strlen(s->src[i].name) + 1);
		record_path(&s->bh[i], s->src[i].path);
	}
	s->sb.version = MRS_FORMAT_VERSION;
	s->sb.flags = s->opts->live ? MRS_SB_LIVE : 0;
	s->sb.block_count = s->n;
	s->sb.block_table_offset = MRS_SB_AREA;
	clock_gettime(CLOCK_REALTIME, &now);
	s->sb.created_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	snprintf(s->sb.tool_version, sizeof(s->sb.tool_version), "mrsnap %s", mrs_version_string());
	ret = mrs_layout_plan(s->bh, s->n, &s->sb.stream_offset, err);
	if (ret)
		return ret;
	if (ftruncate(s->file.fd, (off_t)s->sb.stream_offset))
		return mrs_err_errno(err, -errno, "cannot size '%s' to %" PRIu64 " bytes",
				     s->file.tmp, s->sb.stream_offset);
	/*
	 * The block headers, then an incomplete superblock: a crash from here on
	 * leaves an image that says it is incomplete and that info can still
	 * describe (headers first, so that a superblock never points at headers
	 * not yet written; a crash between the two leaves no superblock at all,
	 * which every reader refuses alike). The headers are written again with
	 * their checksums at the end.
	 */
	ret = mrs_meta_write_headers(s->file.fd, s->sb.block_table_offset, s->bh, s->n, err);
	if (!ret)
		ret = mrs_meta_write_superblock(s->file.fd, &s->sb, err);
	if (!ret)
		ret = mrs_stream_append_blocks(&s->stream, s->n, s->sb.block_table_offset);
	if (!ret)
		ret = mrs_stream_append_eos(&s->stream);
	return ret == -ENOMEM ? mrs_err(err, ret, "out of memory") : ret;
}

static int open_channels(struct save *s, struct mrs_error *err)
{
	struct mrs_chan_config cfg = {
	    .path = s->file.tmp,
	    .writable = true,
	    .direct = s->io.direct,
	    .channels = s->io.channels,
	    .depth = s->io.depth,
	};

	for (uint32_t i = 0; i < s->n; i++) {
		struct mrs_chan_block *cb = &s->cb[i];

		cb->name = s->bh[i].name;
		cb->path = s->src[i].path;
		cb->fd = s->src[i].fd;
		cb->sparse = s->src[i].sparse;
		cb->page_size = s->bh[i].page_size;
		cb->page_count = s->bh[i].page_count;
		cb->pages_offset = s->bh[i].pages_offset;
		s->pages[i].hashes = calloc(cb->page_count, sizeof(*s->pages[i].hashes));
		s->pages[i].present = calloc(cb->page_count, 1);
		if (!s->pages[i].hashes || !s->pages[i].present)
			return mrs_err(err, -ENOMEM,
				       "out of memory for the state of %" PRIu64 " pages",
				       cb->page_count);
	}
	return mrs_chanset_open(&s->cs, &cfg, s->cb, s->n, err);
}

static void report_round(struct save *s, uint32_t i)
{
	if (s->opts->round_done)
		s->opts->round_done(s->opts->round_ctx, &s->rounds[i]);
}

/*
 * One round: a pass over all pages, a sync, and its record in the stream.
 * A frozen round is reported later, by report_frozen_round(): a callback
 * that prints could block, and while frozen every moment is downtime.
 */
static int run_round(struct save *s, unsigned flags, bool frozen, struct mrs_error *err)
{
	char phase[32];
	struct mrs_chan_stats before, after;
	struct mrs_round_info *grown;
	struct mrs_round r = {0};
	uint64_t t0 = mrs_now_ns();
	struct mrs_pass pass = {
	    .cs = s->cs,
	    .blocks = s->cb,
	    .pages = s->pages,
	    .nblocks = s->n,
	    .ops = &mrs_save_ops,
	    .flags = flags,
	    .phase = phase,
	    .io = &s->io,
	    .channels = s->io.channels,
	};
	int ret;

	snprintf(phase, sizeof(phase), "round %u", s->nrounds);
	mrs_chanset_stats(s->cs, &before);
	ret = mrs_pass_run(&pass, err);
	if (ret)
		return ret;
	mrs_chanset_stats(s->cs, &after);
	s->totals = after;
	r.number = s->nrounds;
	r.flags = frozen ? MRS_ROUND_FROZEN : 0;
	r.pages_scanned = after.pages_scanned - before.pages_scanned;
	r.pages_dirty = after.pages_dirty - before.pages_dirty;
	r.pages_written = after.pages_written - before.pages_written;
	r.pages_zeroed = after.pages_zeroed - before.pages_zeroed;
	r.bytes_written = after.bytes_written - before.bytes_written;
	r.duration_ns = mrs_now_ns() - t0;
	grown = realloc(s->rounds, (s->nrounds + 1) * sizeof(*s->rounds));
	if (!grown)
		return mrs_err(err, -ENOMEM, "out of memory");
	s->rounds = grown;
	mrs_round_to_info(&r, &s->rounds[s->nrounds]);
	if (!frozen)
		report_round(s, s->nrounds);
	s->nrounds++;
	mrs_base_round_done(&s->base, s->pages, s->n);
	if (mrs_stream_append_round(&s->stream, &r) || mrs_stream_append_eos(&s->stream))
		return mrs_err(err, -ENOMEM, "out of memory");
	return mrs_meta_write_stream(s->file.fd, s->sb.stream_offset, &s->stream, &s->flushed, err);
}

/*
 * The VMM's device state, right after the final round, while the guest is
 * still frozen: streamed into its region past the longest stream there can
 * be; its record is appended to the stream in memory only (finish_image
 * writes it out after the thaw).
 */
static int save_devstate(struct save *s, struct mrs_error *err)
{
	int ret;

	if (!s->opts->devstate)
		return 0;
	if (!mrs_devstate_offset(s->sb.stream_offset, &s->device.offset))
		return mrs_err(err, -EFBIG, "no room for the device state in the image");
	ret = mrs_devstate_save(s->opts->devstate, s->file.fd, &s->io, &s->device, &s->devstate_ns,
				err);
	if (ret)
		return ret;
	if (mrs_stream_append_device(&s->stream, &s->device) || mrs_stream_append_eos(&s->stream))
		return mrs_err(err, -ENOMEM, "out of memory");
	s->has_device = true;
	return 0;
}

/* Freeze the guest, and note when, for the downtime. */
static int freeze(struct save *s, struct mrs_error *err)
{
	int ret;

	s->frozen_at = mrs_now_ns();
	ret = mrs_freeze_all(s->opts->freezers, s->opts->nfreezers, err);
	if (ret)
		return mrs_err_prefix(err, "cannot freeze the guest");
	/* A signal that came while freezing stops us here, before any work. */
	ret = mrs_progress_report(&s->io, "frozen", 0, 0, 0, s->frozen_at);
	return ret ? mrs_err(err, ret, "interrupted") : 0;
}

/* The frozen round, once the guest runs again (or is left frozen on purpose). */
static void report_frozen_round(struct save *s)
{
	if (s->nrounds && s->rounds[s->nrounds - 1].frozen)
		report_round(s, s->nrounds - 1);
}

/* Thaw if frozen; every way out of save passes here. */
static int thaw(struct save *s, struct mrs_error *err)
{
	int ret;

	if (!s->frozen_at)
		return 0;
	ret = mrs_thaw_all(s->opts->freezers, s->opts->nfreezers, err);
	s->downtime_ns = mrs_now_ns() - s->frozen_at;
	s->frozen_at = 0;
	return ret ? mrs_err_prefix(err, "cannot thaw the guest") : 0;
}

/*
 * Non-live: one round from the guest's memory, frozen throughout if asked.
 * mrs_save thaws.
 */
static int save_paused(struct save *s, struct mrs_error *err)
{
	bool frozen = s->opts->nfreezers > 0;
	int ret = frozen ? freeze(s, err) : 0;

	s->stop_reason = MRS_STOP_NOT_LIVE;
	if (!ret)
		ret = run_round(s, mrs_base_first_round_flags(&s->base), frozen, err);
	if (!ret)
		ret = save_devstate(s, err);
	return ret;
}

/*
 * Whether the live rounds should end after the n live rounds so far, and
 * why; the policy and its estimate are mrs_live_decide()'s (docs/DESIGN.md,
 * "Live rounds").
 */
static bool rounds_done(struct save *s, const struct mrs_round_stats *live, uint32_t n)
{
	unsigned downtime_ms = s->opts->downtime_ms ? s->opts->downtime_ms : DOWNTIME_MS_DEFAULT;
	struct mrs_live_policy policy = {
	    .downtime_ns = downtime_ms * 1000000ull,
	    .max_rounds = s->opts->max_rounds ? s->opts->max_rounds : MAX_ROUNDS_DEFAULT,
	};

	switch (mrs_live_decide(&policy, live, n, &s->estimated_downtime_ns)) {
	case MRS_LIVE_MAX_ROUNDS:
		s->stop_reason = MRS_STOP_MAX_ROUNDS;
		return true;
	case MRS_LIVE_CONVERGED:
		s->stop_reason = MRS_STOP_CONVERGED;
		return true;
	case MRS_LIVE_NO_PROGRESS:
		s->stop_reason = MRS_STOP_NO_PROGRESS;
		return true;
	default:
		return false;
	}
}

/* Add the round just run to the live rounds' statistics. */
static int note_live_round(struct save *s, struct mrs_round_stats **live, struct mrs_error *err)
{
	const struct mrs_round_info *last = &s->rounds[s->nrounds - 1];
	struct mrs_round_stats *grown = realloc(*live, s->nrounds * sizeof(**live));

	if (!grown)
		return mrs_err(err, -ENOMEM, "out of memory");
	*live = grown;
	grown[s->nrounds - 1] = (struct mrs_round_stats){
	    .pages_scanned = last->pages_scanned,
	    .bytes_written = last->bytes_written,
	    .duration_ns = last->duration_ns,
	};
	return 0;
}

/*
 * Live: rounds while the guest runs, then freeze and a final round; mrs_save
 * thaws. Channels always read pages into their buffers and hash and write
 * that copy, so a page the guest changes meanwhile cannot leave the image
 * with bytes its hash does not describe (docs/DESIGN.md, "The A-B-A rule").
 */
static int save_live(struct save *s, struct mrs_error *err)
{
	struct mrs_round_stats *live = NULL;
	int ret;

	do {
		/* Round 0 writes every non-zero page, or (with a base) what differs from it. */
		unsigned flags =
		    s->nrounds ? MRS_JOB_CHANGED_ONLY : mrs_base_first_round_flags(&s->base);

		ret = run_round(s, flags, false, err);
		if (!ret)
			ret = note_live_round(s, &live, err);
	} while (!ret && !rounds_done(s, live, s->nrounds));
	free(live);
	if (!ret)
		ret = freeze(s, err);
	if (!ret)
		ret = run_round(s, MRS_JOB_CHANGED_ONLY, true, err);
	if (!ret)
		ret = save_devstate(s, err);
	return ret;
}

/* Bitmap bytes from the per-page presence the channels kept. */
static uint8_t *make_bitmap(const struct mrs_block_header *bh, const uint8_t *present)
{
	uint8_t *bitmap = calloc(1, bh->bitmap_length);

	if (bitmap)
		for (uint64_t p = 0; p < bh->page_count; p++)
			if (present[p])
				mrs_bitmap_set(bitmap, p);
	return bitmap;
}

static int sync_file(struct save *s, struct mrs_error *err)
{
	if (s->opts->no_fsync || !fsync(s->file.fd))
		return 0;
	return mrs_err_errno(err, -errno, "cannot sync '%s'", s->file.tmp);
}

/*
 * Everything but the complete flag, made durable; then the flag, made
 * durable; then the rename. A crash anywhere before the flag leaves an image
 * every reader refuses; before the rename, nothing at the final path
 * (docs/DESIGN.md, "The publish order").
 */
static int finish_image(struct save *s, struct mrs_error *err)
{
	int ret = 0;

	for (uint32_t i = 0; i < s->n && !ret; i++) {
		uint8_t *bitmap = make_bitmap(&s->bh[i], s->pages[i].present);

		if (!bitmap)
			return mrs_err(err, -ENOMEM, "out of memory");
		ret = mrs_meta_write_tables(s->file.fd, &s->bh[i], bitmap, s->pages[i].hashes, err);
		free(bitmap);
	}
	if (!ret)
		ret =
		    mrs_meta_write_headers(s->file.fd, s->sb.block_table_offset, s->bh, s->n, err);
	if (!ret && mrs_stream_append_end(&s->stream))
		ret = mrs_err(err, -ENOMEM, "out of memory");
	if (!ret)
		ret = mrs_meta_write_stream(s->file.fd, s->sb.stream_offset, &s->stream,
					    &s->flushed, err);
	if (!ret)
		ret = mrs_progress_report(&s->io, "fsync", 0, 0, 0, mrs_now_ns());
	if (ret == -ECANCELED)
		return mrs_err(err, ret, "interrupted");
	if (!ret)
		ret = sync_file(s, err);
	if (ret)
		return ret;
	s->sb.flags |= MRS_SB_COMPLETE;
	s->sb.stream_length = s->stream.len;
	ret = mrs_meta_write_superblock(s->file.fd, &s->sb, err);
	if (!ret)
		ret = sync_file(s, err);
	if (!ret)
		ret = mrs_tmpimage_publish(&s->file, s->opts->force, s->opts->no_fsync, err);
	return ret;
}

static void fill_report(struct save *s, struct mrs_save_report *report)
{
	memset(report, 0, sizeof(*report));
	report->channels = s->io.channels;
	for (uint32_t i = 0; i < s->n; i++) {
		report->pages_total += s->bh[i].page_count;
		report->pages_present += s->bh[i].pages_present;
	}
	for (uint32_t r = 0; r < s->nrounds; r++) {
		report->bytes_written += s->rounds[r].bytes_written;
		report->pages_written += s->rounds[r].pages_written;
	}
	mrs_base_report(&s->base, report);
	report->image_size = s->sb.stream_offset + s->stream.len;
	if (s->has_device)
		report->image_size = s->device.offset + s->device.length;
	report->devstate_bytes = s->has_device ? s->device.length : 0;
	report->devstate_ns = s->devstate_ns;
	report->duration_ns = mrs_now_ns() - s->start;
	report->nrounds = s->nrounds;
	report->rounds = s->rounds;
	report->stop_reason = s->stop_reason;
	report->downtime_ns = s->downtime_ns;
	report->stale_removed = s->file.stale_removed;
	report->pages_skipped = s->totals.pages_skipped;
	report->io_requests = s->totals.requests;
	report->io_resubmits = s->totals.resubmits;
	report->estimated_downtime_ns = s->estimated_downtime_ns;
	s->rounds = NULL;
	/* The image is in place whatever happens here: without memory, no block list. */
	report->nblocks = s->n;
	report->blocks = calloc(s->n, sizeof(*report->blocks));
	for (uint32_t i = 0; report->blocks && i < s->n; i++)
		mrs_block_to_info(&s->bh[i], &report->blocks[i]);
}

static void cleanup(struct save *s)
{
	mrs_chanset_close(s->cs);
	mrs_tmpimage_discard(&s->file);
	mrs_base_close(&s->base);
	for (uint32_t i = 0; s->pages && i < s->n; i++) {
		free(s->pages[i].hashes);
		free(s->pages[i].present);
	}
	for (uint32_t i = 0; i < s->nopen; i++)
		mrs_ram_close(&s->src[i]);
	free(s->src);
	free(s->cb);
	free(s->pages);
	free(s->bh);
	free(s->rounds);
	mrs_stream_buf_free(&s->stream);
}

/*
 * The thaw failed (terr). If the image is in place (ret 0), it is good and
 * stays: the thaw's error is returned, saying so. Otherwise the thaw's
 * failure is added to the first one's message.
 */
static int thaw_failed(const char *path, int ret, const struct mrs_error *terr,
		       struct mrs_error *err)
{
	if (!ret)
		return mrs_err(err, terr->code,
			       "the image '%s' is complete, but the guest may still be frozen: %s",
			       path, terr->msg);
	mrs_err_suffix(err, "; and the guest may still be frozen: %s", terr->msg);
	return ret;
}

int mrs_engine_save(const char *path, const struct mrs_ram *ram, unsigned nram,
		    const struct mrs_save_opts *opts, struct mrs_save_report *report,
		    struct mrs_error *err)
{
	struct save s = {.opts = opts, .n = nram, .start = mrs_now_ns()};
	struct mrs_error terr;
	int ret, tret = 0;

	s.file.fd = -1;
	if (report) /* so that mrs_save_report_free() is always safe */
		memset(report, 0, sizeof(*report));
	ret = mrs_io_opts_resolve(s.opts->io, &s.io, err);
	if (!ret && s.io.progress) {
		s.progress = s.io.progress;
		s.progress_ctx = s.io.progress_ctx;
		s.io.progress = save_progress;
		s.io.progress_ctx = &s;
	}
	if (!ret)
		ret = check_live_opts(s.opts, err);
	if (!ret)
		ret = check_specs(ram, nram, err);
	if (!ret)
		ret = open_sources(&s, ram, err);
	if (!ret)
		ret = check_image_not_source(&s, path, ram, err);
	if (!ret)
		ret = mrs_base_open(&s.base, s.opts->base, path, s.src, s.n, err);
	if (!ret)
		ret = mrs_tmpimage_create(&s.file, path, s.opts->force, err);
	if (!ret)
		ret = plan_image(&s, err);
	if (!ret)
		ret = open_channels(&s, err);
	if (!ret)
		ret = mrs_base_share(&s.base, s.file.fd, s.bh, s.pages, s.n, err);
	if (!ret)
		ret = s.opts->live ? save_live(&s, err) : save_paused(&s, err);
	/*
	 * Whatever failed, the guest does not stay frozen. After the last round
	 * the image is consistent: thaw before the metadata is written (less
	 * downtime), unless asked to leave the guest frozen.
	 */
	if (ret || !s.opts->leave_frozen)
		tret = thaw(&s, &terr);
	if (!ret) {
		report_frozen_round(&s);
		mrs_chanset_close(s.cs);
		s.cs = NULL;
		ret = finish_image(&s, err);
		if (ret && s.frozen_at) /* left frozen, then failed: thaw after all */
			tret = thaw(&s, &terr);
		else if (s.frozen_at)
			s.downtime_ns = mrs_now_ns() - s.frozen_at;
	}
	/* Failing after the rename is not "no image": say what is on disk. */
	if (report && (!ret || s.file.published)) {
		fill_report(&s, report);
		report->not_durable = ret != 0;
	}
	if (tret)
		ret = thaw_failed(path, ret, &terr, err);
	cleanup(&s);
	return ret;
}

void mrs_engine_save_report_free(struct mrs_save_report *report)
{
	free(report->rounds);
	report->rounds = NULL;
	report->nrounds = 0;
	free(report->blocks);
	report->blocks = NULL;
	report->nblocks = 0;
}

const char *mrs_stop_reason_name(enum mrs_stop_reason reason)
{
	switch (reason) {
	case MRS_STOP_CONVERGED:
		return "converged";
	case MRS_STOP_MAX_ROUNDS:
		return "max-rounds";
	case MRS_STOP_NO_PROGRESS:
		return "no-progress";
	default:
		return "not-live";
	}
}
