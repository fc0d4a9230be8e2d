/* SPDX-License-Identifier: MIT */
/*
 * The runtime end to end: delivery exactly once from several producers,
 * fan-out, reserved concurrency, full queues, the pool growing and
 * shrinking, the loop executor, embedding in a host event_base, drain and
 * hand-back, synchronous invoke, retries and dead letters, warm worker
 * state, the lifecycle errors, and a start that runs out of memory.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <evfn/libevent.h>

#include "failing-alloc.h"
#include "harness.h"

static evfn_rt *
new_runtime(int min, int max)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, min, max));
	ASSERT_OK(evfn_rt_options_set_idle_timeout_ms(o, 50));
	ASSERT_OK(evfn_rt_options_set_log(o, test_log_capture, NULL));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	return rt;
}

static void
finish(evfn_rt *rt)
{
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

/* ---- exactly once from four producers ---------------------------------- */

#define PRODUCERS 4
#define PER_PRODUCER 20000

struct seen {
	atomic_uchar hits[PRODUCERS * PER_PRODUCER];
	atomic_int total;
};

static int
record_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct seen *s = userdata;
	size_t len;
	const uint32_t *v = evfn_event_data(ev, &len);
	assert_int_equal(len, sizeof(*v));
	atomic_fetch_add(&s->hits[*v], 1);
	atomic_fetch_add(&s->total, 1);
	return EVFN_OK;
}

struct producer {
	evfn_rt *rt;
	uint32_t first;
	int full;
};

static void *
produce(void *arg)
{
	struct producer *p = arg;
	for (uint32_t i = 0; i < PER_PRODUCER; i++) {
		uint32_t v = p->first + i;
		int rc;
		while ((rc = evfn_emit(p->rt, "numbers", &v, sizeof(v), NULL)) ==
		       EVFN_EQUEUEFULL)
			p->full++, sched_yield();
		if (rc != 0)
			return (void *)(intptr_t)rc;
	}
	return NULL;
}

static void
test_runtime_delivers_each_event_once(void **state)
{
	static struct seen s;
	memset(&s, 0, sizeof(s));
	evfn_rt *rt = new_runtime(2, 4);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, 1024));
	ASSERT_OK(evfn_register(rt, "record", record_handler, &s, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_subscribe(rt, "numbers", "record"));
	ASSERT_OK(evfn_rt_start(rt));

	pthread_t th[PRODUCERS];
	struct producer p[PRODUCERS];
	for (int i = 0; i < PRODUCERS; i++) {
		p[i] = (struct producer){rt, (uint32_t)(i * PER_PRODUCER), 0};
		pthread_create(&th[i], NULL, produce, &p[i]);
	}
	for (int i = 0; i < PRODUCERS; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		ASSERT_OK((int)(intptr_t)ret);
	}
	/* Completions are recorded after the handler returns. */
	WAIT_FOR(stat_of(rt, "record", EVFN_STAT_SUCCEEDED) ==
	                 PRODUCERS * PER_PRODUCER,
	         30000);
	ASSERT_EQ(atomic_load(&s.total), PRODUCERS * PER_PRODUCER);
	for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
		if (atomic_load(&s.hits[i]) != 1)
			fail_msg("event %d delivered %d times", i,
			         atomic_load(&s.hits[i]));
	assert_accounting(rt, "record");
	finish(rt);
}

/* ---- fan-out ------------------------------------------------------------ */

static int
count_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	atomic_fetch_add((atomic_int *)userdata, 1);
	return EVFN_OK;
}

/* Busy-waits us microseconds: the gap between two publishes, a shape of
 * the workload rather than a wait for anything. */
static void
gap_us(int64_t us)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000 +
	               (t.tv_nsec - t0.tv_nsec) / 1000 <
	       us);
}

/* Sparse events meet workers in every phase of going idle: running,
 * spinning (a producer then wakes nobody), giving up the spin, asleep.
 * An event published as the spinner gives up must still run: each
 * group's last event is followed by nothing until it completes, so a
 * lost wake-up leaves it queued and the wait fails. */
static void
test_runtime_sparse_events_are_never_left_unseen(void **state)
{
	evfn_rt *rt = new_runtime(2, 2);
	atomic_int n = 0;
	ASSERT_OK(evfn_register(rt, "count", count_handler, &n, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	/* Gaps around the spin (~30 us) and the sleep. */
	static const int64_t gaps[] = {0, 3, 10, 25, 30, 35, 45, 80, 200};
	const int ngaps = (int)(sizeof(gaps) / sizeof(gaps[0]));
	int sent = 0;
	for (int round = 0; round < 400; round++) {
		for (int k = 0; k <= round % 3; k++) {
			gap_us(gaps[(round * 7 + k) % ngaps]);
			uint32_t v = (uint32_t)sent;
			ASSERT_OK(evfn_invoke_async(rt, "count", &v, sizeof(v),
			                            NULL));
			sent++;
		}
		WAIT_FOR(stat_of(rt, "count", EVFN_STAT_SUCCEEDED) ==
		                 (uint64_t)sent,
		         5000);
	}
	ASSERT_EQ(atomic_load(&n), sent);
	assert_accounting(rt, "count");
	finish(rt);
}

static void
test_runtime_fanout_reaches_each_subscriber_once(void **state)
{
	evfn_rt *rt = new_runtime(1, 2);
	atomic_int exact = 0, star = 0, hash = 0, other = 0;
	ASSERT_OK(evfn_register(rt, "exact", count_handler, &exact, NULL,
	                        NULL));
	ASSERT_OK(evfn_register(rt, "star", count_handler, &star, NULL, NULL));
	ASSERT_OK(evfn_register(rt, "hash", count_handler, &hash, NULL, NULL));
	ASSERT_OK(evfn_register(rt, "other", count_handler, &other, NULL,
	                        NULL));
	ASSERT_OK(evfn_subscribe(rt, "orders.created", "exact"));
	ASSERT_OK(evfn_subscribe(rt, "orders.*", "star"));
	ASSERT_OK(evfn_subscribe(rt, "orders.#", "hash"));
	/* Two patterns matching one topic still deliver once. */
	ASSERT_OK(evfn_subscribe(rt, "#", "hash"));
	ASSERT_OK(evfn_subscribe(rt, "billing.*", "other"));
	ASSERT_OK(evfn_rt_start(rt));

	ASSERT_OK(evfn_emit(rt, "orders.created", "x", 1, NULL));  /* all 3 */
	ASSERT_OK(evfn_emit(rt, "orders", "x", 1, NULL));          /* hash */
	ASSERT_OK(evfn_emit(rt, "orders.eu.created", "x", 1, NULL)); /* hash */
	ASSERT_RC(evfn_emit(rt, "nothing.here.x", NULL, 0, NULL), 0); /* # */
	WAIT_FOR(atomic_load(&hash) == 4 && atomic_load(&exact) == 1 &&
	                 atomic_load(&star) == 1,
	         10000);
	ASSERT_EQ(atomic_load(&other), 0);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_ACCEPTED), 6);
	finish(rt);
}

