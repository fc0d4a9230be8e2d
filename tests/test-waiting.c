/* SPDX-License-Identifier: MIT */
/*
 * Where accepted events wait, and what waiting costs. A function's queue
 * keeps events in order whether they wait bare or as records, in the
 * ring or behind it; a retry keeps what its dead letter reports while it
 * waits in its compact form; and none is lost when memory runs out: not
 * for the ring to grow, nor for a record to start, retry, cancel or hand
 * back an event in.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "dispatch-internal.h"
#include "harness.h"

/* The allocator of this test: allocations of fail_size bytes fail while
 * it is not 0 (a record, or one size of the queue's ring), the rest go
 * to the C library. Installed before evfn allocates. */
static atomic_size_t fail_size;
static atomic_int failed;
/* Allocations of count_size bytes, counted. */
static atomic_size_t count_size;
static atomic_int counted;

static bool
allowed(size_t n)
{
	if (n == atomic_load(&count_size))
		atomic_fetch_add(&counted, 1);
	if (n != atomic_load(&fail_size))
		return true;
	atomic_fetch_add(&failed, 1);
	return false;
}

static void *
sized_malloc(size_t n)
{
	return allowed(n) ? malloc(n) : NULL;
}

static void *
sized_realloc(void *p, size_t n)
{
	return allowed(n) ? realloc(p, n) : NULL;
}

static void *
sized_calloc(size_t n, size_t size)
{
	return allowed(n * size) ? calloc(n, size) : NULL;
}

static void
fail_allocations_of(size_t n)
{
	atomic_store(&failed, 0);
	atomic_store(&fail_size, n);
}

/* What the handler saw, in order. */
#define MAX_SEEN 4096

struct order {
	pthread_mutex_t lock;
	uint32_t seen[MAX_SEEN];
	int n;
};

static int
record_order(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct order *o = userdata;
	size_t len;
	const uint32_t *v = evfn_event_data(ev, &len);
	pthread_mutex_lock(&o->lock);
	if (o->n < MAX_SEEN)
		o->seen[o->n] = *v;
	o->n++;
	pthread_mutex_unlock(&o->lock);
	return EVFN_OK;
}

static int
seen_count(struct order *o)
{
	pthread_mutex_lock(&o->lock);
	int n = o->n;
	pthread_mutex_unlock(&o->lock);
	return n;
}

/* Errors the runtime logged. */
static atomic_int errors_logged;

static void
count_errors(evfn_log_level level, const char *msg, void *arg)
{
	if (level == EVFN_LOG_ERROR)
		atomic_fetch_add(&errors_logged, 1);
}

/* One worker, so that the order run is the order queued. */
static evfn_rt *
one_worker_runtime(struct order *o)
{
	memset(o->seen, 0, sizeof(o->seen));
	o->n = 0;
	pthread_mutex_init(&o->lock, NULL);
	atomic_store(&errors_logged, 0);
	evfn_rt_options *ro;
	ASSERT_OK(evfn_rt_options_new(&ro));
	ASSERT_OK(evfn_rt_options_set_workers(ro, 1, 1));
	ASSERT_OK(evfn_rt_options_set_log(ro, count_errors, NULL));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, ro));
	evfn_rt_options_free(ro);
	ASSERT_OK(evfn_register(rt, "f", record_order, o, NULL, NULL));
	ASSERT_OK(evfn_subscribe(rt, "t", "f"));
	return rt;
}

/* Emits v; keyed events (a key of their own) queue as records. */
static void
emit(evfn_rt *rt, uint32_t v, bool keyed)
{
	if (!keyed) {
		ASSERT_OK(evfn_emit(rt, "t", &v, sizeof(v), NULL));
		return;
	}
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "t", &v, sizeof(v)));
	char key[16];
	snprintf(key, sizeof(key), "k%u", (unsigned)v);
	ASSERT_OK(evfn_event_set_ordering_key(ev, key));
	ASSERT_OK(evfn_publish(rt, ev, NULL));
	evfn_event_unref(ev);
}

/* Publishes a uint32_t event of type "t" (fn NULL: to its subscribers)
 * or to fn, under the id given, for evfn_cancel() to find. */
