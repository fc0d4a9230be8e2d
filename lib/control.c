/* SPDX-License-Identifier: MIT */
/*
 * Controlling accepted work: pause and resume a function, cancel events
 * by id wherever they wait, or ask running attempts to stop.
 */
#include <string.h>

#include <evfn/control.h>

#include "common-internal.h"
#include "dispatch-internal.h"
#include "loopexec-internal.h"
#include "pool-internal.h"
#include "registry-internal.h"
#include "settle-internal.h"

static int
set_paused(evfn_rt *rt, const char *fn_name, bool paused)
{
	if (!rt || !fn_name)
		return EVFN_EINVAL;
	evfn__lock_acquire(&rt->lock);
	struct evfn_fn *fn = evfn__fn_find_locked(rt, fn_name);
	if (fn && fn->paused != paused) {
		fn->paused = paused;
		fn->stat[EVFN_STAT_PAUSED] = paused;
		if (!paused)
			evfn__fn_schedule_locked(rt, fn);
	}
	evfn__lock_release(&rt->lock);
	return fn ? 0 : EVFN_ENOFN;
}

int
evfn_pause(evfn_rt *rt, const char *fn_name)
{
	return set_paused(rt, fn_name, true);
}

int
evfn_resume(evfn_rt *rt, const char *fn_name)
{
	return set_paused(rt, fn_name, false);
}

/* One cancellation: the id, the function (NULL: any), and how many
 * running attempts were asked to stop. */
struct search {
	const char *id;
	struct evfn_fn *fn;
	int requested;
};

static bool
matches(const struct evfn_fn *fn, const evfn_event *ev, void *arg)
{
	const struct search *s = arg;
	return (!s->fn || fn == s->fn) && strcmp(evfn_event_id(ev), s->id) == 0;
}

/* A running attempt cannot be taken back: it is asked to stop, and ends
 * cancelled unless it succeeds. */
static void
request_cancel(struct evfn__inv *inv, void *arg)
{
	struct search *s = arg;
	if (!inv || !matches(inv->fn, inv->ev, s) || inv->cancel_requested)
		return;
	inv->cancel_requested = true;
	atomic_store(&inv->ctx.cancelled, true);
	s->requested++;
}

/* Ends the events of list as cancelled; returns how many. */
static int
cancel_list_locked(struct evfn_rt *rt, struct evfn__inv_list list,
                   struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	return (int)evfn__end_all_locked(rt, &list, EVFN_STAT_CANCELLED,
	                                 EVFN_ECANCELED, ended);
}

/* Cancels the matching events that wait (queued, held behind their key,
 * or for a retry or their delay); returns how many. */
static int
cancel_waiting_locked(struct evfn_rt *rt, struct search *s,
                      struct evfn__ended *ended, bool *short_of_memory)
{
	EVFN__ASSERT_LOCKED(rt);
	int n = 0;
	/* Taken out of the queues first, so that an active one's end,
	 * which queues the next of its key, cannot disturb a walk. */
	for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next) {
		if (s->fn && fn != s->fn)
			continue;
		struct evfn__inv_list held =
			evfn__take_held_locked(fn, matches, s);
		struct evfn__inv_list queued = evfn__take_queued_locked(
			rt, fn, matches, s, short_of_memory);
		n += cancel_list_locked(rt, held, ended);
		n += cancel_list_locked(rt, queued, ended);
	}
	n += cancel_list_locked(
		rt, evfn__take_due_locked(rt, matches, s, short_of_memory),
		ended);
	return n;
}

int
evfn_cancel(evfn_rt *rt, const char *fn_name, const char *event_id)
{
	if (!rt || !event_id)
		return EVFN_EINVAL;
	struct search s = {.id = event_id};
	struct evfn__ended ended = {0};
	bool short_of_memory = false;
	evfn__lock_acquire(&rt->lock);
	if (fn_name && !(s.fn = evfn__fn_find_locked(rt, fn_name))) {
		evfn__lock_release(&rt->lock);
		return EVFN_ENOFN;
	}
	int n = cancel_waiting_locked(rt, &s, &ended, &short_of_memory);
	evfn__pool_each_running_locked(rt->pool, request_cancel, &s);
	for (struct evfn__inv *inv = rt->pending; inv; inv = inv->pend_next)
		request_cancel(inv, &s);
	evfn__loopexec_each_running_locked(rt->loopx, request_cancel, &s);
	evfn__lock_release(&rt->lock);
	evfn__settle(rt, &ended);
	/* Queued events that had no invocation to end in: the invocations just
	 * disposed of are free again, so go on while that helps. */
	int got = n;
	while (short_of_memory && got > 0) {
		short_of_memory = false;
		evfn__lock_acquire(&rt->lock);
		got = cancel_waiting_locked(rt, &s, &ended, &short_of_memory);
		evfn__lock_release(&rt->lock);
		evfn__settle(rt, &ended);
		n += got;
	}
	n += s.requested;
	if (n == 0 && short_of_memory)
		return EVFN_ENOMEM;
	return n > 0 ? n : EVFN_ENOENT;
}
