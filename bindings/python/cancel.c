/* SPDX-License-Identifier: MIT */
/*
 * Deadlines of Python handlers: the registry of which handler runs on
 * which thread for which evfn_ctx. The core's watchdog fences an attempt
 * at its deadline and calls the function's cancel hook on the loop thread;
 * that thread never takes the GIL, so the hook only marks the handler here
 * and wakes the completion thread, which takes the GIL and raises
 * evfn.Timeout inside the handler (PyThreadState_SetAsyncExc), so that
 * even `while True: pass` stops. The binding keeps no clock of its own.
 * A handler whose deadline passed while it waited for the GIL is not run
 * at all, and one blocked in a nested synchronous invoke is woken.
 *
 * Lock order: the GIL first, then mu. Handlers arm and disarm while holding
 * the GIL and the raising thread holds it too, so a handler that disarmed
 * can never receive an exception meant for it afterwards.
 */
#include "evfnpy.h"

int
evfnpy_cancels_init(struct evfnpy_cancels *c)
{
	c->running = NULL;
	return pthread_mutex_init(&c->mu, NULL) == 0 ? 0 : -1;
}

void
evfnpy_cancels_destroy(struct evfnpy_cancels *c)
{
	pthread_mutex_destroy(&c->mu);
}

/* The entry of the handler this thread runs now, if any (arm and disarm
 * nest like the calls they wrap). */
static _Thread_local struct evfnpy_running *current;

bool
evfnpy_cancels_arm(struct evfnpy_cancels *c, struct evfnpy_running *r,
                   evfn_ctx *ctx)
{
	r->ctx = ctx;
	r->thread_id = PyThread_get_thread_ident();
	r->wake = NULL;
	r->cancel = false;
	r->fired = false;
	r->outer = current;
	current = r;
	pthread_mutex_lock(&c->mu);
	r->next = c->running;
	c->running = r;
	/* Checked once linked: a cancel hook that ran before found nothing
	 * to mark (the deadline passed while this thread waited for the
	 * GIL), one that runs from now on finds r. */
	bool stopped = evfn_ctx_cancelled(ctx);
	if (stopped)
		r->cancel = r->fired = true; /* nothing will run to raise in */
	pthread_mutex_unlock(&c->mu);
	return stopped;
}

bool
evfnpy_cancels_disarm(struct evfnpy_cancels *c, struct evfnpy_running *r)
{
	current = r->outer;
	pthread_mutex_lock(&c->mu);
	for (struct evfnpy_running **p = &c->running; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	bool cancelled = r->cancel;
	bool fired = r->fired;
	pthread_mutex_unlock(&c->mu);
	/* Raised but perhaps not yet delivered: take it back. */
	if (fired)
		PyThreadState_SetAsyncExc(r->thread_id, NULL);
	return cancelled;
}

bool
evfnpy_cancels_watch(struct evfnpy_cancels *c, struct evfnpy_wake *w)
{
	struct evfnpy_running *r = current;
	if (!r)
		return false;
	pthread_mutex_lock(&c->mu);
	bool stopped = r->cancel || evfn_ctx_cancelled(r->ctx);
	if (stopped) {
		/* The invoke raises Timeout itself: take back one raised
		 * asynchronously and not yet delivered, and raise no more. */
		if (r->fired)
			PyThreadState_SetAsyncExc(r->thread_id, NULL);
		r->cancel = r->fired = true;
	} else {
		r->wake = w;
	}
	pthread_mutex_unlock(&c->mu);
	return stopped;
}

void
evfnpy_cancels_unwatch(struct evfnpy_cancels *c, struct evfnpy_wake *w)
{
	struct evfnpy_running *r = current;
	if (!r)
		return;
	pthread_mutex_lock(&c->mu);
	if (r->wake == w)
		r->wake = NULL;
	pthread_mutex_unlock(&c->mu);
}

bool
evfnpy_cancels_request(struct evfnpy_cancels *c, evfn_ctx *ctx)
{
	bool wake = false;
	/* The core keeps ctx alive for the hook's call, so no other
	 * attempt can be running under the same address meanwhile. */
	pthread_mutex_lock(&c->mu);
	for (struct evfnpy_running *r = c->running; r; r = r->next) {
		if (r->ctx != ctx || r->cancel)
			continue;
		r->cancel = true;
		if (r->wake) {
			/* Blocked in a nested invoke, which raises Timeout
			 * itself once woken: no asynchronous one on top. */
			r->fired = true;
			atomic_store(&r->wake->interrupted, true);
			sem_post(&r->wake->sem);
		} else {
			wake = true;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return wake;
}

void
evfnpy_cancels_interrupt(struct evfnpy_cancels *c, evfn_ctx *ctx)
{
	PyObject *timeout = evfnpy_timeout_class();
	unsigned long self = PyThread_get_thread_ident();
	pthread_mutex_lock(&c->mu);
	for (struct evfnpy_running *r = c->running; r; r = r->next) {
		if (r->ctx != ctx || r->thread_id == self || r->fired)
			continue;
		r->cancel = r->fired = true;
		if (timeout)
			PyThreadState_SetAsyncExc(r->thread_id, timeout);
	}
	pthread_mutex_unlock(&c->mu);
}

void
evfnpy_cancels_fire(struct evfnpy_cancels *c)
{
	PyObject *timeout = evfnpy_timeout_class();
	pthread_mutex_lock(&c->mu);
	for (struct evfnpy_running *r = c->running; r; r = r->next) {
		if (!r->cancel || r->fired)
			continue;
		r->fired = true;
		if (timeout)
			PyThreadState_SetAsyncExc(r->thread_id, timeout);
	}
	pthread_mutex_unlock(&c->mu);
}
