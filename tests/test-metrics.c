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
#include "metrics-internal.h"

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

/* The bucket of ns as the histogram's definition reads: below 2^10 ns
 * bucket 0; then 8 per power of two; from 2^40 ns the last. */
static unsigned
bucket_by_definition(int64_t ns)
{
	if (ns < 1024)
		return 0;
	unsigned msb = 0;
	while (msb < 63 && (ns >> (msb + 1)) != 0)
		msb++;
	if (msb >= EVFN__HIST_MAX_EXP)
		return EVFN__HIST_BUCKETS - 1;
	unsigned sub = (unsigned)(ns >> (msb - 3)) & 7u;
	return 1 + (msb - EVFN__HIST_MIN_EXP) * 8 + sub;
}

static void
test_metrics_bucket_index_agrees_with_the_definition(void **state)
{
	/* Every value up to 8 us, then each bucket's bounds and their
	 * neighbours, each power of two and its neighbours, up to the
	 * largest value. */
	for (int64_t v = 0; v <= 8192; v++)
		if (evfn__hist_index(v) != bucket_by_definition(v))
			fail_msg("value %lld: bucket %u, defined %u",
			         (long long)v, evfn__hist_index(v),
			         bucket_by_definition(v));
	for (unsigned i = 0; i < EVFN__HIST_BUCKETS - 1; i++) {
		int64_t upper = evfn__hist_upper(i);
		ASSERT_EQ(evfn__hist_index(upper), i);
		ASSERT_EQ(evfn__hist_index(upper + 1), i + 1);
	}
	for (unsigned b = 1; b < 63; b++)
		for (int64_t d = -1; d <= 1; d++) {
			int64_t v = (INT64_C(1) << b) + d;
			if (evfn__hist_index(v) != bucket_by_definition(v))
				fail_msg("value %lld: bucket %u, defined %u",
				         (long long)v, evfn__hist_index(v),
				         bucket_by_definition(v));
		}
	ASSERT_EQ(evfn__hist_index(INT64_MAX), EVFN__HIST_BUCKETS - 1);
	ASSERT_EQ(evfn__hist_index(INT64_MAX - 1), EVFN__HIST_BUCKETS - 1);
}

