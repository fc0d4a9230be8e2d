/* SPDX-License-Identifier: MIT */
/*
 * Admission and the pick that starts queued work: events that end inside
 * the pick (expired by their maximum age, answered by an idempotency hit)
 * while the next event of their ordering key queues behind them, on the
 * pool and on the loop. Each case runs under a hang guard, so a runtime
 * that stops answering fails the test instead of blocking it. The
 * property case mixes keys, ages, duplicate ids and outcomes from a
 * seeded PRNG with one worker kept busy, and checks that every accepted
 * event ends exactly once, each key's events start in publish order, and
 * the counters balance at every snapshot.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"

/* ---- helpers ---------------------------------------------------------- */

static int
publish(evfn_rt *rt, const char *fn, const char *key, const char *id)
{
	struct test_event_attrs a = {.key = key, .id = id};
	return test_publish_to(rt, fn, NULL, a, NULL);
}

/* Waits until at least ms have passed since since_ms: the maximum age is
 * a matter of time, so time itself is the condition. */
static void
let_age(int64_t since_ms, int64_t ms)
{
	while (test_now_ms() < since_ms + ms)
		test_sleep_ms(since_ms + ms - test_now_ms());
}

/* Whether the runtime has nothing left that has not ended. */
static bool
all_ended(evfn_rt *rt)
{
	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, NULL, &s));
	uint64_t left = evfn_stats_value(s, EVFN_STAT_QUEUED) +
	                evfn_stats_value(s, EVFN_STAT_IN_FLIGHT) +
	                evfn_stats_value(s, EVFN_STAT_WAITING_RETRY) +
	                evfn_stats_value(s, EVFN_STAT_DELAYED);
	evfn_stats_free(s);
	return left == 0;
}

/* The blocker: a handler that keeps its worker (or the loop) until the
 * test lets it go. */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static bool hold_released;
static atomic_int holding;

static int
hold(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	pthread_mutex_lock(&hold_lock);
	atomic_store(&holding, 1);
	while (!hold_released)
		pthread_cond_wait(&hold_cond, &hold_lock);
	hold_released = false;
	atomic_store(&holding, 0);
	pthread_mutex_unlock(&hold_lock);
	return EVFN_OK;
}

/* Occupies the only worker (or the loop) with the blocker. */
static void
hold_start(evfn_rt *rt)
{
	ASSERT_OK(evfn_invoke_async(rt, "hold", NULL, 0, NULL));
	WAIT_FOR(atomic_load(&holding), 10000);
}

static void
hold_release(void)
{
	pthread_mutex_lock(&hold_lock);
	hold_released = true;
	pthread_cond_broadcast(&hold_cond);
	pthread_mutex_unlock(&hold_lock);
	/* Let go once it saw it, so that the next hold is a new one. */
	WAIT_FOR(!atomic_load(&holding), 10000);
}

static void
register_hold(evfn_rt *rt, evfn_executor executor)
{
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_timeout_ms(fo, 60000));
	ASSERT_OK(evfn_fn_options_set_executor(fo, executor));
	ASSERT_OK(evfn_register(rt, "hold", hold, NULL, fo, NULL));
	evfn_fn_options_free(fo);
}

static int
ok(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	return EVFN_OK;
}

/* ---- one key's events ending inside the pick -------------------------- */

enum ending { BY_AGE, BY_IDEMPOTENCY };

/* Three events of one key, then a fresh unkeyed one, queue behind the
 * blocker; when it lets go, the first keyed event ends inside the pick
 * (too old, or already answered), the second of its key queues, and the
 * fresh one starts: the function must stay on the ready list once. */
