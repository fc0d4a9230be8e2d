/* SPDX-License-Identifier: MIT */
/*
 * A TZif reader (RFC 8536): the 64-bit section of version 2 and 3 files,
 * the 32-bit one of version 1 files, and the POSIX TZ string in the footer
 * that governs every instant after the last transition (for example
 * Europe/Berlin after 2037 in "fat" files, or after 2007 in "slim" ones).
 * Zones are loaded into immutable objects, so lookups need no lock and
 * never consult the process-wide TZ. Calendar rules come from
 * tzfile-internal.h.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common-internal.h"
#include "tzfile-internal.h"

/* Files larger than this are not zone files (the largest IANA zone is a
 * few kilobytes). */
#define TZ_FILE_MAX (256 * 1024)

/* One date of a POSIX TZ rule: Jn, n or Mm.w.d, plus the local time of
 * day (seconds, may be negative or exceed a day in version 3). */
struct rule_date {
	char kind; /* 'J', 'D' (zero-based day) or 'M' */
	int n;     /* J: 1-365; D: 0-365 */
	int m, w, d;
	int32_t time;
};

/* The POSIX TZ string "std offset [dst [offset] [,start,end]]". */
struct tz_rule {
	int32_t std_off; /* seconds east of UTC */
	int32_t dst_off;
	bool has_dst;
	struct rule_date start, end;
};

struct evfn__tz {
	size_t ntrans;
	int64_t *trans; /* ntrans ascending transition instants */
	uint8_t *idx;   /* ntrans local-time-type indexes */
	size_t ntypes;
	int32_t *utoff; /* ntypes offsets */
	bool has_rule;  /* footer present and non-empty */
	struct tz_rule rule;
	char name[];
};

/* The built-in UTC zone: no transitions, one type with offset 0. */
static int32_t utc_utoff[1] = {0};
static struct evfn__tz utc_zone = {.ntypes = 1, .utoff = utc_utoff};

const char *
evfn__tz_name(const evfn__tz *tz)
{
	return tz == &utc_zone ? "UTC" : tz->name;
}

void
evfn__tz_free(evfn__tz *tz)
{
	if (tz == NULL || tz == &utc_zone)
		return;
	evfn__free(tz->trans);
	evfn__free(tz->idx);
	evfn__free(tz->utoff);
	evfn__free(tz);
}

/* ---- POSIX TZ strings ---------------------------------------------- */

/* Parses a zone abbreviation: alphabetic (3 or more letters) or quoted
 * "<...>" with alphanumerics and signs. Returns the position after it, or
 * NULL. */
static const char *
parse_abbr(const char *p)
{
	const char *s = p;
	if (*p == '<') {
		p++;
		while (*p && *p != '>') {
			if (!((*p >= 'A' && *p <= 'Z') ||
			      (*p >= 'a' && *p <= 'z') ||
			      (*p >= '0' && *p <= '9') || *p == '+' ||
			      *p == '-'))
				return NULL;
			p++;
		}
		if (*p != '>' || p - s < 4)
			return NULL;
		return p + 1;
	}
	while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
		p++;
	return p - s >= 3 ? p : NULL;
}

/* Parses [+-]hh[:mm[:ss]] with hh up to max_h into seconds. */
static const char *
parse_hms(const char *p, int max_h, int32_t *out)
{
	int sign = 1;
	if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
	}
	int part[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++) {
		if (i > 0) {
			if (*p != ':')
				break;
			p++;
		}
		if (*p < '0' || *p > '9')
			return NULL;
		int v = 0, digits = 0;
		while (*p >= '0' && *p <= '9' && digits < 3) {
			v = v * 10 + (*p - '0');
			p++;
			digits++;
		}
		part[i] = v;
	}
	if (part[0] > max_h || part[1] > 59 || part[2] > 59)
		return NULL;
	*out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
	return p;
}

static const char *
parse_uint(const char *p, int lo, int hi, int *out)
{
	if (*p < '0' || *p > '9')
		return NULL;
	int v = 0;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p - '0');
		if (v > hi)
			return NULL;
		p++;
	}
	if (v < lo)
		return NULL;
	*out = v;
	return p;
}

static const char *
parse_rule_date(const char *p, struct rule_date *rd)
{
	memset(rd, 0, sizeof(*rd));
	if (*p == 'J') {
		rd->kind = 'J';
		p = parse_uint(p + 1, 1, 365, &rd->n);
	} else if (*p == 'M') {
		rd->kind = 'M';
		p = parse_uint(p + 1, 1, 12, &rd->m);
		if (p == NULL || *p != '.')
			return NULL;
		p = parse_uint(p + 1, 1, 5, &rd->w);
		if (p == NULL || *p != '.')
			return NULL;
		p = parse_uint(p + 1, 0, 6, &rd->d);
	} else {
		rd->kind = 'D';
		p = parse_uint(p, 0, 365, &rd->n);
	}
	if (p == NULL)
		return NULL;
	rd->time = 2 * 3600; /* POSIX default: 02:00:00 */
	if (*p == '/')
		p = parse_hms(p + 1, 167, &rd->time); /* RFC 8536 version 3 */
	return p;
}

