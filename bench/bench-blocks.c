/* SPDX-License-Identifier: MIT */
/*
 * The block caches (lib/blocks.c) against the C library's malloc on the
 * pattern events follow: one producer thread allocates blocks of a small
 * event's size and writes their first words, worker threads free them.
 * Blocks travel in batches of 64 through a list under one mutex, at most
 * 1024 at a time (as a queue bound would hold them), the same for both
 * systems, so the difference is the allocator. One run per process, one
 * JSON line:
 *   bench-blocks --system blocks|malloc [--blocks N] [--workers W]
 * Under valgrind --tool=callgrind, two runs with different N give the
 * instructions one allocation and its free cost (see bench/README.md).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "blocks-internal.h"

#define HANDOFF 64
#define MAX_BATCHES_IN_FLIGHT 16

struct batch {
	struct batch *next;
	unsigned n;
	void *block[HANDOFF];
};

static struct {
	bool use_blocks;
	unsigned long blocks;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a batch to free, or done */
	pthread_cond_t room; /* fewer than MAX_BATCHES_IN_FLIGHT */
	struct batch *head, *tail;
	unsigned in_flight;
	bool done;
} run = {.lock = PTHREAD_MUTEX_INITIALIZER,
         .cond = PTHREAD_COND_INITIALIZER,
         .room = PTHREAD_COND_INITIALIZER};

static void *
block_alloc(void)
{
	return run.use_blocks ? evfn__block_alloc() : malloc(EVFN__BLOCK_SIZE);
}

static void
block_free(void *b)
{
	if (run.use_blocks)
		evfn__block_free(b);
	else
		free(b);
}

static void
hand_over(struct batch *b)
{
	pthread_mutex_lock(&run.lock);
	while (run.in_flight >= MAX_BATCHES_IN_FLIGHT)
		pthread_cond_wait(&run.room, &run.lock);
	run.in_flight++;
	b->next = NULL;
	if (run.tail)
		run.tail->next = b;
	else
		run.head = b;
	run.tail = b;
	pthread_cond_signal(&run.cond);
	pthread_mutex_unlock(&run.lock);
}

static void *
worker(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&run.lock);
		while (!run.head && !run.done)
			pthread_cond_wait(&run.cond, &run.lock);
		struct batch *b = run.head;
		if (b) {
			run.head = b->next;
			if (!run.head)
				run.tail = NULL;
			run.in_flight--;
			pthread_cond_signal(&run.room);
		}
		pthread_mutex_unlock(&run.lock);
		if (!b)
			return NULL;
		for (unsigned i = 0; i < b->n; i++)
			block_free(b->block[i]);
		free(b);
	}
}

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	const char *system = NULL;
	unsigned workers = 2;
	run.blocks = 2000000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--system") == 0)
			system = argv[i + 1];
		else if (strcmp(argv[i], "--blocks") == 0)
			run.blocks = strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--workers") == 0)
			workers = (unsigned)atoi(argv[i + 1]);
	}
	if (!system || workers < 1 || workers > 16 ||
	    (strcmp(system, "blocks") != 0 && strcmp(system, "malloc") != 0)) {
		fprintf(stderr, "usage: bench-blocks --system blocks|malloc "
		                "[--blocks N] [--workers W]\n");
		return 2;
	}
	run.use_blocks = strcmp(system, "blocks") == 0;
	pthread_t th[16];
	for (unsigned i = 0; i < workers; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	struct rusage u0, u1;
	getrusage(RUSAGE_SELF, &u0);
	int64_t t0 = now_ns();
	struct batch *b = NULL;
	for (unsigned long k = 0; k < run.blocks; k++) {
		if (!b) {
			b = malloc(sizeof(*b));
			if (!b)
				return 1;
			b->n = 0;
		}
		uint64_t *blk = block_alloc();
		if (!blk)
			return 1;
		/* What building an event writes first: its header. */
		blk[0] = k;
		blk[1] = k;
		b->block[b->n++] = blk;
		if (b->n == HANDOFF) {
			hand_over(b);
			b = NULL;
		}
	}
	if (b)
		hand_over(b);
	pthread_mutex_lock(&run.lock);
	run.done = true;
	pthread_cond_broadcast(&run.cond);
	pthread_mutex_unlock(&run.lock);
	for (unsigned i = 0; i < workers; i++)
		pthread_join(th[i], NULL);
	int64_t ns = now_ns() - t0;
	getrusage(RUSAGE_SELF, &u1);
	printf("{\"system\": \"%s\", \"blocks\": %lu, \"workers\": %u, "
	       "\"blocks_per_s\": %.1f, \"cpu_s\": %.4f}\n",
	       system, run.blocks, workers, run.blocks * 1e9 / (double)ns,
	       (u1.ru_utime.tv_sec - u0.ru_utime.tv_sec) +
	               (u1.ru_utime.tv_usec - u0.ru_utime.tv_usec) / 1e6 +
	               (u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) +
	               (u1.ru_stime.tv_usec - u0.ru_stime.tv_usec) / 1e6);
	return 0;
}
