/* SPDX-License-Identifier: MIT */
/*
 * The dispatch state machine: how an accepted event moves through its
 * function until it ends, and the one place where that happens. The
 * transitions, in the order of an event's life:
 *
 *   accepted  evfn__accept_locked(): queued (in its ordering key's
 *             order), delayed on the due-time heap, or dead-lettered
 *   started   start_attempt_locked(), from evfn__pick_locked() and
 *             evfn__prefetch_locked(): an attempt runs, with a deadline
 *   returned  evfn__complete_locked(): success, or a failure that is
 *             retried or ends the event; a late return changes nothing
 *   fenced    evfn__timeout_locked(): the deadline passed
 *   retry     retry_or_end_locked(): waits on the due-time heap for its
 *             backoff, then is queued again
 *   ended     end_locked(): succeeded, dead-lettered (the dead letter
 *             stored at once), expired, cancelled or handed back
 *
 * so a journal that writes down what happened to each event hooks into
 * evfn__accept_locked(), start_attempt_locked(), retry_or_end_locked()
 * and end_locked(). The counters behind the accounting invariant change
 * in the acct_*() helpers below only. The leaves (queue.c, ordering.c,
 * dueheap.c, flow.c, breaker.c, idempotency.c, deadstore.c) keep events
 * and say what to do; this file acts. Executors are reached through
 * rt->exec[]; what follows an end outside the lock is settle.c's.
 * Everything here runs with rt->lock held, apart from the attempt
 * transitions a running thread takes on its own (see the table).
 */
#include <stdio.h>
#include <string.h>

#include <evfn/context.h>

#include "backoff-internal.h"
#include "callout-internal.h"
#include "common-internal.h"
#include "dispatch-internal.h"

/*
 * An attempt's state (ctx.state). The thread that runs an attempt moves
 * it without the runtime lock when its handler returns; the watchdog
 * moves it under the lock when its deadline passes; a compare-and-swap
 * decides which came first.
 *
 *   pick/start ---------------------------------> RUNNING
 *   prefetch ------------------------------------> PREFETCHED
 *
 *   PREFETCHED --its worker begins it---------------> RUNNING
 *   PREFETCHED --the watchdog gives it back---------> TIMEDOUT (*)
 *   RUNNING ----a pool handler returns in time------> RETURNED
 *   RUNNING ----a loop handler returns PENDING------> PENDING
 *   RUNNING ----evfn_ctx_complete() inside it-------> EARLY
 *   PENDING ----evfn_ctx_complete()-----------------> RETURNED
 *   RUNNING, PENDING --its deadline passes----------> TIMEDOUT (*)
 *   RUNNING, RETURNED, EARLY --its end counted------> DONE
 *
 * (*) fenced: the event goes on in a fresh invocation (retry or end) and the
 * old invocation stays with its thread; what it returns later is late
 * (late_locked()) and changes nothing else. An invocation is zeroed
 * (RUNNING) when it goes back to the pool.
 */
enum attempt_state {
	ATTEMPT_RUNNING,
	ATTEMPT_PENDING,
	ATTEMPT_DONE,
	ATTEMPT_EARLY,
	ATTEMPT_TIMEDOUT,
	ATTEMPT_PREFETCHED,
	ATTEMPT_RETURNED,
};

static bool
move_state(struct evfn__inv *inv, enum attempt_state from,
           enum attempt_state to)
{
	int expected = (int)from;
	return atomic_compare_exchange_strong(&inv->ctx.state, &expected,
	                                      (int)to);
}

/* The start of an attempt of inv at now (monotonic; wall: the same
 * instant on the wall clock), in its invocation. */
static void
set_start_at(struct evfn__inv *inv, int64_t now, int64_t wall)
{
	inv->start_ns = now;
	inv->ctx.deadline_ns = now + inv->fn->cfg.timeout_ns;
	inv->last_ns = wall;
	if (inv->attempt == 1)
		inv->first_ns = wall;
}

static void
set_start(struct evfn__inv *inv, int64_t now)
{
	set_start_at(inv, now, evfn__mono_to_wall(now));
}

/* ---- accounting --------------------------------------------------------- */

/*
 * For every function, at every instant a snapshot can see (snapshots
 * take rt->lock):
 *
 *   accepted = succeeded + dead_lettered + expired + handed_back
 *            + cancelled + in_flight + queued + waiting_retry + delayed
 *
 * in_flight is fn->running, queued is fn->queued (held events, waiting
 * behind their ordering key, included: fn->held counts those). Each
 * helper below moves events into or out of one term; a transition that
 * moves an event between terms calls two of them under one hold of the
 * lock, so no snapshot sees it in neither or both. Events published on
 * the fast path are in none of the terms until a flush moves them from
 * the intake into queued and accepted together; a snapshot flushes first
 * and counts in both what it could not move (stats.c).
 *
 * The queue bound is kept in fn->load (queued + delayed + the intake +
 * room reserved), which fast publishers change without the lock: so
 * queued and delayed move it here too. Room an admission reserved is
 * used by its events' first count (fn->reserved) instead of being added
 * again. Where an event moves between queued and delayed, it is added to
 * the one before it leaves the other: load may count it twice for an
 * instant (a racing publish is refused, as it would have been a moment
 * before), never zero times (the bound would be passed).
 */

/* Adds n (positive: entering queued or delayed; negative: leaving) to
 * fn's load, an entry first using room the admission under way reserved
 * for it. */
static inline void
load_add(struct evfn_fn *fn, int64_t n)
{
	if (n > 0 && fn->reserved > 0) {
		int64_t used = EVFN__MIN(n, fn->reserved);
		fn->reserved -= used;
		n -= used;
	}
	if (n != 0)
		atomic_fetch_add_explicit(&fn->load, n, memory_order_relaxed);
}

static inline void
acct_accepted(struct evfn_fn *fn)
{
	fn->stat[EVFN_STAT_ACCEPTED]++;
}

static inline void
acct_queued(struct evfn_fn *fn, int64_t n)
{
	fn->queued += n;
	load_add(fn, n);
}

/* A worker's take from the queue: queued at once, load (which fast
 * publishers race for) once for the whole take, in acct_take_done()
 * before the lock is released. */
static inline void
acct_taken(struct evfn_fn *fn)
{
	fn->queued--;
	fn->load_owed++;
}

static inline void
acct_take_done(struct evfn_fn *fn)
{
	if (fn->load_owed > 0) {
		load_add(fn, -fn->load_owed);
		fn->load_owed = 0;
	}
}

/* Held events are a part of queued: move them with acct_queued() too
 * when they enter or leave the queue, not when their turn comes. */
static inline void
acct_held(struct evfn_fn *fn, int64_t n)
{
	fn->held += n;
}

static inline void
acct_started(struct evfn_rt *rt, struct evfn_fn *fn, int64_t n)
{
	fn->running += n;
	rt->in_flight += n;
	fn->stat[EVFN_STAT_ATTEMPTS] += (uint64_t)n;
}

/* An attempt leaves the running state: it ended, was fenced, or was
 * given back unstarted. */
static inline void
acct_left_running(struct evfn_rt *rt, struct evfn__inv *inv)
{
	inv->fn->running--;
	rt->in_flight--;
	if (inv->prefetched) {
		inv->prefetched = false;
		inv->fn->prefetched--;
	}
}

/* On the due-time heap: a delayed event before its first attempt, or a
 * retry waiting for its backoff. */
static inline void
acct_waiting(struct evfn_fn *fn, bool delayed, int64_t n)
{
	fn->stat[delayed ? EVFN_STAT_DELAYED : EVFN_STAT_WAITING_RETRY] +=
		(uint64_t)n;
	if (delayed)
		load_add(fn, n);
}

static inline void
acct_ended(struct evfn_fn *fn, evfn_stat stat)
{
	fn->stat[stat]++;
}

/* ---- forward declarations ----------------------------------------------- */

static void end_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                       evfn_stat stat, int result, struct evfn__ended *ended);
static void enqueue_locked(struct evfn_rt *rt, struct evfn__inv *inv);
static void queue_in_order_locked(struct evfn_rt *rt, struct evfn__inv *inv);
static void run_due_locked(struct evfn_rt *rt, int64_t now);
static void wait_due_locked(struct evfn_rt *rt, struct evfn__inv *inv);
static void retry_or_end_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                                struct evfn__ended *ended);
static void carry_on_locked(struct evfn__inv *from, struct evfn__inv *to);
static void release_batch_items_locked(struct evfn__inv *inv,
                                         struct evfn__ended *ended);