static void
publish_with_id(evfn_rt *rt, const char *fn, const char *id, uint32_t v)
{
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, fn ? fn : "t", &v, sizeof(v)));
	ASSERT_OK(evfn_event_set_id(ev, id));
	ASSERT_OK(fn ? evfn_publish_to(rt, fn, ev, NULL)
	             : evfn_publish(rt, ev, NULL));
	evfn_event_unref(ev);
}

static void
assert_in_order(struct order *o, int n)
{
	ASSERT_EQ(seen_count(o), n);
	for (int i = 0; i < n; i++)
		if (o->seen[i] != (uint32_t)i)
			fail_msg("position %d ran event %u", i,
			         (unsigned)o->seen[i]);
}

static void
finish(evfn_rt *rt, struct order *o)
{
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
	pthread_mutex_destroy(&o->lock);
}

static void
test_queue_keeps_order_of_bare_events_and_records(void **state)
{
	static struct order o;
	evfn_rt *rt = one_worker_runtime(&o);
	ASSERT_OK(evfn_pause(rt, "f"));
	ASSERT_OK(evfn_rt_start(rt));
	/* Queued while paused: the ring grows several times. */
	int n = 0;
	for (; n < 1500; n++)
		emit(rt, (uint32_t)n, n % 3 == 0);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_QUEUED), 1500);
	/* Then queued while the worker takes from the front: the ring
	 * wraps around. */
	ASSERT_OK(evfn_resume(rt, "f"));
	for (; n < 3000; n++)
		emit(rt, (uint32_t)n, n % 5 == 0);
	WAIT_FOR(stat_of(rt, "f", EVFN_STAT_SUCCEEDED) == 3000, 10000);
	assert_in_order(&o, 3000);
	assert_accounting(rt, "f");
	finish(rt, &o);
}

static void
test_queue_keeps_order_when_its_ring_cannot_grow(void **state)
{
	static struct order o;
	evfn_rt *rt = one_worker_runtime(&o);
	ASSERT_OK(evfn_pause(rt, "f"));
	ASSERT_OK(evfn_rt_start(rt));
	/* The first ring has 16 slots; the next would take 32. */
	for (uint32_t v = 0; v < 16; v++)
		emit(rt, v, false);
	fail_allocations_of(32 * sizeof(uintptr_t));
	for (uint32_t v = 16; v < 26; v++)
		emit(rt, v, v % 2 == 0);
	assert_true(atomic_load(&failed) > 0);
	/* Memory is back, but these must queue behind the ones that found
	 * no slot. */
	fail_allocations_of(0);
	for (uint32_t v = 26; v < 40; v++)
		emit(rt, v, false);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_QUEUED), 40);
	ASSERT_OK(evfn_resume(rt, "f"));
	WAIT_FOR(stat_of(rt, "f", EVFN_STAT_SUCCEEDED) == 40, 10000);
	assert_in_order(&o, 40);
	assert_accounting(rt, "f");
	finish(rt, &o);
}

static void
test_queue_event_waits_for_memory_to_start(void **state)
{
	static struct order o;
	evfn_rt *rt = one_worker_runtime(&o);
	ASSERT_OK(evfn_pause(rt, "f"));
	ASSERT_OK(evfn_rt_start(rt));
	for (uint32_t v = 0; v < 5; v++)
		emit(rt, v, false);
	/* No record can be made for the attempts: the events stay queued,
	 * in order, instead of being lost or run without one. */
	fail_allocations_of(sizeof(struct evfn__inv));
	ASSERT_OK(evfn_resume(rt, "f"));
	WAIT_FOR(atomic_load(&failed) > 0, 10000);
	ASSERT_EQ(seen_count(&o), 0);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_QUEUED), 5);
	/* Memory comes back: the next watchdog tick starts them. */
	fail_allocations_of(0);
	WAIT_FOR(stat_of(rt, "f", EVFN_STAT_SUCCEEDED) == 5, 10000);
	assert_in_order(&o, 5);
	assert_accounting(rt, "f");
	finish(rt, &o);
}

