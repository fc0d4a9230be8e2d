/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: threads that take runnable invocations from the ready
 * functions and run them. It keeps at least the minimum number of threads,
 * grows toward the maximum while work waits and no worker is idle, and
 * lets a thread above the minimum exit after it sat idle for the idle
 * timeout. A worker whose handler overran its deadline is fenced: it
 * leaves the pool (replaced, while its function is within its stuck cap)
 * and, when its handler returns, rejoins it if the pool needs a thread,
 * or exits. Exited threads are joined by the next spawn or at stop. The
 * state machine reaches the pool through its executor entry (wake,
 * backlog); each worker is a struct evfn__worker (worker.c) with a
 * thread.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "common-internal.h"
#include "dispatch-internal.h"
#include "pool-internal.h"
#include "settle-internal.h"
#include "worker-internal.h"

/* Polls of the ready generation before a worker sleeps: at most about 30 us on
 * this project's VMs (a pause is ~30 ns), more than the gap between
 * events at 100k/s, so a steady stream never waits for a wake-up. */
#define SPIN_POLLS_MAX 1024
#define SPIN_POLLS_MIN 64
#define SPIN_YIELD_EVERY 64
/* Work that wakes a spinner sooner than this after its spin began (the
 * longest spin plus the ~12 us a wake-up takes) would have been caught by
 * the longest spin. */
#define SPIN_WINDOW_NS (40 * 1000)
/* A worker takes up to this many attempts under one lock when its
 * function's queue is deep and its handlers short (on average under
 * PREFETCH_RUN_NS): the lock is what three threads on two cores fight
 * over, and a deadline starts only when its attempt does. */
#define PREFETCH_MAX 8
#define PREFETCH_RUN_NS (20 * 1000)

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* A pool thread. */
struct pool_worker {
	struct evfn__worker w;      /* what its attempts' contexts point at */
	struct evfn__pool *pool;
	struct pool_worker *next;
	pthread_t thread;
	/* The attempts it took, linked through run_next (set and cleared
	 * under rt->lock), and the one whose handler runs now: published by
	 * the worker alone, after that attempt's deadline. */
	struct evfn__inv *chain;
	_Atomic(struct evfn__inv *) current;
	bool stuck;                 /* fenced: on stuck_workers until its
	                             * handler returns */
	bool holds_slot;            /* stuck past its function's cap, so not
	                             * replaced: counts in nheld */
};

/* Guarded by rt->lock, but for ready_gen. */
struct evfn__pool {
	struct evfn_rt *rt;
	struct evfn__executor *x;   /* its entry: the functions ready */
	/* Bumped whenever a function becomes runnable, so that a spinning
	 * worker notices without taking the lock. */
	atomic_uint ready_gen;
	pthread_cond_t work_cond;   /* idle workers wait here */
	struct evfn__signal *kick;  /* wakes workers at the end of a pass */
	struct pool_worker *workers;
	struct pool_worker *exited; /* to be joined */
	struct pool_worker *stuck_workers; /* fenced, handler still running */
	int nthreads, nidle, nwaking;
	/* A worker polls before it sleeps (one at a time): producers wake
	 * nobody. Written under rt->lock; read without it by a fast
	 * publish's announcement (pool_arrived()). */
	atomic_bool spinner;
	int spin_polls;             /* how long the next spin lasts */
	int nexiting;               /* left the pool, not yet on exited */
	int nheld;                  /* stuck ones past their function's cap:
	                             * not replaced, they keep their place
	                             * within max_workers */
	bool quit;                  /* stop: workers exit */
};

static void
unlink_worker(struct pool_worker **list, struct pool_worker *w)
{
	for (; *list; list = &(*list)->next)
		if (*list == w) {
			*list = w->next;
			return;
		}
}

/* Joins threads that have exited; what they kept goes with them. */
static void
join_exited_locked(struct evfn__pool *p)
{
	EVFN__ASSERT_LOCKED(p->rt);
	while (p->exited) {
		struct pool_worker *w = p->exited;
		p->exited = w->next;
		pthread_join(w->thread, NULL);
		evfn__worker_destroy(&w->w);
		evfn__free(w);
	}
}