static void late_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                        struct evfn__ended *ended);
static bool flow_allows_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                               int64_t now);
static void journal_failed_locked(struct evfn_rt *rt,
                                  const struct evfn__inv *inv,
                                  const char *what, int rc);

/* ---- ready lists -------------------------------------------------------- */

/* The watchdog ticks only while there is something to watch: attempts
 * running (their deadlines), or invocations wanted (rt->inv_starved). Called
 * when such a thing begins; the watchdog (watchdog.c) turns itself off
 * at a tick that finds nothing. Inline: asked at every call's start. */
static inline void
watchdog_arm_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	/* Not armed if this fails (out of memory in libevent): the next
	 * attempt to start tries again. */
	if (EVFN__UNLIKELY(!rt->watchdog_armed))
		rt->watchdog_armed = evfn__timer_arm(rt->watchdog, 0);
}

/* A queued or due event could not get its invocation: functions are
 * scheduled again when invocations come back, or at the watchdog's next
 * tick. */
static inline void
starve_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	rt->inv_starved = true;
	watchdog_arm_locked(rt);
}

static void
ready_push(struct evfn__fn_fifo *q, struct evfn_fn *fn)
{
	fn->in_ready = true;
	evfn__fn_fifo_push(q, fn);
}

/* Whether fn may start a call now (monotonic; 0: read the clock if
 * needed). False also while it must wait for time to pass (rate limit,
 * breaker cool-down, batch window): its flow timer is then armed to look
 * again. */
static bool
fn_startable_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	/* Draining: what has not started is handed back, not started. At
	 * its stuck cap a function starts nothing (each start could strand
	 * one more thread) until a stuck handler returns. */
	if (rt->state >= EVFN__DRAINING || rt->inv_starved ||
	    evfn__queue_empty(&fn->q) || fn->paused ||
	    fn->stuck >= fn->cfg.max_stuck ||
	    (fn->cfg.concurrency && fn->busy >= fn->cfg.concurrency))
		return false;
	return !fn->flow ||
	       flow_allows_locked(rt, fn, now ? now : evfn__now_ns());
}

/* fn, not on its executor's ready list, goes there if it may start. Out
 * of line: the common case, fn already on the list, stays small. */
__attribute__((noinline)) static void
make_ready_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                  struct evfn__executor *x)
{
	EVFN__ASSERT_LOCKED(rt);
	if (!fn_startable_locked(rt, fn, 0))
		return;
	ready_push(&x->ready, fn);
	x->wake(x->impl);
}

static inline void
schedule_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__executor *x = &rt->exec[fn->cfg.executor];
	if (!fn->in_ready)
		make_ready_locked(rt, fn, x);
	else if (x->backlog_wanted)
		x->backlog(x->impl);
}

void
evfn__fn_schedule_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	schedule_locked(rt, fn);
}

void
evfn__unstarve_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	rt->inv_starved = false;
	for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next) {
		evfn__fn_flush_pending_locked(rt, fn);
		schedule_locked(rt, fn);
	}
	run_due_locked(rt, evfn__now_ns());
}

/* ---- the fast path's intake --------------------------------------------- */

void
evfn__fn_fast_update_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	bool open = fn->intake && rt->state == EVFN__STARTED &&
	            fn->stuck < fn->cfg.max_stuck;
	if (atomic_load_explicit(&fn->fast_open, memory_order_relaxed) != open)
		atomic_store(&fn->fast_open, open);
}

void
evfn__fns_fast_close_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next)
		atomic_store(&fn->fast_open, false);
}

void
evfn__fn_announce(struct evfn_rt *rt, struct evfn_fn *fn)
{
	/* Between the slot's fill (a release store) and this load: the
	 * flusher clears the flag and then reads the slots, so either it
	 * sees this event or this sees the flag clear and announces. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&fn->announced, memory_order_relaxed) ||
	    atomic_exchange(&fn->announced, true))
		return;
	struct evfn_fn *head =
		atomic_load_explicit(&rt->arrivals, memory_order_relaxed);
	do
		fn->arrival_next = head;
	while (!atomic_compare_exchange_weak_explicit(
		&rt->arrivals, &head, fn, memory_order_seq_cst,
		memory_order_relaxed));
	struct evfn__executor *x = &rt->exec[fn->cfg.executor];
	x->arrived(x->impl);
}

/* Events moved from the intake at once: a take's worth on the stack. */
#define FLUSH_CHUNK 64

/* Moves fn's intake into its queue (see evfn__fn_flush_intake_locked());
 * fn then goes on its ready list, its executor woken only with wake. */
static size_t
flush_intake_locked(struct evfn_rt *rt, struct evfn_fn *fn, bool wake)
{
	EVFN__ASSERT_LOCKED(rt);
	void *evs[FLUSH_CHUNK];
	size_t total = 0, n;
	uint32_t waiting;
	while ((waiting = evfn__intake_count(fn->intake)) > 0) {
		size_t want = EVFN__MIN(waiting, (uint32_t)FLUSH_CHUNK);
		/* Without room for bare events (the ring cannot grow, or
		 * invocations wait behind it: they keep the order), one at a
		 * time, each in an invocation. */
		struct evfn__inv *inv = NULL;
		if (!evfn__queue_reserve_bare(&fn->q, want)) {
			if (!(inv = evfn__inv_get(&rt->inv_pool))) {
				/* It stays in the intake, counted in load:
				 * looked at again when the runtime stops
				 * starving. */
				starve_locked(rt);
				break;
			}
			want = 1;
		}
		/* Stops at a slot reserved and not filled yet: its
		 * publisher announces it once filled. */
		if ((n = evfn__intake_take(fn->intake, evs, want, NULL)) == 0) {
			if (inv)
				evfn__inv_put(&rt->inv_pool, inv);
			break;
		}
		if (inv) {
			inv->ev = evs[0];
			inv->fn = fn;
			inv->ready_ns = inv->ev->born_ns;
			evfn__queue_push(&fn->q, inv);
		} else {
			for (size_t i = 0; i < n; i++)
				evfn__queue_push_bare(&fn->q, evs[i]);
		}
		/* Accepted and queued together; their room in load was taken
		 * when they were published. */
		fn->stat[EVFN_STAT_ACCEPTED] += n;
		fn->queued += (int64_t)n;
		total += n;
	}
	if (total == 0)
		return 0;
	if (wake)
		schedule_locked(rt, fn);
	else if (!fn->in_ready && fn_startable_locked(rt, fn, 0))
		ready_push(&rt->exec[fn->cfg.executor].ready, fn);
	return total;
}

size_t
evfn__fn_flush_intake_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	return flush_intake_locked(rt, fn, true);
}

bool
evfn__fn_intake_busy_locked(struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	if (!fn->intake)
		return false;
	int64_t load = atomic_load(&fn->load);
	return evfn__intake_count(fn->intake) > 0 ||
	       load != fn->queued + (int64_t)fn->stat[EVFN_STAT_DELAYED];
}

void
evfn__arrivals_take_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = atomic_exchange(&rt->arrivals, NULL);
	/* A stack: the first announced is last. Reversed, so that functions
	 * are scheduled in the order their events came. */
	struct evfn_fn *fifo = NULL;
	while (fn) {
		struct evfn_fn *next = fn->arrival_next;
		fn->arrival_next = fifo;
		fifo = fn;
		fn = next;
	}
	while (fifo) {
		struct evfn_fn *next = fifo->arrival_next;
		/* Cleared before the slots are read (see evfn__fn_announce). */
		atomic_store(&fifo->announced, false);
		/* Woken by the announcement, this thread is picking: it takes
		 * the work itself, and wakes others if more is ready. */
		(void)flush_intake_locked(rt, fifo, false);
		fifo = next;
	}
}

/* ---- accepted ----------------------------------------------------------- */

void
evfn__accept_bare_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                         evfn_event *ev)
{
	EVFN__ASSERT_LOCKED(rt);
	acct_accepted(fn);
	evfn__queue_push_bare(&fn->q, ev);
	acct_queued(fn, 1);
	schedule_locked(rt, fn);
}

