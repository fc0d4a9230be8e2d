/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents 1.0 HTTP binding on its own: plain requests, binary
 * mode (required attributes, percent-decoding, extensions, time),
 * structured mode (data as JSON, as text, as base64), batched mode, the
 * RFC 3339 parser, and the reason given for each kind of bad input.
 */
#include <string.h>

#include "harness.h"
#include "sources/cloudevents-internal.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define H(n, v) ((struct evfn__ce_header){(n), (v)})

struct parsed {
	int rc;
	enum evfn__ce_mode mode;
	evfn_event **events;
	size_t n;
	char err[EVFN__CE_ERR_MAX];
};

static struct parsed
parse(const struct evfn__ce_header *h, size_t nh, const char *body)
{
	struct parsed p;
	memset(&p, 0, sizeof(p));
	p.rc = evfn__ce_parse(h, nh, body, body ? strlen(body) : 0, "fallback",
	                      &p.mode, &p.events, &p.n, p.err, sizeof(p.err));
	return p;
}

static void
done(struct parsed *p)
{
	evfn__ce_events_free(p->events, p->n);
}

/* Parses and expects the given rejection reason. */
static void
expect_reject(const struct evfn__ce_header *h, size_t nh, const char *body,
              const char *reason)
{
	struct parsed p = parse(h, nh, body);
	ASSERT_RC(p.rc, EVFN_ECLOUDEVENT);
	assert_null(p.events);
	ASSERT_EQ(p.n, 0);
	if (strstr(p.err, reason) == NULL)
		fail_msg("reason \"%s\" does not contain \"%s\"", p.err,
		         reason);
}

static void
assert_data(const evfn_event *ev, const char *want)
{
	size_t len;
	const void *data = evfn_event_data(ev, &len);
	ASSERT_EQ(len, strlen(want));
	if (len)
		assert_memory_equal(data, want, len);
}

static void
test_cloudevents_plain_request(void **state)
{
	(void)state;
	struct evfn__ce_header h[] = {H("Content-Type", "text/plain"),
	                              H("X-Other", "1")};
	struct parsed p = parse(h, 2, "hello");
	ASSERT_OK(p.rc);
	ASSERT_EQ(p.mode, EVFN__CE_PLAIN);
	ASSERT_EQ(p.n, 1);
	assert_string_equal(evfn_event_type(p.events[0]), "fallback");
	assert_string_equal(evfn_event_datacontenttype(p.events[0]),
	                    "text/plain");
	assert_null(evfn_event_id(p.events[0]));
	assert_data(p.events[0], "hello");
	done(&p);

	/* No headers and no body at all. */
	p = parse(NULL, 0, NULL);
	ASSERT_OK(p.rc);
	ASSERT_EQ(p.n, 1);
	assert_null(evfn_event_datacontenttype(p.events[0]));
	assert_data(p.events[0], "");
	done(&p);
}

static void
test_cloudevents_binary_mode(void **state)
{
	(void)state;
	struct evfn__ce_header h[] = {
		H("ce-specversion", "1.0"),
		H("CE-ID", "A234-1234-1234"),
		H("ce-source", "https://example.com/orders"),
		H("ce-type", "com.example.order.created"),
		H("ce-subject", "order%2F42"),
		H("ce-time", "2024-05-01T12:00:00.5+02:00"),
		H("Ce-TraceParent", "00-abc%20def"),
		H("ce-empty", ""),
		H("Content-Type", "application/json"),
	};
	struct parsed p = parse(h, N_OF(h), "{\"n\":1}");
	ASSERT_OK(p.rc);
	ASSERT_EQ(p.mode, EVFN__CE_BINARY);
	ASSERT_EQ(p.n, 1);
	const evfn_event *ev = p.events[0];
	assert_string_equal(evfn_event_id(ev), "A234-1234-1234");
	assert_string_equal(evfn_event_source(ev),
	                    "https://example.com/orders");
	assert_string_equal(evfn_event_type(ev), "com.example.order.created");
	assert_string_equal(evfn_event_subject(ev), "order/42");
	assert_string_equal(evfn_event_datacontenttype(ev),
	                    "application/json");
	ASSERT_EQ(evfn_event_time(ev), INT64_C(1714557600500000000));
	assert_string_equal(evfn_event_extension(ev, "traceparent"),
	                    "00-abc def");
	/* An empty value is the empty string, not absence. */
	assert_string_equal(evfn_event_extension(ev, "empty"), "");
	assert_null(evfn_event_extension(ev, "specversion"));
	assert_data(ev, "{\"n\":1}");
	done(&p);
}

