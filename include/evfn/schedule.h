/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Schedule expressions and their next fire time: EventBridge rate(), cron()
 * and at(), Go-style "\@every 1m30s", the \@hourly family, and classic
 * 5-field cron with Vixie semantics, each optionally in an IANA time zone.
 * This header only parses and computes instants; the trigger that turns a
 * schedule into events lives with the runtime. Anything not declared under
 * include/evfn/ is private.
 *
 * Times are nanoseconds since the Unix epoch (UTC, no leap seconds).
 *
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
 * - <code>\@every D</code>: a Go-style duration built from ms, s, m and h
 *   terms, such as `250ms`, `1m30s` or `2h`; it must be positive.
 * - `at(YYYY-MM-DDThh:mm:ss)`: once, at that wall-clock time in `tz`.
 * - <code>\@yearly</code> (<code>\@annually</code>), <code>\@monthly</code>,
 *   <code>\@weekly</code>, <code>\@daily</code> (<code>\@midnight</code>),
 *   <code>\@hourly</code>: the usual 5-field equivalents.
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
 * Daylight saving time (any change of the zone's UTC offset) in 5-field
 * cron and the \@-names follows ISC (Vixie) cron 4.1, which sorts jobs by
 * the text of their minute and hour fields:
 * - A wildcard job, whose minute or hour field starts with `*` (alone,
 *   with a step or first in a list, such as `*,30`; also
 *   <code>\@hourly</code>), runs on real time: a wall time that clocks
 *   skip does not fire, and one they repeat fires at each pass.
 *   Europe/Berlin, 2026-03-29, 02:00 CET becomes 03:00 CEST:
 *   `30 * * * *` fires at 01:30 CET and 03:30 CEST, an hour apart, and
 *   never at 02:30. 2026-10-25, 03:00 CEST becomes
 *   02:00 CET: `0 * * * *` fires at 02:00 CEST, 02:00 CET and 03:00 CET,
 *   and a quarter-hourly job (`*` with step 15) every 15 minutes of real
 *   time throughout.
 * - Any other job is a fixed-time job (`30 2 * * *`, `0,30 2 * * *`,
 *   `0-59/10 2 * * *`, `0 0-23/2 * * *`, <code>\@daily</code> and longer):
 *   the wall times it would have fired at inside a skipped stretch fire once,
 *   together, at the first instant after it, and a repeated wall time
 *   fires at its first pass only. Berlin: `30 2 * * *` fires at 03:00
 *   CEST on 2026-03-29 and at 02:30 CEST (not CET) on 2026-10-25.
 * - As in cron.c, a jump ahead of less than 5 minutes is caught up by
 *   every job, and one of 3 hours or more by none; a setback of 182
 *   minutes or more makes every job fire again at the repeated times.
 *   No zone moves its clock that far today; some did (Pacific/Apia
 *   skipped 2011-12-30).
 *
 * `cron(...)` follows EventBridge Scheduler instead, which AWS documents
 * as: "your schedule invocation gets skipped if the cron expression falls
 * on a non-existent date and time", and when clocks go back "your
 * schedule runs only once". So for every cron(...) expression a wall time
 * that clocks skip never fires and a repeated one fires at its first pass
 * only: `cron(30 2 * * ? *)` does not fire on 2026-03-29 in Berlin, and
 * `cron(0/15 * * * ? *)` leaves 75 minutes between 02:45 CEST and 03:00
 * CET on 2026-10-25. evfn follows AWS there so that an expression moved
 * between EventBridge and evfn fires at the same instants. at() fires
 * once: a skipped wall time at the first instant after the gap, a
 * repeated one at its first occurrence. rate() and <code>\@every</code> are
 * fixed intervals of real time and ignore the zone (it is still
 * validated).
 *
 * @param expr the expression; surrounding blanks are ignored. Not NULL.
 * @param tz an IANA zone name such as "Europe/Berlin", read from the
 *        system zoneinfo directory; NULL or "UTC" means UTC.
 * @param out receives the schedule; set to NULL on failure. Not NULL.
 * @param err_offset if not NULL, receives the byte offset in `expr` where
 *        an EVFN_ESCHEDULE error was found, and 0 for any other result.
 * @param err_buf if not NULL and err_len > 0, receives a NUL-terminated
 *        English reason on failure, such as "field 3 (day-of-month): value
 *        32 out of range 1-31" or "time zone 'Mars/Olympus': no such zone"
 *        (truncated to fit), and "" on success.
 * @param err_len size of err_buf in bytes; 128 is always enough.
 * @return 0; EVFN_EINVAL for NULL expr or out; EVFN_ESCHEDULE for a
 *         malformed expression; EVFN_ETIMEZONE for a zone name that is
 *         empty, starts with '/', contains "..", has no zoneinfo file,
 *         whose file is not valid TZif, or whose file carries leap-second
 *         records (tzdata's `right/` zones count leap seconds in their
 *         times, which would make every fire 27 s late against POSIX
 *         time; use the zone without `right/`); EVFN_ENOMEM.
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
 * For cron, the \@-names and at(), this is the first instant after
 * `after_ns` at which the schedule fires under the daylight-saving rules
 * given at evfn_schedule_parse(). For rate() and <code>\@every</code> it is
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
 * Free a schedule.
 * @param s the schedule; NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_schedule_free(evfn_schedule *s);

/**
 * Parse an expression and compute its next fire time in one call, so that
 * users can try expressions out.
 *
 * @param expr as for evfn_schedule_parse().
 * @param tz as for evfn_schedule_parse().
 * @param after_ns as for evfn_schedule_next().
 * @param next_ns as for evfn_schedule_next() (INT64_MAX also on
 *        failure). Not NULL.
 * @return 1 or 0 as evfn_schedule_next(); otherwise the error codes of
 *         evfn_schedule_parse() (use that call to learn where an
 *         expression is malformed). EVFN_EINVAL also for NULL next_ns.
 *
 * Ownership: expr and tz are read during the call only.
 * @since 0.1
 */
EVFN_EXPORT int evfn_schedule_next_expr(const char *expr, const char *tz,
                                        int64_t after_ns, int64_t *next_ns);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_SCHEDULE_H */
