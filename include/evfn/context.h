/* SPDX-License-Identifier: MIT */
/**
 * @file
 * The invocation context: what a running handler can ask (attempt,
 * deadline, time remaining, cancelled flag, its warm worker state) and do
 * (respond, attach an error message, emit child events, complete later).
 * Anything not declared under include/evfn/ is private.
 *
 * Thread-safety: a context belongs to the thread running its handler; only
 * evfn_ctx_complete() (for a PENDING loop handler) and evfn_ctx_cancelled()
 * may be called from other threads.
 */
#ifndef EVFN_CONTEXT_H
#define EVFN_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Attempt number.
 * @param ctx the context; NULL returns 0.
 * @return 1 for the first attempt, 2 for the first retry, and so on.
 * @since 0.1
 */
EVFN_EXPORT unsigned evfn_ctx_attempt(const evfn_ctx *ctx);

/**
 * Deadline of this attempt.
 * @param ctx the context; NULL returns 0.
 * @return the deadline on CLOCK_MONOTONIC, in nanoseconds.
 * @since 0.1
 */
EVFN_EXPORT int64_t evfn_ctx_deadline_ns(const evfn_ctx *ctx);

/**
 * Time left before the deadline.
 * @param ctx the context; NULL returns 0.
 * @return nanoseconds left; 0 once the deadline has passed.
 * @since 0.1
 */
EVFN_EXPORT int64_t evfn_ctx_remaining_ns(const evfn_ctx *ctx);

/**
 * Whether the runtime gave up on this attempt (deadline passed, or a
 * cancellation was requested with evfn_cancel()); the handler should stop
 * and return.
 * @param ctx the context; NULL returns false.
 * @return true once given up.
 *
 * Thread-safety: any thread, while the attempt runs.
 * @since 0.1
 */
EVFN_EXPORT bool evfn_ctx_cancelled(const evfn_ctx *ctx);

/**
 * The function this invocation belongs to.
 * @param ctx the context; NULL returns NULL.
 * @return the function, borrowed: it lives as long as its runtime.
 *
 * Ownership: borrowed; the runtime owns its functions.
 * @since 0.1
 */
EVFN_EXPORT evfn_fn *evfn_ctx_function(const evfn_ctx *ctx);

/**
 * The runtime this invocation belongs to.
 * @param ctx the context; NULL returns NULL.
 * @return the runtime, borrowed.
 *
 * Ownership: borrowed.
 * @since 0.2 (0.1: evfn_ctx_runtime(), deprecated)
 */
EVFN_EXPORT evfn_rt *evfn_ctx_rt(const evfn_ctx *ctx);

/**
 * The warm state evfn_worker_init_cb built for this worker and function.
 * @param ctx the context; NULL returns NULL.
 * @return the state, borrowed (evfn_worker_fini_cb releases it); NULL
 *         when the function has no hooks.
 *
 * Ownership: borrowed: the function's hooks own the state.
 * @since 0.1
 */
EVFN_EXPORT void *evfn_ctx_worker_state(const evfn_ctx *ctx);

