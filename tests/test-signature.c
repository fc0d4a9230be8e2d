/* SPDX-License-Identifier: MIT */
/*
 * Webhook authentication on its own: HMAC-SHA256 against known vectors
 * (computed with `openssl dgst -sha256 -hmac`), Stripe-Signature headers
 * (valid, several v1 entries, tampered, stale, malformed), GitHub's
 * X-Hub-Signature-256 (GitHub's documented example) and bearer tokens.
 */
#include <string.h>

#include "harness.h"
#include "sources/signature-internal.h"

/* printf '%s' 'The quick brown fox jumps over the lazy dog' |
 *   openssl dgst -sha256 -hmac 'key' */
#define FOX_HMAC                                                             \
	"f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"

/* GitHub's documented example: secret "It's a Secret to Everybody",
 * payload "Hello, World!". */
#define GH_SECRET "It's a Secret to Everybody"
#define GH_BODY "Hello, World!"
#define GH_SIG                                                               \
	"sha256="                                                             \
	"757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

/* printf '%s' '1700000000.{"id":"evt_1","object":"event"}' |
 *   openssl dgst -sha256 -hmac 'whsec_test_secret' */
#define ST_SECRET "whsec_test_secret"
#define ST_BODY "{\"id\":\"evt_1\",\"object\":\"event\"}"
#define ST_T 1700000000
#define ST_V1                                                                \
	"0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"
#define ST_WRONG                                                             \
	"1c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"

static void
to_hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void
test_signature_hmac_matches_openssl(void **state)
{
	(void)state;
	const char *msg = "The quick brown fox jumps over the lazy dog";
	/* Split in three parts: the result is that of the concatenation. */
	const void *parts[] = {msg, msg + 4, msg + 20};
	size_t lens[] = {4, 16, strlen(msg) - 20};
	unsigned char mac[EVFN__SHA256_LEN];
	ASSERT_OK(evfn__hmac_sha256("key", 3, parts, lens, 3, mac));
	char hex[2 * EVFN__SHA256_LEN + 1];
	to_hex(mac, sizeof(mac), hex);
	assert_string_equal(hex, FOX_HMAC);
}

static void
test_signature_github_valid(void **state)
{
	(void)state;
	const char *why = NULL;
	ASSERT_OK(evfn__sig_github_verify(GH_SECRET, GH_SIG, GH_BODY,
	                                  strlen(GH_BODY), &why));
	/* Upper-case hex digits are the same digest. */
	char upper[sizeof(GH_SIG)];
	strcpy(upper, GH_SIG);
	for (char *p = upper + 7; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
	ASSERT_OK(evfn__sig_github_verify(GH_SECRET, upper, GH_BODY,
	                                  strlen(GH_BODY), NULL));
}

static void
test_signature_github_rejects_bad(void **state)
{
	(void)state;
	const char *why = NULL;
	/* Tampered body. */
	ASSERT_RC(evfn__sig_github_verify(GH_SECRET, GH_SIG, "Hello, World?",
	                                  13, &why),
	          EVFN_ESIGNATURE);
	assert_string_equal(why, "X-Hub-Signature-256 does not match");
	/* Wrong secret. */
	ASSERT_RC(evfn__sig_github_verify("other", GH_SIG, GH_BODY,
	                                  strlen(GH_BODY), NULL),
	          EVFN_ESIGNATURE);
	/* Missing, wrong scheme, short, not hex. */
	ASSERT_RC(evfn__sig_github_verify(GH_SECRET, NULL, GH_BODY, 13, &why),
	          EVFN_ESIGNATURE);
	assert_string_equal(why, "missing X-Hub-Signature-256");
	ASSERT_RC(evfn__sig_github_verify(GH_SECRET, GH_SIG + 7, GH_BODY, 13,
	                                  &why),
	          EVFN_ESIGNATURE);
	assert_string_equal(why, "malformed X-Hub-Signature-256");
	ASSERT_RC(evfn__sig_github_verify(GH_SECRET, "sha256=7571", GH_BODY,
	                                  13, NULL),
	          EVFN_ESIGNATURE);
	char bad[sizeof(GH_SIG)];
	strcpy(bad, GH_SIG);
	bad[10] = 'g';
	ASSERT_RC(evfn__sig_github_verify(GH_SECRET, bad, GH_BODY, 13, NULL),
	          EVFN_ESIGNATURE);
}

static void
test_signature_stripe_valid(void **state)
{
	(void)state;
	const char *body = ST_BODY;
	char header[256];
	snprintf(header, sizeof(header), "t=%d,v1=%s,v0=abc", ST_T, ST_V1);
	ASSERT_OK(evfn__sig_stripe_verify(ST_SECRET, header, body,
	                                  strlen(body), ST_T + 100, 300, NULL));
	/* Any of several v1 signatures (secret rotation) may match. */
	snprintf(header, sizeof(header), "t=%d,v1=%s,v1=%s", ST_T, ST_WRONG,
	         ST_V1);
	ASSERT_OK(evfn__sig_stripe_verify(ST_SECRET, header, body,
	                                  strlen(body), ST_T, 300, NULL));
}

static void
test_signature_stripe_rejects_bad(void **state)
{
	(void)state;
	const char *body = ST_BODY, *why = NULL;
	size_t len = strlen(body);
	char header[256];

	snprintf(header, sizeof(header), "t=%d,v1=%s", ST_T, ST_WRONG);
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, header, body, len, ST_T,
	                                  300, &why),
	          EVFN_ESIGNATURE);
	assert_string_equal(why, "Stripe-Signature does not match");

	/* The timestamp is signed: changing it breaks the signature. */
	snprintf(header, sizeof(header), "t=%d,v1=%s", ST_T + 1, ST_V1);
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, header, body, len,
	                                  ST_T + 1, 300, NULL),
	          EVFN_ESIGNATURE);

	/* Tampered body. */
	snprintf(header, sizeof(header), "t=%d,v1=%s", ST_T, ST_V1);
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, header, "{}", 2, ST_T,
	                                  300, NULL),
	          EVFN_ESIGNATURE);

	/* Only a v0 (test-mode) signature. */
	snprintf(header, sizeof(header), "t=%d,v0=%s", ST_T, ST_V1);
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, header, body, len, ST_T,
	                                  300, &why),
	          EVFN_ESIGNATURE);
	assert_string_equal(why, "Stripe-Signature has no v1 signature");

	/* No timestamp, a malformed one, no header. */
	snprintf(header, sizeof(header), "v1=%s", ST_V1);
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, header, body, len, ST_T,
	                                  300, &why),
	          EVFN_ESIGNATURE);
	assert_string_equal(why, "Stripe-Signature has no valid timestamp");
	snprintf(header, sizeof(header), "t=17x,v1=%s", ST_V1);
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, header, body, len, ST_T,
	                                  300, NULL),
	          EVFN_ESIGNATURE);
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, NULL, body, len, ST_T,
	                                  300, &why),
	          EVFN_ESIGNATURE);
	assert_string_equal(why, "missing Stripe-Signature");
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, ",,=,", body, len, ST_T,
	                                  300, NULL),
	          EVFN_ESIGNATURE);
}

