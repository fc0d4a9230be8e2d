/* SPDX-License-Identifier: MIT */
/*
 * The watchdog: an attempt past its deadline is billed at least up to
 * it (and for its real run time once it returns), whatever its executor;
 * and the watchdog ticks only while attempts run, so an idle runtime
 * never wakes its loop and a host's event_base_dispatch() returns once
 * evfn has nothing to do.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "deadline-harness.h"

#define TIMEOUT_MS 40
#define CALLS 5

/* A function with one attempt, a stuck cap above the calls made, on the
 * executor given. */
static void
register_fn(evfn_rt *rt, const char *name, evfn_handler h, void *userdata,
            int64_t timeout_ms, evfn_executor executor)
{
	evfn_fn_options *fo = deadline_options(timeout_ms, 1, 2 * CALLS);
	ASSERT_OK(evfn_fn_options_set_executor(fo, executor));
	register_with(rt, name, h, userdata, fo);
}

/* Loop handlers that return EVFN_PENDING; the test completes them. */
struct pending {
	pthread_mutex_t lock;
	evfn_ctx *ctx[CALLS];
	int n;
};

static int
goes_pending(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct pending *p = userdata;
	pthread_mutex_lock(&p->lock);
	p->ctx[p->n++] = ctx;
	pthread_mutex_unlock(&p->lock);
	return EVFN_PENDING;
}

