/* SPDX-License-Identifier: MIT */
/*
 * The dead-letter store (deadstore.c): the events that ended without
 * success, oldest first, bounded (the oldest is evicted), under a lock
 * of its own so that reading it never stalls dispatch; that lock may be
 * taken with the runtime lock held, never the other way round. A leaf:
 * the state machine adds a dead letter at the moment it counts one, so
 * that a snapshot never shows more dead letters than the store holds.
 */
#ifndef EVFN_DEADSTORE_INTERNAL_H
#define EVFN_DEADSTORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn/deadletter.h>

#include "list-internal.h"

struct evfn_dead_letter {
	atomic_uint refs;
	uint64_t id;
	evfn_event *ev;
	int code;
	unsigned attempts;
	char *error;
	int64_t first_ns, last_ns;
	struct evfn_dead_letter *next; /* in the store, under its lock */
	char fn_name[];
};
EVFN__LIST(evfn__dead_list, struct evfn_dead_letter, next)

struct evfn__dead_store {
	pthread_mutex_t lock;
	struct evfn__dead_list letters; /* oldest first; one reference each */
	size_t n;
	size_t capacity;            /* 0: nothing is stored */
	uint64_t next_id;
	uint64_t evicted;
};

void evfn__dead_store_init(struct evfn__dead_store *s, size_t capacity);
/* Whether the store keeps dead letters at all (its capacity is not 0). */
static inline bool
evfn__dead_store_keeps(const struct evfn__dead_store *s)
{
	return s->capacity > 0;
}
/* Drops every letter (through evfn__dead_store_purge()) and the lock. */
void evfn__dead_store_destroy(struct evfn__dead_store *s);

/* A dead letter of the function named fn_name (copied): a reference to
 * ev, the code, attempts, error (copied; NULL for none) and the wall
 * times of the first and last attempts. NULL when out of memory. */
evfn_dead_letter *evfn__dead_letter_new(const char *fn_name, evfn_event *ev,
                                        int code, unsigned attempts,
                                        const char *error, int64_t first_ns,
                                        int64_t last_ns);
/* Takes dl (its reference) into the store, giving it the next id. When
 * the store is full the oldest letter is evicted and returned, for the
 * caller to unref with no runtime lock held (it may hold the last
 * reference to an event whose payload the host frees); NULL otherwise. */
evfn_dead_letter *evfn__dead_store_add(struct evfn__dead_store *s,
                                       evfn_dead_letter *dl);
/* evfn__dead_store_add() of a letter kept elsewhere (the journal) under
 * its id there (0: the next id), which must be above every id in the
 * store: later ids continue above it. */
evfn_dead_letter *evfn__dead_store_restore(struct evfn__dead_store *s,
                                           evfn_dead_letter *dl, uint64_t id);
/* New letters get ids above last. */
void evfn__dead_store_skip_ids(struct evfn__dead_store *s, uint64_t last);
/* References to up to max letters from offset, oldest first, in out;
 * returns how many. */
int evfn__dead_store_list(struct evfn__dead_store *s, evfn_dead_letter **out,
                          size_t max, size_t offset);
size_t evfn__dead_store_count(struct evfn__dead_store *s);
uint64_t evfn__dead_store_evicted(struct evfn__dead_store *s);
/* A reference to the letter with this id, or NULL. */
evfn_dead_letter *evfn__dead_store_find(struct evfn__dead_store *s,
                                        uint64_t id);
/* The oldest letter's id, or 0 when the store is empty. */
uint64_t evfn__dead_store_first_id(struct evfn__dead_store *s);
/* Removes the letter with this id and drops the store's reference;
 * returns 0 or EVFN_ENOENT. */
int evfn__dead_store_delete(struct evfn__dead_store *s, uint64_t id);
/* Removes every letter; returns how many (at most INT32_MAX). */
int evfn__dead_store_purge(struct evfn__dead_store *s);

#endif /* EVFN_DEADSTORE_INTERNAL_H */
