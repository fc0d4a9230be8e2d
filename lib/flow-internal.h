/* SPDX-License-Identifier: MIT */
/*
 * A function's flow state (flow.c): its rate limit, its circuit breaker,
 * and the one timer that brings it back when what held it back may have
 * changed (the state machine's; the batching window uses it too). A
 * function whose options need none of them has none, and pays one
 * pointer test. A leaf: the rate limit says when a call may start; the
 * state machine acts. Guarded by the lock of the function that owns it.
 */
#ifndef EVFN_FLOW_INTERNAL_H
#define EVFN_FLOW_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <evfn/function.h>

#include "breaker-internal.h"

struct evfn__timer;

struct evfn__flow {
	/* Rate limit, as a token bucket in its GCRA form. */
	int64_t interval_ns;        /* 0: no limit */
	int64_t tolerance_ns;
	int64_t tat_ns;
	bool rate_waiting;          /* counted once per wait */
	struct evfn__breaker breaker; /* used when the options set one */
	struct evfn__timer *timer;  /* set and armed by the state machine */
};

/* The flow state cfg needs, in *out, or NULL when it needs none.
 * Returns 0 or EVFN_ENOMEM. */
int evfn__flow_new(const evfn_fn_options *cfg, struct evfn__flow **out);
/* Frees f (NULL-safe); its timer is its owner's to free first. */
void evfn__flow_free(struct evfn__flow *f);
/* When the rate limit lets a call start: 0 now, or the monotonic time
 * to look again. *wait_began is set when this is the start of a wait
 * (a function is counted rate-limited once per wait). */
int64_t evfn__flow_rate_wait(struct evfn__flow *f, int64_t now,
                             bool *wait_began);
/* A call starts at now: it takes a token. */
void evfn__flow_rate_take(struct evfn__flow *f, int64_t now);

#endif /* EVFN_FLOW_INTERNAL_H */
