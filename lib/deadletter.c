/* SPDX-License-Identifier: MIT */
/*
 * What happens after an event ends, outside the runtime lock: the event
 * log record, the on_success / on_failure destination, and for events
 * that ended without success, the dead-letter store with list, replay,
 * delete and purge. The store is a bounded FIFO under its own lock, so
 * reading it never stalls dispatch.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <evfn/deadletter.h>
#include <evfn/emit.h>

#include "common-internal.h"
#include "runtime-internal.h"

struct evfn_dead_letter {
	atomic_uint refs;
	uint64_t id;
	evfn_event *ev;
	int code;
	unsigned attempts;
	char *error;
	int64_t first_ns, last_ns;
	char fn_name[];
};

/* A store entry: one reference to a dead letter. */
struct evfn__dead {
	struct evfn__dead *next, *prev;
	evfn_dead_letter *dl;
};

struct evfn_record {
	evfn_record_kind kind;
	const struct evfn__inv *inv; /* NULL for a record about fn alone */
	const struct evfn_fn *fn;
	const char *error;
};

static const struct {
	int code;
	const char *name;
} reasons[] = {
	{EVFN_EFAILED, "failed"},
	{EVFN_EEXHAUSTED, "attempts_exhausted"},
	{EVFN_ETIMEDOUT, "timeout"},
	{EVFN_EEXPIRED, "expired"},
	{EVFN_ELOOPDETECTED, "loop_detected"},
	{EVFN_EHANDEDBACK, "handed_back"},
};

const char *
evfn_dead_letter_reason_name(int code)
{
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(reasons); i++)
		if (reasons[i].code == code)
			return reasons[i].name;
	return code < 0 ? "destination_refused" : NULL;
}

void
evfn__record(struct evfn_rt *rt, int kind, const struct evfn__inv *inv)
{
	/* A timed-out attempt's handler may still be writing its context:
	 * its record says what happened instead. */
	const char *error = kind == EVFN_RECORD_TIMEOUT ? "deadline exceeded"
	                                                : inv->ctx.error;
	struct evfn_record rec = {(evfn_record_kind)kind, inv, inv->fn, error};
	rt->opts.record_cb(&rec, rt->opts.record_arg);
}

void
evfn__record_fn(struct evfn_rt *rt, int kind, const struct evfn_fn *fn,
                const char *error)
{
	struct evfn_record rec = {(evfn_record_kind)kind, NULL, fn, error};
	rt->opts.record_cb(&rec, rt->opts.record_arg);
}

/* A record about a function (a circuit-breaker change) decided under the
 * runtime lock, told once it is released. */
struct evfn__notice {
	struct evfn__notice *next;
	const struct evfn_fn *fn;
	int kind;
	char error[96];
};

void
evfn__notice_locked(struct evfn_rt *rt, struct evfn_fn *fn, int kind,
                    const char *error)
{
	EVFN__ASSERT_LOCKED(rt);
	if (!rt->opts.record_cb)
		return;
	struct evfn__notice *n = evfn__calloc(1, sizeof(*n));
	if (!n) {
		evfn__logf(&rt->log, EVFN_LOG_ERROR, "%s: out of memory for a "
		          "circuit-breaker record", fn->name);
		return;
	}
	n->fn = fn;
	n->kind = kind;
	snprintf(n->error, sizeof(n->error), "%s", error ? error : "");
	n->next = rt->notices; /* newest first; reversed when told */
	rt->notices = n;
	atomic_store_explicit(&rt->notices_due, true, memory_order_release);
}

void
evfn__notices_deliver(struct evfn_rt *rt)
{
	if (!atomic_load_explicit(&rt->notices_due, memory_order_acquire))
		return;
	evfn__lock_acquire(&rt->lock);
	struct evfn__notice *list = NULL;
	while (rt->notices) { /* oldest first */
		struct evfn__notice *n = rt->notices;
		rt->notices = n->next;
		n->next = list;
		list = n;
	}
	atomic_store_explicit(&rt->notices_due, false, memory_order_relaxed);
	evfn__lock_release(&rt->lock);
	while (list) {
		struct evfn__notice *n = list;
		list = n->next;
		evfn__record_fn(rt, n->kind, n->fn, n->error[0] ? n->error : NULL);
		evfn__free(n);
	}
}

