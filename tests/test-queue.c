/* SPDX-License-Identifier: MIT */
/*
 * A function's queue (queue.c) and its ring's memory: a burst's large
 * ring goes back once the queue has emptied after 16 quiet runs in a
 * row, but a queue whose backlog drains now and then under load keeps
 * its ring instead of freeing and growing it again at every emptying;
 * and what goes in comes out in order.
 */
#include <string.h>

#include "harness.h"
#include "../lib/event-internal.h"
#include "../lib/invocation-internal.h"
#include "../lib/queue-internal.h"

static evfn_event *events[4096];

/* Queues n bare events and takes them all out again, in order. */
static void
run(struct evfn__queue *q, struct evfn__inv_pool *pool, size_t n)
{
	assert_true(n <= 4096);
	for (size_t i = 0; i < n; i++) {
		assert_true(evfn__queue_reserve_bare(q, 1));
		evfn__queue_push_bare(q, events[i]);
	}
	for (size_t i = 0; i < n; i++) {
		struct evfn__inv *inv = evfn__queue_pop(q, pool, NULL);
		assert_non_null(inv);
		assert_ptr_equal(inv->ev, events[i]);
		memset(inv, 0, sizeof(*inv)); /* the reference stays ours */
		evfn__inv_put(pool, inv);
	}
	assert_true(evfn__queue_empty(q));
}

static void
test_queue_ring_kept_under_load_given_back_after_burst(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4096; i++)
		ASSERT_OK(evfn_event_new(&events[i], "q", NULL, 0));
	struct evfn__queue q;
	memset(&q, 0, sizeof(q));
	struct evfn__inv_pool pool = {0};

	/* Steady load: big runs with up to 15 small ones between them; the
	 * ring grown for the first is never given back. */
	run(&q, &pool, 4096);
	size_t cap = q.cap;
	assert_true(cap >= 4096);
	for (int round = 0; round < 20; round++) {
		for (int small = 0; small < 15; small++)
			run(&q, &pool, 1 + (size_t)small * 60);
		ASSERT_EQ(q.cap, cap);
		run(&q, &pool, 3000);
		ASSERT_EQ(q.cap, cap);
	}
	/* The burst is over: the 16th quiet run in a row gives it back. */
	for (int small = 0; small < 15; small++)
		run(&q, &pool, 10);
	ASSERT_EQ(q.cap, cap);
	run(&q, &pool, 10);
	ASSERT_EQ(q.cap, 0);
	/* A small ring is kept whatever happens. */
	for (int small = 0; small < 40; small++)
		run(&q, &pool, 100);
	assert_true(q.cap > 0 && q.cap <= 1024);

	ASSERT_EQ(evfn__queue_free(&q), 0);
	evfn__inv_pool_free(&pool);
	for (size_t i = 0; i < 4096; i++)
		evfn_event_unref(events[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_queue_ring_kept_under_load_given_back_after_burst),
	};
	return evfn_test_main("queue", tests);
}
