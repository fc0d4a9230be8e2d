/* SPDX-License-Identifier: MIT */
/*
 * The HTTP trigger: routes "METHOD /path" to functions on an evhttp
 * server, its own (evfn_http_new(), listening through http-listen.c) or a
 * host's (evfn_http_attach(), mounted path by path, or fed request by
 * request through evfn_http_handle()); one dispatcher serves all three. A
 * request is checked for ambiguous framing, authenticated (bearer token,
 * Stripe or GitHub signature), turned into events by the CloudEvents
 * binding (cloudevents.c) and submitted; synchronous routes answer from
 * the result callback or with 504 at the route's deadline, asynchronous
 * ones with 202 at once. Once an event is admitted its answer cannot turn
 * into an error: everything that could fail is checked before admission.
 * Closing waits for the answers that are due. Everything that touches a
 * server runs on the loop thread; calls from other threads are carried
 * there and waited for, so the trigger needs no lock of its own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>

#include <evfn/alloc.h>
#include <evfn/emit.h>
#include <evfn/errors.h>
#include <evfn/event.h>
#include <evfn/http.h>
#include <evfn/libevent.h>
#include <evfn/metrics.h>

#include "cloudevents-internal.h"
#include "common-internal.h"
#include "hash-internal.h"
#include "http-listen-internal.h"
#include "http-reply-internal.h"
#include "source-internal.h"
#include "signature-internal.h"
#include "status-internal.h"
#include "text-internal.h"

#define DEFAULT_MAX_BODY (INT64_C(1) << 20)
#define DEFAULT_IO_TIMEOUT_MS INT64_C(30000)
#define DEFAULT_ROUTE_TIMEOUT_MS INT64_C(30000)
#define DEFAULT_HEALTH_PATH "/healthz"
#define DEFAULT_METRICS_PATH "/metrics"
/* Request line plus headers; evhttp answers a longer head with 400. */
#define MAX_HEADERS_SIZE (64 * 1024)
/* Longest path accepted in a route. */
#define PATH_MAX_LEN 1024
/* A path as long as any the trigger serves: a route, or one of the
 * status page's. */
#define SERVED_PATH_MAX (PATH_MAX_LEN + 64)

struct evfn_http_options {
	char *address;
	int port;
	int64_t max_body;
	int64_t timeout_ms;
	int max_conns;
	char *health;
	char *metrics;
	char *status;       /* NULL: no status page */
	char *status_token;
};

struct evfn_route_options {
	bool async;
	bool require_ce;
	int64_t timeout_ms;
	char *stripe_secret;
	int64_t stripe_tolerance_s;
	char *github_secret;
	char *bearer;
};

/* One method of one path. */
struct route {
	struct route *next;
	enum evhttp_cmd_type method;
	char *fn;
	struct evfn_route_options opts;
	struct timeval deadline;
	/* A libevent common timeout for deadline when one was available:
	 * every request of the route then shares one timer queue. */
	const struct timeval *deadline_tv;
};

struct path_entry {
	UT_hash_handle hh;
	char *path;
	struct route *routes;
	bool mounted; /* on the host's server (evhttp_set_cb()) */
};

/* A synchronous request waiting for its result. It lives until the result
 * callback, which evfn_submit() guarantees exactly once, even when the
 * request was answered 504 first or the trigger was freed meanwhile. */
struct pending {
	struct pending *prev, *next;
	struct evfn_http *http;     /* NULL once the trigger is gone */
	struct evhttp_request *req; /* NULL once answered */
	evfn_event *ev;             /* a reference, for its id */
	struct event *timer;
};

struct evfn_http {
	evfn_rt *rt;
	struct event_base *base;
	/* The server: ours (listener set), the host's (attached), or none
	 * (attached to no server: requests come through
	 * evfn_http_handle()). */
	struct evhttp *evh;
	bool attached;
	struct evfn__listener *listener;
	int64_t io_timeout_ms;
	char *health;
	char *metrics;
	char *status;
	char *status_token;
	struct path_entry *paths;
	struct pending *pending;
	/* The Date header of the second in date_s, so that the 202 of an
	 * asynchronous request does not format one each time (evhttp
	 * formats its own for every reply that has none). */
	time_t date_s;
	char date[40];
	/* Closing (evfn_http_free()): the freeing thread waits on
	 * close_cond until the loop sets closed. */
	bool closing;
	struct event *grace;
	pthread_mutex_t close_lock;
	pthread_cond_t close_cond;
	bool closed;
};

/* ---- options --------------------------------------------------------- */

int
evfn_http_options_new(evfn_http_options **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	evfn_http_options *o = evfn__calloc(1, sizeof(*o));
	if (!o || !(o->health = evfn__strdup(DEFAULT_HEALTH_PATH)) ||
	    !(o->metrics = evfn__strdup(DEFAULT_METRICS_PATH))) {
		evfn__free(o);
		return EVFN_ENOMEM;
	}
	o->max_body = DEFAULT_MAX_BODY;
	o->timeout_ms = DEFAULT_IO_TIMEOUT_MS;
	*out = o;
	return 0;
}

void
evfn_http_options_free(evfn_http_options *o)
{
	if (!o)
		return;
	evfn__free(o->address);
	evfn__free(o->health);
	evfn__free(o->metrics);
	evfn__free(o->status);
	evfn__free(o->status_token);
	evfn__free(o);
}

int
evfn_http_options_set_address(evfn_http_options *o, const char *address,
                              int port)
{
	if (!o)
		return EVFN_EINVAL;
	if (port < 0 || port > 65535)
		return EVFN_ERANGE;
	struct sockaddr_storage ss;
	socklen_t len;
	if (address && !evfn__parse_address(address, port, &ss, &len))
		return EVFN_EINVAL;
	char *copy = NULL;
	if (address && !(copy = evfn__strdup(address)))
		return EVFN_ENOMEM;
	evfn__free(o->address);
	o->address = copy;
	o->port = port;
	return 0;
}

int
evfn_http_options_set_max_body(evfn_http_options *o, int64_t bytes)
{
	if (!o)
		return EVFN_EINVAL;
	if (bytes < 0)
		return EVFN_ERANGE;
	o->max_body = bytes;
	return 0;
}

int
evfn_http_options_set_timeout_ms(evfn_http_options *o, int64_t ms)
{
	if (!o)
		return EVFN_EINVAL;
	if (ms < 1)
		return EVFN_ERANGE;
	o->timeout_ms = ms;
	return 0;
}

