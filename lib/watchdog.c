/* SPDX-License-Identifier: MIT */
/*
 * The watchdog: a periodic timer on the loop that ticks every
 * WATCHDOG_TICK_NS while attempts run and scans them (one slot per pool
 * worker, plus the loop attempts that returned PENDING), so a deadline
 * costs nothing per invocation beyond writing its time. An attempt past
 * its deadline is fenced by the state machine (evfn__timeout_locked():
 * marked cancelled, counted as a timeout, its event moved on in a fresh
 * invocation); then the watchdog tells the event log and calls the cancel
 * hook, with no lock held. It also sweeps expired idempotency keys, and
 * turns itself off when nothing runs, so an idle runtime never wakes its
 * loop; the state machine arms it again.
 */
#include <stdio.h>
#include <string.h>

#include "callout-internal.h"
#include "common-internal.h"
#include "dispatch-internal.h"
#include "pool-internal.h"
#include "settle-internal.h"
#include "watchdog-internal.h"

/* Deadline precision: an overdue attempt is fenced within one tick. */
#define WATCHDOG_TICK_NS (10 * EVFN__NS_PER_MS)
/* How often expired idempotency keys are swept, in ticks. */
#define IDEM_SWEEP_TICKS 100

static void
fence_pending_locked(struct evfn_rt *rt, int64_t now, struct evfn__ended *ended,
                     struct evfn__inv **fenced)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *inv = rt->pending;
	while (inv) {
		struct evfn__inv *next = inv->pend_next;
		if (inv->ctx.deadline_ns <= now &&
		    evfn__timeout_locked(rt, inv, ended) && inv->hook_running) {
			inv->next = *fenced;
			*fenced = inv;
		}
		inv = next;
	}
}

static void
watchdog_cb(void *arg)
{
	struct evfn_rt *rt = arg;
	struct evfn__ended ended = {0};
	struct evfn__inv *fenced = NULL;
	evfn__lock_acquire(&rt->lock);
	int64_t now = evfn__now_ns();
	if (rt->in_flight > 0) {
		evfn__pool_fence_overdue_locked(rt->pool, now, &ended, &fenced);
		fence_pending_locked(rt, now, &ended, &fenced);
	}
	/* Invocations may not have come back, but memory may have. */
	if (rt->inv_starved)
		evfn__unstarve_locked(rt);
	if (++rt->watchdog_ticks % IDEM_SWEEP_TICKS == 0)
		for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next)
			evfn__idem_sweep(&fn->idem, now);
	/* Nothing left to watch: off until an attempt starts (or an invocation
	 * is wanted) again. Stuck handlers need no tick: their late
	 * returns are handled by their own threads. */
	if (rt->in_flight == 0 && !rt->inv_starved) {
		evfn__timer_disarm(rt->watchdog);
		rt->watchdog_armed = false;
	}
	evfn__lock_release(&rt->lock);

	if (fenced) {
		/* Told with no lock held; the invocations stay valid meanwhile
		 * because hook_running keeps their owners from freeing them. */
		for (struct evfn__inv *inv = fenced; inv; inv = inv->next) {
			for (struct evfn__inv *x = inv; x; x = x->batch_next)
				evfn__eventlog_tell(&rt->eventlog,
				                    EVFN_RECORD_TIMEOUT, x,
				                    x->fn->name);
			if (inv->fn->cfg.cancel_hook)
				evfn__call_cancel_hook(
					&rt->lock, inv->fn->cfg.cancel_hook,
					&inv->ctx, inv->fn->userdata);
		}
		evfn__lock_acquire(&rt->lock);
		while (fenced) {
			struct evfn__inv *inv = fenced;
			fenced = inv->next;
			evfn__fence_hook_done_locked(rt, inv, &ended);
		}
		if (rt->nstuck == 0)
			pthread_cond_broadcast(&rt->quiet_cond);
		evfn__lock_release(&rt->lock);
	}
	evfn__settle(rt, &ended);
}

int
evfn__watchdog_new(struct evfn_rt *rt)
{
	rt->watchdog = evfn__timer_new_periodic(&rt->loop, WATCHDOG_TICK_NS,
	                                        watchdog_cb, rt);
	return rt->watchdog ? 0 : EVFN_ENOMEM;
}
