/* SPDX-License-Identifier: MIT */
/*
 * The live status page of the HTTP trigger over real loopback
 * connections: the page itself, the JSON document after a known workload,
 * the dead-letter actions and their bearer token (a replay through the
 * page's POST runs the function again), and the option's validation. The
 * client is libevent's evhttp client on its own base in the test thread.
 */
#include <stdatomic.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include <evfn/http.h>

#include "harness.h"
#include "http-client.h"

#define TOKEN "s3cret-token"

/* ---- functions under test ------------------------------------------- */

static atomic_int ok_runs, flaky_runs;
static atomic_bool flaky_heals;

static int
ok_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx, (void)ev, (void)userdata;
	atomic_fetch_add(&ok_runs, 1);
	return EVFN_OK;
}

/* Fails until flaky_heals is set: its first event is dead-lettered, a
 * replay afterwards succeeds. */
static int
flaky_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ev, (void)userdata;
	atomic_fetch_add(&flaky_runs, 1);
	if (atomic_load(&flaky_heals))
		return EVFN_OK;
	evfn_ctx_set_error(ctx, "upstream said no");
	return EVFN_FAIL;
}

/* ---- fixture --------------------------------------------------------- */

struct fixture {
	evfn_rt *rt;
	evfn_http *http;
	int port;
};

/* Starts a runtime with "ok" and "flaky" (one attempt each) and a server
 * with the status page at /status, or none when with_status is false. */
static void
fixture_start(struct fixture *f, bool with_status)
{
	memset(f, 0, sizeof(*f));
	atomic_store(&ok_runs, 0);
	atomic_store(&flaky_runs, 0);
	atomic_store(&flaky_heals, false);
	ASSERT_OK(evfn_rt_new(&f->rt, NULL));
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, 1));
	ASSERT_OK(evfn_register(f->rt, "ok", ok_handler, NULL, fo, NULL));
	ASSERT_OK(evfn_register(f->rt, "flaky", flaky_handler, NULL, fo,
	                        NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(f->rt));
	evfn_http_options *o;
	ASSERT_OK(evfn_http_options_new(&o));
	if (with_status)
		ASSERT_OK(evfn_http_options_set_status(o, "/status", TOKEN));
	ASSERT_OK(evfn_http_new(&f->http, f->rt, o));
	evfn_http_options_free(o);
	f->port = evfn_http_port(f->http);
}

/* The known workload: three successes and one dead letter whose payload
 * is data (len bytes). */
static void
workload(struct fixture *f, const void *data, size_t len)
{
	for (int i = 0; i < 3; i++)
		ASSERT_OK(evfn_invoke_async(f->rt, "ok", "hi", 2, NULL));
	ASSERT_OK(evfn_invoke_async(f->rt, "flaky", data, len, NULL));
	WAIT_FOR(stat_of(f->rt, "ok", EVFN_STAT_SUCCEEDED) == 3, 10000);
	WAIT_FOR(evfn_dead_letter_count(f->rt) == 1, 10000);
}

static void
fixture_stop(struct fixture *f)
{
	evfn_http_free(f->http);
	ASSERT_OK(evfn_rt_drain(f->rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(f->rt));
}

/* ---- the client ------------------------------------------------------ */

/* Sends one request (auth NULL for no Authorization header, body NULL
 * for none). */
static struct resp
request(int port, enum evhttp_cmd_type cmd, const char *path,
        const char *auth, const char *body)
{
	struct hdr h = {"Authorization", auth};
	return http_request(port, cmd, path, &h, auth ? 1 : 0, body,
	                    body ? strlen(body) : 0);
}

static struct resp
get(int port, const char *path)
{
	return request(port, EVHTTP_REQ_GET, path, NULL, NULL);
}

static struct resp
post(int port, const char *action, const char *auth, const char *body)
{
	char path[128];
	snprintf(path, sizeof(path), "/status/dead-letters/%s", action);
	return request(port, EVHTTP_REQ_POST, path, auth, body);
}

/* Checks an answer's status and, for an error, its EVFN_ code name. */
static void
assert_answer(struct resp *r, int status, const char *error)
{
	if (r->status != status)
		fail_msg("status %d, expected %d: %s", r->status, status,
		         r->body);
	if (error) {
		json_t *doc = json_loads(r->body, 0, NULL);
		assert_non_null(doc);
		assert_string_equal(
			json_string_value(json_object_get(doc, "error")),
			error);
		json_decref(doc);
	}
}

/* GET /status/data, parsed. */
static json_t *
get_data(int port)
{
	struct resp r = get(port, "/status/data");
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, "application/json");
	json_error_t err;
	json_t *doc = json_loads(r.body, 0, &err);
	if (!doc)
		fail_msg("bad JSON (%s): %s", err.text, r.body);
	return doc;
}

