/* SPDX-License-Identifier: MIT */
/*
 * Publishing: the public calls that hand events to admission (emit,
 * publish, invoke_async, a handler's child emits, and their batches),
 * and what follows
 * an admission outside the lock: events dead-lettered at once (a chain
 * of emits past the hop limit) are settled here.
 */
#include <evfn/context.h>
#include <evfn/emit.h>

#include "admit-internal.h"
#include "common-internal.h"
#include "dispatch-internal.h"
#include "publish-internal.h"
#include "settle-internal.h"

int
evfn__publish(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
              struct evfn_result *waiter, uint64_t *seq)
{
	struct evfn__ended looped = {0};
	int rc = evfn__admit(rt, ev, fn_name, waiter, seq, false, &looped);
	evfn__settle(rt, &looped);
	return rc;
}

/* Admits a freshly built event, the builder's reference going to its
 * first target; if admission failed, drops it, which frees the event
 * (and releases a handed-over payload). */
static int
publish_new(evfn_rt *rt, evfn_event *ev, const char *fn_name, uint64_t *seq)
{
	struct evfn__ended looped = {0};
	int rc = evfn__admit(rt, ev, fn_name, NULL, seq, true, &looped);
	evfn__settle(rt, &looped);
	if (rc < 0)
		evfn_event_unref(ev);
	return rc;
}

int
evfn_emit(evfn_rt *rt, const char *topic, const void *data, size_t len,
          uint64_t *seq)
{
	if (!rt)
		return EVFN_EINVAL;
	evfn_event *ev;
	int rc = evfn__event_create(&ev, topic, data, len, true, NULL, NULL, 0);
	return rc < 0 ? rc : publish_new(rt, ev, NULL, seq);
}

int
evfn_emit_ref(evfn_rt *rt, const char *topic, void *data, size_t len,
              evfn_free_cb free_cb, void *free_arg, uint64_t *seq)
{
	if (!rt) {
		if (free_cb)
			free_cb(data, free_arg);
		return EVFN_EINVAL;
	}
	evfn_event *ev;
	int rc = evfn__event_create(&ev, topic, data, len, false, free_cb,
	                            free_arg, 0);
	return rc < 0 ? rc : publish_new(rt, ev, NULL, seq);
}

int
evfn_publish(evfn_rt *rt, evfn_event *ev, uint64_t *seq)
{
	if (!rt || !ev)
		return EVFN_EINVAL;
	if (ev->frozen)
		return EVFN_EPERM;
	return evfn__publish(rt, ev, NULL, NULL, seq);
}

int
evfn_publish_to(evfn_rt *rt, const char *fn_name, evfn_event *ev,
                uint64_t *seq)
{
	if (!rt || !ev)
		return EVFN_EINVAL;
	int rc = evfn__check_name(fn_name);
	if (rc < 0)
		return rc;
	if (ev->frozen)
		return EVFN_EPERM;
	return evfn__publish(rt, ev, fn_name, NULL, seq);
}

int
evfn_invoke_async(evfn_rt *rt, const char *fn_name, const void *data,
                  size_t len, uint64_t *seq)
{
	if (!rt)
		return EVFN_EINVAL;
	/* The event's type is the function name: creating it checks it. */
	evfn_event *ev;
	int rc = evfn__event_create(&ev, fn_name, data, len, true, NULL, NULL,
	                            0);
	return rc < 0 ? rc : publish_new(rt, ev, fn_name, seq);
}

int
evfn_ctx_emit(evfn_ctx *ctx, const char *topic, const void *data, size_t len,
              uint64_t *seq)
{
	if (!ctx)
		return EVFN_EINVAL;
	struct evfn__inv *inv = EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx);
	evfn_event *ev;
	int rc = evfn__event_create(&ev, topic, data, len, true, NULL, NULL,
	                            inv->ev->hops + 1);
	return rc < 0 ? rc : publish_new(inv->fn->rt, ev, NULL, seq);
}

int
evfn_ctx_publish(evfn_ctx *ctx, evfn_event *ev, uint64_t *seq)
{
	if (!ctx || !ev)
		return EVFN_EINVAL;
	if (ev->frozen)
		return EVFN_EPERM;
	struct evfn__inv *inv = EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx);
	ev->hops = inv->ev->hops + 1;
	return evfn__publish(inv->fn->rt, ev, NULL, NULL, seq);
}

/* ---- batches ------------------------------------------------------------ */

int
evfn__batch_check(evfn_event *const *evs, size_t n)
{
	if (!evs || n == 0)
		return EVFN_EINVAL;
	if (n > EVFN_BATCH_MAX)
		return EVFN_ERANGE;
	int rc = 0;
	size_t marked = 0;
	/* Each event is marked as it is met, so that meeting it again finds
	 * the mark: no quadratic search, no allocation. */
	for (; marked < n; marked++) {
		evfn_event *ev = evs[marked];
		if (!ev || ev->in_batch)
			rc = EVFN_EINVAL;
		else if (ev->frozen)
			rc = EVFN_EPERM;
		if (rc < 0)
			break;
		ev->in_batch = true;
	}
	for (size_t i = 0; i < marked; i++)
		evs[i]->in_batch = false;
	return rc;
}

int
evfn__publish_batch(struct evfn_rt *rt, evfn_event *const *evs, size_t n,
                    const char *fn_name, struct evfn_result *const *waiters,
                    uint64_t *first_seq, size_t *taken)
{
	struct evfn__ended looped = {0};
	int rc = evfn__admit_batch(rt, evs, n, fn_name, waiters, first_seq,
	                           taken, false, &looped);
	evfn__settle(rt, &looped);
	return rc;
}

int
evfn__publish_some(struct evfn_rt *rt, const char *fn_name,
                   evfn_event *const *evs, size_t n, uint64_t *first_seq,
                   size_t *taken)
{
	if (taken)
		*taken = 0;
	if (!rt)
		return EVFN_EINVAL;
	int rc = fn_name ? evfn__check_name(fn_name) : 0;
	if (rc == 0)
		rc = evfn__batch_check(evs, n);
	return rc < 0 ? rc
	              : evfn__publish_batch(rt, evs, n, fn_name, NULL,
	                                    first_seq, taken);
}

int
evfn_publish_batch(evfn_rt *rt, const char *fn_name, evfn_event *const *evs,
                   size_t n, uint64_t *first_seq)
{
	return evfn__publish_some(rt, fn_name, evs, n, first_seq, NULL);
}

int
evfn_emit_many(evfn_rt *rt, const evfn_emit_item *items, size_t n,
               uint64_t *first_seq)
{
	if (!rt || !items || n == 0)
		return EVFN_EINVAL;
	if (n > EVFN_BATCH_MAX)
		return EVFN_ERANGE;
	evfn_event **evs = evfn__malloc(n * sizeof(*evs));
	if (!evs)
		return EVFN_ENOMEM;
	size_t made = 0;
	int rc = 0;
	while (made < n && rc == 0) {
		rc = evfn__event_create(&evs[made], items[made].topic,
		                        items[made].data, items[made].len, true,
		                        NULL, NULL, 0);
		made += rc == 0;
	}
	/* The builders' references go to the first targets: on success
	 * the events are the runtime's, else they are freed here. */
	if (rc == 0) {
		struct evfn__ended looped = {0};
		rc = evfn__admit_batch(rt, evs, n, NULL, NULL, first_seq, NULL,
		                       true, &looped);
		evfn__settle(rt, &looped);
	}
	if (rc < 0)
		for (size_t i = 0; i < made; i++)
			evfn_event_unref(evs[i]);
	evfn__free(evs);
	return rc;
}
