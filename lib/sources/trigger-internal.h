/* SPDX-License-Identifier: MIT */
/*
 * What the triggers on the loop share: the trigger object every kind
 * embeds, its options, creation and release, and the one path that turns
 * a firing into a published event (attributes set, refusals counted and
 * logged), in trigger.c; and the schedule trigger's arithmetic
 * (timer.c), declared here so tests can check it without a clock.
 */
#ifndef EVFN_TRIGGER_INTERNAL_H
#define EVFN_TRIGGER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn/runtime.h>
#include <evfn/schedule.h>
#include <evfn/triggers.h>

struct event;

struct evfn_trigger_options {
	char *function; /* NULL: emit to the subscribers of type */
	char *name;     /* NULL: none */
	evfn_missed_policy missed;
	int64_t tolerance_ns;
	bool existing;
};

/* Releases what a kind added to the trigger (descriptors, schedules);
 * called after the trigger's libevent event is gone. */
typedef void (*evfn__trigger_dispose_cb)(struct evfn_trigger *t);

/* Every kind's state starts with this, so a trigger pointer is also a
 * pointer to its kind's struct. Everything but stat is written before the
 * trigger's event is added and only read afterwards. */
struct evfn_trigger {
	evfn_rt *rt;
	struct event *ev; /* freed first, so callbacks are over */
	const char *kind; /* "schedule", "fd", "signal", "watch" */
	char *label;      /* "<kind> <what>", for log lines */
	char *type;       /* CloudEvents type and topic */
	char *function;   /* NULL: emit to the subscribers of type */
	char *source;     /* "evfn/<kind>" or "evfn/<kind>/<name>" */
	char *name;       /* NULL: none */
	evfn__trigger_dispose_cb dispose;
	atomic_uint_least64_t stat[EVFN_TRIGGER_STAT_COUNT];
};

/* The options of a trigger (defaults for NULL o). */
const evfn_trigger_options *
evfn__trigger_options(const evfn_trigger_options *o);

/* Allocates a zeroed trigger of `size` bytes (a kind's struct) and fills
 * the shared part: checks rt and type (NULL type means default_type),
 * that the function the options name is registered and that the runtime
 * is not draining, and builds the source. label is copied. Returns 0,
 * EVFN_EINVAL, EVFN_ENAMETOOLONG, EVFN_ENOFN, EVFN_ESHUTDOWN or
 * EVFN_ENOMEM; *out is NULL on failure. */
int evfn__trigger_new(evfn_rt *rt, size_t size, const char *kind,
                      const char *type, const char *default_type,
                      const evfn_trigger_options *opts, const char *label,
                      struct evfn_trigger **out);

/* Frees a trigger whatever state its creation reached: its event, then
 * the kind's state through dispose, then the shared part. */
void evfn__trigger_destroy(struct evfn_trigger *t);

/* Adds t's event (just created into t->ev; NULL when that failed) to the
 * loop with no timeout and hands t out. On failure t is destroyed and the
 * code returned: EVFN_ENOMEM without an event, EVFN_EINVAL when libevent
 * refuses to watch it (a descriptor it cannot poll, a signal that cannot
 * be caught). */
int evfn__trigger_arm(struct evfn_trigger *t, struct evfn_trigger **out);

/* One firing: the attributes a kind sets on the event it publishes. Every
 * pointer may be NULL (unset), extension pairs with a NULL name are
 * skipped. */
struct evfn__trigger_fire {
	const void *data;
	size_t len;
	const char *datacontenttype;
	const char *subject;
	bool has_time;   /* false: the event's time is its publish time */
	int64_t time_ns;
	struct {
		const char *name, *value;
	} ext[2];
};

/* Builds the event of one firing (type, source and the attributes in f),
 * publishes it to the trigger's topic or function and counts the outcome:
 * fired, refused (logged) or shutdown. Returns the admission result. */
int evfn__trigger_fire(struct evfn_trigger *t,
                       const struct evfn__trigger_fire *f);

/* Adds n to a counter. */
void evfn__trigger_count(struct evfn_trigger *t, evfn_trigger_stat which,
                         uint64_t n);

/* Logs a line about a trigger, prefixed with its label. */
void evfn__trigger_log(struct evfn_trigger *t, evfn_log_level level,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* What a schedule trigger does when its loop reaches it: due_ns is the
 * instant it was armed for (<= now_ns). latest_ns is the last instant at
 * or before now_ns; fire says whether one event is published for it;
 * missed counts the instants that get no event of their own; next_ns is
 * the first instant after now_ns (INT64_MAX with has_next false when
 * there is none). */
struct evfn__timer_plan {
	bool fire;
	bool has_next;
	int64_t latest_ns;
	int64_t next_ns;
	uint64_t missed;
};

void evfn__timer_plan(const evfn_schedule *s, int64_t anchor_ns, int64_t due_ns,
                      int64_t now_ns, evfn_missed_policy policy,
                      int64_t tolerance_ns, struct evfn__timer_plan *plan);

#endif /* EVFN_TRIGGER_INTERNAL_H */
