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
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	self->registry = PyDict_New();
	self->condition = PyObject_CallNoArgs(evfnpy_condition_class());
	if (!self->registry || !self->condition) {
		Py_DECREF(self);
		return NULL;
	}
	if (evfnpy_cancels_init(&self->cancels) < 0) {
		Py_DECREF(self);
		return PyErr_NoMemory();
	}
	if (evfnpy_completer_init(&self->comp, &self->cancels, self->registry,
	                          self->condition) < 0) {
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

/* workers: None (evfn's default), an int n (n, n) or a pair (min, max);
 * 0, or -1 with an error naming the option. */
static int
set_workers(evfn_rt_options *o, PyObject *workers)
{
	int min, max;
	PyObject *pair = NULL;
	if (PyIndex_Check(workers)) {
		if (evfnpy_opt_int(workers, "workers", &min) < 0)
			return -1;
		max = min;
	} else {
		pair = PySequence_Check(workers) && !PyUnicode_Check(workers)
		               ? PySequence_Tuple(workers)
		               : NULL;
		if (!pair || PyTuple_GET_SIZE(pair) != 2) {
			Py_XDECREF(pair);
			PyErr_Clear();
			PyErr_Format(PyExc_TypeError,
			             "workers must be an int or a (min, max) "
			             "pair, not %.100R",
			             workers);
			return -1;
		}
		if (evfnpy_opt_int(PyTuple_GET_ITEM(pair, 0), "workers",
		                   &min) < 0 ||
		    evfnpy_opt_int(PyTuple_GET_ITEM(pair, 1), "workers",
		                   &max) < 0) {
			Py_DECREF(pair);
			return -1;
		}
		Py_DECREF(pair);
	}
	int rc = evfn_rt_options_set_workers(o, min, max);
	if (rc < 0) {
		evfnpy_raise_option(rc, "workers", workers);
		return -1;
	}
	return 0;
}

/* The runtime options of Runtime(...) applied to o: None leaves evfn's
 * default, anything else goes to evfn to be checked (so workers=-1 is an
 * error, not the default). 0, or -1 with an error naming the option. */
/* journal_mode: "durable" or "fast"; -1 for anything else. */
static int
journal_mode_of(const char *mode)
{
	if (!mode || strcmp(mode, "durable") == 0)
		return EVFN_JOURNAL_DURABLE;
	return strcmp(mode, "fast") == 0 ? EVFN_JOURNAL_FAST : -1;
}

static int
apply_rt_options(evfnpy_runtime *self, evfn_rt_options *o, PyObject *workers,
                 PyObject *idle, const char *source, PyObject *dl_obj,
                 PyObject *hops_obj, PyObject *on_record,
                 const char *journal, const char *journal_mode)
{
	int64_t idle_ms = 0, dl_capacity = 0;
	int max_hops = 0, rc = 0;
	const char *bad = NULL;
	PyObject *bad_value = NULL;
	if ((workers != Py_None && set_workers(o, workers) < 0) ||
	    (idle != Py_None &&
	     evfnpy_seconds_to_ms(idle, "idle_timeout", &idle_ms) < 0) ||
	    (dl_obj != Py_None &&
	     evfnpy_opt_int64(dl_obj, "dead_letter_capacity", &dl_capacity) <
	             0) ||
	    (hops_obj != Py_None &&
	     evfnpy_opt_int(hops_obj, "max_hops", &max_hops) < 0))
		return -1;
	if (idle != Py_None &&
	    (rc = evfn_rt_options_set_idle_timeout_ms(o, idle_ms)) < 0)
		bad = "idle_timeout", bad_value = idle;
	else if (source && (rc = evfn_rt_options_set_source(o, source)) < 0)
		bad = "source";
	else if (dl_obj != Py_None &&
	         (rc = evfn_rt_options_set_dead_letter_capacity(
			  o, dl_capacity)) < 0)
		bad = "dead_letter_capacity", bad_value = dl_obj;
	else if (hops_obj != Py_None &&
	         (rc = evfn_rt_options_set_max_hops(o, max_hops)) < 0)
		bad = "max_hops", bad_value = hops_obj;
	else if (on_record != Py_None &&
	         (rc = evfn_rt_options_set_event_log(
			  o, evfnpy_completer_record, &self->comp)) < 0)
		bad = "on_record";
	else if (journal_mode_of(journal_mode) < 0)
		rc = EVFN_EINVAL, bad = "journal_mode";
	else if (journal &&
	         (rc = evfn_rt_options_set_journal(
			  o, journal,
			  (evfn_journal_mode)journal_mode_of(journal_mode))) < 0)
		bad = "journal";
	if (rc < 0) {
		evfnpy_raise_option(rc, bad, bad_value);
		return -1;
	}
	return 0;
}

static int
runtime_init(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "workers", "idle_timeout", "source",
		                  "dead_letter_capacity", "max_hops",
		                  "on_record", "journal", "journal_mode",
		                  NULL };
	PyObject *workers = Py_None, *idle = Py_None, *on_record = Py_None;
	PyObject *dl_obj = Py_None, *hops_obj = Py_None;
	const char *source = NULL, *journal = NULL, *journal_mode = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOzOOOzz:Runtime", kwlist,
	                                 &workers, &idle, &source, &dl_obj,
	                                 &hops_obj, &on_record, &journal,
	                                 &journal_mode))
		return -1;
	if (on_record != Py_None && !PyCallable_Check(on_record)) {
		PyErr_SetString(PyExc_TypeError, "on_record must be callable");
		return -1;
	}
	if (self->rt) {
		PyErr_SetString(PyExc_TypeError, "Runtime already initialized");
		return -1;
	}
	evfn_rt_options *o;
	int rc = evfn_rt_options_new(&o);
	if (rc < 0) {
		evfnpy_raise(rc);
		return -1;
	}
	if (apply_rt_options(self, o, workers, idle, source, dl_obj, hops_obj,
	                     on_record, journal, journal_mode) < 0) {
		evfn_rt_options_free(o);
		return -1;
	}
	rc = evfn_rt_new(&self->rt, o);
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

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* evfn_rt_free() refuses (EBUSY) while a handler that was fenced at
 * its deadline still runs; drain does not wait for those. The watchdog
 * raises Timeout in such a Python handler, so it usually returns soon:
 * poll until the close's deadline, then give up and report EBUSY. There
 * is no call to wait for stuck handlers, hence the polling. */
