/* SPDX-License-Identifier: MIT */
/*
 * The event loop, the only place the core touches libevent (loop.c): the
 * base (evfn's own, run by a loop thread, or a host's), signals that run
 * a callback on the loop once however often they are raised before it
 * runs, timers on the monotonic clock, and calls carried to the loop
 * thread. Every callback evfn registers runs through loop.c, which marks
 * the thread (evfn__tls_loop_rt) while it runs. Nothing here knows what
 * the callbacks do: the layers above pass them in.
 */
#ifndef EVFN_LOOP_INTERNAL_H
#define EVFN_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common-internal.h"

struct event;
struct event_base;
struct evfn_rt;

/* The runtime whose loop callback runs on this thread now, or NULL: a
 * call that would wait for the loop refuses rather than wait on
 * itself. */
extern _Thread_local struct evfn_rt *evfn__tls_loop_rt EVFN__TLS_INITIAL_EXEC;

struct evfn__loop {
	struct event_base *base;
	bool own_base;
	struct evfn_rt *owner;      /* what evfn__tls_loop_rt says inside
	                             * the loop's callbacks */
	atomic_bool thread_started; /* own base: the loop thread runs */
	pthread_t thread;
	struct event *stop_ev;      /* ends the loop thread */
	atomic_ulong tid;           /* the thread our callbacks last ran on
	                             * (a host's loop thread, embedded) */
};

/* Sets up l on host_base, or (NULL) on a base of its own, whose timers
 * read the precise monotonic clock. Returns 0 or EVFN_ENOMEM; l is safe
 * to destroy either way. */
int evfn__loop_init(struct evfn__loop *l, struct evfn_rt *owner,
                    struct event_base *host_base);
/* Frees what evfn__loop_init() made; every signal and timer of l must be
 * freed first. */
void evfn__loop_destroy(struct evfn__loop *l);
/* Own base: starts the loop thread. Returns 0 or a negative errno. */
int evfn__loop_start(struct evfn__loop *l);
/* Ends the loop thread, if it started, and joins it. */
void evfn__loop_stop(struct evfn__loop *l);

/* Whether the calling thread is inside one of l's callbacks. */
static inline bool
evfn__loop_is_current(const struct evfn__loop *l)
{
	return evfn__tls_loop_rt == l->owner;
}

/* Whether nobody but the caller may run l's base: it is a host's, or the
 * loop thread has not started. */
bool evfn__loop_unattended(struct evfn__loop *l);
/* Whether the calling thread is the one l's callbacks last ran on. */
bool evfn__loop_thread_is_self(struct evfn__loop *l);
/* Runs what is ready on the base without waiting (embedded mode, when
 * nobody else drives it). Returns event_base_loop()'s result: -1 when
 * the base runs elsewhere. */
int evfn__loop_run_ready(struct evfn__loop *l);
/* Runs fn(arg) on the loop thread and returns once it ran: see
 * evfn__rt_run_on_loop() (source-internal.h). */
int evfn__loop_call(struct evfn__loop *l, void (*fn)(void *), void *arg);

/* A callback to run on the loop soon, from any thread. */
struct evfn__signal;
struct evfn__signal *evfn__signal_new(struct evfn__loop *l,
                                      void (*cb)(void *), void *arg);
/* Has the callback run once on the loop, however often this is called
 * before it does. A call made after the callback began runs it again. */
void evfn__signal_raise(struct evfn__signal *s);
void evfn__signal_free(struct evfn__signal *s);

/* A timer on the monotonic clock, armed from any thread. */
struct evfn__timer;
struct evfn__timer *evfn__timer_new(struct evfn__loop *l, void (*cb)(void *),
                                    void *arg);
/* A timer that, once started, fires every period_ns until disarmed. */
struct evfn__timer *evfn__timer_new_periodic(struct evfn__loop *l,
                                             int64_t period_ns,
                                             void (*cb)(void *), void *arg);
/* One-shot: fires at due_ns (rounded up to the microsecond) unless armed
 * for that time or earlier already; periodic: starts ticking (due_ns is
 * ignored). Returns false when libevent could not add it (out of
 * memory). */
bool evfn__timer_arm(struct evfn__timer *t, int64_t due_ns);
void evfn__timer_disarm(struct evfn__timer *t);
void evfn__timer_free(struct evfn__timer *t);

#endif /* EVFN_LOOP_INTERNAL_H */