/* Parses a footer TZ string. Returns 0, or -1 when it is malformed. An
 * empty string leaves has_rule false. */
static int
parse_tz_string(const char *s, struct evfn__tz *tz)
{
	struct tz_rule *r = &tz->rule;
	int32_t v;
	const char *p;

	if (*s == '\0')
		return 0;
	if ((p = parse_abbr(s)) == NULL || (p = parse_hms(p, 24, &v)) == NULL)
		return -1;
	r->std_off = -v; /* POSIX offsets count hours west */
	r->dst_off = r->std_off;
	if (*p != '\0') {
		if ((p = parse_abbr(p)) == NULL)
			return -1;
		r->has_dst = true;
		r->dst_off = r->std_off + 3600;
		if (*p != ',' && *p != '\0') {
			if ((p = parse_hms(p, 24, &v)) == NULL)
				return -1;
			r->dst_off = -v;
		}
		if (*p == ',') {
			if ((p = parse_rule_date(p + 1, &r->start)) == NULL ||
			    *p != ',' ||
			    (p = parse_rule_date(p + 1, &r->end)) == NULL)
				return -1;
		} else {
			/* No rule: the POSIX-era US default that glibc
			 * also applies. zic always writes a rule. */
			parse_rule_date("M3.2.0", &r->start);
			parse_rule_date("M11.1.0", &r->end);
		}
	}
	if (*p != '\0' || r->std_off <= -EVFN__TZ_UTOFF_LIMIT ||
	    r->std_off >= EVFN__TZ_UTOFF_LIMIT ||
	    r->dst_off <= -EVFN__TZ_UTOFF_LIMIT ||
	    r->dst_off >= EVFN__TZ_UTOFF_LIMIT)
		return -1;
	tz->has_rule = true;
	return 0;
}

/* Local midnight (as seconds since the epoch on the local wall clock) of
 * a rule date in year y, plus its time of day. */
static int64_t
rule_local_time(const struct rule_date *rd, int64_t y)
{
	int64_t days;
	switch (rd->kind) {
	case 'J':
		days = evfn__days_from_civil(y, 1, 1) + rd->n - 1;
		if (evfn__is_leap(y) && rd->n >= 60)
			days++; /* Jn never counts February 29 */
		break;
	case 'D':
		days = evfn__days_from_civil(y, 1, 1) + rd->n;
		break;
	default: {
		int64_t first = evfn__days_from_civil(y, (unsigned)rd->m, 1);
		unsigned wd0 = evfn__weekday_from_days(first);
		int day = 1 + (rd->d - (int)wd0 + 7) % 7 + (rd->w - 1) * 7;
		int dim = (int)evfn__days_in_month(y, (unsigned)rd->m);
		while (day > dim)
			day -= 7; /* week 5 means "the last" */
		days = first + day - 1;
		break;
	}
	}
	return days * 86400 + rd->time;
}

/* The offset the footer rule gives at instant t and its next change. */
static int32_t
rule_offset(const struct tz_rule *r, int64_t t, int64_t *next_change)
{
	if (!r->has_dst) {
		if (next_change)
			*next_change = INT64_MAX;
		return r->std_off;
	}
	/* Transitions of the years around t, as (instant, offset after).
	 * The start is given in standard time, the end in daylight time. */
	struct {
		int64_t at;
		int32_t off;
	} ev[8];
	int64_t days = evfn__floor_div(t + r->std_off, 86400);
	int64_t y;
	unsigned m, d;
	evfn__civil_from_days(days, &y, &m, &d);
	size_t n = 0;
	for (int k = 0; k < 4; k++) {
		int64_t yy = y - 1 + k;
		ev[n].at = rule_local_time(&r->start, yy) - r->std_off;
		ev[n++].off = r->dst_off;
		ev[n].at = rule_local_time(&r->end, yy) - r->dst_off;
		ev[n++].off = r->std_off;
	}
	/* Insertion sort: eight elements, mostly ordered already. */
	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j > 0 && ev[j - 1].at > ev[j].at; j--) {
			int64_t a = ev[j].at;
			int32_t o = ev[j].off;
			ev[j] = ev[j - 1];
			ev[j - 1].at = a;
			ev[j - 1].off = o;
		}
	}
	int32_t off = ev[0].off == r->dst_off ? r->std_off : r->dst_off;
	int64_t next = INT64_MAX;
	for (size_t i = 0; i < n; i++) {
		if (ev[i].at <= t) {
			off = ev[i].off;
		} else {
			next = ev[i].at;
			break;
		}
	}
	if (next_change)
		*next_change = next;
	return off;
}

