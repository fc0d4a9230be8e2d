/* SPDX-License-Identifier: MIT */
/*
 * Controlling accepted work: pause and resume a function, cancel events
 * by id wherever they wait, or ask running attempts to stop.
 */
#include <string.h>

#include <evfn/control.h>

#include "common-internal.h"
#include "runtime-internal.h"

static int
set_paused(evfn_rt *rt, const char *fn_name, bool paused)
{
	if (!rt || !fn_name)
		return EVFN_EINVAL;
	pthread_mutex_lock(&rt->lock);
	struct evfn_fn *fn = evfn__fn_find(rt, fn_name);
	if (fn && fn->paused != paused) {
		fn->paused = paused;
		fn->stat[EVFN_STAT_PAUSED] = paused;
		if (!paused)
			evfn__fn_schedule_locked(rt, fn);
	}
	pthread_mutex_unlock(&rt->lock);
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

/* One cancellation's search: the id, the function (NULL: any), and what
 * it found. */
struct search {
	const char *id;
	struct evfn_fn *fn;
	struct evfn__inv *match;
	int requested;
};

static bool
matches(const struct search *s, const struct evfn__inv *inv)
{
	return (!s->fn || inv->fn == s->fn) &&
	       strcmp(evfn_event_id(inv->ev), s->id) == 0;
}

static void
find_first(struct evfn__inv *inv, void *arg)
{
	struct search *s = arg;
	if (!s->match && matches(s, inv))
		s->match = inv;
}

/* A running attempt cannot be taken back: it is asked to stop, and ends
 * cancelled unless it succeeds. */
static void
request_cancel(struct evfn__inv *inv, void *arg)
{
	struct search *s = arg;
	if (!inv || !matches(s, inv) || inv->cancel_requested)
		return;
	inv->cancel_requested = true;
	atomic_store(&inv->ctx.cancelled, true);
	s->requested++;
}

static void
end_cancelled(struct evfn_rt *rt, struct evfn__inv *inv,
              struct evfn__inv **garbage)
{
	evfn__finish_locked(rt, inv, EVFN_STAT_CANCELLED, EVFN_ECANCELED,
	                    garbage);
}

/* Cancels fn's matching events in its queue, behind their keys and on
 * the timer heap; returns how many. */
static int
cancel_waiting_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                      struct search *s, struct evfn__inv **garbage)
{
	int n = 0;
	struct evfn__inv *prev = NULL, *inv = fn->head;
	while (inv) {
		struct evfn__inv *next = inv->next;
		if (!matches(s, inv)) {
			prev = inv;
			inv = next;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			fn->head = next;
		if (fn->tail == inv)
			fn->tail = prev;
		fn->queued--;
		/* Ending an active one may queue the next of its key at the
		 * tail, which this walk then sees. */
		end_cancelled(rt, inv, garbage);
		n++;
		inv = prev ? prev->next : fn->head;
	}
	for (;;) {
		s->match = NULL;
		evfn__okey_each_held_locked(fn, find_first, s);
		if (!s->match)
			break;
		evfn__okey_unhold_locked(fn, s->match);
		end_cancelled(rt, s->match, garbage);
		n++;
	}
	for (;;) {
		s->match = NULL;
		evfn__retry_each_locked(rt, fn, find_first, s);
		if (!s->match)
			break;
		evfn__retry_remove_locked(rt, s->match);
		end_cancelled(rt, s->match, garbage);
		n++;
	}
	return n;
}

int
evfn_cancel(evfn_rt *rt, const char *fn_name, const char *event_id)
{
	if (!rt || !event_id)
		return EVFN_EINVAL;
	struct search s = {.id = event_id};
	struct evfn__inv *garbage = NULL;
	int n = 0;
	pthread_mutex_lock(&rt->lock);
	if (fn_name && !(s.fn = evfn__fn_find(rt, fn_name))) {
		pthread_mutex_unlock(&rt->lock);
		return EVFN_ENOFN;
	}
	for (struct evfn_fn *fn = rt->all_head; fn; fn = fn->all_next)
		if (!s.fn || fn == s.fn)
			n += cancel_waiting_locked(rt, fn, &s, &garbage);
	evfn__pool_each_running_locked(rt, request_cancel, &s);
	for (struct evfn__inv *inv = rt->pending; inv; inv = inv->pend_next)
		request_cancel(inv, &s);
	request_cancel(rt->loop_current, &s);
	pthread_mutex_unlock(&rt->lock);
	evfn__dispose(rt, garbage);
	n += s.requested;
	return n > 0 ? n : EVFN_ENOENT;
}
