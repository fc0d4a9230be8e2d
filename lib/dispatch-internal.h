/* SPDX-License-Identifier: MIT */
/*
 * The dispatch state machine as the layers above it use it: the runtime
 * and its functions (struct evfn_rt, struct evfn_fn), the executor table,
 * the list of what ended under the lock, and the transitions of
 * dispatch.c. Included by dispatch.c and the layers above it (admission,
 * settle, executors, the API files and source.c); never by a leaf, nor
 * by lib/sources/ (which use source-internal.h).
 *
 * One mutex, rt->lock, guards everything in struct evfn_rt and the queue,
 * counter and policy fields of struct evfn_fn, but for what the fast
 * path (admit.c) reads and writes without it: atomics, each marked where
 * it is declared. Functions whose name ends
 * in _locked expect it held and assert it (EVFN__ASSERT_LOCKED). User
 * code runs with it released, but for the idempotency key callback and
 * the log callback: see callout-internal.h.
 */
#ifndef EVFN_DISPATCH_INTERNAL_H
#define EVFN_DISPATCH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn/context.h>
#include <evfn/emit.h>
#include <evfn/function.h>
#include <evfn/runtime.h>
#include <evfn/stats.h>

#include "deadstore-internal.h"
#include "dueheap-internal.h"
#include "event-internal.h"
#include "eventlog-internal.h"
#include "flow-internal.h"
#include "hash-internal.h"
#include "idempotency-internal.h"
#include "intake-internal.h"
#include "journal-internal.h"
#include "invocation-internal.h"
#include "list-internal.h"
#include "lock-internal.h"
#include "log-internal.h"
#include "loop-internal.h"
#include "metrics-internal.h"
#include "options-internal.h"
#include "ordering-internal.h"
#include "queue-internal.h"
#include "result-internal.h"
#include "route-internal.h"

/* ---- the runtime and its functions -------------------------------------- */

/* Room that keeps what publishers write without the lock off the cache
 * lines workers write under it (and the other way round). */
#define EVFN__LINE 64
#define EVFN__LINE_PAD(name) char name[EVFN__LINE]

/* Slots of the fast path's function directory (a power of two). */
#define EVFN__FN_DIR_SLOTS 64

/* The precondition of every function whose name ends in _locked. */
#define EVFN__ASSERT_LOCKED(rt) EVFN__ASSERT_HELD(&(rt)->lock)

enum evfn__rt_state {
	EVFN__CREATED,
	EVFN__STARTED,
	EVFN__DRAINING,
	EVFN__DRAINED
};

struct evfn__route_memo; /* registry.c */

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
	int64_t admitting;          /* events of the admission under way sent
	                             * here (admit.c); 0 outside it */
	int64_t reserved;           /* of those, room taken in load and not
	                             * yet used by an accepted event; given
	                             * back when the admission ends */
	int64_t load_owed;          /* taken from q under this hold of the
	                             * lock, given back to load once at the
	                             * end of the take (one atomic add) */
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
	struct evfn__metrics retired; /* from workers that exited, and the
	                               * corrections of fenced calls */
	bool in_ready;              /* on its executor's ready list */
	struct evfn_fn *ready_next;
	struct evfn_fn *all_next;   /* registration order */
	uint64_t stat[EVFN_STAT_COUNT];
	uint32_t jid;               /* its id in rt->journal; 0: none */

	/* The fast path (admit.c): plain events published to this function
	 * by name without rt->lock. The queue bound is decided on load alone,
	 * by compare-and-swap: queued + delayed + events in the intake + room
	 * reserved by publishes under way, whichever path they take. Events
	 * wait in the intake, a multi-producer ring, until a thread holding
	 * rt->lock moves them into q (evfn__fn_flush_intake_locked()): a
	 * worker told by the announcement, or the next locked admission to
	 * this function, so q stays older than the intake. NULL intake: the
	 * function never takes the fast path (loop executor, flow control,
	 * batches, or a journal). */
	struct evfn__intake *intake; /* set at registration, read only */
	EVFN__LINE_PAD(pad_before);
	_Atomic int64_t load;
	atomic_bool fast_open;      /* set under rt->lock: started, not
	                             * draining, below its stuck cap */
	atomic_bool announced;      /* on rt->arrivals, not yet flushed */
	struct evfn_fn *arrival_next;
	EVFN__LINE_PAD(pad_after);
	char name[];
};

/* Functions that have work they may start now, in the order they got
 * it; and every function, in registration order. */
EVFN__LIST(evfn__fn_fifo, struct evfn_fn, ready_next)
EVFN__LIST(evfn__fn_list, struct evfn_fn, all_next)

/* An executor as the state machine reaches it (libdispatch's dx_wakeup):
 * the functions with work they may start now, and how to tell the
 * executor about them. The executor (pool.c, loopexec.c) fills its entry
 * when it is made; both calls run with rt->lock held. */
