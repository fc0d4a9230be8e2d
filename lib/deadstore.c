/* SPDX-License-Identifier: MIT */
/*
 * The dead-letter store and the dead letter object: a bounded FIFO of
 * reference-counted letters under its own lock, and what a letter tells
 * (evfn_dead_letter_*). Handing out a reference never copies; a letter
 * lives until the store and every caller have let go of it.
 */
#include <string.h>

#include <evfn/event.h>

#include "common-internal.h"
#include "deadstore-internal.h"

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
	{EVFN_ECANCELED, "cancelled"},
};

const char *
evfn_dead_letter_reason_name(int code)
{
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(reasons); i++)
		if (reasons[i].code == code)
			return reasons[i].name;
	return code < 0 ? "destination_refused" : NULL;
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

evfn_dead_letter *
evfn__dead_letter_new(const char *fn_name, evfn_event *ev, int code,
                      unsigned attempts, const char *error, int64_t first_ns,
                      int64_t last_ns)
{
	size_t nlen = strlen(fn_name) + 1;
	evfn_dead_letter *dl = evfn__calloc(1, sizeof(*dl) + nlen);
	if (!dl)
		return NULL;
	dl->error = evfn__strdup(error); /* kept without it when short */
	atomic_init(&dl->refs, 1);
	dl->ev = evfn_event_ref(ev);
	dl->code = code;
	dl->attempts = attempts;
	dl->first_ns = first_ns;
	dl->last_ns = last_ns;
	memcpy(dl->fn_name, fn_name, nlen);
	return dl;
}

void
evfn__dead_store_init(struct evfn__dead_store *s, size_t capacity)
{
	*s = (struct evfn__dead_store){.capacity = capacity};
	pthread_mutex_init(&s->lock, NULL);
}

void
evfn__dead_store_destroy(struct evfn__dead_store *s)
{
	(void)evfn__dead_store_purge(s);
	pthread_mutex_destroy(&s->lock);
}

evfn_dead_letter *
evfn__dead_store_add(struct evfn__dead_store *s, evfn_dead_letter *dl)
{
	return evfn__dead_store_restore(s, dl, 0);
}

void
evfn__dead_store_skip_ids(struct evfn__dead_store *s, uint64_t last)
{
	pthread_mutex_lock(&s->lock);
	s->next_id = EVFN__MAX(s->next_id, last);
	pthread_mutex_unlock(&s->lock);
}

evfn_dead_letter *
evfn__dead_store_restore(struct evfn__dead_store *s, evfn_dead_letter *dl,
                         uint64_t id)
{
	evfn_dead_letter *evicted = NULL;
	pthread_mutex_lock(&s->lock);
	s->next_id = EVFN__MAX(s->next_id, id);
	dl->id = id ? id : ++s->next_id;
	evfn__dead_list_push(&s->letters, dl);
	if (++s->n > s->capacity) {
		evicted = evfn__dead_list_pop(&s->letters);
		s->n--;
		s->evicted++;
	}
	pthread_mutex_unlock(&s->lock);
	return evicted;
}

int
evfn__dead_store_list(struct evfn__dead_store *s, evfn_dead_letter **out,
                      size_t max, size_t offset)
{
	int n = 0;
	pthread_mutex_lock(&s->lock);
	evfn_dead_letter *dl = s->letters.head;
	for (; dl && offset > 0; dl = dl->next)
		offset--;
	for (; dl && (size_t)n < max && n < INT32_MAX; dl = dl->next) {
		atomic_fetch_add(&dl->refs, 1);
		out[n++] = dl;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t
evfn__dead_store_count(struct evfn__dead_store *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t
evfn__dead_store_evicted(struct evfn__dead_store *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t n = s->evicted;
	pthread_mutex_unlock(&s->lock);
	return n;
}

evfn_dead_letter *
evfn__dead_store_find(struct evfn__dead_store *s, uint64_t id)
{
	pthread_mutex_lock(&s->lock);
	evfn_dead_letter *dl = s->letters.head;
	while (dl && dl->id != id)
		dl = dl->next;
	if (dl)
		atomic_fetch_add(&dl->refs, 1);
	pthread_mutex_unlock(&s->lock);
	return dl;
}

uint64_t
evfn__dead_store_first_id(struct evfn__dead_store *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t id = s->letters.head ? s->letters.head->id : 0;
	pthread_mutex_unlock(&s->lock);
	return id;
}

static bool
has_id(const evfn_dead_letter *dl, void *arg)
{
	return dl->id == *(const uint64_t *)arg;
}

int
evfn__dead_store_delete(struct evfn__dead_store *s, uint64_t id)
{
	struct evfn__dead_list taken = {NULL, NULL};
	pthread_mutex_lock(&s->lock);
	s->n -= evfn__dead_list_take_if(&s->letters, has_id, &id, &taken);
	pthread_mutex_unlock(&s->lock);
	if (!taken.head)
		return EVFN_ENOENT;
	evfn_dead_letter_unref(taken.head);
	return 0;
}

int
evfn__dead_store_purge(struct evfn__dead_store *s)
{
	pthread_mutex_lock(&s->lock);
	struct evfn__dead_list list = s->letters;
	int n = (int)EVFN__MIN(s->n, (size_t)INT32_MAX);
	s->letters = (struct evfn__dead_list){NULL, NULL};
	s->n = 0;
	pthread_mutex_unlock(&s->lock);
	evfn_dead_letter *dl;
	while ((dl = evfn__dead_list_pop(&list)))
		evfn_dead_letter_unref(dl);
	return n;
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
