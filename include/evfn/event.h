/* SPDX-License-Identifier: MIT */
/**
 * @file
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
 * @param out  receives the event with one reference; NULL on failure. Not
 *        NULL.
 * @param type CloudEvents type (also the routing topic); non-empty, at most
 *        EVFN_NAME_MAX bytes; copied. Not NULL. Whether it is a valid
 *        topic is checked when it is routed (evfn_publish()).
 * @param data payload, copied; may be NULL when len is 0.
 * @param len  payload length in bytes.
 * @return 0; EVFN_EINVAL for NULL out or type, an empty type, or NULL data
 *         with len > 0; EVFN_ENAMETOOLONG for a type over EVFN_NAME_MAX
 *         bytes; EVFN_ENOMEM (also for a payload of 4 GiB or more, which
 *         one allocation cannot hold).
 *
 * Ownership: the caller owns the one reference in *out and drops it with
 * evfn_event_unref(); type and data are copied.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_new(evfn_event **out, const char *type,
                               const void *data, size_t len);

/**
 * Create an event that takes over a payload buffer instead of copying it.
 *
 * @param out  receives the event with one reference; NULL on failure. Not
 *        NULL.
 * @param type as for evfn_event_new(); copied.
 * @param data the payload, not copied; may be NULL when len is 0.
 * @param len  payload length in bytes (any size).
 * @param free_cb releases data; NULL when data is static memory.
 * @param free_arg passed to free_cb.
 * @return 0; EVFN_EINVAL for NULL out or type, an empty type, or NULL data
 *         with len > 0; EVFN_ENAMETOOLONG for a type over EVFN_NAME_MAX
 *         bytes; EVFN_ENOMEM.
 *
 * Ownership: the buffer is consumed whatever the outcome: from this call
 * on evfn owns data, and free_cb(data, free_arg) is called exactly once,
 * when the last reference to the event goes, or, if the call fails,
 * before it returns (so a caller never frees data itself). This differs
 * from evfn_publish(), which never consumes the caller's reference to an
 * event; see README, "Ownership". The caller owns the one reference in
 * *out.
 *
 * Thread-safety: any thread; free_cb runs on whichever thread drops the last
 * reference.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_new_ref(evfn_event **out, const char *type,
                                   void *data, size_t len, evfn_free_cb free_cb,
                                   void *free_arg);

/**
 * Take a reference to an event, to keep it beyond the call that lent it.
 *
 * @param ev the event; NULL returns NULL.
 * @return ev itself, now with one more reference.
 *
 * Ownership: the caller owns the new reference and drops it with
 * evfn_event_unref(). The parameter is const so that the borrowed events
 * evfn hands out (to handlers, drain and result callbacks, dead letters)
 * can be kept without a cast; the result is not const because a
 * reference is the caller's to own and release, and because the same
 * call serves an event the caller is still building. The result grants
 * no write access to a published event: it is frozen, and every call
 * that would change it (the setters, evfn_publish()) refuses with
 * EVFN_EPERM.
 *
 * Thread-safety: any thread for frozen events.
 * @since 0.1
 */
EVFN_EXPORT evfn_event *evfn_event_ref(const evfn_event *ev);

/**
 * Drop a reference; the last one frees the event and releases its payload
 * (the free_cb of evfn_event_new_ref() or evfn_emit_ref()). A small
 * event's memory is kept for reuse by the thread that freed it
 * (evfn_set_allocator() says how much).
 *
 * @param ev the event; NULL is a no-op. Const so that a reference taken
 *        through evfn_event_ref() on a borrowed event can be dropped
 *        through the same pointer type.
 *
 * Ownership: gives one reference back; the event must not be used
 * through it afterwards.
 *
 * Thread-safety: any thread for frozen events.
 * @since 0.1
 */
EVFN_EXPORT void evfn_event_unref(const evfn_event *ev);

