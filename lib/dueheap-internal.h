/* SPDX-License-Identifier: MIT */
/*
 * The due-time heap (dueheap.c): invocations waiting for a time, retries
 * after their backoff and delayed events before their first attempt,
 * earliest first. A leaf: it keeps them, in a compact form when nothing
 * but the backoff state needs remembering, and hands out the earliest;
 * the state machine counts them, arms the one timer and acts when they
 * are due. Guarded by its owner's lock.
 */
#ifndef EVFN_DUEHEAP_INTERNAL_H
#define EVFN_DUEHEAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "invocation-internal.h"

/* A slot: an invocation, or a waiting retry in its compact form (tagged in
 * bit 0), and when it is due. */
struct evfn__due {
	int64_t due_ns;
	uintptr_t entry;
};

/* A binary min-heap on due_ns; zeroed: empty. */
struct evfn__dueheap {
	struct evfn__due *slot;
	unsigned n, cap;
};

static inline bool
evfn__dueheap_empty(const struct evfn__dueheap *h)
{
	return h->n == 0;
}

/* When the earliest entry is due (monotonic). Not empty. */
static inline int64_t
evfn__dueheap_next_due(const struct evfn__dueheap *h)
{
	return h->slot[0].due_ns;
}

/* Puts inv on the heap at inv->due_ns; a compacted one's invocation goes
 * back to pool. False when the heap cannot grow (out of memory): nothing
 * changed, and inv is still the caller's. */
bool evfn__dueheap_push(struct evfn__dueheap *h, struct evfn__inv *inv,
                        struct evfn__inv_pool *pool);
/* Takes the earliest entry, its invocation made again from pool if it was
 * compact; NULL when that invocation cannot be made (it stays). Not empty. */
struct evfn__inv *evfn__dueheap_pop(struct evfn__dueheap *h,
                                    struct evfn__inv_pool *pool);
/* Moves every entry match() accepts (all for NULL) onto out, as invocations;
 * returns how many. One whose invocation cannot be made stays, setting
 * *short_of_memory. */
size_t evfn__dueheap_take(struct evfn__dueheap *h, struct evfn__inv_pool *pool,
                          evfn__inv_pred match, void *arg,
                          struct evfn__inv_list *out, bool *short_of_memory);
/* Moves up to max entries onto out, in no particular order, as invocations;
 * returns how many. Stops early, setting *short_of_memory, at one whose
 * invocation cannot be made. */
size_t evfn__dueheap_take_some(struct evfn__dueheap *h,
                               struct evfn__inv_pool *pool, size_t max,
                               struct evfn__inv_list *out,
                               bool *short_of_memory);
/* Frees the heap, dropping the entries left on it (only those a drain
 * had no memory to hand back); returns how many were dropped. */
unsigned evfn__dueheap_free(struct evfn__dueheap *h);

#endif /* EVFN_DUEHEAP_INTERNAL_H */
