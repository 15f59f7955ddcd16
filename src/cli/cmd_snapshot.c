/* SPDX-License-Identifier: MIT */
/* mrsnap snapshot: write RAM blocks into a new image, paused, frozen or live. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: mrsnap snapshot [OPTIONS] IMAGE --ram NAME=PATH[,size=BYTES] [--ram ...]\n"
    "       mrsnap snapshot --qmp SOCKET [--live] [--paused] [OPTIONS] IMAGE\n"
    "Write the RAM of a virtual machine into a new image file: paused (the default),\n"
    "frozen by mrsnap for the whole pass, or live, frozen only for a final round.\n"
    "\n"
    "  --ram NAME=PATH     a RAM block and the file or block device behind it;\n"
    "                      ,size=BYTES uses only the first BYTES (K, M, G, T suffixes)\n"
    "  -j, --channels N    I/O channels (threads with an io_uring each), 1-64;\n"
    "                      default: the number of online CPUs\n"
    "      --depth N       requests in flight per channel (default 32)\n"
    "      --direct        O_DIRECT for page data (bypasses the page cache)\n"
    "      --base OLD      start from OLD, an earlier image of the same blocks: IMAGE\n"
    "                      shares OLD's extents (XFS with reflink, btrfs) and gets\n"
    "                      only the pages that changed; OLD is only read, and may\n"
    "                      be deleted afterwards (elsewhere: a full snapshot, and a\n"
    "                      notice); with --qmp too, QEMU's blocks against OLD's\n"
    "      --force         replace an existing IMAGE\n"
    "      --no-fsync      do not fsync: faster, but a power loss may damage the image\n"
    "      --json          print a summary as JSON on stdout\n"
    "  -q, --quiet         print nothing but errors\n"
    "      --progress      show progress even when stderr is not a terminal\n"
    "      --no-progress   never show progress\n"
    "  -h, --help          show this help\n"
    "\n"
    "Freezing the guest (any of them, together):\n"
    "      --freeze-pid PID    SIGSTOP/SIGCONT a process (repeatable)\n"
    "      --freeze-cgroup DIR freeze a cgroup (v2 cgroup.freeze or v1 freezer)\n"
    "      --freeze-cmd CMD    run CMD through /bin/sh to freeze ...\n"
    "      --thaw-cmd CMD      ... and CMD to thaw (both or neither)\n"
    "      --leave-frozen      after a good snapshot, leave the guest frozen (to\n"
    "                          kill it); on failure it is thawed all the same\n"
    "QEMU (RAM and device state, one image):\n"
    "      --qmp SOCKET        QEMU's QMP socket: its memory backends are the blocks\n"
    "                          (--ram may still name or replace them), the guest is\n"
    "                          frozen with stop and cont, and its device state saved\n"
    "      --paused            after a good snapshot, leave the guest paused; on\n"
    "                          failure it is resumed all the same\n"
    "Live snapshots (need --qmp or a freeze option):\n"
    "      --live              copy memory in rounds while the guest runs\n"
    "      --downtime MS       end the rounds once the frozen round (a scan of all\n"
    "                          RAM, and the writes of one round) is expected to take\n"
    "                          at most MS milliseconds (default 300)\n"
    "      --max-rounds N      at most N rounds, the frozen one included (default 30)\n"
    "\n"
    "The image is written to a temporary file next to IMAGE (mode 0600) and renamed\n"
    "into place once complete. A frozen guest is thawed whatever happens\n"
    "(SIGINT, SIGTERM, SIGHUP, ... included), and left as it was if it was\n"
    "stopped or frozen before.\n"
    "Exit status: 0 ok, 2 usage, 3 failed, 4 the image is in place but its directory\n"
    "could not be synced. See mrsnap(1).\n";

enum {
	OPT_FORCE = 256,
	OPT_NO_FSYNC,
	OPT_RAM,
	OPT_LIVE,
	OPT_DOWNTIME,
	OPT_MAX_ROUNDS,
	OPT_FREEZE_PID,
	OPT_FREEZE_CGROUP,
	OPT_FREEZE_CMD,
	OPT_THAW_CMD,
	OPT_LEAVE_FROZEN,
	OPT_BASE,
	OPT_QMP,
	OPT_PAUSED,
};

static const struct option options[] = {
    {"ram", required_argument, NULL, OPT_RAM},
    {"force", no_argument, NULL, OPT_FORCE},
    {"no-fsync", no_argument, NULL, OPT_NO_FSYNC},
    {"live", no_argument, NULL, OPT_LIVE},
    {"downtime", required_argument, NULL, OPT_DOWNTIME},
    {"max-rounds", required_argument, NULL, OPT_MAX_ROUNDS},
    {"freeze-pid", required_argument, NULL, OPT_FREEZE_PID},
    {"freeze-cgroup", required_argument, NULL, OPT_FREEZE_CGROUP},
    {"freeze-cmd", required_argument, NULL, OPT_FREEZE_CMD},
    {"thaw-cmd", required_argument, NULL, OPT_THAW_CMD},
    {"leave-frozen", no_argument, NULL, OPT_LEAVE_FROZEN},
    {"base", required_argument, NULL, OPT_BASE},
    {"qmp", required_argument, NULL, OPT_QMP},
    {"paused", no_argument, NULL, OPT_PAUSED},
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* What the command line asked for. */
struct args {
	struct cli_common c;
	struct mrs_save_opts opts;
	const char *image;
	struct mrs_ram *ram;
	unsigned nram;
	int *pids;
	unsigned npids;
	const char *cgroup, *freeze_cmd, *thaw_cmd;
	struct mrs_freezer *freezers[4];
	unsigned nfreezers;
	const char *qmp; /* QEMU's QMP socket */
	bool paused;
	struct mrs_qemu *qemu;
	struct mrs_devstate_source devstate;
	const struct mrs_ram *blocks; /* what is saved: a->ram, or QEMU's backends with them */
	unsigned nblocks;
};