/**
 * Set a string attribute of an event that is not yet published.
 *
 * This one sets the id (CloudEvents `id`); without one, a published event's
 * id is its sequence number in decimal. Each string setter copies its
 * value; NULL clears an optional attribute (id, source, subject,
 * datacontenttype).
 *
 * @param ev the event, not yet published. Not NULL.
 * @param id the id, 1..EVFN_NAME_MAX bytes, copied; NULL clears it.
 * @return 0; EVFN_EINVAL for NULL ev or an empty value;
 *         EVFN_ENAMETOOLONG for id/source/subject over EVFN_NAME_MAX;
 *         EVFN_EPERM once the event is published (frozen); EVFN_ENOMEM.
 *
 * Ownership: the caller keeps ev; id is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_id(evfn_event *ev, const char *id);
/**
 * Set the CloudEvents `source`; without one, publish gives the runtime's
 * (evfn_rt_options_set_source()).
 * @param ev the event, not yet published. Not NULL.
 * @param source 1..EVFN_NAME_MAX bytes, copied; NULL clears it.
 * @return as evfn_event_set_id().
 *
 * Ownership: the caller keeps ev; source is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_source(evfn_event *ev, const char *source);
/**
 * Set the CloudEvents `subject`.
 * @param ev the event, not yet published. Not NULL.
 * @param subject 1..EVFN_NAME_MAX bytes, copied; NULL clears it.
 * @return as evfn_event_set_id().
 *
 * Ownership: the caller keeps ev; subject is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_subject(evfn_event *ev, const char *subject);
/**
 * Set the CloudEvents `datacontenttype` (a media type such as
 * "application/json").
 * @param ev the event, not yet published. Not NULL.
 * @param dct a non-empty string of any length, copied; NULL clears it.
 * @return 0; EVFN_EINVAL for NULL ev or an empty dct; EVFN_EPERM once
 *         published; EVFN_ENOMEM.
 *
 * Ownership: the caller keeps ev; dct is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_datacontenttype(evfn_event *ev,
                                               const char *dct);
/**
 * Set the event time (CloudEvents `time`), in nanoseconds since the Unix
 * epoch. Every value is a time and is kept as given: 0 is
 * 1970-01-01T00:00:00Z and negative values are earlier. Only an event
 * whose time was never set gets its publish time.
 * @param ev the event, not yet published. Not NULL.
 * @param unix_ns the time.
 * @return 0; EVFN_EINVAL for NULL ev; EVFN_EPERM once published.
 *
 * Ownership: the caller keeps ev.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_time(evfn_event *ev, int64_t unix_ns);
/**
 * Set (or with value NULL remove) a CloudEvents extension attribute.
 * @param ev the event, not yet published. Not NULL.
 * @param name lower-case letters and digits only, as CloudEvents 1.0
 *        requires, 1..EVFN_NAME_MAX characters (CloudEvents advises at
 *        most 20 but does not require it); copied. Not NULL.
 * @param value the value, copied; the empty string is a value (it is
 *        not absence, as CloudEvents tells the two apart); NULL removes
 *        the attribute.
 * @return 0; EVFN_EINVAL for NULL ev, or a NULL or empty name or one
 *         with other characters; EVFN_ENAMETOOLONG for a name over
 *         EVFN_NAME_MAX characters; EVFN_EPERM once published;
 *         EVFN_ENOMEM.
 *
 * Ownership: the caller keeps ev; name and value are copied.
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
 * @param ev the event, not yet published. Not NULL.
 * @param key 1..EVFN_NAME_MAX bytes, copied; NULL clears it.
 * @return 0; EVFN_EINVAL for NULL ev or an empty key; EVFN_ENAMETOOLONG;
 *         EVFN_EPERM once published; EVFN_ENOMEM.
 *
 * Ownership: the caller keeps ev; key is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_ordering_key(evfn_event *ev, const char *key);
/**
 * The ordering key (evfn_event_set_ordering_key()).
 * @param ev the event; NULL returns NULL.
 * @return the key, borrowed like the attribute getters below; NULL when
 *         none is set.
 *
 * Ownership: borrowed from the event.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_ordering_key(const evfn_event *ev);

/**
 * Delayed delivery: the event is accepted at publish but its functions
 * do not see it before delay_ms have passed (a delayed job). Until then
 * it is counted as delayed (EVFN_STAT_DELAYED, within the queue bound),
 * held on the loop's timer heap, and can be cancelled by id
 * (evfn_cancel()); its maximum age and queue wait count from when it is
 * due. At drain, delayed events are handed back. Setting a delay replaces
 * an earlier evfn_event_set_deliver_at().
 * @param ev the event, not yet published. Not NULL.
 * @param delay_ms how long after publish it becomes due; 0 for no delay.
 * @return 0; EVFN_EINVAL for NULL ev; EVFN_ERANGE unless
 *         0 <= delay_ms <= EVFN_DURATION_MAX_MS (10 years); EVFN_EPERM
 *         once published;
 *         EVFN_ENOMEM.
 *
 * Ownership: the caller keeps ev.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_delay_ms(evfn_event *ev, int64_t delay_ms);
/**
 * As evfn_event_set_delay_ms(), due at a wall-clock time in nanoseconds
 * since the Unix epoch (a time already past means no delay). Measured
 * against the monotonic clock from publish on, so a later change of the
 * wall clock does not move it. A time more than EVFN_DURATION_MAX_MS
 * after publish is due EVFN_DURATION_MAX_MS after it.
 * @param ev the event, not yet published. Not NULL.
 * @param unix_ns the due time.
 * @return 0; EVFN_EINVAL for NULL ev; EVFN_ERANGE for a negative time;
 *         EVFN_EPERM once published; EVFN_ENOMEM.
 *
 * Ownership: the caller keeps ev.
 * @since 0.1
 */