static void
test_signature_stripe_stale(void **state)
{
	(void)state;
	const char *body = ST_BODY, *why = NULL;
	size_t len = strlen(body);
	char header[256];
	snprintf(header, sizeof(header), "t=%d,v1=%s", ST_T, ST_V1);
	/* At the edge of the tolerance it passes, one second later not. */
	ASSERT_OK(evfn__sig_stripe_verify(ST_SECRET, header, body, len,
	                                  ST_T + 300, 300, NULL));
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, header, body, len,
	                                  ST_T + 301, 300, &why),
	          EVFN_ESIGNATURE);
	assert_string_equal(why,
	                    "Stripe-Signature timestamp outside tolerance");
	/* A timestamp from the future is no better. */
	ASSERT_RC(evfn__sig_stripe_verify(ST_SECRET, header, body, len,
	                                  ST_T - 301, 300, NULL),
	          EVFN_ESIGNATURE);
}

static void
test_signature_bearer(void **state)
{
	(void)state;
	const char *why = NULL;
	ASSERT_OK(evfn__sig_bearer_verify("s3cret", "Bearer s3cret", &why));
	ASSERT_OK(evfn__sig_bearer_verify("s3cret", "bearer s3cret", &why));
	ASSERT_RC(evfn__sig_bearer_verify("s3cret", "Bearer s3cre", &why),
	          EVFN_EAUTH);
	assert_string_equal(why, "bearer token does not match");
	ASSERT_RC(evfn__sig_bearer_verify("s3cret", "Bearer s3cret2", NULL),
	          EVFN_EAUTH);
	ASSERT_RC(evfn__sig_bearer_verify("s3cret", "Basic czNjcmV0", &why),
	          EVFN_EAUTH);
	assert_string_equal(why, "Authorization is not a bearer token");
	ASSERT_RC(evfn__sig_bearer_verify("s3cret", NULL, &why), EVFN_EAUTH);
	assert_string_equal(why, "missing Authorization");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_signature_hmac_matches_openssl),
		TEST(test_signature_github_valid),
		TEST(test_signature_github_rejects_bad),
		TEST(test_signature_stripe_valid),
		TEST(test_signature_stripe_rejects_bad),
		TEST(test_signature_stripe_stale),
		TEST(test_signature_bearer),
	};
	return evfn_test_main("signature", tests);
}
