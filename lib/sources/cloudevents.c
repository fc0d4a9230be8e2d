/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents 1.0 HTTP protocol binding: binary mode (ce-* headers,
 * percent-decoded, body as data), structured mode (one JSON object) and
 * batched mode (a JSON array of them), plus the plain fallback for
 * requests that carry no CloudEvent. JSON goes through jansson and
 * data_base64 through OpenSSL's decoder; the only hand-written parser
 * here is the RFC 3339 timestamp. Every rejection names its reason, which
 * the HTTP trigger returns in a 400 body.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include <evfn/event.h>

#include "cloudevents-internal.h"
#include "common-internal.h"
#include "text-internal.h"

/* What a parse writes its reason into. */
struct perr {
	char *buf;
	size_t len;
};

__attribute__((format(printf, 2, 3))) static int
reject(struct perr *e, const char *fmt, ...)
{
	if (e->buf && e->len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->buf, e->len, fmt, ap);
		va_end(ap);
	}
	return EVFN_ECLOUDEVENT;
}

/* Maps a failed event setter to the reason a client can act on. */
static int
setter_failed(struct perr *e, int rc, const char *attr)
{
	if (rc == EVFN_ENOMEM)
		return rc;
	if (rc == EVFN_ENAMETOOLONG)
		return reject(e, "attribute %s is too long", attr);
	return reject(e, "invalid attribute %s", attr);
}

/* ---- RFC 3339 time --------------------------------------------------- */

int
evfn__ce_parse_time(const char *s, int64_t *ns)
{
	return evfn__rfc3339_parse(s, ns) == 0 ? 0 : EVFN_ECLOUDEVENT;
}

/* ---- media types ----------------------------------------------------- */

/* True when the media type of content_type (before any ';' parameter,
 * blanks ignored, case-insensitive) is exactly `type`. */
static bool
media_is(const char *content_type, const char *type)
{
	if (!content_type)
		return false;
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	size_t n = strcspn(content_type, ";");
	while (n && (content_type[n - 1] == ' ' || content_type[n - 1] == '\t'))
		n--;
	return n == strlen(type) && strncasecmp(content_type, type, n) == 0;
}

/* True for JSON media types: application/json, text/json, any +json. */
static bool
media_is_json(const char *content_type)
{
	if (!content_type)
		return false;
	if (media_is(content_type, "application/json") ||
	    media_is(content_type, "text/json"))
		return true;
	size_t n = strcspn(content_type, ";");
	while (n && (content_type[n - 1] == ' ' || content_type[n - 1] == '\t'))
		n--;
	return n >= 5 && strncasecmp(content_type + n - 5, "+json", 5) == 0;
}

