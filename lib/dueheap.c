/* SPDX-License-Identifier: MIT */
/*
 * Events waiting for a retry, and delayed events waiting to be due: a binary
 * min-heap ordered by due time, so that one timer (the state machine's) armed
 * for the earliest serves them all. Each slot holds its due time beside its
 * entry, so sifting reads no entry.
 *
 * A retry that has nothing to remember but its backoff state (no waiter,
 * ordering key, response or metadata: most of them) waits in a compact 56-byte
 * form instead of its ~220-byte invocation, which goes back to the pool;
 * the invocation is made again when the retry is due, or when it is cancelled
 * or handed back. Others wait as invocations.
 */
#include <string.h>

#include "common-internal.h"
#include "dueheap-internal.h"
#include "event-internal.h"

#define COMPACT_TAG ((uintptr_t)1)

/* A waiting retry's state, without the invocation. */
struct evfn__waiting {
	evfn_event *ev;             /* the invocation's event reference */
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

/* inv's waiting state, compacted when nothing else needs remembering;
 * the invocation itself goes back to the pool then. */
static uintptr_t
compact(struct evfn__inv *inv, struct evfn__inv_pool *pool)
{
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
	evfn__inv_put(pool, inv);
	return (uintptr_t)w | COMPACT_TAG;
}

/* The invocation of a heap slot's entry, made again from its compact form;
 * NULL when out of memory (the compact form stays). The slot itself
 * stays for the caller to remove. */
static struct evfn__inv *
expand(const struct evfn__due *slot, struct evfn__inv_pool *pool)
{
	if (!is_compact(slot->entry))
		return (struct evfn__inv *)slot->entry;
	struct evfn__waiting *w = as_compact(slot->entry);
	struct evfn__inv *inv = evfn__inv_get(pool);
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
	/* The latest attempt's start, for durations in event-log records: its
	 * wall time taken back to the monotonic clock. */
	inv->start_ns = w->last_ns - evfn__mono_to_wall(0);
	evfn__free(w);
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

bool
evfn__dueheap_push(struct evfn__dueheap *h, struct evfn__inv *inv,
                   struct evfn__inv_pool *pool)
{
	if (h->n == h->cap) {
		unsigned cap = h->cap ? h->cap * 2 : 64;
		struct evfn__due *slot =
			evfn__realloc(h->slot, cap * sizeof(*slot));
		if (!slot)
			return false;
		h->slot = slot;
		h->cap = cap;
	}
	h->slot[h->n] = (struct evfn__due){.due_ns = inv->due_ns,
	                                   .entry = compact(inv, pool)};
	sift_up(h->slot, h->n++);
	return true;
}

struct evfn__inv *
evfn__dueheap_pop(struct evfn__dueheap *h, struct evfn__inv_pool *pool)
{
	struct evfn__inv *inv = expand(&h->slot[0], pool);
	if (inv && --h->n > 0) {
		h->slot[0] = h->slot[h->n];
		sift_down(h->slot, h->n, 0);
	}
	return inv;
}

size_t
evfn__dueheap_take(struct evfn__dueheap *h, struct evfn__inv_pool *pool,
                   evfn__inv_pred match, void *arg, struct evfn__inv_list *out,
                   bool *short_of_memory)
{
	size_t n = 0;
	unsigned kept = 0;
	for (unsigned i = 0; i < h->n; i++) {
		struct evfn__due slot = h->slot[i];
		struct evfn__inv *inv = NULL;
		if (!match ||
		    match(entry_fn(slot.entry), entry_event(slot.entry), arg)) {
			if (!(inv = expand(&slot, pool)))
				*short_of_memory = true;
		}
		if (!inv) {
			h->slot[kept++] = slot;
			continue;
		}
		evfn__inv_list_push(out, inv);
		n++;
	}
	/* What stays is a heap again (Floyd's construction). The timer may
	 * fire early for an entry gone: harmless. */
	h->n = kept;
	for (unsigned i = kept / 2; i-- > 0;)
		sift_down(h->slot, kept, i);
	return n;
}

size_t
evfn__dueheap_take_some(struct evfn__dueheap *h, struct evfn__inv_pool *pool,
                        size_t max, struct evfn__inv_list *out,
                        bool *short_of_memory)
{
	size_t n = 0;
	/* From the array's end: what stays is still a heap. */
	for (; n < max && h->n > 0; n++) {
		struct evfn__inv *inv = expand(&h->slot[h->n - 1], pool);
		if (!inv) {
			*short_of_memory = true;
			break;
		}
		h->n--;
		evfn__inv_list_push(out, inv);
	}
	return n;
}

unsigned
evfn__dueheap_free(struct evfn__dueheap *h)
{
	unsigned dropped = h->n;
	for (unsigned i = 0; i < h->n; i++) {
		uintptr_t entry = h->slot[i].entry;
		if (is_compact(entry)) {
			evfn_event_unref(as_compact(entry)->ev);
			evfn__free(as_compact(entry)->error);
			evfn__free(as_compact(entry));
		} else {
			evfn__inv_drop((struct evfn__inv *)entry);
		}
	}
	evfn__free(h->slot);
	*h = (struct evfn__dueheap){NULL, 0, 0};
	return dropped;
}
