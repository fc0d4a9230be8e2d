/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.PgSource and the Runtime methods that create one:
 * pg_changes() (PostgreSQL row changes through logical decoding) and
 * pg_listen() (LISTEN/NOTIFY), binding evfn/pg.h. Like triggers, an open
 * source is kept by its runtime (evfn_rt_free() refuses while it
 * lives) and closed before the runtime; it keeps a borrowed pointer back.
 * Closing waits for the loop thread, without the GIL, since a loop
 * handler written in Python may hold it meanwhile. Built only where evfn
 * has the pg source (EVFNPY_HAVE_PG).
 */
#include "evfnpy.h"

#ifdef EVFNPY_HAVE_PG

#include <evfn/pg.h>

typedef struct {
	PyObject_HEAD
	evfn_pg_source *src;   /* NULL once closed */
	evfnpy_runtime *owner; /* borrowed; NULL once closed */
	bool listen;
	PyObject *name;        /* the publication or the channel */
} evfnpy_pg;

static void
close_pg(evfnpy_pg *p)
{
	evfn_pg_source *src = p->src;
	evfnpy_runtime *owner = p->owner;
	if (!src)
		return;
	p->src = NULL;
	p->owner = NULL;
	Py_BEGIN_ALLOW_THREADS
	evfn_pg_source_free(src);
	Py_END_ALLOW_THREADS
	if (owner)
		evfnpy_runtime_detach(owner, (PyObject *)p);
}

static void
pg_dealloc(evfnpy_pg *p)
{
	/* Open sources are referenced by their runtime: only a closed one
	 * gets here. */
	Py_XDECREF(p->name);
	PyObject_Free(p);
}

static int
check_live(evfnpy_pg *p)
{
	if (p->src)
		return 0;
	evfnpy_raise_detail(EVFN_EINVAL, "the source is closed");
	return -1;
}

/* The options both creators take; None for the defaults. */
struct pg_args {
	const char *conninfo;
	const char *slot;
	int create_slot;
	const char *type_prefix;
	PyObject *max_in_flight;
	PyObject *feedback;
	PyObject *reconnect; /* (base, cap) in seconds */
};

static int
build_options(const struct pg_args *a, evfn_pg_options **out)
{
	evfn_pg_options *o;
	*out = NULL;
	int rc = evfn_pg_options_new(&o);
	if (rc == 0 && a->conninfo)
		rc = evfn_pg_options_set_conninfo(o, a->conninfo);
	if (rc == 0 && (a->slot || !a->create_slot))
		rc = evfn_pg_options_set_slot(o, a->slot, a->create_slot);
	if (rc == 0 && a->type_prefix)
		rc = evfn_pg_options_set_type_prefix(o, a->type_prefix);
	if (rc < 0) {
		evfnpy_raise(rc);
		goto fail;
	}
	if (a->max_in_flight != Py_None) {
		int n;
		if (evfnpy_opt_int(a->max_in_flight, "max_in_flight", &n) < 0 ||
		    evfnpy_option_result(evfn_pg_options_set_max_in_flight(o, n),
		                         "max_in_flight", a->max_in_flight) < 0)
			goto fail;
	}
	if (a->feedback != Py_None) {
		int64_t ms;
		if (evfnpy_seconds_to_ms(a->feedback, "feedback", &ms) < 0 ||
		    evfnpy_option_result(evfn_pg_options_set_feedback_ms(o, ms),
		                         "feedback", a->feedback) < 0)
			goto fail;
	}
	if (a->reconnect != Py_None) {
		PyObject *base, *cap;
		int64_t base_ms, cap_ms;
		if (!PyArg_ParseTuple(a->reconnect, "OO;reconnect must be "
		                      "(base, cap) in seconds", &base, &cap) ||
		    evfnpy_seconds_to_ms(base, "reconnect", &base_ms) < 0 ||
		    evfnpy_seconds_to_ms(cap, "reconnect", &cap_ms) < 0 ||
		    evfnpy_option_result(
			    evfn_pg_options_set_reconnect(o, base_ms, cap_ms),
			    "reconnect", a->reconnect) < 0)
			goto fail;
	}
	*out = o;
	return 0;
fail:
	evfn_pg_options_free(o);
	return -1;
}

static PyObject *
create(evfnpy_runtime *self, const char *name, const char *function,
       const struct pg_args *a, bool listen)
{
	if (evfnpy_runtime_check_open(self) < 0)
		return NULL;
	evfn_pg_options *o;
	if (build_options(a, &o) < 0)
		return NULL;
	evfn_pg_source *src;
	int rc = listen ? evfn_pg_listen_new(&src, self->rt, name, function, o)
	                : evfn_pg_source_new(&src, self->rt, name, function, o);
	evfn_pg_options_free(o);
	if (rc < 0)
		return evfnpy_raise_detail(rc, name);
	evfnpy_pg *p = PyObject_New(evfnpy_pg, &evfnpy_pg_type);
	if (!p) {
		Py_BEGIN_ALLOW_THREADS
		evfn_pg_source_free(src);
		Py_END_ALLOW_THREADS
		return NULL;
	}
	p->src = src;
	p->owner = self;
	p->listen = listen;
	p->name = PyUnicode_FromString(name);
	if (!p->name || evfnpy_runtime_attach(self, (PyObject *)p) < 0) {
		close_pg(p);
		Py_DECREF(p);
		return NULL;
	}
	return (PyObject *)p;
}

/* pg_changes(publication, function, conninfo=None, slot=None,
 * create_slot=True, type_prefix=None, max_in_flight=None, feedback=None,
 * reconnect=None) -> PgSource */
