/* SPDX-License-Identifier: MIT */
/*
 * Admission: the single path by which events enter the runtime (emit,
 * publish, invoke, child emits, destinations, replays, and batches of
 * any of them). Admission is all or nothing under the runtime lock: the
 * targets of every event are resolved, every target's bounds are checked
 * (queue capacity, counting the whole batch, breaker, stuck cap), the
 * memory every event needs is taken, and only then is each event frozen
 * and handed to the state machine for each target by accept_event_locked(),
 * the one function that accepts an event, so a refused event (or batch)
 * is untouched and stays the caller's. With a journal, every event is
 * journaled after it is frozen and before any target sees it
 * (journal_admit()): a batch in one append, all or nothing (one fsync
 * with a durable journal); one refused after its append is ended in the
 * journal again. The public calls that admit are in
 * publish.c and invoke.c.
 *
 * The fast path (admit_fast()) admits a plain event sent to a function by
 * name without the runtime lock: room in the function's load by
 * compare-and-swap, a slot in its intake, a sequence number by an atomic
 * add, and an announcement when the intake was not announced already;
 * a worker moves the intake into the queue under the lock, many events
 * at a time. What it cannot take (a full intake, a closed fast path,
 * no room) goes the locked way, which counts the refusals.
 */
#include <string.h>

#include "admit-internal.h"
#include "common-internal.h"
#include "dispatch-internal.h"
#include "registry-internal.h"

/* The targets of one admission, every event's one after the other; most
 * admissions have few. */
struct targets {
	struct evfn_fn *small[8];
	struct evfn_fn **v;
	size_t n, cap;
};

/* One event of an admission: its targets are t.v[first..end). */
struct admission {
	evfn_event *ev;
	struct evfn_result *waiter;
	size_t first, end;
	bool loop;    /* past the hop limit: dead-lettered at once */
	bool plain;   /* nothing to remember beyond itself: queues bare */
	bool delayed; /* frozen with a delay: waits for its due time */
	bool had_time, had_source; /* before the freeze, to thaw it */
};

static int
collect_target(void *target, void *arg)
{
	struct targets *t = arg;
	if (t->n == t->cap) {
		size_t cap = t->cap * 2;
		struct evfn_fn **v = evfn__malloc(cap * sizeof(*v));
		if (!v)
			return EVFN_ENOMEM;
		memcpy(v, t->v, t->n * sizeof(*v));
		if (t->v != t->small)
			evfn__free(t->v);
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = target;
	return 0;
}

/* Whether each of the n targets of v can take one more event beside the
 * events of the admission counted before it (fn->admitting, which this
 * counts up): it is not stuck, its breaker lets it in, and it has room
 * in its load (delayed events count, they will queue when due), which is
 * reserved (fn->reserved) for the event, unless it is *prepaid: its
 * room was reserved before the lock (fn->reserved counts it already),
 * once (*prepaid is cleared). Refusals are counted. Returns 0, EVFN_EUNHEALTHY,
 * EVFN_ECIRCUITOPEN or EVFN_EQUEUEFULL (the worst met). rt->lock held. */
static inline __attribute__((always_inline)) int
bounds_locked(struct evfn_fn *const *v, size_t n, struct evfn_fn **prepaid)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct evfn_fn *fn = v[i];
		if (fn->stuck >= fn->cfg.max_stuck) {
			fn->stat[EVFN_STAT_THROTTLED]++;
			rc = EVFN_EUNHEALTHY;
		} else if (fn->flow && evfn__fn_breaker(fn) &&
		           evfn__breaker_refuses(evfn__fn_breaker(fn),
		                                 &fn->cfg)) {
			fn->stat[EVFN_STAT_THROTTLED]++;
			if (rc == 0 || rc == EVFN_EQUEUEFULL)
				rc = EVFN_ECIRCUITOPEN;
		} else if (fn == *prepaid) {
			*prepaid = NULL; /* its room is in fn->reserved */
		} else if (!evfn__fn_load_reserve(fn, 1)) {
			fn->stat[EVFN_STAT_THROTTLED]++;
			if (rc == 0)
				rc = EVFN_EQUEUEFULL;
		} else {
			fn->reserved++;
		}
		fn->admitting++;
	}
	return rc;
}

/* The first of n consecutive sequence numbers, taken at once: the fast
 * path takes them without the lock, and a batch's are consecutive. */
static inline uint64_t
take_seqs(struct evfn_rt *rt, size_t n)
{
	return atomic_fetch_add_explicit(&rt->next_seq, n,
	                                 memory_order_relaxed) + 1;
}

