/* SPDX-License-Identifier: MIT */
/*
 * databytes: how many bytes of a file are data, not holes, as SEEK_DATA and
 * SEEK_HOLE find them (allocated blocks, stat's st_blocks, also count a
 * filesystem's own metadata, such as XFS's extent tree).
 *
 *   databytes PATH
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned long long total = 0;
	off_t at = 0, data, hole;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: databytes PATH\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0)
		goto fail;
	while ((data = lseek(fd, at, SEEK_DATA)) >= 0) {
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			goto fail;
		total += (unsigned long long)(hole - data);
		at = hole;
	}
	if (errno != ENXIO)
		goto fail;
	printf("%llu\n", total);
	return 0;
fail:
	fprintf(stderr, "databytes: %s: %s\n", argv[1], strerror(errno));
	return 1;
}
