/* SPDX-License-Identifier: MIT */
/*
 * Metrics: log-linear histogram buckets and quantiles on known values,
 * and the per-function histograms and billed time of a known workload
 * agreeing with the counters.
 */
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "histogram-internal.h"
#include "runtime-internal.h"

static void
test_metrics_bucket_bounds_cover_every_value(void **state)
{
	/* Every value lands in a bucket whose bound is at least the value
	 * and at most 12.5% above it. */
	for (int64_t v = 1000; v < INT64_C(1) << 39; v = v * 9 / 8 + 7) {
		unsigned i = evfn__hist_index(v);
		int64_t upper = evfn__hist_upper(i);
		if (upper < v || (double)upper > (double)v * 1.126)
			fail_msg("value %lld in bucket %u bounded by %lld",
			         (long long)v, i, (long long)upper);
		if (i > 0 && evfn__hist_upper(i - 1) >= v)
			fail_msg("value %lld also fits bucket %u", (long long)v,
			         i - 1);
	}
	ASSERT_EQ(evfn__hist_index(0), 0);
	ASSERT_EQ(evfn__hist_index(INT64_MAX), EVFN__HIST_BUCKETS - 1);
	ASSERT_EQ(evfn_stats_buckets(), EVFN__HIST_BUCKETS);
}

static void
test_metrics_quantiles_within_bucket_error(void **state)
{
	static struct evfn__hist h;
	memset(&h, 0, sizeof(h));
	/* 1..1000 us: p50 = 500 us, p90 = 900 us, p99 = 990 us. */
	for (int64_t us = 1; us <= 1000; us++)
		evfn__hist_record(&h, us * 1000);
	struct evfn_stats s;
	memset(&s, 0, sizeof(s));
	evfn__hist_merge(s.hist[EVFN_HIST_RUN], &s.hist_sum_ns[EVFN_HIST_RUN],
	                 &h);
	const double q[] = {0.5, 0.9, 0.99, 0.999};
	const int64_t truth[] = {500000, 900000, 990000, 999000};
	for (int i = 0; i < 4; i++) {
		int64_t got = evfn_stats_quantile(&s, EVFN_HIST_RUN, q[i]);
		if (got < truth[i] || (double)got > truth[i] * 1.126)
			fail_msg("q%.3f: %lld, true %lld", q[i], (long long)got,
			         (long long)truth[i]);
	}
	ASSERT_EQ(evfn_stats_sum_ns(&s, EVFN_HIST_RUN), 500500000);
	ASSERT_EQ(evfn_stats_quantile(&s, EVFN_HIST_QUEUE_WAIT, 0.5), 0);
	ASSERT_EQ(evfn_stats_quantile(&s, EVFN_HIST_RUN, 1.5), 0);
	ASSERT_EQ(evfn_stats_quantile(NULL, EVFN_HIST_RUN, 0.5), 0);
	uint64_t total = 0;
	for (size_t i = 0; i < evfn_stats_buckets(); i++)
		total += evfn_stats_bucket(&s, EVFN_HIST_RUN, i, NULL);
	ASSERT_EQ(total, 1000);
}

static int
timed(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	/* Payload: how long to work, in ms; a spin, so run time is real. */
	const int *ms = evfn_event_data(ev, NULL);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t until = ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec +
	                *ms * INT64_C(1000000);
	do
		clock_gettime(CLOCK_MONOTONIC, &ts);
	while (ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec < until);
	return EVFN_OK;
}

