/* SPDX-License-Identifier: MIT */
/*
 * What a thread that runs handlers keeps, whichever executor it serves
 * (a pool worker, the loop): the warm state its functions' init hooks
 * built, its own measurements per function (one writer, no lock), the
 * batch view of the call it runs; and running one call on it, from the
 * START event-log record to the outcome its handler returned.
 */
#include <string.h>

#include <evfn/context.h>

#include "callout-internal.h"
#include "common-internal.h"
#include "dispatch-internal.h"
#include "worker-internal.h"

_Thread_local struct evfn_rt *evfn__tls_handler_rt EVFN__TLS_INITIAL_EXEC;

struct evfn__warm_slot {
	struct evfn_fn *fn; /* NULL until the init hook succeeded */
	void *state;
};

void
evfn__worker_init(struct evfn__worker *w, struct evfn_rt *rt)
{
	*w = (struct evfn__worker){.rt = rt};
}

void
evfn__worker_end_states(struct evfn__worker *w)
{
	for (unsigned i = 0; i < w->nslots; i++) {
		struct evfn__warm_slot *s = &w->slots[i];
		if (s->fn && s->fn->cfg.fini)
			evfn__call_fini(&w->rt->lock, s->fn->cfg.fini,
			                s->fn->userdata, s->state);
		s->fn = NULL;
	}
}

void
evfn__worker_destroy(struct evfn__worker *w)
{
	evfn__worker_end_states(w);
	evfn__free(w->slots);
	for (unsigned i = 0; i < w->nmetrics; i++)
		evfn__free(w->metrics[i]);
	evfn__free(w->metrics);
	evfn__free(w->batch.items);
	evfn__free(w->batch.outcomes);
	*w = (struct evfn__worker){.rt = w->rt};
}

/* The worker's batch view, with room for n items; NULL when out of
 * memory. Owner thread. */
static struct evfn__batch *
worker_batch(struct evfn__worker *w, size_t n)
{
	struct evfn__batch *b = &w->batch;
	if (n > b->cap) {
		struct evfn__inv **items =
			evfn__realloc(b->items, n * sizeof(*items));
		if (!items)
			return NULL;
		b->items = items;
		signed char *outcomes = evfn__realloc(b->outcomes, n);
		if (!outcomes)
			return NULL;
		b->outcomes = outcomes;
		b->cap = n;
	}
	return b;
}

/* The warm state of fn on w, built by fn's init hook on first use; on a
 * hook failure returns NULL and sets *rc. Runs on w's thread. */
static void *
warm_state(struct evfn__worker *w, struct evfn_fn *fn, int *rc)
{
	*rc = 0;
	if (fn->index >= w->nslots) {
		unsigned n = EVFN__MAX(fn->index + 1, w->nslots * 2);
		struct evfn__warm_slot *slots =
			evfn__realloc(w->slots, n * sizeof(*slots));
		if (!slots) {
			*rc = EVFN_ENOMEM;
			return NULL;
		}
		memset(slots + w->nslots, 0, (n - w->nslots) * sizeof(*slots));
		w->slots = slots;
		w->nslots = n;
	}
	struct evfn__warm_slot *s = &w->slots[fn->index];
	if (!s->fn) {
		void *state = NULL;
		int hook_rc = evfn__call_init(&w->rt->lock, fn->cfg.init,
		                              fn->userdata, &state);
		if (hook_rc < 0) {
			*rc = hook_rc;
			return NULL;
		}
		s->fn = fn;
		s->state = state;
	}
	return s->state;
}

/* This worker's metrics for fn, created on first use. Owner thread. */
static struct evfn__metrics *
metrics_of(struct evfn__worker *w, struct evfn_fn *fn)
{
	if (fn->index < w->nmetrics && w->metrics[fn->index])
		return w->metrics[fn->index];
	struct evfn__metrics *m = NULL;
	evfn__lock_acquire(&w->rt->lock);
	if (fn->index >= w->nmetrics) {
		unsigned n = EVFN__MAX(fn->index + 1, w->nmetrics * 2);
		struct evfn__metrics **a =
			evfn__realloc(w->metrics, n * sizeof(*a));
		if (a) {
			memset(a + w->nmetrics, 0,
			       (n - w->nmetrics) * sizeof(*a));
			w->metrics = a;
			w->nmetrics = n;
		}
	}
	if (fn->index < w->nmetrics) {
		m = evfn__calloc(1, sizeof(*m));
		w->metrics[fn->index] = m;
	}
	evfn__lock_release(&w->rt->lock);
	return m;
}

struct evfn__metrics *
evfn__worker_metrics(struct evfn__worker *w, struct evfn_fn *fn)
{
	return w->rt->opts.no_metrics ? NULL : metrics_of(w, fn);
}

void
evfn__worker_measure(struct evfn__worker *w, const struct evfn__inv *inv,
                     int64_t end_ns)
{
	struct evfn__metrics *m = evfn__worker_metrics(w, inv->fn);
	if (m) /* else off, or out of memory: this attempt goes unmeasured */
		evfn__worker_measure_into(m, inv, end_ns);
}

