/* SPDX-License-Identifier: MIT */
/*
 * The restore engine, as a straight line: the image is opened and
 * validated through one fd; the targets are resolved and checked (type,
 * the size rule for recorded paths, not the image, not mapped, not twice);
 * the channels are opened on that same fd. Only then is anything changed:
 * targets are created or cut and cleared, and the present pages loaded by
 * the channels, which read in any order and are waited for once, at the
 * end. On failure, what was created is removed and what was partly written
 * is named (docs/DESIGN.md, "Acquire, validate, then change" and
 * "Channels and when they sync").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone_restore.h"
#include "devstate.h"
#include "engine.h"
#include "error.h"
#include "reader.h"
#include "pass.h"
#include "ram.h"

struct restore {
	const struct mrs_restore_opts *opts;
	struct mrs_io_opts io;
	struct mrs_image_reader img;
	const char **target; /* per block: where it goes */
	bool *named;	     /* per block: the caller gave the target, the image did not */
	struct mrs_ram_map *dst;
	uint32_t nprobed; /* dst[0..nprobed) hold an open or probed target */
	struct mrs_chanset *cs;
	bool ram_done; /* every target was loaded and flushed */
};

/*
 * A recorded path the restore can take by itself: none (a memfd's snapshot
 * records none), or a descriptor of a process (/proc/PID/fd/N, recorded by
 * older snapshots of a memfd) are no file to restore into: that memfd is
 * gone, or is a running process's memory.
 */
static int check_recorded_name(const struct mrs_block_header *bh, struct mrs_error *err)
{
	char who[128];
	int pid;

	if (!bh->path[0])
		return mrs_err(err, -MRS_EUSAGE,
			       "block '%s' has no recorded path (a snapshot of a memfd records "
			       "none); give one with --ram %s=PATH, or restore into a QEMU with "
			       "--qmp",
			       bh->name, bh->name);
	if (!mrs_ram_is_proc_fd(bh->path, &pid))
		return 0;
	mrs_ram_describe_process(pid, who, sizeof(who));
	return mrs_err(err, -MRS_EUSAGE,
		       "the image records '%s' for block '%s', a descriptor of %s (a memfd): that "
		       "memfd is gone or is a running process's memory, no file to restore "
		       "into; give a target with --ram %s=PATH, or restore into a QEMU with --qmp",
		       bh->path, bh->name, who, bh->name);
}

/* Where each block goes: the path given for its name, else the recorded one. */
static int resolve_targets(struct restore *r, const struct mrs_ram *t, unsigned nt,
			   struct mrs_error *err)
{
	const struct mrs_image_meta *m = &r->img.meta;
	uint32_t n = m->sb.block_count;

	r->target = calloc(n, sizeof(*r->target));
	r->named = calloc(n, sizeof(*r->named));
	if (!r->target || !r->named)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < nt; i++) {
		uint32_t b = 0;

		while (b < n && strcmp(m->blocks[b].name, t[i].name))
			b++;
		if (b == n) {
			char names[512];

			mrs_meta_block_names(m, names, sizeof(names));
			return mrs_err(err, -MRS_EUSAGE,
				       "the image has no block named '%s' (it has: %s)", t[i].name,
				       names);
		}
		if (r->target[b])
			return mrs_err(err, -MRS_EUSAGE, "block '%s' is given twice", t[i].name);
		r->target[b] = t[i].path;
		r->named[b] = true;
	}
	for (uint32_t b = 0; b < n; b++) {
		int ret = 0;

		if (!r->target[b]) {
			r->target[b] = m->blocks[b].path;
			ret = check_recorded_name(&m->blocks[b], err);
		}
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * A path the image recorded is the image's word, not the user's: an
 * untrusted image must not choose what gets created, cut or cleared. It is
 * used only if it is a regular file of exactly the block's size (what a
 * snapshot of that block left); a missing one is created only with force; a
 * device only ever when named.
 */
