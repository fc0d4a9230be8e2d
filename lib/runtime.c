/* SPDX-License-Identifier: MIT */
/*
 * The runtime's life: creation on an event_base of its own (run by a loop
 * thread) or on a host's (loop.c keeps either), with its executors, each
 * of which fills its entry of the table the state machine reaches it
 * through; start; drain, which hands back what waits and waits for what
 * runs; free. What happens to events between start and drain is
 * dispatch.c's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <evfn/libevent.h>
#include <evfn/runtime.h>

#include "callout-internal.h"
#include "common-internal.h"
#include "dispatch-internal.h"
#include "intern-internal.h"
#include "journaling-internal.h"
#include "loopexec-internal.h"
#include "pool-internal.h"
#include "registry-internal.h"
#include "settle-internal.h"
#include "watchdog-internal.h"
#include "worker-internal.h"

/* Frees what evfn_rt_new() built; safe on a partly built runtime. */
static void
destroy(struct evfn_rt *rt)
{
	/* What was buffered (hand-backs, the last ends) is committed. */
	if (rt->journal && evfn__journal_close(rt->journal) < 0)
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "journal: its last records could not be written");
	rt->journal = NULL;
	evfn__pool_free(rt->pool);
	/* The warm states of loop handlers end here, before the functions'
	 * userdata is freed. */
	evfn__loopexec_free(rt->loopx);
	evfn__timer_free(rt->due_timer);
	evfn__timer_free(rt->watchdog);
	evfn__dead_store_destroy(&rt->dead);
	for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next) {
		evfn__idem_free(&fn->idem);
		evfn__flow_detach(fn); /* its timer, before the base goes */
	}
	evfn__eventlog_destroy(&rt->eventlog);
	evfn__loop_destroy(&rt->loop);
	evfn__inv_pool_free(&rt->inv_pool);
	unsigned dropped = evfn__dueheap_free(&rt->due);
	if (dropped > 0)
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "%u retries dropped: no memory to hand them back",
		           dropped);
	evfn__registry_free(rt);
	evfn__free(rt->opts.journal_path);
	evfn__free(rt->opts.source);
	pthread_cond_destroy(&rt->quiet_cond);
	evfn__lock_destroy(&rt->lock);
	evfn__free(rt);
}

int
evfn_rt_new(evfn_rt **out, const evfn_rt_options *opts)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	struct evfn_rt *rt = evfn__calloc(1, sizeof(*rt));
	if (!rt)
		return EVFN_ENOMEM;
	evfn__lock_init(&rt->lock, true);
	evfn__cond_init_monotonic(&rt->quiet_cond);
	if (opts)
		rt->opts = *opts;
	else
		evfn__rt_options_defaults(&rt->opts);
	rt->opts.source = NULL; /* the builder's copy stays the builder's */
	rt->opts.journal_path = NULL;
	char *journal_path = NULL;
	if (opts && opts->journal_path &&
	    !(journal_path = evfn__strdup(opts->journal_path))) {
		pthread_cond_destroy(&rt->quiet_cond);
		evfn__lock_destroy(&rt->lock);
		evfn__free(rt);
		return EVFN_ENOMEM;
	}
	rt->opts.journal_path = journal_path;
	rt->log = (struct evfn__logger){rt->opts.log_cb, rt->opts.log_arg};
	evfn__eventlog_init(&rt->eventlog, rt->opts.record_cb,
	                    rt->opts.record_arg, &rt->lock);
	evfn__dead_store_init(&rt->dead, rt->opts.dead_letter_capacity);
	/* Interned: events stamped with it borrow it and may outlive rt. */
	rt->source = evfn__intern(opts && opts->source ? opts->source : "evfn");
	rt->router = evfn__router_new();
	int loop_rc = evfn__loop_init(&rt->loop, rt, rt->opts.base);
	if (loop_rc == 0) {
		/* Each executor fills its entry of the table the state
		 * machine reaches it through. */
		rt->pool = evfn__pool_new(rt, &rt->exec[EVFN_EXECUTOR_POOL]);
		rt->loopx = evfn__loopexec_new(rt,
		                               &rt->exec[EVFN_EXECUTOR_LOOP]);
		rt->due_timer = evfn__timer_new(&rt->loop, evfn__due_timer_cb,
		                                rt);
		(void)evfn__watchdog_new(rt);
	}
	rt->prng = (uint64_t)(uintptr_t)rt ^ (uint64_t)evfn__now_ns();
	if (!rt->prng)
		rt->prng = 1;
	if (!rt->source || !rt->router || loop_rc < 0 || !rt->pool ||
	    !rt->loopx || !rt->due_timer || !rt->watchdog) {
		destroy(rt);
		return EVFN_ENOMEM;
	}
	*out = rt;
	return 0;
}

