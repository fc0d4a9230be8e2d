/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.Future: what invoke_async returns, a subclass of
 * concurrent.futures.Future made in C so that a submission costs one
 * small object instead of a Python Future with its own Condition, RLock
 * and lists. Its fields are those concurrent.futures.Future keeps
 * (_state, _result, _exception, _condition, _waiters, _done_callbacks),
 * so concurrent.futures.wait(), as_completed() and asyncio.wrap_future()
 * work on it unchanged, and the inherited Python methods still do; the
 * common ones are reimplemented here. All futures of a runtime share
 * one Condition, which the completion thread holds once per batch while
 * it resolves them; _waiters and _done_callbacks are made when first
 * used.
 *
 * This file also keeps the runtime's registry of pending submissions
 * (event -> Future), through which a handler marks the future running,
 * declines an event whose future was cancelled, and leaves the exception
 * it raised for the caller (__cause__).
 */
#include "evfnpy.h"

#include <stddef.h>
#include <string.h>
#include <time.h>

#include <structmember.h>

/* What a Future holds beyond concurrent.futures.Future's own layout,
 * which ends at future_offset (known only at run time). The PyObject
 * fields are T_OBJECT_EX members, so the inherited deallocator, traverse
 * and clear of a class with __slots__ handle them. */
struct fields {
	PyObject *state;
	PyObject *result;
	PyObject *exception;
	PyObject *condition;
	PyObject *waiters;   /* a list, or NULL until asked for */
	PyObject *callbacks; /* a list, or NULL until asked for */
	PyObject *seq;
	PyObject *cause;     /* the exception the last attempt raised */
	/* Not a member: the submission while it is pending (borrowed; the
	 * record holds this future), NULL once resolved. */
	struct evfnpy_done *rec;
};

#define N_MEMBERS 8

static PyTypeObject *future_type;
static Py_ssize_t future_offset;
/* concurrent.futures' state strings and exception classes. */
static PyObject *s_pending, *s_running, *s_cancelled, *s_notified,
	*s_finished;
static PyObject *cancelled_error, *timeout_error;
/* Cancels a pending submission's event (evfnpy_future_init()). */
static bool (*cancel_submission)(struct evfnpy_done *);

static struct fields *
F(PyObject *f)
{
	return (struct fields *)(void *)((char *)f + future_offset);
}

static bool
is_cancelled(struct fields *x)
{
	return x->state == s_cancelled || x->state == s_notified;
}

static bool
is_done(struct fields *x)
{
	return x->state == s_finished || is_cancelled(x);
}

static void
set_state(struct fields *x, PyObject *state)
{
	Py_INCREF(state);
	Py_XSETREF(x->state, state);
}

/* A lazily made list field: new reference, or NULL with an error. */
static PyObject *
lazy_list(PyObject **slot)
{
	if (!*slot && !(*slot = PyList_New(0)))
		return NULL;
	Py_INCREF(*slot);
	return *slot;
}

PyObject *
evfnpy_future_new(PyObject *condition)
{
	PyObject *f = future_type->tp_alloc(future_type, 0);
	if (!f)
		return NULL;
	struct fields *x = F(f);
	set_state(x, s_pending);
	Py_INCREF(Py_None);
	x->result = Py_None;
	Py_INCREF(Py_None);
	x->exception = Py_None;
	Py_INCREF(condition);
	x->condition = condition;
	Py_INCREF(Py_None);
	x->seq = Py_None;
	x->rec = NULL;
	return f;
}

bool
evfnpy_future_check(PyObject *obj)
{
	return future_type && PyObject_TypeCheck(obj, future_type);
}

void
evfnpy_future_set_seq(PyObject *f, PyObject *seq)
{
	Py_INCREF(seq);
	Py_XSETREF(F(f)->seq, seq);
}

void
evfnpy_future_bind(PyObject *f, struct evfnpy_done *rec)
{
	F(f)->rec = rec;
}

