/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.Trigger and the Runtime methods that create triggers:
 * schedule(), watch(), on_signal() and on_fd() over evfn/triggers.h. A
 * trigger emits to the subscribers of its type or hands its events to one
 * function. evfn_rt_free() refuses while triggers are alive, so the
 * runtime object keeps every open trigger (a trigger nobody references
 * still fires) and closes them before it closes; a trigger keeps only a
 * borrowed pointer back, cleared when it is closed.
 */
#include "evfnpy.h"

#include <string.h>

enum kind { KIND_SCHEDULE, KIND_WATCH, KIND_SIGNAL, KIND_FD };

static const char *const kind_names[] = { "schedule", "watch", "signal",
	                                  "fd" };

typedef struct {
	PyObject_HEAD
	evfn_trigger *t;        /* NULL once closed */
	evfnpy_runtime *owner;  /* borrowed; NULL once closed */
	enum kind kind;
	PyObject *name;         /* str or None */
	PyObject *fd_owner;     /* on_fd: the object polled, kept alive */
} evfnpy_trigger;

/* The delivery options every trigger takes, plus the schedule's and the
 * watch's own; NULL/None for the defaults. */
struct trigger_args {
	const char *type;
	const char *function;
	PyObject *name;
	const char *missed;
	PyObject *tolerance;
	int existing;
};

static int
build_options(const struct trigger_args *a, evfn_trigger_options **out)
{
	evfn_trigger_options *o;
	*out = NULL;
	int rc = evfn_trigger_options_new(&o);
	if (rc == 0 && a->function)
		rc = evfn_trigger_options_set_function(o, a->function);
	if (rc == 0 && a->name != Py_None) {
		const char *n = PyUnicode_AsUTF8(a->name);
		if (!n) {
			evfn_trigger_options_free(o);
			return -1;
		}
		rc = evfn_trigger_options_set_name(o, n);
	}
	if (rc == 0 && a->missed) {
		if (strcmp(a->missed, "fire_once") == 0)
			rc = evfn_trigger_options_set_missed(
				o, EVFN_MISSED_FIRE_ONCE);
		else if (strcmp(a->missed, "skip") == 0)
			rc = evfn_trigger_options_set_missed(o,
			                                     EVFN_MISSED_SKIP);
		else {
			evfn_trigger_options_free(o);
			evfnpy_raise_detail(EVFN_EINVAL,
			                    "missed must be 'fire_once' or "
			                    "'skip'");
			return -1;
		}
	}
	if (rc == 0 && a->tolerance != Py_None) {
		int64_t ms;
		if (evfnpy_seconds_to_ms(a->tolerance, "tolerance", &ms) < 0) {
			evfn_trigger_options_free(o);
			return -1;
		}
		rc = evfn_trigger_options_set_tolerance_ms(o, ms);
	}
	if (rc == 0 && a->existing)
		rc = evfn_trigger_options_set_existing(o, true);
	if (rc < 0) {
		evfn_trigger_options_free(o);
		evfnpy_raise(rc);
		return -1;
	}
	*out = o;
	return 0;
}

/* Wraps a new C trigger and attaches it to its runtime; frees it on
 * failure. */
static PyObject *
wrap(evfnpy_runtime *owner, evfn_trigger *t, enum kind kind, PyObject *name,
     PyObject *fd_owner)
{
	evfnpy_trigger *tr = PyObject_New(evfnpy_trigger, &evfnpy_trigger_type);
	if (!tr) {
		evfn_trigger_free(t);
		return NULL;
	}
	tr->t = t;
	tr->owner = owner;
	tr->kind = kind;
	Py_INCREF(name);
	tr->name = name;
	Py_XINCREF(fd_owner);
	tr->fd_owner = fd_owner;
	if (evfnpy_runtime_attach(owner, (PyObject *)tr) < 0) {
		Py_DECREF(tr);
		return NULL;
	}
	return (PyObject *)tr;
}

static void
close_trigger(evfnpy_trigger *tr)
{
	evfn_trigger *t = tr->t;
	evfnpy_runtime *owner = tr->owner;
	if (!t)
		return;
	tr->t = NULL;
	tr->owner = NULL;
	/* Waits only for a callback running on the loop thread, which never
	 * takes the GIL. */
	evfn_trigger_free(t);
	Py_CLEAR(tr->fd_owner);
	if (owner)
		evfnpy_runtime_detach(owner, (PyObject *)tr);
}

static void
trigger_dealloc(evfnpy_trigger *tr)
{
	/* Open triggers are referenced by their runtime, so only a closed
	 * one gets here. */
	evfn_trigger_free(tr->t);
	Py_XDECREF(tr->name);
	Py_XDECREF(tr->fd_owner);
	PyObject_Free(tr);
}

static int
check_live(evfnpy_trigger *tr)
{
	if (tr->t)
		return 0;
	evfnpy_raise_detail(EVFN_EINVAL, "the trigger is closed");
	return -1;
}

static PyObject *
trigger_close(evfnpy_trigger *tr, PyObject *unused)
{
	close_trigger(tr);
	Py_RETURN_NONE;
}

