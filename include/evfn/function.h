/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Functions: the options builder that configures one (timeout, attempts,
 * backoff, maximum event age, concurrency, queue bound, executor, per-worker
 * warm state, batches, rate limit, circuit breaker), registration by name,
 * and subscription of functions to topics. Anything not declared under
 * include/evfn/ is private.
 *
 * Thread-safety: an options builder belongs to the thread filling it (the
 * runtime copies it at registration); evfn_register(), evfn_subscribe()
 * and evfn_fn_name() may be called from any thread.
 */
#ifndef EVFN_FUNCTION_H
#define EVFN_FUNCTION_H

#include <stddef.h>
#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Where a function's handler runs. */
typedef enum evfn_executor {
	/** On a worker thread of the pool (the default). */
	EVFN_EXECUTOR_POOL = 0,
	/** On the loop thread; the handler must not block, and may return
	 * EVFN_PENDING and finish later with evfn_ctx_complete(). */
	EVFN_EXECUTOR_LOOP = 1
} evfn_executor;

/** How the delay before a retry grows with the attempt number n (1 for
 * the delay after the first attempt). */
typedef enum evfn_backoff {
	/** base every time. */
	EVFN_BACKOFF_FIXED = 0,
	/** base * n. */
	EVFN_BACKOFF_LINEAR = 1,
	/** base * multiplier^(n-1) (the default: 100 ms, x2). */
	EVFN_BACKOFF_EXPONENTIAL = 2
} evfn_backoff;

/** Randomisation of the backoff delay d (capped), after "Exponential
 * Backoff and Jitter" on the AWS Architecture Blog. */
typedef enum evfn_jitter {
	/** exactly d. */
	EVFN_JITTER_NONE = 0,
	/** uniform in [0, d] (the default). */
	EVFN_JITTER_FULL = 1,
	/** d/2 + uniform in [0, d/2]. */
	EVFN_JITTER_EQUAL = 2,
	/** uniform in [base, previous * 3], capped. */
	EVFN_JITTER_DECORRELATED = 3
} evfn_jitter;

/**
 * Builds the warm state of one worker for one function (a connection, a
 * cache), once per worker thread, before the worker's first invocation of
 * the function.
 * @param userdata the pointer given to evfn_register().
 * @param state receives the state, which evfn_ctx_worker_state() returns.
 * @return 0, or a negative code: the attempt then ends as RETRY and the
 *         hook is tried again next time.
 */
typedef int (*evfn_worker_init_cb)(void *userdata, void **state);
/**
 * Releases what evfn_worker_init_cb built: for a pool worker on the same
 * thread, when the worker exits; for loop handlers at evfn_rt_free(),
 * on the thread calling it.
 * @param userdata the pointer given to evfn_register().
 * @param state what the init hook stored.
 */
typedef void (*evfn_worker_fini_cb)(void *userdata, void *state);
/**
 * Told that an attempt of the function passed its deadline and was
 * fenced while its handler still runs. (A cancellation requested with
 * evfn_cancel() is not told here: handlers see it through
 * evfn_ctx_cancelled().)
 * Runs on the loop thread with no evfn lock held. Bindings use it to
 * interrupt their interpreter (raise in a Python thread); C handlers
 * usually poll evfn_ctx_cancelled() instead.
 * @param ctx the fenced attempt's context, valid for the call.
 * @param userdata the pointer given to evfn_register().
 */
typedef void (*evfn_cancel_cb)(evfn_ctx *ctx, void *userdata);
/**
 * Destructor of a function's userdata; runs once at evfn_rt_free().
 * @param userdata the pointer given to evfn_register().
 */
typedef void (*evfn_userdata_free_cb)(void *userdata);

