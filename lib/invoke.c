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

static void wake_waiter(struct evfn_rt *rt, struct evfn__inv *inv,
                        int result);

struct evfn__inv *
evfn__release(struct evfn_rt *rt, struct evfn__inv *garbage)
{
	for (struct evfn__inv *inv = garbage; inv; inv = inv->next) {
		if (inv->final_stat >= 0) {
			/* Destinations and the dead-letter store first, so that
			 * a waiter woken next finds them done. */
			evfn__after_end(rt, inv);
			if (inv->waiter) {
				evfn__lock_acquire(&rt->lock);
				wake_waiter(rt, inv, inv->final_code);
				evfn__lock_release(&rt->lock);
			}
		}
		/* Zeroed here, with no lock held, for its next use. */
		struct evfn__inv *next = inv->next;
		evfn__inv_clear(inv);
		inv->next = next;
	}
	evfn__notices_deliver(rt);
	return garbage;
}

void
evfn__recycle_locked(struct evfn_rt *rt, struct evfn__inv *cleaned)
{
	EVFN__ASSERT_LOCKED(rt);
	if (cleaned && rt->inv_starved)
		evfn__unstarve_locked(rt);
	while (cleaned) {
		struct evfn__inv *inv = cleaned;
		cleaned = inv->next;
		evfn__inv_put(&rt->records, inv);
	}
}

void
evfn__dispose(struct evfn_rt *rt, struct evfn__inv *garbage)
{
	if (!garbage) {
		evfn__notices_deliver(rt);
		return;
	}
	struct evfn__inv *cleaned = evfn__release(rt, garbage);
	evfn__lock_acquire(&rt->lock);
	evfn__recycle_locked(rt, cleaned);
	evfn__lock_release(&rt->lock);
}

static void
push(struct evfn__inv **list, struct evfn__inv *inv)
{
	inv->next = *list;
	*list = inv;
}

static void
wake_waiter(struct evfn_rt *rt, struct evfn__inv *inv, int result)
{
	struct evfn_result *w = inv->waiter;
	if (!w)
		return;
	w->result = result;
	w->attempts = inv->attempt;
	if (result == 0) {
		/* The response moves to the caller. */
		w->resp = inv->ctx.resp;
		w->resp_len = inv->ctx.resp_len;
		inv->ctx.resp = NULL;
		w->meta = inv->ctx.meta;
		inv->ctx.meta = NULL;
	}
	w->error = inv->ctx.error ? evfn__strdup(inv->ctx.error) : NULL;
	w->done = true;
	inv->waiter = NULL;
	if (!w->cb) {
		pthread_cond_signal(&w->cond);
		return;
	}
	/* Result callbacks run on the loop thread, where sources that must
	 * answer (HTTP, acknowledgements) live. */
	w->ev = evfn_event_ref(inv->ev);
	evfn__result_list_push(&rt->results, w);
	evfn__signal_raise(rt->wake);
}

void
evfn__finish_locked(struct evfn_rt *rt, struct evfn__inv *inv, evfn_stat stat,
                    int result, struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	inv->fn->stat[stat]++;
	inv->final_stat = (signed char)stat;
	inv->final_code = result;
	if (inv->okey)
		evfn__okey_leave_locked(rt, inv);
	/* Waiters are woken when the record is released, after the
	 * destinations and the dead-letter store saw it. */
	if (stat == EVFN_STAT_HANDED_BACK) {
		/* Delivered to the drain callback by the draining thread. */
		evfn__inv_list_push(&rt->handback, inv);
		pthread_cond_broadcast(&rt->quiet_cond);
	} else {
		push(garbage, inv);
	}
}

void
evfn__finish_list_locked(struct evfn_rt *rt, struct evfn__inv *list,
                         evfn_stat stat, int result, struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	while (list) {
		struct evfn__inv *inv = list;
		list = inv->next;
		evfn__finish_locked(rt, inv, stat, result, garbage);
	}
}

/* A failed attempt that may be retried: schedule it, or end it when no
 * attempt, age or intake is left. */
void
evfn__retry_or_end_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                    struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	if (inv->attempt >= (unsigned)fn->cfg.attempts) {
		evfn__finish_locked(rt, inv, EVFN_STAT_DEAD_LETTERED,
		                    inv->last_timed_out ? EVFN_ETIMEDOUT
		                                        : EVFN_EEXHAUSTED,
		                    garbage);
		return;
	}
	if (rt->state >= EVFN__DRAINING) {
		evfn__finish_locked(rt, inv, EVFN_STAT_HANDED_BACK,
		                    EVFN_EHANDEDBACK, garbage);
		return;
	}
	int64_t now = evfn__now_ns();
	int64_t age_left = inv->ev->born_ns + fn->cfg.max_age_ns - now;
	if (age_left <= 0) {
		evfn__finish_locked(rt, inv, EVFN_STAT_EXPIRED, EVFN_EEXPIRED,
		                    garbage);
		return;
	}
	int64_t delay = evfn__backoff_delay(&fn->cfg.backoff, inv->attempt,
	                                    inv->prev_delay_ns, &rt->prng);
	inv->prev_delay_ns = delay;
	/* A retry never outlives the event's remaining age. */
	inv->due_ns = now + EVFN__MIN(delay, age_left);
	fn->stat[EVFN_STAT_RETRIES]++;
	evfn__retry_push_locked(rt, inv);
}

