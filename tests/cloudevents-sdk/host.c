/* SPDX-License-Identifier: MIT */
/*
 * The host the CloudEvents SDK suite (sdk.js) talks to: evfn's HTTP
 * trigger on a loopback port of the system's choosing, with functions
 * that write down exactly what their handler saw, so that a client
 * outside evfn can compare it with what it sent.
 *
 *   POST /events   async: "record" prints one JSON line per event to
 *                  stdout (attributes, extensions, data as hex)
 *   POST /strict   async, CloudEvents required: "record" as above
 *   POST /reply    sync: "reply" answers with a binary-mode CloudEvent
 *                  (ce-* headers, the event's data as the body)
 *   POST /reply-structured  sync: "reply-structured" answers with a
 *                  structured-mode CloudEvent
 *
 * It prints "listening on http://127.0.0.1:PORT" once it serves, and
 * drains and exits when its standard input closes, so that the test
 * needs no signal to end it and it never outlives its test.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <evfn.h>

static pthread_mutex_t stdout_lock = PTHREAD_MUTEX_INITIALIZER;

/* The payload as lower-case hex: bytes survive JSON whatever they are. */
static char *
hex_of(const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	char *out = malloc(2 * len + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
	return out;
}

/* Everything the handler can read of an event, as one JSON object. The
 * time is a decimal string of nanoseconds: a JSON number would lose
 * digits in JavaScript. */
static json_t *
describe(const evfn_event *ev, const char *fn)
{
	json_t *ext = json_object();
	const char *name, *value;
	for (size_t i = 0; (value = evfn_event_extension_at(ev, i, &name)); i++)
		json_object_set_new(ext, name, json_string(value));
	char time[24];
	snprintf(time, sizeof(time), "%" PRId64, evfn_event_time(ev));
	size_t len;
	const void *data = evfn_event_data(ev, &len);
	char *hex = hex_of(data, len);
	const char *subject = evfn_event_subject(ev);
	const char *dct = evfn_event_datacontenttype(ev);
	json_t *rec = json_pack(
		"{s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:s?}", "fn", fn,
		"id", evfn_event_id(ev), "source", evfn_event_source(ev),
		"type", evfn_event_type(ev),
		"subject", subject ? json_string(subject) : json_null(),
		"time", time,
		"datacontenttype", dct ? json_string(dct) : json_null(),
		"extensions", ext, "data_hex", hex);
	free(hex);
	return rec;
}

static int
record(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)userdata;
	json_t *rec = describe(ev, "record");
	char *line = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
	json_decref(rec);
	if (!line)
		return EVFN_RETRY;
	pthread_mutex_lock(&stdout_lock);
	printf("%s\n", line);
	fflush(stdout);
	pthread_mutex_unlock(&stdout_lock);
	free(line);
	return EVFN_OK;
}

/* Answers in binary mode: the reply's attributes in ce-* headers (all
 * ASCII here, so none needs percent-encoding), the event's data as the
 * body with its content type. */
static int
reply(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	char id[300];
	snprintf(id, sizeof(id), "reply-to-%s", evfn_event_id(ev));
	const char *dct = evfn_event_datacontenttype(ev);
	size_t len;
	const void *data = evfn_event_data(ev, &len);
	int rc = evfn_ctx_set_meta(ctx, "header.ce-specversion", "1.0");
	rc |= evfn_ctx_set_meta(ctx, "header.ce-id", id);
	rc |= evfn_ctx_set_meta(ctx, "header.ce-source", "/evfn/sdk-host");
	rc |= evfn_ctx_set_meta(ctx, "header.ce-type", "com.example.reply");
	rc |= evfn_ctx_set_meta(ctx, "header.ce-replyto", "sdk");
	rc |= evfn_ctx_set_meta(ctx, "header.Content-Type",
	                        dct ? dct : "application/octet-stream");
	rc |= evfn_ctx_respond(ctx, data, len);
	return rc ? EVFN_RETRY : EVFN_OK;
}

/* Answers in structured mode: the reply is a JSON CloudEvent whose data
 * is what the handler saw of the request's event. */
static int
reply_structured(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	char id[300];
	snprintf(id, sizeof(id), "reply-to-%s", evfn_event_id(ev));
	json_t *reply = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}",
	                          "specversion", "1.0", "id", id, "source",
	                          "/evfn/sdk-host", "type", "com.example.reply",
	                          "datacontenttype", "application/json",
	                          "data", describe(ev, "reply-structured"));
	char *body = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	json_decref(reply);
	if (!body)
		return EVFN_RETRY;
	int rc = evfn_ctx_set_meta(ctx, "header.Content-Type",
	                           "application/cloudevents+json");
	rc |= evfn_ctx_respond(ctx, body, strlen(body));
	free(body);
	return rc ? EVFN_RETRY : EVFN_OK;
}

/* True when rc is 0; otherwise says what failed. */
static bool
ok(int rc, const char *what)
{
	if (rc)
		fprintf(stderr, "host: %s: %s\n", what, evfn_strerror(rc));
	return rc == 0;
}

int
main(void)
{
	evfn_rt *rt = NULL;
	evfn_http *http = NULL;
	evfn_route_options *async = NULL, *strict = NULL;
	bool up =
		ok(evfn_rt_new(&rt, NULL), "runtime") &&
		ok(evfn_register(rt, "record", record, NULL, NULL, NULL),
		   "register record") &&
		ok(evfn_register(rt, "reply", reply, NULL, NULL, NULL),
		   "register reply") &&
		ok(evfn_register(rt, "reply-structured", reply_structured,
		                 NULL, NULL, NULL),
		   "register reply-structured") &&
		ok(evfn_rt_start(rt), "start") &&
		ok(evfn_http_new(&http, rt, NULL), "http") &&
		ok(evfn_route_options_new(&async), "options") &&
		ok(evfn_route_options_set_async(async, true), "async") &&
		ok(evfn_route_options_new(&strict), "options") &&
		ok(evfn_route_options_set_async(strict, true), "async") &&
		ok(evfn_route_options_set_require_cloudevents(strict, true),
		   "require") &&
		ok(evfn_http_route(http, "POST /events", "record", async),
		   "route /events") &&
		ok(evfn_http_route(http, "POST /strict", "record", strict),
		   "route /strict") &&
		ok(evfn_http_route(http, "POST /reply", "reply", NULL),
		   "route /reply") &&
		ok(evfn_http_route(http, "POST /reply-structured",
		                   "reply-structured", NULL),
		   "route /reply-structured");
	evfn_route_options_free(async);
	evfn_route_options_free(strict);
	bool drained = false;
	if (up) {
		pthread_mutex_lock(&stdout_lock);
		printf("listening on http://127.0.0.1:%d\n",
		       evfn_http_port(http));
		fflush(stdout);
		pthread_mutex_unlock(&stdout_lock);
		/* Serve until the test closes our standard input. */
		while (getchar() != EOF)
			;
		drained = ok(evfn_rt_drain(rt, 10000, NULL, NULL), "drain");
	}
	evfn_http_free(http);
	bool freed = !rt || ok(evfn_rt_free(rt), "free");
	return up && drained && freed ? 0 : 1;
}
