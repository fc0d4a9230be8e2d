/* SPDX-License-Identifier: MIT */
/*
 * Admission: the single path by which events enter the runtime (emit,
 * publish, invoke, child emits, destinations, replays). Admission is all
 * or nothing under the runtime lock: the targets are resolved, every
 * target's bounds are checked (queue capacity, breaker, stuck cap), and
 * only then is the event frozen and handed to the state machine for each
 * target, so a refused event is untouched and stays the caller's. With a
 * journal, the event is journaled after it is frozen and before any
 * target sees it (journal_admit()). The public calls that admit are in
 * publish.c and invoke.c.
 */
#include <string.h>

#include "admit-internal.h"
#include "common-internal.h"
#include "dispatch-internal.h"
#include "registry-internal.h"

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

/* Whether every target can take one more event: it may queue (delayed
 * events count, they will queue when due), its breaker lets it in, and
 * it is not stuck. Refusals are counted. Returns 0, EVFN_EUNHEALTHY,
 * EVFN_ECIRCUITOPEN or EVFN_EQUEUEFULL. rt->lock held. */
static inline __attribute__((always_inline)) int
bounds_locked(const struct targets *t)
{
	int rc = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct evfn_fn *fn = t->v[i];
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
			fn->stat[EVFN_STAT_THROTTLED]++;
			if (rc == 0)
				rc = EVFN_EQUEUEFULL;
		}
	}
	return rc;
}

/*
 * Journals the frozen event ev for its targets before any of them can
 * see it. In fast mode the append only buffers, under the lock. In
 * durable mode it waits for its batch's fsync, so the lock is released
 * meanwhile (other producers' appends share that fsync) and the
 * admission is checked again after: an event refused then is ended in
 * the journal again. Returns 0, or why the event is refused, nothing of
 * it journaled: EVFN_ENOTRUNNING before start, EVFN_ENOSPC,
 * EVFN_EJOURNAL, EVFN_ENOMEM, or a refusal of the second check.
 * rt->lock held (released and taken again in durable mode).
 */
EVFN__NOINLINE static int
journal_admit(struct evfn_rt *rt, evfn_event *ev, const struct targets *t,
              bool delayed)
{
	struct evfn__journal *j = rt->journal;
	if (!j)
		return EVFN_ENOTRUNNING;
	uint32_t small[EVFN__ARRAY_SIZE(t->small)];
	uint32_t *ids = t->n <= EVFN__ARRAY_SIZE(small)
	                        ? small
	                        : evfn__malloc(t->n * sizeof(*ids));
	if (!ids)
		return EVFN_ENOMEM;
	for (size_t i = 0; i < t->n; i++)
		ids[i] = t->v[i]->jid;
	struct evfn__journal_state st = {
		.due_ns = delayed ? evfn__mono_to_wall(ev->born_ns) : 0};
	int rc;
	if (rt->opts.journal_mode == EVFN_JOURNAL_FAST) {
		rc = evfn__journal_append(j, ev->seq, ev, ids, t->n, &st);
	} else {
		/* Counted so that evfn_rt_free() waits for it to come back. */
		rt->journal_appending++;
		evfn__lock_release(&rt->lock);
		rc = evfn__journal_append(j, ev->seq, ev, ids, t->n, &st);
		evfn__lock_acquire(&rt->lock);
		if (--rt->journal_appending == 0)
			pthread_cond_broadcast(&rt->quiet_cond);
		if (rc == 0) {
			rc = rt->state >= EVFN__DRAINING ? EVFN_ESHUTDOWN
			                                 : bounds_locked(t);
			for (size_t i = 0; rc < 0 && i < t->n; i++)
				(void)evfn__journal_end(j, ev->seq, ids[i],
				                        EVFN__JEND_CANCELLED);
		}
	}
	if (ids != small)
		evfn__free(ids);
	return rc;
}

/* Freezes ev as evfn__admit() does and journals it before any target
 * can see it; a refusal (a full disk) thaws it, leaving it as it was,
 * the caller's. Returns 0 or journal_admit()'s refusal. rt->lock held
 * (released meanwhile in durable mode). */