static int
free_when_quiet(evfn_rt *rt, int64_t until_ms)
{
	struct timespec step = { 0, 5 * 1000 * 1000 };
	int rc;
	while ((rc = evfn_rt_free(rt)) == EVFN_EBUSY &&
	       now_ms() < until_ms)
		nanosleep(&step, NULL);
	return rc;
}

/* Frees the C runtime; the GIL is released while workers are joined (they
 * may need it to finish). grace_ms bounds the whole wait for work in
 * flight, drain included; a handler still running after it leaves the
 * runtime open (EBUSY). Returns 0, or -1 with an exception set. */
static int
close_runtime(evfnpy_runtime *self, int64_t grace_ms)
{
	evfn_rt *rt = self->rt;
	if (!rt)
		return 0;
	int64_t until = now_ms() + (grace_ms > 0 ? grace_ms : 0);
	/* Triggers and servers first: evfn_rt_free() refuses while
	 * they live, and they would feed a draining runtime. Freeing them
	 * waits only for the loop thread, which never takes the GIL. */
	close_attached(self);
	/* Taken out first: other threads now see a closed runtime. */
	self->rt = NULL;
	bool drain = self->started && !self->drained;
	int rc = 0;
	Py_BEGIN_ALLOW_THREADS
	if (drain)
		(void)evfn_rt_drain(rt, grace_ms, on_handback, self);
	pthread_mutex_lock(&self->busy_mu);
	while (self->busy > 0)
		pthread_cond_wait(&self->busy_cond, &self->busy_mu);
	pthread_mutex_unlock(&self->busy_mu);
	rc = free_when_quiet(rt, until);
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
		/* Never started when evfn_rt_new() failed. */
		evfnpy_completer_stop(&self->comp);
		Py_CLEAR(self->comp.on_record);
		evfnpy_cancels_destroy(&self->cancels);
		evfnpy_completer_destroy(&self->comp);
		pthread_cond_destroy(&self->busy_cond);
		pthread_mutex_destroy(&self->busy_mu);
	}
	Py_XDECREF(self->handed_back);
	Py_XDECREF(self->attached);
	Py_XDECREF(self->registry);
	Py_XDECREF(self->condition);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
