/* SPDX-License-Identifier: MIT */
/* mrsnap restore: load an image back into RAM files. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: mrsnap restore [OPTIONS] IMAGE [--ram NAME=PATH ...]\n"
    "       mrsnap restore --qmp SOCKET [--paused] [OPTIONS] IMAGE\n"
    "Load every RAM block of IMAGE into its file, before the VMM starts; or, with\n"
    "--qmp, the RAM and device state into a QEMU started with -incoming defer.\n"
    "\n"
    "  --ram NAME=PATH     where block NAME goes; default: the path recorded in IMAGE\n"
    "      --verify        check every page against its checksum as it is loaded\n"
    "                      (with --clone: the whole image, before any target)\n"
    "      --clone         share the image's extents instead of copying (XFS with\n"
    "                      reflink, btrfs): instant at any size; every target a new\n"
    "                      or empty file on the image's filesystem, RAM then backed\n"
    "                      by that disk file, not by tmpfs (with --qmp: QEMU's\n"
    "                      file backends; a memfd backend is refused)\n"
    "  -j, --channels N    I/O channels, 1-64; default: the number of online CPUs\n"
    "      --depth N       requests in flight per channel (default 32)\n"
    "      --direct        O_DIRECT for reading page data\n"
    "      --force         allow a target that is a symbolic link, is mapped by a\n"
    "                      running process, or (recorded in IMAGE) has another size\n"
    "                      or does not exist; skip the free-space check\n"
    "      --json          print a summary as JSON on stdout\n"
    "  -q, --quiet         print nothing but errors\n"
    "      --progress      show progress even when stderr is not a terminal\n"
    "      --no-progress   never show progress\n"
    "  -h, --help          show this help\n"
    "      --qmp SOCKET    the QMP socket of a QEMU started with the image's memory\n"
    "                      backends and -incoming defer: RAM goes into its backends,\n"
    "                      then the device state, then the guest runs (cont)\n"
    "      --paused        with --qmp: leave the restored guest paused\n"
    "\n"
    "The whole image is validated and every target checked before any target is\n"
    "touched. Targets named with --ram are created if missing (mode 0600); pages\n"
    "absent from the image read as zero afterwards. A path recorded in IMAGE is\n"
    "used only if it holds a file of exactly the block's size (another size, or no\n"
    "file: --ram or --force); a device only with --ram.\n"
    "On failure, targets it created are removed and others partly written named.\n"
    "Without --qmp, device state in IMAGE is not loaded (the summary says so).\n"
    "Exit status: 0 ok, 1 damaged image or checksum mismatch, 2 usage, 3 failed.\n";

enum { OPT_FORCE = 256, OPT_VERIFY, OPT_RAM, OPT_CLONE, OPT_QMP, OPT_PAUSED };

static const struct option options[] = {
    {"ram", required_argument, NULL, OPT_RAM},
    {"verify", no_argument, NULL, OPT_VERIFY},
    {"clone", no_argument, NULL, OPT_CLONE},
    {"force", no_argument, NULL, OPT_FORCE},
    {"qmp", required_argument, NULL, OPT_QMP},
    {"paused", no_argument, NULL, OPT_PAUSED},
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* What the command line asked for. */
struct args {
	struct cli_common c;
	struct mrs_restore_opts opts;
	const char *image;
	struct mrs_ram *ram;
	unsigned nram;
	const char *qmp; /* QEMU's QMP socket */
	bool paused;
	struct mrs_qemu *qemu;
	struct mrs_devstate_sink sink;
	const struct mrs_ram *targets; /* a->ram, or QEMU's backends with them */
	unsigned ntargets;
	bool resumed;
};