int32_t
evfn__tz_offset(const evfn__tz *tz, int64_t t, int64_t *next_change)
{
	size_t n = tz->ntrans;

	/* RFC 8536 3.2: without transitions the footer, if any, governs
	 * everything; before the first transition type 0 applies; after
	 * the last one the footer applies, else the last type. */
	if (n == 0 && tz->has_rule)
		return rule_offset(&tz->rule, t, next_change);
	if (n == 0 || t < tz->trans[0]) {
		if (next_change)
			*next_change = n ? tz->trans[0] : INT64_MAX;
		return tz->utoff[0];
	}
	if (t >= tz->trans[n - 1]) {
		if (tz->has_rule)
			return rule_offset(&tz->rule, t, next_change);
		if (next_change)
			*next_change = INT64_MAX;
		return tz->utoff[tz->idx[n - 1]];
	}
	/* Binary search for the last transition <= t. */
	size_t lo = 0, hi = n - 1; /* trans[lo] <= t < trans[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (tz->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	if (next_change)
		*next_change = tz->trans[hi];
	return tz->utoff[tz->idx[lo]];
}

int64_t
evfn__tz_local_to_utc(const evfn__tz *tz, int64_t local, bool *skipped)
{
	/* Offsets are bounded by EVFN__TZ_UTOFF_LIMIT, so the instant lies in
	 * [local - LIMIT, local + LIMIT]. Walk the constant-offset
	 * segments of that window in order: the first segment whose local
	 * span holds `local` gives the first occurrence; a segment whose
	 * local span starts after `local` means `local` fell into a gap
	 * and that segment's start is the first instant after it. The
	 * first segment is clipped to the window start, where the local
	 * time is at most `local`, so a gap is never reported early. */
	int64_t seg = local - EVFN__TZ_UTOFF_LIMIT;
	if (skipped)
		*skipped = false;
	for (int guard = 0; guard < 1024; guard++) {
		int64_t next;
		int32_t off = evfn__tz_offset(tz, seg, &next);
		if (local < seg + off) {
			if (skipped)
				*skipped = true;
			return seg;
		}
		if (next == INT64_MAX || local < next + off)
			return local - off;
		seg = next;
	}
	/* Unreachable for valid zones: a window of 52 h cannot hold 1024
	 * transitions that all pass the checks in evfn__tz_parse(). */
	return local - evfn__tz_offset(tz, local, NULL);
}

/* ---- TZif files ---------------------------------------------------- */

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t
be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

