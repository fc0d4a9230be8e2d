/* SPDX-License-Identifier: MIT */
/*
 * What every file of the binding shares, at its bottom (it calls nothing
 * else of the binding): the mapping from evfn error codes to the Python
 * exception classes that evfn/__init__.py defines and registers
 * (_set_classes), the outcome exceptions, text from evfn as str, the
 * cached json functions and interned method names, and the
 * interpreter-shutdown flag that keeps evfn threads away from the GIL
 * once CPython finalizes.
 */
#include "evfnpy.h"

#include <string.h>

struct evfnpy_names evfnpy_names;

static atomic_bool finalizing;
/* code (int) -> exception class; plus the fallbacks. Owned references,
 * replaced by _set_classes(). */
static PyObject *error_classes;
static PyObject *default_error_class;
static PyObject *outcome_classes;
static PyObject *outcome_error_class;
static PyObject *timeout_class;
static PyObject *retry_class;
static PyObject *fail_class;
static PyObject *error_text;
static PyObject *condition_class;
static PyObject *json_dumps;
static PyObject *json_loads;

bool
evfnpy_finalizing(void)
{
	return atomic_load(&finalizing) || _Py_IsFinalizing();
}

void
evfnpy_set_finalizing(void)
{
	atomic_store(&finalizing, true);
}

PyObject *
evfnpy_timeout_class(void)
{
	return timeout_class;
}

PyObject *
evfnpy_retry_class(void)
{
	return retry_class;
}

PyObject *
evfnpy_fail_class(void)
{
	return fail_class;
}

PyObject *
evfnpy_error_text(void)
{
	return error_text;
}

PyObject *
evfnpy_condition_class(void)
{
	return condition_class;
}

PyObject *
evfnpy_text(const char *s)
{
	if (!s)
		Py_RETURN_NONE;
	return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

PyObject *
evfnpy_counters(const char *const *names, const uint64_t *values, int n)
{
	PyObject *d = PyDict_New();
	for (int i = 0; d && i < n; i++) {
		PyObject *v = PyLong_FromUnsignedLongLong(values[i]);
		if (!v || PyDict_SetItemString(d, names[i], v) < 0)
			Py_CLEAR(d);
		Py_XDECREF(v);
	}
	return d;
}

PyObject *
evfnpy_json_dumps(void)
{
	return json_dumps;
}

PyObject *
evfnpy_json_loads(void)
{
	return json_loads;
}

/* The class for a code in a table: the registered one, else the fallback
 * given. */
static PyObject *
class_for(PyObject *table, int code, PyObject *fallback)
{
	PyObject *cls = NULL;
	if (table) {
		PyObject *key = PyLong_FromLong(code);
		if (key) {
			cls = PyDict_GetItemWithError(table, key);
			Py_DECREF(key);
		}
		if (PyErr_Occurred())
			PyErr_Clear();
	}
	if (!cls)
		cls = fallback ? fallback : PyExc_RuntimeError;
	return cls;
}

PyObject *
evfnpy_raise(int code)
{
	return evfnpy_raise_detail(code, NULL);
}

PyObject *
evfnpy_raise_detail(int code, const char *detail)
{
	PyObject *cls = class_for(error_classes, code, default_error_class);
	if (cls == PyExc_RuntimeError) {
		PyErr_Format(cls, "%s (%s)", evfn_strerror(code),
		             evfn_err_name(code));
		return NULL;
	}
	PyObject *exc = PyObject_CallFunction(cls, "iz", code, detail);
	if (exc) {
		PyErr_SetObject(cls, exc);
		Py_DECREF(exc);
	}
	return NULL;
}

PyObject *
evfnpy_outcome_error(int code, const char *error, unsigned attempts,
                     PyObject *cause)
{
	PyObject *cls = class_for(outcome_classes, code, outcome_error_class);
	if (cls == PyExc_RuntimeError)
		return PyObject_CallFunction(cls, "s", evfn_strerror(code));
	PyObject *text = evfnpy_text(error);
	if (!text)
		return NULL;
	return PyObject_CallFunction(cls, "iNIO", code, text, attempts,
	                             cause ? cause : Py_None);
}

PyObject *
evfnpy_raise_outcome(int code, const char *error, unsigned attempts,
                     PyObject *cause)
{
	PyObject *exc = evfnpy_outcome_error(code, error, attempts, cause);
	if (exc) {
		PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
		Py_DECREF(exc);
	}
	return NULL;
}

PyObject *
evfnpy_set_classes(PyObject *mod, PyObject *args)
{
	PyObject *by_code, *base, *outcomes, *outcome, *timeout, *retry, *fail,
		*text;
	if (!PyArg_ParseTuple(args, "O!OO!OOOOO:_set_classes", &PyDict_Type,
	                      &by_code, &base, &PyDict_Type, &outcomes,
	                      &outcome, &timeout, &retry, &fail, &text))
		return NULL;
	Py_INCREF(retry);
	Py_XSETREF(retry_class, retry);
	Py_INCREF(fail);
	Py_XSETREF(fail_class, fail);
	Py_INCREF(text);
	Py_XSETREF(error_text, text);
	Py_INCREF(outcomes);
	Py_XSETREF(outcome_classes, outcomes);
	Py_INCREF(by_code);
	Py_XSETREF(error_classes, by_code);
	Py_INCREF(base);
	Py_XSETREF(default_error_class, base);
	Py_INCREF(outcome);
	Py_XSETREF(outcome_error_class, outcome);
	Py_INCREF(timeout);
	Py_XSETREF(timeout_class, timeout);
	Py_RETURN_NONE;
}

static int
intern_names(void)
{
	struct {
		PyObject **slot;
		const char *name;
	} names[] = {
		{ &evfnpy_names.acquire, "acquire" },
		{ &evfnpy_names.release, "release" },
		{ &evfnpy_names.notify_all, "notify_all" },
		{ &evfnpy_names.waiters, "_waiters" },
		{ &evfnpy_names.wait, "wait" },
		{ &evfnpy_names.add_result, "add_result" },
		{ &evfnpy_names.add_exception, "add_exception" },
		{ &evfnpy_names.add_cancelled, "add_cancelled" },
		{ &evfnpy_names.send, "send" },
		{ &evfnpy_names.throw_, "throw" },
		{ &evfnpy_names.run, "run" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!*names[i].slot &&
		    !(*names[i].slot = PyUnicode_InternFromString(names[i].name)))
			return -1;
	return 0;
}

static int
load_modules(void)
{
	PyObject *json = PyImport_ImportModule("json");
	if (!json)
		return -1;
	json_dumps = PyObject_GetAttrString(json, "dumps");
	json_loads = PyObject_GetAttrString(json, "loads");
	Py_DECREF(json);
	PyObject *threading = PyImport_ImportModule("threading");
	if (!threading)
		return -1;
	condition_class = PyObject_GetAttrString(threading, "Condition");
	Py_DECREF(threading);
	return json_dumps && json_loads && condition_class ? 0 : -1;
}

int
evfnpy_helpers_init(void)
{
	return intern_names() < 0 || load_modules() < 0 ? -1 : 0;
}
