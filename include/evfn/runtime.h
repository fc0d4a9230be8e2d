/* SPDX-License-Identifier: MIT */
/**
 * @file
 * The runtime: create (with its own loop thread or inside a host's libevent
 * event_base), start, drain, free; and the options builder that configures
 * it. Registration, emit and stats live in their own headers. Anything not
 * declared under include/evfn/ is private.
 *
 * Threading rule for all of evfn: every call may be made from any thread
 * unless its documentation says otherwise; calls that would wait on the
 * caller's own progress (drain or free from inside a handler, a synchronous
 * invoke on the loop thread) are refused with
 * EVFN_EDEADLK. Callbacks run with no evfn lock held, except the log
 * callback (see evfn_rt_options_set_log()) and the idempotency key
 * callback (see evfn_fn_options_set_idempotency()).
 */
#ifndef EVFN_RUNTIME_H
#define EVFN_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <evfn/deadletter.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Severity of a diagnostic passed to the log callback. */
typedef enum evfn_log_level {
	EVFN_LOG_DEBUG = 0,
	EVFN_LOG_INFO = 1,
	EVFN_LOG_WARN = 2,
	EVFN_LOG_ERROR = 3
} evfn_log_level;

/**
 * Receives the runtime's diagnostics. It may run on any evfn thread and
 * while evfn holds internal locks, so it must not call evfn functions.
 * @param level how severe.
 * @param msg the message, one line of English, borrowed for the call.
 * @param arg the argument given to evfn_rt_options_set_log().
 */
typedef void (*evfn_log_cb)(evfn_log_level level, const char *msg, void *arg);

/**
 * Receives each event handed back by drain.
 * @param ev the event, borrowed for the call; evfn_event_ref() keeps it.
 * @param fn_name the function it was meant for, borrowed for the call.
 * @param arg the argument given to evfn_rt_drain().
 */
typedef void (*evfn_handback_cb)(const evfn_event *ev, const char *fn_name,
                                 void *arg);

/**
 * Create a runtime options builder with the defaults: 1 to max(2, cores)
 * workers, idle workers reaped after 10 s, source "evfn", no log callback,
 * a loop thread of evfn's own.
 *
 * @param out receives the builder; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL out; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with
 * evfn_rt_options_free(); evfn_rt_new() copies it.
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_new(evfn_rt_options **out);

/**
 * Free a builder.
 * @param o the builder; NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_rt_options_free(evfn_rt_options *o);

/**
 * Size of the worker pool: it keeps at least min threads, grows to max while
 * events are backlogged, and reaps threads idle longer than the idle timeout
 * down to min.
 * @param o   the builder. Not NULL.
 * @param min threads kept (default 1).
 * @param max threads at most (default max(2, cores)).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless
 *         0 <= min <= max and 1 <= max <= 1024.
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_set_workers(evfn_rt_options *o, int min,
                                            int max);

/**
 * How long a worker above the minimum may sit idle before it exits.
 * @param o  the builder. Not NULL.
 * @param ms the idle time (default 10000).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless
 *         1 <= ms <= EVFN_DURATION_MAX_MS.
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_set_idle_timeout_ms(evfn_rt_options *o,
                                                    int64_t ms);

/**
 * CloudEvents `source` given to events published without one.
 * @param o      the builder. Not NULL.
 * @param source 1..EVFN_NAME_MAX bytes, copied (default "evfn"). Not NULL.
 * @return 0; EVFN_EINVAL for NULL o or a NULL or empty source;
 *         EVFN_ENAMETOOLONG; EVFN_ENOMEM.
 *
 * Ownership: source is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_set_source(evfn_rt_options *o,
                                           const char *source);

/**
 * Where diagnostics go (default: nowhere).
 * @param o   the builder. Not NULL.
 * @param cb  the callback; NULL for none.
 * @param arg passed to cb.
 * @return 0; EVFN_EINVAL for NULL o.
 *
 * Ownership: arg stays the caller's: evfn passes it to cb and never frees it.
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_set_log(evfn_rt_options *o, evfn_log_cb cb,
                                        void *arg);

/**
 * Hop limit: an event emitted from a handler (evfn_ctx_emit(), or a
 * destination) carries its parent's hop count plus one; one past the limit
 * is accepted and dead-lettered at once as loop_detected (default 16).
 * @param o    the builder. Not NULL.
 * @param hops the limit.
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless 1 <= hops <= 1000.
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_set_max_hops(evfn_rt_options *o, int hops);

/**
 * Size of the dead-letter store (default 10000; 0 keeps none). When full,
 * the oldest dead letter is dropped and counted (evfn_dead_letter_evicted()).
 * @param o the builder. Not NULL.
 * @param n the capacity.
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for n < 0.
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_set_dead_letter_capacity(evfn_rt_options *o,
                                                         int64_t n);

/**
 * Event log: a callback told of each attempt start, timeout and late
 * return, and of each event's end (success, dead letter, expiry,
 * hand-back), of each retry, and of each circuit-breaker change.
 * @param o   the builder. Not NULL.
 * @param cb  the callback; NULL (the default) turns the log off at no
 *        cost.
 * @param arg passed to cb.
 * @return 0; EVFN_EINVAL for NULL o.
 *
 * Ownership: arg stays the caller's: evfn passes it to cb and never frees it.
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_set_event_log(evfn_rt_options *o,
                                              evfn_record_cb cb, void *arg);

/**
 * Latency metrics: the run-time and queue-wait histograms and billed
 * duration (on by default). Off, nothing is recorded per attempt and
 * those stay empty; the counters and gauges of the accounting are kept
 * either way. For measuring what metrics cost (bench/).
 * @param o  the builder. Not NULL.
 * @param on false turns them off.
 * @return 0; EVFN_EINVAL for NULL o.
 * @since 0.1
 */