static void
test_runtime_emit_without_subscriber_is_enosub(void **state)
{
	evfn_rt *rt = new_runtime(0, 1);
	atomic_int n = 0;
	ASSERT_OK(evfn_register(rt, "f", count_handler, &n, NULL, NULL));
	ASSERT_OK(evfn_subscribe(rt, "a.*", "f"));
	ASSERT_RC(evfn_emit(rt, "a", "x", 1, NULL), EVFN_ENOSUB);
	ASSERT_RC(evfn_emit(rt, "b.c", "x", 1, NULL), EVFN_ENOSUB);
	ASSERT_RC(evfn_invoke_async(rt, "g", "x", 1, NULL), EVFN_ENOFN);
	ASSERT_RC(evfn_emit(rt, "", "x", 1, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_emit(rt, NULL, "x", 1, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_emit(rt, "a.b", NULL, 1, NULL), EVFN_EINVAL);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 0);
	ASSERT_OK(evfn_rt_free(rt));
}

/* ---- reserved concurrency ----------------------------------------------- */

struct par {
	atomic_int now, peak, done;
};

static int
parallel_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct par *p = userdata;
	int n = atomic_fetch_add(&p->now, 1) + 1;
	int peak = atomic_load(&p->peak);
	while (n > peak && !atomic_compare_exchange_weak(&p->peak, &peak, n))
		;
	/* Long enough for other workers to try to run alongside. */
	test_sleep_ms(2);
	atomic_fetch_sub(&p->now, 1);
	atomic_fetch_add(&p->done, 1);
	return EVFN_OK;
}

static void
test_runtime_concurrency_never_exceeds_reservation(void **state)
{
	evfn_rt *rt = new_runtime(4, 4);
	struct par limited = {0}, free_ = {0};
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_concurrency(fo, 2));
	ASSERT_OK(evfn_register(rt, "limited", parallel_handler, &limited, fo,
	                        NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_register(rt, "free", parallel_handler, &free_, NULL,
	                        NULL));
	ASSERT_OK(evfn_rt_start(rt));
	for (int i = 0; i < 100; i++) {
		ASSERT_OK(evfn_invoke_async(rt, "limited", NULL, 0, NULL));
		ASSERT_OK(evfn_invoke_async(rt, "free", NULL, 0, NULL));
	}
	WAIT_FOR(atomic_load(&limited.done) == 100 &&
	                 atomic_load(&free_.done) == 100,
	         20000);
	assert_true(atomic_load(&limited.peak) <= 2);
	ASSERT_EQ(stat_of(rt, "limited", EVFN_STAT_CONCURRENCY_PEAK),
	          atomic_load(&limited.peak));
	finish(rt);
}

/* ---- full queue --------------------------------------------------------- */

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	int entered;
};

static int
gated_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct gate *g = userdata;
	pthread_mutex_lock(&g->lock);
	g->entered++;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return EVFN_OK;
}

static void
gate_init(struct gate *g)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->open = false;
	g->entered = 0;
}

static void
gate_wait_entered(struct gate *g, int n)
{
	pthread_mutex_lock(&g->lock);
	while (g->entered < n)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void
gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void
gate_destroy(struct gate *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
}

static int payload_frees;

static void
count_free(void *data, void *arg)
{
	payload_frees++;
	free(data);
}

static void
test_runtime_full_queue_refuses_and_caller_keeps_event(void **state)
{
	evfn_rt *rt = new_runtime(1, 1);
	struct gate g;
	gate_init(&g);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, 3));
	ASSERT_OK(evfn_register(rt, "slow", gated_handler, &g, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_subscribe(rt, "work", "slow"));
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_emit(rt, "work", "1", 1, NULL));
	gate_wait_entered(&g, 1); /* one running, the queue is empty */
	for (int i = 0; i < 3; i++)
		ASSERT_OK(evfn_emit(rt, "work", "q", 1, NULL));
	ASSERT_RC(evfn_emit(rt, "work", "x", 1, NULL), EVFN_EQUEUEFULL);
	ASSERT_RC(evfn_invoke_async(rt, "slow", "x", 1, NULL),
	          EVFN_EQUEUEFULL);

	/* A refused built event is untouched and can be published later. */
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "work", "late", 4));
	ASSERT_RC(evfn_publish(rt, ev, NULL), EVFN_EQUEUEFULL);
	ASSERT_OK(evfn_event_set_subject(ev, "still mutable"));
	ASSERT_EQ(evfn_event_seq(ev), 0);

	/* A refused zero-copy payload is released exactly once, at once. */
	payload_frees = 0;
	ASSERT_RC(evfn_emit_ref(rt, "work", strdup("p"), 1, count_free, NULL,
	                        NULL),
	          EVFN_EQUEUEFULL);
	ASSERT_EQ(payload_frees, 1);

	ASSERT_EQ(stat_of(rt, "slow", EVFN_STAT_THROTTLED), 4);
	ASSERT_EQ(stat_of(rt, "slow", EVFN_STAT_QUEUED), 3);
	assert_accounting(rt, "slow");
	gate_open(&g);
	WAIT_FOR(stat_of(rt, "slow", EVFN_STAT_SUCCEEDED) == 4, 10000);
	ASSERT_OK(evfn_publish(rt, ev, NULL));
	ASSERT_RC(evfn_event_set_subject(ev, "frozen"), EVFN_EPERM);
	ASSERT_RC(evfn_publish(rt, ev, NULL), EVFN_EPERM);
	evfn_event_unref(ev);
	finish(rt);
	gate_destroy(&g);
}

