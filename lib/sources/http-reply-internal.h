/* SPDX-License-Identifier: MIT */
/*
 * The JSON answers every error and API answer of the HTTP trigger and
 * its status page goes through (http-reply.c).
 */
#ifndef EVFN_HTTP_REPLY_INTERNAL_H
#define EVFN_HTTP_REPLY_INTERNAL_H

#include <stddef.h>

#include <jansson.h>

struct evbuffer;
struct evhttp_request;

/* Sends status with a JSON body; takes the reference to body. A NULL
 * body (a failed allocation) or one that cannot be written becomes a 500
 * EVFN_ENOMEM error answer. */
void evfn__http_reply_json(struct evhttp_request *req, int status,
                           json_t *body);

/* Sends the error body {"error": name, "message": text (message, or the
 * code's text)}, the message made valid UTF-8 whatever it holds; extra,
 * when not NULL, is merged into it (its reference is taken). Never sends
 * an empty body short of memory for the few bytes of the minimal one. */
void evfn__http_reply_error(struct evhttp_request *req, int status, int code,
                            const char *message, json_t *extra);

/* Appends n bytes of s to out as a JSON string: escaped, and with each
 * byte that is not part of well-formed UTF-8 written as U+FFFD, so that
 * any text (a handler's error message) fits in an answer. Returns 0 or
 * -1 when out of memory. */
int evfn__json_put_string(struct evbuffer *out, const char *s, size_t n);

#endif /* EVFN_HTTP_REPLY_INTERNAL_H */