struct tzif_header {
	int version; /* 1, 2, 3, ... */
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

#define TZIF_HEADER_LEN 44

static int
read_header(const uint8_t *p, size_t len, struct tzif_header *h)
{
	if (len < TZIF_HEADER_LEN || memcmp(p, "TZif", 4) != 0)
		return -1;
	h->version = p[4] == 0 ? 1 : p[4] - '0';
	if (h->version < 1 || h->version > 9)
		return -1;
	h->isutcnt = be32(p + 20);
	h->isstdcnt = be32(p + 24);
	h->leapcnt = be32(p + 28);
	h->timecnt = be32(p + 32);
	h->typecnt = be32(p + 36);
	h->charcnt = be32(p + 40);
	if (h->typecnt == 0 || h->typecnt > 256 || h->timecnt > 100000 ||
	    h->leapcnt > 10000 || h->charcnt > 100000 ||
	    (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
	    (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
		return -1;
	return 0;
}

/* Size of the data block after a header, with `tsize`-byte times. */
static size_t
block_len(const struct tzif_header *h, size_t tsize)
{
	return (size_t)h->timecnt * tsize + h->timecnt + h->typecnt * 6u +
	       h->charcnt + (size_t)h->leapcnt * (tsize + 4) + h->isstdcnt +
	       h->isutcnt;
}

/* Returns EVFN_ETIMEZONE with its reason. */
static int
refuse(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return EVFN_ETIMEZONE;
}

static const char not_tzif[] = "not a valid TZif file";

int
evfn__tz_parse(const uint8_t *buf, size_t len, const char *name, evfn__tz **out,
               const char **why)
{
	struct tzif_header h;
	const uint8_t *p = buf, *end = buf + len;
	size_t tsize = 4;
	size_t nlen = name ? strlen(name) : 0;

	*out = NULL;
	if (read_header(p, len, &h) != 0 ||
	    block_len(&h, 4) > len - TZIF_HEADER_LEN)
		return refuse(why, not_tzif);
	if (h.version >= 2) {
		/* Skip the version 1 block; use the 64-bit one. */
		p += TZIF_HEADER_LEN + block_len(&h, 4);
		if (read_header(p, (size_t)(end - p), &h) != 0 ||
		    block_len(&h, 8) > (size_t)(end - p) - TZIF_HEADER_LEN)
			return refuse(why, not_tzif);
		tsize = 8;
	}
	/* Leap-second records mean the file's times count leap seconds
	 * (tzdata's right/ zones): read as POSIX seconds, every instant
	 * would be off by up to 27 s, so such zones are refused. */
	if (h.leapcnt != 0)
		return refuse(why, "counts leap seconds (a right/ zone); use "
		                   "the zone without right/");
	p += TZIF_HEADER_LEN;

	evfn__tz *tz = evfn__calloc(1, sizeof(*tz) + nlen + 1);
	if (tz == NULL)
		return EVFN_ENOMEM;
	if (nlen)
		memcpy(tz->name, name, nlen);
	tz->ntrans = h.timecnt;
	tz->ntypes = h.typecnt;
	tz->trans = evfn__malloc(sizeof(int64_t) * (h.timecnt ? h.timecnt : 1));
	tz->idx = evfn__malloc(h.timecnt ? h.timecnt : 1);
	tz->utoff = evfn__malloc(sizeof(int32_t) * h.typecnt);
	if (tz->trans == NULL || tz->idx == NULL || tz->utoff == NULL) {
		evfn__tz_free(tz);
		return EVFN_ENOMEM;
	}

	for (size_t i = 0; i < h.timecnt; i++, p += tsize) {
		tz->trans[i] =
		    tsize == 8 ? (int64_t)be64(p) : (int64_t)(int32_t)be32(p);
		if (i > 0 && tz->trans[i] <= tz->trans[i - 1])
			goto bad;
	}
	for (size_t i = 0; i < h.timecnt; i++, p++) {
		if (*p >= h.typecnt)
			goto bad;
		tz->idx[i] = *p;
	}
	for (size_t i = 0; i < h.typecnt; i++, p += 6) {
		int32_t off = (int32_t)be32(p);
		if (off <= -EVFN__TZ_UTOFF_LIMIT ||
		    off >= EVFN__TZ_UTOFF_LIMIT || p[4] > 1)
			goto bad;
		tz->utoff[i] = off;
	}
	/* Abbreviations and the std/UT indicators are not needed:
	 * schedules work in POSIX seconds and offsets only. */
	p += h.charcnt + h.isstdcnt + h.isutcnt;

	if (h.version >= 2) {
		/* Footer: "\n" TZ-string "\n". */
		if (p >= end || *p != '\n')
			goto bad;
		const uint8_t *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
		size_t flen;
		char footer[128];
		if (nl == NULL ||
		    (flen = (size_t)(nl - p - 1)) >= sizeof(footer))
			goto bad;
		memcpy(footer, p + 1, flen);
		footer[flen] = '\0';
		if (memchr(footer, '\0', flen) != NULL ||
		    parse_tz_string(footer, tz) != 0)
			goto bad;
	}
	*out = tz;
	return 0;
bad:
	evfn__tz_free(tz);
	return refuse(why, not_tzif);
}

static bool
valid_zone_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > EVFN__TZ_NAME_MAX || name[0] == '/' ||
	    strstr(name, "..") != NULL)
		return false;
	for (const char *c = name; *c; c++) {
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || *c == '/' || *c == '_' ||
		      *c == '-' || *c == '+' || *c == '.'))
			return false;
	}
	return true;
}

int
evfn__tz_load(const char *name, evfn__tz **out, const char **why)
{
	char path[sizeof(EVFN__ZONEINFO_DIR) + EVFN__TZ_NAME_MAX + 2];
	struct stat st;
	uint8_t *buf;
	int fd, rc;

	*out = NULL;
	if (name == NULL || strcmp(name, "UTC") == 0) {
		*out = &utc_zone;
		return 0;
	}
	if (!valid_zone_name(name))
		return refuse(why, "invalid zone name");
	memcpy(path, EVFN__ZONEINFO_DIR "/", sizeof(EVFN__ZONEINFO_DIR));
	memcpy(path + sizeof(EVFN__ZONEINFO_DIR), name, strlen(name) + 1);

	do
		fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return refuse(why, "no such zone");
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > TZ_FILE_MAX) {
		close(fd);
		return refuse(why, "not a zone file");
	}
	buf = evfn__malloc((size_t)st.st_size);
	if (buf == NULL) {
		close(fd);
		return EVFN_ENOMEM;
	}
	size_t got = 0, want = (size_t)st.st_size;
	while (got < want) {
		ssize_t r = read(fd, buf + got, want - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	rc = got == want ? evfn__tz_parse(buf, got, name, out, why)
	                 : refuse(why, "cannot read the zone file");
	evfn__free(buf);
	return rc;
}
