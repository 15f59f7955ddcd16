/* SPDX-License-Identifier: MIT */
/*
 * The documents of --json, built with jansson (one JSON path in the project,
 * no escaping of our own), and the shapes every command shares (see JSON
 * OUTPUT in mrsnap(1)). The writer keeps the order fields are added in.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

/* A document that could not be built (no memory, a number out of range). */
static bool doc_lost;

void jw_begin(struct json *j, FILE *f)
{
	j->f = f;
	j->failed = false;
	j->open[0] = json_object();
	j->depth = 1;
	if (!j->open[0])
		j->failed = true;
}

/* Put v (its reference taken) into the innermost open object or array. */
static void add(struct json *j, const char *key, json_t *v)
{
	json_t *parent = j->open[j->depth - 1];
	int ret;

	if (!v || !parent) {
		json_decref(v);
		j->failed = true;
		return;
	}
	if (json_is_object(parent))
		ret = json_object_set_new(parent, key, v);
	else
		ret = json_array_append_new(parent, v);
	if (ret)
		j->failed = true;
}

static void open_nested(struct json *j, const char *key, json_t *v)
{
	if (j->depth >= (int)(sizeof(j->open) / sizeof(j->open[0]))) {
		json_decref(v);
		v = NULL;
	}
	json_incref(v); /* one reference for the parent, one while it is open */
	add(j, key, v);
	j->open[j->depth++] = v;
}

void jw_object(struct json *j, const char *key)
{
	open_nested(j, key, json_object());
}

void jw_array(struct json *j, const char *key)
{
	open_nested(j, key, json_array());
}

void jw_close(struct json *j)
{
	json_decref(j->open[--j->depth]);
}

void jw_end(struct json *j)
{
	json_t *root = j->open[0];
	/* 15 significant digits print a seconds value rounded to the microsecond as it is. */
	size_t flags = JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15);

	while (j->depth > 1)
		jw_close(j);
	if (j->failed || json_dumpf(root, j->f, flags) || fputc('\n', j->f) == EOF) {
		cli_error("cannot print the JSON document: %s",
			  j->failed ? "out of memory or a value out of range" : "write error");
		doc_lost = true;
	}
	json_decref(root);
	j->open[0] = NULL;
}

bool cli_json_lost(void)
{
	return doc_lost;
}

/*
 * The length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or 0 if none starts there.
 */
static size_t utf8_sequence(const unsigned char *s)
{
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0; /* overlong below U+0800 */
	else if (s[0] == 0xed)
		hi = 0x9f; /* U+D800..U+DFFF, the surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90; /* overlong below U+10000 */
	else if (s[0] == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/*
 * s with every byte that is not part of a valid UTF-8 sequence replaced by
 * U+FFFD (mrsnap(1), JSON OUTPUT: paths are bytes, JSON strings are text).
 */
static char *utf8_repair(const char *s)
{
	static const char replacement[] = "\xef\xbf\xbd";
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	while (*p) {
		size_t len = utf8_sequence(p);

		if (len) {
			memcpy(o, p, len);
			o += len;
			p += len;
		} else {
			memcpy(o, replacement, 3);
			o += 3;
			p++;
		}
	}
	*o = '\0';
	return out;
}

/* A JSON string of s; jansson takes only valid UTF-8, so s is repaired if need be. */
static json_t *text(const char *s)
{
	json_t *v = json_string(s);
	char *fixed;

	if (v)
		return v;
	fixed = utf8_repair(s);
	v = fixed ? json_string(fixed) : NULL;
	free(fixed);
	return v;
}

void jw_str(struct json *j, const char *key, const char *v)
{
	add(j, key, text(v));
}

void jw_u64(struct json *j, const char *key, uint64_t v)
{
	/*
	 * json_int_t is long long. Our counts and sizes are bounded by file
	 * sizes (off_t), so they fit; should one not, the document fails
	 * (jw_end says so) rather than print a negative number.
	 */
	add(j, key, v <= (uint64_t)LLONG_MAX ? json_integer((json_int_t)v) : NULL);
}

void jw_seconds(struct json *j, const char *key, double v)
{
	/* To the microsecond; jansson prints a real with a fraction or exponent, never as an
	 * integer. */
	add(j, key, json_real(round(v * 1e6) / 1e6));
}

void jw_bool(struct json *j, const char *key, bool v)
{
	add(j, key, json_boolean(v));
}

void jw_hex64(struct json *j, const char *key, uint64_t v)
{
	char hex[17];

	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)v);
	add(j, key, json_string(hex));
}