static void
keyed_events_end_inside_the_pick(evfn_executor executor, enum ending how)
{
	test_hang_guard(30);
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	register_hold(rt, executor);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, 1));
	ASSERT_OK(evfn_fn_options_set_executor(fo, executor));
	if (how == BY_AGE)
		ASSERT_OK(evfn_fn_options_set_max_age_ms(fo, 300));
	else
		ASSERT_OK(evfn_fn_options_set_idempotency(fo, 60000, NULL));
	ASSERT_OK(evfn_register(rt, "keyed", ok, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	if (how == BY_IDEMPOTENCY) {
		/* Answered once: its duplicates are hits. */
		ASSERT_OK(publish(rt, "keyed", NULL, "dup"));
		WAIT_FOR(stat_of(rt, "keyed", EVFN_STAT_SUCCEEDED) == 1, 10000);
	}

	hold_start(rt);
	int64_t t0 = test_now_ms();
	for (int i = 0; i < 3; i++)
		ASSERT_OK(publish(rt, "keyed", "k",
		                  how == BY_IDEMPOTENCY ? "dup" : NULL));
	if (how == BY_AGE)
		let_age(t0, 350);
	ASSERT_OK(publish(rt, "keyed", NULL, NULL));
	hold_release();

	WAIT_FOR(all_ended(rt), 20000);
	assert_accounting(rt, "keyed");
	if (how == BY_AGE) {
		/* The fresh one too, if this machine took its age to start
		 * it. */
		uint64_t expired = stat_of(rt, "keyed", EVFN_STAT_EXPIRED);
		assert_true(expired >= 3);
		ASSERT_EQ(stat_of(rt, "keyed", EVFN_STAT_SUCCEEDED),
		          4 - expired);
	} else {
		ASSERT_EQ(stat_of(rt, "keyed", EVFN_STAT_SUCCEEDED), 5);
		/* The first and the fresh one ran; the three were answered. */
		ASSERT_EQ(stat_of(rt, "keyed", EVFN_STAT_ATTEMPTS), 2);
	}
	/* Still answering: another round runs through. */
	ASSERT_OK(publish(rt, "keyed", "k", NULL));
	WAIT_FOR(all_ended(rt), 20000);
	assert_accounting(rt, "keyed");
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
	test_hang_guard_off();
}

static void
test_admit_expiry_in_pick_keeps_ready_list_sound(void **state)
{
	(void)state;
	keyed_events_end_inside_the_pick(EVFN_EXECUTOR_POOL, BY_AGE);
}

static void
test_admit_idempotency_hit_in_pick_keeps_ready_list_sound(void **state)
{
	(void)state;
	keyed_events_end_inside_the_pick(EVFN_EXECUTOR_POOL, BY_IDEMPOTENCY);
}

static void
test_admit_loop_expiry_in_pick_keeps_ready_list_sound(void **state)
{
	(void)state;
	keyed_events_end_inside_the_pick(EVFN_EXECUTOR_LOOP, BY_AGE);
}

static void
test_admit_loop_idempotency_hit_in_pick_keeps_ready_list_sound(void **state)
{
	(void)state;
	keyed_events_end_inside_the_pick(EVFN_EXECUTOR_LOOP, BY_IDEMPOTENCY);
}

/* ---- property: random mixes ------------------------------------------- */

#define MIX_FNS 4
#define MIX_KEYS 6
#define MIX_IDS 5
#define MIX_PHASES 10
#define MIX_PER_PHASE 40
#define MIX_MAX_SEQ (MIX_PHASES * (MIX_PER_PHASE + 1) + 64)

static const char *const mix_fns[MIX_FNS] = {"aged", "idem", "both", "plain"};

/* Per (seq, function): accepted by admission, terminal records seen. */
static atomic_uchar mix_accepted[MIX_MAX_SEQ][MIX_FNS];
static atomic_uchar mix_ends[MIX_MAX_SEQ][MIX_FNS];
static atomic_uchar mix_ran[MIX_MAX_SEQ][MIX_FNS];
/* What the mixes went through, over all rounds. */
static atomic_int mix_hits, mix_expired;
/* Per (function, key): the last sequence number that started. */
static atomic_ullong mix_last_start[MIX_FNS][MIX_KEYS];
static atomic_int mix_order_breaks;
static atomic_int mix_unknown_records;

static int
mix_fn_index(const char *name)
{
	for (int i = 0; i < MIX_FNS; i++)
		if (strcmp(name, mix_fns[i]) == 0)
			return i;
	return -1;
}

static void
mix_record(const evfn_record *rec, void *arg)
{
	(void)arg;
	evfn_record_kind kind = evfn_record_get_kind(rec);
	if (kind != EVFN_RECORD_SUCCESS && kind != EVFN_RECORD_DEAD_LETTER &&
	    kind != EVFN_RECORD_EXPIRED && kind != EVFN_RECORD_HANDED_BACK &&
	    kind != EVFN_RECORD_CANCELLED)
		return;
	int f = mix_fn_index(evfn_record_function(rec));
	uint64_t seq = evfn_event_seq(evfn_record_event(rec));
	if (f < 0)
		return; /* the blocker */
	if (seq >= MIX_MAX_SEQ) {
		atomic_fetch_add(&mix_unknown_records, 1);
		return;
	}
	atomic_fetch_add(&mix_ends[seq][f], 1);
	if (kind == EVFN_RECORD_EXPIRED)
		atomic_fetch_add(&mix_expired, 1);
	else if (kind == EVFN_RECORD_SUCCESS && !atomic_load(&mix_ran[seq][f]))
		atomic_fetch_add(&mix_hits, 1); /* answered from the store */
}

/* Succeeds, retries or fails by a hash of the event and attempt, and
 * checks that its key's events start in publish order. */
static int
mix_handler(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	int f = (int)(uintptr_t)u;
	const char *key = evfn_event_ordering_key(ev);
	uint64_t seq = evfn_event_seq(ev);
	if (seq < MIX_MAX_SEQ)
		atomic_store(&mix_ran[seq][f], 1);
	if (key) {
		int k = key[1] - '0';
		uint64_t last = atomic_exchange(&mix_last_start[f][k], seq);
		if (seq < last)
			atomic_fetch_add(&mix_order_breaks, 1);
	}
	unsigned roll = (unsigned)(test_mix64(seq * 31 + evfn_ctx_attempt(ctx)) %
	                           100);
	if (roll < 70)
		return EVFN_OK;
	return roll < 90 ? EVFN_RETRY : EVFN_FAIL;
}

static void
mix_register(evfn_rt *rt)
{
	register_hold(rt, EVFN_EXECUTOR_POOL);
	for (int f = 0; f < MIX_FNS; f++) {
		evfn_fn_options *fo;
		ASSERT_OK(evfn_fn_options_new(&fo));
		ASSERT_OK(evfn_fn_options_set_attempts(fo, 2));
		ASSERT_OK(evfn_fn_options_set_backoff(
			fo, EVFN_BACKOFF_FIXED, 1, 1.0, 1, EVFN_JITTER_NONE));
		if (f == 0 || f == 2)
			ASSERT_OK(evfn_fn_options_set_max_age_ms(fo, 30));
		if (f == 1 || f == 2)
			ASSERT_OK(evfn_fn_options_set_idempotency(fo, 60000,
			                                          NULL));
		ASSERT_OK(evfn_register(rt, mix_fns[f], mix_handler,
		                        (void *)(uintptr_t)f, fo, NULL));
		evfn_fn_options_free(fo);
	}
}

/* One random event: a function, maybe a key, maybe a duplicate id. */
static void
mix_publish_one(evfn_rt *rt, uint64_t *prng)
{
	uint64_t r = test_mix64((*prng)++);
	int f = (int)(r % MIX_FNS);
	char key[4], id[8];
	snprintf(key, sizeof(key), "k%d", (int)((r >> 8) % MIX_KEYS));
	snprintf(id, sizeof(id), "d%d", (int)((r >> 16) % MIX_IDS));
	bool keyed = (r >> 24) % 10 < 6;
	bool dup = (r >> 32) % 2 == 0;
	struct test_event_attrs a = {.key = keyed ? key : NULL,
	                             .id = dup ? id : NULL};
	uint64_t seq;
	ASSERT_OK(test_publish_to(rt, mix_fns[f], NULL, a, &seq));
	assert_true(seq < MIX_MAX_SEQ);
	atomic_store(&mix_accepted[seq][f], 1);
}

static void
mix_round(uint64_t seed)
{
	memset(mix_accepted, 0, sizeof(mix_accepted));
	memset(mix_ends, 0, sizeof(mix_ends));
	memset(mix_ran, 0, sizeof(mix_ran));
	memset(mix_last_start, 0, sizeof(mix_last_start));
	atomic_store(&mix_order_breaks, 0);
	atomic_store(&mix_unknown_records, 0);
	uint64_t prng = seed;
	evfn_rt *rt = test_runtime_new(1, 1, mix_record);
	mix_register(rt);
	ASSERT_OK(evfn_rt_start(rt));
	for (int phase = 0; phase < MIX_PHASES; phase++) {
		uint64_t r = test_mix64(prng++);
		/* Mostly with the worker kept busy while the phase queues,
		 * half of those long enough for the queue to pass its age. */
		bool held = r % 10 < 7, aged = (r >> 8) % 2 == 0;
		if (held)
			hold_start(rt);
		int64_t t0 = test_now_ms();
		for (int i = 0; i < MIX_PER_PHASE; i++)
			mix_publish_one(rt, &prng);
		if (held && aged)
			let_age(t0, 40);
		assert_accounting(rt, NULL);
		if (held)
			hold_release();
		for (int f = 0; f < MIX_FNS; f++)
			assert_accounting(rt, mix_fns[f]);
	}
	WAIT_FOR(all_ended(rt), 30000);
	assert_accounting(rt, NULL);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));

	uint64_t pairs = 0;
	for (int seq = 0; seq < MIX_MAX_SEQ; seq++)
		for (int f = 0; f < MIX_FNS; f++) {
			int a = atomic_load(&mix_accepted[seq][f]);
			int e = atomic_load(&mix_ends[seq][f]);
			if (a != e)
				fail_msg("seed %llu: event %d in %s: accepted "
				         "%d, ended %d times",
				         (unsigned long long)seed, seq,
				         mix_fns[f], a, e);
			pairs += (uint64_t)a;
		}
	ASSERT_EQ(pairs, MIX_PHASES * MIX_PER_PHASE);
	ASSERT_EQ(atomic_load(&mix_unknown_records), 0);
	if (atomic_load(&mix_order_breaks))
		fail_msg("seed %llu: %d starts out of key order",
		         (unsigned long long)seed,
		         atomic_load(&mix_order_breaks));
}

static void
test_admit_random_mixes_end_every_event(void **state)
{
	(void)state;
	test_hang_guard(240);
	atomic_store(&mix_hits, 0);
	atomic_store(&mix_expired, 0);
	uint64_t seeds[] = {1, 2, 3, 0x5eed, 0xfeedbeef};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		mix_round(seeds[i]);
	test_hang_guard_off();
	/* The mixes did end events inside the pick both ways. */
	print_message("# mixes: %d expired, %d idempotency hits\n",
	              atomic_load(&mix_expired), atomic_load(&mix_hits));
	assert_true(atomic_load(&mix_expired) > 0);
	assert_true(atomic_load(&mix_hits) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_admit_expiry_in_pick_keeps_ready_list_sound),
		TEST(test_admit_idempotency_hit_in_pick_keeps_ready_list_sound),
		TEST(test_admit_loop_expiry_in_pick_keeps_ready_list_sound),
		TEST(test_admit_loop_idempotency_hit_in_pick_keeps_ready_list_sound),
		TEST(test_admit_random_mixes_end_every_event),
	};
	return evfn_test_main("admit", tests);
}