void
evfn__worker_measure_wait(struct evfn__worker *w, const struct evfn__inv *inv)
{
	struct evfn__metrics *m = evfn__worker_metrics(w, inv->fn);
	if (m)
		evfn__metrics_waits(m, inv, inv->start_ns);
}

void
evfn__worker_retire_locked(struct evfn__worker *w)
{
	struct evfn_rt *rt = w->rt;
	EVFN__ASSERT_LOCKED(rt);
	for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next)
		if (fn->index < w->nmetrics && w->metrics[fn->index])
			evfn__metrics_add(&fn->retired, w->metrics[fn->index]);
}

void
evfn__worker_collect_locked(const struct evfn__worker *w,
                            const struct evfn_fn *fn, struct evfn_stats *s)
{
	EVFN__ASSERT_LOCKED(w->rt);
	if (fn->index < w->nmetrics && w->metrics[fn->index])
		evfn__metrics_collect(s, w->metrics[fn->index]);
}

/* What a call needs besides its handler, when it needs any of it: its
 * batch view, its warm state, its START records. 0, or the outcome the
 * call comes to without its handler (EVFN_RETRY: out of memory, or the
 * init hook failed). */
static int
prepare_call(struct evfn__worker *worker, struct evfn__inv *inv)
{
	struct evfn_rt *rt = worker->rt;
	struct evfn_fn *fn = inv->fn;
	struct evfn_ctx *ctx = &inv->ctx;
	if (fn->cfg.batch_max > 1) {
		size_t n = 1;
		for (struct evfn__inv *x = inv->batch_next; x;
		     x = x->batch_next)
			n++;
		struct evfn__batch *b = worker_batch(worker, n);
		if (!b) {
			evfn_ctx_errorf(ctx, "out of memory for a batch of %zu",
			                n);
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
		ctx->worker_state = warm_state(worker, fn, &rc);
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
	return 0;
}

/* The outcome of a call whose handler returned neither EVFN_OK,
 * EVFN_RETRY nor EVFN_FAIL. */
EVFN__NOINLINE static int
odd_outcome(struct evfn__inv *inv, int outcome)
{
	struct evfn_ctx *ctx = &inv->ctx;
	if (outcome == EVFN_PENDING) {
		if (inv->fn->cfg.executor != EVFN_EXECUTOR_LOOP) {
			evfn_ctx_errorf(ctx, "handler returned EVFN_PENDING "
			                     "on the pool executor");
			return EVFN_FAIL;
		}
		return evfn__attempt_pend(inv);
	}
	evfn_ctx_errorf(ctx, "handler returned unknown outcome %d", outcome);
	return EVFN_FAIL;
}

/* Runs inv's handler, marking this thread as one that runs rt's
 * handlers meanwhile; returns the call's outcome. */
static inline int
run_handler(struct evfn_rt *rt, struct evfn__inv *inv)
{
	struct evfn_fn *fn = inv->fn;
	struct evfn_rt *outer = evfn__tls_handler_rt;
	evfn__tls_handler_rt = rt;
	int outcome = evfn__call_handler(&rt->lock, fn->handler, &inv->ctx,
	                                 inv->ev, fn->userdata);
	evfn__tls_handler_rt = outer;
	if (EVFN__LIKELY(outcome == EVFN_OK || outcome == EVFN_RETRY ||
	                 outcome == EVFN_FAIL))
		return outcome;
	return odd_outcome(inv, outcome);
}

/* evfn__worker_run() of a call that needs more than its handler. */
EVFN__NOINLINE static int
run_prepared(struct evfn__worker *worker, struct evfn__inv *inv)
{
	int rc = prepare_call(worker, inv);
	return rc ? rc : run_handler(worker->rt, inv);
}

int
evfn__worker_run(struct evfn__worker *worker, struct evfn__inv *inv)
{
	struct evfn_rt *rt = worker->rt;
	struct evfn_fn *fn = inv->fn;
	struct evfn_ctx *ctx = &inv->ctx;
	ctx->worker = worker;
	ctx->worker_state = NULL;
	ctx->batch = NULL;
	/* Most calls need nothing but their handler: the rest is out of
	 * line, as is what an odd outcome means, so that this function
	 * keeps few registers across the handler's call. */
	if (EVFN__UNLIKELY(fn->cfg.batch_max > 1 || fn->cfg.init ||
	                   evfn__eventlog_on(&rt->eventlog)))
		return run_prepared(worker, inv);
	return run_handler(rt, inv);
}

void
evfn__worker_tell_outcome(struct evfn__eventlog *log, struct evfn__inv *inv,
                          int outcome)
{
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
		if (evfn__batch_item_outcome(inv->ctx.batch, i, outcome) ==
		            EVFN_RETRY &&
		    x->attempt < (unsigned)x->fn->cfg.attempts)
			evfn__eventlog_tell(log, EVFN_RECORD_RETRY, x,
			                    x->fn->name);
}
