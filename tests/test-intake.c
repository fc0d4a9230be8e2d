/* SPDX-License-Identifier: MIT */
/*
 * The intake ring (lib/intake.c) on its own: its bound under racing
 * producers (never exceeded, never refusing below it), all-or-nothing
 * batches, order and exactly-once delivery under 8 producers with a
 * consumer that sleeps whenever it drained the ring and is woken only on
 * empty to non-empty, and the wrap of its 32-bit positions.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "harness.h"
#include "intake-internal.h"

static void
test_intake_refuses_bad_arguments(void **state)
{
	(void)state;
	struct evfn__intake *q = (void *)1;
	ASSERT_RC(evfn__intake_new(NULL, 4), EVFN_EINVAL);
	ASSERT_RC(evfn__intake_new(&q, 0), EVFN_EINVAL);
	assert_null(q);
	ASSERT_RC(evfn__intake_new(&q, EVFN__INTAKE_BOUND_MAX + 1),
	          EVFN_EINVAL);
	ASSERT_OK(evfn__intake_new(&q, 4));
	struct evfn__intake_ticket t;
	ASSERT_RC(evfn__intake_reserve(q, 0, &t), EVFN_EINVAL);
	ASSERT_EQ(evfn__intake_count(q), 0);
	evfn__intake_free(q);
	evfn__intake_free(NULL);
}

/* Reserves n and fills them with items[0..n-1]. */
static int
put(struct evfn__intake *q, void **items, uint32_t n, bool *was_empty)
{
	struct evfn__intake_ticket t;
	int rc = evfn__intake_reserve(q, n, &t);
	if (rc == 0) {
		for (uint32_t i = 0; i < n; i++)
			evfn__intake_fill(q, &t, i, items[i]);
		if (was_empty)
			*was_empty = t.was_empty;
	}
	return rc;
}

static void
test_intake_batch_is_all_or_nothing(void **state)
{
	(void)state;
	int v[16];
	void *items[16];
	for (int i = 0; i < 16; i++)
		items[i] = &v[i];
	struct evfn__intake *q;
	ASSERT_OK(evfn__intake_new(&q, 10));
	ASSERT_OK(put(q, items, 7, NULL));
	/* 4 more would make 11: refused whole, nothing reserved. */
	ASSERT_RC(put(q, items + 7, 4, NULL), EVFN_EQUEUEFULL);
	ASSERT_EQ(evfn__intake_count(q), 7);
	ASSERT_OK(put(q, items + 7, 3, NULL));
	ASSERT_EQ(evfn__intake_count(q), 10);
	ASSERT_RC(put(q, items, 1, NULL), EVFN_EQUEUEFULL);
	void *out[16];
	bool drained;
	ASSERT_EQ(evfn__intake_take(q, out, 16, &drained), 10);
	assert_true(drained);
	for (int i = 0; i < 10; i++)
		assert_ptr_equal(out[i], items[i]);
	/* Larger than the bound: never fits, refused however empty. */
	ASSERT_RC(put(q, items, 11, NULL), EVFN_EQUEUEFULL);
	ASSERT_OK(put(q, items, 10, NULL));
	evfn__intake_free(q);
}

