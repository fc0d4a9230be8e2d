/* SPDX-License-Identifier: MIT */
/**
 * @file
 * The HTTP trigger: routes ("POST /pay") that turn requests into events
 * for named functions, served by an HTTP server of its own on the
 * runtime's libevent event_base (evfn_http_new()), or mounted on a host's
 * existing libevent evhttp server (evfn_http_attach(), or request by
 * request with evfn_http_handle()). Synchronous routes answer with the
 * function's response, asynchronous ones with 202 and the event id.
 * Requests may carry CloudEvents (binary, structured or batched HTTP
 * binding) and may have to pass a Stripe or GitHub webhook signature or a
 * bearer token. This header only forward-declares libevent's types: it
 * does not include libevent. Anything not declared under include/evfn/ is
 * private.
 *
 * Requests. A request without CloudEvents is one event of the route
 * function's name with the body as data and Content-Type as
 * datacontenttype. CloudEvents attributes and extensions must be
 * CloudEvents strings (valid UTF-8 without control characters, after
 * percent-decoding in binary mode); a structured event's data reaches the
 * handler as the JSON text the sender wrote (or, for a string with a
 * datacontenttype that is not JSON, as its characters). Every check is
 * made before the event is admitted, so an admitted event is never
 * answered with an error it did not earn: a 2xx means it was taken, any
 * other status (except a synchronous route's 502 and 504, below) that it
 * was not.
 *
 * Responses. A synchronous route answers with the handler's response as
 * the body, the status from response metadata "status" (default 200),
 * a header for each metadata key "header.<Name>", and Content-Type from
 * "header.Content-Type" or application/octet-stream. Every error answer
 * has a JSON body {"error": "<EVFN_ code name>", "message": "<reason>"}
 * (text that is not UTF-8 is written with U+FFFD in its place):
 * 400 EVFN_ECLOUDEVENT (missing or malformed CloudEvent attributes,
 * malformed JSON, "unsupported specversion", a batch on a synchronous
 * route), 400 EVFN_EPROTO with "Connection: close" (framing that two
 * parties could read differently, RFC 9112 6.3: two different
 * Content-Length values, Transfer-Encoding together with Content-Length,
 * a Transfer-Encoding other than chunked, a malformed chunk size,
 * extension or trailer), 401 EVFN_ESIGNATURE or EVFN_EAUTH (signature or
 * token missing, wrong or stale), 404 EVFN_ENOENT (no route for the path)
 * or EVFN_ENOFN (the route's function is not registered), 405
 * EVFN_EROUTE (the path exists for other methods, the built-in ones
 * included; an Allow header lists them), 415 EVFN_EMEDIATYPE (a
 * Content-Type of the application/cloudevents family other than
 * application/cloudevents+json and application/cloudevents-batch+json, or
 * no CloudEvent on a route that requires one), 429 EVFN_EQUEUEFULL and
 * 503 EVFN_EUNHEALTHY or EVFN_ECIRCUITOPEN with "Retry-After: 1", 503
 * EVFN_ESHUTDOWN (the runtime is draining, or the trigger closing), 504
 * EVFN_ETIMEDOUT (the route's deadline passed; the event keeps running
 * and its result is dropped), 502 for an event that failed (EVFN_EFAILED,
 * EVFN_EEXHAUSTED, EVFN_EEXPIRED; the message is the handler's error,
 * evfn_ctx_set_error()) or whose handler set an invalid status, 503
 * EVFN_EHANDEDBACK, 500 for anything else. Chunk extensions are accepted
 * (and ignored) on the trigger's own server. What libevent refuses before
 * the trigger sees a request gets libevent's own page: a body over the
 * maximum 413, a malformed request line or header 400 (libevent 2.1 as
 * Debian 12 ships it also refuses Transfer-Encoding with Content-Length
 * or twice so), and on a host's server any malformed chunked body 413.
 *
 * Threading: every call may be made from any thread unless it says
 * otherwise. With evfn's own loop thread running, evfn_http_new(),
 * evfn_http_attach(), evfn_http_route() and evfn_http_free() run their
 * work on that thread and wait for it; all request handling happens
 * there too. On a host's event_base (evfn/libevent.h) they run on the
 * calling thread, which must then be the thread that drives the base
 * (inside one of its callbacks, or while it is not dispatching).
 */