static PyObject *
rt_pg_changes(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "publication", "function", "conninfo",
		                  "slot", "create_slot", "type_prefix",
		                  "max_in_flight", "feedback", "reconnect",
		                  NULL };
	const char *publication, *function;
	struct pg_args a = { .create_slot = 1, .max_in_flight = Py_None,
		             .feedback = Py_None, .reconnect = Py_None };
	if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|zzpzOOO:pg_changes",
	                                 kwlist, &publication, &function,
	                                 &a.conninfo, &a.slot, &a.create_slot,
	                                 &a.type_prefix, &a.max_in_flight,
	                                 &a.feedback, &a.reconnect))
		return NULL;
	return create(self, publication, function, &a, false);
}

/* pg_listen(channel, function, conninfo=None, type_prefix=None,
 * reconnect=None) -> PgSource */
static PyObject *
rt_pg_listen(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "channel", "function", "conninfo",
		                  "type_prefix", "reconnect", NULL };
	const char *channel, *function;
	struct pg_args a = { .create_slot = 1, .max_in_flight = Py_None,
		             .feedback = Py_None, .reconnect = Py_None };
	if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|zzO:pg_listen", kwlist,
	                                 &channel, &function, &a.conninfo,
	                                 &a.type_prefix, &a.reconnect))
		return NULL;
	return create(self, channel, function, &a, true);
}

static PyObject *
pg_close(evfnpy_pg *p, PyObject *unused)
{
	close_pg(p);
	Py_RETURN_NONE;
}

static PyObject *
pg_stats(evfnpy_pg *p, PyObject *unused)
{
	static const char *const names[] = { "submitted", "ended", "skipped",
		                             "pauses", "connects", "dropped",
		                             "confirmed_lsn" };
	_Static_assert(sizeof(names) / sizeof(names[0]) == EVFN_PG_STAT_COUNT,
	               "one name per pg counter");
	if (check_live(p) < 0)
		return NULL;
	uint64_t values[EVFN_PG_STAT_COUNT];
	for (int i = 0; i < EVFN_PG_STAT_COUNT; i++)
		values[i] = evfn_pg_source_stat(p->src, (evfn_pg_stat)i);
	return evfnpy_counters(names, values, EVFN_PG_STAT_COUNT);
}

static PyObject *
pg_enter(evfnpy_pg *p, PyObject *unused)
{
	Py_INCREF(p);
	return (PyObject *)p;
}

static PyObject *
pg_exit(evfnpy_pg *p, PyObject *args)
{
	close_pg(p);
	Py_RETURN_FALSE;
}

static PyObject *
get_closed(evfnpy_pg *p, void *unused)
{
	return PyBool_FromLong(p->src == NULL);
}

static PyObject *
get_status(evfnpy_pg *p, void *unused)
{
	if (check_live(p) < 0)
		return NULL;
	return PyLong_FromLong(evfn_pg_source_status(p->src));
}

static PyObject *
get_kind(evfnpy_pg *p, void *unused)
{
	return PyUnicode_FromString(p->listen ? "listen" : "changes");
}

static PyObject *
get_name(evfnpy_pg *p, void *unused)
{
	Py_INCREF(p->name);
	return p->name;
}

static PyObject *
pg_repr(evfnpy_pg *p)
{
	return PyUnicode_FromFormat("<evfn.PgSource %s %R%s>",
	                            p->listen ? "listen" : "changes", p->name,
	                            p->src ? "" : " closed");
}

static PyMethodDef pg_methods[] = {
	{ "close", (PyCFunction)pg_close, METH_NOARGS,
	  "Stop the source; idempotent. Events still running finish, but "
	  "their ends no longer move the slot." },
	{ "stats", (PyCFunction)pg_stats, METH_NOARGS,
	  "Counters: submitted, ended, skipped, pauses, connects, dropped, "
	  "confirmed_lsn." },
	{ "__enter__", (PyCFunction)pg_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)pg_exit, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef pg_getset[] = {
	{ "closed", (getter)get_closed, NULL, "True once closed.", NULL },
	{ "status", (getter)get_status, NULL,
	  "0 while streaming or listening; an error code (evfn.ECONNREFUSED "
	  "while reconnecting, or why the source stopped).", NULL },
	{ "kind", (getter)get_kind, NULL, "'changes' or 'listen'.", NULL },
	{ "name", (getter)get_name, NULL, "The publication or the channel.",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

PyTypeObject evfnpy_pg_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "evfn.PgSource",
	.tp_doc = "PostgreSQL row changes (logical decoding) or notifications "
	          "(LISTEN) feeding a function. Create with "
	          "Runtime.pg_changes() or pg_listen().",
	.tp_basicsize = sizeof(evfnpy_pg),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)pg_dealloc,
	.tp_repr = (reprfunc)pg_repr,
	.tp_methods = pg_methods,
	.tp_getset = pg_getset,
};

/* The Runtime's methods from this file (pg_changes, pg_listen); module.c adds
 * them to the type. */
const PyMethodDef evfnpy_pg_methods[] = {
	{ "pg_changes", (PyCFunction)(void (*)(void))rt_pg_changes,
	  METH_VARARGS | METH_KEYWORDS,
	  "pg_changes(publication, function, conninfo=None, slot=None, "
	  "create_slot=True, type_prefix=None, max_in_flight=None, "
	  "feedback=None, reconnect=None) -> PgSource" },
	{ "pg_listen", (PyCFunction)(void (*)(void))rt_pg_listen,
	  METH_VARARGS | METH_KEYWORDS,
	  "pg_listen(channel, function, conninfo=None, type_prefix=None, "
	  "reconnect=None) -> PgSource" },
	{ NULL, NULL, 0, NULL }
};

#endif /* EVFNPY_HAVE_PG */
