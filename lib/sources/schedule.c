/* SPDX-License-Identifier: MIT */
/*
 * Schedule expressions: a parser for rate(), @every, at(), the @-names,
 * Vixie 5-field cron and EventBridge cron(), with error reports that name
 * the byte offset and the reason; and the next-fire search. Cron search
 * finds matching wall-clock minutes field by field (year, month, day,
 * hour, minute), and walks real time one UTC offset at a time to turn them
 * into instants, replaying Vixie cron's clock across each offset change:
 * that is where the daylight-saving rules are applied. Zone files are read
 * by tzfile.c; nothing here keeps global state.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <evfn/schedule.h>

#include "common-internal.h"
#include "schedule-internal.h"
#include "tzfile-internal.h"

/* Years accepted by cron(...) and at(...), as in EventBridge. */
#define YEAR_MIN 1970
#define YEAR_MAX 2199
/* The search never looks past this local year: the int64 nanosecond
 * range ends on 2262-04-11, and later candidates fail secs_to_ns(). */
#define HORIZON_YEAR 2262

#define NS_PER_MIN  (60 * EVFN__NS_PER_SEC)
#define NS_PER_HOUR (60 * NS_PER_MIN)
#define NS_PER_DAY  (24 * NS_PER_HOUR)

/* How a cron job meets a change of UTC offset (schedule.h has the rules
 * and examples). */
enum dst_rule {
	/* Vixie, a fixed-time job: neither the minute nor the hour field
	 * starts with '*'. Skipped wall times are caught up at the end of
	 * the gap; repeated ones run at their first pass. */
	DST_FIXED,
	/* Vixie, a wildcard job (ISC cron's MIN_STAR or HR_STAR): runs on
	 * real time, so skipped wall times never run and repeated ones
	 * run at every pass. */
	DST_WILDCARD,
	/* cron(...), as EventBridge Scheduler: skipped wall times never
	 * run; repeated ones run at their first pass. */
	DST_EVENTBRIDGE
};

/* ISC cron's cron.c classifies how far the wall clock moved between two
 * wake-ups a minute apart. Ahead by fewer than 5 minutes: every job
 * catches up the minutes missed; by fewer than 3 hours: only fixed-time
 * jobs do; further: no job does. Back by less than 182 minutes: fixed-time
 * jobs wait until the wall clock passes where it was; further: the virtual
 * clock jumps back and every job runs again. In seconds of wall time: */
#define VIXIE_SMALL_JUMP    (5 * 60)
#define VIXIE_LARGE_JUMP    (180 * 60)
#define VIXIE_LARGE_SETBACK (182 * 60)

/* The search replays offset changes from this long before the instant it
 * starts at: longer than any stretch of repeated wall time, since offsets
 * change by less than 52 h (tzfile-internal.h). */
#define REPLAY_WINDOW (2 * (int64_t)EVFN__TZ_UTOFF_LIMIT)

/* A cron expression as bit sets. Bit i of a set stands for value i
 * (years: 1970 + i; days of week: 0 = Sunday). */
struct cron {
	uint64_t minute;
	uint32_t hour;
	uint32_t dom;   /* 1-31 */
	uint16_t month; /* 1-12 */
	uint8_t dow;    /* 0-6 */
	/* Unrestricted day fields; when both are restricted a day matches
	 * if either matches (Vixie), otherwise both must match. */
	bool dom_any, dow_any;
	/* EventBridge additions. */
	bool dom_last;         /* L */
	bool dom_last_weekday; /* LW */
	uint32_t dom_nearest;  /* nW: bit n */
	uint8_t dow_last;      /* nL: last such weekday of the month */
	uint8_t dow_nth[5];    /* n#k: dow_nth[k - 1] bit n */
	bool years_any;
	uint64_t years[4]; /* 1970-2199 */
	enum dst_rule dst;
};

struct evfn_schedule {
	evfn__schedule_kind kind;
	int64_t interval_ns; /* INTERVAL */
	int64_t at_s;        /* AT: the instant, POSIX seconds */
	struct cron cron;    /* CRON */
	evfn__tz *tz;
};

/* ---- diagnostics --------------------------------------------------- */

struct pctx {
	const char *expr;
	size_t *err_offset;
	char *err_buf;
	size_t err_len;
	const char *dom_at; /* day-of-month field, for "never fires" */
};

__attribute__((format(printf, 3, 4))) static int
fail(struct pctx *c, const char *at, const char *fmt, ...)
{
	va_list ap;
	if (c->err_offset)
		*c->err_offset = (size_t)(at - c->expr);
	if (c->err_buf && c->err_len > 0) {
		va_start(ap, fmt);
		vsnprintf(c->err_buf, c->err_len, fmt, ap);
		va_end(ap);
	}
	return EVFN_ESCHEDULE;
}

/* ---- lexical helpers (ASCII only, independent of the locale) -------- */

