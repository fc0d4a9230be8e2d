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

#include <stddef.h>

/* A small event (80-byte header, 8-byte payload, 16-byte type) in one
 * block: glibc's 112-byte chunk, as evfn__malloc(104) gives. */
#define EVFN__BLOCK_SIZE 104
/* Blocks a cache moves to or from the depot at once. */
#define EVFN__BLOCK_BATCH 64
/* Batches the depot keeps before it gives blocks back to the allocator
 * (about 450 KiB). */
#define EVFN__BLOCK_DEPOT_MAX 64

/* EVFN__BLOCK_SIZE bytes, aligned as malloc's, or NULL when the
 * allocator fails. Any thread. */
void *evfn__block_alloc(void);

/* Gives a block from evfn__block_alloc() back; NULL is a no-op. Any
 * thread. */
void evfn__block_free(void *block);

/* Gives the depot's blocks and the calling thread's cache back to the
 * allocator (other threads' caches stay until they exit). Returns how
 * many. Any thread. */
size_t evfn__blocks_trim(void);

/* Blocks in the depot now. Any thread. */
size_t evfn__blocks_in_depot(void);

#endif /* EVFN_BLOCKS_INTERNAL_H */
