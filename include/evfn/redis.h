/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Redis Streams as a trigger and as a destination: a source that reads a
 * stream through a consumer group and submits each entry to a function,
 * acknowledging it only once the function succeeded, and a sink that
 * appends events to a stream. Both run on the runtime's event loop and
 * reconnect on their own. Built only when hiredis was found (meson feature
 * 'redis'). Anything not declared under include/evfn/ is private.
 *
 * URL grammar (evfn_redis_options_set_url()):
 * @code{.unparsed}
 *   redis://[[user]:password@]host[:port][/db]   host: name, IPv4 or [IPv6];
 *                                                 port 1..65535 (6379);
 *                                                 db 0..65535 (0)
 *   unix://[[user]:password@]/abs/path.sock[?db=N]
 * @endcode
 * user and password may contain \%XX escapes. With a password the
 * connection sends AUTH [user] password first, then SELECT db when db > 0.
 *
 * Entry to event mapping (source), and event to entry (sink, dead
 * letters): the data field ("data", see evfn_redis_options_set_data_field())
 * is the payload; fields named type, source, subject, datacontenttype and
 * time (RFC 3339) are those CloudEvents attributes (a type that is missing
 * or not a valid name leaves the stream name as the type; a malformed time
 * is ignored); other fields whose names are 1..EVFN_NAME_MAX lower-case
 * letters or digits become extension attributes; fields named id or
 * specversion, and any other field, are skipped. The event id is the entry id. The sink
 * writes the id as a field "id" too.
 *
 * Who runs an entry (source). In a consumer group an entry is held by one
 * consumer from its delivery until its acknowledgement. A source refreshes
 * every entry it holds (waiting for room in the function, queued,
 * running, waiting for a retry, or ended with its XACK or dead letter not
 * yet confirmed) every third of the claim idle time, and claims only
 * entries idle for the whole claim idle time, checked on the server in
 * the same step as the claim: entries whose holder stopped. So an entry
 * runs in one consumer at a time, and succeeds at most once, except in
 * two cases:
 *  - its holder stopped while holding it: killed, crashed, or unable to
 *    reach Redis (or its event loop stalled) for about the claim idle
 *    time. Another consumer takes it over and runs it again, even when
 *    the first ran it to its end (or, only cut off, still runs it);
 *  - its acknowledgement was lost: the handler succeeded but the XACK
 *    never became part of the server's data (the source was freed first,
 *    see evfn_redis_source_held(), or the server crashed without having
 *    written it). The entry is claimed and runs again.
 * Nothing else runs an entry twice: not reconnections, server restarts
 * that keep their data, refusals by the function (a full queue), retries,
 * or a backlog that takes longer than the claim idle time.
 *
 * Deliveries and attempts (source). Each delivery to a consumer runs with
 * the function's attempts, retried in that process. The Redis delivery
 * count of an entry counts deliveries that may have run: 1 at the first
 * read, one more per takeover from a consumer that stopped (whatever that
 * consumer did, it counts as one run), none for reconnections, refusals
 * or refreshes, and one less when a draining runtime hands the entry back
 * before it ran. An entry is dead-lettered only when it failed for good
 * in one delivery (attempts exhausted, EVFN_FAIL, or expired), or when
 * taking it over would make its delivery count pass the limit (see
 * evfn_redis_options_set_max_deliveries()). The count is kept in the
 * group's pending list, so it survives any crash. Sources use EVAL (Lua
 * scripting) and XPENDING IDLE: Redis 6.2 or later.
 */
#ifndef EVFN_REDIS_H
#define EVFN_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Options shared by sources and sinks (each takes what applies to it). */
typedef struct evfn_redis_options evfn_redis_options;
/** A stream read through a consumer group into a function. */
typedef struct evfn_redis_source evfn_redis_source;
/** A stream that events are appended to. */
typedef struct evfn_redis_sink evfn_redis_sink;