struct evfn__executor {
	struct evfn__fn_fifo ready;
	/* A function went on ready (the loop: or a result is due): wake a
	 * thread, or the loop. */
	void (*wake)(void *impl);
	/* A function was announced on rt->arrivals by a publish that holds
	 * no lock: see that a thread takes the arrivals soon. Called
	 * without rt->lock; NULL for an executor with no fast path. */
	void (*arrived)(void *impl);
	/* Work was added behind work still waiting; called only while
	 * backlog_wanted, which the executor sets and clears under the
	 * lock (the pool: while a worker spins). */
	void (*backlog)(void *impl);
	bool backlog_wanted;
	void *impl;
};

struct evfn_rt {
	struct evfn__lock lock;
	pthread_cond_t quiet_cond;  /* drain, free and pool stop wait here */
	enum evfn__rt_state state;
	evfn_rt_options opts;
	const char *source;        /* interned: outlives rt (intern.c) */
	struct evfn__logger log;

	/* Registry (registry.c). */
	struct evfn_fn *by_name;    /* uthash */
	/* What fast publishes use without the lock, on lines of its own:
	 * evfn__fn_find_locked()'s memo (functions live as long as the
	 * runtime), the functions whose intake got events since a thread
	 * last flushed it (a stack pushed without the lock, taken whole
	 * under it), and the next sequence number. */
	EVFN__LINE_PAD(pad_before_fast);
	_Atomic(struct evfn_fn *) last_found;
	/* Functions found before, by a hash of their name (registry.c):
	 * written under the lock, read without it. */
	_Atomic(struct evfn_fn *) fn_dir[EVFN__FN_DIR_SLOTS];
	/* Topics with one subscriber, by a hash of the topic (registry.c),
	 * valid while route_gen (moved by every subscription) is theirs. */
	_Atomic(struct evfn__route_memo *) route_memo[EVFN__FN_DIR_SLOTS];
	_Atomic uint64_t route_gen;
	_Atomic(struct evfn_fn *) arrivals;
	_Atomic uint64_t next_seq;
	EVFN__LINE_PAD(pad_after_fast);
	struct evfn__fn_list fns;
	unsigned nfns;
	evfn__router *router;
	struct evfn__route_memo *routes_made; /* every memo, freed at free */
	unsigned nroutes_made;

	/* The executors, by evfn_executor: the pool and the loop. */
	struct evfn__executor exec[2];
	struct evfn__pool *pool;
	struct evfn__loopexec *loopx;

	/* Invocations, and what runs out of them: a queued event could not get
	 * its invocation, so functions are scheduled again when invocations
	 * come back or on the next watchdog tick. */
	struct evfn__inv_pool inv_pool;
	bool inv_starved;

	int64_t in_flight;          /* attempts running, over all functions */
	int nstuck;                 /* fenced pool threads still in a
	                             * handler */
	int disposing;              /* evfn_ctx_complete() callers inside */
	int attached;               /* triggers and sources still alive */
	uint64_t prng;              /* backoff jitter */

	/* Retries and delayed events, and the one timer armed for the
	 * earliest. */
	struct evfn__dueheap due;
	struct evfn__timer *due_timer;

	/* Deadlines: loop attempts that returned EVFN_PENDING, and the
	 * watchdog's periodic timer (watchdog.c), ticking while attempts
	 * run or an invocation is wanted. */
	struct evfn__inv *pending;
	struct evfn__timer *watchdog;
	bool watchdog_armed;
	unsigned watchdog_ticks;

	struct evfn__eventlog eventlog; /* told outside the lock */
	struct evfn__dead_store dead;   /* under its own lock */
	struct evfn__result_list results; /* result callbacks due */

	/* Drain. */
	evfn_handback_cb handback_cb;
	void *handback_arg;
	struct evfn__inv_list handback; /* handed back, not yet passed to cb */

	/* The journal (journal-internal.h), from start to free; NULL
	 * without one. Its calls never wait but for appends in durable
	 * mode, which are made with rt->lock released. */
	struct evfn__journal *journal;
	uint64_t journal_orphans;   /* invocations of unknown functions */
	int journal_appending;      /* publishers waiting for an fsync */
	bool recovered;             /* the journal was read back */

	struct evfn__loop loop;
};

/* What a transition under the lock leaves for after it (settle.c): the
 * invocations whose event ended, for their event-log record, destination
 * and waiter; invocations that only need clearing and reuse (a fenced
 * attempt's old invocation, a prefetched one given back); and dead letters
 * evicted from the full store, released with no lock held. Zeroed:
 * empty. */
struct evfn__ended {
	struct evfn__inv_list invocations;
	struct evfn__inv_list spent;
	struct evfn__dead_list evicted_letters;
};

