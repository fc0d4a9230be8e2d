/* SPDX-License-Identifier: MIT */
/*
 * Admission: the single path by which events enter the runtime (emit,
 * publish, invoke, child emits), and the queue operations behind it.
 * Admission is all or nothing under the runtime lock: the targets are
 * resolved, every target's queue bound is checked, and only then is the
 * event frozen and queued, so a refused event is untouched and stays the
 * caller's.
 */
#include <string.h>

#include <evfn/emit.h>

#include "common-internal.h"
#include "runtime-internal.h"

/* Puts fn at the back of q. fn->in_ready says fn is on a ready list, and
 * this is the only place that sets it: a function is pushed only when the
 * flag is clear, so it is on a list at most once (twice would make the
 * list a cycle, and a pick walking it would never end). */
static void
ready_push(struct evfn__fn_fifo *q, struct evfn_fn *fn)
{
	fn->in_ready = true;
	evfn__fn_fifo_push(q, fn);
}

/* Whether fn may start a call now (monotonic; 0: read the clock if
 * needed). False also while it must wait for time to pass (rate limit,
 * breaker cool-down, batch window): its flow timer is then armed to look
 * again. */
static bool
fn_startable_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	/* Draining: what has not started is handed back, not started. At
	 * its stuck cap a function starts nothing (each start could strand
	 * one more thread) until a stuck handler returns. */
	if (rt->state >= EVFN__DRAINING || rt->inv_starved ||
	    evfn__queue_empty(fn) || fn->paused ||
	    fn->stuck >= fn->cfg.max_stuck ||
	    (fn->cfg.concurrency && fn->busy >= fn->cfg.concurrency))
		return false;
	return !fn->flow ||
	       evfn__flow_allows_locked(rt, fn, now ? now : evfn__now_ns());
}

void
evfn__fn_schedule_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	if (fn->in_ready) {
		if (fn->cfg.executor != EVFN_EXECUTOR_LOOP)
			evfn__pool_backlog_locked(rt);
		return;
	}
	if (!fn_startable_locked(rt, fn, 0))
		return;
	if (fn->cfg.executor == EVFN_EXECUTOR_LOOP) {
		ready_push(&rt->loop_ready, fn);
		evfn__signal_raise(rt->wake);
	} else {
		ready_push(&rt->ready, fn);
		atomic_fetch_add_explicit(&rt->ready_gen, 1,
		                          memory_order_relaxed);
		evfn__pool_notify_locked(rt);
	}
}

void
evfn__unstarve_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	rt->inv_starved = false;
	for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next)
		evfn__fn_schedule_locked(rt, fn);
	evfn__retry_run_due_locked(rt, evfn__now_ns());
}

/* Takes fn's next invocation that should run, ending on the way those
 * too old (expired) and those already answered (idempotency). */
static struct evfn__inv *
take_next_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now,
                 struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *inv;
	while ((inv = evfn__queue_pop_locked(rt, fn))) {
		/* A first attempt's ready time is its event's birth. */
		int64_t born = inv->attempt ? inv->ev->born_ns : inv->ready_ns;
		if (now - born > fn->cfg.max_age_ns) {
			evfn__finish_locked(rt, inv, EVFN_STAT_EXPIRED,
			                    EVFN_EEXPIRED, garbage);
		} else if (fn->cfg.idem_window_ns &&
		           evfn__idem_hit_locked(fn, inv)) {
			/* Already succeeded: answer without running. */
			inv->idempotent_hit = true;
			evfn__finish_locked(rt, inv, EVFN_STAT_SUCCEEDED, 0,
			                    garbage);
		} else {
			return inv;
		}
	}
	return NULL;
}

/* inv's attempt starts now. The deadline is set here, under the lock,
 * before the watchdog can see the attempt as running. */
static void
start_attempt_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                     struct evfn__inv *inv, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	inv->ctx.deadline_ns = now + fn->cfg.timeout_ns;
	atomic_store_explicit(&inv->ctx.state, EVFN__ATTEMPT_RUNNING,
	                      memory_order_relaxed);
	/* Reset here, under the lock that evfn_cancel() takes. */
	atomic_store_explicit(&inv->ctx.cancelled, false, memory_order_relaxed);
	inv->last_ns = evfn__mono_to_wall(now);
	fn->running++;
	rt->in_flight++;
	if (++inv->attempt == 1)
		inv->first_ns = inv->last_ns;
	fn->stat[EVFN_STAT_ATTEMPTS]++;
}

