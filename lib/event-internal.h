/* SPDX-License-Identifier: MIT */
/*
 * The event's layout, shared with the admission code that freezes events
 * and stamps their sequence number, id, source and time at publish.
 */
#ifndef EVFN_EVENT_INTERNAL_H
#define EVFN_EVENT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn/event.h>

#include "kv-internal.h"


struct evfn_event {
	atomic_uint refs;
	bool frozen;        /* set once at publish, under the runtime lock */
	unsigned hops;
	uint64_t seq;
	int64_t time_ns;    /* CloudEvents time, wall clock */
	int64_t born_ns;    /* monotonic publish time, or due time when
	                     * delayed: the maximum age and queue wait count
	                     * from it */
	int64_t delay_ns;   /* relative delay, or wall time (delay_at) */
	bool delay_at;
	const char *id;     /* a heap copy when set by the user, else NULL:
	                     * the id is seq in decimal, rendered into id_buf
	                     * on first use (id_state) */
	atomic_int id_state; /* 0: not rendered, 1: rendering, 2: ready */
	char *source;       /* heap copies, NULL when unset; source may also
	                     * point at the runtime's default (source_borrowed) */
	bool source_borrowed;
	bool id_owned;
	char *subject;
	char *dct;
	struct evfn__kv *ext;
	char *okey;         /* ordering key, NULL for none */
	const void *data;
	size_t len;
	evfn_free_cb free_cb; /* NULL: payload inline or static */
	void *free_arg;
	char id_buf[24];    /* decimal seq when no id was set */
	char inline_data[]; /* type string, then the payload copy */
};

/* Creates an event the way the public constructors do, with the hop count
 * given; used for child events. */
int evfn__event_create(evfn_event **out, const char *type, const void *data,
                       size_t len, bool copy, evfn_free_cb free_cb,
                       void *free_arg, unsigned hops);

/* A new, unpublished event with orig's attributes (id, source, subject,
 * datacontenttype, time, extensions) sharing orig's payload, with the hop
 * count given: for replays and destinations. */
int evfn__event_clone(evfn_event **out, const evfn_event *orig,
                      unsigned hops);

/* Stamps seq, id (if unset), source (if unset, borrowing default_source,
 * which must outlive the event: the runtime's own string, which lives
 * until the runtime is freed after every event is released) and time, and
 * freezes the event; now is the monotonic publish time. Returns true when
 * the event is delayed: its born_ns is then its due time, in the future. */
bool evfn__event_freeze(evfn_event *ev, uint64_t seq,
                        const char *default_source, int64_t now);

static inline const char *
evfn__event_type(const evfn_event *ev)
{
	return ev->inline_data;
}

#endif /* EVFN_EVENT_INTERNAL_H */