#ifndef EVFN_HTTP_H
#define EVFN_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct evhttp;
struct evhttp_request;

/** The HTTP trigger: routes to functions, on a server of its own or a
 * host's. */
typedef struct evfn_http evfn_http;
/** Builder for server options. */
typedef struct evfn_http_options evfn_http_options;
/** Builder for the options of one route. */
typedef struct evfn_route_options evfn_route_options;

/**
 * Create a server options builder with the defaults: 127.0.0.1, a free
 * port chosen by the system, bodies up to 1 MiB, a 30 s timeout on each
 * read and write of a connection, no connection limit, health route
 * GET /healthz, metrics route GET /metrics, no status page.
 *
 * @param out receives the builder; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL out; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with
 * evfn_http_options_free(); evfn_http_new() and evfn_http_attach() copy
 * it.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_options_new(evfn_http_options **out);

/**
 * Free a builder.
 * @param o the builder; NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_http_options_free(evfn_http_options *o);

/**
 * Where to listen.
 *
 * @param o the builder. Not NULL.
 * @param address a numeric IPv4 or IPv6 address ("0.0.0.0", "::1"),
 *        copied; NULL for 127.0.0.1. Host names are not resolved.
 * @param port 0 to let the system pick a free port (see evfn_http_port()).
 * @return 0; EVFN_EINVAL for NULL o or an address that is not numeric;
 *         EVFN_ERANGE unless 0 <= port <= 65535; EVFN_ENOMEM.
 *
 * Ownership: address is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_options_set_address(evfn_http_options *o,
                                              const char *address, int port);

/**
 * Largest request body accepted; a longer one is answered 413 without
 * being read.
 * @param o the builder. Not NULL.
 * @param bytes the limit (default 1 MiB).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for bytes < 0.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_options_set_max_body(evfn_http_options *o,
                                               int64_t bytes);

/**
 * Timeout against slow clients: a connection whose request headers or
 * body do not arrive (or whose response cannot be written) within ms of
 * the previous progress is closed without an answer. It does not limit
 * how long a function may take; that is the route's timeout.
 * @param o the builder. Not NULL.
 * @param ms the timeout (default 30000).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for ms < 1.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_options_set_timeout_ms(evfn_http_options *o,
                                                 int64_t ms);

/**
 * Most connections open at once; while at the limit the server stops
 * accepting, and new connections wait in the kernel's listen backlog.
 * @param o the builder. Not NULL.
 * @param n 0 for no limit (the default).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for n < 0.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_options_set_max_connections(evfn_http_options *o,
                                                      int n);

/**
 * Path of the health route, answered for GET and HEAD with 200
 * {"status":"ok"}, or 503 {"status":"draining"} once the runtime drains;
 * other methods get 405.
 * @param o the builder. Not NULL.
 * @param path starts with '/', copied; NULL for no health route.
 * @return 0; EVFN_EINVAL for NULL o; EVFN_EROUTE for a path that does not
 *         start with '/', is longer than the trigger serves, or holds
 *         blanks, control characters, '?' or '#'; EVFN_ENOMEM.
 *
 * Ownership: path is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_options_set_health_path(evfn_http_options *o,
                                                  const char *path);

/**
 * Path of the metrics route, answered for GET with the Prometheus text
 * exposition of the runtime's metrics (evfn_metrics_prometheus(),
 * Content-Type text/plain; version=0.0.4), other methods with 405.
 * Served by the trigger's own server, it adds the listener's gauge
 * evfn_http_connections{port} (connections open) and counter
 * evfn_http_accept_paused_total{port} (times accept() failed, mostly for
 * want of file descriptors, and accepting paused: it resumes when one of
 * the server's connections closes, or after a back-off of 10 ms doubling
 * to 1 s; the runtime's log says so, once a minute at most). Default
 * /metrics.
 * @param o the builder. Not NULL.
 * @param path starts with '/', copied; NULL for no metrics route.
 * @return 0; EVFN_EINVAL for NULL o; EVFN_EROUTE as for the health path;
 *         EVFN_ENOMEM.
 *
 * Ownership: path is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_options_set_metrics_path(evfn_http_options *o,
                                                   const char *path);

/**
 * Path of the live status page (off by default). GET \<path> serves a
 * self-contained HTML page (no external resources) that polls GET
 * \<path>/data every second: a JSON document with each function's counters,
 * gauges, p50/p99 run time and serverless cost estimate, and the dead
 * letters with their events. POST \<path>/dead-letters/replay and
 * POST \<path>/dead-letters/delete, with the dead letter's id in a JSON
 * body {"id": N} or a form body id=N, and POST \<path>/dead-letters/purge
 * act on the dead-letter store; they need the header
 * "Authorization: Bearer <token>" and are answered 401 EVFN_EAUTH
 * without it, 404 EVFN_ENOENT for an unknown id, 400 EVFN_EINVAL for a
 * missing or malformed id, else 200 with a JSON body. Routes may not be
 * added under the path.
 * @param o the builder. Not NULL.
 * @param path starts with '/', is not "/" and does not end with '/',
 *        copied; NULL for no status page (token is then ignored).
 * @param token the bearer token the actions require, copied; must be
 *        non-empty when path is not NULL.
 * @return 0; EVFN_EINVAL for NULL o, or a NULL or empty token with a
 *         path; EVFN_EROUTE for a path as for the health path, "/" or one
 *         ending with '/'; EVFN_ENOMEM.
 *
 * Reading needs no token: the page shows the dead letters' payloads to
 * anyone who can reach the server, so bind it to a trusted address.
 *
 * Ownership: path and token are copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_options_set_status(evfn_http_options *o,
                                             const char *path,
                                             const char *token);

/**
 * Create a server and start listening at once on the runtime's
 * event_base. Requests are served while the base runs (evfn's loop thread
 * after evfn_rt_start(), or the host's loop).
 *
 * @param out  receives the server; NULL on failure. Not NULL.
 * @param rt   the runtime events go to; it must outlive the server. Not
 *        NULL.
 * @param opts copied; NULL for the defaults.
 * @return 0; EVFN_EINVAL for NULL out or rt; EVFN_EADDRINUSE when the
 *         port is taken; EVFN_EACCES for a privileged port; EVFN_EINVAL
 *         for an address not on this host; EVFN_ENOMEM; another -errno
 *         from socket(), bind() or listen().
 *
 * Ownership: the caller owns *out and frees it with evfn_http_free(),
 * before evfn_rt_free().
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_new(evfn_http **out, evfn_rt *rt,
                              const evfn_http_options *opts);

/**
 * Mount the trigger on a host's existing libevent HTTP server instead of
 * opening a listener: the built-in paths (health, metrics, status page)
 * now, and each route's path as evfn_http_route() adds it, are routed to
 * evfn on server with evhttp_set_cb(); every other path stays the
 * host's. Routes, route options and answers are those of evfn_http_new().
 * The server's listeners, connections, body limit and timeouts are the
 * host's: of opts, only the health, metrics and status paths apply, and
 * the I/O timeout, which bounds how long evfn_http_free() waits for
 * answers due. Switch the health and metrics paths off
 * (evfn_http_options_set_health_path(o, NULL)) to leave those paths to
 * the host.
 *
 * With server NULL nothing is mounted: the host passes requests in from
 * its own callbacks with evfn_http_handle().
 *
 * @param out    receives the trigger; NULL on failure. Not NULL.
 * @param rt     the runtime events go to; it must outlive the trigger.
 *        Not NULL.
 * @param server the host's server, which must run on the runtime's
 *        event_base (evfn_rt_event_base(), usually the host's own:
 *        evfn_rt_options_set_event_base()); borrowed: it must outlive the
 *        trigger, which never frees it. NULL to mount nothing.
 * @param opts   copied; NULL for the defaults.
 * @return 0; EVFN_EINVAL for NULL out or rt; EVFN_EEXIST when server
 *         already routes one of the built-in paths (nothing is mounted
 *         then); EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with evfn_http_free().
 * server stays the host's: evfn_http_free() takes the mounted paths back
 * (evhttp_del_cb()) and leaves the server running; the host frees its
 * server after that.
 *
 * Thread-safety: as evfn_http_new(); with a host's base, the thread that
 * drives it.
 * @since 0.2
 */
