/* SPDX-License-Identifier: MIT */
/*
 * The loop executor: handlers that run on the loop thread, for work that
 * is I/O on the loop itself. A pass runs the ready ones up to a budget,
 * so that the base's other events get their turn; a handler that returns
 * EVFN_PENDING completes later through evfn_ctx_complete(), from any
 * thread. Result callbacks (evfn_submit()) are delivered at the end of
 * each pass, since the sources that answer (HTTP, acknowledgements) live
 * on the loop. The state machine reaches it through its executor entry.
 */
#include <evfn/context.h>

#include "common-internal.h"
#include "dispatch-internal.h"
#include "log-internal.h"
#include "loopexec-internal.h"
#include "settle-internal.h"
#include "worker-internal.h"

/* How many loop handlers one pass runs before it lets the base's other
 * events have a turn. */
#define LOOP_BUDGET 256

/* Guarded by rt->lock. */
struct evfn__loopexec {
	struct evfn_rt *rt;
	struct evfn__executor *x;   /* its entry: the functions ready */
	struct evfn__worker w;      /* the warm state of loop handlers */
	struct evfn__signal *wake;  /* runs a pass */
	struct evfn__inv *current;  /* the attempt running now, not yet
	                             * PENDING, for evfn_cancel() */
};

/* One pass of the loop executor, on the loop thread: runs the loop
 * handlers that are ready, up to a budget, then the result callbacks
 * that are due. */
static void
pass_cb(void *arg)
{
	struct evfn__loopexec *lx = arg;
	struct evfn_rt *rt = lx->rt;
	struct evfn__ended ended = {0};
	evfn__lock_acquire(&rt->lock);
	int64_t now = evfn__now_ns();
	for (int budget = LOOP_BUDGET; budget > 0; budget--) {
		struct evfn__inv *inv =
			evfn__pick_locked(rt, &lx->x->ready, now, &ended);
		if (!inv)
			break;
		lx->current = inv;
		evfn__lock_release(&rt->lock);
		int outcome = evfn__worker_run(&lx->w, inv);
		/* A PENDING attempt's run time is known when it completes
		 * (evfn_ctx_complete(), or the watchdog); its queue wait is
		 * known now. */
		now = evfn__now_ns();
		outcome = evfn__outcome_at(inv, outcome, now);
		if (outcome == EVFN_PENDING)
			evfn__worker_measure_wait(&lx->w, inv);
		else
			evfn__worker_measure(&lx->w, inv, now);
		evfn__worker_tell_return(&rt->eventlog, inv, outcome);
		evfn__lock_acquire(&rt->lock);
		lx->current = NULL;
		if (outcome == EVFN_PENDING)
			evfn__pending_add_locked(rt, inv);
		else
			evfn__complete_locked(rt, inv, outcome, &ended);
	}
	if (lx->x->ready.head)
		evfn__signal_raise(lx->wake);
	evfn__results_deliver_locked(&rt->results, &rt->lock);
	evfn__lock_release(&rt->lock);
	evfn__settle(rt, &ended);
}

/* The loop executor's entry: a function became runnable, or a result is
 * due. */
static void
loop_wake(void *arg)
{
	struct evfn__loopexec *lx = arg;
	evfn__signal_raise(lx->wake);
}

struct evfn__loopexec *
evfn__loopexec_new(struct evfn_rt *rt, struct evfn__executor *x)
{
	struct evfn__loopexec *lx = evfn__calloc(1, sizeof(*lx));
	if (!lx)
		return NULL;
	lx->rt = rt;
	lx->x = x;
	evfn__worker_init(&lx->w, rt);
	if (!(lx->wake = evfn__signal_new(&rt->loop, pass_cb, lx))) {
		evfn__free(lx);
		return NULL;
	}
	*x = (struct evfn__executor){.wake = loop_wake, .impl = lx};
	return lx;
}

void
evfn__loopexec_free(struct evfn__loopexec *lx)
{
	if (!lx)
		return;
	evfn__signal_free(lx->wake);
	evfn__worker_destroy(&lx->w);
	evfn__free(lx);
}

void
evfn__loopexec_each_running_locked(struct evfn__loopexec *lx,
                                   void (*f)(struct evfn__inv *, void *),
                                   void *arg)
{
	EVFN__ASSERT_LOCKED(lx->rt);
	if (lx->current)
		f(lx->current, arg);
}

void
evfn__loopexec_collect_locked(struct evfn__loopexec *lx,
                              const struct evfn_fn *fn, struct evfn_stats *s)
{
	evfn__worker_collect_locked(&lx->w, fn, s);
}

int
evfn_ctx_complete(evfn_ctx *ctx, evfn_outcome outcome)
{
	if (!ctx || (outcome != EVFN_OK && outcome != EVFN_RETRY &&
	             outcome != EVFN_FAIL))
		return EVFN_EINVAL;
	struct evfn__inv *inv = EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx);
	struct evfn_fn *fn = inv->fn;
	struct evfn_rt *rt = fn->rt;
	/* One code, two causes: the log says which. */
	if (fn->cfg.executor != EVFN_EXECUTOR_LOOP) {
		evfn__logf(&rt->log, EVFN_LOG_WARN,
		           "%s: evfn_ctx_complete: a pool function's attempt "
		           "ends when its handler returns",
		           fn->name);
		return EVFN_EPERM;
	}
	enum evfn__completion c = evfn__attempt_complete(inv, (int)outcome);
	if (c == EVFN__COMPLETED_EARLY)
		return 0;
	if (c == EVFN__COMPLETED_TWICE) {
		evfn__logf(&rt->log, EVFN_LOG_WARN,
		           "%s: evfn_ctx_complete: the attempt was already "
		           "completed",
		           fn->name);
		return EVFN_EPERM;
	}
	bool returned = c == EVFN__COMPLETED_IN_TIME;
	int64_t now = evfn__now_ns();
	int counted = returned ? evfn__outcome_at(inv, outcome, now)
	                        : (int)outcome;
	evfn__worker_tell_return(&rt->eventlog, inv, counted); /* still ours */
	struct evfn__ended ended = {0};
	evfn__lock_acquire(&rt->lock);
	int rc = !returned || counted == EVFN__TIMED_OUT ? EVFN_ETIMEDOUT : 0;
	if (returned) {
		evfn__pending_remove_locked(rt, inv);
		/* Its run time is known now; its queue wait was measured
		 * when it returned EVFN_PENDING. */
		if (!rt->opts.no_metrics)
			evfn__metrics_call(&fn->retired, now - inv->start_ns);
	}
	evfn__complete_locked(rt, inv, counted, &ended);
	/* This thread is not one the runtime stops before it is freed:
	 * count it, so that free waits until it has let go of rt. */
	rt->disposing++;
	evfn__lock_release(&rt->lock);
	struct evfn__inv_list cleaned = evfn__settle_release(rt, &ended);
	evfn__lock_acquire(&rt->lock);
	evfn__recycle_locked(rt, &cleaned);
	if (--rt->disposing == 0)
		pthread_cond_broadcast(&rt->quiet_cond);
	evfn__lock_release(&rt->lock);
	return rc;
}