EVFN_EXPORT int evfn_rt_options_set_metrics(evfn_rt_options *o, bool on);

/** How a journal writes: see evfn_rt_options_set_journal(). */
typedef enum evfn_journal_mode {
	/** A publish returns once its event is on disk (fsynced); producers
	 * that publish at the same time share one fsync (group commit). An
	 * attempt's start and an event's end are written with the next
	 * publish's fsync, or within 10 ms: a crash can run again the events
	 * that ended in its last 10 ms (at least once, never lost). */
	EVFN_JOURNAL_DURABLE = 0,
	/** A publish returns at once; the event is written within 10 ms (it
	 * survives the process being killed from then on) and fsynced within
	 * 1 s (it survives a power loss from then on). */
	EVFN_JOURNAL_FAST = 1
} evfn_journal_mode;

/**
 * Keep accepted events in a journal (an SQLite file in WAL mode) so that
 * they survive the process: every accepted event with its function,
 * attributes, payload, ordering key and due time; each attempt's start,
 * each retry's due time and backoff state, and each event's end; the
 * dead-letter store; idempotency keys within their window.
 *
 * evfn_rt_start() opens (or creates) the file and re-admits what did not
 * end, in publish order, with its attempts and retry due times; an
 * attempt that was running when the process died counts as one failed
 * attempt (error "crashed", code EVFN_ECRASHED): it is retried if
 * attempts remain, else dead-lettered. Events of functions not registered
 * at start stay in the journal, untouched, and are counted
 * (evfn_rt_journal_orphans()) and logged. Dead letters come back in the
 * store with their ids (replay works after a restart); idempotency keys
 * with their remaining window. A recovered event's maximum age counts
 * from the restart.
 *
 * With EVFN_JOURNAL_DURABLE, a publish (emit, invoke, replay) returns
 * once its event is on disk: it survives a crash or a power loss from
 * then on. What no caller waits for (an attempt's start, a retry, an
 * event's end, its idempotency key, a dead letter) does not force an
 * fsync of its own: it is written with the next publish's, or within
 * 10 ms. So a crash never loses an accepted event, and what runs again
 * after one is bounded: the attempts that were running, and the events
 * whose end came in the last 10 ms before the crash (plus the commit
 * under way) with no publish after it. With EVFN_JOURNAL_FAST it returns at once and the event is
 * written within 10 ms, fsynced within 1 s: a crash of the process can
 * lose the events of its last 10 ms, a power loss those of its last
 * second. Either way, a journal that cannot be written (a full disk, an
 * I/O error) makes the publish fail with EVFN_ENOSPC or EVFN_EJOURNAL and
 * nothing of the event is admitted. Publishing before evfn_rt_start()
 * fails with EVFN_ENOTRUNNING when a journal is set.
 *
 * @param o    the builder. Not NULL.
 * @param path the file (copied); NULL turns the journal off (the
 *        default). Its directory must exist.
 * @param mode EVFN_JOURNAL_DURABLE or EVFN_JOURNAL_FAST.
 * @return 0; EVFN_EINVAL for NULL o, an empty path, an unknown mode, or
 *         an evfn built without SQLite; EVFN_ENAMETOOLONG for a path
 *         longer than 4095 bytes; EVFN_ENOMEM.
 *         The file is opened by evfn_rt_start(), which returns its errors.
 * @since 0.2
 */