PyObject *
evfnpy_future_cause(PyObject *f)
{
	struct fields *x = F(f);
	return x->cause;
}

/* --- the registry ------------------------------------------------------ */

static PyObject *
registry_key(const evfn_event *ev)
{
	return PyLong_FromVoidPtr((void *)ev);
}

int
evfnpy_registry_add(PyObject *registry, const evfn_event *ev, PyObject *f)
{
	PyObject *k = registry_key(ev);
	int rc = k ? PyDict_SetItem(registry, k, f) : -1;
	Py_XDECREF(k);
	return rc;
}

void
evfnpy_registry_remove(PyObject *registry, const evfn_event *ev)
{
	if (PyDict_GET_SIZE(registry) == 0)
		return;
	PyObject *k = registry_key(ev);
	if (!k || PyDict_DelItem(registry, k) < 0)
		PyErr_Clear(); /* not there: nothing to do */
	Py_XDECREF(k);
}

PyObject *
evfnpy_registry_find(PyObject *registry, const evfn_event *ev)
{
	if (!registry || PyDict_GET_SIZE(registry) == 0)
		return NULL;
	PyObject *k = registry_key(ev);
	PyObject *f = k ? PyDict_GetItemWithError(registry, k) : NULL;
	Py_XDECREF(k);
	if (!f)
		PyErr_Clear();
	return f;
}

bool
evfnpy_future_start(PyObject *f)
{
	struct fields *x = F(f);
	if (is_cancelled(x))
		return false;
	if (x->state == s_pending)
		set_state(x, s_running);
	return true;
}

void
evfnpy_future_stop(PyObject *f, PyObject *cause)
{
	struct fields *x = F(f);
	if (x->state == s_running)
		set_state(x, s_pending);
	Py_XINCREF(cause);
	Py_XSETREF(x->cause, cause);
}

/* --- resolving ----------------------------------------------------------- */

/* Calls method (an interned name) of the condition with no arguments;
 * 0 or -1. */
static int
condition_call(PyObject *cond, PyObject *method)
{
	PyObject *r = PyObject_CallMethodNoArgs(cond, method);
	Py_XDECREF(r);
	return r ? 0 : -1;
}

int
evfnpy_future_lock(PyObject *cond)
{
	return condition_call(cond, evfnpy_names.acquire);
}

void
evfnpy_future_unlock(PyObject *cond, bool notify)
{
	/* notify_all() is Python code: skip it when nobody waits (the
	 * Condition's _waiters deque is empty). */
	if (notify) {
		PyObject *w = PyObject_GetAttr(cond, evfnpy_names.waiters);
		Py_ssize_t n = w ? PyObject_Length(w) : -1;
		Py_XDECREF(w);
		if (n != 0 &&
		    condition_call(cond, evfnpy_names.notify_all) < 0)
			PyErr_WriteUnraisable(cond);
		PyErr_Clear();
	}
	if (condition_call(cond, evfnpy_names.release) < 0)
		PyErr_WriteUnraisable(cond);
}

/* Tells concurrent.futures.wait()'s waiters (method add_result,
 * add_exception or add_cancelled, interned). */
static void
tell_waiters(PyObject *f, PyObject *method)
{
	PyObject *waiters = F(f)->waiters;
	if (!waiters)
		return;
	Py_INCREF(waiters);
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiters); i++) {
		PyObject *r = PyObject_CallMethodOneArg(
			PyList_GET_ITEM(waiters, i), method, f);
		if (!r)
			PyErr_WriteUnraisable(f);
		Py_XDECREF(r);
	}
	Py_DECREF(waiters);
}

bool
evfnpy_future_finish(PyObject *f, PyObject *result, PyObject *exception)
{
	struct fields *x = F(f);
	x->rec = NULL;
	if (is_done(x))
		return false; /* cancelled meanwhile: the outcome is dropped */
	if (exception) {
		Py_INCREF(exception);
		Py_XSETREF(x->exception, exception);
	} else {
		Py_INCREF(result);
		Py_XSETREF(x->result, result);
	}
	Py_CLEAR(x->cause);
	set_state(x, s_finished);
	tell_waiters(f, exception ? evfnpy_names.add_exception
	                          : evfnpy_names.add_result);
	return true;
}