static int check_recorded(const struct mrs_ram_map *t, bool force, struct mrs_error *err)
{
	/*
	 * Not even a new file: run as root, an image from someone else could
	 * otherwise create one with bytes of its choosing anywhere (a cron or
	 * sudoers drop-in directory).
	 */
	if (!t->exists && !force)
		return mrs_err(err, -ENOENT,
			       "the image records '%s' for block '%s', which does not exist: "
			       "restore creates a file only where it is told to, with --ram %s=%s "
			       "(or --force)",
			       t->path, t->name, t->name, t->path);
	if (!t->exists)
		return 0;
	if (t->blockdev)
		return mrs_err(err, -EPERM,
			       "the image records '%s' for block '%s', a block device: a device is "
			       "written only when named, with --ram %s=%s",
			       t->path, t->name, t->name, t->path);
	if (t->have != t->size && !force)
		return mrs_err(err, -EEXIST,
			       "the image records '%s' for block '%s', a file of %" PRIu64
			       " bytes, not the block's %" PRIu64
			       ": name it with --ram %s=%s to overwrite it, or use --force",
			       t->path, t->name, t->have, t->size, t->name, t->path);
	return 0;
}

static int refuse_twice(const struct mrs_ram_map *a, const struct mrs_ram_map *b,
			struct mrs_error *err)
{
	if (!strcmp(a->path, b->path))
		return mrs_err(err, -MRS_EUSAGE,
			       "blocks '%s' and '%s' would both be restored to one file ('%s'); "
			       "give each its own with --ram",
			       a->name, b->name, a->path);
	return mrs_err(err, -MRS_EUSAGE,
		       "blocks '%s' and '%s' would both be restored to one file ('%s' and '%s' "
		       "are the same); give each its own with --ram",
		       a->name, b->name, a->path, b->path);
}

/*
 * A VMM waiting for incoming state (mrs_restore_opts.vmm_pid) maps its RAM
 * already: a target only it maps is its own backend, and is accepted; but
 * not resized under it (pages past a shrunk end are SIGBUS in the VMM).
 */
static int check_mapped(struct restore *r, const struct mrs_ram_map *t, struct mrs_error *err)
{
	int vmm = r->opts->vmm_pid;
	int pid = t->exists && !r->opts->force ? mrs_ram_mapped_by(t->dev, t->ino, vmm) : 0;

	char who[128];

	if (pid)
		mrs_ram_describe_process(pid, who, sizeof(who));
	if (pid && vmm)
		return mrs_err(err, -EBUSY,
			       "target '%s' of block '%s' is the memory of a running process, %s, "
			       "not only of the VMM (pid %d): the snapshot's source still running "
			       "with the same mem-path? Writing it would overwrite that guest's "
			       "RAM; give the new VMM its own mem-path (--force writes it anyway, "
			       "into both)",
			       t->path, t->name, who, vmm);
	if (pid)
		return mrs_err(err, -EBUSY,
			       "target '%s' of block '%s' is the memory of a running process, %s: "
			       "writing it would overwrite that guest's RAM; start the new QEMU "
			       "with another mem-path and restore there, or into it with --qmp "
			       "(--force writes it anyway, under the running guest)",
			       t->path, t->name, who);
	if (vmm && t->exists && !t->blockdev && t->have != t->size &&
	    mrs_ram_mapped_by_pid(vmm, t->dev, t->ino))
		return mrs_err(err, -EINVAL,
			       "target '%s' of block '%s' is %" PRIu64 " bytes, the block %" PRIu64
			       ": the VMM (pid %d) maps it, and would lose its memory if it were "
			       "resized",
			       t->path, t->name, t->have, t->size, vmm);
	return 0;
}

/*
 * Whether path is /proc/VMM/fd/N, one of the VMM's own descriptors (a
 * memfd backend has no other name): a symlink, followed without force.
 */
static bool is_vmm_fd(const char *path, int vmm)
{
	int pid, fd, end = 0;

	return vmm > 0 && sscanf(path, "/proc/%d/fd/%d%n", &pid, &fd, &end) == 2 && !path[end] &&
	       pid == vmm && fd >= 0;
}

