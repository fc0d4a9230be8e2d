/* SPDX-License-Identifier: MIT */
/*
 * Options given as Python objects, converted for the C API with errors
 * that name the option: a value of the wrong type raises TypeError
 * ("attempts must be an int, not str"), one out of range, or refused by
 * evfn, raises the evfn error with "name=value" as its detail
 * (evfn.InvalidArgument: "value out of range: attempts=-1"), instead of
 * CPython's "signed integer is greater than maximum". Also register()'s
 * flow-control options (batch, rate limit, circuit breaker).
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

/* Flow control: the batch, rate-limit and circuit-breaker options as
 * Runtime.register() receives them (plain tuples, which evfn/__init__.py
 * builds from evfn.Batch, evfn.RateLimit and evfn.CircuitBreaker). Times
 * are seconds; evfn checks the ranges. */

/* Each setter: 0, or -1 with a Python error set. The tuples' items are
 * the dataclasses' fields as the caller gave them, converted here so
 * that a wrong one is named. */

/* batch: (max_items, window seconds). */
static int
set_batch(evfn_fn_options *o, PyObject *batch)
{
	int max_items;
	PyObject *max, *window;
	int64_t window_ms;
	if (!PyArg_ParseTuple(batch, "OO:batch", &max, &window) ||
	    evfnpy_opt_int(max, "batch.max_items", &max_items) < 0 ||
	    evfnpy_seconds_to_ms(window, "batch.window", &window_ms) < 0)
		return -1;
	return evfnpy_option_result(evfn_fn_options_set_batch(o, max_items, window_ms),
	               "batch", batch);
}

/* rate_limit: (per_second, burst). */
static int
set_rate_limit(evfn_fn_options *o, PyObject *rate)
{
	double per_second;
	int burst;
	PyObject *per_second_obj, *burst_obj;
	if (!PyArg_ParseTuple(rate, "OO:rate_limit", &per_second_obj,
	                      &burst_obj) ||
	    evfnpy_opt_double(per_second_obj, "rate_limit.per_second",
	                      &per_second) < 0 ||
	    evfnpy_opt_int(burst_obj, "rate_limit.burst", &burst) < 0)
		return -1;
	return evfnpy_option_result(evfn_fn_options_set_rate_limit(o, per_second, burst),
	               "rate_limit", rate);
}

/* circuit_breaker: (consecutive_failures, failure_rate, min_calls,
 * window seconds, cooldown seconds, policy). */
static int
set_breaker(evfn_fn_options *o, PyObject *breaker)
{
	int consecutive, min_calls, policy;
	double rate;
	PyObject *consecutive_obj, *rate_obj, *min_calls_obj, *window,
		*cooldown;
	int64_t window_ms, cooldown_ms;
	if (!PyArg_ParseTuple(breaker, "OOOOOi:circuit_breaker",
	                      &consecutive_obj, &rate_obj, &min_calls_obj,
	                      &window, &cooldown, &policy) ||
	    evfnpy_opt_int(consecutive_obj,
	                   "circuit_breaker.consecutive_failures",
	                   &consecutive) < 0 ||
	    evfnpy_opt_double(rate_obj, "circuit_breaker.failure_rate",
	                      &rate) < 0 ||
	    evfnpy_opt_int(min_calls_obj, "circuit_breaker.min_calls",
	                   &min_calls) < 0 ||
	    evfnpy_seconds_to_ms(window, "circuit_breaker.window",
	                         &window_ms) < 0 ||
	    evfnpy_seconds_to_ms(cooldown, "circuit_breaker.cooldown",
	                         &cooldown_ms) < 0)
		return -1;
	return evfnpy_option_result(evfn_fn_options_set_circuit_breaker(
			       o, consecutive, rate, min_calls, window_ms,
			       cooldown_ms, (evfn_circuit_policy)policy),
	               "circuit_breaker", breaker);
}

int
evfnpy_flow_options(evfn_fn_options *o, PyObject *batch, PyObject *rate,
                    PyObject *breaker)
{
	if ((batch != Py_None && set_batch(o, batch) < 0) ||
	    (rate != Py_None && set_rate_limit(o, rate) < 0) ||
	    (breaker != Py_None && set_breaker(o, breaker) < 0))
		return -1;
	return 0;
}