/* One line on stderr: the image held more than RAM, and it was left out. */
static void note_skipped(const char *image, const struct mrs_restore_report *r)
{
	char shown_image[CLI_VISIBLE(4096)], producer[CLI_VISIBLE(sizeof(r->devstate_producer))];

	if (r->devstate_skipped)
		fprintf(stderr,
			"mrsnap restore: note: '%s' also holds device state from %s, which was "
			"not loaded (restore --qmp loads it into QEMU)\n",
			cli_visible(shown_image, sizeof(shown_image), image),
			r->devstate_producer[0]
			    ? cli_visible(producer, sizeof(producer), r->devstate_producer)
			    : "an unnamed VMM");
}

static void print_json(const struct args *a, const struct mrs_restore_report *r)
{
	struct json j;

	cli_json_begin_doc(&j, true);
	jw_u64(&j, "channels", r->channels);
	jw_bool(&j, "verified", a->opts.verify);
	jw_bool(&j, "cloned", r->cloned);
	cli_json_blocks(&j, r->blocks, r->nblocks, CLI_BLOCKS_COUNTED | CLI_BLOCKS_RESTORED);
	jw_u64(&j, "pages_total", r->pages_total);
	jw_u64(&j, "pages_read", r->pages_read);
	jw_u64(&j, "read_bytes", r->bytes_read);
	jw_u64(&j, "io_requests", r->io_requests);
	jw_u64(&j, "io_resubmits", r->io_resubmits);
	jw_seconds(&j, "duration_seconds", cli_seconds(r->duration_ns));
	jw_object(&j, "devstate");
	jw_bool(&j, "present", r->devstate_skipped || r->devstate_bytes);
	jw_bool(&j, "loaded", r->devstate_bytes > 0);
	if (r->devstate_skipped || r->devstate_bytes)
		jw_str(&j, "producer", r->devstate_producer);
	jw_close(&j);
	jw_bool(&j, "resumed", a->resumed);
	jw_end(&j);
}

static void print_report(const struct args *a, const struct mrs_restore_report *r)
{
	double s = cli_seconds(r->duration_ns);
	char bytes[32], rate[32], image[CLI_VISIBLE(4096)], name[CLI_VISIBLE(64)];
	char path[CLI_VISIBLE(sizeof(r->blocks[0].path))];

	if (a->c.json) {
		print_json(a, r);
		return;
	}
	cli_fmt_bytes(bytes, sizeof(bytes), r->bytes_read);
	/* Names and paths may be the image's own: shown, never raw (cli_visible). */
	cli_visible(image, sizeof(image), a->image);
	cli_fmt_bytes(rate, sizeof(rate), s > 0 ? (uint64_t)((double)r->bytes_read / s) : 0);
	if (r->cloned)
		printf("%s: cloned %u block%s, %llu pages, none copied (%s), %.3f s\n", image,
		       r->nblocks, r->nblocks == 1 ? "" : "s", (unsigned long long)r->pages_total,
		       a->opts.verify ? "the image verified first" : "checksums not read", s);
	else
		printf("%s: restored %u block%s, %llu of %llu pages read (%s%s), %.2f s, %s/s\n",
		       image, r->nblocks, r->nblocks == 1 ? "" : "s",
		       (unsigned long long)r->pages_read, (unsigned long long)r->pages_total, bytes,
		       a->opts.verify ? ", verified" : "", s, rate);
	for (uint32_t b = 0; r->blocks && b < r->nblocks; b++)
		printf("  %s -> %s%s\n", cli_visible(name, sizeof(name), r->blocks[b].name),
		       cli_visible(path, sizeof(path), r->blocks[b].path),
		       r->blocks[b].created ? " (created)" : "");
	if (a->qemu)
		printf("%s: device state: %llu bytes loaded into %s (pid %d); the guest %s\n",
		       image, (unsigned long long)r->devstate_bytes,
		       cli_visible(path, sizeof(path), mrs_qemu_producer(a->qemu)),
		       mrs_qemu_pid(a->qemu), a->resumed ? "runs" : "is left paused (--paused)");
}

/*
 * The QEMU waiting for the image: its backends are the targets, checked
 * against the image's blocks before anything is written.
 */
