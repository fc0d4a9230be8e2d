/* SPDX-License-Identifier: MIT */
/*
 * The loop executor (loopexec.c), as the runtime, cancel and snapshots
 * use it; the state machine reaches it only through the executor entry
 * it fills. Functions ending in _locked expect the runtime lock held.
 */
#ifndef EVFN_LOOPEXEC_INTERNAL_H
#define EVFN_LOOPEXEC_INTERNAL_H

#include "invocation-internal.h"
#include "metrics-internal.h"

struct evfn__executor;
struct evfn__loopexec;
struct evfn_fn;
struct evfn_rt;

/* The loop executor of rt, which fills x (its entry). NULL when out of
 * memory. */
struct evfn__loopexec *evfn__loopexec_new(struct evfn_rt *rt,
                                          struct evfn__executor *x);
/* Ends the warm states loop handlers built and frees lx. NULL-safe. */
void evfn__loopexec_free(struct evfn__loopexec *lx);
/* Calls f on the attempt running on the loop now, if any (not yet
 * PENDING: those are on the runtime's pending list). */
void evfn__loopexec_each_running_locked(struct evfn__loopexec *lx,
                                        void (*f)(struct evfn__inv *,
                                                  void *),
                                        void *arg);
/* Adds the loop's measurements of fn into the snapshot s. */
void evfn__loopexec_collect_locked(struct evfn__loopexec *lx,
                                   const struct evfn_fn *fn,
                                   struct evfn_stats *s);

#endif /* EVFN_LOOPEXEC_INTERNAL_H */
