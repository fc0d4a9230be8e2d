/* SPDX-License-Identifier: MIT */
/*
 * The HTTP trigger: libevent's evhttp server on the runtime's event_base,
 * routing "METHOD /path" to functions. A request is authenticated
 * (bearer token, Stripe or GitHub signature), turned into events by the
 * CloudEvents binding (cloudevents.c) and submitted; synchronous routes
 * answer from the result callback or with 504 at the route's deadline,
 * asynchronous ones with 202 at once. Everything that touches the server
 * runs on the loop thread; calls from other threads are carried there and
 * waited for, so the server needs no lock of its own.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
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
#include "http-internal.h"
#include "hash-internal.h"
#include "runtime-internal.h"
#include "signature-internal.h"
#include "status-internal.h"

#define DEFAULT_MAX_BODY (INT64_C(1) << 20)
#define DEFAULT_IO_TIMEOUT_MS INT64_C(30000)
#define DEFAULT_ROUTE_TIMEOUT_MS INT64_C(30000)
#define DEFAULT_HEALTH_PATH "/healthz"
#define DEFAULT_METRICS_PATH "/metrics"
/* Request line plus headers; evhttp answers a longer head with 400. */
#define MAX_HEADERS_SIZE (64 * 1024)
/* Longest path accepted in a route. */
#define PATH_MAX_LEN 1024

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
};

/* Connection accounting for the limit. Shared by the server and each
 * live connection, whose close callback may come while evhttp_free()
 * runs; only touched on the loop thread. */
struct conn_track;
struct conns {
	atomic_int refs;
	int open;
	int max;
	struct evconnlistener *listener; /* NULL once the server is gone */
	bool paused;
	struct conn_track *tracks; /* connections not yet adopted */
};

/* A synchronous request waiting for its result. It lives until the result
 * callback, which evfn_submit() guarantees exactly once, even when the
 * request was answered 504 first or the server was freed meanwhile. */
struct pending {
	struct pending *prev, *next;
	struct evfn_http *http;     /* NULL once the server is gone */
	struct evhttp_request *req; /* NULL once answered */
	struct event *timer;
};

struct evfn_http {
	evfn_rt *rt;
	struct event_base *base;
	struct evhttp *evh;
	struct conns *conns; /* NULL without a limit */
	int port;
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

/* Parses a numeric IPv4 or IPv6 address and port into ss. */
static bool
parse_address(const char *address, int port, struct sockaddr_storage *ss,
              socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return true;
	}
	if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return true;
	}
	return false;
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
	if (address && !parse_address(address, port, &ss, &len))
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

static int
json_to_evbuffer(const char *buf, size_t size, void *data)
{
	return evbuffer_add(data, buf, size);
}

void
evfn__http_reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	/* A NULL body only comes from a failed allocation. */
	if (!body || json_dump_callback(body, json_to_evbuffer, out,
	                                JSON_COMPACT) != 0) {
		evbuffer_drain(out, evbuffer_get_length(out));
		status = 500;
	}
	json_decref(body);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	/* NULL reason: libevent supplies the standard phrase. */
	evhttp_send_reply(req, status, NULL, NULL);
}

void
evfn__http_reply_error(struct evhttp_request *req, int status, int code,
                       const char *message, json_t *extra)
{
	json_t *body = json_pack("{s:s, s:s}", "error", evfn_err_name(code),
	                         "message",
	                         message ? message : evfn_strerror(code));
	if (body && extra)
		json_object_update(body, extra);
	json_decref(extra);
	evfn__http_reply_json(req, status, body);
}

/* Answers a refused admission: the caller keeps the event, the client
 * learns whether and when to try again. */
