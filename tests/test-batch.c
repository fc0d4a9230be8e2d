/* SPDX-License-Identifier: MIT */
/*
 * Batch admission (evfn_publish_batch(), evfn_emit_many(),
 * evfn_submit_batch()): every refusal of bad input with its code and
 * nothing accepted; all or nothing against queue bounds, counting the
 * whole batch and every target of a fan-out; consecutive sequence
 * numbers in order; one wake-up per function that had no work; every
 * submitted event's callback exactly once; and a property: random
 * batches against random bounds are accepted exactly when each target's
 * room holds the batch's events for it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"
#include "../lib/dispatch-internal.h"

static int
noop(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	return EVFN_OK;
}

/* A runtime, not started (what is admitted stays queued), with
 * functions "a" (capacity cap_a) and "b" (cap_b) subscribed to "t", and
 * "a" also to "only.a". */
static evfn_rt *
two_functions(int64_t cap_a, int64_t cap_b)
{
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, cap_a));
	ASSERT_OK(evfn_register(rt, "a", noop, NULL, fo, NULL));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, cap_b));
	ASSERT_OK(evfn_register(rt, "b", noop, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_subscribe(rt, "t", "a"));
	ASSERT_OK(evfn_subscribe(rt, "t", "b"));
	ASSERT_OK(evfn_subscribe(rt, "only.a", "a"));
	return rt;
}

static void
new_events(evfn_event **evs, size_t n, const char *type)
{
	for (size_t i = 0; i < n; i++)
		ASSERT_OK(evfn_event_new(&evs[i], type, &i, sizeof(i)));
}

static void
unref_events(evfn_event **evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		evfn_event_unref(evs[i]);
}

/* Whether none of the events was touched by admission: not frozen (a
 * setter still works), no sequence number. */
static void
assert_untouched(evfn_event **evs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ASSERT_EQ(evfn_event_seq(evs[i]), 0);
		ASSERT_OK(evfn_event_set_subject(evs[i], "still mine"));
	}
}

static void
test_batch_bad_input_refused_with_its_code(void **state)
{
	(void)state;
	evfn_rt *rt = two_functions(100, 100);
	evfn_event *evs[4];
	new_events(evs, 4, "t");
	uint64_t seq = 7;
	ASSERT_RC(evfn_publish_batch(NULL, NULL, evs, 4, &seq), EVFN_EINVAL);
	ASSERT_RC(evfn_publish_batch(rt, NULL, NULL, 4, &seq), EVFN_EINVAL);
	ASSERT_RC(evfn_publish_batch(rt, NULL, evs, 0, &seq), EVFN_EINVAL);
	ASSERT_RC(evfn_publish_batch(rt, NULL, evs, EVFN_BATCH_MAX + 1, &seq),
	          EVFN_ERANGE);
	ASSERT_RC(evfn_publish_batch(rt, "", evs, 4, &seq), EVFN_EINVAL);
	ASSERT_RC(evfn_publish_batch(rt, "nope", evs, 4, &seq), EVFN_ENOFN);
	evfn_event *with_null[3] = {evs[0], NULL, evs[1]};
	ASSERT_RC(evfn_publish_batch(rt, NULL, with_null, 3, &seq),
	          EVFN_EINVAL);
	evfn_event *twice[3] = {evs[0], evs[1], evs[0]};
	ASSERT_RC(evfn_publish_batch(rt, NULL, twice, 3, &seq), EVFN_EINVAL);
	ASSERT_EQ(seq, 7);
	assert_untouched(evs, 4);
	/* The marks that find an event twice are gone: the same events
	 * are taken once each. */
	ASSERT_OK(evfn_publish_batch(rt, NULL, evs, 2, &seq));
	evfn_event *frozen[2] = {evs[2], evs[0]};
	ASSERT_RC(evfn_publish_batch(rt, NULL, frozen, 2, NULL), EVFN_EPERM);
	assert_untouched(&evs[2], 2);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_ACCEPTED), 4); /* 2 x a, b */

	evfn_emit_item items[2] = {{"t", "x", 1}, {"a..b", NULL, 0}};
	ASSERT_RC(evfn_emit_many(NULL, items, 2, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_emit_many(rt, NULL, 2, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_emit_many(rt, items, 0, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_emit_many(rt, items, EVFN_BATCH_MAX + 1, NULL),
	          EVFN_ERANGE);
	ASSERT_RC(evfn_emit_many(rt, items, 2, NULL), EVFN_EPATTERN);
	items[1] = (evfn_emit_item){"t", NULL, 3};
	ASSERT_RC(evfn_emit_many(rt, items, 2, NULL), EVFN_EINVAL);
	items[1] = (evfn_emit_item){"nobody.listens", NULL, 0};
	ASSERT_RC(evfn_emit_many(rt, items, 2, NULL), EVFN_ENOSUB);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_ACCEPTED), 4);

	ASSERT_RC(evfn_submit_batch(rt, "a", &evs[2], 2, NULL, NULL, NULL),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_submit_batch(NULL, "a", &evs[2], 2, NULL, NULL, NULL),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_submit_batch(rt, NULL, &evs[2], 2, NULL, NULL, NULL),
	          EVFN_EINVAL);
	assert_untouched(&evs[2], 2);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_ACCEPTED), 4);
	unref_events(evs, 4);
	ASSERT_OK(evfn_rt_free(rt));
}

