/* SPDX-License-Identifier: MIT */
/*
 * The journal: accepted events kept in an SQLite file (WAL mode) so that
 * they survive the process. It is a leaf: the runtime tells it what
 * happened to each invocation (an event bound for one function) and, at
 * start, reads back what did not end; it never calls into the runtime.
 *
 * Life cycle: evfn__journal_open() reads the file; the recover calls
 * iterate what it holds; evfn__journal_start() starts the writer thread;
 * from then on any thread may append, update and end invocations;
 * evfn__journal_close() commits what is buffered and stops.
 *
 * Writes are buffered and committed by the one writer thread in batches,
 * one transaction each, in the order of the calls: a crash keeps a prefix
 * of the calls (whole batches), never a later call without an earlier
 * one. In durable mode a batch is committed with synchronous=FULL and an
 * append returns once its batch is on disk: producers that append at the
 * same time share one fsync (group commit).
 *
 * Only a call that waits (a durable append, a sync) makes the writer
 * commit at once. What nobody waits for (an attempt's start, a retry's
 * state, an end, an idempotency key, a dead-letter copy or removal)
 * rides with the next commit such a call forces, or is committed at the
 * flush interval (flush_ns, 10 ms by default) after the first of them
 * was buffered, in either mode. So, in durable mode, a crash can lose
 * the records of the last flush interval (plus the commit under way)
 * that no append followed, never an append that returned: an event
 * whose end was lost runs again (at least once), and one whose
 * attempt's start was lost comes back with its earlier attempt count.
 * Because calls commit in order, what runs again after a crash is, per
 * worker, the tail of the attempts it finished. In fast mode
 * (synchronous=NORMAL) an append returns at once; the writer commits at
 * least every flush interval, so an append survives the process being
 * killed once flush_ns and the commit have passed, and a power loss once
 * sync_ns has (as long as the writer thread gets a core: the bench
 * measures it). An end that finds its invocation's append still in the
 * producers' buffer cancels it: neither is written.
 */
#ifndef EVFN_JOURNAL_INTERNAL_H
#define EVFN_JOURNAL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn/event.h>

struct evfn__journal;

enum evfn__journal_mode {
	/* An append returns once it is on disk (fsync, group commit). */
	EVFN__JOURNAL_DURABLE = 0,
	/* An append returns at once; on disk within the flush interval
	 * (process crash) and the sync interval (power loss). */
	EVFN__JOURNAL_FAST = 1,
};

/* What the journal reports: failed opens, commits and checkpoints,
 * damaged records, operations it had to give up. code is an EVFN_E* value,
 * message a sentence from SQLite or the journal. Called on the writer
 * thread (or the caller's, from open and recover), no journal lock held;
 * it must not call the journal. */
typedef void (*evfn__journal_log_cb)(int code, const char *message,
                                     void *arg);

struct evfn__journal_options {
	enum evfn__journal_mode mode;
	/* The longest a record nobody waits for waits to be committed
	 * (default 10 ms): in fast mode every append, in both modes an
	 * attempt's start, a retry, an end, a key, a dead-letter copy. */
	int64_t flush_ns;
	/* Fast mode: the longest a commit waits to be fsynced, through a
	 * checkpoint (default 1 s). */
	int64_t sync_ns;
	/* The write-ahead log is checkpointed into the database once it
	 * holds this many pages (4 KiB each; default 1024), and truncated
	 * back to this size when it grew past it. */
	uint32_t checkpoint_pages;
	/* Fast mode: appends wait while this many operations are buffered
	 * (default 1,000,000): the writer fell behind the disk. */
	size_t max_pending;
	/* The SQLite VFS by name, NULL for the default (tests inject I/O
	 * faults through one of their own). */
	const char *vfs;
	evfn__journal_log_cb log_cb; /* NULL: no log */
	void *log_arg;
	/* Tests only: called on the writer thread as each checkpoint
	 * starts, to kill the process in the middle of one. */
	void (*checkpoint_hook)(void *arg);
	void *checkpoint_arg;
};

/* Fills o with the defaults above (durable mode). */
void evfn__journal_options_init(struct evfn__journal_options *o);

/* Where an invocation stands, as last journaled. */
enum evfn__journal_phase {
	/* Queued, delayed or waiting for its retry: may run from due_ns. */
	EVFN__JPHASE_WAITING = 0,
	/* An attempt started (attempts counts it) and has not ended. */
	EVFN__JPHASE_RUNNING = 1,
	/* Handed back at drain and kept: it runs again at the next start
	 * unless it is ended with EVFN__JEND_DISCARDED. */
	EVFN__JPHASE_HANDED_BACK = 2,
};

