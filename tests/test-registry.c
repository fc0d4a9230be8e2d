/* SPDX-License-Identifier: MIT */
/*
 * Registration and options: every invalid name, duplicate, unknown target
 * and out-of-range option gets its own error code, and nothing half-made
 * is left behind.
 */
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
	ASSERT_OK(evfn_runtime_new(&rt, NULL));
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
	ASSERT_OK(evfn_runtime_free(rt));
}

static void
test_registry_subscribe_errors_name_the_cause(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_runtime_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "f", noop, NULL, NULL, NULL));
	ASSERT_RC(evfn_subscribe(rt, "t", "g"), EVFN_ENOFN);
	ASSERT_RC(evfn_subscribe(rt, "a..b", "f"), EVFN_EPATTERN);
	ASSERT_RC(evfn_subscribe(rt, "a*", "f"), EVFN_EPATTERN);
	ASSERT_RC(evfn_subscribe(rt, "", "f"), EVFN_EINVAL);
	ASSERT_RC(evfn_subscribe(rt, "t", NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_subscribe(NULL, "t", "f"), EVFN_EINVAL);
	ASSERT_OK(evfn_subscribe(rt, "t.#", "f"));
	ASSERT_OK(evfn_subscribe(rt, "t.#", "f"));
	ASSERT_OK(evfn_runtime_free(rt));
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
	ASSERT_RC(evfn_runtime_new(NULL, o), EVFN_EINVAL);
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

static void
test_registry_stats_errors(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_runtime_new(&rt, NULL));
	evfn_stats *s = (evfn_stats *)&s;
	ASSERT_RC(evfn_stats_take(rt, "none", &s), EVFN_ENOFN);
	assert_null(s);
	ASSERT_RC(evfn_stats_take(NULL, NULL, &s), EVFN_EINVAL);
	ASSERT_OK(evfn_stats_take(rt, NULL, &s));
	ASSERT_EQ(evfn_stats_get(s, EVFN_STAT_ACCEPTED), 0);
	ASSERT_EQ(evfn_stats_get(s, EVFN_STAT_COUNT), 0);
	ASSERT_EQ(evfn_stats_get(NULL, EVFN_STAT_ACCEPTED), 0);
	evfn_stats_free(s);
	evfn_stats_free(NULL);
	assert_string_equal(evfn_stat_name(EVFN_STAT_DEAD_LETTERED),
	                    "dead_lettered");
	assert_null(evfn_stat_name(EVFN_STAT_COUNT));
	for (int i = 0; i < EVFN_STAT_COUNT; i++)
		assert_non_null(evfn_stat_name((evfn_stat)i));
	ASSERT_OK(evfn_runtime_free(rt));
	ASSERT_OK(evfn_runtime_free(NULL));
	ASSERT_RC(evfn_runtime_start(NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_runtime_drain(NULL, 0, NULL, NULL), EVFN_EINVAL);
}

static void
test_registry_drain_argument_errors(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_runtime_new(&rt, NULL));
	ASSERT_RC(evfn_runtime_drain(rt, -1, NULL, NULL), EVFN_EINVAL);
	/* Draining a runtime that never started is allowed. */
	ASSERT_OK(evfn_runtime_drain(rt, 0, NULL, NULL));
	ASSERT_RC(evfn_runtime_drain(rt, 0, NULL, NULL), EVFN_EALREADY);
	ASSERT_OK(evfn_runtime_free(rt));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_registry_names_are_validated),
		TEST(test_registry_subscribe_errors_name_the_cause),
		TEST(test_registry_runtime_options_out_of_range),
		TEST(test_registry_function_options_out_of_range),
		TEST(test_registry_stats_errors),
		TEST(test_registry_drain_argument_errors),
	};
	return evfn_test_main("registry", tests);
}
