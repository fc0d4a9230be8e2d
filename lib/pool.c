/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: threads that take runnable invocations from the ready
 * functions and run them. It keeps at least the minimum number of threads,
 * grows toward the maximum while work waits and no worker is idle, and
 * lets a thread above the minimum exit after it sat idle for the idle
 * timeout. A worker whose handler overran its deadline is fenced: it
 * leaves the pool (replaced, while its function is within its stuck cap)
 * and, when its handler returns, rejoins it if the pool needs a thread,
 * or exits. Exited threads are joined by the next spawn or at stop. Each
 * worker also holds the warm state its functions' init hooks built.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "common-internal.h"
#include "runtime-internal.h"

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

struct warm_slot {
	struct evfn_fn *fn; /* NULL until the init hook succeeded */
	void *state;
};

struct evfn__worker {
	struct evfn__worker *next;
	struct evfn_rt *rt;
	pthread_t thread;
	/* The attempts it took, linked through run_next (set and cleared
	 * under rt->lock), and the one whose handler runs now: published by
	 * the worker alone, after that attempt's deadline. */
	struct evfn__inv *chain;
	_Atomic(struct evfn__inv *) current;
	bool stuck;                /* fenced: on rt->stuck_workers until its
	                            * handler returns */
	bool holds_slot;           /* stuck past its function's cap, so not
	                            * replaced: counts in rt->nheld */
	struct warm_slot *slots;
	unsigned nslots;
	/* Metrics per function index; the array and its entries are only
	 * created and read under rt->lock, the counters written by the
	 * owner alone. */
	struct evfn__metrics **metrics;
	unsigned nmetrics;
	struct evfn__batch batch;  /* the items of the batch call it runs */
};

struct evfn__worker *
evfn__worker_new(struct evfn_rt *rt)
{
	struct evfn__worker *w = evfn__calloc(1, sizeof(*w));
	if (w)
		w->rt = rt;
	return w;
}

/* Runs the fini hooks of every state this worker built; on the worker's
 * own thread for pool workers. */
static void
fini_states(struct evfn__worker *w)
{
	for (unsigned i = 0; i < w->nslots; i++) {
		struct warm_slot *s = &w->slots[i];
		if (s->fn && s->fn->cfg.fini)
			s->fn->cfg.fini(s->fn->userdata, s->state);
		s->fn = NULL;
	}
}

void
evfn__worker_free(struct evfn__worker *w)
{
	if (!w)
		return;
	fini_states(w);
	evfn__free(w->slots);
	for (unsigned i = 0; i < w->nmetrics; i++)
		evfn__free(w->metrics[i]);
	evfn__free(w->metrics);
	evfn__free(w->batch.items);
	evfn__free(w->batch.outcomes);
	evfn__free(w);
}

struct evfn__batch *
evfn__worker_batch(struct evfn__worker *w, size_t n)
{
	struct evfn__batch *b = &w->batch;
	if (n > b->cap) {
		struct evfn__inv **items =
			evfn__realloc(b->items, n * sizeof(*items));
		if (!items)
			return NULL;
		b->items = items;
		signed char *outcomes = evfn__realloc(b->outcomes, n);
		if (!outcomes)
			return NULL;
		b->outcomes = outcomes;
		b->cap = n;
	}
	return b;
}

/* This worker's metrics for fn, created on first use. Owner thread. */
static struct evfn__metrics *
metrics_of(struct evfn__worker *w, struct evfn_fn *fn)
{
	if (fn->index < w->nmetrics && w->metrics[fn->index])
		return w->metrics[fn->index];
	struct evfn__metrics *m = NULL;
	evfn__lock_acquire(&w->rt->lock);
	if (fn->index >= w->nmetrics) {
		unsigned n = EVFN__MAX(fn->index + 1, w->nmetrics * 2);
		struct evfn__metrics **a =
			evfn__realloc(w->metrics, n * sizeof(*a));
		if (a) {
			memset(a + w->nmetrics, 0,
			       (n - w->nmetrics) * sizeof(*a));
			w->metrics = a;
			w->nmetrics = n;
		}
	}
	if (fn->index < w->nmetrics) {
		m = evfn__calloc(1, sizeof(*m));
		w->metrics[fn->index] = m;
	}
	evfn__lock_release(&w->rt->lock);
	return m;
}

