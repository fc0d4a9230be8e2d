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
 * invocation taken next is the one given back last, still in the cache of
 * the thread that gave it back (usually the one taking it). Invocations on
 * it are zeroed. */
struct evfn__inv_pool {
	struct evfn__inv *free;
	size_t n;
};

/* A zeroed invocation (final_stat -1) from the pool or the allocator; NULL
 * when out of memory. */
struct evfn__inv *evfn__inv_get(struct evfn__inv_pool *p);
/* Gives a zeroed invocation back (freed past the pool's bound). */
void evfn__inv_put(struct evfn__inv_pool *p, struct evfn__inv *inv);
/* evfn__inv_put() of every invocation of list, which is left empty. */
void evfn__inv_put_all(struct evfn__inv_pool *p, struct evfn__inv_list *list);
/* Lets go of what an invocation holds (its event reference, response, error,
 * metadata) and zeroes it, ready for evfn__inv_put(), all but its list
 * link (next), which a caller clearing the invocations of a list walks
 * on through. No lock needed: the last reference of an event may free
 * its payload through the host's free callback. */
void evfn__inv_clear(struct evfn__inv *inv);
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
