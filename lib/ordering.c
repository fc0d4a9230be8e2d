/* SPDX-License-Identifier: MIT */
/*
 * Ordering keys (SQS FIFO message groups). In each function, the events
 * that share a key form a group: one of them is active (queued, running
 * or waiting for its retry, like any event) and the others are held, in
 * publish order, outside the function's queue. When the active one ends,
 * the next held one is queued. So a key's events run one at a time and
 * in order, retries included, at O(1) per event, and the function's queue
 * only ever holds events that may start.
 */
#include <string.h>

#include "common-internal.h"
#include "runtime-internal.h"

struct evfn__okey {
	UT_hash_handle hh;
	struct evfn__inv *active;
	struct evfn__inv_list held; /* oldest first */
	char key[];
};

static struct evfn__okey *
group_new(struct evfn_fn *fn, const char *key)
{
	size_t len = strlen(key);
	struct evfn__okey *g = evfn__calloc(1, sizeof(*g) + len + 1);
	if (!g)
		return NULL;
	memcpy(g->key, key, len + 1);
	bool evfn__hash_oom = false;
	HASH_ADD(hh, fn->okeys, key[0], len, g);
	if (evfn__hash_oom) {
		evfn__free(g);
		return NULL;
	}
	return g;
}

void
evfn__okey_join_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	const char *key = evfn__event_okey(inv->ev);
	struct evfn_fn *fn = inv->fn;
	if (!key) {
		evfn__enqueue_locked(rt, inv);
		return;
	}
	struct evfn__okey *g;
	HASH_FIND(hh, fn->okeys, key, strlen(key), g);
	if (g) {
		inv->okey = g;
		evfn__inv_list_push(&g->held, inv);
		fn->queued++;
		fn->held++;
		return;
	}
	if (!(g = group_new(fn, key))) {
		/* Admitted already: run it rather than lose it, unordered. */
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		          "%s: out of memory ordering key %s; event %s runs "
		          "unordered", fn->name, key, evfn_event_id(inv->ev));
		evfn__enqueue_locked(rt, inv);
		return;
	}
	g->active = inv;
	inv->okey = g;
	evfn__enqueue_locked(rt, inv);
}

void
evfn__okey_leave_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__okey *g = inv->okey;
	inv->okey = NULL;
	if (g->active != inv)
		return; /* a held one, taken out by its caller */
	struct evfn__inv *next = evfn__inv_list_pop(&g->held);
	if (!next) {
		HASH_DEL(inv->fn->okeys, g);
		evfn__free(g);
		return;
	}
	g->active = next;
	next->fn->held--;
	evfn__enqueue_held_locked(rt, next);
}

void
evfn__okey_rebind_locked(struct evfn__okey *g, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(inv->fn->rt);
	g->active = inv;
}

struct evfn__inv *
evfn__okey_take_held_locked(struct evfn_fn *fn, evfn__inv_pred match,
                            void *arg)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	struct evfn__inv_list list = {NULL, NULL};
	struct evfn__okey *g, *tmp;
	HASH_ITER(hh, fn->okeys, g, tmp) {
		struct evfn__inv_list taken = {NULL, NULL};
		size_t n = evfn__inv_list_take_matching(&g->held, match, arg,
		                                        &taken);
		for (struct evfn__inv *x = taken.head; x; x = x->next)
			x->okey = NULL; /* out of the group, onto the list */
		evfn__inv_list_append(&list, &taken);
		fn->queued -= (int64_t)n;
		fn->held -= (int64_t)n;
	}
	return list.head;
}

void
evfn__okey_free_all(struct evfn_fn *fn)
{
	struct evfn__okey *g, *tmp;
	HASH_ITER(hh, fn->okeys, g, tmp) {
		HASH_DEL(fn->okeys, g);
		evfn__free(g);
	}
}