int
evfn_http_options_set_max_connections(evfn_http_options *o, int n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 0)
		return EVFN_ERANGE;
	o->max_conns = n;
	return 0;
}

/* A path as routes and the health route take it: starts with '/', at
 * most PATH_MAX_LEN bytes, no blanks, controls, '?' or '#'. */
static bool
valid_path(const char *p, size_t n)
{
	if (n == 0 || n > PATH_MAX_LEN || p[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= ' ' || c == 0x7f || c == '?' || c == '#')
			return false;
	}
	return true;
}

/* Sets one of the built-in routes' paths (NULL turns it off). */
static int
set_builtin_path(char **slot, const char *path)
{
	if (path && !valid_path(path, strlen(path)))
		return EVFN_EROUTE;
	char *copy = NULL;
	if (path && !(copy = evfn__strdup(path)))
		return EVFN_ENOMEM;
	evfn__free(*slot);
	*slot = copy;
	return 0;
}

int
evfn_http_options_set_health_path(evfn_http_options *o, const char *path)
{
	return o ? set_builtin_path(&o->health, path) : EVFN_EINVAL;
}

int
evfn_http_options_set_metrics_path(evfn_http_options *o, const char *path)
{
	return o ? set_builtin_path(&o->metrics, path) : EVFN_EINVAL;
}

int
evfn_http_options_set_status(evfn_http_options *o, const char *path,
                             const char *token)
{
	if (!o || (path && (!token || !*token)))
		return EVFN_EINVAL;
	/* The page owns everything under path/, so "/" would swallow every
	 * route and a trailing '/' would make "path/data" ambiguous. */
	size_t n = path ? strlen(path) : 0;
	if (path && (n < 2 || path[n - 1] == '/'))
		return EVFN_EROUTE;
	char *copy = NULL;
	if (path && !(copy = evfn__strdup(token)))
		return EVFN_ENOMEM;
	int rc = set_builtin_path(&o->status, path);
	if (rc) {
		evfn__free(copy);
		return rc;
	}
	evfn__free(o->status_token);
	o->status_token = copy;
	return 0;
}

int
evfn_route_options_new(evfn_route_options **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = evfn__calloc(1, sizeof(**out));
	if (!*out)
		return EVFN_ENOMEM;
	(*out)->timeout_ms = DEFAULT_ROUTE_TIMEOUT_MS;
	return 0;
}

static void
route_options_clear(evfn_route_options *o)
{
	evfn__free(o->stripe_secret);
	evfn__free(o->github_secret);
	evfn__free(o->bearer);
}

void
evfn_route_options_free(evfn_route_options *o)
{
	if (!o)
		return;
	route_options_clear(o);
	evfn__free(o);
}

int
evfn_route_options_set_async(evfn_route_options *o, bool async)
{
	if (!o)
		return EVFN_EINVAL;
	o->async = async;
	return 0;
}

int
evfn_route_options_set_require_cloudevents(evfn_route_options *o,
                                           bool require)
{
	if (!o)
		return EVFN_EINVAL;
	o->require_ce = require;
	return 0;
}

int
evfn_route_options_set_timeout_ms(evfn_route_options *o, int64_t ms)
{
	if (!o)
		return EVFN_EINVAL;
	if (ms < 1)
		return EVFN_ERANGE;
	o->timeout_ms = ms;
	return 0;
}

/* Replaces a secret held by a builder with a copy of value. */
static int
set_secret(char **slot, const char *value)
{
	if (!value || !*value)
		return EVFN_EINVAL;
	char *copy = evfn__strdup(value);
	if (!copy)
		return EVFN_ENOMEM;
	evfn__free(*slot);
	*slot = copy;
	return 0;
}

int
evfn_route_options_set_stripe_secret(evfn_route_options *o,
                                     const char *secret, int64_t tolerance_s)
{
	if (!o)
		return EVFN_EINVAL;
	if (secret && *secret && tolerance_s < 1)
		return EVFN_ERANGE;
	int rc = set_secret(&o->stripe_secret, secret);
	if (rc == 0)
		o->stripe_tolerance_s = tolerance_s;
	return rc;
}

int
evfn_route_options_set_github_secret(evfn_route_options *o,
                                     const char *secret)
{
	return o ? set_secret(&o->github_secret, secret) : EVFN_EINVAL;
}

int
evfn_route_options_set_bearer_token(evfn_route_options *o, const char *token)
{
	return o ? set_secret(&o->bearer, token) : EVFN_EINVAL;
}

/* ---- answering ------------------------------------------------------- */

/* Answers 405 for a path that exists for other methods. */
static void
reply_not_allowed(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	                  allow);
	evfn__http_reply_error(req, 405, EVFN_EROUTE,
	                       "method not allowed for this path", NULL);
}

/* Answers 400 for a request whose framing could be read two ways, and
 * closes its connection: what follows on it cannot be trusted. */
static void
reply_bad_framing(struct evhttp_request *req, const char *why)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
	                  "close");
	evfn__http_reply_error(req, 400, EVFN_EPROTO, why, NULL);
}

/* The HTTP status for a refused admission, and whether to add
 * "Retry-After: 1" (the refusal is about load, and passes). */
static int
admission_status(int code, bool *retry)
{
	*retry = false;
	switch (code) {
	case EVFN_EQUEUEFULL:
		*retry = true;
		return 429;
	case EVFN_EUNHEALTHY:
	case EVFN_ECIRCUITOPEN:
		*retry = true;
		return 503;
	case EVFN_ESHUTDOWN:
		return 503;
	case EVFN_ENOFN:
		return 404;
	default:
		return 500;
	}
}

/* Answers a refused admission: the caller keeps the event, the client
 * learns whether and when to try again. */
static void
reply_admission(struct evhttp_request *req, int code, json_t *extra)
{
	bool retry;
	int status = admission_status(code, &retry);
	if (retry)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		                  "Retry-After", "1");
	evfn__http_reply_error(req, status, code, NULL, extra);
}

/* Adds the Date header for now, formatted once a second. */
static void
add_date(struct evfn_http *http, struct evkeyvalq *headers)
{
	struct timeval now;
	/* The loop's cached time: no clock read per request. */
	if (event_base_gettimeofday_cached(http->base, &now) != 0)
		return; /* evhttp then adds its own */
	if (now.tv_sec != http->date_s || !http->date[0]) {
		struct tm tm;
		time_t t = now.tv_sec;
		int len = gmtime_r(&t, &tm)
		                  ? evutil_date_rfc1123(http->date,
		                                        sizeof(http->date), &tm)
		                  : -1;
		if (len <= 0 || (size_t)len >= sizeof(http->date)) {
			http->date[0] = '\0';
			return;
		}
		http->date_s = now.tv_sec;
	}
	evhttp_add_header(headers, "Date", http->date);
}