static void *worker_main(void *arg);

static int
spawn_locked(struct evfn__pool *p)
{
	struct evfn_rt *rt = p->rt;
	EVFN__ASSERT_LOCKED(rt);
	join_exited_locked(p);
	struct pool_worker *w = evfn__calloc(1, sizeof(*w));
	if (!w)
		return EVFN_ENOMEM;
	evfn__worker_init(&w->w, rt);
	w->pool = p;
	int err = pthread_create(&w->thread, NULL, worker_main, w);
	if (err) {
		evfn__free(w);
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "cannot start a worker: %s", strerror(err));
		return -err;
	}
	w->next = p->workers;
	p->workers = w;
	p->nthreads++;
	return 0;
}

/* Signals a sleeping worker, unless every sleeping one has a wake-up on
 * its way already (wake-ups are batched). Returns false when none
 * sleeps. */
static bool
wake_idle_locked(struct evfn__pool *p)
{
	EVFN__ASSERT_LOCKED(p->rt);
	if (p->nidle <= p->nwaking)
		return false;
	p->nwaking++;
	pthread_cond_signal(&p->work_cond);
	return true;
}

/* Whether the pool may have one more worker: the workers and the stuck
 * threads that kept their place (nheld) stay within the maximum. */
static bool
room_for_worker_locked(const struct evfn__pool *p)
{
	EVFN__ASSERT_LOCKED(p->rt);
	return p->nthreads + p->nheld < p->rt->opts.max_workers;
}

/* Wakes a sleeping worker or starts one, unless the spinning worker will
 * take the work. */
static void
wake_or_spawn_locked(struct evfn__pool *p)
{
	EVFN__ASSERT_LOCKED(p->rt);
	if (atomic_load_explicit(&p->spinner, memory_order_relaxed))
		return; /* see wait_for_work_locked */
	if (wake_idle_locked(p))
		return;
	if (p->rt->state != EVFN__CREATED && !p->quit &&
	    room_for_worker_locked(p))
		(void)spawn_locked(p);
}

/* Wakes a worker, or starts one, for newly runnable work; on the loop
 * thread, once at the end of the loop pass. */
static void
notify_locked(struct evfn__pool *p)
{
	struct evfn_rt *rt = p->rt;
	EVFN__ASSERT_LOCKED(rt);
	/* On the loop thread (HTTP requests, triggers, due retries) one
	 * loop pass often admits several events: the wake-up waits for the
	 * end of the pass and serves them all, instead of a futex call per
	 * event on the thread that also answers the clients. Only where the
	 * loop surely runs on: evfn's own loop thread, or inside evfn's
	 * callbacks (not a host thread that ran the loop once and may now
	 * wait for the workers). */
	if (evfn__loop_is_current(&rt->loop)) {
		evfn__signal_raise(p->kick);
		return;
	}
	wake_or_spawn_locked(p);
}

/* The pool's executor entry: a function became runnable. */
static void
pool_wake(void *arg)
{
	struct evfn__pool *p = arg;
	atomic_fetch_add_explicit(&p->ready_gen, 1, memory_order_relaxed);
	notify_locked(p);
}

/* The pool's executor entry: work was added behind work that is still
 * waiting. If the spinning worker trusted with the earlier work has not
 * taken it (preempted, perhaps), a sleeping one is woken: a sleeper, not
 * a new thread, since a worker is idle (the spinner). */
static void
pool_backlog(void *arg)
{
	struct evfn__pool *p = arg;
	EVFN__ASSERT_LOCKED(p->rt);
	if (atomic_load_explicit(&p->spinner, memory_order_relaxed))
		(void)wake_idle_locked(p);
}

/* The pool's executor entry, without the lock: a fast publish announced a
 * function. A spinning worker sees the generation move; else the lock is
 * taken to wake or start one. The spinner clears its flag and then looks
 * at the arrivals, this announced and then looks at the flag: one of the
 * two sees the other. */
