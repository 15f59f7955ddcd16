/* SPDX-License-Identifier: MIT */
/*
 * guest: a stand-in for a running VM. Maps a RAM file shared and keeps
 * changing it until killed, so that live snapshots have something to chase.
 *
 *   guest PATH [--working-set PCT] [--mode mixed|random|aba] [--rate N]
 *              [--hold US] [--seed N] [--main-exits]
 *
 * --working-set  percent of the pages it touches (default 5), spread over
 *                the file
 * --mode mixed   (default) mostly random stores into pages, some pages set
 *                to zero (and later filled again), some A-B-A changes
 *        random  random stores only
 *        aba     every change is A-B-A: the page becomes B, stays B for
 *                --hold microseconds, and goes back to exactly A
 * --rate N       changes per second (default 0: as fast as it can)
 * --main-exits   change memory from a second thread and pthread_exit the
 *                main one: the thread-group leader stays a zombie (state Z
 *                in /proc/PID/task/PID/stat) while the process runs on
 *
 * It runs until SIGTERM or SIGKILL; SIGSTOP/SIGCONT freeze and thaw it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

enum mode { MIXED, RANDOM, ABA };

struct guest {
	uint8_t *mem;
	uint64_t *ws; /* the pages of the working set */
	uint64_t nws;
	enum mode mode;
	unsigned hold_us;
	uint64_t rng;
};

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void spin_us(unsigned us)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < (long)us);
}

/* A store of 64 random bytes at a random place in the page. */
static void scribble(struct guest *g, uint8_t *page)
{
	uint64_t *w = (uint64_t *)(page + (next(&g->rng) % (PAGE / 64)) * 64);

	for (int i = 0; i < 8; i++)
		w[i] = next(&g->rng) | 1; /* never leaves the page all zero */
}

/* A-B-A: the page becomes B for a while, then exactly what it was. */
static void aba(struct guest *g, uint8_t *page)
{
	static uint8_t a[PAGE];
	volatile uint8_t *v = page;

	memcpy(a, page, PAGE);
	for (size_t i = 0; i < PAGE; i += 8)
		*(volatile uint64_t *)(v + i) = ~*(uint64_t *)(a + i) ^ 0x5a5a5a5a5a5a5a5aull;
	spin_us(g->hold_us);
	memcpy(page, a, PAGE);
}

static void change(struct guest *g)
{
	uint8_t *page = g->mem + g->ws[next(&g->rng) % g->nws] * PAGE;
	unsigned pick = (unsigned)(next(&g->rng) % 100);

	if (g->mode == ABA || (g->mode == MIXED && pick >= 95))
		aba(g, page);
	else if (g->mode == MIXED && pick >= 85)
		memset(page, 0, PAGE); /* zero again: its next change fills it */
	else
		scribble(g, page);
}

static unsigned rate;

static void *run(void *arg)
{
	struct guest *g = arg;

	for (;;) {
		change(g);
		if (rate)
			usleep(1000000u / rate);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	/* Static: with --main-exits, main's stack is gone while the thread runs. */
	static struct guest g = {.mode = MIXED, .hold_us = 20};
	unsigned ws_pct = 5;
	uint64_t seed = 1, pages;
	struct stat st;
	int fd, main_exits = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: guest PATH [--working-set PCT] [--mode mixed|random|aba] "
				"[--rate N] [--hold US] [--seed N] [--main-exits]\n");
		return 2;
	}
	for (int i = 2; i < argc; i += 2) {
		if (!strcmp(argv[i], "--main-exits")) {
			main_exits = 1;
			i--; /* takes no value */
		} else if (i + 1 >= argc) {
			fprintf(stderr, "guest: '%s' needs a value\n", argv[i]);
			return 2;
		} else if (!strcmp(argv[i], "--working-set"))
			ws_pct = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rate"))
			rate = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--hold"))
			g.hold_us = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--mode"))
			g.mode = !strcmp(argv[i + 1], "aba")	  ? ABA
				 : !strcmp(argv[i + 1], "random") ? RANDOM
								  : MIXED;
		else {
			fprintf(stderr, "guest: unknown option '%s'\n", argv[i]);
			return 2;
		}
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0 || fstat(fd, &st) || st.st_size < PAGE) {
		fprintf(stderr, "guest: %s: %s\n", argv[1], fd < 0 ? strerror(errno) : "too small");
		return 1;
	}
	pages = (uint64_t)st.st_size / PAGE;
	g.mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	g.ws = calloc(pages, sizeof(*g.ws));
	if (g.mem == MAP_FAILED || !g.ws) {
		fprintf(stderr, "guest: cannot map %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	g.rng = seed * 0x9e3779b97f4a7c15ull + 7;
	for (uint64_t p = 0; p < pages; p++)
		if (next(&g.rng) % 100 < ws_pct)
			g.ws[g.nws++] = p;
	if (!g.nws)
		g.ws[g.nws++] = 0;
	if (main_exits) {
		pthread_t t;

		if (pthread_create(&t, NULL, run, &g)) {
			fprintf(stderr, "guest: cannot start a thread\n");
			return 1;
		}
		pthread_exit(NULL);
	}
	run(&g);
	return 0;
}