void
evfn__batch_release_locked(struct evfn__inv *inv, struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(inv->fn->rt);
	struct evfn__inv *item = inv->batch_next;
	inv->batch_next = NULL;
	while (item) {
		struct evfn__inv *next = item->batch_next;
		item->batch_next = NULL;
		push(garbage, item);
		item = next;
	}
}

void
evfn__carry_on_locked(struct evfn__inv *from, struct evfn__inv *to)
{
	EVFN__ASSERT_LOCKED(from->fn->rt);
	to->ev = evfn_event_ref(from->ev);
	to->fn = from->fn;
	to->waiter = from->waiter;
	from->waiter = NULL;
	to->okey = from->okey; /* it stays its key's active one */
	from->okey = NULL;
	if (to->okey)
		evfn__okey_rebind_locked(to->okey, to);
	to->attempt = from->attempt;
	to->prev_delay_ns = from->prev_delay_ns;
	to->due_ns = from->due_ns;
	to->first_ns = from->first_ns;
	to->last_ns = from->last_ns;
}

int
evfn__outcome_at(const struct evfn__inv *inv, int outcome, int64_t end_ns)
{
	return outcome != EVFN_PENDING && end_ns > inv->ctx.deadline_ns
	               ? EVFN__TIMED_OUT
	               : outcome;
}

void
evfn__set_deadline_error(struct evfn__inv *inv)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "deadline of %lld ms exceeded",
	         (long long)(inv->fn->cfg.timeout_ns / EVFN__NS_PER_MS));
	evfn__free(inv->ctx.error);
	inv->ctx.error = evfn__strdup(msg);
}

/* One attempt's outcome for its event: success, retry, or an end. */
static void
end_attempt_locked(struct evfn_rt *rt, struct evfn__inv *inv, int outcome,
                   struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	evfn__attempt_leave_locked(rt, inv);
	atomic_store(&inv->ctx.state, EVFN__ATTEMPT_DONE);
	inv->last_timed_out = outcome == EVFN__TIMED_OUT;
	if (inv->last_timed_out) {
		/* Returned, but late: a timeout like a fenced one. */
		fn->stat[EVFN_STAT_TIMEOUTS]++;
		evfn__set_deadline_error(inv);
		outcome = EVFN_RETRY;
	}
	if (outcome == EVFN_OK) {
		if (fn->cfg.idem_window_ns)
			evfn__idem_store_locked(fn, inv);
		evfn__finish_locked(rt, inv, EVFN_STAT_SUCCEEDED, 0, garbage);
		return;
	}
	fn->stat[EVFN_STAT_ATTEMPTS_FAILED]++;
	if (inv->cancel_requested)
		evfn__finish_locked(rt, inv, EVFN_STAT_CANCELLED, EVFN_ECANCELED,
		                    garbage);
	else if (outcome == EVFN_RETRY)
		evfn__retry_or_end_locked(rt, inv, garbage);
	else
		evfn__finish_locked(rt, inv, EVFN_STAT_DEAD_LETTERED,
		                    EVFN_EFAILED, garbage);
}

/* What a batch item's attempt came to: the call's outcome, unless the
 * call returned OK and the handler reported the item failed. */
static int
item_outcome(const struct evfn__batch *b, size_t i, int call_outcome)
{
	if (call_outcome != EVFN_OK || !b || i >= b->n || !b->outcomes[i])
		return call_outcome;
	return b->outcomes[i];
}

void
evfn__record_return(struct evfn_rt *rt, struct evfn__inv *inv, int outcome)
{
	if (!rt->opts.record_cb || outcome == EVFN_PENDING)
		return;
	if (atomic_load(&inv->ctx.state) == EVFN__ATTEMPT_TIMEDOUT) {
		evfn__record(rt, EVFN_RECORD_LATE, inv);
		return;
	}
	if (outcome == EVFN__TIMED_OUT) {
		for (struct evfn__inv *x = inv; x; x = x->batch_next)
			evfn__record(rt, EVFN_RECORD_TIMEOUT, x);
		return;
	}
	size_t i = 0;
	for (struct evfn__inv *x = inv; x; x = x->batch_next, i++)
		if (item_outcome(inv->ctx.batch, i, outcome) == EVFN_RETRY &&
		    x->attempt < (unsigned)x->fn->cfg.attempts)
			evfn__record(rt, EVFN_RECORD_RETRY, x);
}