void
evfnpy_future_callbacks(PyObject *f)
{
	struct fields *x = F(f);
	PyObject *cbs = x->callbacks;
	if (!cbs)
		return;
	/* Callbacks added from now on run at once (the future is done). */
	x->callbacks = NULL;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs); i++) {
		PyObject *r = PyObject_CallOneArg(PyList_GET_ITEM(cbs, i), f);
		if (!r)
			PyErr_WriteUnraisable(PyList_GET_ITEM(cbs, i));
		Py_XDECREF(r);
	}
	Py_DECREF(cbs);
}

/* --- methods ------------------------------------------------------------- */

static PyObject *
future_done(PyObject *self, PyObject *unused)
{
	return PyBool_FromLong(is_done(F(self)));
}

static PyObject *
future_cancelled(PyObject *self, PyObject *unused)
{
	return PyBool_FromLong(is_cancelled(F(self)));
}

static PyObject *
future_running(PyObject *self, PyObject *unused)
{
	return PyBool_FromLong(F(self)->state == s_running);
}

/* cancel(): a future whose event still waits (queued, delayed, behind
 * its key or waiting for a retry) is cancelled with its event
 * (evfn_cancel()); one whose attempt runs, or that is done, is not. */
static PyObject *
future_cancel(PyObject *self, PyObject *unused)
{
	struct fields *x = F(self);
	if (is_cancelled(x))
		Py_RETURN_TRUE;
	if (x->state != s_pending || !x->rec)
		Py_RETURN_FALSE;
	if (!cancel_submission(x->rec))
		Py_RETURN_FALSE;
	/* The event ends cancelled; its result, when the completion thread
	 * gets it, finds the future done and is dropped. */
	x->rec = NULL;
	if (evfnpy_future_lock(x->condition) < 0)
		return NULL;
	set_state(x, s_notified);
	tell_waiters(self, evfnpy_names.add_cancelled);
	evfnpy_future_unlock(x->condition, true);
	evfnpy_future_callbacks(self);
	Py_RETURN_TRUE;
}

static int
parse_timeout(PyObject *args, PyObject *kw, const char *name, double *secs)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *timeout = Py_None;
	char fmt[32];
	snprintf(fmt, sizeof(fmt), "|O:%s", name);
	if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &timeout))
		return -1;
	*secs = -1;
	if (timeout != Py_None) {
		*secs = PyFloat_AsDouble(timeout);
		if (*secs == -1.0 && PyErr_Occurred())
			return -1;
		if (*secs < 0)
			*secs = 0;
	}
	return 0;
}

static double
monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits (GIL released inside Condition.wait, so Ctrl-C interrupts it)
 * until the future is done or secs (< 0: no limit) have passed. 0, or -1
 * with an exception: TimeoutError, CancelledError or the one that
 * interrupted the wait. */
static int
wait_done(PyObject *self, double secs)
{
	struct fields *x = F(self);
	if (!is_done(x)) {
		double until = secs < 0 ? 0 : monotonic() + secs;
		PyObject *cond = x->condition;
		Py_INCREF(cond);
		if (evfnpy_future_lock(cond) < 0) {
			Py_DECREF(cond);
			return -1;
		}
		int rc = 0;
		/* Every future of the runtime shares the condition: a wake-up
		 * may be for another one, hence the loop. */
		while (!is_done(x)) {
			double left = until - monotonic();
			if (secs >= 0 && left <= 0)
				break;
			PyObject *t = secs < 0 ? NULL : PyFloat_FromDouble(left);
			PyObject *r = secs < 0
			                      ? PyObject_CallMethodNoArgs(
						cond, evfnpy_names.wait)
			                      : t ? PyObject_CallMethodOneArg(
						    cond, evfnpy_names.wait, t)
			                          : NULL;
			Py_XDECREF(t);
			if (!r) {
				rc = -1;
				break;
			}
			Py_DECREF(r);
		}
		PyObject *type, *value, *tb;
		PyErr_Fetch(&type, &value, &tb);
		evfnpy_future_unlock(cond, false);
		PyErr_Restore(type, value, tb);
		Py_DECREF(cond);
		if (rc < 0)
			return -1;
	}
	if (is_cancelled(x)) {
		PyErr_SetNone(cancelled_error);
		return -1;
	}
	if (!is_done(x)) {
		PyErr_SetNone(timeout_error);
		return -1;
	}
	return 0;
}

