/* SPDX-License-Identifier: MIT */
/*
 * Ordering keys (ordering.c): per function, the events that share a key
 * form a group with one active member and the others held in publish
 * order. A leaf: it says whose turn it is; the state machine queues the
 * active ones and counts the held. Guarded by the lock of the function
 * that owns the groups.
 */
#ifndef EVFN_ORDERING_INTERNAL_H
#define EVFN_ORDERING_INTERNAL_H

#include <stddef.h>

#include "invocation-internal.h"

struct evfn__okey;

/* A function's groups (uthash); zeroed: none. */
struct evfn__okeys {
	struct evfn__okey *groups;
};

/* Where a new invocation goes. */
enum evfn__okey_turn {
	EVFN__OKEY_ACTIVE, /* its key's active one: queue it now */
	EVFN__OKEY_HELD,   /* held behind the active one */
	EVFN__OKEY_NOMEM,  /* no memory for a new group: it runs unordered */
};

/* Joins inv to the group of key (inv->okey is set unless NOMEM). */
enum evfn__okey_turn evfn__okeys_join(struct evfn__okeys *k,
                                      struct evfn__inv *inv,
                                      const char *key);
/* inv, a group member, ended or leaves its group. If it was the active
 * one, the next held one (now active, its okey kept) is returned for the
 * caller to queue, or the group is freed and NULL returned; a held one
 * leaves its caller to unlink it. inv->okey is cleared. */
struct evfn__inv *evfn__okeys_leave(struct evfn__okeys *k,
                                    struct evfn__inv *inv);
/* The event of a group's active invocation moved to the invocation inv
 * (a fenced attempt's fresh one). */
void evfn__okey_rebind(struct evfn__okey *g, struct evfn__inv *inv);
/* Moves the held invocations that match() accepts (all for NULL) out of
 * their groups onto out, each key's in order; returns how many. */
size_t evfn__okeys_take_held(struct evfn__okeys *k, evfn__inv_pred match,
                             void *arg, struct evfn__inv_list *out);
/* Frees every group. */
void evfn__okeys_free(struct evfn__okeys *k);

#endif /* EVFN_ORDERING_INTERNAL_H */
