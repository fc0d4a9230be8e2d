/* SPDX-License-Identifier: MIT */
/*
 * Accounting snapshots. The counters change only under the runtime lock
 * (dispatch.c's acct_*() helpers), so a snapshot taken under it satisfies
 * the accounting invariant exactly (events published on the fast path
 * are moved from their intake into the counters first, and those that
 * could not be are counted accepted and queued); the histograms are
 * merged from every writer (the workers, the loop, each function's own
 * totals).
 */
#include <evfn/stats.h>

#include "common-internal.h"
#include "dispatch-internal.h"
#include "loopexec-internal.h"
#include "pool-internal.h"
#include "registry-internal.h"
#include "stats-internal.h"

static const char *const stat_names[EVFN_STAT_COUNT] = {
	[EVFN_STAT_ACCEPTED] = "accepted",
	[EVFN_STAT_SUCCEEDED] = "succeeded",
	[EVFN_STAT_DEAD_LETTERED] = "dead_lettered",
	[EVFN_STAT_EXPIRED] = "expired",
	[EVFN_STAT_HANDED_BACK] = "handed_back",
	[EVFN_STAT_IN_FLIGHT] = "in_flight",
	[EVFN_STAT_QUEUED] = "queued",
	[EVFN_STAT_WAITING_RETRY] = "waiting_retry",
	[EVFN_STAT_ATTEMPTS] = "attempts",
	[EVFN_STAT_ATTEMPTS_FAILED] = "attempts_failed",
	[EVFN_STAT_RETRIES] = "retries",
	[EVFN_STAT_TIMEOUTS] = "timeouts",
	[EVFN_STAT_LATE] = "late",
	[EVFN_STAT_THROTTLED] = "throttled",
	[EVFN_STAT_CONCURRENCY_PEAK] = "concurrency_peak",
	[EVFN_STAT_BILLED_MS] = "billed_ms",
	[EVFN_STAT_OLDEST_QUEUED_MS] = "oldest_queued_ms",
	[EVFN_STAT_CANCELLED] = "cancelled",
	[EVFN_STAT_DELAYED] = "delayed",
	[EVFN_STAT_RATE_LIMITED] = "rate_limited",
	[EVFN_STAT_CIRCUIT_OPENS] = "circuit_opens",
	[EVFN_STAT_CIRCUIT_STATE] = "circuit_state",
	[EVFN_STAT_PAUSED] = "paused",
	[EVFN_STAT_BATCHES] = "batches",
};

/* Adds one function to a snapshot (now: monotonic, for ages). */
static void
add_fn_locked(struct evfn_rt *rt, struct evfn_stats *s, struct evfn_fn *fn,
              int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	evfn__fn_flush_pending_locked(rt, fn);
	/* Reserved and not filled yet, or out of memory for the queue. */
	uint64_t in_intake = fn->intake ? evfn__intake_count(fn->intake) : 0;
	s->v[EVFN_STAT_ACCEPTED] += in_intake;
	s->v[EVFN_STAT_QUEUED] += in_intake;
	for (int i = 0; i < EVFN_STAT_COUNT; i++)
		if (i == EVFN_STAT_CONCURRENCY_PEAK ||
		    i == EVFN_STAT_CIRCUIT_STATE)
			s->v[i] = EVFN__MAX(s->v[i], fn->stat[i]);
		else
			s->v[i] += fn->stat[i];
	/* Gauges that the queues hold rather than the counters. */
	s->v[EVFN_STAT_IN_FLIGHT] += (uint64_t)fn->running;
	s->v[EVFN_STAT_QUEUED] += (uint64_t)fn->queued;
	int64_t oldest = evfn__queue_empty(&fn->q)
	                         ? now
	                         : evfn__queue_head_ready_ns(&fn->q);
	if (now > oldest)
		s->v[EVFN_STAT_OLDEST_QUEUED_MS] = EVFN__MAX(
			s->v[EVFN_STAT_OLDEST_QUEUED_MS],
			(uint64_t)((now - oldest) / EVFN__NS_PER_MS));
	evfn__metrics_collect(s, &fn->retired);
	evfn__pool_collect_locked(rt->pool, fn, s);
	evfn__loopexec_collect_locked(rt->loopx, fn, s);
}

