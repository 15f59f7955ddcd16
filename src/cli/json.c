/* SPDX-License-Identifier: MIT */
/* Just enough JSON for --json: objects, arrays, strings and numbers. */
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
