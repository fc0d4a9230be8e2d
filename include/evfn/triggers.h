/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Triggers on the loop: a schedule (rate, \@every, at, cron), a file
 * descriptor becoming readable or writable, a signal, and files arriving
 * in a directory. Each is a trigger object with one options builder, one
 * free function and counters; each turns what it sees into events on the
 * runtime's event_base (see evfn/libevent.h) and emits them to a topic or
 * hands them to one function. Anything not declared under include/evfn/
 * is private.
 *
 * Delivery. By default a trigger's events have a type (also the topic
 * they are emitted to, evfn_publish()) given at creation or a default per
 * kind; evfn_trigger_options_set_function() sends them to one function
 * instead (evfn_publish_to()). Every event carries source "evfn/<kind>"
 * ("evfn/<kind>/<name>" with a name set) where kind is schedule, fd,
 * signal or watch. An event the runtime refuses (queue full, no
 * subscriber) is counted as EVFN_TRIGGER_STAT_REFUSED and logged through
 * the runtime's log callback; refusals because the runtime drains are
 * counted as EVFN_TRIGGER_STAT_SHUTDOWN and are not errors.
 *
 * Threading: every call may be made from any thread. Callbacks of a
 * trigger run on the thread that drives the runtime's event_base.
 * evfn_trigger_free() must be called for every trigger before
 * evfn_rt_free() (the runtime does not know its triggers); once it
 * returns, the trigger's callback is not running and will not run again.
 */
#ifndef EVFN_TRIGGERS_H
#define EVFN_TRIGGERS_H

#include <stdbool.h>
#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A trigger bound to a runtime: schedule, descriptor, signal or
 * directory watch. */
typedef struct evfn_trigger evfn_trigger;
/** Builder for the options of a trigger. */
typedef struct evfn_trigger_options evfn_trigger_options;

/** What a schedule does with instants the loop reached too late (it was
 * blocked, or the runtime was not started yet). */
typedef enum evfn_missed_policy {
	/** One event for the latest missed instant, carrying extension
	 * "missed" = the number of earlier instants folded into it; then
	 * on from the first instant after now (the default). */
	EVFN_MISSED_FIRE_ONCE = 0,
	/** No event for missed instants; on from the first instant after
	 * now. */
	EVFN_MISSED_SKIP = 1
} evfn_missed_policy;

/** Readiness a descriptor trigger waits for (evfn_fd_add()). */
enum evfn_fd_flags {
	/** The descriptor is readable. */
	EVFN_FD_READ = 1,
	/** The descriptor is writable. */
	EVFN_FD_WRITE = 2,
	/** Edge-triggered: one event per change of readiness instead of one
	 * per loop iteration while the descriptor stays ready (epoll only;
	 * other backends ignore it). */
	EVFN_FD_EDGE = 4
};

/** Counters of a trigger (evfn_trigger_get_stat()). New values may be
 * added before EVFN_TRIGGER_STAT_COUNT. */
typedef enum evfn_trigger_stat {
	/** Events the runtime accepted. */
	EVFN_TRIGGER_STAT_FIRED = 0,
	/** Events refused or not built: queue full, no subscriber, out of
	 * memory. Each is logged (the first and then every power of two,
	 * so that a busy refusing trigger cannot flood the log). */
	EVFN_TRIGGER_STAT_REFUSED,
	/** Events refused because the runtime drains (EVFN_ESHUTDOWN). */
	EVFN_TRIGGER_STAT_SHUTDOWN,
	/** Schedule instants that got no event of their own (see
	 * evfn_missed_policy). */
	EVFN_TRIGGER_STAT_MISSED,
	/** Directory watch: overflows of the kernel's inotify queue, where
	 * arrivals may have been lost. */
	EVFN_TRIGGER_STAT_OVERFLOWS,
	EVFN_TRIGGER_STAT_COUNT
} evfn_trigger_stat;

