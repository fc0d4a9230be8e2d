/* SPDX-License-Identifier: MIT */
/*
 * The event loop on libevent, and the only file of the core that calls
 * it: the base (evfn's own with a loop thread, or a host's), signals,
 * timers, and calls carried to the loop thread. Every callback goes
 * through enter()/leave(), which mark the thread as inside the loop
 * (evfn__tls_loop_rt) and note it as the loop's, so that code below can
 * tell the loop thread of a host's base from any other.
 */
#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "common-internal.h"
#include "lock-internal.h"
#include "loop-internal.h"

_Thread_local struct evfn_rt *evfn__tls_loop_rt EVFN__TLS_INITIAL_EXEC;

static pthread_once_t libevent_threads_once = PTHREAD_ONCE_INIT;
static int libevent_threads_rc;

static void
enable_libevent_threads(void)
{
	libevent_threads_rc = evthread_use_pthreads();
}

/* The start of one of our callbacks on l; returns the mark to restore. */
static struct evfn_rt *
enter(struct evfn__loop *l)
{
	struct evfn_rt *outer = evfn__tls_loop_rt;
	evfn__tls_loop_rt = l->owner;
	atomic_store_explicit(&l->tid, (unsigned long)pthread_self(),
	                      memory_order_relaxed);
	return outer;
}

static void
leave(struct evfn_rt *outer)
{
	evfn__tls_loop_rt = outer;
}

/* Breaks the loop from inside it. An event rather than a direct
 * event_base_loopbreak(), which is lost when it comes before the loop
 * thread has entered event_base_loop(). */
static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(((struct evfn__loop *)arg)->base);
}