static bool
is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
is_alpha(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static char
to_upper(char ch)
{
	return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
}

static bool
starts_with(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

/* Reads up to max_digits decimal digits at *p into *v. Returns the number
 * of digits read (0 if none); more than max_digits is reported as -1. */
static int
read_uint(const char **p, const char *end, int max_digits, int64_t *v)
{
	int n = 0;
	*v = 0;
	while (*p < end && is_digit(**p)) {
		if (n == max_digits)
			return -1;
		*v = *v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	return n;
}

/* ---- cron fields --------------------------------------------------- */

enum field_kind { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_YEAR };

struct field_spec {
	const char *name;
	int lo, hi;
	const char *const *names; /* NULL if the field has none */
	int name_base;            /* value of names[0] */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY",
                                          "JUN", "JUL", "AUG", "SEP", "OCT",
                                          "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED",
                                        "THU", "FRI", "SAT", NULL};

/* One field per line reads better than clang-format's packing. */
/* clang-format off */
static const struct field_spec vixie_fields[5] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 1},
    {"day-of-week", 0, 7, day_names, 0},
};

static const struct field_spec eb_fields[6] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 1},
    {"day-of-week", 1, 7, day_names, 1},
    {"year", YEAR_MIN, YEAR_MAX, NULL, 0},
};
/* clang-format on */

/* One field being parsed: where it is, what it is, and its bits. */
struct field {
	struct pctx *c;
	int no; /* 1-based, for messages */
	enum field_kind kind;
	const struct field_spec *spec;
	bool eb; /* inside cron(...) */
	uint64_t bits[4];
};

__attribute__((format(printf, 3, 4))) static int
field_fail(struct field *f, const char *at, const char *fmt, ...)
{
	char msg[96];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fail(f->c, at, "field %d (%s): %s", f->no, f->spec->name, msg);
}

static void
set_bit(uint64_t bits[4], int i)
{
	bits[i / 64] |= UINT64_C(1) << (i % 64);
}

static bool
test_bit(const uint64_t bits[4], int i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}

/* Reads a number or (for month and day-of-week) a three-letter name. */
static int
parse_value(struct field *f, const char **p, const char *end, int *v)
{
	const char *s = *p;
	int64_t n;
	int digits = read_uint(p, end, 4, &n);

	if (digits < 0)
		return field_fail(f, s, "number too long");
	if (digits == 0 && f->spec->names != NULL && *p < end &&
	    is_alpha(**p)) {
		const char *q = *p;
		while (q < end && is_alpha(*q))
			q++;
		for (int i = 0; f->spec->names[i] && q - *p == 3; i++) {
			const char *nm = f->spec->names[i];
			if (to_upper((*p)[0]) == nm[0] &&
			    to_upper((*p)[1]) == nm[1] &&
			    to_upper((*p)[2]) == nm[2]) {
				*v = f->spec->name_base + i;
				*p = q;
				return 0;
			}
		}
		return field_fail(f, s, "unknown name '%.*s'", (int)(q - s), s);
	}
	if (digits == 0) {
		if (s < end)
			return field_fail(
			    f, s, "unexpected '%c', expected %s", *s,
			    f->spec->names ? "a number or name" : "a number");
		return field_fail(f, s, "missing value");
	}
	if (n < f->spec->lo || n > f->spec->hi)
		return field_fail(f, s, "value %d out of range %d-%d", (int)n,
		                  f->spec->lo, f->spec->hi);
	*v = (int)n;
	return 0;
}

/* The bit index that value v of this field sets. */
static int
bit_of(const struct field *f, int v)
{
	if (f->kind == F_YEAR)
		return v - YEAR_MIN;
	if (f->kind == F_DOW)
		return f->eb ? v - 1 : v % 7; /* EB 1 = SUN; Vixie 7 = SUN */
	return v;
}

/* The EventBridge-only items of day-of-month and day-of-week. Returns 1
 * when the item is not one of them, 0 when it was consumed, or an
 * error. */
static int
parse_eb_special(struct field *f, struct cron *cr, const char *s, const char *e)
{
	size_t n = (size_t)(e - s);
	const char *p = s;
	int v = 0, rc;

	if (f->kind == F_DOM) {
		if (n == 1 && s[0] == 'L') {
			cr->dom_last = true;
			return 0;
		}
		if (n == 2 && s[0] == 'L' && s[1] == 'W') {
			cr->dom_last_weekday = true;
			return 0;
		}
		if (n >= 2 && e[-1] == 'W') {
			if ((rc = parse_value(f, &p, e - 1, &v)) != 0)
				return rc;
			if (p != e - 1)
				return field_fail(f, p, "unexpected '%c'", *p);
			cr->dom_nearest |= UINT32_C(1) << v;
			return 0;
		}
		return 1;
	}
	if (f->kind != F_DOW)
		return 1;
	if (n == 1 && s[0] == 'L') {
		cr->dow |= 1u << 6; /* L alone: the last day of the week */
		return 0;
	}
	const char *hash = memchr(s, '#', n);
	if (hash != NULL) {
		int64_t k;
		if ((rc = parse_value(f, &p, hash, &v)) != 0)
			return rc;
		if (p != hash)
			return field_fail(f, p, "unexpected '%c'", *p);
		p = hash + 1;
		int digits = read_uint(&p, e, 2, &k);
		if (digits <= 0 || p != e || k < 1 || k > 5)
			return field_fail(f, hash + 1,
			                  "'#' must be followed by 1-5");
		cr->dow_nth[k - 1] |= (uint8_t)(1u << bit_of(f, v));
		return 0;
	}
	if (n >= 2 && e[-1] == 'L') {
		if ((rc = parse_value(f, &p, e - 1, &v)) != 0)
			return rc;
		if (p != e - 1)
			return field_fail(f, p, "unexpected '%c'", *p);
		cr->dow_last |= (uint8_t)(1u << bit_of(f, v));
		return 0;
	}
	return 1;
}

