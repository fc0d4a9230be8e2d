/* SPDX-License-Identifier: MIT */
/*
 * The runtime as triggers and sources see it (source-internal.h): each
 * function here takes the lock it needs, so that no file under
 * lib/sources/ reads a field of the runtime or holds its lock.
 */
#include <stdarg.h>
#include <stdio.h>

#include "common-internal.h"
#include "dispatch-internal.h"
#include "publish-internal.h"
#include "registry-internal.h"
#include "source-internal.h"

void
evfn__rt_attach(evfn_rt *rt)
{
	evfn__lock_acquire(&rt->lock);
	rt->attached++;
	evfn__lock_release(&rt->lock);
}

void
evfn__rt_detach(evfn_rt *rt)
{
	evfn__lock_acquire(&rt->lock);
	rt->attached--;
	evfn__lock_release(&rt->lock);
}

int
evfn__rt_publish_front(evfn_rt *rt, const char *fn, evfn_event *const *evs,
                       size_t n, evfn_result_cb cb, void *const *args,
                       size_t *taken)
{
	*taken = 0;
	int rc = 0;
	while (*taken < n && rc == 0) {
		size_t k = EVFN__MIN(n - *taken, (size_t)EVFN_BATCH_MAX);
		size_t took;
		evfn_event *const *part = evs + *taken;
		rc = cb ? evfn__submit_some(rt, fn, part, k, cb,
		                            args ? args + *taken : NULL, NULL,
		                            &took)
		        : evfn__publish_some(rt, fn, part, k, NULL, &took);
		*taken += took;
	}
	return rc;
}

int
evfn__rt_check_target(evfn_rt *rt, const char *function)
{
	evfn__lock_acquire(&rt->lock);
	int rc = rt->state >= EVFN__DRAINING ? EVFN_ESHUTDOWN : 0;
	if (rc == 0 && function && !evfn__fn_find_locked(rt, function))
		rc = EVFN_ENOFN;
	evfn__lock_release(&rt->lock);
	return rc;
}

bool
evfn__rt_has_function(evfn_rt *rt, const char *name)
{
	evfn__lock_acquire(&rt->lock);
	bool found = evfn__fn_find_locked(rt, name) != NULL;
	evfn__lock_release(&rt->lock);
	return found;
}

int
evfn__rt_function_attempts(evfn_rt *rt, const char *name)
{
	evfn__lock_acquire(&rt->lock);
	struct evfn_fn *fn = evfn__fn_find_locked(rt, name);
	int n = fn ? fn->cfg.attempts : 0;
	evfn__lock_release(&rt->lock);
	return n;
}

bool
evfn__rt_accepting(evfn_rt *rt)
{
	evfn__lock_acquire(&rt->lock);
	bool accepting = rt->state < EVFN__DRAINING;
	evfn__lock_release(&rt->lock);
	return accepting;
}

bool
evfn__rt_drained(evfn_rt *rt)
{
	evfn__lock_acquire(&rt->lock);
	bool drained = rt->state == EVFN__DRAINED && rt->in_flight == 0;
	evfn__lock_release(&rt->lock);
	return drained;
}

int
evfn__rt_run_on_loop(evfn_rt *rt, void (*fn)(void *), void *arg)
{
	return evfn__loop_call(&rt->loop, fn, arg);
}

bool
evfn__rt_in_loop_callback(evfn_rt *rt)
{
	return evfn__loop_is_current(&rt->loop);
}

bool
evfn__rt_loop_unattended(evfn_rt *rt)
{
	return evfn__loop_unattended(&rt->loop);
}

bool
evfn__rt_loop_thread_is_self(evfn_rt *rt)
{
	return evfn__loop_thread_is_self(&rt->loop);
}

void
evfn__rt_log(evfn_rt *rt, evfn_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evfn__logv(&rt->log, level, fmt, ap);
	va_end(ap);
}
