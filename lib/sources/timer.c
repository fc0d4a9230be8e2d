/* SPDX-License-Identifier: MIT */
/*
 * The schedule trigger: a libevent timer on the runtime's base, armed for
 * the next instant of a parsed schedule (schedule.c computes instants;
 * this file only arms, fires and catches up). Each fire is an event whose
 * time is the scheduled instant. When the loop reaches the timer late it
 * applies the trigger's missed-fire policy, and when it wakes before the
 * instant on the wall clock (the clock was set back) it re-arms. The
 * shared trigger object is in fd.c.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include <evfn/libevent.h>
#include <evfn/schedule.h>
#include <evfn/triggers.h>

#include "common-internal.h"
#include "source-internal.h"
#include "sources/schedule-internal.h"
#include "trigger-internal.h"

static const char kind_schedule[] = "schedule";

struct timer_trigger {
	struct evfn_trigger base;
	evfn_schedule *schedule;
	char *subject;           /* the name, the expression, or NULL */
	int64_t anchor_ns;       /* interval schedules count from here */
	_Atomic int64_t next_ns; /* the instant armed for; INT64_MAX: none */
	evfn_missed_policy missed;
	int64_t tolerance_ns;
};

void
evfn__timer_plan(const evfn_schedule *s, int64_t anchor_ns, int64_t due_ns,
                 int64_t now_ns, evfn_missed_policy policy,
                 int64_t tolerance_ns, struct evfn__timer_plan *plan)
{
	int64_t latest = due_ns;
	uint64_t due = 1;
	int64_t interval = evfn__schedule_interval_ns(s);
	/* Interval instants are anchor + k * interval, so a long stall is
	 * one division rather than a walk over every instant in it. */
	if (interval > 0 && now_ns > due_ns && now_ns - due_ns >= interval) {
		int64_t k = (now_ns - due_ns) / interval;
		latest = due_ns + k * interval;
		due += (uint64_t)k;
	}
	/* Cron instants are at least a minute apart: the walk is short
	 * unless the loop stalled for days. */
	int64_t next;
	int r;
	for (;;) {
		r = evfn__schedule_next_anchored(s, anchor_ns, latest, &next);
		if (r != 1 || next > now_ns)
			break;
		latest = next;
		due++;
	}
	plan->latest_ns = latest;
	plan->has_next = r == 1;
	plan->next_ns = r == 1 ? next : INT64_MAX;
	bool late = due > 1 || now_ns - latest > tolerance_ns;
	if (!late) {
		plan->fire = true;
		plan->missed = 0;
	} else if (policy == EVFN_MISSED_FIRE_ONCE) {
		plan->fire = true;
		plan->missed = due - 1;
	} else {
		plan->fire = false;
		plan->missed = due;
	}
}

/* Arms the timer for next_ns. The delay is rounded up to microseconds, so
 * the loop's clock never wakes it before the instant; the callback still
 * checks the wall clock, which may disagree. */
static void
arm(struct timer_trigger *tt, int64_t now_ns)
{
	int64_t delay = atomic_load(&tt->next_ns) - now_ns;
	if (delay < 0)
		delay = 0;
	struct timeval tv = evfn__timeval_ns(delay);
	if (evtimer_add(tt->base.ev, &tv) < 0)
		evfn__trigger_log(&tt->base, EVFN_LOG_ERROR,
		                  "could not arm the timer; the schedule "
		                  "stops");
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct timer_trigger *tt = arg;
	int64_t due = atomic_load(&tt->next_ns);
	int64_t now = evfn__wall_ns();
	if (now < due) {
		/* The loop's monotonic clock and the wall clock disagree
		 * (the wall clock was set back, or the loop's clock is
		 * coarse): wait for the rest. */
		evfn__trigger_log(&tt->base, EVFN_LOG_DEBUG,
		                  "woke %lld us before the instant; re-armed",
		                  (long long)((due - now) / 1000));
		arm(tt, now);
		return;
	}
	struct evfn__timer_plan plan;
	evfn__timer_plan(tt->schedule, tt->anchor_ns, due, now, tt->missed,
	                 tt->tolerance_ns, &plan);
	atomic_store(&tt->next_ns, plan.next_ns);
	if (plan.missed) {
		evfn__trigger_count(&tt->base, EVFN_TRIGGER_STAT_MISSED,
		                    plan.missed);
		evfn__trigger_log(&tt->base, EVFN_LOG_WARN,
		                  "reached %lld ms late; %llu instant(s) "
		                  "missed, %s",
		                  (long long)((now - due) / EVFN__NS_PER_MS),
		                  (unsigned long long)plan.missed,
		                  plan.fire ? "the latest fires once"
		                            : "skipped");
	}
	if (plan.fire) {
		char missed[24] = "";
		struct evfn__trigger_fire f = {
		    .subject = tt->subject,
		    .has_time = true,
		    .time_ns = plan.latest_ns,
		};
		if (plan.missed) {
			snprintf(missed, sizeof(missed), "%llu",
			         (unsigned long long)plan.missed);
			f.ext[0].name = "missed";
			f.ext[0].value = missed;
		}
		evfn__trigger_fire(&tt->base, &f);
	}
	if (plan.has_next)
		arm(tt, evfn__wall_ns());
	else
		evfn__trigger_log(&tt->base, EVFN_LOG_INFO,
		                  "the schedule has no further fire times");
}

