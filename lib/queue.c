/* SPDX-License-Identifier: MIT */
/*
 * A function's queue: the events that may start, oldest first. Most
 * queued events are first attempts with nothing to remember but the
 * event itself (no waiter, no ordering key, no delay): those wait as the
 * bare event, tagged in a ring slot, and get their invocation record only
 * when their attempt starts. So a queued event costs one 8-byte slot
 * beyond the event, and the record is taken and given back by the worker
 * that runs it, staying in that worker's cache instead of crossing from
 * the producer. Retries, waiters and keyed events queue as records.
 *
 * When the ring cannot grow (out of memory), records wait in an overflow
 * list behind it, and bare events are admitted as records instead; while
 * the overflow list is not empty everything queues there, keeping the
 * order.
 */
#include <string.h>

#include "common-internal.h"
#include "event-internal.h"
#include "runtime-internal.h"

/* The first ring's size, and the size above which an emptied ring is
 * freed: a function that queued a burst does not keep its memory. */
#define RING_MIN_SLOTS 16
#define RING_KEEP_SLOTS 1024

#define BARE_TAG ((uintptr_t)1)
/* A worker takes several events under one lock, each first touched
 * there (it was written by another thread): asking for the event this
 * many slots ahead overlaps those cache misses instead of taking them
 * one after the other. */
#define WARM_AHEAD 4

static inline bool
is_bare(uintptr_t slot)
{
	return (slot & BARE_TAG) != 0;
}

static inline evfn_event *
bare_event(uintptr_t slot)
{
	return (evfn_event *)(slot & ~BARE_TAG);
}

static inline evfn_event *
slot_event(uintptr_t slot)
{
	return is_bare(slot) ? bare_event(slot)
	                     : ((struct evfn__inv *)slot)->ev;
}

static inline uintptr_t *
ring_at(struct evfn__queue *q, size_t i)
{
	return &q->slot[(q->first + i) & (q->cap - 1)];
}

/* Makes room for one more slot; false when out of memory. */
static bool
ring_room(struct evfn__queue *q)
{
	if (q->n < q->cap)
		return true;
	size_t cap = q->cap ? q->cap * 2 : RING_MIN_SLOTS;
	if (cap < q->cap || cap > SIZE_MAX / sizeof(uintptr_t))
		return false;
	uintptr_t *slot = evfn__malloc(cap * sizeof(*slot));
	if (!slot)
		return false;
	for (size_t i = 0; i < q->n; i++)
		slot[i] = *ring_at(q, i);
	evfn__free(q->slot);
	q->slot = slot;
	q->cap = cap;
	q->first = 0;
	return true;
}

static void
ring_push(struct evfn__queue *q, uintptr_t slot)
{
	*ring_at(q, q->n) = slot;
	q->n++;
}

static uintptr_t
ring_pop(struct evfn__queue *q)
{
	uintptr_t slot = q->slot[q->first];
	q->first = (q->first + 1) & (q->cap - 1);
	if (--q->n == 0 && q->cap > RING_KEEP_SLOTS) {
		evfn__free(q->slot);
		q->slot = NULL;
		q->cap = 0;
		q->first = 0;
	}
	return slot;
}

/* The record of a bare event's attempt; NULL when out of memory. */
static struct evfn__inv *
materialize_locked(struct evfn_rt *rt, struct evfn_fn *fn, evfn_event *ev)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *inv = evfn__inv_get(&rt->records);
	if (inv) {
		inv->ev = ev;
		inv->fn = fn;
		inv->ready_ns = ev->born_ns;
	}
	return inv;
}

bool
evfn__queue_reserve_bare_locked(struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	return evfn__inv_list_empty(&fn->q.over) && ring_room(&fn->q);
}

void
evfn__queue_push_bare_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                             evfn_event *ev)
{
	EVFN__ASSERT_LOCKED(rt);
	ring_push(&fn->q, (uintptr_t)ev | BARE_TAG);
	fn->queued++;
	evfn__fn_schedule_locked(rt, fn);
}