/* CloudEvents advises extension names of at most 20 characters without
 * requiring it, and SDKs send longer ones: both modes take them, up to
 * EVFN_NAME_MAX, and refuse longer ones as too long. */
static void
test_cloudevents_long_extension_names(void **state)
{
	(void)state;
	static const char name[] = "averyveryverylongextensionname";
	struct evfn__ce_header bin[] = {
		H("ce-specversion", "1.0"), H("ce-id", "1"),
		H("ce-source", "s"), H("ce-type", "t"),
		H("ce-AVeryVeryVeryLongExtensionName", "binary")};
	struct parsed p = parse(bin, N_OF(bin), "x");
	if (p.rc)
		fail_msg("binary: %s", p.err);
	assert_string_equal(evfn_event_extension(p.events[0], name), "binary");
	done(&p);

	char body[1024];
	snprintf(body, sizeof(body),
	         "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	         "\"type\":\"t\",\"%s\":\"structured\"}",
	         name);
	struct evfn__ce_header json_ct[] = {
		H("Content-Type", "application/cloudevents+json")};
	p = parse(json_ct, 1, body);
	if (p.rc)
		fail_msg("structured: %s", p.err);
	assert_string_equal(evfn_event_extension(p.events[0], name),
	                    "structured");
	done(&p);

	char too_long[EVFN_NAME_MAX + 2];
	memset(too_long, 'x', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	char header[EVFN_NAME_MAX + 8];
	snprintf(header, sizeof(header), "ce-%s", too_long);
	struct evfn__ce_header bin_long[] = {
		H("ce-specversion", "1.0"), H("ce-id", "1"),
		H("ce-source", "s"), H("ce-type", "t"), H(header, "v")};
	expect_reject(bin_long, N_OF(bin_long), "x", "is too long");
	snprintf(body, sizeof(body),
	         "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	         "\"type\":\"t\",\"%s\":1}",
	         too_long);
	expect_reject(json_ct, 1, body, "is too long");
}

static void
test_cloudevents_binary_rejects_bad(void **state)
{
	(void)state;
	struct evfn__ce_header missing_id[] = {
		H("ce-specversion", "1.0"), H("ce-source", "s"),
		H("ce-type", "t")};
	expect_reject(missing_id, 3, "x", "missing required attribute id");

	/* Any required ce- header makes the request a binary CloudEvent. */
	struct evfn__ce_header no_version[] = {H("ce-id", "1")};
	expect_reject(no_version, 1, "x",
	              "missing required attribute specversion");

	struct evfn__ce_header old[] = {H("ce-specversion", "0.3"),
	                                H("ce-id", "1"), H("ce-source", "s"),
	                                H("ce-type", "t")};
	expect_reject(old, 4, "x", "unsupported specversion");

	struct evfn__ce_header empty_type[] = {
		H("ce-specversion", "1.0"), H("ce-id", "1"),
		H("ce-source", "s"), H("ce-type", "")};
	expect_reject(empty_type, 4, "x", "missing required attribute type");

	struct evfn__ce_header bad_time[] = {
		H("ce-specversion", "1.0"), H("ce-id", "1"),
		H("ce-source", "s"), H("ce-type", "t"),
		H("ce-time", "yesterday")};
	expect_reject(bad_time, 5, "x", "attribute time is not RFC 3339");

	struct evfn__ce_header bad_pct[] = {
		H("ce-specversion", "1.0"), H("ce-id", "1%2"),
		H("ce-source", "s"), H("ce-type", "t")};
	expect_reject(bad_pct, 4, "x", "bad percent-encoding in ce-id");

	struct evfn__ce_header nul[] = {
		H("ce-specversion", "1.0"), H("ce-id", "1"),
		H("ce-source", "s%00"), H("ce-type", "t")};
	expect_reject(nul, 4, "x", "bad percent-encoding in ce-source");

	struct evfn__ce_header bad_ext[] = {
		H("ce-specversion", "1.0"), H("ce-id", "1"),
		H("ce-source", "s"), H("ce-type", "t"), H("ce-my_ext", "v")};
	expect_reject(bad_ext, 5, "x", "invalid extension name my_ext");

	char long_id[400];
	memset(long_id, 'i', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	struct evfn__ce_header too_long[] = {
		H("ce-specversion", "1.0"), H("ce-id", long_id),
		H("ce-source", "s"), H("ce-type", "t")};
	expect_reject(too_long, 4, "x", "attribute id is too long");
}

/* Every string attribute and extension must be a CloudEvents string
 * after percent-decoding: valid UTF-8 without control characters. An id
 * that is not would be admitted and then fail to be written into the
 * answer. */
static void
test_cloudevents_binary_rejects_bad_strings(void **state)
{
	(void)state;
	static const struct {
		const char *attr, *value;
	} bad[] = {
		{"id", "%FF"},            /* not UTF-8 at all */
		{"id", "\xff"},           /* the same byte unencoded */
		{"id", "%C3%28"},         /* a lead byte without its tail */
		{"id", "%C0%AF"},         /* overlong '/' */
		{"id", "%ED%A0%80"},      /* a surrogate */
		{"id", "%F4%90%80%80"},   /* above U+10FFFF */
		{"source", "a%0Ab"},      /* a control character */
		{"type", "t%7F"},         /* DEL */
		{"subject", "%C2%85"},    /* U+0085, a C1 control */
		{"subject", "%EF%BF%BE"}, /* the noncharacter U+FFFE */
		{"traceparent", "%E2%82"}, /* an extension, cut short */
	};
	for (size_t i = 0; i < N_OF(bad); i++) {
		char name[32];
		snprintf(name, sizeof(name), "ce-%s", bad[i].attr);
		struct evfn__ce_header h[] = {
			H("ce-specversion", "1.0"), H("ce-id", "1"),
			H("ce-source", "s"),        H("ce-type", "t"),
			H(name, bad[i].value),
		};
		/* The attribute's own header comes last and wins only when
		 * it is new; replace the default in place otherwise. */
		size_t nh = N_OF(h);
		for (size_t k = 0; k < 4; k++)
			if (strcmp(h[k].name, name) == 0) {
				h[k].value = bad[i].value;
				nh = 4;
			}
		char reason[64];
		snprintf(reason, sizeof(reason), "attribute %s is not a "
		         "CloudEvents string", bad[i].attr);
		expect_reject(h, nh, "x", reason);
	}
	/* Multi-byte characters are fine, encoded or not. */
	struct evfn__ce_header good[] = {
		H("ce-specversion", "1.0"), H("ce-id", "%C3%A9v\xc3\xa9"),
		H("ce-source", "s"), H("ce-type", "t"),
		H("ce-note", "%F0%9F%98%80")};
	struct parsed p = parse(good, N_OF(good), "x");
	ASSERT_OK(p.rc);
	assert_string_equal(evfn_event_id(p.events[0]), "\xc3\xa9v\xc3\xa9");
	assert_string_equal(evfn_event_extension(p.events[0], "note"),
	                    "\xf0\x9f\x98\x80");
	done(&p);

	/* Content-Type becomes datacontenttype, in plain requests too. */
	struct evfn__ce_header ct[] = {H("Content-Type", "text/\xff")};
	expect_reject(ct, 1, "x", "Content-Type is not valid UTF-8");
}

/* A media type of the CloudEvents family that evfn does not parse is
 * refused with EVFN_EMEDIATYPE (the HTTP trigger's 415), never taken as
 * plain data. */
static void
test_cloudevents_unsupported_format(void **state)
{
	(void)state;
	static const char *const refused[] = {
		"application/cloudevents+xml",
		"application/cloudevents",
		"Application/CloudEvents+Avro; charset=x",
		"application/cloudevents-batch+xml",
		"application/cloudevents+protobuf",
	};
	for (size_t i = 0; i < N_OF(refused); i++) {
		struct evfn__ce_header h[] = {H("Content-Type", refused[i])};
		struct parsed p = parse(h, 1, "<event/>");
		ASSERT_RC(p.rc, EVFN_EMEDIATYPE);
		assert_null(p.events);
		if (!strstr(p.err, "unsupported CloudEvents format"))
			fail_msg("reason \"%s\" for %s", p.err, refused[i]);
	}
	/* Not of the family: plain data. */
	struct evfn__ce_header other[] = {
		H("Content-Type", "application/cloudeventsy")};
	struct parsed p = parse(other, 1, "x");
	ASSERT_OK(p.rc);
	ASSERT_EQ(p.mode, EVFN__CE_PLAIN);
	done(&p);
}

static const struct evfn__ce_header batch[] = {
	H("content-type", "application/cloudevents-batch+json")};

static const struct evfn__ce_header structured[] = {
	H("Content-Type", "application/cloudevents+json; charset=utf-8")};

static void
test_cloudevents_structured_mode(void **state)
{
	(void)state;
	struct parsed p = parse(
		structured, 1,
		"{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/src\","
		"\"type\":\"t.created\",\"subject\":\"sub\","
		"\"time\":\"1970-01-01T00:00:01Z\",\"data\":{\"a\": [1, 2]},"
		"\"count\":7,\"flag\":true,\"note\":\"hi\",\"none\":null,"
		"\"empty\":\"\"}");
	ASSERT_OK(p.rc);
	ASSERT_EQ(p.mode, EVFN__CE_STRUCTURED);
	ASSERT_EQ(p.n, 1);
	const evfn_event *ev = p.events[0];
	assert_string_equal(evfn_event_id(ev), "e1");
	assert_string_equal(evfn_event_source(ev), "/src");
	assert_string_equal(evfn_event_type(ev), "t.created");
	assert_string_equal(evfn_event_subject(ev), "sub");
	ASSERT_EQ(evfn_event_time(ev), INT64_C(1000000000));
	/* JSON data is the sender's text, unchanged, labelled as JSON. */
	assert_data(ev, "{\"a\": [1, 2]}");
	assert_string_equal(evfn_event_datacontenttype(ev),
	                    "application/json");
	assert_string_equal(evfn_event_extension(ev, "count"), "7");
	assert_string_equal(evfn_event_extension(ev, "flag"), "true");
	assert_string_equal(evfn_event_extension(ev, "note"), "hi");
	assert_null(evfn_event_extension(ev, "none"));
	/* null is unset (JSON format 2.2); "" is a value. */
	assert_string_equal(evfn_event_extension(ev, "empty"), "");
	done(&p);

	/* A string with a non-JSON content type is the data itself. */
	p = parse(structured, 1,
	          "{\"specversion\":\"1.0\",\"id\":\"e2\",\"source\":\"/s\","
	          "\"type\":\"t\",\"datacontenttype\":\"text/plain\","
	          "\"data\":\"plain text\"}");
	ASSERT_OK(p.rc);
	assert_data(p.events[0], "plain text");
	assert_string_equal(evfn_event_datacontenttype(p.events[0]),
	                    "text/plain");
	done(&p);

	/* data_base64 is decoded; no data at all is an empty payload. */
	p = parse(structured, 1,
	          "{\"specversion\":\"1.0\",\"id\":\"e3\",\"source\":\"/s\","
	          "\"type\":\"t\",\"data_base64\":\"aGVsbG8=\"}");
	ASSERT_OK(p.rc);
	assert_data(p.events[0], "hello");
	done(&p);
	p = parse(structured, 1,
	          "{\"specversion\":\"1.0\",\"id\":\"e4\",\"source\":\"/s\","
	          "\"type\":\"t\"}");
	ASSERT_OK(p.rc);
	assert_data(p.events[0], "");
	assert_null(evfn_event_datacontenttype(p.events[0]));
	done(&p);
}

/* A structured event whose data is the JSON text `data`. */
static void
with_data(char *body, size_t n, const char *data)
{
	snprintf(body, n,
	         "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	         "\"type\":\"t\",\"data\":%s}",
	         data);
}

/* Data is the sender's: valid JSON that jansson would refuse or respell
 * (integers beyond int64, "\u0000", exponents) passes through as the
 * bytes sent; attributes keep their checks. */
static void
test_cloudevents_structured_data_passes_through(void **state)
{
	(void)state;
	static const char *const data[] = {
		"123456789012345678901234567890",
		"{\"n\": -99999999999999999999999, \"s\": \"a\\u0000b\"}",
		"[1.0e+400, 0.10, -0, \"\\ud83d\\ude00\"]",
		"\"\\u0000\"",
		"null",
		" {\"deep\": [[[[[[[[[[]]]]]]]]]]} ",
	};
	for (size_t i = 0; i < N_OF(data); i++) {
		char body[512];
		with_data(body, sizeof(body), data[i]);
		struct parsed p = parse(structured, 1, body);
		if (p.rc)
			fail_msg("refused data %s: %s", data[i], p.err);
		/* The value as written; blanks after it are JSON's, not
		 * the value's. */
		const char *want = data[i];
		size_t n = strlen(want);
		while (*want == ' ') {
			want++;
			n--;
		}
		while (n && want[n - 1] == ' ')
			n--;
		size_t len;
		const void *got = evfn_event_data(p.events[0], &len);
		ASSERT_EQ(len, n);
		assert_memory_equal(got, want, n);
		done(&p);
	}

	/* A string of text with a NUL: its characters, NUL included. */
	struct parsed p = parse(
		structured, 1,
		"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
		"\"type\":\"t\",\"datacontenttype\":\"text/plain\","
		"\"d\\u0061ta\":\"a\\u0000b\"}");
	ASSERT_OK(p.rc);
	size_t len;
	const char *got = evfn_event_data(p.events[0], &len);
	ASSERT_EQ(len, 3);
	assert_memory_equal(got, "a\0b", 3);
	done(&p);

	/* A batch: each element's data, as written. */
	p = parse(batch, 1,
	          "[{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	          "\"type\":\"t\",\"data\":18446744073709551616},"
	          "{\"data\": [ ], \"specversion\":\"1.0\",\"id\":\"2\","
	          "\"source\":\"s\",\"type\":\"t\"}]");
	ASSERT_OK(p.rc);
	ASSERT_EQ(p.n, 2);
	assert_data(p.events[0], "18446744073709551616");
	assert_data(p.events[1], "[ ]");
	done(&p);
}

/* What the data pass-through must still refuse: JSON that is not JSON,
 * two data members, and attributes that are not CloudEvents strings. */
static void
test_cloudevents_structured_rejects_bad_data_and_strings(void **state)
{
	(void)state;
	static const char *const bad_data[] = {
		"01", "1.", "-", "1e", "[1,]", "{\"a\"}", "{\"a\":1,}",
		"\"\\x\"", "\"\\u12\"", "\"\x01\"", "tru", "\"\xff\"", "[",
		"{\"a\" 1}", "[1 2]", "1 2",
	};
	for (size_t i = 0; i < N_OF(bad_data); i++) {
		char body[256];
		with_data(body, sizeof(body), bad_data[i]);
		expect_reject(structured, 1, body, "malformed JSON");
	}
	/* Nesting deeper than jansson's limit. */
	static char deep[3 * 2100 + 128];
	size_t k = (size_t)snprintf(deep, sizeof(deep),
	                            "{\"specversion\":\"1.0\",\"id\":\"1\","
	                            "\"source\":\"s\",\"type\":\"t\","
	                            "\"data\":");
	for (int i = 0; i < 2100; i++)
		deep[k++] = '[';
	for (int i = 0; i < 2100; i++)
		deep[k++] = ']';
	deep[k++] = '}';
	deep[k] = '\0';
	expect_reject(structured, 1, deep, "malformed JSON");

	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"data\":1,\"data\":2}",
	              "malformed JSON");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"datacontenttype\":\"text/plain\","
	              "\"data\":\"\\ud800\"}",
	              "data is not a valid string");
	/* Attributes are still jansson's: no NUL, no integer overflow. */
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"a\\u0000\","
	              "\"source\":\"s\",\"type\":\"t\"}",
	              "malformed JSON");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"seq\":99999999999999999999}",
	              "malformed JSON");
	/* Control characters, escaped in JSON, are not CloudEvents
	 * strings either. */
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\\n\"}",
	              "attribute type is not a CloudEvents string");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"subject\":\"\\u0085\"}",
	              "attribute subject is not a CloudEvents string");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"note\":\"\\u0007\"}",
	              "attribute note is not a CloudEvents string");
}