void
evfn__accept_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                    enum evfn__accept_as as, struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	acct_accepted(inv->fn);
	switch (as) {
	case EVFN__ACCEPT_LOOPED:
		evfn_ctx_set_error(&inv->ctx, "hop limit exceeded");
		end_locked(rt, inv, EVFN_STAT_DEAD_LETTERED,
		                    EVFN_ELOOPDETECTED, ended);
		break;
	case EVFN__ACCEPT_DELAYED:
		inv->delayed = true;
		inv->due_ns = inv->ev->born_ns;
		wait_due_locked(rt, inv);
		break;
	case EVFN__ACCEPT_NOW:
		queue_in_order_locked(rt, inv);
		break;
	}
}

void
evfn__recover_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                     struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	bool crashed = inv->crashed;
	inv->crashed = false;
	if (inv->attempt == 0 && !crashed) {
		/* Never started: as if just published (a delayed one waits
		 * for its due time, then joins its key's order). */
		evfn__accept_locked(rt, inv, inv->ev->born_ns > evfn__now_ns()
		                                     ? EVFN__ACCEPT_DELAYED
		                                     : EVFN__ACCEPT_NOW,
		                    ended);
		return;
	}
	acct_accepted(fn);
	/* It had its key's turn: it takes it again. Recovery goes in
	 * publish order, so it is the first of its key found. */
	const char *key = evfn__event_okey(inv->ev);
	if (key && evfn__okeys_join(&fn->okeys, inv, key) == EVFN__OKEY_HELD) {
		acct_queued(fn, 1);
		acct_held(fn, 1);
		return;
	}
	if (crashed) {
		/* The attempt running at the crash failed. */
		fn->stat[EVFN_STAT_ATTEMPTS_FAILED]++;
		evfn_ctx_set_error(&inv->ctx, "crashed");
		if (inv->attempt >= (unsigned)fn->cfg.attempts)
			end_locked(rt, inv, EVFN_STAT_DEAD_LETTERED,
			           EVFN_ECRASHED, ended);
		else
			retry_or_end_locked(rt, inv, ended);
	} else if (inv->due_ns > evfn__now_ns()) {
		wait_due_locked(rt, inv);
	} else {
		enqueue_locked(rt, inv);
	}
}

/* inv, counted as queued already (a held one whose turn came), goes into
 * its function's queue, which becomes runnable. */
static void
enqueue_held_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	/* Queue wait is measured from here: the publish (or due) time for a
	 * first attempt, the due time for a retry (no clock read needed). */
	inv->ready_ns = inv->attempt ? inv->due_ns : inv->ev->born_ns;
	evfn__queue_push(&inv->fn->q, inv);
	schedule_locked(rt, inv->fn);
}

/* inv goes into its function's queue, which becomes runnable. */
static void
enqueue_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	acct_queued(inv->fn, 1);
	enqueue_held_locked(rt, inv);
}

/* A new invocation is queued: behind its key's active one, or at once. */
static void
queue_in_order_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	const char *key = evfn__event_okey(inv->ev);
	struct evfn_fn *fn = inv->fn;
	switch (key ? evfn__okeys_join(&fn->okeys, inv, key)
	            : EVFN__OKEY_ACTIVE) {
	case EVFN__OKEY_HELD:
		acct_queued(fn, 1);
		acct_held(fn, 1);
		return;
	case EVFN__OKEY_NOMEM:
		/* Admitted already: run it rather than lose it, unordered. */
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "%s: out of memory ordering key %s; event %s runs "
		           "unordered", fn->name, key, evfn_event_id(inv->ev));
		break;
	case EVFN__OKEY_ACTIVE:
		break;
	}
	enqueue_locked(rt, inv);
}

/* ---- the due-time heap: delays and retries ------------------------------ */

/* An entry's time came (or it has nowhere to wait): a retry goes back to
 * its queue, a delayed event joins its key's order as if just published. */
static void
requeue_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	if (inv->delayed) {
		inv->delayed = false;
		queue_in_order_locked(rt, inv);
	} else {
		enqueue_locked(rt, inv);
	}
}

static void
arm_due_timer_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	if (!evfn__dueheap_empty(&rt->due))
		(void)evfn__timer_arm(rt->due_timer,
		                      evfn__dueheap_next_due(&rt->due));
}

/* inv waits on the due-time heap until inv->due_ns. */
static void
wait_due_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	/* Read first: a compacted invocation goes back to the pool. */
	struct evfn_fn *fn = inv->fn;
	bool delayed = inv->delayed;
	if (!evfn__dueheap_push(&rt->due, inv, &rt->inv_pool)) {
		/* Nowhere to wait: run it now rather than lose it. */
		requeue_locked(rt, inv);
		return;
	}
	acct_waiting(fn, delayed, 1);
	arm_due_timer_locked(rt);
}

/* Moves due entries back to their queues; one whose invocation cannot be
 * made stays, starving the runtime. */
static void
run_due_locked(struct evfn_rt *rt, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	/* Draining: what waits is handed back, not queued again. */
	if (rt->state >= EVFN__DRAINING)
		return;
	while (!evfn__dueheap_empty(&rt->due) &&
	       evfn__dueheap_next_due(&rt->due) <= now) {
		struct evfn__inv *inv =
			evfn__dueheap_pop(&rt->due, &rt->inv_pool);
		if (!inv) {
			/* Looked at again when invocations come back, or on the
			 * next watchdog tick. */
			starve_locked(rt);
			break;
		}
		/* Queued before it leaves the heap's count: load never
		 * misses it (see the accounting above). */
		struct evfn_fn *fn = inv->fn;
		bool delayed = inv->delayed;
		requeue_locked(rt, inv);
		acct_waiting(fn, delayed, -1);
	}
	arm_due_timer_locked(rt);
}

void
evfn__due_timer_cb(void *arg)
{
	struct evfn_rt *rt = arg;
	evfn__lock_acquire(&rt->lock);
	run_due_locked(rt, evfn__now_ns());
	evfn__lock_release(&rt->lock);
}

/* ---- flow control: rate limit, batching window, circuit breaker --------- */

/* Arms fn's flow timer for due (monotonic ns) unless armed earlier. One
 * timer serves the rate limit, the batch window and the breaker: when it
 * fires, scheduling the function asks the first two again, and an open
 * breaker arms it again for its cool-down (breaker_tick_locked()). */
static void
flow_arm_locked(struct evfn_fn *fn, int64_t due)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	(void)evfn__timer_arm(fn->flow->timer, due);
}

/* fn's breaker moved to its state b->state (why: what tripped it
 * open): counted, told to the event log, and, open, the flow timer armed
 * for its cool-down so that it turns half-open on time even when nothing
 * is queued. */
static void
circuit_changed_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                       const struct evfn__breaker *b, const char *why)
{
	EVFN__ASSERT_LOCKED(rt);
	static const int kinds[] = {
		[EVFN_CIRCUIT_CLOSED] = EVFN_RECORD_CIRCUIT_CLOSED,
		[EVFN_CIRCUIT_OPEN] = EVFN_RECORD_CIRCUIT_OPEN,
		[EVFN_CIRCUIT_HALF_OPEN] = EVFN_RECORD_CIRCUIT_HALF_OPEN,
	};
	fn->stat[EVFN_STAT_CIRCUIT_STATE] = (uint64_t)b->state;
	if (b->state == EVFN_CIRCUIT_OPEN)
		fn->stat[EVFN_STAT_CIRCUIT_OPENS]++;
	if (evfn__eventlog_defer(&rt->eventlog, kinds[b->state], fn->name,
	                         why) < 0)
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "%s: out of memory for a circuit-breaker "
		           "event-log record",
		           fn->name);
	if (b->state == EVFN_CIRCUIT_OPEN)
		flow_arm_locked(fn, b->open_until);
}

/* An open breaker whose cool-down passed turns half-open; one still in
 * its cool-down keeps the flow timer armed for its end (it may have
 * fired for the rate limit or the batch window, or early). */
static void
breaker_tick_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__breaker *b = evfn__fn_breaker(fn);
	if (!b)
		return;
	if (evfn__breaker_tick(b, now))
		circuit_changed_locked(rt, fn, b, NULL);
	else if (b->state == EVFN_CIRCUIT_OPEN)
		flow_arm_locked(fn, b->open_until);
}

