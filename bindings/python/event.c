/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.Event: a view of an evfn event (CloudEvents attributes,
 * extensions, payload as bytes, json()). Handlers get published ones; the
 * constructor builds one to publish later (Context.emit, Runtime.emit),
 * which freezes it. The object holds a reference to the C event, so it
 * stays valid after the handler returned; events are frozen once
 * published, so reading them needs no lock. Also the event builder shared
 * by emit and invoke (with the flow attributes: ordering key, delay, due
 * time), and the ns-to-datetime conversion.
 */
#include "evfnpy.h"

#include <math.h>
#include <string.h>

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

/* Refuses keyword arguments that are no attribute: a typo must not pass
 * silently. */
static int
check_attribute_names(PyObject *kw)
{
	static const char *const known[] = { "id", "source", "subject",
		                             "datacontenttype", "time_ns",
		                             "extensions", "key", "delay",
		                             "at", NULL };
	PyObject *k, *v;
	Py_ssize_t pos = 0;
	while (kw && PyDict_Next(kw, &pos, &k, &v)) {
		const char *name = PyUnicode_AsUTF8(k);
		if (!name)
			return -1;
		int i = 0;
		while (known[i] && strcmp(known[i], name) != 0)
			i++;
		if (!known[i]) {
			PyErr_Format(PyExc_TypeError,
			             "unknown event attribute '%s'", name);
			return -1;
		}
	}
	return 0;
}

/* kw[name] unless missing or None; borrowed. */
static PyObject *
attribute(PyObject *kw, const char *name)
{
	PyObject *v = kw ? PyDict_GetItemString(kw, name) : NULL;
	return v == Py_None ? NULL : v;
}

/* Seconds since the Unix epoch (a number, or an aware datetime) to ns.
 * A naive datetime is refused: it would silently mean local time. */
static int
epoch_ns(PyObject *at, int64_t *ns)
{
	PyObject *seconds;
	if (PyLong_Check(at) || PyFloat_Check(at)) {
		Py_INCREF(at);
		seconds = at;
	} else {
		PyObject *tz = PyObject_GetAttrString(at, "tzinfo");
		if (!tz) {
			PyErr_Clear();
			PyErr_SetString(PyExc_TypeError,
			                "at must be a datetime or epoch seconds");
			return -1;
		}
		Py_DECREF(tz);
		if (tz == Py_None) {
			PyErr_SetString(PyExc_ValueError,
			                "at must be timezone-aware");
			return -1;
		}
		seconds = PyObject_CallMethod(at, "timestamp", NULL);
		if (!seconds)
			return -1;
	}
	double s = PyFloat_AsDouble(seconds);
	Py_DECREF(seconds);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (!isfinite(s) || fabs(s) > 9e9) {
		PyErr_SetString(PyExc_ValueError, "at out of range");
		return -1;
	}
	*ns = (int64_t)llround(s * 1e9);
	return 0;
}

/* The flow attributes of kw: ordering key, delay or due time. */
static int
set_flow(evfn_event *ev, PyObject *kw)
{
	PyObject *key = attribute(kw, "key");
	PyObject *delay = attribute(kw, "delay");
	PyObject *at = attribute(kw, "at");
	int rc = 0;
	if (delay && at) {
		PyErr_SetString(PyExc_TypeError,
		                "give delay= or at=, not both");
		return -1;
	}
	if (key) {
		const char *k = PyUnicode_AsUTF8(key);
		if (!k)
			return -1;
		rc = evfn_event_set_ordering_key(ev, k);
	}
	if (rc == 0 && delay) {
		int64_t ms;
		if (evfnpy_seconds_to_ms(delay, "delay", &ms) < 0)
			return -1;
		rc = evfn_event_set_delay_ms(ev, ms);
	}
	if (rc == 0 && at) {
		int64_t ns;
		if (epoch_ns(at, &ns) < 0)
			return -1;
		rc = evfn_event_set_deliver_at(ev, ns);
	}
	if (rc < 0) {
		evfnpy_raise(rc);
		return -1;
	}
	return 0;
}

int
evfnpy_event_build(const char *type, PyObject *data, PyObject *kw,
                   evfn_event **out)
{
	static char *keys[] = { "id", "source", "subject", "datacontenttype",
		                NULL };
	struct evfnpy_payload p;
	*out = NULL;
	if (check_attribute_names(kw) < 0 ||
	    evfnpy_payload_get(data, &p) < 0)
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
	if (set_flow(ev, kw) < 0)
		goto fail;
	*out = ev;
	return 0;
fail:
	evfn_event_unref(ev);
	return -1;
}

