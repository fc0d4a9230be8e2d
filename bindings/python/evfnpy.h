/* SPDX-License-Identifier: MIT */
/*
 * Shared declarations of the CPython extension module evfn._evfn: the
 * object types (runtime, event, context, future, schedule, trigger, HTTP
 * server), the cancel registry, the completion thread, dead letters, flow
 * control, option conversion, payload encoding and the error mapping.
 * Each concept lives in its own .c file; this header is private to the
 * binding and uses only the public evfn API plus the CPython C API.
 */
#ifndef EVFNPY_H
#define EVFNPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <evfn.h>

/* --- helpers.c: calls nothing else of the binding --- */

/* Interns the method names and caches json.dumps, json.loads and
 * threading.Condition; PyInit__evfn first. 0, or -1 with an error set. */
int evfnpy_helpers_init(void);

/* _set_classes(by_code, base, outcomes, outcome, timeout, retry, fail,
 * error_text): the exception classes evfn/__init__.py registers. */
PyObject *evfnpy_set_classes(PyObject *mod, PyObject *args);

/* True once the interpreter is shutting down (our atexit hook ran, or
 * CPython itself is finalizing): evfn threads must not take the GIL any
 * more, since CPython ends threads that try. */
bool evfnpy_finalizing(void);

/* Marks the interpreter as shutting down; see evfnpy_finalizing(). */
void evfnpy_set_finalizing(void);

/* Raises the Python exception class registered for an evfn error code
 * (evfn.Error and its subclasses, see evfn/__init__.py) with
 * evfn_strerror() as the message. Returns NULL for convenient tail calls. */
PyObject *evfnpy_raise(int code);

/* As evfnpy_raise(), with a detail appended to the message. */
PyObject *evfnpy_raise_detail(int code, const char *detail);

/* As evfnpy_raise() for an event's final outcome: the exception carries
 * the last attempt's error message, the number of attempts and, as its
 * __cause__, the exception the last attempt raised (cause; may be NULL). */
PyObject *evfnpy_raise_outcome(int code, const char *error, unsigned attempts,
                               PyObject *cause);

/* Builds (without raising) the exception object evfnpy_raise_outcome()
 * would raise, with cause (the exception the last attempt raised, or
 * NULL) as its __cause__; NULL with a Python error set on failure. */
PyObject *evfnpy_outcome_error(int code, const char *error, unsigned attempts,
                               PyObject *cause);

/* A str for text from evfn (NULL: None), decoded as UTF-8 with invalid
 * bytes replaced: text from C or Lua handlers need not be UTF-8, and a
 * decoding error must never cost a result. New reference or NULL. */
PyObject *evfnpy_text(const char *s);
/* A dict of n counters, names[i] -> values[i] (the stats() of the
 * runtime, triggers and sources); a new reference, or NULL with an error
 * set. */
PyObject *evfnpy_counters(const char *const *names, const uint64_t *values,
                          int n);

/* The classes and helpers evfn/__init__.py registers (borrowed; NULL
 * until then): evfn.Timeout, raised inside a handler thread that passed
 * its deadline; evfn.Retry and evfn.Fail, which handlers raise to choose
 * the outcome; error_text(exc), the attempt's error for an exception
 * (its type and message first, then its traceback); the exception
 * class TimedOut; threading.Condition. */
PyObject *evfnpy_timeout_class(void);
PyObject *evfnpy_retry_class(void);
PyObject *evfnpy_fail_class(void);
PyObject *evfnpy_error_text(void);
PyObject *evfnpy_condition_class(void);

/* Interned names of the methods the binding calls often, so that each
 * call does not make (and the type's method cache keep) a new str. */
struct evfnpy_names {
	PyObject *acquire, *release, *notify_all, *waiters, *wait;
	PyObject *add_result, *add_exception, *add_cancelled;
	PyObject *send, *throw_, *run;
};
extern struct evfnpy_names evfnpy_names;

/* Cached json.dumps and json.loads; borrowed. */
PyObject *evfnpy_json_dumps(void);
PyObject *evfnpy_json_loads(void);

/* --- options.c --- */

/* Converters of options given as Python objects; each returns 0, or -1
 * with TypeError (wrong type) or evfn.InvalidArgument (out of range)
 * raised, the message naming the option. Seconds become whole
 * milliseconds (ms < 0 is left to evfn to refuse). */
int evfnpy_opt_int(PyObject *v, const char *name, int *out);
int evfnpy_opt_int64(PyObject *v, const char *name, int64_t *out);
int evfnpy_opt_double(PyObject *v, const char *name, double *out);
int evfnpy_seconds_to_ms(PyObject *s, const char *name, int64_t *ms);
/* Raises the error evfn gave (code) for option name=value; value may be
 * NULL. Returns NULL. */
