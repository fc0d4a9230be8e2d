/* SPDX-License-Identifier: MIT */
/**
 * @file
 * PostgreSQL as a trigger: a source that turns committed row changes into
 * events through logical decoding (a replication slot read with the
 * built-in pgoutput plugin, for the tables a publication names), and a
 * lighter source for LISTEN/NOTIFY. Both run on the runtime's event loop
 * over non-blocking libpq and reconnect on their own. Built only when
 * libpq was found (meson feature 'pg'). Anything not declared under
 * include/evfn/ is private.
 *
 * Row change to event (evfn_pg_source_new()):
 * @code{.unparsed}
 *   type        <prefix>.<schema>.<table>.insert | update | delete |
 *               truncate (prefix "pg" unless set)
 *   id          "<commit LSN>:<n>", n the change's index in its
 *               transaction: the same on every delivery of the change
 *   source      "evfn/pg/<slot>"
 *   subject     the replica identity key (the primary key unless the
 *               table says otherwise): the text of a one-column key, a
 *               JSON array of the values of several; unset for a table
 *               without one, for truncate, or beyond EVFN_NAME_MAX bytes
 *   time        the commit time
 *   datacontenttype  application/json
 *   extensions  pglsn (the change's LSN, "16/B374D848"), pgxid (the
 *               transaction id)
 *   ordering key  "<schema>.<table>:<subject>" (hashed when longer than
 *               EVFN_NAME_MAX): changes to one row run one at a time, in
 *               commit order; unset without a key
 *   data        {"new": {column: value, ...}, "old": {...}}: "new" for
 *               inserts and updates, "old" for updates and deletes (the
 *               key columns, or the whole old row under REPLICA IDENTITY
 *               FULL). null, true/false for bool, numbers for integer,
 *               float, numeric and oid columns (NaN and infinities as
 *               strings), json and jsonb as they are, strings for the
 *               rest; a column whose large (TOASTed) value an update did
 *               not change is left out of "new". Truncate: {"cascade":
 *               bool, "restart_identity": bool}, one event per table.
 * @endcode
 *
 * Delivery guarantee (logical decoding): at least once, in commit order.
 * Changes are submitted to the function in commit order (within a
 * transaction, in the order they were made); changes to one row run one
 * at a time in that order (the ordering key), changes to different rows
 * may run in parallel, so they can end in another order; with
 * max_in_flight 1 one change runs at a time, in commit order. The slot's
 * confirmed
 * position, what the server keeps for the next connection, advances only
 * past changes whose events ended: succeeded, dead-lettered, expired or
 * cancelled (an event handed back at drain has not ended). Since events
 * end out of order, it advances to the end of the longest run of ended
 * events from the oldest, and reaches the server within the feedback
 * interval (evfn_pg_options_set_feedback_ms()). After a crash of the host,
 * a lost connection or a server restart, delivery resumes at that
 * position: no change is skipped, and a change is delivered again only if
 * its event had not ended, or had ended behind one that had not, or had
 * ended less than a feedback interval earlier. Within one process a
 * reconnection re-delivers nothing: changes the server sends again are
 * recognised and skipped. Positions inside a transaction count: a crash
 * in the middle of a large one resumes after its last change that ended,
 * not at its start. An unclean server crash may move the slot back to
 * its last checkpoint, which re-delivers more, never less. A fast server
 * shutdown waits until its replication clients confirmed what they were
 * sent: events still running delay it until they end.
 *
 * LISTEN/NOTIFY (evfn_pg_listen_new()) is at most once: the server does
 * not keep notifications for a listener that is not connected, so those
 * sent while the source reconnects are lost. Each notification becomes an
 * event of type \<prefix>.\<channel>, source "evfn/pg/listen", with the
 * payload as data and the sender's process id as extension pgpid.
 *
 * Batches: a function with evfn_fn_options_set_batch() takes the changes
 * several at a time as they wait in its queue, each still its own event
 * with its own end; batches are cut by the function's size and window,
 * not by transaction (pgxid tells transactions apart).
 *
 * Backpressure: a source holds at most max_in_flight events that have not
 * ended; while it holds that many, or while the function refuses events
 * (a full queue, an open circuit), it stops reading from the server,
 * which then stops sending: memory stays bounded however large a
 * transaction is.
 *
 * Connection strings are libpq's (key=value pairs or a postgresql:// URI);
 * the source adds replication=database for logical decoding. Host names
 * are resolved by libpq synchronously, on the loop thread: give a numeric
 * host (or hostaddr) or a socket directory where the loop must never wait.
 */
#ifndef EVFN_PG_H
#define EVFN_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Options of a PostgreSQL source. */
typedef struct evfn_pg_options evfn_pg_options;
/** A replication slot or a LISTEN channel read into a function. */
typedef struct evfn_pg_source evfn_pg_source;

