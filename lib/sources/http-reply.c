/* SPDX-License-Identifier: MIT */
/*
 * JSON answers, the way every answer of the HTTP trigger and the status
 * page is written: error bodies {"error", "message"} and documents, with
 * the headers that say what they are. No state; loop thread only, like
 * every evhttp call.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include <evfn/errors.h>

#include "common-internal.h"
#include "http-reply-internal.h"
#include "text-internal.h"

static int
json_to_evbuffer(const char *buf, size_t size, void *data)
{
	return evbuffer_add(data, buf, size);
}

int
evfn__json_put_string(struct evbuffer *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	int rc = evbuffer_add(out, "\"", 1);
	size_t run = 0; /* the start of bytes copied as they are */
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		size_t len = c < 0x80 ? 1 : evfn__utf8_char_len(p + i, n - i);
		if (len > 1 || (len == 1 && c >= 0x20 && c != '"' && c != '\\')) {
			i += len;
			continue;
		}
		rc |= evbuffer_add(out, s + run, i - run);
		char esc[8] = {'\\', (char)c, 0};
		if (len == 0)
			snprintf(esc, sizeof(esc), "\\ufffd");
		else if (c == '\n')
			esc[1] = 'n';
		else if (c == '\r')
			esc[1] = 'r';
		else if (c == '\t')
			esc[1] = 't';
		else if (c < 0x20)
			snprintf(esc, sizeof(esc), "\\u00%c%c", hex[c >> 4],
			         hex[c & 15]);
		rc |= evbuffer_add(out, esc, strlen(esc));
		run = ++i;
	}
	rc |= evbuffer_add(out, s + run, n - run);
	rc |= evbuffer_add(out, "\"", 1);
	return rc ? -1 : 0;
}

static void
add_json_headers(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
}

void
evfn__http_reply_error(struct evhttp_request *req, int status, int code,
                       const char *message, json_t *extra)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	const char *name = evfn_err_name(code);
	if (!message)
		message = evfn_strerror(code);
	int rc = evbuffer_add_printf(out, "{\"error\":\"%s\",\"message\":",
	                             name) < 0;
	rc |= evfn__json_put_string(out, message, strlen(message));
	const char *key;
	json_t *value;
	if (extra)
		json_object_foreach(extra, key, value)
		{
			rc |= evbuffer_add(out, ",", 1);
			rc |= evfn__json_put_string(out, key, strlen(key));
			rc |= evbuffer_add(out, ":", 1);
			rc |= json_dump_callback(value, json_to_evbuffer, out,
			                         JSON_COMPACT | JSON_ENCODE_ANY);
		}
	rc |= evbuffer_add(out, "}", 1);
	json_decref(extra);
	if (rc) {
		/* Out of memory midway: the smallest answer that still says
		 * what went wrong. */
		evbuffer_drain(out, evbuffer_get_length(out));
		message = evfn_strerror(code);
		evbuffer_add_printf(out, "{\"error\":\"%s\",\"message\":", name);
		evfn__json_put_string(out, message, strlen(message));
		evbuffer_add(out, "}", 1);
	}
	add_json_headers(req);
	/* NULL reason: libevent supplies the standard phrase. */
	evhttp_send_reply(req, status, NULL, NULL);
}

void
evfn__http_reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	/* A NULL body only comes from a failed allocation. */
	if (!body ||
	    json_dump_callback(body, json_to_evbuffer, out, JSON_COMPACT)) {
		json_decref(body);
		evbuffer_drain(out, evbuffer_get_length(out));
		evfn__http_reply_error(req, 500, EVFN_ENOMEM, NULL, NULL);
		return;
	}
	json_decref(body);
	add_json_headers(req);
	evhttp_send_reply(req, status, NULL, NULL);
}
