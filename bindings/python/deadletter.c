/* SPDX-License-Identifier: MIT */
/*
 * Dead letters from Python: listing the runtime's dead-letter store as
 * tuples (the pythonic DeadLetter objects with replay() and delete() are
 * built in evfn/__init__.py), replaying, deleting and purging them. Each
 * listed entry is a snapshot: its Event holds its own reference to the C
 * event, so it stays valid after the store dropped the dead letter.
 */
#include "evfnpy.h"

#include <string.h>

/* A datetime for an attempt time, or None for 0 (no attempt ran). */
static PyObject *
attempt_time(int64_t ns)
{
	if (ns == 0)
		Py_RETURN_NONE;
	return evfnpy_datetime_from_ns(ns);
}

/* (id, event, function, reason, code, attempts, error, first, last) */
static PyObject *
dead_letter_tuple(const evfn_dead_letter *dl)
{
	PyObject *ev = evfnpy_event_wrap(evfn_dead_letter_event(dl));
	PyObject *first = attempt_time(evfn_dead_letter_first_attempt(dl));
	PyObject *last = attempt_time(evfn_dead_letter_last_attempt(dl));
	/* The error may be anything a handler said: decoded leniently, so
	 * that one entry cannot make the whole listing fail. */
	PyObject *error = evfnpy_text(evfn_dead_letter_error(dl));
	PyObject *t = NULL;
	if (ev && first && last && error)
		t = Py_BuildValue("(KOssiIOOO)",
		                  (unsigned long long)evfn_dead_letter_id(dl),
		                  ev,
		                  evfn_dead_letter_function(dl),
		                  evfn_dead_letter_reason(dl),
		                  evfn_dead_letter_code(dl),
		                  evfn_dead_letter_attempts(dl), error, first,
		                  last);
	Py_XDECREF(error);
	Py_XDECREF(ev);
	Py_XDECREF(first);
	Py_XDECREF(last);
	return t;
}

/* Appends up to max dead letters from offset to list; returns how many
 * the store gave, or -1 with a Python error set. */
static int
fetch(evfn_rt *rt, PyObject *list, size_t max, size_t offset)
{
	evfn_dead_letter *chunk[64];
	int n = evfn_dead_letters(rt, chunk, max, offset);
	if (n < 0) {
		evfnpy_raise(n);
		return -1;
	}
	int rc = n;
	for (int i = 0; i < n; i++) {
		PyObject *t = rc < 0 ? NULL : dead_letter_tuple(chunk[i]);
		if (rc >= 0 && (!t || PyList_Append(list, t) < 0))
			rc = -1;
		Py_XDECREF(t);
		evfn_dead_letter_unref(chunk[i]);
	}
	return rc;
}

/* dead_letters(limit=None, offset=0) -> list of tuples, oldest first. */
static PyObject *
rt_dead_letters(evfnpy_runtime *self, PyObject *args)
{
	PyObject *limit_obj = Py_None;
	Py_ssize_t offset = 0;
	if (!PyArg_ParseTuple(args, "|On:dead_letters", &limit_obj, &offset) ||
	    evfnpy_runtime_check_open(self) < 0)
		return NULL;
	Py_ssize_t limit = PY_SSIZE_T_MAX;
	if (limit_obj != Py_None) {
		limit = PyLong_AsSsize_t(limit_obj);
		if (limit == -1 && PyErr_Occurred())
			return NULL;
	}
	if (limit < 0 || offset < 0)
		return evfnpy_raise_detail(EVFN_ERANGE,
		                           "limit and offset must be >= 0");
	PyObject *list = PyList_New(0);
	/* In chunks, so that no array as large as the store is needed. */
	while (list && PyList_GET_SIZE(list) < limit) {
		size_t want = (size_t)(limit - PyList_GET_SIZE(list));
		if (want > 64)
			want = 64;
		int n = fetch(self->rt, list, want,
		              (size_t)offset + (size_t)PyList_GET_SIZE(list));
		if (n < 0)
			Py_CLEAR(list);
		else if ((size_t)n < want)
			break;
	}
	return list;
}

/* dead_letter_op(op, id=0) -> int: the store's operations by name, one
 * entry point since each is one call. */
static PyObject *
rt_dead_letter_op(evfnpy_runtime *self, PyObject *args)
{
	const char *op;
	unsigned long long id = 0;
	if (!PyArg_ParseTuple(args, "s|K:dead_letter_op", &op, &id) ||
	    evfnpy_runtime_check_open(self) < 0)
		return NULL;
	long long rc;
	if (strcmp(op, "replay") == 0)
		rc = evfn_dead_letter_replay(self->rt, id);
	else if (strcmp(op, "delete") == 0)
		rc = evfn_dead_letter_delete(self->rt, id);
	else if (strcmp(op, "replay_all") == 0)
		rc = evfn_dead_letter_replay_all(self->rt);
	else if (strcmp(op, "purge") == 0)
		rc = evfn_dead_letter_purge(self->rt);
	else if (strcmp(op, "count") == 0)
		rc = (long long)evfn_dead_letter_count(self->rt);
	else if (strcmp(op, "evicted") == 0)
		rc = (long long)evfn_dead_letter_evicted(self->rt);
	else
		return evfnpy_raise_detail(EVFN_EINVAL, op);
	if (rc < 0)
		return evfnpy_raise((int)rc);
	return PyLong_FromLongLong(rc);
}

/* The Runtime's methods from this file (dead_letters, dead_letter_op); module.c adds
 * them to the type. */
const PyMethodDef evfnpy_deadletter_methods[] = {
	{ "dead_letters", (PyCFunction)rt_dead_letters, METH_VARARGS,
	  "dead_letters(limit=None, offset=0) -> list of tuples (id, event, "
	  "function, reason, code, attempts, error, first, last)" },
	{ "dead_letter_op", (PyCFunction)rt_dead_letter_op,
	  METH_VARARGS,
	  "dead_letter_op(op, id=0): op 'replay', 'delete', 'replay_all', "
	  "'purge', 'count' or 'evicted' -> int" },
	{ NULL, NULL, 0, NULL }
};