/* Parses one comma-separated item: *, a, a-b, with an optional /step. */
static int
parse_item(struct field *f, struct cron *cr, const char *s, const char *e)
{
	const char *p = s;
	int lo = 0, hi = 0, rc;
	int64_t step = 1;

	if (s == e)
		return field_fail(f, s, "empty list item");
	if (f->eb) {
		rc = parse_eb_special(f, cr, s, e);
		if (rc <= 0)
			return rc;
	}
	if (*p == '*') {
		lo = f->spec->lo;
		hi = f->spec->hi;
		p++;
	} else {
		if ((rc = parse_value(f, &p, e, &lo)) != 0)
			return rc;
		hi = lo;
		if (p < e && *p == '-') {
			const char *q = ++p;
			if ((rc = parse_value(f, &p, e, &hi)) != 0)
				return rc;
			if (hi < lo)
				return field_fail(
				    f, q, "range %d-%d is reversed", lo, hi);
		} else if (p < e && *p == '/') {
			hi = f->spec->hi; /* a/n runs to the maximum */
		}
	}
	if (p < e && *p == '/') {
		const char *q = ++p;
		int digits = read_uint(&p, e, 4, &step);
		if (digits <= 0)
			return field_fail(f, q,
			                  "'/' must be followed by a "
			                  "step number");
		if (step < 1)
			return field_fail(f, q, "step must be at least 1");
	}
	if (p != e)
		return field_fail(f, p, "unexpected '%c'", *p);
	for (int v = lo; v <= hi; v += (int)step)
		set_bit(f->bits, bit_of(f, v));
	return 0;
}

/* Parses the field [s, e) into cr. For day fields, *is_q reports a '?'. */
static int
parse_field(struct field *f, struct cron *cr, const char *s, const char *e,
            bool *is_q)
{
	int rc;

	memset(f->bits, 0, sizeof(f->bits));
	*is_q = false;
	if (e - s == 1 && *s == '?') {
		if (!f->eb || (f->kind != F_DOM && f->kind != F_DOW))
			return field_fail(f, s,
			                  "'?' is only allowed in the "
			                  "day fields of cron(...)");
		*is_q = true;
		for (int v = f->spec->lo; v <= f->spec->hi; v++)
			set_bit(f->bits, bit_of(f, v));
	} else {
		/* AWS: with '#' the day-of-week field holds one expression
		 * ("3#1,6#3" is two, and invalid). */
		const char *first_comma = memchr(s, ',', (size_t)(e - s));
		if (f->eb && f->kind == F_DOW && first_comma != NULL &&
		    memchr(s, '#', (size_t)(e - s)) != NULL)
			return field_fail(f, first_comma + 1,
			                  "'#' allows only one expression in "
			                  "the field");
		for (const char *p = s; p <= e;) {
			const char *comma = memchr(p, ',', (size_t)(e - p));
			const char *ie = comma ? comma : e;
			if ((rc = parse_item(f, cr, p, ie)) != 0)
				return rc;
			p = ie + 1;
		}
	}
	switch (f->kind) {
	case F_MIN:
		cr->minute = f->bits[0];
		break;
	case F_HOUR:
		cr->hour = (uint32_t)f->bits[0];
		break;
	case F_DOM:
		cr->dom = (uint32_t)f->bits[0];
		/* Vixie: a field starting with '*' is unrestricted. */
		cr->dom_any = *is_q || (!f->eb && *s == '*') ||
		              (f->eb && e - s == 1 && *s == '*');
		break;
	case F_MON:
		cr->month = (uint16_t)f->bits[0];
		break;
	case F_DOW:
		cr->dow |= (uint8_t)f->bits[0];
		cr->dow_any = *is_q || (!f->eb && *s == '*') ||
		              (f->eb && e - s == 1 && *s == '*');
		break;
	case F_YEAR:
		memcpy(cr->years, f->bits, sizeof(cr->years));
		cr->years_any = e - s == 1 && *s == '*';
		break;
	}
	return 0;
}

/* Splits [s, e) at blanks into at most max fields. Returns the count,
 * which may exceed max (only the first max are stored). */
