/* SPDX-License-Identifier: MIT */
/*
 * Snapshots of every function at once, for the pages that show them all
 * (the Prometheus exposition, the status page). stats.c takes them.
 */
#ifndef EVFN_STATS_INTERNAL_H
#define EVFN_STATS_INTERNAL_H

#include <stddef.h>

#include <evfn/runtime.h>

#include "metrics-internal.h"

/* Every function's snapshot, taken under one lock so that they agree,
 * in registration order; the array is freed with evfn__free(), NULL when
 * out of memory. Names live as long as the runtime. */
struct evfn__fn_snapshot {
	const char *name;
	struct evfn_stats s;
};
struct evfn__fn_snapshot *evfn__stats_snapshot_all(evfn_rt *rt, size_t *n);

#endif /* EVFN_STATS_INTERNAL_H */
