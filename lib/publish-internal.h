/* SPDX-License-Identifier: MIT */
/*
 * Publishing as the calls above admission use it (publish.c): the
 * synchronous invoke, submit (one event or a batch), dead-letter
 * replays.
 */
#ifndef EVFN_PUBLISH_INTERNAL_H
#define EVFN_PUBLISH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <evfn/event.h>

struct evfn_result;
struct evfn_rt;

/* evfn__admit() of ev (the caller keeps its reference), then settles
 * what ended at once. */
int evfn__publish(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
                  struct evfn_result *waiter, uint64_t *seq);

/* Checks the events of a batch call: 0, or EVFN_EINVAL for NULL evs,
 * n == 0, a NULL element or one event twice, EVFN_ERANGE for n over
 * EVFN_BATCH_MAX, EVFN_EPERM for an event published already. */
int evfn__batch_check(evfn_event *const *evs, size_t n);

/* evfn__admit_batch() of the checked events of evs (the caller keeps its
 * references), then settles what ended at once. */
int evfn__publish_batch(struct evfn_rt *rt, evfn_event *const *evs, size_t n,
                        const char *fn_name,
                        struct evfn_result *const *waiters,
                        uint64_t *first_seq);

#endif /* EVFN_PUBLISH_INTERNAL_H */
