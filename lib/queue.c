/* SPDX-License-Identifier: MIT */
/*
 * A function's queue: the events that may start, oldest first. Most queued
 * events are first attempts with nothing to remember but the event itself (no
 * waiter, no ordering key, no delay): those wait as the bare event, tagged in a
 * ring slot, and get their invocation only when their attempt starts. So a
 * queued event costs one 8-byte slot beyond the event, and the invocation is
 * taken and given back by the worker that runs it, staying in that worker's
 * cache instead of crossing from the producer. Retries, waiters and keyed
 * events queue as invocations.
 *
 * When the ring cannot grow (out of memory), invocations wait in an overflow
 * list behind it, and bare events are admitted as invocations instead; while
 * the overflow list is not empty everything queues there, keeping the order.
 */
#include <string.h>

#include "common-internal.h"
#include "event-internal.h"
#include "queue-internal.h"

/* The first ring's size, and the size above which an emptied ring is
 * freed (when its last run used little of it: see ring_pop): a function
 * that queued a burst does not keep its memory. */
#define RING_MIN_SLOTS 16
#define RING_KEEP_SLOTS 1024
#define QUIET_RUNS 16

#define BARE_TAG EVFN__QUEUE_BARE_TAG
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

/* Makes room for count more slots; false when out of memory. */
static bool
ring_room(struct evfn__queue *q, size_t count)
{
	if (count <= q->cap - q->n)
		return true;
	size_t cap = q->cap ? q->cap : RING_MIN_SLOTS / 2;
	do {
		if (cap > SIZE_MAX / 2 / sizeof(uintptr_t))
			return false;
		cap *= 2;
	} while (cap - q->n < count);
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
	/* The most slots in use since the ring last emptied: seen here,
	 * since a queue reaches its most just before a pop. */
	if (q->n > q->peak)
		q->peak = q->n;
	if (--q->n == 0) {
		/* A large ring goes back once it has emptied after
		 * QUIET_RUNS runs in a row that a small one would have held:
		 * a function whose backlog drains now and then under steady
		 * load would otherwise free and grow it again and again
		 * (about 75 instructions per event in the no-op benchmark,
		 * and its pages faulted in anew), while a burst long over
		 * still gives its memory back. */
		q->quiet_runs = q->peak <= RING_KEEP_SLOTS ? q->quiet_runs + 1
		                                           : 0;
		if (q->cap > RING_KEEP_SLOTS && q->quiet_runs >= QUIET_RUNS) {
			evfn__free(q->slot);
			q->slot = NULL;
			q->cap = 0;
			q->first = 0;
		}
		q->peak = 0;
	}
	return slot;
}

/* The invocation of a bare event's attempt; NULL when out of memory. */
static struct evfn__inv *
materialize(struct evfn__inv_pool *pool, struct evfn_fn *fn, evfn_event *ev)
{
	struct evfn__inv *inv = evfn__inv_get(pool);
	if (inv) {
		inv->ev = ev;
		inv->fn = fn;
		inv->ready_ns = ev->born_ns;
	}
	return inv;
}

bool
evfn__queue_reserve_bare(struct evfn__queue *q, size_t count)
{
	return evfn__inv_list_empty(&q->over) && ring_room(q, count);
}

void
evfn__queue_push(struct evfn__queue *q, struct evfn__inv *inv)
{
	if (evfn__inv_list_empty(&q->over) && ring_room(q, 1))
		ring_push(q, (uintptr_t)inv);
	else
		evfn__inv_list_push(&q->over, inv);
}

int64_t
evfn__queue_head_ready_ns(const struct evfn__queue *q)
{
	if (q->n == 0)
		return q->over.head->ready_ns;
	uintptr_t slot = q->slot[q->first];
	return is_bare(slot) ? bare_event(slot)->born_ns
	                     : ((struct evfn__inv *)slot)->ready_ns;
}

struct evfn__inv *
evfn__queue_pop(struct evfn__queue *q, struct evfn__inv_pool *pool,
                struct evfn_fn *fn)
{
	if (q->n == 0)
		return evfn__inv_list_pop(&q->over);
	/* Looked at before it is taken: a bare event whose invocation cannot be
	 * made stays first. */
	uintptr_t slot = *ring_at(q, 0);
	struct evfn__inv *inv;
	if (!is_bare(slot))
		inv = (struct evfn__inv *)slot;
	else if (!(inv = materialize(pool, fn, bare_event(slot))))
		return NULL;
	if (q->n > WARM_AHEAD) {
		uintptr_t ahead = *ring_at(q, WARM_AHEAD);
		if (is_bare(ahead))
			__builtin_prefetch(&bare_event(ahead)->born_ns);
	}
	ring_pop(q);
	return inv;
}

size_t
evfn__queue_take_front(struct evfn__queue *q, struct evfn__inv_pool *pool,
                       struct evfn_fn *fn, size_t max,
                       struct evfn__inv_list *out, bool *short_of_memory)
{
	size_t n = 0;
	struct evfn__inv *inv;
	for (; n < max && (inv = evfn__queue_pop(q, pool, fn)); n++)
		evfn__inv_list_push(out, inv);
	if (n < max && !evfn__queue_empty(q))
		*short_of_memory = true;
	return n;
}

size_t
evfn__queue_take(struct evfn__queue *q, struct evfn__inv_pool *pool,
                 struct evfn_fn *fn, evfn__inv_pred match, void *arg,
                 struct evfn__inv_list *out, bool *short_of_memory)
{
	size_t kept = 0, taken = 0;
	for (size_t i = 0; i < q->n; i++) {
		uintptr_t slot = *ring_at(q, i);
		struct evfn__inv *inv = NULL;
		if (!match || match(fn, slot_event(slot), arg)) {
			inv = is_bare(slot)
			          ? materialize(pool, fn, bare_event(slot))
			          : (struct evfn__inv *)slot;
			if (!inv)
				*short_of_memory = true;
		}
		if (!inv) {
			*ring_at(q, kept++) = slot;
			continue;
		}
		evfn__inv_list_push(out, inv);
		taken++;
	}
	q->n = kept;
	return taken + evfn__inv_list_take_matching(&q->over, match, arg, out);
}

size_t
evfn__queue_free(struct evfn__queue *q)
{
	size_t dropped = 0;
	while (q->n > 0) {
		uintptr_t slot = ring_pop(q);
		if (is_bare(slot))
			evfn_event_unref(bare_event(slot));
		else
			evfn__inv_drop((struct evfn__inv *)slot);
		dropped++;
	}
	struct evfn__inv *inv;
	while ((inv = evfn__inv_list_pop(&q->over))) {
		evfn__inv_drop(inv);
		dropped++;
	}
	evfn__free(q->slot);
	q->slot = NULL;
	q->cap = 0;
	return dropped;
}
