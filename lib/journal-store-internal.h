/* SPDX-License-Identifier: MIT */
/*
 * The journal's SQLite file: its schema, the statements that turn a
 * buffer of operations into rows, checkpoints and housekeeping, and the
 * queries recovery reads with. One connection, used by one thread at a
 * time (the opener until the writer starts, then the writer); no locks
 * here. SQLite's result codes become EVFN_E* codes in this file only.
 */
#ifndef EVFN_JOURNAL_STORE_INTERNAL_H
#define EVFN_JOURNAL_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal-internal.h"
#include "journal-pending-internal.h"

struct evfn__jstore;

/* What the file remembers beyond its rows: the high-water marks. */
struct evfn__jstore_marks {
	uint64_t last_seq;
	uint64_t last_dead_letter;
};

/* Opens or creates the file, takes its lock and checks it is a journal
 * of this format (errors as evfn__journal_open()). o must outlive the
 * store (its log callback is kept). */
int evfn__jstore_open(struct evfn__jstore **out, const char *path,
                      const struct evfn__journal_options *o,
                      struct evfn__jstore_marks *marks);

/* Calls cb for each function the file names, by id. Returns 0, cb's
 * non-zero return, or an error. */
int evfn__jstore_functions(struct evfn__jstore *s,
                           int (*cb)(uint32_t id, const char *name, void *arg),
                           void *arg);

/* One transaction: begin, apply buffers, set the marks, commit (or roll
 * back on any error, which is returned). */
int evfn__jstore_begin(struct evfn__jstore *s);
int evfn__jstore_apply(struct evfn__jstore *s, const struct evfn__jop *ops,
                       size_t n);
int evfn__jstore_set_marks(struct evfn__jstore *s,
                           const struct evfn__jstore_marks *m);
int evfn__jstore_commit(struct evfn__jstore *s);
void evfn__jstore_rollback(struct evfn__jstore *s);

/* Rows inserted, updated or deleted so far. */
uint64_t evfn__jstore_rows(const struct evfn__jstore *s);

/* Pages in the write-ahead log after the last commit. */
uint32_t evfn__jstore_wal_pages(const struct evfn__jstore *s);

/* Checkpoints the write-ahead log (which fsyncs it first); truncate
 * also empties it. Returns 0 or an error. */
int evfn__jstore_checkpoint(struct evfn__jstore *s, bool truncate);

/* Deletes idempotency keys expired at now_ns (wall clock), and returns
 * free pages to the file system once they are over half the file. */
int evfn__jstore_housekeep(struct evfn__jstore *s, int64_t now_ns);

/* The recovery queries (see journal-internal.h); records carry no
 * function names, which the journal adds. */
int evfn__jstore_recover(struct evfn__jstore *s, evfn__journal_recover_cb cb,
                         void *arg);
int evfn__jstore_recover_dead_letters(struct evfn__jstore *s,
                                      evfn__journal_dead_letter_cb cb,
                                      void *arg);
int evfn__jstore_recover_idempotency(struct evfn__jstore *s, int64_t now_ns,
                                     evfn__journal_idempotency_cb cb,
                                     void *arg);

/* Closes the file (NULL is a no-op). A write-ahead log left over is
 * checkpointed and removed by SQLite when it can be. */
void evfn__jstore_close(struct evfn__jstore *s);

#endif /* EVFN_JOURNAL_STORE_INTERNAL_H */
