/* SPDX-License-Identifier: MIT */
/*
 * What follows the end of an invocation, outside the runtime lock: its
 * event-log record, its dead letter, its on_success / on_failure
 * destination (admitted like any event), then its waiter, woken last so
 * that it finds all of that done; and letting go of what the invocation
 * held, so that it can be reused.
 */
#include <stdio.h>
#include <string.h>

#include <evfn/emit.h>

#include "admit-internal.h"
#include "common-internal.h"
#include "dispatch-internal.h"
#include "settle-internal.h"

static void
log_dead_letter_lost(struct evfn_rt *rt, const struct evfn__inv *inv,
                     const evfn_event *ev)
{
	evfn__logf(&rt->log, EVFN_LOG_ERROR,
	           "%s: out of memory storing dead letter %s", inv->fn->name,
	           evfn_event_id(ev));
}

/* Puts a dead letter of inv (ev, code) in the store: one whose
 * destination refused it. (Those that failed or expired were stored when
 * they ended, under the runtime lock: dispatch.c.) */
static void
store_dead_letter(struct evfn_rt *rt, const struct evfn__inv *inv,
                  const char *target, evfn_event *ev, int code)
{
	if (!evfn__dead_store_keeps(&rt->dead))
		return;
	evfn_dead_letter *dl = evfn__dead_letter_new(
		target, ev, code, inv->attempt, inv->ctx.error,
		inv->first_ns, inv->last_ns);
	if (!dl) {
		log_dead_letter_lost(rt, inv, ev);
		return;
	}
	evfn_dead_letter_unref(evfn__dead_store_add(&rt->dead, dl));
}

static int
set_ext_i64(evfn_event *ev, const char *name, int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return evfn_event_set_extension(ev, name, buf);
}

/* The event a destination receives; NULL when out of memory. */
static evfn_event *
destination_event(const struct evfn__inv *inv, bool success)
{
	evfn_event *ev;
	const evfn_event *orig = inv->ev;
	int rc;
	if (success) {
		rc = evfn__event_create(&ev, evfn__event_type(orig),
		                        inv->ctx.resp, inv->ctx.resp_len, true,
		                        NULL, NULL, orig->hops + 1);
		if (rc == 0) {
			rc = evfn_event_set_extension(ev, "evfnparent",
			                              evfn_event_id(orig));
			const char *ct = evfn__kv_get(inv->ctx.meta,
			                              "content-type");
			if (rc == 0 && ct)
				rc = evfn_event_set_datacontenttype(ev, ct);
		}
	} else {
		rc = evfn__event_clone(&ev, orig, orig->hops + 1);
		const char *reason = evfn_dead_letter_reason_name(
			inv->final_code);
		if (rc == 0)
			rc = evfn_event_set_extension(ev, "evfnreason", reason);
		if (rc == 0)
			rc = set_ext_i64(ev, "evfnattempts", inv->attempt);
		if (rc == 0 && inv->ctx.error)
			rc = evfn_event_set_extension(ev, "evfnerror",
			                              inv->ctx.error);
		if (rc == 0)
			rc = set_ext_i64(ev, "evfnfirstattempt", inv->first_ns);
		if (rc == 0)
			rc = set_ext_i64(ev, "evfnlastattempt", inv->last_ns);
	}
	if (rc == 0)
		rc = evfn_event_set_extension(ev, "evfnfunction",
		                              inv->fn->name);
	if (rc < 0 && rc != EVFN_ENOMEM)
		rc = 0; /* an odd attribute value is no reason to lose it */
	if (rc < 0) {
		evfn_event_unref(ev);
		return NULL;
	}
	return ev;
}

/* What follows the end of inv's event, with no lock held: its event-log
 * record, its dead letter, its destination. */