/**
 * Create a trigger options builder with the defaults: events go to the
 * subscribers of their type, no name, missed instants fire once, a
 * lateness tolerance of 1 s, files already in a watched directory are not
 * emitted.
 * @param out receives the builder; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL out; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with
 * evfn_trigger_options_free(); the calls that create triggers copy it.
 * @since 0.1
 */
EVFN_EXPORT int evfn_trigger_options_new(evfn_trigger_options **out);

/**
 * Free a builder.
 * @param o the builder; NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_trigger_options_free(evfn_trigger_options *o);

/**
 * Send every event of the trigger to one function by name
 * (evfn_publish_to()) instead of emitting it to the subscribers of its
 * type. The function must be registered when the trigger is created.
 * @param o the builder. Not NULL.
 * @param fn_name the function, copied; NULL goes back to topic delivery.
 * @return 0; EVFN_EINVAL for NULL o or an empty name; EVFN_ENAMETOOLONG;
 *         EVFN_ENOMEM.
 *
 * Ownership: fn_name is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_trigger_options_set_function(evfn_trigger_options *o,
                                                  const char *fn_name);

/**
 * Name the trigger: events get source "evfn/<kind>/<name>", log lines
 * name it, and schedule, descriptor and signal events get it as their
 * subject.
 * @param o the builder. Not NULL.
 * @param name copied; NULL removes it.
 * @return 0; EVFN_EINVAL for NULL o or an empty name; EVFN_ENAMETOOLONG
 *         for a name longer than EVFN_NAME_MAX - 16 bytes (the source
 *         must fit in EVFN_NAME_MAX); EVFN_ENOMEM.
 *
 * Ownership: name is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_trigger_options_set_name(evfn_trigger_options *o,
                                              const char *name);

/**
 * What a schedule does with instants it reached late (see
 * evfn_missed_policy). Other triggers ignore it.
 * @param o the builder. Not NULL.
 * @param policy the policy (default EVFN_MISSED_FIRE_ONCE).
 * @return 0; EVFN_EINVAL for NULL o or an unknown policy.
 * @since 0.1
 */
EVFN_EXPORT int evfn_trigger_options_set_missed(evfn_trigger_options *o,
                                                evfn_missed_policy policy);

/**
 * How late a schedule may reach a single instant and still fire it as
 * usual. An instant counts as missed when the loop reaches it after the
 * following instant has passed too, or more than this tolerance after it.
 * Other triggers ignore it.
 * @param o the builder. Not NULL.
 * @param ms 1 or more: a fire is always a little late, so with no
 *        tolerance at all EVFN_MISSED_SKIP would skip every instant.
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for ms < 1 or more than
 *         a day.
 * @since 0.1
 */
EVFN_EXPORT int evfn_trigger_options_set_tolerance_ms(evfn_trigger_options *o,
                                                      int64_t ms);

/**
 * Whether a directory watch also emits the matching files already in the
 * directory: once when it starts (in name order, before
 * evfn_watch_add() returns), and again after an inotify queue overflow.
 * Other triggers ignore it.
 * @param o the builder. Not NULL.
 * @param existing true to emit them (default false).
 * @return 0; EVFN_EINVAL for NULL o.
 * @since 0.1
 */
EVFN_EXPORT int evfn_trigger_options_set_existing(evfn_trigger_options *o,
                                                  bool existing);