static void
reply_admission(struct evhttp_request *req, int code, json_t *extra)
{
	int status;
	switch (code) {
	case EVFN_EQUEUEFULL:
		status = 429;
		evhttp_add_header(evhttp_request_get_output_headers(req),
		                  "Retry-After", "1");
		break;
	case EVFN_ESHUTDOWN:
		status = 503;
		break;
	case EVFN_ENOFN:
		status = 404;
		break;
	default:
		status = 500;
		break;
	}
	evfn__http_reply_error(req, status, code, NULL, extra);
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
		evfn__http_reply_error(req, status, code, evfn_result_error(res), extra);
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
		struct evhttp_request *req = p->req;
		p->req = NULL;
		pending_unlink(p);
		reply_result(req, res);
	}
	evfn__free(p);
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
	p->http = http;
	p->req = req;
	p->next = http->pending;
	if (p->next)
		p->next->prev = p;
	http->pending = p;
	evtimer_add(p->timer, r->deadline_tv);
}

/* ---- asynchronous requests ------------------------------------------- */

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

/* Answers 202 {"id": id} without building a JSON tree: this is the
 * whole reply of an asynchronous request, so it is on the intake's hot
 * path. Only ids that need no escaping are written directly (the bytes
 * are then those jansson's compact dump would give); returns false, with
 * nothing sent, for any other id. Unlike the other JSON replies it has
 * no Cache-Control: no-store, which would change nothing here: a 202 is
 * not heuristically cacheable and carries no freshness (RFC 9111 4.2.2),
 * and each header costs evhttp a formatted write. */
static bool
reply_accepted_fast(struct evfn_http *http, struct evhttp_request *req,
                    const char *id)
{
	char body[EVFN_NAME_MAX + sizeof("{\"id\":\"\"}")];
	size_t n = sizeof("{\"id\":\"") - 1;
	memcpy(body, "{\"id\":\"", n);
	for (const char *p = id; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' ||
		    n + 2 >= sizeof(body))
			return false;
		body[n++] = (char)c;
	}
	body[n++] = '"';
	body[n++] = '}';
	if (evbuffer_add(evhttp_request_get_output_buffer(req), body, n))
		return false;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	add_date(http, h);
	evhttp_send_reply(req, 202, NULL, NULL);
	return true;
}

static void
submit_async(struct evfn_http *http, struct evhttp_request *req,
             const struct route *r, evfn_event **events, size_t n,
             bool batch)
{
	if (!batch) {
		/* One event: the common case, answered without jansson. */
		int rc = evfn_publish_to(http->rt, r->fn, events[0], NULL);
		if (rc) {
			reply_admission(req, rc, NULL);
			return;
		}
		const char *id = evfn_event_id(events[0]);
		if (!reply_accepted_fast(http, req, id))
			evfn__http_reply_json(req, 202,
			                      json_pack("{s:s}", "id", id));
		return;
	}
	json_t *ids = json_array();
	if (!ids) {
		evfn__http_reply_error(req, 500, EVFN_ENOMEM, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int rc = evfn_publish_to(http->rt, r->fn, events[i], NULL);
		if (rc) {
			/* Admission is per event: say which were taken. */
			reply_admission(req, rc,
			                batch ? json_pack("{s:o}", "ids", ids)
			                      : (json_decref(ids), NULL));
			return;
		}
		json_array_append_new(ids,
		                      json_string(evfn_event_id(events[i])));
	}
	evfn__http_reply_json(req, 202, json_pack("{s:o}", "ids", ids));
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
	} else if (mode == EVFN__CE_BATCH && !r->opts.async) {
		evfn__http_reply_error(req, 400, EVFN_ECLOUDEVENT,
		            "batched mode needs an asynchronous route", NULL);
	} else if (r->opts.async) {
		submit_async(http, req, r, events, n, mode == EVFN__CE_BATCH);
	} else {
		submit_sync(http, req, r, events[0]);
	}
	evfn__ce_events_free(events, n);
}