int
evfn_rt_start(evfn_rt *rt)
{
	if (!rt)
		return EVFN_EINVAL;
	evfn__lock_acquire(&rt->lock);
	int rc = rt->state == EVFN__STARTED  ? EVFN_EALREADY
	         : rt->state != EVFN__CREATED ? EVFN_ESHUTDOWN
	                                      : 0;
	if (rc < 0) {
		evfn__lock_release(&rt->lock);
		return rc;
	}
	/* The journal first: what it holds is admitted again before
	 * anything runs (once: a start that fails later keeps it). */
	struct evfn__ended recovered = {0};
	if (rt->opts.journal_path && !rt->recovered &&
	    (rc = evfn__journaling_open_locked(rt, &recovered)) < 0) {
		evfn__lock_release(&rt->lock);
		return rc;
	}
	/* All or nothing, under one hold of the lock: the workers take
	 * nothing and the loop thread runs no callback of ours before the
	 * runtime is STARTED, so a failure part way leaves it as it was.
	 * The loop thread comes last: nothing stops it before it would run
	 * the loop handlers already queued. */
	rc = evfn__pool_start_locked(rt->pool);
	if (rc == 0)
		rc = evfn__loop_start(&rt->loop);
	if (rc == 0) {
		rt->state = EVFN__STARTED;
		for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next)
			evfn__fn_fast_update_locked(rt, fn);
	} else
		evfn__pool_unwind_locked(rt->pool);
	evfn__lock_release(&rt->lock);
	/* Events whose attempt crashed on its last try: dead-lettered. */
	evfn__settle(rt, &recovered);
	return rc;
}

/* Passes handed-back events to the drain callback, with the lock
 * released around each call. rt->lock held. */
static void
deliver_handbacks_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	while (!evfn__inv_list_empty(&rt->handback)) {
		/* Oldest first; ended, so settled as any ended invocation. */
		struct evfn__ended ended = {.invocations = rt->handback};
		rt->handback = (struct evfn__inv_list){NULL, NULL};
		evfn__lock_release(&rt->lock);
		for (struct evfn__inv *inv = ended.invocations.head; inv;
		     inv = inv->next)
			if (rt->handback_cb)
				evfn__call_handback(&rt->lock, rt->handback_cb,
				                    inv->ev, inv->fn->name,
				                    rt->handback_arg);
		struct evfn__inv_list cleaned =
			evfn__settle_release(rt, &ended);
		evfn__lock_acquire(&rt->lock);
		evfn__recycle_locked(rt, &cleaned);
	}
}

/* Invocations made at once to hand back queued and waiting events: most wait
 * without one, and a deep queue must not need all of its invocations at the
 * same time. */
#define HANDBACK_CHUNK 1024

/* Ends list as handed back and passes it to the drain callback (with the
 * lock released around it); returns how many. */
static size_t
hand_back_list_locked(struct evfn_rt *rt, struct evfn__inv_list list)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__ended unused = {0}; /* hand-backs go to rt->handback */
	size_t n = evfn__end_all_locked(rt, &list, EVFN_STAT_HANDED_BACK,
	                                EVFN_EHANDEDBACK, &unused);
	deliver_handbacks_locked(rt);
	return n;
}