static void
test_metrics_billing_rounds_up_to_whole_ms(void **state)
{
	/* At least 1 ms a call, each started ms counted whole. */
	ASSERT_EQ(evfn__billed_ms(-5), 1);
	ASSERT_EQ(evfn__billed_ms(0), 1);
	ASSERT_EQ(evfn__billed_ms(1), 1);
	ASSERT_EQ(evfn__billed_ms(999999), 1);
	ASSERT_EQ(evfn__billed_ms(1000000), 1);
	ASSERT_EQ(evfn__billed_ms(1000001), 2);
	ASSERT_EQ(evfn__billed_ms(2000000), 2);
	ASSERT_EQ(evfn__billed_ms(2000001), 3);
	ASSERT_EQ(evfn__billed_ms(INT64_C(3600) * 1000000000), 3600000);
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
	evfn_rt *rt = test_runtime_new(2, 2, NULL);
	ASSERT_OK(evfn_register(rt, "timed", timed, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
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
	assert_true(evfn_stats_value(s, EVFN_STAT_BILLED_MS) >=
	            30 * 2 + 10 * 20);
	assert_true(evfn_stats_sum_ns(s, EVFN_HIST_RUN) >=
	            (30 * 2 + 10 * 20) * 1000000ull);
	/* The cost view: 40 requests and the billed ms at 1 GB. */
	double billed_s =
		(double)evfn_stats_value(s, EVFN_STAT_BILLED_MS) / 1e3;
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
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

static int
noop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

/* Whether a snapshot of fn adds up: every accepted event is in exactly
 * one term, whatever the workers are doing when it is taken. */
static void
assert_accounted(evfn_rt *rt, const char *fn)
{
	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, fn, &s));
	static const evfn_stat terms[] = {
		EVFN_STAT_SUCCEEDED,   EVFN_STAT_DEAD_LETTERED,
		EVFN_STAT_EXPIRED,     EVFN_STAT_HANDED_BACK,
		EVFN_STAT_CANCELLED,   EVFN_STAT_IN_FLIGHT,
		EVFN_STAT_QUEUED,      EVFN_STAT_WAITING_RETRY,
		EVFN_STAT_DELAYED,
	};
	uint64_t sum = 0;
	for (size_t i = 0; i < sizeof(terms) / sizeof(terms[0]); i++)
		sum += evfn_stats_value(s, terms[i]);
	ASSERT_EQ(evfn_stats_value(s, EVFN_STAT_ACCEPTED), sum);
	assert_true(evfn_stats_value(s, EVFN_STAT_CONCURRENCY_PEAK) <= 2);
	evfn_stats_free(s);
}

/* Short calls behind a deep queue: a worker takes several attempts of
 * the function at once and measures and completes them together. Every
 * snapshot meanwhile adds up, and at the end each attempt was counted,
 * measured and billed once. */
static void
test_metrics_short_calls_taken_together_each_count_once(void **state)
{
	enum { WARM = 500, N = 20000, LOOK_EVERY = 250 };
	evfn_rt *rt = test_runtime_new(2, 2, NULL);
	ASSERT_OK(evfn_register(rt, "noop", noop, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	/* Until the pool has seen the calls are short (it assumes a new
	 * function is slow, and takes one attempt at a time for it). */
	for (int i = 0; i < WARM; i++) {
		ASSERT_OK(evfn_invoke_async(rt, "noop", &i, sizeof(i), NULL));
		WAIT_FOR(stat_of(rt, "noop", EVFN_STAT_SUCCEEDED) ==
		                 (uint64_t)i + 1,
		         10000);
	}
	for (int i = 0; i < N; i++) {
		ASSERT_OK(evfn_invoke_async(rt, "noop", &i, sizeof(i), NULL));
		if (i % LOOK_EVERY == 0)
			assert_accounted(rt, "noop");
	}
	while (stat_of(rt, "noop", EVFN_STAT_SUCCEEDED) < WARM + N)
		assert_accounted(rt, "noop");
	assert_accounted(rt, "noop");
	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, "noop", &s));
	uint64_t runs = 0, waits = 0;
	for (size_t i = 0; i < evfn_stats_buckets(); i++) {
		runs += evfn_stats_bucket(s, EVFN_HIST_RUN, i, NULL);
		waits += evfn_stats_bucket(s, EVFN_HIST_QUEUE_WAIT, i, NULL);
	}
	ASSERT_EQ(evfn_stats_value(s, EVFN_STAT_ATTEMPTS), WARM + N);
	ASSERT_EQ(evfn_stats_value(s, EVFN_STAT_IN_FLIGHT), 0);
	ASSERT_EQ(runs, WARM + N);
	ASSERT_EQ(waits, WARM + N);
	/* At least 1 ms each; more only for a call preempted past 1 ms. */
	assert_true(evfn_stats_value(s, EVFN_STAT_BILLED_MS) >= WARM + N);
	evfn_stats_free(s);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
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
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, "timed", timed, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	int ms = 1;
	for (int i = 0; i < 10; i++)
		ASSERT_OK(evfn_invoke_async(rt, "timed", &ms, sizeof(ms), NULL));
	WAIT_FOR(stat_of(rt, "timed", EVFN_STAT_SUCCEEDED) == 10, 20000);
	WAIT_FOR(evfn_rt_workers(rt) == 0, 10000);
	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, "timed", &s));
	uint64_t runs = 0;
	for (size_t i = 0; i < evfn_stats_buckets(); i++)
		runs += evfn_stats_bucket(s, EVFN_HIST_RUN, i, NULL);
	ASSERT_EQ(runs, 10);
	assert_true(evfn_stats_value(s, EVFN_STAT_BILLED_MS) >= 10);
	evfn_stats_free(s);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

static int
fails(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	evfn_ctx_set_error(ctx, "bad \"input\"\n");
	return EVFN_FAIL;
}

/* Fails the test unless Prometheus' own parser (promtool, from the
 * Debian prometheus package) takes the exposition text. */
static void
assert_promtool_accepts(const char *text, size_t len)
{
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
}

