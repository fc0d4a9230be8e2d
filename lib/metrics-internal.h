/* SPDX-License-Identifier: MIT */
/*
 * What is measured of each function's calls (metrics.c): run time and
 * queue wait as histograms, and billed milliseconds. Each writer (a
 * worker, the loop, a function's totals under the runtime lock) keeps
 * its own struct evfn__metrics; a snapshot (struct evfn_stats) merges
 * them. A leaf.
 */
#ifndef EVFN_METRICS_INTERNAL_H
#define EVFN_METRICS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <evfn/stats.h>

#include "common-internal.h"
#include "histogram-internal.h"
#include "invocation-internal.h"

/* What one writer measures of one function: run time and queue wait of
 * each attempt, and billed milliseconds (run time rounded up to 1 ms per
 * call, as Lambda bills). */
struct evfn__metrics {
	struct evfn__hist run;
	struct evfn__hist wait;
	atomic_uint_fast64_t billed_ms;
};

/* A snapshot (evfn_stats_take()): the counters, and the histograms
 * merged from every writer's. */
struct evfn_stats {
	uint64_t v[EVFN_STAT_COUNT];
	uint64_t hist[2][EVFN__HIST_BUCKETS]; /* run, queue wait */
	uint64_t hist_sum_ns[2];
};

/* Billed milliseconds for a run: rounded up to a whole ms, at least 1, as
 * Lambda bills. */
static inline uint64_t
evfn__billed_ms(int64_t run)
{
	/* Most calls run under a millisecond: one comparison, no division. */
	if (EVFN__LIKELY(run <= EVFN__NS_PER_MS))
		return 1;
	return (uint64_t)(run + EVFN__NS_PER_MS - 1) /
	       (uint64_t)EVFN__NS_PER_MS;
}
/* A call that ran for run ns: its run time, billed once (a batch call
 * runs, and bills, once). Single writer. Inline, like the two below:
 * every attempt of every event is measured (about 60 instructions of
 * calls per event when they were out of line). */
static inline void
evfn__metrics_call(struct evfn__metrics *m, int64_t run)
{
	evfn__hist_record(&m->run, run);
	evfn__counter_add(&m->billed_ms, evfn__billed_ms(run));
}
/* The queue wait of each item of the call inv, which started at
 * start_ns. Single writer. */
static inline void
evfn__metrics_waits(struct evfn__metrics *m, const struct evfn__inv *inv,
                    int64_t start_ns)
{
	for (const struct evfn__inv *x = inv; x; x = x->batch_next)
		evfn__hist_record(&m->wait, start_ns - x->ready_ns);
}
/* The call inv was fenced at its deadline: its run time counts as
 * timeout_ns until it returns; with_waits when its queue waits were not
 * measured yet (a pool attempt measures them at its return). */
void evfn__metrics_fenced(struct evfn__metrics *m, const struct evfn__inv *inv,
                          int64_t timeout_ns, bool with_waits);
/* The fenced call returned after run ns: the timeout counted for it
 * becomes its real run time (at least the timeout). */
void evfn__metrics_late(struct evfn__metrics *m, int64_t timeout_ns,
                        int64_t run);
/* Adds src into dst; dst's writer must be the caller (or hold the lock
 * that serialises its writers). */
void evfn__metrics_add(struct evfn__metrics *dst,
                       const struct evfn__metrics *src);
/* Adds m into the snapshot s. */
void evfn__metrics_collect(struct evfn_stats *s, const struct evfn__metrics *m);

#endif /* EVFN_METRICS_INTERNAL_H */