/* ---- pool grows and shrinks --------------------------------------------- */

static void
test_runtime_pool_grows_under_backlog_and_shrinks_when_idle(void **state)
{
	evfn_rt *rt = new_runtime(1, 4);
	struct gate g;
	gate_init(&g);
	ASSERT_OK(evfn_register(rt, "slow", gated_handler, &g, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_EQ(evfn_rt_workers(rt), 1);
	for (int i = 0; i < 8; i++)
		ASSERT_OK(evfn_invoke_async(rt, "slow", NULL, 0, NULL));
	/* Four run at once only if the pool grew to its maximum. */
	gate_wait_entered(&g, 4);
	ASSERT_EQ(evfn_rt_workers(rt), 4);
	gate_open(&g);
	WAIT_FOR(stat_of(rt, "slow", EVFN_STAT_SUCCEEDED) == 8, 10000);
	/* Idle timeout is 50 ms: the extra workers exit, the minimum stays. */
	WAIT_FOR(evfn_rt_workers(rt) == 1, 10000);
	finish(rt);
	gate_destroy(&g);
}

/* ---- synchronous invoke, retries, dead letters --------------------------- */

static int
echo_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "echo:%.*s attempt %u", (int)len, d,
	                 evfn_ctx_attempt(ctx));
	ASSERT_OK(evfn_ctx_set_meta(ctx, "status", "201"));
	ASSERT_OK(evfn_ctx_set_meta(ctx, "header.X-Echo", "yes"));
	ASSERT_OK(evfn_ctx_set_meta(ctx, "status", "200"));
	ASSERT_RC(evfn_ctx_set_meta(ctx, "", "x"), EVFN_EINVAL);
	ASSERT_OK(evfn_ctx_respond(ctx, buf, (size_t)n));
	return EVFN_OK;
}

static int
flaky_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	/* Fails twice, then succeeds. */
	if (evfn_ctx_attempt(ctx) < 3) {
		evfn_ctx_set_error(ctx, "not yet");
		return EVFN_RETRY;
	}
	return echo_handler(ctx, ev, userdata);
}

static int
fail_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	evfn_ctx_set_meta(ctx, "status", "500"); /* dropped: not a success */
	evfn_ctx_set_error(ctx, "no good");
	return EVFN_FAIL;
}

static int
retry_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_RETRY;
}

static evfn_fn_options *
fast_retries(void)
{
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_EXPONENTIAL, 1,
	                                      2.0, 10, EVFN_JITTER_FULL));
	return fo;
}

static void
test_runtime_invoke_returns_response_after_retries(void **state)
{
	evfn_rt *rt = new_runtime(1, 2);
	evfn_fn_options *fo = fast_retries();
	ASSERT_OK(evfn_register(rt, "echo", echo_handler, NULL, NULL, NULL));
	ASSERT_OK(evfn_register(rt, "flaky", flaky_handler, NULL, fo, NULL));
	ASSERT_OK(evfn_register(rt, "fail", fail_handler, NULL, fo, NULL));
	ASSERT_OK(evfn_register(rt, "retry", retry_handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));

	void *resp;
	size_t len;
	ASSERT_OK(evfn_invoke(rt, "echo", "hi", 2, &resp, &len));
	ASSERT_EQ(len, strlen("echo:hi attempt 1"));
	assert_memory_equal(resp, "echo:hi attempt 1", len);
	evfn_free(resp);

	ASSERT_OK(evfn_invoke(rt, "flaky", "x", 1, &resp, &len));
	assert_memory_equal(resp, "echo:x attempt 3", len);
	evfn_free(resp);
	ASSERT_EQ(stat_of(rt, "flaky", EVFN_STAT_RETRIES), 2);
	ASSERT_EQ(stat_of(rt, "flaky", EVFN_STAT_ATTEMPTS_FAILED), 2);

	ASSERT_RC(evfn_invoke(rt, "fail", "x", 1, &resp, &len), EVFN_EFAILED);
	assert_null(resp);
	ASSERT_EQ(stat_of(rt, "fail", EVFN_STAT_ATTEMPTS), 1);
	ASSERT_RC(evfn_invoke(rt, "retry", "x", 1, NULL, NULL),
	          EVFN_EEXHAUSTED);
	ASSERT_EQ(stat_of(rt, "retry", EVFN_STAT_ATTEMPTS), 3);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_DEAD_LETTERED), 2);
	ASSERT_RC(evfn_invoke(rt, "nope", "x", 1, NULL, NULL), EVFN_ENOFN);
	assert_accounting(rt, NULL);
	finish(rt);
}