EVFN_EXPORT int evfn_http_attach(evfn_http **out, evfn_rt *rt,
                                 struct evhttp *server,
                                 const evfn_http_options *opts);

/**
 * Serve one request from a host's own evhttp callback (a generic
 * callback, evhttp_set_gencb(), or one for a path prefix the host
 * dispatches itself): when the request's path is one of the trigger's
 * routes or built-in paths, evfn takes the request and answers it, now
 * or once the result is in, exactly as a request on the trigger's own
 * server. The path is compared as sent and, failing that,
 * percent-decoded.
 *
 * @param http a trigger from evfn_http_attach() (server NULL or not) or
 *        evfn_http_new(). Not NULL.
 * @param req  the request, as the host's callback received it. Not NULL.
 * @return 0 when evfn took the request: it is answered (or will be), and
 *         the host must not answer or free it; EVFN_ENOENT when the path
 *         is none of the trigger's: req is untouched and the host
 *         answers it; EVFN_EINVAL for NULL http or req.
 *
 * Ownership: on 0, req is evfn's until answered, like any request a
 * callback hands to evhttp_send_reply() later.
 *
 * Thread-safety: only on the loop thread of the runtime's event_base
 * (inside the host's evhttp callback), unlike the rest of this header.
 * @since 0.2
 */