static PyObject *
future_result(PyObject *self, PyObject *args, PyObject *kw)
{
	double secs;
	if (parse_timeout(args, kw, "result", &secs) < 0 ||
	    wait_done(self, secs) < 0)
		return NULL;
	struct fields *x = F(self);
	if (x->exception != Py_None) {
		PyErr_SetObject((PyObject *)Py_TYPE(x->exception),
		                x->exception);
		return NULL;
	}
	Py_INCREF(x->result);
	return x->result;
}

static PyObject *
future_exception(PyObject *self, PyObject *args, PyObject *kw)
{
	double secs;
	if (parse_timeout(args, kw, "exception", &secs) < 0 ||
	    wait_done(self, secs) < 0)
		return NULL;
	Py_INCREF(F(self)->exception);
	return F(self)->exception;
}

static PyObject *
future_add_done_callback(PyObject *self, PyObject *fn)
{
	struct fields *x = F(self);
	/* Under the GIL with nothing in between that could release it, so
	 * the completion thread cannot finish the future half-way. */
	if (!is_done(x)) {
		PyObject *cbs = lazy_list(&x->callbacks);
		if (!cbs || PyList_Append(cbs, fn) < 0) {
			Py_XDECREF(cbs);
			return NULL;
		}
		Py_DECREF(cbs);
		Py_RETURN_NONE;
	}
	PyObject *r = PyObject_CallOneArg(fn, self);
	if (!r)
		PyErr_WriteUnraisable(fn);
	Py_XDECREF(r);
	Py_RETURN_NONE;
}

/* The list fields as concurrent.futures.Future's own code sees them
 * (_waiters, _done_callbacks): made when first asked for. The getset
 * closure is the field's offset in struct fields. */
static PyObject **
list_slot(PyObject *self, void *offset)
{
	return (PyObject **)(void *)((char *)F(self) + (size_t)offset);
}

static PyObject *
get_list(PyObject *self, void *offset)
{
	return lazy_list(list_slot(self, offset));
}

static int
set_list(PyObject *self, PyObject *v, void *offset)
{
	if (!v || !PyList_Check(v)) {
		PyErr_SetString(PyExc_TypeError, "a list is required");
		return -1;
	}
	Py_INCREF(v);
	Py_XSETREF(*list_slot(self, offset), v);
	return 0;
}