static void
test_queue_cancel_without_memory_is_enomem(void **state)
{
	static struct order o;
	evfn_rt *rt = one_worker_runtime(&o);
	ASSERT_OK(evfn_pause(rt, "f"));
	ASSERT_OK(evfn_rt_start(rt));
	publish_with_id(rt, NULL, "the-one", 0);

	fail_allocations_of(sizeof(struct evfn__inv));
	ASSERT_RC(evfn_cancel(rt, "f", "the-one"), EVFN_ENOMEM);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_QUEUED), 1);
	fail_allocations_of(0);
	ASSERT_RC(evfn_cancel(rt, "f", "the-one"), 1);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_CANCELLED), 1);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_QUEUED), 0);
	assert_accounting(rt, "f");
	finish(rt, &o);
}

struct handbacks {
	atomic_int n;
	uint32_t last;
};

static void
count_handback(const evfn_event *ev, const char *fn_name, void *arg)
{
	struct handbacks *h = arg;
	size_t len;
	const uint32_t *v = evfn_event_data(ev, &len);
	assert_string_equal(fn_name, "f");
	/* Oldest first, each once. */
	ASSERT_EQ(*v, (uint32_t)atomic_load(&h->n));
	atomic_fetch_add(&h->n, 1);
}

static void *
memory_comes_back(void *arg)
{
	(void)arg;
	/* The drain may start before or after this: either way it must
	 * hand every event back within its grace. */
	test_sleep_ms(30);
	fail_allocations_of(0);
	return NULL;
}

static void
test_queue_drain_hands_back_once_memory_returns(void **state)
{
	static struct order o;
	evfn_rt *rt = one_worker_runtime(&o);
	ASSERT_OK(evfn_pause(rt, "f"));
	ASSERT_OK(evfn_rt_start(rt));
	for (uint32_t v = 0; v < 20; v++)
		emit(rt, v, false);
	fail_allocations_of(sizeof(struct evfn__inv));
	pthread_t th;
	pthread_create(&th, NULL, memory_comes_back, NULL);
	struct handbacks h = {0};
	ASSERT_OK(evfn_rt_drain(rt, 10000, count_handback, &h));
	pthread_join(th, NULL);
	ASSERT_EQ(atomic_load(&h.n), 20);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_HANDED_BACK), 20);
	assert_accounting(rt, "f");
	ASSERT_OK(evfn_rt_free(rt));
	pthread_mutex_destroy(&o.lock);
}

struct in_order {
	int n;
	uint32_t last;
};

static void
check_order(const evfn_event *ev, const char *fn_name, void *arg)
{
	struct in_order *o = arg;
	size_t len;
	const uint32_t *v = evfn_event_data(ev, &len);
	if (o->n > 0 && *v != o->last + 1)
		fail_msg("handed back %u after %u", (unsigned)*v,
		         (unsigned)o->last);
	o->last = *v;
	o->n++;
}

static void
test_queue_free_drops_and_logs_what_it_cannot_hand_back(void **state)
{
	/* Memory never comes back: the events (bare and as records) are
	 * dropped at free, with an error logged, and nothing leaks (the
	 * sanitizer builds check that). */
	static struct order o;
	evfn_rt *rt = one_worker_runtime(&o);
	ASSERT_OK(evfn_pause(rt, "f"));
	ASSERT_OK(evfn_rt_start(rt));
	for (uint32_t v = 0; v < 3; v++)
		emit(rt, v, v == 1);
	fail_allocations_of(sizeof(struct evfn__inv));
	struct handbacks h = {0};
	ASSERT_RC(evfn_rt_drain(rt, 20, count_handback, &h),
	          EVFN_ETIMEDOUT);
	ASSERT_OK(evfn_rt_free(rt));
	fail_allocations_of(0);
	ASSERT_EQ(atomic_load(&h.n), 0);
	assert_true(atomic_load(&errors_logged) >= 1);
	ASSERT_EQ(seen_count(&o), 0);
	pthread_mutex_destroy(&o.lock);
}