/* A call of fn ended at now (ok: its handler returned EVFN_OK): its
 * breaker counts it. */
EVFN__NOINLINE static void
breaker_count_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                     struct evfn__inv *inv, bool ok, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__breaker *b = evfn__fn_breaker(fn);
	if (!b)
		return;
	bool probe = inv->probe;
	inv->probe = false;
	char why[96];
	if (evfn__breaker_count_call(b, &fn->cfg, probe, ok, now, why,
	                             sizeof(why)) >= 0)
		circuit_changed_locked(rt, fn, b,
		                       b->state == EVFN_CIRCUIT_OPEN ? why
		                                                     : NULL);
}

/* Whether fn's flow lets a call start at now; when not until some time
 * passes, its flow timer is armed to look again then. */
static bool
flow_allows_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__breaker *b = evfn__fn_breaker(fn);
	if (b) {
		breaker_tick_locked(rt, fn, now);
		if (!evfn__breaker_allows(b))
			return false;
	}
	bool wait_began;
	int64_t until = evfn__flow_rate_wait(fn->flow, now, &wait_began);
	if (wait_began)
		fn->stat[EVFN_STAT_RATE_LIMITED]++;
	if (until) {
		flow_arm_locked(fn, until);
		return false;
	}
	/* The batching window: wait for a full batch, or for the oldest
	 * startable event to have waited the window. At drain the queue is
	 * handed back, so no batch is held for it. */
	if (fn->cfg.batch_window_ns &&
	    fn->queued - fn->held < fn->cfg.batch_max) {
		int64_t due = evfn__queue_head_ready_ns(&fn->q) +
		              fn->cfg.batch_window_ns;
		if (now < due) {
			flow_arm_locked(fn, due);
			return false;
		}
	}
	return true;
}

/* A call of fn starts at now with inv: it takes a rate token, and may be
 * its breaker's probe. */
static void
flow_call_started_locked(struct evfn_fn *fn, struct evfn__inv *inv,
                         int64_t now)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	evfn__flow_rate_take(fn->flow, now);
	struct evfn__breaker *b = evfn__fn_breaker(fn);
	if (b && evfn__breaker_start_call(b))
		inv->probe = true;
}

/* fn's flow timer fired: what held it back may have changed. */
static void
flow_timer_cb(void *arg)
{
	struct evfn_fn *fn = arg;
	struct evfn_rt *rt = fn->rt;
	evfn__lock_acquire(&rt->lock);
	breaker_tick_locked(rt, fn, evfn__now_ns());
	schedule_locked(rt, fn);
	evfn__lock_release(&rt->lock);
	evfn__eventlog_flush(&rt->eventlog);
}

int
evfn__flow_attach(struct evfn_rt *rt, struct evfn_fn *fn)
{
	int rc = evfn__flow_new(&fn->cfg, &fn->flow);
	if (rc < 0 || !fn->flow)
		return rc;
	fn->flow->timer = evfn__timer_new(&rt->loop, flow_timer_cb, fn);
	if (!fn->flow->timer) {
		evfn__flow_free(fn->flow);
		fn->flow = NULL;
		return EVFN_ENOMEM;
	}
	return 0;
}

void
evfn__flow_detach(struct evfn_fn *fn)
{
	if (!fn->flow)
		return;
	evfn__timer_free(fn->flow->timer);
	evfn__flow_free(fn->flow);
	fn->flow = NULL;
}

/* ---- idempotency -------------------------------------------------------- */

/* The idempotency key of inv's event: the one fn's key callback derives
 * into buf, or the event id. */
static const char *
idem_key_locked(struct evfn_fn *fn, const struct evfn__inv *inv, char *buf,
                size_t size)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	if (fn->cfg.idem_key &&
	    evfn__call_idempotency_key(&fn->rt->lock, fn->cfg.idem_key, inv->ev,
	                               buf, size, fn->userdata) == 0) {
		buf[size - 1] = '\0';
		return buf;
	}
	return evfn_event_id(inv->ev);
}

/* If inv's key succeeded within fn's window, takes the stored response
 * into inv and returns true. */
EVFN__NOINLINE static bool
idem_hit_locked(struct evfn_fn *fn, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	char buf[EVFN_NAME_MAX + 1];
	const char *key = idem_key_locked(fn, inv, buf, sizeof(buf));
	return evfn__idem_lookup(&fn->idem, key, evfn__now_ns(), &inv->ctx.resp,
	                         &inv->ctx.resp_len);
}

/* inv succeeded: its key and response are remembered for fn's window. */
EVFN__NOINLINE static void
idem_remember_locked(struct evfn_fn *fn, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	char buf[EVFN_NAME_MAX + 1];
	const char *key = idem_key_locked(fn, inv, buf, sizeof(buf));
	int64_t expires = evfn__now_ns() + fn->cfg.idem_window_ns;
	evfn__idem_remember(&fn->idem, key, expires, inv->ctx.resp,
	                    inv->ctx.resp_len);
	/* Before the end is journaled: a crash that keeps the end keeps
	 * the key. */
	if (fn->rt->journal) {
		int rc = evfn__journal_idempotency_put(
			fn->rt->journal, fn->jid, key, inv->ctx.resp,
			inv->ctx.resp_len, evfn__mono_to_wall(expires));
		if (rc < 0)
			journal_failed_locked(fn->rt, inv, "the idempotency key",
			                      rc);
	}
}

/* ---- the journal -------------------------------------------------------- */

/* Each transition below tells rt->journal, when there is one, what
 * happened to the invocation (seq, fn->jid): all these calls only buffer
 * (the journal's writer commits them in call order), so they are made
 * under the lock, right where the transition happens. The append of an
 * accepted event is admit.c's. A call that fails (out of memory) loses
 * only that record: after a crash the invocation comes back in its
 * earlier state and runs again, at least once, never lost. */

/* What the journal keeps of inv as it stands, in phase. */
static void
journal_state(const struct evfn__inv *inv, enum evfn__journal_phase phase,
              struct evfn__journal_state *st)
{
	*st = (struct evfn__journal_state){
		.due_ns = phase == EVFN__JPHASE_WAITING && inv->due_ns
		                  ? evfn__mono_to_wall(inv->due_ns)
		                  : 0,
		.first_attempt_ns = inv->first_ns,
		.last_attempt_ns = inv->last_ns,
		.backoff_ns = inv->prev_delay_ns,
		.attempts = inv->attempt,
		.last_code = !inv->attempt || phase == EVFN__JPHASE_RUNNING ? 0
		             : inv->last_timed_out ? EVFN_ETIMEDOUT
		                                   : EVFN_EFAILED,
		.phase = phase,
		.last_error = inv->ctx.error,
	};
}

EVFN__NOINLINE static void
journal_failed_locked(struct evfn_rt *rt, const struct evfn__inv *inv,
                      const char *what, int rc)
{
	EVFN__ASSERT_LOCKED(rt);
	evfn__logf(&rt->log, EVFN_LOG_ERROR,
	           "%s: journal: %s of event %s not recorded (%s); after a "
	           "crash it comes back as it was before",
	           inv->fn->name, what, evfn_event_id(inv->ev),
	           evfn_err_name(rc));
}

/* inv's attempt started (RUNNING) or it waits again (WAITING). */
EVFN__NOINLINE static void
journal_update_locked(struct evfn_rt *rt, const struct evfn__inv *inv,
                      enum evfn__journal_phase phase)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__journal_state st;
	journal_state(inv, phase, &st);
	int rc = evfn__journal_update(rt->journal, inv->ev->seq, inv->fn->jid,
	                              &st);
	if (rc < 0)
		journal_failed_locked(rt, inv, "an attempt's state", rc);
}