static void
pool_arrived(void *arg)
{
	struct evfn__pool *p = arg;
	atomic_fetch_add_explicit(&p->ready_gen, 1, memory_order_relaxed);
	if (atomic_load(&p->spinner))
		return;
	evfn__lock_acquire(&p->rt->lock);
	notify_locked(p);
	evfn__lock_release(&p->rt->lock);
}

/* Whether work waits for the pool: a function on its ready list, or
 * functions announced by fast publishes. */
static bool
work_waits_locked(const struct evfn__pool *p)
{
	EVFN__ASSERT_LOCKED(p->rt);
	return p->x->ready.head || atomic_load(&p->rt->arrivals);
}

/* The end-of-pass wake-up. */
static void
kick_cb(void *arg)
{
	struct evfn__pool *p = arg;
	evfn__lock_acquire(&p->rt->lock);
	if (work_waits_locked(p))
		wake_or_spawn_locked(p);
	evfn__lock_release(&p->rt->lock);
}

struct evfn__pool *
evfn__pool_new(struct evfn_rt *rt, struct evfn__executor *x)
{
	struct evfn__pool *p = evfn__calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->rt = rt;
	p->x = x;
	p->spin_polls = SPIN_POLLS_MAX;
	if (evfn__cond_init_monotonic(&p->work_cond) < 0) {
		evfn__free(p);
		return NULL;
	}
	if (!(p->kick = evfn__signal_new(&rt->loop, kick_cb, p))) {
		pthread_cond_destroy(&p->work_cond);
		evfn__free(p);
		return NULL;
	}
	*x = (struct evfn__executor){
		.wake = pool_wake,
		.arrived = pool_arrived,
		.backlog = pool_backlog,
		.impl = p};
	return p;
}

void
evfn__pool_free(struct evfn__pool *p)
{
	if (!p)
		return;
	evfn__signal_free(p->kick);
	pthread_cond_destroy(&p->work_cond);
	evfn__free(p);
}

int
evfn__pool_start_locked(struct evfn__pool *p)
{
	EVFN__ASSERT_LOCKED(p->rt);
	int rc = 0;
	p->spin_polls = SPIN_POLLS_MAX;
	while (rc == 0 && p->nthreads < p->rt->opts.min_workers)
		rc = spawn_locked(p);
	if (rc == 0 && work_waits_locked(p) && p->nthreads == 0)
		rc = spawn_locked(p);
	return rc;
}

/* Waits until every worker has left the pool, and joins them. */
static void
wait_out_locked(struct evfn__pool *p)
{
	struct evfn_rt *rt = p->rt;
	EVFN__ASSERT_LOCKED(rt);
	while (p->nthreads > 0 || p->nexiting > 0)
		evfn__lock_wait(&rt->lock, &rt->quiet_cond);
	join_exited_locked(p);
}

void
evfn__pool_unwind_locked(struct evfn__pool *p)
{
	EVFN__ASSERT_LOCKED(p->rt);
	/* The workers it started find the runtime still unstarted and
	 * leave at once (worker_main). */
	wait_out_locked(p);
}

void
evfn__pool_stop(struct evfn__pool *p)
{
	evfn__lock_acquire(&p->rt->lock);
	p->quit = true;
	pthread_cond_broadcast(&p->work_cond);
	wait_out_locked(p);
	evfn__lock_release(&p->rt->lock);
}

int
evfn__pool_threads_locked(const struct evfn__pool *p)
{
	EVFN__ASSERT_LOCKED(p->rt);
	return p->nthreads;
}

/* Waits for work. Returns false when this worker should exit: the pool is
 * stopping, or it sat idle past the timeout while above the minimum. */