/* The mutable part of an invocation's record. All times are wall clock,
 * ns since the Unix epoch: monotonic time does not survive a restart. */
struct evfn__journal_state {
	int64_t due_ns;           /* may run from then (delay, retry); 0: now */
	int64_t first_attempt_ns; /* start of the first attempt; 0: none */
	int64_t last_attempt_ns;  /* start of the latest attempt; 0: none */
	int64_t backoff_ns;       /* the previous retry delay (decorrelated
	                           * jitter's state); 0: none yet */
	uint32_t attempts;        /* attempts started */
	int32_t last_code;        /* the latest attempt's outcome (an EVFN_E*
	                           * code, 0 for none) */
	enum evfn__journal_phase phase;
	const char *last_error;   /* the latest attempt's error text or NULL;
	                           * copied by the calls that take a state */
};

/* How an invocation ended. All but EVFN__JEND_HANDED_BACK remove it. */
enum evfn__journal_end {
	EVFN__JEND_SUCCEEDED = 0,
	EVFN__JEND_DEAD_LETTERED, /* without a dead-letter store entry */
	EVFN__JEND_EXPIRED,
	EVFN__JEND_CANCELLED,
	EVFN__JEND_HANDED_BACK,   /* kept, phase EVFN__JPHASE_HANDED_BACK */
	EVFN__JEND_DISCARDED,     /* handed back, and the host took it */
};

/*
 * Opens (creating it if missing) the journal at path and reads its
 * function names and high-water marks (a new file gets the schema). The
 * file is locked against other connections until close. What the calls
 * below buffer is committed from start on (or at close).
 * o: NULL for the defaults.
 * Returns 0; EVFN_EINVAL (NULL out or path, an option out of range);
 * EVFN_ENOENT (a missing directory); EVFN_EACCES (no permission, a
 * read-only file system); EVFN_EBUSY (another connection holds it);
 * EVFN_ECORRUPT (not an SQLite file, damaged, or not an evfn journal of
 * this format); EVFN_ENOSPC; EVFN_EJOURNAL (other I/O errors);
 * EVFN_ENOMEM. *out is NULL on failure.
 */
int evfn__journal_open(struct evfn__journal **out, const char *path,
                       const struct evfn__journal_options *o);

/*
 * A function's id in this journal, assigning and journaling a new one
 * for a name never seen (ids are never reused). The runtime keeps the id
 * with its function and passes it to the calls below. Any thread, any
 * time between open and close.
 * Returns 0; EVFN_EINVAL (NULL arguments, a bad name); EVFN_ENAMETOOLONG;
 * EVFN_ENOMEM; EVFN_ESHUTDOWN once close began.
 */
int evfn__journal_fn_id(struct evfn__journal *j, const char *name,
                        uint32_t *id);

/* The name of a function id, borrowed until close; NULL if unknown. */
const char *evfn__journal_fn_name(struct evfn__journal *j, uint32_t id);

/* The largest sequence number and dead-letter id ever journaled (0 for a
 * new journal): the runtime continues above them. Fixed after open. */
uint64_t evfn__journal_last_seq(const struct evfn__journal *j);
uint64_t evfn__journal_last_dead_letter_id(const struct evfn__journal *j);

/* One invocation that did not end, as recovery reports it. */
struct evfn__journal_record {
	uint64_t seq;         /* publish order; the event's seq again */
	uint32_t fn;          /* function id */
	const char *fn_name;  /* borrowed until close */
	/* The event, unpublished, borrowed for the callback: take a
	 * reference to keep it. Invocations of one event (fan-out) come one
	 * after another and share it. */
	evfn_event *ev;
	/* As journaled, except that an attempt that was running at the
	 * crash is reported failed: phase WAITING, last_code
	 * EVFN_ECRASHED, last_error NULL, crashed true. attempts counts it.
	 * last_error is borrowed for the callback. */
	struct evfn__journal_state st;
	bool crashed;
};

/* Called once per record, in order; a non-zero return stops the
 * iteration and is returned by it. */
typedef int (*evfn__journal_recover_cb)(
	const struct evfn__journal_record *rec, void *arg);

