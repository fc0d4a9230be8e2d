/* SPDX-License-Identifier: MIT */
/**
 * @file
 * The opaque types shared by every evfn header, the handler outcome codes
 * and the limits on names. Objects are only ever handled through pointers;
 * their layout is private. Anything not declared under include/evfn/ is
 * private.
 */
#ifndef EVFN_TYPES_H
#define EVFN_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A runtime: registry, queues, worker pool, timers. */
typedef struct evfn_rt evfn_rt;
/** Builder for runtime options. */
typedef struct evfn_rt_options evfn_rt_options;
/** A registered function: handler plus configuration, owned by its runtime. */
typedef struct evfn_fn evfn_fn;
/** Builder for function options. */
typedef struct evfn_fn_options evfn_fn_options;
/** An event: CloudEvents 1.0 attributes plus payload, reference counted. */
typedef struct evfn_event evfn_event;
/** What a running handler sees: attempt, deadline, respond, emit. */
typedef struct evfn_ctx evfn_ctx;
/** An event's final outcome, as a result callback sees it. */
typedef struct evfn_result evfn_result;
/** A consistent snapshot of counters for one function or for all. */
typedef struct evfn_stats evfn_stats;

/** Longest function name or topic, in bytes, without the terminating NUL. */
#define EVFN_NAME_MAX 255

/** Longest duration any evfn option or delay takes, in milliseconds: ten
 * years of 366 days. Every setter of a duration refuses a longer one with
 * EVFN_ERANGE, so that no deadline, due time or expiry computed from it
 * can overflow. @since 0.1 */
#define EVFN_DURATION_MAX_MS INT64_C(316224000000)

/**
 * Releases a buffer handed to evfn by a `_ref` call (evfn_emit_ref(),
 * evfn_event_new_ref()); evfn calls it exactly once, also when that call
 * fails, on whichever thread drops the last use of the buffer.
 *
 * @param data the buffer given to the `_ref` call.
 * @param arg  the free_arg given with it.
 */
typedef void (*evfn_free_cb)(void *data, void *arg);


/**
 * What a handler returns.
 *
 * EVFN_OK: done, the event succeeded. EVFN_RETRY: transient failure, try
 * again after the function's backoff while attempts remain. EVFN_FAIL:
 * permanent failure, dead-letter now. EVFN_PENDING: (loop executor only) the
 * handler completes later through evfn_ctx_complete(); a pool handler that
 * returns it is treated as EVFN_FAIL.
 */
typedef enum evfn_outcome {
	EVFN_OK = 0,
	EVFN_RETRY = 1,
	EVFN_FAIL = 2,
	EVFN_PENDING = 3
} evfn_outcome;

/**
 * A handler. Runs on a pool worker or on the loop thread (see
 * evfn_fn_options_set_executor()).
 *
 * @param ctx the invocation context, valid until the handler returns (or,
 *        after EVFN_PENDING, until evfn_ctx_complete()).
 * @param ev  the event, borrowed for the same span; evfn_event_ref() keeps it.
 * @param userdata the pointer given to evfn_register().
 * @return an evfn_outcome.
 */
typedef int (*evfn_handler)(evfn_ctx *ctx, const evfn_event *ev,
                            void *userdata);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_TYPES_H */
