/* SPDX-License-Identifier: MIT */
/*
 * Registration and options: every invalid name, duplicate, unknown target
 * and out-of-range option gets its own error code, and nothing half-made
 * is left behind.
 */
#include <stdatomic.h>
#include <string.h>

#include "harness.h"

static int
noop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

static void
test_registry_names_are_validated(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	evfn_fn *fn = (evfn_fn *)&fn;
	ASSERT_RC(evfn_register(rt, NULL, noop, NULL, NULL, &fn), EVFN_EINVAL);
	assert_null(fn);
	ASSERT_RC(evfn_register(rt, "", noop, NULL, NULL, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_register(rt, "f", NULL, NULL, NULL, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_register(NULL, "f", noop, NULL, NULL, NULL),
	          EVFN_EINVAL);
	char name[EVFN_NAME_MAX + 2];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ASSERT_RC(evfn_register(rt, name, noop, NULL, NULL, NULL),
	          EVFN_ENAMETOOLONG);
	name[EVFN_NAME_MAX] = '\0';
	ASSERT_OK(evfn_register(rt, name, noop, NULL, NULL, &fn));
	assert_string_equal(evfn_fn_name(fn), name);
	ASSERT_RC(evfn_register(rt, name, noop, NULL, NULL, NULL), EVFN_EEXIST);
	assert_null(evfn_fn_name(NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

/* A function name must be UTF-8: it is a Prometheus label value and a
 * JSON string. Any well-formed name is taken, hostile characters too. */
static void
test_registry_names_must_be_utf8(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	static const char *const bad[] = {
		"bad\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"trunc\xe2\x82", "\x80lead",
	};
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		evfn_fn *fn = (evfn_fn *)&fn;
		ASSERT_RC(evfn_register(rt, bad[i], noop, NULL, NULL, &fn),
		          EVFN_EILSEQ);
		assert_null(fn);
		ASSERT_RC(evfn_fn_options_set_destinations(fo, bad[i], NULL),
		          EVFN_EILSEQ);
		ASSERT_RC(evfn_fn_options_set_destinations(fo, NULL, bad[i]),
		          EVFN_EILSEQ);
	}
	evfn_fn_options_free(fo);
	static const char *const odd[] = {
		"caf\xc3\xa9", "\xf0\x9f\x9a\x80", "quote\"d", "back\\slash",
		"new\nline", "tab\tand\rcr", "ctl\x01", "} 1\nfake_metric 2",
	};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		ASSERT_OK(evfn_register(rt, odd[i], noop, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

static void
test_registry_subscribe_errors_name_the_cause(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "f", noop, NULL, NULL, NULL));
	ASSERT_RC(evfn_subscribe(rt, "t", "g"), EVFN_ENOFN);
	ASSERT_RC(evfn_subscribe(rt, "a..b", "f"), EVFN_EPATTERN);
	ASSERT_RC(evfn_subscribe(rt, "a*", "f"), EVFN_EPATTERN);
	ASSERT_RC(evfn_subscribe(rt, "", "f"), EVFN_EINVAL);
	ASSERT_RC(evfn_subscribe(rt, "t", NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_subscribe(NULL, "t", "f"), EVFN_EINVAL);
	ASSERT_OK(evfn_subscribe(rt, "t.#", "f"));
	ASSERT_OK(evfn_subscribe(rt, "t.#", "f"));
	ASSERT_OK(evfn_rt_free(rt));
}

static void
test_registry_runtime_options_out_of_range(void **state)
{
	evfn_rt_options *o = (evfn_rt_options *)&o;
	ASSERT_RC(evfn_rt_options_new(NULL), EVFN_EINVAL);
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_RC(evfn_rt_options_set_workers(o, 4, 2), EVFN_ERANGE);
	ASSERT_RC(evfn_rt_options_set_workers(o, -1, 2), EVFN_ERANGE);
	ASSERT_RC(evfn_rt_options_set_workers(o, 0, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_rt_options_set_workers(o, 0, 1025), EVFN_ERANGE);
	ASSERT_OK(evfn_rt_options_set_workers(o, 0, 1));
	ASSERT_RC(evfn_rt_options_set_idle_timeout_ms(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_rt_options_set_source(o, ""), EVFN_EINVAL);
	ASSERT_RC(evfn_rt_options_set_workers(NULL, 1, 1), EVFN_EINVAL);
	ASSERT_RC(evfn_rt_options_set_log(NULL, NULL, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_rt_new(NULL, o), EVFN_EINVAL);
	evfn_rt_options_free(o);
	evfn_rt_options_free(NULL);
}

static void
test_registry_function_options_out_of_range(void **state)
{
	evfn_fn_options *o;
	ASSERT_OK(evfn_fn_options_new(&o));
	ASSERT_RC(evfn_fn_options_set_timeout_ms(o, -5), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_timeout_ms(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_attempts(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_attempts(o, 1001), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_concurrency(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_queue_capacity(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_max_age_ms(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_executor(o, (evfn_executor)7),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_fn_options_set_backoff(o, EVFN_BACKOFF_EXPONENTIAL, 100,
	                                      0.5, 1000, EVFN_JITTER_FULL),
	          EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_backoff(o, EVFN_BACKOFF_EXPONENTIAL, 100,
	                                      2.0, 10, EVFN_JITTER_FULL),
	          EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_backoff(o, (evfn_backoff)9, 1, 2.0, 10,
	                                      EVFN_JITTER_FULL),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_fn_options_set_backoff(o, EVFN_BACKOFF_FIXED, 1, 2.0,
	                                      10, (evfn_jitter)9),
	          EVFN_EINVAL);
	ASSERT_OK(evfn_fn_options_set_timeout_ms(o, 1));
	ASSERT_OK(evfn_fn_options_set_attempts(o, 1));
	ASSERT_RC(evfn_fn_options_set_timeout_ms(NULL, 1), EVFN_EINVAL);
	ASSERT_RC(evfn_fn_options_set_worker_hooks(NULL, NULL, NULL),
	          EVFN_EINVAL);
	evfn_fn_options_free(o);
	evfn_fn_options_free(NULL);
}

/* ---- durations: every setter, the same bounds ------------------------- */

static int
set_timeout(void *o, int64_t ms)
{
	return evfn_fn_options_set_timeout_ms(o, ms);
}

static int
set_max_age(void *o, int64_t ms)
{
	return evfn_fn_options_set_max_age_ms(o, ms);
}

static int
set_idempotency(void *o, int64_t ms)
{
	return evfn_fn_options_set_idempotency(o, ms, NULL);
}

static int
set_backoff_base(void *o, int64_t ms)
{
	return evfn_fn_options_set_backoff(o, EVFN_BACKOFF_FIXED, ms, 1.0,
	                                   EVFN_DURATION_MAX_MS,
	                                   EVFN_JITTER_NONE);
}

static int
set_backoff_cap(void *o, int64_t ms)
{
	return evfn_fn_options_set_backoff(o, EVFN_BACKOFF_EXPONENTIAL, 0, 2.0,
	                                   ms, EVFN_JITTER_FULL);
}

static int
set_idle_timeout(void *o, int64_t ms)
{
	return evfn_rt_options_set_idle_timeout_ms(o, ms);
}

static int
set_delay(void *o, int64_t ms)
{
	return evfn_event_set_delay_ms(o, ms);
}

/* Each duration setter takes min..EVFN_DURATION_MAX_MS and refuses the
 * rest with EVFN_ERANGE, INT64_MAX / 1000000 ms (accepted once: its
 * deadline or expiry wrapped at run time) included. */
static void
test_registry_every_duration_is_bounded(void **state)
{
	evfn_fn_options *fo;
	evfn_rt_options *ro;
	evfn_event *ev;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_rt_options_new(&ro));
	ASSERT_OK(evfn_event_new(&ev, "t", NULL, 0));
	const struct {
		const char *name;
		int (*set)(void *o, int64_t ms);
		void *o;
		int64_t min;
	} setters[] = {
		{"timeout", set_timeout, fo, 1},
		{"max age", set_max_age, fo, 1},
		{"idempotency window", set_idempotency, fo, 0},
		{"backoff base", set_backoff_base, fo, 0},
		{"backoff cap", set_backoff_cap, fo, 0},
		{"idle timeout", set_idle_timeout, ro, 1},
		{"delay", set_delay, ev, 0},
	};
	const int64_t max = EVFN_DURATION_MAX_MS;
	const int64_t values[] = {INT64_MIN, -1, 0, 1, 2, max - 1, max,
	                          max + 1, INT64_MAX / 1000000,
	                          INT64_MAX / 1000000 + 1, INT64_MAX};
	for (size_t i = 0; i < sizeof(setters) / sizeof(setters[0]); i++)
		for (size_t j = 0; j < sizeof(values) / sizeof(values[0]); j++) {
			int64_t v = values[j];
			int want = v >= setters[i].min && v <= max
			                   ? 0
			                   : EVFN_ERANGE;
			int rc = setters[i].set(setters[i].o, v);
			if (rc != want)
				fail_msg("%s %lld ms: %s, expected %s",
				         setters[i].name, (long long)v,
				         evfn_err_name(rc), evfn_err_name(want));
		}
	/* A token every 10 years is the slowest rate; a burst of them must
	 * also span at most that. */
	ASSERT_RC(evfn_fn_options_set_rate_limit(fo, 1e-300, 1), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_rate_limit(fo, 1e-9, 1), EVFN_ERANGE);
	ASSERT_OK(evfn_fn_options_set_rate_limit(fo, 1e-8, 1));
	ASSERT_RC(evfn_fn_options_set_rate_limit(fo, 1e-3, 1000000),
	          EVFN_ERANGE);
	ASSERT_OK(evfn_fn_options_set_rate_limit(fo, 1.0, 1000000));
	ASSERT_OK(evfn_fn_options_set_rate_limit(fo, 0, 1));
	evfn_event_unref(ev);
	evfn_rt_options_free(ro);
	evfn_fn_options_free(fo);
}

static atomic_int slow_runs;

static int
slow_ok(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ev;
	(void)userdata;
	/* The first attempt of each event asks for a retry. */
	atomic_fetch_add(&slow_runs, 1);
	test_sleep_ms(2);
	return evfn_ctx_attempt(ctx) == 1 ? EVFN_RETRY : EVFN_OK;
}

/* At the longest durations a function behaves as with long ones: an
 * attempt does not time out at once, a retry does not expire at once, a
 * duplicate within the window is answered from the store, and an idle
 * worker waits without overflowing its wake-up time. */
static void
test_registry_longest_durations_hold_at_run_time(void **state)
{
	atomic_store(&slow_runs, 0);
	evfn_rt_options *ro;
	ASSERT_OK(evfn_rt_options_new(&ro));
	ASSERT_OK(evfn_rt_options_set_workers(ro, 0, 1));
	ASSERT_OK(evfn_rt_options_set_idle_timeout_ms(ro,
	                                              EVFN_DURATION_MAX_MS));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, ro));
	evfn_rt_options_free(ro);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_timeout_ms(fo, EVFN_DURATION_MAX_MS));
	ASSERT_OK(evfn_fn_options_set_max_age_ms(fo, EVFN_DURATION_MAX_MS));
	ASSERT_OK(evfn_fn_options_set_idempotency(fo, EVFN_DURATION_MAX_MS,
	                                          NULL));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_EXPONENTIAL, 1,
	                                      2.0, EVFN_DURATION_MAX_MS,
	                                      EVFN_JITTER_NONE));
	ASSERT_OK(evfn_register(rt, "long", slow_ok, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	/* Each runs twice: a retry, then success. */
	ASSERT_OK(evfn_invoke(rt, "long", NULL, 0, NULL, NULL));
	ASSERT_OK(evfn_invoke(rt, "long", NULL, 0, NULL, NULL));
	ASSERT_EQ(atomic_load(&slow_runs), 4);
	/* The second event with the same id is answered from the store. */
	for (int i = 0; i < 2; i++) {
		evfn_event *ev;
		ASSERT_OK(evfn_event_new(&ev, "long", NULL, 0));
		ASSERT_OK(evfn_event_set_id(ev, "same"));
		ASSERT_OK(evfn_publish_to(rt, "long", ev, NULL));
		evfn_event_unref(ev);
		WAIT_FOR(stat_of(rt, "long", EVFN_STAT_SUCCEEDED) ==
		                 (uint64_t)3 + i,
		         10000);
	}
	ASSERT_EQ(atomic_load(&slow_runs), 6);
	ASSERT_EQ(stat_of(rt, "long", EVFN_STAT_TIMEOUTS), 0);
	ASSERT_EQ(stat_of(rt, "long", EVFN_STAT_EXPIRED), 0);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

static void
test_registry_stats_errors(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	evfn_stats *s = (evfn_stats *)&s;
	ASSERT_RC(evfn_stats_take(rt, "none", &s), EVFN_ENOFN);
	assert_null(s);
	ASSERT_RC(evfn_stats_take(NULL, NULL, &s), EVFN_EINVAL);
	ASSERT_OK(evfn_stats_take(rt, NULL, &s));
	ASSERT_EQ(evfn_stats_value(s, EVFN_STAT_ACCEPTED), 0);
	ASSERT_EQ(evfn_stats_value(s, EVFN_STAT_COUNT), 0);
	ASSERT_EQ(evfn_stats_value(NULL, EVFN_STAT_ACCEPTED), 0);
	evfn_stats_free(s);
	evfn_stats_free(NULL);
	assert_string_equal(evfn_stat_name(EVFN_STAT_DEAD_LETTERED),
	                    "dead_lettered");
	assert_null(evfn_stat_name(EVFN_STAT_COUNT));
	for (int i = 0; i < EVFN_STAT_COUNT; i++)
		assert_non_null(evfn_stat_name((evfn_stat)i));
	ASSERT_OK(evfn_rt_free(rt));
	ASSERT_OK(evfn_rt_free(NULL));
	ASSERT_RC(evfn_rt_start(NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_rt_drain(NULL, 0, NULL, NULL), EVFN_EINVAL);
}

static void
test_registry_drain_argument_errors(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	ASSERT_RC(evfn_rt_drain(rt, -1, NULL, NULL), EVFN_EINVAL);
	/* Draining a runtime that never started is allowed. */
	ASSERT_OK(evfn_rt_drain(rt, 0, NULL, NULL));
	ASSERT_RC(evfn_rt_drain(rt, 0, NULL, NULL), EVFN_EALREADY);
	ASSERT_OK(evfn_rt_free(rt));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_registry_names_are_validated),
		TEST(test_registry_names_must_be_utf8),
		TEST(test_registry_subscribe_errors_name_the_cause),
		TEST(test_registry_runtime_options_out_of_range),
		TEST(test_registry_function_options_out_of_range),
		TEST(test_registry_every_duration_is_bounded),
		TEST(test_registry_longest_durations_hold_at_run_time),
		TEST(test_registry_stats_errors),
		TEST(test_registry_drain_argument_errors),
	};
	return evfn_test_main("registry", tests);
}