static void
test_queue_drain_of_a_deep_queue_needs_few_records(void **state)
{
	/* Queued events wait without records: handing them back makes
	 * records a chunk at a time, reusing them, in order. */
	static struct order o;
	evfn_rt *rt = one_worker_runtime(&o);
	ASSERT_OK(evfn_pause(rt, "f"));
	ASSERT_OK(evfn_rt_start(rt));
	enum { DEEP = 20000 };
	for (uint32_t v = 0; v < DEEP; v++)
		emit(rt, v, false);
	atomic_store(&counted, 0);
	atomic_store(&count_size, sizeof(struct evfn__inv));
	struct in_order seen = {0};
	ASSERT_OK(evfn_rt_drain(rt, 10000, check_order, &seen));
	atomic_store(&count_size, 0);
	ASSERT_EQ(seen.n, DEEP);
	assert_true(atomic_load(&counted) <= DEEP / 8);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_HANDED_BACK), DEEP);
	assert_accounting(rt, "f");
	ASSERT_OK(evfn_rt_free(rt));
	pthread_mutex_destroy(&o.lock);
}

static void
test_queue_free_hands_back_what_drain_could_not(void **state)
{
	static struct order o;
	evfn_rt *rt = one_worker_runtime(&o);
	ASSERT_OK(evfn_pause(rt, "f"));
	ASSERT_OK(evfn_rt_start(rt));
	for (uint32_t v = 0; v < 3; v++)
		emit(rt, v, false);
	fail_allocations_of(sizeof(struct evfn__inv));
	struct handbacks h = {0};
	ASSERT_RC(evfn_rt_drain(rt, 20, count_handback, &h),
	          EVFN_ETIMEDOUT);
	ASSERT_EQ(atomic_load(&h.n), 0);
	fail_allocations_of(0);
	ASSERT_OK(evfn_rt_free(rt));
	ASSERT_EQ(atomic_load(&h.n), 3);
	pthread_mutex_destroy(&o.lock);
}

/* ---- retries ---------------------------------------------------------- */

/* Fails each attempt with an error naming it, until `until` attempts
 * (0: always). */
static int
fail_until(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	unsigned until = *(const unsigned *)userdata;
	unsigned attempt = evfn_ctx_attempt(ctx);
	if (until && attempt >= until)
		return EVFN_OK;
	evfn_ctx_errorf(ctx, "attempt %u failed", attempt);
	return EVFN_RETRY;
}

static evfn_rt *
retry_runtime(unsigned *until, int attempts, int64_t backoff_ms)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, attempts));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED,
	                                      backoff_ms, 1.0, backoff_ms,
	                                      EVFN_JITTER_NONE));
	ASSERT_OK(evfn_register(rt, "r", fail_until, until, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	return rt;
}

static void
test_waiting_retry_keeps_what_its_dead_letter_reports(void **state)
{
	/* Three attempts, each waiting for the next in the compact form:
	 * the count, the last error and the attempt times survive it. */
	unsigned until = 0;
	evfn_rt *rt = retry_runtime(&until, 3, 5);
	ASSERT_OK(evfn_invoke_async(rt, "r", "x", 1, NULL));
	WAIT_FOR(evfn_dead_letter_count(rt) == 1, 10000);
	evfn_dead_letter *dl;
	ASSERT_EQ(evfn_dead_letters(rt, &dl, 1, 0), 1);
	ASSERT_EQ(evfn_dead_letter_attempts(dl), 3);
	assert_string_equal(evfn_dead_letter_error(dl), "attempt 3 failed");
	ASSERT_RC(evfn_dead_letter_code(dl), EVFN_EEXHAUSTED);
	int64_t first = evfn_dead_letter_first_attempt(dl);
	int64_t last = evfn_dead_letter_last_attempt(dl);
	/* Two backoffs of 5 ms apart. */
	assert_true(first > 0 && last - first >= 10 * 1000000);
	evfn_dead_letter_unref(dl);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_RETRIES), 2);
	assert_accounting(rt, "r");
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

