/* SPDX-License-Identifier: MIT */
/*
 * A blocking HTTP client for the tests of evfn's HTTP trigger and status
 * page: one request on a fresh connection and base, answered within 10 s,
 * with the headers those tests look at.
 */
#ifndef EVFN_TEST_HTTP_CLIENT_H
#define EVFN_TEST_HTTP_CLIENT_H

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "harness.h"

struct hdr {
	const char *name, *value;
};

/* An answer. body is NUL-terminated (never NULL) and lives until the
 * next request: tests read one answer at a time and free nothing. */
struct resp {
	struct event_base *base;
	bool done;
	int status;
	char *body;
	size_t len;
	char ctype[128], retry[16], allow[64], etype[128], clen[16];
};

static void
keep_header(struct evkeyvalq *h, const char *name, char *dst, size_t n)
{
	const char *v = evhttp_find_header(h, name);
	snprintf(dst, n, "%s", v ? v : "");
}

static void
client_done(struct evhttp_request *req, void *arg)
{
	struct resp *r = arg;
	r->done = true;
	if (req) {
		r->status = evhttp_request_get_response_code(req);
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		r->len = evbuffer_get_length(b);
		r->body = malloc(r->len + 1);
		assert_non_null(r->body);
		evbuffer_remove(b, r->body, r->len);
		r->body[r->len] = '\0';
		struct evkeyvalq *h = evhttp_request_get_input_headers(req);
		keep_header(h, "Content-Type", r->ctype, sizeof(r->ctype));
		keep_header(h, "Retry-After", r->retry, sizeof(r->retry));
		keep_header(h, "Allow", r->allow, sizeof(r->allow));
		keep_header(h, "X-Event-Type", r->etype, sizeof(r->etype));
		keep_header(h, "Content-Length", r->clen, sizeof(r->clen));
	}
	event_base_loopbreak(r->base);
}

/* Sends one request (nh headers besides Host, len bytes of body) and
 * waits at most 10 s for the answer. */
static struct resp
http_request(int port, enum evhttp_cmd_type cmd, const char *path,
             const struct hdr *h, size_t nh, const void *body, size_t len)
{
	static char *last_body; /* the previous answer's, freed now */
	free(last_body);
	struct resp r = {0};
	r.base = event_base_new();
	assert_non_null(r.base);
	struct evhttp_connection *conn = evhttp_connection_base_new(
		r.base, NULL, "127.0.0.1", (unsigned short)port);
	evhttp_connection_set_timeout(conn, 10);
	struct evhttp_request *req = evhttp_request_new(client_done, &r);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "Host", "127.0.0.1");
	for (size_t i = 0; i < nh; i++)
		evhttp_add_header(out, h[i].name, h[i].value);
	if (len)
		evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	assert_int_equal(evhttp_make_request(conn, req, cmd, path), 0);
	event_base_dispatch(r.base);
	evhttp_connection_free(conn);
	event_base_free(r.base);
	assert_true(r.done);
	if (!r.body)
		r.body = calloc(1, 1);
	last_body = r.body;
	return r;
}

#endif /* EVFN_TEST_HTTP_CLIENT_H */