static int connect_qemu(struct args *a, struct mrs_error *err)
{
	struct mrs_image_info *info = NULL;
	int ret = mrs_qemu_connect(&a->qemu, a->qmp, NULL, err);

	if (!ret)
		ret = mrs_image_info(a->image, &info, err);
	if (!ret)
		ret = mrs_qemu_ram(a->qemu, a->ram, a->nram, &a->targets, &a->ntargets, err);
	/* Also checks that QEMU maps every target (its backends' files). */
	if (!ret)
		ret = mrs_qemu_incoming(a->qemu, info, a->targets, a->ntargets, &a->sink, err);
	if (!ret) {
		a->opts.devstate = &a->sink;
		a->opts.vmm_pid = mrs_qemu_pid(a->qemu);
	}
	mrs_image_info_free(info);
	return ret;
}

static int run(struct args *a)
{
	struct mrs_restore_report report = MRS_RESTORE_REPORT_INIT;
	struct mrs_error err = {0};
	int ret = 0;

	a->targets = a->ram;
	a->ntargets = a->nram;
	if (a->qmp)
		ret = connect_qemu(a, &err);
	if (ret)
		return cli_fail(&err);
	cli_progress_setup(&a->c);
	a->opts.io = &a->c.io;
	ret = mrs_restore(a->image, a->targets, a->ntargets, &a->opts, &report, &err);
	cli_progress_done();
	if (ret)
		/* The library's message already says what it left of the targets. */
		return cli_report_failure(ret, &err, "");
	if (a->qemu && !a->paused) {
		ret = mrs_qemu_resume(a->qemu, &err);
		if (ret) {
			struct mrs_error said = {.code = err.code};

			snprintf(said.msg, sizeof(said.msg),
				 "the RAM and device state are loaded into QEMU, but %.900s",
				 err.msg);
			mrs_restore_report_free(&report);
			return cli_fail(&said);
		}
		a->resumed = true;
	}
	if (a->c.json || !a->c.quiet)
		print_report(a, &report);
	if (!a->c.quiet)
		note_skipped(a->image, &report);
	mrs_restore_report_free(&report);
	return EXIT_OK;
}

static bool parse_option(struct args *a, int opt)
{
	int ret;

	switch (opt) {
	case OPT_RAM:
		if (!cli_parse_ram("restore", optarg, &a->ram[a->nram]))
			return false;
		if (a->ram[a->nram].size) {
			cli_usage_error("restore", "size= is not for restore: targets get the size "
						   "recorded in the image");
			return false;
		}
		a->nram++;
		return true;
	case OPT_VERIFY:
		a->opts.verify = 1;
		return true;
	case OPT_CLONE:
		a->opts.clone = 1;
		return true;
	case OPT_FORCE:
		a->opts.force = 1;
		return true;
	case OPT_QMP:
		a->qmp = optarg;
		return true;
	case OPT_PAUSED:
		a->paused = true;
		return true;
	default:
		ret = cli_common_option("restore", opt, optarg, &a->c);
		if (ret == 0)
			cli_bad_option("restore");
		return ret > 0;
	}
}

static bool check_args(struct args *a, int argc, char **argv)
{
	if (optind + 1 != argc) {
		cli_usage_error("restore",
				optind == argc ? "IMAGE is missing" : "one IMAGE only, not '%s'",
				argv[argc - 1]);
		return false;
	}
	a->image = argv[optind];
	if (!cli_check_image("restore", a->image))
		return false;
	if (a->paused && !a->qmp) {
		cli_usage_error("restore", "--paused is for --qmp");
		return false;
	}
	return true;
}

int cmd_restore(int argc, char **argv)
{
	struct args a = {.c = {.io = MRS_IO_OPTS_INIT, .progress = -1},
			 .opts = MRS_RESTORE_OPTS_INIT};
	int opt, code = EXIT_USAGE;

	a.ram = calloc((size_t)argc, sizeof(*a.ram));
	if (!a.ram)
		return EXIT_FAILED;
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
	mrs_qemu_close(a.qemu);
	free(a.ram);
	return code;
}
