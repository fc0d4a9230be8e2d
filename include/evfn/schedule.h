/* SPDX-License-Identifier: MIT */
/*
 * Schedule expressions and their next fire time: EventBridge rate(), cron()
 * and at(), Go-style "@every 1m30s", the @hourly family, and classic
 * 5-field cron with Vixie semantics, each optionally in an IANA time zone.
 * This header only parses and computes instants; the trigger that turns a
 * schedule into events lives with the runtime. Anything not declared under
 * include/evfn/ is private.
 *
 * Times are nanoseconds since the Unix epoch (UTC, no leap seconds).
 * Thread-safety: a parsed schedule is immutable, so every call here may be
 * made from any thread, concurrently on the same schedule, except
 * evfn_schedule_free(), which must not race with other uses of it.
 */
#ifndef EVFN_SCHEDULE_H
#define EVFN_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <evfn/errors.h>
#include <evfn/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A parsed schedule expression together with its time zone. Opaque. */
typedef struct evfn_schedule evfn_schedule;

/**
 * Parse a schedule expression in a time zone.
 *
 * Accepted forms (keywords and units are lower case; month and day names
 * are case-insensitive):
 * - `rate(N unit)`: every N minutes, hours or days; N is a positive
 *   integer and the unit is singular for 1 (`rate(1 hour)`) and plural
 *   otherwise (`rate(5 minutes)`), as EventBridge requires.
 * - `@every D`: a Go-style duration built from ms, s, m and h terms, such
 *   as `250ms`, `1m30s` or `2h`; it must be positive.
 * - `at(YYYY-MM-DDThh:mm:ss)`: once, at that wall-clock time in `tz`.
 * - `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
 *   (`@midnight`), `@hourly`: the usual 5-field equivalents.
 * - `min hour day-of-month month day-of-week`: Vixie cron. Fields take
 *   `*`, `a`, `a-b`, `*` or `a-b` or `a` followed by `/step` (`a/step`
 *   runs to the field's maximum), and comma lists of those. Months are
 *   1-12 or JAN-DEC, days of week 0-7 (0 and 7 are Sunday) or SUN-SAT.
 *   When both day fields are restricted a day matches if either does;
 *   a field that starts with `*` (including `*` followed by a step)
 *   counts as unrestricted, as in Vixie cron, and then only the other
 *   field constrains the day.
 * - `cron(min hour day-of-month month day-of-week year)`: EventBridge.
 *   Days of week are 1-7 = SUN-SAT; exactly one of the two day fields
 *   must be `?`. Day-of-month also takes `L` (last day), `nW` (weekday
 *   nearest day n, never leaving the month) and `LW` (last weekday).
 *   Day-of-week also takes `nL` (last such day of the month, e.g. `6L`
 *   or `FRIL`), `n#k` (k-th such day, k 1-5, e.g. `3#2` = second
 *   Tuesday; as in AWS, the field then holds that one expression, so
 *   `3#1,6#3` is an error) and a lone `L` (Saturday, the last day of the
 *   week). Years are 1970-2199.
 * Reversed ranges such as `5-1` are errors in both cron flavours. Cron
 * expressions fire at second 0 of matching minutes. An expression that
 * matches no date at all (e.g. `0 0 30 2 *`) is an error.
 *
 * Daylight saving time applies to cron, the @-names and at(): a wall time
 * skipped when clocks go forward fires once, at the first instant after
 * the gap; a wall time that occurs twice fires once, at its first
 * occurrence. rate() and `@every` are fixed intervals of real time and
 * ignore the zone (it is still validated).
 *
 * @param expr the expression; surrounding blanks are ignored. Not NULL.
 * @param tz an IANA zone name such as "Europe/Berlin", read from the
 *        system zoneinfo directory; NULL or "UTC" means UTC.
 * @param out receives the schedule; set to NULL on failure. Not NULL.
 * @param err_offset if not NULL, receives the byte offset in `expr` where
 *        an EVFN_ESCHEDULE error was found, and 0 for any other result.
 * @param err_buf if not NULL and err_len > 0, receives a NUL-terminated
 *        English reason on failure, such as "field 3 (day-of-month): value
 *        32 out of range 1-31" (truncated to fit), and "" on success.
 * @param err_len size of err_buf in bytes; 128 is always enough.
 * @return 0; EVFN_EINVAL for NULL expr or out; EVFN_ESCHEDULE for a
 *         malformed expression; EVFN_ETIMEZONE for a zone name that is
 *         empty, starts with '/', contains "..", has no zoneinfo file, or
 *         whose file is not valid TZif; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and releases it with
 * evfn_schedule_free(); expr and tz are not retained.
 * @since 0.1
 */
EVFN_EXPORT int evfn_schedule_parse(const char *expr, const char *tz,
                                    evfn_schedule **out, size_t *err_offset,
                                    char *err_buf, size_t err_len);

/**
 * Compute the first fire time strictly after a given instant.
 *
 * For cron, the @-names and at(), this is the first matching wall-clock
 * minute (or the at() instant) after `after_ns`, with the DST rules given
 * at evfn_schedule_parse(). For rate() and `@every` it is
 * `after_ns + interval`: pass the previous scheduled fire time (not the
 * time the handler ran) to get a series that does not drift.
 *
 * @param s the schedule. Not NULL.
 * @param after_ns the instant to search after (ns since the epoch).
 * @param next_ns receives the fire time when the result is 1, and
 *        INT64_MAX when it is 0. Not NULL.
 * @return 1 when there is a next fire time; 0 when the schedule never
 *         fires after `after_ns`: an at() whose instant is not later, a
 *         cron() whose year range has ended, or a fire time that would
 *         fall beyond the int64 nanosecond range (year 2262);
 *         EVFN_EINVAL for NULL s or next_ns.
 * @since 0.1
 */
EVFN_EXPORT int evfn_schedule_next(const evfn_schedule *s, int64_t after_ns,
                                   int64_t *next_ns);

/**
 * Free a schedule. NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_schedule_free(evfn_schedule *s);

/**
 * Parse an expression and compute its next fire time in one call, so that
 * users can try expressions out.
 *
 * @param expr, tz as for evfn_schedule_parse().
 * @param after_ns, next_ns as for evfn_schedule_next().
 * @return 1 or 0 as evfn_schedule_next(); otherwise the error codes of
 *         evfn_schedule_parse() (use that call to learn where an
 *         expression is malformed). EVFN_EINVAL also for NULL next_ns.
 * @since 0.1
 */
EVFN_EXPORT int evfn_schedule_next_expr(const char *expr, const char *tz,
                                        int64_t after_ns, int64_t *next_ns);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_SCHEDULE_H */
