/* SPDX-License-Identifier: MIT */
/*
 * Shared internals: the allocator wrappers every lib/ file allocates
 * through, small macros, and the monotonic and wall clocks. No concept
 * lives here; each has its own <concept>-internal.h where other files need
 * its internals.
 */
#ifndef EVFN_COMMON_INTERNAL_H
#define EVFN_COMMON_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn/errors.h>

#define EVFN__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define EVFN__CONTAINER_OF(ptr, type, member)                                \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define EVFN__STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define EVFN__MIN(a, b) ((a) < (b) ? (a) : (b))
#define EVFN__MAX(a, b) ((a) > (b) ? (a) : (b))
#define EVFN__LIKELY(x) __builtin_expect(!!(x), 1)
#define EVFN__UNLIKELY(x) __builtin_expect(!!(x), 0)

#define EVFN__NS_PER_MS INT64_C(1000000)
#define EVFN__NS_PER_SEC INT64_C(1000000000)

/* Allocation goes through these so that evfn_set_allocator() reroutes all
 * of it. Each returns NULL on failure; evfn__free(NULL) is a no-op. */
void *evfn__malloc(size_t size);
void *evfn__calloc(size_t n, size_t size);
void *evfn__realloc(void *ptr, size_t size);
void evfn__free(void *ptr);
/* A copy of s (NULL for NULL s or on failure). */
char *evfn__strdup(const char *s);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
int64_t evfn__now_ns(void);
int64_t evfn__wall_ns(void);
/* Sets the wall - monotonic offset that evfn__mono_to_wall() adds (the
 * watchdog calls it every second) and returns it. */
int64_t evfn__wall_offset_refresh(void);
extern atomic_int_fast64_t evfn__wall_offset; /* 0 until first set */

/* The wall time at a monotonic reading. Inline: it is on every publish
 * and every attempt's start. */
static inline int64_t
evfn__mono_to_wall(int64_t mono_ns)
{
	int64_t off = atomic_load_explicit(&evfn__wall_offset,
	                                   memory_order_relaxed);
	if (EVFN__UNLIKELY(off == 0))
		off = evfn__wall_offset_refresh();
	return mono_ns + off;
}

/* Validates a name or topic: non-NULL, non-empty, at most EVFN_NAME_MAX
 * bytes. Returns 0, EVFN_EINVAL or EVFN_ENAMETOOLONG. */
int evfn__check_name(const char *name);

#endif /* EVFN_COMMON_INTERNAL_H */