/* A call of fn started: its deadline needs the watchdog, and the peak
 * counts the attempts running now, not those taken to run next. */
static void
call_started_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	evfn__watchdog_arm_locked(rt);
	uint64_t running = (uint64_t)(fn->running - fn->prefetched);
	if (running > fn->stat[EVFN_STAT_CONCURRENCY_PEAK])
		fn->stat[EVFN_STAT_CONCURRENCY_PEAK] = running;
}

/* Takes fn's next invocation that should run into the running state. */
static struct evfn__inv *
start_next_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now,
                  struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *inv = take_next_locked(rt, fn, now, garbage);
	if (inv)
		start_attempt_locked(rt, fn, inv, now);
	return inv;
}

struct evfn__inv *
evfn__pick_locked(struct evfn_rt *rt, struct evfn__fn_fifo *q, int64_t now,
                  struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn;
	while ((fn = evfn__fn_fifo_pop(q))) {
		/* Off the list from here: an event that ends below (expired,
		 * or an idempotency hit) may queue the next of its ordering
		 * key, which schedules fn and puts it back on the list. */
		fn->in_ready = false;
		struct evfn__inv *inv = NULL;
		if (fn_startable_locked(rt, fn, now) &&
		    (inv = start_next_locked(rt, fn, now, garbage))) {
			/* A batch call takes what else waits, up to its size;
			 * the items share the first one's deadline. */
			struct evfn__inv *last = inv, *item;
			for (int n = 1; n < fn->cfg.batch_max &&
			                (item = start_next_locked(rt, fn, now,
			                                          garbage));
			     n++) {
				last->batch_next = item;
				last = item;
			}
			if (fn->cfg.batch_max > 1)
				fn->stat[EVFN_STAT_BATCHES]++;
			fn->busy++;
			call_started_locked(rt, fn);
			if (fn->flow)
				evfn__flow_on_start_locked(fn, inv, now);
		}
		/* Round robin: a function with more startable work goes to
		 * the back, so one busy function cannot starve the others;
		 * unless it went back on the list above already. */
		if (!fn->in_ready && fn_startable_locked(rt, fn, now))
			ready_push(q, fn);
		if (inv)
			return inv;
	}
	return NULL;
}

int
evfn__prefetch_locked(struct evfn_rt *rt, struct evfn__inv *inv, int64_t now,
                      struct evfn__inv **garbage, int max)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	struct evfn__inv *last = inv, *next;
	int n = 0;
	for (; n < max && (next = start_next_locked(rt, fn, now, garbage)); n++) {
		atomic_store_explicit(&next->ctx.state, EVFN__ATTEMPT_PREFETCHED,
		                      memory_order_relaxed);
		next->prefetched = true;
		fn->prefetched++;
		fn->busy++;
		last->run_next = next;
		last = next;
	}
	return n;
}

bool
evfn__unstart_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                     struct evfn__inv **garbage)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	struct evfn__inv *r = evfn__inv_get(&rt->records);
	if (!r)
		return false;
	int expected = EVFN__ATTEMPT_PREFETCHED;
	if (!atomic_compare_exchange_strong(&inv->ctx.state, &expected,
	                                    EVFN__ATTEMPT_TIMEDOUT)) {
		evfn__recycle_locked(rt, r); /* its worker started it */
		return true;
	}
	/* The old record stays with the worker, which skips it; the event
	 * goes back as if this attempt had not started. */
	evfn__carry_on_locked(inv, r);
	if (--r->attempt == 0)
		r->first_ns = r->last_ns = 0;
	evfn__attempt_leave_locked(rt, inv);
	fn->busy--;
	fn->stat[EVFN_STAT_ATTEMPTS]--;
	if (inv->cancel_requested)
		evfn__finish_locked(rt, r, EVFN_STAT_CANCELLED, EVFN_ECANCELED,
		                    garbage);
	else if (rt->state >= EVFN__DRAINING)
		evfn__finish_locked(rt, r, EVFN_STAT_HANDED_BACK,
		                    EVFN_EHANDEDBACK, garbage);
	else
		evfn__enqueue_locked(rt, r);
	return true;
}

/* The targets of one admission; most events have few. */
struct targets {
	struct evfn_fn *small[8];
	struct evfn_fn **v;
	size_t n, cap;
};

