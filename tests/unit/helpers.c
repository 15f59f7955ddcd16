/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <liburing.h>

#include "helpers.h"

void mrs_test_assert_msg_has(const struct mrs_error *err, const char *needle, const char *file,
			     int line)
{
	if (!strstr(err->msg, needle)) {
		print_error("message \"%s\" does not contain \"%s\"\n", err->msg, needle);
		_fail(file, line);
	}
}

char *mrs_test_tmpdir(void)
{
	return mrs_test_tmpdir_in(NULL);
}

char *mrs_test_tmpdir_in(const char *base)
{
	char *dir;

	if (!base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&dir, "%s/mrsnap-test.XXXXXX", base) < 0)
		abort();
	if (!mkdtemp(dir))
		abort();
	return dir;
}

void mrs_test_tmpdir_remove(char *dir)
{
	char *cmd;

	if (asprintf(&cmd, "rm -rf -- '%s'", dir) < 0)
		abort();
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
	free(dir);
}

void mrs_test_fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

int mrs_test_have_io_uring(void)
{
	struct io_uring ring;
	int ret = io_uring_queue_init(4, &ring, 0);

	if (ret < 0) {
		fprintf(stderr, "skipped: io_uring is not available here: %s\n", strerror(-ret));
		return 0;
	}
	io_uring_queue_exit(&ring);
	return 1;
}
