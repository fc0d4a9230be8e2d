/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents 1.0 HTTP protocol binding: binary mode (ce-* headers,
 * percent-decoded, body as data), structured mode (one JSON object) and
 * batched mode (a JSON array of them), plus the plain fallback for
 * requests that carry no CloudEvent. Attributes go through jansson and
 * data_base64 through OpenSSL's decoder; the hand-written parts are the
 * RFC 3339 timestamp and a JSON scanner that hands each event's data over
 * as the bytes the sender wrote. Every attribute is checked here, before
 * any event exists, so that nothing admitted can fail to be answered
 * later. Every rejection names its reason, which the HTTP trigger returns
 * in a 400 (415 for a media type it does not parse) body.
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

/* Maps a failed evfn_event_set_extension() to its reason. */
static int
extension_failed(struct perr *e, int rc, const char *name)
{
	if (rc == EVFN_ENOMEM)
		return rc;
	if (rc == EVFN_ENAMETOOLONG)
		return reject(e, "extension name %.48s... is too long", name);
	return reject(e, "invalid extension name %s", name);
}

/* ---- strings ---------------------------------------------------------- */

/* Whether the n bytes at s form a CloudEvents String: well-formed UTF-8
 * of allowable characters, which excludes the control characters
 * U+0000-U+001F and U+007F-U+009F and the noncharacters (CloudEvents 1.0,
 * "Type System"; UTF-8 itself excludes surrogates). Everything the HTTP
 * trigger later writes into a JSON answer or a header passes here first. */
static bool
ce_string_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	while (n > 0) {
		size_t len = evfn__utf8_char_len(p, n);
		if (len == 0)
			return false;
		uint32_t c = len == 1 ? p[0]
		           : len == 2 ? (uint32_t)(p[0] & 0x1f) << 6 |
		                                (p[1] & 0x3f)
		           : len == 3 ? (uint32_t)(p[0] & 0x0f) << 12 |
		                                (uint32_t)(p[1] & 0x3f) << 6 |
		                                (p[2] & 0x3f)
		                      : (uint32_t)(p[0] & 0x07) << 18 |
		                                (uint32_t)(p[1] & 0x3f) << 12 |
		                                (uint32_t)(p[2] & 0x3f) << 6 |
		                                (p[3] & 0x3f);
		if (c < 0x20 || (c >= 0x7f && c <= 0x9f) ||
		    (c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe)
			return false;
		p += len;
		n -= len;
	}
	return true;
}

static int
reject_string(struct perr *e, const char *attr)
{
	return reject(e, "attribute %s is not a CloudEvents string (valid "
	                 "UTF-8 without control characters)", attr);
}

/* ---- RFC 3339 time --------------------------------------------------- */

int
evfn__ce_parse_time(const char *s, int64_t *ns)
{
	return evfn__rfc3339_parse(s, ns) == 0 ? 0 : EVFN_ECLOUDEVENT;
}

/* ---- media types ----------------------------------------------------- */

/* The media type of content_type without parameters and surrounding
 * blanks: *len bytes from the returned pointer. */
static const char *
media_type(const char *content_type, size_t *len)
{
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	size_t n = strcspn(content_type, ";");
	while (n && (content_type[n - 1] == ' ' || content_type[n - 1] == '\t'))
		n--;
	*len = n;
	return content_type;
}

/* True for media types of the CloudEvents family ("application/
 * cloudevents" followed by nothing, '+' or '-'): a sender that uses one
 * means a CloudEvent, so one evfn does not parse is refused rather than
 * taken as plain data. */
static bool
media_is_cloudevents(const char *content_type)
{
	static const char family[] = "application/cloudevents";
	if (!content_type)
		return false;
	size_t n;
	const char *t = media_type(content_type, &n);
	size_t k = sizeof(family) - 1;
	return n >= k && strncasecmp(t, family, k) == 0 &&
	       (n == k || t[k] == '+' || t[k] == '-');
}

/* True when the media type of content_type (parameters and blanks
 * ignored, case-insensitive) is exactly `type`. */
static bool
media_is(const char *content_type, const char *type)
{
	if (!content_type)
		return false;
	size_t n;
	const char *t = media_type(content_type, &n);
	return n == strlen(type) && strncasecmp(t, type, n) == 0;
}

