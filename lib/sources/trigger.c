/* SPDX-License-Identifier: MIT */
/*
 * The trigger object all triggers on the loop share: options builder,
 * creation checks, release, counters and the one path from a firing to a
 * published event. Each kind lives in its own file (fd.c, signal.c,
 * watch.c, timer.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include <evfn/emit.h>
#include <evfn/event.h>
#include <evfn/libevent.h>
#include <evfn/triggers.h>

#include "common-internal.h"
#include "route-internal.h"
#include "source-internal.h"
#include "trigger-internal.h"

/* The longest name: "evfn/schedule/" + name must fit in a source. */
#define NAME_MAX_LEN (EVFN_NAME_MAX - 16)

static const evfn_trigger_options default_options = {
    .missed = EVFN_MISSED_FIRE_ONCE,
    .tolerance_ns = EVFN__NS_PER_SEC,
};

/* ---- options ------------------------------------------------------------ */

int
evfn_trigger_options_new(evfn_trigger_options **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = evfn__malloc(sizeof(**out));
	if (!*out)
		return EVFN_ENOMEM;
	**out = default_options;
	return 0;
}

void
evfn_trigger_options_free(evfn_trigger_options *o)
{
	if (!o)
		return;
	evfn__free(o->function);
	evfn__free(o->name);
	evfn__free(o);
}

const evfn_trigger_options *
evfn__trigger_options(const evfn_trigger_options *o)
{
	return o ? o : &default_options;
}

/* Replaces *slot with a copy of value (NULL clears it) after checking it
 * is 1..max bytes long. */
static int
set_string(char **slot, const char *value, size_t max)
{
	if (value) {
		if (!*value)
			return EVFN_EINVAL;
		if (strnlen(value, max + 1) > max)
			return EVFN_ENAMETOOLONG;
	}
	return evfn__strreplace(slot, value);
}

int
evfn_trigger_options_set_function(evfn_trigger_options *o, const char *fn_name)
{
	if (!o)
		return EVFN_EINVAL;
	return set_string(&o->function, fn_name, EVFN_NAME_MAX);
}

int
evfn_trigger_options_set_name(evfn_trigger_options *o, const char *name)
{
	if (!o)
		return EVFN_EINVAL;
	return set_string(&o->name, name, NAME_MAX_LEN);
}

int
evfn_trigger_options_set_missed(evfn_trigger_options *o,
                                evfn_missed_policy policy)
{
	if (!o ||
	    (policy != EVFN_MISSED_FIRE_ONCE && policy != EVFN_MISSED_SKIP))
		return EVFN_EINVAL;
	o->missed = policy;
	return 0;
}

int
evfn_trigger_options_set_tolerance_ms(evfn_trigger_options *o, int64_t ms)
{
	if (!o)
		return EVFN_EINVAL;
	if (ms < 1 || ms > INT64_C(86400000))
		return EVFN_ERANGE;
	o->tolerance_ns = ms * EVFN__NS_PER_MS;
	return 0;
}

int
evfn_trigger_options_set_existing(evfn_trigger_options *o, bool existing)
{
	if (!o)
		return EVFN_EINVAL;
	o->existing = existing;
	return 0;
}

/* ---- the shared trigger ------------------------------------------------- */


int
evfn__trigger_new(evfn_rt *rt, size_t size, const char *kind, const char *type,
                  const char *default_type, const evfn_trigger_options *opts,
                  const char *label, struct evfn_trigger **out)
{
	*out = NULL;
	if (!rt)
		return EVFN_EINVAL;
	opts = evfn__trigger_options(opts);
	if (!type)
		type = default_type;
	/* Without a function the type is the topic: refused here rather
	 * than at every firing. */
	int rc = opts->function ? evfn__check_name(type)
	                        : evfn__topic_check(type);
	if (rc < 0)
		return rc;
	rc = evfn__rt_check_target(rt, opts->function);
	if (rc < 0)
		return rc;
	struct evfn_trigger *t = evfn__calloc(1, size);
	if (!t)
		return EVFN_ENOMEM;
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(t->stat); i++)
		atomic_init(&t->stat[i], 0);
	t->rt = rt;
	evfn__rt_attach(rt);
	t->kind = kind;
	char source[EVFN_NAME_MAX + 1];
	if (opts->name)
		snprintf(source, sizeof(source), "evfn/%s/%s", kind,
		         opts->name);
	else
		snprintf(source, sizeof(source), "evfn/%s", kind);
	t->source = evfn__strdup(source);
	t->type = evfn__strdup(type);
	t->label = evfn__strdup(label);
	t->function = opts->function ? evfn__strdup(opts->function) : NULL;
	t->name = opts->name ? evfn__strdup(opts->name) : NULL;
	if (!t->source || !t->type || !t->label ||
	    (opts->function && !t->function) || (opts->name && !t->name)) {
		evfn__trigger_destroy(t);
		return EVFN_ENOMEM;
	}
	*out = t;
	return 0;
}