/**
 * Fire events on a schedule.
 *
 * Each fire is one event with an empty payload whose `time` is the
 * scheduled instant (not the moment the loop got to it) and whose subject
 * is the trigger's name, or else the expression (when it fits in
 * EVFN_NAME_MAX). rate() and <code>\@every</code> are anchored at the
 * moment of this call: fires are due at anchor + k * interval and never
 * drift. The timer is re-armed when it wakes before the instant on the
 * wall clock (clock adjustments), so no event fires early. When the loop
 * reaches instants late, the trigger's evfn_missed_policy applies. An at()
 * schedule fires once; an at() already past never fires (this is logged).
 *
 * @param rt  the runtime. Not NULL.
 * @param expr a schedule expression as evfn_schedule_parse() takes it.
 * @param tz  an IANA time zone name; NULL for UTC.
 * @param type the events' CloudEvents type and topic; NULL for
 *        "evfn.schedule".
 * @param opts copied; NULL for the defaults.
 * @param out receives the trigger; NULL on failure.
 * @return 0; EVFN_EINVAL for NULL rt, expr or out; EVFN_ESCHEDULE for a
 *         malformed expression (the parser's reason and offset are
 *         logged; evfn_schedule_parse() returns them too);
 *         EVFN_ETIMEZONE for an unknown zone; EVFN_ENAMETOOLONG,
 *         EVFN_EINVAL or (delivered to a topic) EVFN_EPATTERN for a bad
 *         type, as evfn_emit() checks a topic; EVFN_ENOFN when the
 *         options name a function that is not registered; EVFN_ESHUTDOWN
 *         after drain; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with evfn_trigger_free().
 * @since 0.1
 */
EVFN_EXPORT int evfn_timer_add(evfn_rt *rt, const char *expr, const char *tz,
                               const char *type,
                               const evfn_trigger_options *opts,
                               evfn_trigger **out);

/**
 * The next instant a schedule trigger will fire at.
 * @param t the trigger from evfn_timer_add(). Not NULL.
 * @param next_ns receives it (ns since the epoch), or INT64_MAX when the
 *        schedule will not fire again. Not NULL.
 * @return 1 when there is a next fire; 0 when there is none; EVFN_EINVAL
 *         for NULL arguments or a trigger that is not a schedule.
 * @since 0.2 (0.1: evfn_timer_get_next(), deprecated)
 */
EVFN_EXPORT int evfn_timer_next(const evfn_trigger *t, int64_t *next_ns);

/**
 * Fire an event each time a descriptor is ready.
 *
 * Each readiness is one event with an empty payload, extensions "fd" (the
 * descriptor number) and "ready" ("read", "write" or "read,write"), and
 * the trigger's name as subject if one is set. Readiness is
 * level-triggered unless EVFN_FD_EDGE is given: while the descriptor stays
 * ready (nobody reads it), every loop iteration fires again. evfn never
 * reads, writes or closes the descriptor; it must stay open until
 * evfn_trigger_free() returns.
 *
 * @param rt    the runtime. Not NULL.
 * @param fd    a descriptor the event_base's backend can poll (a pipe, a
 *        socket, an eventfd; not a regular file with epoll).
 * @param flags EVFN_FD_READ and/or EVFN_FD_WRITE, optionally EVFN_FD_EDGE.
 * @param type  the events' type and topic; NULL for "evfn.fd".
 * @param opts  copied; NULL for the defaults.
 * @param out   receives the trigger; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL rt or out, a negative descriptor, flags
 *         with neither READ nor WRITE or unknown bits, or a descriptor
 *         the backend refuses (closed, or not pollable: the runtime's log
 *         callback is told the backend's reason); the errors of
 *         evfn_timer_add() for type, function and shutdown; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with evfn_trigger_free();
 * the descriptor stays the caller's.
 * @since 0.1
 */
EVFN_EXPORT int evfn_fd_add(evfn_rt *rt, int fd, int flags, const char *type,
                            const evfn_trigger_options *opts,
                            evfn_trigger **out);

/**
 * Fire an event each time a signal is delivered to the process.
 *
 * Uses libevent's signal events on the runtime's base: the handler only
 * wakes the loop, and the event is built there. Each delivery the handler
 * sees is one event with an empty payload, extension "signal" (the
 * number) and subject the signal's name such as "SIGUSR1" (or the
 * trigger's name). Deliveries of one signal that arrive while it is still
 * pending are merged by the kernel. While any trigger holds a signal, its
 * previous disposition is replaced; the last evfn_trigger_free() for it
 * restores it. libevent lets only one event_base at a time handle
 * signals, so keep a process's signal triggers on one runtime.
 *
 * @param rt the runtime. Not NULL.
 * @param signo a catchable signal number (not SIGKILL or SIGSTOP).
 * @param type the events' type and topic; NULL for "evfn.signal".
 * @param opts copied; NULL for the defaults.
 * @param out receives the trigger; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL rt or out, or a signal number that is
 *         out of range or cannot be caught; the errors of
 *         evfn_timer_add() for type, function and shutdown; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with evfn_trigger_free().
 * @since 0.1
 */
