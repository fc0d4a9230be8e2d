/* SPDX-License-Identifier: MIT */
/*
 * Events waiting for a retry, and delayed events waiting to be due: a
 * binary min-heap of invocation records ordered by due time, behind a
 * single libevent timer armed for the earliest. A waiting event costs one
 * heap slot (a pointer) beyond its record, so a million of them is a few
 * tens of megabytes, and no libevent event per retry.
 */
#include <event2/event.h>

#include "common-internal.h"
#include "runtime-internal.h"

static void
heap_set(struct evfn_rt *rt, unsigned i, struct evfn__inv *inv)
{
	rt->heap[i] = inv;
	inv->heap_index = i;
}

static void
sift_up(struct evfn_rt *rt, unsigned i)
{
	struct evfn__inv *inv = rt->heap[i];
	while (i > 0) {
		unsigned parent = (i - 1) / 2;
		if (rt->heap[parent]->due_ns <= inv->due_ns)
			break;
		heap_set(rt, i, rt->heap[parent]);
		i = parent;
	}
	heap_set(rt, i, inv);
}

static void
sift_down(struct evfn_rt *rt, unsigned i)
{
	struct evfn__inv *inv = rt->heap[i];
	for (;;) {
		unsigned child = 2 * i + 1;
		if (child >= rt->heap_n)
			break;
		if (child + 1 < rt->heap_n &&
		    rt->heap[child + 1]->due_ns < rt->heap[child]->due_ns)
			child++;
		if (inv->due_ns <= rt->heap[child]->due_ns)
			break;
		heap_set(rt, i, rt->heap[child]);
		i = child;
	}
	heap_set(rt, i, inv);
}

/* Takes the entry at index i off the heap. */
static void
heap_remove_at(struct evfn_rt *rt, unsigned i)
{
	if (--rt->heap_n == i)
		return;
	heap_set(rt, i, rt->heap[rt->heap_n]);
	sift_down(rt, i);
	sift_up(rt, i);
}

static struct evfn__inv *
heap_pop(struct evfn_rt *rt)
{
	struct evfn__inv *top = rt->heap[0];
	heap_remove_at(rt, 0);
	return top;
}

/* The gauge an entry is counted in while on the heap. */
static uint64_t *
heap_gauge(struct evfn__inv *inv)
{
	return &inv->fn->stat[inv->delayed ? EVFN_STAT_DELAYED
	                                   : EVFN_STAT_WAITING_RETRY];
}

/* An entry's time came (or it has nowhere to wait): a retry goes back to
 * its queue, a delayed event joins its key's order as if just published. */
static void
requeue_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	if (inv->delayed) {
		inv->delayed = false;
		evfn__okey_join_locked(rt, inv);
	} else {
		evfn__enqueue_locked(rt, inv);
	}
}

/* Arms the timer for the earliest due retry, unless it is armed for that
 * time already. event_add() is safe from any thread: libevent's locks are
 * enabled before any base evfn uses is created. */
static void
arm_timer_locked(struct evfn_rt *rt)
{
	if (rt->heap_n == 0 || !rt->retry_timer)
		return;
	int64_t due = rt->heap[0]->due_ns;
	if (rt->timer_due_ns && rt->timer_due_ns <= due)
		return;
	int64_t wait = due - evfn__now_ns();
	if (wait < 0)
		wait = 0;
	struct timeval tv = {.tv_sec = wait / EVFN__NS_PER_SEC,
	                     .tv_usec = (wait % EVFN__NS_PER_SEC) / 1000};
	rt->timer_due_ns = due;
	event_add(rt->retry_timer, &tv);
}

void
evfn__retry_push_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	if (rt->heap_n == rt->heap_cap) {
		unsigned cap = rt->heap_cap ? rt->heap_cap * 2 : 64;
		struct evfn__inv **heap =
			evfn__realloc(rt->heap, cap * sizeof(*heap));
		if (!heap) {
			/* Nowhere to wait: run it now rather than lose it. */
			requeue_locked(rt, inv);
			return;
		}
		rt->heap = heap;
		rt->heap_cap = cap;
	}
	(*heap_gauge(inv))++;
	heap_set(rt, rt->heap_n++, inv);
	sift_up(rt, inv->heap_index);
	arm_timer_locked(rt);
}

void
evfn__retry_run_due_locked(struct evfn_rt *rt, int64_t now)
{
	while (rt->heap_n > 0 && rt->heap[0]->due_ns <= now) {
		struct evfn__inv *inv = heap_pop(rt);
		(*heap_gauge(inv))--;
		requeue_locked(rt, inv);
	}
	arm_timer_locked(rt);
}

struct evfn__inv *
evfn__retry_take_locked(struct evfn_rt *rt, evfn__inv_pred match, void *arg)
{
	struct evfn__inv *list = NULL;
	if (!match) { /* all of them, at drain */
		while (rt->heap_n > 0) {
			struct evfn__inv *inv = rt->heap[--rt->heap_n];
			(*heap_gauge(inv))--;
			inv->next = list;
			list = inv;
		}
		return list;
	}
	/* Found first, taken out after: a removal reorders the heap under
	 * a walk. An entry is on no list while on the heap. */
	for (unsigned i = 0; i < rt->heap_n; i++)
		if (match(rt->heap[i]->fn, rt->heap[i]->ev, arg)) {
			rt->heap[i]->next = list;
			list = rt->heap[i];
		}
	for (struct evfn__inv *inv = list; inv; inv = inv->next) {
		(*heap_gauge(inv))--;
		heap_remove_at(rt, inv->heap_index);
	}
	/* The timer may fire early for an entry gone: harmless. */
	return list;
}

void
evfn__retry_timer_cb(int fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evfn_rt *rt = arg;
	pthread_mutex_lock(&rt->lock);
	rt->timer_due_ns = 0;
	evfn__retry_run_due_locked(rt, evfn__now_ns());
	pthread_mutex_unlock(&rt->lock);
}
