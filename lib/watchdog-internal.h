/* SPDX-License-Identifier: MIT */
/*
 * The watchdog (watchdog.c): the periodic timer that fences attempts
 * past their deadline. The state machine arms it (rt->watchdog).
 */
#ifndef EVFN_WATCHDOG_INTERNAL_H
#define EVFN_WATCHDOG_INTERNAL_H

struct evfn_rt;

/* Creates the watchdog's timer in rt->watchdog, not armed. Returns 0 or
 * EVFN_ENOMEM. */
int evfn__watchdog_new(struct evfn_rt *rt);

#endif /* EVFN_WATCHDOG_INTERNAL_H */
