/* SPDX-License-Identifier: MIT */
/*
 * devimage: snapshot RAM files with device state taken from a file, through
 * the public API, as a VMM driver would (for the CLI tests and the fuzz
 * seeds, before any VMM is at hand). The guest is "frozen" by a freezer
 * that does nothing; a thread plays the VMM, writing STATE in pieces.
 *
 *   devimage IMAGE STATE PRODUCER MACHINE NAME=RAM...
 *
 * Prints the save report's device-state figures (bytes, and seconds from
 * the source's start to its finish).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mrsnap.h"

struct vmm {
	const char *state;
	int fd;
	pthread_t thread;
	int failed;
};

static void *vmm_main(void *arg)
{
	struct vmm *v = arg;
	char buf[65536];
	int in = open(v->state, O_RDONLY | O_CLOEXEC);
	ssize_t n = 0;

	while (in >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (send(v->fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	v->failed = in < 0 || n != 0;
	if (in >= 0)
		close(in);
	close(v->fd);
	return NULL;
}

static int start(void *ctx, int fd, struct mrs_error *err)
{
	struct vmm *v = ctx;

	v->fd = dup(fd);
	if (v->fd < 0 || pthread_create(&v->thread, NULL, vmm_main, v)) {
		snprintf(err->msg, sizeof(err->msg), "cannot start the fake VMM");
		return err->code = -1;
	}
	return 0;
}

static int finish(void *ctx, uint64_t bytes, struct mrs_error *err)
{
	struct vmm *v = ctx;

	(void)bytes;
	pthread_join(v->thread, NULL);
	if (v->failed) {
		snprintf(err->msg, sizeof(err->msg), "cannot read '%s'", v->state);
		return err->code = -5;
	}
	return 0;
}

static int nothing(void *ctx, struct mrs_error *err)
{
	(void)ctx;
	(void)err;
	return 0;
}

int main(int argc, char **argv)
{
	struct mrs_freezer_ops ops = MRS_FREEZER_OPS_INIT;
	struct mrs_devstate_source src = MRS_DEVSTATE_SOURCE_INIT;
	struct mrs_save_opts o = MRS_SAVE_OPTS_INIT;
	struct mrs_save_report rep = MRS_SAVE_REPORT_INIT;
	struct mrs_error err = {0};
	struct mrs_freezer *fz;
	struct mrs_ram ram[16];
	struct vmm v = {0};
	int n = argc - 5;

	if (argc < 6 || n > 16) {
		fprintf(stderr, "usage: devimage IMAGE STATE PRODUCER MACHINE NAME=RAM...\n");
		return 2;
	}
	for (int i = 0; i < n; i++) {
		char *eq = strchr(argv[5 + i], '=');

		if (!eq) {
			fprintf(stderr, "devimage: '%s' is not NAME=RAM\n", argv[5 + i]);
			return 2;
		}
		*eq = '\0';
		ram[i] = (struct mrs_ram){argv[5 + i], eq + 1, 0};
	}
	ops.freeze = nothing;
	ops.thaw = nothing;
	if (mrs_freezer_new(&fz, &ops, NULL, &err))
		goto fail;
	v.state = argv[2];
	src.start = start;
	src.finish = finish;
	src.ctx = &v;
	src.producer = argv[3];
	src.machine = argv[4];
	o.freezers = &fz;
	o.nfreezers = 1;
	o.devstate = &src;
	if (mrs_save(argv[1], ram, (unsigned)n, &o, &rep, &err)) {
		mrs_freezer_free(fz);
		goto fail;
	}
	printf("device state: %llu bytes in %.6f s\n", (unsigned long long)rep.devstate_bytes,
	       (double)rep.devstate_ns / 1e9);
	mrs_save_report_free(&rep);
	mrs_freezer_free(fz);
	return 0;
fail:
	fprintf(stderr, "devimage: %s\n", err.msg);
	return 1;
}