/* The Prometheus exposition of the runtime's metrics. */
static void
serve_metrics(struct evfn_http *http, struct evhttp_request *req)
{
	char *text;
	size_t len;
	int rc = evfn_metrics_prometheus(http->rt, &text, &len);
	if (rc < 0) {
		evfn__http_reply_error(req, 500, rc, "cannot render metrics", NULL);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add(b, text, len);
	evfn_free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	                  "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, b ? 200 : 500, b ? "OK" : "Internal Error", b);
	if (b)
		evbuffer_free(b);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct evfn_http *http = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!path || !*path)
		path = "/";
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (http->health && strcmp(path, http->health) == 0 &&
	    (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)) {
		bool ok = evfn__rt_accepting(http->rt);
		evfn__http_reply_json(req, ok ? 200 : 503,
		           json_pack("{s:s}", "status",
		                     ok ? "ok" : "draining"));
		return;
	}
	if (http->metrics && strcmp(path, http->metrics) == 0 &&
	    cmd == EVHTTP_REQ_GET) {
		serve_metrics(http, req);
		return;
	}
	const char *rest;
	if (http->status &&
	    evfn__status_owns(http->status, path, strlen(path), &rest)) {
		evfn__status_serve(http->rt, req, rest, http->status_token);
		return;
	}
	struct path_entry *pe;
	HASH_FIND_STR(http->paths, path, pe);
	if (!pe) {
		evfn__http_reply_error(req, 404, EVFN_ENOENT, "no route for this path",
		            NULL);
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
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	                  allow);
	evfn__http_reply_error(req, 405, EVFN_EROUTE, "method not allowed for this path",
	            NULL);
}

/* ---- connection limit ------------------------------------------------- */

/* A connection evhttp is still setting up: its bufferevent (one reference
 * ours, so the memory outlives an early free) and the one-shot event that
 * adopts it once evhttp has attached its connection object. */
struct conn_track {
	struct conn_track *next;
	struct conns *conns;
	struct bufferevent *bev;
	struct event *adopt_ev;
};

static void
conns_unref(struct conns *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		evfn__free(c);
}

/* One connection is gone: make room, and resume accepting if the limit
 * had paused it. Drops the connection's reference on c. */
static void
conn_released(struct conns *c)
{
	c->open--;
	if (c->listener && c->paused && c->open < c->max) {
		c->paused = false;
		evconnlistener_enable(c->listener);
	}
	conns_unref(c);
}

static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	conn_released(arg);
}

/* Hands the tracked connection's count to evhttp's close callback, or
 * releases it when evhttp already freed the connection (bufferevent_free()
 * clears the callbacks, and the reference we hold keeps bev readable). */
static void
conn_adopt(struct conn_track *t)
{
	struct conns *c = t->conns;
	struct conn_track **pp = &c->tracks;
	while (*pp != t)
		pp = &(*pp)->next;
	*pp = t->next;
	bufferevent_data_cb readcb, writecb;
	bufferevent_event_cb eventcb;
	void *evcon = NULL;
	bufferevent_getcb(t->bev, &readcb, &writecb, &eventcb, &evcon);
	if (readcb && evcon)
		evhttp_connection_set_closecb(evcon, conn_closed, c);
	else
		conn_released(c);
	bufferevent_decref(t->bev);
	event_free(t->adopt_ev);
	evfn__free(t);
}

static void
conn_adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_adopt(arg);
}

/* evhttp's hook for making each new connection's bufferevent. libevent
 * 2.1 has no connection limit (evhttp_set_max_connections() came in 2.2)
 * and tells nothing when a server connection closes, except through the
 * connection's close callback; the connection object does not exist yet
 * here, so it is picked up from the bufferevent's callback argument on the
 * next loop iteration, after evhttp has set it up. (A filter bufferevent's
 * free callback would be simpler, but evhttp loses reads through one.) */