/*
 * Iterates the invocations that did not end (handed-back ones included)
 * in publish order (seq, then function id): per ordering key, the order
 * to re-admit them in. Reads only: may be called again. Between open and
 * start, on the thread that opened.
 * Returns the number of records (>= 0); the callback's non-zero return;
 * EVFN_ECORRUPT (a damaged file or record: nothing is skipped
 * silently); EVFN_EJOURNAL; EVFN_ENOMEM; EVFN_EBUSY after start.
 */
int evfn__journal_recover(struct evfn__journal *j, evfn__journal_recover_cb cb,
                          void *arg);

/* A dead letter as the journal keeps it: a copy of the store's entry. */
struct evfn__journal_dead_letter {
	uint64_t id;            /* the store's id */
	uint32_t fn;            /* function id */
	const char *fn_name;    /* recovery only: borrowed until close */
	evfn_event *ev;         /* add: read during the call (a reference is
	                         * taken); recovery: borrowed for the
	                         * callback, unpublished */
	int32_t code;           /* why it ended (EVFN_EFAILED, ...) */
	uint32_t attempts;
	int64_t first_attempt_ns, last_attempt_ns; /* wall clock */
	const char *error;      /* copied; recovery: borrowed */
	uint64_t seq;           /* recovery only: its event's sequence
	                         * number (0 when added alone), which
	                         * gives back a defaulted id */
};

typedef int (*evfn__journal_dead_letter_cb)(
	const struct evfn__journal_dead_letter *dl, void *arg);

/* Iterates the dead-letter store, oldest id first. As
 * evfn__journal_recover(): returns the count or an error. */
int evfn__journal_recover_dead_letters(struct evfn__journal *j,
                                       evfn__journal_dead_letter_cb cb,
                                       void *arg);

/* An idempotency key with the response it answered. */
struct evfn__journal_idempotency {
	uint32_t fn;
	const char *fn_name;    /* recovery only */
	const char *key;
	const void *resp;       /* may be NULL when resp_len is 0 */
	size_t resp_len;
	int64_t expires_ns;     /* wall clock */
};

typedef int (*evfn__journal_idempotency_cb)(
	const struct evfn__journal_idempotency *k, void *arg);

/* Iterates the idempotency keys that expire after now_ns (wall clock),
 * borrowed for the callback. As evfn__journal_recover(). */
int evfn__journal_recover_idempotency(struct evfn__journal *j, int64_t now_ns,
                                      evfn__journal_idempotency_cb cb,
                                      void *arg);

/* Starts the writer thread. Returns 0; EVFN_EINVAL (NULL j);
 * EVFN_EALREADY; EVFN_ESHUTDOWN once close began; EVFN_ENOMEM when the
 * thread cannot be made. */
int evfn__journal_start(struct evfn__journal *j);

/* One accepted event to append: bound for n_fns functions (fan-out),
 * each invocation starting in state st (NULL: waiting, due now; a
 * delayed event gives its due time). */
struct evfn__journal_entry {
	uint64_t seq;
	const evfn_event *ev;
	const uint32_t *fns;
	size_t n_fns;
	const struct evfn__journal_state *st;
};

/*
 * Journals accepted events, all or nothing: they go into one batch. In
 * durable mode it returns once that batch is committed and fsynced, or
 * with the commit's error, in which case none of them is journaled and
 * the caller refuses them. In fast mode it returns at once, or, while
 * the operations of a failed commit wait for their retry (the disk is
 * full), with that commit's error: the backlog never grows. The caller
 * must not update or end these invocations before this returns. Any
 * thread; it blocks, so never under the runtime's lock in durable mode.
 * A reference to each event is held until it is written.
 * Returns 0; EVFN_EINVAL (NULL j or entries, n 0, an entry with seq 0,
 * no event, no function or an unknown function id); EVFN_ENOSPC;
 * EVFN_EJOURNAL; EVFN_EACCES; EVFN_ENOMEM; EVFN_ENOTRUNNING (durable mode
 * before start); EVFN_ESHUTDOWN once close began.
 */
int evfn__journal_append_many(struct evfn__journal *j,
                              const struct evfn__journal_entry *entries,
                              size_t n);

/* evfn__journal_append_many() of one event. */
int evfn__journal_append(struct evfn__journal *j, uint64_t seq,
                         const evfn_event *ev, const uint32_t *fns, size_t n,
                         const struct evfn__journal_state *st);

