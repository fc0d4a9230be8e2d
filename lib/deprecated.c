/* SPDX-License-Identifier: MIT */
/*
 * The old names of renamed calls (include/evfn/deprecated.h): each calls
 * its new name, so that programs built against the release before the
 * rename keep linking. Removed one release after the rename.
 */
#include <evfn/context.h>
#include <evfn/deprecated.h>
#include <evfn/libevent.h>
#include <evfn/runtime.h>
#include <evfn/stats.h>
#include <evfn/triggers.h>

int
evfn_runtime_new(evfn_rt **out, const evfn_rt_options *opts)
{
	return evfn_rt_new(out, opts);
}

int
evfn_runtime_start(evfn_rt *rt)
{
	return evfn_rt_start(rt);
}

int
evfn_runtime_drain(evfn_rt *rt, int64_t grace_ms, evfn_handback_cb cb,
                   void *arg)
{
	return evfn_rt_drain(rt, grace_ms, cb, arg);
}

int
evfn_runtime_free(evfn_rt *rt)
{
	return evfn_rt_free(rt);
}

int
evfn_runtime_workers(const evfn_rt *rt)
{
	return evfn_rt_workers(rt);
}

struct event_base *
evfn_runtime_event_base(const evfn_rt *rt)
{
	return evfn_rt_event_base(rt);
}

evfn_rt *
evfn_ctx_runtime(const evfn_ctx *ctx)
{
	return evfn_ctx_rt(ctx);
}

uint64_t
evfn_stats_get(const evfn_stats *s, evfn_stat which)
{
	return evfn_stats_value(s, which);
}

int
evfn_timer_get_next(const evfn_trigger *t, int64_t *next_ns)
{
	return evfn_timer_next(t, next_ns);
}
