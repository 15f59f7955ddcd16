/* SPDX-License-Identifier: MIT */
/*
 * mkram: make a RAM file for tests and benchmarks, with a realistic mix of
 * pages, the same for the same seed.
 *
 *   mkram PATH SIZE [SEED [ZERO_PERCENT [REPEAT_PERCENT [ZERO_RUN]]]]
 *
 * SIZE takes K, M, G suffixes. Defaults: seed 1, 25% zero pages (left as
 * holes), 15% pages repeating one of a few patterns, the rest random.
 *
 * Zero pages come in runs of ZERO_RUN pages on average (default 32, that is
 * 128 KiB), as free memory does in a guest: the kernel hands out and frees
 * pages in large blocks. ZERO_RUN 1 scatters them page by page, the worst
 * case for a layout that leaves zero pages as holes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	int shift = 0;

	if (end == s)
		return -1;
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		end++;
		break;
	case 'M':
	case 'm':
		shift = 20;
		end++;
		break;
	case 'G':
	case 'g':
		shift = 30;
		end++;
		break;
	}
	if (*end)
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t size, seed = 1, state, run_left = 0;
	unsigned zero_pct = 25, repeat_pct = 15, zero_run = 32;
	bool zero = false;
	static uint64_t page[PAGE / 8];
	int fd;

	if (argc < 3 || parse_size(argv[2], &size) || size % PAGE) {
		fprintf(
		    stderr,
		    "usage: mkram PATH SIZE [SEED [ZERO%% [REPEAT%%]]] (SIZE a multiple of 4K)\n");
		return 2;
	}
	if (argc > 3)
		seed = strtoull(argv[3], NULL, 10);
	if (argc > 4)
		zero_pct = (unsigned)atoi(argv[4]);
	if (argc > 5)
		repeat_pct = (unsigned)atoi(argv[5]);
	if (argc > 6)
		zero_run = (unsigned)atoi(argv[6]);
	if (zero_pct > 100 || zero_run < 1 || (zero_pct < 100 && zero_pct + repeat_pct > 100)) {
		fprintf(stderr, "mkram: percentages or run length out of range\n");
		return 2;
	}
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size)) {
		fprintf(stderr, "mkram: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	state = seed * 0x9e3779b97f4a7c15ull + 1;
	for (uint64_t off = 0; off < size; off += PAGE) {
		unsigned pick;

		/* Alternate runs of zero and data pages, lengths random around their means. */
		while (!run_left) {
			double mean;

			zero = zero_pct ? !zero : false;
			if (!zero_pct || zero_pct == 100) {
				zero = zero_pct == 100;
				run_left = UINT64_MAX;
				break;
			}
			mean = zero ? (double)zero_run
				    : (double)zero_run * (100 - zero_pct) / zero_pct;
			run_left = 1 + next(&state) % (uint64_t)(2 * mean > 1 ? 2 * mean : 1);
		}
		run_left--;
		if (zero)
			continue; /* a hole: reads as zero */
		pick = (unsigned)(next(&state) % (100 - zero_pct));
		if (pick < repeat_pct) {
			uint64_t pattern = 0x0101010101010101ull * (1 + next(&state) % 7);

			for (size_t i = 0; i < PAGE / 8; i++)
				page[i] = pattern;
		} else {
			for (size_t i = 0; i < PAGE / 8; i++)
				page[i] = next(&state);
		}
		if (pwrite(fd, page, PAGE, (off_t)off) != PAGE) {
			fprintf(stderr, "mkram: %s: %s\n", argv[1], strerror(errno));
			return 1;
		}
	}
	return close(fd) ? 1 : 0;
}
