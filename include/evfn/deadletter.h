/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Dead letters: events that ended without success (a permanent failure,
 * attempts exhausted, a timeout on the last attempt, expiry, a hop loop)
 * are kept in a bounded store per runtime, with why and when, to be
 * listed, replayed or purged, as a Sidekiq dead set is. Anything not
 * declared under include/evfn/ is private.
 */
#ifndef EVFN_DEADLETTER_H
#define EVFN_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One dead letter: a reference-counted snapshot, valid after the store
 * dropped it. */
typedef struct evfn_dead_letter evfn_dead_letter;

/**
 * The dead letters now in the store, oldest first. An event that failed
 * or expired is in the store by the time a snapshot counts it
 * (EVFN_STAT_DEAD_LETTERED, EVFN_STAT_EXPIRED), unless the store is full
 * (it evicts the oldest) or has no capacity.
 *
 * @param rt the runtime. Not NULL.
 * @param out array receiving up to max references; may be NULL when max
 *        is 0.
 * @param max size of out.
 * @param offset how many of the oldest to skip.
 * @return the number stored in out (>= 0); EVFN_EINVAL for NULL rt, or
 *         NULL out with max > 0.
 *
 * Ownership: each reference stored in out is the caller's, released with
 * evfn_dead_letter_unref().
 * @since 0.1
 */
EVFN_EXPORT int evfn_dead_letters(evfn_rt *rt, evfn_dead_letter **out,
                                  size_t max, size_t offset);

/**
 * Number of dead letters in the store.
 * @param rt the runtime; NULL returns 0.
 * @return the count.
 * @since 0.1
 */
EVFN_EXPORT size_t evfn_dead_letter_count(evfn_rt *rt);

/**
 * Number of dead letters dropped, oldest first, because the store was
 * full (see evfn_rt_options_set_dead_letter_capacity()).
 * @param rt the runtime; NULL returns 0.
 * @return the count since the runtime was created.
 * @since 0.1
 */
EVFN_EXPORT uint64_t evfn_dead_letter_evicted(evfn_rt *rt);

/**
 * Queue a dead letter's event to its function again, as a new accepted
 * event with the same CloudEvents id and payload, and remove it from the
 * store.
 * @param rt the runtime. Not NULL.
 * @param id a dead letter's evfn_dead_letter_id().
 * @return 0; EVFN_EINVAL for NULL rt; EVFN_ENOENT when no dead letter has
 *         this id; the admission errors of evfn_publish_to() (the dead
 *         letter then stays in the store).
 * @since 0.1
 */
EVFN_EXPORT int evfn_dead_letter_replay(evfn_rt *rt, uint64_t id);

/**
 * Replay every dead letter, oldest first, stopping at the first refusal.
 * @param rt the runtime. Not NULL.
 * @return the number replayed (>= 0); the first refusal's error (as
 *         evfn_dead_letter_replay()) when not even the first could be;
 *         EVFN_EINVAL for NULL rt.
 * @since 0.1
 */
EVFN_EXPORT int evfn_dead_letter_replay_all(evfn_rt *rt);

/**
 * Remove one dead letter without replaying it.
 * @param rt the runtime. Not NULL.
 * @param id a dead letter's evfn_dead_letter_id().
 * @return 0; EVFN_EINVAL for NULL rt; EVFN_ENOENT when no dead letter has
 *         this id.
 * @since 0.1
 */
EVFN_EXPORT int evfn_dead_letter_delete(evfn_rt *rt, uint64_t id);

/**
 * Remove every dead letter.
 * @param rt the runtime. Not NULL.
 * @return the number removed (>= 0); EVFN_EINVAL for NULL rt.
 * @since 0.1
 */
EVFN_EXPORT int evfn_dead_letter_purge(evfn_rt *rt);

/**
 * Release a reference to a dead letter.
 * @param dl the dead letter; NULL is a no-op.
 *
 * Ownership: gives back one reference from evfn_dead_letters(); the last
 * one frees the snapshot and what its getters returned.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT void evfn_dead_letter_unref(evfn_dead_letter *dl);

/**
 * Store id, unique per runtime.
 * @param dl the dead letter; NULL returns 0.
 * @return the id (from 1).
 * @since 0.1
 */
