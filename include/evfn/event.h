/* SPDX-License-Identifier: MIT */
/*
 * Events: CloudEvents 1.0 attributes (id, source, type, subject, time,
 * datacontenttype, extensions) plus payload bytes, in one reference-counted
 * allocation. An event is mutable while its creator builds it and frozen
 * once it is published; handlers only ever see frozen events. Anything not
 * declared under include/evfn/ is private.
 *
 * Thread-safety: a frozen event may be read and ref/unref'd from any
 * thread. A not-yet-published event belongs to the thread building it.
 */
#ifndef EVFN_EVENT_H
#define EVFN_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Create an event of a given type with a copy of the payload.
 *
 * Header and payload share one allocation. Other attributes start empty
 * (source defaults to the runtime's source at publish, id to the event's
 * sequence number in decimal, time to the publish time).
 *
 * @param out  receives the event with one reference; NULL on failure.
 * @param type CloudEvents type (also the routing topic); non-empty, at most
 *        EVFN_NAME_MAX bytes; copied.
 * @param data payload, copied; may be NULL when len is 0.
 * @return 0; EVFN_EINVAL for NULL out/type, empty type or NULL data with
 *         len > 0; EVFN_ENAMETOOLONG; EVFN_ENOMEM.
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_new(evfn_event **out, const char *type,
                               const void *data, size_t len);

/**
 * Create an event that takes over a payload buffer instead of copying it.
 *
 * Ownership: from this call on, evfn owns data: free_cb(data, free_arg) is
 * called exactly once when the last reference goes, and also (before this
 * call returns) when the call fails. A NULL free_cb means the memory is
 * static and never released.
 *
 * @return as evfn_event_new().
 * Thread-safety: any thread; free_cb runs on whichever thread drops the last
 * reference.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_new_ref(evfn_event **out, const char *type,
                                   void *data, size_t len, evfn_free_cb free_cb,
                                   void *free_arg);

/** Take a reference. NULL-safe (returns NULL). Thread-safety: any thread
 * for frozen events. @since 0.1 */
EVFN_EXPORT evfn_event *evfn_event_ref(const evfn_event *ev);

/** Drop a reference; the last one frees the event and releases its payload.
 * NULL is a no-op. Thread-safety: any thread for frozen events. @since 0.1 */
EVFN_EXPORT void evfn_event_unref(const evfn_event *ev);

/**
 * Set a string attribute of an event that is not yet published.
 *
 * Each setter copies value; NULL clears an optional attribute (id, source,
 * subject, datacontenttype).
 *
 * @return 0; EVFN_EINVAL for NULL ev or an empty value;
 *         EVFN_ENAMETOOLONG for id/source/subject over EVFN_NAME_MAX;
 *         EVFN_EPERM once the event is published (frozen); EVFN_ENOMEM.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_id(evfn_event *ev, const char *id);
/** See evfn_event_set_id(). @since 0.1 */
EVFN_EXPORT int evfn_event_set_source(evfn_event *ev, const char *source);
/** See evfn_event_set_id(). @since 0.1 */
EVFN_EXPORT int evfn_event_set_subject(evfn_event *ev, const char *subject);
/** See evfn_event_set_id(); any length. @since 0.1 */
EVFN_EXPORT int evfn_event_set_datacontenttype(evfn_event *ev,
                                               const char *dct);
/**
 * Set the event time (CloudEvents `time`), in nanoseconds since the Unix
 * epoch. Every value is a time and is kept as given: 0 is
 * 1970-01-01T00:00:00Z and negative values are earlier. Only an event
 * whose time was never set gets its publish time.
 * @return 0; EVFN_EINVAL for NULL ev; EVFN_EPERM once published.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_time(evfn_event *ev, int64_t unix_ns);
/**
 * Set (or with value NULL remove) a CloudEvents extension attribute.
 * @param name lower-case letters and digits only, 1..20 characters, as
 *        CloudEvents 1.0 requires.
 * @return 0; EVFN_EINVAL for a bad name; EVFN_EPERM once published;
 *         EVFN_ENOMEM.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_extension(evfn_event *ev, const char *name,
                                         const char *value);

/**
 * Ordering key (as an SQS FIFO message group): in each function, events
 * with the same key run one at a time in publish order, retries included
 * (an event waiting for its retry holds back the later events of its
 * key); events with different keys, or none, run in parallel. Ordering is
 * per function and per runtime; a replayed dead letter keeps its key and
 * joins the back of it.
 * @param key 1..EVFN_NAME_MAX bytes, copied; NULL clears it.
 * @return 0; EVFN_EINVAL for NULL ev or an empty key; EVFN_ENAMETOOLONG;
 *         EVFN_EPERM once published; EVFN_ENOMEM.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_ordering_key(evfn_event *ev, const char *key);
/** The ordering key, or NULL. Borrowed like the attribute getters below.
 * @since 0.1 */