static void
after_end(struct evfn_rt *rt, struct evfn__inv *inv,
          struct evfn__ended *ended)
{
	struct evfn_fn *fn = inv->fn;
	if (inv->final_stat == EVFN_STAT_HANDED_BACK) {
		evfn__eventlog_tell(&rt->eventlog, EVFN_RECORD_HANDED_BACK, inv,
		                    fn->name);
		return; /* the drain callback has it */
	}
	if (inv->final_stat == EVFN_STAT_CANCELLED) {
		/* Asked for: no destination, no dead letter. */
		evfn__eventlog_tell(&rt->eventlog, EVFN_RECORD_CANCELLED, inv,
		                    fn->name);
		return;
	}
	bool success = inv->final_stat == EVFN_STAT_SUCCEEDED;
	evfn__eventlog_tell(&rt->eventlog,
	                    success ? EVFN_RECORD_SUCCESS
	                    : inv->final_stat == EVFN_STAT_EXPIRED
	                            ? EVFN_RECORD_EXPIRED
	                            : EVFN_RECORD_DEAD_LETTER,
	                    inv, fn->name);
	if (inv->dead_letter_lost)
		log_dead_letter_lost(rt, inv, inv->ev);
	const char *dest = success ? fn->cfg.on_success : fn->cfg.on_failure;
	/* A loop stops here: its destination event would loop on. */
	if (!dest[0] || (success && inv->idempotent_hit) ||
	    inv->final_code == EVFN_ELOOPDETECTED)
		return;
	evfn_event *ev = destination_event(inv, success);
	/* A destination event dead-lettered at once (past the hop limit)
	 * joins what is being settled. */
	int rc = ev ? evfn__admit(rt, ev, dest, NULL, NULL, false, ended)
	            : EVFN_ENOMEM;
	if (rc < 0) {
		/* Nothing is lost: what the destination would not take waits
		 * in the dead-letter store, for the destination, so that a
		 * replay delivers it there (not to fn, which already ran). */
		evfn__logf(&rt->log, EVFN_LOG_WARN,
		           "%s: destination %s refused: %s", fn->name, dest,
		           evfn_strerror(rc));
		store_dead_letter(rt, inv, dest, ev ? ev : inv->ev, rc);
	}
	evfn_event_unref(ev);
}

static void
wake_waiter(struct evfn_rt *rt, struct evfn__inv *inv, int result)
{
	struct evfn_result *w = inv->waiter;
	if (!w)
		return;
	evfn__result_fill(w, inv, result);
	if (!w->cb) {
		pthread_cond_signal(&w->cond);
		return;
	}
	/* Result callbacks run on the loop thread, where sources that must
	 * answer (HTTP, acknowledgements) live. */
	w->ev = evfn_event_ref(inv->ev);
	evfn__result_list_push(&rt->results, w);
	evfn__loop_executor_wake_locked(rt);
}

/* Whether anything but its clear follows the end of inv's event (logged:
 * the runtime has an event log). Most events succeed with nobody waiting,
 * no destination and no event log: one test skips after_end() for them. */
static inline bool
has_aftermath(const struct evfn__inv *inv, bool logged)
{
	return inv->final_stat != EVFN_STAT_SUCCEEDED || inv->waiter ||
	       logged || inv->fn->cfg.on_success[0];
}

struct evfn__inv_list
evfn__settle_release(struct evfn_rt *rt, struct evfn__ended *ended)
{
	/* Walked in place, each cleared where it is: the lists become the
	 * cleaned list as they are. */
	struct evfn__inv *inv, *next;
	bool logged = evfn__eventlog_on(&rt->eventlog);
	for (inv = ended->invocations.head; inv; inv = next) {
		if (has_aftermath(inv, logged)) {
			/* Destinations and the dead-letter store first, so
			 * that a waiter woken next finds them done. */
			after_end(rt, inv, ended);
			if (inv->waiter) {
				evfn__lock_acquire(&rt->lock);
				wake_waiter(rt, inv, inv->final_code);
				evfn__lock_release(&rt->lock);
			}
		}
		/* Zeroed here, with no lock held, for its next use; its link
		 * stays, read after after_end(): a destination dead-lettered
		 * at once (above) joins the list behind inv. */
		evfn__inv_clear(inv);
		next = inv->next;
	}
	for (inv = ended->spent.head; inv; inv = inv->next)
		evfn__inv_clear(inv);
	struct evfn__inv_list cleaned = ended->invocations;
	ended->invocations = (struct evfn__inv_list){NULL, NULL};
	evfn__inv_list_append(&cleaned, &ended->spent);
	evfn_dead_letter *dl;
	while ((dl = evfn__dead_list_pop(&ended->evicted_letters)))
		evfn_dead_letter_unref(dl);
	evfn__eventlog_flush(&rt->eventlog);
	return cleaned;
}

void
evfn__settle_ended(struct evfn_rt *rt, struct evfn__ended *ended)
{
	struct evfn__inv_list cleaned = evfn__settle_release(rt, ended);
	if (evfn__inv_list_empty(&cleaned))
		return;
	evfn__lock_acquire(&rt->lock);
	evfn__recycle_locked(rt, &cleaned);
	evfn__lock_release(&rt->lock);
}
