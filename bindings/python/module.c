/* SPDX-License-Identifier: MIT */
/*
 * The module evfn._evfn: its initialisation, its functions (strerror,
 * err_name, _set_classes, _shutdown) and constants (the error table
 * generated from EVFN_ERRNO_MAP, stat names, record kinds). It is the top
 * of the binding: it readies the object types, which live in their own
 * files, gives the Runtime type the methods the files above it provide
 * (flow, triggers, dead letters, HTTP, PostgreSQL) and hands the future
 * type the way to cancel a submission, so that nothing below calls back
 * up; the helpers every file shares are in helpers.c, at the bottom.
 */
#include "evfnpy.h"

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
	{ "_set_classes", evfnpy_set_classes, METH_VARARGS,
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

/* The Runtime's methods that the files above runtime.c provide. */
static const PyMethodDef *const runtime_methods[] = {
	evfnpy_flow_methods,
	evfnpy_trigger_methods,
	evfnpy_deadletter_methods,
	evfnpy_http_methods,
#ifdef EVFNPY_HAVE_PG
	evfnpy_pg_methods,
#endif
	NULL,
};

/* The only exported symbol: CPython finds the module through it. */
PyMODINIT_FUNC PyInit__evfn(void);

PyMODINIT_FUNC
PyInit__evfn(void)
{
	PyObject *mod = PyModule_Create(&module_def);
	if (!mod)
		return NULL;
	if (evfnpy_helpers_init() < 0 ||
	    add_constants(mod) < 0 ||
	    evfnpy_future_init(mod, evfnpy_done_cancel) < 0 ||
	    evfnpy_runtime_ready(runtime_methods) < 0 ||
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