EVFN_EXPORT const char *evfn_event_ordering_key(const evfn_event *ev);

/**
 * Delayed delivery: the event is accepted at publish but its functions
 * do not see it before delay_ms have passed (a delayed job). Until then
 * it is counted as delayed (EVFN_STAT_DELAYED, within the queue bound),
 * held on the loop's timer heap, and can be cancelled by id
 * (evfn_cancel()); its maximum age and queue wait count from when it is
 * due. At drain, delayed events are handed back. Setting a delay replaces
 * an earlier evfn_event_set_deliver_at().
 * @return 0; EVFN_EINVAL for NULL ev; EVFN_ERANGE unless
 *         0 <= delay_ms <= EVFN_DURATION_MAX_MS (10 years); EVFN_EPERM
 *         once published;
 *         EVFN_ENOMEM.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_delay_ms(evfn_event *ev, int64_t delay_ms);
/**
 * As evfn_event_set_delay_ms(), due at a wall-clock time in nanoseconds
 * since the Unix epoch (a time already past means no delay). Measured
 * against the monotonic clock from publish on, so a later change of the
 * wall clock does not move it.
 * @return 0; EVFN_EINVAL for NULL ev; EVFN_ERANGE for a negative time;
 *         EVFN_EPERM once published; EVFN_ENOMEM.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_deliver_at(evfn_event *ev, int64_t unix_ns);

/**
 * Attribute getters. Each returns a borrowed string, valid as long as the
 * caller holds a reference, or NULL when the attribute is unset (id, source
 * and time are always set once the event is published). NULL ev returns
 * NULL. Thread-safety: any thread for frozen events.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_id(const evfn_event *ev);
/** See evfn_event_id(). @since 0.1 */
EVFN_EXPORT const char *evfn_event_source(const evfn_event *ev);
/** See evfn_event_id(). @since 0.1 */
EVFN_EXPORT const char *evfn_event_type(const evfn_event *ev);
/** See evfn_event_id(). @since 0.1 */
EVFN_EXPORT const char *evfn_event_subject(const evfn_event *ev);
/** See evfn_event_id(). @since 0.1 */
EVFN_EXPORT const char *evfn_event_datacontenttype(const evfn_event *ev);
/** Value of an extension attribute, or NULL. @since 0.1 */
EVFN_EXPORT const char *evfn_event_extension(const evfn_event *ev,
                                             const char *name);
/**
 * The i-th extension attribute (0-based, in the order set): returns its
 * value and sets *name (name may be NULL); NULL past the end or for NULL
 * ev. Borrowed like the other getters.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_extension_at(const evfn_event *ev, size_t i,
                                                const char **name);
/** Event time in nanoseconds since the Unix epoch: the time set, or the
 * publish time; 0 before publish when none was set (a time set to 0 reads
 * the same). @since 0.1 */
EVFN_EXPORT int64_t evfn_event_time(const evfn_event *ev);
/** Runtime-unique sequence number assigned at publish (0 before). This is
 * the handle evfn_emit() and evfn_invoke_async() return. @since 0.1 */
EVFN_EXPORT uint64_t evfn_event_seq(const evfn_event *ev);
/** Number of handler hops that led to this event: 0 for events from
 * outside, parent + 1 for events emitted through evfn_ctx_emit(). @since 0.1 */
EVFN_EXPORT unsigned evfn_event_hops(const evfn_event *ev);

/**
 * The payload, borrowed for as long as the caller holds a reference.
 * @param len receives the length; may be NULL.
 * @return the bytes (NULL for an empty payload or NULL ev).
 * @since 0.1
 */
EVFN_EXPORT const void *evfn_event_data(const evfn_event *ev, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_EVENT_H */
