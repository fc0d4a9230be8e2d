/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Accounting: consistent snapshots of per-function counters and gauges.
 * A snapshot is taken atomically, so at every snapshot
 *   accepted = succeeded + dead_lettered + expired + handed_back
 *              + cancelled + in_flight + queued + waiting_retry + delayed.
 * Anything not declared under include/evfn/ is private.
 */
#ifndef EVFN_STATS_H
#define EVFN_STATS_H

#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a snapshot holds. New values may be added before EVFN_STAT_COUNT. */
typedef enum evfn_stat {
	EVFN_STAT_ACCEPTED = 0,       /**< events admitted (one per target) */
	EVFN_STAT_SUCCEEDED,          /**< ended as succeeded */
	EVFN_STAT_DEAD_LETTERED,      /**< ended failed or attempts exhausted */
	EVFN_STAT_EXPIRED,            /**< ended older than the maximum age */
	EVFN_STAT_HANDED_BACK,        /**< ended handed back at drain */
	EVFN_STAT_IN_FLIGHT,          /**< gauge: attempts running now (with
	                                   those a worker took to run next) */
	EVFN_STAT_QUEUED,             /**< gauge: waiting to start */
	EVFN_STAT_WAITING_RETRY,      /**< gauge: waiting for a retry timer */
	EVFN_STAT_ATTEMPTS,           /**< attempts started */
	EVFN_STAT_ATTEMPTS_FAILED,    /**< attempts that did not return OK */
	EVFN_STAT_RETRIES,            /**< retries scheduled */
	EVFN_STAT_TIMEOUTS,           /**< attempts past their deadline */
	EVFN_STAT_LATE,               /**< returns after the deadline (ignored) */
	EVFN_STAT_THROTTLED,          /**< refused at admission (queue full) */
	EVFN_STAT_CONCURRENCY_PEAK,   /**< gauge: most attempts run at once
	                                   (one per worker at most, however
	                                   many it took to run next) */
	EVFN_STAT_BILLED_MS,          /**< run time summed per attempt, each
	                                   rounded up to 1 ms, as Lambda bills
	                                   (a batch call once); one that timed
	                                   out counts its deadline from then on,
	                                   and its whole run once its handler
	                                   returns, so billed_ms >= timeouts x
	                                   timeout at any instant */
	EVFN_STAT_OLDEST_QUEUED_MS,   /**< gauge: age of the oldest queued
	                                   event (max over functions) */
	EVFN_STAT_CANCELLED,          /**< ended cancelled (evfn_cancel()) */
	EVFN_STAT_DELAYED,            /**< gauge: published with a delay, not
	                                   due yet */
	EVFN_STAT_RATE_LIMITED,       /**< times queued work had to wait for
	                                   the rate limit's next token */
	EVFN_STAT_CIRCUIT_OPENS,      /**< times the circuit breaker opened */
	EVFN_STAT_CIRCUIT_STATE,      /**< gauge: an evfn_circuit_state (the
	                                   highest value over functions) */
	EVFN_STAT_PAUSED,             /**< gauge: 1 while paused (summed over
	                                   functions) */
	EVFN_STAT_BATCHES,            /**< handler calls of a batch function
	                                   (each with one or more events) */
	EVFN_STAT_COUNT
} evfn_stat;

/**
 * Take a consistent snapshot.
 * @param rt the runtime. Not NULL.
 * @param fn_name one function, or NULL for the sum over all functions
 *        (the maximum for the gauges that say so).
 * @param out receives the snapshot; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL rt/out; EVFN_ENOFN when no function has
 *         that name; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with evfn_stats_free(); it
 * does not refer to the runtime.
 * @since 0.1
 */
EVFN_EXPORT int evfn_stats_take(evfn_rt *rt, const char *fn_name,
                                evfn_stats **out);

/**
 * One value of a snapshot.
 * @param s the snapshot; NULL returns 0.
 * @param which the value.
 * @return the value; 0 for an unknown stat.
 * @since 0.2 (0.1: evfn_stats_get(), deprecated)
 */
EVFN_EXPORT uint64_t evfn_stats_value(const evfn_stats *s, evfn_stat which);