EVFN_EXPORT uint64_t evfn_dead_letter_id(const evfn_dead_letter *dl);
/**
 * The event: the original one, or for a destination that refused it
 * (reason "destination_refused") the event the destination was sent.
 * @param dl the dead letter; NULL returns NULL.
 * @return the event, borrowed for the dead letter's lifetime
 *         (evfn_event_ref() keeps it longer).
 *
 * Ownership: borrowed from the dead letter.
 * @since 0.1
 */
EVFN_EXPORT const evfn_event *evfn_dead_letter_event(const evfn_dead_letter *dl);
/**
 * The function the event was for: the one that ran it, or, for a
 * destination's refusal (reason `destination_refused`), the destination,
 * so that evfn_dead_letter_replay() delivers the event there.
 * @param dl the dead letter; NULL returns NULL.
 * @return the name, borrowed for the dead letter's lifetime.
 *
 * Ownership: borrowed from the dead letter.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_dead_letter_function(const evfn_dead_letter *dl);
/**
 * Why it ended, as a code.
 * @param dl the dead letter; NULL returns EVFN_EINVAL.
 * @return EVFN_EFAILED (permanent failure), EVFN_EEXHAUSTED (attempts
 *         exhausted), EVFN_ETIMEDOUT (exhausted, the last attempt past its
 *         deadline), EVFN_EEXPIRED (older than its maximum age),
 *         EVFN_ELOOPDETECTED (hop limit), or the admission error with
 *         which a destination (evfn_fn_options_set_destinations())
 *         refused it.
 * @since 0.1
 */
EVFN_EXPORT int evfn_dead_letter_code(const evfn_dead_letter *dl);
/**
 * Why it ended, as a word.
 * @param dl the dead letter; NULL returns NULL.
 * @return "failed", "attempts_exhausted", "timeout", "expired",
 *         "loop_detected" or "destination_refused" (as
 *         evfn_dead_letter_reason_name() of its code); a static string.
 *
 * Ownership: a static string.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_dead_letter_reason(const evfn_dead_letter *dl);
/**
 * The word for a reason code.
 * @param code a code as evfn_dead_letter_code() or evfn_record_code()
 *        returns.
 * @return as evfn_dead_letter_reason(), "handed_back" for
 *         EVFN_EHANDEDBACK, "cancelled" for EVFN_ECANCELED (an event
 *         record's end, evfn_record_code()),
 *         "destination_refused" for any other negative
 *         code, or NULL for 0 and positive values; a static string.
 *
 * Ownership: a static string.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_dead_letter_reason_name(int code);
/**
 * Attempts made.
 * @param dl the dead letter; NULL returns 0.
 * @return the count (0 when the event ended before any attempt).
 * @since 0.1
 */
EVFN_EXPORT unsigned evfn_dead_letter_attempts(const evfn_dead_letter *dl);
/**
 * The last attempt's error message (evfn_ctx_set_error(), or evfn's own,
 * such as "deadline of 200 ms exceeded").
 * @param dl the dead letter; NULL returns NULL.
 * @return the message, borrowed for the dead letter's lifetime, or NULL.
 *
 * Ownership: borrowed from the dead letter.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_dead_letter_error(const evfn_dead_letter *dl);
/**
 * Wall-clock start of the first attempt.
 * @param dl the dead letter; NULL returns 0.
 * @return ns since the Unix epoch; 0 when no attempt ran, as for an
 *         expired event.
 * @since 0.1
 */
EVFN_EXPORT int64_t evfn_dead_letter_first_attempt(const evfn_dead_letter *dl);
/**
 * Wall-clock start of the last attempt.
 * @param dl the dead letter; NULL returns 0.
 * @return as evfn_dead_letter_first_attempt().
 * @since 0.1
 */
EVFN_EXPORT int64_t evfn_dead_letter_last_attempt(const evfn_dead_letter *dl);

