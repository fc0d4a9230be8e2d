/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Controlling work already accepted: pausing and resuming a function, and
 * cancelling events by id. Anything not declared under include/evfn/ is
 * private.
 *
 * Thread-safety: every call here may be made from any thread, including
 * from inside handlers.
 */
#ifndef EVFN_CONTROL_H
#define EVFN_CONTROL_H

#include <evfn/export.h>
#include <evfn/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Pause a function: no new attempt of it starts (as Lambda's reserved
 * concurrency 0), but unlike Lambda its events keep being accepted and
 * wait in its queue, and due retries wait there too; attempts running now
 * finish. The EVFN_STAT_PAUSED gauge shows it. Pausing a paused function
 * is a no-op. At drain, a paused function's queue is handed back.
 * @param rt      the runtime. Not NULL.
 * @param fn_name the function. Not NULL.
 * @return 0; EVFN_EINVAL for NULL rt or fn_name; EVFN_ENOFN when no
 *         function has that name.
 *
 * Ownership: fn_name is read during the call only.
 * @since 0.1
 */
EVFN_EXPORT int evfn_pause(evfn_rt *rt, const char *fn_name);

/**
 * Resume a paused function: its queued events start again in order.
 * Resuming a running function is a no-op.
 * @param rt      the runtime. Not NULL.
 * @param fn_name the function. Not NULL.
 * @return as evfn_pause().
 *
 * Ownership: fn_name is read during the call only.
 * @since 0.1
 */
EVFN_EXPORT int evfn_resume(evfn_rt *rt, const char *fn_name);

/**
 * Cancel an event by its id (evfn_event_id(): the decimal sequence number
 * evfn_emit() returned, unless the id was set). Wherever the event waits
 * (queued, delayed, behind its ordering key, or for a retry) it ends at
 * once as cancelled (EVFN_STAT_CANCELLED; an event-log record; no
 * destination, no dead letter; a waiting evfn_invoke() or evfn_submit()
 * gets EVFN_ECANCELED). Where an attempt runs now, cancellation is
 * requested: evfn_ctx_cancelled() turns true (the function's cancel hook
 * is not called: it is for deadlines), and unless the attempt returns
 * EVFN_OK the event ends as cancelled instead of retrying. The
 * search looks at every waiting event of the function(s): it costs time
 * in proportion to what waits.
 * @param rt the runtime. Not NULL.
 * @param fn_name the one function to cancel it in, or NULL for every
 *        function it went to.
 * @param event_id the event's id. Not NULL.
 * @return the number of invocations cancelled or asked to cancel (>= 1);
 *         EVFN_ENOENT when none waits or runs under that id; EVFN_EINVAL
 *         for NULL rt or event_id; EVFN_ENOFN for an unknown fn_name;
 *         EVFN_ENOMEM when a matching queued event could not be
 *         cancelled for lack of memory (it stays queued) and none was.
 *
 * Ownership: fn_name and event_id are read during the call only.
 * @since 0.1
 */
EVFN_EXPORT int evfn_cancel(evfn_rt *rt, const char *fn_name,
                            const char *event_id);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_CONTROL_H */
