/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.Runtime: owns one evfn runtime, its completion thread and the
 * triggers and HTTP servers attached to it, and binds registration (with
 * destinations, idempotency, the cancel hook and the flow options of
 * flow.c), subscription, emit, synchronous and asynchronous invocation,
 * stats, drain and close. The
 * GIL is released wherever C waits (sync invoke, drain, free); admission
 * calls (emit, submit, register) keep it, since evfn never holds a lock
 * while it runs Python code and so can never make them wait for a thread
 * that needs the GIL. The pythonic layer
 * (decorators, asyncio, context manager) is evfn/__init__.py.
 */
#include "evfnpy.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t
seconds_to_ms(double s)
{
	return (int64_t)llround(s * 1000.0);
}

int
evfnpy_runtime_check_open(evfnpy_runtime *self)
{
	if (self->rt)
		return 0;
	evfnpy_raise(EVFN_ESHUTDOWN);
	return -1;
}

#define check_open evfnpy_runtime_check_open

int
evfnpy_seconds_to_ms(PyObject *s, int64_t *ms)
{
	double v = PyFloat_AsDouble(s);
	if (v == -1.0 && PyErr_Occurred())
		return -1;
	if (!isfinite(v) || fabs(v) > 9e15) {
		PyErr_SetString(PyExc_ValueError, "seconds out of range");
		return -1;
	}
	*ms = seconds_to_ms(v);
	return 0;
}

int
evfnpy_runtime_attach(evfnpy_runtime *self, PyObject *obj)
{
	return PyList_Append(self->attached, obj);
}

void
evfnpy_runtime_detach(evfnpy_runtime *self, PyObject *obj)
{
	Py_ssize_t n = PyList_GET_SIZE(self->attached);
	for (Py_ssize_t i = 0; i < n; i++)
		if (PyList_GET_ITEM(self->attached, i) == obj) {
			(void)PySequence_DelItem(self->attached, i);
			return;
		}
}

/* Closes every trigger and server still attached, newest first; each
 * detaches itself. */
static void
close_attached(evfnpy_runtime *self)
{
	Py_ssize_t n;
	while ((n = PyList_GET_SIZE(self->attached)) > 0) {
		PyObject *obj = PyList_GET_ITEM(self->attached, n - 1);
		Py_INCREF(obj);
		PyObject *r = PyObject_CallMethod(obj, "close", NULL);
		if (!r)
			PyErr_WriteUnraisable(obj);
		Py_XDECREF(r);
		/* A close() that failed must not loop forever. */
		if (PyList_GET_SIZE(self->attached) == n)
			evfnpy_runtime_detach(self, obj);
		Py_DECREF(obj);
	}
}

static void
busy_enter(evfnpy_runtime *self)
{
	pthread_mutex_lock(&self->busy_mu);
	self->busy++;
	pthread_mutex_unlock(&self->busy_mu);
}

static void
busy_leave(evfnpy_runtime *self)
{
	pthread_mutex_lock(&self->busy_mu);
	if (--self->busy == 0)
		pthread_cond_broadcast(&self->busy_cond);
	pthread_mutex_unlock(&self->busy_mu);
}

static PyObject *
runtime_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	evfnpy_runtime *self = (evfnpy_runtime *)type->tp_alloc(type, 0);
	if (!self)
		return NULL;
	if (evfnpy_cancels_init(&self->cancels) < 0) {
		Py_DECREF(self);
		return PyErr_NoMemory();
	}
	if (evfnpy_completer_init(&self->comp, &self->cancels) < 0) {
		evfnpy_cancels_destroy(&self->cancels);
		Py_DECREF(self);
		return PyErr_NoMemory();
	}
	pthread_mutex_init(&self->busy_mu, NULL);
	pthread_cond_init(&self->busy_cond, NULL);
	self->handed_back = PyList_New(0);
	self->attached = PyList_New(0);
	self->initialized = true;
	if (!self->handed_back || !self->attached) {
		Py_DECREF(self);
		return NULL;
	}
	return (PyObject *)self;
}