/* inv ended with stat; dl is its dead letter in the store, or NULL. */
EVFN__NOINLINE static void
journal_end_locked(struct evfn_rt *rt, const struct evfn__inv *inv,
                   evfn_stat stat, const evfn_dead_letter *dl)
{
	EVFN__ASSERT_LOCKED(rt);
	uint64_t seq = inv->ev->seq;
	uint32_t jid = inv->fn->jid;
	int rc;
	if (dl) {
		struct evfn__journal_dead_letter jdl = {
			.id = dl->id,
			.fn = jid,
			.ev = dl->ev,
			.code = dl->code,
			.attempts = dl->attempts,
			.first_attempt_ns = dl->first_ns,
			.last_attempt_ns = dl->last_ns,
			.error = dl->error,
		};
		rc = evfn__journal_dead_letter(rt->journal, seq, jid, &jdl);
	} else {
		enum evfn__journal_end how;
		switch (stat) {
		case EVFN_STAT_SUCCEEDED: how = EVFN__JEND_SUCCEEDED; break;
		case EVFN_STAT_EXPIRED: how = EVFN__JEND_EXPIRED; break;
		case EVFN_STAT_CANCELLED: how = EVFN__JEND_CANCELLED; break;
		case EVFN_STAT_HANDED_BACK:
			how = rt->opts.journal_discard_handed_back
			              ? EVFN__JEND_DISCARDED
			              : EVFN__JEND_HANDED_BACK;
			break;
		default: how = EVFN__JEND_DEAD_LETTERED; break;
		}
		rc = evfn__journal_end(rt->journal, seq, jid, how);
	}
	if (rc < 0)
		journal_failed_locked(rt, inv, "the end", rc);
}

/* A dead letter left the store (evicted by a newer one). */
EVFN__NOINLINE static void
journal_letter_gone_locked(struct evfn_rt *rt, const evfn_dead_letter *dl)
{
	EVFN__ASSERT_LOCKED(rt);
	int rc = evfn__journal_dead_letter_delete(rt->journal, dl->id);
	if (rc < 0)
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "journal: the eviction of dead letter %llu not "
		           "recorded (%s)",
		           (unsigned long long)dl->id, evfn_err_name(rc));
}

/* ---- started ------------------------------------------------------------ */

/* Takes fn's oldest queued invocation, made from it if it was a bare
 * event; NULL when the queue is empty or, starving the runtime, when that
 * invocation cannot be made. */
static struct evfn__inv *
queue_pop_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *inv = evfn__queue_pop(&fn->q, &rt->inv_pool, fn);
	if (inv)
		acct_taken(fn);
	else if (!evfn__queue_empty(&fn->q))
		starve_locked(rt);
	return inv;
}

/* Takes fn's next invocation that should run, ending on the way those
 * too old (expired) and those already answered (idempotency). */
static struct evfn__inv *
take_next_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now,
                 struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *inv;
	while ((inv = queue_pop_locked(rt, fn))) {
		/* A first attempt's ready time is its event's birth. */
		int64_t born = inv->attempt ? inv->ev->born_ns : inv->ready_ns;
		if (now - born > fn->cfg.max_age_ns) {
			end_locked(rt, inv, EVFN_STAT_EXPIRED,
			                    EVFN_EEXPIRED, ended);
		} else if (fn->cfg.idem_window_ns && idem_hit_locked(fn, inv)) {
			/* Already succeeded: answer without running. */
			inv->idempotent_hit = true;
			end_locked(rt, inv, EVFN_STAT_SUCCEEDED, 0,
			                    ended);
		} else {
			return inv;
		}
	}
	return NULL;
}

/* inv's next attempt is taken at now (wall: the same instant on the
 * wall clock), in state: ATTEMPT_RUNNING, it starts now, or
 * ATTEMPT_PREFETCHED, its worker starts it after the one it runs. The
 * deadline is set here, under the lock, before the watchdog can see the
 * attempt as running. Its accounting (acct_started()) is the caller's,
 * once for all it takes under this hold of the lock. */
static void
take_attempt_locked(struct evfn_rt *rt, struct evfn__inv *inv, int64_t now,
                    int64_t wall, enum attempt_state state)
{
	EVFN__ASSERT_LOCKED(rt);
	inv->attempt++;
	set_start_at(inv, now, wall);
	atomic_store_explicit(&inv->ctx.state, (int)state,
	                      memory_order_relaxed);
	/* Reset here, under the lock that evfn_cancel() takes. */
	atomic_store_explicit(&inv->ctx.cancelled, false, memory_order_relaxed);
	if (EVFN__UNLIKELY(rt->journal))
		journal_update_locked(rt, inv, EVFN__JPHASE_RUNNING);
}

/* inv's attempt starts now. */
static void
start_attempt_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                     struct evfn__inv *inv, int64_t now)
{
	EVFN__ASSERT_LOCKED(rt);
	take_attempt_locked(rt, inv, now, evfn__mono_to_wall(now),
	                    ATTEMPT_RUNNING);
	acct_started(rt, fn, 1);
}

/* A call of fn started: its deadline needs the watchdog, and the peak
 * counts the attempts running now, not those taken to run next. */
static void
call_started_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	watchdog_arm_locked(rt);
	uint64_t running = (uint64_t)(fn->running - fn->prefetched);
	if (running > fn->stat[EVFN_STAT_CONCURRENCY_PEAK])
		fn->stat[EVFN_STAT_CONCURRENCY_PEAK] = running;
}

/* Takes fn's next invocation that should run into the running state. */
static struct evfn__inv *
start_next_locked(struct evfn_rt *rt, struct evfn_fn *fn, int64_t now,
                  struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv *inv = take_next_locked(rt, fn, now, ended);
	if (inv)
		start_attempt_locked(rt, fn, inv, now);
	return inv;
}

struct evfn__inv *
evfn__pick_locked(struct evfn_rt *rt, struct evfn__fn_fifo *q, int64_t now,
                  struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn;
	while ((fn = evfn__fn_fifo_pop(q))) {
		/* Off the list from here: an event that ends below (expired,
		 * or an idempotency hit) may queue the next of its ordering
		 * key, which schedules fn and puts it back on the list. */
		fn->in_ready = false;
		struct evfn__inv *inv = NULL;
		if (fn_startable_locked(rt, fn, now) &&
		    (inv = start_next_locked(rt, fn, now, ended))) {
			/* A batch call takes what else waits, up to its size;
			 * the items share the first one's deadline. */
			struct evfn__inv *last = inv, *item;
			for (int n = 1; n < fn->cfg.batch_max &&
			                (item = start_next_locked(rt, fn, now,
			                                          ended));
			     n++) {
				last->batch_next = item;
				last = item;
			}
			if (fn->cfg.batch_max > 1)
				fn->stat[EVFN_STAT_BATCHES]++;
			fn->busy++;
			call_started_locked(rt, fn);
			if (fn->flow)
				flow_call_started_locked(fn, inv, now);
		}
		acct_take_done(fn);
		/* Round robin: a function with more startable work goes to
		 * the back, so one busy function cannot starve the others;
		 * unless it went back on the list above already. */
		if (!fn->in_ready && fn_startable_locked(rt, fn, now))
			ready_push(q, fn);
		if (inv)
			return inv;
	}
	return NULL;
}

int
evfn__prefetch_locked(struct evfn_rt *rt, struct evfn__inv *inv, int64_t now,
                      struct evfn__ended *ended, int max)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	struct evfn__inv *last = inv, *next;
	/* One wall-clock reading for the take: they share now. */
	int64_t wall = evfn__mono_to_wall(now);
	int n = 0;
	for (; n < max && (next = take_next_locked(rt, fn, now, ended)); n++) {
		take_attempt_locked(rt, next, now, wall, ATTEMPT_PREFETCHED);
		next->prefetched = true;
		last->run_next = next;
		last = next;
	}
	/* Counted once for the take: the lock is held from the first to
	 * the last, so no snapshot sees some taken and not yet counted. */
	acct_started(rt, fn, n);
	acct_take_done(fn);
	fn->prefetched += n;
	fn->busy += n;
	return n;
}

