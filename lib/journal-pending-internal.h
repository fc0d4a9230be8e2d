/* SPDX-License-Identifier: MIT */
/*
 * The journal's buffer of operations not yet committed: what producers
 * fill under the journal's lock and the writer takes whole, one buffer
 * per transaction. An end (or a dead letter) of an invocation whose
 * append is still in the buffer cancels the append outright: neither is
 * written; an update folds into it. Other operations are kept in call
 * order. The store (journal-store.c) turns a buffer into SQL;
 * journal.c does the locking.
 */
#ifndef EVFN_JOURNAL_PENDING_INTERNAL_H
#define EVFN_JOURNAL_PENDING_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal-internal.h"

enum evfn__jop_kind {
	EVFN__JOP_NONE = 0,    /* cancelled: nothing to write */
	EVFN__JOP_FUNCTION,    /* fn is named text */
	EVFN__JOP_APPEND,      /* event ev for (seq, fn) in state st */
	EVFN__JOP_UPDATE,      /* (seq, fn) is now in state st */
	EVFN__JOP_HAND_BACK,   /* (seq, fn) keeps its state, phase handed back */
	EVFN__JOP_END,         /* (seq, fn) is removed */
	/* Dead letter id for fn with event ev, code st.last_code, attempts,
	 * first/last attempt times and error text; (seq, fn) is removed
	 * unless seq is 0. */
	EVFN__JOP_DEAD_LETTER,
	EVFN__JOP_DEAD_LETTER_DELETE, /* dead letter id */
	EVFN__JOP_DEAD_LETTER_PURGE,
	EVFN__JOP_IDEMPOTENCY, /* key text for fn, response blob, expiry id */
	EVFN__JOP_SYNC,        /* nothing to write: a waiter, and in fast
	                        * mode a checkpoint after the commit */
};

/* A caller waiting for its operations' batch: on its own stack. */
struct evfn__jwaiter {
	int rc;
	bool done;
};

struct evfn__jop {
	uint64_t seq;
	uint64_t id;             /* dead letter id; idempotency expiry */
	uint32_t fn;
	uint8_t kind;            /* enum evfn__jop_kind */
	bool fanout;             /* an append of an event with several
	                          * targets: its event is stored once */
	struct evfn__journal_state st; /* st.last_error unused: see text */
	char *text;              /* owned: error text, name or key */
	void *blob;              /* owned: idempotency response */
	size_t blob_len;
	evfn_event *ev;          /* owned reference */
	struct evfn__jwaiter *waiter;
};

struct evfn__jpending {
	struct evfn__jop *ops;
	size_t n, cap;
	/* Where each seq's appends start in ops (position + 1; 0: none),
	 * addressed by seq - base: sequence numbers are handed out in
	 * publish order, so the appends of a batch cover a short range,
	 * written in order and read back while still in cache. An append
	 * below base or far past the range is not indexed (and its end is
	 * then written, not folded). */
	uint32_t *index;
	size_t index_cap;        /* entries allocated */
	size_t index_used;       /* entries from base that may be set */
	uint64_t base;           /* seq of index[0]; 0: no append yet */
	unsigned waiters;        /* operations with a waiter */
	int64_t first_ns;        /* monotonic time of the first operation */
	uint64_t max_seq;        /* largest seq appended, 0 if none */
	uint64_t max_dead_letter;/* largest dead-letter id added */
	uint64_t appends, cancelled;
};

/* Events whose references an operation gave up: released by the caller
 * once it has let go of the journal's lock (a release may run a user's
 * free callback). */
struct evfn__jdrop {
	evfn_event *ev[2];
	int n;
};

/* Pushes a copy of op (the buffer takes over its text, blob and ev) and
 * indexes an append. Returns 0 or EVFN_ENOMEM, in which case op's text,
 * blob and ev remain the caller's. */
int evfn__jpending_push(struct evfn__jpending *p, const struct evfn__jop *op);

/* Takes back the operations pushed from position n on (the caller's
 * call failed half-way): released, unindexed, uncounted. */
void evfn__jpending_truncate(struct evfn__jpending *p, size_t n);

/* The buffered append of invocation (seq, fn), with the updates folded
 * into it, or NULL. */
struct evfn__jop *evfn__jpending_find(struct evfn__jpending *p, uint64_t seq,
                                      uint32_t fn);

/* Folds a new state into the invocation's buffered append, or buffers an
 * update. st->last_error is copied. Returns 0 or EVFN_ENOMEM (the buffer
 * is unchanged). */
int evfn__jpending_update(struct evfn__jpending *p, uint64_t seq, uint32_t fn,
                          const struct evfn__journal_state *st);

/* Records an end: cancels a buffered append (a hand-back marks it), or
 * buffers the end. Returns 0 or EVFN_ENOMEM. */
int evfn__jpending_end(struct evfn__jpending *p, uint64_t seq, uint32_t fn,
                       enum evfn__journal_end how, struct evfn__jdrop *drop);

/* Pushes op as evfn__jpending_push() does, and cancels what was buffered
 * for its invocation, which op supersedes (a dead letter removes the
 * invocation: a buffered append is then never written). On failure
 * nothing changes. */
int evfn__jpending_supersede(struct evfn__jpending *p,
                             const struct evfn__jop *op,
                             struct evfn__jdrop *drop);

/* Releases what one operation owns and marks it cancelled; its event is
 * left in drop when drop is not NULL, else released here. */
void evfn__jop_release(struct evfn__jop *op, struct evfn__jdrop *drop);

/* Releases every operation and empties the buffer, keeping its memory
 * for the next batch (on the writer, no lock held). */
void evfn__jpending_reset(struct evfn__jpending *p);

/* Releases everything, memory too. */
void evfn__jpending_free(struct evfn__jpending *p);

/* Releases the events left in drop. */
void evfn__jdrop_release(struct evfn__jdrop *drop);

#endif /* EVFN_JOURNAL_PENDING_INTERNAL_H */