static int
runtime_init(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "workers", "idle_timeout", "source",
		                  "dead_letter_capacity", "max_hops",
		                  "on_record", NULL };
	int min = -1, max = -1, max_hops = 0;
	long long dl_capacity = 0;
	PyObject *idle = Py_None, *on_record = Py_None;
	PyObject *dl_obj = Py_None, *hops_obj = Py_None;
	const char *source = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|(ii)OzOOO:Runtime", kwlist,
	                                 &min, &max, &idle, &source, &dl_obj,
	                                 &hops_obj, &on_record))
		return -1;
	/* None: evfn's default; any int goes to evfn to be checked. */
	if ((dl_obj != Py_None &&
	     (dl_capacity = PyLong_AsLongLong(dl_obj)) == -1 &&
	     PyErr_Occurred()) ||
	    (hops_obj != Py_None &&
	     (max_hops = _PyLong_AsInt(hops_obj)) == -1 && PyErr_Occurred()))
		return -1;
	if (on_record != Py_None && !PyCallable_Check(on_record)) {
		PyErr_SetString(PyExc_TypeError, "on_record must be callable");
		return -1;
	}
	if (self->rt) {
		PyErr_SetString(PyExc_TypeError, "Runtime already initialized");
		return -1;
	}
	double idle_s = 0;
	if (idle != Py_None) {
		idle_s = PyFloat_AsDouble(idle);
		if (idle_s == -1.0 && PyErr_Occurred())
			return -1;
	}
	evfn_rt_options *o;
	int rc = evfn_rt_options_new(&o);
	if (rc == 0 && min >= 0)
		rc = evfn_rt_options_set_workers(o, min, max);
	if (rc == 0 && idle != Py_None)
		rc = evfn_rt_options_set_idle_timeout_ms(o,
		                                         seconds_to_ms(idle_s));
	if (rc == 0 && source)
		rc = evfn_rt_options_set_source(o, source);
	if (rc == 0 && dl_obj != Py_None)
		rc = evfn_rt_options_set_dead_letter_capacity(o, dl_capacity);
	if (rc == 0 && hops_obj != Py_None)
		rc = evfn_rt_options_set_max_hops(o, max_hops);
	if (rc == 0 && on_record != Py_None)
		rc = evfn_rt_options_set_event_log(o, evfnpy_completer_record,
		                                   &self->comp);
	if (rc == 0)
		rc = evfn_runtime_new(&self->rt, o);
	evfn_rt_options_free(o);
	if (rc < 0) {
		evfnpy_raise(rc);
		return -1;
	}
	if (on_record != Py_None) {
		Py_INCREF(on_record);
		self->comp.on_record = on_record;
	}
	/* The completion thread also delivers cancellations and records,
	 * which may come before anything is submitted. */
	rc = evfnpy_completer_start(&self->comp);
	if (rc < 0) {
		errno = -rc;
		PyErr_SetFromErrno(PyExc_OSError);
		return -1;
	}
	return 0;
}

/* Events drain (or a late RETRY at free) hands back: collected into
 * self->handed_back as (function name, Event). Runs on the thread calling
 * drain or free, which has released the GIL. */
static void
on_handback(const evfn_event *ev, const char *fn_name, void *arg)
{
	evfnpy_runtime *self = arg;
	if (evfnpy_finalizing())
		return;
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *e = evfnpy_event_wrap(ev);
	PyObject *item = e ? Py_BuildValue("(sN)", fn_name, e) : NULL;
	if (!item || PyList_Append(self->handed_back, item) < 0)
		PyErr_WriteUnraisable((PyObject *)self);
	Py_XDECREF(item);
	PyGILState_Release(g);
}

/* evfn_runtime_free() refuses (EBUSY) while a handler that was fenced at
 * its deadline still runs; drain does not wait for those. The watchdog
 * raises Timeout in such a Python handler, so it returns soon: poll for up
 * to the grace period (plus a little, as the deadline may fall just before
 * it), then give up and report EBUSY. There is no call to wait for stuck
 * handlers, hence the polling. */
static int
free_when_quiet(evfn_rt *rt, int64_t grace_ms)
{
	struct timespec step = { 0, 5 * 1000 * 1000 };
	int64_t polls = (grace_ms + 1000) / 5;
	int rc;
	while ((rc = evfn_runtime_free(rt)) == EVFN_EBUSY && polls-- > 0)
		nanosleep(&step, NULL);
	return rc;
}