static int
split_fields(const char *s, const char *e, const char **fs, const char **fe,
             int max)
{
	int n = 0;
	const char *p = s;
	while (p < e) {
		while (p < e && is_blank(*p))
			p++;
		if (p == e)
			break;
		const char *q = p;
		while (q < e && !is_blank(*q))
			q++;
		if (n < max) {
			fs[n] = p;
			fe[n] = q;
		}
		n++;
		p = q;
	}
	return n;
}

/* ---- cron search --------------------------------------------------- */

static bool
year_ok(const struct cron *c, int64_t y)
{
	if (c->years_any)
		return true;
	if (y < YEAR_MIN || y > YEAR_MAX)
		return false;
	return test_bit(c->years, (int)(y - YEAR_MIN));
}

/* The weekday nearest to day n of the month, without leaving it (Quartz
 * and EventBridge "nW"); 0 if the month has no day n. */
static unsigned
nearest_weekday(int64_t y, unsigned m, unsigned n)
{
	unsigned dim = evfn__days_in_month(y, m);
	if (n > dim)
		return 0;
	unsigned wd = evfn__weekday_from_days(evfn__days_from_civil(y, m, n));
	if (wd == 6) /* Saturday: Friday, or Monday if n is the 1st */
		return n == 1 ? 3 : n - 1;
	if (wd == 0) /* Sunday: Monday, or Friday if n is the last day */
		return n == dim ? n - 2 : n + 1;
	return n;
}

static bool
day_ok(const struct cron *c, int64_t y, unsigned m, unsigned d)
{
	unsigned dim = evfn__days_in_month(y, m);
	unsigned wd = evfn__weekday_from_days(evfn__days_from_civil(y, m, d));

	bool dom = (c->dom >> d) & 1;
	if (!dom && c->dom_last)
		dom = d == dim;
	if (!dom && c->dom_last_weekday)
		dom = d == nearest_weekday(y, m, dim);
	for (unsigned n = 1; !dom && n < 32 && c->dom_nearest >> n; n++)
		dom = ((c->dom_nearest >> n) & 1) &&
		      nearest_weekday(y, m, n) == d;

	bool dow = (c->dow >> wd) & 1;
	if (!dow && ((c->dow_last >> wd) & 1))
		dow = d + 7 > dim;
	if (!dow && ((c->dow_nth[(d - 1) / 7] >> wd) & 1))
		dow = true;

	if (!c->dom_any && !c->dow_any)
		return dom || dow;
	return dom && dow;
}

/* The first set bit at or above i in a set of `width` bits, or -1. */
static int
next_bit(uint64_t set, int i, int width)
{
	for (; i < width; i++)
		if ((set >> i) & 1)
			return i;
	return -1;
}

/* Finds the first matching local minute at or after `from` (local
 * seconds, any alignment is rounded up to the minute). Returns false if
 * there is none up to HORIZON_YEAR. */
static bool
cron_next_local(const struct cron *c, int64_t from, int64_t *out)
{
	from = evfn__floor_div(from + 59, 60) * 60;
	int64_t days = evfn__floor_div(from, 86400);
	int sod = (int)(from - days * 86400);
	int h = sod / 3600, mi = sod % 3600 / 60;
	int64_t y;
	unsigned m, d;

	evfn__civil_from_days(days, &y, &m, &d);
	/* Each step moves strictly forward and resets the smaller units,
	 * so the loop ends at HORIZON_YEAR at the latest. */
	for (;;) {
		if (y > HORIZON_YEAR)
			return false;
		if (!year_ok(c, y)) {
			y++, m = 1, d = 1, h = 0, mi = 0;
			continue;
		}
		if (!((c->month >> m) & 1)) {
			int nm = next_bit(c->month, (int)m + 1, 13);
			if (nm < 0)
				y++, m = 1;
			else
				m = (unsigned)nm;
			d = 1, h = 0, mi = 0;
			continue;
		}
		if (!day_ok(c, y, m, d)) {
			if (++d > evfn__days_in_month(y, m)) {
				d = 1;
				if (++m > 12)
					m = 1, y++;
			}
			h = 0, mi = 0;
			continue;
		}
		int nh = next_bit(c->hour, h, 24);
		if (nh < 0) {
			/* No hour left today: next day. */
			h = 24;
			mi = 0;
		} else if (nh != h) {
			h = nh;
			mi = 0;
		}
		int nmi = h < 24 ? next_bit(c->minute, mi, 60) : -1;
		if (nmi < 0) {
			if (++h < 24) {
				mi = 0;
				continue;
			}
			if (++d > evfn__days_in_month(y, m)) {
				d = 1;
				if (++m > 12)
					m = 1, y++;
			}
			h = 0, mi = 0;
			continue;
		}
		*out = evfn__days_from_civil(y, m, d) * 86400 + h * 3600 +
		       nmi * 60;
		return true;
	}
}

/* Converts POSIX seconds to ns; false if out of range. */
static bool
secs_to_ns(int64_t s, int64_t *ns)
{
	return !__builtin_mul_overflow(s, EVFN__NS_PER_SEC, ns);
}

/* Whether wall times skipped by a jump of `jump` seconds ahead fire at
 * the end of the gap. */