static bool
wait_for_work_locked(struct evfn__pool *p)
{
	struct evfn_rt *rt = p->rt;
	EVFN__ASSERT_LOCKED(rt);
	if (p->quit)
		return false;
	/* Spin before sleeping: work that arrives within a few
	 * microseconds is taken without a futex wake-up, which costs more
	 * than the task itself on a VM. The spin adapts to the gaps between
	 * events: it halves when it ends empty-handed, and is back to the
	 * longest when work came soon enough after the spin began that the
	 * longest would have caught it; so a steady stream is caught and
	 * sparse work costs little CPU. */
	unsigned gen = atomic_load_explicit(&p->ready_gen,
	                                    memory_order_relaxed);
	/* One worker spins at a time, and while it does producers wake
	 * nobody (it counts under the lock, and looks at the queue under
	 * the lock before it sleeps, so no work is left unseen): on two
	 * cores a second spinner only takes the core a producer needs. */
	bool spin = !atomic_load_explicit(&p->spinner, memory_order_relaxed);
	int polls = 0;
	if (spin) {
		atomic_store_explicit(&p->spinner, true, memory_order_relaxed);
		p->x->backlog_wanted = true;
		polls = p->spin_polls;
	}
	evfn__lock_release(&rt->lock);
	int64_t spin_start = spin ? evfn__now_ns() : 0;
	evfn__eventlog_flush(&rt->eventlog);
	bool caught = false;
	for (int i = 0; i < polls; i++) {
		if (atomic_load_explicit(&p->ready_gen, memory_order_relaxed) !=
		    gen) {
			caught = true;
			break;
		}
		/* Now and then give the core to a thread that waits for
		 * it (a producer, a worker holding the lock): a spinner that
		 * never yields can delay them by a scheduler slice. */
		if ((i & (SPIN_YIELD_EVERY - 1)) == SPIN_YIELD_EVERY - 1)
			sched_yield();
		else
			cpu_relax();
	}
	evfn__lock_acquire(&rt->lock);
	if (spin) {
		/* Before the arrivals are looked at (see pool_arrived). */
		atomic_store(&p->spinner, false);
		p->x->backlog_wanted = false;
		if (!caught)
			p->spin_polls = EVFN__MAX(p->spin_polls / 2,
			                          SPIN_POLLS_MIN);
	}
	if (work_waits_locked(p) || p->quit)
		return !p->quit;
	bool reapable = p->nthreads > rt->opts.min_workers;
	int err = 0;
	p->nidle++;
	if (reapable) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		int64_t ns = until.tv_nsec + rt->opts.idle_timeout_ns;
		until.tv_sec += ns / EVFN__NS_PER_SEC;
		until.tv_nsec = ns % EVFN__NS_PER_SEC;
		err = evfn__lock_wait_until(&rt->lock, &p->work_cond, &until);
	} else {
		evfn__lock_wait(&rt->lock, &p->work_cond);
	}
	p->nidle--;
	if (p->nwaking > 0)
		p->nwaking--;
	if (p->quit)
		return false;
	if (spin && work_waits_locked(p) &&
	    evfn__now_ns() - spin_start < SPIN_WINDOW_NS)
		p->spin_polls = SPIN_POLLS_MAX;
	return !(err == ETIMEDOUT && !work_waits_locked(p) &&
	         p->nthreads > rt->opts.min_workers);
}

/* How many more attempts of fn a worker may take with the one it picked:
 * none unless fn's queue is deep for the pool, its handlers short, and
 * nothing (concurrency, flow, batches) counts its calls. */
static int
prefetch_count(const struct evfn__pool *p, struct evfn_fn *fn)
{
	if (fn->cfg.concurrency || fn->flow || fn->cfg.batch_max > 1 ||
	    fn->run_ewma_ns > PREFETCH_RUN_NS || p->nthreads < 1)
		return 0;
	int64_t share = (fn->queued - fn->held) / p->nthreads;
	return (int)EVFN__MIN(share, PREFETCH_MAX - 1);
}

/* Runs the attempts a worker took, one after the other, without the
 * lock; ran[i] tells whether the i-th ran (the watchdog may have given a
 * prefetched one back). Returns the time the last one ended. */