/* Frees the C runtime; the GIL is released while workers are joined (they
 * may need it to finish). Returns 0, or -1 with an exception set. */
static int
close_runtime(evfnpy_runtime *self, int64_t grace_ms)
{
	evfn_rt *rt = self->rt;
	if (!rt)
		return 0;
	/* Triggers and servers first: evfn_runtime_free() refuses while
	 * they live, and they would feed a draining runtime. Freeing them
	 * waits only for the loop thread, which never takes the GIL. */
	close_attached(self);
	/* Taken out first: other threads now see a closed runtime. */
	self->rt = NULL;
	bool drain = self->started && !self->drained;
	int rc = 0;
	Py_BEGIN_ALLOW_THREADS
	if (drain)
		(void)evfn_runtime_drain(rt, grace_ms, on_handback, self);
	pthread_mutex_lock(&self->busy_mu);
	while (self->busy > 0)
		pthread_cond_wait(&self->busy_cond, &self->busy_mu);
	pthread_mutex_unlock(&self->busy_mu);
	rc = free_when_quiet(rt, grace_ms);
	if (rc == 0)
		evfnpy_completer_stop(&self->comp);
	Py_END_ALLOW_THREADS
	if (drain)
		self->drained = true;
	if (rc < 0) {
		self->rt = rt;
		evfnpy_raise(rc);
		return -1;
	}
	return 0;
}