/* The rules for one probed target, and that no earlier block goes to the same file. */
static int check_target(struct restore *r, uint32_t b, struct mrs_error *err)
{
	const struct mrs_ram_map *t = &r->dst[b];
	int ret;

	if (t->exists && t->dev == r->img.dev && t->ino == r->img.ino)
		return mrs_err(err, -EINVAL, "target '%s' of block '%s' is the image itself",
			       t->path, t->name);
	for (uint32_t o = 0; o < b; o++)
		if (mrs_ram_same_target(&r->dst[o], t))
			return refuse_twice(&r->dst[o], t, err);
	if (!r->named[b]) {
		ret = check_recorded(t, r->opts->force, err);
		if (ret)
			return ret;
	}
	/* Followed as the VMM's own, it must be its memory, not any file it has open. */
	if (r->named[b] && !r->opts->force && is_vmm_fd(t->path, r->opts->vmm_pid) &&
	    !mrs_ram_mapped_by_pid(r->opts->vmm_pid, t->dev, t->ino))
		return mrs_err(
		    err, -EINVAL,
		    "target '%s' of block '%s' is a descriptor the VMM (pid %d) does not "
		    "map: not its RAM (a disk image?); use --force to write it anyway",
		    t->path, t->name, r->opts->vmm_pid);
	return check_mapped(r, t, err);
}