EVFN_EXPORT int evfn_event_set_deliver_at(evfn_event *ev, int64_t unix_ns);

/**
 * The event's id (CloudEvents `id`).
 *
 * This and the other attribute getters return a borrowed string, valid as
 * long as the caller holds a reference (or borrows the event), or NULL
 * when the attribute is unset (id, source and time are always set once
 * the event is published).
 *
 * @param ev the event; NULL returns NULL.
 * @return the id set, or after publish the sequence number in decimal;
 *         NULL before publish when none was set.
 *
 * Ownership: the string is borrowed from the event.
 *
 * Thread-safety: any thread for frozen events.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_id(const evfn_event *ev);
/**
 * The event's CloudEvents `source`.
 * @param ev the event; NULL returns NULL.
 * @return the source, borrowed as for evfn_event_id(); NULL before
 *         publish when none was set.
 *
 * Ownership: borrowed from the event.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_source(const evfn_event *ev);
/**
 * The event's CloudEvents `type`, also its routing topic.
 * @param ev the event; NULL returns NULL.
 * @return the type, borrowed as for evfn_event_id(); never NULL for an
 *         event.
 *
 * Ownership: borrowed from the event.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_type(const evfn_event *ev);
/**
 * The event's CloudEvents `subject`.
 * @param ev the event; NULL returns NULL.
 * @return the subject, borrowed as for evfn_event_id(), or NULL.
 *
 * Ownership: borrowed from the event.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_subject(const evfn_event *ev);
/**
 * The event's CloudEvents `datacontenttype`.
 * @param ev the event; NULL returns NULL.
 * @return the media type, borrowed as for evfn_event_id(), or NULL.
 *
 * Ownership: borrowed from the event.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_datacontenttype(const evfn_event *ev);
/**
 * Value of an extension attribute.
 * @param ev the event; NULL returns NULL.
 * @param name the extension's name; NULL returns NULL.
 * @return the value, borrowed as for evfn_event_id(), or NULL when the
 *         event has no such extension.
 *
 * Ownership: the value is borrowed from the event; name is read during the
 * call only.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_extension(const evfn_event *ev,
                                             const char *name);
/**
 * The i-th extension attribute, 0-based, in the order set.
 * @param ev the event; NULL returns NULL.
 * @param i the index.
 * @param name receives the attribute's name (NULL past the end); may be
 *        NULL.
 * @return its value, borrowed as for evfn_event_id(); NULL past the end
 *         or for NULL ev.
 *
 * Ownership: the value and *name are borrowed from the event.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_event_extension_at(const evfn_event *ev, size_t i,
                                                const char **name);
/**
 * Event time (CloudEvents `time`).
 * @param ev the event; NULL returns 0.
 * @return nanoseconds since the Unix epoch: the time set, or the publish
 *         time; 0 before publish when none was set (a time set to 0
 *         reads the same).
 *
 * Ownership: ev is read during the call only.
 * @since 0.1
 */
EVFN_EXPORT int64_t evfn_event_time(const evfn_event *ev);
/**
 * Runtime-unique sequence number assigned at publish. This is the handle
 * evfn_emit() and evfn_invoke_async() return.
 * @param ev the event; NULL returns 0.
 * @return the number; 0 before publish.
 *
 * Ownership: ev is read during the call only.
 * @since 0.1
 */
EVFN_EXPORT uint64_t evfn_event_seq(const evfn_event *ev);
/**
 * Number of handler hops that led to this event.
 * @param ev the event; NULL returns 0.
 * @return 0 for events from outside, parent + 1 for events emitted from a
 *         handler (evfn_ctx_emit(), evfn_ctx_publish(), destinations).
 *
 * Ownership: ev is read during the call only.
 * @since 0.1
 */
EVFN_EXPORT unsigned evfn_event_hops(const evfn_event *ev);

/**
 * The payload.
 * @param ev the event; NULL returns NULL.
 * @param len receives the length (0 for NULL ev); may be NULL.
 * @return the bytes (NULL for an empty payload or NULL ev).
 *
 * Ownership: borrowed for as long as the caller holds a reference (or
 * borrows the event).
 * @since 0.1
 */
EVFN_EXPORT const void *evfn_event_data(const evfn_event *ev, size_t *len);


#ifdef __cplusplus
}
#endif

#endif /* EVFN_EVENT_H */
