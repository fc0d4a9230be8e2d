/* SPDX-License-Identifier: MIT */
/*
 * The completion thread of a Python runtime: evfn calls result callbacks
 * and cancel hooks on its loop thread, which also runs retries and the
 * deadline watchdog and so must never wait for the GIL, and event-log
 * callbacks on any thread with no lock held. Those only queue what
 * happened here (no GIL); this thread takes the GIL once per batch, raises
 * Timeout in cancelled handlers first, then resolves the queued futures
 * (holding their shared Condition once for all of them) and delivers the
 * queued records, so a burst costs one GIL hand-over instead of one each.
 */
#include "evfnpy.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A queued item: the outcome of a submission (future set) or an
 * event-log record (record_kind >= 0). */
struct evfnpy_done {
	struct evfnpy_done *next;
	struct evfnpy_completer *completer;
	PyObject *future;   /* owned; NULL for a record */
	bool resolved;      /* the future took the outcome: call back */
	int record_kind;    /* evfn_record_kind, or -1 */
	char *function;     /* record: function name */
	/* A reference: the submitted event, or the record's (NULL for a
	 * breaker's record). */
	const evfn_event *event;
	int64_t duration_ns;
	int code;
	unsigned attempts;
	char *resp; /* NULL unless the event succeeded */
	size_t resp_len;
	char *error;
};

int
evfnpy_completer_init(struct evfnpy_completer *c,
                      struct evfnpy_cancels *cancels, PyObject *registry,
                      PyObject *condition)
{
	c->head = c->tail = NULL;
	c->cancels = cancels;
	c->registry = registry;
	c->condition = condition;
	c->on_record = NULL;
	c->cancel_pending = false;
	c->started = c->stop = false;
	if (pthread_mutex_init(&c->mu, NULL) != 0)
		return -1;
	if (pthread_cond_init(&c->cond, NULL) != 0) {
		pthread_mutex_destroy(&c->mu);
		return -1;
	}
	return 0;
}

void
evfnpy_completer_destroy(struct evfnpy_completer *c)
{
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->mu);
}

static void
done_free(struct evfnpy_done *d)
{
	free(d->function);
	evfn_event_unref(d->event);
	free(d->resp);
	free(d->error);
	free(d);
}

/* With the GIL: hand one record to on_record as (kind, function, event,
 * attempt, code, error, duration_ns); event is None for the records of a
 * circuit breaker, which are about a function, not an event. */
static void
deliver(PyObject *on_record, struct evfnpy_done *d)
{
	if (!on_record)
		return;
	PyObject *ev = Py_None;
	if (d->event)
		ev = evfnpy_event_wrap(d->event);
	else
		Py_INCREF(ev);
	PyObject *error = ev ? evfnpy_text(d->error) : NULL;
	PyObject *r = error ? PyObject_CallFunction(on_record, "iNNIiNL",
	                                            d->record_kind,
	                                            evfnpy_text(d->function),
	                                            ev, d->attempts, d->code,
	                                            error,
	                                            (long long)d->duration_ns)
	                    : NULL;
	if (!error)
		Py_XDECREF(ev);
	if (!r)
		PyErr_WriteUnraisable(on_record);
	Py_XDECREF(r);
}

/* With the GIL and the futures' condition held: resolve one future with
 * its event's outcome (the response bytes or an InvocationError), and
 * forget the submission. */
static void
resolve(struct evfnpy_completer *c, struct evfnpy_done *d)
{
	PyObject *f = d->future;
	evfnpy_registry_remove(c->registry, d->event);
	PyObject *v = d->code == 0
	                      ? PyBytes_FromStringAndSize(d->resp,
	                                                  (Py_ssize_t)d->resp_len)
	                      : evfnpy_outcome_error(d->code, d->error,
	                                             d->attempts,
	                                             evfnpy_future_cause(f));
	if (!v) {
		/* Out of memory: the future must still end. */
		PyErr_Clear();
		v = PyObject_CallFunction(PyExc_MemoryError, NULL);
		if (!v) {
			PyErr_WriteUnraisable(f);
			return;
		}
		d->code = EVFN_ENOMEM;
	}
	d->resolved = d->code == 0 ? evfnpy_future_finish(f, v, NULL)
	                           : evfnpy_future_finish(f, NULL, v);
	Py_DECREF(v);
}

/* With the GIL: resolves the futures of a batch under one hold of their
 * condition, then runs their callbacks and delivers the records, in the
 * order they came. */
static void
resolve_batch(struct evfnpy_completer *c, struct evfnpy_done *batch)
{
	bool futures = false;
	for (struct evfnpy_done *d = batch; d && !futures; d = d->next)
		futures = d->future != NULL;
	bool locked = futures && evfnpy_future_lock(c->condition) == 0;
	/* Unlocked (out of memory) the futures are still resolved: a wait()
	 * could then miss a wake-up, a future left pending would never end. */
	if (futures && !locked)
		PyErr_WriteUnraisable(c->condition);
	for (struct evfnpy_done *d = batch; d; d = d->next)
		if (d->future)
			resolve(c, d);
	if (locked)
		evfnpy_future_unlock(c->condition, true);
	for (struct evfnpy_done *d = batch; d; d = d->next) {
		if (d->future && d->resolved)
			evfnpy_future_callbacks(d->future);
		else if (!d->future)
			deliver(c->on_record, d);
	}
}

