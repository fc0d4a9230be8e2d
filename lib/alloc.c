/* SPDX-License-Identifier: MIT */
/*
 * The replaceable allocator. Every allocation in evfn goes through
 * evfn__malloc() and friends, so that evfn_set_allocator() can route all of
 * it; the switch is refused once anything has been allocated, because
 * memory from one heap must never be released to another.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <evfn/alloc.h>

#include "common-internal.h"

static struct {
	void *(*malloc_fn)(size_t);
	void *(*realloc_fn)(void *, size_t);
	void *(*calloc_fn)(size_t, size_t);
	void (*free_fn)(void *);
} allocator = {malloc, realloc, calloc, free};

/* Set by the first allocation; after it the allocator is fixed. */
static atomic_bool allocated;

int
evfn_set_allocator(void *(*malloc_fn)(size_t),
                   void *(*realloc_fn)(void *, size_t),
                   void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *))
{
	if (!malloc_fn || !realloc_fn || !calloc_fn || !free_fn)
		return EVFN_EINVAL;
	if (atomic_load(&allocated))
		return EVFN_EPERM;
	allocator.malloc_fn = malloc_fn;
	allocator.realloc_fn = realloc_fn;
	allocator.calloc_fn = calloc_fn;
	allocator.free_fn = free_fn;
	return 0;
}

void *
evfn__malloc(size_t size)
{
	if (EVFN__UNLIKELY(!atomic_load_explicit(&allocated,
	                                         memory_order_relaxed)))
		atomic_store(&allocated, true);
	return allocator.malloc_fn(size ? size : 1);
}

void *
evfn__calloc(size_t n, size_t size)
{
	if (EVFN__UNLIKELY(!atomic_load_explicit(&allocated,
	                                         memory_order_relaxed)))
		atomic_store(&allocated, true);
	return allocator.calloc_fn(n ? n : 1, size ? size : 1);
}

void *
evfn__realloc(void *ptr, size_t size)
{
	if (EVFN__UNLIKELY(!atomic_load_explicit(&allocated,
	                                         memory_order_relaxed)))
		atomic_store(&allocated, true);
	return allocator.realloc_fn(ptr, size ? size : 1);
}

void
evfn__free(void *ptr)
{
	if (ptr)
		allocator.free_fn(ptr);
}

void
evfn_free(void *ptr)
{
	evfn__free(ptr);
}

char *
evfn__strdup(const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *copy = evfn__malloc(n);
	if (copy)
		memcpy(copy, s, n);
	return copy;
}

int
evfn__strreplace(char **slot, const char *s)
{
	char *copy = NULL;
	if (s && !(copy = evfn__strdup(s)))
		return EVFN_ENOMEM;
	evfn__free(*slot);
	*slot = copy;
	return 0;
}