/* next_ns() -> int or None: a schedule's next fire time. */
static PyObject *
trigger_next_ns(evfnpy_trigger *tr, PyObject *unused)
{
	if (check_live(tr) < 0)
		return NULL;
	if (tr->kind != KIND_SCHEDULE)
		return evfnpy_raise_detail(EVFN_EINVAL, "not a schedule");
	int64_t next = 0;
	int rc = evfn_timer_next(tr->t, &next);
	if (rc < 0)
		return evfnpy_raise(rc);
	if (rc == 0)
		Py_RETURN_NONE;
	return PyLong_FromLongLong(next);
}

static PyObject *
trigger_next(evfnpy_trigger *tr, PyObject *unused)
{
	PyObject *ns = trigger_next_ns(tr, NULL);
	if (!ns || ns == Py_None)
		return ns;
	long long v = PyLong_AsLongLong(ns);
	Py_DECREF(ns);
	return evfnpy_datetime_from_ns(v);
}

static PyObject *
trigger_stats(evfnpy_trigger *tr, PyObject *unused)
{
	static const char *const names[] = { "fired", "refused", "shutdown",
		                             "missed", "overflows" };
	_Static_assert(sizeof(names) / sizeof(names[0]) ==
	                       EVFN_TRIGGER_STAT_COUNT,
	               "one name per trigger counter");
	if (check_live(tr) < 0)
		return NULL;
	uint64_t values[EVFN_TRIGGER_STAT_COUNT];
	for (int i = 0; i < EVFN_TRIGGER_STAT_COUNT; i++)
		values[i] = evfn_trigger_get_stat(tr->t, (evfn_trigger_stat)i);
	return evfnpy_counters(names, values, EVFN_TRIGGER_STAT_COUNT);
}

static PyObject *
trigger_enter(evfnpy_trigger *tr, PyObject *unused)
{
	Py_INCREF(tr);
	return (PyObject *)tr;
}

static PyObject *
trigger_exit(evfnpy_trigger *tr, PyObject *args)
{
	close_trigger(tr);
	Py_RETURN_FALSE;
}

static PyObject *
get_closed(evfnpy_trigger *tr, void *unused)
{
	return PyBool_FromLong(tr->t == NULL);
}

static PyObject *
get_kind(evfnpy_trigger *tr, void *unused)
{
	return PyUnicode_FromString(kind_names[tr->kind]);
}

static PyObject *
get_name(evfnpy_trigger *tr, void *unused)
{
	Py_INCREF(tr->name);
	return tr->name;
}

static PyObject *
trigger_repr(evfnpy_trigger *tr)
{
	return PyUnicode_FromFormat("<evfn.Trigger %s name=%R%s>",
	                            kind_names[tr->kind], tr->name,
	                            tr->t ? "" : " closed");
}

/* The keywords every trigger creator takes after its own. */
#define DELIVERY_KW "type", "function", "name"

static PyObject *
rt_schedule(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "expr", "tz", DELIVERY_KW, "missed",
		                  "tolerance", NULL };
	const char *expr, *tz = NULL;
	struct trigger_args a = { .name = Py_None, .tolerance = Py_None };
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|zzzOzO:schedule", kwlist,
	                                 &expr, &tz, &a.type, &a.function,
	                                 &a.name, &a.missed, &a.tolerance) ||
	    evfnpy_runtime_check_open(self) < 0)
		return NULL;
	evfn_trigger_options *o;
	if (build_options(&a, &o) < 0)
		return NULL;
	evfn_trigger *t;
	int rc = evfn_timer_add(self->rt, expr, tz, a.type, o, &t);
	evfn_trigger_options_free(o);
	if (rc == EVFN_ESCHEDULE || rc == EVFN_ETIMEZONE) {
		/* The parser's reason, as evfn.Schedule reports it. */
		PyObject *s = PyObject_CallFunction(
			(PyObject *)&evfnpy_schedule_type, "sz", expr, tz);
		Py_XDECREF(s);
		if (!s)
			return NULL;
	}
	if (rc < 0)
		return evfnpy_raise(rc);
	return wrap(self, t, KIND_SCHEDULE, a.name, NULL);
}

static PyObject *
rt_watch(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "directory", "glob", DELIVERY_KW,
		                  "existing", NULL };
	PyObject *dir;
	const char *glob = NULL;
	struct trigger_args a = { .name = Py_None, .tolerance = Py_None };
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|zzzOp:watch", kwlist,
	                                 PyUnicode_FSConverter, &dir, &glob,
	                                 &a.type, &a.function, &a.name,
	                                 &a.existing))
		return NULL;
	evfn_trigger_options *o = NULL;
	evfn_trigger *t = NULL;
	int rc = 0;
	if (evfnpy_runtime_check_open(self) == 0 &&
	    build_options(&a, &o) == 0) {
		rc = evfn_watch_add(self->rt, PyBytes_AS_STRING(dir), glob,
		                    a.type, o, &t);
		if (rc < 0)
			evfnpy_raise_detail(rc, PyBytes_AS_STRING(dir));
	}
	evfn_trigger_options_free(o);
	Py_DECREF(dir);
	if (!t)
		return NULL;
	return wrap(self, t, KIND_WATCH, a.name, NULL);
}