static void
test_cloudevents_structured_rejects_bad(void **state)
{
	(void)state;
	expect_reject(structured, 1, "{\"specversion\":", "malformed JSON");
	expect_reject(structured, 1, "[]", "must be a JSON object");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"t\"}",
	              "missing required attribute source");
	expect_reject(structured, 1,
	              "{\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}",
	              "missing required attribute specversion");
	expect_reject(structured, 1,
	              "{\"specversion\":\"2.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\"}",
	              "unsupported specversion");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":1,\"source\":\"s\","
	              "\"type\":\"t\"}",
	              "attribute id must be a non-empty string");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"data\":1,\"data_base64\":\"AA==\"}",
	              "data and data_base64 are exclusive");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"data_base64\":\"a*==\"}",
	              "data_base64 is not valid base64");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"ext\":{\"a\":1}}",
	              "attribute ext must be a string, integer or boolean");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"Bad-Name\":\"v\"}",
	              "invalid extension name Bad-Name");
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
	              "\"type\":\"t\",\"time\":\"2024-13-01T00:00:00Z\"}",
	              "attribute time is not RFC 3339");
	/* Duplicate keys are ambiguous, so they are refused. */
	expect_reject(structured, 1,
	              "{\"specversion\":\"1.0\",\"id\":\"1\",\"id\":\"2\","
	              "\"source\":\"s\",\"type\":\"t\"}",
	              "malformed JSON");
}


