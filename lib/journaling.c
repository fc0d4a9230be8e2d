/* SPDX-License-Identifier: MIT */
/*
 * The runtime's journal at start: opening it, giving each function its
 * id, and reading back what it holds (the dead-letter store, the
 * idempotency keys, and the invocations that did not end, re-admitted in
 * publish order) before anything runs; and the count of orphans, the
 * invocations of functions not registered. What is journaled as events
 * move is admit.c's and dispatch.c's; the journal itself is journal.c.
 */
#include <stdio.h>

#include <evfn/runtime.h>

#include "common-internal.h"
#include "dispatch-internal.h"
#include "journaling-internal.h"
#include "registry-internal.h"

void (*evfn__journaling_tune)(struct evfn__journal_options *o);

/* The journal's diagnostics go to the runtime's log. */
static void
journal_log(int code, const char *message, void *arg)
{
	struct evfn_rt *rt = arg;
	evfn__logf(&rt->log, EVFN_LOG_ERROR, "%s (%s)", message,
	           evfn_err_name(code));
}

/* The state of a recovery in progress. */
struct recovery {
	struct evfn_rt *rt;
	int64_t now;              /* monotonic */
	int64_t wall_offset;      /* wall - monotonic, now */
	struct evfn__inv_list invs; /* re-admitted once all were read */
	uint64_t orphans;
	char orphan_name[EVFN_NAME_MAX + 1]; /* the first one's function */
};

static int64_t
to_mono(const struct recovery *r, int64_t wall_ns)
{
	return wall_ns ? wall_ns - r->wall_offset : 0;
}

/* A journaled event, unpublished, gets the sequence number (and so the
 * default id) and source it had; its maximum age counts from now. */
static void
refreeze(struct recovery *r, evfn_event *ev, uint64_t seq)
{
	if (!ev->frozen)
		(void)evfn__event_freeze(ev, seq, r->rt->source, r->now);
}

static int
read_invocation(const struct evfn__journal_record *rec, void *arg)
{
	struct recovery *r = arg;
	struct evfn_rt *rt = r->rt;
	struct evfn_fn *fn =
		rec->fn_name ? evfn__fn_find_locked(rt, rec->fn_name) : NULL;
	if (!fn) {
		/* It stays in the journal, untouched, for a later start. */
		if (r->orphans++ == 0)
			snprintf(r->orphan_name, sizeof(r->orphan_name), "%s",
			         rec->fn_name ? rec->fn_name : "?");
		return 0;
	}
	bool fresh = !rec->ev->frozen;
	refreeze(r, rec->ev, rec->seq);
	const struct evfn__journal_state *st = &rec->st;
	/* A delayed event, never started, waits for its due time. */
	if (fresh && st->attempts == 0 && to_mono(r, st->due_ns) > r->now)
		rec->ev->born_ns = to_mono(r, st->due_ns);
	struct evfn__inv *inv = evfn__inv_get(&rt->inv_pool);
	if (!inv)
		return EVFN_ENOMEM;
	inv->ev = evfn_event_ref(rec->ev);
	inv->fn = fn;
	inv->attempt = st->attempts;
	inv->prev_delay_ns = st->backoff_ns;
	inv->first_ns = st->first_attempt_ns;
	inv->last_ns = st->last_attempt_ns;
	inv->due_ns = to_mono(r, st->due_ns);
	inv->last_timed_out = st->last_code == EVFN_ETIMEDOUT;
	inv->crashed = rec->crashed;
	if (st->last_error && !rec->crashed)
		inv->ctx.error = evfn__strdup(st->last_error);
	evfn__inv_list_push(&r->invs, inv);
	return 0;
}

static int
read_dead_letter(const struct evfn__journal_dead_letter *jdl, void *arg)
{
	struct recovery *r = arg;
	struct evfn_rt *rt = r->rt;
	refreeze(r, jdl->ev, jdl->seq);
	evfn_dead_letter *dl = evfn__dead_letter_new(
		jdl->fn_name ? jdl->fn_name : "", jdl->ev, jdl->code,
		jdl->attempts, jdl->error, jdl->first_attempt_ns,
		jdl->last_attempt_ns);
	if (!dl)
		return EVFN_ENOMEM;
	evfn_dead_letter *evicted =
		evfn__dead_store_restore(&rt->dead, dl, jdl->id);
	if (evicted) {
		/* The store is smaller than it was: the oldest go. Its
		 * payload is a copy of the journal's: no host callback. */
		(void)evfn__journal_dead_letter_delete(rt->journal,
		                                       evicted->id);
		evfn_dead_letter_unref(evicted);
	}
	return 0;
}

