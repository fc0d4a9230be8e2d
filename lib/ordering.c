/* SPDX-License-Identifier: MIT */
/*
 * Ordering keys (SQS FIFO message groups). In each function, the events
 * that share a key form a group: one of them is active (queued, running
 * or waiting for its retry, like any event) and the others are held, in
 * publish order, outside the function's queue. When the active one ends,
 * the next held one's turn comes, and the state machine queues it. So a
 * key's events run one at a time and in order, retries included, at O(1)
 * per event, and the function's queue only ever holds events that may
 * start.
 */
#include <string.h>

#include "common-internal.h"
#include "hash-internal.h"
#include "ordering-internal.h"

struct evfn__okey {
	UT_hash_handle hh;
	struct evfn__inv *active;
	struct evfn__inv_list held; /* oldest first */
	char key[];
};

static struct evfn__okey *
group_new(struct evfn__okeys *k, const char *key)
{
	size_t len = strlen(key);
	struct evfn__okey *g = evfn__calloc(1, sizeof(*g) + len + 1);
	if (!g)
		return NULL;
	memcpy(g->key, key, len + 1);
	bool evfn__hash_oom = false;
	HASH_ADD(hh, k->groups, key[0], len, g);
	if (evfn__hash_oom) {
		evfn__free(g);
		return NULL;
	}
	return g;
}

enum evfn__okey_turn
evfn__okeys_join(struct evfn__okeys *k, struct evfn__inv *inv,
                 const char *key)
{
	struct evfn__okey *g;
	HASH_FIND(hh, k->groups, key, strlen(key), g);
	if (g) {
		inv->okey = g;
		evfn__inv_list_push(&g->held, inv);
		return EVFN__OKEY_HELD;
	}
	if (!(g = group_new(k, key)))
		return EVFN__OKEY_NOMEM;
	g->active = inv;
	inv->okey = g;
	return EVFN__OKEY_ACTIVE;
}

struct evfn__inv *
evfn__okeys_leave(struct evfn__okeys *k, struct evfn__inv *inv)
{
	struct evfn__okey *g = inv->okey;
	inv->okey = NULL;
	if (g->active != inv)
		return NULL; /* a held one, taken out by its caller */
	struct evfn__inv *next = evfn__inv_list_pop(&g->held);
	if (!next) {
		HASH_DEL(k->groups, g);
		evfn__free(g);
		return NULL;
	}
	g->active = next;
	return next;
}

void
evfn__okey_rebind(struct evfn__okey *g, struct evfn__inv *inv)
{
	g->active = inv;
}

size_t
evfn__okeys_take_held(struct evfn__okeys *k, evfn__inv_pred match, void *arg,
                      struct evfn__inv_list *out)
{
	size_t n = 0;
	struct evfn__okey *g, *tmp;
	HASH_ITER(hh, k->groups, g, tmp) {
		struct evfn__inv_list taken = {NULL, NULL};
		n += evfn__inv_list_take_matching(&g->held, match, arg, &taken);
		for (struct evfn__inv *x = taken.head; x; x = x->next)
			x->okey = NULL; /* out of the group, onto the list */
		evfn__inv_list_append(out, &taken);
	}
	return n;
}

void
evfn__okeys_free(struct evfn__okeys *k)
{
	struct evfn__okey *g, *tmp;
	HASH_ITER(hh, k->groups, g, tmp) {
		HASH_DEL(k->groups, g);
		evfn__free(g);
	}
}
