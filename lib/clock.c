/* SPDX-License-Identifier: MIT */
/*
 * The two clocks evfn reads: CLOCK_MONOTONIC for deadlines, ages and
 * timers, which never jump, and CLOCK_REALTIME for the CloudEvents `time`
 * attribute and attempt times, which people read. On the dispatch path
 * wall times are derived from a monotonic reading and an offset that the
 * watchdog refreshes, which saves a clock read per event (they cost tens
 * of nanoseconds in a VM) at the price of lagging a wall-clock step by at
 * most one refresh.
 */
#include <stdatomic.h>
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

atomic_int_fast64_t evfn__wall_offset;

int64_t
evfn__wall_offset_refresh(void)
{
	int64_t mono = evfn__now_ns();
	int64_t wall = evfn__wall_ns();
	atomic_store_explicit(&evfn__wall_offset, wall - mono,
	                      memory_order_relaxed);
	return wall - mono;
}