/**
 * Create an options builder with the defaults: URL redis://127.0.0.1:6379,
 * group "evfn", consumer "<hostname>-<pid>", a new group starts at the end
 * of the stream ($), batches of 64 entries with reads blocking 1000 ms, at
 * most 1024 entries held at once, pending entries idle 30 s reclaimed every
 * 5 s, at most as many deliveries as the function has attempts, dead
 * letters to "<stream>:dead", payload field "data", reconnection backoff
 * from 100 ms doubling to 5 s, no MAXLEN on appends.
 * @param out receives the builder; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL out; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with
 * evfn_redis_options_free(); sources and sinks copy it.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_new(evfn_redis_options **out);

/**
 * Free a builder.
 * @param o the builder; NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_redis_options_free(evfn_redis_options *o);

/**
 * Where the server is (grammar at the top of this header).
 * @param o the builder. Not NULL.
 * @param url the URL, copied. Not NULL.
 * @return 0; EVFN_EINVAL for NULL o or url; EVFN_EURL for a URL outside
 *         the grammar (unknown scheme, empty host, bad port or db, a
 *         relative unix path, a malformed \%XX escape); EVFN_ENOMEM.
 *
 * Ownership: url is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_url(evfn_redis_options *o,
                                           const char *url);

/**
 * Consumer group and consumer name of a source.
 * @param o the builder. Not NULL.
 * @param group the group, 1..EVFN_NAME_MAX bytes, copied. Not NULL.
 * @param consumer 1..EVFN_NAME_MAX bytes, copied; NULL for
 *        "<hostname>-<pid>". Consumers of one group must have distinct
 *        names.
 * @return 0; EVFN_EINVAL for NULL o or group, or an empty name;
 *         EVFN_ENAMETOOLONG beyond EVFN_NAME_MAX; EVFN_ENOMEM.
 *
 * Ownership: group and consumer are copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_group(evfn_redis_options *o,
                                             const char *group,
                                             const char *consumer);

/**
 * Where a group that the source creates starts: at the end of the stream
 * (false, the default: only entries added later) or at its beginning
 * (true). An existing group keeps its position.
 * @param o the builder. Not NULL.
 * @param from_start true to start at the beginning.
 * @return 0; EVFN_EINVAL for NULL o.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_from_start(evfn_redis_options *o,
                                                  bool from_start);

/**
 * Read batches: at most count entries per XREADGROUP, which waits up to
 * block_ms for new entries.
 * @param o the builder. Not NULL.
 * @param count entries per read (default 64).
 * @param block_ms how long a read waits (default 1000).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless 1 <= count <=
 *         10000 and 1 <= block_ms <= 3600000.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_batch(evfn_redis_options *o,
                                             int count, int64_t block_ms);

/**
 * Backpressure: at most n entries are held by the source at once (running
 * in the function, or finished and not yet acknowledged). Reading pauses
 * while n are held, and also while the function refuses entries
 * (EVFN_EQUEUEFULL, or another refusal but EVFN_ESHUTDOWN): the source
 * keeps those and offers them again, in order, as room comes back; they
 * are not read from Redis again and count no delivery.
 * @param o the builder. Not NULL.
 * @param n the limit (default 1024).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless 1 <= n <= 1000000.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_max_in_flight(evfn_redis_options *o,
                                                     int n);

/**
 * Reclaiming entries of consumers that stopped: every interval_ms the
 * source claims entries idle for at least min_idle_ms, whichever
 * consumer of the group holds them, and runs them. Every min_idle_ms / 3
 * it refreshes the entries it holds itself (their idle time goes back to
 * 0), so a live consumer's entries are never claimed, however long they
 * wait or run (see the top of this header). After its connection comes
 * back, a source waits min_idle_ms before it claims, so that the other
 * consumers can come back and refresh theirs after a server restart
 * (which counts its downtime as idle time). Choose min_idle_ms well above
 * the longest time a consumer may go without reaching Redis (the
 * reconnection cap, pauses of the process); all consumers of a group
 * should use the same value.
 * @param o the builder. Not NULL.
 * @param min_idle_ms 0 turns reclaiming and refreshing off (default
 *        30000).
 * @param interval_ms how often to claim (default 5000).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for min_idle_ms < 0 or
 *         interval_ms < 1.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_claim(evfn_redis_options *o,
                                             int64_t min_idle_ms,
                                             int64_t interval_ms);

/**
 * Deliveries allowed: an entry taken over from a consumer that stopped
 * (claimed, or found pending under this consumer's name at start) whose
 * delivery count, this delivery included, exceeds n is dead-lettered
 * (reason EVFN_EEXHAUSTED, attempts the deliveries before) without
 * running: an entry that keeps killing its consumers stops there. The
 * count only grows with takeovers (see the top of this header). An entry
 * delivered before carries its delivery count as the extension attribute
 * "deliverycount"; each delivery gets the function's attempts anew.
 * @param o the builder. Not NULL.
 * @param n 0 for the function's number of attempts (the default).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless 0 <= n <= 1000000.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_max_deliveries(evfn_redis_options *o,
                                                      int n);

/**
 * Stream that receives entries the function failed on for good. Each
 * dead letter has the fields original_id, stream, group, consumer, reason
 * (evfn_err_name() of the result: EVFN_EFAILED, EVFN_EEXHAUSTED,
 * EVFN_ETIMEDOUT, EVFN_EEXPIRED or EVFN_ELOOPDETECTED), error (the
 * handler's message, empty if none), attempts (of this delivery),
 * deliveries (the Redis delivery count), failed_at (RFC 3339), then the
 * original entry's fields. The entry is acknowledged
 * only after its dead letter was written.
 * @param o the builder. Not NULL.
 * @param stream the stream key, copied; NULL for "<stream>:dead".
 * @return 0; EVFN_EINVAL for NULL o or an empty name; EVFN_ENOMEM.
 *
 * Ownership: stream is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_dead_letter_stream(
	evfn_redis_options *o, const char *stream);

/**
 * Name of the field that carries the payload.
 * @param o the builder. Not NULL.
 * @param name the field, copied (default "data"). Not NULL.
 * @return 0; EVFN_EINVAL for NULL o or name, or an empty name;
 *         EVFN_ENOMEM.
 *
 * Ownership: name is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_data_field(evfn_redis_options *o,
                                                  const char *name);

/**
 * Reconnection: after a lost or refused connection the next try comes
 * after base_ms, doubling up to cap_ms, back to base_ms once connected.
 * @param o the builder. Not NULL.
 * @param base_ms the first delay (default 100).
 * @param cap_ms the longest delay (default 5000).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless 1 <= base_ms <=
 *         cap_ms <= 3600000.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_reconnect(evfn_redis_options *o,
                                                 int64_t base_ms,
                                                 int64_t cap_ms);

/**
 * Trim a sink's stream on each append (XADD ... MAXLEN ~ n): Redis keeps
 * at least n entries, and a few more.
 * @param o the builder. Not NULL.
 * @param n 0 for no trimming (the default).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for n < 0.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_options_set_maxlen(evfn_redis_options *o,
                                              int64_t n);

/**
 * Start reading a stream into a function.
 *
 * The source connects on the runtime's loop (the group is created if
 * missing, with MKSTREAM), takes over the pending entries a consumer of
 * the same name left, then reads new ones, and submits each as an event
 * to fn_name (evfn_submit()). An entry is acknowledged (XACK, batched)
 * when the function succeeded; it is dead-lettered and then acknowledged
 * when the function failed for good (any other evfn_result_code() but
 * EVFN_EHANDEDBACK and EVFN_ECANCELED); retries happen in the process
 * while the entry stays pending. An entry handed back by a draining
 * runtime is released to the other consumers at once; a cancelled one
 * stays pending, to be claimed. If the connection is lost, outcomes that
 * arrive meanwhile are kept and their acknowledgements sent after
 * reconnecting: nothing unacknowledged is lost. When an entry may run
 * twice, and when it is dead-lettered: see the top of this header. A
 * source stops for good, with its status set and the server's reason
 * logged, on an authentication failure or when the key is not (or no
 * longer) a stream.
 *
 * @param out receives the source; NULL on failure. Not NULL.
 * @param rt the runtime. Not NULL.
 * @param stream the stream key, 1..EVFN_NAME_MAX bytes (also the default
 *        event type). Copied. Not NULL.
 * @param fn_name a registered function. Copied. Not NULL.
 * @param opts copied; NULL for the defaults.
 * @return 0; EVFN_EINVAL for NULL out/rt/stream/fn_name or an empty name;
 *         EVFN_ENAMETOOLONG; EVFN_ENOFN when fn_name is not registered;
 *         EVFN_ENOMEM. Connection problems are not errors here: see
 *         evfn_redis_source_status().
 *
 * Ownership: the caller owns *out and frees it with
 * evfn_redis_source_free(), before evfn_rt_free().
 *
 * Thread-safety: any thread; see evfn_redis_source_free() for embedded
 * runtimes.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_source_new(evfn_redis_source **out, evfn_rt *rt,
                                      const char *stream, const char *fn_name,
                                      const evfn_redis_options *opts);

/**
 * The source's condition.
 * @param src the source; NULL returns EVFN_EINVAL.
 * @return 0 while connected (or still connecting for the first time);
 *         EVFN_ECONNREFUSED while reconnecting after a refused or lost
 *         connection; stopped for good (the server's answer is logged):
 *         EVFN_EAUTH (wrong or missing password), EVFN_EWRONGTYPE (the
 *         key is not a stream), EVFN_EURL (the server refused the URL's
 *         db), EVFN_ENOENT (the group was destroyed) or EVFN_EINVAL
 *         (another refusal, such as creating the group); EVFN_ENOFN
 *         while the function refuses entries as unknown; EVFN_EINVAL
 *         also for NULL src.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_source_status(const evfn_redis_source *src);

/**
 * Number of entries this source acknowledged so far (XACKs the server
 * confirmed, dead-lettered entries included; for tests and dashboards).
 * @param src the source; NULL returns 0.
 * @return the count.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT uint64_t evfn_redis_source_acked(const evfn_redis_source *src);

/**
 * Number of entries this source holds now: read or claimed and not yet
 * acknowledged (queued or running in the function, waiting for a retry or
 * for room in the function's queue, or finished with the acknowledgement
 * or dead letter, or the release of an entry handed back by a draining
 * runtime, not yet confirmed by the server). A host that stops
 * gracefully drains its runtime, waits for this to reach 0, and only then
 * frees the source, so that nothing that ended here runs again elsewhere
 * and what it did not run goes to the other consumers at once.
 * @param src the source; NULL returns 0.
 * @return the count.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT size_t evfn_redis_source_held(const evfn_redis_source *src);

/**
 * Stop and free a source: no more reads, the connections close. Entries
 * still running in the function finish there, but their outcomes are no
 * longer acknowledged: they stay pending for another consumer. Must be
 * called before evfn_rt_free().
 * @param src the source; NULL is a no-op.
 *
 * Ownership: takes the source back; the caller must not use it again.
 *
 * Thread-safety: any thread. Off the loop thread it waits until the loop
 * has closed the source; in embedded mode, called on the thread that
 * drives the host base outside its callbacks, it runs that base while it
 * waits.
 * @since 0.1
 */