static void
test_intake_wakes_only_from_empty(void **state)
{
	(void)state;
	int a, b, c;
	void *pa = &a, *pb = &b, *pc = &c, *out[4];
	struct evfn__intake *q;
	ASSERT_OK(evfn__intake_new(&q, 8));
	bool was_empty = false, drained = false;
	ASSERT_EQ(evfn__intake_take(q, out, 4, &drained), 0);
	assert_true(drained);
	ASSERT_OK(put(q, &pa, 1, &was_empty));
	assert_true(was_empty);
	ASSERT_OK(put(q, &pb, 1, &was_empty));
	assert_false(was_empty);
	/* A take that leaves items behind did not drain. */
	ASSERT_EQ(evfn__intake_take(q, out, 1, &drained), 1);
	assert_false(drained);
	ASSERT_EQ(evfn__intake_take(q, out, 4, &drained), 1);
	assert_true(drained);
	ASSERT_OK(put(q, &pc, 1, &was_empty));
	assert_true(was_empty);
	/* A reserved slot not yet filled stops the take, keeps its order
	 * and is not "drained": the consumer must come back. */
	struct evfn__intake_ticket t;
	ASSERT_OK(evfn__intake_reserve(q, 2, &t));
	assert_false(t.was_empty);
	ASSERT_EQ(evfn__intake_take(q, out, 4, &drained), 1);
	assert_ptr_equal(out[0], pc);
	evfn__intake_fill(q, &t, 1, pb);
	ASSERT_EQ(evfn__intake_take(q, out, 4, &drained), 0);
	assert_false(drained);
	evfn__intake_fill(q, &t, 0, pa);
	ASSERT_EQ(evfn__intake_take(q, out, 4, &drained), 2);
	assert_ptr_equal(out[0], pa);
	assert_ptr_equal(out[1], pb);
	assert_true(drained);
	evfn__intake_free(q);
}

static void
test_intake_given_up_slots_are_stepped_over(void **state)
{
	(void)state;
	int a, b;
	void *out[4];
	struct evfn__intake *q;
	ASSERT_OK(evfn__intake_new(&q, 3));
	struct evfn__intake_ticket t;
	ASSERT_OK(evfn__intake_reserve(q, 3, &t));
	evfn__intake_fill(q, &t, 0, &a);
	evfn__intake_fill(q, &t, 1, NULL);
	evfn__intake_fill(q, &t, 2, &b);
	bool drained;
	ASSERT_EQ(evfn__intake_take(q, out, 4, &drained), 2);
	assert_ptr_equal(out[0], &a);
	assert_ptr_equal(out[1], &b);
	assert_true(drained);
	/* Their room came back with them. */
	ASSERT_EQ(evfn__intake_count(q), 0);
	ASSERT_OK(evfn__intake_reserve(q, 3, &t));
	for (uint32_t i = 0; i < 3; i++)
		evfn__intake_fill(q, &t, i, NULL);
	ASSERT_EQ(evfn__intake_take(q, out, 4, &drained), 0);
	assert_true(drained);
	evfn__intake_free(q);
}

/* Positions are 32-bit: a ring started just below the wrap keeps its
 * bound, order and emptiness across it. */
static void
test_intake_positions_wrap(void **state)
{
	(void)state;
	int v[64];
	void *out[8];
	struct evfn__intake *q;
	ASSERT_OK(evfn__intake_new_at(&q, 5, UINT32_MAX - 20));
	int next_in = 0, next_out = 0;
	for (int round = 0; round < 12; round++) {
		bool was_empty;
		void *items[5];
		for (int i = 0; i < 5; i++)
			items[i] = &v[(next_in + i) % 64];
		ASSERT_OK(put(q, items, 3, &was_empty));
		assert_true(was_empty);
		ASSERT_OK(put(q, items + 3, 2, NULL));
		next_in += 5;
		ASSERT_RC(put(q, items, 1, NULL), EVFN_EQUEUEFULL);
		ASSERT_EQ(evfn__intake_count(q), 5);
		bool drained;
		ASSERT_EQ(evfn__intake_take(q, out, 8, &drained), 5);
		assert_true(drained);
		for (int i = 0; i < 5; i++, next_out++)
			assert_ptr_equal(out[i], &v[next_out % 64]);
	}
	evfn__intake_free(q);
}

/* Racing producers on an intake nobody takes from. */
#define RACE_PRODUCERS 8
#define RACE_BOUND 1000

struct race {
	struct evfn__intake *q;
	pthread_barrier_t start;
	atomic_uint reserved;          /* items, over all producers */
	atomic_uint min_refused;       /* the smallest batch refused */
	atomic_uint over_bound;        /* counts seen above the bound */
	atomic_uint errors;            /* other codes from reserve */
	atomic_uint spurious;          /* refused with room left after */
	int dummy;
};