static bool add_ram(struct args *a, char *spec)
{
	if (!cli_parse_ram("snapshot", spec, &a->ram[a->nram]))
		return false;
	for (unsigned i = 0; i < a->nram; i++)
		if (!strcmp(a->ram[i].name, a->ram[a->nram].name)) {
			cli_usage_error("snapshot", "block name '%s' is given twice",
					a->ram[i].name);
			return false;
		}
	a->nram++;
	return true;
}

/* One option; false (after a message) on a usage error. */
static bool parse_option(struct args *a, int opt)
{
	unsigned v;

	switch (opt) {
	case OPT_RAM:
		return add_ram(a, optarg);
	case OPT_DOWNTIME:
		return cli_parse_uint("snapshot", "--downtime", optarg, 1, 3600000,
				      &a->opts.downtime_ms);
	case OPT_MAX_ROUNDS:
		return cli_parse_uint("snapshot", "--max-rounds", optarg, 2, 100000,
				      &a->opts.max_rounds);
	case OPT_FREEZE_PID:
		if (!cli_parse_uint("snapshot", "--freeze-pid", optarg, 1, 0x7fffffff, &v))
			return false;
		a->pids[a->npids++] = (int)v;
		return true;
	case OPT_FREEZE_CGROUP:
		a->cgroup = optarg;
		return true;
	case OPT_FREEZE_CMD:
		a->freeze_cmd = optarg;
		return true;
	case OPT_THAW_CMD:
		a->thaw_cmd = optarg;
		return true;
	case OPT_LIVE:
		a->opts.live = 1;
		return true;
	case OPT_LEAVE_FROZEN:
		a->opts.leave_frozen = 1;
		return true;
	case OPT_QMP:
		a->qmp = optarg;
		return true;
	case OPT_PAUSED:
		a->paused = true;
		return true;
	case OPT_FORCE:
		a->opts.force = 1;
		return true;
	case OPT_BASE:
		a->opts.base = optarg;
		return true;
	case OPT_NO_FSYNC:
		a->opts.no_fsync = 1;
		return true;
	default:
		switch (cli_common_option("snapshot", opt, optarg, &a->c)) {
		case 1:
			return true;
		case 0:
			cli_bad_option("snapshot");
		}
		return false;
	}
}

