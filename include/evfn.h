/* SPDX-License-Identifier: MIT */
/**
 * @file
 * evfn: Lambda-style event processing inside any host program. Named
 * functions bound to triggers, an async queue, a worker pool that scales
 * with load, retries with backoff, a deadline on every invocation, dead
 * letters and metrics. This umbrella includes every public header except
 * evfn/libevent.h (embedders include it themselves), evfn/redis.h
 * (present only where evfn was built with hiredis) and evfn/pg.h (only
 * with libpq). Anything not declared under include/evfn/ is private.
 *
 * Threading: see evfn/runtime.h; the rule is stated there once.
 */
#ifndef EVFN_H
#define EVFN_H

#include <evfn/export.h>
#include <evfn/version.h>
#include <evfn/errors.h>
#include <evfn/alloc.h>
#include <evfn/types.h>
#include <evfn/event.h>
#include <evfn/runtime.h>
#include <evfn/function.h>
#include <evfn/emit.h>
#include <evfn/control.h>
#include <evfn/context.h>
#include <evfn/stats.h>
#include <evfn/deadletter.h>
#include <evfn/metrics.h>
#include <evfn/schedule.h>
#include <evfn/triggers.h>
#include <evfn/http.h>
#include <evfn/deprecated.h>

#endif /* EVFN_H */
