/* SPDX-License-Identifier: MIT */
/*
 * The one driver interface every system under test implements for the
 * dispatch benchmarks: create a pool of N workers bound to one task
 * function, submit an argument, destroy. Waiting for completion is not part
 * of it: the driver counts completions in the task function itself, so every
 * system is timed by the same detector. The task function is fixed at
 * creation because GThreadPool and an evfn function bind their handler
 * there; the peers that could take one per task (pthread, libuv) still store
 * it per task, as their textbook use does.
 */
#ifndef BENCH_POOL_H
#define BENCH_POOL_H

#include <stdint.h>

/* Runs once per submitted argument, on a worker thread. */
typedef void (*bench_task_fn)(void *arg);

/* What a pool is created with. */
struct bench_pool_config {
	int workers;          /* worker threads, fixed (min = max) */
	bench_task_fn fn;     /* the task function */
	int64_t queue_cap;    /* queue bound, for systems that have one */
	int fanout;           /* subscribers per event for submit_fanout */
	int features_off;     /* evfn: disable deadline/retry features */
	int metrics_off;      /* evfn: no latency histograms, billing */
	int64_t timeout_ms;   /* evfn: per-attempt timeout, 0 = default */
};

struct bench_pool_ops {
	const char *name;
	/* Creates and starts the pool; returns NULL on failure. */
	void *(*create)(const struct bench_pool_config *cfg);
	/* Queues one call fn(arg); arg is never NULL. Returns 0 or < 0. */
	int (*submit)(void *pool, void *arg);
	/* Delivers arg to cfg->fanout consumers in one operation, or NULL
	 * when the system has no such operation (the driver then calls
	 * submit cfg->fanout times). */
	int (*submit_fanout)(void *pool, void *arg);
	/* Queues n calls fn(args[i]) in one operation, or NULL when the
	 * system has none (the driver then calls submit n times). */
	int (*submit_batch)(void *pool, void *const *args, unsigned n);
	/* Waits for queued work, stops the workers and frees the pool. */
	void (*destroy)(void *pool);
	/* Times a submit had to back off because the queue was full; may
	 * be NULL. */
	uint64_t (*backoffs)(void *pool);
	/* Version of the library behind the pool, a static string. */
	const char *(*version)(void);
};

extern const struct bench_pool_ops bench_pthread_ops;
extern const struct bench_pool_ops bench_libuv_ops;
extern const struct bench_pool_ops bench_glib_ops;
extern const struct bench_pool_ops bench_evfn_ops;

#endif /* BENCH_POOL_H */
