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
#include <stdbool.h>
#include <stdint.h>

#include "blocks-internal.h"
#include "common-internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define BLOCKS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BLOCKS_ASAN 1
#endif
#endif

/* A block while it is cached: the first words link it. */
struct block {
	struct block *next;       /* the next block of its list */
	struct block *next_batch; /* the depot's next batch (first block) */
};
EVFN__STATIC_ASSERT(sizeof(struct block) <= EVFN__BLOCK_SIZE,
                    "a block holds its links");

#ifdef BLOCKS_ASAN
#include <sanitizer/asan_interface.h>
/* A cached block is poisoned whole, its links too: any use after
 * evfn__block_free() is reported, the header's first words included.
 * The cache's own code opens the links for the moment it reads or
 * writes them. */
#define POISON(b) ASAN_POISON_MEMORY_REGION((b), EVFN__BLOCK_SIZE)
#define UNPOISON(b) ASAN_UNPOISON_MEMORY_REGION((b), EVFN__BLOCK_SIZE)
#define OPEN_LINKS(b) ASAN_UNPOISON_MEMORY_REGION((b), sizeof(struct block))
#define CLOSE_LINKS(b) ASAN_POISON_MEMORY_REGION((b), sizeof(struct block))
#else
#define POISON(b) ((void)(b))
#define UNPOISON(b) ((void)(b))
#define OPEN_LINKS(b) ((void)(b))
#define CLOSE_LINKS(b) ((void)(b))
#endif

struct cache {
	struct block *loaded;   /* 0..EVFN__BLOCK_BATCH blocks */
	struct block *previous; /* NULL, or exactly EVFN__BLOCK_BATCH */
	unsigned nloaded;
	bool registered;        /* the thread-exit hand-back is armed */
};

/* The one thread-local: initial-exec, so no __tls_get_addr (see the
 * file's opening). */
static _Thread_local struct cache cache EVFN__TLS_INITIAL_EXEC;

static struct {
	pthread_mutex_t lock;
	struct block *batches; /* full batches, linked by next_batch */
	size_t nbatches;
} depot = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static bool exit_key_made;

/* Gives every block of a list back to the allocator. */
static size_t
release_list(struct block *b)
{
	size_t n = 0;
	while (b) {
		UNPOISON(b);
		struct block *next = b->next;
		evfn__free(b);
		b = next;
		n++;
	}
	return n;
}

/* Puts a full batch in the depot, or gives it back to the allocator when
 * the depot holds enough. */
static void
depot_put(struct block *batch)
{
	pthread_mutex_lock(&depot.lock);
	bool kept = depot.nbatches < EVFN__BLOCK_DEPOT_MAX;
	if (kept) {
		OPEN_LINKS(batch);
		batch->next_batch = depot.batches;
		CLOSE_LINKS(batch);
		depot.batches = batch;
		depot.nbatches++;
	}
	pthread_mutex_unlock(&depot.lock);
	if (!kept)
		release_list(batch);
}

/* A full batch from the depot, or NULL when it has none. */
static struct block *
depot_take(void)
{
	pthread_mutex_lock(&depot.lock);
	struct block *batch = depot.batches;
	if (batch) {
		OPEN_LINKS(batch);
		depot.batches = batch->next_batch;
		CLOSE_LINKS(batch);
		depot.nbatches--;
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
	struct cache *c = &cache;
	if (c->previous)
		depot_put(c->previous);
	if (c->nloaded == EVFN__BLOCK_BATCH)
		depot_put(c->loaded);
	else
		release_list(c->loaded);
	*c = (struct cache){0}; /* a later call here registers anew */
}

static void
make_exit_key(void)
{
	exit_key_made = pthread_key_create(&exit_key, thread_exit) == 0;
}

/* Arms the thread-exit hand-back for this thread; false if it cannot be,
 * and then the thread uses the allocator directly. */
static bool
register_thread(struct cache *c)
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
pop(struct cache *c)
{
	struct block *b = c->loaded;
	UNPOISON(b);
	c->loaded = b->next;
	c->nloaded--;
	return b;
}

static inline void
push(struct cache *c, struct block *b)
{
	b->next = c->loaded;
	POISON(b);
	c->loaded = b;
	c->nloaded++;
}

static void *
alloc_slow(struct cache *c)
{
	if (!c->registered && !register_thread(c))
		return evfn__malloc(EVFN__BLOCK_SIZE);
	struct block *batch = c->previous;
	if (batch)
		c->previous = NULL;
	else if (!(batch = depot_take()))
		return evfn__malloc(EVFN__BLOCK_SIZE);
	c->loaded = batch;
	c->nloaded = EVFN__BLOCK_BATCH;
	return pop(c);
}

void *
evfn__block_alloc(void)
{
	struct cache *c = &cache;
	if (EVFN__LIKELY(c->loaded != NULL))
		return pop(c);
	return alloc_slow(c);
}

static void
free_slow(struct cache *c, struct block *b)
{
	if (!c->registered && !register_thread(c)) {
		evfn__free(b);
		return;
	}
	if (c->nloaded == EVFN__BLOCK_BATCH) {
		if (c->previous)
			depot_put(c->previous);
		c->previous = c->loaded;
		c->loaded = NULL;
		c->nloaded = 0;
	}
	push(c, b);
}

void
evfn__block_free(void *p)
{
	if (!p)
		return;
	struct cache *c = &cache;
	if (EVFN__LIKELY(c->registered && c->nloaded < EVFN__BLOCK_BATCH))
		push(c, p);
	else
		free_slow(c, p);
}

size_t
evfn__blocks_trim(void)
{
	/* This thread's cache first: the caller of a trim (a host's main
	 * thread, a test) may have freed events itself. */
	struct cache *c = &cache;
	size_t n = release_list(c->previous) + release_list(c->loaded);
	c->previous = c->loaded = NULL;
	c->nloaded = 0;
	pthread_mutex_lock(&depot.lock);
	struct block *batches = depot.batches;
	depot.batches = NULL;
	depot.nbatches = 0;
	pthread_mutex_unlock(&depot.lock);
	while (batches) {
		OPEN_LINKS(batches);
		struct block *next = batches->next_batch;
		n += release_list(batches);
		batches = next;
	}
	return n;
}

size_t
evfn__blocks_in_depot(void)
{
	pthread_mutex_lock(&depot.lock);
	size_t n = depot.nbatches * EVFN__BLOCK_BATCH;
	pthread_mutex_unlock(&depot.lock);
	return n;
}
