/* SPDX-License-Identifier: MIT */
/*
 * The worker pool (pool.c), as the runtime, the watchdog, cancel and
 * snapshots use it; the state machine reaches it only through the
 * executor entry it fills (wake, backlog). Every function but new, free
 * and stop expects the runtime lock held.
 */
#ifndef EVFN_POOL_INTERNAL_H
#define EVFN_POOL_INTERNAL_H

#include <stdint.h>

#include "invocation-internal.h"
#include "metrics-internal.h"

struct evfn__ended;
struct evfn__executor;
struct evfn__pool;
struct evfn_fn;
struct evfn_rt;

/* A pool for rt, which fills x (the pool executor's entry). NULL when out
 * of memory. */
struct evfn__pool *evfn__pool_new(struct evfn_rt *rt,
                                  struct evfn__executor *x);
/* After evfn__pool_stop(). NULL-safe. */
void evfn__pool_free(struct evfn__pool *p);
/* Starts the minimum number of workers (one if work waits and the
 * minimum is 0); they take nothing before the runtime is STARTED, under
 * the same hold of rt->lock. */
int evfn__pool_start_locked(struct evfn__pool *p);
/* After evfn__pool_start_locked() when the start fails (the runtime
 * stays CREATED): waits until the workers it started have left, and
 * joins them (rt->lock released while waiting). */
void evfn__pool_unwind_locked(struct evfn__pool *p);
/* Stops every worker and joins it. Takes rt->lock. */
void evfn__pool_stop(struct evfn__pool *p);
/* The pool's threads now (stuck ones not counted). */
int evfn__pool_threads_locked(const struct evfn__pool *p);
/* Fences the attempts of workers whose deadline passed (see
 * evfn__timeout_locked()), replacing their workers. Fenced invocations whose
 * cancel hook or TIMEOUT event-log record is still due are pushed on *fenced
 * (linked through next). */
void evfn__pool_fence_overdue_locked(struct evfn__pool *p, int64_t now,
                                     struct evfn__ended *ended,
                                     struct evfn__inv **fenced);
/* Calls f on every attempt running on a worker (batch items included). */
void evfn__pool_each_running_locked(struct evfn__pool *p,
                                    void (*f)(struct evfn__inv *, void *),
                                    void *arg);
/* Adds every worker's measurements of fn into the snapshot s. */
void evfn__pool_collect_locked(struct evfn__pool *p, const struct evfn_fn *fn,
                               struct evfn_stats *s);

#endif /* EVFN_POOL_INTERNAL_H */
