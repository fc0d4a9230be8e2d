/* SPDX-License-Identifier: MIT */
/*
 * Blocks: fixed-size blocks (a small event's header and payload) cached
 * per thread, so that a thread that makes events (a producer) and the
 * threads that free them (the workers) trade them in batches instead of
 * through the C library's allocator. What goes in a block is the
 * caller's; anything larger than a block goes to evfn__malloc() as
 * before.
 *
 * The contract:
 *   - Every block is one evfn__malloc(EVFN__BLOCK_SIZE) allocation, so
 *     evfn_set_allocator() still routes all of it, and a block given back
 *     past the caches' limits is evfn__free()d.
 *   - evfn__block_alloc() and evfn__block_free() take no lock and make no
 *     call in the common case: a thread's cache is two lists reached
 *     through initial-exec thread-local storage (a few words of the
 *     static TLS space every thread has; no __tls_get_addr call even in
 *     a shared library). A cache moves whole batches of
 *     EVFN__BLOCK_BATCH blocks to and from a shared depot, under the
 *     depot's lock: once per EVFN__BLOCK_BATCH calls at most.
 *   - Any thread may free a block any thread allocated.
 *   - A thread's cache is given back when the thread exits; the depot
 *     keeps at most EVFN__BLOCK_DEPOT_MAX batches, and evfn__free()s what
 *     comes beyond.
 *   - Under AddressSanitizer a cached block is poisoned whole, so a use
 *     after evfn__block_free() is still reported (as use-after-poison)
 *     until the block is handed out again.
 */
#ifndef EVFN_BLOCKS_INTERNAL_H
#define EVFN_BLOCKS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "common-internal.h"

/* A small event (80-byte header, 8-byte payload, 16-byte type) in one
 * block: glibc's 112-byte chunk, as evfn__malloc(104) gives. */
#define EVFN__BLOCK_SIZE 104
/* Blocks a cache moves to or from the depot at once. */
#define EVFN__BLOCK_BATCH 64
/* Batches the depot keeps before it gives blocks back to the allocator
 * (about 450 KiB). */
#define EVFN__BLOCK_DEPOT_MAX 64

#if defined(__SANITIZE_ADDRESS__)
#define EVFN__BLOCKS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVFN__BLOCKS_ASAN 1
#endif
#endif

/* A block while it is cached: its first words link it. */
struct evfn__block {
	struct evfn__block *next;       /* the next block of its list */
	struct evfn__block *next_batch; /* the depot's next batch */
};

/* A thread's cache: Bonwick's "loaded" and "previous" magazines
 * (blocks.c). Declared here so that the common case below is inlined
 * into its callers: one initial-exec TLS access, no call. */
struct evfn__block_cache {
	struct evfn__block *loaded;   /* 0..EVFN__BLOCK_BATCH blocks */
	struct evfn__block *previous; /* NULL, or exactly EVFN__BLOCK_BATCH */
	unsigned nloaded;
	bool registered;              /* the thread-exit hand-back is armed */
};

extern _Thread_local struct evfn__block_cache evfn__block_cache
	EVFN__TLS_INITIAL_EXEC;

/* The rest of evfn__block_alloc() and evfn__block_free(): a cache that
 * is empty, full or not yet registered, and every call under
 * AddressSanitizer (which poisons what is cached). */
void *evfn__block_alloc_slow(void);
void evfn__block_free_slow(void *block);

/* EVFN__BLOCK_SIZE bytes, aligned as malloc's, or NULL when the
 * allocator fails. Any thread. */
static inline void *
evfn__block_alloc(void)
{
#ifndef EVFN__BLOCKS_ASAN
	struct evfn__block_cache *c = &evfn__block_cache;
	struct evfn__block *b = c->loaded;
	if (EVFN__LIKELY(b != NULL)) {
		c->loaded = b->next;
		c->nloaded--;
		return b;
	}
#endif
	return evfn__block_alloc_slow();
}

/* Gives a block from evfn__block_alloc() back; NULL is a no-op. Any
 * thread. */
static inline void
evfn__block_free(void *block)
{
#ifndef EVFN__BLOCKS_ASAN
	struct evfn__block_cache *c = &evfn__block_cache;
	if (EVFN__LIKELY(block && c->registered &&
	                 c->nloaded < EVFN__BLOCK_BATCH)) {
		struct evfn__block *b = block;
		b->next = c->loaded;
		c->loaded = b;
		c->nloaded++;
		return;
	}
#endif
	evfn__block_free_slow(block);
}

/* Gives the depot's blocks and the calling thread's cache back to the
 * allocator (other threads' caches stay until they exit). Returns how
 * many. Any thread. */
size_t evfn__blocks_trim(void);

/* Blocks in the depot now. Any thread. */
size_t evfn__blocks_in_depot(void);

#endif /* EVFN_BLOCKS_INTERNAL_H */
