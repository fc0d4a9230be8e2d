/* SPDX-License-Identifier: MIT */
/*
 * String-pair lists shared by event extensions and response metadata.
 */
#include <string.h>

#include "common-internal.h"
#include "kv-internal.h"

int
evfn__kv_set(struct evfn__kv **list, const char *key, const char *value)
{
	struct evfn__kv **link = list;
	for (; *link; link = &(*link)->next)
		if (strcmp((*link)->key, key) == 0)
			break;
	if (!value) {
		struct evfn__kv *gone = *link;
		if (gone) {
			*link = gone->next;
			evfn__free(gone->value);
			evfn__free(gone);
		}
		return 0;
	}
	char *copy = evfn__strdup(value);
	if (!copy)
		return EVFN_ENOMEM;
	if (*link) {
		evfn__free((*link)->value);
		(*link)->value = copy;
		return 0;
	}
	size_t klen = strlen(key) + 1;
	struct evfn__kv *kv = evfn__malloc(sizeof(*kv) + klen);
	if (!kv) {
		evfn__free(copy);
		return EVFN_ENOMEM;
	}
	kv->next = NULL;
	kv->value = copy;
	memcpy(kv->key, key, klen);
	*link = kv; /* appended: insertion order is kept */
	return 0;
}

const char *
evfn__kv_get(const struct evfn__kv *list, const char *key)
{
	for (; list; list = list->next)
		if (strcmp(list->key, key) == 0)
			return list->value;
	return NULL;
}

const struct evfn__kv *
evfn__kv_at(const struct evfn__kv *list, size_t i)
{
	for (; list && i > 0; i--)
		list = list->next;
	return list;
}

void
evfn__kv_free(struct evfn__kv **list)
{
	struct evfn__kv *kv = *list;
	while (kv) {
		struct evfn__kv *next = kv->next;
		evfn__free(kv->value);
		evfn__free(kv);
		kv = next;
	}
	*list = NULL;
}
