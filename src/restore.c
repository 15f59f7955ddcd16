/* SPDX-License-Identifier: MIT */
/*
 * The restore engine: validate the whole image, then (and only then) open
 * and clear the targets, and load the present pages through the channels,
 * which read in any order and are waited for once, at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image.h"
#include "pass.h"
#include "ram.h"

struct restore {
	const struct mrs_restore_opts *opts;
	struct mrs_io_opts io;
	struct mrs_image_reader img;
	const char **target; /* per block: where it goes */
	struct mrs_ram_map *dst;
	uint32_t nopen;
	struct mrs_chanset *cs;
};

/* Where each block goes: the path given for its name, else the recorded one. */
static int resolve_targets(struct restore *r, const struct mrs_ram *t, unsigned nt,
			   struct mrs_error *err)
{
	const struct mrs_image_meta *m = &r->img.meta;
	uint32_t n = m->sb.block_count;

	r->target = calloc(n, sizeof(*r->target));
	if (!r->target)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < nt; i++) {
		uint32_t b = 0;

		while (b < n && strcmp(m->blocks[b].name, t[i].name))
			b++;
		if (b == n)
			return mrs_err(err, -ENOENT, "the image has no block named '%s'",
				       t[i].name);
		if (r->target[b])
			return mrs_err(err, -EINVAL, "block '%s' is given twice", t[i].name);
		r->target[b] = t[i].path;
	}
	for (uint32_t b = 0; b < n; b++) {
		if (!r->target[b])
			r->target[b] = m->blocks[b].path;
		if (!r->target[b][0])
			return mrs_err(
			    err, -EINVAL,
			    "block '%s' has no recorded path; give one with --ram %s=PATH",
			    m->blocks[b].name, m->blocks[b].name);
		if (mrs_ram_check_target(r->target[b], r->opts->force, err))
			return err ? err->code : -EINVAL;
	}
	return 0;
}

static int open_targets(struct restore *r, struct mrs_error *err)
{
	const struct mrs_image_meta *m = &r->img.meta;
	uint32_t n = m->sb.block_count;

	r->dst = calloc(n, sizeof(*r->dst));
	if (!r->dst)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (; r->nopen < n; r->nopen++) {
		uint32_t b = r->nopen;
		int ret = mrs_ram_open_target(&r->dst[b], m->blocks[b].name, r->target[b],
					      m->blocks[b].size, r->opts->force, err);

		if (ret)
			return mrs_err_prefix(err, "block '%s'", m->blocks[b].name);
		r->img.cb[b].fd = r->dst[b].fd;
		r->img.cb[b].path = r->target[b];
		r->img.cb[b].mem = r->dst[b].mem;
	}
	return 0;
}

static int load(struct restore *r, struct mrs_error *err)
{
	struct mrs_pass pass = {
	    .blocks = r->img.cb,
	    .nblocks = r->img.meta.sb.block_count,
	    .kind = MRS_JOB_LOAD,
	    .flags = r->opts->verify ? MRS_JOB_CHECK : 0,
	    .phase = "restore",
	    .io = &r->io,
	    .channels = r->io.channels,
	};
	int ret = mrs_image_reader_channels(&r->img, &r->io, &r->cs, err);

	pass.cs = r->cs;
	if (!ret)
		ret = mrs_pass_run(&pass, err);
	for (uint32_t b = 0; !ret && b < r->nopen; b++)
		ret = mrs_ram_flush(&r->dst[b], err);
	return ret;
}

static void fill_report(struct restore *r, uint64_t start, struct mrs_restore_report *report)
{
	struct mrs_chan_stats st;

	mrs_chanset_stats(r->cs, &st);
	memset(report, 0, sizeof(*report));
	report->channels = r->io.channels;
	report->nblocks = r->img.meta.sb.block_count;
	for (uint32_t b = 0; b < report->nblocks; b++)
		report->pages_total += r->img.meta.blocks[b].page_count;
	report->pages_read = st.pages_read;
	report->bytes_read = st.bytes_read;
	report->duration_ns = mrs_now_ns() - start;
}

int mrs_restore(const char *path, const struct mrs_ram *targets, unsigned ntargets,
		const struct mrs_restore_opts *opts, struct mrs_restore_report *report,
		struct mrs_error *err)
{
	static const struct mrs_restore_opts defaults;
	struct restore r = {.opts = opts ? opts : &defaults};
	uint64_t start = mrs_now_ns();
	int ret;

	r.img.fd = -1;
	ret = mrs_io_opts_resolve(&r.opts->io, &r.io, err);
	/* Everything about the image is checked before any target is touched. */
	if (!ret)
		ret = mrs_image_reader_open(&r.img, path, 0, err);
	if (!ret)
		ret = mrs_image_reader_blocks(&r.img, err);
	if (!ret)
		ret = resolve_targets(&r, targets, ntargets, err);
	if (!ret)
		ret = open_targets(&r, err);
	if (!ret)
		ret = load(&r, err);
	if (!ret && report)
		fill_report(&r, start, report);
	mrs_chanset_close(r.cs);
	for (uint32_t b = 0; b < r.nopen; b++)
		mrs_ram_close(&r.dst[b]);
	free(r.dst);
	free(r.target);
	mrs_image_reader_close(&r.img);
	return ret;
}