static void
timer_dispose(struct evfn_trigger *t)
{
	struct timer_trigger *tt = (struct timer_trigger *)t;
	evfn_schedule_free(tt->schedule);
	evfn__free(tt->subject);
}

/* The expression without surrounding blanks, as a subject: NULL when it
 * does not fit in one (or on allocation failure, which only loses the
 * subject). */
static char *
expr_subject(const char *expr)
{
	while (*expr == ' ' || *expr == '\t')
		expr++;
	size_t len = strlen(expr);
	while (len > 0 && (expr[len - 1] == ' ' || expr[len - 1] == '\t'))
		len--;
	if (len == 0 || len > EVFN_NAME_MAX)
		return NULL;
	char *s = evfn__malloc(len + 1);
	if (s) {
		memcpy(s, expr, len);
		s[len] = '\0';
	}
	return s;
}

int
evfn_timer_add(evfn_rt *rt, const char *expr, const char *tz, const char *type,
               const evfn_trigger_options *opts, evfn_trigger **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	if (!rt || !expr)
		return EVFN_EINVAL;
	evfn_schedule *s;
	size_t off;
	char why[128];
	int rc = evfn_schedule_parse(expr, tz, &s, &off, why, sizeof(why));
	if (rc == EVFN_ESCHEDULE)
		evfn__rt_log(rt, EVFN_LOG_WARN,
		             "schedule trigger: \"%s\": %s (at offset %zu)",
		             expr, why, off);
	else if (rc == EVFN_ETIMEZONE) /* why names the zone and the cause */
		evfn__rt_log(rt, EVFN_LOG_WARN, "schedule trigger: \"%s\": %s",
		             expr, why);
	if (rc < 0)
		return rc;

	opts = evfn__trigger_options(opts);
	char label[300];
	snprintf(label, sizeof(label), "schedule \"%s\"",
	         opts->name ? opts->name : expr);
	struct evfn_trigger *t;
	rc = evfn__trigger_new(rt, sizeof(struct timer_trigger), kind_schedule,
	                       type, "evfn.schedule", opts, label, &t);
	if (rc < 0) {
		evfn_schedule_free(s);
		return rc;
	}
	struct timer_trigger *tt = (struct timer_trigger *)t;
	tt->schedule = s;
	t->dispose = timer_dispose;
	tt->subject =
	    opts->name ? evfn__strdup(opts->name) : expr_subject(expr);
	tt->missed = opts->missed;
	tt->tolerance_ns = opts->tolerance_ns;
	t->ev = evtimer_new(evfn_rt_event_base(rt), timer_cb, tt);
	if (!t->ev || (opts->name && !tt->subject)) {
		evfn__trigger_destroy(t);
		return EVFN_ENOMEM;
	}
	tt->anchor_ns = evfn__wall_ns();
	int64_t next;
	if (evfn__schedule_next_anchored(s, tt->anchor_ns, tt->anchor_ns,
	                                 &next) != 1) {
		/* Accepted rather than refused: a host that re-creates its
		 * triggers at every start should not fail on a one-off
		 * instant that has already passed. */
		atomic_store(&tt->next_ns, INT64_MAX);
		evfn__trigger_log(t, EVFN_LOG_WARN,
		                  "the schedule has no fire time after now; "
		                  "it never fires");
	} else {
		atomic_store(&tt->next_ns, next);
		arm(tt, evfn__wall_ns());
	}
	*out = t;
	return 0;
}

int
evfn_timer_next(const evfn_trigger *t, int64_t *next_ns)
{
	if (!t || !next_ns || strcmp(t->kind, kind_schedule) != 0)
		return EVFN_EINVAL;
	const struct timer_trigger *tt = (const struct timer_trigger *)t;
	*next_ns = atomic_load(&((struct timer_trigger *)tt)->next_ns);
	return *next_ns != INT64_MAX;
}
