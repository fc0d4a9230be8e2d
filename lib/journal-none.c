/* SPDX-License-Identifier: MIT */
/*
 * The journal when evfn is built without SQLite: no runtime ever has
 * one (evfn_rt_options_set_journal() refuses a path), so these stand-ins
 * for journal.c and journaling.c are never reached; they only let the
 * runtime's hooks link.
 */
#include <evfn/runtime.h>

#include "common-internal.h"
#include "journaling-internal.h"

void (*evfn__journaling_tune)(struct evfn__journal_options *o);

int
evfn__journaling_open_locked(struct evfn_rt *rt, struct evfn__ended *ended)
{
	(void)rt;
	(void)ended;
	return EVFN_EINVAL;
}

uint64_t
evfn_rt_journal_orphans(const evfn_rt *rt)
{
	(void)rt;
	return 0;
}

int
evfn__journal_fn_id(struct evfn__journal *j, const char *name, uint32_t *id)
{
	(void)j, (void)name, (void)id;
	return EVFN_EINVAL;
}

int
evfn__journal_append(struct evfn__journal *j, uint64_t seq,
                     const evfn_event *ev, const uint32_t *fns, size_t n,
                     const struct evfn__journal_state *st)
{
	(void)j, (void)seq, (void)ev, (void)fns, (void)n, (void)st;
	return EVFN_EINVAL;
}

int
evfn__journal_update(struct evfn__journal *j, uint64_t seq, uint32_t fn,
                     const struct evfn__journal_state *st)
{
	(void)j, (void)seq, (void)fn, (void)st;
	return EVFN_EINVAL;
}

int
evfn__journal_end(struct evfn__journal *j, uint64_t seq, uint32_t fn,
                  enum evfn__journal_end how)
{
	(void)j, (void)seq, (void)fn, (void)how;
	return EVFN_EINVAL;
}

int
evfn__journal_dead_letter(struct evfn__journal *j, uint64_t seq, uint32_t fn,
                          const struct evfn__journal_dead_letter *dl)
{
	(void)j, (void)seq, (void)fn, (void)dl;
	return EVFN_EINVAL;
}

int
evfn__journal_dead_letter_delete(struct evfn__journal *j, uint64_t id)
{
	(void)j, (void)id;
	return EVFN_EINVAL;
}

int
evfn__journal_dead_letter_purge(struct evfn__journal *j)
{
	(void)j;
	return EVFN_EINVAL;
}

int
evfn__journal_idempotency_put(struct evfn__journal *j, uint32_t fn,
                              const char *key, const void *resp,
                              size_t resp_len, int64_t expires_ns)
{
	(void)j, (void)fn, (void)key, (void)resp, (void)resp_len,
		(void)expires_ns;
	return EVFN_EINVAL;
}

int
evfn__journal_sync(struct evfn__journal *j)
{
	(void)j;
	return EVFN_EINVAL;
}

int
evfn__journal_close(struct evfn__journal *j)
{
	(void)j;
	return 0;
}