/* True for JSON media types: application/json, text/json, any +json. */
static bool
media_is_json(const char *content_type)
{
	if (!content_type)
		return false;
	size_t n;
	const char *t = media_type(content_type, &n);
	return media_is(content_type, "application/json") ||
	       media_is(content_type, "text/json") ||
	       (n >= 5 && strncasecmp(t + n - 5, "+json", 5) == 0);
}

static const char *
header_get(const struct evfn__ce_header *h, size_t nh, const char *name)
{
	for (size_t i = 0; i < nh; i++)
		if (h[i].name && strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	return NULL;
}

/* Sets datacontenttype from a Content-Type header, checked as a
 * CloudEvents string. */
static int
set_content_type(evfn_event *ev, const char *ct, struct perr *e)
{
	if (!ce_string_ok(ct, strlen(ct)))
		return reject(e, "Content-Type is not valid UTF-8 without "
		                 "control characters");
	int rc = evfn_event_set_datacontenttype(ev, ct);
	return rc ? setter_failed(e, rc, "datacontenttype") : 0;
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
	if (!d) {
		*rc = bad ? reject(e, "bad percent-encoding in %s", name)
		          : EVFN_ENOMEM;
	} else if (!ce_string_ok(d, strlen(d))) {
		*rc = reject_string(e, attr);
		evfn__free(d);
		d = NULL;
	}
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
	if (ct && *ct && (rc = set_content_type(ev, ct, e)) != 0)
		goto out;
	/* Every other ce-* header is an extension; HTTP header names are
	 * case-insensitive, CloudEvents attribute names lower case. */
	for (size_t i = 0; i < nh && !rc; i++) {
		if (!h[i].name || !is_ce_header(h[i].name))
			continue;
		char name[EVFN_NAME_MAX + 1];
		size_t n = strlen(h[i].name + 3);
		if (n == 0 || n >= sizeof(name)) {
			rc = extension_failed(e, n ? EVFN_ENAMETOOLONG
			                           : EVFN_EINVAL,
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
		/* An empty value is the empty string, not absence: a
		 * CloudEvents String may be empty. */
		if (!ce_string_ok(value, strlen(value)))
			rc = reject_string(e, name);
		else if ((rc = evfn_event_set_extension(ev, name, value)))
			rc = extension_failed(e, rc, name);
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
	if (!ce_string_ok(json_string_value(v), json_string_length(v)))
		return reject_string(e, attr);
	*out = json_string_value(v);
	return 0;
}

/* ---- data as sent ----------------------------------------------------- */

/*
 * A structured event's data is the sender's: it is handed over as the
 * bytes the sender wrote, so that integers beyond int64, "\u0000" and
 * number spellings survive (jansson refuses the first two, and a round
 * trip through it would respell the rest). A scanner checks the body's
 * JSON syntax (RFC 8259) and finds where each event's "data" value lies;
 * jansson then parses the attributes with those values masked out.
 */

/* Where one event's "data" value lies in the body; end 0 for none. */
struct data_span {
	size_t start, end;
};

struct scanner {
	const unsigned char *s;
	size_t n, i;
};

/* Nesting deeper than this is refused, as jansson does. */
#define SCAN_DEPTH_MAX JSON_PARSER_MAX_DEPTH

static void
scan_ws(struct scanner *sc)
{
	while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t' ||
	                         sc->s[sc->i] == '\n' || sc->s[sc->i] == '\r'))
		sc->i++;
}

/* Scans the string whose opening quote is at sc->i: well-formed escapes,
 * no raw control character, valid UTF-8. Sets *is_data (may be NULL)
 * when it decodes to "data". */
static bool
scan_string(struct scanner *sc, bool *is_data)
{
	static const char word[] = "data";
	size_t matched = 0;
	bool same = true;
	for (sc->i++; sc->i < sc->n;) {
		unsigned char c = sc->s[sc->i];
		int decoded = -1; /* the character when it is ASCII */
		if (c == '"') {
			sc->i++;
			if (is_data)
				*is_data = same && matched == sizeof(word) - 1;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			unsigned char x = sc->i + 1 < sc->n ? sc->s[sc->i + 1] : 0;
			if (x == 'u') {
				if (sc->n - sc->i < 6)
					return false;
				int v = 0;
				for (size_t k = 2; k < 6; k++) {
					int h = evfn__hex_value(
						(char)sc->s[sc->i + k]);
					if (h < 0)
						return false;
					v = v << 4 | h;
				}
				decoded = v < 0x80 ? v : -1;
				sc->i += 6;
			} else if (x && strchr("\"\\/bfnrt", x)) {
				decoded = x == '"' || x == '\\' || x == '/'
				                  ? x
				                  : -1;
				sc->i += 2;
			} else {
				return false;
			}
		} else if (c < 0x80) {
			decoded = c;
			sc->i++;
		} else {
			size_t len =
				evfn__utf8_char_len(sc->s + sc->i, sc->n - sc->i);
			if (len == 0)
				return false;
			sc->i += len;
		}
		if (same && matched < sizeof(word) - 1 &&
		    decoded == word[matched])
			matched++;
		else
			same = false;
	}
	return false;
}

static bool
scan_digits(struct scanner *sc)
{
	size_t from = sc->i;
	while (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9')
		sc->i++;
	return sc->i > from;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, of any magnitude. */
static bool
scan_number(struct scanner *sc)
{
	if (sc->i < sc->n && sc->s[sc->i] == '-')
		sc->i++;
	if (sc->i < sc->n && sc->s[sc->i] == '0')
		sc->i++;
	else if (!scan_digits(sc))
		return false;
	if (sc->i < sc->n && sc->s[sc->i] == '.') {
		sc->i++;
		if (!scan_digits(sc))
			return false;
	}
	if (sc->i < sc->n && (sc->s[sc->i] == 'e' || sc->s[sc->i] == 'E')) {
		sc->i++;
		if (sc->i < sc->n && (sc->s[sc->i] == '+' || sc->s[sc->i] == '-'))
			sc->i++;
		if (!scan_digits(sc))
			return false;
	}
	return true;
}

static bool
scan_word(struct scanner *sc, const char *word)
{
	size_t k = strlen(word);
	if (sc->n - sc->i < k || memcmp(sc->s + sc->i, word, k) != 0)
		return false;
	sc->i += k;
	return true;
}

/* An object member's name and colon, from the name's opening quote. */
static bool
scan_key(struct scanner *sc, bool *is_data)
{
	if (sc->i >= sc->n || sc->s[sc->i] != '"' || !scan_string(sc, is_data))
		return false;
	scan_ws(sc);
	return sc->i < sc->n && sc->s[sc->i++] == ':';
}

/* Scans one JSON value (after blanks), containers with an explicit
 * stack rather than recursion, so that hostile nesting costs no C
 * stack. */
static bool
scan_value(struct scanner *sc)
{
	unsigned char open[SCAN_DEPTH_MAX]; /* '{' or '[' per level */
	size_t depth = 0;
	for (;;) {
		scan_ws(sc);
		if (sc->i >= sc->n)
			return false;
		unsigned char c = sc->s[sc->i];
		bool ok = true;
		if (c == '{' || c == '[') {
			if (depth == SCAN_DEPTH_MAX)
				return false;
			open[depth++] = c;
			sc->i++;
			scan_ws(sc);
			if (sc->i < sc->n && sc->s[sc->i] == (c == '{' ? '}' : ']')) {
				sc->i++;
				depth--;
			} else {
				if (c == '{') {
					bool unused;
					if (!scan_key(sc, &unused))
						return false;
				}
				continue; /* the first member's value */
			}
		} else if (c == '"') {
			ok = scan_string(sc, NULL);
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			ok = scan_number(sc);
		} else {
			ok = scan_word(sc, "true") || scan_word(sc, "false") ||
			     scan_word(sc, "null");
		}
		if (!ok)
			return false;
		/* A value ended: close containers, or go on to the next
		 * member or element. */
		for (;;) {
			if (depth == 0)
				return true;
			scan_ws(sc);
			if (sc->i >= sc->n)
				return false;
			c = sc->s[sc->i++];
			bool object = open[depth - 1] == '{';
			if (c == (object ? '}' : ']')) {
				depth--;
				continue;
			}
			if (c != ',')
				return false;
			if (object) {
				bool unused;
				scan_ws(sc);
				if (!scan_key(sc, &unused))
					return false;
			}
			break;
		}
	}
}

/* Scans one event (the whole structured body, or a batch element) and,
 * when it is an object, records its "data" value's span. */
static bool
scan_event(struct scanner *sc, struct data_span *span)
{
	span->start = span->end = 0;
	scan_ws(sc);
	if (sc->i >= sc->n || sc->s[sc->i] != '{')
		return scan_value(sc);
	sc->i++;
	scan_ws(sc);
	if (sc->i < sc->n && sc->s[sc->i] == '}') {
		sc->i++;
		return true;
	}
	for (;;) {
		bool is_data;
		if (!scan_key(sc, &is_data))
			return false;
		scan_ws(sc);
		size_t start = sc->i;
		if (!scan_value(sc))
			return false;
		/* A second "data" is left in place for jansson to refuse as
		 * a duplicate key. */
		if (is_data && span->end == 0) {
			span->start = start;
			span->end = sc->i;
		}
		scan_ws(sc);
		if (sc->i >= sc->n)
			return false;
		unsigned char c = sc->s[sc->i++];
		if (c == '}')
			return true;
		if (c != ',')
			return false;
		scan_ws(sc);
	}
}

/* Finds the data span of each event of a structured (batch false) or
 * batched body: *spans receives one per event (a batch: per array
 * element), *count how many, to be freed with evfn__free(). Returns 0,
 * EVFN_ECLOUDEVENT for a body that is not JSON (with no reason: jansson
 * gives a better one), or EVFN_ENOMEM. */
static int
scan_body(const void *body, size_t len, bool batch, struct data_span **spans,
          size_t *count)
{
	struct scanner sc = {body, len, 0};
	struct data_span *v = NULL;
	size_t n = 0, cap = 0;
	bool ok = true;
	scan_ws(&sc);
	if (!batch || sc.i >= sc.n || sc.s[sc.i] != '[') {
		/* A batch that is not an array is told so by the caller. */
		if (!(v = evfn__malloc(sizeof(*v))))
			return EVFN_ENOMEM;
		ok = batch ? scan_value(&sc) : scan_event(&sc, v);
		if (!batch)
			n = 1;
	} else {
		sc.i++;
		scan_ws(&sc);
		if (sc.i < sc.n && sc.s[sc.i] == ']')
			sc.i++;
		else
			for (;;) {
				if (n == cap) {
					cap = cap ? 2 * cap : 8;
					struct data_span *grown =
						evfn__realloc(v, cap * sizeof(*v));
					if (!grown) {
						evfn__free(v);
						return EVFN_ENOMEM;
					}
					v = grown;
				}
				if (!(ok = scan_event(&sc, &v[n++])))
					break;
				scan_ws(&sc);
				unsigned char c = sc.i < sc.n ? sc.s[sc.i++] : 0;
				if (c == ']')
					break;
				if (!(ok = c == ','))
					break;
			}
	}
	scan_ws(&sc);
	if (!ok || sc.i != sc.n) {
		evfn__free(v);
		return EVFN_ECLOUDEVENT;
	}
	*spans = v;
	*count = n;
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
		if (!ce_string_ok(value, json_string_length(v)))
			return reject_string(e, name);
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
	return rc ? extension_failed(e, rc, name) : 0;
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
	if (!ce_string_ok(json_string_value(v), json_string_length(v)))
		return reject_string(e, attr);
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

/* The payload of a structured event: data_base64 decoded; data (whose
 * span in body is d) as the characters of its string when the content
 * type is not JSON, otherwise as the JSON text the sender wrote. Sets
 * *json when the result is JSON. */
static int
structured_data(json_t *obj, const char *dct, const char *body,
                const struct data_span *d, void **data, size_t *len,
                bool *json, struct perr *e)
{
	json_t *b64 = json_object_get(obj, "data_base64");
	*data = NULL;
	*len = 0;
	*json = false;
	if (d->end && b64)
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
	if (!d->end)
		return 0;
	const char *raw = body + d->start;
	size_t raw_len = d->end - d->start;
	if (raw[0] == '"' && dct && !media_is_json(dct)) {
		json_error_t jerr;
		json_t *str = json_loadb(raw, raw_len,
		                         JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (!str)
			return json_error_code(&jerr) == json_error_out_of_memory
			               ? EVFN_ENOMEM
			               : reject(e, "data is not a valid string: "
			                           "%s", jerr.text);
		*len = json_string_length(str);
		*data = evfn__malloc(*len + 1);
		if (*data)
			memcpy(*data, json_string_value(str), *len);
		json_decref(str);
		return *data ? 0 : EVFN_ENOMEM;
	}
	if (!(*data = evfn__malloc(raw_len)))
		return EVFN_ENOMEM;
	memcpy(*data, raw, raw_len);
	*len = raw_len;
	*json = true;
	return 0;
}

/* Builds the event of one structured object; its data is at d in body. */
static int
parse_object(json_t *obj, const char *body, const struct data_span *d,
             evfn_event **out, struct perr *e)
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
	if ((rc = structured_data(obj, dct, body, d, &data, &len, &json, e)))
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
		*rc = json_error_code(&jerr) == json_error_out_of_memory
		              ? EVFN_ENOMEM
		              : reject(e, "malformed JSON at line %d column "
		                          "%d: %s",
		                       jerr.line, jerr.column, jerr.text);
	return root;
}

/* Parses a structured (batch false) or batched body: *root receives the
 * JSON with each event's data value masked (replaced by 0), *spans where
 * each event's data lies in body (freed with evfn__free()). Returns 0,
 * EVFN_ECLOUDEVENT with the reason, or EVFN_ENOMEM. */
static int
load_events(const char *body, size_t len, bool batch, json_t **root,
            struct data_span **spans, size_t *count, struct perr *e)
{
	*root = NULL;
	*spans = NULL;
	*count = 0;
	int rc = scan_body(body, len, batch, spans, count);
	if (rc == EVFN_ECLOUDEVENT) {
		/* Not JSON: jansson tells where. */
		json_t *j = load_json(body, len, e, &rc);
		if (j) {
			json_decref(j);
			rc = reject(e, "malformed JSON");
		}
		return rc;
	}
	if (rc)
		return rc;
	/* Each span holds one byte at least, so the masked text is no
	 * longer than the body. */
	char *masked = evfn__malloc(len + 1);
	if (!masked) {
		evfn__free(*spans);
		*spans = NULL;
		return EVFN_ENOMEM;
	}
	size_t m = 0, from = 0;
	for (size_t i = 0; i < *count; i++) {
		const struct data_span *d = &(*spans)[i];
		if (!d->end)
			continue;
		memcpy(masked + m, body + from, d->start - from);
		m += d->start - from;
		masked[m++] = '0';
		from = d->end;
	}
	memcpy(masked + m, body + from, len - from);
	m += len - from;
	*root = load_json(masked, m, e, &rc);
	evfn__free(masked);
	if (!*root) {
		evfn__free(*spans);
		*spans = NULL;
	}
	return *root ? 0 : rc;
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
	struct data_span *spans = NULL;
	size_t nspans = 0;
	static const struct data_span no_data = {0, 0};

	if (media_is(ct, "application/cloudevents-batch+json")) {
		*mode = EVFN__CE_BATCH;
		if ((rc = load_events(body, len, true, &root, &spans, &nspans,
		                      &e)))
			return rc;
		if (!json_is_array(root)) {
			json_decref(root);
			evfn__free(spans);
			return reject(&e, "a batch must be a JSON array");
		}
		size_t total = json_array_size(root);
		list = evfn__calloc(total ? total : 1, sizeof(*list));
		if (!list) {
			json_decref(root);
			evfn__free(spans);
			return EVFN_ENOMEM;
		}
		for (; count < total; count++) {
			rc = parse_object(json_array_get(root, count), body,
			                  count < nspans ? &spans[count]
			                                 : &no_data,
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
		if ((rc = load_events(body, len, false, &root, &spans, &nspans,
		                      &e)))
			return rc;
		list = evfn__calloc(1, sizeof(*list));
		if (!list) {
			json_decref(root);
			evfn__free(spans);
			return EVFN_ENOMEM;
		}
		rc = parse_object(root, body, &spans[0], &list[0], &e);
		count = list[0] ? 1 : 0;
	} else if (media_is_cloudevents(ct)) {
		/* A CloudEvents format evfn does not read (XML, Avro,
		 * Protobuf, ...): taking it as plain data would hand the
		 * handler an event it did not ask for. */
		*mode = EVFN__CE_STRUCTURED;
		size_t tn;
		const char *t = media_type(ct, &tn);
		reject(&e, "unsupported CloudEvents format %.*s (evfn reads "
		           "application/cloudevents+json and "
		           "application/cloudevents-batch+json)",
		       (int)EVFN__MIN(tn, (size_t)48), t);
		return EVFN_EMEDIATYPE;
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
			if (rc)
				rc = setter_failed(&e, rc, "type");
			else if (ct && *ct)
				rc = set_content_type(list[0], ct, &e);
		}
		count = list[0] ? 1 : 0;
	}
	evfn__free(spans);
	json_decref(root);
	if (rc) {
		evfn__ce_events_free(list, count);
		return rc;
	}
	*events = list;
	*n = count;
	return 0;
}
