/* SPDX-License-Identifier: MIT */
/*
 * The circuit breaker: closed, it counts failed calls (in a row, and per
 * fixed window); past a threshold it opens and no call of the function
 * starts, so a failing downstream is not hammered and waiting events
 * spend no attempts; after the cool-down it is half-open and lets one
 * probe call start, whose outcome closes or reopens it. State changes
 * are counted and told to the event log; since they happen under the
 * runtime lock, they are queued as notices and told once it is released.
 */
#include <stdio.h>
#include <string.h>

#include "breaker-internal.h"
#include "common-internal.h"
#include "runtime-internal.h"

struct evfn__notice {
	struct evfn__notice *next;
	const struct evfn_fn *fn;
	int kind;
	char error[96];
};

static void
notice_locked(struct evfn_rt *rt, struct evfn_fn *fn, int kind,
              const char *error)
{
	EVFN__ASSERT_LOCKED(rt);
	if (!rt->opts.record_cb)
		return;
	struct evfn__notice *n = evfn__calloc(1, sizeof(*n));
	if (!n) {
		evfn__logf(&rt->log, EVFN_LOG_ERROR, "%s: out of memory for a "
		          "circuit-breaker record", fn->name);
		return;
	}
	n->fn = fn;
	n->kind = kind;
	snprintf(n->error, sizeof(n->error), "%s", error ? error : "");
	n->next = rt->notices; /* newest first; reversed when told */
	rt->notices = n;
	atomic_store_explicit(&rt->notices_due, true, memory_order_release);
}

static void
set_state_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                 struct evfn__breaker *b, int state, const char *why)
{
	EVFN__ASSERT_LOCKED(rt);
	static const int kinds[] = {
		[EVFN_CIRCUIT_CLOSED] = EVFN_RECORD_CIRCUIT_CLOSED,
		[EVFN_CIRCUIT_OPEN] = EVFN_RECORD_CIRCUIT_OPEN,
		[EVFN_CIRCUIT_HALF_OPEN] = EVFN_RECORD_CIRCUIT_HALF_OPEN,
	};
	b->state = state;
	fn->stat[EVFN_STAT_CIRCUIT_STATE] = (uint64_t)state;
	notice_locked(rt, fn, kinds[state], why);
}

static void
reset_counts(struct evfn__breaker *b, int64_t now)
{
	b->consecutive = 0;
	b->calls = b->failures = 0;
	b->window_start = now;
}

static void
open_locked(struct evfn_rt *rt, struct evfn_fn *fn, struct evfn__breaker *b,
            int64_t now, const char *why)
{
	EVFN__ASSERT_LOCKED(rt);
	b->open_until = now + fn->cfg.breaker_cooldown_ns;
	fn->stat[EVFN_STAT_CIRCUIT_OPENS]++;
	set_state_locked(rt, fn, b, EVFN_CIRCUIT_OPEN, why);
	/* Turns half-open on time even when nothing is queued. */
	evfn__flow_arm_locked(fn, b->open_until);
}

void
evfn__breaker_tick_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__breaker *b = evfn__flow_breaker(fn);
	if (!b || b->state != EVFN_CIRCUIT_OPEN)
		return;
	if (now >= b->open_until) {
		b->probe_out = false;
		set_state_locked(rt, fn, b, EVFN_CIRCUIT_HALF_OPEN, NULL);
	} else {
		/* The timer fired for the rate limit or the batch window, or
		 * early: keep it armed for the cool-down, even with nothing
		 * queued to ask. */
		evfn__flow_arm_locked(fn, b->open_until);
	}
}

bool
evfn__breaker_allows_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                            int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__breaker *b = evfn__flow_breaker(fn);
	evfn__breaker_tick_locked(rt, fn, now); /* re-arms while open */
	switch (b->state) {
	case EVFN_CIRCUIT_OPEN:
		return false;
	case EVFN_CIRCUIT_HALF_OPEN:
		return !b->probe_out;
	default:
		return true;
	}
}

bool
evfn__breaker_refuses_locked(const struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	struct evfn__breaker *b = evfn__flow_breaker((struct evfn_fn *)fn);
	return b && b->state == EVFN_CIRCUIT_OPEN &&
	       fn->cfg.breaker_policy == EVFN_CIRCUIT_REFUSE;
}

void
evfn__breaker_on_start_locked(struct evfn_fn *fn, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	struct evfn__breaker *b = evfn__flow_breaker(fn);
	if (b->state == EVFN_CIRCUIT_HALF_OPEN) {
		b->probe_out = true;
		inv->probe = true;
	}
}

void
evfn__breaker_record_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                            const struct evfn__inv *inv, bool ok, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__breaker *b = evfn__flow_breaker(fn);
	if (!b)
		return;
	if (inv->probe) {
		((struct evfn__inv *)inv)->probe = false;
		b->probe_out = false;
		if (ok) {
			reset_counts(b, now);
			set_state_locked(rt, fn, b, EVFN_CIRCUIT_CLOSED, NULL);
		} else {
			open_locked(rt, fn, b, now, "probe call failed");
		}
		return;
	}
	/* Calls that started before the breaker opened end while it is
	 * open or half-open: only the probe decides then. */
	if (b->state != EVFN_CIRCUIT_CLOSED)
		return;
	if (now - b->window_start >= fn->cfg.breaker_window_ns) {
		b->window_start = now;
		b->calls = b->failures = 0;
	}
	b->calls++;
	b->consecutive = ok ? 0 : b->consecutive + 1;
	b->failures += !ok;
	char why[96];
	if (fn->cfg.breaker_consecutive &&
	    b->consecutive >= (unsigned)fn->cfg.breaker_consecutive) {
		snprintf(why, sizeof(why), "%u consecutive failed calls",
		         b->consecutive);
	} else if (fn->cfg.breaker_rate > 0 &&
	           b->calls >= (unsigned)fn->cfg.breaker_min_calls &&
	           b->failures >= fn->cfg.breaker_rate * b->calls) {
		snprintf(why, sizeof(why), "%u of %u calls failed in the window",
		         b->failures, b->calls);
	} else {
		return;
	}
	reset_counts(b, now);
	open_locked(rt, fn, b, now, why);
}

void
evfn__notices_deliver(struct evfn_rt *rt)
{
	if (!atomic_load_explicit(&rt->notices_due, memory_order_acquire))
		return;
	evfn__lock_acquire(&rt->lock);
	struct evfn__notice *list = NULL;
	while (rt->notices) { /* oldest first */
		struct evfn__notice *n = rt->notices;
		rt->notices = n->next;
		n->next = list;
		list = n;
	}
	atomic_store_explicit(&rt->notices_due, false, memory_order_relaxed);
	evfn__lock_release(&rt->lock);
	while (list) {
		struct evfn__notice *n = list;
		list = n->next;
		evfn__record_fn(rt, n->kind, n->fn, n->error[0] ? n->error : NULL);
		evfn__free(n);
	}
}

void
evfn__notices_free(struct evfn_rt *rt)
{
	while (rt->notices) {
		struct evfn__notice *n = rt->notices;
		rt->notices = n->next;
		evfn__free(n);
	}
}