static json_t *
function_in(json_t *doc, const char *name)
{
	json_t *fns = json_object_get(doc, "functions"), *fn;
	size_t i;
	json_array_foreach(fns, i, fn)
		if (strcmp(json_string_value(json_object_get(fn, "name")),
		           name) == 0)
			return fn;
	fail_msg("function %s not listed", name);
	return NULL;
}

static long long
int_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("%s is not an integer", key);
	return json_integer_value(v);
}

/* The one dead letter's id, as the document lists it. */
static long long
only_dead_letter_id(int port)
{
	json_t *doc = get_data(port);
	json_t *items =
		json_object_get(json_object_get(doc, "dead_letters"), "items");
	assert_int_equal(json_array_size(items), 1);
	long long id = int_at(json_array_get(items, 0), "id");
	json_decref(doc);
	return id;
}

/* ---- cases ----------------------------------------------------------- */

static void
test_status_page_is_self_contained_html(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, true);
	struct resp r = get(f.port, "/status");
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, "text/html; charset=utf-8");
	assert_non_null(strstr(r.body, "<!DOCTYPE html>"));
	assert_non_null(strstr(r.body, "<canvas"));
	assert_non_null(strstr(r.body, "fetch(base + \"/data\""));
	assert_non_null(strstr(r.body, "sessionStorage"));
	assert_non_null(strstr(r.body, "</html>"));
	/* Nothing is loaded from elsewhere. */
	assert_null(strstr(r.body, "http://"));
	assert_null(strstr(r.body, "https://"));
	assert_null(strstr(r.body, " src="));
	fixture_stop(&f);
}

static void
test_status_data_lists_functions_after_workload(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, true);
	workload(&f, "order 42", 8);
	json_t *doc = get_data(f.port);
	assert_int_equal(json_array_size(json_object_get(doc, "functions")),
	                 2);
	json_t *ok = function_in(doc, "ok");
	ASSERT_EQ(int_at(ok, "accepted"), 3);
	ASSERT_EQ(int_at(ok, "succeeded"), 3);
	ASSERT_EQ(int_at(ok, "dead_lettered"), 0);
	ASSERT_EQ(int_at(ok, "in_flight"), 0);
	assert_true(int_at(ok, "concurrency_peak") >= 1);
	assert_true(json_real_value(json_object_get(ok, "run_p50_ms")) > 0);
	assert_true(json_real_value(json_object_get(ok, "run_p99_ms")) > 0);
	assert_true(json_real_value(json_object_get(ok, "cost_usd")) > 0);
	json_t *flaky = function_in(doc, "flaky");
	ASSERT_EQ(int_at(flaky, "accepted"), 1);
	ASSERT_EQ(int_at(flaky, "succeeded"), 0);
	ASSERT_EQ(int_at(flaky, "dead_lettered"), 1);
	ASSERT_EQ(int_at(json_object_get(doc, "totals"), "accepted"), 4);
	json_t *cost = json_object_get(doc, "cost");
	ASSERT_EQ(int_at(cost, "memory_mb"), 512);
	assert_true(json_real_value(json_object_get(cost, "total_usd")) > 0);

	json_t *dls = json_object_get(doc, "dead_letters");
	ASSERT_EQ(int_at(dls, "count"), 1);
	json_t *dl = json_array_get(json_object_get(dls, "items"), 0);
	assert_string_equal(json_string_value(json_object_get(dl, "function")),
	                    "flaky");
	assert_string_equal(json_string_value(json_object_get(dl, "error")),
	                    "upstream said no");
	ASSERT_EQ(int_at(dl, "attempts"), 1);
	assert_true(int_at(dl, "last_attempt_ms") > 0);
	json_t *ev = json_object_get(dl, "event");
	assert_string_equal(json_string_value(json_object_get(ev, "data")),
	                    "order 42");
	assert_string_equal(
		json_string_value(json_object_get(ev, "data_encoding")),
		"text");
	ASSERT_EQ(int_at(ev, "data_size"), 8);
	assert_non_null(json_string_value(json_object_get(ev, "id")));
	assert_non_null(json_string_value(json_object_get(ev, "time")));
	json_decref(doc);
	fixture_stop(&f);
}