EVFN__NOINLINE static int
freeze_journaled(struct evfn_rt *rt, evfn_event *ev, const struct targets *t,
                 int64_t now, bool *delayed)
{
	bool had_time = ev->time_set, had_source = ev->source != NULL;
	*delayed = evfn__event_freeze(ev, ++rt->next_seq, rt->source, now);
	int rc = journal_admit(rt, ev, t, *delayed);
	if (rc < 0)
		evfn__event_thaw(ev, had_time, had_source);
	return rc;
}

int
evfn__admit(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
            struct evfn_result *waiter, uint64_t *seq, bool handed_over,
            struct evfn__ended *ended)
{
	struct targets t; /* small[] is filled as targets are found */
	t.n = 0;
	t.cap = EVFN__ARRAY_SIZE(t.small);
	t.v = t.small;
	struct evfn__inv *invs = NULL;
	int rc = 0;

	/* Read before the lock: a clock read is not free on a VM. */
	int64_t now = evfn__now_ns();
	evfn__lock_acquire(&rt->lock);
	if (rt->state >= EVFN__DRAINING) {
		rc = EVFN_ESHUTDOWN;
		goto out;
	}
	if (fn_name) {
		struct evfn_fn *fn = evfn__fn_find_locked(rt, fn_name);
		rc = fn ? collect_target(fn, &t) : EVFN_ENOFN;
	} else {
		rc = evfn__router_match(rt->router, evfn__event_type(ev),
		                        collect_target, &t);
		if (rc == 0)
			rc = EVFN_ENOSUB;
	}
	if (rc < 0)
		goto out;
	rc = bounds_locked(&t);
	if (rc < 0)
		goto out;
	/* Past the hop limit, a chain of emits is a loop: each target
	 * accepts the event and dead-letters it at once. */
	bool loop = ev->hops > rt->opts.max_hops;
	/* An event with nothing to remember beyond itself queues bare, its
	 * invocation made when its attempt starts; others need one now. A
	 * durable journal releases the lock below, so the room reserved
	 * for a bare event could be gone by the time it comes back. */
	bool plain = !waiter && !loop && !evfn__event_okey(ev) &&
	             !evfn__event_has_delay(ev) &&
	             !(EVFN__UNLIKELY(rt->opts.journal_path) &&
	               rt->opts.journal_mode == EVFN_JOURNAL_DURABLE);
	for (size_t i = 0; i < t.n; i++) {
		if (plain && evfn__queue_reserve_bare(&t.v[i]->q))
			continue;
		struct evfn__inv *inv = evfn__inv_get(&rt->inv_pool);
		if (!inv) {
			rc = EVFN_ENOMEM;
			goto out;
		}
		inv->next = invs;
		invs = inv;
	}

	bool delayed;
	if (EVFN__UNLIKELY(rt->opts.journal_path)) {
		rc = freeze_journaled(rt, ev, &t, now, &delayed);
		if (rc < 0)
			goto out;
	} else {
		delayed = evfn__event_freeze(ev, ++rt->next_seq, rt->source,
		                             now);
	}
	if (t.n > (size_t)handed_over)
		atomic_fetch_add_explicit(&ev->refs,
		                          (unsigned)t.n - handed_over,
		                          memory_order_relaxed);
	enum evfn__accept_as as = loop      ? EVFN__ACCEPT_LOOPED
	                          : delayed ? EVFN__ACCEPT_DELAYED
	                                    : EVFN__ACCEPT_NOW;
	for (size_t i = 0; i < t.n; i++) {
		/* Room made above stays: the targets are distinct. */
		if (plain && evfn__queue_has_bare_room(&t.v[i]->q)) {
			evfn__accept_bare_locked(rt, t.v[i], ev);
			continue;
		}
		struct evfn__inv *inv = invs;
		invs = inv->next;
		inv->ev = ev;
		inv->fn = t.v[i];
		inv->waiter = waiter;
		evfn__accept_locked(rt, inv, as, ended);
	}
	if (seq)
		*seq = ev->seq;
out:
	/* Invocations allocated for a refused admission go back unused. */
	while (invs) {
		struct evfn__inv *inv = invs;
		invs = inv->next;
		evfn__inv_put(&rt->inv_pool, inv);
	}
	evfn__lock_release(&rt->lock);
	if (t.v != t.small)
		evfn__free(t.v);
	return rc;
}
