/* SPDX-License-Identifier: MIT */
/*
 * A function's queue (queue.c): the events that may start, oldest first,
 * as a ring of slots (each an invocation or a bare event), then
 * the invocations that found no ring slot. A leaf: it keeps events in order
 * and hands them out; the state machine counts them and decides when
 * they start. Guarded by the lock of the function that owns it.
 */
#ifndef EVFN_QUEUE_INTERNAL_H
#define EVFN_QUEUE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn/event.h>

#include "invocation-internal.h"

struct evfn__queue {
	uintptr_t *slot;
	size_t cap;                 /* 0 or a power of two */
	size_t first;               /* the oldest slot's index */
	size_t n;                   /* slots in use */
	size_t peak;                /* most in use since it last emptied */
	unsigned quiet_runs;        /* emptyings in a row with a small peak */
	struct evfn__inv_list over; /* behind the ring when it cannot grow */
};

/* Inline: asked on every schedule and every pick. */
static inline bool
evfn__queue_empty(const struct evfn__queue *q)
{
	return q->n == 0 && evfn__inv_list_empty(&q->over);
}

/* Makes room for count more events, bare ones among them (an event's
 * first attempt with no waiter, ordering key or delay, queued without an
 * invocation); false when it cannot (out of memory): queue them as
 * invocations then. */
bool evfn__queue_reserve_bare(struct evfn__queue *q, size_t count);
/* Whether room for a bare event is there already (what a yes from
 * evfn__queue_reserve_bare() leaves for count pushes). */
static inline bool
evfn__queue_has_bare_room(const struct evfn__queue *q)
{
	return evfn__inv_list_empty(&q->over) && q->n < q->cap;
}
/* Tags a ring slot that holds a bare event. */
#define EVFN__QUEUE_BARE_TAG ((uintptr_t)1)
/* Appends ev (one reference, now the queue's) as a bare event, after
 * evfn__queue_reserve_bare() said yes. Inline: every plain publish
 * pushes. */
static inline void
evfn__queue_push_bare(struct evfn__queue *q, evfn_event *ev)
{
	q->slot[(q->first + q->n) & (q->cap - 1)] =
		(uintptr_t)ev | EVFN__QUEUE_BARE_TAG;
	q->n++;
}
/* Appends an invocation. */
void evfn__queue_push(struct evfn__queue *q, struct evfn__inv *inv);
/* When the oldest queued event became startable. Not empty. */
int64_t evfn__queue_head_ready_ns(const struct evfn__queue *q);
/* Takes the oldest queued invocation, made from pool (for fn)
 * if it was a bare event. NULL when the queue is empty, or when that
 * invocation cannot be made: the event then stays first. */
struct evfn__inv *evfn__queue_pop(struct evfn__queue *q,
                                  struct evfn__inv_pool *pool,
                                  struct evfn_fn *fn);
/* Moves up to max of the oldest queued invocations onto out, in order;
 * returns how many. Stops early, setting *short_of_memory, at an event
 * whose invocation cannot be made. */
size_t evfn__queue_take_front(struct evfn__queue *q,
                              struct evfn__inv_pool *pool, struct evfn_fn *fn,
                              size_t max, struct evfn__inv_list *out,
                              bool *short_of_memory);
/* Moves the queued invocations that match() accepts (all for NULL) onto
 * out, in order; returns how many. An event whose invocation cannot be made
 * stays queued, setting *short_of_memory. */
size_t evfn__queue_take(struct evfn__queue *q, struct evfn__inv_pool *pool,
                        struct evfn_fn *fn, evfn__inv_pred match, void *arg,
                        struct evfn__inv_list *out, bool *short_of_memory);
/* Frees the queue, dropping the events left in it (only those a drain
 * had no memory to hand back); returns how many were dropped. */
size_t evfn__queue_free(struct evfn__queue *q);

#endif /* EVFN_QUEUE_INTERNAL_H */
