/* SPDX-License-Identifier: MIT */
/*
 * Strings kept for the life of the library. A runtime's default CloudEvents
 * source is interned here because events stamped with it borrow the pointer
 * (a copy per event would cost an allocation on the publish path), and such
 * events, or dead letters holding them, may outlive the runtime that stamped
 * them. Each distinct string is stored once, so a host that creates many
 * runtimes with the same source keeps one copy; all are released when the
 * library is unloaded.
 */
#include <pthread.h>
#include <string.h>

#include "common-internal.h"
#include "intern-internal.h"

struct interned {
	struct interned *next;
	char s[];
};

static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static struct interned *interned_head;

const char *
evfn__intern(const char *s)
{
	size_t len = strlen(s);
	pthread_mutex_lock(&intern_lock);
	struct interned *it = interned_head;
	while (it && strcmp(it->s, s) != 0)
		it = it->next;
	if (!it) {
		it = evfn__malloc(sizeof(*it) + len + 1);
		if (it) {
			memcpy(it->s, s, len + 1);
			it->next = interned_head;
			interned_head = it;
		}
	}
	pthread_mutex_unlock(&intern_lock);
	return it ? it->s : NULL;
}

/* At unload (dlclose or exit) nothing of the library can use them any
 * more: an event still alive in the host would be read through code that
 * is gone too. */
__attribute__((destructor)) static void
release_interned(void)
{
	pthread_mutex_lock(&intern_lock);
	struct interned *it = interned_head;
	interned_head = NULL;
	pthread_mutex_unlock(&intern_lock);
	while (it) {
		struct interned *next = it->next;
		evfn__free(it);
		it = next;
	}
}