/*
 * Replaces an invocation's state: an attempt starts (phase RUNNING,
 * attempts and last_attempt_ns advanced), a retry is scheduled (phase
 * WAITING, due_ns, backoff_ns, last_code, last_error). Never waits, nor
 * makes a commit of its own: it is committed with the next batch that a
 * waiting call forces, or at the flush interval (evfn__journal_sync() to
 * wait for it). Any thread. Returns 0; EVFN_EINVAL; EVFN_ENOMEM (not journaled:
 * after a crash the invocation comes back in its earlier state);
 * EVFN_ESHUTDOWN.
 */
int evfn__journal_update(struct evfn__journal *j, uint64_t seq, uint32_t fn,
                         const struct evfn__journal_state *st);

/*
 * Records how an invocation ended: it is removed (the event with its last
 * invocation), except with EVFN__JEND_HANDED_BACK, which keeps it.
 * Never waits. Ending an invocation whose append is still buffered (fast
 * mode) cancels the append: neither is written. Any thread. Returns 0;
 * EVFN_EINVAL; EVFN_ENOMEM (not journaled: after a crash the invocation
 * runs again, at least once, never lost); EVFN_ESHUTDOWN.
 */
int evfn__journal_end(struct evfn__journal *j, uint64_t seq, uint32_t fn,
                      enum evfn__journal_end how);

/*
 * Ends invocation (seq, fn) as dead-lettered and adds dl to the
 * dead-letter store, atomically (one batch). seq 0 adds dl alone. dl->ev
 * is read during the call. Never waits. Returns as evfn__journal_end().
 */
int evfn__journal_dead_letter(struct evfn__journal *j, uint64_t seq,
                              uint32_t fn,
                              const struct evfn__journal_dead_letter *dl);

/* Remove one dead letter (replayed, deleted, evicted) or all of them.
 * Never wait. Each returns 0; EVFN_EINVAL; EVFN_ENOMEM; EVFN_ESHUTDOWN. */
int evfn__journal_dead_letter_delete(struct evfn__journal *j, uint64_t id);
int evfn__journal_dead_letter_purge(struct evfn__journal *j);

/*
 * Stores an idempotency key and its response (both copied) until
 * expires_ns (wall clock), replacing an earlier one; expired keys are
 * removed by the writer. Put it before the end of the invocation that
 * answered: calls are committed in order, so a crash keeps the key
 * whenever it keeps the end. Never waits. Returns 0; EVFN_EINVAL;
 * EVFN_ENOMEM; EVFN_ESHUTDOWN.
 */
int evfn__journal_idempotency_put(struct evfn__journal *j, uint32_t fn,
                                  const char *key, const void *resp,
                                  size_t resp_len, int64_t expires_ns);

/*
 * Waits until every call made before it is committed and on disk (in
 * fast mode too: the commit is followed by a checkpoint, which fsyncs).
 * For drain, and tests. Returns 0; the commit's error; EVFN_ENOTRUNNING
 * before start; EVFN_ESHUTDOWN.
 */
int evfn__journal_sync(struct evfn__journal *j);

/* As evfn__journal_sync(), then checkpoints the write-ahead log into the
 * database and truncates it. Returns as evfn__journal_sync(). */
int evfn__journal_checkpoint(struct evfn__journal *j);

/* Counters since open; for tests, benchmarks and the runtime's stats. */
struct evfn__journal_stats {
	uint64_t commits;          /* transactions committed */
	uint64_t commit_failures;  /* transactions rolled back */
	uint64_t appends;          /* invocations appended */
	uint64_t appends_cancelled;/* ended before they were written */
	uint64_t rows_written;     /* rows inserted, updated or deleted */
	uint64_t checkpoints;
	uint64_t pending;          /* operations buffered now */
	int64_t commit_delay_max_ns; /* longest wait of an operation from
	                              * its call to its batch's commit */
	int last_error;            /* of the latest commit; 0 once one
	                            * succeeds again */
};

void evfn__journal_stats_get(struct evfn__journal *j,
                             struct evfn__journal_stats *out);

/* Commit delays (call to commit) recorded so far, as the histogram
 * buckets of histogram-internal.h: counts[EVFN__HIST_BUCKETS]. */
void evfn__journal_commit_delays(struct evfn__journal *j, uint64_t *counts);

/*
 * Commits what is buffered, checkpoints, stops the writer and closes the
 * file. NULL is a no-op. Returns 0 or the error of the last commit (what
 * it held is then not journaled). No call may follow, nor run
 * concurrently with it.
 */
int evfn__journal_close(struct evfn__journal *j);

#endif /* EVFN_JOURNAL_INTERNAL_H */