static void *
completer_main(void *arg)
{
	struct evfnpy_completer *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->head && !c->cancel_pending && !c->stop)
			pthread_cond_wait(&c->cond, &c->mu);
		struct evfnpy_done *batch = c->head;
		bool cancel = c->cancel_pending;
		c->head = c->tail = NULL;
		c->cancel_pending = false;
		if (!batch && !cancel && c->stop)
			break;
		pthread_mutex_unlock(&c->mu);
		/* Once finalization started the callbacks are leaked:
		 * taking the GIL would end this thread. */
		bool py = !evfnpy_finalizing();
		PyGILState_STATE g = PyGILState_UNLOCKED;
		if (py)
			g = PyGILState_Ensure();
		/* Timeouts first: a late one costs a stuck thread. */
		if (py && cancel)
			evfnpy_cancels_fire(c->cancels);
		if (py)
			resolve_batch(c, batch);
		while (batch) {
			struct evfnpy_done *d = batch;
			batch = d->next;
			if (py && d->future)
				Py_DECREF(d->future);
			done_free(d);
		}
		if (py)
			PyGILState_Release(g);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int
evfnpy_completer_start(struct evfnpy_completer *c)
{
	if (c->started)
		return 0;
	int rc = pthread_create(&c->thread, NULL, completer_main, c);
	if (rc != 0)
		return -rc;
	c->started = true;
	return 0;
}

void
evfnpy_completer_stop(struct evfnpy_completer *c)
{
	if (!c->started)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->mu);
	/* Closed from a future's callback: the thread ends by itself once
	 * that callback returns. */
	if (pthread_equal(pthread_self(), c->thread))
		pthread_detach(c->thread);
	else
		pthread_join(c->thread, NULL);
	c->started = false;
}

char *
evfnpy_dup(const void *data, size_t len)
{
	char *copy = malloc(len + 1);
	if (copy) {
		if (len)
			memcpy(copy, data, len);
		copy[len] = '\0';
	}
	return copy;
}

struct evfnpy_done *
evfnpy_done_new(struct evfnpy_completer *c, PyObject *future,
                const evfn_event *ev)
{
	struct evfnpy_done *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->completer = c;
	d->record_kind = -1;
	Py_INCREF(future);
	d->future = future;
	d->event = evfn_event_ref(ev);
	return d;
}

void
evfnpy_done_discard(struct evfnpy_done *d)
{
	Py_DECREF(d->future);
	done_free(d);
}

bool
evfnpy_done_cancel(struct evfnpy_done *d)
{
	evfnpy_runtime *self = (evfnpy_runtime *)(void *)((char *)d->completer -
	                                                 offsetof(evfnpy_runtime,
	                                                          comp));
	if (!self->rt)
		return false;
	/* Admission never waits for a thread that needs the GIL, and neither
	 * does cancelling, so this runs with the GIL held. */
	return evfn_cancel(self->rt, evfn_event_type(d->event),
	                   evfn_event_id(d->event)) > 0;
}

static void
enqueue(struct evfnpy_completer *c, struct evfnpy_done *d)
{
	pthread_mutex_lock(&c->mu);
	if (c->tail)
		c->tail->next = d;
	else
		c->head = d;
	c->tail = d;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->mu);
}

void
evfnpy_completer_result(const evfn_result *res, void *arg)
{
	struct evfnpy_done *d = arg;
	struct evfnpy_completer *c = d->completer;
	size_t len = 0;
	const void *data = evfn_result_data(res, &len);
	const char *error = evfn_result_error(res);
	d->code = evfn_result_code(res);
	d->attempts = evfn_result_attempts(res);
	if (d->code == 0) {
		d->resp = evfnpy_dup(data, len);
		d->resp_len = d->resp ? len : 0;
		if (!d->resp)
			d->code = EVFN_ENOMEM;
	}
	d->error = error ? evfnpy_dup(error, strlen(error)) : NULL;
	enqueue(c, d);
}

void
evfnpy_completer_cancel(struct evfnpy_completer *c)
{
	pthread_mutex_lock(&c->mu);
	c->cancel_pending = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->mu);
}

void
evfnpy_completer_record(const evfn_record *rec, void *arg)
{
	struct evfnpy_completer *c = arg;
	const char *fn = evfn_record_function(rec);
	const char *error = evfn_record_error(rec);
	struct evfnpy_done *d = calloc(1, sizeof(*d));
	/* Out of memory: the record is dropped; the log is best effort. */
	if (!d)
		return;
	d->completer = c;
	d->record_kind = (int)evfn_record_get_kind(rec);
	d->function = fn ? evfnpy_dup(fn, strlen(fn)) : NULL;
	d->event = evfn_event_ref(evfn_record_event(rec));
	d->attempts = evfn_record_attempt(rec);
	d->code = evfn_record_code(rec);
	d->error = error ? evfnpy_dup(error, strlen(error)) : NULL;
	d->duration_ns = evfn_record_duration_ns(rec);
	if (fn && !d->function) {
		done_free(d);
		return;
	}
	enqueue(c, d);
}
