/* SPDX-License-Identifier: MIT */
/*
 * The runtime's state and the invocation record, shared by the files that
 * make up the core: runtime.c (lifecycle, loop, drain), registry.c
 * (functions, subscriptions), admit.c (getting events in), pool.c (worker
 * threads), invoke.c (running an attempt and its outcome), retry.c (the
 * retry timer heap), stats.c. One mutex, rt->lock, guards everything in
 * struct evfn_rt and the queue and counter fields of struct evfn_fn; no
 * user callback ever runs with it held.
 */
#ifndef EVFN_RUNTIME_INTERNAL_H
#define EVFN_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <evfn/context.h>
#include <evfn/emit.h>
#include <evfn/function.h>
#include <evfn/runtime.h>
#include <evfn/stats.h>

#include "deadstore-internal.h"
#include "dueheap-internal.h"
#include "eventlog-internal.h"
#include "event-internal.h"
#include "flow-internal.h"
#include "hash-internal.h"
#include "invocation-internal.h"
#include "idempotency-internal.h"
#include "list-internal.h"
#include "lock-internal.h"
#include "log-internal.h"
#include "loop-internal.h"
#include "loopexec-internal.h"
#include "metrics-internal.h"
#include "options-internal.h"
#include "ordering-internal.h"
#include "pool-internal.h"
#include "queue-internal.h"
#include "route-internal.h"
#include "worker-internal.h"

struct event;
struct event_base;

/* What a transition under the lock leaves for after it (settle.c): the
 * invocations whose event ended, for their event-log record, destination
 * and waiter; records that only need clearing and reuse (a fenced
 * attempt's old record, a prefetched one given back); and dead letters
 * evicted from the full store, released with no lock held. Zeroed:
 * empty. */
struct evfn__ended {
	struct evfn__inv_list invocations;
	struct evfn__inv_list spent_records;
	struct evfn__dead_list evicted_letters;
};

static inline bool
evfn__ended_empty(const struct evfn__ended *e)
{
	return evfn__inv_list_empty(&e->invocations) &&
	       evfn__inv_list_empty(&e->spent_records) &&
	       evfn__dead_list_empty(&e->evicted_letters);
}

/* The precondition of every function whose name ends in _locked. */
#define EVFN__ASSERT_LOCKED(rt) EVFN__ASSERT_HELD(&(rt)->lock)

enum evfn__rt_state {
	EVFN__CREATED,
	EVFN__STARTED,
	EVFN__DRAINING,
	EVFN__DRAINED
};

/* Someone waiting for an event's final outcome, and that outcome (the
 * evfn_result a callback reads): a synchronous caller (cb NULL; lives on
 * its stack, signalled under rt->lock) or a result callback
 * (heap-allocated, queued on rt->results and called on the loop thread, or
 * at free). */
struct evfn_result {
	pthread_cond_t cond;
	bool done;
	int result;
	void *resp;
	size_t resp_len;
	struct evfn__kv *meta;      /* response metadata, moved from the ctx */
	char *error;                /* last attempt's error, moved likewise */
	unsigned attempts;
	evfn_event *ev;             /* a reference, for callbacks */
	evfn_result_cb cb;
	void *cb_arg;
	struct evfn_result *next;
};
EVFN__LIST(evfn__result_list, struct evfn_result, next)

struct evfn_fn {
	UT_hash_handle hh;
	struct evfn_rt *rt;
	evfn_handler handler;
	void *userdata;
	evfn_fn_options cfg;
	unsigned index;             /* slot in per-worker state arrays */
	/* Guarded by rt->lock. */
	struct evfn__queue q;
	int64_t queued;             /* in q, plus held */
	int64_t held;               /* queued behind their ordering key */
	int running;                /* attempts (batch items count one each) */
	int prefetched;             /* of those, taken by a worker to run after
	                             * its current one (see pool.c) */
	int busy;                   /* handler calls: what concurrency bounds */
	int64_t run_ewma_ns;        /* recent run time, for prefetching */
	bool paused;
	struct evfn__okeys okeys;   /* ordering-key groups */
	struct evfn__flow *flow;    /* rate limit, breaker, batch window; NULL
	                             * when the function has none */
	int stuck;                  /* fenced attempts whose handler runs on */
	struct evfn__idem_store idem; /* keys that succeeded, with windows */
	struct evfn__metrics retired; /* from workers that exited */
	bool in_ready;              /* on its executor's ready list */
	struct evfn_fn *ready_next;
	struct evfn_fn *all_next;   /* registration order */
	uint64_t stat[EVFN_STAT_COUNT];
	char name[];
};