static void
runtime_dealloc(evfnpy_runtime *self)
{
	if (self->rt && !evfnpy_finalizing()) {
		if (close_runtime(self, 5000) < 0)
			PyErr_WriteUnraisable((PyObject *)self);
	}
	/* A runtime that could not be freed (work still in flight) is
	 * leaked with its threads rather than freed under running code. */
	if (!self->rt && self->initialized) {
		/* Never started when evfn_runtime_new() failed. */
		evfnpy_completer_stop(&self->comp);
		Py_CLEAR(self->comp.on_record);
		evfnpy_cancels_destroy(&self->cancels);
		evfnpy_completer_destroy(&self->comp);
		pthread_cond_destroy(&self->busy_cond);
		pthread_mutex_destroy(&self->busy_mu);
	}
	Py_XDECREF(self->handed_back);
	Py_XDECREF(self->attached);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
runtime_register(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name", "handler", "timeout", "attempts",
		                  "backoff", "max_age", "concurrency",
		                  "queue", "on_success", "on_failure",
		                  "idempotency", "max_stuck", "batch",
		                  "rate_limit", "circuit_breaker", NULL };
	const char *name, *on_success = NULL, *on_failure = NULL;
	PyObject *callable;
	PyObject *timeout = Py_None, *backoff = Py_None, *max_age = Py_None;
	PyObject *idempotency = Py_None, *stuck_obj = Py_None;
	PyObject *batch = Py_None, *rate = Py_None, *breaker = Py_None;
	int attempts = -1, concurrency = -1, max_stuck = 0;
	long long queue = -1;
	int64_t idem_ms = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|OiOOiLzzOOOOO:register",
	                                 kwlist, &name, &callable, &timeout,
	                                 &attempts, &backoff, &max_age,
	                                 &concurrency, &queue, &on_success,
	                                 &on_failure, &idempotency,
	                                 &stuck_obj, &batch, &rate, &breaker))
		return NULL;
	if (stuck_obj != Py_None &&
	    (max_stuck = _PyLong_AsInt(stuck_obj)) == -1 && PyErr_Occurred())
		return NULL;
	if (idempotency != Py_None &&
	    evfnpy_seconds_to_ms(idempotency, &idem_ms) < 0)
		return NULL;
	if (check_open(self) < 0)
		return NULL;
	if (!PyCallable_Check(callable)) {
		PyErr_SetString(PyExc_TypeError, "handler must be callable");
		return NULL;
	}
	double timeout_s = 0, max_age_s = 0, base = 0, mult = 0, cap = 0;
	int kind = 0, jitter = 0;
	if ((timeout != Py_None &&
	     (timeout_s = PyFloat_AsDouble(timeout)) == -1.0 &&
	     PyErr_Occurred()) ||
	    (max_age != Py_None &&
	     (max_age_s = PyFloat_AsDouble(max_age)) == -1.0 &&
	     PyErr_Occurred()) ||
	    (backoff != Py_None &&
	     !PyArg_ParseTuple(backoff, "idddi:backoff", &kind, &base, &mult,
	                       &cap, &jitter)))
		return NULL;

	evfn_fn_options *o;
	int rc = evfn_fn_options_new(&o);
	if (rc == 0 && timeout != Py_None)
		rc = evfn_fn_options_set_timeout_ms(o, seconds_to_ms(timeout_s));
	if (rc == 0 && attempts != -1)
		rc = evfn_fn_options_set_attempts(o, attempts);
	if (rc == 0 && backoff != Py_None)
		rc = evfn_fn_options_set_backoff(o, (evfn_backoff)kind,
		                                 seconds_to_ms(base), mult,
		                                 seconds_to_ms(cap),
		                                 (evfn_jitter)jitter);
	if (rc == 0 && max_age != Py_None)
		rc = evfn_fn_options_set_max_age_ms(o, seconds_to_ms(max_age_s));
	if (rc == 0 && concurrency != -1)
		rc = evfn_fn_options_set_concurrency(o, concurrency);
	if (rc == 0 && queue != -1)
		rc = evfn_fn_options_set_queue_capacity(o, queue);
	if (rc == 0 && (on_success || on_failure))
		rc = evfn_fn_options_set_destinations(o, on_success,
		                                      on_failure);
	if (rc == 0 && idempotency != Py_None)
		rc = evfn_fn_options_set_idempotency(o, idem_ms, NULL);
	if (rc == 0 && stuck_obj != Py_None)
		rc = evfn_fn_options_set_max_stuck(o, max_stuck);
	if (rc < 0) {
		evfn_fn_options_free(o);
		return evfnpy_raise(rc);
	}
	if (evfnpy_flow_options(o, batch, rate, breaker) < 0) {
		evfn_fn_options_free(o);
		return NULL;
	}
	rc = evfnpy_register(self, name, callable, o);
	evfn_fn_options_free(o);
	if (rc < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *
runtime_subscribe(evfnpy_runtime *self, PyObject *args)
{
	const char *pattern, *name;
	if (!PyArg_ParseTuple(args, "ss:subscribe", &pattern, &name) ||
	    check_open(self) < 0)
		return NULL;
	int rc = evfn_subscribe(self->rt, pattern, name);
	if (rc < 0)
		return evfnpy_raise(rc);
	Py_RETURN_NONE;
}

static PyObject *
runtime_start(evfnpy_runtime *self, PyObject *unused)
{
	if (check_open(self) < 0)
		return NULL;
	/* Starting creates threads but waits for none of them. */
	int rc = evfn_runtime_start(self->rt);
	if (rc < 0)
		return evfnpy_raise(rc);
	self->started = true;
	Py_RETURN_NONE;
}

/* drain(grace) -> (handed_back, finished): the (name, Event) pairs handed
 * back so far and whether in-flight work finished within the grace. */
static PyObject *
runtime_drain(evfnpy_runtime *self, PyObject *arg)
{
	double grace = PyFloat_AsDouble(arg);
	if ((grace == -1.0 && PyErr_Occurred()) || check_open(self) < 0)
		return NULL;
	if (grace < 0)
		return evfnpy_raise(EVFN_EINVAL);
	evfn_rt *rt = self->rt;
	int rc;
	busy_enter(self);
	Py_BEGIN_ALLOW_THREADS
	rc = evfn_runtime_drain(rt, seconds_to_ms(grace), on_handback, self);
	busy_leave(self);
	Py_END_ALLOW_THREADS
	if (rc < 0 && rc != EVFN_ETIMEDOUT)
		return evfnpy_raise(rc);
	self->drained = true;
	PyObject *list = self->handed_back;
	self->handed_back = PyList_New(0);
	if (!self->handed_back) {
		self->handed_back = list;
		return NULL;
	}
	return Py_BuildValue("(NO)", list, rc == 0 ? Py_True : Py_False);
}

static PyObject *
runtime_close(evfnpy_runtime *self, PyObject *args)
{
	double grace = 5.0;
	if (!PyArg_ParseTuple(args, "|d:close", &grace))
		return NULL;
	if (close_runtime(self, seconds_to_ms(grace)) < 0)
		return NULL;
	PyObject *list = self->handed_back;
	self->handed_back = PyList_New(0);
	if (!self->handed_back) {
		self->handed_back = list;
		return NULL;
	}
	return list;
}

static bool
has_attributes(PyObject *kw)
{
	if (!kw)
		return false;
	PyObject *k, *v;
	Py_ssize_t pos = 0;
	while (PyDict_Next(kw, &pos, &k, &v))
		if (v != Py_None)
			return true;
	return false;
}

/* Splits (first, data=None) off args; the keywords are attributes. */
static int
parse_target(PyObject *args, const char *what, const char **target,
             PyObject **data)
{
	*data = Py_None;
	return PyArg_ParseTuple(args, what, target, data) ? 0 : -1;
}

static PyObject *
runtime_emit(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	const char *topic;
	PyObject *data;
	uint64_t seq = 0;
	int rc;
	evfn_event *built = PyTuple_GET_SIZE(args) == 1
	                            ? evfnpy_event_get(PyTuple_GET_ITEM(args, 0))
	                            : NULL;
	if (built) {
		/* A built Event, published as it is (and frozen). */
		if (has_attributes(kw)) {
			PyErr_SetString(PyExc_TypeError,
			                "emit(event) takes no attributes");
			return NULL;
		}
		if (check_open(self) < 0)
			return NULL;
		rc = evfn_publish(self->rt, built, &seq);
		if (rc < 0)
			return evfnpy_raise(rc);
		return PyLong_FromUnsignedLongLong(seq);
	}
	if (parse_target(args, "s|O:emit", &topic, &data) < 0 ||
	    check_open(self) < 0)
		return NULL;
	if (!has_attributes(kw) &&
	    (data == Py_None || PyBytes_Check(data))) {
		/* The common case: raw bytes to a topic, one copy. */
		const char *buf = data == Py_None ? NULL
		                                  : PyBytes_AS_STRING(data);
		size_t len = data == Py_None ? 0
		                             : (size_t)PyBytes_GET_SIZE(data);
		rc = evfn_emit(self->rt, topic, buf, len, &seq);
	} else {
		evfn_event *ev;
		if (evfnpy_event_build(topic, data, kw, &ev) < 0)
			return NULL;
		rc = evfn_publish(self->rt, ev, &seq);
		evfn_event_unref(ev);
	}
	if (rc < 0)
		return evfnpy_raise(rc);
	return PyLong_FromUnsignedLongLong(seq);
}

/* What a synchronous invoke waits for; filled by the result callback on
 * the loop thread, without the GIL (the loop thread never takes it). */
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
	int code;
	unsigned attempts;
	char *resp;
	size_t resp_len;
	char *error;
};

