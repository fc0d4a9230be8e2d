/* SPDX-License-Identifier: MIT */
/*
 * Idempotency: per function, the keys of events that succeeded within a
 * window, with the response they gave. A duplicate delivery finds its key
 * and succeeds at once with the stored response; the handler does not run
 * again. Entries expire lazily on lookup and in the watchdog's sweep,
 * which runs while attempts do: an idle runtime keeps its expired entries
 * until its next attempts (or its free) rather than wake to drop them.
 */
#include <string.h>

#include "common-internal.h"
#include "hash-internal.h"
#include "idempotency-internal.h"

struct evfn__idem {
	UT_hash_handle hh;
	int64_t expires_ns;
	void *resp;
	size_t resp_len;
	char key[];
};

static void
drop(struct evfn__idem_store *s, struct evfn__idem *e)
{
	HASH_DEL(s->keys, e);
	evfn__free(e->resp);
	evfn__free(e);
}

bool
evfn__idem_lookup(struct evfn__idem_store *s, const char *key, int64_t now,
                  void **resp, size_t *len)
{
	struct evfn__idem *e;
	HASH_FIND_STR(s->keys, key, e);
	if (!e)
		return false;
	if (e->expires_ns <= now) {
		drop(s, e);
		return false;
	}
	void *copy = e->resp_len ? evfn__malloc(e->resp_len) : NULL;
	if (e->resp_len && !copy)
		return false; /* cannot answer from the store: run it */
	if (copy)
		memcpy(copy, e->resp, e->resp_len);
	*resp = copy;
	*len = e->resp_len;
	return true;
}

void
evfn__idem_remember(struct evfn__idem_store *s, const char *key,
                    int64_t expires_ns, const void *resp, size_t len)
{
	struct evfn__idem *e;
	HASH_FIND_STR(s->keys, key, e);
	if (e)
		drop(s, e);
	size_t klen = strlen(key);
	e = evfn__calloc(1, sizeof(*e) + klen + 1);
	if (!e)
		return; /* a duplicate would run again: not wrong, only slower */
	memcpy(e->key, key, klen + 1);
	e->expires_ns = expires_ns;
	if (len && (e->resp = evfn__malloc(len))) {
		memcpy(e->resp, resp, len);
		e->resp_len = len;
	}
	bool evfn__hash_oom = false;
	HASH_ADD(hh, s->keys, key[0], klen, e);
	if (evfn__hash_oom) {
		evfn__free(e->resp);
		evfn__free(e);
	}
}

void
evfn__idem_sweep(struct evfn__idem_store *s, int64_t now)
{
	struct evfn__idem *e, *tmp;
	HASH_ITER(hh, s->keys, e, tmp)
	{
		if (e->expires_ns <= now)
			drop(s, e);
	}
}

void
evfn__idem_free(struct evfn__idem_store *s)
{
	struct evfn__idem *e, *tmp;
	HASH_ITER(hh, s->keys, e, tmp)
	{
		drop(s, e);
	}
}
