/* SPDX-License-Identifier: MIT */
/*
 * Waiting for an event's final outcome: the synchronous invoke, which
 * blocks its caller, and evfn_submit(), whose callback the loop thread
 * runs; both read the outcome through an evfn_result.
 */
#include <string.h>

#include <evfn/alloc.h>
#include <evfn/emit.h>

#include "common-internal.h"
#include "runtime-internal.h"

void
evfn__deliver_results_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	while (!evfn__result_list_empty(&rt->results)) {
		struct evfn__result_list due = rt->results;
		rt->results = (struct evfn__result_list){NULL, NULL};
		evfn__lock_release(&rt->lock);
		struct evfn_result *w;
		while ((w = evfn__result_list_pop(&due))) {
			w->cb(w, w->cb_arg);
			evfn__result_clear(w);
			evfn__free(w);
		}
		evfn__lock_acquire(&rt->lock);
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

int
evfn_invoke(evfn_rt *rt, const char *fn_name, const void *data, size_t len,
            void **resp, size_t *resp_len)
{
	if (resp)
		*resp = NULL;
	if (resp_len)
		*resp_len = 0;
	if (!rt)
		return EVFN_EINVAL;
	int rc = evfn__check_name(fn_name);
	if (rc < 0)
		return rc;
	/* The loop runs retries and loop handlers: blocking it could wait
	 * forever. */
	if (evfn__loop_is_current(&rt->loop))
		return EVFN_EDEADLK;
	evfn_event *ev;
	rc = evfn__event_create(&ev, fn_name, data, len, true, NULL, NULL, 0);
	if (rc < 0)
		return rc;
	struct evfn_result w = {.done = false};
	pthread_cond_init(&w.cond, NULL);
	rc = evfn__admit(rt, ev, fn_name, &w, NULL);
	evfn_event_unref(ev);
	if (rc == 0) {
		evfn__lock_acquire(&rt->lock);
		while (!w.done)
			evfn__lock_wait(&rt->lock, &w.cond);
		evfn__lock_release(&rt->lock);
		rc = w.result;
		if (rc == 0 && resp) {
			*resp = w.resp;
			w.resp = NULL;
			if (resp_len)
				*resp_len = w.resp_len;
		}
		evfn__result_clear(&w);
	}
	pthread_cond_destroy(&w.cond);
	return rc;
}

int
evfn_submit(evfn_rt *rt, const char *fn_name, evfn_event *ev,
            evfn_result_cb cb, void *arg, uint64_t *seq)
{
	if (!rt || !ev || !cb)
		return EVFN_EINVAL;
	int rc = evfn__check_name(fn_name);
	if (rc < 0)
		return rc;
	if (ev->frozen)
		return EVFN_EPERM;
	struct evfn_result *w = evfn__calloc(1, sizeof(*w));
	if (!w)
		return EVFN_ENOMEM;
	w->cb = cb;
	w->cb_arg = arg;
	rc = evfn__admit(rt, ev, fn_name, w, seq);
	if (rc < 0)
		evfn__free(w); /* refused: the callback is never called */
	return rc;
}