EVFN_EXPORT int evfn_rt_options_set_journal(evfn_rt_options *o,
                                            const char *path,
                                            evfn_journal_mode mode);

/**
 * Whether events handed back at drain stay in the journal (the default:
 * they run again at the next start, so a redeploy loses nothing) or are
 * removed from it (the host took them, through the drain callback).
 * @param o    the builder. Not NULL.
 * @param keep false removes handed-back events from the journal.
 * @return 0; EVFN_EINVAL for NULL o.
 * @since 0.2
 */
EVFN_EXPORT int evfn_rt_options_set_journal_keep_handed_back(
	evfn_rt_options *o, bool keep);

/**
 * Create a runtime.
 *
 * Nothing runs until evfn_rt_start(). Functions may be registered and
 * events emitted before then; they wait in their queues.
 *
 * @param out  receives the runtime; NULL on failure. Not NULL.
 * @param opts options, copied; NULL for the defaults.
 * @return 0; EVFN_EINVAL for NULL out; EVFN_ENOMEM (also when libevent's
 *         pthreads locking could not be enabled).
 *
 * Ownership: the caller owns *out and frees it with evfn_rt_free();
 * opts is copied (a host event_base in it stays borrowed, see
 * evfn/libevent.h).
 * @since 0.2 (0.1: evfn_runtime_new(), deprecated)
 */
EVFN_EXPORT int evfn_rt_new(evfn_rt **out, const evfn_rt_options *opts);

/**
 * Start the runtime: the minimum number of workers, and the loop thread
 * unless the runtime was created on a host event_base (the host then drives
 * that base; see evfn/libevent.h).
 *
 * @param rt the runtime. Not NULL.
 * @return 0; EVFN_EINVAL for NULL rt; EVFN_EALREADY if started before;
 *         EVFN_ESHUTDOWN after drain; EVFN_ENOMEM or -errno if a thread
 *         could not be created (the runtime is then left unstarted: the
 *         threads started on the way have been stopped and joined,
 *         nothing ran, and it may be started again or freed).
 *         With a journal (evfn_rt_options_set_journal()), its file is
 *         opened and what did not end is re-admitted first: EVFN_ENOENT
 *         (its directory is missing); EVFN_EACCES (no permission, a
 *         read-only file system); EVFN_EBUSY (another process or runtime
 *         has it open); EVFN_ECORRUPT (damaged, or not an evfn journal);
 *         EVFN_ENOSPC; EVFN_EJOURNAL (another I/O error); EVFN_ENOMEM. The
 *         runtime is then left unstarted and may be freed.
 * @since 0.2 (0.1: evfn_runtime_start(), deprecated)
 */
