/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the schedule expression parser and next-fire
 * search: any input either parses or is refused with an error offset
 * inside the expression, and a parsed schedule answers next() within its
 * bounded search. Asked from around daylight-saving changes, the answers
 * must be consistent: strictly later, and the same when asked again from
 * just before the fire. The first byte picks a time zone, the rest is the
 * expression.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <evfn/schedule.h>

#include "sources/schedule-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const zones[] = {NULL,
                                    "UTC",
                                    "Europe/Berlin",
                                    "America/New_York",
                                    "Australia/Lord_Howe",
                                    "Asia/Kathmandu"};

/* Instants around the year ends and the DST changes of 2026: Berlin's
 * spring gap and second pass of the repeated hour, Lord_Howe's 30-minute
 * changes, New York's repeated hour. */
static const int64_t after[] = {
    0,
    1774746000000000000LL, /* 2026-03-29T01:00:00Z */
    1792887600000000000LL, /* 2026-10-25T00:20:00Z */
    1792890000000000000LL, /* 2026-10-25T01:00:00Z */
    1775315400000000000LL, /* 2026-04-04T15:10:00Z */
    1791040800000000000LL, /* 2026-10-03T15:20:00Z */
    1793513400000000000LL, /* 2026-11-01T06:10:00Z */
    4102444799000000000LL, /* 2099-12-31T23:59:59Z */
};

/* Two steps of the series from a, with the invariants checked. */
static void
check_series(const evfn_schedule *s, int64_t a)
{
	int64_t next, again;
	for (int step = 0; step < 2; step++) {
		if (evfn_schedule_next(s, a, &next) != 1)
			return;
		if (next <= a)
			abort(); /* next must be strictly later */
		/* Cron and at() fire at instants that do not depend on
		 * when one asks: from just before the fire, the answer is
		 * the same fire. (Intervals count from the instant asked.) */
		if (evfn__schedule_kind_of(s) != EVFN__SCHEDULE_INTERVAL &&
		    (evfn_schedule_next(s, next - 1, &again) != 1 ||
		     again != next))
			abort();
		a = next;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 512)
		return 0;
	const char *tz = zones[data[0] % (sizeof(zones) / sizeof(zones[0]))];
	char *expr = malloc(size);
	memcpy(expr, data + 1, size - 1);
	expr[size - 1] = '\0';
	evfn_schedule *s;
	size_t off;
	char err[128];
	if (evfn_schedule_parse(expr, tz, &s, &off, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++)
			check_series(s, after[i]);
		evfn_schedule_free(s);
	} else if (off > size) {
		abort(); /* the offset points into the expression */
	}
	free(expr);
	return 0;
}