static void *
loop_main(void *arg)
{
	struct evfn__loop *l = arg;
	evfn__tls_loop_rt = l->owner;
	event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* A base whose timers read the precise monotonic clock: libevent's
 * default coarse clock lets timers fire up to several ms late, which
 * schedules, retries and deadlines would all inherit. */
static struct event_base *
new_precise_base(void)
{
	struct event_config *cfg = event_config_new();
	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

int
evfn__loop_init(struct evfn__loop *l, struct evfn_rt *owner,
                struct event_base *host_base)
{
	*l = (struct evfn__loop){.owner = owner};
	/* Cross-thread event_active() and event_add() need libevent's
	 * locks, enabled before any base evfn uses is created. */
	pthread_once(&libevent_threads_once, enable_libevent_threads);
	if (libevent_threads_rc != 0)
		return EVFN_ENOMEM;
	l->own_base = !host_base;
	l->base = l->own_base ? new_precise_base() : host_base;
	if (l->base)
		l->stop_ev = event_new(l->base, -1, 0, stop_cb, l);
	return l->base && l->stop_ev ? 0 : EVFN_ENOMEM;
}

void
evfn__loop_destroy(struct evfn__loop *l)
{
	if (l->stop_ev)
		event_free(l->stop_ev);
	if (l->own_base && l->base)
		event_base_free(l->base);
	l->stop_ev = NULL;
	l->base = NULL;
}

int
evfn__loop_start(struct evfn__loop *l)
{
	if (!l->own_base)
		return 0;
	int err = pthread_create(&l->thread, NULL, loop_main, l);
	atomic_store(&l->thread_started, err == 0);
	return -err;
}

void
evfn__loop_stop(struct evfn__loop *l)
{
	if (!atomic_load(&l->thread_started))
		return;
	event_active(l->stop_ev, EV_TIMEOUT, 0);
	pthread_join(l->thread, NULL);
	atomic_store(&l->thread_started, false);
}

bool
evfn__loop_unattended(struct evfn__loop *l)
{
	return !l->own_base || !atomic_load(&l->thread_started);
}

bool
evfn__loop_thread_is_self(struct evfn__loop *l)
{
	return atomic_load_explicit(&l->tid, memory_order_relaxed) ==
	       (unsigned long)pthread_self();
}

int
evfn__loop_run_ready(struct evfn__loop *l)
{
	return event_base_loop(l->base, EVLOOP_NONBLOCK);
}

/* ---- calls carried to the loop thread ---------------------------------- */

struct loop_call {
	void (*fn)(void *arg);
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void
loop_call_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct loop_call *c = arg;
	c->fn(c->arg);
	pthread_mutex_lock(&c->lock);
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

int
evfn__loop_call(struct evfn__loop *l, void (*fn)(void *), void *arg)
{
	bool idle = l->own_base && !atomic_load(&l->thread_started);
	if (idle || evfn__loop_is_current(l)) {
		fn(arg);
		return 0;
	}
	struct loop_call c = {.fn = fn, .arg = arg, .done = false};
	pthread_mutex_init(&c.lock, NULL);
	evfn__cond_init_monotonic(&c.cond);
	int rc = 0;
	struct event *ev = event_new(l->base, -1, 0, loop_call_cb, &c);
	if (!ev) {
		rc = EVFN_ENOMEM;
		goto out;
	}
	event_active(ev, EV_TIMEOUT, 0);
	bool pump = !l->own_base;
	pthread_mutex_lock(&c.lock);
	while (!c.done) {
		if (!pump) {
			pthread_cond_wait(&c.cond, &c.lock);
			continue;
		}
		/* Embedded: run the host's base here if nobody runs it. If it
		 * is running, either this is its thread, inside one of the
		 * host's callbacks, where touching the base is safe and
		 * waiting would never end: call fn here; or another thread
		 * runs it, and will run fn: wait. */
		pthread_mutex_unlock(&c.lock);
		int r = event_base_loop(l->base, EVLOOP_NONBLOCK);
		pthread_mutex_lock(&c.lock);
		if (r >= 0 || c.done)
			continue;
		pump = false;
		if (evfn__loop_thread_is_self(l)) {
			pthread_mutex_unlock(&c.lock);
			event_del(ev); /* fn runs here instead, once */
			fn(arg);
			pthread_mutex_lock(&c.lock);
			c.done = true;
		}
	}
	pthread_mutex_unlock(&c.lock);
	event_free(ev);
out:
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
	return rc;
}

/* ---- signals ----------------------------------------------------------- */

struct evfn__signal {
	struct event *ev;
	struct evfn__loop *loop;
	void (*cb)(void *);
	void *arg;
	atomic_bool raised;         /* the callback is due and not begun */
};

static void
signal_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evfn__signal *s = arg;
	struct evfn_rt *outer = enter(s->loop);
	/* Cleared before the callback looks at its work, so that a raise
	 * meanwhile runs it again rather than being lost. */
	atomic_store(&s->raised, false);
	s->cb(s->arg);
	leave(outer);
}

struct evfn__signal *
evfn__signal_new(struct evfn__loop *l, void (*cb)(void *), void *arg)
{
	struct evfn__signal *s = evfn__calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	*s = (struct evfn__signal){.loop = l, .cb = cb, .arg = arg};
	s->ev = event_new(l->base, -1, 0, signal_cb, s);
	if (!s->ev) {
		evfn__free(s);
		return NULL;
	}
	return s;
}

void
evfn__signal_raise(struct evfn__signal *s)
{
	if (!atomic_exchange(&s->raised, true))
		event_active(s->ev, EV_TIMEOUT, 0);
}

void
evfn__signal_free(struct evfn__signal *s)
{
	if (!s)
		return;
	event_free(s->ev);
	evfn__free(s);
}

/* ---- timers ------------------------------------------------------------ */

struct evfn__timer {
	struct event *ev;
	struct evfn__loop *loop;
	void (*cb)(void *);
	void *arg;
	int64_t period_ns;          /* 0: one-shot */
	atomic_int_fast64_t due_ns; /* one-shot: armed for; 0 not armed */
};

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evfn__timer *t = arg;
	struct evfn_rt *outer = enter(t->loop);
	/* Not armed from here: the callback arms it again for what is
	 * still to come. */
	atomic_store_explicit(&t->due_ns, 0, memory_order_relaxed);
	t->cb(t->arg);
	leave(outer);
}

static struct evfn__timer *
timer_new(struct evfn__loop *l, int64_t period_ns, void (*cb)(void *),
          void *arg)
{
	struct evfn__timer *t = evfn__calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	*t = (struct evfn__timer){
		.loop = l, .cb = cb, .arg = arg, .period_ns = period_ns};
	t->ev = event_new(l->base, -1, period_ns ? EV_PERSIST : 0, timer_cb,
	                  t);
	if (!t->ev) {
		evfn__free(t);
		return NULL;
	}
	return t;
}

struct evfn__timer *
evfn__timer_new(struct evfn__loop *l, void (*cb)(void *), void *arg)
{
	return timer_new(l, 0, cb, arg);
}

struct evfn__timer *
evfn__timer_new_periodic(struct evfn__loop *l, int64_t period_ns,
                         void (*cb)(void *), void *arg)
{
	return timer_new(l, period_ns, cb, arg);
}

/* Rounded up (evfn__timeval_ns): libevent may fire a little early (it
 * counts from its cached time), and a callback that finds nothing due yet
 * only arms the timer again. */
static struct timeval
timeval_of(int64_t ns)
{
	return evfn__timeval_ns(ns);
}

bool
evfn__timer_arm(struct evfn__timer *t, int64_t due_ns)
{
	if (t->period_ns) {
		struct timeval tv = timeval_of(t->period_ns);
		return event_add(t->ev, &tv) == 0;
	}
	int64_t armed = atomic_load_explicit(&t->due_ns, memory_order_relaxed);
	if (armed && armed <= due_ns)
		return true;
	int64_t wait = due_ns - evfn__now_ns();
	struct timeval tv = timeval_of(wait > 0 ? wait : 0);
	atomic_store_explicit(&t->due_ns, due_ns, memory_order_relaxed);
	/* Safe from any thread: libevent's locks are on. */
	if (event_add(t->ev, &tv) == 0)
		return true;
	atomic_store_explicit(&t->due_ns, 0, memory_order_relaxed);
	return false;
}

void
evfn__timer_disarm(struct evfn__timer *t)
{
	event_del(t->ev);
	atomic_store_explicit(&t->due_ns, 0, memory_order_relaxed);
}

void
evfn__timer_free(struct evfn__timer *t)
{
	if (!t)
		return;
	event_free(t->ev);
	evfn__free(t);
}
