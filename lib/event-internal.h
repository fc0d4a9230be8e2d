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


/* The attributes most events never set, allocated on the first setter
 * that needs them: keeping them out of the event keeps a small event in
 * the allocator's smallest (lock-free to free) size classes. */
struct evfn__event_extra {
	char *id;           /* set by the user; NULL: the default id */
	char *subject;
	char *dct;
	char *okey;         /* ordering key, NULL for none */
	struct evfn__kv *ext;
	int64_t delay_ns;   /* relative delay, or wall time (delay_at) */
	bool delay_at;
	const void *ref_data; /* the caller's payload (evfn_event_new_ref) */
	size_t ref_len;
	evfn_free_cb free_cb; /* releases ref_data */
	void *free_arg;
};

/* Packed so that a small event (a type of up to 15 bytes, an 8-byte
 * payload) fits one of blocks.c's blocks (EVFN__BLOCK_SIZE, a 112-byte
 * glibc chunk): what a queued event costs. */
struct evfn_event {
	atomic_uint refs;
	uint32_t type_off;  /* the type string, from the event's start */
	uint32_t len;       /* the inline payload's length (a borrowed
	                     * payload's is in extra) */
	uint16_t hops;      /* at most the hop limit (<= 1000) plus one */
	atomic_uchar id_state; /* default id: 0 not rendered, 1 rendering,
	                        * 2 ready */
	bool frozen : 1;    /* set once at publish, under the runtime lock */
	bool source_borrowed : 1; /* source is the runtime's default */
	bool in_block : 1;  /* one of blocks.c's cached blocks, not an
	                     * allocation of its own size */
	bool time_set : 1;  /* time_ns holds the event time: any value is a
	                     * valid time (0 is 1970-01-01T00:00:00Z), so
	                     * this says whether one was given */
	bool in_batch : 1;  /* met already while a batch call checks its
	                     * events (publish.c), to find it twice */
	uint64_t seq;
	int64_t time_ns;    /* CloudEvents time, wall clock */
	int64_t born_ns;    /* monotonic publish time, or due time when
	                     * delayed: the maximum age and queue wait count
	                     * from it */
	char *source;       /* a heap copy, the default (source_borrowed)
	                     * or NULL */
	struct evfn__event_extra *extra; /* NULL until needed */
	char id_buf[21];    /* the default id: seq in decimal, rendered on
	                     * first use */
	char inline_data[]; /* the payload copy (aligned), then the type */
};

/* The payload copy's offset: aligned for any type (the allocator returns
 * at least 16-byte alignment), so that handlers may read a struct in
 * place. */
#define EVFN__PAYLOAD_ALIGN 16
#define EVFN__PAYLOAD_OFF                                                    \
	((offsetof(struct evfn_event, inline_data) + EVFN__PAYLOAD_ALIGN - 1) & \
	 ~(size_t)(EVFN__PAYLOAD_ALIGN - 1))

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
 * which must outlive the event: the runtime's interned string, which lives
 * as long as the library, since events and dead letters may outlive their
 * runtime) and time, and
 * freezes the event; now is the monotonic publish time. Returns true when
 * the event is delayed: its born_ns is then its due time, in the future. */
bool evfn__event_freeze(evfn_event *ev, uint64_t seq,
                        const char *default_source, int64_t now);
/* Undoes evfn__event_freeze() for an event whose admission was refused
 * after it (the journal could not take it), so that it stays the
 * caller's to publish again: time_was_set and source_was_set say whether
 * the event had them before. Only while no other thread can see it. */
void evfn__event_thaw(evfn_event *ev, bool time_was_set, bool source_was_set);

static inline const char *
evfn__event_type(const evfn_event *ev)
{
	return (const char *)ev + ev->type_off;
}

/* The ordering key and the extensions (NULL when none). */
static inline const char *
evfn__event_okey(const evfn_event *ev)
{
	return ev->extra ? ev->extra->okey : NULL;
}

/* Whether the event has a time: one was set, or it was published. */
static inline bool
evfn__event_has_time(const evfn_event *ev)
{
	return ev->time_set;
}

/* Whether a delay was set (it may still have passed by publish). */
static inline bool
evfn__event_has_delay(const evfn_event *ev)
{
	return ev->extra && (ev->extra->delay_ns || ev->extra->delay_at);
}

static inline const struct evfn__kv *
evfn__event_ext(const evfn_event *ev)
{
	return ev->extra ? ev->extra->ext : NULL;
}

#endif /* EVFN_EVENT_INTERNAL_H */
