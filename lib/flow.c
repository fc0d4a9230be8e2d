/* SPDX-License-Identifier: MIT */
/*
 * Per-function flow control that waits on time: the rate limit, the
 * batching window and the circuit breaker's cool-down (breaker.c). A
 * function with none of them has no flow state and pays one pointer test.
 * While one of them holds a function back, the function simply is not
 * startable: its events wait in its queue, and a single libevent timer
 * per function, armed for the earliest moment something may change,
 * puts it back on the ready list.
 *
 * The rate limit is a token bucket kept as a "theoretical arrival time"
 * (the GCRA form of it): a call may start when now >= tat - tolerance,
 * where tolerance = (burst - 1) * interval, and starting moves tat to
 * max(tat, now) + interval. One number of state, no refill arithmetic,
 * and a timer that fires late loses nothing while the burst covers it.
 */
#include "breaker-internal.h"
#include "common-internal.h"
#include "runtime-internal.h"

struct evfn__flow {
	struct evfn_rt *rt;
	struct evfn_fn *fn;
	struct evfn__timer *timer;
	/* Rate limit. */
	int64_t interval_ns;        /* 0: no limit */
	int64_t tolerance_ns;
	int64_t tat_ns;
	bool rate_waiting;          /* counted once per wait */
	struct evfn__breaker breaker;
};

static void flow_timer_cb(void *arg);

int
evfn__flow_new(struct evfn_rt *rt, struct evfn_fn *fn)
{
	const evfn_fn_options *c = &fn->cfg;
	bool window = c->batch_max > 1 && c->batch_window_ns > 0;
	if (!c->rate_per_sec && !c->breaker_window_ns && !window)
		return 0;
	struct evfn__flow *f = evfn__calloc(1, sizeof(*f));
	if (!f)
		return EVFN_ENOMEM;
	f->rt = rt;
	f->fn = fn;
	f->timer = evfn__timer_new(&rt->loop, flow_timer_cb, f);
	if (!f->timer) {
		evfn__free(f);
		return EVFN_ENOMEM;
	}
	if (c->rate_per_sec > 0) {
		double ns = 1e9 / c->rate_per_sec;
		f->interval_ns = ns < 1 ? 1 : (int64_t)ns;
		f->tolerance_ns = (int64_t)(c->rate_burst - 1) * f->interval_ns;
	}
	fn->flow = f;
	return 0;
}

void
evfn__flow_free(struct evfn_fn *fn)
{
	struct evfn__flow *f = fn->flow;
	if (!f)
		return;
	evfn__timer_free(f->timer);
	evfn__free(f);
	fn->flow = NULL;
}

struct evfn__breaker *
evfn__flow_breaker(struct evfn_fn *fn)
{
	return fn->flow && fn->cfg.breaker_window_ns ? &fn->flow->breaker
	                                             : NULL;
}

void
evfn__flow_arm_locked(struct evfn_fn *fn, int64_t due)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	/* One timer serves the rate limit, the batch window and the
	 * breaker: when it fires, scheduling the function asks the first two
	 * again, and an open breaker re-arms it for its cool-down
	 * (evfn__breaker_tick_locked()). */
	(void)evfn__timer_arm(fn->flow->timer, due);
}

bool
evfn__flow_allows_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__flow *f = fn->flow;
	if (fn->cfg.breaker_window_ns && !evfn__breaker_allows_locked(rt, fn, now))
		return false;
	if (f->interval_ns) {
		int64_t allowed = f->tat_ns - f->tolerance_ns;
		if (now < allowed) {
			if (!f->rate_waiting) {
				f->rate_waiting = true;
				fn->stat[EVFN_STAT_RATE_LIMITED]++;
			}
			evfn__flow_arm_locked(fn, allowed);
			return false;
		}
	}
	/* The batching window: wait for a full batch, or for the oldest
	 * startable event to have waited the window. At drain the queue is
	 * handed back, so no batch is held for it. */
	if (fn->cfg.batch_window_ns && fn->queued - fn->held < fn->cfg.batch_max) {
		int64_t due = evfn__queue_head_ready_ns(&fn->q) +
		              fn->cfg.batch_window_ns;
		if (now < due) {
			evfn__flow_arm_locked(fn, due);
			return false;
		}
	}
	return true;
}

void
evfn__flow_on_start_locked(struct evfn_fn *fn, struct evfn__inv *inv,
                           int64_t now)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	struct evfn__flow *f = fn->flow;
	if (f->interval_ns) {
		f->tat_ns = EVFN__MAX(f->tat_ns, now) + f->interval_ns;
		f->rate_waiting = false;
	}
	if (fn->cfg.breaker_window_ns)
		evfn__breaker_on_start_locked(fn, inv);
}

static void
flow_timer_cb(void *arg)
{
	struct evfn__flow *f = arg;
	struct evfn_rt *rt = f->rt;
	evfn__lock_acquire(&rt->lock);
	if (f->fn->cfg.breaker_window_ns)
		evfn__breaker_tick_locked(rt, f->fn, evfn__now_ns());
	evfn__fn_schedule_locked(rt, f->fn);
	evfn__lock_release(&rt->lock);
	evfn__notices_deliver(rt);
}