set_idempotency_ms(evfn_fn_options *o, int64_t ms)
{
	return evfn_fn_options_set_idempotency(o, ms, NULL);
}

/* The numeric options of register(), in the order of its arguments: an
 * int, a 64-bit count, or seconds handed to evfn in milliseconds. */
enum option_kind { OPTION_INT, OPTION_INT64, OPTION_SECONDS };

struct fn_option {
	const char *name;
	enum option_kind kind;
	int (*set_int)(evfn_fn_options *, int);
	int (*set_int64)(evfn_fn_options *, int64_t);
};

static const struct fn_option fn_options[] = {
	{ "timeout", OPTION_SECONDS, NULL, evfn_fn_options_set_timeout_ms },
	{ "attempts", OPTION_INT, evfn_fn_options_set_attempts, NULL },
	{ "max_age", OPTION_SECONDS, NULL, evfn_fn_options_set_max_age_ms },
	{ "concurrency", OPTION_INT, evfn_fn_options_set_concurrency, NULL },
	{ "queue", OPTION_INT64, NULL, evfn_fn_options_set_queue_capacity },
	{ "idempotency", OPTION_SECONDS, NULL, set_idempotency_ms },
	{ "max_stuck", OPTION_INT, evfn_fn_options_set_max_stuck, NULL },
};

#define N_FN_OPTIONS (sizeof(fn_options) / sizeof(fn_options[0]))

/* Hands option v (None: left out) to its setter: 0, or -1 with an error
 * naming it. */
static int
apply_option(evfn_fn_options *o, const struct fn_option *opt, PyObject *v)
{
	int n;
	int64_t n64;
	if (v == Py_None)
		return 0;
	switch (opt->kind) {
	case OPTION_INT:
		if (evfnpy_opt_int(v, opt->name, &n) < 0)
			return -1;
		return evfnpy_option_result(opt->set_int(o, n), opt->name, v);
	case OPTION_INT64:
		if (evfnpy_opt_int64(v, opt->name, &n64) < 0)
			return -1;
		break;
	case OPTION_SECONDS:
		if (evfnpy_seconds_to_ms(v, opt->name, &n64) < 0)
			return -1;
		break;
	}
	return evfnpy_option_result(opt->set_int64(o, n64), opt->name, v);
}

/* backoff: (kind, base seconds, multiplier, cap seconds, jitter), as
 * evfn.Backoff gives it. */
static int
set_backoff(evfn_fn_options *o, PyObject *backoff)
{
	int kind, jitter;
	PyObject *base, *mult_obj, *cap;
	int64_t base_ms, cap_ms;
	double mult;
	if (backoff == Py_None)
		return 0;
	if (!PyArg_ParseTuple(backoff, "iOOOi:backoff", &kind, &base, &mult_obj,
	                      &cap, &jitter) ||
	    evfnpy_seconds_to_ms(base, "backoff.base", &base_ms) < 0 ||
	    evfnpy_opt_double(mult_obj, "backoff.multiplier", &mult) < 0 ||
	    evfnpy_seconds_to_ms(cap, "backoff.cap", &cap_ms) < 0)
		return -1;
	return evfnpy_option_result(
		evfn_fn_options_set_backoff(o, (evfn_backoff)kind, base_ms,
		                            mult, cap_ms, (evfn_jitter)jitter),
		"backoff", backoff);
}

static int
set_destinations(evfn_fn_options *o, const char *on_success,
                 const char *on_failure)
{
	if (!on_success && !on_failure)
		return 0;
	return evfnpy_option_result(
		evfn_fn_options_set_destinations(o, on_success, on_failure),
		"on_success/on_failure", NULL);
}

/* call: (with_ctx, batch, retry_on, fail_on, aloop) as evfn/__init__.py
 * works it out: how the handler is called and its exceptions judged. */