static const char *
header_get(const struct evfn__ce_header *h, size_t nh, const char *name)
{
	for (size_t i = 0; i < nh; i++)
		if (h[i].name && strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	return NULL;
}

/* ---- binary mode ----------------------------------------------------- */

/* Percent-decodes a ce-* header value (the binding encodes what HTTP
 * header values cannot carry). Returns a copy, or NULL with *bad set for
 * a malformed escape or an encoded NUL, or NULL for no memory. */
static char *
percent_decode(const char *v, bool *bad)
{
	size_t n = strlen(v);
	char *out = evfn__malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (v[i] != '%') {
			*o++ = v[i];
			continue;
		}
		int hi = i + 2 < n ? evfn__hex_value(v[i + 1]) : -1;
		int lo = hi >= 0 ? evfn__hex_value(v[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			evfn__free(out);
			*bad = true;
			return NULL;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = '\0';
	return out;
}

/* The decoded value of header ce-<attr>, or NULL when absent; *rc is set
 * to an error when the value is malformed or memory ran out. */
static char *
ce_header(const struct evfn__ce_header *h, size_t nh, const char *attr,
          struct perr *e, int *rc)
{
	char name[64];
	snprintf(name, sizeof(name), "ce-%s", attr);
	const char *v = header_get(h, nh, name);
	if (!v)
		return NULL;
	bool bad = false;
	char *d = percent_decode(v, &bad);
	if (!d)
		*rc = bad ? reject(e, "bad percent-encoding in %s", name)
		          : EVFN_ENOMEM;
	return d;
}

static bool
is_ce_header(const char *name)
{
	return strncasecmp(name, "ce-", 3) == 0;
}

static int
parse_binary(const struct evfn__ce_header *h, size_t nh, const void *body,
             size_t len, evfn_event **out, struct perr *e)
{
	int rc = 0;
	evfn_event *ev = NULL;
	char *specversion = NULL, *id = NULL, *source = NULL, *type = NULL;
	char *subject = NULL, *time = NULL;
	const char *missing = NULL;

	specversion = ce_header(h, nh, "specversion", e, &rc);
	if (rc)
		goto out;
	if (!specversion) {
		rc = reject(e, "missing required attribute specversion");
		goto out;
	}
	if (strcmp(specversion, "1.0") != 0) {
		rc = reject(e, "unsupported specversion");
		goto out;
	}
	id = ce_header(h, nh, "id", e, &rc);
	if (!rc)
		source = ce_header(h, nh, "source", e, &rc);
	if (!rc)
		type = ce_header(h, nh, "type", e, &rc);
	if (!rc)
		subject = ce_header(h, nh, "subject", e, &rc);
	if (!rc)
		time = ce_header(h, nh, "time", e, &rc);
	if (rc)
		goto out;
	missing = !id || !*id ? "id" : !source || !*source ? "source"
	        : !type || !*type ? "type" : NULL;
	if (missing) {
		rc = reject(e, "missing required attribute %s", missing);
		goto out;
	}
	rc = evfn_event_new(&ev, type, body, len);
	if (rc) {
		rc = setter_failed(e, rc, "type");
		goto out;
	}
	if ((rc = evfn_event_set_id(ev, id)) != 0) {
		rc = setter_failed(e, rc, "id");
		goto out;
	}
	if ((rc = evfn_event_set_source(ev, source)) != 0) {
		rc = setter_failed(e, rc, "source");
		goto out;
	}
	if (subject && *subject &&
	    (rc = evfn_event_set_subject(ev, subject)) != 0) {
		rc = setter_failed(e, rc, "subject");
		goto out;
	}
	if (time) {
		int64_t ns;
		if (evfn__ce_parse_time(time, &ns)) {
			rc = reject(e, "attribute time is not RFC 3339");
			goto out;
		}
		evfn_event_set_time(ev, ns);
	}
	const char *ct = header_get(h, nh, "content-type");
	if (ct && *ct && (rc = evfn_event_set_datacontenttype(ev, ct)) != 0) {
		rc = setter_failed(e, rc, "datacontenttype");
		goto out;
	}
	/* Every other ce-* header is an extension; HTTP header names are
	 * case-insensitive, CloudEvents attribute names lower case. */
	for (size_t i = 0; i < nh && !rc; i++) {
		if (!h[i].name || !is_ce_header(h[i].name))
			continue;
		char name[32];
		size_t n = strlen(h[i].name + 3);
		if (n == 0 || n >= sizeof(name)) {
			rc = reject(e, "invalid extension name in %s",
			            h[i].name);
			break;
		}
		for (size_t k = 0; k <= n; k++) {
			char c = h[i].name[3 + k];
			name[k] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		static const char *const known[] = {
			"specversion", "id", "source", "type", "subject",
			"time", "datacontenttype"};
		bool skip = false;
		for (size_t k = 0; k < EVFN__ARRAY_SIZE(known); k++)
			skip |= strcmp(name, known[k]) == 0;
		if (skip)
			continue;
		bool bad = false;
		char *value = percent_decode(h[i].value ? h[i].value : "",
		                             &bad);
		if (!value) {
			rc = bad ? reject(e, "bad percent-encoding in %s",
			                  h[i].name)
			         : EVFN_ENOMEM;
			break;
		}
		/* An empty value carries nothing; CloudEvents treats it as
		 * absent. */
		if (*value && (rc = evfn_event_set_extension(ev, name, value)))
			rc = rc == EVFN_ENOMEM
			             ? rc
			             : reject(e, "invalid extension name %s",
			                      name);
		evfn__free(value);
	}
out:
	evfn__free(specversion);
	evfn__free(id);
	evfn__free(source);
	evfn__free(type);
	evfn__free(subject);
	evfn__free(time);
	if (rc) {
		evfn_event_unref(ev);
		ev = NULL;
	}
	*out = ev;
	return rc;
}

/* ---- structured and batched mode ------------------------------------ */

/* A required string attribute of a structured event. */
static int
required_string(json_t *obj, const char *attr, const char **out,
                struct perr *e)
{
	json_t *v = json_object_get(obj, attr);
	if (!v || json_is_null(v))
		return reject(e, "missing required attribute %s", attr);
	if (!json_is_string(v) || json_string_length(v) == 0)
		return reject(e, "attribute %s must be a non-empty string",
		              attr);
	*out = json_string_value(v);
	return 0;
}

/* Decodes canonical, padded base64 into a new buffer. */
static int
base64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len,
              struct perr *e)
{
	*out = NULL;
	*out_len = 0;
	if (n == 0)
		return 0;
	if (n % 4 != 0 || n > INT32_MAX)
		return reject(e, "data_base64 is not valid base64");
	unsigned char *buf = evfn__malloc(n / 4 * 3 + 1);
	if (!buf)
		return EVFN_ENOMEM;
	int got = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
	if (got < 0) {
		evfn__free(buf);
		return reject(e, "data_base64 is not valid base64");
	}
	/* EVP_DecodeBlock counts padding as zero bytes. */
	size_t len = (size_t)got;
	for (size_t i = n; i > n - 2 && s[i - 1] == '='; i--)
		len--;
	*out = buf;
	*out_len = len;
	return 0;
}

/* Sets one extension from a JSON scalar; null means absent. */
static int
set_json_extension(evfn_event *ev, const char *name, json_t *v,
                   struct perr *e)
{
	char num[32];
	const char *value;
	switch (json_typeof(v)) {
	case JSON_NULL:
		return 0;
	case JSON_STRING:
		value = json_string_value(v);
		if (!*value || strlen(value) != json_string_length(v))
			return *value ? reject(e, "attribute %s holds a NUL",
			                       name)
			              : 0;
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		         json_integer_value(v));
		value = num;
		break;
	case JSON_TRUE:
		value = "true";
		break;
	case JSON_FALSE:
		value = "false";
		break;
	default:
		return reject(e, "attribute %s must be a string, integer or "
		                 "boolean", name);
	}
	int rc = evfn_event_set_extension(ev, name, value);
	if (rc && rc != EVFN_ENOMEM)
		return reject(e, "invalid extension name %s", name);
	return rc;
}

/* An optional string attribute set through setter. */
static int
optional_string(json_t *obj, const char *attr, evfn_event *ev,
                int (*setter)(evfn_event *, const char *), struct perr *e)
{
	json_t *v = json_object_get(obj, attr);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0)
		return reject(e, "attribute %s must be a non-empty string",
		              attr);
	int rc = setter(ev, json_string_value(v));
	return rc ? setter_failed(e, rc, attr) : 0;
}

static bool
is_core_attribute(const char *name)
{
	static const char *const core[] = {
		"specversion", "id", "source", "type", "subject", "time",
		"datacontenttype", "data", "data_base64"};
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(core); i++)
		if (strcmp(name, core[i]) == 0)
			return true;
	return false;
}

