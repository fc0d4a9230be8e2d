/* SPDX-License-Identifier: MIT */
/*
 * The HTTP trigger over real loopback connections: a client built on
 * libevent's evhttp client API (its own event_base, run in the test
 * thread) and plain sockets for misbehaving clients. Covers synchronous
 * and asynchronous routes, every error status, CloudEvents in all three
 * modes, webhook signatures, limits (body size, queue, connections, slow
 * clients), drain, route syntax and teardown with requests in flight.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <jansson.h>

#include <evfn/http.h>
#include <evfn/libevent.h>

#include "harness.h"
#include "http-client.h"
#include "sources/signature-internal.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- functions under test ----------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	atomic_int entered;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};

static void
gate_reset(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = false;
	pthread_mutex_unlock(&gate.lock);
	atomic_store(&gate.entered, 0);
}

static void
gate_release(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

/* What the last echo invocation saw. */
static struct {
	pthread_mutex_t lock;
	char id[64], source[64], type[64], ext[64], dct[64];
	int64_t time_ns;
} seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
copy_attr(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

static int
echo_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	size_t len;
	const void *data = evfn_event_data(ev, &len);
	pthread_mutex_lock(&seen.lock);
	copy_attr(seen.id, sizeof(seen.id), evfn_event_id(ev));
	copy_attr(seen.source, sizeof(seen.source), evfn_event_source(ev));
	copy_attr(seen.type, sizeof(seen.type), evfn_event_type(ev));
	copy_attr(seen.ext, sizeof(seen.ext),
	          evfn_event_extension(ev, "traceparent"));
	copy_attr(seen.dct, sizeof(seen.dct), evfn_event_datacontenttype(ev));
	seen.time_ns = evfn_event_time(ev);
	pthread_mutex_unlock(&seen.lock);
	evfn_ctx_respond(ctx, data, len);
	evfn_ctx_set_meta(ctx, "header.Content-Type", "text/plain");
	evfn_ctx_set_meta(ctx, "header.X-Event-Type", evfn_event_type(ev));
	/* Framing headers from a handler are ignored. */
	evfn_ctx_set_meta(ctx, "header.Content-Length", "9999");
	if (len == 7 && memcmp(data, "created", 7) == 0)
		evfn_ctx_set_meta(ctx, "status", "201");
	if (len == 3 && memcmp(data, "bad", 3) == 0)
		evfn_ctx_set_meta(ctx, "status", "2000");
	return EVFN_OK;
}

static int
raw_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ev;
	(void)userdata;
	evfn_ctx_respond(ctx, "abc", 3);
	return EVFN_OK;
}

static int
fail_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ev;
	(void)userdata;
	evfn_ctx_set_error(ctx, "card declined");
	return EVFN_FAIL;
}

static int
gated_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ev;
	(void)userdata;
	atomic_fetch_add(&gate.entered, 1);
	pthread_mutex_lock(&gate.lock);
	while (!gate.open)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
	evfn_ctx_respond(ctx, "late", 4);
	return EVFN_OK;
}

static atomic_int counted;

static int
count_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)userdata;
	pthread_mutex_lock(&seen.lock);
	copy_attr(seen.id, sizeof(seen.id), evfn_event_id(ev));
	copy_attr(seen.type, sizeof(seen.type), evfn_event_type(ev));
	pthread_mutex_unlock(&seen.lock);
	atomic_fetch_add(&counted, 1);
	return EVFN_OK;
}

/* ---- fixture --------------------------------------------------------- */

struct fixture {
	evfn_rt *rt;
	evfn_http *http;
	int port;
	bool drained;
};

