/* SPDX-License-Identifier: MIT */
/*
 * Someone waiting for an event's final outcome, and that outcome: the
 * evfn_result (result.c). A synchronous caller's lives on its stack and
 * is signalled under the runtime lock; a result callback's is allocated,
 * queued, and called on the loop thread (or at free). A leaf: settle.c
 * fills results, the loop executor delivers them.
 */
#ifndef EVFN_RESULT_INTERNAL_H
#define EVFN_RESULT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <evfn/emit.h>

#include "invocation-internal.h"
#include "list-internal.h"
#include "lock-internal.h"

struct evfn_result {
	pthread_cond_t cond;        /* a synchronous caller waits here */
	bool done;
	int result;
	void *resp;
	size_t resp_len;
	struct evfn__kv *meta;      /* response metadata, moved from the ctx */
	char *error;                /* last attempt's error, copied */
	unsigned attempts;
	evfn_event *ev;             /* a reference, for callbacks */
	evfn_result_cb cb;          /* NULL: a synchronous caller */
	void *cb_arg;
	struct evfn_result *next;   /* on the list of callbacks due */
};
EVFN__LIST(evfn__result_list, struct evfn_result, next)

/* Moves the outcome of inv's event (result: what its waiter receives)
 * into r: the response and metadata on success, a copy of the last
 * error, the attempts. inv no longer has a waiter then. */
void evfn__result_fill(struct evfn_result *r, struct evfn__inv *inv,
                       int result);
/* Calls the result callbacks on due, oldest first, with lock (held)
 * released around them, until due stays empty; frees each result. */
void evfn__results_deliver_locked(struct evfn__result_list *due,
                                  struct evfn__lock *lock);
/* Releases what a result holds (response, metadata, error, event). */
void evfn__result_clear(struct evfn_result *r);

#endif /* EVFN_RESULT_INTERNAL_H */