/* The payload of a structured event: data_base64 decoded, data as the
 * raw string when the content type is not JSON, otherwise data
 * serialised as compact JSON. Sets *json when the result is JSON. */
static int
structured_data(json_t *obj, const char *dct, void **data, size_t *len,
                bool *json, struct perr *e)
{
	json_t *d = json_object_get(obj, "data");
	json_t *b64 = json_object_get(obj, "data_base64");
	*data = NULL;
	*len = 0;
	*json = false;
	if (d && b64)
		return reject(e, "data and data_base64 are exclusive");
	if (b64) {
		if (!json_is_string(b64))
			return reject(e, "data_base64 must be a string");
		unsigned char *buf;
		int rc = base64_decode(json_string_value(b64),
		                       json_string_length(b64), &buf, len, e);
		*data = buf;
		return rc;
	}
	if (!d)
		return 0;
	if (json_is_string(d) && dct && !media_is_json(dct)) {
		*len = json_string_length(d);
		*data = evfn__malloc(*len + 1);
		if (!*data)
			return EVFN_ENOMEM;
		memcpy(*data, json_string_value(d), *len);
		return 0;
	}
	/* Sized first, so the bytes land in evfn's allocator directly. */
	const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
	size_t need = json_dumpb(d, NULL, 0, flags);
	if (need == 0)
		return EVFN_ENOMEM;
	if (!(*data = evfn__malloc(need)))
		return EVFN_ENOMEM;
	*len = json_dumpb(d, *data, need, flags);
	*json = true;
	return 0;
}

