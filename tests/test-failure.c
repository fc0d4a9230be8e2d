/* SPDX-License-Identifier: MIT */
/*
 * Failure semantics: deadlines fence late handlers and keep capacity,
 * the stuck-thread cap, maximum event age, destinations with failure
 * metadata, the dead-letter store (list, replay, delete, purge),
 * idempotent redelivery, the hop limit, and the event log.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "deadline-harness.h"

static evfn_rt *
new_runtime(int min, int max)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, min, max));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	return rt;
}

static evfn_fn_options *
options(int64_t timeout_ms, int attempts)
{
	return deadline_options(timeout_ms, attempts, 4); /* the default cap */
}

static void
finish(evfn_rt *rt)
{
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	WAIT_FOR(evfn_rt_free(rt) == 0, 10000);
}

/* A gate the test opens to let stuck handlers return. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int entered, cancelled_seen, hooks, ok_runs;

static void
reset(void)
{
	gate_open = false;
	atomic_store(&entered, 0);
	atomic_store(&cancelled_seen, 0);
	atomic_store(&hooks, 0);
	atomic_store(&ok_runs, 0);
}

static void
open_gate(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

/* A handler announces itself, then blocks until the test opens the gate. */
static void
enter_and_wait_for_gate(void)
{
	atomic_fetch_add(&entered, 1);
	pthread_mutex_lock(&gate_lock);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

/* Attempt 1 blocks until the gate opens (past its deadline), then
 * claims success: that return is late and must change nothing. Later
 * attempts succeed at once. */
static int
stuck_once(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	if (evfn_ctx_attempt(ctx) > 1) {
		atomic_fetch_add(&ok_runs, 1);
		evfn_ctx_respond(ctx, "second", 6);
		return EVFN_OK;
	}
	enter_and_wait_for_gate();
	if (evfn_ctx_cancelled(ctx))
		atomic_fetch_add(&cancelled_seen, 1);
	evfn_ctx_respond(ctx, "late", 4);
	return EVFN_OK;
}

static void
count_hook(evfn_ctx *ctx, void *userdata)
{
	assert_true(evfn_ctx_cancelled(ctx));
	atomic_fetch_add(&hooks, 1);
}

static void
test_failure_deadline_fences_late_return_and_keeps_capacity(void **state)
{
	reset();
	evfn_rt *rt = new_runtime(1, 1);
	evfn_fn_options *fo = options(100, 3);
	ASSERT_OK(evfn_fn_options_set_cancel_hook(fo, count_hook));
	ASSERT_OK(evfn_register(rt, "stuck", stuck_once, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));

	/* One worker, stuck in attempt 1: the retry can only run on a
	 * replacement, so the response proves the capacity was kept. */
	void *resp;
	size_t len;
	ASSERT_OK(evfn_invoke(rt, "stuck", "x", 1, &resp, &len));
	assert_memory_equal(resp, "second", 6);
	evfn_free(resp);
	ASSERT_EQ(atomic_load(&hooks), 1);
	ASSERT_EQ(stat_of(rt, "stuck", EVFN_STAT_TIMEOUTS), 1);
	ASSERT_EQ(stat_of(rt, "stuck", EVFN_STAT_LATE), 0);
	ASSERT_EQ(evfn_rt_workers(rt), 1);
	assert_accounting(rt, "stuck");

	open_gate();
	WAIT_FOR(stat_of(rt, "stuck", EVFN_STAT_LATE) == 1, 10000);
	ASSERT_EQ(atomic_load(&cancelled_seen), 1);
	/* The late "OK" changed nothing: one success, one retry. */
	ASSERT_EQ(stat_of(rt, "stuck", EVFN_STAT_SUCCEEDED), 1);
	ASSERT_EQ(stat_of(rt, "stuck", EVFN_STAT_RETRIES), 1);
	ASSERT_EQ(stat_of(rt, "stuck", EVFN_STAT_ATTEMPTS), 2);
	ASSERT_EQ(atomic_load(&ok_runs), 1);
	assert_accounting(rt, "stuck");
	finish(rt);
}

/* Quick, except the event "block", which waits for the gate. */
static int
quick_or_block(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	if (len == 5 && memcmp(d, "block", 5) == 0 &&
	    evfn_ctx_attempt(ctx) == 1) {
		enter_and_wait_for_gate();
		return EVFN_OK;
	}
	atomic_fetch_add(&ok_runs, 1);
	return EVFN_OK;
}

static void
test_failure_stuck_worker_gives_back_what_it_took(void **state)
{
	reset();
	evfn_rt *rt = new_runtime(1, 1);
	evfn_fn_options *fo = options(100, 3);
	ASSERT_OK(evfn_register(rt, "q", quick_or_block, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	/* Quick handlers with a deep queue: the worker takes several
	 * attempts under one lock. */
	for (int i = 0; i < 200; i++)
		ASSERT_OK(evfn_invoke_async(rt, "q", "w", 1, NULL));
	WAIT_FOR(stat_of(rt, "q", EVFN_STAT_SUCCEEDED) == 200, 10000);
	/* One that blocks past its deadline, with seven behind it that the
	 * same worker takes along: they must not wait for it. */
	ASSERT_OK(evfn_pause(rt, "q"));
	ASSERT_OK(evfn_invoke_async(rt, "q", "block", 5, NULL));
	for (int i = 0; i < 7; i++)
		ASSERT_OK(evfn_invoke_async(rt, "q", "x", 1, NULL));
	ASSERT_OK(evfn_resume(rt, "q"));
	WAIT_FOR(stat_of(rt, "q", EVFN_STAT_SUCCEEDED) == 200 + 7 + 1, 10000);
	ASSERT_EQ(atomic_load(&entered), 1);
	ASSERT_EQ(atomic_load(&ok_runs), 200 + 7 + 1); /* block's retry */
	ASSERT_EQ(stat_of(rt, "q", EVFN_STAT_TIMEOUTS), 1);
	ASSERT_EQ(stat_of(rt, "q", EVFN_STAT_ATTEMPTS), 200 + 1 + 7 + 1);
	assert_accounting(rt, "q");
	open_gate();
	WAIT_FOR(stat_of(rt, "q", EVFN_STAT_LATE) == 1, 10000);
	assert_accounting(rt, "q");
	finish(rt);
}

/* Returns OK just after its deadline: often before the watchdog's next
 * tick could fence it. */
static int
slightly_late(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	while (evfn_ctx_remaining_ns(ctx) > 0)
		test_sleep_ms(1);
	test_sleep_ms(2);
	evfn_ctx_respond(ctx, "too late", 8);
	return EVFN_OK;
}

static void
test_failure_return_after_deadline_is_a_timeout(void **state)
{
	reset();
	evfn_rt *rt = new_runtime(1, 2);
	evfn_fn_options *fo = options(20, 1);
	ASSERT_OK(evfn_register(rt, "late", slightly_late, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	for (int i = 0; i < 10; i++)
		ASSERT_RC(evfn_invoke(rt, "late", NULL, 0, NULL, NULL),
		          EVFN_ETIMEDOUT);
	ASSERT_EQ(stat_of(rt, "late", EVFN_STAT_SUCCEEDED), 0);
	ASSERT_EQ(stat_of(rt, "late", EVFN_STAT_TIMEOUTS), 10);
	ASSERT_EQ(stat_of(rt, "late", EVFN_STAT_DEAD_LETTERED), 10);
	assert_accounting(rt, "late");
	finish(rt);
}

static int
always_stuck(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	enter_and_wait_for_gate();
	return EVFN_OK;
}

static void
test_failure_stuck_cap_makes_function_unhealthy(void **state)
{
	reset();
	evfn_rt *rt = new_runtime(1, 8);
	evfn_fn_options *fo = options(50, 1);
	ASSERT_OK(evfn_fn_options_set_max_stuck(fo, 2));
	ASSERT_OK(evfn_register(rt, "hang", always_stuck, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_RC(evfn_invoke(rt, "hang", NULL, 0, NULL, NULL), EVFN_ETIMEDOUT);
	ASSERT_RC(evfn_invoke(rt, "hang", NULL, 0, NULL, NULL), EVFN_ETIMEDOUT);
	/* Two threads stuck: intake refuses instead of spawning more. */
	ASSERT_RC(evfn_invoke_async(rt, "hang", NULL, 0, NULL),
	          EVFN_EUNHEALTHY);
	ASSERT_EQ(atomic_load(&entered), 2);
	ASSERT_EQ(stat_of(rt, "hang", EVFN_STAT_DEAD_LETTERED), 2);
	ASSERT_RC(evfn_rt_drain(rt, 0, NULL, NULL), 0);
	ASSERT_RC(evfn_rt_free(rt), EVFN_EBUSY); /* threads still stuck */
	open_gate();
	WAIT_FOR(stat_of(rt, "hang", EVFN_STAT_LATE) == 2, 10000);
	WAIT_FOR(evfn_rt_free(rt) == 0, 10000);
}

static int
retry_always(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	evfn_ctx_errorf(ctx, "downstream said %d", 503);
	return EVFN_RETRY;
}

static void
test_failure_max_age_expires_instead_of_retrying(void **state)
{
	evfn_rt *rt = new_runtime(1, 1);
	evfn_fn_options *fo = options(1000, 100);
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 40, 1.0,
	                                      40, EVFN_JITTER_NONE));
	ASSERT_OK(evfn_fn_options_set_max_age_ms(fo, 100));
	ASSERT_OK(evfn_register(rt, "old", retry_always, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	int64_t t0 = test_now_ms();
	ASSERT_RC(evfn_invoke(rt, "old", NULL, 0, NULL, NULL), EVFN_EEXPIRED);
	/* Retries every 40 ms, capped by the age: over in ~100 ms, not 4 s. */
	assert_true(test_now_ms() - t0 < 3000);
	assert_true(stat_of(rt, "old", EVFN_STAT_ATTEMPTS) >= 2);
	assert_true(stat_of(rt, "old", EVFN_STAT_ATTEMPTS) <= 5);
	ASSERT_EQ(stat_of(rt, "old", EVFN_STAT_EXPIRED), 1);
	ASSERT_EQ(evfn_dead_letter_count(rt), 1);
	evfn_dead_letter *dl;
	ASSERT_EQ(evfn_dead_letters(rt, &dl, 1, 0), 1);
	assert_string_equal(evfn_dead_letter_reason(dl), "expired");
	assert_string_equal(evfn_dead_letter_error(dl), "downstream said 503");
	evfn_dead_letter_unref(dl);
	finish(rt);
}

/* ---- destinations ------------------------------------------------------- */

struct sink {
	pthread_mutex_t lock;
	int n;
	char data[8][64];
	char ext[8][6][64];
};

static struct sink sink = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *const ext_names[6] = {"evfnreason",       "evfnattempts",
                                         "evfnerror",        "evfnfunction",
                                         "evfnparent",       "evfnfirstattempt"};

static int
sink_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	pthread_mutex_lock(&sink.lock);
	int i = sink.n++;
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	snprintf(sink.data[i], sizeof(sink.data[i]), "%.*s", (int)len,
	         d ? d : "");
	for (int k = 0; k < 6; k++) {
		const char *v = evfn_event_extension(ev, ext_names[k]);
		snprintf(sink.ext[i][k], sizeof(sink.ext[i][k]), "%s",
		         v ? v : "-");
	}
	pthread_mutex_unlock(&sink.lock);
	return EVFN_OK;
}

static int
resize(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	if (len && d[0] == 'x') {
		evfn_ctx_set_error(ctx, "cannot read image");
		return EVFN_FAIL;
	}
	char out[32];
	int n = snprintf(out, sizeof(out), "small-%.*s", (int)len, d);
	evfn_ctx_respond(ctx, out, (size_t)n);
	return EVFN_OK;
}

static void
test_failure_destinations_chain_and_carry_metadata(void **state)
{
	memset(sink.data, 0, sizeof(sink.data));
	sink.n = 0;
	evfn_rt *rt = new_runtime(1, 2);
	evfn_fn_options *fo = options(1000, 3);
	ASSERT_OK(evfn_fn_options_set_destinations(fo, "publish", "failed"));
	ASSERT_OK(evfn_register(rt, "resize", resize, NULL, fo, NULL));
	ASSERT_RC(evfn_fn_options_set_destinations(fo, "", NULL), EVFN_EINVAL);
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_register(rt, "publish", sink_handler, NULL, NULL, NULL));
	ASSERT_OK(evfn_register(rt, "failed", sink_handler, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));

	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "upload", "cat", 3));
	ASSERT_OK(evfn_event_set_id(ev, "img-1"));
	ASSERT_OK(evfn_publish_to(rt, "resize", ev, NULL));
	evfn_event_unref(ev);
	WAIT_FOR(stat_of(rt, "publish", EVFN_STAT_SUCCEEDED) == 1, 10000);
	assert_string_equal(sink.data[0], "small-cat");
	assert_string_equal(sink.ext[0][3], "resize");
	assert_string_equal(sink.ext[0][4], "img-1");

	ASSERT_RC(evfn_invoke(rt, "resize", "xyz", 3, NULL, NULL),
	          EVFN_EFAILED);
	WAIT_FOR(stat_of(rt, "failed", EVFN_STAT_SUCCEEDED) == 1, 10000);
	assert_string_equal(sink.data[1], "xyz"); /* the original payload */
	assert_string_equal(sink.ext[1][0], "failed");
	assert_string_equal(sink.ext[1][1], "1");
	assert_string_equal(sink.ext[1][2], "cannot read image");
	assert_string_equal(sink.ext[1][3], "resize");
	assert_true(strtoll(sink.ext[1][5], NULL, 10) > 1700000000000000000LL);
	finish(rt);
}

static void
test_failure_unknown_destination_keeps_event_in_store(void **state)
{
	evfn_rt *rt = new_runtime(1, 1);
	evfn_fn_options *fo = options(1000, 1);
	ASSERT_OK(evfn_fn_options_set_destinations(fo, "nowhere", NULL));
	ASSERT_OK(evfn_register(rt, "resize", resize, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_invoke(rt, "resize", "dog", 3, NULL, NULL));
	WAIT_FOR(evfn_dead_letter_count(rt) == 1, 10000);
	evfn_dead_letter *dl;
	ASSERT_EQ(evfn_dead_letters(rt, &dl, 1, 0), 1);
	ASSERT_EQ(evfn_dead_letter_code(dl), EVFN_ENOFN);
	assert_string_equal(evfn_dead_letter_reason(dl), "destination_refused");
	size_t len;
	const char *d = evfn_event_data(evfn_dead_letter_event(dl), &len);
	assert_memory_equal(d, "small-dog", len); /* the response kept */
	/* Kept for the destination: once it exists, a replay delivers the
	 * response there, and resize (which succeeded) does not run again. */
	assert_string_equal(evfn_dead_letter_function(dl), "nowhere");
	pthread_mutex_lock(&sink.lock);
	sink.n = 0;
	pthread_mutex_unlock(&sink.lock);
	ASSERT_OK(evfn_register(rt, "nowhere", sink_handler, NULL, NULL,
	                        NULL));
	ASSERT_OK(evfn_dead_letter_replay(rt, evfn_dead_letter_id(dl)));
	evfn_dead_letter_unref(dl);
	WAIT_FOR(stat_of(rt, "nowhere", EVFN_STAT_SUCCEEDED) == 1, 10000);
	pthread_mutex_lock(&sink.lock);
	assert_string_equal(sink.data[0], "small-dog");
	pthread_mutex_unlock(&sink.lock);
	ASSERT_EQ(stat_of(rt, "resize", EVFN_STAT_ATTEMPTS), 1);
	ASSERT_EQ(evfn_dead_letter_count(rt), 0);
	finish(rt);
}

/* ---- dead-letter store --------------------------------------------------- */

static atomic_int flip; /* 0: fail everything, 1: succeed */

static int
flaky(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	if (atomic_load(&flip))
		return EVFN_OK;
	return evfn_ctx_attempt(ctx) == 1 && evfn_event_data(ev, NULL) &&
	               ((const char *)evfn_event_data(ev, NULL))[0] == 'p'
	               ? EVFN_FAIL
	               : EVFN_RETRY;
}

static void
test_failure_dead_letter_list_replay_delete_purge(void **state)
{
	atomic_store(&flip, 0);
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_dead_letter_capacity(o, 3));
	ASSERT_RC(evfn_rt_options_set_dead_letter_capacity(o, -1), EVFN_ERANGE);
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	evfn_fn_options *fo = options(1000, 2);
	ASSERT_OK(evfn_register(rt, "flaky", flaky, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));

	ASSERT_RC(evfn_invoke(rt, "flaky", "poison", 6, NULL, NULL),
	          EVFN_EFAILED);
	for (int i = 0; i < 3; i++)
		ASSERT_RC(evfn_invoke(rt, "flaky", "retry", 5, NULL, NULL),
		          EVFN_EEXHAUSTED);
	/* Capacity 3: the oldest (the poison one) was evicted. */
	ASSERT_EQ(evfn_dead_letter_count(rt), 3);
	ASSERT_EQ(evfn_dead_letter_evicted(rt), 1);
	evfn_dead_letter *dl[4];
	ASSERT_EQ(evfn_dead_letters(rt, dl, 4, 0), 3);
	ASSERT_EQ(evfn_dead_letters(rt, dl + 3, 1, 2), 1);
	ASSERT_EQ(evfn_dead_letter_id(dl[3]), evfn_dead_letter_id(dl[2]));
	evfn_dead_letter_unref(dl[3]);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(evfn_dead_letter_reason(dl[i]),
		                    "attempts_exhausted");
		ASSERT_EQ(evfn_dead_letter_attempts(dl[i]), 2);
		assert_string_equal(evfn_dead_letter_function(dl[i]), "flaky");
		assert_true(evfn_dead_letter_last_attempt(dl[i]) >=
		            evfn_dead_letter_first_attempt(dl[i]));
	}
	uint64_t first = evfn_dead_letter_id(dl[0]);
	for (int i = 0; i < 3; i++)
		evfn_dead_letter_unref(dl[i]);

	/* Replay one: it runs again (now succeeding) and leaves the store. */
	atomic_store(&flip, 1);
	ASSERT_OK(evfn_dead_letter_replay(rt, first));
	ASSERT_RC(evfn_dead_letter_replay(rt, first), EVFN_ENOENT);
	WAIT_FOR(stat_of(rt, "flaky", EVFN_STAT_SUCCEEDED) == 1, 10000);
	ASSERT_EQ(evfn_dead_letter_count(rt), 2);
	ASSERT_EQ(evfn_dead_letters(rt, dl, 1, 0), 1);
	ASSERT_OK(evfn_dead_letter_delete(rt, evfn_dead_letter_id(dl[0])));
	ASSERT_RC(evfn_dead_letter_delete(rt, evfn_dead_letter_id(dl[0])),
	          EVFN_ENOENT);
	evfn_dead_letter_unref(dl[0]);
	ASSERT_EQ(evfn_dead_letter_replay_all(rt), 1);
	WAIT_FOR(stat_of(rt, "flaky", EVFN_STAT_SUCCEEDED) == 2, 10000);
	ASSERT_EQ(evfn_dead_letter_purge(rt), 0);
	atomic_store(&flip, 0);
	ASSERT_RC(evfn_invoke(rt, "flaky", "r", 1, NULL, NULL),
	          EVFN_EEXHAUSTED);
	ASSERT_EQ(evfn_dead_letter_purge(rt), 1);
	ASSERT_EQ(evfn_dead_letter_count(rt), 0);
	assert_accounting(rt, "flaky");
	ASSERT_RC(evfn_dead_letters(NULL, dl, 1, 0), EVFN_EINVAL);
	ASSERT_RC(evfn_dead_letter_replay(NULL, 1), EVFN_EINVAL);
	assert_null(evfn_dead_letter_reason_name(0));
	/* Every end has its own word: a cancelled event is not a refusal. */
	assert_string_equal(evfn_dead_letter_reason_name(EVFN_ECANCELED),
	                    "cancelled");
	assert_string_equal(evfn_dead_letter_reason_name(EVFN_EHANDEDBACK),
	                    "handed_back");
	assert_string_equal(evfn_dead_letter_reason_name(EVFN_EQUEUEFULL),
	                    "destination_refused");
	finish(rt);
}

/* ---- idempotency --------------------------------------------------------- */

static atomic_int charges;

static int
charge(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	char out[16];
	int n = snprintf(out, sizeof(out), "receipt-%d",
	                 atomic_fetch_add(&charges, 1) + 1);
	evfn_ctx_respond(ctx, out, (size_t)n);
	return EVFN_OK;
}

static int
order_key(const evfn_event *ev, char *key, size_t size, void *userdata)
{
	const char *subject = evfn_event_subject(ev);
	if (!subject)
		return EVFN_EINVAL;
	snprintf(key, size, "order:%s", subject);
	return 0;
}

static void
test_failure_idempotent_redelivery_returns_stored_response(void **state)
{
	atomic_store(&charges, 0);
	evfn_rt *rt = new_runtime(1, 1);
	evfn_fn_options *fo = options(1000, 1);
	ASSERT_OK(evfn_fn_options_set_idempotency(fo, 60000, order_key));
	ASSERT_RC(evfn_fn_options_set_idempotency(fo, -1, NULL), EVFN_ERANGE);
	ASSERT_OK(evfn_register(rt, "charge", charge, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));

	const char *subjects[3] = {"42", "42", "43"};
	for (int i = 0; i < 3; i++) {
		evfn_event *ev;
		ASSERT_OK(evfn_event_new(&ev, "pay", NULL, 0));
		ASSERT_OK(evfn_event_set_subject(ev, subjects[i]));
		ASSERT_OK(evfn_publish_to(rt, "charge", ev, NULL));
		evfn_event_unref(ev);
		WAIT_FOR(stat_of(rt, "charge", EVFN_STAT_SUCCEEDED) ==
		                 (uint64_t)i + 1,
		         10000);
	}
	/* The duplicate of order 42 did not charge again. */
	ASSERT_EQ(atomic_load(&charges), 2);
	ASSERT_EQ(stat_of(rt, "charge", EVFN_STAT_ATTEMPTS), 2);

	/* Without a key callback the key is the event id. */
	evfn_fn_options *fo2 = options(1000, 1);
	ASSERT_OK(evfn_fn_options_set_idempotency(fo2, 60000, NULL));
	ASSERT_OK(evfn_register(rt, "charge2", charge, NULL, fo2, NULL));
	evfn_fn_options_free(fo2);
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "pay", NULL, 0));
	ASSERT_OK(evfn_event_set_id(ev, "pay-7"));
	ASSERT_OK(evfn_publish_to(rt, "charge2", ev, NULL));
	evfn_event_unref(ev);
	WAIT_FOR(stat_of(rt, "charge2", EVFN_STAT_SUCCEEDED) == 1, 10000);
	ASSERT_OK(evfn_event_new(&ev, "pay", NULL, 0));
	ASSERT_OK(evfn_event_set_id(ev, "pay-7"));
	ASSERT_OK(evfn_publish_to(rt, "charge2", ev, NULL));
	evfn_event_unref(ev);
	WAIT_FOR(stat_of(rt, "charge2", EVFN_STAT_SUCCEEDED) == 2, 10000);
	ASSERT_EQ(stat_of(rt, "charge2", EVFN_STAT_ATTEMPTS), 1);
	ASSERT_EQ(atomic_load(&charges), 3);
	finish(rt);
}

