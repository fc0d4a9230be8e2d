/* SPDX-License-Identifier: MIT */
/*
 * Events waiting for a retry, and delayed events waiting to be due: a
 * binary min-heap ordered by due time, behind a single libevent timer
 * armed for the earliest; no libevent event per retry. Each slot holds
 * its due time beside its entry, so sifting reads no entry.
 *
 * A retry that has nothing to remember but its backoff state (no waiter,
 * ordering key, response or metadata: most of them) waits in a compact
 * 56-byte form instead of its ~220-byte invocation record, which goes
 * back to the free list; the record is made again when the retry is due,
 * or when it is cancelled or handed back. Others wait as records.
 */
#include <string.h>

#include "common-internal.h"
#include "runtime-internal.h"

#define COMPACT_TAG ((uintptr_t)1)

/* A waiting retry's state, without the record. */
struct evfn__waiting {
	evfn_event *ev;             /* the record's reference */
	struct evfn_fn *fn;
	int64_t prev_delay_ns;
	int64_t first_ns, last_ns;  /* wall time of first and latest start */
	char *error;                /* the latest attempt's error */
	unsigned attempt;
	bool last_timed_out;
};

static inline bool
is_compact(uintptr_t entry)
{
	return (entry & COMPACT_TAG) != 0;
}

static inline struct evfn__waiting *
as_compact(uintptr_t entry)
{
	return (struct evfn__waiting *)(entry & ~COMPACT_TAG);
}

static inline struct evfn_fn *
entry_fn(uintptr_t entry)
{
	return is_compact(entry) ? as_compact(entry)->fn
	                         : ((struct evfn__inv *)entry)->fn;
}

static inline const evfn_event *
entry_event(uintptr_t entry)
{
	return is_compact(entry) ? as_compact(entry)->ev
	                         : ((struct evfn__inv *)entry)->ev;
}

/* The gauge an entry is counted in while on the heap. */
static uint64_t *
heap_gauge(uintptr_t entry)
{
	bool delayed = !is_compact(entry) && ((struct evfn__inv *)entry)->delayed;
	return &entry_fn(entry)->stat[delayed ? EVFN_STAT_DELAYED
	                                      : EVFN_STAT_WAITING_RETRY];
}

/* inv's waiting state, compacted when nothing else needs remembering;
 * the record itself goes back to the free list then. */
static uintptr_t
compact_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	if (inv->delayed || inv->waiter || inv->okey || inv->probe ||
	    inv->cancel_requested || inv->hook_running || inv->orphaned ||
	    inv->ctx.resp || inv->ctx.meta)
		return (uintptr_t)inv;
	struct evfn__waiting *w = evfn__malloc(sizeof(*w));
	if (!w)
		return (uintptr_t)inv; /* it waits as it is */
	*w = (struct evfn__waiting){
		.ev = inv->ev,
		.fn = inv->fn,
		.prev_delay_ns = inv->prev_delay_ns,
		.first_ns = inv->first_ns,
		.last_ns = inv->last_ns,
		.error = inv->ctx.error,
		.attempt = inv->attempt,
		.last_timed_out = inv->last_timed_out,
	};
	memset(inv, 0, sizeof(*inv));
	evfn__inv_put(&rt->records, inv);
	return (uintptr_t)w | COMPACT_TAG;
}

/* The record of a heap slot's entry, made again from its compact form;
 * NULL when out of memory (the compact form stays). */
static struct evfn__inv *
expand_locked(struct evfn_rt *rt, const struct evfn__due *slot)
{
	EVFN__ASSERT_LOCKED(rt);
	if (!is_compact(slot->entry))
		return (struct evfn__inv *)slot->entry;
	struct evfn__waiting *w = as_compact(slot->entry);
	struct evfn__inv *inv = evfn__inv_get(&rt->records);
	if (!inv)
		return NULL;
	inv->ev = w->ev;
	inv->fn = w->fn;
	inv->due_ns = slot->due_ns;
	inv->prev_delay_ns = w->prev_delay_ns;
	inv->first_ns = w->first_ns;
	inv->last_ns = w->last_ns;
	inv->attempt = w->attempt;
	inv->last_timed_out = w->last_timed_out;
	inv->ctx.error = w->error;
	/* The latest attempt's start, for durations in records: its wall
	 * time taken back to the monotonic clock. */
	inv->ctx.deadline_ns = w->last_ns - evfn__mono_to_wall(0) +
	                       w->fn->cfg.timeout_ns;
	evfn__free(w);
	return inv;
}

/* A slot's entry leaving the heap: its record (made again if compact),
 * no longer counted in its gauge. NULL when out of memory: then nothing
 * changed. The slot itself stays for the caller to remove. */
static struct evfn__inv *
leave_heap_locked(struct evfn_rt *rt, const struct evfn__due *slot)
{
	EVFN__ASSERT_LOCKED(rt);
	uint64_t *gauge = heap_gauge(slot->entry); /* before expand frees */
	struct evfn__inv *inv = expand_locked(rt, slot);
	if (inv)
		(*gauge)--;
	return inv;
}

static void
sift_up(struct evfn__due *heap, unsigned i)
{
	struct evfn__due x = heap[i];
	while (i > 0) {
		unsigned parent = (i - 1) / 2;
		if (heap[parent].due_ns <= x.due_ns)
			break;
		heap[i] = heap[parent];
		i = parent;
	}
	heap[i] = x;
}