evfn_event *
evfnpy_event_get(PyObject *obj)
{
	if (!PyObject_TypeCheck(obj, &evfnpy_event_type))
		return NULL;
	/* Only an unpublished event (built here) is ever written to, and
	 * evfn refuses (EPERM) to publish a frozen one again. */
	return (evfn_event *)((evfnpy_event *)obj)->ev;
}

PyObject *
evfnpy_datetime_from_ns(int64_t ns)
{
	static PyObject *epoch, *delta;
	if (!epoch) {
		PyObject *dt = PyImport_ImportModule("datetime");
		if (!dt)
			return NULL;
		PyObject *tz = PyObject_GetAttrString(dt, "timezone");
		PyObject *utc = tz ? PyObject_GetAttrString(tz, "utc") : NULL;
		PyObject *cls = PyObject_GetAttrString(dt, "datetime");
		delta = PyObject_GetAttrString(dt, "timedelta");
		if (cls && utc && delta)
			epoch = PyObject_CallFunction(cls, "iiiiiiiO", 1970, 1,
			                              1, 0, 0, 0, 0, utc);
		Py_XDECREF(cls);
		Py_XDECREF(utc);
		Py_XDECREF(tz);
		Py_DECREF(dt);
		if (!epoch) {
			Py_CLEAR(delta);
			return NULL;
		}
	}
	/* Floor division, so instants before 1970 round down too. */
	int64_t us = ns / 1000 - (ns % 1000 < 0);
	PyObject *d = PyObject_CallFunction(delta, "iiL", 0, 0, (long long)us);
	if (!d)
		return NULL;
	PyObject *res = PyNumber_Add(epoch, d);
	Py_DECREF(d);
	return res;
}

/* Event(type, data=None, **attributes): a new, unpublished event. */
static PyObject *
event_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	const char *etype;
	PyObject *data = Py_None;
	if (!PyArg_ParseTuple(args, "s|O:Event", &etype, &data))
		return NULL;
	evfn_event *ev;
	if (evfnpy_event_build(etype, data, kw, &ev) < 0)
		return NULL;
	PyObject *e = evfnpy_event_wrap(ev);
	evfn_event_unref(ev);
	return e;
}

static void
event_dealloc(evfnpy_event *e)
{
	evfn_event_unref(e->ev);
	Py_XDECREF(e->data);
	PyObject_Free(e);
}

/* Attributes may come from anywhere (HTTP headers, C emitters), so they
 * are decoded leniently. */
static PyObject *
str_or_none(const char *s)
{
	return evfnpy_text(s);
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
	return evfnpy_datetime_from_ns(evfn_event_time(e->ev));
}

static PyObject *
get_seq(evfnpy_event *e, void *unused)
{
	return PyLong_FromUnsignedLongLong(evfn_event_seq(e->ev));
}

static PyObject *
get_key(evfnpy_event *e, void *unused)
{
	return str_or_none(evfn_event_ordering_key(e->ev));
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

/* The extension attributes as a new dict {name: value}. */
static PyObject *
get_extensions(evfnpy_event *e, void *unused)
{
	PyObject *d = PyDict_New();
	const char *name, *value;
	for (size_t i = 0;
	     d && (value = evfn_event_extension_at(e->ev, i, &name)); i++) {
		PyObject *v = evfnpy_text(value);
		if (!v || PyDict_SetItemString(d, name, v) < 0)
			Py_CLEAR(d);
		Py_XDECREF(v);
	}
	return d;
}

static PyObject *
event_repr(evfnpy_event *e)
{
	const char *id = evfn_event_id(e->ev);
	return PyUnicode_FromFormat("<evfn.Event type=%s id=%s>",
	                            evfn_event_type(e->ev),
	                            id ? id : "(unpublished)");
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
	{ "key", (getter)get_key, NULL, "Ordering key, or None.", NULL },
	{ "hops", (getter)get_hops, NULL,
	  "Handler hops that led to this event.", NULL },
	{ "data", (getter)get_data, NULL, "The payload (bytes).", NULL },
	{ "extensions", (getter)get_extensions, NULL,
	  "CloudEvents extension attributes as a new dict.", NULL },
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
	.tp_doc = "Event(type, data=None, *, id=, source=, subject=, "
	          "datacontenttype=, time_ns=, extensions=, key=, delay=, at=): a "
	          "CloudEvents 1.0 event; handlers receive published ones.",
	.tp_new = event_new,
	.tp_basicsize = sizeof(evfnpy_event),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)event_dealloc,
	.tp_repr = (reprfunc)event_repr,
	.tp_getset = event_getset,
	.tp_methods = event_methods,
};
