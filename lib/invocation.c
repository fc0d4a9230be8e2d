/* SPDX-License-Identifier: MIT */
/*
 * Invocations: the pool they are taken from and given back to, and what letting
 * go of one means. An invocation costs one allocation the first time; after
 * that it moves between the pool and the queues.
 */
#include "common-internal.h"
#include "event-internal.h"
#include "invocation-internal.h"
#include "kv-internal.h"

struct evfn__inv *
evfn__inv_new(void)
{
	struct evfn__inv *inv = evfn__calloc(1, sizeof(*inv));
	if (inv)
		inv->final_stat = -1;
	return inv;
}

void
evfn__inv_put(struct evfn__inv_pool *p, struct evfn__inv *inv)
{
	if (p->n >= EVFN__INV_POOL_MAX) {
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
	/* Counted, then spliced on whole when the pool has room (the usual
	 * case: what a worker hands back is what it took): a few
	 * instructions an invocation, under the runtime lock. */
	size_t n = 0;
	for (struct evfn__inv *inv = list->head; inv; inv = inv->next)
		n++;
	if (n && p->n + n <= EVFN__INV_POOL_MAX) {
		list->tail->next = p->free;
		p->free = list->head;
		p->n += n;
	} else {
		struct evfn__inv *inv = list->head, *next;
		for (; inv; inv = next) {
			next = inv->next;
			evfn__inv_put(p, inv);
		}
	}
	list->head = list->tail = NULL;
}

void
evfn__inv_free_results(struct evfn__inv *inv)
{
	evfn__free(inv->ctx.resp);
	evfn__free(inv->ctx.error);
	evfn__kv_free(&inv->ctx.meta);
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