/* Whether a durable journal releases the lock while it appends: then the
 * room reserved for a bare event could be gone when it comes back. */
static inline bool
journal_waits(const struct evfn_rt *rt)
{
	return EVFN__UNLIKELY(rt->opts.journal_path) &&
	       rt->opts.journal_mode == EVFN_JOURNAL_DURABLE;
}

/* Gives back the room fn's admission reserved and did not use. rt->lock
 * held. */
static inline void
give_back_room_locked(struct evfn_fn *fn)
{
	if (fn->reserved > 0) {
		evfn__fn_load_release(fn, fn->reserved);
		fn->reserved = 0;
	}
}

/* Resolves a's targets onto t, moves what their intakes hold into their
 * queues (older than a), and checks their bounds (bounds_locked(), with
 * the function whose room the fast path took, if it handed the event
 * over). Returns 0 or the refusal. */
static inline __attribute__((always_inline)) int
check_event_locked(struct evfn_rt *rt, struct admission *a,
                   const char *fn_name, struct targets *t,
                   struct evfn_fn **prepaid)
{
	int rc;
	a->first = t->n;
	if (fn_name) {
		struct evfn_fn *fn = evfn__fn_find_locked(rt, fn_name);
		rc = fn ? collect_target(fn, t) : EVFN_ENOFN;
	} else {
		rc = evfn__router_match(rt->router, evfn__event_type(a->ev),
		                        collect_target, t);
		if (rc == 0)
			rc = EVFN_ENOSUB;
		else if (rc == 1 && t->v[a->first]->intake)
			/* One subscriber that takes the fast path: the next
			 * emit of this topic may go straight to it. */
			evfn__route_one_remember_locked(
				rt, evfn__event_type(a->ev), t->v[a->first]);
	}
	a->end = t->n;
	if (rc < 0)
		return rc;
	for (size_t i = a->first; i < a->end; i++)
		evfn__fn_flush_pending_locked(rt, t->v[i]);
	rc = bounds_locked(t->v + a->first, a->end - a->first, prepaid);
	if (rc < 0)
		return rc;
	/* Past the hop limit, a chain of emits is a loop: each target
	 * accepts the event and dead-letters it at once. */
	a->loop = a->ev->hops > rt->opts.max_hops;
	/* An event with nothing to remember beyond itself queues bare, its
	 * invocation made when its attempt starts; others need one now. */
	a->plain = !a->waiter && !a->loop && !evfn__event_okey(a->ev) &&
	           !evfn__event_has_delay(a->ev) && !journal_waits(rt);
	return 0;
}

/* Takes the invocations a's targets need onto *invs: none for a target
 * whose queue has room for a bare event from every event of the
 * admission sent to it. */
static inline __attribute__((always_inline)) int
reserve_event_locked(struct evfn_rt *rt, const struct admission *a,
                     const struct targets *t, struct evfn__inv **invs)
{
	for (size_t i = a->first; i < a->end; i++) {
		struct evfn_fn *fn = t->v[i];
		if (a->plain &&
		    evfn__queue_reserve_bare(&fn->q, (size_t)fn->admitting))
			continue;
		struct evfn__inv *inv = evfn__inv_get(&rt->inv_pool);
		if (!inv)
			return EVFN_ENOMEM;
		inv->next = *invs;
		*invs = inv;
	}
	return 0;
}

/* ---- the journal -------------------------------------------------------- */

/*
 * Journals the n frozen events of a for their targets before any of them
 * can see them: one evfn__journal_append_many(), all or nothing. In fast
 * mode it only buffers, under the lock. In durable mode it waits for the
 * fsync of its batch, one for the whole admission (shared with other
 * producers' appends), so the lock is released meanwhile; the caller
 * checks the admission again after. Returns 0, or why the events are
 * refused, none of them journaled: EVFN_ENOTRUNNING before start,
 * EVFN_ENOSPC, EVFN_EJOURNAL, EVFN_ENOMEM. rt->lock held (released and
 * taken again in durable mode).
 */
