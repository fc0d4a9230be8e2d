/* SPDX-License-Identifier: MIT */
/*
 * The deadline watchdog of a Python runtime: a thread that knows which
 * Python handlers run on which threads and until when, and raises
 * evfn.Timeout inside a handler whose deadline passed
 * (PyThreadState_SetAsyncExc), so that even `while True: pass` stops. It
 * does not depend on the core's own watchdog; both can run at once.
 *
 * Lock order: the GIL first, then mu. Handlers arm and disarm while holding
 * the GIL; the watchdog thread takes the GIL before it takes mu to raise,
 * so a handler that disarmed can never receive an exception meant for it
 * afterwards (both steps are atomic with respect to the GIL).
 */
#include "evfnpy.h"

#include <errno.h>
#include <time.h>

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
evfnpy_watchdog_init(struct evfnpy_watchdog *wd)
{
	pthread_condattr_t attr;
	wd->running = NULL;
	wd->started = false;
	wd->stop = false;
	if (pthread_mutex_init(&wd->mu, NULL) != 0)
		return -1;
	/* Deadlines are CLOCK_MONOTONIC (evfn_ctx_deadline_ns), so the
	 * timed wait must use the same clock. */
	if (pthread_condattr_init(&attr) != 0 ||
	    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&wd->cond, &attr) != 0) {
		pthread_mutex_destroy(&wd->mu);
		return -1;
	}
	pthread_condattr_destroy(&attr);
	return 0;
}

void
evfnpy_watchdog_destroy(struct evfnpy_watchdog *wd)
{
	pthread_cond_destroy(&wd->cond);
	pthread_mutex_destroy(&wd->mu);
}

/* Earliest deadline of a handler not yet told, or INT64_MAX; with mu. */
static int64_t
next_deadline_locked(const struct evfnpy_watchdog *wd)
{
	int64_t next = INT64_MAX;
	for (const struct evfnpy_wd_slot *s = wd->running; s; s = s->next)
		if (!s->fired && s->deadline_ns < next)
			next = s->deadline_ns;
	return next;
}

/* With the GIL: raise Timeout in every handler past its deadline. */
static void
fire_expired(struct evfnpy_watchdog *wd)
{
	PyObject *timeout = evfnpy_timeout_class();
	int64_t now = now_ns();
	pthread_mutex_lock(&wd->mu);
	for (struct evfnpy_wd_slot *s = wd->running; s; s = s->next) {
		if (s->fired || s->deadline_ns > now)
			continue;
		s->fired = true;
		if (timeout)
			PyThreadState_SetAsyncExc(s->thread_id, timeout);
	}
	pthread_mutex_unlock(&wd->mu);
}

static void *
watchdog_main(void *arg)
{
	struct evfnpy_watchdog *wd = arg;
	pthread_mutex_lock(&wd->mu);
	while (!wd->stop) {
		int64_t next = next_deadline_locked(wd);
		if (next == INT64_MAX) {
			pthread_cond_wait(&wd->cond, &wd->mu);
			continue;
		}
		if (next > now_ns()) {
			struct timespec until = {
				.tv_sec = next / 1000000000,
				.tv_nsec = next % 1000000000,
			};
			pthread_cond_timedwait(&wd->cond, &wd->mu, &until);
			continue;
		}
		/* The GIL comes before mu: let go of mu to take it. */
		pthread_mutex_unlock(&wd->mu);
		if (!evfnpy_finalizing()) {
			PyGILState_STATE g = PyGILState_Ensure();
			fire_expired(wd);
			PyGILState_Release(g);
		}
		pthread_mutex_lock(&wd->mu);
		if (evfnpy_finalizing()) {
			/* Nothing may be raised any more; mark everything so
			 * that the loop waits for stop instead of spinning. */
			for (struct evfnpy_wd_slot *s = wd->running; s;
			     s = s->next)
				s->fired = true;
		}
	}
	pthread_mutex_unlock(&wd->mu);
	return NULL;
}

int
evfnpy_watchdog_start(struct evfnpy_watchdog *wd)
{
	if (wd->started)
		return 0;
	int rc = pthread_create(&wd->thread, NULL, watchdog_main, wd);
	if (rc != 0)
		return -rc;
	wd->started = true;
	return 0;
}

void
evfnpy_watchdog_stop(struct evfnpy_watchdog *wd)
{
	if (!wd->started)
		return;
	pthread_mutex_lock(&wd->mu);
	wd->stop = true;
	pthread_cond_signal(&wd->cond);
	pthread_mutex_unlock(&wd->mu);
	pthread_join(wd->thread, NULL);
	wd->started = false;
	wd->stop = false;
}

void
evfnpy_watchdog_arm(struct evfnpy_watchdog *wd, struct evfnpy_wd_slot *s,
                    int64_t deadline_ns)
{
	s->thread_id = PyThread_get_thread_ident();
	s->deadline_ns = deadline_ns;
	s->fired = false;
	pthread_mutex_lock(&wd->mu);
	/* Wake the thread only if this deadline comes first: with one
	 * timeout per function, deadlines mostly arrive in order and the
	 * thread sleeps on. */
	if (deadline_ns < next_deadline_locked(wd))
		pthread_cond_signal(&wd->cond);
	s->next = wd->running;
	wd->running = s;
	pthread_mutex_unlock(&wd->mu);
}

bool
evfnpy_watchdog_disarm(struct evfnpy_watchdog *wd, struct evfnpy_wd_slot *s)
{
	pthread_mutex_lock(&wd->mu);
	for (struct evfnpy_wd_slot **p = &wd->running; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	bool fired = s->fired;
	pthread_mutex_unlock(&wd->mu);
	/* Raised but perhaps not yet delivered: take it back. */
	if (fired)
		PyThreadState_SetAsyncExc(s->thread_id, NULL);
	return fired;
}
