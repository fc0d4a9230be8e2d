/* SPDX-License-Identifier: MIT */
/*
 * The event log: the evfn_record the host's record callback reads, built
 * on the caller's stack from what happened to an invocation or a
 * function, and the records decided under the runtime lock, kept until
 * it is released. The callback runs on the thread that tells it, never
 * with the runtime lock held.
 */
#include <stdio.h>
#include <string.h>

#include "callout-internal.h"
#include "common-internal.h"
#include "eventlog-internal.h"

struct evfn_record {
	evfn_record_kind kind;
	const struct evfn__inv *inv; /* NULL for a record about fn alone */
	const char *fn_name;
	const char *error;
};

void
evfn__eventlog_init(struct evfn__eventlog *log, evfn_record_cb cb, void *arg,
                    const struct evfn__lock *rt_lock)
{
	*log = (struct evfn__eventlog){
		.cb = cb, .arg = arg, .rt_lock = rt_lock};
	pthread_mutex_init(&log->lock, NULL);
}

void
evfn__eventlog_destroy(struct evfn__eventlog *log)
{
	struct evfn__deferred_record *d;
	while ((d = evfn__deferred_list_pop(&log->deferred)))
		evfn__free(d);
	pthread_mutex_destroy(&log->lock);
}

static void
tell(struct evfn__eventlog *log, const struct evfn_record *rec)
{
	EVFN__ASSERT_NOT_HELD(log->rt_lock);
	evfn__call_record(log->rt_lock, log->cb, rec, log->arg);
}

void
evfn__eventlog_deliver(struct evfn__eventlog *log, evfn_record_kind kind,
                       const struct evfn__inv *inv, const char *fn_name)
{
	/* A timed-out attempt's handler may still be writing its context:
	 * its record says what happened instead. */
	const char *error = kind == EVFN_RECORD_TIMEOUT ? "deadline exceeded"
	                                                : inv->ctx.error;
	struct evfn_record rec = {kind, inv, fn_name, error};
	tell(log, &rec);
}

int
evfn__eventlog_defer(struct evfn__eventlog *log, evfn_record_kind kind,
                     const char *fn_name, const char *error)
{
	if (!log->cb)
		return 0;
	struct evfn__deferred_record *d = evfn__calloc(1, sizeof(*d));
	if (!d)
		return EVFN_ENOMEM;
	d->fn_name = fn_name;
	d->kind = kind;
	snprintf(d->error, sizeof(d->error), "%s", error ? error : "");
	pthread_mutex_lock(&log->lock);
	evfn__deferred_list_push(&log->deferred, d);
	atomic_store_explicit(&log->due, true, memory_order_release);
	pthread_mutex_unlock(&log->lock);
	return 0;
}

void
evfn__eventlog_flush_due(struct evfn__eventlog *log)
{
	pthread_mutex_lock(&log->lock);
	struct evfn__deferred_list list = log->deferred;
	log->deferred = (struct evfn__deferred_list){NULL, NULL};
	atomic_store_explicit(&log->due, false, memory_order_relaxed);
	pthread_mutex_unlock(&log->lock);
	struct evfn__deferred_record *d;
	while ((d = evfn__deferred_list_pop(&list))) {
		struct evfn_record rec = {d->kind, NULL, d->fn_name,
		                          d->error[0] ? d->error : NULL};
		tell(log, &rec);
		evfn__free(d);
	}
}

const char *
evfn_record_kind_name(evfn_record_kind kind)
{
	static const char *const names[] = {
		[EVFN_RECORD_START] = "start",
		[EVFN_RECORD_SUCCESS] = "success",
		[EVFN_RECORD_TIMEOUT] = "timeout",
		[EVFN_RECORD_LATE] = "late",
		[EVFN_RECORD_DEAD_LETTER] = "dead_letter",
		[EVFN_RECORD_EXPIRED] = "expired",
		[EVFN_RECORD_CANCELLED] = "cancelled",
		[EVFN_RECORD_RETRY] = "retry",
		[EVFN_RECORD_CIRCUIT_OPEN] = "circuit_open",
		[EVFN_RECORD_CIRCUIT_HALF_OPEN] = "circuit_half_open",
		[EVFN_RECORD_CIRCUIT_CLOSED] = "circuit_closed",
		[EVFN_RECORD_HANDED_BACK] = "handed_back",
	};
	return (unsigned)kind < EVFN__ARRAY_SIZE(names) ? names[kind] : NULL;
}

evfn_record_kind
evfn_record_get_kind(const evfn_record *rec)
{
	return rec->kind;
}

const char *
evfn_record_function(const evfn_record *rec)
{
	return rec->fn_name;
}

const evfn_event *
evfn_record_event(const evfn_record *rec)
{
	return rec->inv ? rec->inv->ev : NULL;
}

unsigned
evfn_record_attempt(const evfn_record *rec)
{
	return rec->inv ? rec->inv->attempt : 0;
}

int
evfn_record_code(const evfn_record *rec)
{
	return rec->inv && rec->inv->final_stat >= 0 ? rec->inv->final_code
	                                             : 0;
}

const char *
evfn_record_error(const evfn_record *rec)
{
	return rec->error;
}

int64_t
evfn_record_duration_ns(const evfn_record *rec)
{
	const struct evfn__inv *inv = rec->inv;
	if (!inv || rec->kind == EVFN_RECORD_START || inv->attempt == 0)
		return 0;
	int64_t d = evfn__now_ns() - inv->start_ns;
	return d > 0 ? d : 0;
}
