/* SPDX-License-Identifier: MIT */
/*
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
 * @param malloc_fn, realloc_fn, calloc_fn, free_fn all four non-NULL, with
 *        the semantics of the C library functions.
 * @return 0; EVFN_EINVAL if any is NULL; EVFN_EPERM if evfn already
 *         allocated memory.
 * Thread-safety: call once, before any other thread uses evfn.
 * @since 0.1
 */
EVFN_EXPORT int evfn_set_allocator(void *(*malloc_fn)(size_t),
                                   void *(*realloc_fn)(void *, size_t),
                                   void *(*calloc_fn)(size_t, size_t),
                                   void (*free_fn)(void *));

/**
 * Release memory that evfn allocated and handed to the caller, such as the
 * response of evfn_invoke(). NULL is a no-op.
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT void evfn_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_ALLOC_H */