static int
parse_object(json_t *obj, evfn_event **out, struct perr *e)
{
	*out = NULL;
	if (!json_is_object(obj))
		return reject(e, "a CloudEvent must be a JSON object");
	json_t *sv = json_object_get(obj, "specversion");
	if (!sv || json_is_null(sv))
		return reject(e, "missing required attribute specversion");
	if (!json_is_string(sv) || strcmp(json_string_value(sv), "1.0") != 0)
		return reject(e, "unsupported specversion");
	/* Initialised for the optimiser's sake: required_string() sets each
	 * one it returns 0 for. */
	const char *id = NULL, *source = NULL, *type = NULL;
	int rc;
	if ((rc = required_string(obj, "id", &id, e)) ||
	    (rc = required_string(obj, "source", &source, e)) ||
	    (rc = required_string(obj, "type", &type, e)))
		return rc;
	json_t *dctv = json_object_get(obj, "datacontenttype");
	const char *dct = json_is_string(dctv) ? json_string_value(dctv) : NULL;

	void *data;
	size_t len;
	bool json;
	if ((rc = structured_data(obj, dct, &data, &len, &json, e)))
		return rc;
	evfn_event *ev;
	rc = evfn_event_new(&ev, type, data, len);
	evfn__free(data);
	if (rc)
		return setter_failed(e, rc, "type");
	if ((rc = evfn_event_set_id(ev, id)))
		rc = setter_failed(e, rc, "id");
	else if ((rc = evfn_event_set_source(ev, source)))
		rc = setter_failed(e, rc, "source");
	if (!rc)
		rc = optional_string(obj, "subject", ev, evfn_event_set_subject,
		                     e);
	if (!rc)
		rc = optional_string(obj, "datacontenttype", ev,
		                     evfn_event_set_datacontenttype, e);
	if (!rc && json && !dct)
		rc = evfn_event_set_datacontenttype(ev, "application/json");
	json_t *tv = json_object_get(obj, "time");
	if (!rc && tv && !json_is_null(tv)) {
		int64_t ns;
		if (!json_is_string(tv) ||
		    evfn__ce_parse_time(json_string_value(tv), &ns))
			rc = reject(e, "attribute time is not RFC 3339");
		else
			evfn_event_set_time(ev, ns);
	}
	const char *key;
	json_t *value;
	json_object_foreach(obj, key, value)
	{
		if (rc)
			break;
		if (!is_core_attribute(key))
			rc = set_json_extension(ev, key, value, e);
	}
	if (rc) {
		evfn_event_unref(ev);
		return rc;
	}
	*out = ev;
	return 0;
}

