/* SPDX-License-Identifier: MIT */
/*
 * Chaos: many events over several functions whose handlers, by a seeded
 * PRNG, succeed, retry, fail, overrun their deadlines and emit children,
 * from eight producer threads (half publishing one event at a time, half
 * in batches of 1..16 with evfn_publish_batch(); two of the first half
 * send straight to "alpha" with evfn_publish_to(), the path that takes
 * no lock for plain events, while the runtime's other paths take events
 * for alpha under the lock) that also give some
 * events ordering keys or delays and cancel some of what they sent, with
 * a drain in the middle.
 * One function takes batches behind a rate limit and a circuit breaker.
 * Afterwards every accepted (event, function) pair ended exactly once in
 * exactly one terminal state (succeeded, dead-lettered, expired, handed
 * back, cancelled), as told by the event log, and the counters agree with
 * what was seen.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define EVENTS 20000
#else
#define EVENTS 100000
#endif
#define PRODUCERS 8
#define BATCH_MAX 16
#define MAX_SEQ (EVENTS * 3 + 16)
#define NFN 5

static const char *const fn_names[NFN] = {"alpha", "beta", "gamma", "child",
                                          "delta"};

/* Per (seq, function): accepted by admission, and terminal records. */
static atomic_uchar accepted[MAX_SEQ][NFN];
static atomic_uchar ends[MAX_SEQ][NFN];
static atomic_int kind_count[16];
static atomic_int cancels;
static atomic_int handed_back_cb;
static evfn_rt *rt;

static int
fn_index(const char *name)
{
	for (int i = 0; i < NFN; i++)
		if (strcmp(name, fn_names[i]) == 0)
			return i;
	fail_msg("unknown function %s", name);
	return -1;
}

static void
mark_accepted(uint64_t seq, const char *topic)
{
	assert_true(seq < MAX_SEQ);
	if (strcmp(topic, "chaos.a") == 0) {
		atomic_store(&accepted[seq][0], 1);
		atomic_store(&accepted[seq][1], 1);
	} else if (strcmp(topic, "chaos.b") == 0) {
		atomic_store(&accepted[seq][2], 1);
		atomic_store(&accepted[seq][4], 1);
	} else {
		atomic_store(&accepted[seq][3], 1);
	}
}

static void
on_record(const evfn_record *rec, void *arg)
{
	evfn_record_kind kind = evfn_record_get_kind(rec);
	atomic_fetch_add(&kind_count[kind], 1);
	if (kind == EVFN_RECORD_START || kind == EVFN_RECORD_TIMEOUT ||
	    kind == EVFN_RECORD_LATE || kind == EVFN_RECORD_RETRY ||
	    kind >= EVFN_RECORD_CIRCUIT_OPEN)
		return;
	uint64_t seq = evfn_event_seq(evfn_record_event(rec));
	assert_true(seq < MAX_SEQ);
	atomic_fetch_add(&ends[seq][fn_index(evfn_record_function(rec))], 1);
}

static void
on_handback(const evfn_event *ev, const char *fn, void *arg)
{
	atomic_fetch_add(&handed_back_cb, 1);
}

static unsigned
roll_of(evfn_ctx *ctx, const evfn_event *ev, uintptr_t salt)
{
	return (unsigned)(test_mix64(evfn_event_seq(ev) * 7919 + salt * 131 +
	                      evfn_ctx_attempt(ctx)) %
	                  1000);
}

static int
chaos_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	uintptr_t salt = (uintptr_t)userdata;
	unsigned roll = roll_of(ctx, ev, salt);
	/* Batch items beyond the first fail on their own rolls. */
	for (size_t i = 1; i < evfn_ctx_batch_size(ctx); i++) {
		unsigned r = roll_of(ctx, evfn_ctx_batch_event(ctx, i), salt);
		if (r >= 800)
			evfn_ctx_batch_item_failed(ctx, i,
			                           r < 950 ? EVFN_RETRY : EVFN_FAIL);
	}
	if (roll < 600)
		return EVFN_OK;
	if (roll < 850) {
		evfn_ctx_errorf(ctx, "transient %u", roll);
		return EVFN_RETRY;
	}
	if (roll < 900)
		return EVFN_FAIL;
	if (roll < 902) {
		/* Overrun the 10 ms deadline: fenced, retried, late. */
		test_sleep_ms(25);
		return EVFN_OK;
	}
	if (salt != 3) { /* children do not have children */
		uint64_t seq;
		if (evfn_ctx_emit(ctx, "chaos.child", "c", 1, &seq) == 0)
			mark_accepted(seq, "chaos.child");
	}
	return EVFN_OK;
}