static void
test_status_binary_payload_shown_as_hex(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, true);
	workload(&f, "\x00\xff\x10", 3);
	json_t *doc = get_data(f.port);
	json_t *ev = json_object_get(
		json_array_get(json_object_get(json_object_get(doc,
		                                               "dead_letters"),
		                               "items"),
		               0),
		"event");
	assert_string_equal(json_string_value(json_object_get(ev, "data")),
	                    "00ff10");
	assert_string_equal(
		json_string_value(json_object_get(ev, "data_encoding")),
		"hex");
	json_decref(doc);
	fixture_stop(&f);
}

static void
test_status_replay_needs_token_and_runs_again(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, true);
	workload(&f, "retry me", 8);
	long long id = only_dead_letter_id(f.port);
	char body[64];
	snprintf(body, sizeof(body), "{\"id\": %lld}", id);

	struct resp r = post(f.port, "replay", NULL, body);
	assert_answer(&r, 401, "EVFN_EAUTH");
	r = post(f.port, "replay", "Bearer wrong", body);
	assert_answer(&r, 401, "EVFN_EAUTH");
	ASSERT_EQ(evfn_dead_letter_count(f.rt), 1);
	ASSERT_EQ(atomic_load(&flaky_runs), 1);

	atomic_store(&flaky_heals, true);
	r = post(f.port, "replay", "Bearer " TOKEN, body);
	assert_answer(&r, 200, NULL);
	WAIT_FOR(stat_of(f.rt, "flaky", EVFN_STAT_SUCCEEDED) == 1, 10000);
	ASSERT_EQ(atomic_load(&flaky_runs), 2);
	ASSERT_EQ(evfn_dead_letter_count(f.rt), 0);
	json_t *doc = get_data(f.port);
	json_t *flaky = function_in(doc, "flaky");
	ASSERT_EQ(int_at(flaky, "accepted"), 2);
	ASSERT_EQ(int_at(flaky, "succeeded"), 1);
	json_decref(doc);

	/* Gone from the store: a second replay finds nothing. */
	r = post(f.port, "replay", "Bearer " TOKEN, body);
	assert_answer(&r, 404, "EVFN_ENOENT");
	fixture_stop(&f);
}

static void
test_status_delete_and_purge(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, true);
	workload(&f, "a", 1);
	long long id = only_dead_letter_id(f.port);
	const char *auth = "Bearer " TOKEN;

	struct resp r = post(f.port, "delete", auth, "{\"id\": 999999}");
	assert_answer(&r, 404, "EVFN_ENOENT");
	r = post(f.port, "delete", auth, "{\"id\": -1}");
	assert_answer(&r, 400, "EVFN_EINVAL");
	r = post(f.port, "delete", auth, "id=12x");
	assert_answer(&r, 400, "EVFN_EINVAL");
	r = post(f.port, "delete", auth, NULL);
	assert_answer(&r, 400, "EVFN_EINVAL");
	r = post(f.port, "delete", NULL, "id=1");
	assert_answer(&r, 401, "EVFN_EAUTH");

	char body[64];
	snprintf(body, sizeof(body), "id=%lld", id);
	r = post(f.port, "delete", auth, body);
	assert_answer(&r, 200, NULL);
	ASSERT_EQ(evfn_dead_letter_count(f.rt), 0);
	ASSERT_EQ(atomic_load(&flaky_runs), 1);

	/* Two more dead letters, purged at once. */
	ASSERT_OK(evfn_invoke_async(f.rt, "flaky", "b", 1, NULL));
	ASSERT_OK(evfn_invoke_async(f.rt, "flaky", "c", 1, NULL));
	WAIT_FOR(evfn_dead_letter_count(f.rt) == 2, 10000);
	r = post(f.port, "purge", NULL, NULL);
	assert_answer(&r, 401, "EVFN_EAUTH");
	ASSERT_EQ(evfn_dead_letter_count(f.rt), 2);
	r = post(f.port, "purge", auth, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"purged\":2"));
	assert_answer(&r, 200, NULL);
	ASSERT_EQ(evfn_dead_letter_count(f.rt), 0);
	fixture_stop(&f);
}

