/* SPDX-License-Identifier: MIT */
/*
 * Flow control from Python: the batch, rate-limit and circuit-breaker
 * options as Runtime.register() receives them (plain tuples, which
 * evfn/__init__.py builds from evfn.Batch, evfn.RateLimit and
 * evfn.CircuitBreaker), and pausing, resuming and cancelling work the
 * runtime already accepted. Times are seconds, as everywhere in the
 * binding; evfn checks the ranges, and errors name the option.
 */
#include "evfnpy.h"

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

PyObject *
evfnpy_rt_pause(evfnpy_runtime *self, PyObject *name)
{
	return set_paused(self, name, true);
}

PyObject *
evfnpy_rt_resume(evfnpy_runtime *self, PyObject *name)
{
	return set_paused(self, name, false);
}

/* cancel(event_id, function=None) -> count. The id is a str, or the int
 * emit() returned (an event's id defaults to its sequence number in
 * decimal). Nothing to cancel is a count of 0, not an error: the event
 * may just have finished. */
PyObject *
evfnpy_rt_cancel(evfnpy_runtime *self, PyObject *args, PyObject *kw)
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
