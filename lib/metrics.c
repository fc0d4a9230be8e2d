/* SPDX-License-Identifier: MIT */
/*
 * Measuring calls: run time and queue wait into one writer's histograms,
 * billed milliseconds as Lambda bills them, the correction when a call
 * fenced at its deadline returns, and merging writers into a snapshot.
 */
#include "common-internal.h"
#include "metrics-internal.h"

void
evfn__metrics_fenced(struct evfn__metrics *m, const struct evfn__inv *inv,
                     int64_t timeout_ns, bool with_waits)
{
	evfn__metrics_call(m, timeout_ns);
	if (with_waits)
		evfn__metrics_waits(m, inv, inv->start_ns);
}

void
evfn__metrics_late(struct evfn__metrics *m, int64_t timeout_ns, int64_t run)
{
	if (run < timeout_ns)
		run = timeout_ns;
	/* The deadline counted at the fence becomes the real run time. */
	evfn__hist_move(&m->run, timeout_ns, run);
	evfn__counter_add(&m->billed_ms,
	                  evfn__billed_ms(run) - evfn__billed_ms(timeout_ns));
}

static void
add_relaxed(atomic_uint_fast64_t *dst, const atomic_uint_fast64_t *src)
{
	evfn__counter_add(dst, atomic_load_explicit(src, memory_order_relaxed));
}

void
evfn__metrics_add(struct evfn__metrics *dst, const struct evfn__metrics *src)
{
	for (unsigned i = 0; i < EVFN__HIST_BUCKETS; i++) {
		add_relaxed(&dst->run.bucket[i], &src->run.bucket[i]);
		add_relaxed(&dst->wait.bucket[i], &src->wait.bucket[i]);
	}
	add_relaxed(&dst->run.sum_ns, &src->run.sum_ns);
	add_relaxed(&dst->wait.sum_ns, &src->wait.sum_ns);
	add_relaxed(&dst->billed_ms, &src->billed_ms);
}

void
evfn__metrics_collect(struct evfn_stats *s, const struct evfn__metrics *m)
{
	evfn__hist_merge(s->hist[0], &s->hist_sum_ns[0], &m->run);
	evfn__hist_merge(s->hist[1], &s->hist_sum_ns[1], &m->wait);
	s->v[EVFN_STAT_BILLED_MS] +=
		atomic_load_explicit(&m->billed_ms, memory_order_relaxed);
}
