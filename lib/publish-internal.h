/* SPDX-License-Identifier: MIT */
/*
 * Publishing as the calls above admission use it (publish.c): the
 * synchronous invoke, submit, dead-letter replays.
 */
#ifndef EVFN_PUBLISH_INTERNAL_H
#define EVFN_PUBLISH_INTERNAL_H

#include <stdint.h>

#include <evfn/event.h>

struct evfn_result;
struct evfn_rt;

/* evfn__admit() of ev (the caller keeps its reference), then settles
 * what ended at once. */
int evfn__publish(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
                  struct evfn_result *waiter, uint64_t *seq);

#endif /* EVFN_PUBLISH_INTERNAL_H */