/* ---- hop limit ------------------------------------------------------------ */

static int
ping_pong(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	/* Every event makes another: a loop without the limit. Odd hops use
	 * a built child event, even hops the bytes form. */
	if (evfn_event_hops(ev) % 2) {
		evfn_event *child;
		ASSERT_OK(evfn_event_new(&child, "loop.again", NULL, 0));
		ASSERT_OK(evfn_event_set_subject(child, "kept"));
		int rc = evfn_ctx_publish(ctx, child, NULL);
		ASSERT_RC(evfn_ctx_publish(ctx, child, NULL), EVFN_EPERM);
		evfn_event_unref(child);
		return rc == 0 ? EVFN_OK : EVFN_FAIL;
	}
	int rc = evfn_ctx_emit(ctx, "loop.again", NULL, 0, NULL);
	return rc == 0 ? EVFN_OK : EVFN_FAIL;
}

static void
test_failure_hop_limit_dead_letters_loops(void **state)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_max_hops(o, 5));
	ASSERT_RC(evfn_rt_options_set_max_hops(o, 0), EVFN_ERANGE);
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, "pp", ping_pong, NULL, NULL, NULL));
	ASSERT_OK(evfn_subscribe(rt, "loop.#", "pp"));
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_emit(rt, "loop.start", NULL, 0, NULL));
	/* Hops 0..5 run; hop 6 is accepted and dead-lettered. */
	/* Hop 5's success is counted after it emitted hop 6, which was
	 * dead-lettered at admission: wait for both. */
	WAIT_FOR(stat_of(rt, "pp", EVFN_STAT_DEAD_LETTERED) == 1 &&
	                 stat_of(rt, "pp", EVFN_STAT_SUCCEEDED) == 6,
	         10000);
	/* Stored when it was counted. */
	ASSERT_EQ(evfn_dead_letter_count(rt), 1);
	ASSERT_EQ(stat_of(rt, "pp", EVFN_STAT_ACCEPTED), 7);
	evfn_dead_letter *dl;
	ASSERT_EQ(evfn_dead_letters(rt, &dl, 1, 0), 1);
	assert_string_equal(evfn_dead_letter_reason(dl), "loop_detected");
	ASSERT_EQ(evfn_event_hops(evfn_dead_letter_event(dl)), 6);
	/* Hop 6 came from hop 5's built child: its attributes survived. */
	assert_string_equal(evfn_event_subject(evfn_dead_letter_event(dl)),
	                    "kept");
	evfn_dead_letter_unref(dl);
	finish(rt);
}