/* Every target probed (opened if it exists, nothing changed) and checked. */
static int check_targets(struct restore *r, struct mrs_error *err)
{
	const struct mrs_image_meta *m = &r->img.meta;
	uint32_t n = m->sb.block_count;

	r->dst = calloc(n, sizeof(*r->dst));
	if (!r->dst)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (uint32_t b = 0; b < n; b++) {
		bool follow =
		    r->opts->force || (r->named[b] && is_vmm_fd(r->target[b], r->opts->vmm_pid));
		int ret = mrs_ram_probe_target(&r->dst[b], m->blocks[b].name, r->target[b],
					       m->blocks[b].size, follow, err);

		if (ret)
			return mrs_err_prefix(err, "block '%s'", m->blocks[b].name);
		r->nprobed = b + 1;
		ret = check_target(r, b, err);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Room for the pages, checked before anything changes: a restore that ran
 * out of space half-way would have cleared an existing target for nothing.
 * Targets on one filesystem (same device) share its free space; what a
 * target holds now is given back when it is cleared. Block devices are
 * sized already. force skips this (free space can be reserved or change).
 */
static int check_space(struct restore *r, struct mrs_error *err)
{
	const struct mrs_image_meta *m = &r->img.meta;

	for (uint32_t b = 0; !r->opts->force && b < r->nprobed; b++) {
		uint64_t need = 0, room = 0, freed_all = 0;
		bool first = true;

		if (r->dst[b].blockdev)
			continue;
		for (uint32_t o = 0; o < r->nprobed; o++) {
			uint64_t freed, free_now;
			int ret;

			if (r->dst[o].blockdev || r->dst[o].dev != r->dst[b].dev)
				continue;
			if (o < b)
				break; /* this filesystem was checked with block o */
			ret = mrs_ram_target_room(&r->dst[o], &free_now, &freed, err);
			if (ret)
				return ret;
			if (first)
				room = free_now;
			first = false;
			freed_all += freed;
			need += m->blocks[o].pages_present * m->blocks[o].page_size;
		}
		/* Saturating: room is UINT64_MAX where it is not counted (hugetlbfs). */
		room = room > UINT64_MAX - freed_all ? UINT64_MAX : room + freed_all;
		if (!first && need > room)
			return mrs_err(err, -ENOSPC,
				       "target '%s' of block '%s': its filesystem has %" PRIu64
				       " bytes free, and the pages to restore there take %" PRIu64
				       "; nothing was written (--force tries anyway)",
				       r->dst[b].path, r->dst[b].name, room, need);
	}
	return 0;
}

/*
 * With a sink, the image must hold device state, and it must match its
 * checksum: checked before any target changes, so a damaged one costs
 * nothing. Without a sink it is not read (the report says it was skipped).
 */
static int check_devstate(struct restore *r, struct mrs_error *err)
{
	const struct mrs_stream_info *st = &r->img.meta.stream;
	int ret;

	if (!r->opts->devstate)
		return 0;
	ret = mrs_devstate_sink_check(r->opts->devstate, err);
	if (ret)
		return ret;
	if (!st->has_device)
		return mrs_err(err, -MRS_EUSAGE, "'%s' holds no device state to load (RAM only)",
			       r->img.path);
	ret = mrs_devstate_check(r->img.fd, &st->device, &r->io, err);
	if (ret)
		mrs_err_prefix(err, "'%s'", r->img.path);
	if (ret == -EBADMSG)
		mrs_err_suffix(err, "; nothing was written");
	return ret;
}

/* The last step, after all RAM is in place: the VMM loads its device state. */
static int load_devstate(struct restore *r, struct mrs_error *err)
{
	if (!r->opts->devstate)
		return 0;
	return mrs_devstate_load(r->opts->devstate, r->img.fd, &r->img.meta.stream.device, &r->io,
				 err);
}

/* The first change to the outside world: targets created, sized, cleared. */
static int prepare_targets(struct restore *r, struct mrs_error *err)
{
	for (uint32_t b = 0; b < r->nprobed; b++) {
		int ret = mrs_ram_prepare_target(&r->dst[b], err);

		if (ret)
			return mrs_err_prefix(err, "block '%s'", r->dst[b].name);
		r->img.cb[b].fd = r->dst[b].fd;
		r->img.cb[b].path = r->target[b];
		r->img.cb[b].mem = r->dst[b].mem;
	}
	return 0;
}

static int load(struct restore *r, struct mrs_error *err)
{
	struct mrs_pass pass = {
	    .cs = r->cs,
	    .blocks = r->img.cb,
	    .pages = r->img.pages,
	    .nblocks = r->img.meta.sb.block_count,
	    .ops = &mrs_load_ops,
	    .flags = r->opts->verify ? MRS_JOB_CHECK : 0,
	    .phase = "restore",
	    .io = &r->io,
	    .channels = r->io.channels,
	};

	if (r->opts->clone) /* restore --clone: no page is read (clone_restore.c) */
		return mrs_clone_blocks(&r->img, r->dst, r->nprobed, err);
	return mrs_pass_run(&pass, err);
}

/* Loaded is not restored until it is durable: a failed flush fails the restore. */
static int flush_targets(struct restore *r, struct mrs_error *err)
{
	for (uint32_t b = 0; b < r->nprobed; b++) {
		int ret = mrs_ram_flush(&r->dst[b], err);

		if (ret)
			return ret;
	}
	return 0;
}

/*
 * After a failure (and once the channels are closed): remove the targets
 * that were created, name those that existed and were changed.
 */
static void undo_targets(struct restore *r, struct mrs_error *err)
{
	unsigned partly = 0;

	for (uint32_t b = 0; b < r->nprobed; b++) {
		struct mrs_ram_map *t = &r->dst[b];

		if (t->created)
			mrs_ram_discard_target(t);
		else if (t->changed)
			partly++;
	}
	for (uint32_t b = 0, i = 0; partly && b < r->nprobed; b++) {
		struct mrs_ram_map *t = &r->dst[b];

		if (t->created || !t->changed)
			continue;
		mrs_err_suffix(err,
			       i++	     ? ", '%s'"
			       : partly == 1 ? "; target '%s'"
					     : "; targets '%s'",
			       t->path);
	}
	if (partly)
		mrs_err_suffix(err, "%s",
			       partly == 1 ? " was partly written" : " were partly written");
}

/*
 * The report of a restore that succeeded. Running out of memory here costs
 * only the block list (NULL), never the restore.
 */
static void fill_report(struct restore *r, uint64_t start, struct mrs_restore_report *report)
{
	struct mrs_chan_stats st;
	uint32_t n = r->img.meta.sb.block_count;

	memset(&st, 0, sizeof(st));
	if (r->cs) /* none for a clone without verify */
		mrs_chanset_stats(r->cs, &st);
	memset(report, 0, sizeof(*report));
	report->channels = r->io.channels;
	report->nblocks = n;
	report->blocks = calloc(n, sizeof(*report->blocks));
	for (uint32_t b = 0; b < n; b++) {
		struct mrs_block_info *bi = &report->blocks[b];

		report->pages_total += r->img.meta.blocks[b].page_count;
		if (!report->blocks)
			continue;
		mrs_block_to_info(&r->img.meta.blocks[b], bi);
		/* Where it went, not where it came from. */
		snprintf(bi->path, sizeof(bi->path), "%s", r->dst[b].path);
		bi->created = r->dst[b].created;
	}
	report->pages_read = st.pages_read;
	report->bytes_read = st.bytes_read;
	report->io_requests = st.requests;
	report->io_resubmits = st.resubmits;
	report->duration_ns = mrs_now_ns() - start;
	if (r->img.meta.stream.has_device && r->opts->devstate)
		report->devstate_bytes = r->img.meta.stream.device.length;
	report->devstate_skipped = r->img.meta.stream.has_device && !r->opts->devstate;
	memcpy(report->devstate_producer, r->img.meta.stream.device.producer,
	       sizeof(report->devstate_producer));
	report->cloned = r->opts->clone;
}

int mrs_engine_restore(const char *path, const struct mrs_ram *targets, unsigned ntargets,
		       const struct mrs_restore_opts *opts, struct mrs_restore_report *report,
		       struct mrs_error *err)
{
	struct restore r = {.opts = opts};
	uint64_t start = mrs_now_ns();
	int ret;

	if (report)
		memset(report, 0, sizeof(*report));
	r.img.fd = -1;
	/* Acquire and validate: nothing outside this process changes. */
	ret = mrs_io_opts_resolve(r.opts->io, &r.io, err);
	if (!ret)
		ret = mrs_image_reader_open(&r.img, path, 0, err);
	if (!ret)
		ret = mrs_image_reader_blocks(&r.img, err);
	if (!ret)
		ret = resolve_targets(&r, targets, ntargets, err);
	if (!ret)
		ret = check_targets(&r, err);
	/* A clone takes no room, but has rules of its own (clone_restore.c). */
	if (!ret)
		ret = r.opts->clone ? mrs_clone_check(&r.img, r.dst, r.nprobed, err)
				    : check_space(&r, err);
	if (!ret)
		ret = check_devstate(&r, err);
	/* A clone reads no page, unless it verifies them first. */
	if (!ret && (!r.opts->clone || r.opts->verify))
		ret = mrs_image_reader_channels(&r.img, &r.io, &r.cs, err);
	if (!ret && r.opts->clone && r.opts->verify)
		ret = mrs_clone_verify(&r.img, r.cs, &r.io, err);
	/* Change: from here on a failure has to be undone or named. */
	if (!ret)
		ret = prepare_targets(&r, err);
	if (!ret)
		ret = load(&r, err);
	if (!ret)
		ret = flush_targets(&r, err);
	r.ram_done = !ret;
	if (!ret)
		ret = load_devstate(&r, err);
	if (!ret && report)
		fill_report(&r, start, report);
	mrs_chanset_close(r.cs); /* before the targets: channels may still write to them */
	/* The RAM is whole in its targets: say so, and keep them. */
	if (ret && r.ram_done)
		mrs_err_suffix(err,
			       "; the RAM targets were written, the device state was not loaded");
	else if (ret)
		undo_targets(&r, err);
	for (uint32_t b = 0; b < r.nprobed; b++)
		mrs_ram_close(&r.dst[b]);
	free(r.dst);
	free(r.target);
	free(r.named);
	mrs_image_reader_close(&r.img);
	return ret;
}

void mrs_engine_restore_report_free(struct mrs_restore_report *report)
{
	if (!report)
		return;
	free(report->blocks);
	report->blocks = NULL;
	report->nblocks = 0;
}
