/* SPDX-License-Identifier: MIT */
/*
 * Invocations: the pool they are taken from and given back to, and what letting
 * go of one means. An invocation costs one allocation the first time; after
 * that it moves between the pool and the queues.
 */
#include <stdint.h>

#include "common-internal.h"
#include "event-internal.h"
#include "invocation-internal.h"
#include "kv-internal.h"

/* Enough invocations to absorb a burst without keeping a big one forever. */
#define POOL_MAX 4096

struct evfn__inv *
evfn__inv_get(struct evfn__inv_pool *p)
{
	struct evfn__inv *inv = p->free;
	if (inv) {
		/* Zeroed when it was given back. */
		p->free = inv->next;
		p->n--;
		inv->next = NULL;
	} else {
		inv = evfn__calloc(1, sizeof(*inv));
	}
	if (inv)
		inv->final_stat = -1;
	return inv;
}

void
evfn__inv_put(struct evfn__inv_pool *p, struct evfn__inv *inv)
{
	if (p->n >= POOL_MAX) {
		evfn__free(inv);
		return;
	}
	inv->next = p->free;
	p->free = inv;
	p->n++;
}

void
evfn__inv_put_all(struct evfn__inv_pool *p, struct evfn__inv_list *list)
{
	struct evfn__inv *inv = list->head, *next;
	for (; inv; inv = next) {
		next = inv->next;
		evfn__inv_put(p, inv);
	}
	list->head = list->tail = NULL;
}

/* A field added to struct evfn__inv must be cleared below: on 64-bit
 * targets its size changes and this fails (tests/test-invocation.c
 * checks the clear byte by byte). */
#if UINTPTR_MAX == UINT64_MAX
EVFN__STATIC_ASSERT(sizeof(struct evfn__inv) == 224,
                    "evfn__inv_clear() clears every field of evfn__inv");
#endif

void
evfn__inv_clear(struct evfn__inv *inv)
{
	evfn_event_unref(inv->ev);
	/* Most attempts leave no response, error or metadata: tested here,
	 * on every event's way out, rather than in three calls. */
	if (EVFN__UNLIKELY(inv->ctx.resp || inv->ctx.error || inv->ctx.meta)) {
		evfn__free(inv->ctx.resp);
		evfn__free(inv->ctx.error);
		evfn__kv_free(&inv->ctx.meta);
	}
	/* Field by field, not one memset: gcc turns a memset of this size
	 * into rep stos (some 36 instructions and a slow start on every
	 * event's way out), fields into a dozen vector stores. The list
	 * link stays: the caller's list goes on through it. */
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

void
evfn__inv_drop(struct evfn__inv *inv)
{
	evfn__inv_clear(inv);
	evfn__free(inv);
}

void
evfn__inv_pool_free(struct evfn__inv_pool *p)
{
	while (p->free) {
		struct evfn__inv *inv = p->free;
		p->free = inv->next;
		evfn__free(inv);
	}
	p->n = 0;
}

/* evfn__inv_pred on an invocation. */
struct inv_match {
	evfn__inv_pred match;
	void *arg;
};

static bool
inv_matches(const struct evfn__inv *inv, void *arg)
{
	const struct inv_match *m = arg;
	return m->match(inv->fn, inv->ev, m->arg);
}

size_t
evfn__inv_list_take_matching(struct evfn__inv_list *list,
                             evfn__inv_pred match, void *arg,
                             struct evfn__inv_list *out)
{
	struct inv_match m = {match, arg};
	return evfn__inv_list_take_if(list, match ? inv_matches : NULL, &m,
	                              out);
}
