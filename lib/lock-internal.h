/* SPDX-License-Identifier: MIT */
/*
 * The runtime's lock: a mutex that, in builds with EVFN__CHECK_LOCKS
 * (every build but release), remembers which thread holds it, so that a
 * function can assert its precondition: EVFN__ASSERT_HELD() at the top of
 * every function whose name ends in _locked, EVFN__ASSERT_NOT_HELD()
 * wherever user code is called (callout-internal.h). A broken assertion
 * prints where and aborts: it is a bug in evfn, never bad input. In
 * release builds the lock is a bare mutex and the assertions vanish.
 * Condition variables wait through evfn__lock_wait*(), which keep the
 * owner right across the wait.
 */
#ifndef EVFN_LOCK_INTERNAL_H
#define EVFN_LOCK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef EVFN__CHECK_LOCKS
#define EVFN__CHECK_LOCKS 0
#endif

struct evfn__lock {
	pthread_mutex_t mutex;
#if EVFN__CHECK_LOCKS
	atomic_ulong owner; /* the holder's pthread_self(), 0 when free */
#endif
};

#if EVFN__CHECK_LOCKS
_Static_assert(sizeof(pthread_t) <= sizeof(unsigned long),
               "owner holds a pthread_t");

/* Reports a broken lock precondition and aborts. */
__attribute__((noreturn, cold)) static inline void
evfn__lock_fail(const char *what, const char *file, int line)
{
	fprintf(stderr, "evfn: %s:%d: %s\n", file, line, what);
	abort();
}

static inline bool
evfn__lock_held(const struct evfn__lock *l)
{
	return atomic_load_explicit(&((struct evfn__lock *)l)->owner,
	                            memory_order_relaxed) ==
	       (unsigned long)pthread_self();
}

static inline void
evfn__lock_own(struct evfn__lock *l, bool owned)
{
	atomic_store_explicit(&l->owner,
	                      owned ? (unsigned long)pthread_self() : 0,
	                      memory_order_relaxed);
}

#define EVFN__ASSERT_HELD(l)                                                 \
	((void)(evfn__lock_held(l) ||                                        \
	        (evfn__lock_fail("lock not held", __FILE__, __LINE__), 0)))
#define EVFN__ASSERT_NOT_HELD(l)                                             \
	((void)(!evfn__lock_held(l) ||                                       \
	        (evfn__lock_fail("lock held", __FILE__, __LINE__), 0)))
#else
static inline void
evfn__lock_own(struct evfn__lock *l, bool owned)
{
	(void)l;
	(void)owned;
}

#define EVFN__ASSERT_HELD(l) ((void)(l))
#define EVFN__ASSERT_NOT_HELD(l) ((void)(l))
#endif

/* adaptive: the lock is held for a few dozen instructions at a time, so
 * a contender spins briefly instead of sleeping in the kernel. */
static inline void
evfn__lock_init(struct evfn__lock *l, bool adaptive)
{
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	if (adaptive)
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&l->mutex, &attr);
	pthread_mutexattr_destroy(&attr);
	evfn__lock_own(l, false);
}

static inline void
evfn__lock_destroy(struct evfn__lock *l)
{
	pthread_mutex_destroy(&l->mutex);
}

static inline void
evfn__lock_acquire(struct evfn__lock *l)
{
	pthread_mutex_lock(&l->mutex);
	evfn__lock_own(l, true);
}

static inline void
evfn__lock_release(struct evfn__lock *l)
{
	evfn__lock_own(l, false);
	pthread_mutex_unlock(&l->mutex);
}

/* pthread_cond_wait() on l, which the caller holds. */
static inline void
evfn__lock_wait(struct evfn__lock *l, pthread_cond_t *cond)
{
	evfn__lock_own(l, false);
	pthread_cond_wait(cond, &l->mutex);
	evfn__lock_own(l, true);
}

/* pthread_cond_timedwait() on l, which the caller holds; until is on the
 * condition's clock. Returns what pthread_cond_timedwait() returned. */
static inline int
evfn__lock_wait_until(struct evfn__lock *l, pthread_cond_t *cond,
                      const struct timespec *until)
{
	evfn__lock_own(l, false);
	int err = pthread_cond_timedwait(cond, &l->mutex, until);
	evfn__lock_own(l, true);
	return err;
}

/* A condition variable on CLOCK_MONOTONIC, the clock evfn's deadlines
 * are read from. Returns 0 or a negative errno. */
static inline int
evfn__cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	int err = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return -err;
}

#endif /* EVFN_LOCK_INTERNAL_H */
