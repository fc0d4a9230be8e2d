/* SPDX-License-Identifier: MIT */
/*
 * What follows the end of an invocation, outside the runtime lock
 * (settle.c), for every thread that ran transitions: the executors, the
 * watchdog, publish, cancel and drain.
 */
#ifndef EVFN_SETTLE_INTERNAL_H
#define EVFN_SETTLE_INTERNAL_H

#include "dispatch-internal.h"
#include "eventlog-internal.h"
#include "invocation-internal.h"

struct evfn__ended;
struct evfn_rt;

/* With no lock held: for each ended invocation its event-log record,
 * dead letter (logged if it found no memory), destination and waiter;
 * then every invocation is cleared and evicted letters are released.
 * Returns the cleared invocations for evfn__recycle_locked(), which a
 * caller that takes the lock anyway calls then; *ended is left empty. */
struct evfn__inv_list evfn__settle_release(struct evfn_rt *rt,
                                           struct evfn__ended *ended);
void evfn__settle_ended(struct evfn_rt *rt, struct evfn__ended *ended);
/* evfn__settle_release(), then the invocations recycled under the lock it
 * takes (not when there are none). Inline: most publishes end nothing,
 * and then only the event log's deferred records are told. */
static inline void
evfn__settle(struct evfn_rt *rt, struct evfn__ended *ended)
{
	if (evfn__ended_empty(ended))
		evfn__eventlog_flush(&rt->eventlog);
	else
		evfn__settle_ended(rt, ended);
}

#endif /* EVFN_SETTLE_INTERNAL_H */
