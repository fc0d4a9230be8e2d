/* SPDX-License-Identifier: MIT */
/*
 * Per-thread caches of blocks and the depot between them (contract in
 * blocks-internal.h). Each thread's cache is two lists, Bonwick's
 * "loaded" and "previous" magazines: allocation pops the loaded list and
 * freeing pushes onto it; when it runs empty the previous (full) list
 * takes its place or a full batch comes from the depot, and when it runs
 * full it becomes the previous list and the old previous goes to the
 * depot. So a producer that only allocates and a worker that only frees
 * meet at the depot once per batch, and neither touches a lock or an
 * atomic in between. The cache is reached through initial-exec TLS: in a
 * shared library the default (global-dynamic) model makes every access a
 * __tls_get_addr call, which cost as much as the malloc it saved when
 * this was last tried; initial-exec makes it one %fs-relative load, at
 * the price of a few words of the static TLS space that a dlopen()ed
 * library shares with the rest of the process (tests/test-dlopen.c loads
 * the library that way).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blocks-internal.h"
#include "common-internal.h"

EVFN__STATIC_ASSERT(sizeof(struct evfn__block) <= EVFN__BLOCK_SIZE,
                    "a block holds its links");

#ifdef EVFN__BLOCKS_ASAN
#include <sanitizer/asan_interface.h>
/* A cached block is poisoned whole, its links too: any use after
 * evfn__block_free() is reported, the header's first words included.
 * The cache's own code opens the links for the moment it reads or
 * writes them. */
#define POISON(b) ASAN_POISON_MEMORY_REGION((b), EVFN__BLOCK_SIZE)
#define UNPOISON(b) ASAN_UNPOISON_MEMORY_REGION((b), EVFN__BLOCK_SIZE)
#define OPEN_LINKS(b)                                                        \
	ASAN_UNPOISON_MEMORY_REGION((b), sizeof(struct evfn__block))
#define CLOSE_LINKS(b)                                                       \
	ASAN_POISON_MEMORY_REGION((b), sizeof(struct evfn__block))
#else
#define POISON(b) ((void)(b))
#define UNPOISON(b) ((void)(b))
#define OPEN_LINKS(b) ((void)(b))
#define CLOSE_LINKS(b) ((void)(b))
#endif

/* The one thread-local: initial-exec, so no __tls_get_addr (see the
 * file's opening), and hidden like every internal symbol, so that the
 * inline common case reaches it the same way. */
_Thread_local struct evfn__block_cache evfn__block_cache
	EVFN__TLS_INITIAL_EXEC;

static struct {
	pthread_mutex_t lock;
	struct evfn__block *batches; /* full batches, linked by next_batch */
	/* Written under the lock; read without it by depot_take()'s first
	 * look, so that a thread that allocates while the depot is empty
	 * does not take the lock for each of its allocations. */
	atomic_size_t nbatches;
} depot = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static bool exit_key_made;

/* Gives every block of a list back to the allocator. */
static size_t
release_list(struct evfn__block *b)
{
	size_t n = 0;
	while (b) {
		UNPOISON(b);
		struct evfn__block *next = b->next;
		evfn__free(b);
		b = next;
		n++;
	}
	return n;
}

/* Puts a full batch in the depot, or gives it back to the allocator when
 * the depot holds enough. */
static void
depot_put(struct evfn__block *batch)
{
	pthread_mutex_lock(&depot.lock);
	bool kept = atomic_load_explicit(&depot.nbatches,
	                                 memory_order_relaxed) <
	            EVFN__BLOCK_DEPOT_MAX;
	if (kept) {
		OPEN_LINKS(batch);
		batch->next_batch = depot.batches;
		CLOSE_LINKS(batch);
		depot.batches = batch;
		atomic_fetch_add_explicit(&depot.nbatches, 1,
		                          memory_order_relaxed);
	}
	pthread_mutex_unlock(&depot.lock);
	if (!kept)
		release_list(batch);
}

/* A full batch from the depot, or NULL when it has none. A batch put
 * there a moment ago may be missed: the caller then allocates. */
