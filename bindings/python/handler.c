/* SPDX-License-Identifier: MIT */
/*
 * The C handler behind every Python function: on an evfn worker thread it
 * takes the GIL, wraps the event and the context, registers the call with
 * the cancel registry, calls the Python callable and turns what it did
 * into an evfn outcome (an escaped exception becomes RETRY with its
 * traceback as the attempt's error). Also the function's userdata (a
 * strong reference to the callable, released by the userdata destructor),
 * the cancel hook that has Timeout raised in a handler the core fenced at
 * its deadline, and the per-worker hooks that keep one Python thread state
 * alive per worker thread, so a call does not create and destroy one each
 * time.
 */
#include "evfnpy.h"

struct evfnpy_fn {
	PyObject *callable;
	evfnpy_runtime *owner; /* borrowed: it owns the evfn runtime */
};

/* Per-worker warm state: the worker thread's Python thread state, created
 * by PyGILState_Ensure() and parked (GIL released) between calls. */
static int
worker_init(void *userdata, void **state)
{
	*state = NULL;
	if (evfnpy_finalizing())
		return 0;
	(void)PyGILState_Ensure();
	*state = PyEval_SaveThread();
	return 0;
}

static void
worker_fini(void *userdata, void *state)
{
	/* During finalization CPython ends threads that take the GIL; the
	 * thread state is reclaimed with the interpreter instead. */
	if (!state || evfnpy_finalizing())
		return;
	PyEval_RestoreThread(state);
	PyGILState_Release(PyGILState_UNLOCKED);
}

static void
fn_free(void *userdata)
{
	struct evfnpy_fn *f = userdata;
	if (!evfnpy_finalizing()) {
		PyGILState_STATE g = PyGILState_Ensure();
		Py_DECREF(f->callable);
		PyGILState_Release(g);
	}
	PyMem_RawFree(f);
}

/* Sets the attempt's error to the formatted traceback of the pending
 * exception, and clears it. */
static void
error_from_exception(evfn_ctx *ctx)
{
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (tb && value)
		PyException_SetTraceback(value, tb);
	PyObject *text = NULL;
	PyObject *mod = PyImport_ImportModule("traceback");
	if (mod && value) {
		PyObject *lines = PyObject_CallMethod(mod, "format_exception",
		                                      "O", value);
		if (lines) {
			PyObject *empty = PyUnicode_FromString("");
			if (empty)
				text = PyUnicode_Join(empty, lines);
			Py_XDECREF(empty);
			Py_DECREF(lines);
		}
	}
	Py_XDECREF(mod);
	if (!text && value) {
		PyErr_Clear();
		text = PyObject_Str(value);
	}
	const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
	evfn_ctx_set_error(ctx, msg ? msg : "Python exception");
	PyErr_Clear();
	Py_XDECREF(text);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
}

/* The outcome of one call: res is what the callable returned (NULL if it
 * raised), timed_out whether the core cancelled it meanwhile. A handler past
 * its deadline ends as RETRY "Timeout" whatever it did, as the core counts
 * a late return. */
static int
outcome_of(evfn_ctx *ctx, PyObject *res, bool timed_out)
{
	PyObject *timeout = evfnpy_timeout_class();
	if (timed_out || (!res && timeout && PyErr_ExceptionMatches(timeout))) {
		PyErr_Clear();
		evfn_ctx_set_error(ctx, "Timeout");
		return EVFN_RETRY;
	}
	if (!res) {
		error_from_exception(ctx);
		return EVFN_RETRY;
	}
	if (res == Py_None)
		return EVFN_OK;
	long v = PyLong_Check(res) ? PyLong_AsLong(res) : -1;
	if (v == EVFN_OK || v == EVFN_RETRY || v == EVFN_FAIL)
		return (int)v;
	PyErr_Clear();
	evfn_ctx_set_error(ctx, "handler returned something other than an "
	                        "outcome");
	return EVFN_FAIL;
}

static int
call(struct evfnpy_fn *f, evfn_ctx *ctx, const evfn_event *ev)
{
	struct evfnpy_running running = { 0 };
	PyObject *res = NULL;
	bool timed_out = false;
	PyObject *e = evfnpy_event_wrap(ev);
	PyObject *c = e ? evfnpy_context_wrap(ctx) : NULL;
	if (c) {
		evfnpy_cancels_arm(&f->owner->cancels, &running, ctx);
		res = PyObject_CallFunctionObjArgs(f->callable, e, c, NULL);
		/* Disarm before anything else runs Python code (a __del__
		 * could otherwise receive this handler's Timeout). */
		timed_out = evfnpy_cancels_disarm(&f->owner->cancels,
		                                  &running);
		evfnpy_context_invalidate(c);
	}
	int outcome = outcome_of(ctx, res, timed_out);
	Py_XDECREF(res);
	Py_XDECREF(c);
	Py_XDECREF(e);
	return outcome;
}

static int
handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	if (evfnpy_finalizing()) {
		evfn_ctx_set_error(ctx, "the Python interpreter is exiting");
		return EVFN_RETRY;
	}
	PyGILState_STATE g = PyGILState_Ensure();
	int outcome = call(userdata, ctx, ev);
	PyGILState_Release(g);
	return outcome;
}

/* The core fenced an attempt (its deadline passed) while the handler
 * runs: on the loop thread, which must not wait for the GIL, so the
 * raising is left to the completion thread. */
static void
on_cancel(evfn_ctx *ctx, void *userdata)
{
	struct evfnpy_fn *f = userdata;
	if (evfnpy_cancels_request(&f->owner->cancels, ctx))
		evfnpy_completer_cancel(&f->owner->comp);
}

int
evfnpy_register(evfnpy_runtime *self, const char *name, PyObject *callable,
                evfn_fn_options *o)
{
	struct evfnpy_fn *f = PyMem_RawMalloc(sizeof(*f));
	if (!f) {
		PyErr_NoMemory();
		return -1;
	}
	Py_INCREF(callable);
	f->callable = callable;
	f->owner = self;
	int rc = evfn_fn_options_set_worker_hooks(o, worker_init, worker_fini);
	if (rc == 0)
		rc = evfn_fn_options_set_userdata_free(o, fn_free);
	if (rc == 0)
		rc = evfn_fn_options_set_cancel_hook(o, on_cancel);
	if (rc == 0)
		rc = evfn_register(self->rt, name, handler, f, o, NULL);
	if (rc < 0) {
		/* evfn does not run the destructor on failure. */
		Py_DECREF(callable);
		PyMem_RawFree(f);
		evfnpy_raise(rc);
		return -1;
	}
	return 0;
}
