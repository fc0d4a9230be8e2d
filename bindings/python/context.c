/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.Context: what a Python handler sees of its invocation
 * (attempt, deadline, time remaining, cancelled, the events of a batch)
 * and can do (respond, set the error message, emit child events, report
 * failed items of a batch). It wraps a borrowed evfn_ctx that
 * is valid only while the handler runs; afterwards every method raises
 * evfn.Error with code EPERM instead of touching freed memory. For async
 * handlers it also runs each step of the coroutine on the asyncio loop
 * under the attempt's deadline (_step, _interrupt).
 */
#include "evfnpy.h"

PyObject *
evfnpy_context_wrap(evfn_ctx *ctx, struct evfnpy_cancels *cancels)
{
	evfnpy_context *c = PyObject_New(evfnpy_context, &evfnpy_context_type);
	if (!c)
		return NULL;
	c->ctx = ctx;
	c->cancels = cancels;
	return (PyObject *)c;
}

void
evfnpy_context_invalidate(PyObject *c)
{
	((evfnpy_context *)c)->ctx = NULL;
}

static void
context_dealloc(evfnpy_context *c)
{
	PyObject_Free(c);
}

/* The live context, or NULL with evfn.Error(EPERM) raised. */
static evfn_ctx *
live(evfnpy_context *c)
{
	if (!c->ctx)
		evfnpy_raise(EVFN_EPERM);
	return c->ctx;
}

static PyObject *
get_attempt(evfnpy_context *c, void *unused)
{
	evfn_ctx *ctx = live(c);
	return ctx ? PyLong_FromUnsignedLong(evfn_ctx_attempt(ctx)) : NULL;
}

static PyObject *
get_remaining(evfnpy_context *c, void *unused)
{
	evfn_ctx *ctx = live(c);
	return ctx ? PyFloat_FromDouble((double)evfn_ctx_remaining_ns(ctx) / 1e9)
	           : NULL;
}

static PyObject *
get_deadline(evfnpy_context *c, void *unused)
{
	evfn_ctx *ctx = live(c);
	return ctx ? PyFloat_FromDouble((double)evfn_ctx_deadline_ns(ctx) / 1e9)
	           : NULL;
}

static PyObject *
get_cancelled(evfnpy_context *c, void *unused)
{
	evfn_ctx *ctx = live(c);
	if (!ctx)
		return NULL;
	return PyBool_FromLong(evfn_ctx_cancelled(ctx));
}

static PyObject *
get_function(evfnpy_context *c, void *unused)
{
	evfn_ctx *ctx = live(c);
	return ctx ? PyUnicode_FromString(evfn_fn_name(evfn_ctx_function(ctx)))
	           : NULL;
}

PyObject *
evfnpy_context_events(evfn_ctx *ctx)
{
	size_t n = evfn_ctx_batch_size(ctx);
	PyObject *list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; list && i < n; i++) {
		PyObject *e = evfnpy_event_wrap(evfn_ctx_batch_event(ctx, i));
		if (!e)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, e);
	}
	return list;
}

/* Every event of this call: one unless the function takes batches. */
static PyObject *
get_events(evfnpy_context *c, void *unused)
{
	evfn_ctx *ctx = live(c);
	return ctx ? evfnpy_context_events(ctx) : NULL;
}

/* The index of item (an int, or one of the call's Event objects) in the
 * batch; -1 with an error set if it is neither. */
static Py_ssize_t
item_index(evfn_ctx *ctx, PyObject *item)
{
	const evfn_event *ev = evfnpy_event_get(item);
	if (!ev) {
		Py_ssize_t i = PyNumber_AsSsize_t(item, PyExc_IndexError);
		if (i == -1 && PyErr_Occurred())
			return -1;
		if (i < 0) {
			evfnpy_raise(EVFN_EINVAL);
			return -1;
		}
		return i;
	}
	/* Events of the call wrap the very C events of the batch. */
	size_t n = evfn_ctx_batch_size(ctx);
	for (size_t i = 0; i < n; i++)
		if (evfn_ctx_batch_event(ctx, i) == ev)
			return (Py_ssize_t)i;
	evfnpy_raise_detail(EVFN_EINVAL, "the event is not in this batch");
	return -1;
}