/* Billed milliseconds for a run: rounded up to a whole ms, at least 1, as
 * Lambda bills. */
static uint64_t
billed_ms(int64_t run)
{
	uint64_t ms = (uint64_t)((run > 0 ? run : 0) + EVFN__NS_PER_MS - 1) /
	              (uint64_t)EVFN__NS_PER_MS;
	return ms ? ms : 1;
}

/* Records the queue wait of each item of the call inv, which started at
 * start. */
static void
record_waits(struct evfn__metrics *m, const struct evfn__inv *inv,
             int64_t start)
{
	for (const struct evfn__inv *x = inv; x; x = x->batch_next)
		evfn__hist_record(&m->wait, start - x->ready_ns);
}

/* Records a call's run time and bills it: a batch call runs (and bills)
 * once. */
static void
record_run(struct evfn__metrics *m, int64_t run)
{
	evfn__hist_record(&m->run, run);
	evfn__counter_add(&m->billed_ms, billed_ms(run));
}

void
evfn__worker_record(struct evfn__worker *w, const struct evfn__inv *inv,
                    int64_t end_ns)
{
	if (w->rt->opts.no_metrics)
		return;
	struct evfn__metrics *m = metrics_of(w, inv->fn);
	if (!m)
		return; /* out of memory: this attempt goes unmeasured */
	int64_t start = inv->start_ns;
	record_run(m, end_ns - start);
	record_waits(m, inv, start);
}

void
evfn__worker_record_wait(struct evfn__worker *w, const struct evfn__inv *inv)
{
	if (w->rt->opts.no_metrics)
		return;
	struct evfn__metrics *m = metrics_of(w, inv->fn);
	if (m)
		record_waits(m, inv, inv->start_ns);
}

void
evfn__metrics_completed_locked(struct evfn_rt *rt, const struct evfn__inv *inv,
                               int64_t end_ns)
{
	EVFN__ASSERT_LOCKED(rt);
	if (!rt->opts.no_metrics)
		record_run(&inv->fn->retired, end_ns - inv->start_ns);
}

void
evfn__metrics_fenced_locked(struct evfn_rt *rt, const struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(rt);
	if (rt->opts.no_metrics)
		return;
	struct evfn_fn *fn = inv->fn;
	record_run(&fn->retired, fn->cfg.timeout_ns);
	/* A pending loop attempt's waits were recorded when it returned
	 * EVFN_PENDING; a pool attempt's are recorded at its return, which
	 * a fenced one has not had. */
	if (fn->cfg.executor == EVFN_EXECUTOR_POOL)
		record_waits(&fn->retired, inv, inv->start_ns);
}

void
evfn__metrics_late_locked(struct evfn_rt *rt, const struct evfn__inv *inv,
                          int64_t end_ns)
{
	EVFN__ASSERT_LOCKED(rt);
	if (rt->opts.no_metrics)
		return;
	struct evfn_fn *fn = inv->fn;
	int64_t run = end_ns - inv->start_ns;
	if (run < fn->cfg.timeout_ns)
		run = fn->cfg.timeout_ns;
	/* The deadline counted at the fence becomes the real run time. */
	evfn__hist_move(&fn->retired.run, fn->cfg.timeout_ns, run);
	evfn__counter_add(&fn->retired.billed_ms,
	                  billed_ms(run) - billed_ms(fn->cfg.timeout_ns));
}

/* Folds a worker's metrics into its functions' own totals as it leaves
 * the pool for good, so that what it measured stays counted. rt->lock
 * held, on the worker's thread after its last measurement. */
static void
retire_metrics_locked(struct evfn_rt *rt, struct evfn__worker *w)
{
	EVFN__ASSERT_LOCKED(rt);
	for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next)
		if (fn->index < w->nmetrics && w->metrics[fn->index])
			evfn__metrics_add(&fn->retired, w->metrics[fn->index]);
}