static bool
catches_up(enum dst_rule rule, int64_t jump)
{
	switch (rule) {
	case DST_FIXED:
		return jump < VIXIE_LARGE_JUMP;
	case DST_WILDCARD:
		return jump < VIXIE_SMALL_JUMP;
	case DST_EVENTBRIDGE:
	default:
		return false;
	}
}

/* Wall-clock end of the stretch [t, end) with offset off, without
 * overflowing when the stretch never ends. */
static int64_t
wall_end(int64_t end, int32_t off)
{
	return end > INT64_MAX - EVFN__TZ_UTOFF_LIMIT ? INT64_MAX : end + off;
}

/* The first fire instant (POSIX seconds) later than `after`, in zone tz.
 * Real time is walked one stretch of constant UTC offset at a time. In a
 * stretch, fires are the instants whose wall time is a matching minute;
 * at a change of offset, the clock of cron.c is replayed: `vt` (its
 * virtual time) is the first wall-clock second not yet passed, which a
 * wall clock set back stays behind until it catches up. Returns false
 * when there is no fire before HORIZON_YEAR. */
static bool
cron_next_instant(const struct cron *c, const evfn__tz *tz, int64_t after,
                  int64_t *out)
{
	int64_t t = after + 1 - REPLAY_WINDOW, end, m;
	int32_t off = evfn__tz_offset(tz, t, &end);
	int64_t vt = t + off;

	/* Each turn moves t to the next change of offset; past the int64
	 * nanosecond range nothing can fire. */
	while (t <= INT64_MAX / EVFN__NS_PER_SEC) {
		int64_t lo = (t > after ? t : after + 1) + off;
		if (c->dst != DST_WILDCARD && lo < vt)
			lo = vt; /* repeated wall time: wildcard jobs only */
		if (lo < wall_end(end, off)) {
			/* No match at all from lo on: walls set back later
			 * could only repeat what lay before lo, up to the
			 * horizon, so the schedule has ended. */
			if (!cron_next_local(c, lo, &m))
				return false;
			if (m < wall_end(end, off)) {
				*out = m - off;
				return true;
			}
		}
		if (end == INT64_MAX)
			return false;
		if (vt < end + off)
			vt = end + off;
		int64_t next_end;
		int32_t next_off = evfn__tz_offset(tz, end, &next_end);
		int64_t wall = end + next_off, jump = wall - vt;
		if (jump > 0) {
			/* The clock skips [vt, wall). */
			if (end > after && catches_up(c->dst, jump) &&
			    cron_next_local(c, vt, &m) && m < wall) {
				*out = end;
				return true;
			}
			vt = wall;
		} else if (jump <= -VIXIE_LARGE_SETBACK &&
		           c->dst != DST_EVENTBRIDGE) {
			vt = wall;
		}
		t = end;
		off = next_off;
		end = next_end;
	}
	return false;
}

static int
cron_next(const evfn_schedule *s, int64_t after_ns, int64_t *next_ns)
{
	/* A whole-second fire time f is later than after_ns exactly when
	 * f > floor(after_ns / 1e9). */
	int64_t f;
	if (!cron_next_instant(&s->cron, s->tz,
	                       evfn__floor_div(after_ns, EVFN__NS_PER_SEC), &f))
		return 0;
	return secs_to_ns(f, next_ns) ? 1 : 0;
}

/* ---- the expression forms ------------------------------------------ */

static int
parse_cron_fields(struct pctx *c, struct cron *cr, const char *s, const char *e,
                  bool eb)
{
	const char *fs[6], *fe[6];
	int want = eb ? 6 : 5;
	const struct field_spec *specs = eb ? eb_fields : vixie_fields;
	bool q[6] = {false};
	int rc;

	int n = split_fields(s, e, fs, fe, want);
	if (n == 1 && !eb && !is_digit(*s) && *s != '*')
		return fail(c, s,
		            "unrecognised expression: expected rate(...), "
		            "cron(...), at(...), @every, an @-name or 5 cron "
		            "fields");
	if (n != want) {
		const char *at = n > want ? fs[want - 1] : e;
		if (n > want) {
			/* Point at the first extra field. */
			const char *p = fe[want - 1];
			while (p < e && is_blank(*p))
				p++;
			at = p;
		}
		return fail(c, at,
		            "expected %d fields (minute hour day-of-month "
		            "month day-of-week%s), got %d",
		            want, eb ? " year" : "", n);
	}
	memset(cr, 0, sizeof(*cr));
	cr->years_any = !eb;
	c->dom_at = fs[F_DOM];
	for (int i = 0; i < want; i++) {
		struct field f = {.c = c,
		                  .no = i + 1,
		                  .kind = (enum field_kind)i,
		                  .spec = &specs[i],
		                  .eb = eb};
		if ((rc = parse_field(&f, cr, fs[i], fe[i], &q[i])) != 0)
			return rc;
	}
	if (eb && q[F_DOM] == q[F_DOW])
		return fail(c, fs[F_DOM],
		            "cron(): exactly one of day-of-month (field 3) and "
		            "day-of-week (field 5) must be '?'");
	/* ISC cron sets MIN_STAR and HR_STAR from the first character of
	 * the field's text: a star with a step or in a list ("*,5")
	 * counts, "0-59" does not. */
	if (eb)
		cr->dst = DST_EVENTBRIDGE;
	else if (*fs[F_MIN] == '*' || *fs[F_HOUR] == '*')
		cr->dst = DST_WILDCARD;
	else
		cr->dst = DST_FIXED;
	return 0;
}

