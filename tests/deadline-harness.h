/* SPDX-License-Identifier: MIT */
/*
 * What the tests of deadlines and stuck handlers share: a runtime with a
 * given pool (on its own loop or a host's base), functions with a
 * deadline and a stuck cap, handlers that overrun their deadline or give
 * up at it, and a look at the runtime's stuck threads and watchdog.
 */
#ifndef EVFN_TEST_DEADLINE_HARNESS_H
#define EVFN_TEST_DEADLINE_HARNESS_H

#include <pthread.h>

#include <evfn/libevent.h>

#include "dispatch-internal.h"
#include "harness.h"

/* A runtime with a pool of min..max workers whose idle ones exit after
 * 50 ms, on base (a host's) or, for NULL, a loop thread of its own. */
static inline evfn_rt *
deadline_runtime(int min, int max, struct event_base *base)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, min, max));
	ASSERT_OK(evfn_rt_options_set_idle_timeout_ms(o, 50));
	if (base)
		ASSERT_OK(evfn_rt_options_set_event_base(o, base));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	return rt;
}

/* Options of a function whose attempts time out after timeout_ms, retried
 * at once, with the stuck cap max_stuck. */
static inline evfn_fn_options *
deadline_options(int64_t timeout_ms, int attempts, int max_stuck)
{
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_timeout_ms(fo, timeout_ms));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, attempts));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 1, 1.0, 1,
	                                      EVFN_JITTER_NONE));
	ASSERT_OK(evfn_fn_options_set_max_stuck(fo, max_stuck));
	return fo;
}

/* Registers a function with the options fo, which it frees. */
static inline void
register_with(evfn_rt *rt, const char *name, evfn_handler h, void *userdata,
              evfn_fn_options *fo)
{
	ASSERT_OK(evfn_register(rt, name, h, userdata, fo, NULL));
	evfn_fn_options_free(fo);
}

/* Sleeps *userdata ms whatever its deadline says: a blocking call that
 * cannot be interrupted. */
static inline int
sleeps_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	test_sleep_ms(*(const int *)userdata);
	return EVFN_OK;
}

/* Polls its cancelled flag (set at the deadline) and gives up. */
static inline int
polls_cancel_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	while (!evfn_ctx_cancelled(ctx))
		test_sleep_ms(1);
	return EVFN_RETRY;
}

static inline int
ok_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

/* What the runtime holds about stuck threads and its watchdog, read at
 * one instant. */
struct rt_view {
	int stuck_threads;     /* fenced handlers that have not returned */
	int64_t in_flight;
	bool watchdog_armed;
	unsigned watchdog_ticks;
};

static inline struct rt_view
rt_view(evfn_rt *rt)
{
	evfn__lock_acquire(&rt->lock);
	struct rt_view v = {rt->nstuck, rt->in_flight, rt->watchdog_armed,
	                    rt->watchdog_ticks};
	evfn__lock_release(&rt->lock);
	return v;
}

#endif /* EVFN_TEST_DEADLINE_HARNESS_H */
