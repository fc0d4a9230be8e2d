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

/* A name's slot in rt->fn_dir (FNV-1a). */
static inline size_t
dir_slot(const char *name)
{
	uint32_t h = 2166136261u;
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h & (EVFN__FN_DIR_SLOTS - 1);
}

/* Remembers fn for the fast path (release: read without the lock). */
static void
remember_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	atomic_store_explicit(&rt->last_found, fn, memory_order_release);
	atomic_store_explicit(&rt->fn_dir[dir_slot(fn->name)], fn,
	                      memory_order_release);
}

struct evfn_fn *
evfn__fn_find_fast(struct evfn_rt *rt, const char *name)
{
	struct evfn_fn *fn =
		atomic_load_explicit(&rt->last_found, memory_order_acquire);
	if (fn && strcmp(fn->name, name) == 0)
		return fn;
	fn = atomic_load_explicit(&rt->fn_dir[dir_slot(name)],
	                          memory_order_acquire);
	return fn && strcmp(fn->name, name) == 0 ? fn : NULL;
}

/* A topic that routes to one function, as the router said under the
 * lock while route_gen was gen. Never changed once published, and freed
 * only with the runtime: a fast publish may still read one that a newer
 * one replaced. */
struct evfn__route_memo {
	struct evfn__route_memo *made_next; /* rt->routes_made */
	uint64_t gen;
	struct evfn_fn *fn;
	char topic[];
};

/* Memos a runtime makes at most: past it, topics take the lock (a
 * program that subscribes again and again would otherwise grow them). */
#define ROUTE_MEMOS_MAX 4096

struct evfn_fn *
evfn__route_one_fast(struct evfn_rt *rt, const char *topic)
{
	struct evfn__route_memo *m = atomic_load_explicit(
		&rt->route_memo[dir_slot(topic)], memory_order_acquire);
	return m && m->gen == atomic_load_explicit(&rt->route_gen,
	                                           memory_order_acquire) &&
	               strcmp(m->topic, topic) == 0
	               ? m->fn
	               : NULL;
}

void
evfn__route_one_remember_locked(struct evfn_rt *rt, const char *topic,
                                struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	_Atomic(struct evfn__route_memo *) *slot =
		&rt->route_memo[dir_slot(topic)];
	struct evfn__route_memo *m =
		atomic_load_explicit(slot, memory_order_relaxed);
	uint64_t gen = atomic_load_explicit(&rt->route_gen,
	                                    memory_order_relaxed);
	/* A slot keeps a memo of this generation, this topic's or one
	 * whose hash it shares: two topics taking turns would otherwise
	 * make a memo at each emit. So memos made are bounded by the slots
	 * times the subscriptions, and by ROUTE_MEMOS_MAX. */
	if ((m && m->gen == gen) || rt->nroutes_made >= ROUTE_MEMOS_MAX)
		return;
	size_t len = strlen(topic);
	if (!(m = evfn__malloc(sizeof(*m) + len + 1)))
		return;
	m->gen = gen;
	m->fn = fn;
	memcpy(m->topic, topic, len + 1);
	m->made_next = rt->routes_made;
	rt->routes_made = m;
	rt->nroutes_made++;
	atomic_store_explicit(slot, m, memory_order_release);
}

struct evfn_fn *
evfn__fn_find_locked(struct evfn_rt *rt, const char *name)
{
	/* Producers usually invoke the same function again and again: a
	 * memo of the last hit costs a strcmp instead of a hash. Kept in the
	 * runtime under its lock rather than per thread: a thread-local in a
	 * shared library costs a call to reach. Functions live as long as
	 * their runtime. */
	struct evfn_fn *fn =
		atomic_load_explicit(&rt->last_found, memory_order_relaxed);
	if (fn && strcmp(fn->name, name) == 0)
		return fn;
	HASH_FIND_STR(rt->by_name, name, fn);
	if (fn)
		remember_locked(rt, fn);
	return fn;
}

/* The ring of a function's intake: a power of two, at most this, so a
 * function costs at most 2 KiB for it; past it publishes take the lock,
 * which moves the ring into the queue. */
#define INTAKE_RING_MAX 256

/* Gives fn an intake if it can take the fast path: a pool function with
 * no flow control and no batches, in a runtime with no journal (which
 * must see every event under the lock). Returns 0 or EVFN_ENOMEM. */
static int
intake_attach(struct evfn_rt *rt, struct evfn_fn *fn)
{
	if (fn->cfg.executor != EVFN_EXECUTOR_POOL || fn->flow ||
	    fn->cfg.batch_max > 1 || rt->opts.journal_path)
		return 0;
	uint32_t ring = (uint32_t)EVFN__MIN(
		EVFN__MAX(fn->cfg.queue_capacity, 1), INTAKE_RING_MAX);
	return evfn__intake_new(&fn->intake, ring);
}

/* Drops what fn's intake still holds (only what a drain had no memory
 * to hand back) and frees it; returns how many were dropped. */
static size_t
intake_drop(struct evfn_fn *fn)
{
	if (!fn->intake)
		return 0;
	size_t n = 0, got;
	void *evs[64];
	while ((got = evfn__intake_take(fn->intake, evs, 64, NULL)) > 0)
		for (size_t i = 0; i < got; i++, n++)
			evfn_event_unref(evs[i]);
	evfn__intake_free(fn->intake);
	fn->intake = NULL;
	return n;
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
	if ((rc = intake_attach(rt, fn)) < 0) {
		evfn__flow_detach(fn);
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
		evfn__fn_fast_update_locked(rt, fn);
		remember_locked(rt, fn);
	}
	evfn__lock_release(&rt->lock);
	if (rc < 0) {
		evfn__intake_free(fn->intake);
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
	/* What topics route to may have changed: every memo is stale. */
	if (rc == 0)
		atomic_fetch_add_explicit(&rt->route_gen, 1,
		                          memory_order_release);
	evfn__lock_release(&rt->lock);
	return rc;
}

void
evfn__registry_free(struct evfn_rt *rt)
{
	evfn__router_free(rt->router);
	rt->router = NULL;
	while (rt->routes_made) {
		struct evfn__route_memo *m = rt->routes_made;
		rt->routes_made = m->made_next;
		evfn__free(m);
	}
	HASH_CLEAR(hh, rt->by_name);
	struct evfn_fn *fn = rt->fns.head;
	while (fn) {
		struct evfn_fn *next = fn->all_next;
		if (fn->cfg.userdata_free)
			evfn__call_userdata_free(&rt->lock,
			                         fn->cfg.userdata_free,
			                         fn->userdata);
		evfn__okeys_free(&fn->okeys);
		if (intake_drop(fn) + evfn__queue_free(&fn->q) > 0)
			evfn__logf(&rt->log, EVFN_LOG_ERROR,
			           "%s: queued events dropped: no memory to "
			           "hand them back",
			           fn->name);
		evfn__free(fn);
		fn = next;
	}
	rt->fns.head = rt->fns.tail = NULL;
}