/* Functions that have work they may start now, in the order they got
 * it; and every function, in registration order. */
EVFN__LIST(evfn__fn_fifo, struct evfn_fn, ready_next)
EVFN__LIST(evfn__fn_list, struct evfn_fn, all_next)

/* An executor as the state machine reaches it (libdispatch's dx_wakeup):
 * the functions with work they may start now, and how to tell the
 * executor about it. The executor (pool.c, loopexec.c) fills it when it
 * is made; both calls run with rt->lock held. */
struct evfn__executor {
	struct evfn__fn_fifo ready;
	/* A function went on ready: wake a thread, or the loop. */
	void (*wake)(void *impl);
	/* Work was added behind work still waiting (NULL: nothing to do). */
	void (*backlog)(void *impl);
	void *impl;
};

struct evfn_rt {
	struct evfn__lock lock;
	pthread_cond_t quiet_cond;  /* drain, free and pool stop wait here */
	enum evfn__rt_state state;
	evfn_rt_options opts;
	char *source;
	struct evfn__logger log;

	/* Registry. */
	struct evfn_fn *by_name;    /* uthash */
	struct evfn_fn *last_found; /* evfn__fn_find()'s memo */
	struct evfn__fn_list fns;
	unsigned nfns;
	evfn__router *router;

	/* The executors, by evfn_executor: the pool and the loop. */
	struct evfn__executor exec[2];
	struct evfn__pool *pool;
	struct evfn__loopexec *loopx;
	struct evfn__inv_pool records;
	/* A queued event could not get its record: functions are scheduled
	 * again when records come back or on the next watchdog tick. */
	bool inv_starved;
	int64_t in_flight;          /* attempts running, over all functions */
	int disposing;              /* evfn_ctx_complete() callers inside */
	int attached;               /* triggers and sources still alive */
	uint64_t next_seq;

	/* The event log, told outside the lock. */
	struct evfn__eventlog eventlog;

	int nstuck;                 /* fenced pool threads still in a
	                             * handler */

	/* Loop. */
	struct evfn__loop loop;

	/* Retries and delayed events, and the one timer armed for the
	 * earliest. */
	struct evfn__dueheap due;
	struct evfn__timer *due_timer;
	uint64_t prng;

	/* Loop attempts that returned EVFN_PENDING, for the watchdog. */
	struct evfn__inv *pending;
	struct evfn__timer *watchdog;
	bool watchdog_armed;        /* ticking: attempts run, or a record is
	                             * wanted (rt->inv_starved) */
	unsigned watchdog_ticks;

	/* Dead letters, under their own lock. */
	struct evfn__dead_store dead;

	/* Result callbacks due, oldest first. */
	struct evfn__result_list results;

	/* Drain. */
	evfn_handback_cb handback_cb;
	void *handback_arg;
	struct evfn__inv_list handback; /* handed back, not yet passed to cb */
};



/* dispatch.c: events with an ordering key run one at a time per key. */
/* Queues a new invocation: behind its key's active one, or at once.
 * rt->lock held. */
void evfn__queue_in_order_locked(struct evfn_rt *rt, struct evfn__inv *inv);
/* Takes fn's held invocations that match() accepts (all for NULL) out of
 * their groups, as a list through next, each key's in order. rt->lock
 * held. */
struct evfn__inv *evfn__take_held_locked(struct evfn_fn *fn,
                                         evfn__inv_pred match, void *arg);

/* dispatch.c: flow control (rate limit, batching window, breaker). */
/* Gives fn the flow state and timer its options need. Returns 0 or
 * EVFN_ENOMEM. */
int evfn__flow_attach(struct evfn_rt *rt, struct evfn_fn *fn);
/* Frees fn's flow state and its timer (before the base goes). */
void evfn__flow_detach(struct evfn_fn *fn);
/* fn's circuit breaker, or NULL when it has none. */
static inline struct evfn__breaker *
evfn__fn_breaker(struct evfn_fn *fn)
{
	return fn->flow && fn->cfg.breaker_window_ns ? &fn->flow->breaker
	                                             : NULL;
}