/* Ends every held, queued and retry-waiting event as handed back, in
 * chunks, delivering each; returns how many, and sets *left when some
 * were left for lack of invocations to end them in (call again when invocations
 * may have come back). Nothing starts once the runtime drains, so the
 * queues only shrink while the lock is released to deliver. */
static size_t
hand_back_waiting_locked(struct evfn_rt *rt, bool *left)
{
	EVFN__ASSERT_LOCKED(rt);
	size_t n = 0;
	bool short_of_memory = false;
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(rt->exec); i++)
		rt->exec[i].ready = (struct evfn__fn_fifo){NULL, NULL};
	for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next) {
		fn->in_ready = false;
		/* Held ones first, so that ending an active one does not
		 * queue the next of its key. */
		n += hand_back_list_locked(
			rt, evfn__take_held_locked(fn, NULL, NULL));
		for (;;) {
			struct evfn__inv_list list =
				evfn__take_queued_front_locked(
					rt, fn, HANDBACK_CHUNK,
					&short_of_memory);
			if (evfn__inv_list_empty(&list))
				break;
			n += hand_back_list_locked(rt, list);
		}
		/* A publish that took the fast path before it closed is a
		 * few instructions from filling its slot: looked at again,
		 * as what finds no memory is. */
		if (evfn__fn_intake_busy_locked(fn))
			short_of_memory = true;
	}
	for (;;) {
		struct evfn__inv_list list = evfn__take_due_some_locked(
			rt, HANDBACK_CHUNK, &short_of_memory);
		if (evfn__inv_list_empty(&list))
			break;
		n += hand_back_list_locked(rt, list);
	}
	*left = short_of_memory;
	return n;
}

static void
wait_until_locked(struct evfn_rt *rt, int64_t deadline_ns)
{
	EVFN__ASSERT_LOCKED(rt);
	struct timespec until = {.tv_sec = deadline_ns / EVFN__NS_PER_SEC,
	                         .tv_nsec = deadline_ns % EVFN__NS_PER_SEC};
	evfn__lock_wait_until(&rt->lock, &rt->quiet_cond, &until);
}

int
evfn_rt_drain(evfn_rt *rt, int64_t grace_ms, evfn_handback_cb cb,
              void *arg)
{
	if (!rt || grace_ms < 0 || grace_ms > INT64_MAX / EVFN__NS_PER_MS / 2)
		return EVFN_EINVAL;
	if (evfn__tls_handler_rt == rt)
		return EVFN_EDEADLK;
	evfn__lock_acquire(&rt->lock);
	if (rt->state >= EVFN__DRAINING) {
		evfn__lock_release(&rt->lock);
		return EVFN_EALREADY;
	}
	rt->state = EVFN__DRAINING;
	/* Publishes take the lock from here, and see the state. */
	evfn__fns_fast_close_locked(rt);
	rt->handback_cb = cb;
	rt->handback_arg = arg;
	/* Everything waiting is handed back first; again while short of
	 * invocations to do it (delivered hand-backs free theirs). */
	bool left = true;

	/* In embedded mode nobody else may be running the host's base:
	 * run it here while waiting, so loop handlers can finish. Inside
	 * one of our own loop callbacks, or when the base turns out to be
	 * running elsewhere, we cannot. */
	bool pump = !rt->loop.own_base && !evfn__loop_is_current(&rt->loop);
	int64_t deadline = evfn__now_ns() + grace_ms * EVFN__NS_PER_MS;
	for (;;) {
		if (left)
			(void)hand_back_waiting_locked(rt, &left);
		deliver_handbacks_locked(rt);
		int64_t now = evfn__now_ns();
		if ((rt->in_flight == 0 && !left) || now >= deadline)
			break;
		if (pump) {
			evfn__lock_release(&rt->lock);
			int r = evfn__loop_run_ready(&rt->loop);
			evfn__lock_acquire(&rt->lock);
			if (r < 0)
				pump = false;
			if ((rt->in_flight == 0 && !left) ||
			    !evfn__inv_list_empty(&rt->handback))
				continue;
			wait_until_locked(rt, EVFN__MIN(deadline,
			                                now + EVFN__NS_PER_MS));
		} else {
			/* Short of invocations: look again soon. */
			wait_until_locked(rt, left ? EVFN__MIN(deadline,
			                                       now + EVFN__NS_PER_MS)
			                           : deadline);
		}
	}
	int rc = rt->in_flight > 0 || left ? EVFN_ETIMEDOUT : 0;
	rt->state = EVFN__DRAINED;
	evfn__lock_release(&rt->lock);
	/* Hand-backs and the last ends on disk before drain returns. */
	if (rt->journal && evfn__journal_sync(rt->journal) < 0)
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "journal: the records of the drain could not be "
		           "written");
	return rc;
}