bool
evfn__unstart_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                     struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	struct evfn__inv *r = evfn__inv_get(&rt->inv_pool);
	if (!r)
		return false;
	int expected = ATTEMPT_PREFETCHED;
	if (!atomic_compare_exchange_strong(&inv->ctx.state, &expected,
	                                    ATTEMPT_TIMEDOUT)) {
		/* Its worker started it: the fresh invocation goes back. */
		struct evfn__inv_list unused = {r, r};
		evfn__recycle_locked(rt, &unused);
		return true;
	}
	/* The old invocation stays with the worker, which skips it; the event
	 * goes back as if this attempt had not started. */
	carry_on_locked(inv, r);
	if (--r->attempt == 0)
		r->first_ns = r->last_ns = 0;
	if (rt->journal) {
		r->due_ns = 0; /* it may start at once */
		journal_update_locked(rt, r, EVFN__JPHASE_WAITING);
	}
	acct_left_running(rt, inv);
	fn->busy--;
	fn->stat[EVFN_STAT_ATTEMPTS]--;
	if (inv->cancel_requested)
		end_locked(rt, r, EVFN_STAT_CANCELLED, EVFN_ECANCELED,
		                    ended);
	else if (rt->state >= EVFN__DRAINING)
		end_locked(rt, r, EVFN_STAT_HANDED_BACK,
		                    EVFN_EHANDEDBACK, ended);
	else
		enqueue_locked(rt, r);
	return true;
}

/* ---- the attempt's own transitions, without the lock -------------------- */

bool
evfn__attempt_begin_prefetched(struct evfn__inv *inv, int64_t now)
{
	if (!move_state(inv, ATTEMPT_PREFETCHED, ATTEMPT_RUNNING))
		return false; /* given back by the watchdog */
	/* Its deadline counts from its own start, written before the
	 * watchdog can see it (its worker publishes it as current next). */
	set_start(inv, now);
	return true;
}

bool
evfn__attempt_returned(struct evfn__inv *inv)
{
	/* From here the watchdog no longer fences it (unless it did just
	 * now, and the return is late: then its run time is counted under
	 * the lock, where the fence counted its deadline; see
	 * late_locked()). */
	return move_state(inv, ATTEMPT_RUNNING, ATTEMPT_RETURNED);
}

int
evfn__attempt_pend(struct evfn__inv *inv)
{
	if (move_state(inv, ATTEMPT_RUNNING, ATTEMPT_PENDING))
		return EVFN_PENDING;
	/* evfn_ctx_complete() ran before the handler returned and left its
	 * outcome here. */
	return atomic_load(&inv->ctx.early_outcome);
}

enum evfn__completion
evfn__attempt_complete(struct evfn__inv *inv, int outcome)
{
	/* Completed from inside the handler (or racing its return): the
	 * outcome is left for evfn__attempt_pend() to pick up. */
	atomic_store(&inv->ctx.early_outcome, outcome);
	if (move_state(inv, ATTEMPT_RUNNING, ATTEMPT_EARLY))
		return EVFN__COMPLETED_EARLY;
	/* Returned: from here the watchdog no longer fences it. Unless the
	 * watchdog fenced it first: then this return is late, whatever it
	 * says. */
	int expected = ATTEMPT_PENDING;
	if (atomic_compare_exchange_strong(&inv->ctx.state, &expected,
	                                   ATTEMPT_RETURNED))
		return EVFN__COMPLETED_IN_TIME;
	return expected == ATTEMPT_TIMEDOUT ? EVFN__COMPLETED_LATE
	                                    : EVFN__COMPLETED_TWICE;
}

bool
evfn__attempt_fenced(const struct evfn__inv *inv)
{
	return atomic_load(&((struct evfn__inv *)inv)->ctx.state) ==
	       ATTEMPT_TIMEDOUT;
}

/* ---- returned ----------------------------------------------------------- */

int
evfn__outcome_at(const struct evfn__inv *inv, int outcome, int64_t end_ns)
{
	return outcome != EVFN_PENDING && end_ns > inv->ctx.deadline_ns
	               ? EVFN__TIMED_OUT
	               : outcome;
}

/* What a batch item's attempt came to: the call's outcome, unless the
 * call returned OK and the handler reported the item failed. */
int
evfn__batch_item_outcome(const struct evfn__batch *b, size_t i,
                         int call_outcome)
{
	if (call_outcome != EVFN_OK || !b || i >= b->n || !b->outcomes[i])
		return call_outcome;
	return b->outcomes[i];
}

/* Replaces inv's error with the deadline message. */
EVFN__NOINLINE static void
set_deadline_error(struct evfn__inv *inv)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "deadline of %lld ms exceeded",
	         (long long)(inv->fn->cfg.timeout_ns / EVFN__NS_PER_MS));
	evfn__free(inv->ctx.error);
	inv->ctx.error = evfn__strdup(msg);
}

/* inv's attempt no longer runs; timed_out: it returned past its
 * deadline. */
static inline void
attempt_left_locked(struct evfn_rt *rt, struct evfn__inv *inv, bool timed_out)
{
	EVFN__ASSERT_LOCKED(rt);
	acct_left_running(rt, inv);
	/* Release, not a full fence (an xchg on x86 for every attempt):
	 * the attempt returned, so the only racers are a late
	 * evfn_ctx_complete()'s compare-exchanges, which need to see DONE,
	 * not to be ordered against later stores of this thread. */
	atomic_store_explicit(&inv->ctx.state, ATTEMPT_DONE,
	                      memory_order_release);
	inv->last_timed_out = timed_out;
}

/* inv's attempt succeeded: its event ends. */
static inline void
attempt_succeeded_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                         struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	if (inv->fn->cfg.idem_window_ns)
		idem_remember_locked(inv->fn, inv);
	end_locked(rt, inv, EVFN_STAT_SUCCEEDED, 0, ended);
}

/* One attempt's outcome for its event: success, retry, or an end. */
static void
end_attempt_locked(struct evfn_rt *rt, struct evfn__inv *inv, int outcome,
                   struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	attempt_left_locked(rt, inv, outcome == EVFN__TIMED_OUT);
	if (inv->last_timed_out) {
		/* Returned, but late: a timeout like a fenced one. */
		fn->stat[EVFN_STAT_TIMEOUTS]++;
		set_deadline_error(inv);
		outcome = EVFN_RETRY;
	}
	if (outcome == EVFN_OK) {
		attempt_succeeded_locked(rt, inv, ended);
		return;
	}
	fn->stat[EVFN_STAT_ATTEMPTS_FAILED]++;
	if (inv->cancel_requested)
		end_locked(rt, inv, EVFN_STAT_CANCELLED, EVFN_ECANCELED,
		                    ended);
	else if (outcome == EVFN_RETRY)
		retry_or_end_locked(rt, inv, ended);
	else
		end_locked(rt, inv, EVFN_STAT_DEAD_LETTERED,
		                    EVFN_EFAILED, ended);
}

/* complete_call_locked() for a call that is not the common one: fenced
 * by the watchdog, a batch (its items end too), or of a function with
 * flow control (its breaker counts it). */
EVFN__NOINLINE static void
complete_call_slow_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                          int outcome, struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	if (atomic_load(&inv->ctx.state) == ATTEMPT_TIMEDOUT) {
		/* The watchdog fenced the call: this return changes nothing.
		 * Its other items went on in fresh invocations too; the old
		 * ones go with the first, now or after the watchdog's hook. */
		if (!inv->hook_running)
			release_batch_items_locked(inv, ended);
		late_locked(rt, inv, ended);
		return;
	}
	struct evfn__inv *item = inv->batch_next;
	inv->batch_next = NULL;
	const struct evfn__batch *b = inv->ctx.batch;
	const char *error = inv->ctx.error;
	for (size_t i = 1; item; i++) {
		struct evfn__inv *next = item->batch_next;
		item->batch_next = NULL;
		int o = evfn__batch_item_outcome(b, i, outcome);
		/* A failed item carries the call's error to its dead letter. */
		if (o != EVFN_OK && error && !item->ctx.error)
			item->ctx.error = evfn__strdup(error);
		end_attempt_locked(rt, item, o, ended);
		item = next;
	}
	fn->busy--;
	/* Told before the call's first attempt ends: a retry may give its
	 * invocation back (dueheap.c). */
	if (fn->flow)
		breaker_count_locked(rt, fn, inv, outcome == EVFN_OK,
		                     evfn__now_ns());
	end_attempt_locked(rt, inv, evfn__batch_item_outcome(b, 0, outcome),
	                   ended);
}

/* evfn__complete_locked() but for what follows the call's end: letting
 * fn start its next event. Inline, and straight for the common call (not
 * fenced, of a function without batches or flow control: nothing but its
 * attempt's end) that succeeded, so that a worker's run completes each
 * such call without a call of its own. A batch function's call takes the
 * slow path even alone: its handler may have failed its one item. */
