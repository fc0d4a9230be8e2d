/* SPDX-License-Identifier: MIT */
/*
 * Deadlines of Python handlers: the registry of which handler runs on
 * which thread for which evfn_ctx. The core's watchdog fences an attempt
 * at its deadline and calls the function's cancel hook on the loop thread;
 * that thread never takes the GIL, so the hook only marks the handler here
 * and wakes the completion thread, which takes the GIL and raises
 * evfn.Timeout inside the handler (PyThreadState_SetAsyncExc), so that
 * even `while True: pass` stops. The binding keeps no clock of its own.
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

void
evfnpy_cancels_arm(struct evfnpy_cancels *c, struct evfnpy_running *r,
                   evfn_ctx *ctx)
{
	r->ctx = ctx;
	r->thread_id = PyThread_get_thread_ident();
	r->cancel = false;
	r->fired = false;
	pthread_mutex_lock(&c->mu);
	r->next = c->running;
	c->running = r;
	pthread_mutex_unlock(&c->mu);
}

bool
evfnpy_cancels_disarm(struct evfnpy_cancels *c, struct evfnpy_running *r)
{
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
evfnpy_cancels_request(struct evfnpy_cancels *c, evfn_ctx *ctx)
{
	bool wake = false;
	/* The core keeps ctx alive for the hook's call, so no other
	 * attempt can be running under the same address meanwhile. */
	pthread_mutex_lock(&c->mu);
	for (struct evfnpy_running *r = c->running; r; r = r->next)
		if (r->ctx == ctx && !r->cancel) {
			r->cancel = true;
			wake = true;
		}
	pthread_mutex_unlock(&c->mu);
	return wake;
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
