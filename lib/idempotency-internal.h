/* SPDX-License-Identifier: MIT */
/*
 * A function's idempotency store (idempotency.c): the keys of events that
 * succeeded within a window, with the response each gave. A leaf: it
 * answers lookups and remembers successes; the state machine derives the
 * keys and decides what a hit means. Guarded by the lock of the function
 * that owns it.
 */
#ifndef EVFN_IDEMPOTENCY_INTERNAL_H
#define EVFN_IDEMPOTENCY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evfn__idem;

/* Zeroed: empty. */
struct evfn__idem_store {
	struct evfn__idem *keys; /* uthash */
};

/* If key succeeded and its window has not passed at now, copies the
 * stored response into *resp (NULL when it had none) and *len and
 * returns true. False too when the copy cannot be made: run it then. An
 * expired entry found on the way is dropped. */
bool evfn__idem_lookup(struct evfn__idem_store *s, const char *key,
                       int64_t now, void **resp, size_t *len);
/* Remembers that key succeeded with resp (copied) until expires_ns,
 * replacing what it held for key. Short of memory it forgets: a
 * duplicate then runs again, which is not wrong, only slower. */
void evfn__idem_remember(struct evfn__idem_store *s, const char *key,
                         int64_t expires_ns, const void *resp, size_t len);
/* Drops the entries whose window passed at now. */
void evfn__idem_sweep(struct evfn__idem_store *s, int64_t now);
void evfn__idem_free(struct evfn__idem_store *s);

#endif /* EVFN_IDEMPOTENCY_INTERNAL_H */
