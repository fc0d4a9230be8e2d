/* SPDX-License-Identifier: MIT */
/*
 * Backoff policies: each growth kind and each jitter variant stays within
 * its bounds and, over many draws from a seeded PRNG, has the mean its
 * distribution implies.
 */
#include "backoff-internal.h"
#include "harness.h"

#define MS INT64_C(1000000)
#define DRAWS 200000

static evfn__backoff_policy
policy(evfn_backoff kind, evfn_jitter jitter)
{
	return (evfn__backoff_policy){.kind = kind, .jitter = jitter,
	                              .base_ns = 100 * MS,
	                              .cap_ns = 10000 * MS,
	                              .multiplier = 2.0};
}

static void
test_backoff_growth_without_jitter(void **state)
{
	uint64_t prng = 42;
	evfn__backoff_policy p = policy(EVFN_BACKOFF_FIXED, EVFN_JITTER_NONE);
	ASSERT_EQ(evfn__backoff_delay(&p, 1, 0, &prng), 100 * MS);
	ASSERT_EQ(evfn__backoff_delay(&p, 7, 0, &prng), 100 * MS);
	p.kind = EVFN_BACKOFF_LINEAR;
	ASSERT_EQ(evfn__backoff_delay(&p, 3, 0, &prng), 300 * MS);
	p.kind = EVFN_BACKOFF_EXPONENTIAL;
	ASSERT_EQ(evfn__backoff_delay(&p, 1, 0, &prng), 100 * MS);
	ASSERT_EQ(evfn__backoff_delay(&p, 4, 0, &prng), 800 * MS);
	/* Capped, and no overflow however far the attempts go. */
	ASSERT_EQ(evfn__backoff_delay(&p, 10, 0, &prng), 10000 * MS);
	ASSERT_EQ(evfn__backoff_delay(&p, 100000, 0, &prng), 10000 * MS);
	p.multiplier = 1000.0;
	ASSERT_EQ(evfn__backoff_delay(&p, 900, 0, &prng), 10000 * MS);
}

/* Draws DRAWS delays for attempt n and checks [lo, hi] and the mean. */
static void
check_distribution(evfn__backoff_policy *p, unsigned n, int64_t lo, int64_t hi,
                   double mean)
{
	uint64_t prng = 0x9e3779b97f4a7c15ull;
	double sum = 0;
	int64_t prev = 0;
	for (int i = 0; i < DRAWS; i++) {
		int64_t d = evfn__backoff_delay(p, n, prev, &prng);
		if (d < lo || d > hi)
			fail_msg("delay %lld outside [%lld, %lld]", (long long)d,
			         (long long)lo, (long long)hi);
		sum += (double)d;
		if (p->jitter == EVFN_JITTER_DECORRELATED)
			prev = d;
	}
	double got = sum / DRAWS;
	/* 1% of the mean is over 20 standard errors for these spreads. */
	if (got < mean * 0.99 || got > mean * 1.01)
		fail_msg("mean %.0f, expected %.0f", got, mean);
}

static void
test_backoff_full_jitter_uniform_up_to_delay(void **state)
{
	evfn__backoff_policy p =
		policy(EVFN_BACKOFF_EXPONENTIAL, EVFN_JITTER_FULL);
	check_distribution(&p, 3, 0, 400 * MS, 200.0 * MS);
}

static void
test_backoff_equal_jitter_keeps_half(void **state)
{
	evfn__backoff_policy p =
		policy(EVFN_BACKOFF_EXPONENTIAL, EVFN_JITTER_EQUAL);
	check_distribution(&p, 3, 200 * MS, 400 * MS, 300.0 * MS);
}

static void
test_backoff_decorrelated_jitter_bounded_by_base_and_cap(void **state)
{
	evfn__backoff_policy p =
		policy(EVFN_BACKOFF_EXPONENTIAL, EVFN_JITTER_DECORRELATED);
	p.cap_ns = 1000 * MS;
	/* Feeding each delay back as prev, the chain lives in [base, cap]
	 * and most draws sit near the cap; the first, from prev = 0, is
	 * uniform in [base, 3 base]. */
	uint64_t prng = 7;
	double sum = 0;
	for (int i = 0; i < 1000; i++)
		sum += (double)evfn__backoff_delay(&p, 1, 0, &prng);
	double first_mean = sum / 1000;
	assert_true(first_mean > 180.0 * MS && first_mean < 220.0 * MS);
	int64_t prev = 0;
	for (int i = 0; i < DRAWS; i++) {
		int64_t d = evfn__backoff_delay(&p, 2, prev, &prng);
		assert_true(d >= 100 * MS && d <= 1000 * MS);
		prev = d;
	}
}

static void
test_backoff_prng_range_inclusive(void **state)
{
	uint64_t prng = 1;
	bool lo = false, hi = false;
	for (int i = 0; i < 10000; i++) {
		int64_t v = evfn__prng_range(&prng, 3, 5);
		assert_true(v >= 3 && v <= 5);
		lo |= v == 3;
		hi |= v == 5;
	}
	assert_true(lo && hi);
	ASSERT_EQ(evfn__prng_range(&prng, 9, 9), 9);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_backoff_growth_without_jitter),
		TEST(test_backoff_full_jitter_uniform_up_to_delay),
		TEST(test_backoff_equal_jitter_keeps_half),
		TEST(test_backoff_decorrelated_jitter_bounded_by_base_and_cap),
		TEST(test_backoff_prng_range_inclusive),
	};
	return evfn_test_main("backoff", tests);
}