static int
parse_rate(struct pctx *c, evfn_schedule *s, const char *p, const char *e)
{
	static const struct {
		const char *one, *many;
		int64_t ns;
	} units[] = {{"minute", "minutes", NS_PER_MIN},
	             {"hour", "hours", NS_PER_HOUR},
	             {"day", "days", NS_PER_DAY}};
	const char *v0 = p;
	int64_t v;

	int digits = read_uint(&p, e, 12, &v);
	if (digits < 0)
		return fail(c, v0, "rate(): value too large");
	if (digits == 0 || v == 0)
		return fail(c, v0, "rate(): value must be a positive integer");
	if (p == e || !is_blank(*p))
		return fail(c, p,
		            "rate(): expected a blank and a unit after "
		            "the value");
	while (p < e && is_blank(*p))
		p++;
	const char *u0 = p;
	while (p < e && is_alpha(*p))
		p++;
	size_t ulen = (size_t)(p - u0);
	if (p != e)
		return fail(c, p, "rate(): unexpected '%c'", *p);
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(units); i++) {
		bool one = strlen(units[i].one) == ulen &&
		           memcmp(units[i].one, u0, ulen) == 0;
		bool many = strlen(units[i].many) == ulen &&
		            memcmp(units[i].many, u0, ulen) == 0;
		if (!one && !many)
			continue;
		if (v == 1 && many)
			return fail(c, u0,
			            "rate(): value 1 needs the singular "
			            "unit '%s'",
			            units[i].one);
		if (v > 1 && one)
			return fail(c, u0,
			            "rate(): value %lld needs the plural unit "
			            "'%s'",
			            (long long)v, units[i].many);
		if (__builtin_mul_overflow(v, units[i].ns, &s->interval_ns))
			return fail(c, v0, "rate(): value too large");
		s->kind = EVFN__SCHEDULE_INTERVAL;
		return 0;
	}
	return fail(c, u0, "rate(): unit must be minute(s), hour(s) or day(s)");
}

static int
parse_every(struct pctx *c, evfn_schedule *s, const char *p, const char *e)
{
	int64_t total = 0;

	if (p == e)
		return fail(c, p,
		            "@every: missing duration such as 5m or "
		            "1m30s");
	while (p < e) {
		const char *t0 = p;
		int64_t v, ns, unit;
		int digits = read_uint(&p, e, 12, &v);
		if (digits < 0)
			return fail(c, t0, "@every: number too long");
		if (digits == 0)
			return fail(c, p, "@every: expected a number at '%c'",
			            *p);
		const char *u = p;
		if (starts_with(p, e, "ms")) {
			unit = EVFN__NS_PER_MS;
			p += 2;
		} else if (p < e && (*p == 's' || *p == 'm' || *p == 'h')) {
			unit = *p == 's'   ? EVFN__NS_PER_SEC
			       : *p == 'm' ? NS_PER_MIN
			                   : NS_PER_HOUR;
			p++;
		} else if (p == e) {
			return fail(c, u,
			            "@every: missing unit (ms, s, m "
			            "or h)");
		} else {
			return fail(c, u,
			            "@every: unknown unit '%c' (use ms, s, m "
			            "or h)",
			            *u);
		}
		if (__builtin_mul_overflow(v, unit, &ns) ||
		    __builtin_add_overflow(total, ns, &total))
			return fail(c, t0, "@every: duration too long");
	}
	if (total <= 0)
		return fail(c, e, "@every: duration must be positive");
	s->kind = EVFN__SCHEDULE_INTERVAL;
	s->interval_ns = total;
	return 0;
}

/* Reads exactly `n` digits in [lo, hi] for part `what` of at(). */
static int
at_part(struct pctx *c, const char **p, const char *e, int n, int lo, int hi,
        const char *what, int *out)
{
	const char *s = *p;
	int64_t v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (*p == e || !is_digit(**p))
			return fail(c, *p,
			            "at(): expected YYYY-MM-DDThh:mm:ss (%s "
			            "has %d digits)",
			            what, n);
		v = v * 10 + (**p - '0');
	}
	if (v < lo || v > hi)
		return fail(c, s, "at(): %s %d out of range %d-%d", what,
		            (int)v, lo, hi);
	*out = (int)v;
	return 0;
}

static int
at_sep(struct pctx *c, const char **p, const char *e, char sep)
{
	if (*p == e || **p != sep)
		return fail(c, *p,
		            "at(): expected '%c' (format "
		            "YYYY-MM-DDThh:mm:ss)",
		            sep);
	(*p)++;
	return 0;
}

