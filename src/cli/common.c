/* SPDX-License-Identifier: MIT */
/* Messages, exit codes and option parsing shared by the commands. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
	char msg[2048], shown[CLI_VISIBLE(sizeof(msg))];
	va_list ap;

	/* Messages quote paths and names an image recorded: never raw. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mrsnap: %s\n", cli_visible(shown, sizeof(shown), msg));
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[1024], shown[CLI_VISIBLE(sizeof(msg))];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mrsnap%s%s: %s\n", cmd ? " " : "", cmd ? cmd : "",
		cli_visible(shown, sizeof(shown), msg));
	fprintf(stderr, "Try 'mrsnap%s%s --help' for more information.\n", cmd ? " " : "",
		cmd ? cmd : "");
	cli_json_failure(msg, 0, EXIT_USAGE);
	return EXIT_USAGE;
}

int cli_bad_option(const char *cmd)
{
	/* getopt said what was wrong, as "mrsnap CMD: ..." (main set argv[0]). */
	fprintf(stderr, "Try 'mrsnap %s --help' for more information.\n", cmd);
	cli_json_failure("unknown option, or an option without its argument (see standard error)",
			 0, EXIT_USAGE);
	return EXIT_USAGE;
}

bool cli_check_image(const char *cmd, const char *image)
{
	if (!*image) {
		cli_usage_error(cmd, "IMAGE is an empty string");
		return false;
	}
	/* The layout gives every page a fixed offset: it is written and read in place. */
	if (!strcmp(image, "-")) {
		cli_usage_error(cmd, "IMAGE cannot be '-': an image is a file, never a stream "
				     "on stdin or stdout (for a file named '-', write ./-)");
		return false;
	}
	cli_json_set_image(image);
	return true;
}

/* The exit code a library error calls for. */
static int fail_exit(const struct mrs_error *err)
{
	switch (err->code) {
	case -MRS_EUSAGE: /* the library's word for a mistake in what it was asked */
		return EXIT_USAGE;
	case -EPROTO:	       /* damaged or incomplete image */
	case -EBADMSG:	       /* a page did not match its checksum */
	case -EPROTONOSUPPORT: /* a format version this mrsnap does not read */
		return EXIT_DAMAGED;
	/* -ENOTSUP (the same as -EOPNOTSUPP on Linux) is an operation the
	 * system refused, like any other I/O error: exit 3, below. */
	default:
		return EXIT_FAILED;
	}
}

int cli_fail(const struct mrs_error *err)
{
	int code = fail_exit(err);

	cli_error("%s", err->msg);
	/* A usage mistake is no system error: its errno is null, as for the CLI's own. */
	cli_json_failure(err->msg, code == EXIT_USAGE ? 0 : err->code, code);
	return code;
}

int cli_report_failure(int ret, const struct mrs_error *err, const char *after_interrupt)
{
	int sig = cli_interrupted();

	if (ret == -ECANCELED && sig) {
		/* The library says "interrupted", and maybe more (a thaw that failed). */
		const char *more = strncmp(err->msg, "interrupted", 11) ? "" : err->msg + 11;
		char msg[sizeof(err->msg) + 128];

		snprintf(msg, sizeof(msg), "interrupted by %s%s%s", cli_signal_name(sig), more,
			 after_interrupt);
		cli_error("%s", msg);
		cli_json_failure(msg, ret, EXIT_FAILED);
		return EXIT_FAILED;
	}
	return cli_fail(err);
}

bool cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	case 't':
	case 'T':
		shift = 40;
		end++;
		break;
	default:
		break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end || (shift && v > (~0ull >> shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

bool cli_parse_uint(const char *cmd, const char *opt, const char *s, unsigned min, unsigned max,
		    unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max) {
		cli_usage_error(cmd, "%s needs a whole number from %u to %u, not '%s'", opt, min,
				max, s);
		return false;
	}
	*out = (unsigned)v;
	return true;
}

bool cli_parse_ram(const char *cmd, char *s, struct mrs_ram *ram)
{
	char *eq = strchr(s, '='), *opt;
	struct mrs_error err;

	memset(ram, 0, sizeof(*ram));
	if (!eq || eq == s || !eq[1]) {
		cli_usage_error(cmd, "--ram needs NAME=PATH, not '%s'", s);
		return false;
	}
	*eq = '\0';
	ram->name = s;
	ram->path = eq + 1;
	/* Only a trailing ",size=" is an option: paths may hold commas. */
	opt = strstr(ram->path, ",size=");
	if (opt && !strchr(opt + 6, ',')) {
		*opt = '\0';
		if (!cli_parse_size(opt + 6, &ram->size) || !ram->size) {
			cli_usage_error(cmd, "bad size '%s' for --ram %s (use bytes or K, M, G, T)",
					opt + 6, ram->name);
			return false;
		}
	}
	if (!*ram->path) {
		cli_usage_error(cmd, "--ram %s needs a path", ram->name);
		return false;
	}
	/* The library's own rule for names, applied here so a bad one is a usage error. */
	if (mrs_block_name_check(ram->name, &err)) {
		cli_usage_error(cmd, "%s", err.msg);
		return false;
	}
	return true;
}

void cli_fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

double cli_seconds(uint64_t ns)
{
	return (double)ns / 1e9;
}

int cli_common_option(const char *cmd, int opt, const char *arg, struct cli_common *c)
{
	switch (opt) {
	case 'j':
		return cli_parse_uint(cmd, "--channels", arg, 1, 64, &c->io.channels) ? 1 : -1;
	case CLI_OPT_DEPTH:
		return cli_parse_uint(cmd, "--depth", arg, 1, 1024, &c->io.depth) ? 1 : -1;
	case CLI_OPT_DIRECT:
		c->io.direct = 1;
		return 1;
	case CLI_OPT_JSON:
		c->json = true; /* the document was switched on by cli_json_setup */
		return 1;
	case 'q':
		c->quiet = true;
		return 1;
	case CLI_OPT_PROGRESS:
		c->progress = 1;
		return 1;
	case CLI_OPT_NO_PROGRESS:
		c->progress = 0;
		return 1;
	default:
		return 0;
	}
}