static void
on_sync_result(const evfn_result *res, void *arg)
{
	struct waiter *w = arg;
	size_t len = 0;
	const void *data = evfn_result_data(res, &len);
	const char *error = evfn_result_error(res);
	pthread_mutex_lock(&w->mu);
	w->code = evfn_result_code(res);
	w->attempts = evfn_result_attempts(res);
	w->resp = evfnpy_dup(data, len);
	w->resp_len = w->resp ? len : 0;
	w->error = error ? evfnpy_dup(error, strlen(error)) : NULL;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

static PyObject *
runtime_invoke(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	const char *name;
	PyObject *data;
	if (parse_target(args, "s|O:invoke", &name, &data) < 0 ||
	    check_open(self) < 0)
		return NULL;
	if (!self->started)
		return evfnpy_raise(EVFN_ENOTRUNNING);
	evfn_event *ev;
	if (evfnpy_event_build(name, data, kw, &ev) < 0)
		return NULL;
	struct waiter w = { .done = false };
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cond, NULL);
	int rc = evfn_submit(self->rt, name, ev, on_sync_result, &w, NULL);
	evfn_event_unref(ev);
	if (rc == 0) {
		busy_enter(self);
		Py_BEGIN_ALLOW_THREADS
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.mu);
		pthread_mutex_unlock(&w.mu);
		busy_leave(self);
		Py_END_ALLOW_THREADS
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.mu);
	PyObject *result = NULL;
	if (rc < 0)
		evfnpy_raise(rc);
	else if (w.code != 0)
		evfnpy_raise_outcome(w.code, w.error, w.attempts);
	else if (!w.resp)
		PyErr_NoMemory();
	else
		result = PyBytes_FromStringAndSize(w.resp,
		                                   (Py_ssize_t)w.resp_len);
	free(w.resp);
	free(w.error);
	return result;
}