static int
put_ids(struct evbuffer *out, evfn_event *const *events, size_t n)
{
	int rc = evbuffer_add(out, "[", 1);
	for (size_t i = 0; i < n; i++) {
		const char *id = evfn_event_id(events[i]);
		id = id ? id : "";
		if (i)
			rc |= evbuffer_add(out, ",", 1);
		rc |= evfn__json_put_string(out, id, strlen(id));
	}
	return rc | evbuffer_add(out, "]", 1);
}

/*
 * Answers 202 for admitted events: one, {"id": "<id>"}; a batch,
 * {"ids": [...]} with the admitted ones, and when admission stopped at
 * event `taken` of n with code refused, "refused": {"error", "message",
 * "ids"} for the rest. It is the answer to events that are on their way,
 * so nothing turns it into an error: short of memory the body is cut,
 * and the status still says that they were taken. Built by hand (ids are
 * CloudEvents strings, checked before admission): this is the whole
 * reply of an asynchronous request, on the intake's hot path. Unlike the
 * error answers it has no Cache-Control: no-store, which would change
 * nothing here: a 202 is not heuristically cacheable and carries no
 * freshness (RFC 9111 4.2.2), and each header costs evhttp a formatted
 * write.
 */
static void
reply_accepted(struct evfn_http *http, struct evhttp_request *req,
               evfn_event *const *events, size_t n, bool batch, size_t taken,
               int refused)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	int rc;
	if (!batch) {
		const char *id = evfn_event_id(events[0]);
		id = id ? id : "";
		rc = evbuffer_add(out, "{\"id\":", 6);
		rc |= evfn__json_put_string(out, id, strlen(id));
	} else {
		rc = evbuffer_add(out, "{\"ids\":", 7);
		rc |= put_ids(out, events, taken);
		if (taken < n) {
			const char *msg = evfn_strerror(refused);
			rc |= evbuffer_add_printf(out,
			                          ",\"refused\":{\"error\":\"%s\","
			                          "\"message\":",
			                          evfn_err_name(refused)) < 0;
			rc |= evfn__json_put_string(out, msg, strlen(msg));
			rc |= evbuffer_add(out, ",\"ids\":", 7);
			rc |= put_ids(out, events + taken, n - taken);
			rc |= evbuffer_add(out, "}", 1);
			bool retry;
			admission_status(refused, &retry);
			if (retry)
				evhttp_add_header(h, "Retry-After", "1");
		}
	}
	rc |= evbuffer_add(out, "}", 1);
	if (rc)
		evbuffer_drain(out, evbuffer_get_length(out));
	else
		evhttp_add_header(h, "Content-Type", "application/json");
	add_date(http, h);
	evhttp_send_reply(req, 202, NULL, NULL);
}

/* Headers a handler may not set: they frame the message, and a wrong
 * value would desynchronise the connection. */
static bool
framing_header(const char *name)
{
	return strcasecmp(name, "Content-Length") == 0 ||
	       strcasecmp(name, "Transfer-Encoding") == 0 ||
	       strcasecmp(name, "Connection") == 0;
}

/* Parses the "status" metadata: three digits, 100-599. */
static int
meta_status(const char *s)
{
	if (!s)
		return 200;
	if (strlen(s) != 3 || s[0] < '1' || s[0] > '5' || s[1] < '0' ||
	    s[1] > '9' || s[2] < '0' || s[2] > '9')
		return -1;
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

static void
reply_result(struct evhttp_request *req, const evfn_result *res)
{
	int code = evfn_result_code(res);
	if (code != 0) {
		int status = code == EVFN_EHANDEDBACK ? 503
		           : code == EVFN_EFAILED || code == EVFN_EEXHAUSTED ||
		                     code == EVFN_EEXPIRED
		                   ? 502
		                   : 500;
		json_int_t attempts = (json_int_t)evfn_result_attempts(res);
		json_t *extra = json_pack("{s:I}", "attempts", attempts);
		evfn__http_reply_error(req, status, code,
		                       evfn_result_error(res), extra);
		return;
	}
	int status = meta_status(evfn_result_meta(res, "status"));
	if (status < 0) {
		evfn__http_reply_error(req, 502, EVFN_EINVAL,
		                       "handler set an invalid status", NULL);
		return;
	}
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	const char *key, *value;
	for (size_t i = 0; (value = evfn_result_meta_at(res, i, &key)); i++)
		if (strncasecmp(key, "header.", 7) == 0 && key[7] &&
		    !framing_header(key + 7))
			/* evhttp refuses names and values that would split
			 * the header; such a pair is left out. */
			evhttp_add_header(headers, key + 7, value);
	if (!evhttp_find_header(headers, "Content-Type"))
		evhttp_add_header(headers, "Content-Type",
		                  "application/octet-stream");
	size_t len;
	const void *data = evfn_result_data(res, &len);
	if (len)
		evbuffer_add(evhttp_request_get_output_buffer(req), data, len);
	evhttp_send_reply(req, status, NULL, NULL);
}

/* ---- synchronous requests -------------------------------------------- */

static void close_progress(void *arg);

static void
pending_unlink(struct pending *p)
{
	struct evfn_http *http = p->http;
	if (p->prev)
		p->prev->next = p->next;
	else
		http->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	event_free(p->timer);
	p->timer = NULL;
	p->http = NULL;
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pending *p = arg;
	struct evhttp_request *req = p->req;
	p->req = NULL;
	/* The record stays for the result callback, which frees it. */
	pending_unlink(p);
	evfn__http_reply_error(req, 504, EVFN_ETIMEDOUT,
	                       "no result within the route's timeout", NULL);
}

static void
on_result(const evfn_result *res, void *arg)
{
	struct pending *p = arg;
	if (p->req) {
		struct evfn_http *http = p->http;
		struct evhttp_request *req = p->req;
		p->req = NULL;
		pending_unlink(p);
		reply_result(req, res);
		close_progress(http);
	}
	evfn_event_unref(p->ev);
	evfn__free(p);
}

/* Answers every request still waiting for a result whose event is not
 * over: the trigger is closing. The event was admitted and runs on, so
 * the answer is the one an asynchronous route gives (202 and its id):
 * an error would have the client send it again. */
static void
answer_pending_closed(struct evfn_http *http)
{
	while (http->pending) {
		struct pending *p = http->pending;
		struct evhttp_request *req = p->req;
		p->req = NULL;
		pending_unlink(p);
		reply_accepted(http, req, &p->ev, 1, false, 1, 0);
	}
}

static void
submit_sync(struct evfn_http *http, struct evhttp_request *req,
            const struct route *r, evfn_event *ev)
{
	struct pending *p = evfn__calloc(1, sizeof(*p));
	if (p)
		p->timer = evtimer_new(http->base, on_deadline, p);
	if (!p || !p->timer) {
		evfn__free(p);
		evfn__http_reply_error(req, 500, EVFN_ENOMEM, NULL, NULL);
		return;
	}
	/* The result callback runs on this (the loop) thread, so it cannot
	 * come before the record is linked and its timer armed. */
	int rc = evfn_submit(http->rt, r->fn, ev, on_result, p, NULL);
	if (rc) {
		event_free(p->timer);
		evfn__free(p);
		reply_admission(req, rc, NULL);
		return;
	}
	p->ev = evfn_event_ref(ev);
	p->http = http;
	p->req = req;
	p->next = http->pending;
	if (p->next)
		p->next->prev = p;
	http->pending = p;
	evtimer_add(p->timer, r->deadline_tv);
}

/* ---- asynchronous requests ------------------------------------------- */

/* Admits the n events in order, a batch under one hold of the runtime
 * lock, stopping at the first refusal; answers 202 when any was taken
 * (saying which were not), else the refusal. */
static void
submit_async(struct evfn_http *http, struct evhttp_request *req,
             const struct route *r, evfn_event **events, size_t n,
             bool batch)
{
	size_t taken;
	int rc = evfn__rt_publish_front(http->rt, r->fn, events, n, NULL, NULL,
	                                &taken);
	if (taken == 0 && n > 0)
		reply_admission(req, rc,
		                batch ? json_pack("{s:[]}", "ids") : NULL);
	else
		reply_accepted(http, req, events, n, batch, taken, rc);
}

/* ---- request dispatch ------------------------------------------------- */

static const struct {
	const char *name;
	enum evhttp_cmd_type cmd;
} methods[] = {
	{"GET", EVHTTP_REQ_GET},         {"POST", EVHTTP_REQ_POST},
	{"PUT", EVHTTP_REQ_PUT},         {"DELETE", EVHTTP_REQ_DELETE},
	{"PATCH", EVHTTP_REQ_PATCH},     {"HEAD", EVHTTP_REQ_HEAD},
	{"OPTIONS", EVHTTP_REQ_OPTIONS},
};

static const char *
method_name(enum evhttp_cmd_type cmd)
{
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(methods); i++)
		if (methods[i].cmd == cmd)
			return methods[i].name;
	return "?";
}