static int64_t
run_chain(struct pool_worker *w, struct evfn__inv *inv, int64_t now,
          int *outcomes, bool *ran)
{
	struct evfn_rt *rt = w->w.rt;
	/* Looked up once: the attempts a worker takes together are all one
	 * function's. */
	struct evfn__metrics *m = evfn__worker_metrics(&w->w, inv->fn);
	int i = 0;
	for (struct evfn__inv *x = inv; x; x = x->run_next, i++) {
		ran[i] = false;
		if (x != inv) {
			if (!evfn__attempt_begin_prefetched(x, now))
				continue; /* given back by the watchdog */
			atomic_store_explicit(&w->current, x,
			                      memory_order_release);
		}
		outcomes[i] = evfn__worker_run(&w->w, x);
		now = evfn__now_ns();
		outcomes[i] = evfn__outcome_at(x, outcomes[i], now);
		if (evfn__attempt_returned(x) && m)
			evfn__worker_measure_into(m, x, now);
		evfn__worker_tell_return(&rt->eventlog, x, outcomes[i]);
		ran[i] = true;
	}
	return now;
}

/* A fenced worker whose handler returned takes its place in the pool
 * again if the pool needs a thread (it is below its minimum, or work is
 * ready) and has room for it; else it will exit. */
static bool
rejoin_locked(struct evfn__pool *p, struct pool_worker *w)
{
	struct evfn_rt *rt = p->rt;
	EVFN__ASSERT_LOCKED(rt);
	bool room = w->holds_slot || room_for_worker_locked(p);
	bool wanted =
		p->nthreads < rt->opts.min_workers || work_waits_locked(p);
	if (!room || !wanted || p->quit || rt->state >= EVFN__DRAINING)
		return false;
	unlink_worker(&p->stuck_workers, w);
	w->next = p->workers;
	p->workers = w;
	if (w->holds_slot)
		p->nheld--;
	w->stuck = w->holds_slot = false;
	p->nthreads++;
	p->nexiting--;
	return true;
}

static void *
worker_main(void *arg)
{
	struct pool_worker *w = arg;
	struct evfn__pool *p = w->pool;
	struct evfn_rt *rt = p->rt;
	struct evfn__ended ended = {0};
	int outcomes[PREFETCH_MAX];
	bool ran[PREFETCH_MAX];
	/* The time an attempt starts is the time the previous one ended:
	 * one clock read per attempt, none under the lock. */
	int64_t now = evfn__now_ns();
	evfn__lock_acquire(&rt->lock);
	/* Started by a start that failed part way: the runtime stayed
	 * unstarted, and this worker leaves without taking anything. */
	if (rt->state == EVFN__CREATED)
		goto leave;
	for (;;) {
		/* Functions announced by fast publishes join the ready list
		 * first (without a wake-up: this worker picks now). */
		if (atomic_load_explicit(&rt->arrivals, memory_order_relaxed))
			evfn__arrivals_take_locked(rt);
		struct evfn__inv *inv =
			evfn__pick_locked(rt, &p->x->ready, now, &ended);
		if (!inv && !evfn__ended_empty(&ended)) {
			evfn__lock_release(&rt->lock);
			struct evfn__inv_list cleaned =
				evfn__settle_release(rt, &ended);
			now = evfn__now_ns();
			evfn__lock_acquire(&rt->lock);
			evfn__recycle_locked(rt, &cleaned);
			continue;
		}
		if (!inv) {
			if (!wait_for_work_locked(p))
				break;
			now = evfn__now_ns();
			continue;
		}
		struct evfn_fn *fn = inv->fn;
		int more = prefetch_count(p, fn);
		if (more)
			evfn__prefetch_locked(rt, inv, now, &ended, more);
		/* More work than this worker: let the pool wake or grow. */
		if (p->x->ready.head)
			notify_locked(p);
		w->chain = inv;
		atomic_store_explicit(&w->current, inv, memory_order_release);
		evfn__lock_release(&rt->lock);
		/* Release the previous round's leftovers outside the lock. */
		struct evfn__inv_list cleaned =
			evfn__settle_release(rt, &ended);
		int64_t start = now;
		now = run_chain(w, inv, now, outcomes, ran);
		evfn__lock_acquire(&rt->lock);
		evfn__recycle_locked(rt, &cleaned);
		atomic_store_explicit(&w->current, NULL, memory_order_relaxed);
		w->chain = NULL;
		int n = evfn__complete_run_locked(rt, inv, outcomes, ran,
		                                  &ended);
		int64_t run = (now - start) / (n ? n : 1);
		fn->run_ewma_ns += (run - fn->run_ewma_ns) / 8;
		if (w->stuck && !rejoin_locked(p, w))
			break; /* fenced, and not needed now: it leaves */
	}
leave:
	/* Leaves the count at once, so that workers timing out together do
	 * not all see themselves above the minimum; stays in nexiting until
	 * it is on the exited list, so that a stop always finds it there. A
	 * fenced worker left the count when it was fenced, and its place
	 * in the pool (if it kept one) now. */
	evfn__worker_retire_locked(&w->w);
	if (w->stuck) {
		unlink_worker(&p->stuck_workers, w);
		if (w->holds_slot)
			p->nheld--;
	} else {
		unlink_worker(&p->workers, w);
		p->nthreads--;
		p->nexiting++;
	}
	evfn__lock_release(&rt->lock);
	evfn__settle(rt, &ended);

	/* Warm state is torn down on the thread that built it. */
	evfn__worker_end_states(&w->w);

	evfn__lock_acquire(&rt->lock);
	w->next = p->exited;
	p->exited = w;
	p->nexiting--;
	if (p->nthreads == 0 && p->nexiting == 0)
		pthread_cond_broadcast(&rt->quiet_cond);
	evfn__lock_release(&rt->lock);
	return NULL;
}

