/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Getting events into a runtime: emit to a topic (fan-out to every
 * subscriber), invoke one function by name asynchronously, or invoke it
 * synchronously and wait for its response; or do any of these for a batch
 * of events at once. Admission is all or nothing: an event (a batch) that
 * cannot be queued for every target is refused with an error code, and
 * the caller keeps it. Anything not declared under include/evfn/
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
 * A plain event (no ordering key, no delay) whose topic routes to
 * exactly one function takes the fast path described at
 * evfn_invoke_async() once a publish under the lock has found that route
 * (each evfn_subscribe() makes the routes found so far be looked up
 * again); a topic with several subscribers is admitted under the lock.
 *
 * @param rt    the runtime. Not NULL.
 * @param topic the event's type and routing topic; copied. Not NULL.
 * @param data  payload, copied; may be NULL when len is 0.
 * @param len   payload length in bytes.
 * @param seq receives the event's sequence number; may be NULL.
 * @return 0; EVFN_EINVAL for NULL rt/topic, an empty topic, or NULL data
 *         with len > 0; EVFN_ENAMETOOLONG for a topic over EVFN_NAME_MAX
 *         bytes; EVFN_EPATTERN for a topic with
 *         an empty word ("a..b", ".", "a.") or a wildcard character ("a.*",
 *         "x#y"): no subscription could match it; EVFN_ENOSUB when no function
 *         subscribes to the topic; EVFN_ESHUTDOWN once the runtime drains;
 *         and, when a subscriber cannot take it (then no subscriber gets
 *         the event), EVFN_EUNHEALTHY if one has as many handlers stuck
 *         past their deadline as evfn_fn_options_set_max_stuck() allows,
 *         else EVFN_ECIRCUITOPEN if one's circuit breaker is open with the
 *         refuse policy, else EVFN_EQUEUEFULL (a queue at its bound,
 *         evfn_fn_options_set_queue_capacity()); EVFN_ENOMEM.
 *
 * Ownership: topic and data are copied; nothing is retained.
 * @since 0.1
 */
EVFN_EXPORT int evfn_emit(evfn_rt *rt, const char *topic, const void *data,
                          size_t len, uint64_t *seq);

/**
 * As evfn_emit(), handing over the payload instead of copying it.
 *
 * @param rt    the runtime. NULL is refused (and data still released).
 * @param topic as for evfn_emit(); copied.
 * @param data  the payload, not copied; may be NULL when len is 0.
 * @param len   payload length in bytes.
 * @param free_cb releases data; NULL when data is static memory.
 * @param free_arg passed to free_cb.
 * @param seq   receives the event's sequence number; may be NULL.
 * @return as evfn_emit().
 *
 * Ownership: the buffer is consumed whatever the outcome:
 * free_cb(data, free_arg) is called exactly once, when the last reference
 * to the event goes or, if the call fails, before it returns, so the
 * caller never frees data itself. (evfn_publish() is the opposite: it
 * never consumes the caller's event. See README, "Ownership".)
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
 * @param rt  the runtime. Not NULL.
 * @param ev  the event, built with evfn_event_new() or
 *        evfn_event_new_ref() and not yet published. Not NULL.
 * @param seq receives the event's sequence number; may be NULL.
 * @return as evfn_emit() (EVFN_EINVAL for NULL rt or ev); EVFN_EPERM if
 *         the event was already published.
 *
 * Ownership: never consumes the caller's reference, on success or
 * failure: the runtime takes references of its own, and the caller drops
 * its reference with evfn_event_unref() when done. On failure the event
 * is unchanged and may be published again. (The `_ref` calls are the
 * opposite: they consume their buffer even on failure. See README,
 * "Ownership".)
 * @since 0.1
 */
EVFN_EXPORT int evfn_publish(evfn_rt *rt, evfn_event *ev, uint64_t *seq);

