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

#include <evfn/emit.h>
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
                        uint64_t *first_seq, size_t *taken);

/* evfn_publish_batch(), or with taken not NULL as many events from the
 * front as can be taken (*taken; see evfn__admit_batch()). */
int evfn__publish_some(struct evfn_rt *rt, const char *fn_name,
                       evfn_event *const *evs, size_t n, uint64_t *first_seq,
                       size_t *taken);

/* evfn_submit_batch(), or with taken not NULL as many events from the
 * front as can be taken (*taken; see evfn__admit_batch()): each taken
 * event's cb is called once, the others' never. */
int evfn__submit_some(struct evfn_rt *rt, const char *fn_name,
                      evfn_event *const *evs, size_t n, evfn_result_cb cb,
                      void *const *args, uint64_t *first_seq, size_t *taken);

#endif /* EVFN_PUBLISH_INTERNAL_H */
