/* SPDX-License-Identifier: MIT */
/* mrsnap verify: check every page and all metadata of an image. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>

#include "cli.h"

static const char usage[] =
    "Usage: mrsnap verify [OPTIONS] IMAGE\n"
    "Check every checksum in IMAGE: metadata, and every present page.\n"
    "\n"
    "  -j, --channels N    I/O channels, 1-64; default: the number of online CPUs\n"
    "      --depth N       requests in flight per channel (default 32)\n"
    "      --direct        O_DIRECT for reading page data\n"
    "      --json          print the result as JSON on stdout\n"
    "  -q, --quiet         print nothing but errors\n"
    "      --progress      show progress even when stderr is not a terminal\n"
    "      --no-progress   never show progress\n"
    "  -h, --help          show this help\n"
    "\n"
    "Prints one line per page that does not match, then a summary.\n"
    "Exit status: 0 every page matched, 1 damaged image or mismatches, 2 usage,\n"
    "3 the check could not be done.\n";

static const struct option options[] = {
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* The result, all pages checked; ret is 0 or -EBADMSG, with mismatch saying how many. */
static void print_json(const struct mrs_verify_report *r, int ret, const char *mismatch)
{
	struct json j;

	cli_json_begin_doc(&j, ret == 0);
	if (ret)
		cli_json_error(&j, mismatch, ret, EXIT_DAMAGED);
	jw_u64(&j, "channels", r->channels);
	jw_u64(&j, "pages_checked", r->pages_checked);
	jw_u64(&j, "pages_bad", r->pages_bad);
	jw_u64(&j, "read_bytes", r->bytes_read);
	jw_u64(&j, "io_requests", r->io_requests);
	jw_u64(&j, "io_resubmits", r->io_resubmits);
	jw_seconds(&j, "duration_seconds", cli_seconds(r->duration_ns));
	jw_object(&j, "devstate");
	jw_bool(&j, "present", r->devstate_bytes > 0);
	if (r->devstate_bytes) {
		jw_u64(&j, "checked_bytes", r->devstate_bytes);
		jw_bool(&j, "ok", !r->devstate_bad);
	}
	jw_close(&j);
	jw_array(&j, "bad_pages");
	for (uint64_t i = 0; i < r->pages_bad; i++) {
		jw_object(&j, NULL);
		jw_str(&j, "block", r->bad[i].block);
		jw_u64(&j, "page", r->bad[i].page);
		jw_u64(&j, "guest_offset", r->bad[i].guest_offset);
		jw_hex64(&j, "expected", r->bad[i].expected);
		jw_hex64(&j, "actual", r->bad[i].actual);
		jw_close(&j);
	}
	jw_close(&j);
	jw_end(&j);
}

static void print_bad_pages(const char *image, const struct mrs_verify_report *r)
{
	for (uint64_t i = 0; i < r->pages_bad; i++)
		cli_error("%s: block '%s' page %llu (guest offset 0x%llx): FAILED, expected "
			  "%016llx, got %016llx",
			  image, r->bad[i].block, (unsigned long long)r->bad[i].page,
			  (unsigned long long)r->bad[i].guest_offset,
			  (unsigned long long)r->bad[i].expected,
			  (unsigned long long)r->bad[i].actual);
}

/* What did not match: pages, the device state, or both. */
static void describe_mismatch(char *buf, size_t len, const char *image,
			      const struct mrs_verify_report *r)
{
	/* buf is printed by cli_error(), which shows IMAGE with cli_visible(). */
	if (r->devstate_bad && !r->pages_bad)
		snprintf(buf, len, "%s: the device state (%llu bytes) did NOT match its checksum",
			 image, (unsigned long long)r->devstate_bytes);
	else
		snprintf(buf, len, "%s: %llu of %llu pages did NOT match%s", image,
			 (unsigned long long)r->pages_bad, (unsigned long long)r->pages_checked,
			 r->devstate_bad ? ", and neither did the device state" : "");
}

static void print_ok(const char *path, const struct mrs_verify_report *r)
{
	char len[32], image[CLI_VISIBLE(4096)];

	cli_visible(image, sizeof(image), path);

	if (!r->devstate_bytes) {
		printf("%s: OK, %llu pages match their checksums\n", image,
		       (unsigned long long)r->pages_checked);
		return;
	}
	cli_fmt_bytes(len, sizeof(len), r->devstate_bytes);
	printf("%s: OK, %llu pages and the device state (%s) match their checksums\n", image,
	       (unsigned long long)r->pages_checked, len);
}

int cmd_verify(int argc, char **argv)
{
	struct cli_common c = {.io = MRS_IO_OPTS_INIT, .progress = -1};
	struct mrs_verify_opts opts = MRS_VERIFY_OPTS_INIT;
	struct mrs_verify_report report = MRS_VERIFY_REPORT_INIT;
	struct mrs_error err = {0};
	const char *image;
	char mismatch[1024];
	int opt, ret, code;

	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, options, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			return EXIT_OK;
		}
		ret = cli_common_option("verify", opt, optarg, &c);
		if (ret < 0)
			return EXIT_USAGE;
		if (ret == 0)
			return cli_bad_option("verify");
	}
	if (optind + 1 != argc)
		return cli_usage_error(
		    "verify", optind == argc ? "IMAGE is missing" : "one IMAGE only, not '%s'",
		    argv[argc - 1]);
	image = argv[optind];
	if (!cli_check_image("verify", image))
		return EXIT_USAGE;
	cli_progress_setup(&c);
	opts.io = &c.io;
	ret = mrs_verify(image, &opts, &report, &err);
	cli_progress_done();
	if (ret && ret != -EBADMSG) {
		code = cli_report_failure(ret, &err, "");
		mrs_verify_report_free(&report);
		return code;
	}
	describe_mismatch(mismatch, sizeof(mismatch), image, &report);
	if (c.json)
		print_json(&report, ret, mismatch);
	if (!c.quiet)
		print_bad_pages(image, &report);
	if (ret)
		cli_error("%s", mismatch);
	else if (!c.quiet && !c.json)
		print_ok(image, &report);
	mrs_verify_report_free(&report);
	return ret ? EXIT_DAMAGED : EXIT_OK;
}