/**
 * Free a snapshot.
 * @param s the snapshot; NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_stats_free(evfn_stats *s);

/** The latency histograms of a snapshot. */
typedef enum evfn_histogram {
	/** Run time of each attempt, handler start to return (for a loop
	 * handler that returns EVFN_PENDING, to its evfn_ctx_complete()). An
	 * attempt fenced at its deadline is counted at its deadline when it
	 * times out, and moves to its real run time when its handler
	 * returns. */
	EVFN_HIST_RUN = 0,
	/** Queue wait of each attempt: from publish (first attempt) or the
	 * retry's due time to the start. */
	EVFN_HIST_QUEUE_WAIT = 1
} evfn_histogram;

/**
 * A quantile of a histogram: the upper bound, in nanoseconds, of the
 * bucket that holds it. Buckets are log-linear (8 per power of two from
 * 1 us), so the answer is within 12.5% above the true value.
 * @param s the snapshot; NULL returns 0.
 * @param which the histogram.
 * @param q in [0, 1]: 0.5 for the median, 0.99 for p99.
 * @return the bound; 0 when the histogram is empty, NULL s, an unknown
 *         histogram or q outside [0, 1].
 * @since 0.1
 */
EVFN_EXPORT int64_t evfn_stats_quantile(const evfn_stats *s,
                                        evfn_histogram which, double q);

/**
 * Number of buckets of each histogram (the same for all).
 * @return the count.
 * @since 0.1
 */
EVFN_EXPORT size_t evfn_stats_buckets(void);

/**
 * One bucket of a histogram (not cumulative).
 * @param s the snapshot; NULL returns 0 (upper_ns is still set).
 * @param which the histogram.
 * @param i the bucket, 0..evfn_stats_buckets() - 1.
 * @param upper_ns receives the largest value the bucket holds, in ns
 *        (INT64_MAX for the last, 0 for an index out of range); may be
 *        NULL.
 * @return its count; 0 for NULL s, an unknown histogram or an index out
 *         of range.
 * @since 0.1
 */
EVFN_EXPORT uint64_t evfn_stats_bucket(const evfn_stats *s,
                                       evfn_histogram which, size_t i,
                                       int64_t *upper_ns);

/**
 * Sum of the recorded values of a histogram.
 * @param s the snapshot; NULL returns 0.
 * @param which the histogram.
 * @return the sum in ns; 0 for an unknown histogram.
 * @since 0.1
 */
EVFN_EXPORT uint64_t evfn_stats_sum_ns(const evfn_stats *s,
                                       evfn_histogram which);

/** AWS Lambda's published x86 price (us-east-1) in USD per million
 * requests, for evfn_stats_serverless_cost(). @since 0.1 */
#define EVFN_LAMBDA_USD_PER_MILLION_REQUESTS 0.20
/** AWS Lambda's published x86 price (us-east-1) in USD per GB-second,
 * for evfn_stats_serverless_cost(). @since 0.1 */
#define EVFN_LAMBDA_USD_PER_GB_SECOND 0.0000166667

/**
 * Cost view: what the snapshot's work would cost on a pay-per-invocation
 * platform. Every attempt is a billed request, and billed time
 * (EVFN_STAT_BILLED_MS) at the given memory size is billed in GB-seconds:
 *   attempts / 1e6 * usd_per_million_requests
 *   + billed_ms / 1000 * memory_mb / 1024 * usd_per_gb_second.
 * Compare it with a fixed-price server's price over the same period.
 * @param s the snapshot; NULL returns 0.
 * @param memory_mb the memory size a function would be given (128..10240
 *        on Lambda).
 * @param usd_per_million_requests the price of a million requests, such
 *        as EVFN_LAMBDA_USD_PER_MILLION_REQUESTS.
 * @param usd_per_gb_second the price of a GB-second, such as
 *        EVFN_LAMBDA_USD_PER_GB_SECOND.
 * @return the cost in USD; 0 for NULL s, memory_mb < 1 or negative prices.
 * @since 0.1
 */
EVFN_EXPORT double evfn_stats_serverless_cost(const evfn_stats *s,
                                              int memory_mb,
                                              double usd_per_million_requests,
                                              double usd_per_gb_second);

/**
 * Snake-case name of a stat.
 * @param which the stat.
 * @return the name, such as "dead_lettered", a static string; NULL for an
 *         unknown stat.
 *
 * Ownership: a static string.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_stat_name(evfn_stat which);


#ifdef __cplusplus
}
#endif

#endif /* EVFN_STATS_H */
