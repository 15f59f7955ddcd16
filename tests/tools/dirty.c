/* SPDX-License-Identifier: MIT */
/*
 * dirty: change a RAM file the way a running guest does between two
 * snapshots, the same for the same seed.
 *
 *   dirty PATH PERCENT ZERO_PAGES [SEED]
 *
 * Each page is overwritten with new random bytes with a probability of
 * PERCENT (a decimal: 2, 0.5); then ZERO_PAGES pages that hold data are
 * overwritten with zeros (memory the guest freed and cleared). Prints
 * "changed N zeroed M" on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int fail(const char *path)
{
	fprintf(stderr, "dirty: %s: %s\n", path, strerror(errno));
	return 1;
}

static int is_zero(const uint64_t *p)
{
	for (size_t i = 0; i < PAGE / 8; i++)
		if (p[i])
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	static uint64_t page[PAGE / 8], zeros[PAGE / 8];
	uint64_t seed = 2, state, npages, changed = 0, zeroed = 0, want_zero, tries = 0;
	double pct;
	struct stat st;
	int fd;

	if (argc < 4 || (pct = strtod(argv[2], NULL)) < 0 || pct > 100) {
		fprintf(stderr, "usage: dirty PATH PERCENT ZERO_PAGES [SEED]\n");
		return 2;
	}
	want_zero = strtoull(argv[3], NULL, 10);
	if (argc > 4)
		seed = strtoull(argv[4], NULL, 10);
	fd = open(argv[1], O_RDWR);
	if (fd < 0 || fstat(fd, &st))
		return fail(argv[1]);
	npages = (uint64_t)st.st_size / PAGE;
	state = seed * 0x9e3779b97f4a7c15ull + 7;
	for (uint64_t p = 0; p < npages; p++) {
		if ((double)(next(&state) % 1000000) >= pct * 10000)
			continue;
		for (size_t i = 0; i < PAGE / 8; i++)
			page[i] = next(&state) | 1; /* never a zero page */
		if (pwrite(fd, page, PAGE, (off_t)(p * PAGE)) != PAGE)
			return fail(argv[1]);
		changed++;
	}
	/* Pages with data, picked at random, cleared; give up after many misses (a sparse file). */
	while (npages && zeroed < want_zero && tries++ < 1000 * (want_zero + 1)) {
		uint64_t p = next(&state) % npages;

		if (pread(fd, page, PAGE, (off_t)(p * PAGE)) != PAGE)
			return fail(argv[1]);
		if (is_zero(page))
			continue;
		if (pwrite(fd, zeros, PAGE, (off_t)(p * PAGE)) != PAGE)
			return fail(argv[1]);
		zeroed++;
	}
	printf("changed %llu zeroed %llu\n", (unsigned long long)changed,
	       (unsigned long long)zeroed);
	return close(fd) ? fail(argv[1]) : 0;
}