/* watchdog.c */
/* Creates the watchdog's timer, not armed. */
int evfn__watchdog_new(struct evfn_rt *rt);
void evfn__watchdog_arm_slow_locked(struct evfn_rt *rt);
/* The watchdog ticks only while there is something to watch: attempts
 * running (their deadlines), or records wanted (rt->inv_starved). Called
 * when such a thing begins; the watchdog turns itself off at a tick that
 * finds nothing. Inline: asked at every call's start. rt->lock held. */
static inline void
evfn__watchdog_arm_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	if (__builtin_expect(!rt->watchdog_armed, 0))
		evfn__watchdog_arm_slow_locked(rt);
}
/* A queued or due event could not get its record: functions are
 * scheduled again when records come back, or at the watchdog's next
 * tick. rt->lock held. */
static inline void
evfn__starve_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	rt->inv_starved = true;
	evfn__watchdog_arm_locked(rt);
}
void evfn__pending_add_locked(struct evfn_rt *rt, struct evfn__inv *inv);
void evfn__pending_remove_locked(struct evfn_rt *rt, struct evfn__inv *inv);
/* Fences an attempt past its deadline: marks it cancelled, counts the
 * timeout, and moves the event on (retry or end) in a fresh record, the
 * old one staying with the stuck handler. Returns false if the attempt
 * finished first. rt->lock held. */
bool evfn__timeout_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                          struct evfn__ended *ended);
/* A fenced attempt's handler returned (or completed): counts it late,
 * bills its real run time, lets its function start what the stuck cap
 * held back, and releases the record unless the cancel hook still holds
 * it. */
void evfn__late_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                       struct evfn__ended *ended);

/* registry.c */
/* The function registered under name, or NULL. rt->lock held. */
struct evfn_fn *evfn__fn_find(struct evfn_rt *rt, const char *name);
void evfn__registry_free(struct evfn_rt *rt);

/* admit.c: the one admission path, all or nothing under rt->lock. With
 * fn_name NULL the event goes to the subscribers of its type, else to
 * fn_name alone; with handed_over, the caller's reference becomes one of
 * the targets' when the event is accepted. Events dead-lettered at once
 * (past the hop limit) are put on *ended for the caller to settle.
 * Takes and releases rt->lock. */
int evfn__admit(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
                struct evfn_result *waiter, uint64_t *seq, bool handed_over,
                struct evfn__ended *ended);
/* publish.c: evfn__admit(), then settles what ended at once. */
int evfn__publish(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
                  struct evfn_result *waiter, uint64_t *seq);

/* dispatch.c: an admitted event enters the state machine. */
/* How an invocation is accepted. */
enum evfn__accept_as {
	EVFN__ACCEPT_NOW,     /* queued, in its ordering key's order */
	EVFN__ACCEPT_DELAYED, /* waits on the due-time heap till born_ns */
	EVFN__ACCEPT_LOOPED,  /* past the hop limit: dead-lettered at once */
};
/* inv (its event, function and waiter set) is accepted. rt->lock held. */
void evfn__accept_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                         enum evfn__accept_as as, struct evfn__ended *ended);
/* ev (one reference, now the queue's) is accepted by fn as a bare event,
 * after evfn__queue_reserve_bare() said yes. rt->lock held. */
void evfn__accept_bare_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                              evfn_event *ev);

/* dispatch.c: into a function's queue. */
/* Appends inv to its function's queue and makes the function runnable
 * (waking a worker, or the loop). rt->lock held. */
void evfn__enqueue_locked(struct evfn_rt *rt, struct evfn__inv *inv);
/* As evfn__enqueue_locked() for a held invocation whose turn came: it is
 * counted in fn->queued already. */
void evfn__enqueue_held_locked(struct evfn_rt *rt, struct evfn__inv *inv);
/* Takes fn's queued invocations that match() accepts (all for NULL) out
 * of its queue, as a list through next, in order. An event whose record
 * cannot be made stays queued, setting *short_of_memory. rt->lock held. */
struct evfn__inv *evfn__take_queued_locked(struct evfn_rt *rt,
                                           struct evfn_fn *fn,
                                           evfn__inv_pred match, void *arg,
                                           bool *short_of_memory);