EVFN__NOINLINE static int
journal_admit(struct evfn_rt *rt, const struct admission *a, size_t n,
              const struct targets *t)
{
	struct evfn__journal *j = rt->journal;
	if (!j)
		return EVFN_ENOTRUNNING;
	/* The targets of a[i] are t->v[a[i].first .. a[i].end), in order. */
	size_t n_ids = a[n - 1].end;
	/* One event's entry on the stack (the single path), a batch's on
	 * the heap. */
	uint32_t small_ids[EVFN__ARRAY_SIZE(t->small)];
	struct evfn__journal_entry small_entry;
	struct evfn__journal_state small_state;
	struct evfn__journal_entry *e = &small_entry;
	struct evfn__journal_state *st = &small_state;
	uint32_t *ids = small_ids;
	void *block = NULL;
	if (n > 1 || n_ids > EVFN__ARRAY_SIZE(small_ids)) {
		block = evfn__malloc(n * (sizeof(*e) + sizeof(*st)) +
		                     n_ids * sizeof(*ids));
		if (!block)
			return EVFN_ENOMEM;
		e = block;
		st = (struct evfn__journal_state *)(e + n);
		ids = (uint32_t *)(st + n);
	}
	for (size_t i = 0; i < n_ids; i++)
		ids[i] = t->v[i]->jid;
	for (size_t i = 0; i < n; i++) {
		st[i] = (struct evfn__journal_state){
			.due_ns = a[i].delayed
			                  ? evfn__mono_to_wall(a[i].ev->born_ns)
			                  : 0};
		e[i] = (struct evfn__journal_entry){
			.seq = a[i].ev->seq,
			.ev = a[i].ev,
			.fns = ids + a[i].first,
			.n_fns = a[i].end - a[i].first,
			.st = &st[i]};
	}
	int rc;
	if (rt->opts.journal_mode == EVFN_JOURNAL_FAST) {
		rc = evfn__journal_append_many(j, e, n);
	} else {
		/* No room is held while the lock is released: the
		 * admission is checked, and its room reserved, again after. */
		for (size_t i = 0; i < n_ids; i++)
			give_back_room_locked(t->v[i]);
		/* Counted so that evfn_rt_free() waits for it to come back. */
		rt->journal_appending++;
		evfn__lock_release(&rt->lock);
		rc = evfn__journal_append_many(j, e, n);
		evfn__lock_acquire(&rt->lock);
		if (--rt->journal_appending == 0)
			pthread_cond_broadcast(&rt->quiet_cond);
	}
	evfn__free(block);
	return rc;
}

/* Ends the journal records of the n journaled events of a: an admission
 * refused after they were written. rt->lock held. */
static void
unjournal_locked(struct evfn_rt *rt, struct admission *a, size_t n,
                 const struct targets *t)
{
	for (size_t i = 0; i < n; i++)
		for (size_t k = a[i].first; k < a[i].end; k++)
			(void)evfn__journal_end(rt->journal, a[i].ev->seq,
			                        t->v[k]->jid,
			                        EVFN__JEND_CANCELLED);
}

/* Freezes and journals the n events of a, all or none, with consecutive
 * sequence numbers. A durable journal released the lock meanwhile, so
 * the whole admission is checked again after: an admission refused then
 * is ended in the journal again. Returns 0 or the refusal, every event
 * thawed. rt->lock held. */
EVFN__NOINLINE static int
freeze_journaled(struct evfn_rt *rt, struct admission *a, size_t n,
                 const struct targets *t, int64_t now)
{
	uint64_t seq = take_seqs(rt, n);
	for (size_t i = 0; i < n; i++) {
		struct admission *x = &a[i];
		x->had_time = x->ev->time_set;
		x->had_source = x->ev->source != NULL;
		x->delayed = evfn__event_freeze(x->ev, seq + i, rt->source,
		                                now);
	}
	int rc = journal_admit(rt, a, n, t);
	if (rc == 0 && journal_waits(rt)) {
		rc = rt->state >= EVFN__DRAINING ? EVFN_ESHUTDOWN : 0;
		for (size_t i = 0; i < t->n; i++)
			t->v[i]->admitting = 0;
		struct evfn_fn *none = NULL; /* no journaled room is prepaid */
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = bounds_locked(t->v + a[i].first,
			                   a[i].end - a[i].first, &none);
		if (rc < 0)
			unjournal_locked(rt, a, n, t);
	}
	if (rc < 0)
		for (size_t i = 0; i < n; i++)
			evfn__event_thaw(a[i].ev, a[i].had_time,
			                 a[i].had_source);
	return rc;
}

/* ---- acceptance --------------------------------------------------------- */

/* Accepts a's event, checked, reserved for and frozen: hands it to the
 * state machine once per target, taking each target's invocation from
 * *invs unless it queues bare. With handed_over, the caller's reference
 * becomes the first target's. */