/* A batch that one target's queue cannot hold whole is refused whole:
 * nothing queued anywhere, the events untouched and publishable. */
static void
test_batch_over_any_bound_refused_whole(void **state)
{
	(void)state;
	evfn_rt *rt = two_functions(8, 100);
	evfn_event *evs[9];
	new_events(evs, 9, "t");
	ASSERT_RC(evfn_publish_batch(rt, NULL, evs, 9, NULL), EVFN_EQUEUEFULL);
	assert_untouched(evs, 9);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_ACCEPTED), 0);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_QUEUED), 0);
	/* Below the bound by the batch, the batch fits... */
	ASSERT_OK(evfn_publish_batch(rt, NULL, evs, 3, NULL));
	/* ...and the rest counts what is queued: 3 + 6 > 8. */
	ASSERT_RC(evfn_publish_batch(rt, NULL, &evs[3], 6, NULL),
	          EVFN_EQUEUEFULL);
	assert_untouched(&evs[3], 6);
	ASSERT_EQ(stat_of(rt, "a", EVFN_STAT_QUEUED), 3);
	ASSERT_EQ(stat_of(rt, "b", EVFN_STAT_QUEUED), 3);
	/* Exactly to the bound is taken; one more is not. */
	ASSERT_OK(evfn_publish_batch(rt, NULL, &evs[3], 5, NULL));
	ASSERT_EQ(stat_of(rt, "a", EVFN_STAT_QUEUED), 8);
	ASSERT_RC(evfn_publish_batch(rt, NULL, &evs[8], 1, NULL),
	          EVFN_EQUEUEFULL);
	/* By name, the same bound. */
	ASSERT_RC(evfn_publish_batch(rt, "a", &evs[8], 1, NULL),
	          EVFN_EQUEUEFULL);
	ASSERT_OK(evfn_publish_batch(rt, "b", &evs[8], 1, NULL));
	ASSERT_EQ(stat_of(rt, "a", EVFN_STAT_QUEUED), 8);
	ASSERT_EQ(stat_of(rt, "b", EVFN_STAT_QUEUED), 9);
	/* Mixed routes: one event for "a" alone refuses the batch. */
	evfn_event *mixed[2];
	ASSERT_OK(evfn_event_new(&mixed[0], "only.a", NULL, 0));
	ASSERT_OK(evfn_event_new(&mixed[1], "t", NULL, 0));
	ASSERT_RC(evfn_publish_batch(rt, NULL, mixed, 2, NULL),
	          EVFN_EQUEUEFULL);
	assert_untouched(mixed, 2);
	ASSERT_EQ(stat_of(rt, "b", EVFN_STAT_QUEUED), 9);
	unref_events(mixed, 2);
	assert_accounting(rt, NULL);
	unref_events(evs, 9);
	ASSERT_OK(evfn_rt_free(rt));
}

/* Sequence numbers are consecutive from *first_seq, in the batch's
 * order, and a started runtime runs every event. */
static atomic_int ran;
static atomic_ullong last_seq;
static atomic_int out_of_order;

