/* SPDX-License-Identifier: MIT */
/* mrsnap restore: load an image back into RAM files. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: mrsnap restore [OPTIONS] IMAGE [--ram NAME=PATH ...]\n"
    "Load every RAM block of IMAGE into its file, before the VMM starts.\n"
    "\n"
    "  --ram NAME=PATH     where block NAME goes; default: the path recorded in IMAGE\n"
    "      --verify        check every page against its checksum as it is loaded\n"
    "                      (with --clone: the whole image, before any target)\n"
    "      --clone         share the image's extents instead of copying (XFS with\n"
    "                      reflink, btrfs): instant at any size; every target a new\n"
    "                      or empty file on the image's filesystem, RAM then backed\n"
    "                      by that disk file, not by tmpfs\n"
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
    "\n"
    "The whole image is validated and every target checked before any target is\n"
    "touched. Targets named with --ram are created if missing (mode 0600); pages\n"
    "absent from the image read as zero afterwards. A path recorded in IMAGE is\n"
    "used only if it holds a file of exactly the block's size (another size, or no\n"
    "file: --ram or --force); a device only with --ram.\n"
    "On failure, targets it created are removed and others partly written named.\n"
    "Exit status: 0 ok, 1 damaged image or checksum mismatch, 2 usage, 3 failed.\n";

enum { OPT_FORCE = 256, OPT_VERIFY, OPT_RAM, OPT_CLONE };

static const struct option options[] = {
    {"ram", required_argument, NULL, OPT_RAM},
    {"verify", no_argument, NULL, OPT_VERIFY},
    {"clone", no_argument, NULL, OPT_CLONE},
    {"force", no_argument, NULL, OPT_FORCE},
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0},
};

static void print_report(const char *image, const struct mrs_restore_report *r, bool verify,
			 bool json)
{
	double s = cli_seconds(r->duration_ns);
	char bytes[32], rate[32];

	if (json) {
		struct json j;

		cli_json_begin_doc(&j, true);
		jw_u64(&j, "channels", r->channels);
		jw_bool(&j, "verified", verify);
		jw_bool(&j, "cloned", r->cloned);
		cli_json_blocks(&j, r->blocks, r->nblocks,
				CLI_BLOCKS_COUNTED | CLI_BLOCKS_RESTORED);
		jw_u64(&j, "pages_total", r->pages_total);
		jw_u64(&j, "pages_read", r->pages_read);
		jw_u64(&j, "read_bytes", r->bytes_read);
		jw_u64(&j, "io_requests", r->io_requests);
		jw_u64(&j, "io_resubmits", r->io_resubmits);
		jw_seconds(&j, "duration_seconds", s);
		jw_end(&j);
		return;
	}
	cli_fmt_bytes(bytes, sizeof(bytes), r->bytes_read);
	cli_fmt_bytes(rate, sizeof(rate), s > 0 ? (uint64_t)((double)r->bytes_read / s) : 0);
	if (r->cloned)
		printf("%s: cloned %u block%s, %llu pages, none copied (%s), %.3f s\n", image,
		       r->nblocks, r->nblocks == 1 ? "" : "s", (unsigned long long)r->pages_total,
		       verify ? "the image verified first" : "checksums not read", s);
	else
		printf("%s: restored %u block%s, %llu of %llu pages read (%s%s), %.2f s, %s/s\n",
		       image, r->nblocks, r->nblocks == 1 ? "" : "s",
		       (unsigned long long)r->pages_read, (unsigned long long)r->pages_total, bytes,
		       verify ? ", verified" : "", s, rate);
	for (uint32_t b = 0; r->blocks && b < r->nblocks; b++)
		printf("  %s -> %s%s\n", r->blocks[b].name, r->blocks[b].path,
		       r->blocks[b].created ? " (created)" : "");
}

int cmd_restore(int argc, char **argv)
{
	struct cli_common c = {.io = MRS_IO_OPTS_INIT, .progress = -1};
	struct mrs_restore_opts opts = MRS_RESTORE_OPTS_INIT;
	struct mrs_restore_report report = MRS_RESTORE_REPORT_INIT;
	struct mrs_error err = {0};
	struct mrs_ram *ram = calloc((size_t)argc, sizeof(*ram));
	unsigned nram = 0;
	int opt, ret;

	if (!ram)
		return EXIT_FAILED;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, options, NULL)) != -1) {
		switch (opt) {
		case OPT_RAM:
			if (!cli_parse_ram("restore", optarg, &ram[nram]))
				goto usage;
			if (ram[nram].size) {
				cli_usage_error("restore", "size= is not for restore: targets get "
							   "the size recorded in the image");
				goto usage;
			}
			nram++;
			break;
		case OPT_VERIFY:
			opts.verify = 1;
			break;
		case OPT_CLONE:
			opts.clone = 1;
			break;
		case OPT_FORCE:
			opts.force = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			free(ram);
			return EXIT_OK;
		default:
			ret = cli_common_option("restore", opt, optarg, &c);
			if (ret == 0)
				cli_bad_option("restore");
			if (ret <= 0)
				goto usage;
		}
	}
	if (optind + 1 != argc) {
		cli_usage_error("restore",
				optind == argc ? "IMAGE is missing" : "one IMAGE only, not '%s'",
				argv[argc - 1]);
		goto usage;
	}
	if (!cli_check_image("restore", argv[optind]))
		goto usage;
	cli_progress_setup(&c);
	opts.io = &c.io;
	ret = mrs_restore(argv[optind], ram, nram, &opts, &report, &err);
	cli_progress_done();
	free(ram);
	if (ret)
		/* The library's message already says what it left of the targets. */
		return cli_report_failure(ret, &err, "");
	if (c.json || !c.quiet)
		print_report(argv[optind], &report, opts.verify, c.json);
	mrs_restore_report_free(&report);
	return EXIT_OK;
usage:
	free(ram);
	return EXIT_USAGE;
}