/**
 * Create a function options builder with Lambda's defaults: 3 s timeout,
 * 3 attempts, exponential backoff from 100 ms (x2, capped at 30 s) with full
 * jitter, maximum event age 6 hours, no reserved concurrency (the pool
 * bounds it), a queue of 65536 events, pool executor, no hooks.
 * @param out receives the builder; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL out; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with
 * evfn_fn_options_free(); evfn_register() copies it.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_new(evfn_fn_options **out);

/**
 * Free a builder.
 * @param o the builder; NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_fn_options_free(evfn_fn_options *o);

/**
 * Deadline of each attempt. An attempt past it times out (retryable):
 * the watchdog fences a handler still running within 10 ms, and a
 * handler that returns after it has its outcome ignored (a late success
 * does not count).
 * @param o  the builder. Not NULL.
 * @param ms the timeout (default 3000).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless
 *         1 <= ms <= EVFN_DURATION_MAX_MS.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_timeout_ms(evfn_fn_options *o,
                                               int64_t ms);

/**
 * Maximum number of attempts, the first included.
 * @param o the builder. Not NULL.
 * @param n the attempts (default 3).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless 1 <= n <= 1000.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_attempts(evfn_fn_options *o, int n);

/**
 * Backoff between attempts.
 * @param o the builder. Not NULL.
 * @param kind how the delay grows.
 * @param base_ms first delay, >= 0.
 * @param multiplier growth factor for EVFN_BACKOFF_EXPONENTIAL, 1..1000.
 * @param cap_ms largest delay, base_ms..EVFN_DURATION_MAX_MS.
 * @param jitter how the delay is randomised.
 * @return 0; EVFN_EINVAL for NULL o or an unknown kind/jitter; EVFN_ERANGE
 *         for the numeric bounds above.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_backoff(evfn_fn_options *o,
                                            evfn_backoff kind, int64_t base_ms,
                                            double multiplier, int64_t cap_ms,
                                            evfn_jitter jitter);

/**
 * Maximum event age: an event older than this (since publish, or since
 * it was due if delayed) is not started again and ends as expired.
 * @param o  the builder. Not NULL.
 * @param ms the age (default 6 hours).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless
 *         1 <= ms <= EVFN_DURATION_MAX_MS.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_max_age_ms(evfn_fn_options *o,
                                               int64_t ms);

/**
 * Reserved concurrency: at most n invocations of this function run at
 * once, whatever the pool size.
 * @param o the builder. Not NULL.
 * @param n the limit (default: none, the pool bounds it).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for n < 1.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_concurrency(evfn_fn_options *o, int n);

/**
 * Queue bound: at most n events wait to start (delayed ones included);
 * beyond it admission fails with EVFN_EQUEUEFULL.
 * @param o the builder. Not NULL.
 * @param n the bound (default 65536).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless
 *         1 <= n <= 2^31-1.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_queue_capacity(evfn_fn_options *o,
                                                   int64_t n);

/**
 * Where the handler runs.
 * @param o the builder. Not NULL.
 * @param executor EVFN_EXECUTOR_POOL (the default) or EVFN_EXECUTOR_LOOP.
 * @return 0; EVFN_EINVAL for NULL o or an unknown executor.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_executor(evfn_fn_options *o,
                                             evfn_executor executor);

/**
 * Per-worker warm-state hooks.
 * @param o the builder. Not NULL.
 * @param init builds a worker's state; may be NULL.
 * @param fini releases it; may be NULL.
 * @return 0; EVFN_EINVAL for NULL o.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_worker_hooks(evfn_fn_options *o,
                                                 evfn_worker_init_cb init,
                                                 evfn_worker_fini_cb fini);

/**
 * Cap on stuck threads: an attempt past its deadline is fenced and its
 * worker replaced, but the thread runs on until the handler returns.
 * While n of this function's handlers are stuck so, the function is
 * unhealthy: admission fails with EVFN_EUNHEALTHY, and what it queued
 * before waits (it starts nothing until one of them returns). Handlers
 * already running may still get stuck past the cap: those are not
 * replaced and keep their worker's place in the pool until they return.
 * So the pool never has more threads than its maximum plus, for each
 * function, n stuck ones. A stuck thread whose handler returns rejoins
 * the pool if the pool is below its minimum or work waits, and exits
 * otherwise (default 4).
 * @param o the builder. Not NULL.
 * @param n the cap.
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for n < 1.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_max_stuck(evfn_fn_options *o, int n);

/**
 * Destinations: on success, the handler's response goes as a new event to
 * the function named on_success (type: the original's, data: the
 * response, extensions "evfnfunction" and "evfnparent" = the original's
 * id); when the event is dead-lettered or expires, the original event goes
 * to on_failure with extensions "evfnreason" (as
 * evfn_dead_letter_reason()), "evfnattempts", "evfnerror",
 * "evfnfunction", "evfnfirstattempt" and "evfnlastattempt" (ns since the
 * epoch). Both carry the hop count plus one. Names are checked when an
 * event is sent: an unknown or refusing destination puts the event in
 * the dead-letter store as "destination_refused".
 * @param o the builder. Not NULL.
 * @param on_success a function name, copied; NULL for none.
 * @param on_failure a function name, copied; NULL for none.
 * @return 0; EVFN_EINVAL for NULL o or an empty name; EVFN_ENAMETOOLONG;
 *         EVFN_EILSEQ for a name that is not UTF-8 (no function could
 *         have it).
 *
 * Ownership: the names are copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_destinations(evfn_fn_options *o,
                                                 const char *on_success,
                                                 const char *on_failure);

/**
 * Derives an idempotency key from an event. Runs while evfn holds an
 * internal lock: it must be quick and must not call evfn.
 * @param ev the event, borrowed for the call.
 * @param key receives the key, NUL-terminated.
 * @param size size of key in bytes.
 * @param userdata the pointer given to evfn_register().
 * @return 0, or a negative code to use the event id instead.
 */