/* Takes up to max of fn's oldest queued invocations, as a list through
 * next, in order; stops early, setting *short_of_memory, at an event
 * whose record cannot be made. rt->lock held. */
struct evfn__inv *evfn__take_queued_front_locked(struct evfn_rt *rt,
                                                 struct evfn_fn *fn,
                                                 size_t max,
                                                 bool *short_of_memory);
/* Ends every invocation of list (through next) with stat and result, as
 * evfn__finish_locked(). */
void evfn__finish_list_locked(struct evfn_rt *rt, struct evfn__inv *list,
                              evfn_stat stat, int result,
                              struct evfn__ended *ended);
/* Puts fn on its executor's ready FIFO if it has work it may start now
 * and is not there yet, and wakes that executor. rt->lock held. */
void evfn__fn_schedule_locked(struct evfn_rt *rt, struct evfn_fn *fn);
/* Ends rt->inv_starved: records came back (or time passed), so every
 * function with work is scheduled again and due retries move on.
 * rt->lock held. */
void evfn__unstarve_locked(struct evfn_rt *rt);
/* Takes the next startable invocation from the functions on q (round
 * robin) into the running state, starting at now (monotonic, read by the
 * caller, ideally before it took the lock). Invocations found too old on
 * the way end as expired and are appended to *garbage. NULL when q has
 * nothing to start. rt->lock held. */
struct evfn__inv *evfn__pick_locked(struct evfn_rt *rt,
                                    struct evfn__fn_fifo *q, int64_t now,
                                    struct evfn__ended *ended);

/* Takes up to max more invocations of inv's function into the running
 * state, linked after inv through run_next in the PREFETCHED state, for
 * a worker to run one after the other without taking the lock between
 * them. Returns how many. rt->lock held. */
int evfn__prefetch_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                          int64_t now, struct evfn__ended *ended, int max);
/* Gives a prefetched invocation that its worker will not start back to
 * its function's queue, in a fresh record, as if it had not started.
 * Returns false when out of memory (it stays). rt->lock held. */
bool evfn__unstart_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                          struct evfn__ended *ended);

/* invoke.c */
/* dispatch.c: the attempt's own transitions, taken without the lock by
 * the thread that runs it (and by evfn_ctx_complete()); see the table
 * in dispatch.c. */
/* A worker begins the prefetched attempt inv at now: its deadline counts
 * from here. False when the watchdog gave it back first: skip it. */
bool evfn__attempt_begin_prefetched(struct evfn__inv *inv, int64_t now);
/* A pool handler returned: true when in time (its run time is measured
 * now), false when the watchdog fenced it first (the return is late). */
bool evfn__attempt_returned(struct evfn__inv *inv);
/* A loop handler returned EVFN_PENDING: the attempt waits for
 * evfn_ctx_complete(). Returns EVFN_PENDING, or the outcome
 * evfn_ctx_complete() left when it ran before the handler returned. */
int evfn__attempt_pend(struct evfn__inv *inv);
/* What evfn_ctx_complete() found. */
enum evfn__completion {
	EVFN__COMPLETED_EARLY,    /* inside the handler: it picks it up */
	EVFN__COMPLETED_IN_TIME,  /* a pending attempt completed */
	EVFN__COMPLETED_LATE,     /* fenced at its deadline before */
	EVFN__COMPLETED_TWICE,    /* not pending: completed already */
};
enum evfn__completion evfn__attempt_complete(struct evfn__inv *inv,
                                             int outcome);
/* Whether the watchdog fenced the attempt: whatever it returns is
 * late. */
bool evfn__attempt_fenced(const struct evfn__inv *inv);

/* An attempt's outcome when its handler returned after its deadline: it
 * counts as timed out, whatever it said. Internal, beside evfn_outcome. */
#define EVFN__TIMED_OUT 100
/* The outcome to record for an attempt that returned outcome at end_ns
 * (monotonic): EVFN__TIMED_OUT past the deadline. */
int evfn__outcome_at(const struct evfn__inv *inv, int outcome,
                     int64_t end_ns);
/* What a batch item's attempt came to: the call's outcome, unless the
 * call returned OK and the handler reported item i failed. */
int evfn__batch_item_outcome(const struct evfn__batch *b, size_t i,
                             int call_outcome);
