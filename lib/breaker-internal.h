/* SPDX-License-Identifier: MIT */
/*
 * The circuit breaker (breaker.c), kept in a function's flow state. A
 * leaf: it counts calls and says when its state changes; the state
 * machine counts the changes, tells the event log and arms the timer
 * for the cool-down. Guarded by the lock of the function that owns it.
 */
#ifndef EVFN_BREAKER_INTERNAL_H
#define EVFN_BREAKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn/function.h>

struct evfn__breaker {
	int state;                  /* evfn_circuit_state */
	bool probe_out;             /* half-open: the probe call runs */
	unsigned consecutive;       /* failed calls in a row */
	int64_t window_start;       /* monotonic ns */
	unsigned calls, failures;   /* in the current window */
	int64_t open_until;         /* monotonic ns, while open */
};

/* An open breaker whose cool-down passed at now turns half-open; returns
 * whether it did. */
bool evfn__breaker_tick(struct evfn__breaker *b, int64_t now);
/* Whether a call may start: closed, or half-open with no probe out. */
bool evfn__breaker_allows(const struct evfn__breaker *b);
/* Whether admission refuses new events: open, and the function's policy
 * says so. */
bool evfn__breaker_refuses(const struct evfn__breaker *b,
                           const evfn_fn_options *cfg);
/* A call starts; returns whether it is the half-open probe. */
bool evfn__breaker_start_call(struct evfn__breaker *b);
/* A call ended at now (ok: its handler returned EVFN_OK; probe: it was
 * the probe). Returns the state the breaker moved to, or -1 when it did
 * not move; on a move to open, why says what tripped it. */
int evfn__breaker_count_call(struct evfn__breaker *b,
                             const evfn_fn_options *cfg, bool probe, bool ok,
                             int64_t now, char *why, size_t why_size);

#endif /* EVFN_BREAKER_INTERNAL_H */
