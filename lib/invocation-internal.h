/* SPDX-License-Identifier: MIT */
/*
 * The invocation: one event on its way through one function, with
 * the context its handler sees (struct evfn_ctx), and the pool invocations
 * are taken from and given back to. The fields are written by the state
 * machine (dispatch.c) under the runtime lock, apart from what a running
 * attempt's own thread writes in its context. The pool is guarded by
 * its owner's lock; clearing an invocation needs none.
 */
#ifndef EVFN_INVOCATION_INTERNAL_H
#define EVFN_INVOCATION_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn/context.h>
#include <evfn/event.h>

#include "common-internal.h"
#include "list-internal.h"

struct evfn__worker;
struct evfn__inv;
struct evfn__okey;
struct evfn_fn;
struct evfn_result;

/* The items of a batch call, as its handler sees them; owned by the
 * worker that runs the call. */
struct evfn__batch {
	struct evfn__inv **items;
	signed char *outcomes;      /* 0, or what evfn_ctx_batch_item_failed()
	                             * reported */
	size_t n, cap;
};

struct evfn_ctx {
	struct evfn__worker *worker; /* NULL on the loop executor */
	void *worker_state;
	int64_t deadline_ns;
	atomic_int state;           /* enum evfn__attempt_state */
	atomic_bool cancelled;
	atomic_int early_outcome;   /* evfn_ctx_complete() before PENDING */
	void *resp;
	size_t resp_len;
	struct evfn__kv *meta;
	char *error;
	struct evfn__batch *batch;  /* NULL unless a batch call */
};

/* One event on its way through one function: queued, running, or waiting
 * for a retry. Recycled through a struct evfn__inv_pool. */
struct evfn__inv {
	struct evfn__inv *next;     /* queue, handback and free-list link */
	evfn_event *ev;             /* one reference held */
	struct evfn_fn *fn;
	struct evfn_result *waiter;
	int64_t due_ns;             /* retry heap key */
	int64_t prev_delay_ns;      /* for decorrelated jitter */
	unsigned attempt;           /* attempts started */
	int64_t first_ns, last_ns;  /* wall time of first and latest start */
	int64_t start_ns;           /* monotonic: its latest attempt's start */
	int64_t ready_ns;           /* monotonic: when it became startable */
	int final_code;             /* why it ended: what its waiter gets */
	signed char final_stat;     /* terminal evfn_stat, or -1 */
	bool idempotent_hit;        /* answered from the idempotency store */
	bool dead_letter_lost;      /* no memory to store its dead letter */
	bool last_timed_out;        /* the latest attempt hit its deadline */
	bool hook_running;          /* the cancel hook still uses ctx */
	bool orphaned;              /* fenced, returned: free after the hook */
	bool delayed;               /* on the heap until its first due time */
	bool cancel_requested;      /* evfn_cancel() while it ran */
	bool crashed;               /* recovered from the journal: its last
	                             * attempt was running at a crash */
	bool probe;                 /* the circuit breaker's half-open probe */
	bool prefetched;            /* taken to run after another attempt of
	                             * its worker: counted in fn->prefetched */
	struct evfn__okey *okey;    /* its ordering key's group, or NULL */
	struct evfn__inv *batch_next; /* the next item of its batch call */
	struct evfn__inv *run_next; /* the next attempt its worker prefetched */
	struct evfn__inv *pend_next, *pend_prev; /* rt->pending (loop) */
	struct evfn_ctx ctx;
};

EVFN__LIST(evfn__inv_list, struct evfn__inv, next)

/* Picks events waiting for fn out of a queue, a key's held list or the
 * timer heap (evfn_cancel() by id); NULL takes all of them. */
typedef bool (*evfn__inv_pred)(const struct evfn_fn *fn,
                               const evfn_event *ev, void *arg);

/* Invocations given back, kept for reuse up to a bound: a stack, so that the
 * invocation taken next is one of those given back last (a list given
 * back goes on top whole, in its order), still in the cache of the thread
 * that gave it back (usually the one taking it). Invocations on it are
 * zeroed, but for their link. */
struct evfn__inv_pool {
	struct evfn__inv *free;
	size_t n;
};
/* Enough invocations to absorb a burst without keeping a big one forever. */
#define EVFN__INV_POOL_MAX 4096

/* A zeroed invocation (final_stat -1) from the allocator; NULL when out
 * of memory. */
