/* SPDX-License-Identifier: MIT */
/*
 * Backoff delays: fixed, linear or exponential growth, capped, then one of
 * the four jitter variants of "Exponential Backoff and Jitter" (AWS
 * Architecture Blog): none, full, equal and decorrelated. Pure functions;
 * the PRNG state belongs to the caller.
 */
#include <math.h>

#include "backoff-internal.h"
#include "common-internal.h"

int64_t
evfn__prng_range(uint64_t *state, int64_t lo, int64_t hi)
{
	if (hi <= lo)
		return lo;
	uint64_t span = (uint64_t)(hi - lo) + 1;
	/* The modulo bias is below span / 2^64: irrelevant for delays. */
	return lo + (int64_t)(evfn__prng_next(state) % span);
}

/* The un-jittered delay, capped; computed in double so that large
 * multipliers and attempt counts saturate at the cap instead of
 * overflowing. */
static int64_t
raw_delay(const evfn__backoff_policy *p, unsigned n)
{
	double d;
	switch (p->kind) {
	case EVFN_BACKOFF_FIXED:
		d = (double)p->base_ns;
		break;
	case EVFN_BACKOFF_LINEAR:
		d = (double)p->base_ns * n;
		break;
	case EVFN_BACKOFF_EXPONENTIAL:
	default:
		d = (double)p->base_ns * pow(p->multiplier, (double)(n - 1));
		break;
	}
	if (!(d < (double)p->cap_ns)) /* also catches NaN and infinity */
		return p->cap_ns;
	return (int64_t)d;
}

int64_t
evfn__backoff_delay(const evfn__backoff_policy *p, unsigned failed_attempts,
                    int64_t prev_ns, uint64_t *prng)
{
	unsigned n = failed_attempts ? failed_attempts : 1;
	int64_t d = raw_delay(p, n);
	switch (p->jitter) {
	case EVFN_JITTER_NONE:
		return d;
	case EVFN_JITTER_EQUAL:
		return d / 2 + evfn__prng_range(prng, 0, d - d / 2);
	case EVFN_JITTER_DECORRELATED: {
		/* sleep = min(cap, random_between(base, prev * 3)) */
		int64_t prev = prev_ns > 0 ? prev_ns : p->base_ns;
		int64_t hi = prev > p->cap_ns / 3 ? p->cap_ns : prev * 3;
		return EVFN__MIN(p->cap_ns,
		                 evfn__prng_range(prng, p->base_ns,
		                                  EVFN__MAX(hi, p->base_ns)));
	}
	case EVFN_JITTER_FULL:
	default:
		return evfn__prng_range(prng, 0, d);
	}
}