void
evfn__enqueue_held_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	struct evfn__queue *q = &fn->q;
	inv->next = NULL;
	/* Queue wait is measured from here: the publish (or due) time for a
	 * first attempt, the due time for a retry (no clock read needed). */
	inv->ready_ns = inv->attempt ? inv->due_ns : inv->ev->born_ns;
	if (evfn__inv_list_empty(&q->over) && ring_room(q))
		ring_push(q, (uintptr_t)inv);
	else
		evfn__inv_list_push(&q->over, inv);
	evfn__fn_schedule_locked(rt, fn);
}

void
evfn__enqueue_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	inv->fn->queued++;
	evfn__enqueue_held_locked(rt, inv);
}

int64_t
evfn__queue_head_ready_ns(struct evfn_fn *fn)
{
	struct evfn__queue *q = &fn->q;
	if (q->n == 0)
		return q->over.head->ready_ns;
	uintptr_t slot = *ring_at(q, 0);
	return is_bare(slot) ? bare_event(slot)->born_ns
	                     : ((struct evfn__inv *)slot)->ready_ns;
}

struct evfn__inv *
evfn__queue_pop_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__queue *q = &fn->q;
	struct evfn__inv *inv;
	if (q->n > 0) {
		/* Looked at before it is taken: a bare event whose record
		 * cannot be made stays first. */
		uintptr_t slot = *ring_at(q, 0);
		if (!is_bare(slot)) {
			inv = (struct evfn__inv *)slot;
		} else if (!(inv = materialize_locked(rt, fn,
		                                      bare_event(slot)))) {
			evfn__starve_locked(rt);
			return NULL;
		}
		if (q->n > WARM_AHEAD) {
			uintptr_t ahead = *ring_at(q, WARM_AHEAD);
			if (is_bare(ahead))
				__builtin_prefetch(&bare_event(ahead)->born_ns);
		}
		ring_pop(q);
	} else if (!(inv = evfn__inv_list_pop(&q->over))) {
		return NULL;
	}
	fn->queued--;
	return inv;
}

struct evfn__inv *
evfn__queue_take_front_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                              size_t max, bool *short_of_memory)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv_list list = {NULL, NULL};
	struct evfn__inv *inv = NULL;
	for (size_t n = 0; n < max && (inv = evfn__queue_pop_locked(rt, fn));
	     n++)
		evfn__inv_list_push(&list, inv);
	if (!inv && !evfn__queue_empty(fn))
		*short_of_memory = true;
	return list.head;
}

struct evfn__inv *
evfn__queue_take_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                        evfn__inv_pred match, void *arg, bool *short_of_memory)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__queue *q = &fn->q;
	struct evfn__inv_list list = {NULL, NULL};
	size_t kept = 0, taken = 0;
	for (size_t i = 0; i < q->n; i++) {
		uintptr_t slot = *ring_at(q, i);
		struct evfn__inv *inv = NULL;
		if (!match || match(fn, slot_event(slot), arg)) {
			inv = is_bare(slot)
			          ? materialize_locked(rt, fn, bare_event(slot))
			          : (struct evfn__inv *)slot;
			if (!inv)
				*short_of_memory = true;
		}
		if (!inv) {
			*ring_at(q, kept++) = slot;
			continue;
		}
		evfn__inv_list_push(&list, inv);
		taken++;
	}
	q->n = kept;
	taken += evfn__inv_list_take_matching(&q->over, match, arg, &list);
	fn->queued -= (int64_t)taken;
	return list.head;
}

void
evfn__queue_free(struct evfn_rt *rt, struct evfn_fn *fn)
{
	struct evfn__queue *q = &fn->q;
	if (!evfn__queue_empty(fn))
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		          "%s: queued events dropped: no memory to hand them "
		          "back", fn->name);
	while (q->n > 0) {
		uintptr_t slot = ring_pop(q);
		if (is_bare(slot))
			evfn_event_unref(bare_event(slot));
		else
			evfn__inv_drop((struct evfn__inv *)slot);
	}
	struct evfn__inv *inv;
	while ((inv = evfn__inv_list_pop(&q->over)))
		evfn__inv_drop(inv);
	evfn__free(q->slot);
	q->slot = NULL;
	q->cap = 0;
}