static void
collect_one(const struct evfn__worker *w, const struct evfn_fn *fn,
            struct evfn_stats *s)
{
	if (!w || fn->index >= w->nmetrics || !w->metrics[fn->index])
		return;
	const struct evfn__metrics *m = w->metrics[fn->index];
	evfn__hist_merge(s->hist[0], &s->hist_sum_ns[0], &m->run);
	evfn__hist_merge(s->hist[1], &s->hist_sum_ns[1], &m->wait);
	s->v[EVFN_STAT_BILLED_MS] +=
		atomic_load_explicit(&m->billed_ms, memory_order_relaxed);
}

void
evfn__metrics_collect_locked(struct evfn_rt *rt, struct evfn_fn *fn,
                             struct evfn_stats *s)
{
	EVFN__ASSERT_LOCKED(rt);
	evfn__hist_merge(s->hist[0], &s->hist_sum_ns[0], &fn->retired.run);
	evfn__hist_merge(s->hist[1], &s->hist_sum_ns[1], &fn->retired.wait);
	s->v[EVFN_STAT_BILLED_MS] += atomic_load_explicit(
		&fn->retired.billed_ms, memory_order_relaxed);
	for (const struct evfn__worker *w = rt->workers; w; w = w->next)
		collect_one(w, fn, s);
	for (const struct evfn__worker *w = rt->stuck_workers; w; w = w->next)
		collect_one(w, fn, s);
	collect_one(rt->loop_worker, fn, s);
}

void *
evfn__worker_state(struct evfn__worker *w, struct evfn_fn *fn, int *rc)
{
	*rc = 0;
	if (fn->index >= w->nslots) {
		unsigned n = EVFN__MAX(fn->index + 1, w->nslots * 2);
		struct warm_slot *slots =
			evfn__realloc(w->slots, n * sizeof(*slots));
		if (!slots) {
			*rc = EVFN_ENOMEM;
			return NULL;
		}
		memset(slots + w->nslots, 0, (n - w->nslots) * sizeof(*slots));
		w->slots = slots;
		w->nslots = n;
	}
	struct warm_slot *s = &w->slots[fn->index];
	if (!s->fn) {
		void *state = NULL;
		int hook_rc = fn->cfg.init(fn->userdata, &state);
		if (hook_rc < 0) {
			*rc = hook_rc;
			return NULL;
		}
		s->fn = fn;
		s->state = state;
	}
	return s->state;
}

static void
unlink_worker(struct evfn__worker **list, struct evfn__worker *w)
{
	for (; *list; list = &(*list)->next)
		if (*list == w) {
			*list = w->next;
			return;
		}
}

/* Joins threads that have exited; their records go with them. */
static void
join_exited_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	while (rt->exited) {
		struct evfn__worker *w = rt->exited;
		rt->exited = w->next;
		pthread_join(w->thread, NULL);
		evfn__worker_free(w);
	}
}

static void *worker_main(void *arg);

static int
spawn_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	join_exited_locked(rt);
	struct evfn__worker *w = evfn__worker_new(rt);
	if (!w)
		return EVFN_ENOMEM;
	int err = pthread_create(&w->thread, NULL, worker_main, w);
	if (err) {
		evfn__free(w);
		evfn__logf(&rt->log, EVFN_LOG_ERROR, "cannot start a worker: %s",
		          strerror(err));
		return -err;
	}
	w->next = rt->workers;
	rt->workers = w;
	rt->nthreads++;
	return 0;
}

/* Signals a sleeping worker, unless every sleeping one has a wake-up on
 * its way already (wake-ups are batched). Returns false when none
 * sleeps. rt->lock held. */
static bool
wake_idle_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	if (rt->nidle <= rt->nwaking)
		return false;
	rt->nwaking++;
	pthread_cond_signal(&rt->work_cond);
	return true;
}

/* Whether the pool may have one more worker: the workers and the stuck
 * threads that kept their place (rt->nheld) stay within the maximum.
 * rt->lock held. */
static bool
room_for_worker_locked(const struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	return rt->nthreads + rt->nheld < rt->opts.max_workers;
}

/* Wakes a sleeping worker or starts one, unless the spinning worker will
 * take the work. rt->lock held. */