/* Runs the route's authentication. Returns 0 or answers 401 (500 when
 * OpenSSL fails) and returns the code. */
static int
authenticate(const struct route *r, struct evhttp_request *req,
             const void *body, size_t len)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *why = NULL;
	int rc = 0;
	if (r->opts.bearer)
		rc = evfn__sig_bearer_verify(
			r->opts.bearer, evhttp_find_header(in, "Authorization"),
			&why);
	if (!rc && r->opts.stripe_secret)
		rc = evfn__sig_stripe_verify(
			r->opts.stripe_secret,
			evhttp_find_header(in, "Stripe-Signature"), body, len,
			(int64_t)time(NULL), r->opts.stripe_tolerance_s, &why);
	if (!rc && r->opts.github_secret)
		rc = evfn__sig_github_verify(
			r->opts.github_secret,
			evhttp_find_header(in, "X-Hub-Signature-256"), body,
			len, &why);
	if (rc == EVFN_ENOMEM)
		evfn__http_reply_error(req, 500, rc, NULL, NULL);
	else if (rc)
		evfn__http_reply_error(req, 401, rc, why, NULL);
	return rc;
}

/* Headers a request usually has few of; more go to the heap. */
#define SMALL_HEADERS 16

/* The request headers as name/value pairs for the CloudEvents parser:
 * in small (SMALL_HEADERS entries) when they fit, else in a new array
 * the caller frees. Returns NULL when out of memory. */
static struct evfn__ce_header *
collect_headers(struct evhttp_request *req, struct evfn__ce_header *small,
                size_t *n)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	size_t count = 0;
	TAILQ_FOREACH(kv, in, next)
		count++;
	struct evfn__ce_header *h =
		count <= SMALL_HEADERS ? small
		                       : evfn__calloc(count, sizeof(*h));
	if (!h)
		return NULL;
	count = 0;
	TAILQ_FOREACH(kv, in, next)
		h[count++] = (struct evfn__ce_header){kv->key, kv->value};
	*n = count;
	return h;
}

static void
serve_route(struct evfn_http *http, struct evhttp_request *req,
            const struct route *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const void *body = len ? evbuffer_pullup(in, -1) : NULL;
	if (len && !body) {
		evfn__http_reply_error(req, 500, EVFN_ENOMEM, NULL, NULL);
		return;
	}
	if (authenticate(r, req, body, len))
		return;

	size_t nh = 0;
	struct evfn__ce_header small[SMALL_HEADERS];
	struct evfn__ce_header *headers = collect_headers(req, small, &nh);
	if (!headers) {
		evfn__http_reply_error(req, 500, EVFN_ENOMEM, NULL, NULL);
		return;
	}
	enum evfn__ce_mode mode = EVFN__CE_PLAIN;
	evfn_event **events = NULL;
	size_t n = 0;
	char why[EVFN__CE_ERR_MAX];
	int rc = evfn__ce_parse(headers, nh, body, len, r->fn, &mode, &events,
	                        &n, why, sizeof(why));
	if (headers != small)
		evfn__free(headers);
	if (rc == EVFN_ECLOUDEVENT) {
		evfn__http_reply_error(req, 400, rc, why, NULL);
	} else if (rc == EVFN_EMEDIATYPE) {
		evfn__http_reply_error(req, 415, rc, why, NULL);
	} else if (rc) {
		evfn__http_reply_error(req, 500, rc, NULL, NULL);
	} else if (mode == EVFN__CE_PLAIN && r->opts.require_ce) {
		evfn__http_reply_error(
			req, 415, EVFN_EMEDIATYPE,
			"this route takes CloudEvents only: ce-* headers "
			"(binary mode) or application/cloudevents+json",
			NULL);
	} else if (mode == EVFN__CE_BATCH && !r->opts.async) {
		evfn__http_reply_error(
			req, 400, EVFN_ECLOUDEVENT,
			"batched mode needs an asynchronous route", NULL);
	} else if (r->opts.async) {
		submit_async(http, req, r, events, n, mode == EVFN__CE_BATCH);
	} else {
		submit_sync(http, req, r, events[0]);
	}
	evfn__ce_events_free(events, n);
}