static void
test_cloudevents_batched_mode(void **state)
{
	(void)state;
	struct parsed p = parse(
		batch, 1,
		"[{\"specversion\":\"1.0\",\"id\":\"b1\",\"source\":\"/s\","
		"\"type\":\"t1\",\"data\":\"x\"},"
		"{\"specversion\":\"1.0\",\"id\":\"b2\",\"source\":\"/s\","
		"\"type\":\"t2\"}]");
	ASSERT_OK(p.rc);
	ASSERT_EQ(p.mode, EVFN__CE_BATCH);
	ASSERT_EQ(p.n, 2);
	assert_string_equal(evfn_event_id(p.events[0]), "b1");
	assert_string_equal(evfn_event_type(p.events[1]), "t2");
	assert_data(p.events[0], "\"x\"");
	done(&p);

	p = parse(batch, 1, "[]");
	ASSERT_OK(p.rc);
	ASSERT_EQ(p.n, 0);
	done(&p);

	expect_reject(batch, 1, "{}", "a batch must be a JSON array");
	expect_reject(batch, 1,
	              "[{\"specversion\":\"1.0\",\"id\":\"b1\","
	              "\"source\":\"/s\",\"type\":\"t1\"},"
	              " {\"specversion\":\"1.0\"}]",
	              "event 1: missing required attribute id");
	expect_reject(batch, 1, "[1,", "malformed JSON");
	expect_reject(batch, 1, "[1]", "event 0: a CloudEvent must be a JSON object");
}