int
evfn_stats_take(evfn_rt *rt, const char *fn_name, evfn_stats **out)
{
	if (out)
		*out = NULL;
	if (!rt || !out)
		return EVFN_EINVAL;
	struct evfn_stats *s = evfn__calloc(1, sizeof(*s));
	if (!s)
		return EVFN_ENOMEM;
	int rc = 0;
	int64_t now = evfn__now_ns();
	evfn__lock_acquire(&rt->lock);
	if (fn_name) {
		struct evfn_fn *fn = evfn__fn_find_locked(rt, fn_name);
		if (fn)
			add_fn_locked(rt, s, fn, now);
		else
			rc = EVFN_ENOFN;
	} else {
		for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next)
			add_fn_locked(rt, s, fn, now);
	}
	evfn__lock_release(&rt->lock);
	if (rc < 0) {
		evfn__free(s);
		return rc;
	}
	*out = s;
	return 0;
}

uint64_t
evfn_stats_value(const evfn_stats *s, evfn_stat which)
{
	if (!s || (unsigned)which >= EVFN_STAT_COUNT)
		return 0;
	return s->v[which];
}

void
evfn_stats_free(evfn_stats *s)
{
	evfn__free(s);
}

const char *
evfn_stat_name(evfn_stat which)
{
	return (unsigned)which < EVFN_STAT_COUNT ? stat_names[which] : NULL;
}

int64_t
evfn_stats_quantile(const evfn_stats *s, evfn_histogram which, double q)
{
	if (!s || (unsigned)which > EVFN_HIST_QUEUE_WAIT || !(q >= 0.0) ||
	    q > 1.0)
		return 0;
	const uint64_t *b = s->hist[which];
	uint64_t total = 0;
	for (unsigned i = 0; i < EVFN__HIST_BUCKETS; i++)
		total += b[i];
	if (total == 0)
		return 0;
	/* The rank of the quantile, 1-based: the smallest value with at
	 * least q of the values at or below it. */
	uint64_t rank = (uint64_t)(q * (double)total);
	if ((double)rank < q * (double)total || rank == 0)
		rank++;
	uint64_t seen = 0;
	for (unsigned i = 0; i < EVFN__HIST_BUCKETS; i++) {
		seen += b[i];
		if (seen >= rank)
			return evfn__hist_upper(i);
	}
	return evfn__hist_upper(EVFN__HIST_BUCKETS - 1);
}

size_t
evfn_stats_buckets(void)
{
	return EVFN__HIST_BUCKETS;
}

uint64_t
evfn_stats_bucket(const evfn_stats *s, evfn_histogram which, size_t i,
                  int64_t *upper_ns)
{
	if (upper_ns)
		*upper_ns = i < EVFN__HIST_BUCKETS ? evfn__hist_upper((unsigned)i)
		                                   : 0;
	if (!s || (unsigned)which > EVFN_HIST_QUEUE_WAIT ||
	    i >= EVFN__HIST_BUCKETS)
		return 0;
	return s->hist[which][i];
}

uint64_t
evfn_stats_sum_ns(const evfn_stats *s, evfn_histogram which)
{
	if (!s || (unsigned)which > EVFN_HIST_QUEUE_WAIT)
		return 0;
	return s->hist_sum_ns[which];
}

double
evfn_stats_serverless_cost(const evfn_stats *s, int memory_mb,
                           double usd_per_million_requests,
                           double usd_per_gb_second)
{
	if (!s || memory_mb < 1 || usd_per_million_requests < 0 ||
	    usd_per_gb_second < 0)
		return 0;
	double requests = (double)s->v[EVFN_STAT_ATTEMPTS];
	double gb_seconds = (double)s->v[EVFN_STAT_BILLED_MS] / 1000.0 *
	                    (double)memory_mb / 1024.0;
	return requests / 1e6 * usd_per_million_requests +
	       gb_seconds * usd_per_gb_second;
}

struct evfn__fn_snapshot *
evfn__stats_snapshot_all(struct evfn_rt *rt, size_t *n)
{
	evfn__lock_acquire(&rt->lock);
	size_t count = rt->nfns;
	struct evfn__fn_snapshot *snaps =
		evfn__calloc(count ? count : 1, sizeof(*snaps));
	if (snaps) {
		int64_t now = evfn__now_ns();
		size_t i = 0;
		for (struct evfn_fn *fn = rt->fns.head; fn && i < count;
		     fn = fn->all_next, i++) {
			snaps[i].name = fn->name; /* lives as long as rt */
			add_fn_locked(rt, &snaps[i].s, fn, now);
		}
	}
	evfn__lock_release(&rt->lock);
	*n = count;
	return snaps;
}