static PyObject *
runtime_submit(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	const char *name;
	PyObject *data = Py_None, *callback;
	if (!PyArg_ParseTuple(args, "sOO:submit", &name, &data, &callback) ||
	    check_open(self) < 0)
		return NULL;
	evfn_event *ev;
	if (evfnpy_event_build(name, data, kw, &ev) < 0)
		return NULL;
	uint64_t seq = 0;
	int rc = evfnpy_completer_start(&self->comp);
	if (rc < 0) {
		evfn_event_unref(ev);
		errno = -rc;
		return PyErr_SetFromErrno(PyExc_OSError);
	}
	struct evfnpy_done *d = evfnpy_done_new(&self->comp, callback);
	if (!d) {
		evfn_event_unref(ev);
		return PyErr_NoMemory();
	}
	rc = evfn_submit(self->rt, name, ev, evfnpy_completer_result, d, &seq);
	evfn_event_unref(ev);
	if (rc < 0) {
		/* The callback is never called on failure. */
		evfnpy_done_discard(d);
		return evfnpy_raise(rc);
	}
	return PyLong_FromUnsignedLongLong(seq);
}

static PyObject *
runtime_stats(evfnpy_runtime *self, PyObject *args)
{
	const char *name = NULL;
	if (!PyArg_ParseTuple(args, "|z:stats", &name) || check_open(self) < 0)
		return NULL;
	evfn_stats *s;
	int rc = evfn_stats_take(self->rt, name, &s);
	if (rc < 0)
		return evfnpy_raise(rc);
	PyObject *d = PyDict_New();
	for (int i = 0; d && i < EVFN_STAT_COUNT; i++) {
		PyObject *v = PyLong_FromUnsignedLongLong(
			evfn_stats_get(s, (evfn_stat)i));
		if (!v ||
		    PyDict_SetItemString(d, evfn_stat_name((evfn_stat)i), v) < 0)
			Py_CLEAR(d);
		Py_XDECREF(v);
	}
	evfn_stats_free(s);
	return d;
}

static PyObject *
runtime_workers(evfnpy_runtime *self, PyObject *unused)
{
	if (check_open(self) < 0)
		return NULL;
	return PyLong_FromLong(evfn_runtime_workers(self->rt));
}

static PyObject *
get_closed(evfnpy_runtime *self, void *unused)
{
	return PyBool_FromLong(self->rt == NULL);
}

static PyObject *
get_started(evfnpy_runtime *self, void *unused)
{
	return PyBool_FromLong(self->started);
}

