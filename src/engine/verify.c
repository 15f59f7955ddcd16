/* SPDX-License-Identifier: MIT */
/*
 * The verify engine: every metadata checksum (by reading the image), then
 * every present page read through the channels and checked against its hash.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devstate.h"
#include "engine.h"
#include "error.h"
#include "reader.h"
#include "pass.h"

static int bad_cmp(const void *a, const void *b)
{
	const struct mrs_bad_page_info *x = a, *y = b;
	int c = strcmp(x->block, y->block);

	if (c)
		return c;
	return x->page < y->page ? -1 : x->page > y->page;
}

static int collect_bad(struct mrs_image_reader *img, struct mrs_chanset *cs,
		       struct mrs_verify_report *report, struct mrs_error *err)
{
	size_t n;
	const struct mrs_bad_page *bad = mrs_chanset_bad_pages(cs, &n);

	report->pages_bad = n;
	if (!n)
		return 0;
	report->bad = calloc(n, sizeof(*report->bad));
	if (!report->bad)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct mrs_block_header *bh = &img->meta.blocks[bad[i].block];
		struct mrs_bad_page_info *out = &report->bad[i];

		memcpy(out->block, bh->name, sizeof(out->block));
		out->page = bad[i].page;
		out->guest_offset = bad[i].page * bh->page_size;
		out->expected = bad[i].expected;
		out->actual = bad[i].actual;
	}
	qsort(report->bad, n, sizeof(*report->bad), bad_cmp);
	return 0;
}

/* The device-state region against its checksum; a mismatch is counted, not fatal yet. */
static int check_devstate(struct mrs_image_reader *img, const struct mrs_io_opts *io,
			  struct mrs_verify_report *report, struct mrs_error *err)
{
	const struct mrs_stream_info *st = &img->meta.stream;
	struct mrs_error derr;
	int ret;

	if (!st->has_device)
		return 0;
	ret = mrs_devstate_check(img->fd, &st->device, io, &derr);
	if (ret == -EBADMSG) {
		report->devstate_bad = 1;
		ret = 0;
	} else if (ret) {
		return mrs_err(err, ret, "'%s': %s", img->path, derr.msg);
	}
	report->devstate_bytes = st->device.length;
	return 0;
}

/* -EBADMSG, saying what did not match, if anything did not. */
static int verdict(const char *path, const struct mrs_verify_report *report, struct mrs_error *err)
{
	if (report->pages_bad && report->devstate_bad)
		return mrs_err(err, -EBADMSG,
			       "'%s': %llu of %llu pages did NOT match, and the device state did "
			       "NOT match its checksum",
			       path, (unsigned long long)report->pages_bad,
			       (unsigned long long)report->pages_checked);
	if (report->pages_bad)
		return mrs_err(err, -EBADMSG, "'%s': %llu of %llu pages did NOT match", path,
			       (unsigned long long)report->pages_bad,
			       (unsigned long long)report->pages_checked);
	if (report->devstate_bad)
		return mrs_err(err, -EBADMSG,
			       "'%s': the device state (%llu bytes) did NOT match its checksum",
			       path, (unsigned long long)report->devstate_bytes);
	return 0;
}

int mrs_engine_verify(const char *path, const struct mrs_io_opts *opts,
		      struct mrs_verify_report *report, struct mrs_error *err)
{
	struct mrs_verify_report local;
	struct mrs_image_reader img;
	struct mrs_chanset *cs = NULL;
	struct mrs_chan_stats st;
	struct mrs_io_opts io;
	uint64_t start = mrs_now_ns();
	int ret;

	if (!report)
		report = &local;
	memset(report, 0, sizeof(*report));
	img.fd = -1;
	img.cb = NULL;
	ret = mrs_io_opts_resolve(opts, &io, err);
	if (ret)
		return ret;
	report->channels = io.channels;
	ret = mrs_image_reader_open(&img, path, 0, err);
	if (ret)
		return ret;
	ret = mrs_image_reader_blocks(&img, err);
	if (!ret)
		ret = mrs_image_reader_channels(&img, &io, &cs, err);
	if (!ret) {
		struct mrs_pass pass = {
		    .cs = cs,
		    .blocks = img.cb,
		    .pages = img.pages,
		    .nblocks = img.meta.sb.block_count,
		    .ops = &mrs_verify_ops,
		    .phase = "verify",
		    .io = &io,
		    .channels = io.channels,
		};

		ret = mrs_pass_run(&pass, err);
	}
	if (!ret) {
		mrs_chanset_stats(cs, &st);
		report->pages_checked = st.pages_read;
		report->bytes_read = st.bytes_read;
		report->io_requests = st.requests;
		report->io_resubmits = st.resubmits;
		ret = collect_bad(&img, cs, report, err);
	}
	if (!ret)
		ret = check_devstate(&img, &io, report, err);
	report->duration_ns = mrs_now_ns() - start;
	if (!ret)
		ret = verdict(path, report, err);
	mrs_chanset_close(cs);
	mrs_image_reader_close(&img);
	if (report == &local)
		mrs_engine_verify_report_free(&local);
	return ret;
}

void mrs_engine_verify_report_free(struct mrs_verify_report *report)
{
	free(report->bad);
	report->bad = NULL;
}
