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
	struct evfn__inv *invs = NULL;
	struct evfn__ended looped = {0};
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
		} else if (fn->flow && evfn__fn_breaker(fn) &&
		           evfn__breaker_refuses(evfn__fn_breaker(fn),
		                                 &fn->cfg)) {
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
		if (plain && evfn__queue_reserve_bare(&t.v[i]->q))
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
		if (plain && evfn__queue_has_bare_room(&t.v[i]->q)) {
			evfn__enqueue_bare_locked(rt, t.v[i], ev);
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
			evfn__wait_due_locked(rt, inv);
		} else {
			evfn__queue_in_order_locked(rt, inv);
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
	evfn__settle(rt, &looped);
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
