/* SPDX-License-Identifier: MIT */
/*
 * An allocator for reaching out-of-memory paths: allocations succeed
 * while failing_alloc_left is negative, else that many more succeed and
 * the rest fail. It also keeps the size of the latest malloc. A test file
 * installs it in main(), before evfn allocates anything; it then goes to
 * the C library until a case sets failing_alloc_left.
 */
#ifndef EVFN_TEST_FAILING_ALLOC_H
#define EVFN_TEST_FAILING_ALLOC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <evfn/alloc.h>

static atomic_int failing_alloc_left = -1;
static atomic_size_t failing_alloc_last_malloc;

static bool
failing_alloc_allowed(void)
{
	int n = atomic_load(&failing_alloc_left);
	if (n < 0)
		return true;
	if (n == 0)
		return false;
	atomic_fetch_sub(&failing_alloc_left, 1);
	return true;
}

static void *
failing_malloc(size_t n)
{
	atomic_store(&failing_alloc_last_malloc, n);
	return failing_alloc_allowed() ? malloc(n) : NULL;
}

static void *
failing_realloc(void *p, size_t n)
{
	return failing_alloc_allowed() ? realloc(p, n) : NULL;
}

static void *
failing_calloc(size_t n, size_t size)
{
	return failing_alloc_allowed() ? calloc(n, size) : NULL;
}

/* Installs the allocator; false if evfn allocated before. */
static inline bool
failing_alloc_install(void)
{
	return evfn_set_allocator(failing_malloc, failing_realloc,
	                          failing_calloc, free) == 0;
}

#endif /* EVFN_TEST_FAILING_ALLOC_H */
