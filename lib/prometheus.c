/* SPDX-License-Identifier: MIT */
/*
 * The Prometheus text exposition (format 0.0.4) of every function's
 * metrics: one consistent snapshot per function, rendered into a growing
 * buffer. Metric names carry the evfn_ prefix, counters end in _total,
 * durations are in seconds, and the function is the `function` label.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <evfn/deadletter.h>
#include <evfn/metrics.h>

#include "common-internal.h"
#include "stats-internal.h"

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void
put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct buf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *p = evfn__realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* A label value with \, " and newlines escaped, as the format requires. */
static void
put_label(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			put(b, "\\\\");
		else if (*v == '"')
			put(b, "\\\"");
		else if (*v == '\n')
			put(b, "\\n");
		else
			put(b, "%c", *v);
	}
}

static const struct {
	evfn_stat stat;
	const char *help; /* the name is evfn_stat_name() */
	bool counter;
} scalars[] = {
	{EVFN_STAT_ACCEPTED, "Events admitted.", true},
	{EVFN_STAT_SUCCEEDED, "Events that succeeded.", true},
	{EVFN_STAT_DEAD_LETTERED,
	 "Events dead-lettered (failed or attempts exhausted).", true},
	{EVFN_STAT_EXPIRED, "Events older than their maximum age.", true},
	{EVFN_STAT_HANDED_BACK, "Events handed back at drain.", true},
	{EVFN_STAT_ATTEMPTS, "Attempts started.", true},
	{EVFN_STAT_ATTEMPTS_FAILED, "Attempts that did not succeed.", true},
	{EVFN_STAT_RETRIES, "Retries scheduled.", true},
	{EVFN_STAT_TIMEOUTS, "Attempts past their deadline.", true},
	{EVFN_STAT_LATE, "Returns of fenced attempts, ignored.", true},
	{EVFN_STAT_THROTTLED, "Events refused at admission.", true},
	{EVFN_STAT_IN_FLIGHT, "Attempts running now.", false},
	{EVFN_STAT_QUEUED, "Events waiting to start.", false},
	{EVFN_STAT_WAITING_RETRY, "Events waiting for a retry.", false},
	{EVFN_STAT_CONCURRENCY_PEAK, "Most attempts that ran at once.", false},
	{EVFN_STAT_CANCELLED, "Events cancelled by request.", true},
	{EVFN_STAT_DELAYED, "Delayed events not due yet.", false},
	{EVFN_STAT_RATE_LIMITED,
	 "Times queued work waited for the rate limit.", true},
	{EVFN_STAT_CIRCUIT_OPENS, "Times the circuit breaker opened.", true},
	{EVFN_STAT_CIRCUIT_STATE,
	 "Circuit breaker: 0 closed, 1 open, 2 half-open.", false},
	{EVFN_STAT_PAUSED, "1 while the function is paused.", false},
	{EVFN_STAT_BATCHES, "Handler calls of batch functions.", true},
};

/* Histogram bounds exposed, in seconds; each collects the fine buckets
 * whose upper bound does not exceed it. */
static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                0.005,  0.01,    0.025,  0.05,  0.1,
                                0.25,   0.5,     1,      2.5,   5,
                                10,     30,      60};