/* ---- loop executor -------------------------------------------------------- */

struct later {
	evfn_ctx *pending;
	atomic_int calls;
};

static int
pending_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct later *l = userdata;
	atomic_fetch_add(&l->calls, 1);
	/* Completes later, from another thread. */
	l->pending = ctx;
	return EVFN_PENDING;
}

static int
early_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	/* Completes before returning PENDING: must count once, as OK. */
	ASSERT_OK(evfn_ctx_complete(ctx, EVFN_OK));
	ASSERT_RC(evfn_ctx_complete(ctx, EVFN_OK), EVFN_EPERM);
	return EVFN_PENDING;
}

static int
pool_pending_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	ASSERT_RC(evfn_ctx_complete(ctx, EVFN_OK), EVFN_EPERM);
	return EVFN_PENDING;
}

static void
test_runtime_loop_handler_completes_later(void **state)
{
	evfn_rt *rt = new_runtime(1, 1);
	struct later l = {0};
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP));
	ASSERT_OK(evfn_register(rt, "later", pending_handler, &l, fo, NULL));
	ASSERT_OK(evfn_register(rt, "early", early_handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_register(rt, "poolpending", pool_pending_handler, NULL,
	                        NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_invoke_async(rt, "later", "x", 1, NULL));
	WAIT_FOR(atomic_load(&l.calls) == 1, 10000);
	ASSERT_EQ(stat_of(rt, "later", EVFN_STAT_IN_FLIGHT), 1);
	ASSERT_RC(evfn_ctx_complete(l.pending, EVFN_PENDING), EVFN_EINVAL);
	/* The handler may not have returned yet: either way it counts once. */
	ASSERT_OK(evfn_ctx_complete(l.pending, EVFN_OK));
	WAIT_FOR(stat_of(rt, "later", EVFN_STAT_SUCCEEDED) == 1, 10000);

	test_log_reset();
	ASSERT_OK(evfn_invoke(rt, "early", "x", 1, NULL, NULL));
	ASSERT_EQ(stat_of(rt, "early", EVFN_STAT_SUCCEEDED), 1);
	/* Each EVFN_EPERM says its cause in the log. */
	assert_true(test_log_contains(
		"early: evfn_ctx_complete: the attempt was already completed"));
	/* PENDING is a loop-executor outcome only. */
	ASSERT_RC(evfn_invoke(rt, "poolpending", "x", 1, NULL, NULL),
	          EVFN_EFAILED);
	assert_true(test_log_contains("poolpending: evfn_ctx_complete: a pool "
	                              "function's attempt ends when its "
	                              "handler returns"));
	assert_accounting(rt, NULL);
	finish(rt);
}

/* ---- embedded in a host event_base --------------------------------------- */

struct host {
	struct event_base *base;
	atomic_int loop_runs, pool_runs;
};

static int
host_loop_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct host *h = userdata;
	atomic_fetch_add(&h->loop_runs, 1);
	/* A synchronous invoke here would block the host's loop. */
	ASSERT_RC(evfn_invoke(evfn_ctx_rt(ctx), "pool", NULL, 0, NULL,
	                      NULL),
	          EVFN_EDEADLK);
	if (atomic_load(&h->loop_runs) == 3)
		event_base_loopbreak(h->base);
	return EVFN_OK;
}

static int
host_pool_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct host *h = userdata;
	atomic_fetch_add(&h->pool_runs, 1);
	/* Pool work hops to the host loop through an emit. */
	return evfn_ctx_emit(ctx, "to.loop", NULL, 0, NULL) == 0 ? EVFN_OK
	                                                         : EVFN_FAIL;
}

static void
test_runtime_embedded_on_host_event_base(void **state)
{
	evthread_use_pthreads();
	struct host h = {.base = event_base_new()};
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 1, 2));
	ASSERT_OK(evfn_rt_options_set_event_base(o, h.base));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	assert_ptr_equal(evfn_rt_event_base(rt), h.base);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP));
	ASSERT_OK(evfn_register(rt, "loop", host_loop_handler, &h, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_register(rt, "pool", host_pool_handler, &h, NULL, NULL));
	ASSERT_OK(evfn_subscribe(rt, "to.loop", "loop"));
	ASSERT_OK(evfn_rt_start(rt));
	for (int i = 0; i < 3; i++)
		ASSERT_OK(evfn_invoke_async(rt, "pool", NULL, 0, NULL));
	/* The host drives its own base (kept running while it has nothing
	 * pending yet); the loop handler breaks it. */
	event_base_loop(h.base, EVLOOP_NO_EXIT_ON_EMPTY);
	ASSERT_EQ(atomic_load(&h.loop_runs), 3);
	ASSERT_EQ(atomic_load(&h.pool_runs), 3);
	finish(rt);
	event_base_free(h.base);
}

/* ---- drain ---------------------------------------------------------------- */

struct handback {
	int count;
	char fn[32];
	uint64_t last_seq;
	bool out_of_order;
};

static void
on_handback(const evfn_event *ev, const char *fn_name, void *arg)
{
	struct handback *hb = arg;
	/* Oldest first within a function's queue. */
	if (strcmp(hb->fn, fn_name) == 0 && evfn_event_seq(ev) < hb->last_seq)
		hb->out_of_order = true;
	hb->last_seq = evfn_event_seq(ev);
	hb->count++;
	snprintf(hb->fn, sizeof(hb->fn), "%s", fn_name);
	assert_non_null(evfn_event_id(ev));
}