/** Counters of a source, read with evfn_pg_source_stat(). */
typedef enum evfn_pg_stat {
	/** Events the function accepted. */
	EVFN_PG_STAT_SUBMITTED = 0,
	/** Of those, events that ended (logical decoding only). */
	EVFN_PG_STAT_ENDED = 1,
	/** Changes the server sent again that had been delivered already
	 * (after a reconnection, or from inside a transaction after a
	 * restart), and were not submitted again. */
	EVFN_PG_STAT_SKIPPED = 2,
	/** Times reading stopped because the source held max_in_flight
	 * events or the function refused one. */
	EVFN_PG_STAT_PAUSES = 3,
	/** Connections that reached streaming (or listening). */
	EVFN_PG_STAT_CONNECTS = 4,
	/** Notifications dropped because the runtime refused them for good
	 * (no such function; listen mode only). */
	EVFN_PG_STAT_DROPPED = 5,
	/** The slot position as a 64-bit LSN: every change before it ended.
	 * The server has it within the feedback interval (logical decoding
	 * only). Read after EVFN_PG_STAT_ENDED, it accounts for at least
	 * the ends counted. */
	EVFN_PG_STAT_CONFIRMED_LSN = 6,
	/** Number of counters; not a counter. */
	EVFN_PG_STAT_COUNT = 7
} evfn_pg_stat;

/**
 * Create an options builder with the defaults: libpq's default connection
 * (the PG* environment variables), slot "evfn_<publication>" created on
 * first use, type prefix "pg", at most 1024 events held, positions
 * reported within 100 ms, reconnection backoff from 100 ms doubling to
 * 5 s.
 * @param out receives the builder; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL out; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with evfn_pg_options_free();
 * the sources copy it.
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_options_new(evfn_pg_options **out);

/**
 * Free a builder.
 * @param o the builder; NULL is a no-op.
 * @since 0.2
 */
EVFN_EXPORT void evfn_pg_options_free(evfn_pg_options *o);