EVFN_EXPORT int evfn_http_handle(evfn_http *http, struct evhttp_request *req);

/**
 * The port the trigger's own server listens on (the one the system
 * picked for port 0).
 * @param http the trigger; NULL is refused.
 * @return the port, 1..65535; EVFN_EINVAL for NULL http or a trigger
 *         attached to a host's server (evfn_http_attach()), which has no
 *         listener of its own.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_port(const evfn_http *http);

/**
 * Close the trigger and free it, answering first what is due.
 *
 * Stops intake at once (no new connections; mounted paths go back to
 * the host's server; requests arriving meanwhile on open connections get
 * 503 EVFN_ESHUTDOWN). Then, when the runtime has drained
 * (evfn_rt_drain() returned 0, so every admitted event has ended),
 * it waits for the results of the synchronous requests still waiting and
 * answers them; otherwise it answers each of them 202 {"id": "<event
 * id>"} as an asynchronous route would, since its event was admitted and
 * runs on. On the trigger's own server it also waits until every answer
 * has left for the kernel, then closes every connection. The waiting
 * lasts at most the server's I/O timeout
 * (evfn_http_options_set_timeout_ms()). So the graceful order is: drain
 * the runtime, free the HTTP trigger, free the runtime.
 *
 * Must be called before evfn_rt_free().
 * @param http the trigger; NULL is a no-op.
 *
 * Ownership: takes the trigger back; the caller must not use it again.
 *
 * Thread-safety: as the header says. On a host's base that no thread
 * drives at the time, it runs the base while it waits (as
 * evfn_rt_drain() does), so the host's own callbacks may run too.
 * Called from inside one of evfn's own loop callbacks (a loop handler, a
 * result callback), or from a host's callback on its base, it cannot
 * wait: what is not answered by then is answered as above but may not
 * reach its client before the connection closes.
 * @since 0.1
 */
EVFN_EXPORT void evfn_http_free(evfn_http *http);

/**
 * Create a route options builder with the defaults: synchronous, a 30 s
 * deadline, no signature, no token, CloudEvents not required.
 * @param out receives the builder; NULL on failure. Not NULL.
 * @return 0; EVFN_EINVAL for NULL out; EVFN_ENOMEM.
 *
 * Ownership: the caller owns *out and frees it with
 * evfn_route_options_free(); evfn_http_route() copies it.
 * @since 0.1
 */
EVFN_EXPORT int evfn_route_options_new(evfn_route_options **out);

/**
 * Free a builder.
 * @param o the builder; NULL is a no-op.
 * @since 0.1
 */
EVFN_EXPORT void evfn_route_options_free(evfn_route_options *o);

/**
 * Asynchronous routes answer 202 {"id": "<event id>"} as soon as the event
 * is queued, like Lambda's asynchronous invocation; synchronous ones wait
 * for the result. A CloudEvents batch is admitted event by event, in
 * order, up to the first refusal: 202 {"ids": [...]} lists the events
 * taken, and, when some were refused, "refused": {"error", "message",
 * "ids"} the rest (with "Retry-After: 1" when the refusal passes); when
 * none was taken the answer is the refusal's error, with "ids": [].
 * @param o the builder. Not NULL.
 * @param async true for an asynchronous route (default false).
 * @return 0; EVFN_EINVAL for NULL o.
 * @since 0.1
 */
EVFN_EXPORT int evfn_route_options_set_async(evfn_route_options *o,
                                             bool async);

