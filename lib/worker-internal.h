/* SPDX-License-Identifier: MIT */
/*
 * A thread that runs handlers, as the executors use it (worker.c): a
 * pool worker embeds one, the loop executor has one. Its fields are the
 * owner thread's, except that the measurement array is created under the
 * runtime lock so that snapshots can read it there.
 */
#ifndef EVFN_WORKER_INTERNAL_H
#define EVFN_WORKER_INTERNAL_H

#include <stdint.h>

#include "common-internal.h"
#include "eventlog-internal.h"
#include "invocation-internal.h"
#include "metrics-internal.h"

struct evfn_fn;
struct evfn_rt;
struct evfn__warm_slot;

struct evfn__worker {
	struct evfn_rt *rt;
	struct evfn__warm_slot *slots; /* warm state per function index */
	unsigned nslots;
	/* Measurements per function index; the array and its entries are
	 * created and read under rt->lock, the counters written by the
	 * owner alone. */
	struct evfn__metrics **metrics;
	unsigned nmetrics;
	struct evfn__batch batch;   /* the items of the batch call it runs */
};

/* The runtime whose handler runs on this thread now, or NULL: calls that
 * would wait for that handler (drain, free) refuse rather than wait on
 * themselves. */
extern _Thread_local struct evfn_rt *evfn__tls_handler_rt
	EVFN__TLS_INITIAL_EXEC;

void evfn__worker_init(struct evfn__worker *w, struct evfn_rt *rt);
/* Runs the fini hooks of the warm states w built, on the thread that
 * built them (for a pool worker, its own, as it exits). */
void evfn__worker_end_states(struct evfn__worker *w);
/* Ends what states are left, then frees what w holds. */
void evfn__worker_destroy(struct evfn__worker *w);

/* Runs one call (inv and the batch items after it) on the current
 * thread, no lock held: the batch view, the warm state, the START
 * event-log records, the handler. Returns its outcome, or EVFN_PENDING
 * when a loop handler will complete later. */
int evfn__worker_run(struct evfn__worker *w, struct evfn__inv *inv);
void evfn__worker_tell_outcome(struct evfn__eventlog *log,
                               struct evfn__inv *inv, int outcome);
/* Tells the event log what a call's return means (a late return, a
 * timeout, retries to come) before the state machine takes it. No lock
 * held; inv is still the returning thread's. Inline: with no event log
 * it is a test. */
static inline void
evfn__worker_tell_return(struct evfn__eventlog *log, struct evfn__inv *inv,
                         int outcome)
{
	if (evfn__eventlog_on(log) && outcome != EVFN_PENDING)
		evfn__worker_tell_outcome(log, inv, outcome);
}
/* Where w measures fn's calls: NULL when metrics are off (or, out of
 * memory, for calls that go unmeasured). Created on first use, under
 * rt->lock (not held by the caller). Owner thread. */
struct evfn__metrics *evfn__worker_metrics(struct evfn__worker *w,
                                           struct evfn_fn *fn);
/* Measures the call inv that returned at end_ns (monotonic) into m (from
 * evfn__worker_metrics(), not NULL): its run time and its items' queue
 * waits. Inline: a pool worker looks m up once for the calls it took
 * together and measures each. Owner thread. */
static inline void
evfn__worker_measure_into(struct evfn__metrics *m,
                          const struct evfn__inv *inv, int64_t end_ns)
{
	evfn__metrics_call(m, end_ns - inv->start_ns);
	evfn__metrics_waits(m, inv, inv->start_ns);
}
/* evfn__worker_measure_into() the metrics of inv's function, unless
 * metrics are off. Owner thread. */
void evfn__worker_measure(struct evfn__worker *w, const struct evfn__inv *inv,
                          int64_t end_ns);
/* Measures only the queue waits: a loop call that returned EVFN_PENDING,
 * whose run time is known when it completes. Owner thread. */
void evfn__worker_measure_wait(struct evfn__worker *w,
                               const struct evfn__inv *inv);
/* Folds w's measurements into its functions' own totals as it leaves
 * for good, so that what it measured stays counted. rt->lock held, on
 * the worker's thread after its last measurement. */
void evfn__worker_retire_locked(struct evfn__worker *w);
/* Adds w's measurements of fn into the snapshot s. rt->lock held. */
void evfn__worker_collect_locked(const struct evfn__worker *w,
                                 const struct evfn_fn *fn,
                                 struct evfn_stats *s);

#endif /* EVFN_WORKER_INTERNAL_H */