EVFN_EXPORT void evfn_redis_source_free(evfn_redis_source *src);

/**
 * Create a sink appending to a stream. Uses the URL, maxlen, data field
 * and reconnect options.
 * @param out receives the sink; NULL on failure. Not NULL.
 * @param rt the runtime. Not NULL.
 * @param stream the stream key, 1..EVFN_NAME_MAX bytes. Copied. Not NULL.
 * @param opts copied; NULL for the defaults.
 * @return 0; EVFN_EINVAL for NULL out/rt/stream or an empty stream;
 *         EVFN_ENAMETOOLONG; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with
 * evfn_redis_sink_free(), before evfn_rt_free().
 *
 * Thread-safety: as evfn_redis_source_new().
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_sink_new(evfn_redis_sink **out, evfn_rt *rt,
                                    const char *stream,
                                    const evfn_redis_options *opts);

/**
 * Append an event to the sink's stream (XADD, fields as at the top of this
 * header), without waiting. Appends are written in order; while the
 * connection is down they wait and are written after reconnecting. An
 * append the server refuses (the key is not a stream) is dropped and the
 * sink's status says why.
 * @param sink the sink. Not NULL.
 * @param ev the event, read during the call. Not NULL.
 * @return 0 when queued; EVFN_EINVAL for NULL sink or ev; EVFN_EQUEUEFULL
 *         when 65536 appends already wait; EVFN_ECANCELED once the sink is
 *         being freed; EVFN_ENOMEM.
 *
 * Ownership: the event is read during the call; the caller keeps its
 * reference.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_xadd(evfn_redis_sink *sink, const evfn_event *ev);

/**
 * Register a function that appends every event it receives to the sink's
 * stream, so that anything that publishes to a function (topics,
 * destinations, invoke) can write to a stream. An attempt succeeds when
 * Redis confirmed the append, and ends as RETRY when the connection is
 * down or the attempt is cancelled, and as FAIL when the server refused.
 * After evfn_redis_sink_free() its attempts fail.
 * @param sink the sink. Not NULL.
 * @param fn_name the name, such as "stream:orders". Copied.
 * @param opts the function's options (timeout, attempts, backoff ...);
 *        NULL for the defaults. Its executor, cancel hook and userdata
 *        destructor are replaced by the sink's own (loop executor).
 * @return as evfn_register() (EVFN_EINVAL also for NULL sink).
 *
 * Ownership: fn_name and opts are copied; the runtime owns the function.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_sink_register(evfn_redis_sink *sink,
                                         const char *fn_name,
                                         const evfn_fn_options *opts);

/**
 * The sink's condition.
 * @param sink the sink; NULL returns EVFN_EINVAL.
 * @return 0; EVFN_ECONNREFUSED while reconnecting; EVFN_EAUTH; EVFN_EURL
 *         for a db the server refused; or, after the server refused an
 *         append, EVFN_EWRONGTYPE (the key is not a stream) or EVFN_EINVAL
 *         (another refusal).
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT int evfn_redis_sink_status(const evfn_redis_sink *sink);

/**
 * Number of appends queued or sent and not yet confirmed.
 * @param sink the sink; NULL returns 0.
 * @return the count.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT size_t evfn_redis_sink_pending(const evfn_redis_sink *sink);

/**
 * Close and free a sink. Appends not yet confirmed are dropped (the count
 * is logged): wait for evfn_redis_sink_pending() to reach 0 first to keep
 * them. Attempts of its functions still waiting end as RETRY, later ones
 * as FAIL. Must be called before evfn_rt_free().
 * @param sink the sink; NULL is a no-op.
 *
 * Ownership: takes the sink back; the caller must not use it again.
 *
 * Thread-safety: as evfn_redis_source_free().
 * @since 0.1
 */
EVFN_EXPORT void evfn_redis_sink_free(evfn_redis_sink *sink);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_REDIS_H */