static int
pending_count(struct pending *p)
{
	pthread_mutex_lock(&p->lock);
	int n = p->n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Completes the pending attempts after_ms after they all started;
 * returns what the last completion answered. */
static int
complete_after(struct pending *p, int64_t after_ms)
{
	WAIT_FOR(pending_count(p) == CALLS, 10000);
	test_sleep_ms(after_ms); /* the run time being measured */
	int rc = 0;
	for (int i = 0; i < CALLS; i++)
		rc = evfn_ctx_complete(p->ctx[i], EVFN_OK);
	return rc;
}

static uint64_t
run_samples(const evfn_stats *s)
{
	uint64_t n = 0;
	for (size_t i = 0; i < evfn_stats_buckets(); i++)
		n += evfn_stats_bucket(s, EVFN_HIST_RUN, i, NULL);
	return n;
}

static const char *const billed_fns[] = {"sleeper", "poller", "under",
                                         "pending", "prompt"};
#define NFNS (sizeof(billed_fns) / sizeof(billed_fns[0]))

/* The property: at any instant, billed time is at least the deadline
 * times the attempts that timed out, and no attempt has more than one
 * run-time sample. */
static void
assert_billing(evfn_rt *rt)
{
	for (size_t f = 0; f < NFNS; f++) {
		evfn_stats *s;
		ASSERT_OK(evfn_stats_take(rt, billed_fns[f], &s));
		uint64_t timeouts = evfn_stats_value(s, EVFN_STAT_TIMEOUTS);
		uint64_t billed = evfn_stats_value(s, EVFN_STAT_BILLED_MS);
		if (billed < timeouts * TIMEOUT_MS)
			fail_msg("%s: %llu timeouts billed %llu ms",
			         billed_fns[f], (unsigned long long)timeouts,
			         (unsigned long long)billed);
		assert_true(run_samples(s) <=
		            evfn_stats_value(s, EVFN_STAT_ATTEMPTS));
		evfn_stats_free(s);
	}
}

static void
wait_billing(evfn_rt *rt, bool (*cond)(evfn_rt *), int64_t timeout_ms)
{
	int64_t until = test_now_ms() + timeout_ms;
	for (;;) {
		assert_billing(rt);
		if (cond(rt))
			return;
		if (test_now_ms() > until)
			fail_msg("timed out");
		test_sleep_ms(1);
	}
}

static bool
no_stuck_thread(evfn_rt *rt)
{
	struct rt_view v = rt_view(rt);
	return v.stuck_threads == 0 && v.in_flight == 0;
}

static bool
all_timed_out(evfn_rt *rt)
{
	return stat_of(rt, "sleeper", EVFN_STAT_TIMEOUTS) == CALLS &&
	       stat_of(rt, "poller", EVFN_STAT_TIMEOUTS) == CALLS;
}

/* Issue 17, item 2: a handler that cannot be interrupted and overruns,
 * one that gives up at its deadline, one that finishes just inside it,
 * and loop attempts completed late and in time: each attempt is billed
 * (and sampled in the run-time histogram) for what it ran, a timed-out
 * one at least up to its deadline from the moment it times out. */
static void
test_watchdog_timed_out_attempts_are_billed(void **state)
{
	evfn_rt *rt = deadline_runtime(1, 4, NULL);
	int sleeper_ms = 150, under_ms = TIMEOUT_MS - 10;
	struct pending late = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct pending prompt = {.lock = PTHREAD_MUTEX_INITIALIZER};
	register_fn(rt, "sleeper", sleeps_handler, &sleeper_ms, TIMEOUT_MS,
	            EVFN_EXECUTOR_POOL);
	register_fn(rt, "poller", polls_cancel_handler, NULL, TIMEOUT_MS,
	            EVFN_EXECUTOR_POOL);
	register_fn(rt, "under", sleeps_handler, &under_ms, 10 * TIMEOUT_MS,
	            EVFN_EXECUTOR_POOL);
	register_fn(rt, "pending", goes_pending, &late, TIMEOUT_MS,
	            EVFN_EXECUTOR_LOOP);
	register_fn(rt, "prompt", goes_pending, &prompt, 25 * TIMEOUT_MS,
	            EVFN_EXECUTOR_LOOP);
	ASSERT_OK(evfn_rt_start(rt));
	for (int i = 0; i < CALLS; i++)
		for (size_t f = 0; f < NFNS; f++)
			ASSERT_OK(evfn_invoke_async(rt, billed_fns[f], NULL, 0,
			                            NULL));
	/* In time: billed up to its completion, not its return. */
	ASSERT_OK(complete_after(&prompt, 20));
	/* Past the deadline: billed up to it once fenced, then for the
	 * real time. */
	ASSERT_RC(complete_after(&late, 3 * TIMEOUT_MS), EVFN_ETIMEDOUT);
	wait_billing(rt, all_timed_out, 20000);
	wait_billing(rt, no_stuck_thread, 20000);

	struct {
		const char *fn;
		int64_t run_ms;   /* each call ran at least this long */
		uint64_t timeouts;
	} want[] = {
		{"sleeper", sleeper_ms, CALLS},
		{"poller", TIMEOUT_MS, CALLS},
		{"under", under_ms, 0},
		{"pending", 3 * TIMEOUT_MS, CALLS},
		{"prompt", 20, 0},
	};
	for (size_t f = 0; f < NFNS; f++) {
		evfn_stats *s;
		ASSERT_OK(evfn_stats_take(rt, want[f].fn, &s));
		ASSERT_EQ(evfn_stats_value(s, EVFN_STAT_TIMEOUTS),
		          want[f].timeouts);
		ASSERT_EQ(run_samples(s), CALLS);
		uint64_t billed = evfn_stats_value(s, EVFN_STAT_BILLED_MS);
		if (billed < CALLS * (uint64_t)want[f].run_ms)
			fail_msg("%s billed %llu ms for %d calls of %lld ms",
			         want[f].fn, (unsigned long long)billed, CALLS,
			         (long long)want[f].run_ms);
		assert_true(evfn_stats_sum_ns(s, EVFN_HIST_RUN) >=
		            CALLS * (uint64_t)want[f].run_ms * 1000000);
		assert_true(evfn_stats_quantile(s, EVFN_HIST_RUN, 0.99) >=
		            want[f].run_ms * 1000000);
		evfn_stats_free(s);
		assert_accounting(rt, want[f].fn);
	}
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

/* Issue 17, item 4: once nothing runs, the watchdog stops ticking; the
 * next attempt arms it again, and its deadline still holds. */
static void
test_watchdog_idle_runtime_does_not_tick(void **state)
{
	evfn_rt *rt = deadline_runtime(1, 4, NULL);
	int hang_ms = 100;
	register_fn(rt, "quick", ok_handler, NULL, 1000, EVFN_EXECUTOR_POOL);
	register_fn(rt, "hang", sleeps_handler, &hang_ms, 20,
	            EVFN_EXECUTOR_POOL);
	ASSERT_OK(evfn_rt_start(rt));
	assert_false(rt_view(rt).watchdog_armed); /* nothing ran yet */
	for (int round = 0; round < 2; round++) {
		ASSERT_OK(evfn_invoke(rt, "quick", NULL, 0, NULL, NULL));
		ASSERT_RC(evfn_invoke(rt, "hang", NULL, 0, NULL, NULL),
		          EVFN_ETIMEDOUT);
		WAIT_FOR(!rt_view(rt).watchdog_armed, 10000);
		unsigned ticks = rt_view(rt).watchdog_ticks;
		/* Idle for 30 ticks' time: not one. */
		test_sleep_ms(300);
		ASSERT_EQ(rt_view(rt).watchdog_ticks, ticks);
		assert_false(rt_view(rt).watchdog_armed);
	}
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_TIMEOUTS), 2);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	WAIT_FOR(evfn_rt_free(rt) == 0, 10000);
}

