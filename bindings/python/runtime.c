/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.Runtime: owns one evfn runtime and its deadline watchdog, and
 * binds registration, subscription, emit, synchronous and asynchronous
 * invocation, stats, drain and close. The GIL is released wherever C waits
 * (sync invoke, drain, free); admission calls (emit, submit, register) keep
 * it, since evfn never holds a lock while it runs Python code and so can
 * never make them wait for a thread that needs the GIL. The pythonic layer
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

static int
check_open(evfnpy_runtime *self)
{
	if (self->rt)
		return 0;
	evfnpy_raise(EVFN_ESHUTDOWN);
	return -1;
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
	if (evfnpy_watchdog_init(&self->wd) < 0) {
		Py_DECREF(self);
		return PyErr_NoMemory();
	}
	if (evfnpy_completer_init(&self->comp) < 0) {
		evfnpy_watchdog_destroy(&self->wd);
		Py_DECREF(self);
		return PyErr_NoMemory();
	}
	pthread_mutex_init(&self->busy_mu, NULL);
	pthread_cond_init(&self->busy_cond, NULL);
	self->handed_back = PyList_New(0);
	self->initialized = true;
	if (!self->handed_back) {
		Py_DECREF(self);
		return NULL;
	}
	return (PyObject *)self;
}

static int
runtime_init(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "workers", "idle_timeout", "source", NULL };
	int min = -1, max = -1;
	PyObject *idle = Py_None;
	const char *source = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|(ii)Oz:Runtime", kwlist,
	                                 &min, &max, &idle, &source))
		return -1;
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
	if (rc == 0)
		rc = evfn_runtime_new(&self->rt, o);
	evfn_rt_options_free(o);
	if (rc < 0) {
		evfnpy_raise(rc);
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
	if (rc == 0) {
		evfnpy_watchdog_stop(&self->wd);
		evfnpy_completer_stop(&self->comp);
	}
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
	 * leaked with its watchdog rather than freed under running code. */
	if (!self->rt && self->initialized) {
		evfnpy_watchdog_destroy(&self->wd);
		evfnpy_completer_destroy(&self->comp);
		pthread_cond_destroy(&self->busy_cond);
		pthread_mutex_destroy(&self->busy_mu);
	}
	Py_XDECREF(self->handed_back);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
runtime_register(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name", "handler", "timeout", "attempts",
		                  "backoff", "max_age", "concurrency",
		                  "queue", NULL };
	const char *name;
	PyObject *callable;
	PyObject *timeout = Py_None, *backoff = Py_None, *max_age = Py_None;
	int attempts = -1, concurrency = -1;
	long long queue = -1;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|OiOOiL:register",
	                                 kwlist, &name, &callable, &timeout,
	                                 &attempts, &backoff, &max_age,
	                                 &concurrency, &queue))
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
	if (rc < 0) {
		evfn_fn_options_free(o);
		return evfnpy_raise(rc);
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
	int rc = evfnpy_watchdog_start(&self->wd);
	if (rc < 0) {
		errno = -rc;
		return PyErr_SetFromErrno(PyExc_OSError);
	}
	/* Starting creates threads but waits for none of them. */
	rc = evfn_runtime_start(self->rt);
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

/* Builds an event for topic/function input: data and the CloudEvents
 * attributes of the keyword arguments. Returns 0 and *out, or -1 with a
 * Python error set. */
static int
build_event(const char *type, PyObject *data, PyObject *kw, evfn_event **out)
{
	static char *keys[] = { "id", "source", "subject", "datacontenttype",
		                NULL };
	struct evfnpy_payload p;
	*out = NULL;
	if (evfnpy_payload_get(data, &p) < 0)
		return -1;
	evfn_event *ev;
	int rc = evfn_event_new(&ev, type, p.data, p.len);
	evfnpy_payload_release(&p);
	if (rc < 0) {
		evfnpy_raise(rc);
		return -1;
	}
	if (p.dct)
		rc = evfn_event_set_datacontenttype(ev, p.dct);
	for (int i = 0; rc == 0 && keys[i] && kw; i++) {
		PyObject *v = PyDict_GetItemString(kw, keys[i]);
		if (!v || v == Py_None)
			continue;
		const char *s = PyUnicode_AsUTF8(v);
		if (!s)
			goto fail;
		if (i == 0)
			rc = evfn_event_set_id(ev, s);
		else if (i == 1)
			rc = evfn_event_set_source(ev, s);
		else if (i == 2)
			rc = evfn_event_set_subject(ev, s);
		else
			rc = evfn_event_set_datacontenttype(ev, s);
	}
	PyObject *t = kw ? PyDict_GetItemString(kw, "time_ns") : NULL;
	if (rc == 0 && t && t != Py_None) {
		long long ns = PyLong_AsLongLong(t);
		if (ns == -1 && PyErr_Occurred())
			goto fail;
		rc = evfn_event_set_time(ev, ns);
	}
	PyObject *ext = kw ? PyDict_GetItemString(kw, "extensions") : NULL;
	if (rc == 0 && ext && ext != Py_None) {
		PyObject *k, *v;
		Py_ssize_t pos = 0;
		if (!PyDict_Check(ext)) {
			PyErr_SetString(PyExc_TypeError,
			                "extensions must be a dict of str");
			goto fail;
		}
		while (rc == 0 && PyDict_Next(ext, &pos, &k, &v)) {
			const char *ks = PyUnicode_AsUTF8(k);
			const char *vs = v == Py_None ? NULL
			                              : PyUnicode_AsUTF8(v);
			if (!ks || (v != Py_None && !vs))
				goto fail;
			rc = evfn_event_set_extension(ev, ks, vs);
		}
	}
	if (rc < 0) {
		evfnpy_raise(rc);
		goto fail;
	}
	*out = ev;
	return 0;
fail:
	evfn_event_unref(ev);
	return -1;
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
	if (parse_target(args, "s|O:emit", &topic, &data) < 0 ||
	    check_open(self) < 0)
		return NULL;
	uint64_t seq = 0;
	int rc;
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
		if (build_event(topic, data, kw, &ev) < 0)
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
	if (build_event(name, data, kw, &ev) < 0)
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
	if (build_event(name, data, kw, &ev) < 0)
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
	  "concurrency=, queue=): handler(event, ctx) returns None or an "
	  "outcome int." },
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
	{ "stats", (PyCFunction)runtime_stats, METH_VARARGS,
	  "stats(name=None) -> dict" },
	{ "workers", (PyCFunction)runtime_workers, METH_NOARGS,
	  "Number of worker threads alive." },
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