/* The Prometheus exposition of the runtime's metrics, and of the
 * trigger's own listener. */
static void
serve_metrics(struct evfn_http *http, struct evhttp_request *req)
{
	char *text;
	size_t len;
	int rc = evfn_metrics_prometheus(http->rt, &text, &len);
	if (rc < 0) {
		evfn__http_reply_error(req, 500, rc, "cannot render metrics",
		                       NULL);
		return;
	}
	struct evbuffer *b = evhttp_request_get_output_buffer(req);
	rc = evbuffer_add(b, text, len);
	evfn_free(text);
	if (http->listener) {
		int open;
		uint64_t pauses;
		evfn__listener_stats(http->listener, &open, &pauses);
		int port = evfn__listener_port(http->listener);
		rc |= evbuffer_add_printf(
			b,
			"# HELP evfn_http_connections Connections open on the "
			"HTTP trigger's listener.\n"
			"# TYPE evfn_http_connections gauge\n"
			"evfn_http_connections{port=\"%d\"} %d\n"
			"# HELP evfn_http_accept_paused_total Times the HTTP "
			"trigger stopped accepting because accept() failed "
			"(out of file descriptors).\n"
			"# TYPE evfn_http_accept_paused_total counter\n"
			"evfn_http_accept_paused_total{port=\"%d\"} %llu\n",
			port, open, port, (unsigned long long)pauses) < 0;
	}
	if (rc) {
		evbuffer_drain(b, evbuffer_get_length(b));
		evfn__http_reply_error(req, 500, EVFN_ENOMEM,
		                       "cannot render metrics", NULL);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	                  "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, NULL, NULL);
}

/* Two Content-Length values that frame the same body: equal as decimal
 * numbers (evhttp reads the first as such), or equal as text. */
static bool
same_length(const char *a, const char *b)
{
	char *ea, *eb;
	errno = 0;
	long long va = strtoll(a, &ea, 10), vb = strtoll(b, &eb, 10);
	if (!errno && *a && *b && !*ea && !*eb)
		return va == vb;
	return strcmp(a, b) == 0;
}

/*
 * Why req's framing cannot be trusted, or NULL (RFC 9112 6.3, the
 * request-smuggling class): two different Content-Lengths (evhttp reads
 * the first, a proxy in front may have read the other), Transfer-Encoding
 * together with Content-Length, a Transfer-Encoding other than a single
 * "chunked" (evhttp reads the body as empty and the rest as the next
 * request), or a malformed chunked body (see http-framing.c).
 */
static const char *
framing_problem(const struct evfn_http *http, struct evhttp_request *req)
{
	if (evfn__listener_bad_framing(http->listener, req))
		return "malformed chunked encoding (chunk size, extension or "
		       "trailer)";
	const char *length = NULL, *coding = NULL;
	int codings = 0;
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
	{
		if (strcasecmp(kv->key, "Content-Length") == 0) {
			if (length && !same_length(length, kv->value))
				return "two different Content-Length values";
			length = kv->value;
		} else if (strcasecmp(kv->key, "Transfer-Encoding") == 0) {
			codings++;
			coding = kv->value;
		}
	}
	if (codings && length)
		return "both Transfer-Encoding and Content-Length";
	if (codings > 1 || (coding && strcasecmp(coding, "chunked") != 0))
		return "a Transfer-Encoding other than chunked";
	return NULL;
}

/* What a path names. */
enum target {
	TARGET_NONE,
	TARGET_HEALTH,
	TARGET_METRICS,
	TARGET_STATUS,
	TARGET_ROUTES
};

static enum target
find_target(struct evfn_http *http, const char *path, struct path_entry **pe,
            const char **rest)
{
	if (http->health && strcmp(path, http->health) == 0)
		return TARGET_HEALTH;
	if (http->metrics && strcmp(path, http->metrics) == 0)
		return TARGET_METRICS;
	if (http->status &&
	    evfn__status_owns(http->status, path, strlen(path), rest))
		return TARGET_STATUS;
	HASH_FIND_STR(http->paths, path, *pe);
	return *pe ? TARGET_ROUTES : TARGET_NONE;
}

static void
serve(struct evfn_http *http, struct evhttp_request *req, enum target t,
      struct path_entry *pe, const char *rest)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	switch (t) {
	case TARGET_HEALTH:
		if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) {
			bool ok = evfn__rt_accepting(http->rt);
			evfn__http_reply_json(
				req, ok ? 200 : 503,
				json_pack("{s:s}", "status",
				          ok ? "ok" : "draining"));
		} else {
			reply_not_allowed(req, "GET, HEAD");
		}
		return;
	case TARGET_METRICS:
		if (cmd == EVHTTP_REQ_GET)
			serve_metrics(http, req);
		else
			reply_not_allowed(req, "GET");
		return;
	case TARGET_STATUS:
		evfn__status_serve(http->rt, req, rest, http->status_token);
		return;
	case TARGET_ROUTES:
		break;
	case TARGET_NONE:
		evfn__http_reply_error(req, 404, EVFN_ENOENT,
		                       "no route for this path", NULL);
		return;
	}
	for (const struct route *r = pe->routes; r; r = r->next)
		if (r->method == cmd) {
			serve_route(http, req, r);
			return;
		}
	char allow[64] = "";
	for (const struct route *r = pe->routes; r; r = r->next) {
		size_t used = strlen(allow);
		snprintf(allow + used, sizeof(allow) - used, "%s%s",
		         used ? ", " : "", method_name(r->method));
	}
	reply_not_allowed(req, allow);
}

/* Percent-decodes path into out (n bytes) as evhttp decodes paths for
 * its own routing (an escape that is not two hex digits stays as it
 * is). Returns false when it does not fit: no route is that long. */
static bool
decode_path(const char *path, char *out, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; path[i]; i++) {
		if (k + 1 >= n)
			return false;
		int hi, lo;
		if (path[i] == '%' && (hi = evfn__hex_value(path[i + 1])) >= 0 &&
		    (lo = evfn__hex_value(path[i + 2])) >= 0) {
			out[k++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[k++] = path[i];
		}
	}
	out[k] = '\0';
	return true;
}