static struct evfn__block *
depot_take(void)
{
	if (atomic_load_explicit(&depot.nbatches, memory_order_relaxed) == 0)
		return NULL;
	pthread_mutex_lock(&depot.lock);
	struct evfn__block *batch = depot.batches;
	if (batch) {
		OPEN_LINKS(batch);
		depot.batches = batch->next_batch;
		CLOSE_LINKS(batch);
		atomic_fetch_sub_explicit(&depot.nbatches, 1,
		                          memory_order_relaxed);
	}
	pthread_mutex_unlock(&depot.lock);
	return batch;
}

/* Runs when a thread that cached blocks exits: its full batches go to
 * the depot and the rest to the allocator. The cache is this thread's,
 * still reachable while key destructors run. */
static void
thread_exit(void *arg)
{
	(void)arg;
	struct evfn__block_cache *c = &evfn__block_cache;
	if (c->previous)
		depot_put(c->previous);
	if (c->nloaded == EVFN__BLOCK_BATCH)
		depot_put(c->loaded);
	else
		release_list(c->loaded);
	/* A later call on this thread registers anew. */
	*c = (struct evfn__block_cache){0};
}

static void
make_exit_key(void)
{
	exit_key_made = pthread_key_create(&exit_key, thread_exit) == 0;
}

/* Arms the thread-exit hand-back for this thread; false if it cannot be,
 * and then the thread uses the allocator directly. */
static bool
register_thread(struct evfn__block_cache *c)
{
	pthread_once(&exit_once, make_exit_key);
	/* The value only has to be non-NULL for the destructor to run. */
	c->registered = exit_key_made && pthread_setspecific(exit_key, c) == 0;
	return c->registered;
}

/* When the library is unloaded (dlclose) no destructor of it may run
 * later, and what the depot and the unloading thread's cache hold would
 * be unreachable. Other threads' caches stay where they are. */
__attribute__((destructor)) static void
blocks_unload(void)
{
	if (exit_key_made)
		pthread_key_delete(exit_key);
	evfn__blocks_trim();
}

static inline void *
pop(struct evfn__block_cache *c)
{
	struct evfn__block *b = c->loaded;
	UNPOISON(b);
	c->loaded = b->next;
	c->nloaded--;
	return b;
}

static inline void
push(struct evfn__block_cache *c, struct evfn__block *b)
{
	b->next = c->loaded;
	POISON(b);
	c->loaded = b;
	c->nloaded++;
}

/* The common case is inlined in blocks-internal.h, except under ASan:
 * the slow paths below serve it too. */
void *
evfn__block_alloc_slow(void)
{
	struct evfn__block_cache *c = &evfn__block_cache;
	if (c->loaded)
		return pop(c);
	if (!c->registered && !register_thread(c))
		return evfn__malloc(EVFN__BLOCK_SIZE);
	struct evfn__block *batch = c->previous;
	if (batch)
		c->previous = NULL;
	else if (!(batch = depot_take()))
		return evfn__malloc(EVFN__BLOCK_SIZE);
	c->loaded = batch;
	c->nloaded = EVFN__BLOCK_BATCH;
	return pop(c);
}

void
evfn__block_free_slow(void *p)
{
	if (!p)
		return;
	struct evfn__block_cache *c = &evfn__block_cache;
	if (!c->registered && !register_thread(c)) {
		evfn__free(p);
		return;
	}
	if (c->nloaded == EVFN__BLOCK_BATCH) {
		if (c->previous)
			depot_put(c->previous);
		c->previous = c->loaded;
		c->loaded = NULL;
		c->nloaded = 0;
	}
	push(c, p);
}

size_t
evfn__blocks_trim(void)
{
	/* This thread's cache first: the caller of a trim (a host's main
	 * thread, a test) may have freed events itself. */
	struct evfn__block_cache *c = &evfn__block_cache;
	size_t n = release_list(c->previous) + release_list(c->loaded);
	c->previous = c->loaded = NULL;
	c->nloaded = 0;
	pthread_mutex_lock(&depot.lock);
	struct evfn__block *batches = depot.batches;
	depot.batches = NULL;
	atomic_store_explicit(&depot.nbatches, 0, memory_order_relaxed);
	pthread_mutex_unlock(&depot.lock);
	while (batches) {
		OPEN_LINKS(batches);
		struct evfn__block *next = batches->next_batch;
		n += release_list(batches);
		batches = next;
	}
	return n;
}

size_t
evfn__blocks_in_depot(void)
{
	return atomic_load_explicit(&depot.nbatches, memory_order_relaxed) *
	       EVFN__BLOCK_BATCH;
}