/* Checks across options, once all are read. */
static bool check_args(struct args *a, int argc, char **argv)
{
	if (optind + 1 != argc) {
		cli_usage_error("snapshot",
				optind == argc ? "IMAGE is missing" : "one IMAGE only, not '%s'",
				argv[argc - 1]);
		return false;
	}
	a->image = argv[optind];
	if (!cli_check_image("snapshot", a->image))
		return false;
	if (a->opts.base && !*a->opts.base) {
		cli_usage_error("snapshot", "--base is an empty path");
		return false;
	}
	if (!a->nram && !a->qmp) {
		cli_usage_error("snapshot",
				"give at least one --ram NAME=PATH, or QEMU's --qmp SOCKET");
		return false;
	}
	if (a->paused && !a->qmp) {
		cli_usage_error("snapshot", "--paused is for --qmp (elsewhere: --leave-frozen)");
		return false;
	}
	if (!a->freeze_cmd != !a->thaw_cmd) {
		cli_usage_error("snapshot", "--freeze-cmd and --thaw-cmd go together");
		return false;
	}
	if (a->opts.live && !a->npids && !a->cgroup && !a->freeze_cmd && !a->qmp) {
		cli_usage_error("snapshot",
				"--live needs a way to freeze the guest for the final "
				"round: --qmp, --freeze-pid, --freeze-cgroup or --freeze-cmd");
		return false;
	}
	if (a->opts.leave_frozen && !a->npids && !a->cgroup && !a->freeze_cmd && !a->qmp) {
		cli_usage_error("snapshot", "--leave-frozen needs a way to freeze the guest: "
					    "--freeze-pid, --freeze-cgroup or --freeze-cmd");
		return false;
	}
	if (!a->opts.live && (a->opts.downtime_ms || a->opts.max_rounds)) {
		cli_usage_error("snapshot", "--downtime and --max-rounds are for --live");
		return false;
	}
	return true;
}

/*
 * QEMU's RAM, its freezer (first: stopped first, resumed last) and its
 * device state. Nothing is changed in QEMU but its migration capabilities.
 */
static int connect_qemu(struct args *a, struct mrs_error *err)
{
	int ret = mrs_qemu_connect(&a->qemu, a->qmp, NULL, err);

	if (!ret)
		ret = mrs_qemu_ram(a->qemu, a->ram, a->nram, &a->blocks, &a->nblocks, err);
	if (!ret)
		ret = mrs_qemu_check_mapped(a->qemu, a->blocks, a->nblocks, err);
	if (!ret)
		ret = mrs_qemu_freezer(a->qemu, &a->freezers[a->nfreezers++], err);
	if (!ret)
		ret = mrs_qemu_devstate_source(a->qemu, &a->devstate, err);
	if (!ret) {
		a->opts.devstate = &a->devstate;
		a->opts.leave_frozen = a->opts.leave_frozen || a->paused;
	}
	return ret;
}

static int make_freezers(struct args *a, struct mrs_error *err)
{
	int ret = 0;

	a->blocks = a->ram;
	a->nblocks = a->nram;
	if (a->qmp)
		ret = connect_qemu(a, err);
	if (!ret && a->npids)
		ret = mrs_freezer_new_pids(&a->freezers[a->nfreezers++], a->pids, a->npids, err);
	if (!ret && a->cgroup)
		ret = mrs_freezer_new_cgroup(&a->freezers[a->nfreezers++], a->cgroup, err);
	if (!ret && a->freeze_cmd)
		ret = mrs_freezer_new_commands(&a->freezers[a->nfreezers++], a->freeze_cmd,
					       a->thaw_cmd, err);
	a->opts.freezers = a->freezers;
	a->opts.nfreezers = a->nfreezers;
	return ret;
}

