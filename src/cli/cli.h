/* SPDX-License-Identifier: MIT */
/*
 * The mrsnap command: what the command modules share. The library does the
 * work; this side owns messages, progress, JSON and exit codes.
 */
#ifndef MRS_CLI_H
#define MRS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "mrsnap.h"

/* Exit codes, the same for every command (see mrsnap(1)). */
enum {
	EXIT_OK = 0,
	EXIT_DAMAGED = 1, /* the image is damaged, incomplete, or a checksum did not match */
	EXIT_USAGE = 2,
	EXIT_FAILED = 3, /* the operation failed: I/O error, missing target, interrupted */
	/* snapshot: the image is complete and in place, but its directory sync failed */
	EXIT_NOT_DURABLE = 4,
};

/*
 * text as it can be shown on a terminal, in buf: C0 and C1 controls (ESC,
 * CR, ...) and bytes that are not UTF-8 become \xNN, so that strings from an
 * image (producer, machine, block names and paths) or from QEMU cannot drive
 * the terminal. Cut to fit len; buf is returned. CLI_VISIBLE(n) holds the
 * shown form of a string of n bytes in full.
 */
#define CLI_VISIBLE(n) (4 * (n) + 1)
const char *cli_visible(char *buf, size_t len, const char *text);

/* "mrsnap: ..." on stderr, its text shown with cli_visible(). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error (shown with cli_visible()): the message and a pointer to --help; returns
 * EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* After getopt returned '?' (and said why): point to --help; returns EXIT_USAGE. */
int cli_bad_option(const char *cmd);
/* Print a library error and return the exit code its errno calls for. */
int cli_fail(const struct mrs_error *err);

/*
 * After a failed operation: say why (or that a signal stopped it, followed by
 * what happened then) and return the exit code.
 */
int cli_report_failure(int ret, const struct mrs_error *err, const char *after_interrupt);

/* IMAGE as given: not empty, not '-' (images are not streams); false after a usage error. */
bool cli_check_image(const char *cmd, const char *image);

/* Parsing. Each returns false (after saying why) on bad input. */
bool cli_parse_size(const char *s, uint64_t *out);
bool cli_parse_uint(const char *cmd, const char *opt, const char *s, unsigned min, unsigned max,
		    unsigned *out);
/* NAME=PATH[,size=BYTES] into ram (pointing into s, which it modifies). */
bool cli_parse_ram(const char *cmd, char *s, struct mrs_ram *ram);

/* Options every I/O command shares. */
struct cli_common {
	struct mrs_io_opts io;
	bool json;
	bool quiet;
	int progress; /* -1: when stderr is a terminal; 0 off; 1 on */
};

/* The options snapshot, restore and verify share, for their getopt tables. */
enum {
	CLI_OPT_DEPTH = 1000,
	CLI_OPT_DIRECT,
	CLI_OPT_JSON,
	CLI_OPT_PROGRESS,
	CLI_OPT_NO_PROGRESS,
};
#define CLI_COMMON_SHORT "j:qh"
#define CLI_COMMON_OPTIONS                                                                         \
	{"channels", required_argument, NULL, 'j'},                                                \
	    {"depth", required_argument, NULL, CLI_OPT_DEPTH},                                     \
	    {"direct", no_argument, NULL, CLI_OPT_DIRECT},                                         \
	    {"json", no_argument, NULL, CLI_OPT_JSON}, {"quiet", no_argument, NULL, 'q'},          \
	    {"progress", no_argument, NULL, CLI_OPT_PROGRESS},                                     \
	    {"no-progress", no_argument, NULL, CLI_OPT_NO_PROGRESS},                               \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

/*
 * One of the shared options (not -h): 1 if it was one and is set in c, 0 if
 * it is not one of them, -1 if its value is bad (the message is printed).
 */
int cli_common_option(const char *cmd, int opt, const char *arg, struct cli_common *c);

/* Progress on stderr and SIGINT/SIGTERM turned into a clean stop. */
void cli_progress_setup(struct cli_common *c);
/*
 * The progress line for a terminal of width columns: at most width - 1
 * characters (never wrapping), shortened part by part, cut if need be.
 */
void cli_progress_format(char *buf, size_t len, const struct mrs_progress *p, unsigned width);
/* Finish the progress line, if one was drawn. */
void cli_progress_done(void);
/* The signal that interrupted the operation, or 0. */
int cli_interrupted(void);
/* "SIGHUP" for a signal cli_progress_setup() catches. */
const char *cli_signal_name(int sig);
/* Flush stdout; a command that succeeded fails (EXIT_FAILED) if that fails. */
int cli_finish_output(int code);

/* Human-readable sizes and rates: "1.5 GiB", "850 MiB/s". */
void cli_fmt_bytes(char *buf, size_t len, uint64_t bytes);
double cli_seconds(uint64_t ns);

/*
 * A small JSON writer on jansson: values are added to the innermost open
 * object or array (key ignored in an array), in order; jw_end() prints the
 * document. Strings that are not valid UTF-8 get U+FFFD for each bad byte.
 */
struct json {
	FILE *f;
	json_t *open[32]; /* the document, then the objects and arrays opened in it */
	int depth;
	bool failed; /* a value could not be made or added: jw_end() says so */
};
void jw_begin(struct json *j, FILE *f);
void jw_end(struct json *j);
void jw_object(struct json *j, const char *key);
void jw_array(struct json *j, const char *key);
void jw_close(struct json *j); /* the innermost object or array */
void jw_str(struct json *j, const char *key, const char *v);
void jw_u64(struct json *j, const char *key, uint64_t v);
void jw_seconds(struct json *j, const char *key, double v); /* a real, to the microsecond */
void jw_bool(struct json *j, const char *key, bool v);
void jw_hex64(struct json *j, const char *key, uint64_t v); /* as a 16-digit string */
void jw_null(struct json *j, const char *key);
/* Whether a document of this run could not be printed (cli_finish_output fails then). */
bool cli_json_lost(void);

/*
 * The documents of --json (mrsnap(1), JSON OUTPUT): one object on stdout
 * per run, success or failure, starting with "schema", "command", "ok" and
 * "image"; on failure with an "error" object. Bump the schema when a field
 * changes meaning or goes away (adding one does not).
 */
#define CLI_JSON_SCHEMA 1
/* Before the command parses its options: note whether --json is among them. */
void cli_json_setup(const char *command, int argc, char **argv);
/* IMAGE, once the command line gave it. */
void cli_json_set_image(const char *image);
/* Start the document: schema, command, ok, image. Close it with jw_end(). */
void cli_json_begin_doc(struct json *j, bool ok);
/* "error": {message, errno (null if none), errno_name, exit}. */
void cli_json_error(struct json *j, const char *message, int code, int exit_code);
/* With --json and no document printed yet: one holding only the error. */
void cli_json_failure(const char *message, int code, int exit_code);
/* "blocks" and "rounds", the same in every command; pages counted unless !counted. */
/* The blocks array: CLI_BLOCKS_COUNTED with page counts, _RESTORED with "created". */
enum { CLI_BLOCKS_COUNTED = 1, CLI_BLOCKS_RESTORED = 2 };
void cli_json_blocks(struct json *j, const struct mrs_block_info *blocks, uint32_t n, unsigned how);
void cli_json_rounds(struct json *j, const struct mrs_round_info *rounds, uint32_t n);

int cmd_snapshot(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_info(int argc, char **argv);

#endif
