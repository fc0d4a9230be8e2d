/* SPDX-License-Identifier: MIT */
/*
 * The module evfn._evfn: its initialisation, the error table generated from
 * EVFN_ERRNO_MAP, the mapping from evfn error codes to the Python exception
 * classes that evfn/__init__.py defines and registers here, and the
 * interpreter-shutdown flag that keeps evfn threads away from the GIL once
 * CPython finalizes. The object types live in their own files.
 */
#include "evfnpy.h"

#include <stdio.h>
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

static PyObject *
set_classes(PyObject *mod, PyObject *args)
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

static PyObject *
strerror_py(PyObject *mod, PyObject *arg)
{
	int code = PyLong_AsLong(arg);
	if (code == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(evfn_strerror(code));
}

static PyObject *
err_name_py(PyObject *mod, PyObject *arg)
{
	int code = PyLong_AsLong(arg);
	if (code == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(evfn_err_name(code));
}

static PyObject *
shutdown_py(PyObject *mod, PyObject *unused)
{
	evfnpy_set_finalizing();
	Py_RETURN_NONE;
}

/* ERRORS: a tuple of (name, code, message), one per EVFN_ERRNO_MAP entry,
 * so that the Python constants can never drift from the C list. */
static PyObject *
error_table(void)
{
#define EVFNPY_ERR_ITEM(name, value, msg) { #name, value, msg },
	static const struct {
		const char *name;
		int code;
		const char *msg;
	} table[] = { EVFN_ERRNO_MAP(EVFNPY_ERR_ITEM) };
#undef EVFNPY_ERR_ITEM
	size_t n = sizeof(table) / sizeof(table[0]);
	PyObject *t = PyTuple_New((Py_ssize_t)n);
	if (!t)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		PyObject *item = Py_BuildValue("(sis)", table[i].name,
		                               table[i].code, table[i].msg);
		if (!item) {
			Py_DECREF(t);
			return NULL;
		}
		PyTuple_SET_ITEM(t, (Py_ssize_t)i, item);
	}
	return t;
}

static PyMethodDef module_methods[] = {
	{ "_set_classes", set_classes, METH_VARARGS,
	  "Register the exception classes: by code, base, outcome classes by "
	  "code, outcome base, Timeout, Retry, Fail, and error_text(exc)." },
	{ "strerror", strerror_py, METH_O,
	  "English description of an evfn error code." },
	{ "err_name", err_name_py, METH_O,
	  "Name of an evfn error code, such as 'EVFN_EQUEUEFULL'." },
	{ "_shutdown", shutdown_py, METH_NOARGS,
	  "Mark the interpreter as exiting: evfn threads stop calling Python." },
	{ NULL, NULL, 0, NULL }
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "evfn._evfn",
	.m_doc = "C extension of evfn; use the evfn package instead.",
	.m_size = -1,
	.m_methods = module_methods,
};

static int
add_type(PyObject *mod, PyTypeObject *type, const char *name)
{
	if (PyType_Ready(type) < 0)
		return -1;
	Py_INCREF(type);
	if (PyModule_AddObject(mod, name, (PyObject *)type) < 0) {
		Py_DECREF(type);
		return -1;
	}
	return 0;
}

static int
add_constants(PyObject *mod)
{
	PyObject *errors = error_table();
	if (!errors || PyModule_AddObject(mod, "ERRORS", errors) < 0) {
		Py_XDECREF(errors);
		return -1;
	}
	PyObject *stats = PyTuple_New(EVFN_STAT_COUNT);
	if (!stats)
		return -1;
	for (int i = 0; i < EVFN_STAT_COUNT; i++) {
		PyObject *s = PyUnicode_FromString(evfn_stat_name((evfn_stat)i));
		if (!s) {
			Py_DECREF(stats);
			return -1;
		}
		PyTuple_SET_ITEM(stats, i, s);
	}
	if (PyModule_AddObject(mod, "STATS", stats) < 0) {
		Py_DECREF(stats);
		return -1;
	}
	/* RECORD_KINDS[kind] names an event-log record kind; from the C
	 * name table, which ends where it returns NULL. */
	PyObject *kinds = PyList_New(0);
	const char *kind;
	for (int i = 0;
	     kinds && (kind = evfn_record_kind_name((evfn_record_kind)i));
	     i++) {
		PyObject *k = PyUnicode_FromString(kind);
		if (!k || PyList_Append(kinds, k) < 0)
			Py_CLEAR(kinds);
		Py_XDECREF(k);
	}
	PyObject *kinds_tuple = kinds ? PyList_AsTuple(kinds) : NULL;
	Py_XDECREF(kinds);
	if (!kinds_tuple ||
	    PyModule_AddObject(mod, "RECORD_KINDS", kinds_tuple) < 0) {
		Py_XDECREF(kinds_tuple);
		return -1;
	}
	if (PyModule_AddIntConstant(mod, "BACKOFF_FIXED",
	                            EVFN_BACKOFF_FIXED) < 0 ||
	    PyModule_AddIntConstant(mod, "BACKOFF_LINEAR",
	                            EVFN_BACKOFF_LINEAR) < 0 ||
	    PyModule_AddIntConstant(mod, "BACKOFF_EXPONENTIAL",
	                            EVFN_BACKOFF_EXPONENTIAL) < 0 ||
	    PyModule_AddIntConstant(mod, "JITTER_NONE", EVFN_JITTER_NONE) < 0 ||
	    PyModule_AddIntConstant(mod, "JITTER_FULL", EVFN_JITTER_FULL) < 0 ||
	    PyModule_AddIntConstant(mod, "JITTER_EQUAL", EVFN_JITTER_EQUAL) < 0 ||
	    PyModule_AddIntConstant(mod, "JITTER_DECORRELATED",
	                            EVFN_JITTER_DECORRELATED) < 0 ||
	    PyModule_AddIntConstant(mod, "CIRCUIT_QUEUE", EVFN_CIRCUIT_QUEUE) < 0 ||
	    PyModule_AddIntConstant(mod, "CIRCUIT_REFUSE",
	                            EVFN_CIRCUIT_REFUSE) < 0 ||
	    PyModule_AddIntConstant(mod, "OK", EVFN_OK) < 0 ||
	    PyModule_AddIntConstant(mod, "RETRY", EVFN_RETRY) < 0 ||
	    PyModule_AddIntConstant(mod, "FAIL", EVFN_FAIL) < 0 ||
	    PyModule_AddStringConstant(mod, "VERSION",
	                               evfn_version_string()) < 0)
		return -1;
	return 0;
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

/* The only exported symbol: CPython finds the module through it. */
PyMODINIT_FUNC PyInit__evfn(void);

PyMODINIT_FUNC
PyInit__evfn(void)
{
	PyObject *mod = PyModule_Create(&module_def);
	if (!mod)
		return NULL;
	if (intern_names() < 0 || load_modules() < 0 ||
	    add_constants(mod) < 0 ||
	    evfnpy_future_init(mod) < 0 ||
	    add_type(mod, &evfnpy_runtime_type, "Runtime") < 0 ||
	    add_type(mod, &evfnpy_event_type, "Event") < 0 ||
	    add_type(mod, &evfnpy_context_type, "Context") < 0 ||
	    add_type(mod, &evfnpy_schedule_type, "Schedule") < 0 ||
	    add_type(mod, &evfnpy_trigger_type, "Trigger") < 0 ||
	    add_type(mod, &evfnpy_http_type, "HttpServer") < 0) {
		Py_DECREF(mod);
		return NULL;
	}
#ifdef EVFNPY_HAVE_PG
	if (add_type(mod, &evfnpy_pg_type, "PgSource") < 0) {
		Py_DECREF(mod);
		return NULL;
	}
#endif
	return mod;
}