/**
 * Queue one invocation of a function by name (the topic routing is not
 * used) and return at once. The event's type is the function's name.
 *
 * The fast path: a plain event (no ordering key, no delay) to a
 * function the runtime has found by this name before (the last one
 * found, or one of a small directory by the name's hash), a pool
 * function with no rate limit,
 * circuit breaker or batches, in a started runtime with no journal, is
 * admitted without the runtime's lock: its room under the queue bound is
 * taken by compare-and-swap, it waits in the function's intake, and a
 * worker moves the intake into the queue, many events at once. The bound,
 * the order of one producer's events, the accounting seen by
 * evfn_stats_take() and evfn_cancel() hold as on the locked path.
 *
 * @param rt      the runtime. Not NULL.
 * @param fn_name the function. Not NULL.
 * @param data    payload, copied; may be NULL when len is 0.
 * @param len     payload length in bytes.
 * @param seq     receives the event's sequence number; may be NULL.
 * @return 0; EVFN_EINVAL for NULL rt or fn_name, an empty fn_name, or NULL
 *         data with len > 0; EVFN_ENAMETOOLONG for a name over
 *         EVFN_NAME_MAX bytes; EVFN_ENOFN when no function has that name;
 *         EVFN_ESHUTDOWN once the runtime drains; EVFN_EUNHEALTHY,
 *         EVFN_ECIRCUITOPEN or EVFN_EQUEUEFULL when the function cannot
 *         take it (as for evfn_emit()); EVFN_ENOMEM.
 *
 * Ownership: fn_name and data are copied; nothing is retained.
 * @since 0.1
 */
EVFN_EXPORT int evfn_invoke_async(evfn_rt *rt, const char *fn_name,
                                  const void *data, size_t len, uint64_t *seq);

/**
 * As evfn_invoke_async() for a built event (see evfn_publish() for what
 * happens to it). Its type stays what it was built with.
 *
 * @param rt      the runtime. Not NULL.
 * @param fn_name the function. Not NULL.
 * @param ev      the event, not yet published. Not NULL.
 * @param seq     receives the event's sequence number; may be NULL.
 * @return as evfn_invoke_async() (EVFN_EINVAL also for NULL ev);
 *         EVFN_EPERM if the event was already published.
 *
 * Ownership: as evfn_publish(): never consumes the caller's reference.
 * @since 0.1
 */
EVFN_EXPORT int evfn_publish_to(evfn_rt *rt, const char *fn_name,
                                evfn_event *ev, uint64_t *seq);

/** The most events one batch call (evfn_publish_batch(),
 * evfn_emit_many(), evfn_submit_batch()) admits. */
#define EVFN_BATCH_MAX 1024

/**
 * Publish up to EVFN_BATCH_MAX built events at once, all or nothing: under
 * one hold of the runtime's lock every event is checked against every
 * target (a function's queue bound counts the whole batch), and then
 * either every event is accepted, in order, or none is and the call
 * returns the refusal. The lock, the clock and a function's lookup are
 * taken once for the batch, and each function that had no work waits for
 * one wake-up, not one per event: the way in for a producer that has
 * several events at hand (an HTTP batch, a stream read, a bulk emit from
 * a binding). A batch of plain events to one function by name takes the
 * fast path of evfn_invoke_async() when it fits the function's intake
 * (up to 256 events): room for the whole batch in one compare-and-swap,
 * no lock.
 *
 * @param rt      the runtime. Not NULL.
 * @param fn_name the function every event goes to (as
 *        evfn_publish_to()), or NULL to route each event by its type to
 *        the subscribers (as evfn_publish()).
 * @param evs     n distinct events, built and not yet published. Not
 *        NULL, nor any of its n elements.
 * @param n       how many: 1..EVFN_BATCH_MAX.
 * @param first_seq receives the first event's sequence number; the
 *        others follow it in order (evs[i] has *first_seq + i). With a
 *        journal the batch is journaled in one append: with a durable
 *        one, the call returns after one fsync for the whole batch.
 *        May be NULL.
 * @return 0 when every event was accepted; EVFN_EINVAL for NULL rt or
 *         evs, n == 0, a NULL element or the same event twice;
 *         EVFN_ERANGE for n over EVFN_BATCH_MAX; EVFN_EPERM if an event
 *         was already published; for fn_name, the errors of its name as
 *         evfn_publish_to() returns them; EVFN_ENOMEM; and otherwise the
 *         refusal of the first event that could not be taken, as
 *         evfn_publish() or evfn_publish_to() would return it for that
 *         event (EVFN_ENOSUB, EVFN_ENOFN, EVFN_ESHUTDOWN,
 *         EVFN_EUNHEALTHY, EVFN_ECIRCUITOPEN, EVFN_EQUEUEFULL); with a
 *         journal, what refuses a publish there (EVFN_ENOTRUNNING,
 *         EVFN_ENOSPC, EVFN_EJOURNAL). On any error no event was
 *         accepted and none was changed.
 *
 * Ownership: as evfn_publish(): never consumes the caller's references;
 * evs itself is read during the call only.
 * @since 0.2
 */