static void
sift_down(struct evfn__due *heap, unsigned n, unsigned i)
{
	struct evfn__due x = heap[i];
	for (;;) {
		unsigned child = 2 * i + 1;
		if (child >= n)
			break;
		if (child + 1 < n && heap[child + 1].due_ns < heap[child].due_ns)
			child++;
		if (x.due_ns <= heap[child].due_ns)
			break;
		heap[i] = heap[child];
		i = child;
	}
	heap[i] = x;
}

static void
heap_pop(struct evfn_rt *rt)
{
	if (--rt->heap_n > 0) {
		rt->heap[0] = rt->heap[rt->heap_n];
		sift_down(rt->heap, rt->heap_n, 0);
	}
}

/* An entry's time came (or it has nowhere to wait): a retry goes back to
 * its queue, a delayed event joins its key's order as if just published. */
static void
requeue_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	if (inv->delayed) {
		inv->delayed = false;
		evfn__queue_in_order_locked(rt, inv);
	} else {
		evfn__enqueue_locked(rt, inv);
	}
}

/* Arms the timer for the earliest due retry, unless it is armed for that
 * time already. */
static void
arm_timer_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	if (rt->heap_n > 0)
		(void)evfn__timer_arm(rt->retry_timer, rt->heap[0].due_ns);
}

void
evfn__retry_push_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	if (rt->heap_n == rt->heap_cap) {
		unsigned cap = rt->heap_cap ? rt->heap_cap * 2 : 64;
		struct evfn__due *heap =
			evfn__realloc(rt->heap, cap * sizeof(*heap));
		if (!heap) {
			/* Nowhere to wait: run it now rather than lose it. */
			requeue_locked(rt, inv);
			return;
		}
		rt->heap = heap;
		rt->heap_cap = cap;
	}
	struct evfn__due slot = {.due_ns = inv->due_ns,
	                         .entry = compact_locked(rt, inv)};
	(*heap_gauge(slot.entry))++;
	rt->heap[rt->heap_n] = slot;
	sift_up(rt->heap, rt->heap_n++);
	arm_timer_locked(rt);
}

void
evfn__retry_run_due_locked(struct evfn_rt *rt, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	/* Draining: what waits is handed back, not queued again. */
	if (rt->state >= EVFN__DRAINING)
		return;
	while (rt->heap_n > 0 && rt->heap[0].due_ns <= now) {
		struct evfn__inv *inv = leave_heap_locked(rt, &rt->heap[0]);
		if (!inv) {
			/* Looked at again when records come back, or on the
			 * next watchdog tick. */
			evfn__starve_locked(rt);
			break;
		}
		heap_pop(rt);
		requeue_locked(rt, inv);
	}
	arm_timer_locked(rt);
}

struct evfn__inv *
evfn__retry_take_locked(struct evfn_rt *rt, evfn__inv_pred match, void *arg,
                        bool *short_of_memory)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *list = NULL;
	unsigned kept = 0;
	for (unsigned i = 0; i < rt->heap_n; i++) {
		struct evfn__due slot = rt->heap[i];
		struct evfn__inv *inv = NULL;
		if (!match ||
		    match(entry_fn(slot.entry), entry_event(slot.entry), arg)) {
			if (!(inv = leave_heap_locked(rt, &slot)))
				*short_of_memory = true;
		}
		if (!inv) {
			rt->heap[kept++] = slot;
			continue;
		}
		inv->next = list;
		list = inv;
	}
	/* What stays is a heap again (Floyd's construction). The timer may
	 * fire early for an entry gone: harmless. */
	rt->heap_n = kept;
	for (unsigned i = kept / 2; i-- > 0;)
		sift_down(rt->heap, kept, i);
	return list;
}

struct evfn__inv *
evfn__retry_take_some_locked(struct evfn_rt *rt, size_t max,
                             bool *short_of_memory)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *list = NULL;
	/* From the array's end: what stays is still a heap. */
	for (size_t n = 0; n < max && rt->heap_n > 0; n++) {
		struct evfn__inv *inv =
			leave_heap_locked(rt, &rt->heap[rt->heap_n - 1]);
		if (!inv) {
			*short_of_memory = true;
			break;
		}
		rt->heap_n--;
		inv->next = list;
		list = inv;
	}
	return list;
}

void
evfn__retry_free(struct evfn_rt *rt)
{
	if (rt->heap_n > 0)
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		          "%u retries dropped: no memory to hand them back",
		          rt->heap_n);
	for (unsigned i = 0; i < rt->heap_n; i++) {
		uintptr_t entry = rt->heap[i].entry;
		if (is_compact(entry)) {
			evfn_event_unref(as_compact(entry)->ev);
			evfn__free(as_compact(entry)->error);
			evfn__free(as_compact(entry));
		} else {
			evfn__inv_drop((struct evfn__inv *)entry);
		}
	}
	evfn__free(rt->heap);
	rt->heap = NULL;
	rt->heap_n = rt->heap_cap = 0;
}

void
evfn__retry_timer_cb(void *arg)
{
	struct evfn_rt *rt = arg;
	evfn__lock_acquire(&rt->lock);
	evfn__retry_run_due_locked(rt, evfn__now_ns());
	evfn__lock_release(&rt->lock);
}