static void
put_histogram(struct buf *b, const struct evfn__fn_snapshot *snaps, size_t n,
              evfn_histogram which, const char *name, const char *help)
{
	put(b, "# HELP evfn_%s_seconds %s\n# TYPE evfn_%s_seconds histogram\n",
	    name, help, name);
	for (size_t f = 0; f < n; f++) {
		const uint64_t *h = snaps[f].s.hist[which];
		uint64_t cum = 0;
		unsigned i = 0;
		for (size_t k = 0; k < EVFN__ARRAY_SIZE(bounds); k++) {
			int64_t le_ns = (int64_t)(bounds[k] * 1e9);
			while (i < EVFN__HIST_BUCKETS &&
			       evfn__hist_upper(i) <= le_ns)
				cum += h[i++];
			put(b, "evfn_%s_seconds_bucket{function=\"", name);
			put_label(b, snaps[f].name);
			put(b, "\",le=\"%g\"} %llu\n", bounds[k],
			    (unsigned long long)cum);
		}
		uint64_t total = 0;
		for (unsigned j = 0; j < EVFN__HIST_BUCKETS; j++)
			total += h[j];
		put(b, "evfn_%s_seconds_bucket{function=\"", name);
		put_label(b, snaps[f].name);
		put(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)total);
		put(b, "evfn_%s_seconds_sum{function=\"", name);
		put_label(b, snaps[f].name);
		put(b, "\"} %.9f\n", (double)snaps[f].s.hist_sum_ns[which] / 1e9);
		put(b, "evfn_%s_seconds_count{function=\"", name);
		put_label(b, snaps[f].name);
		put(b, "\"} %llu\n", (unsigned long long)total);
	}
}

int
evfn_metrics_prometheus(evfn_rt *rt, char **out, size_t *len)
{
	if (out)
		*out = NULL;
	if (len)
		*len = 0;
	if (!rt || !out)
		return EVFN_EINVAL;
	size_t n;
	struct evfn__fn_snapshot *snaps = evfn__stats_snapshot_all(rt, &n);
	if (!snaps)
		return EVFN_ENOMEM;
	struct buf b = {0};
	for (size_t k = 0; k < EVFN__ARRAY_SIZE(scalars); k++) {
		const char *name = evfn_stat_name(scalars[k].stat);
		const char *suffix = scalars[k].counter ? "_total" : "";
		put(&b, "# HELP evfn_%s%s %s\n# TYPE evfn_%s%s %s\n",
		    name, suffix, scalars[k].help, name,
		    suffix, scalars[k].counter ? "counter" : "gauge");
		for (size_t f = 0; f < n; f++) {
			put(&b, "evfn_%s%s{function=\"", name, suffix);
			put_label(&b, snaps[f].name);
			put(&b, "\"} %llu\n",
			    (unsigned long long)snaps[f].s.v[scalars[k].stat]);
		}
	}
	put(&b, "# HELP evfn_billed_seconds_total Run time billed per attempt, "
	        "each rounded up to 1 ms.\n"
	        "# TYPE evfn_billed_seconds_total counter\n");
	for (size_t f = 0; f < n; f++) {
		put(&b, "evfn_billed_seconds_total{function=\"");
		put_label(&b, snaps[f].name);
		put(&b, "\"} %.3f\n",
		    (double)snaps[f].s.v[EVFN_STAT_BILLED_MS] / 1e3);
	}
	put(&b, "# HELP evfn_oldest_queued_seconds Age of the oldest queued "
	        "event.\n# TYPE evfn_oldest_queued_seconds gauge\n");
	for (size_t f = 0; f < n; f++) {
		put(&b, "evfn_oldest_queued_seconds{function=\"");
		put_label(&b, snaps[f].name);
		put(&b, "\"} %.3f\n",
		    (double)snaps[f].s.v[EVFN_STAT_OLDEST_QUEUED_MS] / 1e3);
	}
	put_histogram(&b, snaps, n, EVFN_HIST_RUN, "run",
	              "Run time of attempts.");
	put_histogram(&b, snaps, n, EVFN_HIST_QUEUE_WAIT, "queue_wait",
	              "Time from publish or retry due time to start.");
	put(&b, "# HELP evfn_dead_letters Dead letters in the store.\n"
	        "# TYPE evfn_dead_letters gauge\nevfn_dead_letters %zu\n",
	    evfn_dead_letter_count(rt));
	evfn__free(snaps);
	if (b.oom) {
		evfn__free(b.p);
		return EVFN_ENOMEM;
	}
	*out = b.p;
	if (len)
		*len = b.len;
	return 0;
}
