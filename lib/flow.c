/* SPDX-License-Identifier: MIT */
/*
 * Per-function flow state: the rate limit, and room for the circuit
 * breaker (breaker.c) and the timer the state machine arms for the
 * earliest moment something that holds the function back may change
 * (the rate limit, the batching window, the breaker's cool-down). While
 * one of them holds a function back it simply is not startable: its
 * events wait in its queue.
 *
 * The rate limit is a token bucket kept as a "theoretical arrival time"
 * (the GCRA form of it): a call may start when now >= tat - tolerance,
 * where tolerance = (burst - 1) * interval, and starting moves tat to
 * max(tat, now) + interval. One number of state, no refill arithmetic,
 * and a timer that fires late loses nothing while the burst covers it.
 */
#include "common-internal.h"
#include "flow-internal.h"
#include "options-internal.h"

int
evfn__flow_new(const evfn_fn_options *cfg, struct evfn__flow **out)
{
	*out = NULL;
	bool window = cfg->batch_max > 1 && cfg->batch_window_ns > 0;
	if (!cfg->rate_per_sec && !cfg->breaker_window_ns && !window)
		return 0;
	struct evfn__flow *f = evfn__calloc(1, sizeof(*f));
	if (!f)
		return EVFN_ENOMEM;
	if (cfg->rate_per_sec > 0) {
		double ns = 1e9 / cfg->rate_per_sec;
		f->interval_ns = ns < 1 ? 1 : (int64_t)ns;
		f->tolerance_ns =
			(int64_t)(cfg->rate_burst - 1) * f->interval_ns;
	}
	*out = f;
	return 0;
}

void
evfn__flow_free(struct evfn__flow *f)
{
	evfn__free(f);
}

int64_t
evfn__flow_rate_wait(struct evfn__flow *f, int64_t now, bool *wait_began)
{
	*wait_began = false;
	if (!f->interval_ns)
		return 0;
	int64_t allowed = f->tat_ns - f->tolerance_ns;
	if (now >= allowed)
		return 0;
	if (!f->rate_waiting) {
		f->rate_waiting = true;
		*wait_began = true;
	}
	return allowed;
}

void
evfn__flow_rate_take(struct evfn__flow *f, int64_t now)
{
	if (!f->interval_ns)
		return;
	f->tat_ns = EVFN__MAX(f->tat_ns, now) + f->interval_ns;
	f->rate_waiting = false;
}
