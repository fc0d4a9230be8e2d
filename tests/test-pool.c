/* SPDX-License-Identifier: MIT */
/*
 * The worker pool under handlers that overrun their deadline and cannot
 * be stopped: every accepted event still ends, the pool keeps (or gets
 * back) its minimum and serves other functions, the stuck-thread cap
 * bounds the number of threads, drain hands back what waits behind stuck
 * handlers, and the concurrency peak counts attempts that really ran.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "deadline-harness.h"

/* Threads of this process besides the pool's: evfn's loop thread, and
 * two more for threads that left the pool's count and are in their last
 * instructions (they are counted out before they are gone). */
#define OTHER_THREADS 3

static evfn_rt *
new_runtime(int min, int max)
{
	return deadline_runtime(min, max, NULL);
}

/* Fails its first attempt, then succeeds. */
static int
retry_once(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return evfn_ctx_attempt(ctx) == 1 ? EVFN_RETRY : EVFN_OK;
}

/* Whether every event fn accepted has ended, with nothing waiting. */
static bool
all_ended(evfn_rt *rt, const char *fn)
{
	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, fn, &s));
	uint64_t ended = evfn_stats_value(s, EVFN_STAT_SUCCEEDED) +
	                 evfn_stats_value(s, EVFN_STAT_DEAD_LETTERED) +
	                 evfn_stats_value(s, EVFN_STAT_EXPIRED) +
	                 evfn_stats_value(s, EVFN_STAT_CANCELLED) +
	                 evfn_stats_value(s, EVFN_STAT_HANDED_BACK);
	bool done = ended == evfn_stats_value(s, EVFN_STAT_ACCEPTED) &&
	            evfn_stats_value(s, EVFN_STAT_QUEUED) == 0 &&
	            evfn_stats_value(s, EVFN_STAT_IN_FLIGHT) == 0 &&
	            evfn_stats_value(s, EVFN_STAT_WAITING_RETRY) == 0;
	evfn_stats_free(s);
	return done;
}

/* Drains, then frees once the stuck handlers have returned. */
static void
finish(evfn_rt *rt)
{
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	WAIT_FOR(evfn_rt_free(rt) == 0, 20000);
}

/* Issue 17, item 1: pool (1,4), a handler that overruns a short deadline
 * by far, one attempt, events arriving while handlers are stuck. Some
 * are refused at the cap; every accepted one ends. */
static void
test_pool_accepted_events_end_past_the_stuck_cap(void **state)
{
	evfn_rt *rt = new_runtime(1, 4);
	int hang_ms = 300;
	register_with(rt, "hang", sleeps_handler, &hang_ms,
	              deadline_options(20, 1, 4));
	ASSERT_OK(evfn_rt_start(rt));
	int accepted = 0, refused = 0;
	for (int i = 0; i < 12; i++) {
		int rc = evfn_invoke_async(rt, "hang", NULL, 0, NULL);
		if (rc == 0)
			accepted++;
		else if (rc == EVFN_EUNHEALTHY)
			refused++;
		else
			ASSERT_OK(rc);
		test_sleep_ms(5); /* arrivals spread over the first deadlines */
	}
	ASSERT_EQ(accepted + refused, 12);
	WAIT_FOR(all_ended(rt, "hang"), 20000);
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_ACCEPTED), accepted);
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_DEAD_LETTERED), accepted);
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_TIMEOUTS), accepted);
	/* Every stuck handler returns; the pool is back to its minimum. */
	WAIT_FOR(rt_view(rt).stuck_threads == 0, 20000);
	WAIT_FOR(evfn_rt_workers(rt) >= 1, 10000);
	assert_accounting(rt, "hang");
	finish(rt);
}

/* The answer of a synchronous invoke made on a thread of its own, and
 * how long it took. */
struct sync_call {
	evfn_rt *rt;
	const char *fn;
	pthread_t thread;
	int rc;
	int64_t took_ms;
	atomic_bool done;
};

static void *
sync_call_main(void *arg)
{
	struct sync_call *c = arg;
	int64_t t0 = test_now_ms();
	c->rc = evfn_invoke(c->rt, c->fn, NULL, 0, NULL, NULL);
	c->took_ms = test_now_ms() - t0;
	atomic_store(&c->done, true);
	return NULL;
}