void
evfn__pool_each_running_locked(struct evfn__pool *p,
                               void (*f)(struct evfn__inv *, void *),
                               void *arg)
{
	EVFN__ASSERT_LOCKED(p->rt);
	for (struct pool_worker *w = p->workers; w; w = w->next)
		for (struct evfn__inv *c = w->chain; c; c = c->run_next)
			for (struct evfn__inv *x = c; x; x = x->batch_next)
				f(x, arg);
}

void
evfn__pool_collect_locked(struct evfn__pool *p, const struct evfn_fn *fn,
                          struct evfn_stats *s)
{
	EVFN__ASSERT_LOCKED(p->rt);
	for (const struct pool_worker *w = p->workers; w; w = w->next)
		evfn__worker_collect_locked(&w->w, fn, s);
	for (const struct pool_worker *w = p->stuck_workers; w; w = w->next)
		evfn__worker_collect_locked(&w->w, fn, s);
}

void
evfn__pool_fence_overdue_locked(struct evfn__pool *p, int64_t now,
                                struct evfn__ended *ended,
                                struct evfn__inv **fenced)
{
	struct evfn_rt *rt = p->rt;
	EVFN__ASSERT_LOCKED(rt);
	struct pool_worker *w = p->workers;
	while (w) {
		struct pool_worker *next = w->next;
		struct evfn__inv *inv =
			atomic_load_explicit(&w->current, memory_order_acquire);
		if (inv && inv->ctx.deadline_ns <= now &&
		    evfn__timeout_locked(rt, inv, ended)) {
			struct evfn_fn *fn = inv->fn;
			/* The thread cannot be stopped: it leaves the pool
			 * until its handler returns. What it took and has not
			 * started goes back to the queue (what finds no
			 * memory now it runs late itself). */
			for (struct evfn__inv *x = inv->run_next; x;
			     x = x->run_next)
				(void)evfn__unstart_locked(rt, x, ended);
			w->stuck = true;
			unlink_worker(&p->workers, w);
			w->next = p->stuck_workers;
			p->stuck_workers = w;
			p->nthreads--;
			p->nexiting++;
			fn->stuck++;
			rt->nstuck++;
			evfn__fn_fast_update_locked(rt, fn);
			/* Within the function's stuck cap a replacement keeps
			 * its capacity; past it the stuck thread keeps its own
			 * place in the pool instead, so that threads stay
			 * bounded: max_workers, plus up to max_stuck stuck
			 * ones per function (which meanwhile starts nothing,
			 * see fn_startable_locked). */
			if (fn->stuck > fn->cfg.max_stuck) {
				w->holds_slot = true;
				p->nheld++;
			} else if (!p->quit && room_for_worker_locked(p)) {
				(void)spawn_locked(p);
			}
			if (inv->hook_running) {
				inv->next = *fenced;
				*fenced = inv;
			}
		}
		w = next;
	}
}
