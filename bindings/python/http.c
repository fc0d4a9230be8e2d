/* SPDX-License-Identifier: MIT */
/*
 * evfn._evfn.HttpServer: an HTTP server on the runtime's event_base whose
 * routes ("POST /pay") turn requests into events for functions, binding
 * evfn/http.h. Like triggers, an open server is kept by its runtime
 * (evfn_rt_free() refuses while it lives) and closed before the
 * runtime; it keeps a borrowed pointer back. Creating, routing and freeing
 * wait for evfn's loop thread, which never takes the GIL, so they run with
 * the GIL held.
 */
#include "evfnpy.h"

typedef struct {
	PyObject_HEAD
	evfn_http *http;       /* NULL once closed */
	evfnpy_runtime *owner; /* borrowed; NULL once closed */
	int port;
} evfnpy_http;

static int
check_live(evfnpy_http *h)
{
	if (h->http)
		return 0;
	evfnpy_raise_detail(EVFN_EINVAL, "the server is closed");
	return -1;
}

static void
close_http(evfnpy_http *h)
{
	evfn_http *http = h->http;
	evfnpy_runtime *owner = h->owner;
	if (!http)
		return;
	h->http = NULL;
	h->owner = NULL;
	evfn_http_free(http);
	if (owner)
		evfnpy_runtime_detach(owner, (PyObject *)h);
}

static void
http_dealloc(evfnpy_http *h)
{
	/* Open servers are referenced by their runtime: only a closed one
	 * gets here. */
	evfn_http_free(h->http);
	PyObject_Free(h);
}

static int
build_options(PyObject *max_body, PyObject *timeout, PyObject *max_conn,
              const char *address, int port, const char *health,
              evfn_http_options **out)
{
	evfn_http_options *o;
	int64_t ms = 0;
	int64_t n = 0;
	*out = NULL;
	int rc = evfn_http_options_new(&o);
	if (rc == 0)
		rc = evfn_http_options_set_address(o, address, port);
	if (rc == 0 && max_body != Py_None) {
		if (evfnpy_opt_int64(max_body, "max_body", &n) < 0)
			goto fail;
		rc = evfn_http_options_set_max_body(o, n);
	}
	if (rc == 0 && timeout != Py_None) {
		if (evfnpy_seconds_to_ms(timeout, "timeout", &ms) < 0)
			goto fail;
		rc = evfn_http_options_set_timeout_ms(o, ms);
	}
	if (rc == 0 && max_conn != Py_None) {
		int conns;
		if (evfnpy_opt_int(max_conn, "max_connections", &conns) < 0)
			goto fail;
		rc = evfn_http_options_set_max_connections(o, conns);
	}
	if (rc == 0 && health)
		rc = evfn_http_options_set_health_path(o, health);
	if (rc < 0) {
		evfnpy_raise(rc);
		goto fail;
	}
	*out = o;
	return 0;
fail:
	evfn_http_options_free(o);
	return -1;
}

/* http(address="127.0.0.1", port=0, max_body=None, timeout=None,
 * max_connections=None, health_path=None) -> HttpServer */
static PyObject *
rt_http(evfnpy_runtime *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "address", "port", "max_body", "timeout",
		                  "max_connections", "health_path", NULL };
	const char *address = "127.0.0.1", *health = NULL;
	int port = 0;
	PyObject *max_body = Py_None, *timeout = Py_None, *max_conn = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|siOOOz:http", kwlist,
	                                 &address, &port, &max_body, &timeout,
	                                 &max_conn, &health) ||
	    evfnpy_runtime_check_open(self) < 0)
		return NULL;
	evfn_http_options *o;
	if (build_options(max_body, timeout, max_conn, address, port, health,
	                  &o) < 0)
		return NULL;
	evfn_http *http;
	int rc = evfn_http_new(&http, self->rt, o);
	evfn_http_options_free(o);
	if (rc < 0)
		return evfnpy_raise_detail(rc, address);
	evfnpy_http *h = PyObject_New(evfnpy_http, &evfnpy_http_type);
	if (!h) {
		evfn_http_free(http);
		return NULL;
	}
	h->http = http;
	h->owner = self;
	h->port = evfn_http_port(http);
	if (evfnpy_runtime_attach(self, (PyObject *)h) < 0) {
		close_http(h);
		Py_DECREF(h);
		return NULL;
	}
	return (PyObject *)h;
}