static PyObject *
rt_on_signal(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "signo", DELIVERY_KW, NULL };
	int signo;
	struct trigger_args a = { .name = Py_None, .tolerance = Py_None };
	if (!PyArg_ParseTupleAndKeywords(args, kw, "i|zzO:on_signal", kwlist,
	                                 &signo, &a.type, &a.function,
	                                 &a.name) ||
	    evfnpy_runtime_check_open(self) < 0)
		return NULL;
	evfn_trigger_options *o;
	if (build_options(&a, &o) < 0)
		return NULL;
	evfn_trigger *t;
	int rc = evfn_signal_add(self->rt, signo, a.type, o, &t);
	evfn_trigger_options_free(o);
	if (rc < 0)
		return evfnpy_raise(rc);
	return wrap(self, t, KIND_SIGNAL, a.name, NULL);
}

static PyObject *
rt_on_fd(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "fd", "read", "write", "edge", DELIVERY_KW,
		                  NULL };
	PyObject *file;
	int rd = 1, wr = 0, edge = 0;
	struct trigger_args a = { .name = Py_None, .tolerance = Py_None };
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pppzzO:on_fd", kwlist,
	                                 &file, &rd, &wr, &edge, &a.type,
	                                 &a.function, &a.name) ||
	    evfnpy_runtime_check_open(self) < 0)
		return NULL;
	/* An int or anything with fileno(), as select() takes. */
	int fd = PyObject_AsFileDescriptor(file);
	if (fd < 0)
		return NULL;
	evfn_trigger_options *o;
	if (build_options(&a, &o) < 0)
		return NULL;
	int flags = (rd ? EVFN_FD_READ : 0) | (wr ? EVFN_FD_WRITE : 0) |
	            (edge ? EVFN_FD_EDGE : 0);
	evfn_trigger *t;
	int rc = evfn_fd_add(self->rt, fd, flags, a.type, o, &t);
	evfn_trigger_options_free(o);
	if (rc < 0)
		return evfnpy_raise(rc);
	/* A file object stays open (and its descriptor valid) while the
	 * trigger polls it. */
	return wrap(self, t, KIND_FD, a.name,
	            PyLong_Check(file) ? NULL : file);
}

static PyMethodDef trigger_methods[] = {
	{ "close", (PyCFunction)trigger_close, METH_NOARGS,
	  "Stop the trigger; idempotent. Events it published go on." },
	{ "next_ns", (PyCFunction)trigger_next_ns, METH_NOARGS,
	  "A schedule's next fire time (ns since the epoch), or None." },
	{ "next", (PyCFunction)trigger_next, METH_NOARGS,
	  "A schedule's next fire time (aware UTC datetime), or None." },
	{ "stats", (PyCFunction)trigger_stats, METH_NOARGS,
	  "Counters: fired, refused, shutdown, missed, overflows." },
	{ "__enter__", (PyCFunction)trigger_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)trigger_exit, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef trigger_getset[] = {
	{ "closed", (getter)get_closed, NULL, "True once closed.", NULL },
	{ "kind", (getter)get_kind, NULL,
	  "'schedule', 'watch', 'signal' or 'fd'.", NULL },
	{ "name", (getter)get_name, NULL, "The trigger's name, or None.",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

PyTypeObject evfnpy_trigger_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "evfn.Trigger",
	.tp_doc = "A trigger feeding a runtime: schedule, directory watch, "
	          "signal or file descriptor. Create with Runtime.schedule(), "
	          "watch(), on_signal() or on_fd().",
	.tp_basicsize = sizeof(evfnpy_trigger),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)trigger_dealloc,
	.tp_repr = (reprfunc)trigger_repr,
	.tp_methods = trigger_methods,
	.tp_getset = trigger_getset,
};

/* The Runtime's methods from this file (schedule, watch, on_signal, on_fd); module.c adds
 * them to the type. */
const PyMethodDef evfnpy_trigger_methods[] = {
	{ "schedule", (PyCFunction)(void (*)(void))rt_schedule,
	  METH_VARARGS | METH_KEYWORDS,
	  "schedule(expr, tz=None, type=None, function=None, name=None, "
	  "missed='fire_once', tolerance=None) -> Trigger" },
	{ "watch", (PyCFunction)(void (*)(void))rt_watch,
	  METH_VARARGS | METH_KEYWORDS,
	  "watch(directory, glob=None, type=None, function=None, name=None, "
	  "existing=False) -> Trigger" },
	{ "on_signal", (PyCFunction)(void (*)(void))rt_on_signal,
	  METH_VARARGS | METH_KEYWORDS,
	  "on_signal(signo, type=None, function=None, name=None) -> Trigger" },
	{ "on_fd", (PyCFunction)(void (*)(void))rt_on_fd,
	  METH_VARARGS | METH_KEYWORDS,
	  "on_fd(fd, read=True, write=False, edge=False, type=None, "
	  "function=None, name=None) -> Trigger" },
	{ NULL, NULL, 0, NULL }
};
