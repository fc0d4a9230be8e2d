/* SPDX-License-Identifier: MIT */
/*
 * The per-thread block caches (lib/blocks.c) on their own, under an
 * allocator that counts what is live: blocks come from it and go back to
 * it (when a thread exits, past the depot's bound, on trim), a block freed
 * on one thread serves an allocation on another, and nothing is lost when
 * a producer allocates and workers free; and events in blocks, made on
 * producers and freed on workers, with every byte accounted for.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "harness.h"
#include "blocks-internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

/* The allocator every evfn allocation in this process goes through:
 * it counts the allocations and the bytes live, each allocation
 * carrying its size in a header of its own. */
static atomic_long live;            /* allocations not yet freed */
static atomic_long live_bytes;      /* their bytes, as asked for */
static atomic_long mallocs;
static atomic_long block_mallocs;   /* mallocs of EVFN__BLOCK_SIZE */
static atomic_size_t last_size;
static atomic_bool fail_mallocs;

#define HEADER 16 /* keeps malloc's alignment */

static void *
counted(void *base, size_t n)
{
	if (!base)
		return NULL;
	*(size_t *)base = n;
	atomic_fetch_add(&live_bytes, (long)n);
	return (char *)base + HEADER;
}

static void *
counting_malloc(size_t n)
{
	if (atomic_load(&fail_mallocs))
		return NULL;
	atomic_store(&last_size, n);
	void *p = counted(malloc(HEADER + n), n);
	if (p) {
		atomic_fetch_add(&live, 1);
		atomic_fetch_add(&mallocs, 1);
		if (n == EVFN__BLOCK_SIZE)
			atomic_fetch_add(&block_mallocs, 1);
	}
	return p;
}