static void
test_runtime_drain_hands_back_queued_events(void **state)
{
	evfn_rt *rt = new_runtime(1, 1);
	struct gate g;
	gate_init(&g);
	evfn_fn_options *fo = fast_retries();
	ASSERT_OK(evfn_register(rt, "slow", gated_handler, &g, NULL, NULL));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 60000,
	                                      1.0, 60000, EVFN_JITTER_NONE));
	ASSERT_OK(evfn_register(rt, "retry", retry_handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_invoke_async(rt, "slow", NULL, 0, NULL));
	gate_wait_entered(&g, 1);
	ASSERT_OK(evfn_invoke_async(rt, "retry", NULL, 0, NULL));
	ASSERT_OK(evfn_invoke_async(rt, "retry", NULL, 0, NULL));
	for (int i = 0; i < 10; i++)
		ASSERT_OK(evfn_invoke_async(rt, "slow", NULL, 0, NULL));

	/* The worker is held in "slow": the two "retry" events are queued
	 * behind ten "slow" ones. Nothing in flight ends within 0 ms. */
	struct handback hb = {0};
	ASSERT_RC(evfn_rt_drain(rt, 0, on_handback, &hb), EVFN_ETIMEDOUT);
	ASSERT_EQ(hb.count, 12);
	assert_false(hb.out_of_order);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_HANDED_BACK), 12);
	ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_IN_FLIGHT), 1);
	assert_accounting(rt, NULL);
	ASSERT_RC(evfn_rt_drain(rt, 0, NULL, NULL), EVFN_EALREADY);
	ASSERT_RC(evfn_rt_free(rt), EVFN_EBUSY);
	ASSERT_RC(evfn_emit(rt, "x", NULL, 0, NULL), EVFN_ESHUTDOWN);
	ASSERT_RC(evfn_invoke_async(rt, "slow", NULL, 0, NULL),
	          EVFN_ESHUTDOWN);
	ASSERT_RC(evfn_register(rt, "late", retry_handler, NULL, NULL, NULL),
	          EVFN_ESHUTDOWN);
	ASSERT_RC(evfn_subscribe(rt, "x", "slow"), EVFN_ESHUTDOWN);
	ASSERT_RC(evfn_rt_start(rt), EVFN_ESHUTDOWN);
	gate_open(&g);
	WAIT_FOR(stat_of(rt, NULL, EVFN_STAT_IN_FLIGHT) == 0, 10000);
	ASSERT_EQ(stat_of(rt, "slow", EVFN_STAT_SUCCEEDED), 1);
	assert_accounting(rt, NULL);
	ASSERT_OK(evfn_rt_free(rt));
	gate_destroy(&g);
}

static int
retry_once_gated_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	gated_handler(ctx, ev, userdata);
	return EVFN_RETRY;
}

static void
test_runtime_drain_hands_back_retries_of_inflight_work(void **state)
{
	evfn_rt *rt = new_runtime(1, 1);
	struct gate g;
	gate_init(&g);
	ASSERT_OK(evfn_register(rt, "r", retry_once_gated_handler, &g, NULL,
	                        NULL));
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_invoke_async(rt, "r", NULL, 0, NULL));
	gate_wait_entered(&g, 1);
	gate_open(&g); /* it returns RETRY while drain waits */
	struct handback hb = {0};
	ASSERT_OK(evfn_rt_drain(rt, 10000, on_handback, &hb));
	ASSERT_EQ(hb.count, 1);
	assert_string_equal(hb.fn, "r");
	ASSERT_EQ(stat_of(rt, "r", EVFN_STAT_HANDED_BACK), 1);
	assert_accounting(rt, NULL);
	ASSERT_OK(evfn_rt_free(rt));
	gate_destroy(&g);
}

static void
test_runtime_free_before_start_releases_queued_events(void **state)
{
	evfn_rt *rt = new_runtime(1, 1);
	atomic_int n = 0;
	ASSERT_OK(evfn_register(rt, "f", count_handler, &n, NULL, NULL));
	payload_frees = 0;
	ASSERT_OK(evfn_invoke_async(rt, "f", "x", 1, NULL));
	ASSERT_OK(evfn_subscribe(rt, "t", "f"));
	ASSERT_OK(evfn_emit_ref(rt, "t", strdup("y"), 1, count_free, NULL,
	                        NULL));
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_QUEUED), 2);
	ASSERT_EQ(payload_frees, 0);
	ASSERT_OK(evfn_rt_free(rt));
	ASSERT_EQ(payload_frees, 1);
	ASSERT_EQ(atomic_load(&n), 0);
}

/* ---- a start that fails part way ---------------------------------------- */

/* Starts a runtime with queued pool and loop work while only `allowed`
 * more allocations succeed; returns start's answer, the runtime in *out. */
static int
start_with_allocations(int allowed, evfn_rt **out, atomic_int *runs)
{
	evfn_rt *rt = new_runtime(4, 4);
	ASSERT_OK(evfn_register(rt, "pool", count_handler, runs, NULL, NULL));
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP));
	ASSERT_OK(evfn_register(rt, "loop", count_handler, runs, fo, NULL));
	evfn_fn_options_free(fo);
	for (int i = 0; i < 5; i++) {
		ASSERT_OK(evfn_invoke_async(rt, "pool", NULL, 0, NULL));
		ASSERT_OK(evfn_invoke_async(rt, "loop", NULL, 0, NULL));
	}
	atomic_store(&failing_alloc_left, allowed);
	int rc = evfn_rt_start(rt);
	atomic_store(&failing_alloc_left, -1);
	*out = rt;
	return rc;
}

/* Out of memory at each allocation inside evfn_rt_start() in turn:
 * each failure leaves the runtime unstarted (no thread left, nothing
 * run, free or a second start both work). */
