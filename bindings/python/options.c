/* SPDX-License-Identifier: MIT */
/*
 * Options given as Python objects, converted for the C API with errors
 * that name the option: a value of the wrong type raises TypeError
 * ("attempts must be an int, not str"), one out of range, or refused by
 * evfn, raises the evfn error with "name=value" as its detail
 * (evfn.InvalidArgument: "value out of range: attempts=-1"), instead of
 * CPython's "signed integer is greater than maximum".
 */
#include "evfnpy.h"

#include <limits.h>
#include <math.h>

int
evfnpy_option_result(int rc, const char *name, PyObject *value)
{
	if (rc >= 0)
		return 0;
	evfnpy_raise_option(rc, name, value);
	return -1;
}

PyObject *
evfnpy_raise_option(int code, const char *name, PyObject *value)
{
	PyObject *repr = value ? PyObject_Repr(value) : NULL;
	PyObject *detail = repr ? PyUnicode_FromFormat("%s=%U", name, repr)
	                        : PyUnicode_FromString(name);
	Py_XDECREF(repr);
	const char *s = detail ? PyUnicode_AsUTF8(detail) : NULL;
	PyErr_Clear();
	evfnpy_raise_detail(code, s ? s : name);
	Py_XDECREF(detail);
	return NULL;
}

static int
out_of_range(PyObject *v, const char *name)
{
	evfnpy_raise_option(EVFN_ERANGE, name, v);
	return -1;
}

static int
type_error(PyObject *v, const char *name, const char *expected)
{
	PyErr_Format(PyExc_TypeError, "%s must be %s, not %.100s", name,
	             expected, Py_TYPE(v)->tp_name);
	return -1;
}

int
evfnpy_opt_int64(PyObject *v, const char *name, int64_t *out)
{
	if (!PyIndex_Check(v))
		return type_error(v, name, "an int");
	int overflow = 0;
	PyObject *n = PyNumber_Index(v);
	long long x = n ? PyLong_AsLongLongAndOverflow(n, &overflow) : -1;
	Py_XDECREF(n);
	if (!n || (x == -1 && PyErr_Occurred()))
		return -1;
	if (overflow)
		return out_of_range(v, name);
	*out = x;
	return 0;
}

int
evfnpy_opt_int(PyObject *v, const char *name, int *out)
{
	int64_t x;
	if (evfnpy_opt_int64(v, name, &x) < 0)
		return -1;
	if (x < INT_MIN || x > INT_MAX)
		return out_of_range(v, name);
	*out = (int)x;
	return 0;
}

int
evfnpy_opt_double(PyObject *v, const char *name, double *out)
{
	if (!PyFloat_Check(v) && !PyIndex_Check(v))
		return type_error(v, name, "a number");
	double x = PyFloat_AsDouble(v);
	if (x == -1.0 && PyErr_Occurred()) {
		if (!PyErr_ExceptionMatches(PyExc_OverflowError))
			return -1;
		PyErr_Clear();
		return out_of_range(v, name);
	}
	*out = x;
	return 0;
}

int
evfnpy_seconds_to_ms(PyObject *s, const char *name, int64_t *ms)
{
	double v;
	if (evfnpy_opt_double(s, name, &v) < 0)
		return -1;
	if (!isfinite(v) || fabs(v) > 9e15)
		return out_of_range(s, name);
	*ms = (int64_t)llround(v * 1000.0);
	return 0;
}
