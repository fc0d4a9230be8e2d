/* SPDX-License-Identifier: MIT */
/*
 * The option builders for runtimes and functions. Each setter validates
 * its value at once, so a bad option is reported where it is set rather
 * than at registration.
 */
#include <string.h>
#include <unistd.h>

#include <evfn/libevent.h>

#include "common-internal.h"
#include "options-internal.h"

/* The longest journal path taken (PATH_MAX less its terminator). */
#define JOURNAL_PATH_MAX 4095

void
evfn__rt_options_defaults(evfn_rt_options *o)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	*o = (evfn_rt_options){
		.min_workers = 1,
		.max_workers = (int)EVFN__MAX(2, EVFN__MIN(cores, 1024)),
		.idle_timeout_ns = 10 * EVFN__NS_PER_SEC,
		.max_hops = 16,
		.dead_letter_capacity = 10000,
	};
}

void
evfn__fn_options_defaults(evfn_fn_options *o)
{
	*o = (evfn_fn_options){
		.timeout_ns = 3 * EVFN__NS_PER_SEC,
		.attempts = 3,
		.backoff = {.kind = EVFN_BACKOFF_EXPONENTIAL,
		            .jitter = EVFN_JITTER_FULL,
		            .base_ns = 100 * EVFN__NS_PER_MS,
		            .cap_ns = 30 * EVFN__NS_PER_SEC,
		            .multiplier = 2.0},
		.max_age_ns = 6 * 3600 * EVFN__NS_PER_SEC,
		.queue_capacity = 65536,
		.executor = EVFN_EXECUTOR_POOL,
		.max_stuck = 4,
		.batch_max = 1,
		.rate_burst = 1,
	};
}

int
evfn_rt_options_new(evfn_rt_options **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = evfn__malloc(sizeof(**out));
	if (!*out)
		return EVFN_ENOMEM;
	evfn__rt_options_defaults(*out);
	return 0;
}

void
evfn_rt_options_free(evfn_rt_options *o)
{
	if (!o)
		return;
	evfn__free(o->source);
	evfn__free(o->journal_path);
	evfn__free(o);
}

int
evfn_rt_options_set_workers(evfn_rt_options *o, int min, int max)
{
	if (!o)
		return EVFN_EINVAL;
	if (min < 0 || max < 1 || max > 1024 || min > max)
		return EVFN_ERANGE;
	o->min_workers = min;
	o->max_workers = max;
	return 0;
}

/* Milliseconds to nanoseconds for a duration setter: min_ms up to
 * EVFN_DURATION_MAX_MS, which keeps whatever is computed from the value
 * (a clock reading plus it, a sum of a few) far from overflow. */
static int
ms_option(int64_t *slot, int64_t ms, int64_t min_ms)
{
	if (ms < min_ms || ms > EVFN_DURATION_MAX_MS)
		return EVFN_ERANGE;
	*slot = ms * EVFN__NS_PER_MS;
	return 0;
}

int
evfn_rt_options_set_idle_timeout_ms(evfn_rt_options *o, int64_t ms)
{
	return o ? ms_option(&o->idle_timeout_ns, ms, 1) : EVFN_EINVAL;
}

int
evfn_rt_options_set_source(evfn_rt_options *o, const char *source)
{
	if (!o)
		return EVFN_EINVAL;
	int rc = evfn__check_name(source);
	if (rc < 0)
		return rc;
	char *copy = evfn__strdup(source);
	if (!copy)
		return EVFN_ENOMEM;
	evfn__free(o->source);
	o->source = copy;
	return 0;
}

int
evfn_rt_options_set_log(evfn_rt_options *o, evfn_log_cb cb, void *arg)
{
	if (!o)
		return EVFN_EINVAL;
	o->log_cb = cb;
	o->log_arg = arg;
	return 0;
}

int
evfn_rt_options_set_max_hops(evfn_rt_options *o, int hops)
{
	if (!o)
		return EVFN_EINVAL;
	if (hops < 1 || hops > 1000)
		return EVFN_ERANGE;
	o->max_hops = (unsigned)hops;
	return 0;
}

int
evfn_rt_options_set_dead_letter_capacity(evfn_rt_options *o, int64_t n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 0)
		return EVFN_ERANGE;
	o->dead_letter_capacity = (size_t)n;
	return 0;
}