static void
test_runtime_start_out_of_memory_leaves_it_unstarted(void **state)
{
	int threads = test_count_threads();
	int failures = 0;
	for (int allowed = 0;; allowed++) {
		evfn_rt *rt;
		atomic_int runs = 0;
		int rc = start_with_allocations(allowed, &rt, &runs);
		if (rc == 0) {
			WAIT_FOR(atomic_load(&runs) == 10, 10000);
			finish(rt);
			break;
		}
		ASSERT_RC(rc, EVFN_ENOMEM);
		failures++;
		ASSERT_EQ(test_count_threads(), threads);
		ASSERT_EQ(evfn_rt_workers(rt), 0);
		ASSERT_EQ(atomic_load(&runs), 0);
		ASSERT_EQ(stat_of(rt, NULL, EVFN_STAT_QUEUED), 10);
		if (allowed % 2 == 0) {
			ASSERT_OK(evfn_rt_free(rt));
			continue;
		}
		ASSERT_OK(evfn_rt_start(rt));
		WAIT_FOR(atomic_load(&runs) == 10, 10000);
		finish(rt);
	}
	/* At least one allocation per worker of the minimum was failed. */
	assert_true(failures >= 4);
	ASSERT_EQ(test_count_threads(), threads);
}

/* ---- calls from inside handlers ------------------------------------------ */

static int
reentrant_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	evfn_rt *rt = evfn_ctx_rt(ctx);
	if (evfn_rt_drain(rt, 0, NULL, NULL) != EVFN_EDEADLK ||
	    evfn_rt_free(rt) != EVFN_EDEADLK)
		return EVFN_FAIL;
	/* Emitting and invoking from a handler are fine. */
	if (evfn_invoke_async(rt, "sink", "x", 1, NULL) != 0)
		return EVFN_FAIL;
	void *resp = NULL;
	if (evfn_invoke(rt, "sink", "x", 1, &resp, NULL) != 0)
		return EVFN_FAIL;
	evfn_free(resp);
	return EVFN_OK;
}

static void
test_runtime_drain_and_free_refuse_inside_handler(void **state)
{
	evfn_rt *rt = new_runtime(2, 4);
	atomic_int n = 0;
	ASSERT_OK(evfn_register(rt, "re", reentrant_handler, NULL, NULL, NULL));
	ASSERT_OK(evfn_register(rt, "sink", count_handler, &n, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_RC(evfn_rt_start(rt), EVFN_EALREADY);
	ASSERT_OK(evfn_invoke(rt, "re", NULL, 0, NULL, NULL));
	WAIT_FOR(atomic_load(&n) == 2, 10000);
	ASSERT_RC(evfn_rt_free(rt), EVFN_EBUSY);
	finish(rt);
}

/* ---- warm worker state ---------------------------------------------------- */

struct warm {
	atomic_int inits, finis;
};

static int
warm_init(void *userdata, void **state)
{
	struct warm *w = userdata;
	int *conn = malloc(sizeof(int));
	*conn = atomic_fetch_add(&w->inits, 1) + 1;
	*state = conn;
	return 0;
}

static void
warm_fini(void *userdata, void *state)
{
	struct warm *w = userdata;
	atomic_fetch_add(&w->finis, 1);
	free(state);
}

static int
warm_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return evfn_ctx_worker_state(ctx) ? EVFN_OK : EVFN_FAIL;
}

/* ---- the 0.1 names (deprecated.h) ---------------------------------------- */

static int
old_ctx_name_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	*(evfn_rt **)userdata = evfn_ctx_runtime(ctx);
#pragma GCC diagnostic pop
	return EVFN_OK;
}

/* Each renamed call still answers under its 0.1 name, as its new name. */
static void
test_runtime_old_names_still_work(void **state)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	evfn_rt *rt, *seen = NULL;
	ASSERT_OK(evfn_runtime_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "old", old_ctx_name_handler, &seen, NULL,
	                        NULL));
	ASSERT_OK(evfn_runtime_start(rt));
	assert_true(evfn_runtime_event_base(rt) == evfn_rt_event_base(rt));
	assert_true(evfn_runtime_event_base(rt) != NULL);
	ASSERT_EQ(evfn_runtime_workers(rt), evfn_rt_workers(rt));
	ASSERT_OK(evfn_invoke_async(rt, "old", NULL, 0, NULL));
	WAIT_FOR(stat_of(rt, "old", EVFN_STAT_SUCCEEDED) == 1, 10000);
	assert_true(seen == rt);
	evfn_stats *st;
	ASSERT_OK(evfn_stats_take(rt, "old", &st));
	ASSERT_EQ(evfn_stats_get(st, EVFN_STAT_SUCCEEDED), 1);
	ASSERT_EQ(evfn_stats_get(st, EVFN_STAT_ACCEPTED),
	          evfn_stats_value(st, EVFN_STAT_ACCEPTED));
	evfn_stats_free(st);
	ASSERT_OK(evfn_runtime_drain(rt, 1000, NULL, NULL));
	ASSERT_RC(evfn_runtime_drain(rt, 1000, NULL, NULL), EVFN_EALREADY);
	ASSERT_OK(evfn_runtime_free(rt));
#pragma GCC diagnostic pop
}

