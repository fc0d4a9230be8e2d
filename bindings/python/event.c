/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.Event: a read-only view of a published evfn event (CloudEvents
 * attributes, payload as bytes, json()). The object holds a reference to
 * the C event, so it stays valid after the handler returned; events are
 * frozen once published, so reading them needs no lock.
 */
#include "evfnpy.h"

typedef struct {
	PyObject_HEAD
	const evfn_event *ev;
	PyObject *data; /* bytes, built on first access */
} evfnpy_event;

PyObject *
evfnpy_event_wrap(const evfn_event *ev)
{
	evfnpy_event *e = PyObject_New(evfnpy_event, &evfnpy_event_type);
	if (!e)
		return NULL;
	e->ev = evfn_event_ref(ev);
	e->data = NULL;
	return (PyObject *)e;
}

static void
event_dealloc(evfnpy_event *e)
{
	evfn_event_unref(e->ev);
	Py_XDECREF(e->data);
	PyObject_Free(e);
}

static PyObject *
str_or_none(const char *s)
{
	if (!s)
		Py_RETURN_NONE;
	return PyUnicode_FromString(s);
}

static PyObject *
get_id(evfnpy_event *e, void *unused)
{
	return str_or_none(evfn_event_id(e->ev));
}

static PyObject *
get_source(evfnpy_event *e, void *unused)
{
	return str_or_none(evfn_event_source(e->ev));
}

static PyObject *
get_type(evfnpy_event *e, void *unused)
{
	return str_or_none(evfn_event_type(e->ev));
}

static PyObject *
get_subject(evfnpy_event *e, void *unused)
{
	return str_or_none(evfn_event_subject(e->ev));
}

static PyObject *
get_dct(evfnpy_event *e, void *unused)
{
	return str_or_none(evfn_event_datacontenttype(e->ev));
}

static PyObject *
get_time_ns(evfnpy_event *e, void *unused)
{
	return PyLong_FromLongLong(evfn_event_time(e->ev));
}

/* A timezone-aware datetime in UTC (microsecond precision). */
static PyObject *
get_time(evfnpy_event *e, void *unused)
{
	PyObject *dt = PyImport_ImportModule("datetime");
	if (!dt)
		return NULL;
	PyObject *res = NULL;
	PyObject *cls = PyObject_GetAttrString(dt, "datetime");
	PyObject *tzmod = PyObject_GetAttrString(dt, "timezone");
	PyObject *utc = tzmod ? PyObject_GetAttrString(tzmod, "utc") : NULL;
	if (cls && utc) {
		int64_t ns = evfn_event_time(e->ev);
		res = PyObject_CallMethod(cls, "fromtimestamp", "dO",
		                          (double)ns / 1e9, utc);
	}
	Py_XDECREF(utc);
	Py_XDECREF(tzmod);
	Py_XDECREF(cls);
	Py_DECREF(dt);
	return res;
}

static PyObject *
get_seq(evfnpy_event *e, void *unused)
{
	return PyLong_FromUnsignedLongLong(evfn_event_seq(e->ev));
}

static PyObject *
get_hops(evfnpy_event *e, void *unused)
{
	return PyLong_FromUnsignedLong(evfn_event_hops(e->ev));
}

static PyObject *
get_data(evfnpy_event *e, void *unused)
{
	if (!e->data) {
		size_t len = 0;
		const void *data = evfn_event_data(e->ev, &len);
		e->data = PyBytes_FromStringAndSize(data ? data : "",
		                                    (Py_ssize_t)len);
		if (!e->data)
			return NULL;
	}
	Py_INCREF(e->data);
	return e->data;
}

static PyObject *
event_json(evfnpy_event *e, PyObject *unused)
{
	PyObject *data = get_data(e, NULL);
	if (!data)
		return NULL;
	PyObject *res = PyObject_CallOneArg(evfnpy_json_loads(), data);
	Py_DECREF(data);
	return res;
}

static PyObject *
event_text(evfnpy_event *e, PyObject *unused)
{
	size_t len = 0;
	const char *data = evfn_event_data(e->ev, &len);
	return PyUnicode_DecodeUTF8(data ? data : "", (Py_ssize_t)len, NULL);
}

static PyObject *
event_extension(evfnpy_event *e, PyObject *name)
{
	const char *n = PyUnicode_AsUTF8(name);
	if (!n)
		return NULL;
	return str_or_none(evfn_event_extension(e->ev, n));
}

static PyObject *
event_repr(evfnpy_event *e)
{
	return PyUnicode_FromFormat("<evfn.Event type=%s id=%s>",
	                            evfn_event_type(e->ev),
	                            evfn_event_id(e->ev));
}

static PyGetSetDef event_getset[] = {
	{ "id", (getter)get_id, NULL, "CloudEvents id.", NULL },
	{ "source", (getter)get_source, NULL, "CloudEvents source.", NULL },
	{ "type", (getter)get_type, NULL, "CloudEvents type (the topic).",
	  NULL },
	{ "subject", (getter)get_subject, NULL, "CloudEvents subject or None.",
	  NULL },
	{ "datacontenttype", (getter)get_dct, NULL,
	  "Media type of data, or None.", NULL },
	{ "time", (getter)get_time, NULL, "Event time (UTC datetime).", NULL },
	{ "time_ns", (getter)get_time_ns, NULL,
	  "Event time in ns since the Unix epoch.", NULL },
	{ "seq", (getter)get_seq, NULL, "Runtime-unique sequence number.",
	  NULL },
	{ "hops", (getter)get_hops, NULL,
	  "Handler hops that led to this event.", NULL },
	{ "data", (getter)get_data, NULL, "The payload (bytes).", NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

static PyMethodDef event_methods[] = {
	{ "json", (PyCFunction)event_json, METH_NOARGS,
	  "The payload decoded with json.loads()." },
	{ "text", (PyCFunction)event_text, METH_NOARGS,
	  "The payload decoded as UTF-8." },
	{ "extension", (PyCFunction)event_extension, METH_O,
	  "Value of a CloudEvents extension attribute, or None." },
	{ NULL, NULL, 0, NULL }
};

PyTypeObject evfnpy_event_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "evfn.Event",
	.tp_doc = "A CloudEvents 1.0 event as a handler receives it.",
	.tp_basicsize = sizeof(evfnpy_event),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)event_dealloc,
	.tp_repr = (reprfunc)event_repr,
	.tp_getset = event_getset,
	.tp_methods = event_methods,
};
