/* SPDX-License-Identifier: MIT */
/**
 * @file
 * The old names of renamed calls. Each is still exported and does exactly
 * what its new name does, for one more release; using one warns
 * (EVFN_DEPRECATED). `<evfn.h>` includes this header.
 *
 * 0.2 names the runtime's own calls after its type, as the rest of the
 * API does (evfn_rt_options_*, evfn_fn_options_*, evfn_ctx_*):
 * evfn_runtime_new() is now evfn_rt_new(), and so on; and getters are bare
 * nouns: evfn_stats_get() is now evfn_stats_value(), and
 * evfn_timer_get_next() evfn_timer_next(). The old names are removed in
 * 0.3.
 */
#ifndef EVFN_DEPRECATED_H
#define EVFN_DEPRECATED_H

#include <stdint.h>

#include <evfn/export.h>
#include <evfn/runtime.h>
#include <evfn/stats.h>
#include <evfn/triggers.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

/**
 * evfn_rt_new() under its 0.1 name.
 * @param out  as evfn_rt_new().
 * @param opts as evfn_rt_new().
 * @return as evfn_rt_new().
 * @deprecated since 0.2: call evfn_rt_new(); removed in 0.3.
 * @since 0.1
 */
EVFN_EXPORT EVFN_DEPRECATED int evfn_runtime_new(evfn_rt **out,
                                                 const evfn_rt_options *opts);

/**
 * evfn_rt_start() under its 0.1 name.
 * @param rt as evfn_rt_start().
 * @return as evfn_rt_start().
 * @deprecated since 0.2: call evfn_rt_start(); removed in 0.3.
 * @since 0.1
 */
EVFN_EXPORT EVFN_DEPRECATED int evfn_runtime_start(evfn_rt *rt);

/**
 * evfn_rt_drain() under its 0.1 name.
 * @param rt       as evfn_rt_drain().
 * @param grace_ms as evfn_rt_drain().
 * @param cb       as evfn_rt_drain().
 * @param arg      as evfn_rt_drain().
 * @return as evfn_rt_drain().
 * @deprecated since 0.2: call evfn_rt_drain(); removed in 0.3.
 * @since 0.1
 */
EVFN_EXPORT EVFN_DEPRECATED int evfn_runtime_drain(evfn_rt *rt,
                                                   int64_t grace_ms,
                                                   evfn_handback_cb cb,
                                                   void *arg);

/**
 * evfn_rt_free() under its 0.1 name.
 * @param rt as evfn_rt_free().
 * @return as evfn_rt_free().
 * @deprecated since 0.2: call evfn_rt_free(); removed in 0.3.
 * @since 0.1
 */
EVFN_EXPORT EVFN_DEPRECATED int evfn_runtime_free(evfn_rt *rt);

/**
 * evfn_rt_workers() under its 0.1 name.
 * @param rt as evfn_rt_workers().
 * @return as evfn_rt_workers().
 * @deprecated since 0.2: call evfn_rt_workers(); removed in 0.3.
 * @since 0.1
 */
EVFN_EXPORT EVFN_DEPRECATED int evfn_runtime_workers(const evfn_rt *rt);

/**
 * evfn_rt_event_base() under its 0.1 name.
 * @param rt as evfn_rt_event_base().
 * @return as evfn_rt_event_base().
 * @deprecated since 0.2: call evfn_rt_event_base() (evfn/libevent.h);
 *             removed in 0.3.
 * @since 0.1
 */
EVFN_EXPORT EVFN_DEPRECATED struct event_base *
evfn_runtime_event_base(const evfn_rt *rt);

/**
 * evfn_ctx_rt() under its 0.1 name.
 * @param ctx as evfn_ctx_rt().
 * @return as evfn_ctx_rt().
 * @deprecated since 0.2: call evfn_ctx_rt(); removed in 0.3.
 * @since 0.1
 */
EVFN_EXPORT EVFN_DEPRECATED evfn_rt *evfn_ctx_runtime(const evfn_ctx *ctx);

/**
 * evfn_stats_value() under its 0.1 name.
 * @param s     as evfn_stats_value().
 * @param which as evfn_stats_value().
 * @return as evfn_stats_value().
 * @deprecated since 0.2: call evfn_stats_value(); removed in 0.3.
 * @since 0.1
 */
EVFN_EXPORT EVFN_DEPRECATED uint64_t evfn_stats_get(const evfn_stats *s,
                                                    evfn_stat which);

/**
 * evfn_timer_next() under its 0.1 name.
 * @param t       as evfn_timer_next().
 * @param next_ns as evfn_timer_next().
 * @return as evfn_timer_next().
 * @deprecated since 0.2: call evfn_timer_next(); removed in 0.3.
 * @since 0.1
 */
EVFN_EXPORT EVFN_DEPRECATED int evfn_timer_get_next(const evfn_trigger *t,
                                                    int64_t *next_ns);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_DEPRECATED_H */