static void
test_runtime_worker_hooks_build_state_once_per_worker(void **state)
{
	evfn_rt *rt = new_runtime(2, 2);
	struct warm w = {0};
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_worker_hooks(fo, warm_init, warm_fini));
	ASSERT_OK(evfn_register(rt, "warm", warm_handler, &w, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	for (int i = 0; i < 200; i++)
		ASSERT_OK(evfn_invoke_async(rt, "warm", NULL, 0, NULL));
	WAIT_FOR(stat_of(rt, "warm", EVFN_STAT_SUCCEEDED) == 200, 10000);
	assert_true(atomic_load(&w.inits) >= 1 && atomic_load(&w.inits) <= 2);
	ASSERT_EQ(atomic_load(&w.finis), 0);
	finish(rt);
	ASSERT_EQ(atomic_load(&w.finis), atomic_load(&w.inits));
}

static int ud_frees;

static void
ud_free(void *ud)
{
	ud_frees++;
}

static void
test_runtime_userdata_destructor_runs_once_at_free(void **state)
{
	evfn_rt *rt = new_runtime(0, 1);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_userdata_free(fo, ud_free));
	ud_frees = 0;
	ASSERT_OK(evfn_register(rt, "a", count_handler, &ud_frees, fo, NULL));
	/* A failed registration leaves userdata with the caller. */
	ASSERT_RC(evfn_register(rt, "a", count_handler, &ud_frees, fo, NULL),
	          EVFN_EEXIST);
	evfn_fn_options_free(fo);
	ASSERT_EQ(ud_frees, 0);
	ASSERT_OK(evfn_rt_free(rt));
	ASSERT_EQ(ud_frees, 1);
}

/* ---- result callbacks --------------------------------------------------- */

struct results {
	atomic_int calls, ok, failed;
	char resp[32];
};

static void
on_result(const evfn_result *res, void *arg)
{
	struct results *r = arg;
	int result = evfn_result_code(res);
	size_t len;
	const void *resp = evfn_result_data(res, &len);
	assert_string_equal(evfn_event_type(evfn_result_event(res)), "call");
	if (result == 0) {
		assert_string_equal(evfn_result_meta(res, "status"), "200");
		const char *key;
		assert_string_equal(evfn_result_meta_at(res, 1, &key), "yes");
		assert_string_equal(key, "header.X-Echo");
		assert_null(evfn_result_meta_at(res, 2, &key));
		assert_null(key);
		ASSERT_EQ(evfn_result_attempts(res), 1);
		atomic_fetch_add(&r->ok, 1);
		snprintf(r->resp, sizeof(r->resp), "%.*s", (int)len,
		         (const char *)resp);
	} else if (result == EVFN_EFAILED) {
		assert_null(resp);
		assert_string_equal(evfn_result_error(res), "no good");
		atomic_fetch_add(&r->failed, 1);
	}
	atomic_fetch_add(&r->calls, 1);
}

static void
never_called(const evfn_result *res, void *arg)
{
	fail_msg("result callback called after a refused submit");
}

static void
test_runtime_submit_calls_back_once_with_outcome(void **state)
{
	evfn_rt *rt = new_runtime(1, 2);
	ASSERT_OK(evfn_register(rt, "echo", echo_handler, NULL, NULL, NULL));
	ASSERT_OK(evfn_register(rt, "fail", fail_handler, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	struct results r = {0};
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "call", "me", 2));
	ASSERT_OK(evfn_submit(rt, "echo", ev, on_result, &r, NULL));
	evfn_event_unref(ev);
	ASSERT_OK(evfn_event_new(&ev, "call", "me", 2));
	ASSERT_OK(evfn_submit(rt, "fail", ev, on_result, &r, NULL));
	ASSERT_RC(evfn_submit(rt, "fail", ev, on_result, &r, NULL),
	          EVFN_EPERM);
	evfn_event_unref(ev);
	ASSERT_OK(evfn_event_new(&ev, "call", "me", 2));
	ASSERT_RC(evfn_submit(rt, "nope", ev, never_called, &r, NULL),
	          EVFN_ENOFN);
	ASSERT_RC(evfn_submit(rt, "echo", ev, NULL, &r, NULL), EVFN_EINVAL);
	evfn_event_unref(ev);
	WAIT_FOR(atomic_load(&r.calls) == 2, 10000);
	ASSERT_EQ(atomic_load(&r.ok), 1);
	ASSERT_EQ(atomic_load(&r.failed), 1);
	assert_string_equal(r.resp, "echo:me attempt 1");
	finish(rt);
	ASSERT_EQ(atomic_load(&r.calls), 2);
}

static void
test_runtime_submit_result_delivered_at_free_when_loop_never_ran(void **state)
{
	/* Embedded on a base nobody drives: the result waits for free. */
	evthread_use_pthreads();
	struct event_base *base = event_base_new();
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_event_base(o, base));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, "echo", echo_handler, NULL, NULL, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	struct results r = {0};
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "call", "x", 1));
	ASSERT_OK(evfn_submit(rt, "echo", ev, on_result, &r, NULL));
	evfn_event_unref(ev);
	WAIT_FOR(stat_of(rt, "echo", EVFN_STAT_SUCCEEDED) == 1, 10000);
	ASSERT_EQ(atomic_load(&r.calls), 0);
	ASSERT_OK(evfn_rt_drain(rt, 0, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
	ASSERT_EQ(atomic_load(&r.calls), 1);
	ASSERT_EQ(atomic_load(&r.ok), 1);
	event_base_free(base);
}

/* An event published without a source carries the runtime's. The host
 * may keep the event, or a dead letter of it, after freeing the runtime:
 * the source must still read back (ASan found it read from freed memory). */
static void
test_runtime_default_source_outlives_the_runtime(void **state)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_source(o, "/orders/outlives-its-runtime"));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, 1));
	ASSERT_OK(evfn_register(rt, "fail", fail_handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "call", "x", 1));
	ASSERT_OK(evfn_publish_to(rt, "fail", ev, NULL));
	WAIT_FOR(evfn_dead_letter_count(rt) == 1, 10000);
	evfn_dead_letter *dl;
	ASSERT_EQ(evfn_dead_letters(rt, &dl, 1, 0), 1);
	finish(rt);
	assert_string_equal(evfn_event_source(ev),
	                    "/orders/outlives-its-runtime");
	assert_string_equal(evfn_event_source(evfn_dead_letter_event(dl)),
	                    "/orders/outlives-its-runtime");
	evfn_dead_letter_unref(dl);
	evfn_event_unref(ev);
}

