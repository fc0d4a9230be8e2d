/* SPDX-License-Identifier: MIT */
/*
 * The runtime's journal at start (journaling.c): opening it and reading
 * back what it holds before anything runs.
 */
#ifndef EVFN_JOURNALING_INTERNAL_H
#define EVFN_JOURNALING_INTERNAL_H

#include "journal-internal.h"

struct evfn_rt;
struct evfn__ended;

/* Opens rt's journal (rt->opts.journal_path), gives every function its
 * id there, restores the dead-letter store and the idempotency keys,
 * re-admits the invocations that did not end (in publish order), and
 * starts the journal's writer. All or nothing: on failure rt->journal
 * stays NULL and nothing was admitted. Invocations that ended at once
 * (crashed on their last attempt) go on *ended. Returns 0 or the
 * journal's error (see evfn_rt_start()). rt->lock held. */
int evfn__journaling_open_locked(struct evfn_rt *rt,
                                 struct evfn__ended *ended);

/* Tests only: when set, called with the options of every journal a
 * runtime opens, to inject faults (a VFS of their own, a checkpoint
 * hook that kills the process). */
extern void (*evfn__journaling_tune)(struct evfn__journal_options *o);

#endif /* EVFN_JOURNALING_INTERNAL_H */