static void
test_cloudevents_rejects_null_arguments(void **state)
{
	(void)state;
	enum evfn__ce_mode mode;
	evfn_event **events;
	size_t n;
	ASSERT_RC(evfn__ce_parse(NULL, 0, NULL, 0, NULL, &mode, &events, &n,
	                         NULL, 0),
	          EVFN_EINVAL);
	ASSERT_RC(evfn__ce_parse(NULL, 1, NULL, 0, "t", &mode, &events, &n,
	                         NULL, 0),
	          EVFN_EINVAL);
	ASSERT_RC(evfn__ce_parse(NULL, 0, NULL, 3, "t", &mode, &events, &n,
	                         NULL, 0),
	          EVFN_EINVAL);
	evfn__ce_events_free(NULL, 0);
}

static void
test_cloudevents_time(void **state)
{
	(void)state;
	int64_t ns = -1;
	ASSERT_OK(evfn__ce_parse_time("1970-01-01T00:00:00Z", &ns));
	ASSERT_EQ(ns, 0);
	ASSERT_OK(evfn__ce_parse_time("2024-05-01T12:00:00.5+02:00", &ns));
	ASSERT_EQ(ns, INT64_C(1714557600500000000));
	ASSERT_OK(evfn__ce_parse_time("2024-05-01t10:00:00.123456789123z",
	                              &ns));
	ASSERT_EQ(ns, INT64_C(1714557600123456789));
	ASSERT_OK(evfn__ce_parse_time("2024-02-29T00:00:00-00:30", &ns));
	ASSERT_EQ(ns, INT64_C(1709166600000000000));
	ASSERT_OK(evfn__ce_parse_time("1677-09-22T00:00:00Z", &ns));
	ASSERT_EQ(ns, INT64_C(-9223286400) * 1000000000);

	static const char *const bad[] = {
		"", "2024-05-01", "2024-05-01T12:00:00", "2023-02-29T00:00:00Z",
		"2024-04-31T00:00:00Z", "2024-05-01T24:00:00Z",
		"2024-05-01T12:60:00Z", "2024-05-01T12:00:00.Z",
		"2024-05-01T12:00:00+2:00", "2024-05-01T12:00:00Zjunk",
		"24-05-01T12:00:00Z", "2300-01-01T00:00:00Z",
		"1600-01-01T00:00:00Z",
	};
	for (size_t i = 0; i < N_OF(bad); i++)
		if (evfn__ce_parse_time(bad[i], &ns) != EVFN_ECLOUDEVENT)
			fail_msg("accepted \"%s\"", bad[i]);
}