/**
 * The server to connect to, as a libpq connection string ("host=/run/pg
 * dbname=shop user=cdc" or "postgresql://cdc@10.0.0.5/shop").
 * @param o the builder. Not NULL.
 * @param conninfo the connection string, copied; "" for libpq's defaults.
 *        Not NULL.
 * @return 0; EVFN_EINVAL for NULL o or conninfo; EVFN_ECONNINFO when libpq
 *         cannot parse it (an unknown keyword, a missing "=", an
 *         unterminated quote, a malformed URI); EVFN_ENOMEM.
 *
 * Ownership: conninfo is copied.
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_options_set_conninfo(evfn_pg_options *o,
                                             const char *conninfo);

/**
 * The replication slot that keeps the source's position on the server.
 * @param o the builder. Not NULL.
 * @param slot 1..63 characters of a-z, 0-9 and _; NULL for
 *        "evfn_<publication>" (upper-case letters of the publication's
 *        name lowered, other characters replaced by _, cut at 63).
 *        Copied.
 * @param create true (the default) to create the slot (pgoutput, in the
 *        connection's database) when it does not exist at start; false to
 *        refuse with EVFN_ENOSLOT instead. Either way, a slot that
 *        vanishes while the source runs stops it with EVFN_ENOSLOT: the
 *        changes since its last position may be lost, and a new slot
 *        would start after them.
 * @return 0; EVFN_EINVAL for NULL o or a name outside the rule; EVFN_ENOMEM.
 *
 * Ownership: slot is copied.
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_options_set_slot(evfn_pg_options *o, const char *slot,
                                         bool create);

/**
 * First word(s) of every event type.
 * @param o the builder. Not NULL.
 * @param prefix 1..64 bytes, copied. Not NULL.
 * @return 0; EVFN_EINVAL for NULL o or a NULL or empty prefix;
 *         EVFN_ENAMETOOLONG beyond 64 bytes; EVFN_ENOMEM.
 *
 * Ownership: prefix is copied.
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_options_set_type_prefix(evfn_pg_options *o,
                                                const char *prefix);

/**
 * Backpressure: at most n events submitted and not yet ended (or ended
 * behind one that has not) at once; reading pauses at n.
 * @param o the builder. Not NULL.
 * @param n the limit (default 1024).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless 1 <= n <= 1000000.
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_options_set_max_in_flight(evfn_pg_options *o, int n);

/**
 * How soon an advanced position is reported to the server: the longest a
 * change that ended can wait before a crash would no longer deliver it
 * again. The source also reports every 10 s, and whenever the server asks.
 * @param o the builder. Not NULL.
 * @param ms the interval (default 100).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless 1 <= ms <= 10000.
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_options_set_feedback_ms(evfn_pg_options *o,
                                                int64_t ms);

/**
 * Reconnection: after a lost or refused connection the next try comes
 * after base_ms, doubling up to cap_ms, back to base_ms once streaming.
 * @param o the builder. Not NULL.
 * @param base_ms the first delay (default 100).
 * @param cap_ms the longest delay (default 5000).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE unless 1 <= base_ms <=
 *         cap_ms <= 3600000.
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_options_set_reconnect(evfn_pg_options *o,
                                              int64_t base_ms, int64_t cap_ms);

/**
 * Start delivering the row changes of a publication's tables to a
 * function (mapping and guarantee at the top of this header).
 *
 * The source connects on the runtime's loop with replication=database,
 * checks that the server has wal_level = logical, that the publication
 * exists and that the slot is a pgoutput slot of this database (creating
 * it if allowed), then streams from the slot's position and submits each
 * change to fn_name (evfn_submit()). The slot must not be used by another
 * consumer; while it is, the source retries.
 *
 * @param out receives the source; NULL on failure. Not NULL.
 * @param rt the runtime. Not NULL.
 * @param publication 1..63 bytes, an existing publication (CREATE
 *        PUBLICATION ... FOR TABLE ...). Copied. Not NULL.
 * @param fn_name a registered function. Copied. Not NULL.
 * @param opts copied; NULL for the defaults.
 * @return 0; EVFN_EINVAL for NULL out/rt/publication/fn_name or an empty
 *         name; EVFN_ENAMETOOLONG for a publication beyond 63 bytes or a
 *         function name beyond EVFN_NAME_MAX; EVFN_ENOFN when fn_name is
 *         not registered; EVFN_ENOMEM. What the server says is not an
 *         error here: see evfn_pg_source_status().
 *
 * Ownership: the caller owns *out and frees it with evfn_pg_source_free(),
 * before evfn_rt_free(); the strings and opts are copied.
 *
 * Thread-safety: any thread; see evfn_pg_source_free() for embedded
 * runtimes.
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_source_new(evfn_pg_source **out, evfn_rt *rt,
                                   const char *publication,
                                   const char *fn_name,
                                   const evfn_pg_options *opts);

/**
 * Start delivering the notifications of a channel (LISTEN) to a function,
 * at most once (see the top of this header). Uses the conninfo, type
 * prefix and reconnect options.
 * @param out receives the source; NULL on failure. Not NULL.
 * @param rt the runtime. Not NULL.
 * @param channel 1..63 bytes. Copied. Not NULL.
 * @param fn_name a registered function. Copied. Not NULL.
 * @param opts copied; NULL for the defaults.
 * @return as evfn_pg_source_new(), with the channel in place of the
 *         publication.
 *
 * Ownership: as evfn_pg_source_new().
 *
 * Thread-safety: as evfn_pg_source_new().
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_listen_new(evfn_pg_source **out, evfn_rt *rt,
                                   const char *channel, const char *fn_name,
                                   const evfn_pg_options *opts);

/**
 * The source's condition.
 * @param src the source; NULL returns EVFN_EINVAL.
 * @return 0 while streaming or listening (or connecting for the first
 *         time); EVFN_ECONNREFUSED while reconnecting after a refused or
 *         lost connection, or while the slot is in use by another
 *         consumer; stopped for good: EVFN_EAUTH (the server refused the
 *         credentials), EVFN_EACCES (the role lacks the REPLICATION
 *         attribute), EVFN_ENOENT (no such database), EVFN_ENOPUBLICATION
 *         (no such publication), EVFN_ENOSLOT (the slot does not exist and
 *         may not be created, or vanished while the source ran),
 *         EVFN_EINVAL (wal_level is not logical, or the slot belongs to
 *         another plugin or database; the log says which); EVFN_ENOFN
 *         while the runtime refuses its events with that code;
 *         EVFN_EINVAL also for NULL src.
 *
 * Thread-safety: any thread.
 * @since 0.2
 */
EVFN_EXPORT int evfn_pg_source_status(const evfn_pg_source *src);

/**
 * A counter of the source.
 * @param src the source; NULL returns 0.
 * @param which the counter.
 * @return its value; 0 for NULL src or an unknown counter.
 *
 * Thread-safety: any thread.
 * @since 0.2
 */
EVFN_EXPORT uint64_t evfn_pg_source_stat(const evfn_pg_source *src,
                                         evfn_pg_stat which);

/**
 * Stop and free a source: no more reads, the connection closes. Events
 * still running in the function finish there, but their ends no longer
 * move the slot: the next source on the slot receives them again. Must be
 * called before evfn_rt_free().
 * @param src the source; NULL is a no-op.
 *
 * Ownership: takes the source back; the caller must not use it again.
 *
 * Thread-safety: any thread. Off the loop thread it waits until the loop
 * has closed the source; in embedded mode, called on the thread that
 * drives the host base outside its callbacks, it runs that base while it
 * waits.
 * @since 0.2
 */
EVFN_EXPORT void evfn_pg_source_free(evfn_pg_source *src);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_PG_H */