static inline void
complete_call_locked(struct evfn_rt *rt, struct evfn__inv *inv, int outcome,
                     struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	if (EVFN__UNLIKELY(fn->cfg.batch_max > 1 || fn->flow ||
	                   atomic_load(&inv->ctx.state) == ATTEMPT_TIMEDOUT)) {
		complete_call_slow_locked(rt, inv, outcome, ended);
		return;
	}
	fn->busy--;
	if (EVFN__LIKELY(outcome == EVFN_OK)) {
		attempt_left_locked(rt, inv, false);
		attempt_succeeded_locked(rt, inv, ended);
	} else {
		end_attempt_locked(rt, inv, outcome, ended);
	}
}

/* After calls of fn ended: freed capacity may let it start its next
 * event, and a drain may be waiting for the last. */
static void
calls_ended_locked(struct evfn_rt *rt, struct evfn_fn *fn)
{
	EVFN__ASSERT_LOCKED(rt);
	schedule_locked(rt, fn);
	if (rt->in_flight == 0 && rt->state >= EVFN__DRAINING)
		pthread_cond_broadcast(&rt->quiet_cond);
}

void
evfn__complete_locked(struct evfn_rt *rt, struct evfn__inv *inv, int outcome,
                      struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	complete_call_locked(rt, inv, outcome, ended);
	calls_ended_locked(rt, fn);
}

int
evfn__complete_run_locked(struct evfn_rt *rt, struct evfn__inv *first,
                          const int *outcomes, const bool *ran,
                          struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = first->fn;
	int n = 0;
	for (struct evfn__inv *x = first, *next; x; x = next, n++) {
		next = x->run_next;
		x->run_next = NULL;
		if (ran[n])
			complete_call_locked(rt, x, outcomes[n], ended);
		else /* given back: its event went on elsewhere */
			evfn__inv_list_push(&ended->spent, x);
	}
	/* Once for the run: its attempts are all fn's, and nothing sees
	 * fn's ready state between them (the lock is held). */
	calls_ended_locked(rt, fn);
	return n;
}

/* ---- retry or end ------------------------------------------------------- */

/* A failed attempt that may be retried: schedule it, or end it when no
 * attempt, age or intake is left. */
EVFN__NOINLINE static void
retry_or_end_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                    struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	if (inv->attempt >= (unsigned)fn->cfg.attempts) {
		end_locked(rt, inv, EVFN_STAT_DEAD_LETTERED,
		                    inv->last_timed_out ? EVFN_ETIMEDOUT
		                                        : EVFN_EEXHAUSTED,
		                    ended);
		return;
	}
	if (rt->state >= EVFN__DRAINING) {
		end_locked(rt, inv, EVFN_STAT_HANDED_BACK,
		                    EVFN_EHANDEDBACK, ended);
		return;
	}
	int64_t now = evfn__now_ns();
	int64_t age_left = inv->ev->born_ns + fn->cfg.max_age_ns - now;
	if (age_left <= 0) {
		end_locked(rt, inv, EVFN_STAT_EXPIRED, EVFN_EEXPIRED,
		                    ended);
		return;
	}
	int64_t delay = evfn__backoff_delay(&fn->cfg.backoff, inv->attempt,
	                                    inv->prev_delay_ns, &rt->prng);
	inv->prev_delay_ns = delay;
	/* A retry never outlives the event's remaining age. */
	inv->due_ns = now + EVFN__MIN(delay, age_left);
	fn->stat[EVFN_STAT_RETRIES]++;
	if (rt->journal)
		journal_update_locked(rt, inv, EVFN__JPHASE_WAITING);
	wait_due_locked(rt, inv);
}

/* Puts inv's dead letter in the store (whose lock nests inside the
 * runtime lock), and tells the journal that inv ended with stat (as that
 * dead letter when one is kept). A letter the full store evicts is
 * released after the lock, since it may hold the last reference to a
 * host's payload; one that finds no memory is logged then. */
EVFN__NOINLINE static void
store_dead_letter_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                         evfn_stat stat, struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	evfn_dead_letter *dl = NULL;
	if (evfn__dead_store_keeps(&rt->dead)) {
		dl = evfn__dead_letter_new(inv->fn->name, inv->ev,
		                           inv->final_code, inv->attempt,
		                           inv->ctx.error, inv->first_ns,
		                           inv->last_ns);
		if (!dl)
			inv->dead_letter_lost = true;
	}
	if (!dl) {
		if (rt->journal)
			journal_end_locked(rt, inv, stat, NULL);
		return;
	}
	/* Ours too while the journal is told: evfn_dead_letter_delete()
	 * may take it out of the store at once. Never the last reference
	 * to its event: inv holds one. */
	atomic_fetch_add_explicit(&dl->refs, 1, memory_order_relaxed);
	evfn_dead_letter *evicted = evfn__dead_store_add(&rt->dead, dl);
	if (evicted) {
		if (rt->journal)
			journal_letter_gone_locked(rt, evicted);
		evfn__dead_list_push(&ended->evicted_letters, evicted);
	}
	if (rt->journal)
		journal_end_locked(rt, inv, stat, dl);
	evfn_dead_letter_unref(dl);
}

/* Ends inv's event: stat is its terminal counter, result what its
 * waiter receives. It leaves its ordering key (the next of the key is
 * queued), and goes on ended for its aftermath (settle.c), or, handed
 * back, to the draining thread. */
static void
end_locked(struct evfn_rt *rt, struct evfn__inv *inv, evfn_stat stat,
                    int result, struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	acct_ended(inv->fn, stat);
	inv->final_stat = (signed char)stat;
	inv->final_code = result;
	/* In the store before the lock is released, so that no snapshot
	 * counts a dead letter that evfn_dead_letters() cannot list. */
	if (stat == EVFN_STAT_DEAD_LETTERED || stat == EVFN_STAT_EXPIRED)
		store_dead_letter_locked(rt, inv, stat, ended);
	else if (EVFN__UNLIKELY(rt->journal))
		journal_end_locked(rt, inv, stat, NULL);
	if (inv->okey) {
		/* Its key's next event, if any, takes its turn. */
		struct evfn__inv *next =
			evfn__okeys_leave(&inv->fn->okeys, inv);
		if (next) {
			acct_held(next->fn, -1);
			enqueue_held_locked(rt, next);
		}
	}
	/* Waiters are woken when the invocation is released, after the
	 * destinations and the dead-letter store saw it. */
	if (stat == EVFN_STAT_HANDED_BACK) {
		/* Delivered to the drain callback by the draining thread. */
		evfn__inv_list_push(&rt->handback, inv);
		pthread_cond_broadcast(&rt->quiet_cond);
	} else {
		evfn__inv_list_push(&ended->invocations, inv);
	}
}

size_t
evfn__end_all_locked(struct evfn_rt *rt, struct evfn__inv_list *list,
                     evfn_stat stat, int result, struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	size_t n = 0;
	struct evfn__inv *inv;
	for (; (inv = evfn__inv_list_pop(list)); n++)
		end_locked(rt, inv, stat, result, ended);
	return n;
}

/* ---- deadlines: fenced and late ----------------------------------------- */

void
evfn__pending_add_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	inv->pend_prev = NULL;
	inv->pend_next = rt->pending;
	if (rt->pending)
		rt->pending->pend_prev = inv;
	rt->pending = inv;
}

void
evfn__pending_remove_locked(struct evfn_rt *rt, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	if (inv->pend_prev)
		inv->pend_prev->pend_next = inv->pend_next;
	else if (rt->pending == inv)
		rt->pending = inv->pend_next;
	if (inv->pend_next)
		inv->pend_next->pend_prev = inv->pend_prev;
	inv->pend_next = inv->pend_prev = NULL;
}

/* Moves an invocation's event on into the fresh invocation to, leaving from
 * with the thread that still holds it (a fenced attempt's, or a worker
 * that will not start a prefetched one): its event reference, waiter,
 * place in its ordering key and attempt history. */
static void
carry_on_locked(struct evfn__inv *from, struct evfn__inv *to)
{
	EVFN__ASSERT_LOCKED(from->fn->rt);
	to->ev = evfn_event_ref(from->ev);
	to->fn = from->fn;
	to->waiter = from->waiter;
	from->waiter = NULL;
	to->okey = from->okey; /* it stays its key's active one */
	from->okey = NULL;
	if (to->okey)
		evfn__okey_rebind(to->okey, to);
	to->attempt = from->attempt;
	to->prev_delay_ns = from->prev_delay_ns;
	to->due_ns = from->due_ns;
	to->first_ns = from->first_ns;
	to->last_ns = from->last_ns;
	to->start_ns = from->start_ns;
}