/* ---- error text ----------------------------------------------------------- */

/* Fails with the payload as its error message. */
static int
fail_with_payload(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	evfn_ctx_set_error(ctx, evfn_event_data(ev, NULL));
	return EVFN_FAIL;
}

/* The length of the longest prefix of s that is whole UTF-8 sequences. */
static size_t
utf8_valid_prefix(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t n = s[i] < 0x80 ? 1 : s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : 2;
		if (i + n > len)
			break;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
		i += n;
	}
	return i;
}

static void
test_failure_long_error_is_cut_between_characters(void **state)
{
	evfn_rt *rt = new_runtime(1, 1);
	evfn_fn_options *fo = options(1000, 1);
	ASSERT_OK(evfn_register(rt, "utf8", fail_with_payload, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	/* 1023 is odd, so 2-byte characters straddle it; a 4-byte one at an
	 * offset of 1022 leaves 1 of its bytes in, at 1021 two of them. */
	static const char *const chars[] = {"\xc3\xa9", "\xf0\x9f\x98\x80",
	                                    "a\xf0\x9f\x98\x80",
	                                    "ab\xe2\x82\xac"};
	for (size_t c = 0; c < sizeof(chars) / sizeof(chars[0]); c++) {
		char msg[2048];
		size_t n = strlen(chars[c]), len = 0;
		while (len + n < sizeof(msg)) {
			memcpy(msg + len, chars[c], n);
			len += n;
		}
		msg[len] = '\0';
		ASSERT_RC(evfn_invoke(rt, "utf8", msg, len + 1, NULL, NULL),
		          EVFN_EFAILED);
		evfn_dead_letter *dl;
		ASSERT_EQ(evfn_dead_letters(rt, &dl, 1, 0), 1);
		const char *error = evfn_dead_letter_error(dl);
		size_t kept = strlen(error);
		assert_true(kept <= 1023 && kept > 1023 - 4);
		ASSERT_EQ(utf8_valid_prefix((const unsigned char *)error, kept),
		          kept);
		assert_memory_equal(error, msg, kept);
		evfn_dead_letter_unref(dl);
		ASSERT_EQ(evfn_dead_letter_purge(rt), 1);
	}
	finish(rt);
}

/* ---- event log ------------------------------------------------------------ */

static atomic_int kinds[16];

static void
on_record(const evfn_record *rec, void *arg)
{
	atomic_fetch_add(&kinds[evfn_record_get_kind(rec)], 1);
	assert_non_null(evfn_record_kind_name(evfn_record_get_kind(rec)));
	assert_string_equal(evfn_record_function(rec), "log");
	assert_non_null(evfn_event_id(evfn_record_event(rec)));
	if (evfn_record_get_kind(rec) == EVFN_RECORD_DEAD_LETTER) {
		ASSERT_EQ(evfn_record_code(rec), EVFN_EEXHAUSTED);
		ASSERT_EQ(evfn_record_attempt(rec), 2);
		assert_string_equal(evfn_record_error(rec), "downstream said 503");
	}
}

static int
log_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	size_t len;
	evfn_event_data(ev, &len);
	return len ? retry_always(ctx, ev, userdata) : EVFN_OK;
}

static void
test_failure_event_log_reports_starts_and_ends(void **state)
{
	memset(kinds, 0, sizeof(kinds));
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_event_log(o, on_record, NULL));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	evfn_fn_options *fo = options(1000, 2);
	ASSERT_OK(evfn_register(rt, "log", log_handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_invoke(rt, "log", NULL, 0, NULL, NULL));
	ASSERT_RC(evfn_invoke(rt, "log", "x", 1, NULL, NULL), EVFN_EEXHAUSTED);
	finish(rt);
	ASSERT_EQ(atomic_load(&kinds[EVFN_RECORD_START]), 3);
	ASSERT_EQ(atomic_load(&kinds[EVFN_RECORD_SUCCESS]), 1);
	ASSERT_EQ(atomic_load(&kinds[EVFN_RECORD_DEAD_LETTER]), 1);
	/* The first failed attempt announced its retry; the last did not. */
	ASSERT_EQ(atomic_load(&kinds[EVFN_RECORD_RETRY]), 1);
	assert_string_equal(evfn_record_kind_name(EVFN_RECORD_RETRY), "retry");
	assert_string_equal(evfn_record_kind_name(EVFN_RECORD_DEAD_LETTER),
	                    "dead_letter");
	assert_null(evfn_record_kind_name((evfn_record_kind)99));
}

/* ---- a dead letter is in the store once it is counted ---------------- */

static int
always_fail(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	evfn_ctx_set_error(ctx, "no");
	return EVFN_FAIL;
}

/* Holds the event log's DEAD_LETTER record, told after the event's end
 * was counted, until the test lets it go. */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static bool hold_in, hold_release;

static void
hold_dead_letter_record(const evfn_record *rec, void *arg)
{
	if (evfn_record_get_kind(rec) != EVFN_RECORD_DEAD_LETTER)
		return;
	pthread_mutex_lock(&hold_lock);
	hold_in = true;
	pthread_cond_broadcast(&hold_cond);
	while (!hold_release)
		pthread_cond_wait(&hold_cond, &hold_lock);
	pthread_mutex_unlock(&hold_lock);
}

static void
test_failure_dead_letter_stored_when_counted(void **state)
{
	hold_in = hold_release = false;
	evfn_rt *rt = test_runtime_new(1, 1, hold_dead_letter_record);
	evfn_fn_options *fo = options(1000, 1);
	ASSERT_OK(evfn_register(rt, "fails", always_fail, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_invoke_async(rt, "fails", "x", 1, NULL));
	/* The worker is inside the event's aftermath now: the counter
	 * moved, and the store must hold the letter already. */
	pthread_mutex_lock(&hold_lock);
	while (!hold_in)
		pthread_cond_wait(&hold_cond, &hold_lock);
	pthread_mutex_unlock(&hold_lock);
	ASSERT_EQ(stat_of(rt, "fails", EVFN_STAT_DEAD_LETTERED), 1);
	ASSERT_EQ(evfn_dead_letter_count(rt), 1);
	evfn_dead_letter *dl;
	ASSERT_EQ(evfn_dead_letters(rt, &dl, 1, 0), 1);
	assert_string_equal(evfn_dead_letter_error(dl), "no");
	evfn_dead_letter_unref(dl);
	pthread_mutex_lock(&hold_lock);
	hold_release = true;
	pthread_cond_broadcast(&hold_cond);
	pthread_mutex_unlock(&hold_lock);
	finish(rt);
}

/* Under load from two workers, no snapshot ever counts more dead letters
 * (dead-lettered and expired) than the store holds right after it. */
static void
test_failure_dead_letters_never_outrun_the_store(void **state)
{
	enum { N = 2000 };
	evfn_rt *rt = test_runtime_new(2, 2, NULL);
	evfn_fn_options *fo = options(1000, 1);
	ASSERT_OK(evfn_register(rt, "fails", always_fail, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	for (int i = 0; i < N; i++)
		ASSERT_OK(evfn_invoke_async(rt, "fails", "x", 1, NULL));
	uint64_t ended = 0;
	int64_t until = test_now_ms() + 10000;
	while (ended < N && test_now_ms() < until) {
		evfn_stats *s;
		ASSERT_OK(evfn_stats_take(rt, "fails", &s));
		ended = evfn_stats_value(s, EVFN_STAT_DEAD_LETTERED) +
		        evfn_stats_value(s, EVFN_STAT_EXPIRED);
		evfn_stats_free(s);
		size_t stored = evfn_dead_letter_count(rt);
		if (stored < ended)
			fail_msg("a snapshot counted %llu dead letters, the "
			         "store held %zu after it",
			         (unsigned long long)ended, stored);
	}
	ASSERT_EQ(ended, N);
	finish(rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_failure_deadline_fences_late_return_and_keeps_capacity),
		TEST(test_failure_stuck_worker_gives_back_what_it_took),
		TEST(test_failure_return_after_deadline_is_a_timeout),
		TEST(test_failure_stuck_cap_makes_function_unhealthy),
		TEST(test_failure_max_age_expires_instead_of_retrying),
		TEST(test_failure_destinations_chain_and_carry_metadata),
		TEST(test_failure_unknown_destination_keeps_event_in_store),
		TEST(test_failure_dead_letter_list_replay_delete_purge),
		TEST(test_failure_idempotent_redelivery_returns_stored_response),
		TEST(test_failure_hop_limit_dead_letters_loops),
		TEST(test_failure_long_error_is_cut_between_characters),
		TEST(test_failure_event_log_reports_starts_and_ends),
		TEST(test_failure_dead_letter_stored_when_counted),
		TEST(test_failure_dead_letters_never_outrun_the_store),
	};
	return evfn_test_main("failure", tests);
}