void
evfn__complete_locked(struct evfn_rt *rt, struct evfn__inv *inv, int outcome,
                      struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	if (atomic_load(&inv->ctx.state) == EVFN__ATTEMPT_TIMEDOUT) {
		/* The watchdog fenced the call: this return changes nothing.
		 * Its other items went on in fresh records too; the old ones
		 * go with the first, now or after the watchdog's hook. */
		if (!inv->hook_running)
			evfn__batch_release_locked(inv, garbage);
		evfn__late_locked(rt, inv, garbage);
		return;
	}
	struct evfn__inv *item = inv->batch_next;
	inv->batch_next = NULL;
	const struct evfn__batch *b = inv->ctx.batch;
	const char *error = inv->ctx.error;
	for (size_t i = 1; item; i++) {
		struct evfn__inv *next = item->batch_next;
		item->batch_next = NULL;
		int o = item_outcome(b, i, outcome);
		/* A failed item carries the call's error to its dead letter. */
		if (o != EVFN_OK && error && !item->ctx.error)
			item->ctx.error = evfn__strdup(error);
		end_attempt_locked(rt, item, o, garbage);
		item = next;
	}
	fn->busy--;
	/* Told before the call's first attempt ends: a retry may give its
	 * record back (retry.c). */
	if (fn->flow)
		evfn__breaker_record_locked(rt, fn, inv, outcome == EVFN_OK,
		                            evfn__now_ns());
	end_attempt_locked(rt, inv, item_outcome(b, 0, outcome), garbage);
	/* Freed capacity may let the function start its next event. */
	evfn__fn_schedule_locked(rt, fn);
	if (rt->in_flight == 0 && rt->state >= EVFN__DRAINING)
		pthread_cond_broadcast(&rt->quiet_cond);
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
	if (rt->opts.record_cb)
		for (struct evfn__inv *x = inv; x; x = x->batch_next)
			evfn__record(rt, EVFN_RECORD_START, x);

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
		int expected = EVFN__ATTEMPT_RUNNING;
		if (atomic_compare_exchange_strong(&ctx->state, &expected,
		                                   EVFN__ATTEMPT_PENDING))
			return EVFN_PENDING;
		/* evfn_ctx_complete() ran before the handler returned and
		 * left its outcome here. */
		return atomic_load(&ctx->early_outcome);
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
	int expected = EVFN__ATTEMPT_RUNNING;
	/* Completed from inside the handler (or racing its return): leave
	 * the outcome for evfn__run_attempt to pick up. */
	atomic_store(&ctx->early_outcome, (int)outcome);
	if (atomic_compare_exchange_strong(&ctx->state, &expected,
	                                   EVFN__ATTEMPT_EARLY))
		return 0;
	struct evfn_rt *rt = fn->rt;
	/* Returned: from here the watchdog no longer fences it, so the
	 * record told below is its only one. Unless the watchdog fenced it
	 * first: then this return is late, whatever it says. */
	expected = EVFN__ATTEMPT_PENDING;
	bool returned = atomic_compare_exchange_strong(
		&ctx->state, &expected, EVFN__ATTEMPT_RETURNED);
	int64_t now = evfn__now_ns();
	int recorded = returned ? evfn__outcome_at(inv, outcome, now)
	                        : (int)outcome;
	if (returned || expected == EVFN__ATTEMPT_TIMEDOUT)
		evfn__record_return(rt, inv, recorded); /* still ours */
	struct evfn__inv *garbage = NULL;
	evfn__lock_acquire(&rt->lock);
	if (!returned && atomic_load(&ctx->state) != EVFN__ATTEMPT_TIMEDOUT) {
		evfn__lock_release(&rt->lock);
		return EVFN_EPERM;
	}
	int rc = !returned || recorded == EVFN__TIMED_OUT ? EVFN_ETIMEDOUT : 0;
	if (returned) {
		evfn__pending_remove_locked(rt, inv);
		evfn__metrics_completed_locked(rt, inv, now);
	}
	evfn__complete_locked(rt, inv, recorded, &garbage);
	/* This thread is not one the runtime stops before it is freed:
	 * count it, so that free waits until it has let go of rt. */
	rt->disposing++;
	evfn__lock_release(&rt->lock);
	struct evfn__inv *cleaned = evfn__release(rt, garbage);
	evfn__lock_acquire(&rt->lock);
	evfn__recycle_locked(rt, cleaned);
	if (--rt->disposing == 0)
		pthread_cond_broadcast(&rt->quiet_cond);
	evfn__lock_release(&rt->lock);
	return rc;
}
