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

/* Enough records to absorb a burst without keeping a big one forever. */
#define INV_FREE_MAX 4096

/* Set while an outcome arrives early: evfn_ctx_complete() was called
 * before the loop handler returned EVFN_PENDING. */
#define EVFN__ATTEMPT_EARLY (EVFN__ATTEMPT_DONE + 1)

struct evfn__inv *
evfn__inv_alloc_locked(struct evfn_rt *rt)
{
	struct evfn__inv *inv = rt->inv_free;
	if (inv) {
		rt->inv_free = inv->next;
		rt->inv_free_n--;
		memset(inv, 0, sizeof(*inv));
		return inv;
	}
	return evfn__calloc(1, sizeof(*inv));
}

struct evfn__inv *
evfn__release(struct evfn__inv *garbage)
{
	for (struct evfn__inv *inv = garbage; inv; inv = inv->next) {
		evfn_event_unref(inv->ev);
		inv->ev = NULL;
		evfn__free(inv->ctx.resp);
		inv->ctx.resp = NULL;
		evfn__free(inv->ctx.error);
		inv->ctx.error = NULL;
		evfn__kv_free(&inv->ctx.meta);
	}
	return garbage;
}

void
evfn__recycle_locked(struct evfn_rt *rt, struct evfn__inv *cleaned)
{
	while (cleaned) {
		struct evfn__inv *inv = cleaned;
		cleaned = inv->next;
		if (rt->inv_free_n >= INV_FREE_MAX) {
			evfn__free(inv);
			continue;
		}
		inv->next = rt->inv_free;
		rt->inv_free = inv;
		rt->inv_free_n++;
	}
}

void
evfn__dispose(struct evfn_rt *rt, struct evfn__inv *garbage)
{
	if (!garbage)
		return;
	struct evfn__inv *cleaned = evfn__release(garbage);
	pthread_mutex_lock(&rt->lock);
	evfn__recycle_locked(rt, cleaned);
	pthread_mutex_unlock(&rt->lock);
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
	struct evfn__waiter *w = inv->waiter;
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
	w->error = inv->ctx.error;
	inv->ctx.error = NULL;
	w->done = true;
	inv->waiter = NULL;
	if (!w->cb) {
		pthread_cond_signal(&w->cond);
		return;
	}
	/* Result callbacks run on the loop thread, where sources that must
	 * answer (HTTP, acknowledgements) live. */
	w->ev = evfn_event_ref(inv->ev);
	w->next = NULL;
	if (rt->results_tail)
		rt->results_tail->next = w;
	else
		rt->results_head = w;
	rt->results_tail = w;
	evfn__loop_wake_locked(rt);
}

void
evfn__deliver_results_locked(struct evfn_rt *rt)
{
	while (rt->results_head) {
		struct evfn__waiter *list = rt->results_head;
		rt->results_head = rt->results_tail = NULL;
		pthread_mutex_unlock(&rt->lock);
		while (list) {
			struct evfn__waiter *w = list;
			list = w->next;
			w->cb(w, w->cb_arg);
			evfn__result_clear(w);
			evfn__free(w);
		}
		pthread_mutex_lock(&rt->lock);
	}
}

void
evfn__finish_locked(struct evfn_rt *rt, struct evfn__inv *inv, evfn_stat stat,
                    int result, struct evfn__inv **garbage)
{
	inv->fn->stat[stat]++;
	wake_waiter(rt, inv, result);
	if (stat == EVFN_STAT_HANDED_BACK) {
		/* Delivered to the drain callback by the draining thread. */
		push(&rt->handback, inv);
		pthread_cond_broadcast(&rt->quiet_cond);
	} else {
		push(garbage, inv);
	}
}

/* A failed attempt that may be retried: schedule it, or end it when no
 * attempt, age or intake is left. */
