/* SPDX-License-Identifier: MIT */
/**
 * @file
 * The allocator evfn uses for everything it allocates, and the call that
 * releases memory evfn hands to the caller (sync-invoke responses). Anything
 * not declared under include/evfn/ is private.
 */
#ifndef EVFN_ALLOC_H
#define EVFN_ALLOC_H

#include <stddef.h>
#include <evfn/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Replace the allocator used by every evfn object.
 *
 * Must be called before any other evfn call allocates; once an allocation
 * has been made, replacing the allocator would mix heaps, so the call is
 * refused.
 *
 * @param malloc_fn  replaces malloc(); not NULL.
 * @param realloc_fn replaces realloc(); not NULL.
 * @param calloc_fn  replaces calloc(); not NULL.
 * @param free_fn    replaces free(); not NULL. evfn never asks any of
 *        them for 0 bytes and never passes NULL to free_fn.
 * @return 0; EVFN_EINVAL if any of the four is NULL; EVFN_EPERM if evfn
 *         already allocated memory (through any call, in any thread).
 *
 * Ownership: the four functions are used for every later allocation and
 * release, for the life of the process. A small event's memory (an
 * event of up to 104 bytes: a type of up to 15 bytes with an 8-byte
 * payload) is kept for the next event rather than given to free_fn at
 * the last evfn_event_unref(): each thread keeps up to 128 such blocks
 * until it exits, and a shared reserve up to 4,096 of them (about
 * 450 KiB) until the library is unloaded.
 *
 * Thread-safety: call once, before any other thread uses evfn.
 * @since 0.1
 */
EVFN_EXPORT int evfn_set_allocator(void *(*malloc_fn)(size_t),
                                   void *(*realloc_fn)(void *, size_t),
                                   void *(*calloc_fn)(size_t, size_t),
                                   void (*free_fn)(void *));

/**
 * Release memory that evfn allocated and handed to the caller, such as the
 * response of evfn_invoke() or the text of evfn_metrics_prometheus().
 *
 * @param ptr the memory; NULL is a no-op.
 *
 * Ownership: takes ptr back from the caller; it must have come from an
 * evfn call documented to hand memory over (never free() it yourself: the
 * allocator may have been replaced).
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT void evfn_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_ALLOC_H */
