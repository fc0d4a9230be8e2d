/* SPDX-License-Identifier: MIT */
/*
 * Time zones read straight from IANA TZif files (RFC 8536, versions 1 to
 * 3) plus the civil-calendar arithmetic that schedules need. A loaded zone
 * is immutable, so any thread may query it; nothing here touches the
 * process-wide TZ, tzset() or localtime(). Times are POSIX seconds, so
 * zones whose files carry leap-second records (tzdata's right/ tree, which
 * counts leap seconds in time_t) are refused rather than misread.
 */
#ifndef EVFN_TZFILE_INTERNAL_H
#define EVFN_TZFILE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* UTC offsets are refused beyond +-26 h (RFC 8536 allows +-25 h 59 min), so
 * an offset changes by less than 52 h at any transition. */
#define EVFN__TZ_UTOFF_LIMIT (26 * 3600)

/* Where zone files live; a build may override it with -D. */
#ifndef EVFN__ZONEINFO_DIR
#define EVFN__ZONEINFO_DIR "/usr/share/zoneinfo"
#endif

/* Longest zone name accepted (IANA names are far shorter). */
#define EVFN__TZ_NAME_MAX 255

typedef struct evfn__tz evfn__tz;

/* Loads the zone `name` from EVFN__ZONEINFO_DIR. NULL and "UTC" give the
 * built-in UTC zone without touching the file system. Names that are empty,
 * longer than EVFN__TZ_NAME_MAX, start with '/', contain "..", or hold
 * characters outside [A-Za-z0-9/_+-.] are refused without opening anything.
 * Returns 0 and sets *out; EVFN_ETIMEZONE for a refused name, a missing or
 * unreadable file, one that is not valid TZif, or one with leap-second
 * records; EVFN_ENOMEM. *out is NULL on failure. On EVFN_ETIMEZONE, *why
 * (if why is not NULL) points to a static English reason such as "no such
 * zone". */
int evfn__tz_load(const char *name, evfn__tz **out, const char **why);

/* Parses a TZif image held in memory (the whole file). Same returns as
 * evfn__tz_load(); `name` is only recorded and may be NULL. */
int evfn__tz_parse(const uint8_t *buf, size_t len, const char *name,
                   evfn__tz **out, const char **why);

/* Frees a zone from either loader; NULL and the built-in UTC zone are
 * no-ops. */
void evfn__tz_free(evfn__tz *tz);

/* The zone's name as given to the loader ("UTC" for the built-in zone). */
const char *evfn__tz_name(const evfn__tz *tz);

/* The UTC offset in seconds east of Greenwich in effect at POSIX second t.
 * If next_change is not NULL it receives the first instant after t at
 * which the offset may change (INT64_MAX when it never does). Transitions
 * that change nothing but the abbreviation may be reported too. */
int32_t evfn__tz_offset(const evfn__tz *tz, int64_t t, int64_t *next_change);

/* Maps a local wall-clock time (seconds since 1970-01-01T00:00 local, as if
 * the zone were UTC) to the POSIX second it denotes. A wall time that
 * occurs twice (clocks set back) gives the first occurrence. A wall time
 * that is skipped (clocks set forward) gives the first instant after the
 * gap, i.e. the instant of the transition; *skipped, if not NULL, says so. */
int64_t evfn__tz_local_to_utc(const evfn__tz *tz, int64_t local, bool *skipped);

/* Proleptic Gregorian calendar helpers (H. Hinnant's algorithms): days
 * since 1970-01-01 for a civil date and back; valid far beyond the
 * int64-nanosecond range. */
static inline int64_t
evfn__days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static inline void
evfn__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe =
	    (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday ... 6 = Saturday, for days since 1970-01-01 (a Thursday). */
static inline unsigned
evfn__weekday_from_days(int64_t z)
{
	return (unsigned)(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6);
}

static inline bool
evfn__is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static inline unsigned
evfn__days_in_month(int64_t y, unsigned m)
{
	static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30,
	                                      31, 31, 30, 31, 30, 31};
	return m == 2 && evfn__is_leap(y) ? 29u : dim[m - 1];
}

/* Floor division, for splitting possibly negative times. */
static inline int64_t
evfn__floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

#endif /* EVFN_TZFILE_INTERNAL_H */
