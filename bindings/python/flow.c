/* SPDX-License-Identifier: MIT */
/*
 * Flow control from Python: the Runtime's methods that pause, resume and
 * cancel work the runtime already accepted. (The batch, rate-limit and
 * circuit-breaker options of register() are converted in options.c.)
 */
#include "evfnpy.h"

/* pause/resume: 0, EVFN_ENOFN or EVFN_EINVAL; never waits. */
static PyObject *
set_paused(evfnpy_runtime *self, PyObject *name, bool paused)
{
	const char *fn = PyUnicode_AsUTF8(name);
	if (!fn || evfnpy_runtime_check_open(self) < 0)
		return NULL;
	int rc = paused ? evfn_pause(self->rt, fn) : evfn_resume(self->rt, fn);
	if (rc < 0)
		return evfnpy_raise(rc);
	Py_RETURN_NONE;
}

static PyObject *
rt_pause(evfnpy_runtime *self, PyObject *name)
{
	return set_paused(self, name, true);
}

static PyObject *
rt_resume(evfnpy_runtime *self, PyObject *name)
{
	return set_paused(self, name, false);
}

/* cancel(event_id, function=None) -> count. The id is a str, or the int
 * emit() returned (an event's id defaults to its sequence number in
 * decimal). Nothing to cancel is a count of 0, not an error: the event
 * may just have finished. */
static PyObject *
rt_cancel(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "event_id", "function", NULL };
	PyObject *id_obj;
	const char *fn = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|z:cancel", kwlist,
	                                 &id_obj, &fn) ||
	    evfnpy_runtime_check_open(self) < 0)
		return NULL;
	PyObject *id_str;
	if (PyUnicode_Check(id_obj)) {
		Py_INCREF(id_obj);
		id_str = id_obj;
	} else if (PyLong_Check(id_obj)) {
		id_str = PyObject_Str(id_obj);
	} else {
		PyErr_SetString(PyExc_TypeError,
		                "event_id must be a str or an int");
		return NULL;
	}
	const char *id = id_str ? PyUnicode_AsUTF8(id_str) : NULL;
	if (!id) {
		Py_XDECREF(id_str);
		return NULL;
	}
	/* Takes only evfn's lock, never held while Python code runs. */
	int rc = evfn_cancel(self->rt, fn, id);
	Py_DECREF(id_str);
	if (rc == EVFN_ENOENT)
		rc = 0;
	if (rc < 0)
		return evfnpy_raise(rc);
	return PyLong_FromLong(rc);
}

/* The Runtime's methods from this file (pause, resume, cancel); module.c adds
 * them to the type. */
const PyMethodDef evfnpy_flow_methods[] = {
	{ "pause", (PyCFunction)rt_pause, METH_O,
	  "pause(name): start no new attempt of the function; its events "
	  "keep being accepted and wait." },
	{ "resume", (PyCFunction)rt_resume, METH_O,
	  "resume(name): undo pause()." },
	{ "cancel", (PyCFunction)(void (*)(void))rt_cancel,
	  METH_VARARGS | METH_KEYWORDS,
	  "cancel(event_id, function=None) -> number of invocations "
	  "cancelled or asked to stop (0: none found)." },
	{ NULL, NULL, 0, NULL }
};