static void *
race_producer(void *arg)
{
	struct race *r = arg;
	unsigned seed = (unsigned)(uintptr_t)&seed;
	pthread_barrier_wait(&r->start);
	int refusals = 0;
	while (refusals < 2000) {
		uint32_t n = 1 + (uint32_t)(rand_r(&seed) % 7);
		struct evfn__intake_ticket t;
		int rc = evfn__intake_reserve(r->q, n, &t);
		if (rc == EVFN_EQUEUEFULL) {
			/* The count only grows here: room for n after the call
			 * means there was room all through it. */
			if (evfn__intake_count(r->q) + n <= RACE_BOUND)
				atomic_fetch_add(&r->spurious, 1);
			refusals++;
			unsigned m = atomic_load(&r->min_refused);
			while (n < m && !atomic_compare_exchange_weak(
			                        &r->min_refused, &m, n))
				;
			continue;
		}
		if (rc != 0) {
			atomic_fetch_add(&r->errors, 1);
			break;
		}
		for (uint32_t i = 0; i < n; i++)
			evfn__intake_fill(r->q, &t, i, &r->dummy);
		atomic_fetch_add(&r->reserved, n);
		if (evfn__intake_count(r->q) > RACE_BOUND)
			atomic_fetch_add(&r->over_bound, 1);
	}
	return NULL;
}

/* The bound under 8 racing producers asking for 1..7 at a time: never
 * exceeded, and every refusal justified. Nothing leaves, so the room
 * only shrinks: a refusal of n after which there is still room for n
 * had room all through, and at the end the room left is less than the
 * smallest batch refused. */
static void
test_intake_bound_holds_under_racing_producers(void **state)
{
	(void)state;
	for (int rep = 0; rep < 50; rep++) {
		struct race r = {0};
		ASSERT_OK(evfn__intake_new(&r.q, RACE_BOUND));
		atomic_init(&r.min_refused, UINT32_MAX);
		pthread_barrier_init(&r.start, NULL, RACE_PRODUCERS);
		pthread_t th[RACE_PRODUCERS];
		for (int i = 0; i < RACE_PRODUCERS; i++)
			assert_int_equal(pthread_create(&th[i], NULL,
			                                race_producer, &r),
			                 0);
		for (int i = 0; i < RACE_PRODUCERS; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&r.start);
		unsigned reserved = atomic_load(&r.reserved);
		ASSERT_EQ(atomic_load(&r.errors), 0);
		ASSERT_EQ(atomic_load(&r.over_bound), 0);
		ASSERT_EQ(atomic_load(&r.spurious), 0);
		assert_true(reserved <= RACE_BOUND);
		ASSERT_EQ(evfn__intake_count(r.q), reserved);
		assert_true(RACE_BOUND - reserved <
		            atomic_load(&r.min_refused));
		void *out[RACE_BOUND];
		bool drained;
		ASSERT_EQ(evfn__intake_take(r.q, out, RACE_BOUND, &drained),
		          reserved);
		assert_true(drained);
		evfn__intake_free(r.q);
	}
}

/* Producers that always ask for more than the room there is, racing a
 * thread that asks for exactly the room there is. */
#define ROOM_BOUND 16
#define ROOM_LEFT 3

struct room {
	struct evfn__intake *q;
	atomic_bool stop;
	atomic_uint accepted_too_big;
	int dummy;
};

static void *
room_hog(void *arg)
{
	struct room *r = arg;
	while (!atomic_load(&r->stop)) {
		struct evfn__intake_ticket t;
		if (evfn__intake_reserve(r->q, ROOM_LEFT + 1, &t) == 0)
			atomic_fetch_add(&r->accepted_too_big, 1);
	}
	return NULL;
}

/* Never refusing below the bound: with exactly ROOM_LEFT free, a
 * reservation of ROOM_LEFT must succeed every time, however many
 * producers are being refused larger batches meanwhile (their refusals
 * must leave no trace, not even for an instant). */