static int
parse_call_spec(PyObject *call, struct evfnpy_call_spec *spec)
{
	int with_ctx = 1, batch = 0;
	PyObject *retry_on = Py_None, *fail_on = Py_None, *aloop = Py_None;
	if (call != Py_None &&
	    !PyArg_ParseTuple(call, "ppOOO:call", &with_ctx, &batch, &retry_on,
	                      &fail_on, &aloop))
		return -1;
	spec->with_ctx = with_ctx;
	spec->batch = batch;
	spec->retry_on = retry_on == Py_None ? NULL : retry_on;
	spec->fail_on = fail_on == Py_None ? NULL : fail_on;
	spec->aloop = aloop;
	return 0;
}

static PyObject *
runtime_register(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name", "handler", "timeout", "attempts",
		                  "backoff", "max_age", "concurrency",
		                  "queue", "on_success", "on_failure",
		                  "idempotency", "max_stuck", "batch",
		                  "rate_limit", "circuit_breaker", "call", NULL };
	const char *name, *on_success = NULL, *on_failure = NULL;
	PyObject *callable, *backoff = Py_None, *call = Py_None;
	PyObject *batch = Py_None, *rate = Py_None, *breaker = Py_None;
	/* timeout, attempts, max_age, concurrency, queue, idempotency,
	 * max_stuck: in the order of fn_options. */
	PyObject *v[N_FN_OPTIONS];
	for (size_t i = 0; i < N_FN_OPTIONS; i++)
		v[i] = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|OOOOOOzzOOOOOO:register",
	                                 kwlist, &name, &callable, &v[0],
	                                 &v[1], &backoff, &v[2], &v[3], &v[4],
	                                 &on_success, &on_failure, &v[5],
	                                 &v[6], &batch, &rate, &breaker,
	                                 &call))
		return NULL;
	if (check_open(self) < 0)
		return NULL;
	if (!PyCallable_Check(callable)) {
		PyErr_SetString(PyExc_TypeError, "handler must be callable");
		return NULL;
	}
	struct evfnpy_call_spec spec;
	if (parse_call_spec(call, &spec) < 0)
		return NULL;
	evfn_fn_options *o;
	int rc = evfn_fn_options_new(&o);
	if (rc < 0)
		return evfnpy_raise(rc);
	bool ok = set_backoff(o, backoff) == 0 &&
	          set_destinations(o, on_success, on_failure) == 0 &&
	          evfnpy_flow_options(o, batch, rate, breaker) == 0;
	for (size_t i = 0; ok && i < N_FN_OPTIONS; i++)
		ok = apply_option(o, &fn_options[i], v[i]) == 0;
	if (!ok) {
		evfn_fn_options_free(o);
		return NULL;
	}
	rc = evfnpy_register(self, name, callable, &spec, o);
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
	int rc = evfn_rt_start(self->rt);
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
	int64_t grace_ms;
	if (evfnpy_seconds_to_ms(arg, "grace", &grace_ms) < 0 ||
	    check_open(self) < 0)
		return NULL;
	if (grace_ms < 0)
		return evfnpy_raise_option(EVFN_EINVAL, "grace", arg);
	evfn_rt *rt = self->rt;
	int rc;
	busy_enter(self);
	Py_BEGIN_ALLOW_THREADS
	rc = evfn_rt_drain(rt, grace_ms, on_handback, self);
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
	PyObject *grace = NULL;
	int64_t grace_ms = 5000;
	if (!PyArg_ParseTuple(args, "|O:close", &grace) ||
	    (grace && evfnpy_seconds_to_ms(grace, "grace", &grace_ms) < 0))
		return NULL;
	if (close_runtime(self, grace_ms) < 0)
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

/* emit_many(items) -> range of seqs: items an iterable of Events and
 * (topic, data) pairs, admitted all or nothing (evfn_publish_batch()). */
