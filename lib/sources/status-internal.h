/* SPDX-License-Identifier: MIT */
/*
 * The live status page the HTTP trigger serves when
 * evfn_http_options_set_status() is set: the HTML page, the JSON document
 * it polls and the dead-letter actions. The HTTP trigger owns the server
 * and hands over every request whose path falls under the page's path.
 */
#ifndef EVFN_STATUS_INTERNAL_H
#define EVFN_STATUS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <evfn/types.h>

struct evhttp_request;

/* Whether the len bytes of path are prefix itself or lie under prefix/;
 * *rest then points at what follows prefix ("" or "/..."). */
bool evfn__status_owns(const char *prefix, const char *path, size_t len,
                       const char **rest);

/* The i-th path (from 0) the page serves after its own ("", "/data",
 * ...), NULL past the last: for servers that route exact paths only (a
 * host's evhttp). */
const char *evfn__status_resource(size_t i);

/* Answers req, whose path was owned with rest; token guards the POST
 * actions. Runs on the loop thread. */
void evfn__status_serve(evfn_rt *rt, struct evhttp_request *req,
                        const char *rest, const char *token);

#endif /* EVFN_STATUS_INTERNAL_H */