static void
test_intake_never_refuses_below_bound(void **state)
{
	(void)state;
	test_hang_guard(60);
	struct room r = {0};
	ASSERT_OK(evfn__intake_new(&r.q, ROOM_BOUND));
	void *items[ROOM_BOUND], *out[ROOM_BOUND];
	for (int i = 0; i < ROOM_BOUND; i++)
		items[i] = &r.dummy;
	ASSERT_OK(put(r.q, items, ROOM_BOUND - ROOM_LEFT, NULL));
	pthread_t th[7];
	for (int i = 0; i < 7; i++)
		assert_int_equal(pthread_create(&th[i], NULL, room_hog, &r),
		                 0);
	int refused = 0;
	for (int i = 0; i < 200000; i++) {
		if (put(r.q, items, ROOM_LEFT, NULL) != 0) {
			refused++;
			continue;
		}
		/* Take the oldest ROOM_LEFT back out: the room is again
		 * exactly ROOM_LEFT. */
		bool drained;
		if (evfn__intake_take(r.q, out, ROOM_LEFT, &drained) !=
		    ROOM_LEFT)
			refused += 1000000;
	}
	atomic_store(&r.stop, true);
	for (int i = 0; i < 7; i++)
		pthread_join(th[i], NULL);
	ASSERT_EQ(refused, 0);
	ASSERT_EQ(atomic_load(&r.accepted_too_big), 0);
	ASSERT_EQ(evfn__intake_count(r.q), ROOM_BOUND - ROOM_LEFT);
	evfn__intake_free(r.q);
	test_hang_guard_off();
}

/* 8 producers, one consumer, a small bound. Item k of producer p is
 * p * PER + k + 1, as a pointer into `seen`; producers push batches of
 * 1..8 (all or nothing: refused, they yield and try the same batch
 * again) and give one slot of every 16th batch up. The consumer sleeps
 * whenever a take drained the ring and only a reservation that found it
 * empty wakes it; a sleep that outlasts 2 s with items waiting is a lost
 * wake-up. */
#define X_PRODUCERS 8
#define X_PER 20000
#define X_BOUND 64

struct xonce {
	struct evfn__intake *q;
	unsigned char seen[X_PRODUCERS * X_PER + 1];
	/* Set by the producer on the last item of each batch it filled. */
	unsigned char batch_end[X_PRODUCERS * X_PER + 1];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool wake;              /* a wake-up given, not yet consumed */
	atomic_uint given_up;
	atomic_uint producers_done;
	pthread_barrier_t start;
	int lost_wakeups;
	int out_of_order;
	int in_between;         /* another item inside a batch */
};

struct xproducer {
	struct xonce *x;
	unsigned id;
};

static void
wake_consumer(struct xonce *x)
{
	pthread_mutex_lock(&x->lock);
	x->wake = true;
	pthread_cond_signal(&x->cond);
	pthread_mutex_unlock(&x->lock);
}

static void *
x_producer(void *arg)
{
	struct xproducer *p = arg;
	struct xonce *x = p->x;
	unsigned seed = p->id * 7919 + 1;
	unsigned k = 0, batches = 0;
	pthread_barrier_wait(&x->start);
	while (k < X_PER) {
		uint32_t n = 1 + (uint32_t)(rand_r(&seed) % 8);
		if (n > X_PER - k)
			n = X_PER - k;
		struct evfn__intake_ticket t;
		while (evfn__intake_reserve(x->q, n, &t) == EVFN_EQUEUEFULL)
			sched_yield();
		bool give_up = ++batches % 16 == 0;
		uint32_t last = give_up ? n - 1 : n; /* items kept */
		if (last > 0)
			x->batch_end[p->id * X_PER + k + last] = 1;
		for (uint32_t i = 0; i < n; i++) {
			unsigned item = p->id * X_PER + k + i + 1;
			evfn__intake_fill(x->q, &t, i,
			                  give_up && i == n - 1
			                          ? NULL
			                          : &x->seen[item]);
		}
		if (give_up)
			atomic_fetch_add(&x->given_up, 1);
		if (t.was_empty)
			wake_consumer(x);
		k += n;
	}
	atomic_fetch_add(&x->producers_done, 1);
	wake_consumer(x);
	return NULL;
}

