/* SPDX-License-Identifier: MIT */
/*
 * An event's final outcome as a waiter receives it (evfn_result): filled
 * when the event ends (settle.c), read by a synchronous caller or passed
 * to a result callback, which runs on the loop thread (or at free).
 */
#include <string.h>

#include <evfn/alloc.h>
#include <evfn/emit.h>

#include "callout-internal.h"
#include "common-internal.h"
#include "event-internal.h"
#include "kv-internal.h"
#include "result-internal.h"

void
evfn__result_fill(struct evfn_result *r, struct evfn__inv *inv, int result)
{
	r->result = result;
	r->attempts = inv->attempt;
	if (result == 0) {
		/* The response moves to the caller. */
		r->resp = inv->ctx.resp;
		r->resp_len = inv->ctx.resp_len;
		inv->ctx.resp = NULL;
		r->meta = inv->ctx.meta;
		inv->ctx.meta = NULL;
	}
	r->error = inv->ctx.error ? evfn__strdup(inv->ctx.error) : NULL;
	r->done = true;
	inv->waiter = NULL;
}

void
evfn__results_deliver_locked(struct evfn__result_list *due,
                             struct evfn__lock *lock)
{
	EVFN__ASSERT_HELD(lock);
	while (!evfn__result_list_empty(due)) {
		struct evfn__result_list now = *due;
		*due = (struct evfn__result_list){NULL, NULL};
		evfn__lock_release(lock);
		struct evfn_result *r;
		while ((r = evfn__result_list_pop(&now))) {
			evfn__call_result(lock, r->cb, r, r->cb_arg);
			evfn__result_clear(r);
			evfn__free(r);
		}
		evfn__lock_acquire(lock);
	}
}

void
evfn__result_clear(struct evfn_result *r)
{
	evfn__free(r->resp);
	r->resp = NULL;
	evfn__free(r->error);
	r->error = NULL;
	evfn__kv_free(&r->meta);
	evfn_event_unref(r->ev);
	r->ev = NULL;
}

int
evfn_result_code(const evfn_result *r)
{
	return r ? r->result : EVFN_EINVAL;
}

const void *
evfn_result_data(const evfn_result *r, size_t *len)
{
	if (len)
		*len = r ? r->resp_len : 0;
	return r ? r->resp : NULL;
}

const char *
evfn_result_meta(const evfn_result *r, const char *key)
{
	return r && key ? evfn__kv_get(r->meta, key) : NULL;
}

const char *
evfn_result_meta_at(const evfn_result *r, size_t i, const char **key)
{
	const struct evfn__kv *kv = r ? evfn__kv_at(r->meta, i) : NULL;
	if (key)
		*key = kv ? kv->key : NULL;
	return kv ? kv->value : NULL;
}

const char *
evfn_result_error(const evfn_result *r)
{
	return r ? r->error : NULL;
}

unsigned
evfn_result_attempts(const evfn_result *r)
{
	return r ? r->attempts : 0;
}

const evfn_event *
evfn_result_event(const evfn_result *r)
{
	return r ? r->ev : NULL;
}