/*
 * With --base, when blocks could not share the base's extents: why, and what
 * it cost (NULL if there is nothing to say). One sentence, for stderr and
 * the JSON alike.
 */
static const char *base_notice(const struct args *a, const struct mrs_save_report *r, char *buf,
			       size_t len)
{
	const char *why;
	char blocks[64];

	if (!a->opts.base || !r->base_refusal)
		return NULL;
	switch (r->base_refusal) {
	case -EXDEV:
		why = "they are on different filesystems";
		break;
	case -EINVAL:
		why = "the filesystem cannot clone these regions";
		break;
	default:
		why = "the filesystem does not share extents; XFS with reflink and btrfs do";
	}
	if (r->base_blocks_shared)
		snprintf(blocks, sizeof(blocks), "%u of %u blocks were",
			 a->nblocks - r->base_blocks_shared, a->nblocks);
	else
		snprintf(blocks, sizeof(blocks), "%s",
			 a->nblocks == 1 ? "it was" : "every block was");
	snprintf(buf, len,
		 "'%s' cannot share extents with its base '%s' (%s: %s): %s written in full, as "
		 "without --base",
		 a->image, a->opts.base, why, strerror(-r->base_refusal), blocks);
	return buf;
}

static void json_base(struct json *j, const struct args *a, const struct mrs_save_report *r)
{
	char buf[1024];
	const char *notice = base_notice(a, r, buf, sizeof(buf));

	if (!a->opts.base) {
		jw_null(j, "base");
		return;
	}
	jw_object(j, "base");
	jw_str(j, "path", a->opts.base);
	jw_bool(j, "shared", r->base_blocks_shared == a->nblocks);
	jw_u64(j, "blocks_shared", r->base_blocks_shared);
	jw_u64(j, "pages_reused", r->base_pages_reused);
	if (notice)
		jw_str(j, "notice", notice);
	else
		jw_null(j, "notice");
	jw_close(j);
}

/* After a good snapshot, QEMU's guest is paused: asked for, or found so. */
static bool guest_left_paused(const struct args *a)
{
	return a->paused || mrs_qemu_paused_before(a->qemu);
}

/* "devstate" (null without one), "warning" (null if none), and QEMU's guest. */
static void print_json_devstate(struct json *j, const struct args *a,
				const struct mrs_save_report *r)
{
	const char *warning = a->qemu ? mrs_qemu_warning(a->qemu) : NULL;

	if (!a->opts.devstate) {
		jw_null(j, "devstate");
	} else {
		jw_object(j, "devstate");
		jw_u64(j, "bytes", r->devstate_bytes);
		jw_str(j, "producer", a->devstate.producer);
		if (a->devstate.machine)
			jw_str(j, "machine", a->devstate.machine);
		else
			jw_null(j, "machine");
		jw_seconds(j, "seconds", cli_seconds(r->devstate_ns));
		jw_close(j);
	}
	if (warning)
		jw_str(j, "warning", warning);
	else
		jw_null(j, "warning");
	/* QEMU's guest as the snapshot left it: null without --qmp. */
	if (a->qemu) {
		jw_str(j, "guest_state", guest_left_paused(a) ? "paused" : "running");
		jw_bool(j, "guest_paused_before", mrs_qemu_paused_before(a->qemu));
	} else {
		jw_null(j, "guest_state");
		jw_null(j, "guest_paused_before");
	}
}