static void
test_status_wrong_method_and_unknown_path(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, true);
	struct resp r = get(f.port, "/status/dead-letters/replay");
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "POST");
	assert_answer(&r, 405, "EVFN_EROUTE");
	r = request(f.port, EVHTTP_REQ_POST, "/status/data", NULL, "x");
	assert_string_equal(r.allow, "GET");
	assert_answer(&r, 405, "EVFN_EROUTE");
	r = get(f.port, "/status/nothing");
	assert_answer(&r, 404, "EVFN_ENOENT");
	r = get(f.port, "/status/dead-letters/");
	assert_answer(&r, 404, "EVFN_ENOENT");
	/* A path that merely starts with the same letters is not the page's. */
	r = get(f.port, "/statusx");
	assert_answer(&r, 404, "EVFN_ENOENT");
	/* Routes may not live under the page. */
	ASSERT_RC(evfn_http_route(f.http, "GET /status", "ok", NULL),
	          EVFN_EEXIST);
	ASSERT_RC(evfn_http_route(f.http, "POST /status/x", "ok", NULL),
	          EVFN_EEXIST);
	ASSERT_OK(evfn_http_route(f.http, "POST /statusx", "ok", NULL));
	fixture_stop(&f);
}

static void
test_status_off_by_default(void **state)
{
	(void)state;
	struct fixture f;
	fixture_start(&f, false);
	struct resp r = get(f.port, "/status");
	assert_answer(&r, 404, "EVFN_ENOENT");
	r = get(f.port, "/status/data");
	assert_answer(&r, 404, "EVFN_ENOENT");
	fixture_stop(&f);
}

static void
test_status_option_rejects_bad_input(void **state)
{
	(void)state;
	evfn_http_options *o;
	ASSERT_OK(evfn_http_options_new(&o));
	ASSERT_RC(evfn_http_options_set_status(NULL, "/s", TOKEN),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_http_options_set_status(o, "/s", NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_http_options_set_status(o, "/s", ""), EVFN_EINVAL);
	ASSERT_RC(evfn_http_options_set_status(o, "/", TOKEN), EVFN_EROUTE);
	ASSERT_RC(evfn_http_options_set_status(o, "/s/", TOKEN),
	          EVFN_EROUTE);
	ASSERT_RC(evfn_http_options_set_status(o, "s", TOKEN), EVFN_EROUTE);
	ASSERT_RC(evfn_http_options_set_status(o, "/a b", TOKEN),
	          EVFN_EROUTE);
	ASSERT_OK(evfn_http_options_set_status(o, "/s", TOKEN));
	ASSERT_OK(evfn_http_options_set_status(o, "/t", "other"));
	ASSERT_OK(evfn_http_options_set_status(o, NULL, NULL));
	evfn_http_options_free(o);
}

/* test-status --serve SECONDS: not a test but the host the headless
 * browser check (tests/status-chromium.sh) loads the page from. Serves
 * the page at /status after the known workload, with "flaky" paused,
 * prints its URL and keeps producing a success every 100 ms. */
static int
serve(int seconds)
{
	struct fixture f;
	fixture_start(&f, true);
	workload(&f, "order 42", 8);
	ASSERT_OK(evfn_pause(f.rt, "flaky"));
	printf("http://127.0.0.1:%d/status\n", f.port);
	fflush(stdout);
	for (int i = 0; i < seconds * 10; i++) {
		test_sleep_ms(100);
		ASSERT_OK(evfn_invoke_async(f.rt, "ok", "hi", 2, NULL));
	}
	fixture_stop(&f);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--serve") == 0)
		return serve(atoi(argv[2]));
	const struct CMUnitTest tests[] = {
		TEST(test_status_page_is_self_contained_html),
		TEST(test_status_data_lists_functions_after_workload),
		TEST(test_status_binary_payload_shown_as_hex),
		TEST(test_status_replay_needs_token_and_runs_again),
		TEST(test_status_delete_and_purge),
		TEST(test_status_wrong_method_and_unknown_path),
		TEST(test_status_off_by_default),
		TEST(test_status_option_rejects_bad_input),
	};
	return evfn_test_main("status", tests);
}
