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
#include "histogram-internal.h"
#include "idempotency-internal.h"
#include "list-internal.h"
#include "lock-internal.h"
#include "log-internal.h"
#include "loop-internal.h"
#include "options-internal.h"
#include "ordering-internal.h"
#include "queue-internal.h"
#include "route-internal.h"

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
	bool in_ready;              /* on rt->ready (pool) or rt->loop_ready */
	struct evfn_fn *ready_next;
	struct evfn_fn *all_next;   /* registration order */
	uint64_t stat[EVFN_STAT_COUNT];
	char name[];
};

/* Functions that have work they may start now, in the order they got
 * it; and every function, in registration order. */
EVFN__LIST(evfn__fn_fifo, struct evfn_fn, ready_next)
EVFN__LIST(evfn__fn_list, struct evfn_fn, all_next)

struct evfn_rt {
	struct evfn__lock lock;
	pthread_cond_t work_cond;   /* idle workers wait here */
	pthread_cond_t quiet_cond;  /* drain/free wait here for in_flight */
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

	/* Bumped whenever a pool function becomes runnable, so that a
	 * spinning worker notices without taking the lock. */
	atomic_uint ready_gen;
	/* Work that may start: pool functions and loop functions. */
	struct evfn__fn_fifo ready;
	struct evfn__fn_fifo loop_ready;
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

	/* The loop attempt running now (not yet PENDING), for evfn_cancel(). */
	struct evfn__inv *loop_current;

	/* Pool. */
	struct evfn__worker *workers;
	struct evfn__worker *exited; /* to be joined */
	struct evfn__worker *loop_worker; /* warm state of loop handlers */
	int nthreads, nidle, nwaking;
	bool spinner;               /* a worker polls before it sleeps (one
	                             * at a time): producers wake nobody */
	int spin_polls;             /* how long the next spin lasts */
	int nexiting;               /* left the pool, not yet on exited */
	int nstuck;                 /* fenced threads still in a handler */
	struct evfn__worker *stuck_workers; /* their workers */
	int nheld;                  /* of those, the ones stuck past their
	                             * function's cap: not replaced, they
	                             * keep their place within max_workers */
	bool quit;                  /* free: workers exit */

	/* Loop. */
	struct evfn__loop loop;
	struct evfn__signal *wake;  /* runs loop handlers and results */
	struct evfn__signal *kick;  /* wakes workers at the end of a pass */

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

/* The thread-local marks that let calls refuse to wait on themselves. */
extern _Thread_local struct evfn_rt *evfn__tls_handler_rt;


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

/* admit.c: the one admission path. With fn NULL the event goes to the
 * subscribers of its type, else to fn alone. Takes and releases rt->lock. */
int evfn__admit(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
                struct evfn_result *waiter, uint64_t *seq);

/* dispatch.c: into a function's queue. */
/* Appends inv to its function's queue and makes the function runnable
 * (waking a worker, or the loop). rt->lock held. */
void evfn__enqueue_locked(struct evfn_rt *rt, struct evfn__inv *inv);
/* As evfn__enqueue_locked() for a held invocation whose turn came: it is
 * counted in fn->queued already. */
void evfn__enqueue_held_locked(struct evfn_rt *rt, struct evfn__inv *inv);
/* Appends ev (one reference, now the queue's) as a bare event, after
 * evfn__queue_reserve_bare() said yes, and schedules fn. */
void evfn__enqueue_bare_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                               evfn_event *ev);
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
/* Runs one attempt on the current thread (no lock held) and returns its
 * outcome, or EVFN_PENDING when a loop handler will complete later. */
int evfn__run_attempt(struct evfn_rt *rt, struct evfn__inv *inv,
                      struct evfn__worker *worker);
/* Tells the event log what an attempt's return means before it is
 * recorded (a late return, or a retry to come). No lock held; inv is
 * still the returning thread's. */
void evfn__record_return(struct evfn_rt *rt, struct evfn__inv *inv,
                         int outcome);
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

/* pool.c */
/* Starts the minimum number of workers (one if work waits and the
 * minimum is 0); they take nothing before the runtime is STARTED, under
 * the same hold of rt->lock. rt->lock held. */
