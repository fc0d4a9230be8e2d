/* SPDX-License-Identifier: MIT */
/*
 * What the schedule trigger needs beyond include/evfn/schedule.h: the kind
 * of a parsed schedule and fire times of interval schedules anchored at a
 * start instant. Parsing and cron search live in schedule.c; zones in
 * tzfile.c.
 */
#ifndef EVFN_SCHEDULE_INTERNAL_H
#define EVFN_SCHEDULE_INTERNAL_H

#include <stdint.h>

#include <evfn/schedule.h>

#include "tzfile-internal.h"

typedef enum evfn__schedule_kind {
	EVFN__SCHEDULE_CRON = 0,     /* 5-field, cron(...) and @hourly etc. */
	EVFN__SCHEDULE_INTERVAL = 1, /* rate(...) and @every */
	EVFN__SCHEDULE_AT = 2        /* at(...): fires once */
} evfn__schedule_kind;

/* The kind of a parsed schedule (s not NULL). */
evfn__schedule_kind evfn__schedule_kind_of(const evfn_schedule *s);

/* The interval of a rate()/@every schedule in ns; 0 for other kinds. */
int64_t evfn__schedule_interval_ns(const evfn_schedule *s);

/* As evfn_schedule_next(), except that an interval schedule fires at
 * anchor_ns + k * interval for k >= 1 (the trigger passes the instant it
 * started), so fire times do not depend on when the caller asks. Other
 * kinds ignore anchor_ns. Returns 1, 0 or EVFN_EINVAL like
 * evfn_schedule_next(). */
int evfn__schedule_next_anchored(const evfn_schedule *s, int64_t anchor_ns,
                                 int64_t after_ns, int64_t *next_ns);

/* Gives a parsed cron or interval schedule the zone tz in place of the
 * one it was parsed with, and frees that one; s then owns tz. Lets tests
 * use zones built in memory. (An at() instant is not recomputed.) */
void evfn__schedule_set_zone(evfn_schedule *s, evfn__tz *tz);

#endif /* EVFN_SCHEDULE_INTERNAL_H */