EVFN_EXPORT int evfn_publish_batch(evfn_rt *rt, const char *fn_name,
                                   evfn_event *const *evs, size_t n,
                                   uint64_t *first_seq);

/** One event of evfn_emit_many(): what evfn_emit() takes. */
typedef struct evfn_emit_item {
	const char *topic; /**< the event's type and routing topic */
	const void *data;  /**< payload, copied; may be NULL when len is 0 */
	size_t len;        /**< payload length in bytes */
} evfn_emit_item;

/**
 * evfn_emit() of up to EVFN_BATCH_MAX events at once, all or nothing as
 * evfn_publish_batch() admits them.
 *
 * @param rt    the runtime. Not NULL.
 * @param items n topics and payloads, each checked as evfn_emit() checks
 *        it. Not NULL.
 * @param n     how many: 1..EVFN_BATCH_MAX.
 * @param first_seq receives the first event's sequence number, the others
 *        following in order; may be NULL.
 * @return 0 when every event was accepted; EVFN_EINVAL for NULL rt or
 *         items or n == 0; EVFN_ERANGE for n over EVFN_BATCH_MAX; the
 *         first item's error that evfn_emit() would return for its
 *         topic or payload (EVFN_EINVAL, EVFN_ENAMETOOLONG,
 *         EVFN_EPATTERN); EVFN_ENOMEM; otherwise the refusals of
 *         evfn_publish_batch(). On any error nothing was accepted.
 *
 * Ownership: topics and payloads are copied; nothing is retained.
 * @since 0.2
 */
EVFN_EXPORT int evfn_emit_many(evfn_rt *rt, const evfn_emit_item *items,
                               size_t n, uint64_t *first_seq);

/**
 * Invoke a function by name and wait for the event's final outcome,
 * retries included.
 *
 * Nothing runs before evfn_rt_start(): called earlier, it waits for
 * another thread to start the runtime (embedded, the base must also be
 * driven by another thread). Calling it from a pool handler occupies that
 * worker while it waits; with the pool at its maximum this can wait
 * forever.
 *
 * @param rt      the runtime. Not NULL.
 * @param fn_name the function. Not NULL.
 * @param data    payload, copied; may be NULL when len is 0.
 * @param len     payload length in bytes.
 * @param resp receives the handler's response (evfn_ctx_respond()), to be
 *        released with evfn_free(); NULL when none. May be NULL if the
 *        response is not wanted.
 * @param resp_len receives its length; may be NULL.
 * @return 0 when the event succeeded; EVFN_EFAILED (a handler returned
 *         EVFN_FAIL), EVFN_EEXHAUSTED (attempts exhausted), EVFN_ETIMEDOUT
 *         (exhausted, the last attempt past its deadline), EVFN_EEXPIRED
 *         (older than the function's maximum age), EVFN_ELOOPDETECTED
 *         (hop limit), EVFN_ECANCELED (evfn_cancel()) or EVFN_EHANDEDBACK
 *         (drain) for the other final outcomes; EVFN_EDEADLK
 *         when called on the loop thread (it runs retries and loop
 *         handlers, so blocking it could wait forever); the admission
 *         errors of evfn_invoke_async().
 *
 * Ownership: fn_name and data are copied; *resp becomes the caller's
 * (release it with evfn_free()), and is set only on success.
 * @since 0.1
 */
EVFN_EXPORT int evfn_invoke(evfn_rt *rt, const char *fn_name, const void *data,
                            size_t len, void **resp, size_t *resp_len);

/**
 * Receives an event's final outcome (evfn_submit()).
 *
 * @param res the outcome; it and everything read through it are borrowed
 *        for the duration of the call (evfn_event_ref() keeps the event).
 * @param arg the argument given to evfn_submit().
 */
typedef void (*evfn_result_cb)(const evfn_result *res, void *arg);

/**
 * How the event ended.
 * @param res the outcome. NULL returns EVFN_EINVAL.
 * @return 0 when the event succeeded, else EVFN_EFAILED, EVFN_EEXHAUSTED,
 *         EVFN_ETIMEDOUT, EVFN_EEXPIRED, EVFN_ELOOPDETECTED, EVFN_ECANCELED
 *         or EVFN_EHANDEDBACK, as evfn_invoke() returns them.
 * @since 0.1
 */
EVFN_EXPORT int evfn_result_code(const evfn_result *res);

