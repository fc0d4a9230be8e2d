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
#include "runtime-internal.h"

struct evfn__idem {
	UT_hash_handle hh;
	int64_t expires_ns;
	void *resp;
	size_t resp_len;
	char key[];
};

/* The key of inv's event: the handler-derived one, or the event id. */
static const char *
key_of(struct evfn_fn *fn, const struct evfn__inv *inv, char *buf,
       size_t size)
{
	if (fn->cfg.idem_key &&
	    fn->cfg.idem_key(inv->ev, buf, size, fn->userdata) == 0) {
		buf[size - 1] = '\0';
		return buf;
	}
	return evfn_event_id(inv->ev);
}

static void
drop(struct evfn_fn *fn, struct evfn__idem *e)
{
	HASH_DEL(fn->idem, e);
	evfn__free(e->resp);
	evfn__free(e);
}

bool
evfn__idem_hit_locked(struct evfn_fn *fn, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	char buf[EVFN_NAME_MAX + 1];
	const char *key = key_of(fn, inv, buf, sizeof(buf));
	struct evfn__idem *e;
	HASH_FIND_STR(fn->idem, key, e);
	if (!e)
		return false;
	if (e->expires_ns <= evfn__now_ns()) {
		drop(fn, e);
		return false;
	}
	void *copy = e->resp_len ? evfn__malloc(e->resp_len) : NULL;
	if (e->resp_len && !copy)
		return false; /* cannot answer from the store: run it */
	if (copy)
		memcpy(copy, e->resp, e->resp_len);
	inv->ctx.resp = copy;
	inv->ctx.resp_len = e->resp_len;
	return true;
}

void
evfn__idem_store_locked(struct evfn_fn *fn, struct evfn__inv *inv)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	char buf[EVFN_NAME_MAX + 1];
	const char *key = key_of(fn, inv, buf, sizeof(buf));
	struct evfn__idem *e;
	HASH_FIND_STR(fn->idem, key, e);
	if (e)
		drop(fn, e);
	size_t klen = strlen(key);
	e = evfn__calloc(1, sizeof(*e) + klen + 1);
	if (!e)
		return; /* a duplicate would run again: not wrong, only slower */
	memcpy(e->key, key, klen + 1);
	e->expires_ns = evfn__now_ns() + fn->cfg.idem_window_ns;
	if (inv->ctx.resp_len && (e->resp = evfn__malloc(inv->ctx.resp_len))) {
		memcpy(e->resp, inv->ctx.resp, inv->ctx.resp_len);
		e->resp_len = inv->ctx.resp_len;
	}
	bool evfn__hash_oom = false;
	HASH_ADD(hh, fn->idem, key[0], klen, e);
	if (evfn__hash_oom) {
		evfn__free(e->resp);
		evfn__free(e);
	}
}

void
evfn__idem_sweep_locked(struct evfn_fn *fn, int64_t now)
{
	EVFN__ASSERT_LOCKED(fn->rt);
	struct evfn__idem *e, *tmp;
	HASH_ITER(hh, fn->idem, e, tmp)
	{
		if (e->expires_ns <= now)
			drop(fn, e);
	}
}

void
evfn__idem_free(struct evfn_fn *fn)
{
	struct evfn__idem *e, *tmp;
	HASH_ITER(hh, fn->idem, e, tmp)
	{
		drop(fn, e);
	}
}