static void
register_functions(evfn_rt *rt)
{
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, 1));
	ASSERT_OK(evfn_register(rt, "echo", echo_handler, NULL, fo, NULL));
	ASSERT_OK(evfn_register(rt, "raw", raw_handler, NULL, fo, NULL));
	ASSERT_OK(evfn_register(rt, "fail", fail_handler, NULL, fo, NULL));
	ASSERT_OK(evfn_register(rt, "count", count_handler, NULL, fo, NULL));
	/* One at a time and one waiting: the third request finds the
	 * queue full. */
	ASSERT_OK(evfn_fn_options_set_concurrency(fo, 1));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, 1));
	ASSERT_OK(evfn_fn_options_set_timeout_ms(fo, 30000));
	ASSERT_OK(evfn_register(rt, "gated", gated_handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
}

/* Starts a runtime with its own loop thread and a server on a free port;
 * opts NULL for the defaults. */
static void
fixture_start(struct fixture *f, const evfn_http_options *opts)
{
	memset(f, 0, sizeof(*f));
	gate_reset();
	atomic_store(&counted, 0);
	evfn_rt_options *ro;
	ASSERT_OK(evfn_rt_options_new(&ro));
	ASSERT_OK(evfn_rt_options_set_workers(ro, 1, 4));
	ASSERT_OK(evfn_runtime_new(&f->rt, ro));
	evfn_rt_options_free(ro);
	register_functions(f->rt);
	ASSERT_OK(evfn_runtime_start(f->rt));
	ASSERT_OK(evfn_http_new(&f->http, f->rt, opts));
	f->port = evfn_http_port(f->http);
	assert_true(f->port > 0 && f->port < 65536);
}

static void
fixture_stop(struct fixture *f)
{
	gate_release();
	evfn_http_free(f->http);
	if (!f->drained)
		ASSERT_OK(evfn_runtime_drain(f->rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_runtime_free(f->rt));
}

/* Adds a route; async and timeout_ms 0 mean the defaults. */
static void
route(struct fixture *f, const char *spec, const char *fn, bool async,
      int64_t timeout_ms)
{
	evfn_route_options *o;
	ASSERT_OK(evfn_route_options_new(&o));
	ASSERT_OK(evfn_route_options_set_async(o, async));
	if (timeout_ms)
		ASSERT_OK(evfn_route_options_set_timeout_ms(o, timeout_ms));
	ASSERT_OK(evfn_http_route(f->http, spec, fn, o));
	evfn_route_options_free(o);
}

/* ---- the client ------------------------------------------------------ */

static struct resp
post(int port, const char *path, const char *body)
{
	return http_request(port, EVHTTP_REQ_POST, path, NULL, 0, body,
	               body ? strlen(body) : 0);
}

static struct resp
post_with(int port, const char *path, const struct hdr *h, size_t nh,
          const char *body)
{
	return http_request(port, EVHTTP_REQ_POST, path, h, nh, body,
	               body ? strlen(body) : 0);
}

/* Checks the JSON error body of an answer. */
static void
assert_error(const struct resp *r, int status, const char *name,
             const char *message_part)
{
	if (r->status != status)
		fail_msg("status %d, expected %d (body %s)", r->status, status,
		         r->body);
	assert_string_equal(r->ctype, "application/json");
	json_t *j = json_loads(r->body, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "error")),
	                    name);
	const char *msg = json_string_value(json_object_get(j, "message"));
	assert_non_null(msg);
	if (message_part && !strstr(msg, message_part))
		fail_msg("message \"%s\" lacks \"%s\"", msg, message_part);
	json_decref(j);
}

/* ---- plain sockets for misbehaving clients --------------------------- */

static int
connect_raw(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void
send_raw(int fd, const char *s)
{
	size_t n = strlen(s);
	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads what arrives within ms; returns the byte count, 0 at EOF, -1 when
 * nothing came in time. */
static ssize_t
recv_within(int fd, char *buf, size_t n, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, ms) <= 0)
		return -1;
	ssize_t got = recv(fd, buf, n - 1, 0);
	if (got >= 0)
		buf[got] = '\0';
	return got;
}

/* Reads until the peer closes, at most n - 1 bytes and timeout_ms in
 * all; returns the byte count (buf NUL-terminated), or -1 when the peer
 * did not close in time. */
static ssize_t
read_to_eof(int fd, char *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	int64_t until = test_now_ms() + timeout_ms;
	buf[0] = '\0';
	for (;;) {
		int left = (int)(until - test_now_ms());
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
		ssize_t r = recv(fd, buf + got, n - 1 - got, 0);
		if (r <= 0 || got + (size_t)r >= n - 1) {
			if (r > 0)
				got += (size_t)r;
			buf[got] = '\0';
			return r < 0 ? -1 : (ssize_t)got;
		}
		got += (size_t)r;
		buf[got] = '\0';
	}
}

