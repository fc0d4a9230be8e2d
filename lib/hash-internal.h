/* SPDX-License-Identifier: MIT */
/*
 * The only file that includes <uthash.h>. uthash's default reaction to an
 * allocation failure is exit(), which a library must never do: here it
 * allocates through evfn's allocator and reports failure by setting the
 * flag that the including code passes in evfn__hash_oom and checks after
 * each HASH_ADD.
 */
#ifndef EVFN_HASH_INTERNAL_H
#define EVFN_HASH_INTERNAL_H

#include "common-internal.h"

#define HASH_NONFATAL_OOM 1
#define uthash_malloc(sz) evfn__malloc(sz)
#define uthash_free(ptr, sz) evfn__free(ptr)
/* Callers declare `bool evfn__hash_oom = false;` in the scope of the add. */
#define uthash_nonfatal_oom(obj) (evfn__hash_oom = true)

#include <uthash.h>

#endif /* EVFN_HASH_INTERNAL_H */