PyObject *evfnpy_raise_option(int code, const char *name, PyObject *value);
/* What an option setter returned: 0 for rc >= 0, else -1 with the error
 * raised as evfnpy_raise_option() does. */
int evfnpy_option_result(int rc, const char *name, PyObject *value);

/* Applies register()'s flow options to o: batch (max_items, window s),
 * rate_limit (per_second, burst), circuit_breaker (consecutive_failures,
 * failure_rate, min_calls, window s, cooldown s, policy); None skips one.
 * 0, or -1 with a Python error set. */
int evfnpy_flow_options(evfn_fn_options *o, PyObject *batch, PyObject *rate,
                        PyObject *breaker);

/* --- payload.c --- */

/* A payload ready to hand to evfn: bytes borrowed from `owner`, which the
 * caller releases with evfnpy_payload_release() once evfn has copied them.
 * dct is the CloudEvents datacontenttype the value implies (static; NULL
 * for raw bytes). */
struct evfnpy_payload {
	const char *data;
	size_t len;
	const char *dct;
	PyObject *owner;
	Py_buffer view;
	bool has_view;
};

/* Encodes bytes-like objects as they are, str as UTF-8 and anything else
 * through json.dumps(). Returns 0, or -1 with a Python error set. */
int evfnpy_payload_get(PyObject *obj, struct evfnpy_payload *p);
void evfnpy_payload_release(struct evfnpy_payload *p);

/* --- cancel.c --- */

/* A thread waiting without the GIL (a synchronous invoke) that the
 * deadline of the handler it runs in must wake: sem is posted and
 * interrupted set. */
struct evfnpy_wake {
	sem_t sem;
	atomic_bool interrupted;
};

/* One running Python handler (or one step of an async handler's
 * coroutine) as the cancel registry sees it. Lives on the stack of the
 * C code that runs it. */
struct evfnpy_running {
	struct evfnpy_running *next;
	struct evfnpy_running *outer; /* the thread's previous entry */
	evfn_ctx *ctx;
	unsigned long thread_id;
	struct evfnpy_wake *wake; /* a nested invoke waiting (under mu) */
	bool cancel; /* the core cancelled the attempt (under mu) */
	bool fired;  /* Timeout was raised in the thread (under mu) */
};

/* Which Python handlers run on which threads, so that the core's cancel
 * hook (on the loop thread, which never takes the GIL) can have
 * evfn.Timeout raised in the right one by the completion thread. Lock
 * order: the GIL, then mu. */
struct evfnpy_cancels {
	pthread_mutex_t mu;
	struct evfnpy_running *running;
};

int evfnpy_cancels_init(struct evfnpy_cancels *c);
void evfnpy_cancels_destroy(struct evfnpy_cancels *c);
/* With the GIL, on the handler's thread, around the call. arm() returns
 * true when the attempt is already cancelled (its deadline passed while
 * the handler waited for the GIL): the handler must not run. disarm()
 * reports whether the attempt was cancelled, and takes back a Timeout
 * that was raised but not yet delivered, so it cannot hit the thread's
 * next handler. */
bool evfnpy_cancels_arm(struct evfnpy_cancels *c, struct evfnpy_running *r,
                        evfn_ctx *ctx);
bool evfnpy_cancels_disarm(struct evfnpy_cancels *c,
                           struct evfnpy_running *r);
/* With the GIL: if this thread runs a handler, the handler's deadline
 * (or rt.cancel) will wake w; returns true when that already happened
 * (w need not be waited for). unwatch() undoes it before w goes away. */
bool evfnpy_cancels_watch(struct evfnpy_cancels *c, struct evfnpy_wake *w);
void evfnpy_cancels_unwatch(struct evfnpy_cancels *c, struct evfnpy_wake *w);
/* No GIL (the loop thread): marks the handler running ctx as cancelled.
 * True when the completion thread must now raise (evfnpy_cancels_fire). */
bool evfnpy_cancels_request(struct evfnpy_cancels *c, evfn_ctx *ctx);
/* With the GIL: raise Timeout in every cancelled handler not yet told. */
void evfnpy_cancels_fire(struct evfnpy_cancels *c);
/* With the GIL: raise Timeout now in what runs for ctx on other threads
 * (the steps of an async handler's coroutine, when the worker waiting
 * for it saw the deadline pass before the core's watchdog did). */
void evfnpy_cancels_interrupt(struct evfnpy_cancels *c, evfn_ctx *ctx);

/* --- completion.c --- */

struct evfnpy_done;

/* The thread that runs Python on behalf of evfn's loop and worker threads,
 * in batches: it resolves invoke_async futures, raises Timeout in
 * cancelled handlers and delivers event-log records; see completion.c. */