/** What an event-log record reports. */
typedef enum evfn_record_kind {
	EVFN_RECORD_START = 0,    /**< an attempt starts */
	EVFN_RECORD_SUCCESS,      /**< the event succeeded */
	EVFN_RECORD_TIMEOUT,      /**< an attempt passed its deadline */
	EVFN_RECORD_LATE,         /**< a fenced attempt's handler returned */
	EVFN_RECORD_DEAD_LETTER,  /**< the event was dead-lettered */
	EVFN_RECORD_EXPIRED,      /**< the event expired */
	EVFN_RECORD_HANDED_BACK,  /**< the event was handed back at drain */
	EVFN_RECORD_CANCELLED,    /**< the event was cancelled (evfn_cancel()) */
	/** An attempt failed and the function allows another: a retry
	 * follows after the backoff, unless the event ends first (expired,
	 * handed back, cancelled: that end has its own record). An attempt
	 * past its deadline has a TIMEOUT record instead. */
	EVFN_RECORD_RETRY,
	/** The function's circuit breaker opened: its attempts stop. No
	 * event (evfn_record_event() is NULL), attempt 0; the error says
	 * why. */
	EVFN_RECORD_CIRCUIT_OPEN,
	/** The cool-down passed: one probe attempt may start. No event. */
	EVFN_RECORD_CIRCUIT_HALF_OPEN,
	/** A probe succeeded: attempts start freely again. No event. */
	EVFN_RECORD_CIRCUIT_CLOSED
} evfn_record_kind;

/** One event-log record, borrowed for the duration of the callback. */
typedef struct evfn_record evfn_record;

/**
 * Receives event-log records (see evfn_rt_options_set_event_log()).
 * Runs on the thread where the transition happened (a worker, the loop,
 * a draining thread) with no evfn lock held, possibly on several threads
 * at once.
 *
 * @param rec the record, borrowed for the duration of the call, with
 *        everything read through it.
 * @param arg the argument given with the callback.
 */
typedef void (*evfn_record_cb)(const evfn_record *rec, void *arg);

/**
 * Snake-case name of a record kind.
 * @param kind the kind.
 * @return "start", "success", "timeout", "late", "dead_letter",
 *         "expired", "handed_back", "cancelled", "retry", "circuit_open",
 *         "circuit_half_open" or "circuit_closed", a static string; NULL
 *         for an unknown kind.
 *
 * Ownership: a static string.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_record_kind_name(evfn_record_kind kind);
/**
 * Kind of a record.
 * @param rec the record. Not NULL (the record getters do not check it:
 *        a callback always has one).
 * @return the kind.
 * @since 0.1
 */
EVFN_EXPORT evfn_record_kind evfn_record_get_kind(const evfn_record *rec);
/**
 * The function the record is about.
 * @param rec the record. Not NULL.
 * @return its name, borrowed for the callback.
 *
 * Ownership: borrowed for the callback.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_record_function(const evfn_record *rec);
/**
 * The event the record is about.
 * @param rec the record. Not NULL.
 * @return the event, borrowed for the callback (evfn_event_ref() keeps
 *         it); NULL for the circuit-breaker records.
 *
 * Ownership: borrowed for the callback.
 * @since 0.1
 */
EVFN_EXPORT const evfn_event *evfn_record_event(const evfn_record *rec);
/**
 * Attempt number the record is about.
 * @param rec the record. Not NULL.
 * @return the attempt (for ends, the attempts made; 0 for the
 *         circuit-breaker records).
 * @since 0.1
 */
EVFN_EXPORT unsigned evfn_record_attempt(const evfn_record *rec);
/**
 * How the event ended, for records of an end.
 * @param rec the record. Not NULL.
 * @return for an end (success, dead_letter, expired, handed_back,
 *         cancelled), the code evfn_result_code() gives (0 for success);
 *         0 for the other kinds.
 * @since 0.1
 */
EVFN_EXPORT int evfn_record_code(const evfn_record *rec);
/**
 * The latest attempt's error message ("deadline exceeded" for a timeout
 * record; for circuit-breaker records, why the state changed).
 * @param rec the record. Not NULL.
 * @return the message, borrowed for the callback, or NULL.
 *
 * Ownership: borrowed for the callback.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_record_error(const evfn_record *rec);
/**
 * Time since the latest attempt started.
 * @param rec the record. Not NULL.
 * @return nanoseconds; 0 for a start record, the circuit-breaker records,
 *         and an event that ended without any attempt (as an expired one
 *         may).
 * @since 0.1
 */
EVFN_EXPORT int64_t evfn_record_duration_ns(const evfn_record *rec);


#ifdef __cplusplus
}
#endif

#endif /* EVFN_DEADLETTER_H */