void
evfn__notices_free(struct evfn_rt *rt)
{
	while (rt->notices) {
		struct evfn__notice *n = rt->notices;
		rt->notices = n->next;
		evfn__free(n);
	}
}

static void
dead_letter_free(evfn_dead_letter *dl)
{
	evfn_event_unref(dl->ev);
	evfn__free(dl->error);
	evfn__free(dl);
}

void
evfn_dead_letter_unref(evfn_dead_letter *dl)
{
	if (dl && atomic_fetch_sub_explicit(&dl->refs, 1,
	                                    memory_order_acq_rel) == 1)
		dead_letter_free(dl);
}

/* Puts a dead letter in the store, dropping the oldest when full. */
static void
store_add(struct evfn_rt *rt, const struct evfn__inv *inv, evfn_event *ev,
          int code)
{
	if (rt->opts.dead_letter_capacity == 0)
		return;
	size_t nlen = strlen(inv->fn->name) + 1;
	evfn_dead_letter *dl = evfn__calloc(1, sizeof(*dl) + nlen);
	struct evfn__dead *entry = evfn__calloc(1, sizeof(*entry));
	if (!dl || !entry) {
		evfn__free(dl);
		evfn__free(entry);
		evfn__logf(&rt->log, EVFN_LOG_ERROR,
		          "%s: out of memory storing dead letter %s",
		          inv->fn->name, evfn_event_id(ev));
		return;
	}
	atomic_init(&dl->refs, 1);
	dl->ev = evfn_event_ref(ev);
	dl->code = code;
	dl->attempts = inv->attempt;
	dl->error = evfn__strdup(inv->ctx.error);
	dl->first_ns = inv->first_ns;
	dl->last_ns = inv->last_ns;
	memcpy(dl->fn_name, inv->fn->name, nlen);
	entry->dl = dl;

	struct evfn__dead *evicted = NULL;
	pthread_mutex_lock(&rt->dead_lock);
	dl->id = ++rt->dead_next_id;
	entry->prev = rt->dead_tail;
	if (rt->dead_tail)
		rt->dead_tail->next = entry;
	else
		rt->dead_head = entry;
	rt->dead_tail = entry;
	if (++rt->dead_n > rt->opts.dead_letter_capacity) {
		evicted = rt->dead_head;
		rt->dead_head = evicted->next;
		rt->dead_head->prev = NULL;
		rt->dead_n--;
		rt->dead_evicted++;
	}
	pthread_mutex_unlock(&rt->dead_lock);
	if (evicted) {
		evfn_dead_letter_unref(evicted->dl);
		evfn__free(evicted);
	}
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
		rc = evfn_event_set_extension(ev, "evfnfunction", inv->fn->name);
	if (rc < 0 && rc != EVFN_ENOMEM)
		rc = 0; /* an odd attribute value is no reason to lose it */
	if (rc < 0) {
		evfn_event_unref(ev);
		return NULL;
	}
	return ev;
}

void
evfn__after_end(struct evfn_rt *rt, struct evfn__inv *inv)
{
	struct evfn_fn *fn = inv->fn;
	if (inv->final_stat == EVFN_STAT_HANDED_BACK) {
		if (rt->opts.record_cb)
			evfn__record(rt, EVFN_RECORD_HANDED_BACK, inv);
		return; /* the drain callback has it */
	}
	if (inv->final_stat == EVFN_STAT_CANCELLED) {
		/* Asked for: no destination, no dead letter. */
		if (rt->opts.record_cb)
			evfn__record(rt, EVFN_RECORD_CANCELLED, inv);
		return;
	}
	bool success = inv->final_stat == EVFN_STAT_SUCCEEDED;
	if (rt->opts.record_cb)
		evfn__record(rt,
		             success ? EVFN_RECORD_SUCCESS
		             : inv->final_stat == EVFN_STAT_EXPIRED
		                     ? EVFN_RECORD_EXPIRED
		                     : EVFN_RECORD_DEAD_LETTER,
		             inv);
	if (!success)
		store_add(rt, inv, inv->ev, inv->final_code);
	const char *dest = success ? fn->cfg.on_success : fn->cfg.on_failure;
	/* A loop stops here: its destination event would loop on. */
	if (!dest[0] || (success && inv->idempotent_hit) ||
	    inv->final_code == EVFN_ELOOPDETECTED)
		return;
	evfn_event *ev = destination_event(inv, success);
	int rc = ev ? evfn__admit(rt, ev, dest, NULL, NULL) : EVFN_ENOMEM;
	if (rc < 0) {
		/* Nothing is lost: what the destination would not take waits
		 * in the dead-letter store. */
		evfn__logf(&rt->log, EVFN_LOG_WARN, "%s: destination %s refused: %s",
		          fn->name, dest, evfn_strerror(rc));
		store_add(rt, inv, ev ? ev : inv->ev, rc);
	}
	evfn_event_unref(ev);
}