EVFN_EXPORT int evfn_rt_start(evfn_rt *rt);

/**
 * How many journaled invocations, found at evfn_rt_start(), belong to
 * functions that were not registered then: they stay in the journal,
 * untouched, and run at a later start that registers their function.
 * @param rt the runtime. Not NULL.
 * @return the count (0 without a journal, or for NULL rt).
 * @since 0.2
 */
EVFN_EXPORT uint64_t evfn_rt_journal_orphans(const evfn_rt *rt);

/**
 * Drain: stop intake, hand back everything not yet running, and wait for
 * work in flight up to a grace period.
 *
 * From this call on, emit, invoke and register fail with EVFN_ESHUTDOWN.
 * Queued events and events waiting for a retry end as handed_back and are
 * passed to cb, one call each, on the calling thread, before the call
 * returns. Work in flight is waited for up to grace_ms; an attempt that ends
 * with RETRY during or after the grace period is handed back too (after the
 * grace period, through cb at evfn_rt_free()). In embedded mode, called
 * on the thread that drives the host base (outside its callbacks), drain
 * runs that base while it waits so loop work can finish.
 *
 * @param rt the runtime. Not NULL.
 * @param grace_ms how long to wait for in-flight work; 0 waits not at all.
 * @param cb  receives handed-back events; NULL to only count them.
 * @param arg passed to cb.
 * @return 0 when nothing is in flight any more; EVFN_ETIMEDOUT when work was
 *         still in flight at the end of the grace period (its outcome is
 *         still recorded when it finishes), or when, out of memory, queued
 *         events could not be handed back by then (evfn_rt_free()
 *         tries again; what it cannot hand back it drops, logging an
 *         error); EVFN_EINVAL for NULL rt, grace_ms < 0 or a grace period
 *         over INT64_MAX / 2 ns (about 146 years); EVFN_EALREADY on a
 *         second call; EVFN_EDEADLK from inside a handler of this runtime.
 *
 * Ownership: arg stays the caller's; the events passed to cb are borrowed for
 * each call.
 * @since 0.2 (0.1: evfn_runtime_drain(), deprecated)
 */
EVFN_EXPORT int evfn_rt_drain(evfn_rt *rt, int64_t grace_ms,
                              evfn_handback_cb cb, void *arg);

/**
 * Free a runtime that was never started, or that was drained and has no
 * work in flight. Stops the loop thread and the workers, runs every
 * function's userdata destructor, and frees every object the runtime owns.
 * It never closes a host's event_base or file descriptors. Events that a
 * late RETRY handed back after the drain's grace period are passed to the
 * drain callback first. An unstarted runtime's queued events are counted as
 * handed back and released.
 *
 * @param rt the runtime; NULL is a no-op.
 * @return 0 (also for NULL); EVFN_EBUSY if the runtime is started and not
 *         drained, work is still in flight, a handler fenced at its
 *         deadline has not returned yet, or a trigger or source created
 *         on it (evfn_trigger_free(), evfn_http_free(),
 *         evfn_redis_source_free(), ...) is still alive (nothing is freed:
 *         call again later); EVFN_EDEADLK from inside a handler of this
 *         runtime.
 *
 * Ownership: on success every object the runtime owns is gone: its
 * functions (evfn_fn pointers), and the borrowed strings and contexts
 * they handed out. References the caller holds (events, dead letters,
 * snapshots) are still the caller's to release.
 * @since 0.2 (0.1: evfn_runtime_free(), deprecated)
 */
EVFN_EXPORT int evfn_rt_free(evfn_rt *rt);

/**
 * Number of worker threads alive now (for tests and dashboards).
 * @param rt the runtime; NULL returns 0.
 * @return the count.
 * @since 0.2 (0.1: evfn_runtime_workers(), deprecated)
 */
EVFN_EXPORT int evfn_rt_workers(const evfn_rt *rt);


#ifdef __cplusplus
}
#endif

#endif /* EVFN_RUNTIME_H */