static int
noop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

/* A CloudEvent at the epoch keeps its time through publish, in binary and
 * structured mode: 0 is a time, not "unset". */
static void
test_cloudevents_epoch_time_survives_publish(void **state)
{
	(void)state;
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "f", noop, NULL, NULL, NULL));
	struct evfn__ce_header h[] = {
		H("ce-specversion", "1.0"), H("ce-id", "b1"),
		H("ce-source", "/s"),       H("ce-type", "t"),
		H("ce-time", "1970-01-01T00:00:00Z"),
	};
	struct parsed bin = parse(h, N_OF(h), "");
	struct parsed str = parse(
		structured, 1,
		"{\"specversion\":\"1.0\",\"id\":\"s1\",\"source\":\"/s\","
		"\"type\":\"t\",\"time\":\"1970-01-01T00:00:00Z\"}");
	ASSERT_OK(bin.rc);
	ASSERT_OK(str.rc);
	evfn_event *events[] = {bin.events[0], str.events[0]};
	for (size_t i = 0; i < N_OF(events); i++) {
		ASSERT_EQ(evfn_event_time(events[i]), 0);
		ASSERT_OK(evfn_publish_to(rt, "f", events[i], NULL));
		ASSERT_EQ(evfn_event_time(events[i]), 0);
	}
	done(&bin);
	done(&str);
	ASSERT_OK(evfn_rt_free(rt));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_cloudevents_plain_request),
		TEST(test_cloudevents_binary_mode),
		TEST(test_cloudevents_long_extension_names),
		TEST(test_cloudevents_binary_rejects_bad),
		TEST(test_cloudevents_binary_rejects_bad_strings),
		TEST(test_cloudevents_unsupported_format),
		TEST(test_cloudevents_structured_mode),
		TEST(test_cloudevents_structured_rejects_bad),
		TEST(test_cloudevents_structured_data_passes_through),
		TEST(test_cloudevents_structured_rejects_bad_data_and_strings),
		TEST(test_cloudevents_batched_mode),
		TEST(test_cloudevents_rejects_null_arguments),
		TEST(test_cloudevents_time),
		TEST(test_cloudevents_epoch_time_survives_publish),
	};
	return evfn_test_main("cloudevents", tests);
}
