/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Embedding evfn in a host's libevent event_base. The base is only
 * forward-declared: including this header does not pull in libevent.
 * Anything not declared under include/evfn/ is private.
 *
 * The host must call evthread_use_pthreads() before it creates the base
 * (libevent's locks make cross-thread wake-ups safe; without them worker
 * completions race with the loop), and must drive the base itself
 * (event_base_dispatch() or event_base_loop()) for loop handlers, retry
 * timers and synchronous invocations to make progress. Pool handlers run
 * without the loop.
 *
 * evfn keeps an event pending on the base only while it has something to
 * do there: the watchdog's 10 ms tick while attempts run (their
 * deadlines), the retry timer while retries or delayed events wait, a
 * function's timer while its rate limit, breaker or batch window makes
 * work wait; triggers and sources keep theirs while they live. So an idle
 * runtime never wakes the loop, and event_base_dispatch() returns once
 * evfn is idle and nothing else is pending (run the base with
 * EVLOOP_NO_EXIT_ON_EMPTY to keep it running regardless).
 */
#ifndef EVFN_LIBEVENT_H
#define EVFN_LIBEVENT_H

#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

/**
 * Run the runtime on a host's event_base instead of a loop thread of its
 * own. The base is borrowed: it must outlive the runtime, and
 * evfn_rt_free() removes evfn's events from it but never frees it.
 * @param o    the builder. Not NULL.
 * @param base the host's base, created after evthread_use_pthreads().
 *        Not NULL.
 * @return 0; EVFN_EINVAL for NULL o or base.
 *
 * Ownership: base stays the host's (borrowed by every runtime created
 * from these options).
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_set_event_base(evfn_rt_options *o,
                                               struct event_base *base);

/**
 * The base the runtime runs on (its own or the host's).
 * @param rt the runtime; NULL returns NULL.
 * @return the base, borrowed: evfn's own lives until evfn_rt_free(),
 *         a host's stays the host's.
 *
 * Ownership: borrowed (see the return value).
 * @since 0.2 (0.1: evfn_runtime_event_base(), deprecated)
 */
EVFN_EXPORT struct event_base *evfn_rt_event_base(const evfn_rt *rt);


#ifdef __cplusplus
}
#endif

#endif /* EVFN_LIBEVENT_H */
