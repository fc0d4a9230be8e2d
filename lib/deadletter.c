/* SPDX-License-Identifier: MIT */
/*
 * The dead letters of a runtime, as its API offers them: list, count,
 * replay (re-admitted as a new event with the same id and payload),
 * delete and purge. The store itself is deadstore.c.
 */
#include <evfn/deadletter.h>
#include <evfn/emit.h>

#include "common-internal.h"
#include "dispatch-internal.h"
#include "publish-internal.h"

int
evfn_dead_letters(evfn_rt *rt, evfn_dead_letter **out, size_t max,
                  size_t offset)
{
	if (!rt || (!out && max > 0))
		return EVFN_EINVAL;
	return evfn__dead_store_list(&rt->dead, out, max, offset);
}

size_t
evfn_dead_letter_count(evfn_rt *rt)
{
	return rt ? evfn__dead_store_count(&rt->dead) : 0;
}

uint64_t
evfn_dead_letter_evicted(evfn_rt *rt)
{
	return rt ? evfn__dead_store_evicted(&rt->dead) : 0;
}

/* Re-admits a dead letter's event as a new event with the same id and
 * payload. */
static int
replay(struct evfn_rt *rt, const evfn_dead_letter *dl)
{
	evfn_event *ev;
	int rc = evfn__event_clone(&ev, dl->ev, dl->ev->hops);
	if (rc < 0)
		return rc;
	rc = evfn__publish(rt, ev, dl->fn_name, NULL, NULL);
	evfn_event_unref(ev);
	return rc;
}

/* Tells the journal, if any, that dead letter id (0: every one) is
 * gone: before the store forgets it, so that a race with a new letter
 * can only leave the journal with one more letter than the store (it
 * comes back after a restart), never one fewer. */
static void
journal_letters_gone(struct evfn_rt *rt, uint64_t id)
{
	if (!rt->journal)
		return;
	int rc = id ? evfn__journal_dead_letter_delete(rt->journal, id)
	            : evfn__journal_dead_letter_purge(rt->journal);
	if (rc < 0)
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "journal: removing dead letter %llu not recorded "
		           "(%s): it comes back after a restart",
		           (unsigned long long)id, evfn_err_name(rc));
}

static int
remove_letter(struct evfn_rt *rt, uint64_t id)
{
	journal_letters_gone(rt, id);
	return evfn__dead_store_delete(&rt->dead, id);
}

int
evfn_dead_letter_replay(evfn_rt *rt, uint64_t id)
{
	if (!rt)
		return EVFN_EINVAL;
	evfn_dead_letter *dl = evfn__dead_store_find(&rt->dead, id);
	if (!dl)
		return EVFN_ENOENT;
	int rc = replay(rt, dl);
	evfn_dead_letter_unref(dl);
	if (rc == 0)
		(void)remove_letter(rt, id);
	return rc;
}

int
evfn_dead_letter_replay_all(evfn_rt *rt)
{
	if (!rt)
		return EVFN_EINVAL;
	int n = 0;
	for (;;) {
		uint64_t id = evfn__dead_store_first_id(&rt->dead);
		if (!id)
			return n;
		int rc = evfn_dead_letter_replay(rt, id);
		if (rc == EVFN_ENOENT)
			continue; /* deleted meanwhile */
		if (rc < 0)
			return n > 0 ? n : rc;
		n++;
	}
}

int
evfn_dead_letter_delete(evfn_rt *rt, uint64_t id)
{
	if (!rt)
		return EVFN_EINVAL;
	return remove_letter(rt, id);
}

int
evfn_dead_letter_purge(evfn_rt *rt)
{
	if (!rt)
		return EVFN_EINVAL;
	journal_letters_gone(rt, 0);
	return evfn__dead_store_purge(&rt->dead);
}
