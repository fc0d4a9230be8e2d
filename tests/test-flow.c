/* SPDX-License-Identifier: MIT */
/*
 * Flow control: batches (size, window, per-item failures), ordering keys
 * under concurrent producers and retries, the rate limit, the circuit
 * breaker (opens, holds without spending attempts, probes, closes),
 * delayed events, pause and resume, cancellation, and the options'
 * bounds. Every case ends with the accounting invariant.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"

/* Options with quick, fixed retries. */
static evfn_fn_options *
options(int attempts)
{
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, attempts));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 1, 1.0, 1,
	                                      EVFN_JITTER_NONE));
	return fo;
}

static void
finish(evfn_rt *rt, const char *fn)
{
	assert_accounting(rt, fn);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	assert_accounting(rt, fn);
	WAIT_FOR(evfn_rt_free(rt) == 0, 10000);
}

static int
invoke_str(evfn_rt *rt, const char *fn, const char *s, uint64_t *seq)
{
	return evfn_invoke_async(rt, fn, s, strlen(s), seq);
}

/* Publishes a built event to fn with the given key and delay. */
static int
publish_with(evfn_rt *rt, const char *fn, const char *data, const char *key,
             int64_t delay_ms, uint64_t *seq)
{
	struct test_event_attrs a = {.key = key, .delay_ms = delay_ms};
	return test_publish_to(rt, fn, data, a, seq);
}

static bool
data_is(const evfn_event *ev, const char *s)
{
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	return len == strlen(s) && memcmp(d, s, len) == 0;
}

/* ---- batches ---------------------------------------------------------- */

#define MAX_CALLS 64
static pthread_mutex_t calls_lock = PTHREAD_MUTEX_INITIALIZER;
static int call_sizes[MAX_CALLS];
static int64_t call_ms[MAX_CALLS];
static atomic_int ncalls;

static void
reset_calls(void)
{
	atomic_store(&ncalls, 0);
	memset(call_sizes, 0, sizeof(call_sizes));
}

static void
note_call(evfn_ctx *ctx)
{
	pthread_mutex_lock(&calls_lock);
	int i = atomic_load(&ncalls);
	if (i < MAX_CALLS) {
		call_sizes[i] = (int)evfn_ctx_batch_size(ctx);
		call_ms[i] = test_now_ms();
	}
	atomic_store(&ncalls, i + 1);
	pthread_mutex_unlock(&calls_lock);
}

static int
batch_ok(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)u;
	note_call(ctx);
	/* Item 0 is the handler's own event. */
	if (evfn_ctx_batch_event(ctx, 0) != ev)
		return EVFN_FAIL;
	if (evfn_ctx_batch_event(ctx, evfn_ctx_batch_size(ctx)))
		return EVFN_FAIL;
	return EVFN_OK;
}