struct evfn__inv *evfn__inv_new(void);
/* A zeroed invocation (final_stat -1) from the pool or the allocator; NULL
 * when out of memory. Inline: every event takes one. */
static inline struct evfn__inv *
evfn__inv_get(struct evfn__inv_pool *p)
{
	struct evfn__inv *inv = p->free;
	if (EVFN__UNLIKELY(!inv))
		return evfn__inv_new();
	/* Zeroed when it was given back, but for its link. */
	p->free = inv->next;
	p->n--;
	inv->next = NULL;
	inv->final_stat = -1;
	return inv;
}
/* Gives a zeroed invocation back (freed past the pool's bound). */
void evfn__inv_put(struct evfn__inv_pool *p, struct evfn__inv *inv);
/* evfn__inv_put() of every invocation of list, which is left empty: the
 * list goes on top of the pool whole when it fits under the bound. */
void evfn__inv_put_all(struct evfn__inv_pool *p, struct evfn__inv_list *list);
/* Frees the response, error and metadata an attempt left in inv's
 * context (evfn__inv_clear()'s rare case, out of line). */
void evfn__inv_free_results(struct evfn__inv *inv);

/* A field added to struct evfn__inv must be cleared below: on 64-bit
 * targets its size changes and this fails (tests/test-invocation.c
 * checks the clear byte by byte). */
#if UINTPTR_MAX == UINT64_MAX
EVFN__STATIC_ASSERT(sizeof(struct evfn__inv) == 224,
                    "evfn__inv_clear() clears every field of evfn__inv");
#endif

/* Lets go of what an invocation holds (its event reference, response, error,
 * metadata) and zeroes it, ready for evfn__inv_put(), all but its list
 * link (next), which a caller clearing the invocations of a list walks
 * on through. No lock needed: the last reference of an event may free
 * its payload through the host's free callback. Inline: every event's
 * invocation is cleared on its way out. */
static inline void
evfn__inv_clear(struct evfn__inv *inv)
{
	evfn_event_unref(inv->ev);
	/* Most attempts leave no response, error or metadata: tested here
	 * rather than in three calls. */
	if (EVFN__UNLIKELY(inv->ctx.resp || inv->ctx.error || inv->ctx.meta))
		evfn__inv_free_results(inv);
	/* Field by field, not one memset: gcc turns a memset of this size
	 * into rep stos (some 36 instructions and a slow start on every
	 * event's way out), fields into a dozen vector stores. */
	inv->ev = NULL;
	inv->fn = NULL;
	inv->waiter = NULL;
	inv->due_ns = 0;
	inv->prev_delay_ns = 0;
	inv->attempt = 0;
	inv->first_ns = inv->last_ns = 0;
	inv->start_ns = inv->ready_ns = 0;
	inv->final_code = 0;
	inv->final_stat = 0;
	inv->idempotent_hit = false;
	inv->dead_letter_lost = false;
	inv->last_timed_out = false;
	inv->hook_running = false;
	inv->orphaned = false;
	inv->delayed = false;
	inv->cancel_requested = false;
	inv->crashed = false;
	inv->probe = false;
	inv->prefetched = false;
	inv->okey = NULL;
	inv->batch_next = inv->run_next = NULL;
	inv->pend_next = inv->pend_prev = NULL;
	struct evfn_ctx *ctx = &inv->ctx;
	ctx->worker = NULL;
	ctx->worker_state = NULL;
	ctx->deadline_ns = 0;
	atomic_store_explicit(&ctx->state, 0, memory_order_relaxed);
	atomic_store_explicit(&ctx->cancelled, false, memory_order_relaxed);
	atomic_store_explicit(&ctx->early_outcome, 0, memory_order_relaxed);
	ctx->resp = NULL;
	ctx->resp_len = 0;
	ctx->meta = NULL;
	ctx->error = NULL;
	ctx->batch = NULL;
}
/* Clears and frees an invocation, with nothing told: for invocations left at
 * teardown. */
void evfn__inv_drop(struct evfn__inv *inv);
/* Frees the invocations kept. */
void evfn__inv_pool_free(struct evfn__inv_pool *p);

/* Moves the invocations of list that match() accepts (all for NULL)
 * onto the end of out, keeping their order; returns how many. */
size_t evfn__inv_list_take_matching(struct evfn__inv_list *list,
                                    evfn__inv_pred match, void *arg,
                                    struct evfn__inv_list *out);

#endif /* EVFN_INVOCATION_INTERNAL_H */
