/* SPDX-License-Identifier: MIT */
/* mrsnap info: what an image holds. */
#include <getopt.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"

static const char usage[] =
    "Usage: mrsnap info [--json] IMAGE\n"
    "Describe IMAGE: format, whether it is complete, its blocks, rounds and device\n"
    "state.\n"
    "\n"
    "      --json          print it as JSON on stdout\n"
    "  -h, --help          show this help\n"
    "\n"
    "Reads metadata only (use 'mrsnap verify' to check pages). An incomplete image\n"
    "is described, and says so. Exit status: 0 ok, 1 damaged, 2 usage, 3 failed.\n";

static const struct option options[] = {
    {"json", no_argument, NULL, 'J'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void fmt_time(char *buf, size_t len, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_json(const struct mrs_image_info *in)
{
	char when[64];
	struct json j;

	fmt_time(when, sizeof(when), in->created_ns);
	cli_json_begin_doc(&j, true);
	jw_u64(&j, "format_version", in->version);
	jw_bool(&j, "complete", in->complete);
	jw_bool(&j, "live", in->live);
	jw_str(&j, "created", when);
	jw_u64(&j, "created_unix_ns", in->created_ns);
	jw_str(&j, "tool_version", in->tool_version);
	jw_u64(&j, "image_size_bytes", in->file_size);
	jw_u64(&j, "disk_usage_bytes", in->disk_size);
	/* An incomplete image has not counted its pages yet: null, not 0. */
	cli_json_blocks(&j, in->blocks, in->nblocks, in->complete ? CLI_BLOCKS_COUNTED : 0);
	cli_json_rounds(&j, in->rounds, in->nrounds);
	jw_object(&j, "devstate");
	jw_bool(&j, "present", in->devstate.present);
	if (in->devstate.present) {
		jw_u64(&j, "offset", in->devstate.offset);
		jw_u64(&j, "length_bytes", in->devstate.length);
		jw_hex64(&j, "checksum", in->devstate.checksum);
		jw_str(&j, "producer", in->devstate.producer);
		jw_str(&j, "machine", in->devstate.machine);
	}
	jw_close(&j);
	jw_end(&j);
}

/* The device-state region: what it is and where, or that there is none. */
static void print_devstate(const struct mrs_devstate_info *d)
{
	char len[32], producer[CLI_VISIBLE(sizeof(d->producer))],
	    machine[CLI_VISIBLE(sizeof(d->machine))];

	if (!d->present) {
		printf("device:     none (RAM only)\n");
		return;
	}
	cli_fmt_bytes(len, sizeof(len), d->length);
	printf("device:     %s (%llu bytes) of device state from %s", len,
	       (unsigned long long)d->length,
	       d->producer[0] ? cli_visible(producer, sizeof(producer), d->producer)
			      : "an unnamed VMM");
	if (d->machine[0])
		printf(", machine %s", cli_visible(machine, sizeof(machine), d->machine));
	printf("\n  region:   offset 0x%llx, checksum %016llx\n", (unsigned long long)d->offset,
	       (unsigned long long)d->checksum);
}

static void print_text(const char *image, const struct mrs_image_info *in)
{
	char when[64], size[32], disk[32], bsize[32], psize[32];
	/* Everything but the numbers comes from the image, made who knows where. */
	char shown[CLI_VISIBLE(sizeof(in->blocks[0].path))];

	fmt_time(when, sizeof(when), in->created_ns);
	cli_fmt_bytes(size, sizeof(size), in->file_size);
	cli_fmt_bytes(disk, sizeof(disk), in->disk_size);
	printf("image:      %s\n", cli_visible(shown, sizeof(shown), image));
	printf("format:     mrsnap image version %u\n", in->version);
	printf("complete:   %s\n", in->complete ? "yes" : "NO (the snapshot did not finish)");
	printf("live:       %s\n", in->live ? "yes" : "no");
	printf("created:    %s by %s\n", when, cli_visible(shown, sizeof(shown), in->tool_version));
	printf("size:       %s (%llu bytes), %s on disk\n", size, (unsigned long long)in->file_size,
	       disk);
	printf("rounds:     %u\n", in->nrounds);
	for (uint32_t b = 0; b < in->nblocks; b++) {
		const struct mrs_block_info *bi = &in->blocks[b];

		cli_fmt_bytes(bsize, sizeof(bsize), bi->size);
		cli_fmt_bytes(psize, sizeof(psize), bi->page_size);
		printf("block %s: %s, %llu pages of %s",
		       cli_visible(shown, sizeof(shown), bi->name), bsize,
		       (unsigned long long)bi->page_count, psize);
		if (in->complete)
			printf(", %llu present, %llu zero", (unsigned long long)bi->pages_present,
			       (unsigned long long)(bi->page_count - bi->pages_present));
		printf("\n  source:   %s\n", bi->path[0]
						 ? cli_visible(shown, sizeof(shown), bi->path)
						 : "(none recorded: a memfd, or a path too long)");
		printf("  offsets:  bitmap 0x%llx, checksums 0x%llx, pages 0x%llx\n",
		       (unsigned long long)bi->bitmap_offset, (unsigned long long)bi->hashes_offset,
		       (unsigned long long)bi->pages_offset);
	}
	for (uint32_t r = 0; r < in->nrounds; r++) {
		const struct mrs_round_info *ri = &in->rounds[r];

		printf("round %u%s: %llu scanned, %llu dirty, %llu written, %llu zeroed, %.3f s\n",
		       ri->number, ri->frozen ? " (frozen)" : "",
		       (unsigned long long)ri->pages_scanned, (unsigned long long)ri->pages_dirty,
		       (unsigned long long)ri->pages_written, (unsigned long long)ri->pages_zeroed,
		       cli_seconds(ri->duration_ns));
	}
	if (in->complete)
		print_devstate(&in->devstate);
}

int cmd_info(int argc, char **argv)
{
	struct mrs_image_info *info;
	struct mrs_error err = {0};
	bool json = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'J':
			json = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return EXIT_OK;
		default:
			return cli_bad_option("info");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(
		    "info", optind == argc ? "IMAGE is missing" : "one IMAGE only, not '%s'",
		    argv[argc - 1]);
	if (!cli_check_image("info", argv[optind]))
		return EXIT_USAGE;
	if (mrs_image_info(argv[optind], &info, &err))
		return cli_fail(&err);
	if (json)
		print_json(info);
	else
		print_text(argv[optind], info);
	mrs_image_info_free(info);
	return EXIT_OK;
}