/*
 * The one way into the trigger, whichever server a request came from.
 * Serves req when its path is one of the trigger's; otherwise, with
 * every_path (the trigger's own server, or a path mounted for it) it
 * answers 404, else it returns EVFN_ENOENT with req untouched. Paths are
 * compared as sent and, failing that, percent-decoded, as evhttp's own
 * routing compares them.
 */
static int
dispatch(struct evfn_http *http, struct evhttp_request *req, bool every_path)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!path || !*path)
		path = "/";
	struct path_entry *pe = NULL;
	const char *rest = NULL;
	char decoded[SERVED_PATH_MAX];
	enum target t = find_target(http, path, &pe, &rest);
	if (t == TARGET_NONE && strchr(path, '%') &&
	    decode_path(path, decoded, sizeof(decoded)))
		t = find_target(http, decoded, &pe, &rest);
	if (t == TARGET_NONE && !every_path)
		return EVFN_ENOENT;
	const char *why = framing_problem(http, req);
	if (why) {
		reply_bad_framing(req, why);
	} else if (http->closing) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		                  "Connection", "close");
		evfn__http_reply_error(req, 503, EVFN_ESHUTDOWN,
		                       "the HTTP trigger is closing", NULL);
	} else {
		serve(http, req, t, pe, rest);
	}
	return 0;
}

/* The callback of the trigger's own server, and of each path mounted
 * on a host's. */
static void
on_request(struct evhttp_request *req, void *arg)
{
	dispatch(arg, req, true);
}

int
evfn_http_handle(evfn_http *http, struct evhttp_request *req)
{
	if (!http || !req)
		return EVFN_EINVAL;
	return dispatch(http, req, false);
}

/* ---- mounting on a host's server --------------------------------------- */

/* The i-th built-in path (health, metrics, then each of the status
 * page's) into buf, "" for one switched off; false past the last. */
static bool
builtin_path(const struct evfn_http *http, size_t i, char *buf, size_t n)
{
	if (i < 2) {
		const char *p = i == 0 ? http->health : http->metrics;
		snprintf(buf, n, "%s", p ? p : "");
		return true;
	}
	const char *sub = http->status ? evfn__status_resource(i - 2) : NULL;
	if (!sub)
		return false;
	snprintf(buf, n, "%s%s", http->status, sub);
	return true;
}

/* Has the host's server call the trigger for path (exactly). evhttp
 * compares a request's percent-decoded path with the one it was given,
 * so it is given the decoded path. Returns 0, EVFN_EEXIST when the
 * server routes the path already, or EVFN_ENOMEM. */
static int
mount(struct evfn_http *http, const char *path)
{
	char decoded[SERVED_PATH_MAX];
	if (!decode_path(path, decoded, sizeof(decoded)))
		return EVFN_ENOMEM; /* no path the trigger serves is longer */
	switch (evhttp_set_cb(http->evh, decoded, on_request, http)) {
	case 0:
		return 0;
	case -1:
		/* EVFN_EEXIST has other causes too (evfn_http_route()). */
		evfn__rt_log(http->rt, EVFN_LOG_WARN,
		             "http: %s refused: the host's server routes it "
		             "already",
		             path);
		return EVFN_EEXIST;
	default:
		return EVFN_ENOMEM;
	}
}

static void
unmount(struct evfn_http *http, const char *path)
{
	char decoded[SERVED_PATH_MAX];
	if (decode_path(path, decoded, sizeof(decoded)))
		evhttp_del_cb(http->evh, decoded);
}

/* Mounts the built-in paths; on failure takes back those it mounted. */
static int
mount_builtins(struct evfn_http *http)
{
	char path[SERVED_PATH_MAX];
	for (size_t i = 0; builtin_path(http, i, path, sizeof(path)); i++) {
		int rc = *path ? mount(http, path) : 0;
		if (rc) {
			while (i-- > 0)
				if (builtin_path(http, i, path, sizeof(path)) &&
				    *path)
					unmount(http, path);
			return rc;
		}
	}
	return 0;
}

/* Gives every mounted path back to the host's server, for good. */
static void
unmount_all(struct evfn_http *http)
{
	if (!http->attached || !http->evh)
		return;
	char path[SERVED_PATH_MAX];
	for (size_t i = 0; builtin_path(http, i, path, sizeof(path)); i++)
		if (*path)
			unmount(http, path);
	struct path_entry *pe, *tmp;
	HASH_ITER(hh, http->paths, pe, tmp)
	{
		if (pe->mounted)
			unmount(http, pe->path);
		pe->mounted = false;
	}
	http->evh = NULL;
}

/* ---- lifecycle ------------------------------------------------------- */

static void
free_paths(struct evfn_http *http)
{
	struct path_entry *pe, *tmp;
	HASH_ITER(hh, http->paths, pe, tmp)
	{
		HASH_DEL(http->paths, pe);
		while (pe->routes) {
			struct route *r = pe->routes;
			pe->routes = r->next;
			route_options_clear(&r->opts);
			evfn__free(r->fn);
			evfn__free(r);
		}
		evfn__free(pe->path);
		evfn__free(pe);
	}
}

static void
free_trigger(struct evfn_http *http)
{
	free_paths(http);
	evfn__free(http->health);
	evfn__free(http->metrics);
	evfn__free(http->status);
	evfn__free(http->status_token);
	pthread_cond_destroy(&http->close_cond);
	pthread_mutex_destroy(&http->close_lock);
	evfn__free(http);
}

/* Tears the trigger down on the loop thread. What closing did not
 * answer in time is answered now (an own server's connections close
 * right after, so those answers may not reach their clients). */
static void
destroy(void *arg)
{
	struct evfn_http *http = arg;
	answer_pending_closed(http);
	if (http->grace)
		event_free(http->grace);
	unmount_all(http);
	if (http->listener) {
		evfn__listener_stop(http->listener, NULL, NULL);
		evhttp_free(http->evh);
		evfn__listener_free(http->listener);
	} else if (http->evh && !http->attached) {
		evhttp_free(http->evh); /* a server that never listened */
	}
	free_trigger(http);
}


/* Lets the thread in evfn_http_free() go on. */
static void
finish_close(struct evfn_http *http)
{
	if (http->grace)
		evtimer_del(http->grace);
	pthread_mutex_lock(&http->close_lock);
	http->closed = true;
	pthread_cond_broadcast(&http->close_cond);
	pthread_mutex_unlock(&http->close_lock);
}