int
evfn_rt_options_set_event_log(evfn_rt_options *o, evfn_record_cb cb,
                              void *arg)
{
	if (!o)
		return EVFN_EINVAL;
	o->record_cb = cb;
	o->record_arg = arg;
	return 0;
}

int
evfn_rt_options_set_metrics(evfn_rt_options *o, bool on)
{
	if (!o)
		return EVFN_EINVAL;
	o->no_metrics = !on;
	return 0;
}

int
evfn_rt_options_set_journal(evfn_rt_options *o, const char *path,
                            evfn_journal_mode mode)
{
	if (!o || (path && !*path) ||
	    (mode != EVFN_JOURNAL_DURABLE && mode != EVFN_JOURNAL_FAST))
		return EVFN_EINVAL;
#if !EVFN_HAVE_JOURNAL
	if (path)
		return EVFN_EINVAL; /* built without SQLite */
#endif
	if (path && strlen(path) > JOURNAL_PATH_MAX)
		return EVFN_ENAMETOOLONG;
	char *copy = NULL;
	if (path && !(copy = evfn__strdup(path)))
		return EVFN_ENOMEM;
	evfn__free(o->journal_path);
	o->journal_path = copy;
	o->journal_mode = mode;
	return 0;
}

int
evfn_rt_options_set_journal_keep_handed_back(evfn_rt_options *o, bool keep)
{
	if (!o)
		return EVFN_EINVAL;
	o->journal_discard_handed_back = !keep;
	return 0;
}

int
evfn_rt_options_set_event_base(evfn_rt_options *o, struct event_base *base)
{
	if (!o || !base)
		return EVFN_EINVAL;
	o->base = base;
	return 0;
}

int
evfn_fn_options_new(evfn_fn_options **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = evfn__malloc(sizeof(**out));
	if (!*out)
		return EVFN_ENOMEM;
	evfn__fn_options_defaults(*out);
	return 0;
}

void
evfn_fn_options_free(evfn_fn_options *o)
{
	evfn__free(o);
}

int
evfn_fn_options_set_timeout_ms(evfn_fn_options *o, int64_t ms)
{
	return o ? ms_option(&o->timeout_ns, ms, 1) : EVFN_EINVAL;
}

int
evfn_fn_options_set_attempts(evfn_fn_options *o, int n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 1 || n > 1000)
		return EVFN_ERANGE;
	o->attempts = n;
	return 0;
}

int
evfn_fn_options_set_backoff(evfn_fn_options *o, evfn_backoff kind,
                            int64_t base_ms, double multiplier, int64_t cap_ms,
                            evfn_jitter jitter)
{
	if (!o || (unsigned)kind > EVFN_BACKOFF_EXPONENTIAL ||
	    (unsigned)jitter > EVFN_JITTER_DECORRELATED)
		return EVFN_EINVAL;
	evfn__backoff_policy p = {.kind = kind, .jitter = jitter,
	                          .multiplier = multiplier};
	if (!(multiplier >= 1.0 && multiplier <= 1000.0) || cap_ms < base_ms ||
	    ms_option(&p.base_ns, base_ms, 0) < 0 ||
	    ms_option(&p.cap_ns, cap_ms, 0) < 0)
		return EVFN_ERANGE;
	o->backoff = p;
	return 0;
}

int
evfn_fn_options_set_max_age_ms(evfn_fn_options *o, int64_t ms)
{
	return o ? ms_option(&o->max_age_ns, ms, 1) : EVFN_EINVAL;
}

int
evfn_fn_options_set_concurrency(evfn_fn_options *o, int n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 1)
		return EVFN_ERANGE;
	o->concurrency = n;
	return 0;
}

int
evfn_fn_options_set_queue_capacity(evfn_fn_options *o, int64_t n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 1 || n > INT32_MAX)
		return EVFN_ERANGE;
	o->queue_capacity = n;
	return 0;
}

int
evfn_fn_options_set_executor(evfn_fn_options *o, evfn_executor executor)
{
	if (!o || (executor != EVFN_EXECUTOR_POOL &&
	           executor != EVFN_EXECUTOR_LOOP))
		return EVFN_EINVAL;
	o->executor = executor;
	return 0;
}

int
evfn_fn_options_set_worker_hooks(evfn_fn_options *o, evfn_worker_init_cb init,
                                 evfn_worker_fini_cb fini)
{
	if (!o)
		return EVFN_EINVAL;
	o->init = init;
	o->fini = fini;
	return 0;
}

