/* SPDX-License-Identifier: MIT */
/*
 * The contents of the two option builders. The runtime and every function
 * keep a copy, so a builder may be freed or reused right after use.
 */
#ifndef EVFN_OPTIONS_INTERNAL_H
#define EVFN_OPTIONS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <evfn/function.h>
#include <evfn/runtime.h>
#include <evfn/deadletter.h>

#include "backoff-internal.h"

struct event_base;

struct evfn_rt_options {
	int min_workers, max_workers;
	int64_t idle_timeout_ns;
	char *source; /* NULL: "evfn" */
	evfn_log_cb log_cb;
	void *log_arg;
	struct event_base *base; /* NULL: a base and loop thread of our own */
	unsigned max_hops;
	size_t dead_letter_capacity;
	evfn_record_cb record_cb;
	void *record_arg;
	bool no_metrics; /* zero-initialised builders keep metrics on */
	char *journal_path; /* NULL: no journal */
	evfn_journal_mode journal_mode;
	bool journal_discard_handed_back; /* false: kept (the default) */
};

struct evfn_fn_options {
	int64_t timeout_ns;
	int attempts;
	evfn__backoff_policy backoff;
	int64_t max_age_ns;
	int concurrency;   /* 0: no reservation, the pool bounds it */
	int64_t queue_capacity;
	evfn_executor executor;
	evfn_worker_init_cb init;
	evfn_worker_fini_cb fini;
	evfn_userdata_free_cb userdata_free;
	evfn_cancel_cb cancel_hook;
	int max_stuck;
	char on_success[EVFN_NAME_MAX + 1]; /* "" for none */
	char on_failure[EVFN_NAME_MAX + 1];
	int64_t idem_window_ns;             /* 0: no idempotency */
	evfn_idempotency_key_cb idem_key;
	int batch_max;                      /* 1: no batches */
	int64_t batch_window_ns;
	double rate_per_sec;                /* 0: no rate limit */
	int rate_burst;
	int breaker_consecutive;            /* 0: not this trigger */
	double breaker_rate;                /* 0: not this trigger */
	int breaker_min_calls;
	int64_t breaker_window_ns;          /* 0: no breaker */
	int64_t breaker_cooldown_ns;
	evfn_circuit_policy breaker_policy;
};

/* Fills o with the documented defaults. */
void evfn__rt_options_defaults(evfn_rt_options *o);
void evfn__fn_options_defaults(evfn_fn_options *o);

#endif /* EVFN_OPTIONS_INTERNAL_H */