/* EVFN_EBUSY has four causes; the log says which held the runtime. */
static void
log_still_in_use(evfn_rt *rt, bool running, int64_t in_flight, int stuck,
                 int attached)
{
	if (running)
		evfn__logf(&rt->log, EVFN_LOG_WARN,
		           "evfn_rt_free: the runtime is running; drain it first");
	if (in_flight > 0)
		evfn__logf(&rt->log, EVFN_LOG_WARN,
		           "evfn_rt_free: %lld attempts still running",
		           (long long)in_flight);
	if (stuck > 0)
		evfn__logf(&rt->log, EVFN_LOG_WARN,
		           "evfn_rt_free: %d handlers stuck past their deadline "
		           "have not returned",
		           stuck);
	if (attached > 0)
		evfn__logf(&rt->log, EVFN_LOG_WARN,
		           "evfn_rt_free: %d triggers or sources still alive; "
		           "free them first",
		           attached);
}

int
evfn_rt_free(evfn_rt *rt)
{
	if (!rt)
		return 0;
	if (evfn__tls_handler_rt == rt)
		return EVFN_EDEADLK;
	evfn__lock_acquire(&rt->lock);
	if (rt->state == EVFN__STARTED || rt->state == EVFN__DRAINING ||
	    rt->in_flight > 0 || rt->nstuck > 0 || rt->attached > 0) {
		bool running = rt->state == EVFN__STARTED ||
		               rt->state == EVFN__DRAINING;
		int64_t in_flight = rt->in_flight;
		int stuck = rt->nstuck, attached = rt->attached;
		evfn__lock_release(&rt->lock);
		log_still_in_use(rt, running, in_flight, stuck, attached);
		return EVFN_EBUSY;
	}
	/* Never started, or queued events a drain had no memory to hand
	 * back: go on while invocations come back from those handed back. */
	deliver_handbacks_locked(rt);
	bool left;
	while (hand_back_waiting_locked(rt, &left) > 0 && left)
		;
	while (rt->disposing > 0 || rt->journal_appending > 0)
		evfn__lock_wait(&rt->lock, &rt->quiet_cond);
	evfn__lock_release(&rt->lock);

	evfn__pool_stop(rt->pool);
	/* Results the loop did not get to: exactly once, even now. After
	 * the workers are gone: a worker settles an end (and queues its
	 * result) after the drain saw it end, outside the lock. */
	evfn__lock_acquire(&rt->lock);
	evfn__results_deliver_locked(&rt->results, &rt->lock);
	evfn__lock_release(&rt->lock);
	evfn__loop_stop(&rt->loop);
	destroy(rt);
	return 0;
}

int
evfn_rt_workers(const evfn_rt *rt)
{
	if (!rt)
		return 0;
	struct evfn_rt *m = (struct evfn_rt *)rt;
	evfn__lock_acquire(&m->lock);
	int n = evfn__pool_threads_locked(m->pool);
	evfn__lock_release(&m->lock);
	return n;
}

struct event_base *
evfn_rt_event_base(const evfn_rt *rt)
{
	return rt ? rt->loop.base : NULL;
}