typedef int (*evfn_idempotency_key_cb)(const evfn_event *ev, char *key,
                                       size_t size, void *userdata);

/**
 * Idempotency: an event whose key (its CloudEvents id, or what key_cb
 * derives) already succeeded within the window is not run again; it
 * succeeds at once with the stored response (and no second on_success).
 * @param o the builder. Not NULL.
 * @param window_ms how long a success is remembered,
 *        0..EVFN_DURATION_MAX_MS; 0 turns it off.
 * @param key_cb derives the key; NULL to use the CloudEvents id.
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for the bounds above.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_idempotency(evfn_fn_options *o,
                                                int64_t window_ms,
                                                evfn_idempotency_key_cb key_cb);

/**
 * Hook told when an attempt is fenced at its deadline (see
 * evfn_cancel_cb).
 * @param o  the builder. Not NULL.
 * @param cb the hook; NULL for none.
 * @return 0; EVFN_EINVAL for NULL o.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_cancel_hook(evfn_fn_options *o,
                                                evfn_cancel_cb cb);

/**
 * Batches (as Lambda's SQS event source): the handler is called with up
 * to max_items events at once (evfn_ctx_batch_size(),
 * evfn_ctx_batch_event()); a call starts when max_items events wait or
 * the oldest waiting one has waited window_ms (0: start with what waits
 * now). Each item keeps its own attempt count, age and end; see
 * evfn_ctx_batch_item_failed() for per-item failures. A batch counts as
 * one invocation for concurrency, the rate limit, the circuit breaker and
 * billing, and shares one deadline and one context (the response, if any,
 * goes to item 0's waiter and destination). Pool executor only:
 * evfn_register() refuses a batch function on the loop executor.
 * @param o the builder. Not NULL.
 * @param max_items 1..10000; 1 turns batching off (the default).
 * @param window_ms 0..3600000.
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for the bounds above.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_batch(evfn_fn_options *o, int max_items,
                                          int64_t window_ms);

/**
 * Rate limit: a token bucket that refills per_second tokens a second up
 * to burst; each invocation (a batch counts once) takes a token when it
 * starts. Events wait in the queue for a token instead of failing
 * (EVFN_STAT_RATE_LIMITED counts the waits; queued and oldest-queued age
 * show the backlog); retries wait likewise.
 * @param o the builder. Not NULL.
 * @param per_second > 0 and <= 1e9, or 0 to turn the limit off.
 * @param burst 1..1000000: starts allowed at once after a quiet spell;
 *        burst tokens take at most EVFN_DURATION_MAX_MS to refill (so a
 *        token at least every 10 years).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for the bounds above.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_rate_limit(evfn_fn_options *o,
                                               double per_second, int burst);

/** Circuit-breaker states, as the EVFN_STAT_CIRCUIT_STATE gauge reports
 * them. */
typedef enum evfn_circuit_state {
	/** Attempts start freely; failures are counted. */
	EVFN_CIRCUIT_CLOSED = 0,
	/** Tripped: no attempt starts until the cool-down passes. */
	EVFN_CIRCUIT_OPEN = 1,
	/** Cooled down: one probe attempt runs and decides. */
	EVFN_CIRCUIT_HALF_OPEN = 2
} evfn_circuit_state;

/** What admission does with a new event while the breaker is open. */
typedef enum evfn_circuit_policy {
	/** Queue it behind the waiting ones (the default). */
	EVFN_CIRCUIT_QUEUE = 0,
	/** Refuse it with EVFN_ECIRCUITOPEN (counted as throttled). */
	EVFN_CIRCUIT_REFUSE = 1
} evfn_circuit_policy;