/* Every 10th event gets an ordering key, every 25th a short delay. */
static evfn_event *
make_one(const char *topic, int i)
{
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, topic, &i, sizeof(i)));
	if (i % 10 == 0) {
		char key[8];
		snprintf(key, sizeof(key), "k%d", i % 16);
		ASSERT_OK(evfn_event_set_ordering_key(ev, key));
	}
	if (i % 25 == 0)
		ASSERT_OK(evfn_event_set_delay_ms(ev, i % 5));
	return ev;
}

static bool
refused_for_now(int rc)
{
	return rc == EVFN_EQUEUEFULL || rc == EVFN_EUNHEALTHY ||
	       rc == EVFN_ECIRCUITOPEN;
}

/* Publishes events i..i+n-1 (topics by i and the producer's id) one by
 * one or as one batch, until taken or shut out, or one by one straight to
 * alpha (direct); marks what was taken. Returns the last sequence number
 * taken, or 0 at shutdown. */
static uint64_t
publish_some(uintptr_t id, int i, int n, bool batched, bool direct)
{
	evfn_event *evs[BATCH_MAX];
	const char *topics[BATCH_MAX];
	for (int j = 0; j < n; j++) {
		topics[j] = (i + j + (int)id) % 3 ? "chaos.a" : "chaos.b";
		evs[j] = make_one(topics[j], i + j);
	}
	/* A batch is one admission; single events are n of them. */
	int step = batched ? n : 1;
	uint64_t seq = 0;
	for (int j = 0; j < n; j += step) {
		int rc;
		while (refused_for_now(
			rc = batched  ? evfn_publish_batch(rt, NULL, evs, n, &seq)
			     : direct ? evfn_publish_to(rt, "alpha", evs[j], &seq)
			              : evfn_publish(rt, evs[j], &seq)))
			sched_yield();
		if (rc == EVFN_ESHUTDOWN) {
			seq = 0;
			break;
		}
		assert_int_equal(rc, 0);
		if (direct)
			atomic_store(&accepted[seq][0], 1);
		else
			for (int m = 0; m < step; m++)
				mark_accepted(seq + (uint64_t)m, topics[j + m]);
		seq += (uint64_t)step - 1;
	}
	for (int j = 0; j < n; j++)
		evfn_event_unref(evs[j]);
	return seq;
}

static void *
produce(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	bool batched = id % 2;
	bool direct = id % 4 == 0;
	uint64_t recent[4] = {0};
	int n;
	for (int i = 0; i < EVENTS / PRODUCERS; i += n) {
		n = batched ? 1 + (int)(test_mix64(id * 1000003u + (unsigned)i) %
		                       BATCH_MAX)
		            : 1;
		if (n > EVENTS / PRODUCERS - i)
			n = EVENTS / PRODUCERS - i;
		uint64_t seq = publish_some(id, i, n, batched, direct);
		if (!seq)
			break;
		/* Now and then, cancel what was sent a little earlier:
		 * waiting, running or already ended. */
		if (test_mix64(seq) % 20 == 0 && recent[i % 4]) {
			char id_str[24];
			snprintf(id_str, sizeof(id_str), "%llu",
			         (unsigned long long)recent[i % 4]);
			int rc = evfn_cancel(rt, NULL, id_str);
			assert_true(rc >= 1 || rc == EVFN_ENOENT);
			if (rc >= 1)
				atomic_fetch_add(&cancels, 1);
		}
		recent[i % 4] = seq;
	}
	return NULL;
}