static inline bool
evfn__ended_empty(const struct evfn__ended *e)
{
	return evfn__inv_list_empty(&e->invocations) &&
	       evfn__inv_list_empty(&e->spent) &&
	       evfn__dead_list_empty(&e->evicted_letters);
}

/* fn's circuit breaker, or NULL when it has none. */
static inline struct evfn__breaker *
evfn__fn_breaker(struct evfn_fn *fn)
{
	return fn->flow && fn->cfg.breaker_window_ns ? &fn->flow->breaker
	                                             : NULL;
}

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

/* ---- accepted ----------------------------------------------------------- */

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

/* A recovered invocation (its event frozen with its original sequence
 * number, its function, attempts and times set; due_ns monotonic) is
 * accepted again: queued, waiting for its due time, or, when its last
 * attempt crashed (inv->crashed), counted as one failed attempt and
 * retried or dead-lettered (EVFN_ECRASHED). rt->lock held. */
void evfn__recover_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                          struct evfn__ended *ended);

/* ---- the fast path's intake -------------------------------------------- */

/* Takes room for n more events in fn's load, all or none: false when
 * load + n would pass fn's queue capacity. Any thread. */
static inline bool
evfn__fn_load_reserve(struct evfn_fn *fn, int64_t n)
{
	int64_t cur = atomic_load_explicit(&fn->load, memory_order_relaxed);
	do {
		if (cur + n > fn->cfg.queue_capacity)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
		&fn->load, &cur, cur + n, memory_order_seq_cst,
		memory_order_relaxed));
	return true;
}

/* Gives back room taken by evfn__fn_load_reserve() and not used. Any
 * thread. */
static inline void
evfn__fn_load_release(struct evfn_fn *fn, int64_t n)
{
	atomic_fetch_sub_explicit(&fn->load, n, memory_order_relaxed);
}

/* Opens or closes fn's fast path from the runtime's state and fn's
 * (started, not draining, below its stuck cap). rt->lock held. */
void evfn__fn_fast_update_locked(struct evfn_rt *rt, struct evfn_fn *fn);
/* Closes every function's fast path (the runtime drains). rt->lock
 * held. */
void evfn__fns_fast_close_locked(struct evfn_rt *rt);
/* A fast publish filled its slot in fn's intake: announces fn on
 * rt->arrivals, and tells its executor, unless it is announced already.
 * No lock held. */
void evfn__fn_announce(struct evfn_rt *rt, struct evfn_fn *fn);
/* Moves the filled events at the front of fn's intake into its queue,
 * accepted, and schedules fn; returns how many. Out of memory for the
 * queue, they stay (the runtime starves, and looks again). rt->lock
 * held. */
size_t evfn__fn_flush_intake_locked(struct evfn_rt *rt, struct evfn_fn *fn);
/* Flushes fn's intake if it holds anything: before what is admitted
 * under the lock joins fn's queue, or is taken from it, since what the
 * intake holds is older. rt->lock held. */
static inline void
evfn__fn_flush_pending_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	if (fn->intake && evfn__intake_count(fn->intake) > 0)
		(void)evfn__fn_flush_intake_locked(rt, fn);
}
/* Whether fn has fast publishes under way or events in its intake that
 * a flush could not move (a drain waits for them). rt->lock held. */
bool evfn__fn_intake_busy_locked(struct evfn_fn *fn);
/* Takes rt->arrivals and flushes the intake of each function on it,
 * putting them on their ready lists without waking anyone: the caller
 * picks next (and wakes others if more is ready). rt->lock held. */
void evfn__arrivals_take_locked(struct evfn_rt *rt);

/* ---- scheduling and starting -------------------------------------------- */

/* Puts fn on its executor's ready list if it has work it may start now
 * and is not there yet, and wakes that executor. rt->lock held. */
void evfn__fn_schedule_locked(struct evfn_rt *rt, struct evfn_fn *fn);
/* Ends rt->inv_starved: invocations came back (or time passed), so every
 * function with work is scheduled again and due retries move on.
 * rt->lock held. */
void evfn__unstarve_locked(struct evfn_rt *rt);
/* Takes the next startable invocation from the functions on q (round
 * robin) into the running state, starting at now (monotonic, read by the
 * caller, ideally before it took the lock). Invocations found too old or
 * answered already on the way end and go on *ended. NULL when q has
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
 * its function's queue, in a fresh invocation, as if it had not started.
 * Returns false when out of memory (it stays). rt->lock held. */
bool evfn__unstart_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                          struct evfn__ended *ended);

/* ---- the attempt's own transitions -------------------------------------- */

/* Taken without the lock by the thread that runs the attempt (and by
 * evfn_ctx_complete()); see the table in dispatch.c. */

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

/* ---- returned ----------------------------------------------------------- */

