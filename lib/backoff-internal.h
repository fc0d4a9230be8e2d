/* SPDX-License-Identifier: MIT */
/*
 * Backoff policies as pure functions: the delay before the next attempt
 * from the policy, the attempt number, the previous delay (for
 * decorrelated jitter) and a caller-owned PRNG state, so that tests can
 * seed them and check bounds and means.
 */
#ifndef EVFN_BACKOFF_INTERNAL_H
#define EVFN_BACKOFF_INTERNAL_H

#include <stdint.h>

#include <evfn/function.h>

typedef struct evfn__backoff_policy {
	evfn_backoff kind;
	evfn_jitter jitter;
	int64_t base_ns;
	int64_t cap_ns;
	double multiplier;
} evfn__backoff_policy;

/* xorshift64*: small, fast, good enough for jitter; never seed with 0. */
static inline uint64_t
evfn__prng_next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * UINT64_C(2685821657736338717);
}

/* A uniform value in [lo, hi] (lo <= hi). */
int64_t evfn__prng_range(uint64_t *state, int64_t lo, int64_t hi);

/* The delay before attempt `failed_attempts + 1`, after `failed_attempts`
 * (>= 1) attempts failed. prev_ns is the delay returned last time for this
 * event (0 before the first retry). The result is in [0, cap]. */
int64_t evfn__backoff_delay(const evfn__backoff_policy *p,
                            unsigned failed_attempts, int64_t prev_ns,
                            uint64_t *prng);

#endif /* EVFN_BACKOFF_INTERNAL_H */