static void
x_consume(struct xonce *x)
{
	unsigned last[X_PRODUCERS] = {0};
	unsigned prev = 0; /* the item taken before, 0 for none */
	void *out[32];
	for (;;) {
		bool drained;
		size_t n = evfn__intake_take(x->q, out, 32, &drained);
		for (size_t i = 0; i < n; i++) {
			unsigned item = (unsigned)((unsigned char *)out[i] -
			                           x->seen);
			x->seen[item]++;
			unsigned p = (item - 1) / X_PER, k = (item - 1) % X_PER;
			/* A producer's items come in its order; within a batch
			 * (given-up slots aside) nothing else comes between. */
			if (last[p] && k + 1 <= last[p])
				x->out_of_order++;
			last[p] = k + 1;
			if (prev && !x->batch_end[prev] && item != prev + 1)
				x->in_between++;
			prev = item;
		}
		if (drained) {
			if (atomic_load(&x->producers_done) == X_PRODUCERS &&
			    evfn__intake_count(x->q) == 0)
				break;
			/* Once a wake-up was lost, finish without sleeping. */
			if (x->lost_wakeups) {
				sched_yield();
				continue;
			}
			pthread_mutex_lock(&x->lock);
			while (!x->wake) {
				struct timespec until;
				clock_gettime(CLOCK_REALTIME, &until);
				until.tv_sec += 2;
				if (pthread_cond_timedwait(&x->cond, &x->lock,
				                           &until) != 0 &&
				    !x->wake) {
					x->lost_wakeups +=
						evfn__intake_count(x->q) > 0;
					break;
				}
			}
			x->wake = false;
			pthread_mutex_unlock(&x->lock);
		} else if (n == 0) {
			sched_yield(); /* a producer is filling its slot */
		}
	}
}

static void
test_intake_exactly_once_under_8_producers(void **state)
{
	(void)state;
	test_hang_guard(120);
	struct xonce *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	ASSERT_OK(evfn__intake_new(&x->q, X_BOUND));
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->cond, NULL);
	pthread_barrier_init(&x->start, NULL, X_PRODUCERS);
	struct xproducer p[X_PRODUCERS];
	pthread_t th[X_PRODUCERS];
	for (unsigned i = 0; i < X_PRODUCERS; i++) {
		p[i] = (struct xproducer){x, i};
		assert_int_equal(pthread_create(&th[i], NULL, x_producer,
		                                &p[i]),
		                 0);
	}
	x_consume(x);
	for (int i = 0; i < X_PRODUCERS; i++)
		pthread_join(th[i], NULL);
	ASSERT_EQ(x->lost_wakeups, 0);
	ASSERT_EQ(x->out_of_order, 0);
	ASSERT_EQ(x->in_between, 0);
	/* Every item once, but the given-up ones never. */
	unsigned once = 0, twice = 0;
	for (unsigned i = 1; i <= X_PRODUCERS * X_PER; i++) {
		once += x->seen[i] == 1;
		twice += x->seen[i] > 1;
	}
	ASSERT_EQ(twice, 0);
	ASSERT_EQ(once + atomic_load(&x->given_up), X_PRODUCERS * X_PER);
	pthread_barrier_destroy(&x->start);
	pthread_cond_destroy(&x->cond);
	pthread_mutex_destroy(&x->lock);
	evfn__intake_free(x->q);
	free(x);
	test_hang_guard_off();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_intake_refuses_bad_arguments),
		TEST(test_intake_batch_is_all_or_nothing),
		TEST(test_intake_wakes_only_from_empty),
		TEST(test_intake_given_up_slots_are_stepped_over),
		TEST(test_intake_positions_wrap),
		TEST(test_intake_bound_holds_under_racing_producers),
		TEST(test_intake_never_refuses_below_bound),
		TEST(test_intake_exactly_once_under_8_producers),
	};
	return evfn_test_main("intake", tests);
}