static void
wake_or_spawn_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	if (rt->spinner)
		return; /* see wait_for_work_locked */
	if (wake_idle_locked(rt))
		return;
	if (rt->state != EVFN__CREATED && !rt->quit &&
	    room_for_worker_locked(rt))
		(void)spawn_locked(rt);
}

void
evfn__pool_notify_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	/* On the loop thread (HTTP requests, triggers, due retries) one
	 * loop pass often admits several events: the wake-up waits for the
	 * end of the pass and serves them all, instead of a futex call per
	 * event on the thread that also answers the clients. Only where the
	 * loop surely runs on: evfn's own loop thread, or inside evfn's
	 * callbacks (not a host thread that ran the loop once and may now
	 * wait for the workers). */
	if (evfn__loop_is_current(&rt->loop)) {
		evfn__signal_raise(rt->kick);
		return;
	}
	wake_or_spawn_locked(rt);
}

void
evfn__pool_backlog_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	/* A sleeper, not a new thread: a worker is idle (the spinner). */
	if (rt->spinner)
		(void)wake_idle_locked(rt);
}

void
evfn__pool_kick_cb(void *arg)
{
	struct evfn_rt *rt = arg;
	evfn__lock_acquire(&rt->lock);
	if (rt->ready.head)
		wake_or_spawn_locked(rt);
	evfn__lock_release(&rt->lock);
}

int
evfn__pool_start_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	int rc = 0;
	rt->spin_polls = SPIN_POLLS_MAX;
	while (rc == 0 && rt->nthreads < rt->opts.min_workers)
		rc = spawn_locked(rt);
	if (rc == 0 && rt->ready.head && rt->nthreads == 0)
		rc = spawn_locked(rt);
	return rc;
}

/* Waits until every worker has left the pool, and joins them. */
static void
wait_out_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	while (rt->nthreads > 0 || rt->nexiting > 0)
		evfn__lock_wait(&rt->lock, &rt->quiet_cond);
	join_exited_locked(rt);
}

void
evfn__pool_unwind_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	/* The workers it started find the runtime still unstarted and
	 * leave at once (worker_main). */
	wait_out_locked(rt);
}

void
evfn__pool_stop(struct evfn_rt *rt)
{
	evfn__lock_acquire(&rt->lock);
	rt->quit = true;
	pthread_cond_broadcast(&rt->work_cond);
	wait_out_locked(rt);
	evfn__lock_release(&rt->lock);
}

/* Waits for work. Returns false when this worker should exit: the pool is
 * stopping, or it sat idle past the timeout while above the minimum. */
static bool
wait_for_work_locked(struct evfn_rt *rt)
{
	EVFN__ASSERT_LOCKED(rt);
	if (rt->quit)
		return false;
	/* Spin before sleeping: work that arrives within a few
	 * microseconds is taken without a futex wake-up, which costs more
	 * than the task itself on a VM. The spin adapts to the gaps between
	 * events: it halves when it ends empty-handed, and is back to the
	 * longest when work came soon enough after the spin began that the
	 * longest would have caught it; so a steady stream is caught and
	 * sparse work costs little CPU. */
	unsigned gen = atomic_load_explicit(&rt->ready_gen,
	                                    memory_order_relaxed);
	/* One worker spins at a time, and while it does producers wake
	 * nobody (it counts under the lock, and looks at the queue under
	 * the lock before it sleeps, so no work is left unseen): on two
	 * cores a second spinner only takes the core a producer needs. */
	bool spin = !rt->spinner;
	int polls = 0;
	if (spin) {
		rt->spinner = true;
		polls = rt->spin_polls;
	}
	evfn__lock_release(&rt->lock);
	int64_t spin_start = spin ? evfn__now_ns() : 0;
	evfn__eventlog_flush(&rt->eventlog);
	bool caught = false;
	for (int i = 0; i < polls; i++) {
		if (atomic_load_explicit(&rt->ready_gen, memory_order_relaxed) !=
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
		rt->spinner = false;
		if (!caught)
			rt->spin_polls = EVFN__MAX(rt->spin_polls / 2,
			                           SPIN_POLLS_MIN);
	}
	if (rt->ready.head || rt->quit)
		return !rt->quit;
	bool reapable = rt->nthreads > rt->opts.min_workers;
	int err = 0;
	rt->nidle++;
	if (reapable) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		int64_t ns = until.tv_nsec + rt->opts.idle_timeout_ns;
		until.tv_sec += ns / EVFN__NS_PER_SEC;
		until.tv_nsec = ns % EVFN__NS_PER_SEC;
		err = evfn__lock_wait_until(&rt->lock, &rt->work_cond, &until);
	} else {
		evfn__lock_wait(&rt->lock, &rt->work_cond);
	}
	rt->nidle--;
	if (rt->nwaking > 0)
		rt->nwaking--;
	if (rt->quit)
		return false;
	if (spin && rt->ready.head &&
	    evfn__now_ns() - spin_start < SPIN_WINDOW_NS)
		rt->spin_polls = SPIN_POLLS_MAX;
	return !(err == ETIMEDOUT && !rt->ready.head &&
	         rt->nthreads > rt->opts.min_workers);
}

