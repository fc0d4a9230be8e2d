/* SPDX-License-Identifier: MIT */
/*
 * Admission (admit.c): the one path by which events enter the runtime,
 * one at a time or in batches, all or nothing under the runtime lock. A
 * lock-free publish path would replace it behind these two functions.
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

/* As evfn__admit() for the n (1..EVFN_BATCH_MAX) distinct events of evs
 * under one hold of rt->lock, every target checked against the whole
 * batch; waiters, when not NULL, holds each event's. With taken NULL,
 * all or none; else as many as can be taken from the front, *taken
 * receiving how many. The events taken have sequence numbers in order
 * from *first_seq (when not NULL), consecutive (a journal takes them in
 * one append). Returns 0 when all were taken, or
 * the refusal of the first that was not (the codes of evfn__admit(), and
 * with a journal its errors): that one and those after it are
 * untouched. */
int evfn__admit_batch(struct evfn_rt *rt, evfn_event *const *evs, size_t n,
                      const char *fn_name, struct evfn_result *const *waiters,
                      uint64_t *first_seq, size_t *taken, bool handed_over,
                      struct evfn__ended *ended);

#endif /* EVFN_ADMIT_INTERNAL_H */