/* route(route, function, async_=False, timeout=None, stripe_secret=None,
 * stripe_tolerance=300, github_secret=None, bearer=None) */
static PyObject *
http_route(evfnpy_http *h, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "route", "function", "async_", "timeout",
		                  "stripe_secret", "stripe_tolerance",
		                  "github_secret", "bearer", NULL };
	const char *route, *fn, *stripe = NULL, *github = NULL, *bearer = NULL;
	int async = 0;
	long long tolerance = 300;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|pOzLzz:route", kwlist,
	                                 &route, &fn, &async, &timeout,
	                                 &stripe, &tolerance, &github,
	                                 &bearer) ||
	    check_live(h) < 0)
		return NULL;
	int64_t ms = 0;
	if (timeout != Py_None &&
	    evfnpy_seconds_to_ms(timeout, "timeout", &ms) < 0)
		return NULL;
	evfn_route_options *o;
	int rc = evfn_route_options_new(&o);
	if (rc == 0 && async)
		rc = evfn_route_options_set_async(o, true);
	if (rc == 0 && timeout != Py_None)
		rc = evfn_route_options_set_timeout_ms(o, ms);
	if (rc == 0 && stripe)
		rc = evfn_route_options_set_stripe_secret(o, stripe, tolerance);
	if (rc == 0 && github)
		rc = evfn_route_options_set_github_secret(o, github);
	if (rc == 0 && bearer)
		rc = evfn_route_options_set_bearer_token(o, bearer);
	if (rc == 0)
		rc = evfn_http_route(h->http, route, fn, o);
	evfn_route_options_free(o);
	if (rc < 0)
		return evfnpy_raise_detail(rc, route);
	Py_RETURN_NONE;
}

static PyObject *
http_close(evfnpy_http *h, PyObject *unused)
{
	close_http(h);
	Py_RETURN_NONE;
}

static PyObject *
http_enter(evfnpy_http *h, PyObject *unused)
{
	Py_INCREF(h);
	return (PyObject *)h;
}

static PyObject *
http_exit(evfnpy_http *h, PyObject *args)
{
	close_http(h);
	Py_RETURN_FALSE;
}

static PyObject *
get_port(evfnpy_http *h, void *unused)
{
	return PyLong_FromLong(h->port);
}

static PyObject *
get_closed(evfnpy_http *h, void *unused)
{
	return PyBool_FromLong(h->http == NULL);
}

static PyMethodDef http_methods[] = {
	{ "route", (PyCFunction)(void (*)(void))http_route,
	  METH_VARARGS | METH_KEYWORDS,
	  "route(route, function, async_=False, timeout=None, "
	  "stripe_secret=None, stripe_tolerance=300, github_secret=None, "
	  "bearer=None): send requests for \"METHOD /path\" to a function." },
	{ "close", (PyCFunction)http_close, METH_NOARGS,
	  "Stop listening and free the server; idempotent." },
	{ "__enter__", (PyCFunction)http_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)http_exit, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef http_getset[] = {
	{ "port", (getter)get_port, NULL, "The port listened on.", NULL },
	{ "closed", (getter)get_closed, NULL, "True once closed.", NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

PyTypeObject evfnpy_http_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "evfn.HttpServer",
	.tp_doc = "An HTTP server routing requests to functions; create with "
	          "Runtime.http().",
	.tp_basicsize = sizeof(evfnpy_http),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)http_dealloc,
	.tp_methods = http_methods,
	.tp_getset = http_getset,
};

/* The Runtime's methods from this file (http); module.c adds
 * them to the type. */
const PyMethodDef evfnpy_http_methods[] = {
	{ "http", (PyCFunction)(void (*)(void))rt_http,
	  METH_VARARGS | METH_KEYWORDS,
	  "http(address='127.0.0.1', port=0, max_body=None, timeout=None, "
	  "max_connections=None, health_path=None) -> HttpServer" },
	{ NULL, NULL, 0, NULL }
};
