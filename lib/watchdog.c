/* SPDX-License-Identifier: MIT */
/*
 * Deadlines. A timer on the loop ticks every WATCHDOG_TICK while attempts
 * run and scans them (one slot per pool worker, plus the loop attempts
 * that returned PENDING), so a deadline costs nothing per invocation
 * beyond writing its time. An attempt past its deadline is fenced: marked
 * cancelled, counted as a timeout (and billed up to its deadline), and its
 * event moves on (retry or end) in a fresh record, while the old record
 * stays with the handler that may still be running; whatever that handler
 * returns later is counted late, billed for its real run time, and
 * changes nothing else. With nothing running the timer is off, so an idle
 * runtime never wakes its loop.
 */
#include <stdio.h>
#include <string.h>

#include "common-internal.h"
#include "runtime-internal.h"

/* Deadline precision: an overdue attempt is fenced within one tick. */
#define WATCHDOG_TICK_NS (10 * EVFN__NS_PER_MS)
/* How often expired idempotency keys are swept, in ticks. */
#define IDEM_SWEEP_TICKS 100

void
evfn__watchdog_arm_slow_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	/* Not armed if this fails (out of memory in libevent): the next
	 * attempt to start tries again. */
	rt->watchdog_armed = evfn__timer_arm(rt->watchdog, 0);
}

void
evfn__pending_add_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	inv->pend_prev = NULL;
	inv->pend_next = rt->pending;
	if (rt->pending)
		rt->pending->pend_prev = inv;
	rt->pending = inv;
}

void
evfn__pending_remove_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	if (inv->pend_prev)
		inv->pend_prev->pend_next = inv->pend_next;
	else if (rt->pending == inv)
		rt->pending = inv->pend_next;
	if (inv->pend_next)
		inv->pend_next->pend_prev = inv->pend_prev;
	inv->pend_next = inv->pend_prev = NULL;
}

/* Fences one attempt of a call past its deadline (its call's state is
 * TIMEDOUT already) and moves its event on in the fresh record given. */
static void
fence_attempt_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                     struct evfn__inv *retry, struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	atomic_store(&inv->ctx.state, EVFN__ATTEMPT_TIMEDOUT);
	atomic_store(&inv->ctx.cancelled, true);
	evfn__attempt_leave_locked(rt, inv);
	fn->stat[EVFN_STAT_TIMEOUTS]++;
	fn->stat[EVFN_STAT_ATTEMPTS_FAILED]++;

	/* The event goes on in a fresh record: the stuck handler keeps its
	 * context, so nothing it does later can touch the retry. */
	evfn__carry_on_locked(inv, retry);
	retry->last_timed_out = true;
	/* Keeps the fenced attempt's start, for durations in records. */
	retry->ctx.deadline_ns = inv->ctx.deadline_ns;
	evfn__set_deadline_error(retry);
	if (inv->cancel_requested)
		evfn__finish_locked(rt, retry, EVFN_STAT_CANCELLED,
		                    EVFN_ECANCELED, garbage);
	else
		evfn__retry_or_end_locked(rt, retry, garbage);
}

bool
evfn__timeout_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                     struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	int state = atomic_load(&inv->ctx.state);
	if (state != EVFN__ATTEMPT_RUNNING && state != EVFN__ATTEMPT_PENDING)
		return false; /* it finished first */
	struct evfn_fn *fn = inv->fn;
	/* A fresh record for each attempt of the call (a batch has
	 * several), all or none. */
	struct evfn__inv *fresh = NULL;
	for (struct evfn__inv *x = inv; x; x = x->batch_next) {
		struct evfn__inv *r = evfn__inv_get(&rt->records);
		if (!r) {
			evfn__recycle_locked(rt, fresh);
			return false; /* try again next tick rather than lose it */
		}
		r->next = fresh;
		fresh = r;
	}
	/* The handler may return (without the lock) at this very moment:
	 * whichever of us moves the state first decides whether the
	 * attempt returned in time or is fenced and late. */
	if (!atomic_compare_exchange_strong(&inv->ctx.state, &state,
	                                    EVFN__ATTEMPT_TIMEDOUT)) {
		evfn__recycle_locked(rt, fresh);
		return false;
	}
	if (state == EVFN__ATTEMPT_PENDING)
		evfn__pending_remove_locked(rt, inv);
	for (struct evfn__inv *x = inv; x; x = x->batch_next) {
		struct evfn__inv *r = fresh;
		fresh = r->next;
		r->next = NULL;
		fence_attempt_locked(rt, x, r, garbage);
	}
	fn->busy--;
	if (fn->flow)
		evfn__breaker_record_locked(rt, fn, inv, false, evfn__now_ns());
	/* Billed up to its deadline now, and for its real run time if its
	 * handler ever returns (evfn__late_locked). */
	evfn__metrics_fenced_locked(rt, inv);

	/* Keep the old record until its hook and timeout record ran. */
	inv->hook_running = fn->cfg.cancel_hook || rt->opts.record_cb;
	evfn__fn_schedule_locked(rt, fn);
	if (rt->in_flight == 0 && rt->state >= EVFN__DRAINING)
		pthread_cond_broadcast(&rt->quiet_cond);
	return true;
}