static int
parse_at(struct pctx *c, evfn_schedule *s, const char *p, const char *e,
         int64_t *local)
{
	int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, rc;
	const char *dp;

	if ((rc = at_part(c, &p, e, 4, YEAR_MIN, YEAR_MAX, "year", &y)) ||
	    (rc = at_sep(c, &p, e, '-')) ||
	    (rc = at_part(c, &p, e, 2, 1, 12, "month", &mo)) ||
	    (rc = at_sep(c, &p, e, '-')))
		return rc;
	dp = p;
	if ((rc = at_part(c, &p, e, 2, 1, 31, "day", &d)))
		return rc;
	if (d > (int)evfn__days_in_month(y, (unsigned)mo))
		return fail(c, dp,
		            "at(): day %d out of range 1-%u for "
		            "%04d-%02d",
		            d, evfn__days_in_month(y, (unsigned)mo), y, mo);
	if ((rc = at_sep(c, &p, e, 'T')) ||
	    (rc = at_part(c, &p, e, 2, 0, 23, "hour", &h)) ||
	    (rc = at_sep(c, &p, e, ':')) ||
	    (rc = at_part(c, &p, e, 2, 0, 59, "minute", &mi)) ||
	    (rc = at_sep(c, &p, e, ':')) ||
	    (rc = at_part(c, &p, e, 2, 0, 59, "second", &sec)))
		return rc;
	if (p != e)
		return fail(c, p, "at(): unexpected '%c'", *p);
	*local = evfn__days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	         h * 3600 + mi * 60 + sec;
	s->kind = EVFN__SCHEDULE_AT;
	return 0;
}

/* Parses "name(...)" wrappers: checks the closing parenthesis and that
 * nothing follows it; [*is, *ie) is the inside. */
static int
unwrap(struct pctx *c, const char *s, const char *e, size_t name_len,
       const char **is, const char **ie)
{
	const char *close = memchr(s, ')', (size_t)(e - s));
	if (close == NULL)
		return fail(c, e, "missing ')'");
	if (close + 1 != e)
		return fail(c, close + 1, "unexpected text after ')'");
	*is = s + name_len + 1;
	*ie = close;
	return 0;
}

