/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Metrics for people and monitoring systems: the Prometheus text
 * exposition of every function's counters, gauges and histograms, for
 * hosts that serve it from a server of their own; and a ready event-log
 * callback writing JSON lines. This header includes <stdio.h> for FILE:
 * the logger writes to a stdio stream. Anything not declared under
 * include/evfn/ is private.
 */
#ifndef EVFN_METRICS_H
#define EVFN_METRICS_H

#include <stddef.h>
#include <stdio.h>
#include <evfn/deadletter.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Render the metrics of every function in the Prometheus text exposition
 * format 0.0.4: counters `evfn_<name>_total{function="..."}` (accepted,
 * succeeded, dead_lettered, expired, handed_back, cancelled, attempts,
 * attempts_failed, retries, timeouts, late, throttled, rate_limited,
 * circuit_opens, batches, billed_seconds), gauges
 * `evfn_<name>{function="..."}` (in_flight, queued, waiting_retry,
 * delayed, concurrency_peak, circuit_state, paused,
 * oldest_queued_seconds), the histograms `evfn_run_seconds` and
 * `evfn_queue_wait_seconds` with `le` buckets from 100 us to 60 s, and
 * the runtime's gauge `evfn_dead_letters`. Label values are escaped as
 * the format requires.
 *
 * @param rt  the runtime. Not NULL.
 * @param out receives the text, NUL-terminated; NULL on failure. Not NULL.
 * @param len receives its length without the NUL; may be NULL.
 * @return 0; EVFN_EINVAL for NULL rt or out; EVFN_ENOMEM.
 *
 * Ownership: *out is the caller's, released with evfn_free().
 * @since 0.1
 */
EVFN_EXPORT int evfn_metrics_prometheus(evfn_rt *rt, char **out, size_t *len);

/** A JSON-lines event logger (see evfn_json_log_record()). */
typedef struct evfn_json_log evfn_json_log;

/**
 * Create a JSON-lines event logger writing to a stream.
 *
 * Each record becomes one line: {"time": RFC 3339 UTC, "kind": as
 * evfn_record_kind_name(), "function", "event_id" (absent for the
 * circuit-breaker records), "attempt", "duration_ms" (since the latest
 * attempt started; absent for starts and circuit-breaker records),
 * "reason" (as evfn_dead_letter_reason_name(), for ends other than
 * success) and "error" (when there is one)}. Lines are written whole
 * under the logger's lock and flushed.
 *
 * @param out receives the logger; NULL on failure. Not NULL.
 * @param f the stream. Not NULL.
 * @param sample share of start and success records written, in (0, 1]
 *        (1 writes all), chosen per event so that an event's start and
 *        success go together; failures of any kind are always written.
 * @return 0; EVFN_EINVAL for NULL out or f; EVFN_ERANGE for sample outside
 *         (0, 1]; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with evfn_json_log_free();
 * f is borrowed: it must outlive the logger and is never closed by evfn.
 * @since 0.1
 */
EVFN_EXPORT int evfn_json_log_new(evfn_json_log **out, FILE *f, double sample);

/**
 * Free a logger, after the runtime using it is freed.
 * @param log the logger; NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_json_log_free(evfn_json_log *log);

/**
 * The event-log callback that writes a record: pass it to
 * evfn_rt_options_set_event_log() with the logger as its argument.
 * @param rec the record. Not NULL.
 * @param log the evfn_json_log, as a void pointer. Not NULL.
 *
 * Ownership: rec is read during the call only; log stays the caller's.
 *
 * Thread-safety: any thread, concurrently.
 * @since 0.1
 */
EVFN_EXPORT void evfn_json_log_record(const evfn_record *rec, void *log);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_METRICS_H */