/* Something closing waits for happened: a result was answered, an
 * answer left for the kernel, or a connection closed. */
static void
close_progress(void *arg)
{
	struct evfn_http *http = arg;
	if (!http || !http->closing || http->closed || http->pending ||
	    (http->listener && !evfn__listener_flushed(http->listener)))
		return;
	finish_close(http);
}

static void
on_grace(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finish_close(arg);
}

struct close_call {
	struct evfn_http *http;
	bool can_wait; /* the loop turns while evfn_http_free() waits */
};

/* The start of closing, on the loop thread: no new connections or
 * mounted paths; the results due answered as they come, the rest now
 * (202, see answer_pending_closed()); then, up to the I/O timeout, wait
 * until every answer has left for the kernel. */
static void
close_begin(void *arg)
{
	struct close_call *c = arg;
	struct evfn_http *http = c->http;
	http->closing = true;
	unmount_all(http);
	if (http->listener)
		evfn__listener_stop(http->listener,
		                    c->can_wait ? close_progress : NULL, http);
	if (!c->can_wait || !evfn__rt_drained(http->rt))
		answer_pending_closed(http);
	if (!c->can_wait)
		return;
	struct timeval tv =
		evfn__timeval_ns(http->io_timeout_ms * EVFN__NS_PER_MS);
	if (!(http->grace = evtimer_new(http->base, on_grace, http)) ||
	    evtimer_add(http->grace, &tv) != 0) {
		answer_pending_closed(http);
		finish_close(http);
		return;
	}
	close_progress(http);
}

/* Waits in evfn_http_free() until closing is done on the loop thread,
 * running the base when nothing else does (evfn's loop thread not
 * started, or a host's base nobody drives). Gives up waiting when the
 * base runs on this very thread, inside a callback of the host's that
 * called evfn_http_free(). */
static void
close_wait(struct evfn_http *http)
{
	evfn_rt *rt = http->rt;
	bool pump = evfn__rt_loop_unattended(rt);
	pthread_mutex_lock(&http->close_lock);
	while (!http->closed) {
		if (!pump) {
			pthread_cond_wait(&http->close_cond, &http->close_lock);
			continue;
		}
		pthread_mutex_unlock(&http->close_lock);
		int r = event_base_loop(http->base, EVLOOP_ONCE);
		pthread_mutex_lock(&http->close_lock);
		if (r == 0 || http->closed)
			continue;
		/* -1: the base runs already, on another thread (wait for
		 * it) or on this one (cannot wait); 1: nothing left to run
		 * it for. */
		if (r < 0 && !evfn__rt_loop_thread_is_self(rt)) {
			pump = false;
			continue;
		}
		break;
	}
	pthread_mutex_unlock(&http->close_lock);
}

struct create_call {
	struct evfn_http *http;
	const evfn_http_options *opts;
	int rc;
};

/* Creates the trigger's own evhttp server and starts listening, on the
 * loop thread. */
static void
create_server(void *arg)
{
	struct create_call *c = arg;
	struct evfn_http *http = c->http;
	const evfn_http_options *o = c->opts;
	if (!(http->evh = evhttp_new(http->base))) {
		c->rc = EVFN_ENOMEM;
		return;
	}
	evhttp_set_allowed_methods(http->evh,
	                           EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	                                   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                   EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
	                                   EVHTTP_REQ_OPTIONS);
	evhttp_set_max_body_size(http->evh, (ev_ssize_t)o->max_body);
	evhttp_set_max_headers_size(http->evh, MAX_HEADERS_SIZE);
	struct timeval tv = evfn__timeval_ns(o->timeout_ms * EVFN__NS_PER_MS);
	evhttp_set_timeout_tv(http->evh, &tv);
	evhttp_set_gencb(http->evh, on_request, http);
	c->rc = evfn__listener_open(&http->listener, http->rt, http->evh,
	                            o->address ? o->address : "127.0.0.1",
	                            o->port, o->max_conns);
}

/* Mounts the built-in paths on the host's server, on the loop thread. */
static void
attach_server(void *arg)
{
	struct create_call *c = arg;
	c->rc = c->http->evh ? mount_builtins(c->http) : 0;
}

/* What evfn_http_new() and evfn_http_attach() share: the trigger with
 * copies of opts, set up on the loop thread by setup. */
static int
trigger_new(evfn_http **out, evfn_rt *rt, struct evhttp *server,
            bool attached, const evfn_http_options *opts,
            void (*setup)(void *))
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	if (!rt)
		return EVFN_EINVAL;
	evfn_http_options *defaults = NULL;
	if (!opts) {
		int rc = evfn_http_options_new(&defaults);
		if (rc)
			return rc;
		opts = defaults;
	}
	struct evfn_http *http = evfn__calloc(1, sizeof(*http));
	int rc = EVFN_ENOMEM;
	if (!http)
		goto out;
	pthread_mutex_init(&http->close_lock, NULL);
	pthread_cond_init(&http->close_cond, NULL);
	http->rt = rt;
	http->base = evfn_rt_event_base(rt);
	http->evh = server;
	http->attached = attached;
	http->io_timeout_ms = opts->timeout_ms;
	if ((opts->health && !(http->health = evfn__strdup(opts->health))) ||
	    (opts->metrics &&
	     !(http->metrics = evfn__strdup(opts->metrics))) ||
	    (opts->status &&
	     (!(http->status = evfn__strdup(opts->status)) ||
	      !(http->status_token = evfn__strdup(opts->status_token))))) {
		free_trigger(http);
		goto out;
	}
	struct create_call c = {http, opts, 0};
	rc = evfn__rt_run_on_loop(rt, setup, &c);
	if (rc == 0)
		rc = c.rc;
	if (rc) {
		/* Nothing was mounted, and nothing is waiting. */
		http->attached = false;
		http->evh = attached ? NULL : http->evh;
		if (evfn__rt_run_on_loop(rt, destroy, http))
			destroy(http);
	} else {
		evfn__rt_attach(rt);
		*out = http;
	}
out:
	evfn_http_options_free(defaults);
	return rc;
}

int
evfn_http_new(evfn_http **out, evfn_rt *rt, const evfn_http_options *opts)
{
	return trigger_new(out, rt, NULL, false, opts, create_server);
}

int
evfn_http_attach(evfn_http **out, evfn_rt *rt, struct evhttp *server,
                 const evfn_http_options *opts)
{
	return trigger_new(out, rt, server, true, opts, attach_server);
}