static void
test_metrics_workload_histograms_agree_with_counters(void **state)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 2, 2));
	evfn_rt *rt;
	ASSERT_OK(evfn_runtime_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, "timed", timed, NULL, NULL, NULL));
	ASSERT_OK(evfn_runtime_start(rt));
	for (int i = 0; i < 40; i++) {
		int ms = i < 30 ? 2 : 20;
		ASSERT_OK(evfn_invoke_async(rt, "timed", &ms, sizeof(ms), NULL));
	}
	WAIT_FOR(stat_of(rt, "timed", EVFN_STAT_SUCCEEDED) == 40, 20000);
	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, "timed", &s));
	uint64_t runs = 0, waits = 0;
	for (size_t i = 0; i < evfn_stats_buckets(); i++) {
		runs += evfn_stats_bucket(s, EVFN_HIST_RUN, i, NULL);
		waits += evfn_stats_bucket(s, EVFN_HIST_QUEUE_WAIT, i, NULL);
	}
	ASSERT_EQ(runs, 40);
	ASSERT_EQ(waits, 40);
	int64_t p50 = evfn_stats_quantile(s, EVFN_HIST_RUN, 0.5);
	int64_t p99 = evfn_stats_quantile(s, EVFN_HIST_RUN, 0.99);
	assert_true(p50 >= 2000000 && p50 < 20000000);
	assert_true(p99 >= 20000000 && p99 < 200000000);
	/* Each attempt billed rounded up to a whole ms: 30 x >= 2 and
	 * 10 x >= 20. */
	assert_true(evfn_stats_get(s, EVFN_STAT_BILLED_MS) >= 30 * 2 + 10 * 20);
	assert_true(evfn_stats_sum_ns(s, EVFN_HIST_RUN) >=
	            (30 * 2 + 10 * 20) * 1000000ull);
	/* The cost view: 40 requests and the billed ms at 1 GB. */
	double billed_s = (double)evfn_stats_get(s, EVFN_STAT_BILLED_MS) / 1e3;
	double want = 40 / 1e6 * 0.20 + billed_s * 0.0000166667;
	double got = evfn_stats_serverless_cost(
		s, 1024, EVFN_LAMBDA_USD_PER_MILLION_REQUESTS,
		EVFN_LAMBDA_USD_PER_GB_SECOND);
	assert_true(got > want * 0.999999 && got < want * 1.000001);
	assert_true(evfn_stats_serverless_cost(s, 0, 0.2, 0.1) == 0);
	/* Queued behind 2 workers: someone waited at least a 2 ms run. */
	assert_true(evfn_stats_quantile(s, EVFN_HIST_QUEUE_WAIT, 1.0) >=
	            2000000);
	evfn_stats_free(s);
	ASSERT_OK(evfn_runtime_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_runtime_free(rt));
}

/* A worker's measurements stay counted after it exits. */
static void
test_metrics_survive_idle_workers_exiting(void **state)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 0, 2));
	ASSERT_OK(evfn_rt_options_set_idle_timeout_ms(o, 20));
	evfn_rt *rt;
	ASSERT_OK(evfn_runtime_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, "timed", timed, NULL, NULL, NULL));
	ASSERT_OK(evfn_runtime_start(rt));
	int ms = 1;
	for (int i = 0; i < 10; i++)
		ASSERT_OK(evfn_invoke_async(rt, "timed", &ms, sizeof(ms), NULL));
	WAIT_FOR(stat_of(rt, "timed", EVFN_STAT_SUCCEEDED) == 10, 20000);
	WAIT_FOR(evfn_runtime_workers(rt) == 0, 10000);
	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, "timed", &s));
	uint64_t runs = 0;
	for (size_t i = 0; i < evfn_stats_buckets(); i++)
		runs += evfn_stats_bucket(s, EVFN_HIST_RUN, i, NULL);
	ASSERT_EQ(runs, 10);
	assert_true(evfn_stats_get(s, EVFN_STAT_BILLED_MS) >= 10);
	evfn_stats_free(s);
	ASSERT_OK(evfn_runtime_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_runtime_free(rt));
}

static int
fails(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	evfn_ctx_set_error(ctx, "bad \"input\"\n");
	return EVFN_FAIL;
}