static void
sync_call_start(struct sync_call *c, evfn_rt *rt, const char *fn)
{
	memset(c, 0, sizeof(*c));
	c->rt = rt;
	c->fn = fn;
	assert_int_equal(pthread_create(&c->thread, NULL, sync_call_main, c),
	                 0);
}

/* Waits (bounded) for the call to answer, and returns its answer. */
static int
sync_call_wait(struct sync_call *c, int64_t bound_ms)
{
	WAIT_FOR(atomic_load(&c->done), bound_ms);
	pthread_join(c->thread, NULL);
	return c->rc;
}

/* Issue 17, item 9: 20 handlers overrun a 10 ms deadline on a pool of
 * at most 2, more than the stuck cap. The pool must not shrink to no
 * worker for good: all events end, the minimum comes back, and a
 * synchronous invoke of another function answers meanwhile and after. */
static void
test_pool_grows_back_after_stuck_handlers_return(void **state)
{
	evfn_rt *rt = new_runtime(1, 2);
	int hang_ms = 150;
	register_with(rt, "hang", sleeps_handler, &hang_ms,
	              deadline_options(10, 1, 4));
	register_with(rt, "other", ok_handler, NULL,
	              deadline_options(1000, 1, 4));
	ASSERT_OK(evfn_rt_start(rt));
	for (int i = 0; i < 20; i++)
		ASSERT_OK(evfn_invoke_async(rt, "hang", NULL, 0, NULL));
	struct sync_call during;
	sync_call_start(&during, rt, "other");
	ASSERT_OK(sync_call_wait(&during, 10000));
	WAIT_FOR(all_ended(rt, "hang"), 30000);
	WAIT_FOR(rt_view(rt).stuck_threads == 0, 20000);
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_DEAD_LETTERED), 20);
	WAIT_FOR(evfn_rt_workers(rt) >= 1, 10000);
	struct sync_call after;
	sync_call_start(&after, rt, "other");
	ASSERT_OK(sync_call_wait(&after, 10000));
	assert_accounting(rt, "hang");
	assert_accounting(rt, "other");
	finish(rt);
}

/* The most threads this process has while cond is false, sampled every
 * millisecond for up to timeout_ms. */
#define MAX_THREADS_UNTIL(cond, timeout_ms, max)                             \
	do {                                                                 \
		int64_t until_ = test_now_ms() + (timeout_ms);               \
		while (!(cond)) {                                            \
			int n_ = test_count_threads();                       \
			if (n_ > (max))                                      \
				(max) = n_;                                  \
			if (test_now_ms() > until_)                          \
				fail_msg("timed out waiting for %s", #cond); \
			test_sleep_ms(1);                                    \
		}                                                            \
	} while (0)

/* Issue 17, item 10: 50 handlers overrunning a 10 ms deadline, 3 attempts
 * each, pool 1..16, stuck cap 4. The events queued before the cap was
 * reached wait instead of each getting a thread that gets stuck: the
 * process never has more than the pool's 16 threads plus 4 stuck ones. */
static void
test_pool_stuck_cap_bounds_threads(void **state)
{
	int before = test_count_threads();
	evfn_rt *rt = new_runtime(1, 16);
	int hang_ms = 100;
	register_with(rt, "hang", sleeps_handler, &hang_ms,
	              deadline_options(10, 3, 4));
	ASSERT_OK(evfn_rt_start(rt));
	/* All 50 queued before any starts: published while handlers ran,
	 * a slow publisher (TSan) could meet the stuck cap part way and be
	 * refused (EVFN_EUNHEALTHY), which is not what this test is about. */
	ASSERT_OK(evfn_pause(rt, "hang"));
	for (int i = 0; i < 50; i++)
		ASSERT_OK(evfn_invoke_async(rt, "hang", NULL, 0, NULL));
	ASSERT_OK(evfn_resume(rt, "hang"));
	int most = 0;
	MAX_THREADS_UNTIL(all_ended(rt, "hang"), 60000, most);
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_DEAD_LETTERED), 50);
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_TIMEOUTS), 150);
	MAX_THREADS_UNTIL(rt_view(rt).stuck_threads == 0, 20000, most);
	if (most > before + OTHER_THREADS + 16 + 4)
		fail_msg("%d threads at most, %d before the runtime", most,
		         before);
	assert_accounting(rt, "hang");
	finish(rt);
}