void
evfn__late_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                  struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	fn->stat[EVFN_STAT_LATE]++;
	evfn__metrics_late_locked(rt, inv, evfn__now_ns());
	if (fn->cfg.executor == EVFN_EXECUTOR_POOL) {
		fn->stuck--;
		rt->nstuck--;
		/* Below its stuck cap again, the function may start what it
		 * held back. */
		evfn__fn_schedule_locked(rt, fn);
	}
	if (inv->hook_running) {
		inv->orphaned = true; /* the watchdog frees it after the hook */
		return;
	}
	inv->next = *garbage;
	*garbage = inv;
	if (rt->nstuck == 0)
		pthread_cond_broadcast(&rt->quiet_cond);
}

static void
fence_pending_locked(struct evfn_rt *rt, int64_t now, struct evfn__inv **garbage,
                     struct evfn__inv **fenced)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *inv = rt->pending;
	while (inv) {
		struct evfn__inv *next = inv->pend_next;
		if (inv->ctx.deadline_ns <= now &&
		    evfn__timeout_locked(rt, inv, garbage) && inv->hook_running) {
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
	struct evfn__inv *garbage = NULL, *fenced = NULL;
	evfn__lock_acquire(&rt->lock);
	int64_t now = evfn__now_ns();
	if (rt->in_flight > 0) {
		evfn__pool_fence_overdue_locked(rt, now, &garbage, &fenced);
		fence_pending_locked(rt, now, &garbage, &fenced);
	}
	/* Records may not have come back, but memory may have. */
	if (rt->inv_starved)
		evfn__unstarve_locked(rt);
	if (++rt->watchdog_ticks % IDEM_SWEEP_TICKS == 0)
		for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next)
			if (fn->idem)
				evfn__idem_sweep_locked(fn, now);
	/* Nothing left to watch: off until an attempt starts (or a record
	 * is wanted) again. Stuck handlers need no tick: their late
	 * returns are handled by their own threads. */
	if (rt->in_flight == 0 && !rt->inv_starved) {
		evfn__timer_disarm(rt->watchdog);
		rt->watchdog_armed = false;
	}
	evfn__lock_release(&rt->lock);

	if (fenced) {
		/* Told with no lock held; the records stay valid meanwhile
		 * because hook_running keeps their owners from freeing them. */
		for (struct evfn__inv *inv = fenced; inv; inv = inv->next) {
			for (struct evfn__inv *x = inv; x && rt->opts.record_cb;
			     x = x->batch_next)
				evfn__record(rt, EVFN_RECORD_TIMEOUT, x);
			if (inv->fn->cfg.cancel_hook)
				inv->fn->cfg.cancel_hook(&inv->ctx,
				                         inv->fn->userdata);
		}
		evfn__lock_acquire(&rt->lock);
		while (fenced) {
			struct evfn__inv *inv = fenced;
			fenced = inv->next;
			inv->hook_running = false;
			if (inv->orphaned) {
				evfn__batch_release_locked(inv, &garbage);
				inv->next = garbage;
				garbage = inv;
			}
		}
		if (rt->nstuck == 0)
			pthread_cond_broadcast(&rt->quiet_cond);
		evfn__lock_release(&rt->lock);
	}
	evfn__dispose(rt, garbage);
}

int
evfn__watchdog_new(struct evfn_rt *rt)
{
	rt->watchdog = evfn__timer_new_periodic(&rt->loop, WATCHDOG_TICK_NS,
	                                        watchdog_cb, rt);
	return rt->watchdog ? 0 : EVFN_ENOMEM;
}
