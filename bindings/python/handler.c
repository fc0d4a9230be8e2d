/* SPDX-License-Identifier: MIT */
/*
 * The C handler behind every Python function: on an evfn worker thread it
 * takes the GIL, wraps the event and the context, registers the call with
 * the cancel registry, calls the Python callable (with the event, or the
 * list of a batch's events, and the context if it takes one), runs what an
 * async handler returns on the runtime's asyncio loop, and turns what
 * happened into an evfn outcome: a return value is the response (bytes,
 * str or JSON; anything else fails at once), evfn.Retry and evfn.Fail
 * choose, any other exception retries or fails by retry_on/fail_on with
 * its type, message and traceback as the attempt's error. The futures of
 * the call's events (invoke_async, invoke) see it run, and keep the
 * exception for the caller. Also the function's userdata (strong
 * references released by the userdata destructor), the cancel hook that
 * has Timeout raised in a handler the core fenced at its deadline, and
 * the per-worker hooks that keep one Python thread state alive per worker
 * thread, so a call does not create and destroy one each time.
 */
#include "evfnpy.h"

struct evfnpy_fn {
	PyObject *callable;
	struct evfnpy_call_spec spec; /* owned references */
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
spec_clear(struct evfnpy_call_spec *spec)
{
	Py_CLEAR(spec->retry_on);
	Py_CLEAR(spec->fail_on);
	Py_CLEAR(spec->aloop);
}

static void
fn_free(void *userdata)
{
	struct evfnpy_fn *f = userdata;
	if (!evfnpy_finalizing()) {
		PyGILState_STATE g = PyGILState_Ensure();
		Py_DECREF(f->callable);
		spec_clear(&f->spec);
		PyGILState_Release(g);
	}
	PyMem_RawFree(f);
}

/* Sets the attempt's error to the text of a str (invalid characters
 * escaped: the core keeps bytes, and they must be UTF-8). */
static void
set_error_str(evfn_ctx *ctx, PyObject *text)
{
	PyObject *b = text ? PyUnicode_AsEncodedString(text, "utf-8",
	                                               "backslashreplace")
	                   : NULL;
	evfn_ctx_set_error(ctx, b ? PyBytes_AS_STRING(b) : "Python exception");
	Py_XDECREF(b);
	PyErr_Clear();
}

/* Sets the attempt's error to str(exc), or to fallback when that is
 * empty (evfn.Retry("") or evfn.Fail()). */
static void
set_error_message(evfn_ctx *ctx, PyObject *exc, const char *fallback)
{
	PyObject *s = PyObject_Str(exc);
	if (s && PyUnicode_GET_LENGTH(s) > 0)
		set_error_str(ctx, s);
	else
		evfn_ctx_set_error(ctx, fallback);
	Py_XDECREF(s);
	PyErr_Clear();
}

/* Why an attempt that must stop stops: rt.cancel() asked while time was
 * left, or its deadline passed. */
static const char *
stop_reason(const evfn_ctx *ctx)
{
	return evfn_ctx_remaining_ns(ctx) > 0 ? "cancelled" : "Timeout";
}

static bool
is_instance(PyObject *exc, PyObject *classes)
{
	if (!classes)
		return false;
	int r = PyObject_IsInstance(exc, classes);
	PyErr_Clear();
	return r > 0;
}

/* The outcome of an exception exc the handler raised (timed_out: the
 * core cancelled the attempt meanwhile). */
static int
outcome_of_exception(struct evfnpy_fn *f, evfn_ctx *ctx, PyObject *exc,
                     bool timed_out)
{
	if (timed_out || is_instance(exc, evfnpy_timeout_class())) {
		evfn_ctx_set_error(ctx, stop_reason(ctx));
		return EVFN_RETRY;
	}
	if (is_instance(exc, evfnpy_retry_class())) {
		set_error_message(ctx, exc, "Retry");
		return EVFN_RETRY;
	}
	if (is_instance(exc, evfnpy_fail_class())) {
		set_error_message(ctx, exc, "Fail");
		return EVFN_FAIL;
	}
	/* Type and message first, then the traceback: the core keeps the
	 * first 1023 bytes. */
	PyObject *text = evfnpy_error_text()
	                         ? PyObject_CallOneArg(evfnpy_error_text(), exc)
	                         : NULL;
	if (text && PyUnicode_Check(text))
		set_error_str(ctx, text);
	else
		set_error_message(ctx, exc, "Python exception");
	Py_XDECREF(text);
	PyErr_Clear();
	if (is_instance(exc, f->spec.fail_on))
		return EVFN_FAIL;
	if (!f->spec.retry_on || is_instance(exc, f->spec.retry_on))
		return EVFN_RETRY;
	return EVFN_FAIL;
}

/* The outcome of a value the handler returned: None succeeds, anything
 * else is the response, which must be bytes, str or JSON-serialisable;
 * otherwise the handler is wrong, and retrying cannot fix that. */
static int
outcome_of_value(evfn_ctx *ctx, PyObject *res)
{
	if (res == Py_None)
		return EVFN_OK;
	struct evfnpy_payload p;
	if (evfnpy_payload_get(res, &p) == 0) {
		int rc = evfn_ctx_respond(ctx, p.data, p.len);
		evfnpy_payload_release(&p);
		if (rc == 0)
			return EVFN_OK;
		evfn_ctx_set_error(ctx, "out of memory for the response");
		return EVFN_RETRY;
	}
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	PyObject *why = value ? PyObject_Str(value) : NULL;
	PyErr_Clear();
	const char *hint = PyGen_Check(res) || PyAsyncGen_CheckExact(res)
	                           ? " (a generator function? return the value "
	                             "instead, or use async def)"
	                           : "";
	PyObject *msg = PyUnicode_FromFormat(
		"handler returned a %s, which is not None, bytes, str or "
		"JSON-serialisable%s: %S",
		Py_TYPE(res)->tp_name, hint, why ? why : Py_None);
	set_error_str(ctx, msg);
	Py_XDECREF(msg);
	Py_XDECREF(why);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	return EVFN_FAIL;
}

/* What inspect.isawaitable() says, without calling into Python for the
 * common cases. */
static bool
is_awaitable(PyObject *o)
{
	if (PyCoro_CheckExact(o))
		return true;
	PyAsyncMethods *am = Py_TYPE(o)->tp_as_async;
	if (am && am->am_await)
		return true;
	if (!PyGen_Check(o))
		return false;
	/* A generator made by @types.coroutine. */
	PyObject *code = PyObject_GetAttrString(o, "gi_code");
	bool yes = code && PyCode_Check(code) &&
	           (((PyCodeObject *)code)->co_flags & CO_ITERABLE_COROUTINE);
	Py_XDECREF(code);
	PyErr_Clear();
	return yes;
}

/* The argument the callable takes for the call: the event, or for a
 * batch function the list of the call's events. New reference. */
static PyObject *
call_argument(struct evfnpy_fn *f, evfn_ctx *ctx, const evfn_event *ev)
{
	return f->spec.batch ? evfnpy_context_events(ctx)
	                     : evfnpy_event_wrap(ev);
}

/* The futures waiting on the call's events see it start; false if the
 * single event's future was cancelled (cancel() returned True: the
 * handler must not run). Items of a batch always run: the core cancelled
 * those still queued. */
static bool
futures_start(PyObject *registry, evfn_ctx *ctx)
{
	size_t n = evfn_ctx_batch_size(ctx);
	for (size_t i = 0; i < n; i++) {
		PyObject *fut = evfnpy_registry_find(
			registry, evfn_ctx_batch_event(ctx, i));
		if (fut && !evfnpy_future_start(fut) && n == 1)
			return false;
	}
	return true;
}

static void
futures_stop(PyObject *registry, evfn_ctx *ctx, PyObject *cause)
{
	size_t n = evfn_ctx_batch_size(ctx);
	for (size_t i = 0; i < n; i++) {
		PyObject *fut = evfnpy_registry_find(
			registry, evfn_ctx_batch_event(ctx, i));
		if (fut)
			evfnpy_future_stop(fut, cause);
	}
}

/* The callable, and for an awaitable result the coroutine run on the
 * asyncio loop; a new reference, or NULL with the exception set. */
static PyObject *
invoke(struct evfnpy_fn *f, PyObject *arg, PyObject *c)
{
	PyObject *res = f->spec.with_ctx
	                        ? PyObject_CallFunctionObjArgs(f->callable, arg,
	                                                       c, NULL)
	                        : PyObject_CallOneArg(f->callable, arg);
	if (res && is_awaitable(res))
		Py_SETREF(res, PyObject_CallMethodObjArgs(f->spec.aloop,
		                                          evfnpy_names.run, res,
		                                          c, NULL));
	return res;
}

static int
call(struct evfnpy_fn *f, evfn_ctx *ctx, const evfn_event *ev)
{
	PyObject *registry = f->owner->registry;
	PyObject *arg = call_argument(f, ctx, ev);
	PyObject *c = arg ? evfnpy_context_wrap(ctx, &f->owner->cancels) : NULL;
	if (!c) {
		Py_XDECREF(arg);
		PyErr_Clear();
		evfn_ctx_set_error(ctx, "out of memory for the call");
		return EVFN_RETRY;
	}
	if (!futures_start(registry, ctx)) {
		evfnpy_context_invalidate(c);
		Py_DECREF(c);
		Py_DECREF(arg);
		evfn_ctx_set_error(ctx, "cancelled");
		return EVFN_FAIL;
	}
	struct evfnpy_running running;
	PyObject *res = NULL;
	bool stopped = evfnpy_cancels_arm(&f->owner->cancels, &running, ctx);
	if (!stopped)
		res = invoke(f, arg, c);
	/* Disarm before anything else runs Python code (a __del__ could
	 * otherwise receive this handler's Timeout). */
	bool timed_out = evfnpy_cancels_disarm(&f->owner->cancels, &running);
	PyObject *exc = NULL;
	int outcome;
	if (stopped) {
		evfn_ctx_set_error(ctx, stop_reason(ctx));
		outcome = EVFN_RETRY;
	} else if (!res) {
		PyObject *type, *tb;
		PyErr_Fetch(&type, &exc, &tb);
		PyErr_NormalizeException(&type, &exc, &tb);
		if (exc && tb)
			PyException_SetTraceback(exc, tb);
		Py_XDECREF(type);
		Py_XDECREF(tb);
		outcome = exc ? outcome_of_exception(f, ctx, exc, timed_out)
		              : EVFN_RETRY;
	} else if (timed_out) {
		/* Past its deadline: the core counts the late return as a
		 * timeout, whatever it was. */
		evfn_ctx_set_error(ctx, stop_reason(ctx));
		outcome = EVFN_RETRY;
	} else {
		outcome = outcome_of_value(ctx, res);
	}
	futures_stop(registry, ctx, exc);
	evfnpy_context_invalidate(c);
	Py_XDECREF(exc);
	Py_XDECREF(res);
	Py_DECREF(c);
	Py_DECREF(arg);
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
                const struct evfnpy_call_spec *spec, evfn_fn_options *o)
{
	struct evfnpy_fn *f = PyMem_RawMalloc(sizeof(*f));
	if (!f) {
		PyErr_NoMemory();
		return -1;
	}
	Py_INCREF(callable);
	f->callable = callable;
	f->spec = *spec;
	Py_XINCREF(f->spec.retry_on);
	Py_XINCREF(f->spec.fail_on);
	Py_XINCREF(f->spec.aloop);
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
		spec_clear(&f->spec);
		PyMem_RawFree(f);
		evfnpy_raise(rc);
		return -1;
	}
	return 0;
}