static int
read_key(const struct evfn__journal_idempotency *k, void *arg)
{
	struct recovery *r = arg;
	struct evfn_fn *fn =
		k->fn_name ? evfn__fn_find_locked(r->rt, k->fn_name) : NULL;
	if (fn && fn->cfg.idem_window_ns)
		evfn__idem_remember(&fn->idem, k->key, to_mono(r, k->expires_ns),
		                    k->resp, k->resp_len);
	return 0;
}

/* Drops what a failed recovery read. */
static void
drop_all(struct evfn_rt *rt, struct evfn__inv_list *invs)
{
	struct evfn__inv *inv;
	while ((inv = evfn__inv_list_pop(invs))) {
		evfn__inv_clear(inv);
		evfn__inv_put(&rt->inv_pool, inv);
	}
	(void)evfn__dead_store_purge(&rt->dead);
}

/* Reads everything back; rt->journal open, its writer not started. */
static int
recover_locked(struct evfn_rt *rt, struct recovery *r)
{
	struct evfn__journal *j = rt->journal;
	int rc = 0;
	for (struct evfn_fn *fn = rt->fns.head; rc == 0 && fn;
	     fn = fn->all_next)
		rc = evfn__journal_fn_id(j, fn->name, &fn->jid);
	if (rc == 0)
		rc = evfn__journal_recover_dead_letters(j, read_dead_letter, r);
	if (rc >= 0)
		rc = evfn__journal_recover_idempotency(
			j, evfn__mono_to_wall(r->now), read_key, r);
	if (rc >= 0)
		rc = evfn__journal_recover(j, read_invocation, r);
	return rc < 0 ? rc : 0;
}

int
evfn__journaling_open_locked(struct evfn_rt *rt, struct evfn__ended *ended)
{
	EVFN__ASSERT_LOCKED(rt);
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.mode = rt->opts.journal_mode == EVFN_JOURNAL_FAST
	                 ? EVFN__JOURNAL_FAST
	                 : EVFN__JOURNAL_DURABLE;
	o.log_cb = journal_log;
	o.log_arg = rt;
	if (evfn__journaling_tune)
		evfn__journaling_tune(&o);
	struct evfn__journal *j;
	int rc = evfn__journal_open(&j, rt->opts.journal_path, &o);
	if (rc < 0) {
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "journal %s cannot be opened: %s",
		           rt->opts.journal_path, evfn_strerror(rc));
		return rc;
	}
	rt->journal = j;
	struct recovery r = {.rt = rt, .now = evfn__now_ns()};
	r.wall_offset = evfn__mono_to_wall(r.now) - r.now;
	rc = recover_locked(rt, &r);
	if (rc == 0)
		rc = evfn__journal_start(j);
	if (rc < 0) {
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		           "journal %s cannot be read back: %s",
		           rt->opts.journal_path, evfn_strerror(rc));
		drop_all(rt, &r.invs);
		rt->journal = NULL;
		(void)evfn__journal_close(j);
		for (struct evfn_fn *fn = rt->fns.head; fn; fn = fn->all_next)
			fn->jid = 0;
		return rc;
	}
	evfn__dead_store_skip_ids(&rt->dead,
	                          evfn__journal_last_dead_letter_id(j));
	atomic_store(&rt->next_seq,
	             EVFN__MAX(atomic_load(&rt->next_seq),
	                       evfn__journal_last_seq(j)));
	size_t n = 0;
	struct evfn__inv *inv;
	while ((inv = evfn__inv_list_pop(&r.invs))) {
		inv->next = NULL;
		evfn__recover_locked(rt, inv, ended);
		n++;
	}
	rt->journal_orphans = r.orphans;
	rt->recovered = true;
	if (n)
		evfn__logf(&rt->log, EVFN_LOG_INFO,
		           "journal: %zu invocations re-admitted", n);
	if (r.orphans)
		evfn__logf(&rt->log, EVFN_LOG_WARN,
		           "journal: %llu invocations of functions not "
		           "registered (%s, ...) stay in the journal",
		           (unsigned long long)r.orphans, r.orphan_name);
	return 0;
}

uint64_t
evfn_rt_journal_orphans(const evfn_rt *rt)
{
	if (!rt)
		return 0;
	struct evfn_rt *m = (struct evfn_rt *)rt;
	evfn__lock_acquire(&m->lock);
	uint64_t n = m->journal_orphans;
	evfn__lock_release(&m->lock);
	return n;
}
