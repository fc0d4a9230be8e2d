/* SPDX-License-Identifier: MIT */
/*
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
 * succeeded, dead_lettered, expired, handed_back, attempts,
 * attempts_failed, retries, timeouts, late, throttled,
 * billed_seconds), gauges (in_flight, queued, waiting_retry,
 * concurrency_peak, oldest_queued_seconds, dead_letters) and the
 * histograms `evfn_run_seconds` and `evfn_queue_wait_seconds` with `le`
 * buckets from 100 us to 60 s.
 *
 * @param out receives the text, NUL-terminated, to be released with
 *        evfn_free(); NULL on failure.
 * @param len receives its length without the NUL; may be NULL.
 * @return 0; EVFN_EINVAL for NULL rt or out; EVFN_ENOMEM.
 * @since 0.1
 */
EVFN_EXPORT int evfn_metrics_prometheus(evfn_rt *rt, char **out, size_t *len);

/** A JSON-lines event logger (see evfn_json_log_record()). */
typedef struct evfn_json_log evfn_json_log;

/**
 * Create a JSON-lines event logger writing to a stream.
 *
 * Each record becomes one line: {"time": RFC 3339 UTC, "kind": "start" |
 * "success" | "timeout" | "late" | "dead_letter" | "expired" |
 * "handed_back", "function", "event_id", "attempt", "duration_ms" (since
 * the latest attempt started; absent for starts), "reason" and "error"
 * (when there are any)}. Lines are written whole under the logger's lock
 * and flushed.
 *
 * @param f the stream; borrowed: it must outlive the logger and is never
 *        closed by evfn.
 * @param sample share of start and success records written, in (0, 1]
 *        (1 writes all), chosen per event so that an event's start and
 *        success go together; failures of any kind are always written.
 * @return 0; EVFN_EINVAL for NULL out or f; EVFN_ERANGE for sample outside
 *         (0, 1]; EVFN_ENOMEM.
 * @since 0.1
 */
EVFN_EXPORT int evfn_json_log_new(evfn_json_log **out, FILE *f, double sample);

/** Free a logger (after the runtime using it is freed). NULL is a no-op.
 * @since 0.1 */
EVFN_EXPORT void evfn_json_log_free(evfn_json_log *log);

/**
 * The event-log callback that writes a record: pass it to
 * evfn_rt_options_set_event_log() with the logger as its argument.
 * Thread-safety: any thread, concurrently.
 * @since 0.1
 */
EVFN_EXPORT void evfn_json_log_record(const evfn_record *rec, void *log);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_METRICS_H */