#define ASSERT_TRUE_MSG(cond, text)                                          \
	do {                                                                 \
		if (!(cond))                                                 \
			fail_msg("%s (got \"%s\")", #cond, (text));          \
	} while (0)

/* ---- synchronous routes ---------------------------------------------- */

static void
test_http_sync_answers_with_response(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /echo", "echo", false, 0);
	route(&f, "GET /raw", "raw", false, 0);

	struct resp r = post(f.port, "/echo?q=1", "hello");
	ASSERT_EQ(r.status, 200);
	assert_string_equal(r.body, "hello");
	assert_string_equal(r.ctype, "text/plain");
	assert_string_equal(r.clen, "5");
	/* A plain request is an event of the route function's name. */
	assert_string_equal(r.etype, "echo");

	r = post(f.port, "/echo", "created");
	ASSERT_EQ(r.status, 201);

	r = post(f.port, "/echo", "bad");
	assert_error(&r, 502, "EVFN_EINVAL", "invalid status");

	r = http_request(f.port, EVHTTP_REQ_GET, "/raw", NULL, 0, NULL, 0);
	ASSERT_EQ(r.status, 200);
	assert_string_equal(r.body, "abc");
	assert_string_equal(r.ctype, "application/octet-stream");
	fixture_stop(&f);
}

static void
test_http_sync_failure_answers_502(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /pay", "fail", false, 0);
	struct resp r = post(f.port, "/pay", "{}");
	assert_error(&r, 502, "EVFN_EFAILED", "card declined");
	fixture_stop(&f);
}

static void
test_http_sync_deadline_answers_504(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /slow", "gated", false, 100);
	int64_t t0 = test_now_ms();
	struct resp r = post(f.port, "/slow", "x");
	assert_error(&r, 504, "EVFN_ETIMEDOUT", NULL);
	assert_true(test_now_ms() - t0 >= 90);
	ASSERT_EQ(atomic_load(&gate.entered), 1);
	/* The event keeps running; its late result is dropped safely. */
	gate_release();
	WAIT_FOR(stat_of(f.rt, "gated", EVFN_STAT_SUCCEEDED) == 1, 5000);
	r = post(f.port, "/slow", "again");
	ASSERT_EQ(r.status, 200);
	assert_string_equal(r.body, "late");
	fixture_stop(&f);
}

/* ---- asynchronous routes --------------------------------------------- */

static void
test_http_async_answers_202_with_id(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /events", "count", true, 0);
	struct resp r = post(f.port, "/events", "payload");
	ASSERT_EQ(r.status, 202);
	json_t *j = json_loads(r.body, 0, NULL);
	assert_non_null(j);
	const char *id = json_string_value(json_object_get(j, "id"));
	assert_non_null(id);
	WAIT_FOR(atomic_load(&counted) == 1, 5000);
	pthread_mutex_lock(&seen.lock);
	assert_string_equal(seen.id, id);
	assert_string_equal(seen.type, "count");
	pthread_mutex_unlock(&seen.lock);
	json_decref(j);
	fixture_stop(&f);
}

/* ---- CloudEvents ----------------------------------------------------- */

static void
test_http_cloudevents_binary(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /ce", "echo", false, 0);
	const struct hdr h[] = {
		{"ce-specversion", "1.0"},
		{"ce-id", "evt-1"},
		{"ce-source", "/orders"},
		{"ce-type", "order.created"},
		{"ce-time", "2024-05-01T10:00:00Z"},
		{"ce-traceparent", "00-abc"},
		{"Content-Type", "application/json"},
	};
	struct resp r = post_with(f.port, "/ce", h, N_OF(h), "{\"n\":1}");
	ASSERT_EQ(r.status, 200);
	assert_string_equal(r.body, "{\"n\":1}");
	assert_string_equal(r.etype, "order.created");
	pthread_mutex_lock(&seen.lock);
	assert_string_equal(seen.id, "evt-1");
	assert_string_equal(seen.source, "/orders");
	assert_string_equal(seen.ext, "00-abc");
	assert_string_equal(seen.dct, "application/json");
	ASSERT_EQ(seen.time_ns, INT64_C(1714557600) * 1000000000);
	pthread_mutex_unlock(&seen.lock);

	/* Missing id, unsupported specversion. */
	r = post_with(f.port, "/ce", h + 2, 2, "x");
	assert_error(&r, 400, "EVFN_ECLOUDEVENT",
	             "missing required attribute specversion");
	const struct hdr no_id[] = {{"ce-specversion", "1.0"},
	                            {"ce-source", "/s"},
	                            {"ce-type", "t"}};
	r = post_with(f.port, "/ce", no_id, N_OF(no_id), "x");
	assert_error(&r, 400, "EVFN_ECLOUDEVENT",
	             "missing required attribute id");
	const struct hdr old[] = {{"ce-specversion", "0.3"},
	                          {"ce-id", "1"},
	                          {"ce-source", "/s"},
	                          {"ce-type", "t"}};
	r = post_with(f.port, "/ce", old, N_OF(old), "x");
	assert_error(&r, 400, "EVFN_ECLOUDEVENT", "unsupported specversion");
	fixture_stop(&f);
}

static const struct hdr ce_structured[] = {
	{"Content-Type", "application/cloudevents+json"}};
static const struct hdr ce_batch[] = {
	{"Content-Type", "application/cloudevents-batch+json"}};

static void
test_http_cloudevents_structured(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /ce", "count", true, 0);
	route(&f, "POST /sync", "echo", false, 0);
	struct resp r = post_with(
		f.port, "/ce", ce_structured, 1,
		"{\"specversion\":\"1.0\",\"id\":\"s-1\",\"source\":\"/s\","
		"\"type\":\"thing.done\",\"data\":{\"k\":true}}");
	ASSERT_EQ(r.status, 202);
	assert_string_equal(r.body, "{\"id\":\"s-1\"}");
	WAIT_FOR(atomic_load(&counted) == 1, 5000);

	/* Structured data reaches a synchronous handler as JSON text. */
	r = post_with(f.port, "/sync", ce_structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"s-2\",\"source\":"
	              "\"/s\",\"type\":\"t\",\"data\":[1, 2]}");
	ASSERT_EQ(r.status, 200);
	assert_string_equal(r.body, "[1, 2]");

	r = post_with(f.port, "/ce", ce_structured, 1, "{\"specversion\":");
	assert_error(&r, 400, "EVFN_ECLOUDEVENT", "malformed JSON");
	r = post_with(f.port, "/ce", ce_structured, 1,
	              "{\"specversion\":\"1.0\",\"source\":\"/s\","
	              "\"type\":\"t\"}");
	assert_error(&r, 400, "EVFN_ECLOUDEVENT",
	             "missing required attribute id");
	ASSERT_EQ(atomic_load(&counted), 1);
	fixture_stop(&f);
}

static void
test_http_cloudevents_batched(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /batch", "count", true, 0);
	route(&f, "POST /sync", "echo", false, 0);
	const char *batch =
		"[{\"specversion\":\"1.0\",\"id\":\"b-1\",\"source\":\"/s\","
		"\"type\":\"t\"},{\"specversion\":\"1.0\",\"id\":\"b-2\","
		"\"source\":\"/s\",\"type\":\"t\",\"data\":\"x\"}]";
	struct resp r = post_with(f.port, "/batch", ce_batch, 1, batch);
	ASSERT_EQ(r.status, 202);
	assert_string_equal(r.body, "{\"ids\":[\"b-1\",\"b-2\"]}");
	WAIT_FOR(atomic_load(&counted) == 2, 5000);

	r = post_with(f.port, "/sync", ce_batch, 1, batch);
	assert_error(&r, 400, "EVFN_ECLOUDEVENT", "asynchronous route");
	r = post_with(f.port, "/batch", ce_batch, 1, "[1]");
	assert_error(&r, 400, "EVFN_ECLOUDEVENT", "event 0:");
	fixture_stop(&f);
}

/* ---- authentication -------------------------------------------------- */

static void
hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* A Stripe-Signature header for body at time t. */
static void
stripe_header(const char *secret, long long t, const char *body, char *out,
              size_t n)
{
	char ts[32];
	snprintf(ts, sizeof(ts), "%lld", t);
	const void *parts[] = {ts, ".", body};
	size_t lens[] = {strlen(ts), 1, strlen(body)};
	unsigned char mac[EVFN__SHA256_LEN];
	ASSERT_OK(evfn__hmac_sha256(secret, strlen(secret), parts, lens, 3,
	                            mac));
	char h[2 * EVFN__SHA256_LEN + 1];
	hex(mac, sizeof(mac), h);
	snprintf(out, n, "t=%s,v1=%s", ts, h);
}

static void
test_http_stripe_signature(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	evfn_route_options *o;
	ASSERT_OK(evfn_route_options_new(&o));
	ASSERT_OK(evfn_route_options_set_stripe_secret(o, "whsec_x", 300));
	ASSERT_OK(evfn_http_route(f.http, "POST /stripe", "echo", o));
	evfn_route_options_free(o);

	const char *body = "{\"type\":\"charge.succeeded\"}";
	char sig[256];
	stripe_header("whsec_x", (long long)time(NULL), body, sig, sizeof(sig));
	struct hdr h = {"Stripe-Signature", sig};
	struct resp r = post_with(f.port, "/stripe", &h, 1, body);
	ASSERT_EQ(r.status, 200);
	assert_string_equal(r.body, body);

	stripe_header("whsec_other", (long long)time(NULL), body, sig,
	              sizeof(sig));
	r = post_with(f.port, "/stripe", &h, 1, body);
	assert_error(&r, 401, "EVFN_ESIGNATURE", "does not match");

	stripe_header("whsec_x", (long long)time(NULL) - 1000, body, sig,
	              sizeof(sig));
	r = post_with(f.port, "/stripe", &h, 1, body);
	assert_error(&r, 401, "EVFN_ESIGNATURE", "outside tolerance");

	r = post(f.port, "/stripe", body);
	assert_error(&r, 401, "EVFN_ESIGNATURE", "missing Stripe-Signature");
	fixture_stop(&f);
}

static void
test_http_github_signature(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	evfn_route_options *o;
	ASSERT_OK(evfn_route_options_new(&o));
	ASSERT_OK(evfn_route_options_set_github_secret(
		o, "It's a Secret to Everybody"));
	ASSERT_OK(evfn_http_route(f.http, "POST /github", "echo", o));
	evfn_route_options_free(o);

	/* GitHub's documented example. */
	struct hdr h = {"X-Hub-Signature-256",
	                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c2"
	                "2c46f4379c8b043e17"};
	struct resp r = post_with(f.port, "/github", &h, 1, "Hello, World!");
	ASSERT_EQ(r.status, 200);
	r = post_with(f.port, "/github", &h, 1, "Hello, World?");
	assert_error(&r, 401, "EVFN_ESIGNATURE", "does not match");
	r = post(f.port, "/github", "Hello, World!");
	assert_error(&r, 401, "EVFN_ESIGNATURE", "missing");
	fixture_stop(&f);
}

static void
test_http_bearer_token(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	evfn_route_options *o;
	ASSERT_OK(evfn_route_options_new(&o));
	ASSERT_OK(evfn_route_options_set_bearer_token(o, "tok-123"));
	ASSERT_OK(evfn_http_route(f.http, "POST /private", "echo", o));
	evfn_route_options_free(o);

	struct hdr good = {"Authorization", "Bearer tok-123"};
	struct resp r = post_with(f.port, "/private", &good, 1, "ok");
	ASSERT_EQ(r.status, 200);
	struct hdr bad = {"Authorization", "Bearer tok-124"};
	r = post_with(f.port, "/private", &bad, 1, "ok");
	assert_error(&r, 401, "EVFN_EAUTH", "does not match");
	r = post(f.port, "/private", "ok");
	assert_error(&r, 401, "EVFN_EAUTH", "missing Authorization");
	fixture_stop(&f);
}

/* ---- limits and refusals --------------------------------------------- */

static void
test_http_body_too_large_answers_413(void **state)
{
	(void)state;
	evfn_http_options *o;
	ASSERT_OK(evfn_http_options_new(&o));
	ASSERT_OK(evfn_http_options_set_max_body(o, 16));
	struct fixture f;
	fixture_start(&f, o);
	evfn_http_options_free(o);
	route(&f, "POST /echo", "echo", false, 0);
	struct resp r = post(f.port, "/echo", "0123456789abcdef");
	ASSERT_EQ(r.status, 200);
	char big[100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r = post(f.port, "/echo", big);
	ASSERT_EQ(r.status, 413);
	fixture_stop(&f);
}

static void
test_http_queue_full_answers_429(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /gated", "gated", true, 0);
	/* One running (held at the gate), one queued, then refusals. */
	struct resp r = post(f.port, "/gated", "1");
	ASSERT_EQ(r.status, 202);
	WAIT_FOR(atomic_load(&gate.entered) == 1, 5000);
	r = post(f.port, "/gated", "2");
	ASSERT_EQ(r.status, 202);
	r = post(f.port, "/gated", "3");
	assert_error(&r, 429, "EVFN_EQUEUEFULL", NULL);
	assert_string_equal(r.retry, "1");
	gate_release();
	WAIT_FOR(stat_of(f.rt, "gated", EVFN_STAT_SUCCEEDED) == 2, 5000);
	fixture_stop(&f);
}

static void
test_http_draining_answers_503(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /echo", "echo", false, 0);
	route(&f, "POST /async", "count", true, 0);
	ASSERT_OK(evfn_runtime_drain(f.rt, 1000, NULL, NULL));
	f.drained = true;
	struct resp r = post(f.port, "/echo", "x");
	assert_error(&r, 503, "EVFN_ESHUTDOWN", NULL);
	r = post(f.port, "/async", "x");
	assert_error(&r, 503, "EVFN_ESHUTDOWN", NULL);
	r = http_request(f.port, EVHTTP_REQ_GET, "/healthz", NULL, 0, NULL, 0);
	ASSERT_EQ(r.status, 503);
	assert_string_equal(r.body, "{\"status\":\"draining\"}");
	fixture_stop(&f);
}

static void
test_http_unknown_path_method_and_function(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /echo", "echo", false, 0);
	route(&f, "PUT /echo", "echo", false, 0);
	route(&f, "POST /ghost", "nobody", false, 0);
	struct resp r = post(f.port, "/nowhere", "x");
	assert_error(&r, 404, "EVFN_ENOENT", "no route");
	r = http_request(f.port, EVHTTP_REQ_GET, "/echo", NULL, 0, NULL, 0);
	assert_error(&r, 405, "EVFN_EROUTE", NULL);
	assert_string_equal(r.allow, "PUT, POST");
	r = http_request(f.port, EVHTTP_REQ_PUT, "/echo", NULL, 0, "put", 3);
	ASSERT_EQ(r.status, 200);
	/* The function is looked up per request. */
	r = post(f.port, "/ghost", "x");
	assert_error(&r, 404, "EVFN_ENOFN", NULL);
	fixture_stop(&f);
}

static void
test_http_health_route(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	struct resp r =
		http_request(f.port, EVHTTP_REQ_GET, "/healthz", NULL, 0, NULL, 0);
	ASSERT_EQ(r.status, 200);
	assert_string_equal(r.body, "{\"status\":\"ok\"}");
	assert_string_equal(r.ctype, "application/json");
	/* A route cannot take the health path. */
	ASSERT_RC(evfn_http_route(f.http, "GET /healthz", "echo", NULL),
	          EVFN_EEXIST);
	fixture_stop(&f);

	evfn_http_options *o;
	ASSERT_OK(evfn_http_options_new(&o));
	ASSERT_OK(evfn_http_options_set_health_path(o, "/up"));
	fixture_start(&f, o);
	evfn_http_options_free(o);
	r = http_request(f.port, EVHTTP_REQ_GET, "/up", NULL, 0, NULL, 0);
	ASSERT_EQ(r.status, 200);
	r = http_request(f.port, EVHTTP_REQ_GET, "/healthz", NULL, 0, NULL, 0);
	ASSERT_EQ(r.status, 404);
	fixture_stop(&f);
}

static void
test_http_metrics_route(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /echo", "echo", false, 0);
	struct resp r = post(f.port, "/echo", "x");
	ASSERT_EQ(r.status, 200);
	r = http_request(f.port, EVHTTP_REQ_GET, "/metrics", NULL, 0, NULL, 0);
	ASSERT_EQ(r.status, 200);
	assert_string_equal(r.ctype, "text/plain; version=0.0.4");
	assert_non_null(
		strstr(r.body, "evfn_succeeded_total{function=\"echo\"} 1\n"));
	ASSERT_RC(evfn_http_route(f.http, "GET /metrics", "echo", NULL),
	          EVFN_EEXIST);
	fixture_stop(&f);

	evfn_http_options *o;
	ASSERT_OK(evfn_http_options_new(&o));
	ASSERT_OK(evfn_http_options_set_metrics_path(o, NULL));
	ASSERT_RC(evfn_http_options_set_metrics_path(o, "metrics"),
	          EVFN_EROUTE);
	fixture_start(&f, o);
	evfn_http_options_free(o);
	r = http_request(f.port, EVHTTP_REQ_GET, "/metrics", NULL, 0, NULL, 0);
	ASSERT_EQ(r.status, 404);
	fixture_stop(&f);
}

static void
test_http_port_in_use(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	evfn_http_options *o;
	ASSERT_OK(evfn_http_options_new(&o));
	ASSERT_OK(evfn_http_options_set_address(o, "127.0.0.1", f.port));
	evfn_http *second = (evfn_http *)&f;
	ASSERT_RC(evfn_http_new(&second, f.rt, o), EVFN_EADDRINUSE);
	assert_null(second);
	/* An address that is not this host's. */
	ASSERT_OK(evfn_http_options_set_address(o, "192.0.2.1", 0));
	ASSERT_RC(evfn_http_new(&second, f.rt, o), EVFN_EINVAL);
	evfn_http_options_free(o);
	fixture_stop(&f);
}

static void
test_http_rejects_bad_routes_and_options(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	static const char *const bad[] = {
		"POST", "POST pay", "FETCH /x", "post /x", "POST  /x",
		"POST /a b", "POST /a?b", "", " /x", "POST /x\n",
	};
	for (size_t i = 0; i < N_OF(bad); i++)
		if (evfn_http_route(f.http, bad[i], "echo", NULL) !=
		    EVFN_EROUTE)
			fail_msg("accepted route \"%s\"", bad[i]);
	ASSERT_OK(evfn_http_route(f.http, "POST /pay", "echo", NULL));
	ASSERT_RC(evfn_http_route(f.http, "POST /pay", "raw", NULL),
	          EVFN_EEXIST);
	ASSERT_OK(evfn_http_route(f.http, "GET /pay", "raw", NULL));
	ASSERT_RC(evfn_http_route(f.http, "POST /x", "", NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_http_route(NULL, "POST /x", "echo", NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_http_route(f.http, NULL, "echo", NULL), EVFN_EINVAL);

	evfn_http_options *o;
	ASSERT_RC(evfn_http_options_new(NULL), EVFN_EINVAL);
	ASSERT_OK(evfn_http_options_new(&o));
	ASSERT_RC(evfn_http_options_set_address(o, "localhost", 0),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_http_options_set_address(o, "::1", 70000), EVFN_ERANGE);
	ASSERT_OK(evfn_http_options_set_address(o, "::1", 0));
	ASSERT_RC(evfn_http_options_set_max_body(o, -1), EVFN_ERANGE);
	ASSERT_RC(evfn_http_options_set_timeout_ms(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_http_options_set_max_connections(o, -1), EVFN_ERANGE);
	ASSERT_RC(evfn_http_options_set_health_path(o, "healthz"),
	          EVFN_EROUTE);
	ASSERT_RC(evfn_http_options_set_max_body(NULL, 1), EVFN_EINVAL);
	evfn_http_options_free(o);
	evfn_http_options_free(NULL);

	evfn_route_options *ro;
	ASSERT_OK(evfn_route_options_new(&ro));
	ASSERT_RC(evfn_route_options_set_timeout_ms(ro, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_route_options_set_stripe_secret(ro, "s", 0),
	          EVFN_ERANGE);
	ASSERT_RC(evfn_route_options_set_stripe_secret(ro, "", 300),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_route_options_set_github_secret(ro, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_route_options_set_bearer_token(ro, ""), EVFN_EINVAL);
	ASSERT_RC(evfn_route_options_set_async(NULL, true), EVFN_EINVAL);
	evfn_route_options_free(ro);
	evfn_route_options_free(NULL);

	evfn_http *h = (evfn_http *)&f;
	ASSERT_RC(evfn_http_new(&h, NULL, NULL), EVFN_EINVAL);
	assert_null(h);
	ASSERT_RC(evfn_http_new(NULL, f.rt, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_http_port(NULL), EVFN_EINVAL);
	evfn_http_free(NULL);
	fixture_stop(&f);
}

/* ---- misbehaving clients and teardown -------------------------------- */

static void
test_http_slow_client_cut_off_by_timeout(void **state)
{
	(void)state;
	evfn_http_options *o;
	ASSERT_OK(evfn_http_options_new(&o));
	ASSERT_OK(evfn_http_options_set_timeout_ms(o, 200));
	struct fixture f;
	fixture_start(&f, o);
	evfn_http_options_free(o);
	int fd = connect_raw(f.port);
	int64_t t0 = test_now_ms();
	/* The headers never end. */
	send_raw(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
	char buf[256];
	ASSERT_EQ(recv_within(fd, buf, sizeof(buf), 5000), 0);
	int64_t waited = test_now_ms() - t0;
	assert_true(waited >= 150 && waited < 4000);
	close(fd);
	fixture_stop(&f);
}

static void
test_http_max_connections_defers_accept(void **state)
{
	(void)state;
	evfn_http_options *o;
	ASSERT_OK(evfn_http_options_new(&o));
	ASSERT_OK(evfn_http_options_set_max_connections(o, 1));
	ASSERT_OK(evfn_http_options_set_timeout_ms(o, 1000));
	struct fixture f;
	fixture_start(&f, o);
	evfn_http_options_free(o);

	/* The first connection is served and stays open (keep-alive). */
	char buf[1024];
	int a = connect_raw(f.port);
	send_raw(a, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	ssize_t got = recv_within(a, buf, sizeof(buf), 5000);
	if (got <= 0)
		fail_msg("first connection: recv_within returned %zd", got);
	assert_non_null(strstr(buf, "200 OK"));

	/* The second waits in the backlog while the first is open. */
	int b = connect_raw(f.port);
	send_raw(b, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	ASSERT_EQ(recv_within(b, buf, sizeof(buf), 200), -1);
	close(a);
	assert_true(recv_within(b, buf, sizeof(buf), 5000) > 0);
	assert_non_null(strstr(buf, "200 OK"));

	/* A slot freed by the timeout of a client that never finishes its
	 * headers counts as well. */
	close(b);
	int c = connect_raw(f.port);
	send_raw(c, "GET /healthz HTTP/1.1\r\n");
	int d = connect_raw(f.port);
	send_raw(d, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	got = recv_within(d, buf, sizeof(buf), 5000);
	if (got <= 0)
		fail_msg("after a timeout: recv_within returned %zd", got);
	assert_non_null(strstr(buf, "200 OK"));
	/* Freed with a connection still open. */
	fixture_stop(&f);
	close(c);
	close(d);
}

static void
test_http_client_gone_before_result(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /slow", "gated", false, 0);
	int fd = connect_raw(f.port);
	send_raw(fd, "POST /slow HTTP/1.1\r\nHost: x\r\n"
	             "Content-Length: 1\r\n\r\nx");
	WAIT_FOR(atomic_load(&gate.entered) == 1, 5000);
	close(fd);
	gate_release();
	WAIT_FOR(stat_of(f.rt, "gated", EVFN_STAT_SUCCEEDED) == 1, 5000);
	/* The server is still fine. */
	struct resp r = post(f.port, "/slow", "y");
	ASSERT_EQ(r.status, 200);
	fixture_stop(&f);
}

static void
test_http_free_with_request_in_flight(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, NULL);
	route(&f, "POST /slow", "gated", false, 0);
	int fd = connect_raw(f.port);
	send_raw(fd, "POST /slow HTTP/1.1\r\nHost: x\r\n"
	             "Content-Length: 1\r\n\r\nx");
	WAIT_FOR(atomic_load(&gate.entered) == 1, 5000);
	/* The runtime was not drained: the waiting request is answered as
	 * an asynchronous route would (its event was taken and runs on),
	 * before its connection closes; the result arrives after the
	 * trigger is gone. */
	evfn_http_free(f.http);
	f.http = NULL;
	char buf[512];
	ASSERT_TRUE_MSG(read_to_eof(fd, buf, sizeof(buf), 5000) > 0, buf);
	assert_non_null(strstr(buf, "HTTP/1.1 202 Accepted\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n{\"id\":\""));
	close(fd);
	gate_release();
	WAIT_FOR(stat_of(f.rt, "gated", EVFN_STAT_SUCCEEDED) == 1, 5000);
	fixture_stop(&f);
}

/* ---- a host's event_base --------------------------------------------- */

struct host_client {
	struct event_base *base;
	struct evhttp_connection *conn;
	int status;
	char body[64];
};

static void
host_client_done(struct evhttp_request *req, void *arg)
{
	struct host_client *c = arg;
	if (req) {
		c->status = evhttp_request_get_response_code(req);
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		int n = evbuffer_remove(b, c->body, sizeof(c->body) - 1);
		c->body[n > 0 ? n : 0] = '\0';
	}
	event_base_loopbreak(c->base);
}

static void
test_http_on_host_event_base(void **state)
{
	(void)state;
	/* Server and client share the host's base, driven by this thread;
	 * the server is created before the base runs. */
	assert_int_equal(evthread_use_pthreads(), 0);
	struct event_base *base = event_base_new();
	evfn_rt_options *ro;
	ASSERT_OK(evfn_rt_options_new(&ro));
	ASSERT_OK(evfn_rt_options_set_event_base(ro, base));
	evfn_rt *hosted;
	ASSERT_OK(evfn_runtime_new(&hosted, ro));
	evfn_rt_options_free(ro);
	register_functions(hosted);
	ASSERT_OK(evfn_runtime_start(hosted));
	evfn_http *http;
	ASSERT_OK(evfn_http_new(&http, hosted, NULL));
	ASSERT_OK(evfn_http_route(http, "POST /echo", "echo", NULL));

	struct host_client c = {.base = base};
	c.conn = evhttp_connection_base_new(
		base, NULL, "127.0.0.1", (unsigned short)evfn_http_port(http));
	evhttp_connection_set_timeout(c.conn, 10);
	struct evhttp_request *req = evhttp_request_new(host_client_done, &c);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "x");
	evbuffer_add(evhttp_request_get_output_buffer(req), "hosted", 6);
	assert_int_equal(evhttp_make_request(c.conn, req, EVHTTP_REQ_POST,
	                                     "/echo"),
	                 0);
	event_base_dispatch(base);
	ASSERT_EQ(c.status, 200);
	assert_string_equal(c.body, "hosted");
	evhttp_connection_free(c.conn);
	evfn_http_free(http);
	ASSERT_OK(evfn_runtime_drain(hosted, 5000, NULL, NULL));
	ASSERT_OK(evfn_runtime_free(hosted));
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_http_sync_answers_with_response),
		TEST(test_http_sync_failure_answers_502),
		TEST(test_http_sync_deadline_answers_504),
		TEST(test_http_async_answers_202_with_id),
		TEST(test_http_cloudevents_binary),
		TEST(test_http_cloudevents_structured),
		TEST(test_http_cloudevents_batched),
		TEST(test_http_stripe_signature),
		TEST(test_http_github_signature),
		TEST(test_http_bearer_token),
		TEST(test_http_body_too_large_answers_413),
		TEST(test_http_queue_full_answers_429),
		TEST(test_http_draining_answers_503),
		TEST(test_http_unknown_path_method_and_function),
		TEST(test_http_health_route),
		TEST(test_http_port_in_use),
		TEST(test_http_rejects_bad_routes_and_options),
		TEST(test_http_slow_client_cut_off_by_timeout),
		TEST(test_http_max_connections_defers_accept),
		TEST(test_http_client_gone_before_result),
		TEST(test_http_free_with_request_in_flight),
		TEST(test_http_on_host_event_base),
		TEST(test_http_metrics_route),
	};
	return evfn_test_main("http", tests);
}