int
evfn_dead_letters(evfn_rt *rt, evfn_dead_letter **out, size_t max,
                  size_t offset)
{
	if (!rt || (!out && max > 0))
		return EVFN_EINVAL;
	int n = 0;
	pthread_mutex_lock(&rt->dead_lock);
	struct evfn__dead *e = rt->dead_head;
	for (; e && offset > 0; e = e->next)
		offset--;
	for (; e && (size_t)n < max && n < INT32_MAX; e = e->next) {
		atomic_fetch_add(&e->dl->refs, 1);
		out[n++] = e->dl;
	}
	pthread_mutex_unlock(&rt->dead_lock);
	return n;
}

size_t
evfn_dead_letter_count(evfn_rt *rt)
{
	if (!rt)
		return 0;
	pthread_mutex_lock(&rt->dead_lock);
	size_t n = rt->dead_n;
	pthread_mutex_unlock(&rt->dead_lock);
	return n;
}

uint64_t
evfn_dead_letter_evicted(evfn_rt *rt)
{
	if (!rt)
		return 0;
	pthread_mutex_lock(&rt->dead_lock);
	uint64_t n = rt->dead_evicted;
	pthread_mutex_unlock(&rt->dead_lock);
	return n;
}

/* Unlinks the entry with this id (NULL when absent). dead_lock held. */
static struct evfn__dead *
take_entry(struct evfn_rt *rt, uint64_t id)
{
	struct evfn__dead *e = rt->dead_head;
	while (e && e->dl->id != id)
		e = e->next;
	if (!e)
		return NULL;
	if (e->prev)
		e->prev->next = e->next;
	else
		rt->dead_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		rt->dead_tail = e->prev;
	rt->dead_n--;
	return e;
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
	rc = evfn__admit(rt, ev, dl->fn_name, NULL, NULL);
	evfn_event_unref(ev);
	return rc;
}

int
evfn_dead_letter_replay(evfn_rt *rt, uint64_t id)
{
	if (!rt)
		return EVFN_EINVAL;
	pthread_mutex_lock(&rt->dead_lock);
	struct evfn__dead *e = rt->dead_head;
	while (e && e->dl->id != id)
		e = e->next;
	evfn_dead_letter *dl = e ? e->dl : NULL;
	if (dl)
		atomic_fetch_add(&dl->refs, 1);
	pthread_mutex_unlock(&rt->dead_lock);
	if (!dl)
		return EVFN_ENOENT;
	int rc = replay(rt, dl);
	evfn_dead_letter_unref(dl);
	if (rc == 0)
		(void)evfn_dead_letter_delete(rt, id);
	return rc;
}

