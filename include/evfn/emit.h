/* SPDX-License-Identifier: MIT */
/*
 * Getting events into a runtime: emit to a topic (fan-out to every
 * subscriber), invoke one function by name asynchronously, or invoke it
 * synchronously and wait for its response. Admission is all or nothing: an
 * event that cannot be queued for every target is refused with an error
 * code, and the caller keeps it. Anything not declared under include/evfn/
 * is private.
 *
 * Thread-safety: every call here may be made from any thread, including
 * from inside handlers.
 */
#ifndef EVFN_EMIT_H
#define EVFN_EMIT_H

#include <stddef.h>
#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Emit an event of type `topic` with a copy of the payload to every
 * function subscribed to a matching pattern.
 *
 * A topic follows the rule of evfn_subscribe()'s patterns, without
 * wildcards: 1..EVFN_NAME_MAX bytes of non-empty words separated by dots,
 * with no `*` or `#` anywhere ("orders.eu.created"). Every call that
 * routes by topic (evfn_emit(), evfn_emit_ref(), evfn_publish(),
 * evfn_ctx_emit(), evfn_ctx_publish(), triggers without a function)
 * checks it the same way.
 *
 * @param seq receives the event's sequence number; may be NULL.
 * @return 0; EVFN_EINVAL for NULL rt/topic, an empty topic, or NULL data
 *         with len > 0; EVFN_ENAMETOOLONG; EVFN_EPATTERN for a topic with
 *         an empty word ("a..b", ".", "a.") or a wildcard character ("a.*",
 *         "x#y"): no subscription could match it; EVFN_ENOSUB when no function
 *         subscribes to the topic; EVFN_EQUEUEFULL when a subscriber's
 *         queue is full (no subscriber gets the event); EVFN_ESHUTDOWN
 *         after drain; EVFN_ENOMEM.
 * @since 0.1
 */
EVFN_EXPORT int evfn_emit(evfn_rt *rt, const char *topic, const void *data,
                          size_t len, uint64_t *seq);

/**
 * As evfn_emit(), handing over the payload instead of copying it.
 *
 * Ownership: free_cb(data, free_arg) is called exactly once, when the
 * last reference to the event goes or, if the call fails, before it
 * returns. NULL free_cb: static memory.
 * @since 0.1
 */
EVFN_EXPORT int evfn_emit_ref(evfn_rt *rt, const char *topic, void *data,
                              size_t len, evfn_free_cb free_cb, void *free_arg,
                              uint64_t *seq);

/**
 * Publish a built event to the subscribers of its type.
 *
 * On success the event is frozen (its setters fail with EVFN_EPERM) and
 * gets its sequence number, and id/source/time if unset.
 *
 * Ownership: the caller keeps its reference either way and drops it with
 * evfn_event_unref() when done; on failure the event is unchanged and may
 * be published again.
 * @return as evfn_emit(); EVFN_EPERM if the event was already published.
 * @since 0.1
 */
EVFN_EXPORT int evfn_publish(evfn_rt *rt, evfn_event *ev, uint64_t *seq);

/**
 * Queue one invocation of a function by name (the topic routing is not
 * used) and return at once.
 *
 * @return 0; EVFN_EINVAL; EVFN_ENAMETOOLONG; EVFN_ENOFN for an unknown
 *         function; EVFN_EQUEUEFULL; EVFN_ESHUTDOWN; EVFN_ENOMEM.
 * @since 0.1
 */
EVFN_EXPORT int evfn_invoke_async(evfn_rt *rt, const char *fn_name,
                                  const void *data, size_t len, uint64_t *seq);

/**
 * As evfn_invoke_async() for a built event (see evfn_publish() for what
 * happens to it and who owns it).
 * @since 0.1
 */
EVFN_EXPORT int evfn_publish_to(evfn_rt *rt, const char *fn_name,
                                evfn_event *ev, uint64_t *seq);

/**
 * Invoke a function by name and wait for the event's final outcome,
 * retries included.
 *
 * The runtime must be started (or, embedded, its base driven by another
 * thread). Calling it from a pool handler occupies that worker while it
 * waits; with the pool at its maximum this can wait forever.
 *
 * @param resp receives the handler's response (evfn_ctx_respond()), to be
 *        released with evfn_free(); NULL when none. May be NULL if the
 *        response is not wanted.
 * @param resp_len receives its length; may be NULL.
 * @return 0 when the event succeeded; EVFN_EFAILED (a handler returned
 *         EVFN_FAIL), EVFN_EEXHAUSTED (attempts exhausted), EVFN_ETIMEDOUT
 *         (exhausted, the last attempt past its deadline), EVFN_EEXPIRED,
 *         EVFN_ELOOPDETECTED (hop limit) or EVFN_EHANDEDBACK for the other
 *         terminal states; EVFN_EDEADLK
 *         when called on the loop thread (it runs retries and loop
 *         handlers, so blocking it could wait forever); the admission
 *         errors of evfn_invoke_async().
 * @since 0.1
 */
EVFN_EXPORT int evfn_invoke(evfn_rt *rt, const char *fn_name, const void *data,
                            size_t len, void **resp, size_t *resp_len);

/**
 * Receives an event's final outcome. res and everything read through it
 * are borrowed for the duration of the call.
 */
typedef void (*evfn_result_cb)(const evfn_result *res, void *arg);

/** 0 when the event succeeded, else EVFN_EFAILED, EVFN_EEXHAUSTED,
 * EVFN_ETIMEDOUT, EVFN_EEXPIRED, EVFN_ELOOPDETECTED or EVFN_EHANDEDBACK
 * (EVFN_EINVAL for NULL). @since 0.1 */
EVFN_EXPORT int evfn_result_code(const evfn_result *res);

/** The handler's response (evfn_ctx_respond()) when the event succeeded,
 * else NULL; len may be NULL. @since 0.1 */
EVFN_EXPORT const void *evfn_result_data(const evfn_result *res, size_t *len);

/** A response metadata value (evfn_ctx_set_meta()) by key, or NULL.
 * @since 0.1 */
EVFN_EXPORT const char *evfn_result_meta(const evfn_result *res,
                                         const char *key);

/** The i-th response metadata pair in the order set: returns the value and
 * sets *key (key may be NULL); NULL past the end. @since 0.1 */
EVFN_EXPORT const char *evfn_result_meta_at(const evfn_result *res, size_t i,
                                            const char **key);

/** The last attempt's error message (evfn_ctx_set_error()), or NULL.
 * @since 0.1 */
EVFN_EXPORT const char *evfn_result_error(const evfn_result *res);

/** Number of attempts the event took. @since 0.1 */
EVFN_EXPORT unsigned evfn_result_attempts(const evfn_result *res);

/** The event itself. @since 0.1 */
EVFN_EXPORT const evfn_event *evfn_result_event(const evfn_result *res);

/**
 * Submit a built event to one function and be told its final outcome,
 * retries included, without waiting: what a source that must answer (an
 * HTTP response, an acknowledgement) uses.
 *
 * The callback runs exactly once if the call succeeds: on the loop thread
 * (evfn's own, or the host's base in embedded mode), or at
 * evfn_runtime_free() for results the loop never got to. It is never
 * called if the call fails.
 *
 * Ownership: as evfn_publish(): the caller keeps its reference to ev.
 * @return as evfn_publish_to(); EVFN_EINVAL also for a NULL cb.
 * @since 0.1
 */
EVFN_EXPORT int evfn_submit(evfn_rt *rt, const char *fn_name, evfn_event *ev,
                            evfn_result_cb cb, void *arg, uint64_t *seq);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_EMIT_H */
