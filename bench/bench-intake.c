/* SPDX-License-Identifier: MIT */
/*
 * The intake ring (lib/intake.c) against the same bounded ring behind one
 * mutex: P producer threads push N pointers in batches of B through a
 * bound of 1024 to one consumer, which takes up to 64 at a time and sleeps
 * whenever it drained the ring; a producer whose batch found the ring
 * empty wakes it (the same rule for both, so the two differ only in how a
 * slot is reserved and taken). A producer refused for a full ring yields
 * and retries. One run per process, one JSON line:
 *   bench-intake --system intake|mutex [--producers P] [--items N]
 *                [--batch B]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "intake-internal.h"

#define BOUND 1024
#define TAKE_MAX 64

/* The baseline: a ring of BOUND pointers under one mutex. */
struct locked_ring {
	pthread_mutex_t lock;
	void *slot[BOUND];
	unsigned head, count;
};

struct run {
	bool use_intake;
	struct evfn__intake *intake;
	struct locked_ring ring;
	unsigned producers, batch;
	unsigned long items;       /* per producer */
	atomic_ulong retries;
	atomic_uint done;
	pthread_barrier_t start;
	/* The consumer's wake-up: a flag under a mutex and condvar. */
	pthread_mutex_t wake_lock;
	pthread_cond_t wake_cond;
	bool wake;
	char payload;
};

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
wake_consumer(struct run *r)
{
	pthread_mutex_lock(&r->wake_lock);
	r->wake = true;
	pthread_cond_signal(&r->wake_cond);
	pthread_mutex_unlock(&r->wake_lock);
}

/* Pushes n items; returns false when the ring refused (full). */
static bool
push(struct run *r, void **items, unsigned n, bool *was_empty)
{
	if (r->use_intake) {
		struct evfn__intake_ticket t;
		if (evfn__intake_reserve(r->intake, n, &t) != 0)
			return false;
		for (unsigned i = 0; i < n; i++)
			evfn__intake_fill(r->intake, &t, i, items[i]);
		*was_empty = t.was_empty;
		return true;
	}
	struct locked_ring *q = &r->ring;
	pthread_mutex_lock(&q->lock);
	if (q->count + n > BOUND) {
		pthread_mutex_unlock(&q->lock);
		return false;
	}
	*was_empty = q->count == 0;
	for (unsigned i = 0; i < n; i++)
		q->slot[(q->head + q->count + i) % BOUND] = items[i];
	q->count += n;
	pthread_mutex_unlock(&q->lock);
	return true;
}

static size_t
take(struct run *r, void **out, bool *drained)
{
	if (r->use_intake)
		return evfn__intake_take(r->intake, out, TAKE_MAX, drained);
	struct locked_ring *q = &r->ring;
	pthread_mutex_lock(&q->lock);
	size_t n = q->count < TAKE_MAX ? q->count : TAKE_MAX;
	for (size_t i = 0; i < n; i++)
		out[i] = q->slot[(q->head + i) % BOUND];
	q->head = (q->head + (unsigned)n) % BOUND;
	q->count -= (unsigned)n;
	*drained = q->count == 0;
	pthread_mutex_unlock(&q->lock);
	return n;
}

static void *
producer(void *arg)
{
	struct run *r = arg;
	void *items[256];
	for (unsigned i = 0; i < r->batch; i++)
		items[i] = &r->payload;
	pthread_barrier_wait(&r->start);
	for (unsigned long k = 0; k < r->items;) {
		unsigned n = r->batch;
		if (n > r->items - k)
			n = (unsigned)(r->items - k);
		bool was_empty;
		while (!push(r, items, n, &was_empty)) {
			atomic_fetch_add_explicit(&r->retries, 1,
			                          memory_order_relaxed);
			sched_yield();
		}
		if (was_empty)
			wake_consumer(r);
		k += n;
	}
	atomic_fetch_add(&r->done, 1);
	wake_consumer(r);
	return NULL;
}

static unsigned long
consume(struct run *r)
{
	unsigned long total = 0, want = r->items * r->producers;
	void *out[TAKE_MAX];
	while (total < want) {
		bool drained;
		size_t n = take(r, out, &drained);
		for (size_t i = 0; i < n; i++)
			if (out[i] != &r->payload)
				abort();
		total += n;
		if (total >= want)
			break;
		if (drained) {
			pthread_mutex_lock(&r->wake_lock);
			while (!r->wake)
				pthread_cond_wait(&r->wake_cond, &r->wake_lock);
			r->wake = false;
			pthread_mutex_unlock(&r->wake_lock);
		} else if (n == 0) {
			sched_yield();
		}
	}
	return total;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench-intake --system intake|mutex "
	                "[--producers P] [--items N] [--batch B]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static struct run r;
	const char *system = NULL;
	r.producers = 1;
	r.items = 2000000;
	r.batch = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--system") == 0)
			system = argv[i + 1];
		else if (strcmp(argv[i], "--producers") == 0)
			r.producers = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--items") == 0)
			r.items = strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--batch") == 0)
			r.batch = (unsigned)atoi(argv[i + 1]);
		else
			usage();
	}
	if (!system || r.producers < 1 || r.producers > 64 || r.batch < 1 ||
	    r.batch > 256)
		usage();
	r.use_intake = strcmp(system, "intake") == 0;
	if (!r.use_intake && strcmp(system, "mutex") != 0)
		usage();
	r.items /= r.producers; /* the total stays what was asked */
	if (r.use_intake && evfn__intake_new(&r.intake, BOUND) != 0)
		return 1;
	pthread_mutex_init(&r.ring.lock, NULL);
	pthread_mutex_init(&r.wake_lock, NULL);
	pthread_cond_init(&r.wake_cond, NULL);
	pthread_barrier_init(&r.start, NULL, r.producers + 1);
	pthread_t th[64];
	for (unsigned i = 0; i < r.producers; i++)
		pthread_create(&th[i], NULL, producer, &r);
	struct rusage u0, u1;
	getrusage(RUSAGE_SELF, &u0);
	pthread_barrier_wait(&r.start);
	int64_t t0 = now_ns();
	unsigned long total = consume(&r);
	int64_t ns = now_ns() - t0;
	for (unsigned i = 0; i < r.producers; i++)
		pthread_join(th[i], NULL);
	getrusage(RUSAGE_SELF, &u1);
	printf("{\"system\": \"%s\", \"producers\": %u, \"batch\": %u, "
	       "\"items\": %lu, \"items_per_s\": %.1f, \"retries\": %lu, "
	       "\"vcsw\": %ld, \"ivcsw\": %ld}\n",
	       system, r.producers, r.batch, total, total * 1e9 / (double)ns,
	       atomic_load(&r.retries), u1.ru_nvcsw - u0.ru_nvcsw,
	       u1.ru_nivcsw - u0.ru_nivcsw);
	evfn__intake_free(r.intake);
	return 0;
}