/* The summary; err is NULL on success, else what went wrong after the rename. */
static void print_json(const struct args *a, const struct mrs_save_report *r,
		       const struct mrs_error *err)
{
	struct json j;

	cli_json_begin_doc(&j, !err);
	if (err)
		cli_json_error(&j, err->msg, err->code, EXIT_NOT_DURABLE);
	jw_bool(&j, "live", a->opts.live);
	jw_u64(&j, "channels", r->channels);
	jw_bool(&j, "direct", a->c.io.direct);
	cli_json_blocks(&j, r->blocks, r->nblocks, CLI_BLOCKS_COUNTED);
	cli_json_rounds(&j, r->rounds, r->nrounds);
	jw_str(&j, "stop_reason", mrs_stop_reason_name(r->stop_reason));
	jw_seconds(&j, "downtime_seconds", cli_seconds(r->downtime_ns));
	jw_seconds(&j, "estimated_downtime_seconds", cli_seconds(r->estimated_downtime_ns));
	jw_u64(&j, "pages_total", r->pages_total);
	jw_u64(&j, "pages_present", r->pages_present);
	jw_u64(&j, "pages_zero", r->pages_total - r->pages_present);
	jw_u64(&j, "pages_skipped", r->pages_skipped);
	jw_u64(&j, "pages_written", r->pages_written);
	jw_u64(&j, "written_bytes", r->bytes_written);
	json_base(&j, a, r);
	jw_u64(&j, "io_requests", r->io_requests);
	jw_u64(&j, "io_resubmits", r->io_resubmits);
	jw_u64(&j, "image_size_bytes", r->image_size);
	jw_u64(&j, "stale_temporary_files_removed", r->stale_removed);
	jw_seconds(&j, "duration_seconds", cli_seconds(r->duration_ns));
	print_json_devstate(&j, a, r);
	jw_end(&j);
}

static void print_summary(const struct args *a, const struct mrs_save_report *r)
{
	char written[32], rate[32];
	double s = cli_seconds(r->duration_ns);

	cli_fmt_bytes(written, sizeof(written), r->bytes_written);
	cli_fmt_bytes(rate, sizeof(rate), s > 0 ? (uint64_t)((double)r->bytes_written / s) : 0);
	printf("%s: %u block%s, %llu pages, %llu present, %llu zero; wrote %s in %.2f s, %s/s\n",
	       a->image, a->nblocks, a->nblocks == 1 ? "" : "s", (unsigned long long)r->pages_total,
	       (unsigned long long)r->pages_present,
	       (unsigned long long)(r->pages_total - r->pages_present), written, s, rate);
	if (a->opts.base)
		printf("%s: base '%s': %llu pages reused, %llu written\n", a->image, a->opts.base,
		       (unsigned long long)r->base_pages_reused,
		       (unsigned long long)r->pages_written);
	if (r->stale_removed)
		printf("%s: removed %u temporary file%s left by a snapshot that did not finish\n",
		       a->image, r->stale_removed, r->stale_removed == 1 ? "" : "s");
	if (a->opts.live)
		printf("%s: live: %u rounds (%s), downtime %.1f ms (estimated %.1f ms)\n", a->image,
		       r->nrounds, mrs_stop_reason_name(r->stop_reason),
		       cli_seconds(r->downtime_ns) * 1e3,
		       cli_seconds(r->estimated_downtime_ns) * 1e3);
	else if (a->nfreezers && !a->opts.leave_frozen && !(a->qemu && guest_left_paused(a)))
		printf("%s: guest frozen for %.1f ms\n", a->image,
		       cli_seconds(r->downtime_ns) * 1e3);
	if (a->opts.devstate) {
		/* QEMU's own words: shown, never raw (cli_visible). */
		char producer[CLI_VISIBLE(64)], machine[CLI_VISIBLE(64)];

		printf("%s: device state: %llu bytes from %s%s%s, %.1f ms\n", a->image,
		       (unsigned long long)r->devstate_bytes,
		       cli_visible(producer, sizeof(producer), a->devstate.producer),
		       a->devstate.machine ? ", machine " : "",
		       a->devstate.machine
			   ? cli_visible(machine, sizeof(machine), a->devstate.machine)
			   : "",
		       cli_seconds(r->devstate_ns) * 1e3);
	}
	if (a->qemu && mrs_qemu_paused_before(a->qemu))
		printf("%s: the guest was paused before mrsnap came and is left paused (QMP "
		       "'cont' resumes it)\n",
		       a->image);
	else if (a->paused)
		printf("%s: the guest is left paused (--paused)\n", a->image);
	else if (a->opts.leave_frozen)
		printf("%s: the guest is left frozen (--leave-frozen)\n", a->image);
}

