/* SPDX-License-Identifier: MIT */
/*
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
 * The dead letters now in the store, oldest first.
 *
 * @param out array receiving up to max references (each to be released
 *        with evfn_dead_letter_unref()).
 * @param offset how many of the oldest to skip.
 * @return the number stored in out (>= 0); EVFN_EINVAL for NULL rt, or
 *         NULL out with max > 0.
 * @since 0.1
 */
EVFN_EXPORT int evfn_dead_letters(evfn_rt *rt, evfn_dead_letter **out,
                                  size_t max, size_t offset);

/** Number of dead letters in the store (0 for NULL rt). @since 0.1 */
EVFN_EXPORT size_t evfn_dead_letter_count(evfn_rt *rt);

/** Number of dead letters dropped, oldest first, because the store was
 * full (see evfn_rt_options_set_dead_letter_capacity()). @since 0.1 */
EVFN_EXPORT uint64_t evfn_dead_letter_evicted(evfn_rt *rt);

/**
 * Queue a dead letter's event to its function again, as a new accepted
 * event with the same CloudEvents id and payload, and remove it from the
 * store.
 * @param id a dead letter's evfn_dead_letter_id().
 * @return 0; EVFN_EINVAL for NULL rt; EVFN_ENOENT when no dead letter has
 *         this id; the admission errors of evfn_publish_to() (the dead
 *         letter then stays in the store).
 * @since 0.1
 */
EVFN_EXPORT int evfn_dead_letter_replay(evfn_rt *rt, uint64_t id);

/** Replay every dead letter, oldest first, stopping at the first refusal.
 * @return the number replayed (>= 0), or the first admission error if
 *         none could be. @since 0.1 */
EVFN_EXPORT int evfn_dead_letter_replay_all(evfn_rt *rt);

/** Remove one dead letter without replaying it. @return 0; EVFN_EINVAL;
 * EVFN_ENOENT. @since 0.1 */
EVFN_EXPORT int evfn_dead_letter_delete(evfn_rt *rt, uint64_t id);

/** Remove every dead letter. @return the number removed (>= 0);
 * EVFN_EINVAL for NULL rt. @since 0.1 */
EVFN_EXPORT int evfn_dead_letter_purge(evfn_rt *rt);

/** Release a reference; NULL is a no-op. Thread-safety: any thread.
 * @since 0.1 */
EVFN_EXPORT void evfn_dead_letter_unref(evfn_dead_letter *dl);

/** Store id, unique per runtime (0 for NULL). @since 0.1 */
EVFN_EXPORT uint64_t evfn_dead_letter_id(const evfn_dead_letter *dl);
/** The original event, borrowed for the dead letter's lifetime. @since 0.1 */
EVFN_EXPORT const evfn_event *evfn_dead_letter_event(const evfn_dead_letter *dl);
/** The function it was for, borrowed likewise. @since 0.1 */
EVFN_EXPORT const char *evfn_dead_letter_function(const evfn_dead_letter *dl);
/** Why it ended, as a code: EVFN_EFAILED (permanent failure),
 * EVFN_EEXHAUSTED (attempts exhausted), EVFN_ETIMEDOUT (exhausted, the
 * last attempt past its deadline), EVFN_EEXPIRED (older than its maximum
 * age) or EVFN_ELOOPDETECTED (hop limit). @since 0.1 */
EVFN_EXPORT int evfn_dead_letter_code(const evfn_dead_letter *dl);
/** Why it ended, as a word: "failed", "attempts_exhausted", "timeout",
 * "expired" or "loop_detected" (also for any code: see
 * evfn_dead_letter_reason_name()). @since 0.1 */
EVFN_EXPORT const char *evfn_dead_letter_reason(const evfn_dead_letter *dl);
/** The word for a reason code as above, "handed_back" for
 * EVFN_EHANDEDBACK, "destination_refused" for admission errors, or NULL.
 * @since 0.1 */
EVFN_EXPORT const char *evfn_dead_letter_reason_name(int code);
/** Attempts made. @since 0.1 */
EVFN_EXPORT unsigned evfn_dead_letter_attempts(const evfn_dead_letter *dl);
/** The last attempt's error message, or NULL. @since 0.1 */
EVFN_EXPORT const char *evfn_dead_letter_error(const evfn_dead_letter *dl);
/** Wall-clock start of the first and of the last attempt, ns since the
 * Unix epoch (0 when no attempt ran, as for an expired event). @since 0.1 */
EVFN_EXPORT int64_t evfn_dead_letter_first_attempt(const evfn_dead_letter *dl);
/** See evfn_dead_letter_first_attempt(). @since 0.1 */
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

/** Receives event-log records (see evfn_rt_options_set_event_log()).
 * Runs on the thread where the transition happened (a worker, the loop,
 * a draining thread) with no evfn lock held, possibly on several threads
 * at once. */
typedef void (*evfn_record_cb)(const evfn_record *rec, void *arg);

/** Snake-case name of a record kind ("start", "success", "timeout",
 * "late", "dead_letter", "expired", "handed_back", "cancelled", "retry",
 * "circuit_open", "circuit_half_open", "circuit_closed"), or NULL for an
 * unknown kind. A static string. Thread-safety: any thread. @since 0.1 */
EVFN_EXPORT const char *evfn_record_kind_name(evfn_record_kind kind);
/** Kind of a record. @since 0.1 */
EVFN_EXPORT evfn_record_kind evfn_record_get_kind(const evfn_record *rec);
/** Function name. @since 0.1 */
EVFN_EXPORT const char *evfn_record_function(const evfn_record *rec);
/** The event; NULL for the circuit-breaker records. @since 0.1 */
EVFN_EXPORT const evfn_event *evfn_record_event(const evfn_record *rec);
/** Attempt number the record is about (attempts made, for ends). @since 0.1 */
EVFN_EXPORT unsigned evfn_record_attempt(const evfn_record *rec);
/** For ends: 0 or the reason code as evfn_dead_letter_code(); 0 otherwise.
 * @since 0.1 */
EVFN_EXPORT int evfn_record_code(const evfn_record *rec);
/** The latest attempt's error message, or NULL. @since 0.1 */
EVFN_EXPORT const char *evfn_record_error(const evfn_record *rec);
/** Nanoseconds since the latest attempt started (0 for a start, and for
 * an event that ended without any attempt, as an expired one may).
 * @since 0.1 */
EVFN_EXPORT int64_t evfn_record_duration_ns(const evfn_record *rec);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_DEADLETTER_H */