static void
retry_or_end_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                    struct evfn__inv **garbage)
{
	struct evfn_fn *fn = inv->fn;
	if (inv->attempt >= (unsigned)fn->cfg.attempts) {
		evfn__finish_locked(rt, inv, EVFN_STAT_DEAD_LETTERED,
		                    EVFN_EEXHAUSTED, garbage);
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
evfn__complete_locked(struct evfn_rt *rt, struct evfn__inv *inv, int outcome,
                      struct evfn__inv **garbage)
{
	struct evfn_fn *fn = inv->fn;
	fn->running--;
	rt->in_flight--;
	atomic_store(&inv->ctx.state, EVFN__ATTEMPT_DONE);
	if (outcome == EVFN_OK) {
		fn->stat[EVFN_STAT_SUCCEEDED]++;
		wake_waiter(rt, inv, 0);
		push(garbage, inv);
	} else {
		fn->stat[EVFN_STAT_ATTEMPTS_FAILED]++;
		if (outcome == EVFN_RETRY)
			retry_or_end_locked(rt, inv, garbage);
		else
			evfn__finish_locked(rt, inv, EVFN_STAT_DEAD_LETTERED,
			                    EVFN_EFAILED, garbage);
	}
	/* Freed capacity may let the function start its next event. */
	evfn__fn_schedule_locked(rt, fn);
	if (rt->in_flight == 0 && rt->state >= EVFN__DRAINING)
		pthread_cond_broadcast(&rt->quiet_cond);
}

static void
set_error(struct evfn_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
set_error(struct evfn_ctx *ctx, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	evfn_ctx_set_error(ctx, buf);
}

int
evfn__run_attempt(struct evfn_rt *rt, struct evfn__inv *inv,
                  struct evfn__worker *worker)
{
	struct evfn_fn *fn = inv->fn;
	struct evfn_ctx *ctx = &inv->ctx;
	ctx->worker = worker;
	ctx->worker_state = NULL;
	atomic_store_explicit(&ctx->state, EVFN__ATTEMPT_RUNNING,
	                      memory_order_relaxed);
	atomic_store_explicit(&ctx->cancelled, false, memory_order_relaxed);
	if (fn->cfg.init) {
		int rc = 0;
		ctx->worker_state = evfn__worker_state(worker, fn, &rc);
		if (rc < 0) {
			set_error(ctx, "worker init hook failed: %s",
			          evfn_strerror(rc));
			return EVFN_RETRY;
		}
	}
	ctx->deadline_ns = evfn__now_ns() + fn->cfg.timeout_ns;

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
			set_error(ctx, "handler returned EVFN_PENDING on the "
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
		set_error(ctx, "handler returned unknown outcome %d", outcome);
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
	expected = EVFN__ATTEMPT_PENDING;
	if (!atomic_compare_exchange_strong(&ctx->state, &expected,
	                                    EVFN__ATTEMPT_DONE))
		return EVFN_EPERM;
	struct evfn_rt *rt = fn->rt;
	struct evfn__inv *garbage = NULL;
	pthread_mutex_lock(&rt->lock);
	evfn__complete_locked(rt, inv, outcome, &garbage);
	/* This thread is not one the runtime stops before it is freed:
	 * count it, so that free waits until it has let go of rt. */
	rt->disposing++;
	pthread_mutex_unlock(&rt->lock);
	struct evfn__inv *cleaned = evfn__release(garbage);
	pthread_mutex_lock(&rt->lock);
	evfn__recycle_locked(rt, cleaned);
	if (--rt->disposing == 0)
		pthread_cond_broadcast(&rt->quiet_cond);
	pthread_mutex_unlock(&rt->lock);
	return 0;
}

unsigned
evfn_ctx_attempt(const evfn_ctx *ctx)
{
	return ctx ? EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx)->attempt
	           : 0;
}

int64_t
evfn_ctx_deadline_ns(const evfn_ctx *ctx)
{
	return ctx ? ctx->deadline_ns : 0;
}

int64_t
evfn_ctx_remaining_ns(const evfn_ctx *ctx)
{
	if (!ctx)
		return 0;
	int64_t left = ctx->deadline_ns - evfn__now_ns();
	return left > 0 ? left : 0;
}

bool
evfn_ctx_cancelled(const evfn_ctx *ctx)
{
	return ctx && (atomic_load(&((evfn_ctx *)ctx)->cancelled) ||
	               evfn_ctx_remaining_ns(ctx) == 0);
}

evfn_fn *
evfn_ctx_function(const evfn_ctx *ctx)
{
	return ctx ? EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx)->fn : NULL;
}

evfn_rt *
evfn_ctx_runtime(const evfn_ctx *ctx)
{
	evfn_fn *fn = evfn_ctx_function(ctx);
	return fn ? fn->rt : NULL;
}

void *
evfn_ctx_worker_state(const evfn_ctx *ctx)
{
	return ctx ? ctx->worker_state : NULL;
}

int
evfn_ctx_respond(evfn_ctx *ctx, const void *data, size_t len)
{
	if (!ctx || (!data && len > 0))
		return EVFN_EINVAL;
	void *copy = NULL;
	if (len && !(copy = evfn__malloc(len)))
		return EVFN_ENOMEM;
	if (len)
		memcpy(copy, data, len);
	evfn__free(ctx->resp);
	ctx->resp = copy;
	ctx->resp_len = len;
	return 0;
}

int
evfn_ctx_set_meta(evfn_ctx *ctx, const char *key, const char *value)
{
	if (!ctx || !key || !*key)
		return EVFN_EINVAL;
	return evfn__kv_set(&ctx->meta, key, value);
}

void
evfn__result_clear(struct evfn_result *r)
{
	evfn__free(r->resp);
	r->resp = NULL;
	evfn__free(r->error);
	r->error = NULL;
	evfn__kv_free(&r->meta);
	evfn_event_unref(r->ev);
	r->ev = NULL;
}

int
evfn_result_code(const evfn_result *r)
{
	return r ? r->result : EVFN_EINVAL;
}

const void *
evfn_result_data(const evfn_result *r, size_t *len)
{
	if (len)
		*len = r ? r->resp_len : 0;
	return r ? r->resp : NULL;
}

const char *
evfn_result_meta(const evfn_result *r, const char *key)
{
	return r && key ? evfn__kv_get(r->meta, key) : NULL;
}

const char *
evfn_result_meta_at(const evfn_result *r, size_t i, const char **key)
{
	const struct evfn__kv *kv = r ? evfn__kv_at(r->meta, i) : NULL;
	if (key)
		*key = kv ? kv->key : NULL;
	return kv ? kv->value : NULL;
}

const char *
evfn_result_error(const evfn_result *r)
{
	return r ? r->error : NULL;
}

unsigned
evfn_result_attempts(const evfn_result *r)
{
	return r ? r->attempts : 0;
}

const evfn_event *
evfn_result_event(const evfn_result *r)
{
	return r ? r->ev : NULL;
}

int
evfn_ctx_set_error(evfn_ctx *ctx, const char *msg)
{
	if (!ctx || !msg)
		return EVFN_EINVAL;
	size_t len = strnlen(msg, 1023);
	char *copy = evfn__malloc(len + 1);
	if (!copy)
		return EVFN_ENOMEM;
	memcpy(copy, msg, len);
	copy[len] = '\0';
	evfn__free(ctx->error);
	ctx->error = copy;
	return 0;
}

int
evfn_invoke(evfn_rt *rt, const char *fn_name, const void *data, size_t len,
            void **resp, size_t *resp_len)
{
	if (resp)
		*resp = NULL;
	if (resp_len)
		*resp_len = 0;
	if (!rt)
		return EVFN_EINVAL;
	int rc = evfn__check_name(fn_name);
	if (rc < 0)
		return rc;
	/* The loop runs retries and loop handlers: blocking it could wait
	 * forever. */
	if (evfn__tls_loop_rt == rt)
		return EVFN_EDEADLK;
	evfn_event *ev;
	rc = evfn__event_create(&ev, fn_name, data, len, true, NULL, NULL, 0);
	if (rc < 0)
		return rc;
	struct evfn__waiter w = {.done = false};
	pthread_cond_init(&w.cond, NULL);
	rc = evfn__admit(rt, ev, fn_name, &w, NULL);
	evfn_event_unref(ev);
	if (rc == 0) {
		pthread_mutex_lock(&rt->lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &rt->lock);
		pthread_mutex_unlock(&rt->lock);
		rc = w.result;
		if (rc == 0 && resp) {
			*resp = w.resp;
			w.resp = NULL;
			if (resp_len)
				*resp_len = w.resp_len;
		}
		evfn__result_clear(&w);
	}
	pthread_cond_destroy(&w.cond);
	return rc;
}

int
evfn_submit(evfn_rt *rt, const char *fn_name, evfn_event *ev,
            evfn_result_cb cb, void *arg, uint64_t *seq)
{
	if (!rt || !ev || !cb)
		return EVFN_EINVAL;
	int rc = evfn__check_name(fn_name);
	if (rc < 0)
		return rc;
	if (ev->frozen)
		return EVFN_EPERM;
	struct evfn__waiter *w = evfn__calloc(1, sizeof(*w));
	if (!w)
		return EVFN_ENOMEM;
	w->cb = cb;
	w->cb_arg = arg;
	rc = evfn__admit(rt, ev, fn_name, w, seq);
	if (rc < 0)
		evfn__free(w); /* refused: the callback is never called */
	return rc;
}