static int
in_order(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)u;
	uint64_t seq = evfn_event_seq(ev);
	if (seq <= atomic_load(&last_seq))
		atomic_fetch_add(&out_of_order, 1);
	atomic_store(&last_seq, seq);
	atomic_fetch_add(&ran, 1);
	return EVFN_OK;
}

static void
test_batch_sequence_numbers_consecutive_in_order(void **state)
{
	(void)state;
	atomic_store(&ran, 0);
	atomic_store(&last_seq, 0);
	atomic_store(&out_of_order, 0);
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_concurrency(fo, 1));
	ASSERT_OK(evfn_register(rt, "seq", in_order, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	enum { N = 64, ROUNDS = 20 };
	uint64_t expect = 1;
	for (int r = 0; r < ROUNDS; r++) {
		evfn_event *evs[N];
		new_events(evs, N, "seq");
		uint64_t first;
		ASSERT_OK(evfn_publish_batch(rt, "seq", evs, N, &first));
		ASSERT_EQ(first, expect);
		for (size_t i = 0; i < N; i++)
			ASSERT_EQ(evfn_event_seq(evs[i]), first + i);
		expect = first + N;
		unref_events(evs, N);
	}
	WAIT_FOR(atomic_load(&ran) == N * ROUNDS, 10000);
	ASSERT_EQ(atomic_load(&out_of_order), 0);
	ASSERT_OK(evfn_rt_drain(rt, 5000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

/* The executor is woken once per function that had no work, not once
 * per event. */
static int wakes;
static void (*pool_wake)(void *);

static void
counting_wake(void *impl)
{
	wakes++; /* under rt->lock */
	pool_wake(impl);
}

static void
test_batch_wakes_once_per_function(void **state)
{
	(void)state;
	evfn_rt *rt = two_functions(1000, 1000);
	struct evfn__executor *x = &rt->exec[EVFN_EXECUTOR_POOL];
	pool_wake = x->wake;
	x->wake = counting_wake;
	wakes = 0;
	evfn_event *evs[64];
	new_events(evs, 64, "t");
	ASSERT_OK(evfn_publish_batch(rt, NULL, evs, 64, NULL));
	ASSERT_EQ(wakes, 2); /* a and b */
	evfn_emit_item items[64];
	for (size_t i = 0; i < 64; i++)
		items[i] = (evfn_emit_item){"only.a", "x", 1};
	ASSERT_OK(evfn_emit_many(rt, items, 64, NULL));
	ASSERT_EQ(wakes, 2); /* a had work already */
	ASSERT_EQ(stat_of(rt, "a", EVFN_STAT_QUEUED), 128);
	unref_events(evs, 64);
	ASSERT_OK(evfn_rt_free(rt));
}

/* Each submitted event's callback runs exactly once with its own
 * argument, and a refused batch calls none. */
static atomic_int called[32];

static void
on_result(const evfn_result *res, void *arg)
{
	ASSERT_OK(evfn_result_code(res));
	atomic_fetch_add((atomic_int *)arg, 1);
}

static int
calls(void)
{
	int sum = 0;
	for (size_t i = 0; i < 32; i++)
		sum += atomic_load(&called[i]);
	return sum;
}

static void
test_batch_submit_calls_back_each_once(void **state)
{
	(void)state;
	memset(called, 0, sizeof(called));
	evfn_rt *rt = two_functions(20, 20);
	ASSERT_OK(evfn_rt_start(rt));
	evfn_event *evs[32];
	void *args[32];
	new_events(evs, 32, "t");
	for (size_t i = 0; i < 32; i++)
		args[i] = &called[i];
	ASSERT_RC(evfn_submit_batch(rt, "a", evs, 32, on_result, args, NULL),
	          EVFN_EQUEUEFULL);
	assert_untouched(evs, 32);
	ASSERT_OK(evfn_submit_batch(rt, "a", evs, 16, on_result, args, NULL));
	ASSERT_OK(evfn_submit_batch(rt, "b", &evs[16], 16, on_result,
	                            &args[16], NULL));
	WAIT_FOR(calls() == 32, 10000);
	ASSERT_OK(evfn_rt_drain(rt, 5000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
	for (size_t i = 0; i < 32; i++)
		ASSERT_EQ(atomic_load(&called[i]), 1);
	unref_events(evs, 32);
}

/* Property: random batches (fan-out and direct, 1..40 events) against
 * random room are accepted exactly when every target's room holds the
 * batch's events for it, and then each target's queue grows by exactly
 * that many. */
static void
test_batch_accepted_exactly_when_it_fits(void **state)
{
	(void)state;
	uint64_t seed = 0x5eedba7c;
	for (int round = 0; round < 200; round++) {
		int64_t cap[2] = {1 + (int64_t)(test_mix64(seed++) % 50),
		                  1 + (int64_t)(test_mix64(seed++) % 50)};
		evfn_rt *rt = two_functions(cap[0], cap[1]);
		int64_t queued[2] = {0, 0};
		for (int b = 0; b < 8; b++) {
			size_t n = 1 + test_mix64(seed++) % 40;
			evfn_event *evs[40];
			int64_t want[2] = {0, 0};
			for (size_t i = 0; i < n; i++) {
				bool both = test_mix64(seed++) % 3 != 0;
				ASSERT_OK(evfn_event_new(
					&evs[i], both ? "t" : "only.a", NULL, 0));
				want[0]++;
				want[1] += both;
			}
			bool fits = queued[0] + want[0] <= cap[0] &&
			            queued[1] + want[1] <= cap[1];
			int rc = evfn_publish_batch(rt, NULL, evs, n, NULL);
			if (fits) {
				ASSERT_OK(rc);
				queued[0] += want[0];
				queued[1] += want[1];
			} else {
				ASSERT_RC(rc, EVFN_EQUEUEFULL);
				assert_untouched(evs, n);
			}
			ASSERT_EQ(stat_of(rt, "a", EVFN_STAT_QUEUED), queued[0]);
			ASSERT_EQ(stat_of(rt, "b", EVFN_STAT_QUEUED), queued[1]);
			unref_events(evs, n);
		}
		ASSERT_OK(evfn_rt_free(rt));
	}
}

/* The queue bound under eight racing producers, half of them in
 * batches: nothing drains the queue (the runtime is not started), each
 * producer offers single events after its first refused batch and stops
 * at its first refused single event. Every refusal of a single event
 * must come at the bound (a refusal below it would leave the total
 * short), and the total never passes it. */
#define RACERS 8
#define RACE_CAP 5000

static evfn_rt *race_rt;
static atomic_int race_taken;

static void *
race(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	size_t n = id % 2 ? 1 + id : 1;
	uint64_t r = id;
	for (;;) {
		evfn_event *evs[16];
		new_events(evs, n, "t");
		int rc = evfn_publish_batch(race_rt, NULL, evs, n, NULL);
		unref_events(evs, n);
		if (rc == 0) {
			atomic_fetch_add(&race_taken, (int)n);
		} else {
			ASSERT_RC(rc, EVFN_EQUEUEFULL);
			if (n == 1)
				return NULL;
			n = 1;
		}
		if (n > 1) /* vary the batches */
			n = 2 + test_mix64(r++) % 15;
	}
}

static void
test_batch_bound_holds_under_racing_producers(void **state)
{
	(void)state;
	for (int round = 0; round < 5; round++) {
		race_rt = two_functions(RACE_CAP, RACE_CAP * 2);
		atomic_store(&race_taken, 0);
		test_threads_run(race, RACERS);
		ASSERT_EQ(atomic_load(&race_taken), RACE_CAP);
		ASSERT_EQ(stat_of(race_rt, "a", EVFN_STAT_QUEUED), RACE_CAP);
		ASSERT_EQ(stat_of(race_rt, "b", EVFN_STAT_QUEUED), RACE_CAP);
		assert_accounting(race_rt, NULL);
		ASSERT_OK(evfn_rt_free(race_rt));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_batch_bad_input_refused_with_its_code),
		TEST(test_batch_over_any_bound_refused_whole),
		TEST(test_batch_sequence_numbers_consecutive_in_order),
		TEST(test_batch_wakes_once_per_function),
		TEST(test_batch_submit_calls_back_each_once),
		TEST(test_batch_accepted_exactly_when_it_fits),
		TEST(test_batch_bound_holds_under_racing_producers),
	};
	return evfn_test_main("batch", tests);
}