int
evfn_http_port(const evfn_http *http)
{
	return http && http->listener ? evfn__listener_port(http->listener)
	                              : EVFN_EINVAL;
}

void
evfn_http_free(evfn_http *http)
{
	if (!http)
		return;
	evfn_rt *rt = http->rt;
	/* Inside one of evfn's own loop callbacks the loop cannot turn
	 * while this thread waits. */
	struct close_call c = {http, !evfn__rt_in_loop_callback(rt)};
	if (evfn__rt_run_on_loop(rt, close_begin, &c) == 0 && c.can_wait)
		close_wait(http);
	/* If the call cannot be queued the loop is gone or memory is out;
	 * tearing down here is then the only option left. */
	if (evfn__rt_run_on_loop(rt, destroy, http))
		destroy(http);
	evfn__rt_detach(rt);
}

/* ---- routes ---------------------------------------------------------- */

struct route_call {
	struct evfn_http *http;
	struct route *route; /* taken on success */
	const char *path;
	size_t path_len;
	int rc;
};

static void
add_route(void *arg)
{
	struct route_call *c = arg;
	struct evfn_http *http = c->http;
	/* Each refusal is EVFN_EEXIST; the log says which one it is. */
	const char *builtin[] = {http->health, http->metrics};
	const char *builtin_name[] = {"the health route", "the metrics route"};
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(builtin); i++)
		if (builtin[i] && strlen(builtin[i]) == c->path_len &&
		    memcmp(builtin[i], c->path, c->path_len) == 0) {
			evfn__rt_log(http->rt, EVFN_LOG_WARN,
			             "http: route %.*s refused: the path is %s",
			             (int)c->path_len, c->path,
			             builtin_name[i]);
			c->rc = EVFN_EEXIST;
			return;
		}
	const char *rest;
	if (http->status &&
	    evfn__status_owns(http->status, c->path, c->path_len, &rest)) {
		evfn__rt_log(http->rt, EVFN_LOG_WARN,
		             "http: route %.*s refused: the status page %s "
		             "owns the path",
		             (int)c->path_len, c->path, http->status);
		c->rc = EVFN_EEXIST;
		return;
	}
	struct path_entry *pe;
	HASH_FIND(hh, http->paths, c->path, c->path_len, pe);
	if (pe) {
		for (struct route *r = pe->routes; r; r = r->next)
			if (r->method == c->route->method) {
				evfn__rt_log(http->rt, EVFN_LOG_WARN,
				             "http: route %.*s refused: routed "
				             "already for this method",
				             (int)c->path_len, c->path);
				c->rc = EVFN_EEXIST;
				return;
			}
	} else {
		pe = evfn__calloc(1, sizeof(*pe));
		char *path = evfn__malloc(c->path_len + 1);
		if (!pe || !path) {
			evfn__free(pe);
			evfn__free(path);
			c->rc = EVFN_ENOMEM;
			return;
		}
		memcpy(path, c->path, c->path_len);
		path[c->path_len] = '\0';
		pe->path = path;
		/* On a host's server the path is the host's until mounted:
		 * one it routes itself is refused. */
		if (http->attached && http->evh &&
		    (c->rc = mount(http, pe->path))) {
			evfn__free(pe->path);
			evfn__free(pe);
			return;
		}
		pe->mounted = http->attached && http->evh;
		bool evfn__hash_oom = false;
		HASH_ADD_KEYPTR(hh, http->paths, pe->path, c->path_len, pe);
		if (evfn__hash_oom) {
			if (pe->mounted)
				unmount(http, pe->path);
			evfn__free(pe->path);
			evfn__free(pe);
			c->rc = EVFN_ENOMEM;
			return;
		}
	}
	struct route *r = c->route;
	const struct timeval *common =
		event_base_init_common_timeout(http->base, &r->deadline);
	r->deadline_tv = common ? common : &r->deadline;
	r->next = pe->routes;
	pe->routes = r;
	c->route = NULL;
	c->rc = 0;
}

/* Copies route options into a route, strings included. */
static int
copy_route_options(struct evfn_route_options *dst,
                   const struct evfn_route_options *src)
{
	*dst = *src;
	dst->stripe_secret = dst->github_secret = dst->bearer = NULL;
	if ((src->stripe_secret &&
	     !(dst->stripe_secret = evfn__strdup(src->stripe_secret))) ||
	    (src->github_secret &&
	     !(dst->github_secret = evfn__strdup(src->github_secret))) ||
	    (src->bearer && !(dst->bearer = evfn__strdup(src->bearer)))) {
		route_options_clear(dst);
		return EVFN_ENOMEM;
	}
	return 0;
}

int
evfn_http_route(evfn_http *http, const char *route, const char *fn_name,
                const evfn_route_options *opts)
{
	if (!http || !route || !fn_name)
		return EVFN_EINVAL;
	int rc = evfn__check_name(fn_name);
	if (rc)
		return rc;
	const char *space = strchr(route, ' ');
	if (!space)
		return EVFN_EROUTE;
	size_t mlen = (size_t)(space - route);
	enum evhttp_cmd_type cmd = 0;
	bool known = false;
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(methods); i++)
		if (strlen(methods[i].name) == mlen &&
		    memcmp(methods[i].name, route, mlen) == 0) {
			cmd = methods[i].cmd;
			known = true;
		}
	const char *path = space + 1;
	size_t plen = strlen(path);
	if (!known || !valid_path(path, plen))
		return EVFN_EROUTE;

	struct route *r = evfn__calloc(1, sizeof(*r));
	if (!r)
		return EVFN_ENOMEM;
	r->method = cmd;
	evfn_route_options defaults = {.timeout_ms = DEFAULT_ROUTE_TIMEOUT_MS};
	if (!(r->fn = evfn__strdup(fn_name)) ||
	    copy_route_options(&r->opts, opts ? opts : &defaults)) {
		evfn__free(r->fn);
		evfn__free(r);
		return EVFN_ENOMEM;
	}
	r->deadline = evfn__timeval_ns(r->opts.timeout_ms * EVFN__NS_PER_MS);

	struct route_call c = {http, r, path, plen, 0};
	rc = evfn__rt_run_on_loop(http->rt, add_route, &c);
	if (rc == 0)
		rc = c.rc;
	if (c.route) {
		route_options_clear(&c.route->opts);
		evfn__free(c.route->fn);
		evfn__free(c.route);
	}
	return rc;
}