/**
 * The handler's response (evfn_ctx_respond()).
 * @param res the outcome; NULL returns NULL.
 * @param len receives its length (0 when none); may be NULL.
 * @return the response, borrowed for the callback, when the event
 *         succeeded with one; else NULL.
 *
 * Ownership: borrowed for the callback.
 * @since 0.1
 */
EVFN_EXPORT const void *evfn_result_data(const evfn_result *res, size_t *len);

/**
 * A response metadata value (evfn_ctx_set_meta()) by key.
 * @param res the outcome; NULL returns NULL.
 * @param key the key; NULL returns NULL.
 * @return the value, borrowed for the callback; NULL when not set or when
 *         the event did not succeed (metadata comes with the response).
 * Ownership: the value is borrowed for the callback; key is read during the
 * call only.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_result_meta(const evfn_result *res,
                                         const char *key);

/**
 * The i-th response metadata pair, 0-based, in the order set.
 * @param res the outcome; NULL returns NULL.
 * @param i the index.
 * @param key receives the key (NULL past the end); may be NULL.
 * @return the value, borrowed for the callback; NULL past the end.
 *
 * Ownership: the value and *key are borrowed for the callback.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_result_meta_at(const evfn_result *res, size_t i,
                                            const char **key);

/**
 * The last attempt's error message (evfn_ctx_set_error()).
 * @param res the outcome; NULL returns NULL.
 * @return the message, borrowed for the callback, or NULL when none.
 *
 * Ownership: borrowed for the callback.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_result_error(const evfn_result *res);

/**
 * Number of attempts the event took.
 * @param res the outcome; NULL returns 0.
 * @return the count (0 when it ended before any attempt started).
 * @since 0.1
 */
EVFN_EXPORT unsigned evfn_result_attempts(const evfn_result *res);

/**
 * The event itself.
 * @param res the outcome; NULL returns NULL.
 * @return the event, borrowed for the callback (evfn_event_ref() keeps
 *         it).
 *
 * Ownership: borrowed for the callback.
 * @since 0.1
 */
EVFN_EXPORT const evfn_event *evfn_result_event(const evfn_result *res);

/**
 * Submit a built event to one function and be told its final outcome,
 * retries included, without waiting: what a source that must answer (an
 * HTTP response, an acknowledgement) uses.
 *
 * The callback runs exactly once if the call succeeds: on the loop thread
 * (evfn's own, or the host's base in embedded mode), or at
 * evfn_rt_free() for results the loop never got to. It is never
 * called if the call fails.
 *
 * @param rt      the runtime. Not NULL.
 * @param fn_name the function. Not NULL.
 * @param ev      the event, not yet published. Not NULL.
 * @param cb      receives the outcome. Not NULL.
 * @param arg     passed to cb.
 * @param seq     receives the event's sequence number; may be NULL.
 * @return as evfn_publish_to(); EVFN_EINVAL also for a NULL cb.
 *
 * Ownership: as evfn_publish(): never consumes the caller's reference to
 * ev.
 * @since 0.1
 */

EVFN_EXPORT int evfn_submit(evfn_rt *rt, const char *fn_name, evfn_event *ev,
                            evfn_result_cb cb, void *arg, uint64_t *seq);

/**
 * evfn_submit() of up to EVFN_BATCH_MAX events to one function at once,
 * all or nothing as evfn_publish_batch() admits them: what a source that
 * reads several messages and acknowledges each one uses.
 *
 * cb runs exactly once for each event if the call succeeds, with that
 * event's argument, as for evfn_submit(); never if it fails.
 *
 * @param rt      the runtime. Not NULL.
 * @param fn_name the function. Not NULL.
 * @param evs     n distinct events, not yet published. Not NULL, nor any
 *        of its n elements.
 * @param n       how many: 1..EVFN_BATCH_MAX.
 * @param cb      receives each outcome. Not NULL.
 * @param args    args[i] is passed to cb with evs[i]'s outcome; NULL
 *        passes NULL for every event.
 * @param first_seq receives the first event's sequence number, the others
 *        following in order; may be NULL.
 * @return as evfn_publish_batch() with a function; EVFN_EINVAL also for a
 *         NULL cb.
 *
 * Ownership: as evfn_publish(): never consumes the caller's references;
 * evs and args are read during the call only.
 * @since 0.2
 */
EVFN_EXPORT int evfn_submit_batch(evfn_rt *rt, const char *fn_name,
                                  evfn_event *const *evs, size_t n,
                                  evfn_result_cb cb, void *const *args,
                                  uint64_t *first_seq);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_EMIT_H */