/* Fences one attempt of a call past its deadline (its call's state is
 * TIMEDOUT already) and moves its event on in the fresh invocation given. */
static void
fence_attempt_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                     struct evfn__inv *retry, struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	atomic_store(&inv->ctx.state, ATTEMPT_TIMEDOUT);
	atomic_store(&inv->ctx.cancelled, true);
	acct_left_running(rt, inv);
	fn->stat[EVFN_STAT_TIMEOUTS]++;
	fn->stat[EVFN_STAT_ATTEMPTS_FAILED]++;

	/* The event goes on in a fresh invocation: the stuck handler keeps its
	 * context, so nothing it does later can touch the retry. */
	carry_on_locked(inv, retry); /* its start too, for durations */
	retry->last_timed_out = true;
	set_deadline_error(retry);
	if (inv->cancel_requested)
		end_locked(rt, retry, EVFN_STAT_CANCELLED,
		                    EVFN_ECANCELED, ended);
	else
		retry_or_end_locked(rt, retry, ended);
}

bool
evfn__timeout_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                     struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	int state = atomic_load(&inv->ctx.state);
	if (state != ATTEMPT_RUNNING && state != ATTEMPT_PENDING)
		return false; /* it finished first */
	struct evfn_fn *fn = inv->fn;
	/* A fresh invocation for each attempt of the call (a batch has
	 * several), all or none. */
	struct evfn__inv_list fresh = {NULL, NULL};
	for (struct evfn__inv *x = inv; x; x = x->batch_next) {
		struct evfn__inv *r = evfn__inv_get(&rt->inv_pool);
		if (!r) {
			evfn__recycle_locked(rt, &fresh);
			/* Try again next tick rather than lose it. */
			return false;
		}
		evfn__inv_list_push(&fresh, r);
	}
	/* The handler may return (without the lock) at this very moment:
	 * whichever of us moves the state first decides whether the
	 * attempt returned in time or is fenced and late. */
	if (!atomic_compare_exchange_strong(&inv->ctx.state, &state,
	                                    ATTEMPT_TIMEDOUT)) {
		evfn__recycle_locked(rt, &fresh);
		return false;
	}
	if (state == ATTEMPT_PENDING)
		evfn__pending_remove_locked(rt, inv);
	for (struct evfn__inv *x = inv; x; x = x->batch_next)
		fence_attempt_locked(rt, x, evfn__inv_list_pop(&fresh), ended);
	fn->busy--;
	if (fn->flow)
		breaker_count_locked(rt, fn, inv, false, evfn__now_ns());
	/* Billed up to its deadline now, and for its real run time if its
	 * handler ever returns (late_locked()). */
	if (!rt->opts.no_metrics)
		evfn__metrics_fenced(&fn->retired, inv, fn->cfg.timeout_ns,
		                     /* a pending loop attempt's waits were
		                      * measured when it returned EVFN_PENDING;
		                      * a pool attempt's are at its return,
		                      * which a fenced one has not had */
		                     fn->cfg.executor == EVFN_EXECUTOR_POOL);

	/* Keep the old invocation until its cancel hook and its TIMEOUT
	 * event-log record ran. */
	inv->hook_running =
		fn->cfg.cancel_hook || evfn__eventlog_on(&rt->eventlog);
	schedule_locked(rt, fn);
	if (rt->in_flight == 0 && rt->state >= EVFN__DRAINING)
		pthread_cond_broadcast(&rt->quiet_cond);
	return true;
}

/* The fenced invocations of a batch call's other items (after inv) are
 * spent: their events went on in fresh invocations. */
EVFN__NOINLINE static void
release_batch_items_locked(struct evfn__inv *inv, struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(inv->fn->rt);
	struct evfn__inv *item = inv->batch_next;
	inv->batch_next = NULL;
	while (item) {
		struct evfn__inv *next = item->batch_next;
		item->batch_next = NULL;
		evfn__inv_list_push(&ended->spent, item);
		item = next;
	}
}

/* A fenced attempt's handler returned (or completed): counts it late,
 * bills its real run time, lets its function start what the stuck cap
 * held back, and releases the invocation unless the cancel hook still holds
 * it. */
EVFN__NOINLINE static void
late_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                  struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn_fn *fn = inv->fn;
	fn->stat[EVFN_STAT_LATE]++;
	if (!rt->opts.no_metrics)
		evfn__metrics_late(&fn->retired, fn->cfg.timeout_ns,
		                   evfn__now_ns() - inv->start_ns);
	if (fn->cfg.executor == EVFN_EXECUTOR_POOL) {
		fn->stuck--;
		rt->nstuck--;
		evfn__fn_fast_update_locked(rt, fn);
		/* Below its stuck cap again, the function may start what it
		 * held back. */
		schedule_locked(rt, fn);
	}
	if (inv->hook_running) {
		inv->orphaned = true; /* the watchdog frees it after the hook */
		return;
	}
	evfn__inv_list_push(&ended->spent, inv);
	if (rt->nstuck == 0)
		pthread_cond_broadcast(&rt->quiet_cond);
}

void
evfn__fence_hook_done_locked(struct evfn_rt *rt, struct evfn__inv *inv,
                             struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	inv->hook_running = false;
	if (inv->orphaned) {
		release_batch_items_locked(inv, ended);
		evfn__inv_list_push(&ended->spent, inv);
	}
}

/* ---- invocations -------------------------------------------------------- */

void
evfn__recycle_locked(struct evfn_rt *rt, struct evfn__inv_list *cleaned)
{
	EVFN__ASSERT_LOCKED(rt);
	if (!evfn__inv_list_empty(cleaned) && rt->inv_starved)
		evfn__unstarve_locked(rt);
	evfn__inv_put_all(&rt->inv_pool, cleaned);
}

/* ---- taking waiting events out: cancel and drain ------------------------ */

struct evfn__inv_list
evfn__take_held_locked(struct evfn_fn *fn, evfn__inv_pred match, void *arg)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	struct evfn__inv_list list = {NULL, NULL};
	int64_t n =
		(int64_t)evfn__okeys_take_held(&fn->okeys, match, arg, &list);
	acct_queued(fn, -n);
	acct_held(fn, -n);
	return list;
}

struct evfn__inv_list
evfn__take_queued_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                         evfn__inv_pred match, void *arg,
                         bool *short_of_memory)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv_list list = {NULL, NULL};
	evfn__fn_flush_pending_locked(rt, fn);
	acct_queued(fn, -(int64_t)evfn__queue_take(&fn->q, &rt->inv_pool, fn,
	                                           match, arg, &list,
	                                           short_of_memory));
	return list;
}

struct evfn__inv_list
evfn__take_queued_front_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                               size_t max, bool *short_of_memory)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv_list list = {NULL, NULL};
	evfn__fn_flush_pending_locked(rt, fn);
	acct_queued(fn, -(int64_t)evfn__queue_take_front(
		&fn->q, &rt->inv_pool, fn, max, &list, short_of_memory));
	return list;
}

/* The invocations of list left the due-time heap. */
static struct evfn__inv_list
left_due_heap(struct evfn__inv_list list)
{
	for (struct evfn__inv *x = list.head; x; x = x->next)
		acct_waiting(x->fn, x->delayed, -1);
	return list;
}

struct evfn__inv_list
evfn__take_due_locked(struct evfn_rt *rt, evfn__inv_pred match, void *arg,
                      bool *short_of_memory)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv_list list = {NULL, NULL};
	evfn__dueheap_take(&rt->due, &rt->inv_pool, match, arg, &list,
	                   short_of_memory);
	return left_due_heap(list);
}

struct evfn__inv_list
evfn__take_due_some_locked(struct evfn_rt *rt, size_t max,
                           bool *short_of_memory)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__inv_list list = {NULL, NULL};
	evfn__dueheap_take_some(&rt->due, &rt->inv_pool, max, &list,
	                        short_of_memory);
	return left_due_heap(list);
}