static inline __attribute__((always_inline)) void
accept_event_locked(struct evfn_rt *rt, const struct admission *a,
                    const struct targets *t, bool handed_over,
                    struct evfn__inv **invs, struct evfn__ended *ended)
{
	evfn_event *ev = a->ev;
	size_t n = a->end - a->first;
	if (n > (size_t)handed_over)
		atomic_fetch_add_explicit(&ev->refs, (unsigned)n - handed_over,
		                          memory_order_relaxed);
	enum evfn__accept_as as = a->loop      ? EVFN__ACCEPT_LOOPED
	                          : a->delayed ? EVFN__ACCEPT_DELAYED
	                                       : EVFN__ACCEPT_NOW;
	for (size_t i = a->first; i < a->end; i++) {
		struct evfn_fn *fn = t->v[i];
		/* Room reserved above stays: the admission's other events
		 * were counted in it. */
		if (a->plain && evfn__queue_has_bare_room(&fn->q)) {
			evfn__accept_bare_locked(rt, fn, ev);
			continue;
		}
		struct evfn__inv *inv = *invs;
		*invs = inv->next;
		inv->ev = ev;
		inv->fn = fn;
		inv->waiter = a->waiter;
		evfn__accept_locked(rt, inv, as, ended);
	}
}

/* Admits the n events of a under one hold of rt->lock (but for a durable
 * journal's waits): all or none, or with taken not NULL as many from the
 * front as can be taken (*taken). Inlined, with the steps above, into
 * each of the two callers: the single path, a publish's whole cost,
 * folds n == 1 away. */
static inline __attribute__((always_inline)) int
admit(struct evfn_rt *rt, struct admission *a, size_t n, const char *fn_name,
      struct evfn_fn *prepaid, bool handed_over, uint64_t *first_seq,
      size_t *taken, struct evfn__ended *ended)
{
	struct targets t; /* small[] is filled as targets are found */
	t.n = 0;
	t.cap = EVFN__ARRAY_SIZE(t.small);
	t.v = t.small;
	struct evfn__inv *invs = NULL;
	size_t fit = 0; /* events checked and found to fit */
	int rc = 0;

	/* Read before the lock: a clock read is not free on a VM. */
	int64_t now = evfn__now_ns();
	evfn__lock_acquire(&rt->lock);
	struct evfn_fn *room = prepaid; /* its room not counted yet */
	if (prepaid)
		prepaid->reserved++;
	if (rt->state >= EVFN__DRAINING) {
		rc = EVFN_ESHUTDOWN;
		goto out;
	}
	while (fit < n &&
	       (rc = check_event_locked(rt, &a[fit], fn_name, &t, &room)) == 0)
		fit++;
	if (fit < n && (!taken || fit == 0))
		goto out;
	for (size_t i = 0; i < fit; i++) {
		int err = reserve_event_locked(rt, &a[i], &t, &invs);
		if (err < 0) {
			rc = err;
			fit = 0;
			goto out;
		}
	}
	if (EVFN__UNLIKELY(rt->opts.journal_path)) {
		int err = freeze_journaled(rt, a, fit, &t, now);
		if (err < 0) {
			rc = err;
			fit = 0;
			goto out;
		}
	} else {
		uint64_t seq = take_seqs(rt, fit);
		for (size_t i = 0; i < fit; i++)
			a[i].delayed = evfn__event_freeze(a[i].ev, seq + i,
			                                  rt->source, now);
	}
	if (first_seq)
		*first_seq = a[0].ev->seq;
	for (size_t i = 0; i < fit; i++)
		accept_event_locked(rt, &a[i], &t, handed_over, &invs, ended);
out:
	if (taken)
		*taken = fit;
	for (size_t i = 0; i < t.n; i++) {
		t.v[i]->admitting = 0;
		give_back_room_locked(t.v[i]);
	}
	if (prepaid)
		give_back_room_locked(prepaid);
	/* Invocations taken for a refused admission (or for a target that
	 * found room for a bare event after all) go back unused. */
	while (invs) {
		struct evfn__inv *inv = invs;
		invs = inv->next;
		evfn__inv_put(&rt->inv_pool, inv);
	}
	evfn__lock_release(&rt->lock);
	if (t.v != t.small)
		evfn__free(t.v);
	return rc;
}

/* ---- the fast path ------------------------------------------------------ */

/* What admit_fast() did. */
enum fast {
	FAST_ADMITTED,
	FAST_DECLINED, /* nothing taken: admit under the lock */
	FAST_PREPAID,  /* room in load taken for one event, no intake slot:
	                * admit it under the lock with that room */
};

