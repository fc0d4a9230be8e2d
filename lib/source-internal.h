/* SPDX-License-Identifier: MIT */
/*
 * What triggers and sources (lib/sources/) may use of the runtime: the
 * whole of it, through functions. A source holds an evfn_rt pointer and
 * otherwise sees the runtime only as its public API does; it never
 * reads the runtime's fields or takes its lock. The functions are in
 * source.c, each taking what lock it needs itself.
 */
#ifndef EVFN_SOURCE_INTERNAL_H
#define EVFN_SOURCE_INTERNAL_H

#include <stdbool.h>

#include <stddef.h>

#include <evfn/emit.h>
#include <evfn/runtime.h>

/* Triggers and sources count themselves on the runtime while they live,
 * so that evfn_rt_free() refuses (EVFN_EBUSY) to pull the runtime
 * from under them. */
void evfn__rt_attach(evfn_rt *rt);
void evfn__rt_detach(evfn_rt *rt);

/* Whether the runtime may take a new trigger sending to function (NULL:
 * to subscribers): 0, EVFN_ESHUTDOWN once it drains, or EVFN_ENOFN when
 * no function has that name. Functions are never unregistered, so a yes
 * stays true. */
int evfn__rt_check_target(evfn_rt *rt, const char *function);

/* Publishes the events of evs to function fn in order, as many from the
 * front as it takes, EVFN_BATCH_MAX at a time under one hold of the
 * runtime lock: with cb not NULL each as evfn_submit() would with args[i]
 * (args may be NULL). *taken receives how many were taken (each taken
 * event's cb runs once, the others' never). Returns 0 when all were
 * taken, else why evs[*taken] was not (the codes of
 * evfn_submit_batch()). */
int evfn__rt_publish_front(evfn_rt *rt, const char *fn,
                           evfn_event *const *evs, size_t n,
                           evfn_result_cb cb, void *const *args,
                           size_t *taken);

/* Whether a function of that name is registered. */
bool evfn__rt_has_function(evfn_rt *rt, const char *name);

/* The attempts the function named may make, or 0 when there is none. */
int evfn__rt_function_attempts(evfn_rt *rt, const char *name);

/* True until drain stops intake. */
bool evfn__rt_accepting(evfn_rt *rt);

/* Whether the runtime drained with nothing running: every event it
 * admitted has ended, so every result still to come is due on the
 * loop. */
bool evfn__rt_drained(evfn_rt *rt);

/* Runs fn(arg) on the loop thread and returns once it ran: directly when
 * called there or while no loop can be running (an own loop not started
 * yet); otherwise through an event, running the host's base meanwhile in
 * embedded mode when nobody else drives it. Returns 0, or EVFN_ENOMEM
 * when fn could not be queued and did not run. */
int evfn__rt_run_on_loop(evfn_rt *rt, void (*fn)(void *), void *arg);

/* Whether this thread is inside one of evfn's callbacks on rt's loop,
 * where the loop cannot turn while the thread waits. */
bool evfn__rt_in_loop_callback(evfn_rt *rt);

/* Whether nobody but the caller may run rt's base: it is a host's, or
 * evfn's own loop thread has not started. */
bool evfn__rt_loop_unattended(evfn_rt *rt);

/* Whether the calling thread is the one evfn's loop callbacks last ran
 * on (a host's loop thread, embedded). */
bool evfn__rt_loop_thread_is_self(evfn_rt *rt);

/* Passes a diagnostic to the runtime's log callback. */
void evfn__rt_log(evfn_rt *rt, evfn_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* EVFN_SOURCE_INTERNAL_H */
