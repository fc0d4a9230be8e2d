/* SPDX-License-Identifier: MIT */
/*
 * Admission (admit.c): the one path by which events enter the runtime,
 * all or nothing under the runtime lock. A lock-free publish path would
 * replace it behind this one function.
 */
#ifndef EVFN_ADMIT_INTERNAL_H
#define EVFN_ADMIT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <evfn/event.h>

struct evfn__ended;
struct evfn_result;
struct evfn_rt;

/* Admits ev: with fn_name NULL to the subscribers of its type, else to
 * fn_name alone; waiter, when not NULL, receives its final outcome. With
 * handed_over, the caller's reference becomes one of the targets' when
 * the event is accepted. On success *seq (when not NULL) is its sequence
 * number. Events dead-lettered at once (past the hop limit) go on
 * *ended for the caller to settle. Returns 0, or EVFN_ESHUTDOWN,
 * EVFN_ENOFN, EVFN_ENOSUB, EVFN_EQUEUEFULL, EVFN_ECIRCUITOPEN,
 * EVFN_EUNHEALTHY, EVFN_ENOMEM: refused, the event untouched. Takes and
 * releases rt->lock. */
int evfn__admit(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
                struct evfn_result *waiter, uint64_t *seq, bool handed_over,
                struct evfn__ended *ended);

#endif /* EVFN_ADMIT_INTERNAL_H */
