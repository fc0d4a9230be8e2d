/* SPDX-License-Identifier: MIT */
/*
 * Running one attempt and recording its outcome. An attempt ends in OK,
 * RETRY, FAIL or (loop executor) PENDING; the outcome decides whether the
 * event succeeded, waits for a retry, or ends dead-lettered, expired or
 * handed back. Also the handler's view of it (evfn_ctx_*) and the
 * synchronous invoke, which waits for the final outcome.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <evfn/alloc.h>
#include <evfn/context.h>
#include <evfn/emit.h>

#include "backoff-internal.h"
#include "common-internal.h"
#include "runtime-internal.h"

void
evfn__record_return(struct evfn_rt *rt, struct evfn__inv *inv, int outcome)
{
	struct evfn__eventlog *log = &rt->eventlog;
	if (!evfn__eventlog_on(log) || outcome == EVFN_PENDING)
		return;
	if (evfn__attempt_fenced(inv)) {
		evfn__eventlog_tell(log, EVFN_RECORD_LATE, inv, inv->fn->name);
		return;
	}
	if (outcome == EVFN__TIMED_OUT) {
		for (struct evfn__inv *x = inv; x; x = x->batch_next)
			evfn__eventlog_tell(log, EVFN_RECORD_TIMEOUT, x,
			                    x->fn->name);
		return;
	}
	size_t i = 0;
	for (struct evfn__inv *x = inv; x; x = x->batch_next, i++)
		if (evfn__batch_item_outcome(inv->ctx.batch, i, outcome) == EVFN_RETRY &&
		    x->attempt < (unsigned)x->fn->cfg.attempts)
			evfn__eventlog_tell(log, EVFN_RECORD_RETRY, x,
			                    x->fn->name);
}

int
evfn__run_attempt(struct evfn_rt *rt, struct evfn__inv *inv,
                  struct evfn__worker *worker)
{
	struct evfn_fn *fn = inv->fn;
	struct evfn_ctx *ctx = &inv->ctx;
	ctx->worker = worker;
	ctx->worker_state = NULL;
	ctx->batch = NULL;
	if (fn->cfg.batch_max > 1) {
		size_t n = 1;
		for (struct evfn__inv *x = inv->batch_next; x; x = x->batch_next)
			n++;
		struct evfn__batch *b = evfn__worker_batch(worker, n);
		if (!b) {
			evfn_ctx_errorf(ctx, "out of memory for a batch of %zu", n);
			return EVFN_RETRY;
		}
		size_t i = 0;
		for (struct evfn__inv *x = inv; x; x = x->batch_next) {
			b->items[i] = x;
			b->outcomes[i++] = 0;
		}
		b->n = n;
		ctx->batch = b;
	}
	if (fn->cfg.init) {
		int rc = 0;
		ctx->worker_state = evfn__worker_state(worker, fn, &rc);
		if (rc < 0) {
			evfn_ctx_errorf(ctx, "worker init hook failed: %s",
			          evfn_strerror(rc));
			return EVFN_RETRY;
		}
	}
	if (evfn__eventlog_on(&rt->eventlog))
		for (struct evfn__inv *x = inv; x; x = x->batch_next)
			evfn__eventlog_tell(&rt->eventlog, EVFN_RECORD_START, x,
			                    x->fn->name);

	struct evfn_rt *outer = evfn__tls_handler_rt;
	evfn__tls_handler_rt = rt;
	int outcome = fn->handler(ctx, inv->ev, fn->userdata);
	evfn__tls_handler_rt = outer;

	switch (outcome) {
	case EVFN_OK:
	case EVFN_RETRY:
	case EVFN_FAIL:
		return outcome;
	case EVFN_PENDING:
		if (fn->cfg.executor != EVFN_EXECUTOR_LOOP) {
			evfn_ctx_errorf(ctx, "handler returned EVFN_PENDING on the "
			               "pool executor");
			return EVFN_FAIL;
		}
		return evfn__attempt_pend(inv);
	default:
		evfn_ctx_errorf(ctx, "handler returned unknown outcome %d", outcome);
		return EVFN_FAIL;
	}
}

int
evfn_ctx_complete(evfn_ctx *ctx, evfn_outcome outcome)
{
	if (!ctx || (outcome != EVFN_OK && outcome != EVFN_RETRY &&
	             outcome != EVFN_FAIL))
		return EVFN_EINVAL;
	struct evfn__inv *inv = EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx);
	struct evfn_fn *fn = inv->fn;
	if (fn->cfg.executor != EVFN_EXECUTOR_LOOP)
		return EVFN_EPERM;
	enum evfn__completion c = evfn__attempt_complete(inv, (int)outcome);
	if (c == EVFN__COMPLETED_EARLY)
		return 0;
	if (c == EVFN__COMPLETED_TWICE)
		return EVFN_EPERM;
	struct evfn_rt *rt = fn->rt;
	bool returned = c == EVFN__COMPLETED_IN_TIME;
	int64_t now = evfn__now_ns();
	int recorded = returned ? evfn__outcome_at(inv, outcome, now)
	                        : (int)outcome;
	evfn__record_return(rt, inv, recorded); /* still ours */
	struct evfn__ended ended = {0};
	evfn__lock_acquire(&rt->lock);
	int rc = !returned || recorded == EVFN__TIMED_OUT ? EVFN_ETIMEDOUT : 0;
	if (returned) {
		evfn__pending_remove_locked(rt, inv);
		evfn__metrics_completed_locked(rt, inv, now);
	}
	evfn__complete_locked(rt, inv, recorded, &ended);
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
