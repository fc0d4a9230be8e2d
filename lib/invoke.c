/* SPDX-License-Identifier: MIT */
/*
 * Running one attempt and recording its outcome. An attempt ends in OK,
 * RETRY, FAIL or (loop executor) PENDING; the outcome decides whether the
 * event succeeded, waits for a retry, or ends dead-lettered, expired or
 * handed back. Also the handler's view of it (evfn_ctx_*) and the
 * synchronous invoke, which waits for the final outcome.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <evfn/alloc.h>
#include <evfn/context.h>
#include <evfn/emit.h>

#include "backoff-internal.h"
#include "common-internal.h"
#include "runtime-internal.h"