/* One round of the property below: a pool and a stuck cap, and a mix of
 * functions that overrun, poll their cancelled flag, retry or return at
 * once, fed by async invokes and by synchronous callers. */
struct round {
	int min, max, cap, hang_ms, attempts, events;
};

static const char *const mixed[] = {"hang", "poll", "retry", "quick"};

static void
run_round(const struct round *r)
{
	int before = test_count_threads();
	evfn_rt *rt = new_runtime(r->min, r->max);
	int hang_ms = r->hang_ms;
	register_with(rt, "hang", sleeps_handler, &hang_ms,
	              deadline_options(10, r->attempts, r->cap));
	register_with(rt, "poll", polls_cancel_handler, NULL,
	              deadline_options(10, r->attempts, r->cap));
	register_with(rt, "retry", retry_once, NULL,
	              deadline_options(1000, 2, r->cap));
	register_with(rt, "quick", ok_handler, NULL,
	              deadline_options(1000, 1, r->cap));
	ASSERT_OK(evfn_rt_start(rt));
	/* Synchronous callers of each function, started with the storm:
	 * each answers within a bound (refused, timed out or done). */
	struct sync_call calls[4];
	for (int f = 0; f < 4; f++)
		sync_call_start(&calls[f], rt, mixed[f]);
	for (int i = 0; i < r->events; i++) {
		int rc = evfn_invoke_async(rt, mixed[i % 4], NULL, 0, NULL);
		if (rc != 0)
			ASSERT_RC(rc, EVFN_EUNHEALTHY);
		if (i % 8 == 0)
			for (int f = 0; f < 4; f++)
				assert_accounting(rt, mixed[f]);
	}
	/* Those that time out may be refused at their cap; the others
	 * succeed. */
	for (int f = 0; f < 4; f++) {
		int rc = sync_call_wait(&calls[f], 30000);
		if (f >= 2 || (rc != EVFN_ETIMEDOUT && rc != EVFN_EUNHEALTHY))
			ASSERT_OK(rc);
	}
	int most = 0;
	for (int f = 0; f < 4; f++) {
		MAX_THREADS_UNTIL(all_ended(rt, mixed[f]), 30000, most);
		assert_accounting(rt, mixed[f]);
	}
	/* Only "hang" strands threads: the pool, plus its cap (and the
	 * cap of "poll", whose handlers return within a tick of being
	 * fenced). */
	if (most > before + OTHER_THREADS + r->max + 2 * r->cap)
		fail_msg("%d threads at most, %d before the runtime", most,
		         before);
	/* Every stuck handler returns: the minimum is back, and the pool
	 * still serves. */
	WAIT_FOR(rt_view(rt).stuck_threads == 0, 20000);
	WAIT_FOR(evfn_rt_workers(rt) >= r->min, 10000);
	struct sync_call after;
	sync_call_start(&after, rt, "quick");
	ASSERT_OK(sync_call_wait(&after, 10000));
	finish(rt);
}

/* The property of issue 17, items 1 and 9: whatever the pool size and
 * cap, every accepted event ends under stuck handlers, synchronous
 * callers answer, and threads stay bounded. */
static void
test_pool_every_accepted_event_ends_under_stuck_handlers(void **state)
{
	static const struct round rounds[] = {
		{.min = 1, .max = 1, .cap = 1, .hang_ms = 60, .attempts = 2,
		 .events = 40},
		{.min = 0, .max = 2, .cap = 2, .hang_ms = 40, .attempts = 3,
		 .events = 60},
		{.min = 2, .max = 4, .cap = 1, .hang_ms = 80, .attempts = 1,
		 .events = 80},
		{.min = 1, .max = 3, .cap = 3, .hang_ms = 30, .attempts = 2,
		 .events = 80},
	};
	for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++)
		run_round(&rounds[i]);
}

