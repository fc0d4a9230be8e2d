/* SPDX-License-Identifier: MIT */
/*
 * The registry: functions by name (uthash) and their subscriptions to
 * topic patterns (the router). Functions live until the runtime is freed,
 * so pointers to them stay valid in queues and in callers' hands.
 */
#include <string.h>

#include <evfn/function.h>

#include "callout-internal.h"
#include "common-internal.h"
#include "dispatch-internal.h"
#include "registry-internal.h"

struct evfn_fn *
evfn__fn_find_locked(struct evfn_rt *rt, const char *name)
{
	/* Producers usually invoke the same function again and again: a
	 * memo of the last hit costs a strcmp instead of a hash. Kept in the
	 * runtime under its lock rather than per thread: a thread-local in a
	 * shared library costs a call to reach. Functions live as long as
	 * their runtime. */
	struct evfn_fn *fn = rt->last_found;
	if (fn && strcmp(fn->name, name) == 0)
		return fn;
	HASH_FIND_STR(rt->by_name, name, fn);
	if (fn)
		rt->last_found = fn;
	return fn;
}

int
evfn_register(evfn_rt *rt, const char *name, evfn_handler handler,
              void *userdata, const evfn_fn_options *opts, evfn_fn **out)
{
	if (out)
		*out = NULL;
	if (!rt || !handler)
		return EVFN_EINVAL;
	int rc = evfn__check_fn_name(name);
	if (rc < 0)
		return rc;
	size_t len = strlen(name);
	struct evfn_fn *fn = evfn__calloc(1, sizeof(*fn) + len + 1);
	if (!fn)
		return EVFN_ENOMEM;
	memcpy(fn->name, name, len + 1);
	fn->rt = rt;
	fn->run_ewma_ns = 1000000; /* unknown: assume slow until measured */
	fn->handler = handler;
	fn->userdata = userdata;
	if (opts)
		fn->cfg = *opts;
	else
		evfn__fn_options_defaults(&fn->cfg);
	if (fn->cfg.batch_max > 1 && fn->cfg.executor == EVFN_EXECUTOR_LOOP) {
		/* EVFN_EINVAL has many causes: say this one. */
		evfn__logf(&rt->log, EVFN_LOG_WARN,
		           "%s: batch functions need the pool executor", name);
		evfn__free(fn);
		return EVFN_EINVAL;
	}
	if ((rc = evfn__flow_attach(rt, fn)) < 0) {
		evfn__free(fn);
		return rc;
	}

	evfn__lock_acquire(&rt->lock);
	if (rt->state >= EVFN__DRAINING)
		rc = EVFN_ESHUTDOWN;
	else if (evfn__fn_find_locked(rt, name))
		rc = EVFN_EEXIST;
	else if (rt->journal) /* registered after start */
		rc = evfn__journal_fn_id(rt->journal, name, &fn->jid);
	if (rc == 0) {
		bool evfn__hash_oom = false;
		HASH_ADD(hh, rt->by_name, name[0], len, fn);
		if (evfn__hash_oom)
			rc = EVFN_ENOMEM;
	}
	if (rc == 0) {
		fn->index = rt->nfns++;
		evfn__fn_list_push(&rt->fns, fn);
	}
	evfn__lock_release(&rt->lock);
	if (rc < 0) {
		evfn__flow_detach(fn);
		evfn__free(fn);
		return rc;
	}
	if (out)
		*out = fn;
	return 0;
}

const char *
evfn_fn_name(const evfn_fn *fn)
{
	return fn ? fn->name : NULL;
}

evfn_rt *
evfn_ctx_rt(const evfn_ctx *ctx)
{
	evfn_fn *fn = evfn_ctx_function(ctx);
	return fn ? fn->rt : NULL;
}

int
evfn_subscribe(evfn_rt *rt, const char *pattern, const char *fn_name)
{
	if (!rt)
		return EVFN_EINVAL;
	int rc = evfn__check_name(fn_name);
	if (rc == 0)
		rc = evfn__pattern_check(pattern);
	if (rc < 0)
		return rc;
	evfn__lock_acquire(&rt->lock);
	struct evfn_fn *fn = evfn__fn_find_locked(rt, fn_name);
	if (rt->state >= EVFN__DRAINING)
		rc = EVFN_ESHUTDOWN;
	else if (!fn)
		rc = EVFN_ENOFN;
	else
		rc = evfn__router_add(rt->router, pattern, fn);
	evfn__lock_release(&rt->lock);
	return rc;
}

void
evfn__registry_free(struct evfn_rt *rt)
{
	evfn__router_free(rt->router);
	rt->router = NULL;
	HASH_CLEAR(hh, rt->by_name);
	struct evfn_fn *fn = rt->fns.head;
	while (fn) {
		struct evfn_fn *next = fn->all_next;
		if (fn->cfg.userdata_free)
			evfn__call_userdata_free(&rt->lock,
			                         fn->cfg.userdata_free,
			                         fn->userdata);
		evfn__okeys_free(&fn->okeys);
		if (evfn__queue_free(&fn->q) > 0)
			evfn__logf(&rt->log, EVFN_LOG_ERROR,
			           "%s: queued events dropped: no memory to "
			           "hand them back",
			           fn->name);
		evfn__free(fn);
		fn = next;
	}
	rt->fns.head = rt->fns.tail = NULL;
}
