/* SPDX-License-Identifier: MIT */
/*
 * Log-linear latency histograms: each power of two from 1 us up is split
 * into 8 equal buckets, so a recorded value is known within 12.5%, in a
 * fixed array that recording touches with one index computation and one
 * increment. Each worker owns its own histograms (one writer, no lock);
 * readers merge them.
 */
#ifndef EVFN_HISTOGRAM_INTERNAL_H
#define EVFN_HISTOGRAM_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#define EVFN__HIST_SUB_BITS 3
#define EVFN__HIST_SUB (1 << EVFN__HIST_SUB_BITS)
/* Bucket 0 holds everything below 2^10 ns (~1 us); the last, from about
 * 2^40 ns (~18 min) up. */
#define EVFN__HIST_MIN_EXP 10
#define EVFN__HIST_MAX_EXP 40
#define EVFN__HIST_BUCKETS                                                   \
	(1 + (EVFN__HIST_MAX_EXP - EVFN__HIST_MIN_EXP) * EVFN__HIST_SUB + 1)

struct evfn__hist {
	atomic_uint_fast64_t bucket[EVFN__HIST_BUCKETS];
	atomic_uint_fast64_t sum_ns;
};

/* The bucket a value in ns (>= 0) falls in, in one computation with no
 * branch: msb is ns's highest bit, but at least 10 (ns | 2047), and t the
 * four bits of ns from there down (8 to 15 from 1024 ns up; below that,
 * ns / 128, under 8). So (msb - 10) * 8 + t - 7 is the bucket from 1024
 * ns up, and at most 0 for what bucket 0 holds; the last bucket takes
 * all past it. Every attempt records two values: this takes 13
 * instructions (gcc 12, x86-64) where the obvious form's three branches
 * took about 20. msb is 63 ^ clz (the same as 63 - clz for 0..63),
 * which gcc reads as the bit scan itself. */
static inline unsigned
evfn__hist_index(int64_t ns)
{
	int64_t msb = 63 ^ __builtin_clzll((unsigned long long)ns |
	                                   ((2ull << EVFN__HIST_MIN_EXP) - 1));
	int64_t t = ns >> (msb - EVFN__HIST_SUB_BITS);
	int64_t i = msb * EVFN__HIST_SUB + t -
	            (EVFN__HIST_MIN_EXP * EVFN__HIST_SUB + EVFN__HIST_SUB - 1);
	if (i < 0)
		i = 0;
	if (i > EVFN__HIST_BUCKETS - 1)
		i = EVFN__HIST_BUCKETS - 1;
	return (unsigned)i;
}

/* Adds d to a counter that has one writer at a time (d = (uint64_t)-1
 * subtracts one): relaxed load and store suffice, and readers see the
 * counter whole. */
static inline void
evfn__counter_add(atomic_uint_fast64_t *c, uint64_t d)
{
	uint64_t v = atomic_load_explicit(c, memory_order_relaxed);
	atomic_store_explicit(c, v + d, memory_order_relaxed);
}

/* Records one value. Single writer. */
static inline void
evfn__hist_record(struct evfn__hist *h, int64_t ns)
{
	if (ns < 0)
		ns = 0;
	evfn__counter_add(&h->bucket[evfn__hist_index(ns)], 1);
	evfn__counter_add(&h->sum_ns, (uint64_t)ns);
}

/* Replaces a value recorded before, from_ns, by to_ns (both >= 0): the
 * sample moves between buckets and the sum follows. Single writer. */
static inline void
evfn__hist_move(struct evfn__hist *h, int64_t from_ns, int64_t to_ns)
{
	evfn__counter_add(&h->bucket[evfn__hist_index(from_ns)], (uint64_t)-1);
	evfn__counter_add(&h->bucket[evfn__hist_index(to_ns)], 1);
	evfn__counter_add(&h->sum_ns, (uint64_t)to_ns - (uint64_t)from_ns);
}

/* The largest value bucket i holds, in ns (INT64_MAX for the last). */
int64_t evfn__hist_upper(unsigned i);

/* Adds src into a plain array of counts (for snapshots). */
void evfn__hist_merge(uint64_t *counts, uint64_t *sum_ns,
                      const struct evfn__hist *src);

#endif /* EVFN_HISTOGRAM_INTERNAL_H */