static void
test_metrics_prometheus_exposition_passes_promtool(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "timed", timed, NULL, NULL, NULL));
	/* A name that needs escaping in a label value. */
	ASSERT_OK(evfn_register(rt, "odd\"name", fails, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
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

	assert_promtool_accepts(text, len);
	evfn_free(text);
	ASSERT_RC(evfn_metrics_prometheus(NULL, &text, NULL), EVFN_EINVAL);
	assert_null(text);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

/* Pieces of hostile but well-formed names: what a label value must
 * escape (\\, ", newline), other control characters, the exposition's
 * own syntax, and multi-byte characters up to U+10FFFF. */
static const char *const name_pieces[] = {
	"a", "Z", "0", "_", "-", " ", "\"", "\\", "\n", "\r", "\t", "\x01",
	"\x1f", "\x7f", "{", "}", "=", ",", "#", "} 1\n", "\xc3\xa9",
	"\xe2\x82\xac", "\xef\xbf\xbe", "\xf0\x9d\x84\x9e", "\xf4\x8f\xbf\xbf",
};

/* A random well-formed name of up to EVFN_NAME_MAX bytes. */
static void
random_name(uint64_t *prng, char *out)
{
	size_t len = 0, want = 1 + (size_t)(*prng % EVFN_NAME_MAX);
	for (;;) {
		*prng = *prng * 6364136223846793005ULL + 1442695040888963407ULL;
		const char *piece = name_pieces[(*prng >> 33) %
		                                (sizeof(name_pieces) /
		                                 sizeof(name_pieces[0]))];
		size_t n = strlen(piece);
		if (len + n > want)
			break;
		memcpy(out + len, piece, n);
		len += n;
	}
	if (len == 0)
		out[len++] = 'x';
	out[len] = '\0';
}

/* The label value that starts at p (just past the opening quote),
 * unescaped as the text format defines; returns what follows its closing
 * quote, or NULL. */
static const char *
read_label_value(const char *p, char *out, size_t size)
{
	size_t n = 0;
	for (; *p && *p != '"'; p++) {
		char c = *p;
		if (c == '\\') {
			c = *++p;
			if (c == 'n')
				c = '\n';
			else if (c != '\\' && c != '"')
				return NULL;
		}
		if (n + 1 >= size)
			return NULL;
		out[n++] = c;
	}
	out[n] = '\0';
	return *p == '"' ? p + 1 : NULL;
}

/* Registers random hostile names (and is refused every malformed one),
 * runs each once, and checks that promtool parses the exposition and that
 * each function's series carries its exact name back. */
static void
test_metrics_hostile_names_keep_the_exposition_parsable(void **state)
{
	enum { NAMES = 40 };
	static char names[NAMES][EVFN_NAME_MAX + 1];
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	static const char *const malformed[] = {"bad\xff", "\xc0\xaf",
	                                        "\xed\xa0\x80", "cut\xe2\x82"};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		ASSERT_RC(evfn_register(rt, malformed[i], timed, NULL, NULL,
		                        NULL),
		          EVFN_EILSEQ);
	uint64_t prng = 17;
	int registered = 0;
	for (int i = 0; i < NAMES; i++) {
		random_name(&prng, names[i]);
		int rc = evfn_register(rt, names[i], timed, NULL, NULL, NULL);
		if (rc == EVFN_EEXIST) {
			names[i][0] = '\0'; /* drawn twice */
			continue;
		}
		ASSERT_OK(rc);
		registered++;
	}
	ASSERT_OK(evfn_rt_start(rt));
	int ms = 0;
	for (int i = 0; i < NAMES; i++)
		if (names[i][0])
			ASSERT_OK(evfn_invoke(rt, names[i], &ms, sizeof(ms),
			                      NULL, NULL));
	char *text;
	size_t len;
	ASSERT_OK(evfn_metrics_prometheus(rt, &text, &len));
	assert_promtool_accepts(text, len);

	static const char series[] = "\nevfn_succeeded_total{function=\"";
	int found = 0;
	for (const char *p = strstr(text, series); p;
	     p = strstr(p, series)) {
		char value[4 * EVFN_NAME_MAX];
		p = read_label_value(p + strlen(series), value, sizeof(value));
		assert_non_null(p);
		assert_true(strncmp(p, "} 1\n", 4) == 0);
		bool known = false;
		for (int i = 0; i < NAMES && !known; i++)
			known = names[i][0] && strcmp(value, names[i]) == 0;
		if (!known)
			fail_msg("label value \"%s\" is no function's name",
			         value);
		found++;
	}
	ASSERT_EQ(found, registered);
	evfn_free(text);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
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
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, "timed", timed, NULL, NULL, NULL));
	ASSERT_OK(evfn_register(rt, "fails", fails, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	int ms = 1;
	ASSERT_OK(evfn_invoke(rt, "timed", &ms, sizeof(ms), NULL, NULL));
	ASSERT_RC(evfn_invoke(rt, "fails", NULL, 0, NULL, NULL), EVFN_EFAILED);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
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
		TEST(test_metrics_bucket_index_agrees_with_the_definition),
		TEST(test_metrics_billing_rounds_up_to_whole_ms),
		TEST(test_metrics_quantiles_within_bucket_error),
		TEST(test_metrics_workload_histograms_agree_with_counters),
		TEST(test_metrics_short_calls_taken_together_each_count_once),
		TEST(test_metrics_survive_idle_workers_exiting),
		TEST(test_metrics_prometheus_exposition_passes_promtool),
		TEST(test_metrics_hostile_names_keep_the_exposition_parsable),
		TEST(test_metrics_json_log_lines_parse_with_fields),
	};
	return evfn_test_main("metrics", tests);
}
