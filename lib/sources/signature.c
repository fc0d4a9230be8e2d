/* SPDX-License-Identifier: MIT */
/*
 * Webhook authentication: Stripe and GitHub HMAC-SHA256 signatures and
 * bearer tokens. HMAC and SHA-256 come from OpenSSL's libcrypto (EVP_MAC,
 * EVP_Digest) and every secret comparison is CRYPTO_memcmp over equal
 * lengths, so a forger learns nothing from response times. Header parsing
 * is strict: a malformed header is a bad signature, never a crash.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common-internal.h"
#include "text-internal.h"
#include "signature-internal.h"

int
evfn__hmac_sha256(const void *key, size_t key_len, const void *const *data,
                  const size_t *len, size_t n,
                  unsigned char out[EVFN__SHA256_LEN])
{
	int rc = EVFN_ENOMEM;
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	if (!ctx)
		goto out;
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest,
		                                 0),
		OSSL_PARAM_construct_end()};
	/* An empty key is legal HMAC; OpenSSL wants a non-NULL pointer. */
	static const unsigned char empty;
	if (!EVP_MAC_init(ctx, key_len ? key : &empty, key_len, params))
		goto out;
	for (size_t i = 0; i < n; i++)
		if (len[i] && !EVP_MAC_update(ctx, data[i], len[i]))
			goto out;
	size_t outl = 0;
	if (EVP_MAC_final(ctx, out, &outl, EVFN__SHA256_LEN) &&
	    outl == EVFN__SHA256_LEN)
		rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rc;
}

/* Decodes exactly 64 hex digits at s (len bytes) into out. Returns true
 * when s is a well-formed SHA-256 digest in hex. */
static bool
hex_digest(const char *s, size_t len, unsigned char out[EVFN__SHA256_LEN])
{
	if (len != 2 * EVFN__SHA256_LEN)
		return false;
	for (size_t i = 0; i < EVFN__SHA256_LEN; i++) {
		int hi = evfn__hex_value(s[2 * i]), lo = evfn__hex_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static int
fail(const char **why, int code, const char *reason)
{
	if (why)
		*why = reason;
	return code;
}

/* Parses a decimal Unix timestamp of at most 18 digits (no sign). */
static bool
parse_timestamp(const char *s, size_t len, int64_t *out)
{
	if (len == 0 || len > 18)
		return false;
	int64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

int
evfn__sig_stripe_verify(const char *secret, const char *header,
                        const void *body, size_t len, int64_t now_s,
                        int64_t tolerance_s, const char **why)
{
	if (!header || !*header)
		return fail(why, EVFN_ESIGNATURE, "missing Stripe-Signature");

	/* First pass: the timestamp, which the signed payload needs. The
	 * header is a comma-separated list of key=value items. */
	const char *t = NULL;
	size_t t_len = 0;
	bool any_v1 = false;
	for (const char *p = header; *p;) {
		const char *end = strchr(p, ',');
		size_t item = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', item);
		if (eq) {
			size_t klen = (size_t)(eq - p);
			if (klen == 1 && p[0] == 't' && !t) {
				t = eq + 1;
				t_len = item - klen - 1;
			} else if (klen == 2 && p[0] == 'v' && p[1] == '1') {
				any_v1 = true;
			}
		}
		p += item + (end ? 1 : 0);
	}
	int64_t ts;
	if (!t || !parse_timestamp(t, t_len, &ts))
		return fail(why, EVFN_ESIGNATURE,
		            "Stripe-Signature has no valid timestamp");
	if (!any_v1)
		return fail(why, EVFN_ESIGNATURE,
		            "Stripe-Signature has no v1 signature");

	unsigned char want[EVFN__SHA256_LEN];
	const void *parts[] = {t, ".", body};
	size_t lens[] = {t_len, 1, len};
	if (evfn__hmac_sha256(secret, strlen(secret), parts, lens, 3, want))
		return EVFN_ENOMEM;

	/* Second pass: every v1 candidate is compared, so the time taken
	 * does not depend on which one matches. */
	bool match = false;
	for (const char *p = header; *p;) {
		const char *end = strchr(p, ',');
		size_t item = end ? (size_t)(end - p) : strlen(p);
		unsigned char got[EVFN__SHA256_LEN];
		if (item > 3 && memcmp(p, "v1=", 3) == 0 &&
		    hex_digest(p + 3, item - 3, got) &&
		    CRYPTO_memcmp(got, want, sizeof(want)) == 0)
			match = true;
		p += item + (end ? 1 : 0);
	}
	if (!match)
		return fail(why, EVFN_ESIGNATURE,
		            "Stripe-Signature does not match");
	/* Checked after the signature so that a forged header cannot probe
	 * the clock; a valid but stale signature is a replay. */
	int64_t skew = now_s > ts ? now_s - ts : ts - now_s;
	if (skew > tolerance_s)
		return fail(why, EVFN_ESIGNATURE,
		            "Stripe-Signature timestamp outside tolerance");
	return 0;
}

int
evfn__sig_github_verify(const char *secret, const char *header,
                        const void *body, size_t len, const char **why)
{
	if (!header || !*header)
		return fail(why, EVFN_ESIGNATURE,
		            "missing X-Hub-Signature-256");
	unsigned char got[EVFN__SHA256_LEN], want[EVFN__SHA256_LEN];
	if (strncmp(header, "sha256=", 7) != 0 ||
	    !hex_digest(header + 7, strlen(header + 7), got))
		return fail(why, EVFN_ESIGNATURE,
		            "malformed X-Hub-Signature-256");
	const void *parts[] = {body};
	size_t lens[] = {len};
	if (evfn__hmac_sha256(secret, strlen(secret), parts, lens, 1, want))
		return EVFN_ENOMEM;
	if (CRYPTO_memcmp(got, want, sizeof(want)) != 0)
		return fail(why, EVFN_ESIGNATURE,
		            "X-Hub-Signature-256 does not match");
	return 0;
}

static int
sha256(const void *data, size_t len, unsigned char out[EVFN__SHA256_LEN])
{
	unsigned int outl = 0;
	if (!EVP_Digest(data, len, out, &outl, EVP_sha256(), NULL) ||
	    outl != EVFN__SHA256_LEN)
		return EVFN_ENOMEM;
	return 0;
}

int
evfn__sig_bearer_verify(const char *token, const char *header,
                        const char **why)
{
	if (!header || !*header)
		return fail(why, EVFN_EAUTH, "missing Authorization");
	if (strncasecmp(header, "Bearer ", 7) != 0)
		return fail(why, EVFN_EAUTH,
		            "Authorization is not a bearer token");
	const char *got = header + 7;
	while (*got == ' ')
		got++;
	unsigned char a[EVFN__SHA256_LEN], b[EVFN__SHA256_LEN];
	if (sha256(got, strlen(got), a) || sha256(token, strlen(token), b))
		return EVFN_ENOMEM;
	if (CRYPTO_memcmp(a, b, sizeof(a)) != 0)
		return fail(why, EVFN_EAUTH, "bearer token does not match");
	return 0;
}
