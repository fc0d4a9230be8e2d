/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.Schedule: a parsed schedule expression (rate(), @every, at(),
 * cron in both flavours, IANA zones) and its next fire time, binding
 * evfn/schedule.h. A malformed expression raises evfn.InvalidArgument
 * (ESCHEDULE) with the parser's reason and the offset where it stopped.
 * Triggering functions on a schedule is Runtime.schedule() (trigger.c).
 */
#include "evfnpy.h"

#include <stdio.h>
#include <time.h>

typedef struct {
	PyObject_HEAD
	evfn_schedule *s;
	PyObject *expr;
	PyObject *tz;
} evfnpy_schedule;

static int
schedule_init(evfnpy_schedule *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "expr", "tz", NULL };
	PyObject *expr, *tz = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|O:Schedule", kwlist,
	                                 &expr, &tz))
		return -1;
	if (tz != Py_None && !PyUnicode_Check(tz)) {
		PyErr_SetString(PyExc_TypeError, "tz must be a str or None");
		return -1;
	}
	const char *e = PyUnicode_AsUTF8(expr);
	const char *z = tz == Py_None ? NULL : PyUnicode_AsUTF8(tz);
	if (!e || (tz != Py_None && !z))
		return -1;
	char reason[128];
	size_t offset = 0;
	evfn_schedule *s;
	int rc = evfn_schedule_parse(e, z, &s, &offset, reason,
	                             sizeof(reason));
	if (rc < 0) {
		char detail[192];
		if (rc == EVFN_ESCHEDULE)
			snprintf(detail, sizeof(detail), "%s (at offset %zu)",
			         reason, offset);
		else
			snprintf(detail, sizeof(detail), "%s", z ? z : "");
		evfnpy_raise_detail(rc, detail[0] ? detail : NULL);
		return -1;
	}
	evfn_schedule_free(self->s);
	self->s = s;
	Py_INCREF(expr);
	Py_XSETREF(self->expr, expr);
	Py_INCREF(tz);
	Py_XSETREF(self->tz, tz);
	return 0;
}

static void
schedule_dealloc(evfnpy_schedule *self)
{
	evfn_schedule_free(self->s);
	Py_XDECREF(self->expr);
	Py_XDECREF(self->tz);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

/* next_ns(after_ns=None) -> int or None (never fires again). */
static PyObject *
schedule_next_ns(evfnpy_schedule *self, PyObject *args)
{
	PyObject *after = Py_None;
	if (!PyArg_ParseTuple(args, "|O:next_ns", &after))
		return NULL;
	if (!self->s)
		return evfnpy_raise(EVFN_EINVAL);
	int64_t after_ns;
	if (after == Py_None) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		after_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	} else {
		after_ns = PyLong_AsLongLong(after);
		if (after_ns == -1 && PyErr_Occurred())
			return NULL;
	}
	int64_t next = 0;
	int rc = evfn_schedule_next(self->s, after_ns, &next);
	if (rc < 0)
		return evfnpy_raise(rc);
	if (rc == 0)
		Py_RETURN_NONE;
	return PyLong_FromLongLong(next);
}

static PyObject *
schedule_repr(evfnpy_schedule *self)
{
	return PyUnicode_FromFormat("evfn.Schedule(%R, tz=%R)",
	                            self->expr ? self->expr : Py_None,
	                            self->tz ? self->tz : Py_None);
}

static PyMethodDef schedule_methods[] = {
	{ "next_ns", (PyCFunction)schedule_next_ns, METH_VARARGS,
	  "next_ns(after_ns=None) -> first fire time strictly after after_ns "
	  "(ns since the epoch; default now), or None if it never fires "
	  "again." },
	{ NULL, NULL, 0, NULL }
};

PyTypeObject evfnpy_schedule_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "evfn._evfn.Schedule",
	.tp_doc = "Schedule(expr, tz=None): a parsed schedule expression.",
	.tp_basicsize = sizeof(evfnpy_schedule),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)schedule_init,
	.tp_dealloc = (destructor)schedule_dealloc,
	.tp_methods = schedule_methods,
	.tp_repr = (reprfunc)schedule_repr,
};