/* fail_item(item, retry=True): only that item is retried (or, with
 * retry=False, dead-lettered) when the handler succeeds. */
static PyObject *
context_fail_item(evfnpy_context *c, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "item", "retry", NULL };
	PyObject *item;
	int retry = 1;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p:fail_item", kwlist,
	                                 &item, &retry))
		return NULL;
	evfn_ctx *ctx = live(c);
	if (!ctx)
		return NULL;
	Py_ssize_t i = item_index(ctx, item);
	if (i < 0)
		return NULL;
	int rc = evfn_ctx_batch_item_failed(ctx, (size_t)i,
	                                    retry ? EVFN_RETRY : EVFN_FAIL);
	if (rc < 0)
		return evfnpy_raise(rc);
	Py_RETURN_NONE;
}

static PyObject *
context_respond(evfnpy_context *c, PyObject *data)
{
	evfn_ctx *ctx = live(c);
	struct evfnpy_payload p;
	if (!ctx || evfnpy_payload_get(data, &p) < 0)
		return NULL;
	int rc = evfn_ctx_respond(ctx, p.data, p.len);
	evfnpy_payload_release(&p);
	if (rc < 0)
		return evfnpy_raise(rc);
	Py_RETURN_NONE;
}

static PyObject *
context_set_error(evfnpy_context *c, PyObject *msg)
{
	evfn_ctx *ctx = live(c);
	if (!ctx)
		return NULL;
	const char *s = PyUnicode_AsUTF8(msg);
	if (!s)
		return NULL;
	int rc = evfn_ctx_set_error(ctx, s);
	if (rc < 0)
		return evfnpy_raise(rc);
	Py_RETURN_NONE;
}

static PyObject *
context_set_meta(evfnpy_context *c, PyObject *args)
{
	const char *key, *value;
	if (!PyArg_ParseTuple(args, "sz:set_meta", &key, &value))
		return NULL;
	evfn_ctx *ctx = live(c);
	if (!ctx)
		return NULL;
	int rc = evfn_ctx_set_meta(ctx, key, value);
	if (rc < 0)
		return evfnpy_raise(rc);
	Py_RETURN_NONE;
}

/* emit(event) or emit(type, data=None, **attributes): a child event
 * through evfn_ctx_publish(), which counts the hop and keeps attributes;
 * a built Event is published as it is (once: it is frozen then). */
static PyObject *
context_emit(evfnpy_context *c, PyObject *args, PyObject *kw)
{
	PyObject *first, *data = Py_None;
	if (!PyArg_ParseTuple(args, "O|O:emit", &first, &data))
		return NULL;
	evfn_ctx *ctx = live(c);
	if (!ctx)
		return NULL;
	evfn_event *ev = evfnpy_event_get(first);
	if (ev) {
		if (data != Py_None || (kw && PyDict_Size(kw) > 0)) {
			PyErr_SetString(
				PyExc_TypeError,
				"emit(event) takes no data or attributes");
			return NULL;
		}
		evfn_event_ref(ev);
	} else {
		const char *type = PyUnicode_AsUTF8(first);
		if (!type || evfnpy_event_build(type, data, kw, &ev) < 0)
			return NULL;
	}
	uint64_t seq = 0;
	/* Admission never waits for a thread that needs the GIL, so it runs
	 * with the GIL held. */
	int rc = evfn_ctx_publish(ctx, ev, &seq);
	evfn_event_unref(ev);
	if (rc < 0)
		return evfnpy_raise(rc);
	return PyLong_FromUnsignedLongLong(seq);
}

/* _step(it, value, throw): one step of an async handler's coroutine on the
 * runtime's asyncio loop: it.throw(value) if throw, else it.send(value).
 * While the attempt is live the step runs under its deadline like a
 * synchronous handler (Timeout raised inside it, so a busy coroutine
 * cannot hold the loop past it). Once the attempt is over or cancelled,
 * a send becomes a throw of asyncio.CancelledError (the coroutine is
 * cancelled where it waits) and steps run unarmed, so that its cleanup
 * can run. */