static void
test_metrics_prometheus_exposition_passes_promtool(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_runtime_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "timed", timed, NULL, NULL, NULL));
	/* A name that needs escaping in a label value. */
	ASSERT_OK(evfn_register(rt, "odd\"name", fails, NULL, NULL, NULL));
	ASSERT_OK(evfn_runtime_start(rt));
	int ms = 1;
	for (int i = 0; i < 5; i++)
		ASSERT_OK(evfn_invoke(rt, "timed", &ms, sizeof(ms), NULL, NULL));
	ASSERT_RC(evfn_invoke(rt, "odd\"name", NULL, 0, NULL, NULL),
	          EVFN_EFAILED);
	char *text;
	size_t len;
	ASSERT_OK(evfn_metrics_prometheus(rt, &text, &len));
	ASSERT_EQ(strlen(text), len);
	assert_non_null(strstr(text, "evfn_succeeded_total{function=\"timed\"} 5\n"));
	assert_non_null(strstr(text, "evfn_dead_lettered_total{function=\"odd\\\"name\"} 1\n"));
	assert_non_null(strstr(text, "evfn_run_seconds_count{function=\"timed\"} 5\n"));
	assert_non_null(strstr(text, "evfn_run_seconds_bucket{function=\"timed\",le=\"+Inf\"} 5\n"));
	assert_non_null(strstr(text, "evfn_dead_letters 1\n"));

	char path[] = "/tmp/evfn-metrics-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	ASSERT_EQ(write(fd, text, len), (long long)len);
	close(fd);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
	FILE *p = popen(cmd, "r");
	char out[4096] = "";
	size_t got = fread(out, 1, sizeof(out) - 1, p);
	out[got] = '\0';
	int status = pclose(p);
	unlink(path);
	if (status != 0)
		fail_msg("promtool check metrics: status %d\n%s", status, out);
	evfn_free(text);
	ASSERT_RC(evfn_metrics_prometheus(NULL, &text, NULL), EVFN_EINVAL);
	assert_null(text);
	ASSERT_OK(evfn_runtime_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_runtime_free(rt));
}

static void
test_metrics_json_log_lines_parse_with_fields(void **state)
{
	FILE *f = tmpfile();
	evfn_json_log *log;
	ASSERT_RC(evfn_json_log_new(&log, f, 0.0), EVFN_ERANGE);
	ASSERT_RC(evfn_json_log_new(&log, NULL, 1.0), EVFN_EINVAL);
	ASSERT_OK(evfn_json_log_new(&log, f, 1.0));
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_event_log(o, evfn_json_log_record, log));
	evfn_rt *rt;
	ASSERT_OK(evfn_runtime_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, "timed", timed, NULL, NULL, NULL));
	ASSERT_OK(evfn_register(rt, "fails", fails, NULL, NULL, NULL));
	ASSERT_OK(evfn_runtime_start(rt));
	int ms = 1;
	ASSERT_OK(evfn_invoke(rt, "timed", &ms, sizeof(ms), NULL, NULL));
	ASSERT_RC(evfn_invoke(rt, "fails", NULL, 0, NULL, NULL), EVFN_EFAILED);
	ASSERT_OK(evfn_runtime_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_runtime_free(rt));
	evfn_json_log_free(log);

	rewind(f);
	char line[1024];
	int n = 0, starts = 0, successes = 0, dead = 0;
	while (fgets(line, sizeof(line), f)) {
		json_error_t err;
		json_t *j = json_loads(line, 0, &err);
		if (!j)
			fail_msg("line %d is not JSON: %s", n + 1, err.text);
		const char *kind = json_string_value(json_object_get(j, "kind"));
		assert_non_null(kind);
		assert_non_null(json_string_value(json_object_get(j, "time")));
		assert_non_null(json_string_value(json_object_get(j, "event_id")));
		assert_true(json_integer_value(json_object_get(j, "attempt")) == 1);
		const char *fn = json_string_value(json_object_get(j, "function"));
		if (strcmp(kind, "start") == 0) {
			starts++;
		} else if (strcmp(kind, "success") == 0) {
			successes++;
			assert_string_equal(fn, "timed");
			assert_true(json_real_value(json_object_get(
			                    j, "duration_ms")) >= 1.0);
		} else if (strcmp(kind, "dead_letter") == 0) {
			dead++;
			assert_string_equal(fn, "fails");
			assert_string_equal(
				json_string_value(json_object_get(j, "reason")),
				"failed");
			assert_string_equal(
				json_string_value(json_object_get(j, "error")),
				"bad \"input\"\n");
		}
		json_decref(j);
		n++;
	}
	fclose(f);
	ASSERT_EQ(n, 4);
	ASSERT_EQ(starts, 2);
	ASSERT_EQ(successes, 1);
	ASSERT_EQ(dead, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_metrics_bucket_bounds_cover_every_value),
		TEST(test_metrics_quantiles_within_bucket_error),
		TEST(test_metrics_workload_histograms_agree_with_counters),
		TEST(test_metrics_survive_idle_workers_exiting),
		TEST(test_metrics_prometheus_exposition_passes_promtool),
		TEST(test_metrics_json_log_lines_parse_with_fields),
	};
	return evfn_test_main("metrics", tests);
}
