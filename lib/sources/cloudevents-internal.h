/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents 1.0 HTTP protocol binding, as the HTTP trigger uses it:
 * turns a request's headers and body into unpublished evfn events, in
 * binary, structured or batched mode, or as a plain event when the
 * request carries no CloudEvent. It knows nothing about libevent, so that
 * it can be tested and fuzzed on its own; the trigger hands it the
 * headers as name/value pairs.
 */
#ifndef EVFN_CLOUDEVENTS_INTERNAL_H
#define EVFN_CLOUDEVENTS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <evfn/types.h>

/* How a request carried its event(s). */
enum evfn__ce_mode {
	EVFN__CE_PLAIN,      /* no CloudEvent: body as data */
	EVFN__CE_BINARY,     /* ce-* headers, body as data */
	EVFN__CE_STRUCTURED, /* application/cloudevents+json */
	EVFN__CE_BATCH       /* application/cloudevents-batch+json */
};

/* One request header; names compare case-insensitively. */
struct evfn__ce_header {
	const char *name;
	const char *value;
};

/* Longest reason evfn__ce_parse() writes, NUL included. */
#define EVFN__CE_ERR_MAX 160

/*
 * Parses a request into events. headers holds nh pairs (NULL when nh is
 * 0); body may be NULL when len is 0. A request without CloudEvents
 * headers or media type becomes one event of default_type with the body
 * as data and Content-Type as datacontenttype.
 *
 * On success *events receives an array of *n events (n may be 0 for an
 * empty batch), each with one reference and not yet published; release
 * them with evfn__ce_events_free(). Every string attribute and
 * extension has been checked to be a CloudEvents string (UTF-8 without
 * control characters), so that everything about an event can be written
 * into a JSON answer. A structured event's data is the JSON text the
 * sender wrote, unchanged (or the characters of a string when its
 * datacontenttype is not JSON).
 *
 * Returns 0, EVFN_ECLOUDEVENT with an English reason in err (err_len
 * bytes, truncated; may be NULL) for a missing or malformed attribute,
 * malformed JSON or an unsupported specversion ("unsupported
 * specversion"), EVFN_EMEDIATYPE with a reason for a Content-Type of the
 * CloudEvents family other than the two JSON ones (XML, Avro, ...),
 * EVFN_EINVAL for NULL arguments, or EVFN_ENOMEM. *mode is set whenever
 * the mode could be told.
 */
int evfn__ce_parse(const struct evfn__ce_header *headers, size_t nh,
                   const void *body, size_t len, const char *default_type,
                   enum evfn__ce_mode *mode, evfn_event ***events, size_t *n,
                   char *err, size_t err_len);

/* Drops the reference on each of n events and frees the array. NULL-safe. */
void evfn__ce_events_free(evfn_event **events, size_t n);

/* Parses an RFC 3339 timestamp ("2024-05-01T12:00:00.5+02:00") into
 * nanoseconds since the Unix epoch. Returns 0 or EVFN_ECLOUDEVENT for a
 * malformed time or one outside the int64 nanosecond range. */
int evfn__ce_parse_time(const char *s, int64_t *ns);

#endif /* EVFN_CLOUDEVENTS_INTERNAL_H */
