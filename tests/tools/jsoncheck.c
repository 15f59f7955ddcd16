/* SPDX-License-Identifier: MIT */
/*
 * jsoncheck: parse one JSON document from stdin with jansson, so that the
 * shell tests can check --json output without python.
 *
 *   jsoncheck [-t | -k] [PATH...]
 *
 * Exit 1 (and say why on stderr) if stdin is not exactly one JSON document,
 * or a PATH is not in it. Each PATH (".", ".blocks[0].name") prints its
 * value on a line: a string as its raw UTF-8 bytes, a number, true, false,
 * null, an object or array as compact JSON. With -t, its type instead
 * (object, array, string, integer, real, true, false, null); with -k, an
 * object's keys in document order, one a line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char *type_name(const json_t *v)
{
	static const char *const names[] = {
	    [JSON_OBJECT] = "object",	[JSON_ARRAY] = "array", [JSON_STRING] = "string",
	    [JSON_INTEGER] = "integer", [JSON_REAL] = "real",	[JSON_TRUE] = "true",
	    [JSON_FALSE] = "false",	[JSON_NULL] = "null",
	};

	return names[json_typeof(v)];
}

/* The value at path in v (".a.b[2].c"), or NULL. */
static json_t *lookup(json_t *v, const char *path)
{
	const char *p = path;

	while (*p && v) {
		if (*p == '.' && p[1] != '[') {
			size_t len = strcspn(++p, ".[");
			char key[256];

			if (!len) /* "." alone: the document */
				continue;
			if (len >= sizeof(key))
				return NULL;
			memcpy(key, p, len);
			key[len] = '\0';
			v = json_object_get(v, key);
			p += len;
		} else if (*p == '[' || (*p == '.' && p[1] == '[')) {
			char *end;
			unsigned long i;

			p += *p == '.' ? 2 : 1;
			i = strtoul(p, &end, 10);
			if (end == p || *end != ']')
				return NULL;
			v = json_array_get(v, i);
			p = end + 1;
		} else {
			return NULL;
		}
	}
	return v;
}

static void print_value(const json_t *v)
{
	char *s;

	switch (json_typeof(v)) {
	case JSON_STRING:
		fwrite(json_string_value(v), 1, json_string_length(v), stdout);
		putchar('\n');
		return;
	case JSON_INTEGER:
		printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
		return;
	case JSON_REAL:
		printf("%.17g\n", json_real_value(v));
		return;
	default:
		s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		puts(s ? s : "?");
		free(s);
	}
}

int main(int argc, char **argv)
{
	json_error_t error;
	json_t *doc;
	char mode = 'v';
	int i = 1, rc = 0;

	if (argc > 1 && (!strcmp(argv[1], "-t") || !strcmp(argv[1], "-k")))
		mode = argv[i++][1];
	/* Without flags jansson rejects trailing data: stdin holds one document or fails. */
	doc = json_loadf(stdin, 0, &error);
	if (!doc) {
		fprintf(stderr, "jsoncheck: not one JSON document: line %d column %d: %s\n",
			error.line, error.column, error.text);
		return 1;
	}
	for (; i < argc; i++) {
		json_t *v = lookup(doc, argv[i]);
		const char *key;
		json_t *member;

		if (!v) {
			fprintf(stderr, "jsoncheck: no %s in the document\n", argv[i]);
			rc = 1;
		} else if (mode == 't') {
			puts(type_name(v));
		} else if (mode == 'k') {
			json_object_foreach(v, key, member) puts(key);
		} else {
			print_value(v);
		}
	}
	json_decref(doc);
	return rc;
}