static void *
counting_calloc(size_t n, size_t size)
{
	if (size && n > (SIZE_MAX - HEADER) / size)
		return NULL;
	void *p = counted(calloc(1, HEADER + n * size), n * size);
	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

static void *
counting_realloc(void *p, size_t n)
{
	if (!p)
		return counting_malloc(n);
	char *base = (char *)p - HEADER;
	size_t old = *(size_t *)base;
	char *q = realloc(base, HEADER + n);
	if (!q)
		return NULL;
	atomic_fetch_sub(&live_bytes, (long)old);
	return counted(q, n);
}

static void
counting_free(void *p)
{
	if (!p)
		return;
	char *base = (char *)p - HEADER;
	atomic_fetch_sub(&live, 1);
	atomic_fetch_sub(&live_bytes, (long)*(size_t *)base);
	free(base);
}

/* Runs fn(arg) on a thread of its own and waits for it to exit (and so
 * for its cache to be handed back). */
static void
on_own_thread(void *(*fn)(void *), void *arg)
{
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
}

/* Leaves nothing cached anywhere but in this (the main) thread. */
static void
reset(void)
{
	evfn__blocks_trim();
}

struct many {
	void **blocks;
	size_t n;
};

static void *
alloc_many(void *arg)
{
	struct many *m = arg;
	for (size_t i = 0; i < m->n; i++) {
		m->blocks[i] = evfn__block_alloc();
		if (m->blocks[i])
			memset(m->blocks[i], 0xab, EVFN__BLOCK_SIZE);
	}
	return NULL;
}

static void *
free_many(void *arg)
{
	struct many *m = arg;
	for (size_t i = 0; i < m->n; i++)
		evfn__block_free(m->blocks[i]);
	return NULL;
}

/* A block is one allocation of EVFN__BLOCK_SIZE from the configured
 * allocator, whole and writable. */
static void
test_blocks_come_from_the_configured_allocator(void **state)
{
	(void)state;
	reset();
	void *b[1];
	struct many m = {b, 1};
	long before = atomic_load(&mallocs);
	on_own_thread(alloc_many, &m); /* a new thread: nothing cached */
	assert_non_null(b[0]);
	ASSERT_EQ(atomic_load(&mallocs), before + 1);
	ASSERT_EQ(atomic_load(&last_size), EVFN__BLOCK_SIZE);
	on_own_thread(free_many, &m);
	/* That thread exited with the block in its cache: it went back. */
	ASSERT_EQ(atomic_load(&live), 0);
	/* Out of memory with nothing cached is NULL. */
	atomic_store(&fail_mallocs, true);
	on_own_thread(alloc_many, &m);
	atomic_store(&fail_mallocs, false);
	assert_null(b[0]);
}

/* A thread's frees serve its own next allocations, with no allocator
 * call; and under AddressSanitizer a cached block is poisoned, every
 * byte of it. */
struct reuse {
	void *first, *second;
	long mallocs_between;
	bool poisoned;
};

static void *
reuse_on_one_thread(void *arg)
{
	struct reuse *r = arg;
	r->first = evfn__block_alloc();
	evfn__block_free(r->first);
#if defined(__SANITIZE_ADDRESS__)
	/* Every byte, the links in its first words too. */
	r->poisoned = true;
	for (size_t i = 0; i < EVFN__BLOCK_SIZE; i++)
		r->poisoned &= __asan_address_is_poisoned((char *)r->first + i);
#else
	r->poisoned = true;
#endif
	long before = atomic_load(&mallocs);
	r->second = evfn__block_alloc();
	r->mallocs_between = atomic_load(&mallocs) - before;
	if (r->second)
		memset(r->second, 0x5a, EVFN__BLOCK_SIZE);
	evfn__block_free(r->second);
	return NULL;
}

static void
test_blocks_freed_serve_the_next_allocation(void **state)
{
	(void)state;
	reset();
	struct reuse r = {0};
	on_own_thread(reuse_on_one_thread, &r);
	assert_non_null(r.first);
	assert_ptr_equal(r.first, r.second);
	ASSERT_EQ(r.mallocs_between, 0);
	assert_true(r.poisoned);
	ASSERT_EQ(atomic_load(&live), 0);
}

/* Blocks freed by one thread go, a batch at a time, to a thread that
 * allocates: once one thread has freed enough, another allocates that
 * many without calling the allocator. */
static void
test_blocks_move_between_threads_in_batches(void **state)
{
	(void)state;
	reset();
	enum { N = 4 * EVFN__BLOCK_BATCH };
	void *b[N];
	struct many m = {b, N};
	on_own_thread(alloc_many, &m);
	on_own_thread(free_many, &m);
	/* The freeing thread exited: its full batches are in the depot. */
	ASSERT_EQ(evfn__blocks_in_depot(), N);
	long before = atomic_load(&mallocs);
	on_own_thread(alloc_many, &m);
	ASSERT_EQ(atomic_load(&mallocs), before);
	for (size_t i = 0; i < N; i++)
		assert_non_null(b[i]);
	on_own_thread(free_many, &m);
	ASSERT_EQ(evfn__blocks_trim(), N);
	ASSERT_EQ(atomic_load(&live), 0);
}

/* The depot keeps at most EVFN__BLOCK_DEPOT_MAX batches; the rest goes
 * back to the allocator as it comes. */
static void
test_blocks_depot_is_bounded(void **state)
{
	(void)state;
	reset();
	enum { N = (EVFN__BLOCK_DEPOT_MAX + 8) * EVFN__BLOCK_BATCH };
	void **b = calloc(N, sizeof(*b));
	assert_non_null(b);
	struct many m = {b, N};
	on_own_thread(alloc_many, &m);
	on_own_thread(free_many, &m);
	ASSERT_EQ(evfn__blocks_in_depot(),
	          EVFN__BLOCK_DEPOT_MAX * EVFN__BLOCK_BATCH);
	ASSERT_EQ(atomic_load(&live), EVFN__BLOCK_DEPOT_MAX * EVFN__BLOCK_BATCH);
	reset();
	ASSERT_EQ(atomic_load(&live), 0);
	free(b);
}

/* A producer allocates and stamps blocks, two workers check and free
 * them, at most PW_IN_FLIGHT handed over at a time: every block arrives
 * intact (no block given to two owners), the allocator makes only about
 * as many as are ever in use at once (in flight, in the caches and in the
 * depot), and nothing is left once the threads exit and the depot is
 * trimmed. */
#define PW_BLOCKS 200000
#define PW_WORKERS 2
#define PW_IN_FLIGHT 1024
/* In flight, plus full caches (two batches) on every thread, plus a full
 * depot. */
#define PW_MOST_MADE                                                         \
	(PW_IN_FLIGHT + (PW_WORKERS + 1) * 2 * EVFN__BLOCK_BATCH +           \
	 EVFN__BLOCK_DEPOT_MAX * EVFN__BLOCK_BATCH)

struct pw {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* blocks to take, or done */
	pthread_cond_t room; /* fewer than PW_IN_FLIGHT in flight */
	void **ring; /* blocks handed to the workers */
	size_t head, tail;
	bool done;
	atomic_uint bad;
	atomic_uint freed;
};

static void *
pw_producer(void *arg)
{
	struct pw *p = arg;
	for (unsigned i = 0; i < PW_BLOCKS; i++) {
		unsigned *blk = evfn__block_alloc();
		if (!blk) {
			atomic_fetch_add(&p->bad, 1);
			continue;
		}
		for (size_t w = 0; w < EVFN__BLOCK_SIZE / sizeof(*blk); w++)
			blk[w] = i;
		pthread_mutex_lock(&p->lock);
		while (p->tail - p->head >= PW_IN_FLIGHT)
			pthread_cond_wait(&p->room, &p->lock);
		p->ring[p->tail++] = blk;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_lock(&p->lock);
	p->done = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void *
pw_worker(void *arg)
{
	struct pw *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (p->head == p->tail && !p->done)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->head == p->tail) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		unsigned *blk = p->ring[p->head++];
		pthread_cond_signal(&p->room);
		pthread_mutex_unlock(&p->lock);
		for (size_t w = 1; w < EVFN__BLOCK_SIZE / sizeof(*blk); w++)
			if (blk[w] != blk[0])
				atomic_fetch_add(&p->bad, 1);
		/* Scribble, as a handler would, before freeing. */
		memset(blk, 0xee, EVFN__BLOCK_SIZE);
		evfn__block_free(blk);
		atomic_fetch_add(&p->freed, 1);
	}
}

static void
test_blocks_producer_allocates_workers_free(void **state)
{
	(void)state;
	test_hang_guard(120);
	reset();
	struct pw *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	p->ring = calloc(PW_BLOCKS, sizeof(*p->ring));
	assert_non_null(p->ring);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	pthread_cond_init(&p->room, NULL);
	long before = atomic_load(&mallocs);
	pthread_t prod, work[PW_WORKERS];
	assert_int_equal(pthread_create(&prod, NULL, pw_producer, p), 0);
	for (int i = 0; i < PW_WORKERS; i++)
		assert_int_equal(pthread_create(&work[i], NULL, pw_worker, p),
		                 0);
	pthread_join(prod, NULL);
	for (int i = 0; i < PW_WORKERS; i++)
		pthread_join(work[i], NULL);
	ASSERT_EQ(atomic_load(&p->bad), 0);
	ASSERT_EQ(atomic_load(&p->freed), PW_BLOCKS);
	long made = atomic_load(&mallocs) - before;
	print_message("# %ld of %d blocks came from the allocator\n", made,
	              PW_BLOCKS);
	assert_true(made <= PW_MOST_MADE);
	reset();
	ASSERT_EQ(atomic_load(&live), 0);
	pthread_cond_destroy(&p->cond);
	pthread_cond_destroy(&p->room);
	pthread_mutex_destroy(&p->lock);
	free(p->ring);
	free(p);
	test_hang_guard_off();
}

/* ---- events in blocks ---------------------------------------------- */

/* A thread that made and freed small events leaves them in its cache;
 * when it exits its full batches go to the depot and the rest back to
 * the allocator: no byte stays with a thread that is gone. */
#define EXIT_EVENTS (3 * EVFN__BLOCK_BATCH + 5)

static void *
make_and_free_events(void *arg)
{
	evfn_event *ev[EXIT_EVENTS];
	uint64_t v = 7;
	for (size_t i = 0; i < EXIT_EVENTS; i++)
		if (evfn_event_new(&ev[i], "small", &v, sizeof(v)) != 0)
			ev[i] = NULL;
	for (size_t i = 0; i < EXIT_EVENTS; i++) {
		if (!ev[i])
			*(bool *)arg = false;
		evfn_event_unref(ev[i]);
	}
	return NULL;
}

static void
test_blocks_thread_exit_gives_events_back(void **state)
{
	(void)state;
	reset();
	long before = atomic_load(&live_bytes);
	bool made = true;
	on_own_thread(make_and_free_events, &made);
	assert_true(made);
	/* Three full batches (the previous list and two before it) went
	 * to the depot, the five left over to the allocator. */
	ASSERT_EQ(evfn__blocks_in_depot(), 3 * EVFN__BLOCK_BATCH);
	ASSERT_EQ(atomic_load(&live_bytes) - before,
	          3 * EVFN__BLOCK_BATCH * EVFN__BLOCK_SIZE);
	reset();
	ASSERT_EQ(atomic_load(&live_bytes), before);
}

/* Eight producers publish small events to one function run by two
 * workers, so each event is made on its producer and freed on a worker
 * (any of them): every event runs once, the blocks freed on the workers
 * serve the producers (the allocator makes about as many as are ever in
 * use at once, not one an event), and when the threads have exited and
 * the depot is trimmed, every byte the allocator handed out is back. */
#define MP_PRODUCERS 8
#define MP_EVENTS 20000 /* each */
#define MP_QUEUE 1024
/* Queued, running on a worker (taken in batches), and full caches on
 * every thread plus a full depot. */
#define MP_MOST_BLOCKS                                                       \
	(MP_QUEUE + 2 * 256 + (MP_PRODUCERS + 2 + 1) * 2 * EVFN__BLOCK_BATCH +  \
	 EVFN__BLOCK_DEPOT_MAX * EVFN__BLOCK_BATCH)

static int
count_run(evfn_ctx *ctx, const evfn_event *ev, void *arg)
{
	(void)ctx;
	size_t len;
	const uint64_t *v = evfn_event_data(ev, &len);
	if (len == sizeof(*v) && *v < MP_EVENTS)
		atomic_fetch_add((atomic_long *)arg, 1);
	return EVFN_OK;
}

static void *
mp_producer(void *arg)
{
	evfn_rt *rt = arg;
	for (uint64_t i = 0; i < MP_EVENTS; i++) {
		int rc;
		while ((rc = evfn_invoke_async(rt, "count", &i, sizeof(i),
		                               NULL)) == EVFN_EQUEUEFULL)
			sched_yield();
		if (rc != 0)
			return (void *)1;
	}
	return NULL;
}

/* A started runtime with two workers and the function "count". */
static evfn_rt *
mp_runtime(atomic_long *runs)
{
	evfn_rt *rt = test_runtime_new(2, 2, NULL);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, MP_QUEUE));
	ASSERT_OK(evfn_register(rt, "count", count_run, runs, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	return rt;
}

/* Stops the runtime and frees it: its workers exit. */
static void
mp_finish(evfn_rt *rt)
{
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

static void
test_blocks_events_across_threads_account_for_every_byte(void **state)
{
	(void)state;
	test_hang_guard(120);
	/* A first runtime makes what the library keeps for good (interned
	 * names, the default source), so that what is live after it is
	 * the base line. */
	atomic_long runs = 0;
	evfn_rt *rt = mp_runtime(&runs);
	assert_null(mp_producer(rt));
	WAIT_FOR(atomic_load(&runs) == MP_EVENTS, 30000);
	mp_finish(rt);
	reset();
	long before = atomic_load(&live_bytes);
	long blocks_before = atomic_load(&block_mallocs);

	atomic_store(&runs, 0);
	rt = mp_runtime(&runs);
	pthread_t prod[MP_PRODUCERS];
	for (int i = 0; i < MP_PRODUCERS; i++)
		assert_int_equal(pthread_create(&prod[i], NULL, mp_producer,
		                                rt),
		                 0);
	for (int i = 0; i < MP_PRODUCERS; i++) {
		void *failed;
		pthread_join(prod[i], &failed);
		assert_null(failed);
	}
	/* A handler counts its run before its worker counts its end. */
	WAIT_FOR(stat_of(rt, "count", EVFN_STAT_SUCCEEDED) ==
	                 MP_PRODUCERS * MP_EVENTS,
	         60000);
	mp_finish(rt);
	ASSERT_EQ(atomic_load(&runs), MP_PRODUCERS * MP_EVENTS);
	long made = atomic_load(&block_mallocs) - blocks_before;
	print_message("# %ld blocks made for %d events\n", made,
	              MP_PRODUCERS * MP_EVENTS);
	assert_true(made <= MP_MOST_BLOCKS);
	/* Every thread that had a cache has exited: what is still out is
	 * in the depot, and a trim gives it back. */
	ASSERT_EQ(atomic_load(&live_bytes) - before,
	          (long)(evfn__blocks_in_depot() * EVFN__BLOCK_SIZE));
	reset();
	ASSERT_EQ(atomic_load(&live_bytes), before);
	test_hang_guard_off();
}

int
main(void)
{
	if (evfn_set_allocator(counting_malloc, counting_realloc,
	                       counting_calloc, counting_free) != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		TEST(test_blocks_come_from_the_configured_allocator),
		TEST(test_blocks_freed_serve_the_next_allocation),
		TEST(test_blocks_move_between_threads_in_batches),
		TEST(test_blocks_depot_is_bounded),
		TEST(test_blocks_producer_allocates_workers_free),
		TEST(test_blocks_thread_exit_gives_events_back),
		TEST(test_blocks_events_across_threads_account_for_every_byte),
	};
	return evfn_test_main("blocks", tests);
}