int
evfn_dead_letter_replay_all(evfn_rt *rt)
{
	if (!rt)
		return EVFN_EINVAL;
	int n = 0;
	for (;;) {
		pthread_mutex_lock(&rt->dead_lock);
		uint64_t id = rt->dead_head ? rt->dead_head->dl->id : 0;
		pthread_mutex_unlock(&rt->dead_lock);
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
	pthread_mutex_lock(&rt->dead_lock);
	struct evfn__dead *e = take_entry(rt, id);
	pthread_mutex_unlock(&rt->dead_lock);
	if (!e)
		return EVFN_ENOENT;
	evfn_dead_letter_unref(e->dl);
	evfn__free(e);
	return 0;
}

int
evfn_dead_letter_purge(evfn_rt *rt)
{
	if (!rt)
		return EVFN_EINVAL;
	pthread_mutex_lock(&rt->dead_lock);
	struct evfn__dead *list = rt->dead_head;
	int n = (int)EVFN__MIN(rt->dead_n, (size_t)INT32_MAX);
	rt->dead_head = rt->dead_tail = NULL;
	rt->dead_n = 0;
	pthread_mutex_unlock(&rt->dead_lock);
	while (list) {
		struct evfn__dead *next = list->next;
		evfn_dead_letter_unref(list->dl);
		evfn__free(list);
		list = next;
	}
	return n;
}

void
evfn__dead_free_all(struct evfn_rt *rt)
{
	(void)evfn_dead_letter_purge(rt);
}

uint64_t
evfn_dead_letter_id(const evfn_dead_letter *dl)
{
	return dl ? dl->id : 0;
}

const evfn_event *
evfn_dead_letter_event(const evfn_dead_letter *dl)
{
	return dl ? dl->ev : NULL;
}

const char *
evfn_dead_letter_function(const evfn_dead_letter *dl)
{
	return dl ? dl->fn_name : NULL;
}

int
evfn_dead_letter_code(const evfn_dead_letter *dl)
{
	return dl ? dl->code : EVFN_EINVAL;
}

const char *
evfn_dead_letter_reason(const evfn_dead_letter *dl)
{
	return dl ? evfn_dead_letter_reason_name(dl->code) : NULL;
}

unsigned
evfn_dead_letter_attempts(const evfn_dead_letter *dl)
{
	return dl ? dl->attempts : 0;
}

const char *
evfn_dead_letter_error(const evfn_dead_letter *dl)
{
	return dl ? dl->error : NULL;
}

int64_t
evfn_dead_letter_first_attempt(const evfn_dead_letter *dl)
{
	return dl ? dl->first_ns : 0;
}

int64_t
evfn_dead_letter_last_attempt(const evfn_dead_letter *dl)
{
	return dl ? dl->last_ns : 0;
}

const char *
evfn_record_kind_name(evfn_record_kind kind)
{
	static const char *const names[] = {
		[EVFN_RECORD_START] = "start",
		[EVFN_RECORD_SUCCESS] = "success",
		[EVFN_RECORD_TIMEOUT] = "timeout",
		[EVFN_RECORD_LATE] = "late",
		[EVFN_RECORD_DEAD_LETTER] = "dead_letter",
		[EVFN_RECORD_EXPIRED] = "expired",
		[EVFN_RECORD_CANCELLED] = "cancelled",
		[EVFN_RECORD_RETRY] = "retry",
		[EVFN_RECORD_CIRCUIT_OPEN] = "circuit_open",
		[EVFN_RECORD_CIRCUIT_HALF_OPEN] = "circuit_half_open",
		[EVFN_RECORD_CIRCUIT_CLOSED] = "circuit_closed",
		[EVFN_RECORD_HANDED_BACK] = "handed_back",
	};
	return (unsigned)kind < EVFN__ARRAY_SIZE(names) ? names[kind] : NULL;
}

evfn_record_kind
evfn_record_get_kind(const evfn_record *rec)
{
	return rec->kind;
}

const char *
evfn_record_function(const evfn_record *rec)
{
	return rec->fn->name;
}

const evfn_event *
evfn_record_event(const evfn_record *rec)
{
	return rec->inv ? rec->inv->ev : NULL;
}

unsigned
evfn_record_attempt(const evfn_record *rec)
{
	return rec->inv ? rec->inv->attempt : 0;
}

int
evfn_record_code(const evfn_record *rec)
{
	return rec->inv && rec->inv->final_stat >= 0 ? rec->inv->final_code
	                                             : 0;
}

const char *
evfn_record_error(const evfn_record *rec)
{
	return rec->error;
}

int64_t
evfn_record_duration_ns(const evfn_record *rec)
{
	const struct evfn__inv *inv = rec->inv;
	if (!inv || rec->kind == EVFN_RECORD_START || inv->attempt == 0)
		return 0;
	int64_t d = evfn__now_ns() - inv->start_ns;
	return d > 0 ? d : 0;
}