static struct bufferevent *
conn_new(struct event_base *base, void *arg)
{
	struct conns *c = arg;
	struct bufferevent *bev =
		bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct conn_track *t = bev ? evfn__calloc(1, sizeof(*t)) : NULL;
	if (t)
		t->adopt_ev = event_new(base, -1, 0, conn_adopt_cb, t);
	if (!t || !t->adopt_ev) {
		/* evhttp falls back to a bufferevent of its own, which the
		 * limit does not count. */
		evfn__free(t);
		if (bev)
			bufferevent_free(bev);
		return NULL;
	}
	t->conns = c;
	t->bev = bev;
	bufferevent_incref(bev);
	t->next = c->tracks;
	c->tracks = t;
	event_active(t->adopt_ev, EV_TIMEOUT, 0);
	atomic_fetch_add(&c->refs, 1);
	if (++c->open >= c->max && !c->paused && c->listener) {
		c->paused = true;
		evconnlistener_disable(c->listener);
	}
	return bev;
}

/* ---- lifecycle ------------------------------------------------------- */

/* Opens, binds and listens on a non-blocking socket. Returns the fd or a
 * negative code. */
static int
open_socket(const char *address, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (!parse_address(address, port, &ss, &len))
		return EVFN_EINVAL;
	int fd = socket(ss.ss_family,
	                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno == ENOMEM || errno == ENOBUFS ? EVFN_ENOMEM
		                                           : -errno;
	/* Lets a restarted server rebind while old connections sit in
	 * TIME_WAIT; a live listener still makes bind() fail. */
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		int err = errno;
		close(fd);
		switch (err) {
		case EADDRINUSE:
			return EVFN_EADDRINUSE;
		case EACCES:
		case EPERM:
			return EVFN_EACCES;
		case EADDRNOTAVAIL:
		case EAFNOSUPPORT:
			return EVFN_EINVAL;
		default:
			return -err;
		}
	}
	return fd;
}

static int
bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

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

/* Tears the server down on the loop thread. */
static void
destroy(void *arg)
{
	struct evfn_http *http = arg;
	/* The requests still waiting are freed by evhttp_free() with their
	 * connections; their records are left to the result callbacks,
	 * which find them detached. */
	while (http->pending) {
		struct pending *p = http->pending;
		p->req = NULL;
		pending_unlink(p);
	}
	if (http->conns)
		http->conns->listener = NULL;
	if (http->evh)
		evhttp_free(http->evh);
	/* Connections not adopted yet are gone with evhttp: settle them now,
	 * as their adopt events would never run on a base nobody drives. */
	while (http->conns && http->conns->tracks)
		conn_adopt(http->conns->tracks);
	conns_unref(http->conns);
	free_paths(http);
	evfn__free(http->health);
	evfn__free(http->metrics);
	evfn__free(http->status);
	evfn__free(http->status_token);
	evfn__free(http);
}

struct create_call {
	struct evfn_http *http;
	const evfn_http_options *opts;
	int rc;
};

/* Creates the evhttp server and starts listening, on the loop thread. */
static void
create(void *arg)
{
	struct create_call *c = arg;
	struct evfn_http *http = c->http;
	const evfn_http_options *o = c->opts;
	int fd = open_socket(o->address ? o->address : "127.0.0.1", o->port);
	if (fd < 0) {
		c->rc = fd;
		return;
	}
	int port = bound_port(fd);
	struct evconnlistener *lev = NULL;
	if (port < 0 || !(http->evh = evhttp_new(http->base)) ||
	    !(lev = evconnlistener_new(http->base, NULL, NULL,
	                               LEV_OPT_CLOSE_ON_FREE |
	                                       LEV_OPT_CLOSE_ON_EXEC |
	                                       LEV_OPT_DISABLED,
	                               0, fd))) {
		close(fd);
		c->rc = port < 0 ? port : EVFN_ENOMEM;
		return;
	}
	if (!evhttp_bind_listener(http->evh, lev)) {
		evconnlistener_free(lev);
		c->rc = EVFN_ENOMEM;
		return;
	}
	http->port = port;
	evhttp_set_allowed_methods(http->evh,
	                           EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	                                   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                   EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
	                                   EVHTTP_REQ_OPTIONS);
	evhttp_set_max_body_size(http->evh, (ev_ssize_t)o->max_body);
	evhttp_set_max_headers_size(http->evh, MAX_HEADERS_SIZE);
	struct timeval tv = {(time_t)(o->timeout_ms / 1000),
	                     (suseconds_t)(o->timeout_ms % 1000 * 1000)};
	evhttp_set_timeout_tv(http->evh, &tv);
	evhttp_set_gencb(http->evh, on_request, http);
	if (o->max_conns > 0) {
		http->conns = evfn__calloc(1, sizeof(*http->conns));
		if (!http->conns) {
			c->rc = EVFN_ENOMEM;
			return;
		}
		atomic_init(&http->conns->refs, 1);
		http->conns->max = o->max_conns;
		http->conns->listener = lev;
		evhttp_set_bevcb(http->evh, conn_new, http->conns);
	}
	evconnlistener_enable(lev);
	c->rc = 0;
}

