/* SPDX-License-Identifier: MIT */
/*
 * The two clocks evfn reads: CLOCK_MONOTONIC for deadlines, ages and
 * timers, which never jump, and CLOCK_REALTIME for the CloudEvents `time`
 * attribute, which people read.
 */
#include <time.h>

#include "common-internal.h"

static int64_t
read_clock(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * EVFN__NS_PER_SEC + ts.tv_nsec;
}

int64_t
evfn__now_ns(void)
{
	return read_clock(CLOCK_MONOTONIC);
}

int64_t
evfn__wall_ns(void)
{
	return read_clock(CLOCK_REALTIME);
}