void
evfn__trigger_destroy(struct evfn_trigger *t)
{
	if (!t)
		return;
	/* event_free() deletes the event first; from a thread other than
	 * the loop's, libevent waits there for a running callback of it to
	 * return. Only then may the state the callback uses go. */
	if (t->ev)
		event_free(t->ev);
	if (t->dispose)
		t->dispose(t);
	evfn__free(t->label);
	evfn__free(t->type);
	evfn__free(t->function);
	evfn__free(t->source);
	evfn__free(t->name);
	if (t->rt)
		evfn__rt_detach(t->rt);
	evfn__free(t);
}

int
evfn__trigger_arm(struct evfn_trigger *t, struct evfn_trigger **out)
{
	errno = 0;
	int rc = !t->ev ? EVFN_ENOMEM
	         : event_add(t->ev, NULL) < 0 ? EVFN_EINVAL
	                                      : 0;
	/* EVFN_EINVAL also stands for bad arguments: say which this is. */
	if (rc == EVFN_EINVAL)
		evfn__trigger_log(t, EVFN_LOG_WARN,
		                  "refused by the event loop's backend%s%s",
		                  errno ? ": " : "", errno ? strerror(errno) : "");
	if (rc < 0) {
		evfn__trigger_destroy(t);
		return rc;
	}
	*out = t;
	return 0;
}

void
evfn_trigger_free(evfn_trigger *t)
{
	evfn__trigger_destroy(t);
}

uint64_t
evfn_trigger_get_stat(const evfn_trigger *t, evfn_trigger_stat which)
{
	if (!t || (unsigned)which >= EVFN_TRIGGER_STAT_COUNT)
		return 0;
	return atomic_load_explicit(&t->stat[which], memory_order_relaxed);
}

void
evfn__trigger_count(struct evfn_trigger *t, evfn_trigger_stat which, uint64_t n)
{
	atomic_fetch_add_explicit(&t->stat[which], n, memory_order_relaxed);
}

void
evfn__trigger_log(struct evfn_trigger *t, evfn_log_level level, const char *fmt,
                  ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	evfn__rt_log(t->rt, level, "trigger %s: %s", t->label, msg);
}

/* Builds the event of one firing; 0 or the setter's error. */
static int
build_event(struct evfn_trigger *t, const struct evfn__trigger_fire *f,
            evfn_event **out)
{
	evfn_event *ev;
	int rc = evfn_event_new(&ev, t->type, f->data, f->len);
	if (rc < 0)
		return rc;
	rc = evfn_event_set_source(ev, t->source);
	if (rc == 0 && f->subject)
		rc = evfn_event_set_subject(ev, f->subject);
	if (rc == 0 && f->datacontenttype)
		rc = evfn_event_set_datacontenttype(ev, f->datacontenttype);
	if (rc == 0 && f->has_time)
		rc = evfn_event_set_time(ev, f->time_ns);
	for (size_t i = 0; rc == 0 && i < EVFN__ARRAY_SIZE(f->ext); i++)
		if (f->ext[i].name)
			rc = evfn_event_set_extension(ev, f->ext[i].name,
			                              f->ext[i].value);
	if (rc < 0) {
		evfn_event_unref(ev);
		return rc;
	}
	*out = ev;
	return 0;
}

static bool
is_power_of_two(uint64_t n)
{
	return n && !(n & (n - 1));
}

int
evfn__trigger_fire(struct evfn_trigger *t, const struct evfn__trigger_fire *f)
{
	evfn_event *ev = NULL;
	int rc = build_event(t, f, &ev);
	if (rc == 0) {
		rc = t->function ? evfn_publish_to(t->rt, t->function, ev, NULL)
		                 : evfn_publish(t->rt, ev, NULL);
		evfn_event_unref(ev);
	}
	if (rc == 0) {
		evfn__trigger_count(t, EVFN_TRIGGER_STAT_FIRED, 1);
		return 0;
	}
	/* A draining runtime refuses everything by design: count it, and
	 * say so once at a level that does not alarm anyone. */
	evfn_trigger_stat which = rc == EVFN_ESHUTDOWN
	                              ? EVFN_TRIGGER_STAT_SHUTDOWN
	                              : EVFN_TRIGGER_STAT_REFUSED;
	uint64_t n = atomic_fetch_add_explicit(&t->stat[which], 1,
	                                       memory_order_relaxed) +
	             1;
	if (which == EVFN_TRIGGER_STAT_SHUTDOWN) {
		if (n == 1)
			evfn__trigger_log(t, EVFN_LOG_INFO,
			                  "runtime is draining; events are "
			                  "dropped and counted from now on");
	} else if (is_power_of_two(n)) {
		/* Refusals can repeat at the loop's pace (a level-triggered
		 * descriptor nobody consumes), so only the first and then
		 * every power of two are logged; the counter has them all. */
		evfn__trigger_log(t, EVFN_LOG_WARN,
		                  "event refused for %s \"%s\": %s (%s); %llu "
		                  "refused so far",
		                  t->function ? "function" : "topic",
		                  t->function ? t->function : t->type,
		                  evfn_err_name(rc), evfn_strerror(rc),
		                  (unsigned long long)n);
	}
	return rc;
}