static PyMethodDef runtime_methods[] = {
	{ "register", (PyCFunction)(void (*)(void))runtime_register,
	  METH_VARARGS | METH_KEYWORDS,
	  "register(name, handler, timeout=, attempts=, backoff=, max_age=, "
	  "concurrency=, queue=, on_success=, on_failure=, idempotency=, "
	  "max_stuck=, batch=, rate_limit=, circuit_breaker=): "
	  "handler(event, ctx) returns None or an outcome int." },
	{ "subscribe", (PyCFunction)runtime_subscribe, METH_VARARGS,
	  "subscribe(pattern, name)" },
	{ "start", (PyCFunction)runtime_start, METH_NOARGS, "Start workers." },
	{ "drain", (PyCFunction)runtime_drain, METH_O,
	  "drain(grace) -> (handed_back, finished)" },
	{ "close", (PyCFunction)runtime_close, METH_VARARGS,
	  "close(grace=5.0) -> late handed-back events; frees the runtime." },
	{ "emit", (PyCFunction)(void (*)(void))runtime_emit,
	  METH_VARARGS | METH_KEYWORDS,
	  "emit(topic, data=None, **attributes) -> seq" },
	{ "invoke", (PyCFunction)(void (*)(void))runtime_invoke,
	  METH_VARARGS | METH_KEYWORDS,
	  "invoke(name, data=None, **attributes) -> bytes" },
	{ "submit", (PyCFunction)(void (*)(void))runtime_submit,
	  METH_VARARGS | METH_KEYWORDS,
	  "submit(name, data, callback, **attributes) -> seq" },
	{ "pause", (PyCFunction)evfnpy_rt_pause, METH_O,
	  "pause(name): start no new attempt of the function; its events "
	  "keep being accepted and wait." },
	{ "resume", (PyCFunction)evfnpy_rt_resume, METH_O,
	  "resume(name): undo pause()." },
	{ "cancel", (PyCFunction)(void (*)(void))evfnpy_rt_cancel,
	  METH_VARARGS | METH_KEYWORDS,
	  "cancel(event_id, function=None) -> number of invocations "
	  "cancelled or asked to stop (0: none found)." },
	{ "stats", (PyCFunction)runtime_stats, METH_VARARGS,
	  "stats(name=None) -> dict" },
	{ "workers", (PyCFunction)runtime_workers, METH_NOARGS,
	  "Number of worker threads alive." },
	{ "schedule", (PyCFunction)(void (*)(void))evfnpy_rt_schedule,
	  METH_VARARGS | METH_KEYWORDS,
	  "schedule(expr, tz=None, type=None, function=None, name=None, "
	  "missed='fire_once', tolerance=None) -> Trigger" },
	{ "watch", (PyCFunction)(void (*)(void))evfnpy_rt_watch,
	  METH_VARARGS | METH_KEYWORDS,
	  "watch(directory, glob=None, type=None, function=None, name=None, "
	  "existing=False) -> Trigger" },
	{ "on_signal", (PyCFunction)(void (*)(void))evfnpy_rt_on_signal,
	  METH_VARARGS | METH_KEYWORDS,
	  "on_signal(signo, type=None, function=None, name=None) -> Trigger" },
	{ "on_fd", (PyCFunction)(void (*)(void))evfnpy_rt_on_fd,
	  METH_VARARGS | METH_KEYWORDS,
	  "on_fd(fd, read=True, write=False, edge=False, type=None, "
	  "function=None, name=None) -> Trigger" },
#ifdef EVFNPY_HAVE_PG
	{ "pg_changes", (PyCFunction)(void (*)(void))evfnpy_rt_pg_changes,
	  METH_VARARGS | METH_KEYWORDS,
	  "pg_changes(publication, function, conninfo=None, slot=None, "
	  "create_slot=True, type_prefix=None, max_in_flight=None, "
	  "feedback=None, reconnect=None) -> PgSource" },
	{ "pg_listen", (PyCFunction)(void (*)(void))evfnpy_rt_pg_listen,
	  METH_VARARGS | METH_KEYWORDS,
	  "pg_listen(channel, function, conninfo=None, type_prefix=None, "
	  "reconnect=None) -> PgSource" },
#endif
	{ "dead_letters", (PyCFunction)evfnpy_rt_dead_letters, METH_VARARGS,
	  "dead_letters(limit=None, offset=0) -> list of tuples (id, event, "
	  "function, reason, code, attempts, error, first, last)" },
	{ "dead_letter_op", (PyCFunction)evfnpy_rt_dead_letter_op,
	  METH_VARARGS,
	  "dead_letter_op(op, id=0): op 'replay', 'delete', 'replay_all', "
	  "'purge', 'count' or 'evicted' -> int" },
	{ "http", (PyCFunction)(void (*)(void))evfnpy_rt_http,
	  METH_VARARGS | METH_KEYWORDS,
	  "http(address='127.0.0.1', port=0, max_body=None, timeout=None, "
	  "max_connections=None, health_path=None) -> HttpServer" },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef runtime_getset[] = {
	{ "closed", (getter)get_closed, NULL, "True once freed.", NULL },
	{ "started", (getter)get_started, NULL, "True once started.", NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

PyTypeObject evfnpy_runtime_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "evfn._evfn.Runtime",
	.tp_doc = "The C runtime; use evfn.Runtime.",
	.tp_basicsize = sizeof(evfnpy_runtime),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_new = runtime_new,
	.tp_init = (initproc)runtime_init,
	.tp_dealloc = (destructor)runtime_dealloc,
	.tp_methods = runtime_methods,
	.tp_getset = runtime_getset,
};