static void
test_batch_size_and_window(void **state)
{
	(void)state;
	reset_calls();
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	evfn_fn_options *fo = options(1);
	ASSERT_OK(evfn_fn_options_set_batch(fo, 4, 300));
	ASSERT_OK(evfn_register(rt, "b", batch_ok, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	/* Ten events wait before the start: two full batches go at once,
	 * the last two only when the oldest of them waited the window. */
	int64_t t0 = test_now_ms();
	for (int i = 0; i < 10; i++)
		ASSERT_OK(invoke_str(rt, "b", "x", NULL));
	ASSERT_OK(evfn_rt_start(rt));
	WAIT_FOR(stat_of(rt, "b", EVFN_STAT_SUCCEEDED) == 10, 5000);
	ASSERT_EQ(atomic_load(&ncalls), 3);
	ASSERT_EQ(call_sizes[0], 4);
	ASSERT_EQ(call_sizes[1], 4);
	ASSERT_EQ(call_sizes[2], 2);
	assert_true(call_ms[2] - t0 >= 300);
	ASSERT_EQ(stat_of(rt, "b", EVFN_STAT_BATCHES), 3);
	ASSERT_EQ(stat_of(rt, "b", EVFN_STAT_ATTEMPTS), 10);

	/* One event alone waits the whole window, no more than needed. */
	t0 = test_now_ms();
	ASSERT_OK(invoke_str(rt, "b", "y", NULL));
	WAIT_FOR(stat_of(rt, "b", EVFN_STAT_SUCCEEDED) == 11, 5000);
	ASSERT_EQ(call_sizes[3], 1);
	assert_true(call_ms[3] - t0 >= 300);
	assert_true(call_ms[3] - t0 < 3000);
	finish(rt, "b");
}

static atomic_int runs_good, runs_bad, runs_fail, whole_retry_calls;

/* Items "bad" report RETRY and "fail" report FAIL, the rest succeed. */
static int
batch_items(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ev;
	(void)u;
	note_call(ctx);
	evfn_ctx_set_error(ctx, "item failed");
	for (size_t i = 0; i < evfn_ctx_batch_size(ctx); i++) {
		const evfn_event *item = evfn_ctx_batch_event(ctx, i);
		if (data_is(item, "bad")) {
			atomic_fetch_add(&runs_bad, 1);
			ASSERT_OK(evfn_ctx_batch_item_failed(ctx, i, EVFN_RETRY));
		} else if (data_is(item, "fail")) {
			atomic_fetch_add(&runs_fail, 1);
			ASSERT_OK(evfn_ctx_batch_item_failed(ctx, i, EVFN_FAIL));
		} else {
			atomic_fetch_add(&runs_good, 1);
		}
	}
	ASSERT_RC(evfn_ctx_batch_item_failed(ctx, 99, EVFN_RETRY),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_ctx_batch_item_failed(ctx, 0, EVFN_OK), EVFN_EINVAL);
	return EVFN_OK;
}

static void
test_batch_item_failures(void **state)
{
	(void)state;
	reset_calls();
	atomic_store(&runs_good, 0);
	atomic_store(&runs_bad, 0);
	atomic_store(&runs_fail, 0);
	evfn_rt *rt = test_runtime_new(1, 2, NULL);
	evfn_fn_options *fo = options(3);
	ASSERT_OK(evfn_fn_options_set_batch(fo, 8, 0));
	ASSERT_OK(evfn_register(rt, "items", batch_items, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	const char *items[] = {"a", "bad", "b", "fail", "c", "d"};
	for (size_t i = 0; i < 6; i++)
		ASSERT_OK(invoke_str(rt, "items", items[i], NULL));
	ASSERT_OK(evfn_rt_start(rt));
	WAIT_FOR(stat_of(rt, "items", EVFN_STAT_SUCCEEDED) +
	                         stat_of(rt, "items", EVFN_STAT_DEAD_LETTERED) ==
	                 6,
	         5000);
	/* Each dead letter is in the store once its counter moved. */
	ASSERT_EQ(evfn_dead_letter_count(rt), 2);
	/* Only the failed items ran again, each on its own attempt count. */
	ASSERT_EQ(atomic_load(&runs_good), 4);
	ASSERT_EQ(atomic_load(&runs_bad), 3);
	ASSERT_EQ(atomic_load(&runs_fail), 1);
	ASSERT_EQ(stat_of(rt, "items", EVFN_STAT_SUCCEEDED), 4);
	ASSERT_EQ(stat_of(rt, "items", EVFN_STAT_DEAD_LETTERED), 2);
	ASSERT_EQ(stat_of(rt, "items", EVFN_STAT_ATTEMPTS), 6 + 2);
	evfn_dead_letter *dl[4];
	ASSERT_EQ(evfn_dead_letters(rt, dl, 4, 0), 2);
	for (int i = 0; i < 2; i++) {
		bool bad = data_is(evfn_dead_letter_event(dl[i]), "bad");
		ASSERT_EQ(evfn_dead_letter_attempts(dl[i]), bad ? 3 : 1);
		ASSERT_RC(evfn_dead_letter_code(dl[i]),
		          bad ? EVFN_EEXHAUSTED : EVFN_EFAILED);
		assert_string_equal(evfn_dead_letter_error(dl[i]),
		                    "item failed");
		evfn_dead_letter_unref(dl[i]);
	}
	finish(rt, "items");
}

/* A batch call of one item: the item's reported failure, not the call's
 * OK, is what its event comes to (a call alone may look like a plain
 * one). */
static void
test_batch_of_one_item_failure_ends_it(void **state)
{
	(void)state;
	reset_calls();
	atomic_store(&runs_fail, 0);
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	evfn_fn_options *fo = options(3);
	ASSERT_OK(evfn_fn_options_set_batch(fo, 8, 0));
	ASSERT_OK(evfn_register(rt, "one", batch_items, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_RC(evfn_invoke(rt, "one", "fail", 4, NULL, NULL), EVFN_EFAILED);
	ASSERT_EQ(atomic_load(&runs_fail), 1);
	ASSERT_EQ(stat_of(rt, "one", EVFN_STAT_SUCCEEDED), 0);
	ASSERT_EQ(stat_of(rt, "one", EVFN_STAT_DEAD_LETTERED), 1);
	ASSERT_EQ(stat_of(rt, "one", EVFN_STAT_ATTEMPTS_FAILED), 1);
	ASSERT_EQ(evfn_dead_letter_count(rt), 1);
	finish(rt, "one");
}

/* The whole call fails once: every item is retried. */
static int
batch_whole_retry(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ev;
	(void)u;
	if (evfn_ctx_attempt(ctx) == 1 &&
	    atomic_fetch_add(&whole_retry_calls, 1) == 0) {
		/* Also reports an item: the call's RETRY wins for all. */
		evfn_ctx_batch_item_failed(ctx, 0, EVFN_FAIL);
		return EVFN_RETRY;
	}
	return EVFN_OK;
}

static void
test_batch_whole_retry(void **state)
{
	(void)state;
	atomic_store(&whole_retry_calls, 0);
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	evfn_fn_options *fo = options(3);
	ASSERT_OK(evfn_fn_options_set_batch(fo, 5, 0));
	ASSERT_OK(evfn_register(rt, "w", batch_whole_retry, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	for (int i = 0; i < 5; i++)
		ASSERT_OK(invoke_str(rt, "w", "x", NULL));
	ASSERT_OK(evfn_rt_start(rt));
	WAIT_FOR(stat_of(rt, "w", EVFN_STAT_SUCCEEDED) == 5, 5000);
	ASSERT_EQ(stat_of(rt, "w", EVFN_STAT_ATTEMPTS), 10);
	ASSERT_EQ(stat_of(rt, "w", EVFN_STAT_RETRIES), 5);
	ASSERT_EQ(stat_of(rt, "w", EVFN_STAT_DEAD_LETTERED), 0);
	finish(rt, "w");
}

/* ---- ordering keys ---------------------------------------------------- */

#define PRODUCERS 4
#define PER_PRODUCER 400
#define KEYS 8

static atomic_int key_running[KEYS];
static atomic_int key_overlaps, order_breaks, key_retries;
static atomic_int now_running, max_running;
/* Per key and producer, the last index that succeeded. */
static int last_done[KEYS][PRODUCERS];

static int
ordered(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)u;
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	int p, i;
	char buf[32];
	memcpy(buf, d, len < 31 ? len : 31);
	buf[len < 31 ? len : 31] = '\0';
	sscanf(buf, "%d:%d", &p, &i);
	int k = i % KEYS;
	if (atomic_fetch_add(&key_running[k], 1) != 0)
		atomic_fetch_add(&key_overlaps, 1);
	int r = atomic_fetch_add(&now_running, 1) + 1;
	int m = atomic_load(&max_running);
	while (r > m && !atomic_compare_exchange_weak(&max_running, &m, r))
		;
	/* The very first event holds its worker until an event of another
	 * key runs beside it (other keys wait, and three workers are free):
	 * keys must not serialise the function, whatever the timing. */
	if (p == 0 && i == 0 && evfn_ctx_attempt(ctx) == 1) {
		int64_t until = test_now_ms() + 10000;
		while (atomic_load(&max_running) < 2 && test_now_ms() < until)
			test_sleep_ms(1);
	}
	int outcome = EVFN_OK;
	/* Some events fail once: their retry must still come before the
	 * later events of the key. */
	if (i % 7 == 0 && evfn_ctx_attempt(ctx) == 1) {
		atomic_fetch_add(&key_retries, 1);
		outcome = EVFN_RETRY;
	} else {
		/* Only this key's one running event writes its row. */
		if (last_done[k][p] >= i)
			atomic_fetch_add(&order_breaks, 1);
		last_done[k][p] = i;
	}
	for (volatile int spin = 0; spin < 2000; spin++)
		;
	atomic_fetch_sub(&now_running, 1);
	atomic_fetch_sub(&key_running[k], 1);
	return outcome;
}

struct producer {
	evfn_rt *rt;
	int p;
};

static void *
produce_ordered(void *arg)
{
	struct producer *pr = arg;
	for (int i = 0; i < PER_PRODUCER; i++) {
		char data[32], key[8];
		snprintf(data, sizeof(data), "%d:%d", pr->p, i);
		snprintf(key, sizeof(key), "k%d", i % KEYS);
		int rc;
		while ((rc = publish_with(pr->rt, "ord", data, key, 0, NULL)) ==
		       EVFN_EQUEUEFULL)
			test_sleep_ms(1);
		if (rc < 0)
			return (void *)1;
	}
	return NULL;
}

static void
test_ordering_keys(void **state)
{
	(void)state;
	memset(last_done, -1, sizeof(last_done));
	for (int k = 0; k < KEYS; k++)
		atomic_store(&key_running[k], 0);
	atomic_store(&key_overlaps, 0);
	atomic_store(&order_breaks, 0);
	atomic_store(&key_retries, 0);
	atomic_store(&max_running, 0);
	evfn_rt *rt = test_runtime_new(4, 4, NULL);
	evfn_fn_options *fo = options(3);
	ASSERT_OK(evfn_register(rt, "ord", ordered, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	pthread_t t[PRODUCERS];
	struct producer pr[PRODUCERS];
	for (int p = 0; p < PRODUCERS; p++) {
		pr[p] = (struct producer){rt, p};
		assert_int_equal(pthread_create(&t[p], NULL, produce_ordered,
		                                &pr[p]), 0);
	}
	for (int p = 0; p < PRODUCERS; p++) {
		void *res;
		pthread_join(t[p], &res);
		assert_null(res);
	}
	WAIT_FOR(stat_of(rt, "ord", EVFN_STAT_SUCCEEDED) ==
	                 PRODUCERS * PER_PRODUCER,
	         30000);
	ASSERT_EQ(atomic_load(&key_overlaps), 0);
	ASSERT_EQ(atomic_load(&order_breaks), 0);
	assert_true(atomic_load(&key_retries) > 0);
	for (int k = 0; k < KEYS; k++)
		for (int p = 0; p < PRODUCERS; p++)
			ASSERT_EQ(last_done[k][p],
			          PER_PRODUCER - KEYS + k);
	/* Different keys ran side by side. */
	assert_true(atomic_load(&max_running) > 1);
	finish(rt, "ord");
}

/* ---- rate limit ------------------------------------------------------- */

static atomic_int rate_runs;
static atomic_llong rate_first_ms, rate_last_ms;

static int
rated(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	int64_t now = test_now_ms();
	if (atomic_fetch_add(&rate_runs, 1) == 0)
		atomic_store(&rate_first_ms, now);
	atomic_store(&rate_last_ms, now);
	return EVFN_OK;
}

static void
test_rate_limit(void **state)
{
	(void)state;
	atomic_store(&rate_runs, 0);
	evfn_rt *rt = test_runtime_new(2, 2, NULL);
	evfn_fn_options *fo = options(1);
	/* The burst also absorbs a start made late by a busy machine (up to
	 * 24 intervals), so the span measures the rate, not the load. */
	ASSERT_OK(evfn_fn_options_set_rate_limit(fo, 250.0, 25));
	ASSERT_OK(evfn_register(rt, "rl", rated, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	/* 525 events: a burst of 25 at once, then 500 at 250/s: 2.0 s. */
	for (int i = 0; i < 525; i++)
		ASSERT_OK(invoke_str(rt, "rl", "x", NULL));
	ASSERT_OK(evfn_rt_start(rt));
	WAIT_FOR(stat_of(rt, "rl", EVFN_STAT_SUCCEEDED) == 525, 10000);
	int64_t span = atomic_load(&rate_last_ms) - atomic_load(&rate_first_ms);
	print_message("# 500 rate-limited starts took %lld ms (2000 ideal)\n",
	              (long long)span);
	/* The limit is the promise: never faster. Slower only shows a busy
	 * machine (CI runs sanitizer builds in parallel), so the upper bound
	 * only catches a limiter that waits far too long. */
	assert_true(span >= 1900);
	assert_true(span <= 3000);
	assert_true(stat_of(rt, "rl", EVFN_STAT_RATE_LIMITED) > 0);
	finish(rt, "rl");
}

/* ---- circuit breaker -------------------------------------------------- */

static atomic_bool downstream_down;
static atomic_int breaker_runs;
static atomic_llong probe_ms;

#define MAX_RECORDS 32
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static evfn_record_kind rec_kinds[MAX_RECORDS];
static int nrec;

static void
keep_breaker_records(const evfn_record *rec, void *arg)
{
	(void)arg;
	evfn_record_kind k = evfn_record_get_kind(rec);
	if (k < EVFN_RECORD_CIRCUIT_OPEN)
		return;
	assert_null(evfn_record_event(rec));
	ASSERT_EQ(evfn_record_attempt(rec), 0);
	assert_string_equal(evfn_record_function(rec), "cb");
	if (k == EVFN_RECORD_CIRCUIT_OPEN)
		assert_non_null(evfn_record_error(rec));
	pthread_mutex_lock(&rec_lock);
	if (nrec < MAX_RECORDS)
		rec_kinds[nrec++] = k;
	pthread_mutex_unlock(&rec_lock);
}

static int
records_seen(void)
{
	pthread_mutex_lock(&rec_lock);
	int n = nrec;
	pthread_mutex_unlock(&rec_lock);
	return n;
}

static int
flaky_downstream(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	atomic_fetch_add(&breaker_runs, 1);
	if (atomic_load(&downstream_down))
		return EVFN_RETRY;
	atomic_store(&probe_ms, test_now_ms());
	return EVFN_OK;
}

static evfn_rt *
breaker_runtime(int consecutive, double rate, int min_calls,
                evfn_circuit_policy policy, int attempts)
{
	atomic_store(&breaker_runs, 0);
	nrec = 0;
	evfn_rt *rt = test_runtime_new(1, 1, keep_breaker_records);
	evfn_fn_options *fo = options(attempts);
	ASSERT_OK(evfn_fn_options_set_concurrency(fo, 1));
	ASSERT_OK(evfn_fn_options_set_circuit_breaker(fo, consecutive, rate,
	                                              min_calls, 60000, 300,
	                                              policy));
	ASSERT_OK(evfn_register(rt, "cb", flaky_downstream, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	return rt;
}

static void
test_breaker_opens_holds_probes_closes(void **state)
{
	(void)state;
	atomic_store(&downstream_down, true);
	evfn_rt *rt = breaker_runtime(3, 0, 1, EVFN_CIRCUIT_QUEUE, 1);
	for (int i = 0; i < 3; i++)
		ASSERT_OK(invoke_str(rt, "cb", "x", NULL));
	WAIT_FOR(stat_of(rt, "cb", EVFN_STAT_CIRCUIT_STATE) ==
	                 EVFN_CIRCUIT_OPEN,
	         5000);
	int64_t opened = test_now_ms();
	ASSERT_EQ(stat_of(rt, "cb", EVFN_STAT_CIRCUIT_OPENS), 1);
	/* While open, new events queue and no attempt is spent. */
	for (int i = 0; i < 5; i++)
		ASSERT_OK(invoke_str(rt, "cb", "y", NULL));
	atomic_store(&downstream_down, false);
	test_sleep_ms(100); /* nothing may happen: there is nothing to wait for */
	ASSERT_EQ(stat_of(rt, "cb", EVFN_STAT_ATTEMPTS), 3);
	ASSERT_EQ(stat_of(rt, "cb", EVFN_STAT_QUEUED), 5);
	assert_accounting(rt, "cb");
	/* After the cool-down one probe succeeds, and the rest follow. */
	WAIT_FOR(stat_of(rt, "cb", EVFN_STAT_SUCCEEDED) == 5, 5000);
	assert_true(atomic_load(&probe_ms) - opened >= 250);
	ASSERT_EQ(stat_of(rt, "cb", EVFN_STAT_CIRCUIT_STATE),
	          EVFN_CIRCUIT_CLOSED);
	ASSERT_EQ(stat_of(rt, "cb", EVFN_STAT_ATTEMPTS), 8);
	ASSERT_EQ(stat_of(rt, "cb", EVFN_STAT_DEAD_LETTERED), 3);
	WAIT_FOR(records_seen() == 3, 5000);
	ASSERT_EQ(rec_kinds[0], EVFN_RECORD_CIRCUIT_OPEN);
	ASSERT_EQ(rec_kinds[1], EVFN_RECORD_CIRCUIT_HALF_OPEN);
	ASSERT_EQ(rec_kinds[2], EVFN_RECORD_CIRCUIT_CLOSED);
	finish(rt, "cb");
}

static void
test_breaker_refuses_and_reopens(void **state)
{
	(void)state;
	atomic_store(&downstream_down, true);
	evfn_rt *rt = breaker_runtime(2, 0, 1, EVFN_CIRCUIT_REFUSE, 1);
	ASSERT_OK(invoke_str(rt, "cb", "x", NULL));
	ASSERT_OK(invoke_str(rt, "cb", "x", NULL));
	WAIT_FOR(stat_of(rt, "cb", EVFN_STAT_CIRCUIT_STATE) ==
	                 EVFN_CIRCUIT_OPEN,
	         5000);
	ASSERT_RC(invoke_str(rt, "cb", "x", NULL), EVFN_ECIRCUITOPEN);
	ASSERT_EQ(stat_of(rt, "cb", EVFN_STAT_THROTTLED), 1);
	/* Half-open takes events again; the probe fails and reopens it. */
	WAIT_FOR(stat_of(rt, "cb", EVFN_STAT_CIRCUIT_STATE) ==
	                 EVFN_CIRCUIT_HALF_OPEN,
	         5000);
	ASSERT_OK(invoke_str(rt, "cb", "probe", NULL));
	WAIT_FOR(stat_of(rt, "cb", EVFN_STAT_CIRCUIT_OPENS) == 2, 5000);
	ASSERT_EQ(stat_of(rt, "cb", EVFN_STAT_ATTEMPTS), 3);
	WAIT_FOR(records_seen() >= 3, 5000);
	ASSERT_EQ(rec_kinds[0], EVFN_RECORD_CIRCUIT_OPEN);
	ASSERT_EQ(rec_kinds[1], EVFN_RECORD_CIRCUIT_HALF_OPEN);
	ASSERT_EQ(rec_kinds[2], EVFN_RECORD_CIRCUIT_OPEN);
	finish(rt, "cb");
}

static atomic_int rate_calls;

static int
every_other_fails(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	return atomic_fetch_add(&rate_calls, 1) % 2 ? EVFN_FAIL : EVFN_OK;
}

static void
test_breaker_failure_rate(void **state)
{
	(void)state;
	atomic_store(&rate_calls, 0);
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	evfn_fn_options *fo = options(1);
	ASSERT_OK(evfn_fn_options_set_concurrency(fo, 1));
	/* Half failing, judged after 6 calls: opens at the 6th. */
	ASSERT_OK(evfn_fn_options_set_circuit_breaker(fo, 0, 0.5, 6, 60000,
	                                              60000,
	                                              EVFN_CIRCUIT_QUEUE));
	ASSERT_OK(evfn_register(rt, "fr", every_other_fails, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	for (int i = 0; i < 10; i++)
		ASSERT_OK(invoke_str(rt, "fr", "x", NULL));
	ASSERT_OK(evfn_rt_start(rt));
	WAIT_FOR(stat_of(rt, "fr", EVFN_STAT_CIRCUIT_OPENS) == 1, 5000);
	ASSERT_EQ(stat_of(rt, "fr", EVFN_STAT_ATTEMPTS), 6);
	ASSERT_EQ(stat_of(rt, "fr", EVFN_STAT_QUEUED), 4);
	/* Drain hands the held-back four back. */
	assert_accounting(rt, "fr");
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_EQ(stat_of(rt, "fr", EVFN_STAT_HANDED_BACK), 4);
	assert_accounting(rt, "fr");
	WAIT_FOR(evfn_rt_free(rt) == 0, 10000);
}

/* ---- delays ----------------------------------------------------------- */

static atomic_llong ran_at_ms;
static atomic_int delayed_runs;

static int
note_time(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	atomic_store(&ran_at_ms, test_now_ms());
	atomic_fetch_add(&delayed_runs, 1);
	return EVFN_OK;
}

static void
test_delay(void **state)
{
	(void)state;
	atomic_store(&delayed_runs, 0);
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	ASSERT_OK(evfn_register(rt, "d", note_time, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	int64_t t0 = test_now_ms();
	ASSERT_OK(publish_with(rt, "d", "x", NULL, 200, NULL));
	ASSERT_EQ(stat_of(rt, "d", EVFN_STAT_DELAYED), 1);
	assert_accounting(rt, "d");
	WAIT_FOR(atomic_load(&delayed_runs) == 1, 5000);
	assert_true(atomic_load(&ran_at_ms) - t0 >= 200);
	WAIT_FOR(stat_of(rt, "d", EVFN_STAT_SUCCEEDED) == 1, 5000);
	ASSERT_EQ(stat_of(rt, "d", EVFN_STAT_DELAYED), 0);

	/* At a wall-clock time. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t at = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec +
	             150 * 1000000;
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "d", "y", 1));
	ASSERT_OK(evfn_event_set_deliver_at(ev, at));
	t0 = test_now_ms();
	ASSERT_OK(evfn_publish_to(rt, "d", ev, NULL));
	ASSERT_RC(evfn_event_set_delay_ms(ev, 5), EVFN_EPERM);
	evfn_event_unref(ev);
	WAIT_FOR(atomic_load(&delayed_runs) == 2, 5000);
	assert_true(atomic_load(&ran_at_ms) - t0 >= 140);
	finish(rt, "d");
}

/* ---- pause, resume, cancel -------------------------------------------- */

static atomic_int plain_runs;

static int
plain(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	atomic_fetch_add(&plain_runs, 1);
	return EVFN_OK;
}

static void
test_pause_resume(void **state)
{
	(void)state;
	atomic_store(&plain_runs, 0);
	evfn_rt *rt = test_runtime_new(1, 2, NULL);
	ASSERT_OK(evfn_register(rt, "p", plain, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_pause(rt, "p"));
	ASSERT_OK(evfn_pause(rt, "p"));
	ASSERT_EQ(stat_of(rt, "p", EVFN_STAT_PAUSED), 1);
	for (int i = 0; i < 5; i++)
		ASSERT_OK(invoke_str(rt, "p", "x", NULL));
	test_sleep_ms(50); /* nothing may start: there is nothing to wait for */
	ASSERT_EQ(atomic_load(&plain_runs), 0);
	ASSERT_EQ(stat_of(rt, "p", EVFN_STAT_QUEUED), 5);
	assert_accounting(rt, "p");
	ASSERT_OK(evfn_resume(rt, "p"));
	WAIT_FOR(stat_of(rt, "p", EVFN_STAT_SUCCEEDED) == 5, 5000);
	ASSERT_EQ(stat_of(rt, "p", EVFN_STAT_PAUSED), 0);
	ASSERT_OK(evfn_resume(rt, "p"));
	ASSERT_RC(evfn_pause(rt, "nope"), EVFN_ENOFN);
	ASSERT_RC(evfn_resume(NULL, "p"), EVFN_EINVAL);
	ASSERT_RC(evfn_pause(rt, NULL), EVFN_EINVAL);
	finish(rt, "p");
}

static atomic_int cb_results[4];
static atomic_int cb_count;

static void
keep_result(const evfn_result *res, void *arg)
{
	intptr_t i = (intptr_t)arg;
	atomic_store(&cb_results[i], evfn_result_code(res));
	atomic_fetch_add(&cb_count, 1);
}

static int
submit_str(evfn_rt *rt, const char *fn, const char *data, const char *key,
           intptr_t slot, uint64_t *seq)
{
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, fn, data, strlen(data)));
	if (key)
		ASSERT_OK(evfn_event_set_ordering_key(ev, key));
	int rc = evfn_submit(rt, fn, ev, keep_result, (void *)slot, seq);
	evfn_event_unref(ev);
	return rc;
}

static void
test_cancel_waiting(void **state)
{
	(void)state;
	atomic_store(&plain_runs, 0);
	atomic_store(&cb_count, 0);
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	ASSERT_OK(evfn_register(rt, "c", plain, NULL, NULL, NULL));
	ASSERT_OK(evfn_register(rt, "c2", plain, NULL, NULL, NULL));
	ASSERT_OK(evfn_subscribe(rt, "t", "c"));
	ASSERT_OK(evfn_subscribe(rt, "t", "c2"));
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_pause(rt, "c"));
	char id[32];
	uint64_t seq;
	/* Queued, with a waiter. */
	ASSERT_OK(submit_str(rt, "c", "q", NULL, 0, &seq));
	snprintf(id, sizeof(id), "%llu", (unsigned long long)seq);
	ASSERT_EQ(evfn_cancel(rt, "c", id), 1);
	WAIT_FOR(atomic_load(&cb_count) == 1, 5000);
	ASSERT_RC(atomic_load(&cb_results[0]), EVFN_ECANCELED);
	ASSERT_RC(evfn_cancel(rt, "c", id), EVFN_ENOENT);
	/* Held behind its key: the active one stays, the held one goes. */
	ASSERT_OK(submit_str(rt, "c", "k1", "K", 1, NULL));
	ASSERT_OK(submit_str(rt, "c", "k2", "K", 2, &seq));
	snprintf(id, sizeof(id), "%llu", (unsigned long long)seq);
	ASSERT_EQ(evfn_cancel(rt, NULL, id), 1);
	WAIT_FOR(atomic_load(&cb_count) == 2, 5000);
	ASSERT_RC(atomic_load(&cb_results[2]), EVFN_ECANCELED);
	/* Delayed. */
	ASSERT_OK(publish_with(rt, "c", "later", NULL, 60000, &seq));
	snprintf(id, sizeof(id), "%llu", (unsigned long long)seq);
	ASSERT_EQ(stat_of(rt, "c", EVFN_STAT_DELAYED), 1);
	ASSERT_EQ(evfn_cancel(rt, "c", id), 1);
	ASSERT_EQ(stat_of(rt, "c", EVFN_STAT_DELAYED), 0);
	/* Fanned out: one function, then every function it went to. */
	ASSERT_OK(evfn_pause(rt, "c2"));
	ASSERT_OK(evfn_emit(rt, "t", "f", 1, &seq));
	snprintf(id, sizeof(id), "%llu", (unsigned long long)seq);
	ASSERT_EQ(evfn_cancel(rt, "c2", id), 1);
	ASSERT_OK(evfn_emit(rt, "t", "g", 1, &seq));
	snprintf(id, sizeof(id), "%llu", (unsigned long long)seq);
	ASSERT_EQ(evfn_cancel(rt, NULL, id), 2);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_CANCELLED), 3 + 1 + 2);
	/* What was not cancelled still runs. */
	ASSERT_OK(evfn_resume(rt, "c"));
	ASSERT_OK(evfn_resume(rt, "c2"));
	WAIT_FOR(atomic_load(&cb_count) == 3, 5000);
	ASSERT_RC(atomic_load(&cb_results[1]), 0);
	WAIT_FOR(stat_of(rt, NULL, EVFN_STAT_SUCCEEDED) == 2, 5000);
	ASSERT_EQ(atomic_load(&plain_runs), 2);
	ASSERT_RC(evfn_cancel(rt, "nope", id), EVFN_ENOFN);
	ASSERT_RC(evfn_cancel(rt, NULL, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_cancel(rt, NULL, "no-such-id"), EVFN_ENOENT);
	assert_accounting(rt, "c2");
	finish(rt, "c");
}

static atomic_int spin_entered, spin_calls;

/* Runs until cancelled, then asks for a retry: cancellation wins. */
static int
until_cancelled(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ev;
	(void)u;
	atomic_fetch_add(&spin_calls, 1);
	atomic_store(&spin_entered, 1);
	while (!evfn_ctx_cancelled(ctx))
		test_sleep_ms(1);
	return EVFN_RETRY;
}

static void
test_cancel_running(void **state)
{
	(void)state;
	atomic_store(&spin_entered, 0);
	atomic_store(&spin_calls, 0);
	atomic_store(&cb_count, 0);
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	evfn_fn_options *fo = options(5);
	ASSERT_OK(evfn_fn_options_set_timeout_ms(fo, 20000));
	ASSERT_OK(evfn_register(rt, "r", until_cancelled, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	uint64_t seq;
	ASSERT_OK(submit_str(rt, "r", "x", NULL, 0, &seq));
	WAIT_FOR(atomic_load(&spin_entered), 5000);
	char id[32];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)seq);
	ASSERT_EQ(evfn_cancel(rt, "r", id), 1);
	WAIT_FOR(atomic_load(&cb_count) == 1, 5000);
	ASSERT_RC(atomic_load(&cb_results[0]), EVFN_ECANCELED);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_CANCELLED), 1);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_RETRIES), 0);
	ASSERT_EQ(atomic_load(&spin_calls), 1);
	ASSERT_EQ(evfn_dead_letter_count(rt), 0);
	finish(rt, "r");
}

static void
test_drain_hands_back_delayed_and_held(void **state)
{
	(void)state;
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	ASSERT_OK(evfn_register(rt, "h", plain, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_pause(rt, "h"));
	ASSERT_OK(publish_with(rt, "h", "a", "K", 0, NULL));
	ASSERT_OK(publish_with(rt, "h", "b", "K", 0, NULL));
	ASSERT_OK(publish_with(rt, "h", "c", "K", 0, NULL));
	ASSERT_OK(publish_with(rt, "h", "d", NULL, 60000, NULL));
	ASSERT_EQ(stat_of(rt, "h", EVFN_STAT_QUEUED), 3);
	ASSERT_EQ(stat_of(rt, "h", EVFN_STAT_DELAYED), 1);
	assert_accounting(rt, "h");
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_EQ(stat_of(rt, "h", EVFN_STAT_HANDED_BACK), 4);
	assert_accounting(rt, "h");
	WAIT_FOR(evfn_rt_free(rt) == 0, 10000);
}

/* ---- bad input -------------------------------------------------------- */

static void
test_bad_options(void **state)
{
	(void)state;
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_RC(evfn_fn_options_set_batch(NULL, 2, 0), EVFN_EINVAL);
	ASSERT_RC(evfn_fn_options_set_batch(fo, 0, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_batch(fo, 10001, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_batch(fo, 2, -1), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_rate_limit(NULL, 1, 1), EVFN_EINVAL);
	ASSERT_RC(evfn_fn_options_set_circuit_breaker(NULL, 1, 0, 1, 1, 1,
	                                              EVFN_CIRCUIT_QUEUE),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_rt_options_set_metrics(NULL, false), EVFN_EINVAL);
	ASSERT_EQ(evfn_ctx_batch_size(NULL), 0);
	assert_null(evfn_ctx_batch_event(NULL, 0));
	ASSERT_RC(evfn_ctx_batch_item_failed(NULL, 0, EVFN_RETRY), EVFN_EINVAL);
	ASSERT_RC(evfn_event_set_ordering_key(NULL, "k"), EVFN_EINVAL);
	assert_null(evfn_event_ordering_key(NULL));
	ASSERT_RC(evfn_event_set_deliver_at(NULL, 1), EVFN_EINVAL);
	ASSERT_RC(evfn_fn_options_set_rate_limit(fo, -1, 1), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_rate_limit(fo, 0.0 / 0.0, 1),
	          EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_rate_limit(fo, 10, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_circuit_breaker(fo, 0, 0, 1, 1, 1,
	                                              EVFN_CIRCUIT_QUEUE),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_fn_options_set_circuit_breaker(fo, 1, 1.5, 1, 1, 1,
	                                              EVFN_CIRCUIT_QUEUE),
	          EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_circuit_breaker(fo, 1, 0, 1, 0, 1,
	                                              EVFN_CIRCUIT_QUEUE),
	          EVFN_ERANGE);
	ASSERT_RC(evfn_fn_options_set_circuit_breaker(fo, 1, 0, 1, 1, 1,
	                                              (evfn_circuit_policy)7),
	          EVFN_EINVAL);
	/* Batches run on the pool only. */
	ASSERT_OK(evfn_fn_options_set_batch(fo, 2, 0));
	ASSERT_OK(evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP));
	evfn_rt_options *ro;
	ASSERT_OK(evfn_rt_options_new(&ro));
	ASSERT_OK(evfn_rt_options_set_log(ro, test_log_capture, NULL));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, ro));
	evfn_rt_options_free(ro);
	test_log_reset();
	ASSERT_RC(evfn_register(rt, "loopbatch", plain, NULL, fo, NULL),
	          EVFN_EINVAL);
	assert_true(test_log_contains(
		"loopbatch: batch functions need the pool executor"));
	evfn_fn_options_free(fo);

	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "t", NULL, 0));
	char longkey[EVFN_NAME_MAX + 2];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	ASSERT_RC(evfn_event_set_ordering_key(ev, longkey), EVFN_ENAMETOOLONG);
	ASSERT_RC(evfn_event_set_ordering_key(ev, ""), EVFN_EINVAL);
	ASSERT_OK(evfn_event_set_ordering_key(ev, "k"));
	assert_string_equal(evfn_event_ordering_key(ev), "k");
	ASSERT_OK(evfn_event_set_ordering_key(ev, NULL));
	assert_null(evfn_event_ordering_key(ev));
	ASSERT_RC(evfn_event_set_delay_ms(ev, -1), EVFN_ERANGE);
	ASSERT_RC(evfn_event_set_delay_ms(NULL, 1), EVFN_EINVAL);
	ASSERT_RC(evfn_event_set_deliver_at(ev, -1), EVFN_ERANGE);
	evfn_event_unref(ev);
	/* A full queue counts delayed events. */
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, 1));
	ASSERT_OK(evfn_register(rt, "one", plain, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(publish_with(rt, "one", "x", NULL, 60000, NULL));
	ASSERT_RC(invoke_str(rt, "one", "y", NULL), EVFN_EQUEUEFULL);
	finish(rt, "one");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_batch_size_and_window),
		TEST(test_batch_item_failures),
		TEST(test_batch_of_one_item_failure_ends_it),
		TEST(test_batch_whole_retry),
		TEST(test_ordering_keys),
		TEST(test_rate_limit),
		TEST(test_breaker_opens_holds_probes_closes),
		TEST(test_breaker_refuses_and_reopens),
		TEST(test_breaker_failure_rate),
		TEST(test_delay),
		TEST(test_pause_resume),
		TEST(test_cancel_waiting),
		TEST(test_cancel_running),
		TEST(test_drain_hands_back_delayed_and_held),
		TEST(test_bad_options),
	};
	return evfn_test_main("flow", tests);
}
