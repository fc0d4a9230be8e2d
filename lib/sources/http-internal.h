/* SPDX-License-Identifier: MIT */
/*
 * What the HTTP trigger's built-in routes share with it: the JSON replies
 * every error and API answer goes through.
 */
#ifndef EVFN_HTTP_INTERNAL_H
#define EVFN_HTTP_INTERNAL_H

#include <jansson.h>

struct evhttp_request;

/* Sends status with a JSON body (500 when body is NULL, as only a failed
 * allocation makes it so); takes the reference to body. */
void evfn__http_reply_json(struct evhttp_request *req, int status,
                           json_t *body);

/* Sends the error body {"error": name, "message": text (message, or the
 * code's text)}; extra, when not NULL, is merged into it (its reference
 * is taken). */
void evfn__http_reply_error(struct evhttp_request *req, int status, int code,
                            const char *message, json_t *extra);

#endif /* EVFN_HTTP_INTERNAL_H */