static PyObject *
runtime_emit_many(evfnpy_runtime *self, PyObject *items)
{
	if (check_open(self) < 0)
		return NULL;
	PyObject *seq = PySequence_Fast(items, "emit_many(items): items must "
	                                       "be iterable");
	if (!seq)
		return NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	evfn_event **evs = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*evs));
	bool *built = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*built));
	PyObject *ret = NULL;
	if (!evs || !built) {
		PyErr_NoMemory();
		goto out;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
		const char *topic;
		PyObject *data = Py_None;
		if ((evs[i] = evfnpy_event_get(item)))
			continue;
		if (!PyTuple_Check(item)) {
			PyErr_Format(PyExc_TypeError,
			             "emit_many(items): item %zd is not an Event "
			             "or a (topic, data) tuple", i);
			goto out;
		}
		if (!PyArg_ParseTuple(item, "s|O:emit_many", &topic, &data))
			goto out;
		if (evfnpy_event_build(topic, data, NULL, &evs[i]) < 0)
			goto out;
		built[i] = true;
	}
	uint64_t first = 0;
	int rc = evfn_publish_batch(self->rt, NULL, evs, (size_t)n, &first);
	if (rc < 0)
		evfnpy_raise(rc);
	else
		ret = PyObject_CallFunction((PyObject *)&PyRange_Type, "KK",
		                            (unsigned long long)first,
		                            (unsigned long long)(first + (uint64_t)n));
out:
	for (Py_ssize_t i = 0; evs && built && i < n; i++)
		if (built[i])
			evfn_event_unref(evs[i]);
	PyMem_Free(evs);
	PyMem_Free(built);
	Py_DECREF(seq);
	return ret;
}

/* What a synchronous invoke waits for, on the heap: the result callback
 * (on the loop thread, without the GIL) fills it, and the caller may have
 * stopped waiting by then (Ctrl-C, its timeout, its handler's deadline),
 * so both hold a reference and the last one frees it. */
struct sync_wait {
	atomic_int refs;
	struct evfnpy_wake wake; /* posted by the result, or the deadline */
	atomic_bool done;
	int code;
	unsigned attempts;
	char *resp;
	size_t resp_len;
	char *error;
};