static PyMethodDef future_methods[] = {
	{ "done", future_done, METH_NOARGS,
	  "True once the event's outcome is known or the future cancelled." },
	{ "cancelled", future_cancelled, METH_NOARGS,
	  "True if cancel() cancelled it." },
	{ "running", future_running, METH_NOARGS,
	  "True while an attempt of the event runs." },
	{ "cancel", future_cancel, METH_NOARGS,
	  "Cancel the event if it still waits (queued, delayed, behind its "
	  "key, waiting for a retry): True if it was cancelled, False if an "
	  "attempt runs or it is done." },
	{ "result", (PyCFunction)(void (*)(void))future_result,
	  METH_VARARGS | METH_KEYWORDS,
	  "result(timeout=None): the response bytes, or raises the "
	  "InvocationError." },
	{ "exception", (PyCFunction)(void (*)(void))future_exception,
	  METH_VARARGS | METH_KEYWORDS,
	  "exception(timeout=None): the InvocationError, or None." },
	{ "add_done_callback", future_add_done_callback, METH_O,
	  "Call fn(future) once it is done (at once if it is), on the "
	  "runtime's completion thread." },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef future_getset[] = {
	{ "_waiters", get_list, set_list, NULL,
	  (void *)offsetof(struct fields, waiters) },
	{ "_done_callbacks", get_list, set_list, NULL,
	  (void *)offsetof(struct fields, callbacks) },
	{ NULL, NULL, NULL, NULL, NULL }
};

int
evfnpy_future_init(PyObject *mod, bool (*cancel)(struct evfnpy_done *))
{
	cancel_submission = cancel;
	PyObject *base_mod = PyImport_ImportModule("concurrent.futures._base");
	if (!base_mod)
		return -1;
	PyObject *base = PyObject_GetAttrString(base_mod, "Future");
	s_pending = PyObject_GetAttrString(base_mod, "PENDING");
	s_running = PyObject_GetAttrString(base_mod, "RUNNING");
	s_cancelled = PyObject_GetAttrString(base_mod, "CANCELLED");
	s_notified = PyObject_GetAttrString(base_mod, "CANCELLED_AND_NOTIFIED");
	s_finished = PyObject_GetAttrString(base_mod, "FINISHED");
	cancelled_error = PyObject_GetAttrString(base_mod, "CancelledError");
	timeout_error = PyObject_GetAttrString(base_mod, "TimeoutError");
	Py_DECREF(base_mod);
	if (!base || !s_pending || !s_running || !s_cancelled ||
	    !s_notified || !s_finished || !cancelled_error || !timeout_error) {
		Py_XDECREF(base);
		return -1;
	}
	/* The fields follow the base's layout, whose size only the running
	 * interpreter knows. */
	future_offset = ((PyTypeObject *)base)->tp_basicsize;
	static PyMemberDef members[N_MEMBERS + 1];
	static const struct {
		const char *name;
		size_t offset;
	} names[N_MEMBERS] = {
		{ "_state", offsetof(struct fields, state) },
		{ "_result", offsetof(struct fields, result) },
		{ "_exception", offsetof(struct fields, exception) },
		{ "_condition", offsetof(struct fields, condition) },
		{ "_evfn_waiters", offsetof(struct fields, waiters) },
		{ "_evfn_callbacks", offsetof(struct fields, callbacks) },
		{ "seq", offsetof(struct fields, seq) },
		{ "_evfn_cause", offsetof(struct fields, cause) },
	};
	for (int i = 0; i < N_MEMBERS; i++)
		members[i] = (PyMemberDef){
			(char *)names[i].name, T_OBJECT_EX,
			future_offset + (Py_ssize_t)names[i].offset, 0, NULL
		};
	PyType_Slot slots[] = {
		{ Py_tp_methods, future_methods },
		{ Py_tp_members, members },
		{ Py_tp_getset, future_getset },
		{ Py_tp_doc, "The concurrent.futures.Future of an invoke_async(): "
		             "resolved with the response bytes or an "
		             "InvocationError; seq is the event's sequence "
		             "number." },
		{ 0, NULL },
	};
	PyType_Spec spec = {
		.name = "evfn._evfn.Future",
		.basicsize = (int)(future_offset + sizeof(struct fields)),
		.flags = Py_TPFLAGS_DEFAULT,
		.slots = slots,
	};
	PyObject *bases = PyTuple_Pack(1, base);
	Py_DECREF(base);
	if (!bases)
		return -1;
	future_type = (PyTypeObject *)PyType_FromSpecWithBases(&spec, bases);
	Py_DECREF(bases);
	if (!future_type)
		return -1;
	Py_INCREF(future_type);
	if (PyModule_AddObject(mod, "Future", (PyObject *)future_type) < 0) {
		Py_DECREF(future_type);
		return -1;
	}
	return 0;
}