/* How many more attempts of fn a worker may take with the one it picked:
 * none unless fn's queue is deep for the pool, its handlers short, and
 * nothing (concurrency, flow, batches) counts its calls. */
static int
prefetch_count(struct evfn_rt *rt, struct evfn_fn *fn)
{
	if (fn->cfg.concurrency || fn->flow || fn->cfg.batch_max > 1 ||
	    fn->run_ewma_ns > PREFETCH_RUN_NS || rt->nthreads < 1)
		return 0;
	int64_t share = (fn->queued - fn->held) / rt->nthreads;
	return (int)EVFN__MIN(share, PREFETCH_MAX - 1);
}

/* Runs the attempts a worker took, one after the other, without the
 * lock; ran[i] tells whether the i-th ran (the watchdog may have given a
 * prefetched one back). Returns the time the last one ended. */
static int64_t
run_chain(struct evfn__worker *w, struct evfn__inv *inv, int64_t now,
          int *outcomes, bool *ran)
{
	struct evfn_rt *rt = w->rt;
	int i = 0;
	for (struct evfn__inv *x = inv; x; x = x->run_next, i++) {
		ran[i] = false;
		if (x != inv) {
			if (!evfn__attempt_begin_prefetched(x, now))
				continue; /* given back by the watchdog */
			atomic_store_explicit(&w->current, x,
			                      memory_order_release);
		}
		outcomes[i] = evfn__run_attempt(rt, x, w);
		now = evfn__now_ns();
		outcomes[i] = evfn__outcome_at(x, outcomes[i], now);
		if (evfn__attempt_returned(x))
			evfn__worker_record(w, x, now);
		evfn__record_return(rt, x, outcomes[i]);
		ran[i] = true;
	}
	return now;
}

/* A fenced worker whose handler returned takes its place in the pool
 * again if the pool needs a thread (it is below its minimum, or work is
 * ready) and has room for it; else it will exit. rt->lock held. */
static bool
rejoin_locked(struct evfn_rt *rt, struct evfn__worker *w)
{
	EVFN__ASSERT_LOCKED(rt);
	bool room = w->holds_slot || room_for_worker_locked(rt);
	bool wanted = rt->nthreads < rt->opts.min_workers || rt->ready.head;
	if (!room || !wanted || rt->quit || rt->state >= EVFN__DRAINING)
		return false;
	unlink_worker(&rt->stuck_workers, w);
	w->next = rt->workers;
	rt->workers = w;
	if (w->holds_slot)
		rt->nheld--;
	w->stuck = w->holds_slot = false;
	rt->nthreads++;
	rt->nexiting--;
	return true;
}