static int
collect_target(void *target, void *arg)
{
	struct targets *t = arg;
	if (t->n == t->cap) {
		size_t cap = t->cap * 2;
		struct evfn_fn **v = evfn__malloc(cap * sizeof(*v));
		if (!v)
			return EVFN_ENOMEM;
		memcpy(v, t->v, t->n * sizeof(*v));
		if (t->v != t->small)
			evfn__free(t->v);
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = target;
	return 0;
}

/* The admission; with handed_over, the caller's reference becomes one
 * of the targets' when the event is accepted (an event built for this
 * call: no reference to add and drop). */
static int
admit(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
      struct evfn_result *waiter, uint64_t *seq, bool handed_over)
{
	struct targets t; /* small[] is filled as targets are found */
	t.n = 0;
	t.cap = EVFN__ARRAY_SIZE(t.small);
	t.v = t.small;
	struct evfn__inv *invs = NULL, *looped = NULL;
	int rc = 0;

	/* Read before the lock: a clock read is not free on a VM. */
	int64_t now = evfn__now_ns();
	evfn__lock_acquire(&rt->lock);
	if (rt->state >= EVFN__DRAINING) {
		rc = EVFN_ESHUTDOWN;
		goto out;
	}
	if (fn_name) {
		struct evfn_fn *fn = evfn__fn_find(rt, fn_name);
		rc = fn ? collect_target(fn, &t) : EVFN_ENOFN;
	} else {
		rc = evfn__router_match(rt->router, evfn__event_type(ev),
		                        collect_target, &t);
		if (rc == 0)
			rc = EVFN_ENOSUB;
	}
	if (rc < 0)
		goto out;
	rc = 0;
	for (size_t i = 0; i < t.n; i++) {
		struct evfn_fn *fn = t.v[i];
		if (fn->stuck >= fn->cfg.max_stuck) {
			fn->stat[EVFN_STAT_THROTTLED]++;
			rc = EVFN_EUNHEALTHY;
		} else if (fn->flow && evfn__breaker_refuses_locked(fn)) {
			fn->stat[EVFN_STAT_THROTTLED]++;
			if (rc == 0 || rc == EVFN_EQUEUEFULL)
				rc = EVFN_ECIRCUITOPEN;
		} else if (fn->queued + (int64_t)fn->stat[EVFN_STAT_DELAYED] >=
		           fn->cfg.queue_capacity) {
			/* Delayed events count: they will queue when due. */
			fn->stat[EVFN_STAT_THROTTLED]++;
			if (rc == 0)
				rc = EVFN_EQUEUEFULL;
		}
	}
	if (rc < 0)
		goto out;
	/* Past the hop limit, a chain of emits is a loop: each target
	 * accepts the event and dead-letters it at once. */
	bool loop = ev->hops > rt->opts.max_hops;
	/* An event with nothing to remember beyond itself queues bare, its
	 * record made when its attempt starts; others need one now. */
	bool plain = !waiter && !loop && !evfn__event_okey(ev) &&
	             !evfn__event_has_delay(ev);
	for (size_t i = 0; i < t.n; i++) {
		if (plain && evfn__queue_reserve_bare_locked(t.v[i]))
			continue;
		struct evfn__inv *inv = evfn__inv_get(&rt->records);
		if (!inv) {
			rc = EVFN_ENOMEM;
			goto out;
		}
		inv->next = invs;
		invs = inv;
	}

	bool delayed = evfn__event_freeze(ev, ++rt->next_seq, rt->source, now);
	if (t.n > (size_t)handed_over)
		atomic_fetch_add_explicit(&ev->refs,
		                          (unsigned)t.n - handed_over,
		                          memory_order_relaxed);
	for (size_t i = 0; i < t.n; i++) {
		t.v[i]->stat[EVFN_STAT_ACCEPTED]++;
		/* Room made above stays: the targets are distinct. */
		if (plain && evfn__queue_has_bare_room(t.v[i])) {
			evfn__queue_push_bare_locked(rt, t.v[i], ev);
			continue;
		}
		struct evfn__inv *inv = invs;
		invs = inv->next;
		inv->ev = ev;
		inv->fn = t.v[i];
		inv->waiter = waiter;
		if (loop) {
			evfn_ctx_set_error(&inv->ctx, "hop limit exceeded");
			evfn__finish_locked(rt, inv, EVFN_STAT_DEAD_LETTERED,
			                    EVFN_ELOOPDETECTED, &looped);
		} else if (delayed) {
			/* Due at born_ns: waits on the timer heap till then. */
			inv->delayed = true;
			inv->due_ns = ev->born_ns;
			evfn__retry_push_locked(rt, inv);
		} else {
			evfn__okey_join_locked(rt, inv);
		}
	}
	if (seq)
		*seq = ev->seq;
out:
	/* Records allocated for a refused admission go back unused. */
	while (invs) {
		struct evfn__inv *inv = invs;
		invs = inv->next;
		evfn__inv_put(&rt->records, inv);
	}
	evfn__lock_release(&rt->lock);
	if (t.v != t.small)
		evfn__free(t.v);
	evfn__dispose(rt, looped);
	return rc;
}

int
evfn__admit(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
            struct evfn_result *waiter, uint64_t *seq)
{
	return admit(rt, ev, fn_name, waiter, seq, false);
}

/* Admits a freshly built event, the builder's reference going to its
 * first target; if admission failed, drops it, which frees the event
 * (and releases a handed-over payload). */
static int
admit_new(evfn_rt *rt, evfn_event *ev, const char *fn_name, uint64_t *seq)
{
	int rc = admit(rt, ev, fn_name, NULL, seq, true);
	if (rc < 0)
		evfn_event_unref(ev);
	return rc;
}

int
evfn_emit(evfn_rt *rt, const char *topic, const void *data, size_t len,
          uint64_t *seq)
{
	if (!rt)
		return EVFN_EINVAL;
	evfn_event *ev;
	int rc = evfn__event_create(&ev, topic, data, len, true, NULL, NULL, 0);
	return rc < 0 ? rc : admit_new(rt, ev, NULL, seq);
}

int
evfn_emit_ref(evfn_rt *rt, const char *topic, void *data, size_t len,
              evfn_free_cb free_cb, void *free_arg, uint64_t *seq)
{
	if (!rt) {
		if (free_cb)
			free_cb(data, free_arg);
		return EVFN_EINVAL;
	}
	evfn_event *ev;
	int rc = evfn__event_create(&ev, topic, data, len, false, free_cb,
	                            free_arg, 0);
	return rc < 0 ? rc : admit_new(rt, ev, NULL, seq);
}

int
evfn_publish(evfn_rt *rt, evfn_event *ev, uint64_t *seq)
{
	if (!rt || !ev)
		return EVFN_EINVAL;
	if (ev->frozen)
		return EVFN_EPERM;
	return evfn__admit(rt, ev, NULL, NULL, seq);
}

int
evfn_publish_to(evfn_rt *rt, const char *fn_name, evfn_event *ev,
                uint64_t *seq)
{
	if (!rt || !ev)
		return EVFN_EINVAL;
	int rc = evfn__check_name(fn_name);
	if (rc < 0)
		return rc;
	if (ev->frozen)
		return EVFN_EPERM;
	return evfn__admit(rt, ev, fn_name, NULL, seq);
}

int
evfn_invoke_async(evfn_rt *rt, const char *fn_name, const void *data,
                  size_t len, uint64_t *seq)
{
	if (!rt)
		return EVFN_EINVAL;
	/* The event's type is the function name: creating it checks it. */
	evfn_event *ev;
	int rc = evfn__event_create(&ev, fn_name, data, len, true, NULL, NULL,
	                            0);
	return rc < 0 ? rc : admit_new(rt, ev, fn_name, seq);
}

int
evfn_ctx_emit(evfn_ctx *ctx, const char *topic, const void *data, size_t len,
              uint64_t *seq)
{
	if (!ctx)
		return EVFN_EINVAL;
	struct evfn__inv *inv = EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx);
	evfn_event *ev;
	int rc = evfn__event_create(&ev, topic, data, len, true, NULL, NULL,
	                            inv->ev->hops + 1);
	return rc < 0 ? rc : admit_new(inv->fn->rt, ev, NULL, seq);
}

int
evfn_ctx_publish(evfn_ctx *ctx, evfn_event *ev, uint64_t *seq)
{
	if (!ctx || !ev)
		return EVFN_EINVAL;
	if (ev->frozen)
		return EVFN_EPERM;
	struct evfn__inv *inv = EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx);
	ev->hops = inv->ev->hops + 1;
	return evfn__admit(inv->fn->rt, ev, NULL, NULL, seq);
}
