/* SPDX-License-Identifier: MIT */
/*
 * Small text helpers that more than one parser needs: hexadecimal digits,
 * UTF-8 validation, and RFC 3339 timestamps (the CloudEvents `time` attribute, Redis
 * fields, log lines) parsed and written in UTC with nanoseconds.
 */
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "common-internal.h"
#include "text-internal.h"

int
evfn__hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
evfn__utf8_char_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	/* The lead byte gives the length and the range the second byte
	 * must fall in, which is where overlong forms, surrogates and
	 * values above U+10FFFF are excluded (RFC 3629, section 4). */
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

bool
evfn__utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	while (n > 0) {
		/* ASCII runs are the common case. */
		if (*p < 0x80) {
			p++;
			n--;
			continue;
		}
		size_t len = evfn__utf8_char_len(p, n);
		if (len == 0)
			return false;
		p += len;
		n -= len;
	}
	return true;
}

static bool
digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool
expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30,
	                           31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

int
evfn__rfc3339_parse(const char *s, int64_t *ns)
{
	if (!s || !ns)
		return EVFN_EINVAL;
	const char *p = s;
	int y, mo, d, h, mi, sec;
	if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) ||
	    !expect(&p, '-') || !digits(&p, 2, &d))
		return EVFN_EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return EVFN_EINVAL;
	p++;
	if (!digits(&p, 2, &h) || !expect(&p, ':') || !digits(&p, 2, &mi) ||
	    !expect(&p, ':') || !digits(&p, 2, &sec))
		return EVFN_EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
	    h > 23 || mi > 59 || sec > 60)
		return EVFN_EINVAL;
	int64_t frac = 0;
	if (*p == '.') {
		p++;
		int n = 0;
		for (; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 9)
				frac = frac * 10 + (*p - '0');
		if (n == 0)
			return EVFN_EINVAL;
		for (; n < 9; n++)
			frac *= 10;
	}
	int64_t offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (!digits(&p, 2, &oh) || !expect(&p, ':') ||
		    !digits(&p, 2, &om) || oh > 23 || om > 59)
			return EVFN_EINVAL;
		offset = sign * (oh * 3600 + om * 60);
	} else {
		return EVFN_EINVAL;
	}
	if (*p)
		return EVFN_EINVAL;
	/* A leap second is folded into the next second, as POSIX time has
	 * none. */
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 +
	               mi * 60 + sec - offset;
	/* int64 nanoseconds span 1677-09-21 to 2262-04-11. */
	if (secs < INT64_MIN / EVFN__NS_PER_SEC + 1 ||
	    secs > INT64_MAX / EVFN__NS_PER_SEC - 1)
		return EVFN_EINVAL;
	*ns = secs * EVFN__NS_PER_SEC + frac;
	return 0;
}

void
evfn__rfc3339_format(int64_t unix_ns, char buf[EVFN__RFC3339_MAX])
{
	time_t sec = (time_t)(unix_ns / EVFN__NS_PER_SEC);
	long ns = (long)(unix_ns % EVFN__NS_PER_SEC);
	if (ns < 0) {
		ns += EVFN__NS_PER_SEC;
		sec--;
	}
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(buf, EVFN__RFC3339_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, ns);
}