struct evfnpy_completer {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	struct evfnpy_done *head, *tail;
	struct evfnpy_cancels *cancels; /* borrowed */
	PyObject *registry;  /* borrowed: the runtime's pending futures */
	PyObject *condition; /* borrowed: the runtime's futures' Condition */
	PyObject *on_record; /* owned; NULL for no event log */
	bool cancel_pending;
	bool started;
	bool stop;
};

int evfnpy_completer_init(struct evfnpy_completer *c,
                          struct evfnpy_cancels *cancels, PyObject *registry,
                          PyObject *condition);
/* Starts the thread; 0 or -errno. Idempotent. */
int evfnpy_completer_start(struct evfnpy_completer *c);
/* Resolves what is queued, then stops the thread; call without the GIL
 * and after the runtime is freed (free delivers the last results). */
void evfnpy_completer_stop(struct evfnpy_completer *c);
void evfnpy_completer_destroy(struct evfnpy_completer *c);
/* With the GIL: the record of one submission of ev, holding references
 * to the future it resolves and to ev; NULL on ENOMEM. */
struct evfnpy_done *evfnpy_done_new(struct evfnpy_completer *c,
                                    PyObject *future, const evfn_event *ev);
/* With the GIL: drop a record whose submission failed. */
void evfnpy_done_discard(struct evfnpy_done *d);
/* With the GIL: cancel the record's event if it still waits (or has
 * just started, before its handler ran Python code); true if evfn
 * cancelled it. */
bool evfnpy_done_cancel(struct evfnpy_done *d);
/* A malloc'ed, NUL-terminated copy of len bytes, or NULL; no GIL needed. */
char *evfnpy_dup(const void *data, size_t len);
/* The evfn_result_cb of a submission (arg: its record); no GIL. */
void evfnpy_completer_result(const evfn_result *res, void *arg);
/* No GIL: have the thread call evfnpy_cancels_fire() soon. */
void evfnpy_completer_cancel(struct evfnpy_completer *c);
/* The evfn_record_cb of the event log (arg: the completer); no GIL, any
 * thread. The record is copied and handed to c->on_record later. */
void evfnpy_completer_record(const evfn_record *rec, void *arg);

/* --- event.c --- */

extern PyTypeObject evfnpy_event_type;
/* Wraps an event, taking a reference to it. New reference or NULL. */
PyObject *evfnpy_event_wrap(const evfn_event *ev);
/* Builds an unpublished event of type with data (see payload.c) and the
 * CloudEvents attributes of kw (id, source, subject, datacontenttype,
 * time_ns, extensions; None values ignored) and its flow attributes (key:
 * the ordering key; delay: seconds; at: an aware datetime or seconds since
 * the epoch). 0 and *out (one reference),
 * or -1 with a Python error set. */
int evfnpy_event_build(const char *type, PyObject *data, PyObject *kw,
                       evfn_event **out);
/* The C event of an evfn.Event, or NULL if obj is not one (no error). */
evfn_event *evfnpy_event_get(PyObject *obj);
/* An aware UTC datetime for ns since the Unix epoch (microsecond
 * precision). New reference or NULL. */
PyObject *evfnpy_datetime_from_ns(int64_t ns);

/* --- context.c --- */

typedef struct {
	PyObject_HEAD
	evfn_ctx *ctx; /* NULL once the handler returned */
	struct evfnpy_cancels *cancels; /* the runtime's (for _step) */
} evfnpy_context;

extern PyTypeObject evfnpy_context_type;
PyObject *evfnpy_context_wrap(evfn_ctx *ctx, struct evfnpy_cancels *cancels);
/* The events of ctx's call as a new list (one, or a batch's items); new
 * reference or NULL. */
PyObject *evfnpy_context_events(evfn_ctx *ctx);
/* Called when the handler returned: later use raises evfn.Error(EPERM). */
void evfnpy_context_invalidate(PyObject *c);

/* --- future.c --- */

/* Creates the Future type (a subclass of concurrent.futures.Future) and
 * adds it to mod; cancel is how Future.cancel() cancels a pending
 * submission (evfnpy_done_cancel, passed in by module.c: completion.c
 * sits above future.c). 0 or -1. */
int evfnpy_future_init(PyObject *mod, bool (*cancel)(struct evfnpy_done *));
/* A pending Future sharing condition (a threading.Condition) with the
 * runtime's other futures; new reference or NULL. */
PyObject *evfnpy_future_new(PyObject *condition);
bool evfnpy_future_check(PyObject *obj);
void evfnpy_future_set_seq(PyObject *f, PyObject *seq);
/* Links the future to its pending submission (for cancel()). */
void evfnpy_future_bind(PyObject *f, struct evfnpy_done *rec);
/* The exception the event's last attempt raised, borrowed, or NULL. */
PyObject *evfnpy_future_cause(PyObject *f);
/* A handler starts on the future's event: marks it running; false if
 * the future was cancelled (the handler must not run). */
