/* SPDX-License-Identifier: MIT */
/*
 * Webhook authentication for the HTTP trigger: Stripe's Stripe-Signature
 * header, GitHub's X-Hub-Signature-256 header and a static bearer token.
 * Each check takes the header value as received and the raw body, knows
 * nothing about HTTP, and compares secrets in constant time. Failures come
 * back as a code and a static English reason for the 401 body.
 */
#ifndef EVFN_SIGNATURE_INTERNAL_H
#define EVFN_SIGNATURE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Length of an HMAC-SHA256 digest in bytes. */
#define EVFN__SHA256_LEN 32

/* Computes HMAC-SHA256 with key over the concatenation of n parts (data
 * and length pairs) into out. Returns 0 or EVFN_ENOMEM when OpenSSL
 * fails. */
int evfn__hmac_sha256(const void *key, size_t key_len, const void *const *data,
                      const size_t *len, size_t n,
                      unsigned char out[EVFN__SHA256_LEN]);

/* Verifies a Stripe-Signature header ("t=<unix s>,v1=<hex>[,v1=...]",
 * other schemes ignored) against HMAC-SHA256(secret, "<t>.<body>"). Any
 * v1 entry may match. The timestamp must lie within tolerance_s of now_s
 * either way. header may be NULL (missing). Returns 0 or
 * EVFN_ESIGNATURE with *why set to a static reason (why may be NULL). */
int evfn__sig_stripe_verify(const char *secret, const char *header,
                            const void *body, size_t len, int64_t now_s,
                            int64_t tolerance_s, const char **why);

/* Verifies an X-Hub-Signature-256 header ("sha256=<hex>") against
 * HMAC-SHA256(secret, body). header may be NULL. Returns 0 or
 * EVFN_ESIGNATURE with *why as above. */
int evfn__sig_github_verify(const char *secret, const char *header,
                            const void *body, size_t len, const char **why);

/* Verifies an Authorization header ("Bearer <token>", the scheme
 * case-insensitive) against token. The comparison runs over SHA-256
 * digests so that neither the content nor the length of the token leaks
 * through timing. header may be NULL. Returns 0, EVFN_EAUTH with *why,
 * or EVFN_ENOMEM. */
int evfn__sig_bearer_verify(const char *token, const char *header,
                            const char **why);

#endif /* EVFN_SIGNATURE_INTERNAL_H */
