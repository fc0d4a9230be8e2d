/* SPDX-License-Identifier: MIT */
/*
 * The two clocks evfn reads: CLOCK_MONOTONIC for deadlines, ages and
 * timers, which never jump, and CLOCK_REALTIME for the CloudEvents `time`
 * attribute and attempt times, which people read. On the dispatch path
 * wall times are derived from a monotonic reading and an offset read
 * again once a second at most (by whoever converts first after that),
 * which saves a clock read per event (they cost tens of nanoseconds in a
 * VM) at the price of lagging a wall-clock step by up to a second.
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

struct evfn__wall_clock evfn__wall_clock;

int64_t
evfn__wall_offset_refresh(void)
{
	int64_t mono = evfn__now_ns();
	int64_t off = evfn__wall_ns() - mono;
	atomic_store_explicit(&evfn__wall_clock.offset, off,
	                      memory_order_relaxed);
	atomic_store_explicit(&evfn__wall_clock.due,
	                      mono + EVFN__WALL_REFRESH_NS,
	                      memory_order_release);
	return off;
}

struct timeval
evfn__timeval_ns(int64_t ns)
{
	int64_t us = ns / 1000 + (ns % 1000 > 0);
	return (struct timeval){.tv_sec = (time_t)(us / 1000000),
	                        .tv_usec = (suseconds_t)(us % 1000000)};
}