int
evfn_http_new(evfn_http **out, evfn_rt *rt, const evfn_http_options *opts)
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
	if (http && (!opts->health ||
	             (http->health = evfn__strdup(opts->health))) &&
	    (!opts->metrics ||
	     (http->metrics = evfn__strdup(opts->metrics))) &&
	    (!opts->status ||
	     ((http->status = evfn__strdup(opts->status)) &&
	      (http->status_token = evfn__strdup(opts->status_token))))) {
		http->rt = rt;
		http->base = evfn_runtime_event_base(rt);
		struct create_call c = {http, opts, 0};
		rc = evfn__run_on_loop(rt, create, &c);
		if (rc == 0)
			rc = c.rc;
		if (rc) {
			evfn__run_on_loop(rt, destroy, http);
		} else {
			evfn__rt_attach(rt);
			*out = http;
		}
	} else if (http) {
		evfn__free(http->health);
		evfn__free(http->metrics);
		evfn__free(http->status);
		evfn__free(http);
	}
	evfn_http_options_free(defaults);
	return rc;
}

int
evfn_http_port(const evfn_http *http)
{
	return http ? http->port : EVFN_EINVAL;
}

void
evfn_http_free(evfn_http *http)
{
	if (!http)
		return;
	/* If the call cannot be queued the loop is gone or memory is out;
	 * tearing down here is then the only option left. */
	evfn_rt *rt = http->rt;
	if (evfn__run_on_loop(rt, destroy, http))
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
	const char *builtin[] = {http->health, http->metrics};
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(builtin); i++)
		if (builtin[i] && strlen(builtin[i]) == c->path_len &&
		    memcmp(builtin[i], c->path, c->path_len) == 0) {
			c->rc = EVFN_EEXIST;
			return;
		}
	const char *rest;
	if (http->status &&
	    evfn__status_owns(http->status, c->path, c->path_len, &rest)) {
		c->rc = EVFN_EEXIST;
		return;
	}
	struct path_entry *pe;
	HASH_FIND(hh, http->paths, c->path, c->path_len, pe);
	if (pe) {
		for (struct route *r = pe->routes; r; r = r->next)
			if (r->method == c->route->method) {
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
		bool evfn__hash_oom = false;
		HASH_ADD_KEYPTR(hh, http->paths, pe->path, c->path_len, pe);
		if (evfn__hash_oom) {
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
	r->deadline.tv_sec = (time_t)(r->opts.timeout_ms / 1000);
	r->deadline.tv_usec = (suseconds_t)(r->opts.timeout_ms % 1000 * 1000);

	struct route_call c = {http, r, path, plen, 0};
	rc = evfn__run_on_loop(http->rt, add_route, &c);
	if (rc == 0)
		rc = c.rc;
	if (c.route) {
		route_options_clear(&c.route->opts);
		evfn__free(c.route->fn);
		evfn__free(c.route);
	}
	return rc;
}