int evfn__pool_start_locked(struct evfn_rt *rt);
/* After evfn__pool_start_locked() when the start fails (the runtime
 * stays CREATED): waits until the workers it started have left, and
 * joins them. rt->lock held (released while waiting). */
void evfn__pool_unwind_locked(struct evfn_rt *rt);
/* Wakes a worker, or starts one, for newly runnable work; on the loop
 * thread, once at the end of the loop pass. rt->lock held. */
void evfn__pool_notify_locked(struct evfn_rt *rt);
/* Work was added behind work that is still waiting: if the spinning
 * worker trusted with the earlier work has not taken it (preempted,
 * perhaps), a sleeping one is woken. rt->lock held. */
void evfn__pool_backlog_locked(struct evfn_rt *rt);
/* The end-of-pass wake-up (rt->kick). */
void evfn__pool_kick_cb(void *arg);
void evfn__pool_stop(struct evfn_rt *rt);
/* The warm state of fn on worker w, built by fn's init hook on first use;
 * on a hook failure returns NULL and sets *rc. Runs on w's thread. */
void *evfn__worker_state(struct evfn__worker *w, struct evfn_fn *fn,
                         int *rc);
/* Fences the attempts of pool workers whose deadline passed (see
 * evfn__timeout_locked), replacing their workers. Fenced records whose
 * cancel hook or timeout record is still due are pushed on *fenced
 * (linked through next). rt->lock held. */
void evfn__pool_fence_overdue_locked(struct evfn_rt *rt, int64_t now,
                                     struct evfn__ended *ended,
                                     struct evfn__inv **fenced);
/* Records an attempt's run time (to end_ns, monotonic, when its handler
 * returned) and queue wait on the worker that ran it, unless metrics are
 * off. Owner thread only. */
void evfn__worker_record(struct evfn__worker *w, const struct evfn__inv *inv,
                         int64_t end_ns);
/* Records only the queue wait: a loop attempt that returned EVFN_PENDING,
 * whose run time is known when it completes. Owner thread only. */
void evfn__worker_record_wait(struct evfn__worker *w,
                              const struct evfn__inv *inv);
/* The run time of a pending attempt that completed in time, at end_ns,
 * in its function's own totals. rt->lock held. */
void evfn__metrics_completed_locked(struct evfn_rt *rt,
                                    const struct evfn__inv *inv,
                                    int64_t end_ns);
/* A call fenced at its deadline: its run time counts as its timeout for
 * now (histogram and billed time), with the queue waits a pool attempt
 * records at its return. rt->lock held. */
void evfn__metrics_fenced_locked(struct evfn_rt *rt,
                                 const struct evfn__inv *inv);
/* The fenced call inv returned (or completed) at end_ns: the timeout
 * counted for it becomes its real run time. rt->lock held. */
void evfn__metrics_late_locked(struct evfn_rt *rt, const struct evfn__inv *inv,
                               int64_t end_ns);
/* Adds fn's metrics from every live worker and the loop to s.
 * rt->lock held. */
void evfn__metrics_collect_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                                  struct evfn_stats *s);
/* Calls f on every attempt running on a pool worker (batch items
 * included). rt->lock held. */
void evfn__pool_each_running_locked(struct evfn_rt *rt,
                                    void (*f)(struct evfn__inv *, void *),
                                    void *arg);
/* The worker's batch view, with room for n items; NULL when out of
 * memory. Owner thread. */
struct evfn__batch *evfn__worker_batch(struct evfn__worker *w, size_t n);
/* A worker record with no thread, for the loop executor's warm state. */
struct evfn__worker *evfn__worker_new(struct evfn_rt *rt);
/* Runs the fini hooks of the states w built, then frees w. */
void evfn__worker_free(struct evfn__worker *w);

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

/* Calls the result callbacks that are due, with the lock released around
 * them. rt->lock held. */
void evfn__deliver_results_locked(struct evfn_rt *rt);
/* Releases what a result holds (response, metadata, error, event). */
void evfn__result_clear(struct evfn_result *r);

#endif /* EVFN_RUNTIME_INTERNAL_H */
