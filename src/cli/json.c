/* SPDX-License-Identifier: MIT */
/*
 * Just enough JSON for --json: objects, arrays, strings and numbers; and the
 * shapes every command shares (see JSON OUTPUT in mrsnap(1)).
 */
#include <string.h>

#include "cli.h"

static void key(struct json *j, const char *k)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	j->need_comma[j->depth] = true;
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
	if (k)
		fprintf(j->f, "\"%s\": ", k); /* keys are our own identifiers */
}

static void put_escaped(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

void json_begin(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->need_comma[0] = false;
	fputc('{', f);
	j->depth = 1;
	j->need_comma[1] = false;
}

void json_end(struct json *j)
{
	fputs("\n}\n", j->f);
}

static void open_nested(struct json *j, const char *k, char c)
{
	key(j, k);
	fputc(c, j->f);
	j->depth++;
	j->need_comma[j->depth] = false;
}

static void close_nested(struct json *j, char c)
{
	j->depth--;
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
	fputc(c, j->f);
}

void json_object(struct json *j, const char *k)
{
	open_nested(j, k, '{');
}

void json_array(struct json *j, const char *k)
{
	open_nested(j, k, '[');
}

void json_close_object(struct json *j)
{
	close_nested(j, '}');
}

void json_close_array(struct json *j)
{
	close_nested(j, ']');
}

void json_str(struct json *j, const char *k, const char *v)
{
	key(j, k);
	put_escaped(j->f, v);
}

void json_u64(struct json *j, const char *k, uint64_t v)
{
	key(j, k);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_double(struct json *j, const char *k, double v)
{
	key(j, k);
	fprintf(j->f, "%.6f", v);
}

void json_bool(struct json *j, const char *k, bool v)
{
	key(j, k);
	fputs(v ? "true" : "false", j->f);
}

void json_hex64(struct json *j, const char *k, uint64_t v)
{
	key(j, k);
	fprintf(j->f, "\"%016llx\"", (unsigned long long)v);
}

void json_null(struct json *j, const char *k)
{
	key(j, k);
	fputs("null", j->f);
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
	json_begin(j, stdout);
	json_u64(j, "schema", CLI_JSON_SCHEMA);
	json_str(j, "command", doc.command ? doc.command : "mrsnap");
	json_bool(j, "ok", ok);
	if (doc.image)
		json_str(j, "image", doc.image);
	else
		json_null(j, "image");
	doc.printed = true;
}

void cli_json_error(struct json *j, const char *message, int code, int exit_code)
{
	const char *name = code ? strerrorname_np(code < 0 ? -code : code) : NULL;

	json_object(j, "error");
	json_str(j, "message", message);
	if (code)
		json_u64(j, "errno", (uint64_t)(code < 0 ? -code : code));
	else
		json_null(j, "errno");
	if (name)
		json_str(j, "errno_name", name);
	else
		json_null(j, "errno_name");
	json_u64(j, "exit", (uint64_t)exit_code);
	json_close_object(j);
}

void cli_json_failure(const char *message, int code, int exit_code)
{
	struct json j;

	if (!doc.on || doc.printed)
		return;
	cli_json_begin_doc(&j, false);
	cli_json_error(&j, message, code, exit_code);
	json_end(&j);
}

void cli_json_blocks(struct json *j, const struct mrs_block_info *blocks, uint32_t n, unsigned how)
{
	if (!blocks) { /* the library ran out of memory for the list */
		json_null(j, "blocks");
		return;
	}
	json_array(j, "blocks");
	for (uint32_t b = 0; b < n; b++) {
		const struct mrs_block_info *bi = &blocks[b];

		json_object(j, NULL);
		json_str(j, "name", bi->name);
		json_str(j, "path", bi->path);
		json_u64(j, "size_bytes", bi->size);
		json_u64(j, "page_size_bytes", bi->page_size);
		json_u64(j, "pages_total", bi->page_count);
		if (how & CLI_BLOCKS_COUNTED) {
			json_u64(j, "pages_present", bi->pages_present);
			json_u64(j, "pages_zero", bi->page_count - bi->pages_present);
		} else {
			json_null(j, "pages_present");
			json_null(j, "pages_zero");
		}
		json_u64(j, "bitmap_offset", bi->bitmap_offset);
		json_u64(j, "checksums_offset", bi->hashes_offset);
		json_u64(j, "pages_offset", bi->pages_offset);
		if (how & CLI_BLOCKS_RESTORED)
			json_bool(j, "created", bi->created);
		json_close_object(j);
	}
	json_close_array(j);
}

void cli_json_rounds(struct json *j, const struct mrs_round_info *rounds, uint32_t n)
{
	json_array(j, "rounds");
	for (uint32_t i = 0; i < n; i++) {
		const struct mrs_round_info *ri = &rounds[i];

		json_object(j, NULL);
		json_u64(j, "round", ri->number);
		json_bool(j, "frozen", ri->frozen);
		json_u64(j, "pages_scanned", ri->pages_scanned);
		json_u64(j, "pages_dirty", ri->pages_dirty);
		json_u64(j, "pages_written", ri->pages_written);
		json_u64(j, "pages_zeroed", ri->pages_zeroed);
		json_u64(j, "written_bytes", ri->bytes_written);
		json_double(j, "duration_seconds", cli_seconds(ri->duration_ns));
		json_close_object(j);
	}
	json_close_array(j);
}