static PyObject *
context_step(evfnpy_context *c, PyObject *args)
{
	PyObject *it, *value, *cancelled_error;
	int throw;
	if (!PyArg_ParseTuple(args, "OOpO:_step", &it, &value, &throw,
	                      &cancelled_error))
		return NULL;
	struct evfnpy_running running;
	bool armed = c->ctx &&
	             !evfnpy_cancels_arm(c->cancels, &running, c->ctx);
	if (c->ctx && !armed)
		evfnpy_cancels_disarm(c->cancels, &running);
	PyObject *r;
	if (!armed && !throw)
		r = PyObject_CallMethodOneArg(it, evfnpy_names.throw_,
		                              cancelled_error);
	else
		r = PyObject_CallMethodOneArg(it,
		                              throw ? evfnpy_names.throw_
		                                    : evfnpy_names.send,
		                              value);
	if (armed)
		evfnpy_cancels_disarm(c->cancels, &running);
	return r;
}

/* _interrupt(): the deadline passed (the worker's own wait says so): a
 * step of this attempt's coroutine running on the asyncio loop gets
 * Timeout now, without waiting for the core's watchdog, whose cancel
 * hook may come after the attempt has ended. */
static PyObject *
context_interrupt(evfnpy_context *c, PyObject *unused)
{
	if (c->ctx)
		evfnpy_cancels_interrupt(c->cancels, c->ctx);
	Py_RETURN_NONE;
}

static PyObject *
context_repr(evfnpy_context *c)
{
	if (!c->ctx)
		return PyUnicode_FromString("<evfn.Context (finished)>");
	return PyUnicode_FromFormat("<evfn.Context function=%s attempt=%u>",
	                            evfn_fn_name(evfn_ctx_function(c->ctx)),
	                            evfn_ctx_attempt(c->ctx));
}

static PyGetSetDef context_getset[] = {
	{ "attempt", (getter)get_attempt, NULL, "Attempt number, 1 first.",
	  NULL },
	{ "remaining", (getter)get_remaining, NULL,
	  "Seconds left before the deadline (0.0 once passed).", NULL },
	{ "deadline", (getter)get_deadline, NULL,
	  "Deadline on the time.monotonic() clock, in seconds.", NULL },
	{ "cancelled", (getter)get_cancelled, NULL,
	  "True once the deadline passed or the attempt was cancelled.",
	  NULL },
	{ "function", (getter)get_function, NULL, "Name of the function.",
	  NULL },
	{ "events", (getter)get_events, NULL,
	  "The events of this call as a new list: one, or a batch's items.",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

static PyMethodDef context_methods[] = {
	{ "respond", (PyCFunction)context_respond, METH_O,
	  "Set the response (bytes, str, or a JSON-able object)." },
	{ "set_error", (PyCFunction)context_set_error, METH_O,
	  "Attach an error message to this attempt." },
	{ "set_meta", (PyCFunction)context_set_meta, METH_VARARGS,
	  "set_meta(key, value): response metadata (HTTP routes: \"status\", "
	  "\"header.<Name>\"); value None removes it." },
	{ "fail_item", (PyCFunction)(void (*)(void))context_fail_item,
	  METH_VARARGS | METH_KEYWORDS,
	  "fail_item(item, retry=True): report a batch item (index or Event) "
	  "as failed; when the handler succeeds only the failed items are "
	  "retried (retry=False: dead-lettered)." },
	{ "emit", (PyCFunction)(void (*)(void))context_emit,
	  METH_VARARGS | METH_KEYWORDS,
	  "emit(event) or emit(type, data=None, **attributes): publish a "
	  "child event (hop count + 1); returns its sequence number." },
	{ "_interrupt", (PyCFunction)context_interrupt, METH_NOARGS,
	  "_interrupt(): raise Timeout in this attempt's coroutine step if "
	  "one runs on the asyncio loop." },
	{ "_step", (PyCFunction)context_step, METH_VARARGS,
	  "_step(it, value, throw, CancelledError): one step of an async "
	  "handler's coroutine under the attempt's deadline." },
	{ NULL, NULL, 0, NULL }
};

PyTypeObject evfnpy_context_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "evfn.Context",
	.tp_doc = "The invocation context of a running handler.",
	.tp_basicsize = sizeof(evfnpy_context),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)context_dealloc,
	.tp_repr = (reprfunc)context_repr,
	.tp_getset = context_getset,
	.tp_methods = context_methods,
};
