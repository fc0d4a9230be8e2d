/* SPDX-License-Identifier: MIT */
/*
 * Every call of the host's code from the core goes through one of these
 * (libdispatch's _dispatch_client_callout), so that the lock rule of each
 * callback is written and checked in one place. The rule is that no
 * user callback runs with the runtime lock held: each callout asserts it
 * (EVFN__ASSERT_NOT_HELD, debug builds), since a callback that calls evfn
 * back would deadlock on it, and one that blocks would stall every
 * producer and worker.
 *
 * Three exceptions run where the lock may be held, each documented where
 * the host reads about it:
 * - the idempotency key callback (evfn_idempotency_key_cb): the store's
 *   lookup before an attempt starts and its update when the attempt
 *   succeeds are part of those transitions, which must be atomic, so the
 *   key is derived under the lock. The header says it "runs while evfn
 *   holds an internal lock: it must be quick and must not call evfn".
 * - the log callback (evfn_log_cb): a line that reports what went wrong
 *   inside a transition (out of memory, a worker that could not start)
 *   is logged there, since putting it off would need memory that may be
 *   missing. The header says it "may run ... while evfn holds internal
 *   locks, so it must not call evfn functions".
 * - the allocator (evfn_set_allocator()): memory is taken under the lock
 *   (invocations, queue rings, dead letters). It must be thread-safe and
 *   must not call evfn.
 * A payload's free callback runs where an event's last reference drops,
 * which is never under the runtime lock: invocations are cleared, and
 * evicted dead letters released, after it (settle.c).
 *
 * The callouts of the sources (lib/sources/) call the host's code only
 * through evfn's public API and on the loop, never under the runtime
 * lock, which they cannot take.
 */
#ifndef EVFN_CALLOUT_INTERNAL_H
#define EVFN_CALLOUT_INTERNAL_H

#include <stddef.h>

#include <evfn/context.h>
#include <evfn/deadletter.h>
#include <evfn/emit.h>
#include <evfn/function.h>
#include <evfn/runtime.h>

#include "lock-internal.h"

/* A function's handler, on the thread of the worker that runs it. */
static inline int
evfn__call_handler(const struct evfn__lock *rt_lock, evfn_handler handler,
                   evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	EVFN__ASSERT_NOT_HELD(rt_lock);
	return handler(ctx, ev, userdata);
}

/* A function's worker init hook, on the worker that will use the state. */
static inline int
evfn__call_init(const struct evfn__lock *rt_lock, evfn_worker_init_cb init,
                void *userdata, void **state)
{
	EVFN__ASSERT_NOT_HELD(rt_lock);
	return init(userdata, state);
}

/* A function's worker fini hook, on the thread that built the state. */
static inline void
evfn__call_fini(const struct evfn__lock *rt_lock, evfn_worker_fini_cb fini,
                void *userdata, void *state)
{
	EVFN__ASSERT_NOT_HELD(rt_lock);
	fini(userdata, state);
}

/* A function's cancel hook, on the loop thread, when the watchdog fenced
 * an attempt of it. */
static inline void
evfn__call_cancel_hook(const struct evfn__lock *rt_lock, evfn_cancel_cb hook,
                       evfn_ctx *ctx, void *userdata)
{
	EVFN__ASSERT_NOT_HELD(rt_lock);
	hook(ctx, userdata);
}

/* The event log's record callback, on the thread that tells it. */
static inline void
evfn__call_record(const struct evfn__lock *rt_lock, evfn_record_cb cb,
                  const evfn_record *rec, void *arg)
{
	EVFN__ASSERT_NOT_HELD(rt_lock);
	cb(rec, arg);
}

/* A result callback (evfn_submit()), on the loop thread or at free. */
static inline void
evfn__call_result(const struct evfn__lock *rt_lock, evfn_result_cb cb,
                  const evfn_result *r, void *arg)
{
	EVFN__ASSERT_NOT_HELD(rt_lock);
	cb(r, arg);
}

/* The drain's hand-back callback, on the draining (or freeing) thread. */
static inline void
evfn__call_handback(const struct evfn__lock *rt_lock, evfn_handback_cb cb,
                    const evfn_event *ev, const char *fn_name, void *arg)
{
	EVFN__ASSERT_NOT_HELD(rt_lock);
	cb(ev, fn_name, arg);
}

/* A function's userdata destructor, once, when the runtime is freed. */
static inline void
evfn__call_userdata_free(const struct evfn__lock *rt_lock,
                         evfn_userdata_free_cb free_cb, void *userdata)
{
	EVFN__ASSERT_NOT_HELD(rt_lock);
	free_cb(userdata);
}

/* The idempotency key callback: under the runtime lock (see above). */
static inline int
evfn__call_idempotency_key(const struct evfn__lock *rt_lock,
                           evfn_idempotency_key_cb cb, const evfn_event *ev,
                           char *key, size_t size, void *userdata)
{
	EVFN__ASSERT_HELD(rt_lock);
	return cb(ev, key, size, userdata);
}

/* The log callback: with or without the runtime lock (see above). */
static inline void
evfn__call_log(evfn_log_cb cb, evfn_log_level level, const char *msg,
               void *arg)
{
	cb(level, msg, arg);
}

#endif /* EVFN_CALLOUT_INTERNAL_H */
