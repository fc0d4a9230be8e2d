/* SPDX-License-Identifier: MIT */
/*
 * A small list of string pairs, in insertion order, for the few
 * attributes an object carries (CloudEvents extensions, response
 * metadata). Linear lookup: these lists hold a handful of entries.
 */
#ifndef EVFN_KV_INTERNAL_H
#define EVFN_KV_INTERNAL_H

#include <stddef.h>

struct evfn__kv {
	struct evfn__kv *next;
	char *value;
	char key[];
};

/* Sets key to a copy of value, replacing an earlier value; NULL value
 * removes the key. Returns 0 or EVFN_ENOMEM (the list is unchanged). */
int evfn__kv_set(struct evfn__kv **list, const char *key, const char *value);
/* The value of key, or NULL. */
const char *evfn__kv_get(const struct evfn__kv *list, const char *key);
/* The i-th pair (0-based) or NULL past the end. */
const struct evfn__kv *evfn__kv_at(const struct evfn__kv *list, size_t i);
/* Frees the whole list and sets *list to NULL. */
void evfn__kv_free(struct evfn__kv **list);

#endif /* EVFN_KV_INTERNAL_H */