/* A gate the test opens to let stuck handlers return. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
};

static int
wait_for_gate(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct gate *g = userdata;
	pthread_mutex_lock(&g->lock);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return EVFN_OK;
}

static void
count_handback(const evfn_event *ev, const char *fn, void *arg)
{
	(*(int *)arg)++;
}

/* Drain with handlers stuck at the cap and events held behind them: it
 * returns without waiting for the stuck ones (they are not in flight),
 * hands back what waits (a synchronous caller among them gets its
 * answer), and free waits for the stuck threads. */
static void
test_pool_drain_with_stuck_handlers(void **state)
{
	struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	                 false};
	/* One worker: handlers get stuck one after the other, so exactly
	 * the cap's two do (with more workers, those running when the
	 * first was fenced may get stuck past the cap too). */
	evfn_rt *rt = new_runtime(1, 1);
	register_with(rt, "stuck", wait_for_gate, &g,
	              deadline_options(20, 1, 2));
	for (int i = 0; i < 10; i++)
		ASSERT_OK(evfn_invoke_async(rt, "stuck", NULL, 0, NULL));
	/* The synchronous caller queues last, before the cap is reached. */
	struct sync_call waiter;
	sync_call_start(&waiter, rt, "stuck");
	WAIT_FOR(stat_of(rt, "stuck", EVFN_STAT_QUEUED) == 11, 10000);
	ASSERT_OK(evfn_rt_start(rt));
	/* Two handlers stuck: the function holds the rest. */
	WAIT_FOR(stat_of(rt, "stuck", EVFN_STAT_TIMEOUTS) == 2, 10000);
	WAIT_FOR(stat_of(rt, "stuck", EVFN_STAT_QUEUED) == 9, 10000);
	ASSERT_EQ(stat_of(rt, "stuck", EVFN_STAT_IN_FLIGHT), 0);
	ASSERT_EQ(stat_of(rt, "stuck", EVFN_STAT_ATTEMPTS), 2);
	assert_accounting(rt, "stuck");
	int handed = 0;
	int64_t t0 = test_now_ms();
	ASSERT_OK(evfn_rt_drain(rt, 10000, count_handback, &handed));
	assert_true(test_now_ms() - t0 < 5000);
	ASSERT_EQ(handed, 9);
	ASSERT_RC(sync_call_wait(&waiter, 10000), EVFN_EHANDEDBACK);
	ASSERT_EQ(stat_of(rt, "stuck", EVFN_STAT_HANDED_BACK), 9);
	ASSERT_EQ(stat_of(rt, "stuck", EVFN_STAT_DEAD_LETTERED), 2);
	assert_accounting(rt, "stuck");
	ASSERT_RC(evfn_rt_free(rt), EVFN_EBUSY);
	pthread_mutex_lock(&g.lock);
	g.open = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	WAIT_FOR(evfn_rt_free(rt) == 0, 10000);
}

/* Issue 17, item 3: with a deep queue and short handlers a worker takes
 * several attempts at once to run one after the other; the peak counts
 * the attempts running, at most one per worker. */
static void
test_pool_concurrency_peak_counts_running_attempts(void **state)
{
	evfn_rt *rt = new_runtime(2, 2);
	register_with(rt, "noop", ok_handler, NULL,
	              deadline_options(1000, 1, 4));
	for (int i = 0; i < 4000; i++)
		ASSERT_OK(evfn_invoke_async(rt, "noop", NULL, 0, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	WAIT_FOR(stat_of(rt, "noop", EVFN_STAT_SUCCEEDED) == 4000, 20000);
	uint64_t peak = stat_of(rt, "noop", EVFN_STAT_CONCURRENCY_PEAK);
	assert_true(peak >= 1);
	if (peak > 2)
		fail_msg("concurrency_peak %llu with 2 workers",
		         (unsigned long long)peak);
	finish(rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_pool_accepted_events_end_past_the_stuck_cap),
		TEST(test_pool_grows_back_after_stuck_handlers_return),
		TEST(test_pool_stuck_cap_bounds_threads),
		TEST(test_pool_every_accepted_event_ends_under_stuck_handlers),
		TEST(test_pool_drain_with_stuck_handlers),
		TEST(test_pool_concurrency_peak_counts_running_attempts),
	};
	return evfn_test_main("pool", tests);
}
