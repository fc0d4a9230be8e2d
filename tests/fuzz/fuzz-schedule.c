/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the schedule expression parser and next-fire
 * search: any input either parses or is refused with EVFN_ESCHEDULE, and
 * a parsed schedule answers next() within its bounded search. The first
 * byte picks a time zone, the rest is the expression.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <evfn/schedule.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const zones[] = {NULL, "UTC", "Europe/Berlin",
                                    "America/New_York", "Australia/Lord_Howe",
                                    "Asia/Kathmandu"};

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
		/* A few instants around DST changes and the year ends. */
		static const int64_t after[] = {0, 1774746000000000000LL,
		                                1792890000000000000LL,
		                                4102444799000000000LL};
		for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
			int64_t next;
			if (evfn_schedule_next(s, after[i], &next) == 1 &&
			    next <= after[i])
				abort(); /* next must be strictly later */
		}
		evfn_schedule_free(s);
	} else if (off > size) {
		abort(); /* the offset points into the expression */
	}
	free(expr);
	return 0;
}