/* Handlers that return what a pool call cannot come to, and a worker
 * init hook that fails. */
static int
returns_pending(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	return EVFN_PENDING;
}

static int
returns_42(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	return 42;
}

static atomic_int never_ran;

static int
must_not_run(evfn_ctx *ctx, const evfn_event *ev, void *u)
{
	(void)ctx;
	(void)ev;
	(void)u;
	atomic_fetch_add(&never_ran, 1);
	return EVFN_OK;
}

static int
init_fails(void *userdata, void **state)
{
	(void)userdata;
	(void)state;
	return EVFN_ENOMEM;
}

/* Invokes fn once; its one dead letter's code and error. */
static void
assert_dead_letter(evfn_rt *rt, const char *fn, int rc, int code,
                   const char *error)
{
	ASSERT_RC(evfn_invoke(rt, fn, "x", 1, NULL, NULL), rc);
	evfn_dead_letter *dl;
	ASSERT_EQ(evfn_dead_letters(rt, &dl, 1, 0), 1);
	ASSERT_RC(evfn_dead_letter_code(dl), code);
	assert_string_equal(evfn_dead_letter_error(dl), error);
	evfn_dead_letter_unref(dl);
	ASSERT_EQ(evfn_dead_letter_purge(rt), 1);
}

static void
test_runtime_odd_outcomes_and_failed_init_end_with_their_error(void **state)
{
	(void)state;
	atomic_store(&never_ran, 0);
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, 2));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 1, 1.0, 1,
	                                      EVFN_JITTER_NONE));
	ASSERT_OK(evfn_register(rt, "pend", returns_pending, NULL, fo, NULL));
	ASSERT_OK(evfn_register(rt, "odd", returns_42, NULL, fo, NULL));
	ASSERT_OK(evfn_fn_options_set_worker_hooks(fo, init_fails, NULL));
	ASSERT_OK(evfn_register(rt, "noinit", must_not_run, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	assert_dead_letter(rt, "pend", EVFN_EFAILED, EVFN_EFAILED,
	                   "handler returned EVFN_PENDING on the pool "
	                   "executor");
	assert_dead_letter(rt, "odd", EVFN_EFAILED, EVFN_EFAILED,
	                   "handler returned unknown outcome 42");
	/* Retried like any failed attempt, the handler never called. */
	char msg[128];
	snprintf(msg, sizeof(msg), "worker init hook failed: %s",
	         evfn_strerror(EVFN_ENOMEM));
	assert_dead_letter(rt, "noinit", EVFN_EEXHAUSTED, EVFN_EEXHAUSTED,
	                   msg);
	ASSERT_EQ(atomic_load(&never_ran), 0);
	ASSERT_EQ(stat_of(rt, "noinit", EVFN_STAT_ATTEMPTS), 2);
	finish(rt);
}

/* evfn_rt_free() refuses with EVFN_EBUSY for four causes; the log says
 * which one held the runtime. */
static void
test_runtime_free_refusal_logs_its_cause(void **state)
{
	test_log_reset();
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_log(o, test_log_capture, NULL));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_RC(evfn_rt_free(rt), EVFN_EBUSY);
	assert_true(test_log_contains("the runtime is running; drain it"));
	assert_false(test_log_contains("triggers or sources still alive"));
	evfn_trigger *t;
	ASSERT_OK(evfn_timer_add(rt, "rate(1 hour)", NULL, "tick", NULL, &t));
	ASSERT_OK(evfn_rt_drain(rt, 1000, NULL, NULL));
	test_log_reset();
	ASSERT_RC(evfn_rt_free(rt), EVFN_EBUSY);
	assert_true(test_log_contains("1 triggers or sources still alive"));
	assert_false(test_log_contains("the runtime is running"));
	evfn_trigger_free(t);
	ASSERT_OK(evfn_rt_free(rt));
}

int
main(void)
{
	if (!failing_alloc_install())
		return 1;
	const struct CMUnitTest tests[] = {
		TEST(test_runtime_delivers_each_event_once),
		TEST(test_runtime_default_source_outlives_the_runtime),
		TEST(test_runtime_free_refusal_logs_its_cause),
		TEST(test_runtime_sparse_events_are_never_left_unseen),
		TEST(test_runtime_fanout_reaches_each_subscriber_once),
		TEST(test_runtime_emit_without_subscriber_is_enosub),
		TEST(test_runtime_concurrency_never_exceeds_reservation),
		TEST(test_runtime_full_queue_refuses_and_caller_keeps_event),
		TEST(test_runtime_pool_grows_under_backlog_and_shrinks_when_idle),
		TEST(test_runtime_invoke_returns_response_after_retries),
		TEST(test_runtime_loop_handler_completes_later),
		TEST(test_runtime_embedded_on_host_event_base),
		TEST(test_runtime_drain_hands_back_queued_events),
		TEST(test_runtime_drain_hands_back_retries_of_inflight_work),
		TEST(test_runtime_free_before_start_releases_queued_events),
		TEST(test_runtime_start_out_of_memory_leaves_it_unstarted),
		TEST(test_runtime_drain_and_free_refuse_inside_handler),
		TEST(test_runtime_old_names_still_work),
		TEST(test_runtime_worker_hooks_build_state_once_per_worker),
		TEST(test_runtime_odd_outcomes_and_failed_init_end_with_their_error),
		TEST(test_runtime_userdata_destructor_runs_once_at_free),
		TEST(test_runtime_submit_calls_back_once_with_outcome),
		TEST(test_runtime_submit_result_delivered_at_free_when_loop_never_ran),
	};
	return evfn_test_main("runtime", tests);
}