void jw_null(struct json *j, const char *key)
{
	add(j, key, json_null());
}
/* The document of this run: its command, its image once known, whether it is out. */
static struct {
	bool on, printed;
	const char *command, *image;
} doc;

/* "--json", or an abbreviation getopt_long would take for it ("--js"). */
static bool is_json_option(const char *arg)
{
	size_t len = strlen(arg);

	return len >= 3 && len <= 6 && !strncmp(arg, "--json", len);
}

void cli_json_setup(const char *command, int argc, char **argv)
{
	doc.command = command;
	/* Seen before getopt runs, so that a usage error is a JSON document too. */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (is_json_option(argv[i]))
			doc.on = true;
}

void cli_json_set_image(const char *image)
{
	doc.image = image;
}

void cli_json_begin_doc(struct json *j, bool ok)
{
	jw_begin(j, stdout);
	jw_u64(j, "schema", CLI_JSON_SCHEMA);
	jw_str(j, "command", doc.command ? doc.command : "mrsnap");
	jw_bool(j, "ok", ok);
	if (doc.image)
		jw_str(j, "image", doc.image);
	else
		jw_null(j, "image");
	doc.printed = true;
}

void cli_json_error(struct json *j, const char *message, int code, int exit_code)
{
	const char *name = code ? strerrorname_np(code < 0 ? -code : code) : NULL;

	jw_object(j, "error");
	jw_str(j, "message", message);
	if (code)
		jw_u64(j, "errno", (uint64_t)(code < 0 ? -code : code));
	else
		jw_null(j, "errno");
	if (name)
		jw_str(j, "errno_name", name);
	else
		jw_null(j, "errno_name");
	jw_u64(j, "exit", (uint64_t)exit_code);
	jw_close(j);
}

void cli_json_failure(const char *message, int code, int exit_code)
{
	struct json j;

	if (!doc.on || doc.printed)
		return;
	cli_json_begin_doc(&j, false);
	cli_json_error(&j, message, code, exit_code);
	jw_end(&j);
}

void cli_json_blocks(struct json *j, const struct mrs_block_info *blocks, uint32_t n, unsigned how)
{
	if (!blocks) { /* the library ran out of memory for the list */
		jw_null(j, "blocks");
		return;
	}
	jw_array(j, "blocks");
	for (uint32_t b = 0; b < n; b++) {
		const struct mrs_block_info *bi = &blocks[b];

		jw_object(j, NULL);
		jw_str(j, "name", bi->name);
		jw_str(j, "path", bi->path);
		jw_u64(j, "size_bytes", bi->size);
		jw_u64(j, "page_size_bytes", bi->page_size);
		jw_u64(j, "pages_total", bi->page_count);
		if (how & CLI_BLOCKS_COUNTED) {
			jw_u64(j, "pages_present", bi->pages_present);
			jw_u64(j, "pages_zero", bi->page_count - bi->pages_present);
		} else {
			jw_null(j, "pages_present");
			jw_null(j, "pages_zero");
		}
		jw_u64(j, "bitmap_offset", bi->bitmap_offset);
		jw_u64(j, "checksums_offset", bi->hashes_offset);
		jw_u64(j, "pages_offset", bi->pages_offset);
		if (how & CLI_BLOCKS_RESTORED)
			jw_bool(j, "created", bi->created);
		jw_close(j);
	}
	jw_close(j);
}

void cli_json_rounds(struct json *j, const struct mrs_round_info *rounds, uint32_t n)
{
	jw_array(j, "rounds");
	for (uint32_t i = 0; i < n; i++) {
		const struct mrs_round_info *ri = &rounds[i];

		jw_object(j, NULL);
		jw_u64(j, "round", ri->number);
		jw_bool(j, "frozen", ri->frozen);
		jw_u64(j, "pages_scanned", ri->pages_scanned);
		jw_u64(j, "pages_dirty", ri->pages_dirty);
		jw_u64(j, "pages_written", ri->pages_written);
		jw_u64(j, "pages_zeroed", ri->pages_zeroed);
		jw_u64(j, "written_bytes", ri->bytes_written);
		jw_seconds(j, "duration_seconds", cli_seconds(ri->duration_ns));
		jw_close(j);
	}
	jw_close(j);
}