/**
 * Require a CloudEvent (binary mode: ce-* headers; structured or batched
 * mode: application/cloudevents+json or application/cloudevents-batch+json)
 * in every request; anything else is answered 415 EVFN_EMEDIATYPE (and a
 * CloudEvent with missing or malformed attributes 400 EVFN_ECLOUDEVENT,
 * as on any route). Webhook senders that speak CloudEvents rely on it.
 * Off by default: a request without a CloudEvent is one plain event.
 * @param o the builder. Not NULL.
 * @param require true to refuse requests without a CloudEvent.
 * @return 0; EVFN_EINVAL for NULL o.
 * @since 0.2
 */
EVFN_EXPORT int evfn_route_options_set_require_cloudevents(evfn_route_options *o,
                                                           bool require);

/**
 * Deadline of a synchronous route: without a result by then the request
 * is answered 504. The event is not cancelled by it; the function's own
 * timeout and retries still apply.
 * @param o the builder. Not NULL.
 * @param ms the deadline (default 30000).
 * @return 0; EVFN_EINVAL for NULL o; EVFN_ERANGE for ms < 1.
 * @since 0.1
 */
EVFN_EXPORT int evfn_route_options_set_timeout_ms(evfn_route_options *o,
                                                  int64_t ms);

/**
 * Require a valid Stripe-Signature header ("t=<unix time>,v1=<hex>", any
 * of several v1 signatures may match): HMAC-SHA256 of "<t>.<body>" with
 * the endpoint secret, and t within tolerance_s of the server's clock.
 * @param o the builder. Not NULL.
 * @param secret non-empty, copied. Not NULL.
 * @param tolerance_s seconds; Stripe's libraries use 300.
 * @return 0; EVFN_EINVAL for NULL o or a NULL or empty secret;
 *         EVFN_ERANGE for tolerance_s < 1; EVFN_ENOMEM.
 *
 * Ownership: secret is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_route_options_set_stripe_secret(evfn_route_options *o,
                                                     const char *secret,
                                                     int64_t tolerance_s);

/**
 * Require a valid X-Hub-Signature-256 header ("sha256=<hex>"): GitHub's
 * HMAC-SHA256 of the body with the webhook secret.
 * @param o the builder. Not NULL.
 * @param secret non-empty, copied. Not NULL.
 * @return 0; EVFN_EINVAL for NULL o or a NULL or empty secret;
 *         EVFN_ENOMEM.
 *
 * Ownership: secret is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_route_options_set_github_secret(evfn_route_options *o,
                                                     const char *secret);

/**
 * Require "Authorization: Bearer <token>".
 * @param o the builder. Not NULL.
 * @param token non-empty, copied. Not NULL.
 * @return 0; EVFN_EINVAL for NULL o or a NULL or empty token;
 *         EVFN_ENOMEM.
 *
 * Ownership: token is copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_route_options_set_bearer_token(evfn_route_options *o,
                                                    const char *token);

/**
 * Route requests for one method and path to a function.
 *
 * The path matches exactly, without the query string (as sent or
 * percent-decoded). The function is looked up per request, so it may be
 * registered later; a request for an unregistered function is answered
 * 404. On a trigger attached to a host's server the path is mounted on
 * it when first routed.
 *
 * @param http the trigger. Not NULL.
 * @param route "METHOD /path": GET, POST, PUT, DELETE, PATCH, HEAD or
 *        OPTIONS, one space, a path as for
 *        evfn_http_options_set_health_path(). Not NULL.
 * @param fn_name a function name (see evfn_register()), copied. Not NULL.
 * @param opts copied; NULL for the defaults.
 * @return 0; EVFN_EINVAL for NULL http/route/fn_name or an empty fn_name;
 *         EVFN_ENAMETOOLONG; EVFN_EROUTE for a malformed route or an
 *         unknown method; EVFN_EEXIST when the method and path are routed
 *         already, the path is a built-in one (health, metrics, status
 *         page), or the host's server routes the path itself (attached):
 *         the runtime's log callback is told which; EVFN_ENOMEM.
 *
 * Ownership: route, fn_name and opts are copied.
 * @since 0.1
 */
EVFN_EXPORT int evfn_http_route(evfn_http *http, const char *route,
                                const char *fn_name,
                                const evfn_route_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_HTTP_H */
