/* SPDX-License-Identifier: MIT */
/*
 * The circuit breaker: closed, it counts failed calls (in a row, and per
 * fixed window); past a threshold it opens and no call of the function
 * starts, so a failing downstream is not hammered and waiting events
 * spend no attempts; after the cool-down it is half-open and lets one
 * probe call start, whose outcome closes or reopens it. The state
 * machine (dispatch.c) asks it and tells the event log what changed.
 */
#include <stdio.h>

#include "breaker-internal.h"
#include "options-internal.h"

static void
reset_counts(struct evfn__breaker *b, int64_t now)
{
	b->consecutive = 0;
	b->calls = b->failures = 0;
	b->window_start = now;
}

static int
open_at(struct evfn__breaker *b, const evfn_fn_options *cfg, int64_t now)
{
	b->open_until = now + cfg->breaker_cooldown_ns;
	b->state = EVFN_CIRCUIT_OPEN;
	return b->state;
}

bool
evfn__breaker_tick(struct evfn__breaker *b, int64_t now)
{
	if (b->state != EVFN_CIRCUIT_OPEN || now < b->open_until)
		return false;
	b->probe_out = false;
	b->state = EVFN_CIRCUIT_HALF_OPEN;
	return true;
}

bool
evfn__breaker_allows(const struct evfn__breaker *b)
{
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
evfn__breaker_refuses(const struct evfn__breaker *b,
                      const evfn_fn_options *cfg)
{
	return b->state == EVFN_CIRCUIT_OPEN &&
	       cfg->breaker_policy == EVFN_CIRCUIT_REFUSE;
}

bool
evfn__breaker_start_call(struct evfn__breaker *b)
{
	if (b->state != EVFN_CIRCUIT_HALF_OPEN)
		return false;
	b->probe_out = true;
	return true;
}

int
evfn__breaker_count_call(struct evfn__breaker *b, const evfn_fn_options *cfg,
                         bool probe, bool ok, int64_t now, char *why,
                         size_t why_size)
{
	if (probe) {
		b->probe_out = false;
		if (!ok) {
			snprintf(why, why_size, "probe call failed");
			return open_at(b, cfg, now);
		}
		reset_counts(b, now);
		b->state = EVFN_CIRCUIT_CLOSED;
		return b->state;
	}
	/* Calls that started before the breaker opened end while it is
	 * open or half-open: only the probe decides then. */
	if (b->state != EVFN_CIRCUIT_CLOSED)
		return -1;
	if (now - b->window_start >= cfg->breaker_window_ns) {
		b->window_start = now;
		b->calls = b->failures = 0;
	}
	b->calls++;
	b->consecutive = ok ? 0 : b->consecutive + 1;
	b->failures += !ok;
	if (cfg->breaker_consecutive &&
	    b->consecutive >= (unsigned)cfg->breaker_consecutive) {
		snprintf(why, why_size, "%u consecutive failed calls",
		         b->consecutive);
	} else if (cfg->breaker_rate > 0 &&
	           b->calls >= (unsigned)cfg->breaker_min_calls &&
	           b->failures >= cfg->breaker_rate * b->calls) {
		snprintf(why, why_size, "%u of %u calls failed in the window",
		         b->failures, b->calls);
	} else {
		return -1;
	}
	reset_counts(b, now);
	return open_at(b, cfg, now);
}