static void
count_any_handback(const evfn_event *ev, const char *fn_name, void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

static void
test_waiting_retries_cancel_and_hand_back(void **state)
{
	/* An hour's backoff: they wait until taken out. */
	unsigned until = 0;
	evfn_rt *rt = retry_runtime(&until, 5, 3600 * 1000);
	for (int i = 0; i < 10; i++) {
		char id[8];
		snprintf(id, sizeof(id), "e%d", i);
		publish_with_id(rt, "r", id, (uint32_t)i);
	}
	WAIT_FOR(stat_of(rt, "r", EVFN_STAT_WAITING_RETRY) == 10, 10000);
	ASSERT_RC(evfn_cancel(rt, "r", "e3"), 1);
	ASSERT_RC(evfn_cancel(rt, NULL, "e7"), 1);
	ASSERT_RC(evfn_cancel(rt, "r", "e3"), EVFN_ENOENT);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_WAITING_RETRY), 8);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_CANCELLED), 2);
	atomic_int handed = 0;
	ASSERT_OK(evfn_rt_drain(rt, 10000, count_any_handback, &handed));
	ASSERT_EQ(atomic_load(&handed), 8);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_HANDED_BACK), 8);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_WAITING_RETRY), 0);
	assert_accounting(rt, "r");
	ASSERT_OK(evfn_rt_free(rt));
}

/* Empties the runtime's free list of records, so that the next record
 * must come from the allocator. A retry's record went there when the
 * retry was compacted, and nothing else is in flight here. */
static void
drop_free_records(evfn_rt *rt)
{
	evfn__lock_acquire(&rt->lock);
	evfn__inv_pool_free(&rt->inv_pool);
	evfn__lock_release(&rt->lock);
}

static void
test_waiting_retry_waits_for_memory_when_due(void **state)
{
	unsigned until = 2; /* the second attempt succeeds */
	evfn_rt *rt = retry_runtime(&until, 3, 200);
	ASSERT_OK(evfn_invoke_async(rt, "r", "x", 1, NULL));
	WAIT_FOR(stat_of(rt, "r", EVFN_STAT_WAITING_RETRY) == 1, 10000);
	/* Due, but no record can be made for it: it keeps waiting. */
	drop_free_records(rt);
	fail_allocations_of(sizeof(struct evfn__inv));
	WAIT_FOR(atomic_load(&failed) > 0, 10000);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_WAITING_RETRY), 1);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_SUCCEEDED), 0);
	fail_allocations_of(0);
	WAIT_FOR(stat_of(rt, "r", EVFN_STAT_SUCCEEDED) == 1, 10000);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_ATTEMPTS), 2);
	assert_accounting(rt, "r");
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

static void
test_waiting_retry_cancel_without_memory_is_enomem(void **state)
{
	unsigned until = 0;
	evfn_rt *rt = retry_runtime(&until, 5, 3600 * 1000);
	publish_with_id(rt, "r", "the-one", 0);
	WAIT_FOR(stat_of(rt, "r", EVFN_STAT_WAITING_RETRY) == 1, 10000);
	drop_free_records(rt);
	fail_allocations_of(sizeof(struct evfn__inv));
	ASSERT_RC(evfn_cancel(rt, "r", "the-one"), EVFN_ENOMEM);
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_WAITING_RETRY), 1);
	/* Drain cannot hand it back either, until memory returns. */
	pthread_t th;
	pthread_create(&th, NULL, memory_comes_back, NULL);
	atomic_int handed = 0;
	ASSERT_OK(evfn_rt_drain(rt, 10000, count_any_handback, &handed));
	pthread_join(th, NULL);
	ASSERT_EQ(atomic_load(&handed), 1);
	assert_accounting(rt, "r");
	ASSERT_OK(evfn_rt_free(rt));
}

int
main(void)
{
	if (evfn_set_allocator(sized_malloc, sized_realloc, sized_calloc,
	                       free) != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		TEST(test_queue_keeps_order_of_bare_events_and_records),
		TEST(test_queue_keeps_order_when_its_ring_cannot_grow),
		TEST(test_queue_event_waits_for_memory_to_start),
		TEST(test_queue_cancel_without_memory_is_enomem),
		TEST(test_queue_drain_hands_back_once_memory_returns),
		TEST(test_queue_free_hands_back_what_drain_could_not),
		TEST(test_queue_drain_of_a_deep_queue_needs_few_records),
		TEST(test_queue_free_drops_and_logs_what_it_cannot_hand_back),
		TEST(test_waiting_retry_keeps_what_its_dead_letter_reports),
		TEST(test_waiting_retries_cancel_and_hand_back),
		TEST(test_waiting_retry_waits_for_memory_when_due),
		TEST(test_waiting_retry_cancel_without_memory_is_enomem),
	};
	return evfn_test_main("waiting", tests);
}