/* Whether ev may take the fast path: it needs nothing but its queue. */
static inline bool
fast_plain(const struct evfn_rt *rt, const evfn_event *ev)
{
	return !evfn__event_okey(ev) && !evfn__event_has_delay(ev) &&
	       ev->hops <= rt->opts.max_hops;
}

/*
 * Admits the n plain events of evs (one publish, or a batch: all or
 * none) to fn without rt->lock, if fn (found without the lock, or NULL)
 * has its fast path open.
 * The second look at fast_open, after the room is taken, pairs with a
 * drain that closes it and then looks at load: either the drain sees the
 * room taken and waits for the events, or this sees the path closed.
 */
static inline __attribute__((always_inline)) enum fast
admit_fast(struct evfn_rt *rt, struct evfn_fn *fn, evfn_event *const *evs,
           size_t n, bool handed_over, uint64_t *first_seq,
           struct evfn_fn **prepaid)
{
	if (!fn || !atomic_load_explicit(&fn->fast_open, memory_order_relaxed))
		return FAST_DECLINED;
	for (size_t i = 0; i < n; i++)
		if (!fast_plain(rt, evs[i]))
			return FAST_DECLINED;
	if (!evfn__fn_load_reserve(fn, (int64_t)n))
		return FAST_DECLINED;
	struct evfn__intake_ticket ticket;
	if (!atomic_load(&fn->fast_open) ||
	    evfn__intake_reserve(fn->intake, (uint32_t)n, &ticket) < 0) {
		/* A full intake (its ring is smaller than the bound): the
		 * locked way moves it into the queue, with this room for a
		 * single event. */
		if (n == 1 && atomic_load(&fn->fast_open)) {
			*prepaid = fn;
			return FAST_PREPAID;
		}
		evfn__fn_load_release(fn, (int64_t)n);
		return FAST_DECLINED;
	}
	uint64_t seq = take_seqs(rt, n);
	int64_t now = evfn__now_ns();
	for (size_t i = 0; i < n; i++) {
		(void)evfn__event_freeze(evs[i], seq + i, rt->source, now);
		if (!handed_over)
			atomic_fetch_add_explicit(&evs[i]->refs, 1,
			                          memory_order_relaxed);
		evfn__intake_fill(fn->intake, &ticket, (uint32_t)i, evs[i]);
	}
	if (first_seq)
		*first_seq = seq;
	evfn__fn_announce(rt, fn);
	return FAST_ADMITTED;
}

int
evfn__admit(struct evfn_rt *rt, evfn_event *ev, const char *fn_name,
            struct evfn_result *waiter, uint64_t *seq, bool handed_over,
            struct evfn__ended *ended)
{
	/* By name, or by topic to its one subscriber. */
	struct evfn_fn *prepaid = NULL;
	if (!waiter &&
	    admit_fast(rt,
	               fn_name ? evfn__fn_find_fast(rt, fn_name)
	                       : evfn__route_one_fast(rt,
	                                              evfn__event_type(ev)),
	               &ev, 1, handed_over, seq, &prepaid) == FAST_ADMITTED)
		return 0;
	struct admission a = {.ev = ev, .waiter = waiter};
	return admit(rt, &a, 1, fn_name, prepaid, handed_over, seq, NULL,
	             ended);
}

int
evfn__admit_batch(struct evfn_rt *rt, evfn_event *const *evs, size_t n,
                  const char *fn_name, struct evfn_result *const *waiters,
                  uint64_t *first_seq, size_t *taken, bool handed_over,
                  struct evfn__ended *ended)
{
	/* All or nothing to one function, none waited for: one reservation,
	 * one announcement. */
	struct evfn_fn *prepaid = NULL;
	if (fn_name && !waiters && !taken &&
	    admit_fast(rt, evfn__fn_find_fast(rt, fn_name), evs, n,
	               handed_over, first_seq, &prepaid) == FAST_ADMITTED)
		return 0;
	struct admission *a = evfn__malloc(n * sizeof(*a));
	if (!a) {
		if (prepaid)
			evfn__fn_load_release(prepaid, 1);
		if (taken)
			*taken = 0;
		return EVFN_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		a[i] = (struct admission){
			.ev = evs[i], .waiter = waiters ? waiters[i] : NULL};
	int rc = admit(rt, a, n, fn_name, prepaid, handed_over, first_seq,
	               taken, ended);
	evfn__free(a);
	return rc;
}
