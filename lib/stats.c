/* SPDX-License-Identifier: MIT */
/*
 * Accounting snapshots. Counters change only under the runtime lock, so a
 * snapshot taken under it satisfies the accounting invariant exactly.
 */
#include <evfn/stats.h>

#include "common-internal.h"
#include "runtime-internal.h"

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
};

static void
add_fn(struct evfn_stats *s, const struct evfn_fn *fn)
{
	for (int i = 0; i < EVFN_STAT_COUNT; i++)
		if (i == EVFN_STAT_CONCURRENCY_PEAK)
			s->v[i] = EVFN__MAX(s->v[i], fn->stat[i]);
		else
			s->v[i] += fn->stat[i];
	/* Gauges that the queues hold rather than the counters. */
	s->v[EVFN_STAT_IN_FLIGHT] += (uint64_t)fn->running;
	s->v[EVFN_STAT_QUEUED] += (uint64_t)fn->queued;
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
	pthread_mutex_lock(&rt->lock);
	if (fn_name) {
		struct evfn_fn *fn = evfn__fn_find(rt, fn_name);
		if (fn)
			add_fn(s, fn);
		else
			rc = EVFN_ENOFN;
	} else {
		for (struct evfn_fn *fn = rt->all_head; fn; fn = fn->all_next)
			add_fn(s, fn);
	}
	pthread_mutex_unlock(&rt->lock);
	if (rc < 0) {
		evfn__free(s);
		return rc;
	}
	*out = s;
	return 0;
}

uint64_t
evfn_stats_get(const evfn_stats *s, evfn_stat which)
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