bool evfnpy_future_start(PyObject *f);
/* The attempt ended (the event may be retried): no longer running;
 * cause (NULL: none) is what it raised. */
void evfnpy_future_stop(PyObject *f, PyObject *cause);
/* The condition the runtime's futures share: lock() returns 0 or -1;
 * unlock(notify) wakes the threads waiting in result() first. */
int evfnpy_future_lock(PyObject *condition);
void evfnpy_future_unlock(PyObject *condition, bool notify);
/* With the condition locked: the event's outcome, a result or an
 * exception (the other NULL); tells concurrent.futures.wait()'s waiters.
 * False when the future was cancelled meanwhile (nothing changed). */
bool evfnpy_future_finish(PyObject *f, PyObject *result, PyObject *exception);
/* Unlocked, after finish() returned true: runs the done callbacks. */
void evfnpy_future_callbacks(PyObject *f);
/* The registry of pending submissions (a dict keyed by event address,
 * whose events the submissions keep alive): add returns 0 or -1; find
 * returns a borrowed future or NULL (no error). */
int evfnpy_registry_add(PyObject *registry, const evfn_event *ev,
                        PyObject *f);
void evfnpy_registry_remove(PyObject *registry, const evfn_event *ev);
PyObject *evfnpy_registry_find(PyObject *registry, const evfn_event *ev);

/* --- handler.c --- */

struct evfnpy_runtime;
/* How a function's handler is called: with (event) or (event, ctx); a
 * list of events for batches; which exceptions retry (NULL: all not in
 * fail_on) and which fail at once; the asyncio loop object whose
 * run(awaitable, ctx) runs what an async handler returns. */
struct evfnpy_call_spec {
	bool with_ctx;
	bool batch;
	PyObject *retry_on; /* tuple or NULL */
	PyObject *fail_on;  /* tuple or NULL */
	PyObject *aloop;
};
/* Registers callable under name with the given (already built) options;
 * the function's userdata holds strong references to callable and to
 * the spec's objects. */
int evfnpy_register(struct evfnpy_runtime *self, const char *name,
                    PyObject *callable, const struct evfnpy_call_spec *spec,
                    evfn_fn_options *o);

/* --- runtime.c --- */

typedef struct evfnpy_runtime {
	PyObject_HEAD
	evfn_rt *rt; /* NULL once closed */
	struct evfnpy_cancels cancels;
	struct evfnpy_completer comp;
	/* Open triggers and HTTP servers (objects with a close() method);
	 * evfn_rt_free() refuses while they live, so close closes
	 * them first. They keep only a borrowed pointer back. */
	PyObject *attached;
	bool initialized; /* the mutexes below exist */
	bool started;
	bool drained;
	PyObject *handed_back; /* list of (name, Event) not yet returned */
	PyObject *registry;  /* pending submissions: event -> Future */
	PyObject *condition; /* the Condition its futures share */
	/* Calls that run without the GIL and use rt (drain): close waits
	 * for them before freeing rt. */
	pthread_mutex_t busy_mu;
	pthread_cond_t busy_cond;
	int busy;
} evfnpy_runtime;

extern PyTypeObject evfnpy_runtime_type;
/* Readies the type with its own methods and those of the NULL-terminated
 * list of tables more (the files above runtime.c: flow, triggers, dead
 * letters, HTTP, PostgreSQL); module.c calls it once. 0 or -1. */
int evfnpy_runtime_ready(const PyMethodDef *const *more);

/* 0, or -1 with ShutDown raised for a closed runtime. */
int evfnpy_runtime_check_open(evfnpy_runtime *self);

/* Keeps obj (an open trigger or server) until it detaches itself or the
 * runtime closes it; 0 or -1 with a Python error. */
int evfnpy_runtime_attach(evfnpy_runtime *self, PyObject *obj);
void evfnpy_runtime_detach(evfnpy_runtime *self, PyObject *obj);

/* --- trigger.c --- */

extern PyTypeObject evfnpy_trigger_type;
/* schedule, watch, on_signal, on_fd */
extern const PyMethodDef evfnpy_trigger_methods[];

/* --- pg.c (only where evfn has the pg source) --- */

#ifdef EVFNPY_HAVE_PG
extern PyTypeObject evfnpy_pg_type;
/* pg_changes, pg_listen */
extern const PyMethodDef evfnpy_pg_methods[];
#endif

/* --- deadletter.c --- */

/* dead_letters, dead_letter_op */
extern const PyMethodDef evfnpy_deadletter_methods[];

/* --- flow.c --- */

/* pause, resume, cancel */
extern const PyMethodDef evfnpy_flow_methods[];

/* --- http.c --- */

extern PyTypeObject evfnpy_http_type;
/* http */
extern const PyMethodDef evfnpy_http_methods[];

/* --- schedule.c --- */

extern PyTypeObject evfnpy_schedule_type;

#endif /* EVFNPY_H */
