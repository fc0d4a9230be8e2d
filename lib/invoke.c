/* SPDX-License-Identifier: MIT */
/*
 * Invoking a function and waiting for its event's final outcome: the
 * synchronous evfn_invoke(), which blocks its caller, and evfn_submit()
 * and evfn_submit_batch(), whose callback the loop thread runs. Both read the outcome through an
 * evfn_result (result.c).
 */
#include <evfn/alloc.h>
#include <evfn/emit.h>

#include "common-internal.h"
#include "dispatch-internal.h"
#include "publish-internal.h"

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
	rc = evfn__publish(rt, ev, fn_name, &w, NULL);
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

/* The waiter of a submitted event; NULL when out of memory. Freed once
 * its callback has run (or by the submitter when admission refused). */
static struct evfn_result *
waiter_new(evfn_result_cb cb, void *arg)
{
	struct evfn_result *w = evfn__calloc(1, sizeof(*w));
	if (w) {
		w->cb = cb;
		w->cb_arg = arg;
	}
	return w;
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
	struct evfn_result *w = waiter_new(cb, arg);
	if (!w)
		return EVFN_ENOMEM;
	rc = evfn__publish(rt, ev, fn_name, w, seq);
	if (rc < 0)
		evfn__free(w); /* refused: the callback is never called */
	return rc;
}

int
evfn__submit_some(struct evfn_rt *rt, const char *fn_name,
                   evfn_event *const *evs, size_t n, evfn_result_cb cb,
                   void *const *args, uint64_t *first_seq, size_t *taken)
{
	if (taken)
		*taken = 0;
	if (!rt || !cb)
		return EVFN_EINVAL;
	int rc = evfn__check_name(fn_name);
	if (rc == 0)
		rc = evfn__batch_check(evs, n);
	if (rc < 0)
		return rc;
	struct evfn_result **w = evfn__malloc(n * sizeof(*w));
	if (!w)
		return EVFN_ENOMEM;
	size_t made = 0;
	while (made < n && (w[made] = waiter_new(cb, args ? args[made] : NULL)))
		made++;
	size_t took = 0;
	rc = made < n ? EVFN_ENOMEM
	              : evfn__publish_batch(rt, evs, n, fn_name, w, first_seq,
	                                    taken ? &took : NULL);
	if (rc == 0)
		took = n;
	/* The waiters of events not taken: their callbacks are never
	 * called. */
	for (size_t i = took; i < made; i++)
		evfn__free(w[i]);
	evfn__free(w);
	if (taken)
		*taken = took;
	return rc;
}

int
evfn_submit_batch(evfn_rt *rt, const char *fn_name, evfn_event *const *evs,
                  size_t n, evfn_result_cb cb, void *const *args,
                  uint64_t *first_seq)
{
	return evfn__submit_some(rt, fn_name, evs, n, cb, args, first_seq,
	                          NULL);
}
