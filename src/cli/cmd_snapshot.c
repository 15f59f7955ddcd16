/* SPDX-License-Identifier: MIT */
/* mrsnap snapshot: write RAM blocks into a new image. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: mrsnap snapshot [OPTIONS] IMAGE --ram NAME=PATH[,size=BYTES] [--ram ...]\n"
    "Write the RAM of a paused virtual machine into a new image file.\n"
    "\n"
    "  --ram NAME=PATH     a RAM block and the file or block device behind it;\n"
    "                      ,size=BYTES uses only the first BYTES (K, M, G, T suffixes)\n"
    "  -j, --channels N    I/O channels (threads with an io_uring each), 1-64;\n"
    "                      default: the number of online CPUs\n"
    "      --depth N       requests in flight per channel (default 32)\n"
    "      --direct        O_DIRECT for page data (bypasses the page cache)\n"
    "      --force         replace an existing IMAGE\n"
    "      --no-fsync      do not fsync: faster, but a power loss may damage the image\n"
    "      --json          print a summary as JSON on stdout\n"
    "  -q, --quiet         print nothing but errors\n"
    "      --progress      show progress even when stderr is not a terminal\n"
    "      --no-progress   never show progress\n"
    "  -h, --help          show this help\n"
    "\n"
    "The image is written to a temporary file next to IMAGE (mode 0600) and renamed\n"
    "into place once complete. Exit status: 0 ok, 2 usage, 3 failed. See mrsnap(1).\n";

enum {
	OPT_DIRECT = 256,
	OPT_FORCE,
	OPT_NO_FSYNC,
	OPT_JSON,
	OPT_PROGRESS,
	OPT_NO_PROGRESS,
	OPT_RAM,
	OPT_DEPTH
};

static const struct option options[] = {
    {"ram", required_argument, NULL, OPT_RAM},
    {"channels", required_argument, NULL, 'j'},
    {"depth", required_argument, NULL, OPT_DEPTH},
    {"direct", no_argument, NULL, OPT_DIRECT},
    {"force", no_argument, NULL, OPT_FORCE},
    {"no-fsync", no_argument, NULL, OPT_NO_FSYNC},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, 'q'},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void print_json(const char *image, const struct mrs_ram *ram, unsigned nram,
		       const struct mrs_save_report *r, const struct cli_common *c)
{
	struct json j;

	json_begin(&j, stdout);
	json_str(&j, "image", image);
	json_bool(&j, "live", false);
	json_u64(&j, "channels", r->channels);
	json_bool(&j, "direct", c->io.direct);
	json_array(&j, "blocks");
	for (unsigned i = 0; i < nram; i++) {
		json_object(&j, NULL);
		json_str(&j, "name", ram[i].name);
		json_str(&j, "path", ram[i].path);
		json_close_object(&j);
	}
	json_close_array(&j);
	json_array(&j, "rounds");
	for (uint32_t i = 0; i < r->nrounds; i++) {
		const struct mrs_round_info *ri = &r->rounds[i];

		json_object(&j, NULL);
		json_u64(&j, "round", ri->number);
		json_bool(&j, "frozen", ri->frozen);
		json_u64(&j, "pages_scanned", ri->pages_scanned);
		json_u64(&j, "pages_dirty", ri->pages_dirty);
		json_u64(&j, "pages_written", ri->pages_written);
		json_u64(&j, "pages_zeroed", ri->pages_zeroed);
		json_u64(&j, "bytes_written", ri->bytes_written);
		json_double(&j, "seconds", cli_seconds(ri->duration_ns));
		json_close_object(&j);
	}
	json_close_array(&j);
	json_u64(&j, "pages_total", r->pages_total);
	json_u64(&j, "pages_present", r->pages_present);
	json_u64(&j, "pages_zero", r->pages_total - r->pages_present);
	json_u64(&j, "bytes_written", r->bytes_written);
	json_u64(&j, "image_size", r->image_size);
	json_double(&j, "seconds", cli_seconds(r->duration_ns));
	json_end(&j);
}

static void print_summary(const char *image, unsigned nram, const struct mrs_save_report *r)
{
	char written[32], rate[32];
	double s = cli_seconds(r->duration_ns);

	cli_fmt_bytes(written, sizeof(written), r->bytes_written);
	cli_fmt_bytes(rate, sizeof(rate), s > 0 ? (uint64_t)((double)r->bytes_written / s) : 0);
	printf("%s: %u block%s, %llu pages, %llu written (%s), %llu zero, %.2f s, %s/s\n", image,
	       nram, nram == 1 ? "" : "s", (unsigned long long)r->pages_total,
	       (unsigned long long)r->pages_present, written,
	       (unsigned long long)(r->pages_total - r->pages_present), s, rate);
}

int cmd_snapshot(int argc, char **argv)
{
	struct cli_common c = {.progress = -1};
	struct mrs_save_opts opts = {0};
	struct mrs_save_report report;
	struct mrs_error err = {0};
	struct mrs_ram *ram = calloc((size_t)argc, sizeof(*ram));
	unsigned nram = 0;
	const char *image;
	int opt, ret;

	if (!ram)
		return EXIT_FAILED;
	while ((opt = getopt_long(argc, argv, "j:qh", options, NULL)) != -1) {
		switch (opt) {
		case OPT_RAM:
			if (!cli_parse_ram("snapshot", optarg, &ram[nram]))
				goto usage;
			for (unsigned i = 0; i < nram; i++)
				if (!strcmp(ram[i].name, ram[nram].name)) {
					cli_usage_error("snapshot",
							"block name '%s' is given twice",
							ram[i].name);
					goto usage;
				}
			nram++;
			break;
		case 'j':
			if (!cli_parse_uint("snapshot", "--channels", optarg, 1, 64,
					    &c.io.channels))
				goto usage;
			break;
		case OPT_DEPTH:
			if (!cli_parse_uint("snapshot", "--depth", optarg, 1, 1024, &c.io.depth))
				goto usage;
			break;
		case OPT_DIRECT:
			c.io.direct = 1;
			break;
		case OPT_FORCE:
			opts.force = 1;
			break;
		case OPT_NO_FSYNC:
			opts.no_fsync = 1;
			break;
		case OPT_JSON:
			c.json = true;
			break;
		case 'q':
			c.quiet = true;
			break;
		case OPT_PROGRESS:
			c.progress = 1;
			break;
		case OPT_NO_PROGRESS:
			c.progress = 0;
			break;
		case 'h':
			fputs(usage, stdout);
			free(ram);
			return EXIT_OK;
		default:
			cli_usage_error("snapshot", "see the options above");
			goto usage;
		}
	}
	if (optind + 1 != argc) {
		cli_usage_error("snapshot",
				optind == argc ? "IMAGE is missing" : "one IMAGE only, not '%s'",
				argv[argc - 1]);
		goto usage;
	}
	if (!nram) {
		cli_usage_error("snapshot", "give at least one --ram NAME=PATH");
		goto usage;
	}
	image = argv[optind];
	cli_progress_setup(&c);
	opts.io = c.io;
	ret = mrs_save(image, ram, nram, &opts, &report, &err);
	cli_progress_done();
	if (ret) {
		free(ram);
		return cli_report_failure(ret, &err, "; no image was written");
	}
	if (c.json)
		print_json(image, ram, nram, &report, &c);
	else if (!c.quiet)
		print_summary(image, nram, &report);
	mrs_save_report_free(&report);
	free(ram);
	return EXIT_OK;
usage:
	free(ram);
	return EXIT_USAGE;
}