/**
 * Set the response of this attempt (a second call replaces the first). A
 * synchronous caller (evfn_invoke()) or result callback (evfn_submit())
 * receives it when the attempt succeeds.
 * @param ctx  the context. Not NULL.
 * @param data the response, copied; may be NULL when len is 0.
 * @param len  its length in bytes.
 * @return 0; EVFN_EINVAL for NULL ctx or NULL data with len > 0;
 *         EVFN_ENOMEM.
 *
 * Ownership: data is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_ctx_respond(evfn_ctx *ctx, const void *data, size_t len);

/**
 * Set a response metadata pair. Metadata travels with the response to
 * result callbacks; the HTTP trigger reads "status" and "header.<Name>"
 * from it.
 * @param ctx   the context. Not NULL.
 * @param key   the key, non-empty, copied. Not NULL.
 * @param value the value, copied; NULL removes the key.
 * @return 0; EVFN_EINVAL for NULL ctx or a NULL or empty key; EVFN_ENOMEM.
 *
 * Ownership: key and value are copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_ctx_set_meta(evfn_ctx *ctx, const char *key,
                                  const char *value);

/**
 * Attach an error message to this attempt (a second call replaces the
 * first); it travels with the outcome to logs, dead letters and results.
 * @param ctx the context. Not NULL.
 * @param msg the message, copied and truncated to at most 1023 bytes,
 *        never inside a UTF-8 sequence (a character the cut would split
 *        is dropped whole). Not NULL.
 * @return 0; EVFN_EINVAL for NULL ctx or msg; EVFN_ENOMEM.
 *
 * Ownership: msg is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_ctx_set_error(evfn_ctx *ctx, const char *msg);

/**
 * As evfn_ctx_set_error(), formatting the message printf-style (C callers;
 * bindings use evfn_ctx_set_error()).
 * @param ctx the context. Not NULL.
 * @param fmt a printf format. Not NULL.
 * @param ... its arguments.
 * @return 0; EVFN_EINVAL for NULL ctx or fmt; EVFN_ENOMEM.
 *
 * Ownership: the formatted message is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_ctx_errorf(evfn_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/**
 * Emit a child event to a topic: as evfn_emit(), with the hop count of the
 * current event plus one.
 * @param ctx   the context of the running handler. Not NULL.
 * @param topic as for evfn_emit(); copied.
 * @param data  payload, copied; may be NULL when len is 0.
 * @param len   payload length in bytes.
 * @param seq   receives the child's sequence number; may be NULL.
 * @return as evfn_emit() (EVFN_EINVAL for NULL ctx).
 *
 * Ownership: topic and data are copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_ctx_emit(evfn_ctx *ctx, const char *topic,
                              const void *data, size_t len, uint64_t *seq);

/**
 * Publish a built child event to the subscribers of its type: as
 * evfn_publish(), with the hop count of the current event plus one, so
 * that children keep attributes such as datacontenttype and subject.
 * @param ctx the context of the running handler. Not NULL.
 * @param ev  the child event, not yet published. Not NULL.
 * @param seq receives the child's sequence number; may be NULL.
 * @return as evfn_publish() (EVFN_EINVAL for NULL ctx or ev).
 *
 * Ownership: as evfn_publish(): never consumes the caller's reference
 * (the hop count is set on ev even if the call fails).
 * @since 0.1
 */
EVFN_EXPORT int evfn_ctx_publish(evfn_ctx *ctx, evfn_event *ev,
                                 uint64_t *seq);

/**
 * Finish an attempt whose loop handler returned EVFN_PENDING.
 * @param ctx the context the handler was given; NULL is refused.
 * @param outcome EVFN_OK, EVFN_RETRY or EVFN_FAIL.
 * @return 0; EVFN_ETIMEDOUT when the attempt's deadline had passed: the
 *         outcome is not taken, the attempt counts as timed out (the
 *         context is invalid after it too); EVFN_EINVAL for NULL ctx or
 *         another outcome; EVFN_EPERM if the attempt is not pending
 *         (already complete, or a pool attempt: the runtime's log says
 *         which). The context is invalid
 *         after a successful call.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT int evfn_ctx_complete(evfn_ctx *ctx, evfn_outcome outcome);

/**
 * Number of events in this call.
 * @param ctx the context; NULL returns 0.
 * @return 1 unless the function takes batches
 *         (evfn_fn_options_set_batch()), then 1..max_items.
 * @since 0.1
 */
EVFN_EXPORT size_t evfn_ctx_batch_size(const evfn_ctx *ctx);

/**
 * The i-th event of this call, borrowed for the call (item 0 is the
 * handler's ev argument). Each item is its own event in the accounting,
 * with its own attempt count, age and end.
 * @param ctx the context; NULL returns NULL.
 * @param i   the index, 0..evfn_ctx_batch_size() - 1.
 * @return the event; NULL for NULL ctx or i out of range.
 *
 * Ownership: borrowed until the handler returns (evfn_event_ref() keeps
 * it).
 * @since 0.1
 */
EVFN_EXPORT const evfn_event *evfn_ctx_batch_event(const evfn_ctx *ctx,
                                                   size_t i);

/**
 * Report one item of a batch as failed (Lambda's ReportBatchItemFailures):
 * when the handler returns EVFN_OK, the items reported here are retried
 * (EVFN_RETRY) or dead-lettered (EVFN_FAIL) and the others succeed; when
 * the handler returns EVFN_RETRY or EVFN_FAIL, that outcome applies to
 * every item. The attempt's error message (evfn_ctx_set_error()) goes
 * with each failed item. A later report for the same item replaces an
 * earlier one. Handler thread only, before the handler returns. Outside a
 * batch function the call is accepted and has no effect: the handler's
 * return decides.
 * @param ctx the context. Not NULL.
 * @param i   the item's index, 0..evfn_ctx_batch_size() - 1.
 * @param outcome EVFN_RETRY or EVFN_FAIL.
 * @return 0; EVFN_EINVAL for NULL ctx, i out of range or another outcome.
 * @since 0.1
 */

EVFN_EXPORT int evfn_ctx_batch_item_failed(evfn_ctx *ctx, size_t i,
                                           evfn_outcome outcome);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_CONTEXT_H */