/* An attempt's outcome when its handler returned after its deadline: it
 * counts as timed out, whatever it said. Internal, beside evfn_outcome. */
#define EVFN__TIMED_OUT 100
/* The outcome to count for an attempt that returned outcome at end_ns
 * (monotonic): EVFN__TIMED_OUT past the deadline. */
int evfn__outcome_at(const struct evfn__inv *inv, int outcome,
                     int64_t end_ns);
/* What a batch item's attempt came to: the call's outcome, unless the
 * call returned OK and the handler reported item i failed. */
int evfn__batch_item_outcome(const struct evfn__batch *b, size_t i,
                             int call_outcome);
/* A call returned with outcome (the first item inv, the batch items after
 * it): each attempt ends in success, a retry or an end; a call the
 * watchdog fenced first is late and changes nothing else. rt->lock
 * held. */
void evfn__complete_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                           int outcome, struct evfn__ended *ended);
/* The calls a pool worker ran one after the other (first, then along
 * run_next: attempts of one function it took together), completed as
 * evfn__complete_locked() does, with fn's next start scheduled once:
 * outcomes[i] is the i-th call's, ran[i] false for one the watchdog gave
 * back before it started (it goes to ended->spent). Unlinks the run;
 * returns how many calls it had. rt->lock held. */
int evfn__complete_run_locked(struct evfn_rt *rt, struct evfn__inv *first,
                              const int *outcomes, const bool *ran,
                              struct evfn__ended *ended);
/* Ends every invocation of list with stat (its terminal counter) and
 * result (what its waiter receives): cancelled or handed back. Returns
 * how many. rt->lock held. */
size_t evfn__end_all_locked(struct evfn_rt *rt, struct evfn__inv_list *list,
                            evfn_stat stat, int result,
                            struct evfn__ended *ended);

/* ---- deadlines ---------------------------------------------------------- */

/* Loop attempts that returned EVFN_PENDING, watched for their deadline.
 * rt->lock held. */
void evfn__pending_add_locked(struct evfn_rt *rt, struct evfn__inv *inv);
void evfn__pending_remove_locked(struct evfn_rt *rt, struct evfn__inv *inv);
/* Fences an attempt past its deadline: marks it cancelled, counts the
 * timeout, and moves the event on (retry or end) in a fresh invocation, the
 * old one staying with the stuck handler. Returns false if the attempt
 * finished first. rt->lock held. */
bool evfn__timeout_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                          struct evfn__ended *ended);
/* The cancel hook and the TIMEOUT event-log record of the fenced attempt
 * inv ran: its invocation is released now if its handler returned
 * meanwhile. rt->lock held. */
void evfn__fence_hook_done_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                                  struct evfn__ended *ended);

/* ---- the due-time heap, flow control ------------------------------------ */

/* The due timer's callback: moves due retries and delayed events on. */
void evfn__due_timer_cb(void *arg);
/* Gives fn the flow state and timer its options need. Returns 0 or
 * EVFN_ENOMEM. */
int evfn__flow_attach(struct evfn_rt *rt, struct evfn_fn *fn);
/* Frees fn's flow state and its timer (before the base goes). */
void evfn__flow_detach(struct evfn_fn *fn);

/* ---- invocations -------------------------------------------------------- */

/* Puts cleaned invocations back in the pool; invocations coming back end a
 * starvation. rt->lock held. */
void evfn__recycle_locked(struct evfn_rt *rt, struct evfn__inv_list *cleaned);

/* ---- taking waiting events out: cancel and drain ------------------------ */

/* Each takes the matching invocations (all for a NULL match) out of where
 * they wait, as invocations, in order, no longer counted there: the caller
 * ends them. One whose invocation cannot be made stays, setting
 * *short_of_memory. rt->lock held. */
struct evfn__inv_list evfn__take_held_locked(struct evfn_fn *fn,
                                             evfn__inv_pred match, void *arg);
struct evfn__inv_list evfn__take_queued_locked(struct evfn_rt *rt,
                                               struct evfn_fn *fn,
                                               evfn__inv_pred match,
                                               void *arg,
                                               bool *short_of_memory);
/* Up to max of the oldest. */
struct evfn__inv_list evfn__take_queued_front_locked(struct evfn_rt *rt,
                                                     struct evfn_fn *fn,
                                                     size_t max,
                                                     bool *short_of_memory);
struct evfn__inv_list evfn__take_due_locked(struct evfn_rt *rt,
                                            evfn__inv_pred match, void *arg,
                                            bool *short_of_memory);
/* Up to max, in no particular order. */
struct evfn__inv_list evfn__take_due_some_locked(struct evfn_rt *rt,
                                                 size_t max,
                                                 bool *short_of_memory);

#endif /* EVFN_DISPATCH_INTERNAL_H */