EVFN_EXPORT int evfn_signal_add(evfn_rt *rt, int signo, const char *type,
                                const evfn_trigger_options *opts,
                                evfn_trigger **out);

/**
 * Fire an event for each file that arrives in a directory: the "object
 * created" trigger of an upload pipeline.
 *
 * A file arrives when a writer closes it after writing (inotify
 * IN_CLOSE_WRITE) or when it is renamed into the directory
 * (IN_MOVED_TO); writers should write elsewhere and rename, or write in
 * place and close once. Names starting with a dot match only a glob
 * that starts with one. The watch is not recursive: subdirectories and
 * what happens in them are ignored. Each arrival is one event whose
 * payload is the full path ("<dir>/<name>", datacontenttype text/plain),
 * whose subject is the file name, and whose extension "arrival" says why:
 * "written", "moved" or "existing" (see
 * evfn_trigger_options_set_existing()). Files present at the start may
 * be emitted twice if they are also written during the start. When the
 * kernel's queue overflows (too many arrivals while the loop was busy),
 * arrivals may be lost: the overflow is logged and counted
 * (EVFN_TRIGGER_STAT_OVERFLOWS), and the directory is scanned again if
 * existing files are emitted. When the directory is removed or moved
 * away the watch ends (this is logged); the trigger stays until freed.
 *
 * @param rt   the runtime. Not NULL.
 * @param dir  the directory; copied. Not NULL.
 * @param glob an fnmatch() pattern for file names, such as "*.csv"; NULL
 *        for "*". Copied.
 * @param type the events' type and topic; NULL for "evfn.file.created".
 * @param opts copied; NULL for the defaults.
 * @param out  receives the trigger; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL rt, dir or out, an empty dir, or an
 *         empty glob or one containing '/'; EVFN_ENOENT when dir does not
 *         exist; EVFN_ENOTDIR when it is not a directory; EVFN_EACCES
 *         when it cannot be read; EVFN_ENAMETOOLONG for a path too long;
 *         the errors of evfn_timer_add() for type, function and shutdown;
 *         EVFN_ENOMEM (also when the process is out of descriptors or
 *         inotify watches; the reason is logged).
 *
 * Ownership: the caller owns *out and frees it with evfn_trigger_free().
 * @since 0.1
 */
EVFN_EXPORT int evfn_watch_add(evfn_rt *rt, const char *dir, const char *glob,
                               const char *type,
                               const evfn_trigger_options *opts,
                               evfn_trigger **out);

/**
 * A counter of a trigger.
 * @param t the trigger; NULL returns 0.
 * @param which the counter.
 * @return its value; 0 for NULL t or an unknown counter.
 * @since 0.1
 */
EVFN_EXPORT uint64_t evfn_trigger_get_stat(const evfn_trigger *t,
                                           evfn_trigger_stat which);

/**
 * Stop a trigger and free it. When it returns, the trigger's callback is
 * not running and will not run again; events it already published go on.
 * Must be called before evfn_rt_free() of its runtime.
 *
 * @param t the trigger; NULL is a no-op.
 *
 * Ownership: takes the trigger back; the caller must not use it again.
 * Thread-safety: any thread, including handlers and the loop thread. From
 * another thread than the loop's it waits for a callback of the trigger
 * that is running at that moment, so do not call it while holding a lock
 * that the runtime's log callback takes.
 * @since 0.1
 */
EVFN_EXPORT void evfn_trigger_free(evfn_trigger *t);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_TRIGGERS_H */