/* Breaks a host loop that has not returned by itself in time. */
struct guard {
	struct event_base *base;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool returned, fired;
};

static void *
guard_main(void *arg)
{
	struct guard *g = arg;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&g->lock);
	while (!g->returned &&
	       pthread_cond_timedwait(&g->cond, &g->lock, &until) == 0)
		;
	if (!g->returned) {
		g->fired = true;
		event_base_loopbreak(g->base);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

/* Runs the host's loop until it returns by itself; false if the guard
 * had to break it. */
static bool
dispatch_returns(struct event_base *base)
{
	struct guard g = {.base = base,
	                  .lock = PTHREAD_MUTEX_INITIALIZER,
	                  .cond = PTHREAD_COND_INITIALIZER};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, guard_main, &g), 0);
	event_base_dispatch(base);
	pthread_mutex_lock(&g.lock);
	g.returned = true;
	pthread_cond_signal(&g.cond);
	pthread_mutex_unlock(&g.lock);
	pthread_join(th, NULL);
	return !g.fired;
}

/* Issue 17, item 4, embedded: the host's event_base_dispatch() runs
 * evfn's loop work (a loop handler, a deadline) and returns once evfn
 * has nothing left to do. */
static void
test_watchdog_host_loop_returns_when_idle(void **state)
{
	evthread_use_pthreads();
	struct event_base *base = event_base_new();
	evfn_rt *rt = deadline_runtime(1, 4, base);
	int hang_ms = 100;
	register_fn(rt, "quick", ok_handler, NULL, 1000, EVFN_EXECUTOR_POOL);
	register_fn(rt, "onloop", ok_handler, NULL, 1000, EVFN_EXECUTOR_LOOP);
	register_fn(rt, "hang", sleeps_handler, &hang_ms, 20,
	            EVFN_EXECUTOR_POOL);
	ASSERT_OK(evfn_rt_start(rt));
	/* Pool work needs no loop. */
	ASSERT_OK(evfn_invoke_async(rt, "quick", NULL, 0, NULL));
	WAIT_FOR(stat_of(rt, "quick", EVFN_STAT_SUCCEEDED) == 1, 10000);
	assert_true(dispatch_returns(base));
	/* A loop handler and a deadline need it: it runs until both are
	 * done, then returns. */
	ASSERT_OK(evfn_invoke_async(rt, "onloop", NULL, 0, NULL));
	ASSERT_OK(evfn_invoke_async(rt, "hang", NULL, 0, NULL));
	WAIT_FOR(stat_of(rt, "hang", EVFN_STAT_IN_FLIGHT) == 1, 10000);
	assert_true(dispatch_returns(base));
	ASSERT_EQ(stat_of(rt, "onloop", EVFN_STAT_SUCCEEDED), 1);
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_TIMEOUTS), 1);
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_DEAD_LETTERED), 1);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	WAIT_FOR(evfn_rt_free(rt) == 0, 10000);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_watchdog_timed_out_attempts_are_billed),
		TEST(test_watchdog_idle_runtime_does_not_tick),
		TEST(test_watchdog_host_loop_returns_when_idle),
	};
	return evfn_test_main("watchdog", tests);
}