int
evfn_fn_options_set_userdata_free(evfn_fn_options *o, evfn_userdata_free_cb cb)
{
	if (!o)
		return EVFN_EINVAL;
	o->userdata_free = cb;
	return 0;
}

int
evfn_fn_options_set_cancel_hook(evfn_fn_options *o, evfn_cancel_cb cb)
{
	if (!o)
		return EVFN_EINVAL;
	o->cancel_hook = cb;
	return 0;
}

int
evfn_fn_options_set_max_stuck(evfn_fn_options *o, int n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 1)
		return EVFN_ERANGE;
	o->max_stuck = n;
	return 0;
}

/* Copies an optional function name into a fixed slot ("" for NULL). */
static int
set_name_slot(char *slot, const char *name)
{
	if (!name) {
		slot[0] = '\0';
		return 0;
	}
	int rc = evfn__check_name(name);
	if (rc == 0)
		memcpy(slot, name, strlen(name) + 1);
	return rc;
}

int
evfn_fn_options_set_destinations(evfn_fn_options *o, const char *on_success,
                                 const char *on_failure)
{
	if (!o)
		return EVFN_EINVAL;
	/* Destinations are function names. */
	int rc = evfn__check_fn_name(on_success ? on_success : "x");
	if (rc == 0)
		rc = evfn__check_fn_name(on_failure ? on_failure : "x");
	if (rc < 0)
		return rc;
	set_name_slot(o->on_success, on_success);
	set_name_slot(o->on_failure, on_failure);
	return 0;
}

int
evfn_fn_options_set_batch(evfn_fn_options *o, int max_items, int64_t window_ms)
{
	if (!o)
		return EVFN_EINVAL;
	if (max_items < 1 || max_items > 10000 || window_ms < 0 ||
	    window_ms > 3600000)
		return EVFN_ERANGE;
	o->batch_max = max_items;
	o->batch_window_ns = window_ms * EVFN__NS_PER_MS;
	return 0;
}

int
evfn_fn_options_set_rate_limit(evfn_fn_options *o, double per_second,
                               int burst)
{
	if (!o)
		return EVFN_EINVAL;
	/* Written so that NaN fails too. The time between two tokens, and
	 * the burst's worth of them, are durations like any other. */
	if (!(per_second >= 0 && per_second <= 1e9) || burst < 1 ||
	    burst > 1000000 ||
	    (per_second > 0 &&
	     burst * (1e3 / per_second) > (double)EVFN_DURATION_MAX_MS))
		return EVFN_ERANGE;
	o->rate_per_sec = per_second;
	o->rate_burst = burst;
	return 0;
}

int
evfn_fn_options_set_circuit_breaker(evfn_fn_options *o,
                                    int consecutive_failures,
                                    double failure_rate, int min_calls,
                                    int64_t window_ms, int64_t cooldown_ms,
                                    evfn_circuit_policy policy)
{
	if (!o || (policy != EVFN_CIRCUIT_QUEUE &&
	           policy != EVFN_CIRCUIT_REFUSE))
		return EVFN_EINVAL;
	if (consecutive_failures < 0 || consecutive_failures > 1000000 ||
	    !(failure_rate >= 0 && failure_rate <= 1) || min_calls < 1 ||
	    min_calls > 1000000 || window_ms < 1 || window_ms > 86400000 ||
	    cooldown_ms < 1 || cooldown_ms > 86400000)
		return EVFN_ERANGE;
	if (consecutive_failures == 0 && failure_rate == 0)
		return EVFN_EINVAL;
	o->breaker_consecutive = consecutive_failures;
	o->breaker_rate = failure_rate;
	o->breaker_min_calls = min_calls;
	o->breaker_window_ns = window_ms * EVFN__NS_PER_MS;
	o->breaker_cooldown_ns = cooldown_ms * EVFN__NS_PER_MS;
	o->breaker_policy = policy;
	return 0;
}

int
evfn_fn_options_set_idempotency(evfn_fn_options *o, int64_t window_ms,
                                evfn_idempotency_key_cb key_cb)
{
	if (!o)
		return EVFN_EINVAL;
	int rc = ms_option(&o->idem_window_ns, window_ms, 0);
	if (rc == 0)
		o->idem_key = key_cb;
	return rc;
}