static void
test_chaos_every_event_ends_exactly_once(void **state)
{
	memset(accepted, 0, sizeof(accepted));
	memset(ends, 0, sizeof(ends));
	memset(kind_count, 0, sizeof(kind_count));
	atomic_store(&cancels, 0);
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 2, 4));
	ASSERT_OK(evfn_rt_options_set_event_log(o, on_record, NULL));
	ASSERT_OK(evfn_rt_options_set_dead_letter_capacity(o, 100));
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_timeout_ms(fo, 10));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, 3));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, 4096));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_EXPONENTIAL, 1,
	                                      2.0, 4, EVFN_JITTER_FULL));
	for (uintptr_t i = 0; i < NFN - 1; i++)
		ASSERT_OK(evfn_register(rt, fn_names[i], chaos_handler,
		                        (void *)i, fo, NULL));
	/* delta: batches, behind a rate limit and a breaker. */
	ASSERT_OK(evfn_fn_options_set_batch(fo, 4, 1));
	ASSERT_OK(evfn_fn_options_set_rate_limit(fo, 200000, 64));
	ASSERT_OK(evfn_fn_options_set_circuit_breaker(fo, 8, 0, 1, 1000, 2,
	                                              EVFN_CIRCUIT_QUEUE));
	ASSERT_OK(evfn_register(rt, "delta", chaos_handler, (void *)4, fo,
	                        NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_subscribe(rt, "chaos.b", "delta"));
	ASSERT_OK(evfn_subscribe(rt, "chaos.a", "alpha"));
	ASSERT_OK(evfn_subscribe(rt, "chaos.a", "beta"));
	ASSERT_OK(evfn_subscribe(rt, "chaos.b", "gamma"));
	ASSERT_OK(evfn_subscribe(rt, "chaos.child", "child"));
	ASSERT_OK(evfn_rt_start(rt));

	pthread_t th[PRODUCERS];
	for (uintptr_t i = 0; i < PRODUCERS; i++)
		pthread_create(&th[i], NULL, produce, (void *)i);
	/* Drain in the middle of production. */
	WAIT_FOR(stat_of(rt, NULL, EVFN_STAT_ACCEPTED) >= EVENTS, 60000);
	int rc = evfn_rt_drain(rt, 5000, on_handback, NULL);
	assert_true(rc == 0 || rc == EVFN_ETIMEDOUT);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(th[i], NULL);
	WAIT_FOR(stat_of(rt, NULL, EVFN_STAT_IN_FLIGHT) == 0, 30000);
	assert_accounting(rt, NULL);

	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, NULL, &s));
	uint64_t acc = evfn_stats_value(s, EVFN_STAT_ACCEPTED);
	uint64_t succeeded = evfn_stats_value(s, EVFN_STAT_SUCCEEDED);
	uint64_t dead = evfn_stats_value(s, EVFN_STAT_DEAD_LETTERED);
	uint64_t expired = evfn_stats_value(s, EVFN_STAT_EXPIRED);
	uint64_t handed = evfn_stats_value(s, EVFN_STAT_HANDED_BACK);
	uint64_t timeouts = evfn_stats_value(s, EVFN_STAT_TIMEOUTS);
	uint64_t cancelled = evfn_stats_value(s, EVFN_STAT_CANCELLED);
	uint64_t batches = evfn_stats_value(s, EVFN_STAT_BATCHES);
	evfn_stats_free(s);
	WAIT_FOR(evfn_rt_free(rt) == 0, 30000); /* stuck threads end */

	uint64_t pairs = 0;
	for (int seq = 0; seq < MAX_SEQ; seq++)
		for (int f = 0; f < NFN; f++) {
			int a = atomic_load(&accepted[seq][f]);
			int e = atomic_load(&ends[seq][f]);
			if (a != e)
				fail_msg("event %d in %s: accepted %d, ended %d "
				         "times",
				         seq, fn_names[f], a, e);
			pairs += (uint64_t)a;
		}
	ASSERT_EQ(pairs, acc);
	ASSERT_EQ(atomic_load(&kind_count[EVFN_RECORD_SUCCESS]), succeeded);
	ASSERT_EQ(atomic_load(&kind_count[EVFN_RECORD_DEAD_LETTER]), dead);
	ASSERT_EQ(atomic_load(&kind_count[EVFN_RECORD_EXPIRED]), expired);
	ASSERT_EQ(atomic_load(&kind_count[EVFN_RECORD_HANDED_BACK]), handed);
	ASSERT_EQ(atomic_load(&handed_back_cb), handed);
	ASSERT_EQ(atomic_load(&kind_count[EVFN_RECORD_TIMEOUT]), timeouts);
	ASSERT_EQ(atomic_load(&kind_count[EVFN_RECORD_CANCELLED]), cancelled);
	ASSERT_EQ(acc, succeeded + dead + expired + handed + cancelled);
	/* The mix really happened. */
	assert_true(succeeded > 0 && dead > 0 && handed > 0 && batches > 0);
	assert_true(cancelled > 0 && atomic_load(&cancels) > 0);
	print_message("# chaos: %llu accepted, %llu succeeded, %llu dead, "
	              "%llu handed back, %llu cancelled, %llu timeouts, "
	              "%llu batches\n",
	              (unsigned long long)acc, (unsigned long long)succeeded,
	              (unsigned long long)dead, (unsigned long long)handed,
	              (unsigned long long)cancelled,
	              (unsigned long long)timeouts,
	              (unsigned long long)batches);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_chaos_every_event_ends_exactly_once),
	};
	return evfn_test_main("chaos", tests);
}