static void
sync_wait_unref(struct sync_wait *w)
{
	if (atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	sem_destroy(&w->wake.sem);
	free(w->resp);
	free(w->error);
	free(w);
}

static void
on_sync_result(const evfn_result *res, void *arg)
{
	struct sync_wait *w = arg;
	size_t len = 0;
	const void *data = evfn_result_data(res, &len);
	const char *error = evfn_result_error(res);
	w->code = evfn_result_code(res);
	w->attempts = evfn_result_attempts(res);
	w->resp = evfnpy_dup(data, len);
	w->resp_len = w->resp ? len : 0;
	w->error = error ? evfnpy_dup(error, strlen(error)) : NULL;
	atomic_store(&w->done, true);
	sem_post(&w->wake.sem);
	sync_wait_unref(w);
}

/* Why a synchronous invoke stopped waiting. */
enum wait_end { WAIT_DONE, WAIT_TIMEOUT, WAIT_DEADLINE, WAIT_SIGNAL };

/* Waits with the GIL released for the result, timeout_s seconds at most
 * (< 0: no limit). A signal interrupts the wait (sem_wait fails with
 * EINTR): Python's handlers run, and one that raises (Ctrl-C's
 * KeyboardInterrupt) ends it. */
static enum wait_end
sync_wait_for(struct sync_wait *w, double timeout_s)
{
	struct timespec until;
	if (timeout_s >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		double whole = (double)(time_t)timeout_s;
		until.tv_sec += (time_t)timeout_s;
		until.tv_nsec += (long)((timeout_s - whole) * 1e9);
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
	}
	for (;;) {
		int r, err;
		Py_BEGIN_ALLOW_THREADS
		r = timeout_s < 0 ? sem_wait(&w->wake.sem)
		                  : sem_clockwait(&w->wake.sem, CLOCK_MONOTONIC,
		                                  &until);
		err = errno;
		Py_END_ALLOW_THREADS
		if (atomic_load(&w->done))
			return WAIT_DONE;
		if (atomic_load(&w->wake.interrupted))
			return WAIT_DEADLINE;
		if (r < 0 && err == ETIMEDOUT)
			return WAIT_TIMEOUT;
		if (r < 0 && err == EINTR && PyErr_CheckSignals() < 0)
			return WAIT_SIGNAL;
	}
}

/* The invoke stopped waiting before the outcome: the event is cancelled
 * (nobody will get its result), and the exception for the caller is
 * raised (one a signal handler raised is already set). */
static void
abandon(evfnpy_runtime *self, evfn_event *ev, enum wait_end why,
        PyObject *timeout)
{
	if (self->rt) {
		PyObject *type, *value, *tb;
		PyErr_Fetch(&type, &value, &tb);
		(void)evfn_cancel(self->rt, evfn_event_type(ev),
		                  evfn_event_id(ev));
		PyErr_Restore(type, value, tb);
	}
	if (why == WAIT_TIMEOUT)
		evfnpy_raise_option(EVFN_ETIMEDOUT, "timeout", timeout);
	else if (why == WAIT_DEADLINE)
		PyErr_SetNone(evfnpy_timeout_class());
}

/* invoke(name, data=None, *, timeout=None, **attributes) -> bytes: waits
 * (without the GIL) for the event's final outcome. */
static PyObject *
runtime_invoke(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	const char *name;
	PyObject *data, *timeout = kw ? PyDict_GetItemString(kw, "timeout")
	                              : NULL;
	double timeout_s = -1;
	if (parse_target(args, "s|O:invoke", &name, &data) < 0 ||
	    check_open(self) < 0)
		return NULL;
	if (timeout) {
		Py_INCREF(timeout);
		if (PyDict_DelItemString(kw, "timeout") < 0 ||
		    (timeout != Py_None &&
		     evfnpy_opt_double(timeout, "timeout", &timeout_s) < 0)) {
			Py_DECREF(timeout);
			return NULL;
		}
		if (timeout != Py_None && !(timeout_s >= 0)) {
			evfnpy_raise_option(EVFN_ERANGE, "timeout", timeout);
			Py_DECREF(timeout);
			return NULL;
		}
	}
	PyObject *result = NULL, *fut = NULL;
	evfn_event *ev = NULL;
	struct sync_wait *w = NULL;
	if (!self->started) {
		evfnpy_raise(EVFN_ENOTRUNNING);
		goto out;
	}
	if (evfnpy_event_build(name, data, kw, &ev) < 0)
		goto out;
	/* A future nobody else sees: the handler marks it running and
	 * leaves its exception there (the __cause__ of the error). */
	fut = evfnpy_future_new(self->condition);
	w = calloc(1, sizeof(*w));
	if (!fut || !w || sem_init(&w->wake.sem, 0, 0) < 0) {
		free(w);
		w = NULL;
		if (!PyErr_Occurred())
			PyErr_NoMemory();
		goto out;
	}
	atomic_init(&w->refs, 2);
	if (evfnpy_registry_add(self->registry, ev, fut) < 0) {
		w->refs = 1;
		goto out;
	}
	int rc = evfn_submit(self->rt, name, ev, on_sync_result, w, NULL);
	if (rc < 0) {
		w->refs = 1; /* the callback is never called */
		evfnpy_registry_remove(self->registry, ev);
		evfnpy_raise(rc);
		goto out;
	}
	/* Inside a handler the wait ends at that handler's deadline too:
	 * with the pool at its maximum the event might otherwise wait for
	 * this very worker. */
	enum wait_end why = evfnpy_cancels_watch(&self->cancels, &w->wake)
	                            ? WAIT_DEADLINE
	                            : sync_wait_for(w, timeout_s);
	evfnpy_cancels_unwatch(&self->cancels, &w->wake);
	evfnpy_registry_remove(self->registry, ev);
	if (why != WAIT_DONE)
		abandon(self, ev, why, timeout);
	else if (w->code != 0)
		evfnpy_raise_outcome(w->code, w->error, w->attempts,
		                     evfnpy_future_cause(fut));
	else if (!w->resp)
		PyErr_NoMemory();
	else
		result = PyBytes_FromStringAndSize(w->resp,
		                                   (Py_ssize_t)w->resp_len);
out:
	if (w)
		sync_wait_unref(w);
	evfn_event_unref(ev);
	Py_XDECREF(fut);
	Py_XDECREF(timeout);
	return result;
}

/* submit(name, data=None, **attributes) -> Future: the Future is
 * resolved by the completion thread with the response bytes or an
 * InvocationError; its seq is the event's sequence number. */
static PyObject *
runtime_submit(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	const char *name;
	PyObject *data;
	if (parse_target(args, "s|O:submit", &name, &data) < 0 ||
	    check_open(self) < 0)
		return NULL;
	evfn_event *ev;
	if (evfnpy_event_build(name, data, kw, &ev) < 0)
		return NULL;
	uint64_t seq = 0;
	int rc = evfnpy_completer_start(&self->comp);
	PyObject *fut = rc == 0 ? evfnpy_future_new(self->condition) : NULL;
	struct evfnpy_done *d =
		fut ? evfnpy_done_new(&self->comp, fut, ev) : NULL;
	if (!d) {
		evfn_event_unref(ev);
		Py_XDECREF(fut);
		if (rc < 0) {
			errno = -rc;
			return PyErr_SetFromErrno(PyExc_OSError);
		}
		return PyErr_Occurred() ? NULL : PyErr_NoMemory();
	}
	if (evfnpy_registry_add(self->registry, ev, fut) < 0) {
		evfnpy_done_discard(d);
		evfn_event_unref(ev);
		Py_DECREF(fut);
		return NULL;
	}
	evfnpy_future_bind(fut, d);
	rc = evfn_submit(self->rt, name, ev, evfnpy_completer_result, d, &seq);
	if (rc < 0) {
		/* The callback is never called on failure. */
		evfnpy_registry_remove(self->registry, ev);
		evfnpy_future_bind(fut, NULL);
		evfnpy_done_discard(d);
		evfn_event_unref(ev);
		Py_DECREF(fut);
		return evfnpy_raise(rc);
	}
	evfn_event_unref(ev);
	PyObject *seq_obj = PyLong_FromUnsignedLongLong(seq);
	if (!seq_obj) {
		Py_DECREF(fut);
		return NULL;
	}
	evfnpy_future_set_seq(fut, seq_obj);
	Py_DECREF(seq_obj);
	return fut;
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
	const char *names[EVFN_STAT_COUNT];
	uint64_t values[EVFN_STAT_COUNT];
	for (int i = 0; i < EVFN_STAT_COUNT; i++) {
		names[i] = evfn_stat_name((evfn_stat)i);
		values[i] = evfn_stats_value(s, (evfn_stat)i);
	}
	evfn_stats_free(s);
	return evfnpy_counters(names, values, EVFN_STAT_COUNT);
}

static PyObject *
runtime_workers(evfnpy_runtime *self, PyObject *unused)
{
	if (check_open(self) < 0)
		return NULL;
	return PyLong_FromLong(evfn_rt_workers(self->rt));
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

/* The runtime's own methods; the files above runtime.c add theirs
 * through evfnpy_runtime_ready(). */
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
	{ "emit_many", (PyCFunction)runtime_emit_many, METH_O,
	  "emit_many(items) -> range of seqs: Events and (topic, data) "
	  "pairs, all or none" },
	{ "invoke", (PyCFunction)(void (*)(void))runtime_invoke,
	  METH_VARARGS | METH_KEYWORDS,
	  "invoke(name, data=None, *, timeout=None, **attributes) -> bytes" },
	{ "submit", (PyCFunction)(void (*)(void))runtime_submit,
	  METH_VARARGS | METH_KEYWORDS,
	  "submit(name, data=None, **attributes) -> Future" },
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

/* runtime_methods and the methods of the files above, NULL terminated:
 * room for all of them. */
static PyMethodDef all_methods[64];

int
evfnpy_runtime_ready(const PyMethodDef *const *more)
{
	if (evfnpy_runtime_type.tp_flags & Py_TPFLAGS_READY)
		return 0;
	size_t n = 0, cap = sizeof(all_methods) / sizeof(all_methods[0]);
	for (const PyMethodDef *m = runtime_methods; m->ml_name; m++)
		all_methods[n++] = *m;
	for (; *more; more++)
		for (const PyMethodDef *m = *more; m->ml_name; m++) {
			if (n + 1 >= cap) {
				PyErr_SetString(PyExc_SystemError,
				                "evfn: too many Runtime methods");
				return -1;
			}
			all_methods[n++] = *m;
		}
	all_methods[n] = (PyMethodDef){ NULL, NULL, 0, NULL };
	evfnpy_runtime_type.tp_methods = all_methods;
	return PyType_Ready(&evfnpy_runtime_type);
}