/* Live, one line per round on stderr as it ends (unless -q or --json). */
static void round_done(void *ctx, const struct mrs_round_info *r)
{
	char bytes[32];

	cli_progress_done();
	cli_fmt_bytes(bytes, sizeof(bytes), r->bytes_written);
	fprintf(
	    stderr,
	    "round %u%s: %llu pages scanned, %llu dirty, %llu written, %llu zeroed, %s, %.3f s\n",
	    r->number, r->frozen ? " (frozen)" : "", (unsigned long long)r->pages_scanned,
	    (unsigned long long)r->pages_dirty, (unsigned long long)r->pages_written,
	    (unsigned long long)r->pages_zeroed, bytes, cli_seconds(r->duration_ns));
}

static int run(struct args *a)
{
	struct mrs_save_report report = MRS_SAVE_REPORT_INIT;
	struct mrs_error err = {0};
	int ret = make_freezers(a, &err);

	if (ret)
		return cli_fail(&err);
	cli_progress_setup(&a->c);
	a->opts.io = &a->c.io;
	if (a->opts.live && !a->c.quiet && !a->c.json)
		a->opts.round_done = round_done;
	ret = mrs_save(a->image, a->blocks, a->nblocks, &a->opts, &report, &err);
	cli_progress_done();
	if (a->qemu && mrs_qemu_warning(a->qemu) && !a->c.quiet)
		cli_error("warning: %s", mrs_qemu_warning(a->qemu));
	if (ret && report.not_durable) {
		cli_error("%s", err.msg);
		if (a->c.json)
			print_json(a, &report, &err);
		mrs_save_report_free(&report);
		return EXIT_NOT_DURABLE;
	}
	if (ret) {
		/* A thaw that failed after a good image fills the report too. */
		mrs_save_report_free(&report);
		return cli_report_failure(ret, &err, "; no image was written");
	}
	if (!a->c.quiet) {
		char buf[1024];
		const char *notice = base_notice(a, &report, buf, sizeof(buf));

		if (notice)
			cli_error("notice: %s", notice);
	}
	if (a->c.json)
		print_json(a, &report, NULL);
	else if (!a->c.quiet)
		print_summary(a, &report);
	mrs_save_report_free(&report);
	return EXIT_OK;
}

int cmd_snapshot(int argc, char **argv)
{
	struct args a = {.c = {.io = MRS_IO_OPTS_INIT, .progress = -1}, .opts = MRS_SAVE_OPTS_INIT};
	int opt, code = EXIT_USAGE;

	a.ram = calloc((size_t)argc, sizeof(*a.ram));
	a.pids = calloc((size_t)argc, sizeof(*a.pids));
	if (!a.ram || !a.pids)
		goto out;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, options, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			code = EXIT_OK;
			goto out;
		}
		if (!parse_option(&a, opt))
			goto out;
	}
	if (check_args(&a, argc, argv))
		code = run(&a);
out:
	for (unsigned i = 0; i < a.nfreezers; i++)
		mrs_freezer_free(a.freezers[i]);
	mrs_qemu_close(a.qemu); /* after its freezer */
	free(a.ram);
	free(a.pids);
	return code;
}
