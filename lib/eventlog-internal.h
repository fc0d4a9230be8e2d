/* SPDX-License-Identifier: MIT */
/*
 * The event log (eventlog.c): the host's record callback, told what
 * happens to each invocation (an attempt started, returned late, ended)
 * and to each function (its breaker changed). A leaf: callers say what
 * happened; it builds the evfn_record the callback reads. Records are
 * told with no lock held; those decided under the runtime lock (breaker
 * changes) are deferred and told by evfn__eventlog_flush().
 */
#ifndef EVFN_EVENTLOG_INTERNAL_H
#define EVFN_EVENTLOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <evfn/deadletter.h>

#include "invocation-internal.h"
#include "list-internal.h"
#include "lock-internal.h"

/* A record about a function, kept until the runtime lock is released. */
struct evfn__deferred_record {
	struct evfn__deferred_record *next;
	const char *fn_name;
	evfn_record_kind kind;
	char error[96];
};
EVFN__LIST(evfn__deferred_list, struct evfn__deferred_record, next)

struct evfn__eventlog {
	evfn_record_cb cb;          /* NULL: no event log */
	void *arg;
	const struct evfn__lock *rt_lock; /* never held while cb runs */
	pthread_mutex_t lock;       /* guards deferred */
	struct evfn__deferred_list deferred;
	atomic_bool due;            /* deferred is not empty */
};

void evfn__eventlog_init(struct evfn__eventlog *log, evfn_record_cb cb,
                         void *arg, const struct evfn__lock *rt_lock);
/* Drops what was deferred and not told. */
void evfn__eventlog_destroy(struct evfn__eventlog *log);

/* Whether there is an event log to tell: callers skip building what
 * they would tell otherwise. */
static inline bool
evfn__eventlog_on(const struct evfn__eventlog *log)
{
	return log->cb != NULL;
}

/* evfn__eventlog_tell(): tells the callback that inv (of the function
 * named fn_name) reached kind. A TIMEOUT says "deadline exceeded" rather
 * than the attempt's error: its handler may still be writing its
 * context. */
void evfn__eventlog_deliver(struct evfn__eventlog *log,
                            evfn_record_kind kind, const struct evfn__inv *inv,
                            const char *fn_name);
/* Inline: with no event log, every end of an event skips it here. */
static inline void
evfn__eventlog_tell(struct evfn__eventlog *log, evfn_record_kind kind,
                    const struct evfn__inv *inv, const char *fn_name)
{
	if (log->cb)
		evfn__eventlog_deliver(log, kind, inv, fn_name);
}

/* Keeps a record about a function (fn_name must live as long as the
 * runtime), to be told by the next flush: for what is decided under the
 * runtime lock. Returns 0 or EVFN_ENOMEM (nothing kept). */
int evfn__eventlog_defer(struct evfn__eventlog *log, evfn_record_kind kind,
                         const char *fn_name, const char *error);
void evfn__eventlog_flush_due(struct evfn__eventlog *log);
/* Tells what was deferred, oldest first. No lock held; a load when
 * nothing was. */
static inline void
evfn__eventlog_flush(struct evfn__eventlog *log)
{
	if (atomic_load_explicit(&log->due, memory_order_acquire))
		evfn__eventlog_flush_due(log);
}

#endif /* EVFN_EVENTLOG_INTERNAL_H */