static json_t *
load_json(const void *body, size_t len, struct perr *e, int *rc)
{
	json_error_t jerr;
	json_t *root = json_loadb(body ? body : "", len,
	                          JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		*rc = reject(e, "malformed JSON at line %d column %d: %s",
		             jerr.line, jerr.column, jerr.text);
	return root;
}

/* ---- entry point ----------------------------------------------------- */

void
evfn__ce_events_free(evfn_event **events, size_t n)
{
	if (!events)
		return;
	for (size_t i = 0; i < n; i++)
		evfn_event_unref(events[i]);
	evfn__free(events);
}

static bool
has_binary_headers(const struct evfn__ce_header *h, size_t nh)
{
	static const char *const attrs[] = {"ce-specversion", "ce-id",
	                                    "ce-source", "ce-type"};
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(attrs); i++)
		if (header_get(h, nh, attrs[i]))
			return true;
	return false;
}

int
evfn__ce_parse(const struct evfn__ce_header *headers, size_t nh,
               const void *body, size_t len, const char *default_type,
               enum evfn__ce_mode *mode, evfn_event ***events, size_t *n,
               char *err, size_t err_len)
{
	if (!mode || !events || !n || !default_type ||
	    (!headers && nh) || (!body && len))
		return EVFN_EINVAL;
	*events = NULL;
	*n = 0;
	struct perr e = {err, err_len};
	if (err && err_len)
		err[0] = '\0';

	const char *ct = header_get(headers, nh, "content-type");
	int rc = 0;
	evfn_event **list = NULL;
	size_t count = 0;
	json_t *root = NULL;

	if (media_is(ct, "application/cloudevents-batch+json")) {
		*mode = EVFN__CE_BATCH;
		if (!(root = load_json(body, len, &e, &rc)))
			return rc;
		if (!json_is_array(root)) {
			json_decref(root);
			return reject(&e, "a batch must be a JSON array");
		}
		size_t total = json_array_size(root);
		list = evfn__calloc(total ? total : 1, sizeof(*list));
		if (!list) {
			json_decref(root);
			return EVFN_ENOMEM;
		}
		for (; count < total; count++) {
			rc = parse_object(json_array_get(root, count),
			                  &list[count], &e);
			if (rc)
				break;
		}
		if (rc == EVFN_ECLOUDEVENT && err && err_len) {
			/* Say which element failed. */
			char reason[EVFN__CE_ERR_MAX];
			snprintf(reason, sizeof(reason), "%s", err);
			snprintf(err, err_len, "event %zu: %s", count, reason);
		}
	} else if (media_is(ct, "application/cloudevents+json")) {
		*mode = EVFN__CE_STRUCTURED;
		if (!(root = load_json(body, len, &e, &rc)))
			return rc;
		list = evfn__calloc(1, sizeof(*list));
		if (!list) {
			json_decref(root);
			return EVFN_ENOMEM;
		}
		rc = parse_object(root, &list[0], &e);
		count = list[0] ? 1 : 0;
	} else {
		list = evfn__calloc(1, sizeof(*list));
		if (!list)
			return EVFN_ENOMEM;
		if (has_binary_headers(headers, nh)) {
			*mode = EVFN__CE_BINARY;
			rc = parse_binary(headers, nh, body, len, &list[0], &e);
		} else {
			*mode = EVFN__CE_PLAIN;
			rc = evfn_event_new(&list[0], default_type, body, len);
			if (!rc && ct && *ct)
				rc = evfn_event_set_datacontenttype(list[0],
				                                    ct);
			if (rc)
				rc = setter_failed(&e, rc, "type");
		}
		count = list[0] ? 1 : 0;
	}
	json_decref(root);
	if (rc) {
		evfn__ce_events_free(list, count);
		return rc;
	}
	*events = list;
	*n = count;
	return 0;
}