static void *
worker_main(void *arg)
{
	struct evfn__worker *w = arg;
	struct evfn_rt *rt = w->rt;
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
		struct evfn__inv *inv =
			evfn__pick_locked(rt, &rt->ready, now, &ended);
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
			if (!wait_for_work_locked(rt))
				break;
			now = evfn__now_ns();
			continue;
		}
		struct evfn_fn *fn = inv->fn;
		int more = prefetch_count(rt, fn);
		if (more)
			evfn__prefetch_locked(rt, inv, now, &ended, more);
		/* More work than this worker: let the pool wake or grow. */
		if (rt->ready.head)
			evfn__pool_notify_locked(rt);
		w->chain = inv;
		atomic_store_explicit(&w->current, inv, memory_order_release);
		evfn__lock_release(&rt->lock);
		/* Release the previous round's leftovers outside the lock. */
		struct evfn__inv_list cleaned = evfn__settle_release(rt, &ended);
		int64_t start = now;
		now = run_chain(w, inv, now, outcomes, ran);
		evfn__lock_acquire(&rt->lock);
		evfn__recycle_locked(rt, &cleaned);
		atomic_store_explicit(&w->current, NULL, memory_order_relaxed);
		w->chain = NULL;
		int n = 0;
		for (struct evfn__inv *x = inv, *next; x; x = next, n++) {
			next = x->run_next;
			x->run_next = NULL;
			if (ran[n]) {
				evfn__complete_locked(rt, x, outcomes[n], &ended);
			} else {
				/* Given back: its event went on elsewhere. */
				evfn__inv_list_push(&ended.spent_records, x);
			}
		}
		int64_t run = (now - start) / (n ? n : 1);
		fn->run_ewma_ns += (run - fn->run_ewma_ns) / 8;
		if (w->stuck && !rejoin_locked(rt, w))
			break; /* fenced, and not needed now: it leaves */
	}
leave:
	/* Leaves the count at once, so that workers timing out together do
	 * not all see themselves above the minimum; stays in nexiting until
	 * it is on the exited list, so that a stop always finds it there. A
	 * fenced worker left the count when it was fenced, and its place
	 * in the pool (if it kept one) now. */
	retire_metrics_locked(rt, w);
	if (w->stuck) {
		unlink_worker(&rt->stuck_workers, w);
		if (w->holds_slot)
			rt->nheld--;
	} else {
		unlink_worker(&rt->workers, w);
		rt->nthreads--;
		rt->nexiting++;
	}
	evfn__lock_release(&rt->lock);
	evfn__settle(rt, &ended);

	/* Warm state is torn down on the thread that built it. */
	fini_states(w);

	evfn__lock_acquire(&rt->lock);
	w->next = rt->exited;
	rt->exited = w;
	rt->nexiting--;
	if (rt->nthreads == 0 && rt->nexiting == 0)
		pthread_cond_broadcast(&rt->quiet_cond);
	evfn__lock_release(&rt->lock);
	return NULL;
}

void
evfn__pool_each_running_locked(struct evfn_rt *rt,
                               void (*f)(struct evfn__inv *, void *),
                               void *arg)
{
	EVFN__ASSERT_LOCKED(rt);
	for (struct evfn__worker *w = rt->workers; w; w = w->next)
		for (struct evfn__inv *c = w->chain; c; c = c->run_next)
			for (struct evfn__inv *x = c; x; x = x->batch_next)
				f(x, arg);
}

void
evfn__pool_fence_overdue_locked(struct evfn_rt *rt, int64_t now,
                                struct evfn__ended *ended,
                                struct evfn__inv **fenced)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__worker *w = rt->workers;
	while (w) {
		struct evfn__worker *next = w->next;
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
			unlink_worker(&rt->workers, w);
			w->next = rt->stuck_workers;
			rt->stuck_workers = w;
			rt->nthreads--;
			rt->nexiting++;
			fn->stuck++;
			rt->nstuck++;
			/* Within the function's stuck cap a replacement keeps
			 * its capacity; past it the stuck thread keeps its own
			 * place in the pool instead, so that threads stay
			 * bounded: max_workers, plus up to max_stuck stuck
			 * ones per function (which meanwhile starts nothing,
			 * see fn_startable_locked). */
			if (fn->stuck > fn->cfg.max_stuck) {
				w->holds_slot = true;
				rt->nheld++;
			} else if (!rt->quit && room_for_worker_locked(rt)) {
				(void)spawn_locked(rt);
			}
			if (inv->hook_running) {
				inv->next = *fenced;
				*fenced = inv;
			}
		}
		w = next;
	}
}
