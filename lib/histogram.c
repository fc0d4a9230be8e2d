/* SPDX-License-Identifier: MIT */
/*
 * Histogram bucket bounds and merging; recording is inline in
 * histogram-internal.h.
 */
#include "histogram-internal.h"

int64_t
evfn__hist_upper(unsigned i)
{
	if (i == 0)
		return (INT64_C(1) << EVFN__HIST_MIN_EXP) - 1;
	if (i >= EVFN__HIST_BUCKETS - 1)
		return INT64_MAX;
	unsigned k = i - 1;
	unsigned exp = EVFN__HIST_MIN_EXP + k / EVFN__HIST_SUB;
	unsigned sub = k % EVFN__HIST_SUB;
	/* Bucket (exp, sub) holds [2^exp + sub * w, 2^exp + (sub + 1) * w)
	 * with w = 2^(exp - SUB_BITS). */
	int64_t w = INT64_C(1) << (exp - EVFN__HIST_SUB_BITS);
	return (INT64_C(1) << exp) + (int64_t)(sub + 1) * w - 1;
}

void
evfn__hist_merge(uint64_t *counts, uint64_t *sum_ns,
                 const struct evfn__hist *src)
{
	for (unsigned i = 0; i < EVFN__HIST_BUCKETS; i++)
		counts[i] += atomic_load_explicit(&src->bucket[i],
		                                  memory_order_relaxed);
	*sum_ns += atomic_load_explicit(&src->sum_ns, memory_order_relaxed);
}