/**
 * Circuit breaker. An attempt fails when it returns EVFN_RETRY or
 * EVFN_FAIL or passes its deadline (a batch call counts once, by its
 * handler's return). The breaker opens after consecutive_failures failed
 * attempts in a row, or when at least min_calls attempts ended within the
 * current window_ms and the share that failed reached failure_rate. While
 * it is open no attempt starts: queued events and due retries wait
 * without spending attempts (their maximum age still runs), and new
 * events are queued or refused as policy says. After cooldown_ms it is
 * half-open: one probe attempt starts; its success closes the breaker,
 * its failure opens it for another cool-down. Each change is counted
 * (EVFN_STAT_CIRCUIT_OPENS, the EVFN_STAT_CIRCUIT_STATE gauge) and
 * reported to the event log (EVFN_RECORD_CIRCUIT_*).
 * @param o the builder. Not NULL.
 * @param consecutive_failures 1..1000000, or 0 for no such trigger.
 * @param failure_rate in (0, 1], or 0 for no such trigger.
 * @param min_calls 1..1000000: calls needed before the rate counts.
 * @param window_ms 1..86400000: the rate's window (fixed, restarting).
 * @param cooldown_ms 1..86400000.
 * @param policy what admission does with new events while it is open.
 * @return 0; EVFN_EINVAL for NULL o, an unknown policy, or both triggers
 *         0 (a breaker that can never open); EVFN_ERANGE for the bounds
 *         above.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_circuit_breaker(
	evfn_fn_options *o, int consecutive_failures, double failure_rate,
	int min_calls, int64_t window_ms, int64_t cooldown_ms,
	evfn_circuit_policy policy);

/**
 * Destructor for the userdata given to evfn_register().
 * @param o  the builder. Not NULL.
 * @param cb the destructor; NULL for none.
 * @return 0; EVFN_EINVAL for NULL o.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fn_options_set_userdata_free(evfn_fn_options *o,
                                                  evfn_userdata_free_cb cb);

/**
 * Register a function under a name.
 *
 * @param rt the runtime. Not NULL.
 * @param name 1..EVFN_NAME_MAX bytes of well-formed UTF-8, copied; also a
 *        valid target for evfn_invoke() and evfn_subscribe(). Any
 *        character may appear (quotes, backslashes, newlines): the
 *        Prometheus exposition escapes them.
 * @param handler non-NULL.
 * @param userdata passed to the handler and hooks; see
 *        evfn_fn_options_set_userdata_free().
 * @param opts copied; NULL for the defaults.
 * @param out receives the function (owned by the runtime, valid until
 *        evfn_rt_free()); may be NULL.
 * @return 0; EVFN_EINVAL for NULL rt/name/handler or an empty name, or
 *         options with batches on the loop executor;
 *         EVFN_ENAMETOOLONG; EVFN_EILSEQ for a name that is not
 *         well-formed UTF-8 (overlong forms, surrogates and truncated
 *         sequences included), which would make every output that
 *         carries it (metrics, JSON) unparsable; EVFN_EEXIST for a name
 *         already registered;
 *         EVFN_ESHUTDOWN once the runtime drains; EVFN_ENOMEM.
 *
 * Ownership: name and opts are copied. The runtime owns the function
 * (*out is borrowed until evfn_rt_free()). userdata stays the
 * caller's unless a destructor was set: then the runtime calls it once,
 * at evfn_rt_free(). On failure the destructor is not called: the
 * caller keeps userdata.
 * @since 0.1
 */
EVFN_EXPORT int evfn_register(evfn_rt *rt, const char *name,
                              evfn_handler handler, void *userdata,
                              const evfn_fn_options *opts, evfn_fn **out);

/**
 * Name of a function.
 * @param fn the function; NULL returns NULL.
 * @return the name, borrowed for the runtime's lifetime.
 *
 * Ownership: borrowed; the runtime owns its functions.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_fn_name(const evfn_fn *fn);

/**
 * Subscribe a function to a topic pattern.
 *
 * Topics are dot-separated words ("orders.eu.created"). In a pattern, `*`
 * stands for exactly one word and `#` for zero or more words, each only as a
 * whole word: "orders.*" matches "orders.created" but neither "orders" nor
 * "orders.eu.created"; "orders.#" matches "orders", "orders.created" and
 * "orders.eu.created"; "#" matches every topic. Any other word matches
 * itself exactly. A function subscribed twice to the same pattern, or to
 * two patterns matching one topic, receives each event once. A pattern is
 * at most EVFN_NAME_MAX bytes, so at most 128 words; matching a topic
 * takes at most (pattern words + 1) x (topic words + 1) steps whatever the
 * pattern (runs of `#` included), while the runtime's lock is held.
 *
 * @param rt the runtime. Not NULL.
 * @param pattern the pattern, copied. Not NULL.
 * @param fn_name the function. Not NULL.
 * @return 0; EVFN_EINVAL for NULL/empty arguments; EVFN_ENAMETOOLONG;
 *         EVFN_EPATTERN for an empty word or a wildcard inside a word
 *         ("a..b", ".", "a*", "x#y"), the same rule evfn_emit() applies
 *         to topics; EVFN_ENOFN for an unknown function;
 *         EVFN_ESHUTDOWN after drain; EVFN_ENOMEM.
 *
 * Ownership: pattern is copied; fn_name is read during the call only.
 * @since 0.1
 */
EVFN_EXPORT int evfn_subscribe(evfn_rt *rt, const char *pattern,
                               const char *fn_name);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_FUNCTION_H */