/* Replaces inv's error with the deadline message. */
void evfn__set_deadline_error(struct evfn__inv *inv);
/* Records an attempt's outcome: success, retry, dead letter, expiry or
 * hand-back. rt->lock held; invocations to release are appended to
 * *garbage and released by evfn__settle_release() after unlocking. */
void evfn__complete_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                           int outcome, struct evfn__ended *ended);
/* Puts the fenced records of a batch call's other items (after inv) on
 * *garbage. rt->lock held. */
void evfn__batch_release_locked(struct evfn__inv *inv,
                                struct evfn__ended *ended);
/* Moves an invocation's event on into the fresh record to, leaving from
 * with the thread that still holds it (a fenced attempt's, or a worker
 * that will not start a prefetched one): its event reference, waiter,
 * place in its ordering key and attempt history. rt->lock held. */
void evfn__carry_on_locked(struct evfn__inv *from, struct evfn__inv *to);
/* A failed attempt that may be retried: schedules the retry, or ends the
 * event when no attempt, age or intake is left. rt->lock held. */
void evfn__retry_or_end_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                               struct evfn__ended *ended);
/* Ends a not-running invocation in a terminal state that is not success.
 * stat is EVFN_STAT_EXPIRED, EVFN_STAT_HANDED_BACK or
 * EVFN_STAT_DEAD_LETTERED; result is what a waiter receives. */
void evfn__finish_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                         evfn_stat stat, int result,
                         struct evfn__ended *ended);
/* Releases what finished invocations hold (event references, attempt
 * buffers) with no lock held, after the ended ones went through
 * evfn__after_end(), and returns the cleaned records as a list for
 * evfn__recycle_locked(). */
struct evfn__inv_list evfn__settle_release(struct evfn_rt *rt,
                                           struct evfn__ended *ended);
/* Puts cleaned records on the free list (up to a bound; the rest are
 * freed). rt->lock held. */
void evfn__recycle_locked(struct evfn_rt *rt, struct evfn__inv_list *cleaned);
/* Release then recycle, for paths that are not hot: takes rt->lock. */
void evfn__settle(struct evfn_rt *rt, struct evfn__ended *ended);

/* An attempt leaves the running state: it ended, was fenced, or was
 * given back unstarted. rt->lock held. */
static inline void
evfn__attempt_leave_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	inv->fn->running--;
	rt->in_flight--;
	if (inv->prefetched) {
		inv->prefetched = false;
		inv->fn->prefetched--;
	}
}

/* dispatch.c: the due-time heap of retries and delayed events. */
/* inv waits on the heap until inv->due_ns. rt->lock held. */
void evfn__wait_due_locked(struct evfn_rt *rt, struct evfn__inv *inv);
/* Takes off the heap every entry match() accepts (all of them for NULL
 * match), as a list of records through next. One whose record cannot be
 * made stays, setting *short_of_memory. rt->lock held. */
struct evfn__inv *evfn__take_due_locked(struct evfn_rt *rt,
                                        evfn__inv_pred match, void *arg,
                                        bool *short_of_memory);
/* Takes up to max entries off the heap, in no particular order, as a
 * list of records through next; stops early, setting *short_of_memory,
 * at one whose record cannot be made. rt->lock held. */
struct evfn__inv *evfn__take_due_some_locked(struct evfn_rt *rt, size_t max,
                                             bool *short_of_memory);
/* Moves due retries back to their queues; one whose record cannot be
 * made stays, setting rt->inv_starved. rt->lock held. */
void evfn__run_due_locked(struct evfn_rt *rt, int64_t now);
/* The due timer's callback. */
void evfn__due_timer_cb(void *arg);

/* Tells the loop executor that it has work: a function became runnable,
 * or a result is due (results are delivered at the end of its pass).
 * rt->lock held. */
static inline void
evfn__loop_executor_wake_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__executor *x = &rt->exec[EVFN_EXECUTOR_LOOP];
	x->wake(x->impl);
}

/* Calls the result callbacks that are due, with the lock released around
 * them. rt->lock held. */
void evfn__deliver_results_locked(struct evfn_rt *rt);
/* Releases what a result holds (response, metadata, error, event). */
void evfn__result_clear(struct evfn_result *r);

#endif /* EVFN_RUNTIME_INTERNAL_H */