static const struct {
	const char *name, *cron;
} macros[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* Parses the expression [s, e) (trimmed) into sched. For at(), *local
 * receives the wall time, which the caller resolves once the zone is
 * loaded. */
static int
parse_expr(struct pctx *c, evfn_schedule *sched, const char *s, const char *e,
           int64_t *local)
{
	const char *is = s, *ie = e;
	int rc;

	if (s == e)
		return fail(c, s, "empty expression");
	if (starts_with(s, e, "rate(")) {
		if ((rc = unwrap(c, s, e, 4, &is, &ie)) != 0)
			return rc;
		return parse_rate(c, sched, is, ie);
	}
	if (starts_with(s, e, "at(")) {
		if ((rc = unwrap(c, s, e, 2, &is, &ie)) != 0)
			return rc;
		return parse_at(c, sched, is, ie, local);
	}
	if (starts_with(s, e, "cron(")) {
		if ((rc = unwrap(c, s, e, 4, &is, &ie)) != 0)
			return rc;
		sched->kind = EVFN__SCHEDULE_CRON;
		return parse_cron_fields(c, &sched->cron, is, ie, true);
	}
	if (*s == '@') {
		const char *p = s;
		while (p < e && !is_blank(*p))
			p++;
		size_t n = (size_t)(p - s);
		if (n == 6 && memcmp(s, "@every", 6) == 0) {
			while (p < e && is_blank(*p))
				p++;
			return parse_every(c, sched, p, e);
		}
		for (size_t i = 0; i < EVFN__ARRAY_SIZE(macros); i++) {
			if (strlen(macros[i].name) != n ||
			    memcmp(macros[i].name, s, n) != 0)
				continue;
			while (p < e && is_blank(*p))
				p++;
			if (p != e)
				return fail(c, p, "unexpected text after %s",
				            macros[i].name);
			const char *m = macros[i].cron;
			sched->kind = EVFN__SCHEDULE_CRON;
			return parse_cron_fields(c, &sched->cron, m,
			                         m + strlen(m), false);
		}
		return fail(c, s,
		            "unknown '%.*s' (use @every, @yearly, @annually, "
		            "@monthly, @weekly, @daily, @midnight or @hourly)",
		            (int)(n > 16 ? 16 : n), s);
	}
	sched->kind = EVFN__SCHEDULE_CRON;
	return parse_cron_fields(c, &sched->cron, s, e, false);
}

/* The first local second a cron expression could fire at: the start of
 * its first allowed year. */
static int64_t
cron_search_start(const struct cron *cr)
{
	int y = YEAR_MIN;
	if (!cr->years_any)
		while (y < YEAR_MAX && !test_bit(cr->years, y - YEAR_MIN))
			y++;
	return evfn__days_from_civil(y, 1, 1) * 86400;
}

int
evfn_schedule_parse(const char *expr, const char *tz, evfn_schedule **out,
                    size_t *err_offset, char *err_buf, size_t err_len)
{
	struct pctx c = {expr, err_offset, err_buf, err_len, NULL};
	evfn_schedule *s;
	int64_t local = 0, first;
	int rc;

	if (err_offset)
		*err_offset = 0;
	if (err_buf && err_len > 0)
		err_buf[0] = '\0';
	if (out)
		*out = NULL;
	if (expr == NULL || out == NULL) {
		if (err_buf && err_len > 0)
			snprintf(err_buf, err_len, "%s",
			         "expr and out must not be NULL");
		return EVFN_EINVAL;
	}
	s = evfn__calloc(1, sizeof(*s));
	if (s == NULL)
		return EVFN_ENOMEM;

	const char *b = expr, *e = expr + strlen(expr);
	while (b < e && is_blank(*b))
		b++;
	while (e > b && is_blank(e[-1]))
		e--;
	if ((rc = parse_expr(&c, s, b, e, &local)) != 0)
		goto fail;

	const char *why = "out of memory";
	rc = evfn__tz_load(tz, &s->tz, &why);
	if (rc != 0) {
		if (err_buf && err_len > 0)
			snprintf(err_buf, err_len, "time zone '%.64s': %s",
			         tz ? tz : "", why);
		goto fail;
	}
	if (s->kind == EVFN__SCHEDULE_AT)
		s->at_s = evfn__tz_local_to_utc(s->tz, local, NULL);
	if (s->kind == EVFN__SCHEDULE_CRON &&
	    !cron_next_local(&s->cron, cron_search_start(&s->cron), &first)) {
		rc = fail(&c, c.dom_at,
		          "never fires: no date matches the day-of-month, "
		          "month%s fields",
		          s->cron.years_any ? " and day-of-week"
		                            : ", day-of-week and year");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	evfn_schedule_free(s);
	return rc;
}

void
evfn_schedule_free(evfn_schedule *s)
{
	if (s == NULL)
		return;
	evfn__tz_free(s->tz);
	evfn__free(s);
}

int
evfn__schedule_next_anchored(const evfn_schedule *s, int64_t anchor_ns,
                             int64_t after_ns, int64_t *next_ns)
{
	if (s == NULL || next_ns == NULL)
		return EVFN_EINVAL;
	*next_ns = INT64_MAX;
	switch (s->kind) {
	case EVFN__SCHEDULE_INTERVAL: {
		/* Unsigned arithmetic: after - anchor may exceed INT64_MAX. */
		uint64_t iv = (uint64_t)s->interval_ns, k = 1, step;
		if (after_ns >= anchor_ns)
			k = ((uint64_t)after_ns - (uint64_t)anchor_ns) / iv + 1;
		if (__builtin_mul_overflow(k, iv, &step) ||
		    step > (uint64_t)INT64_MAX - (uint64_t)anchor_ns)
			return 0;
		*next_ns = (int64_t)((uint64_t)anchor_ns + step);
		return 1;
	}
	case EVFN__SCHEDULE_AT:
		if (s->at_s <= evfn__floor_div(after_ns, EVFN__NS_PER_SEC))
			return 0;
		return secs_to_ns(s->at_s, next_ns) ? 1 : 0;
	case EVFN__SCHEDULE_CRON:
	default: {
		int rc = cron_next(s, after_ns, next_ns);
		if (rc != 1)
			*next_ns = INT64_MAX;
		return rc;
	}
	}
}

int
evfn_schedule_next(const evfn_schedule *s, int64_t after_ns, int64_t *next_ns)
{
	if (s == NULL || next_ns == NULL)
		return EVFN_EINVAL;
	if (s->kind == EVFN__SCHEDULE_INTERVAL) {
		*next_ns = INT64_MAX;
		int64_t next;
		if (__builtin_add_overflow(after_ns, s->interval_ns, &next))
			return 0;
		*next_ns = next;
		return 1;
	}
	return evfn__schedule_next_anchored(s, 0, after_ns, next_ns);
}

int
evfn_schedule_next_expr(const char *expr, const char *tz, int64_t after_ns,
                        int64_t *next_ns)
{
	evfn_schedule *s;
	int rc;

	if (next_ns == NULL)
		return EVFN_EINVAL;
	*next_ns = INT64_MAX;
	rc = evfn_schedule_parse(expr, tz, &s, NULL, NULL, 0);
	if (rc != 0)
		return rc;
	rc = evfn_schedule_next(s, after_ns, next_ns);
	evfn_schedule_free(s);
	return rc;
}

evfn__schedule_kind
evfn__schedule_kind_of(const evfn_schedule *s)
{
	return s->kind;
}

int64_t
evfn__schedule_interval_ns(const evfn_schedule *s)
{
	return s->kind == EVFN__SCHEDULE_INTERVAL ? s->interval_ns : 0;
}

void
evfn__schedule_set_zone(evfn_schedule *s, evfn__tz *tz)
{
	evfn__tz_free(s->tz);
	s->tz = tz;
}
