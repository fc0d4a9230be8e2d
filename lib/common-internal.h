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
#include <sys/time.h>

#include <evfn/errors.h>

#define EVFN__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define EVFN__CONTAINER_OF(ptr, type, member)                                \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define EVFN__STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define EVFN__MIN(a, b) ((a) < (b) ? (a) : (b))
#define EVFN__MAX(a, b) ((a) > (b) ? (a) : (b))
#define EVFN__LIKELY(x) __builtin_expect(!!(x), 1)
#define EVFN__UNLIKELY(x) __builtin_expect(!!(x), 0)
/* A thread-local read on every call (the runtime a handler or loop
 * callback runs for, a block cache): initial-exec makes it one
 * %fs-relative load instead of a __tls_get_addr call in the shared
 * library, for a few words of the static TLS space a dlopen()ed library
 * shares with the process (tests/test-dlopen.c loads it that way). */
#define EVFN__TLS_INITIAL_EXEC __attribute__((tls_model("initial-exec")))
/* On a function of a rare path that the compiler would inline into a hot
 * one, where its locals would enlarge the hot one's frame. */
#define EVFN__NOINLINE __attribute__((noinline))

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
/* Replaces the string at *slot (freed) with a copy of s; NULL s clears
 * it. Returns 0, or EVFN_ENOMEM with *slot untouched. */
int evfn__strreplace(char **slot, const char *s);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
int64_t evfn__now_ns(void);
int64_t evfn__wall_ns(void);
/* A duration in ns as libevent takes it, rounded up to the microsecond:
 * a timer armed with it never fires before the duration has passed. */
struct timeval evfn__timeval_ns(int64_t ns);
/* The wall - monotonic offset that evfn__mono_to_wall() adds, and the
 * monotonic time from which it is to be read again (0 until first read). */
struct evfn__wall_clock {
	atomic_int_fast64_t offset;
	atomic_int_fast64_t due;
};
extern struct evfn__wall_clock evfn__wall_clock;
/* How old the offset may grow before it is read again: a step of the
 * wall clock (or a suspend, which stops the monotonic one) shows within
 * this long of the next use. */
#define EVFN__WALL_REFRESH_NS EVFN__NS_PER_SEC
/* Reads the offset again and returns it. */
int64_t evfn__wall_offset_refresh(void);

/* The wall time at a monotonic reading (one at about the present time:
 * past the refresh interval since the last one, the offset is read
 * again). Inline: it is on every publish and every attempt's start. */
static inline int64_t
evfn__mono_to_wall(int64_t mono_ns)
{
	/* Acquire: an offset at least as new as its due time (free on
	 * x86). */
	int64_t due = atomic_load_explicit(&evfn__wall_clock.due,
	                                   memory_order_acquire);
	int64_t off = atomic_load_explicit(&evfn__wall_clock.offset,
	                                   memory_order_relaxed);
	if (EVFN__UNLIKELY(mono_ns >= due))
		off = evfn__wall_offset_refresh();
	return mono_ns + off;
}

/* Validates a name or topic: non-NULL, non-empty, at most EVFN_NAME_MAX
 * bytes. Returns 0, EVFN_EINVAL or EVFN_ENAMETOOLONG. */
int evfn__check_name(const char *name);

/* As evfn__check_name(), in the same one pass over the name, returning
 * its length (1..EVFN_NAME_MAX) when it is valid: for a caller that
 * copies the name. */
int evfn__name_len(const char *name);

/* Validates a function name: as evfn__check_name(), and well-formed
 * UTF-8 (EVFN_EILSEQ), since it appears in metrics and JSON. */
int evfn__check_fn_name(const char *name);

#endif /* EVFN_COMMON_INTERNAL_H */
