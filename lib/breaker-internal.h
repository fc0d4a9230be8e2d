/* SPDX-License-Identifier: MIT */
/*
 * The circuit breaker's state, kept in a function's flow state (flow.c).
 * Guarded by rt->lock.
 */
#ifndef EVFN_BREAKER_INTERNAL_H
#define EVFN_BREAKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

struct evfn_rt;
struct evfn_fn;
struct evfn__inv;

struct evfn__breaker {
	int state;                  /* evfn_circuit_state */
	bool probe_out;             /* half-open: the probe call runs */
	unsigned consecutive;       /* failed calls in a row */
	int64_t window_start;       /* monotonic ns */
	unsigned calls, failures;   /* in the current window */
	int64_t open_until;         /* monotonic ns, while open */
};

/* fn's breaker, or NULL when it has none. */
struct evfn__breaker *evfn__flow_breaker(struct evfn_fn *fn);
/* A call starts: in half-open state it is the probe. */
void evfn__breaker_on_start_locked(struct evfn_fn *fn,
                                   struct evfn__inv *inv);
/* The flow timer fired: an open breaker whose cool-down passed turns
 * half-open. */
void evfn__breaker_tick_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                               int64_t now);

#endif /* EVFN_BREAKER_INTERNAL_H */
