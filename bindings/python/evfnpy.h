/* SPDX-License-Identifier: MIT */
/*
 * Shared declarations of the CPython extension module evfn._evfn: the
 * object types (runtime, event, context, schedule), the deadline watchdog,
 * payload encoding and the error mapping. Each concept lives in its own .c
 * file; this header is private to the binding and uses only the public
 * evfn API plus the CPython C API.
 */
#ifndef EVFNPY_H
#define EVFNPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <evfn.h>

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
 * the last attempt's error message and the number of attempts. */
PyObject *evfnpy_raise_outcome(int code, const char *error, unsigned attempts);

/* Builds (without raising) the exception object evfnpy_raise_outcome()
 * would raise; NULL with a Python error set on failure. */
PyObject *evfnpy_outcome_error(int code, const char *error, unsigned attempts);

/* The class raised inside a handler thread that passed its deadline
 * (evfn.Timeout); borrowed, NULL until evfn/__init__.py registered it. */
PyObject *evfnpy_timeout_class(void);

/* Cached json.dumps and json.loads; borrowed. */
PyObject *evfnpy_json_dumps(void);
PyObject *evfnpy_json_loads(void);

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

/* --- watchdog.c --- */

/* One running Python handler as the watchdog sees it. Lives on the stack
 * of the C handler that runs it. */
struct evfnpy_wd_slot {
	struct evfnpy_wd_slot *next;
	unsigned long thread_id;
	int64_t deadline_ns;
	bool fired;
};

/* Raises evfn.Timeout inside handler threads past their deadline, with
 * PyThreadState_SetAsyncExc(), from a thread of its own. Lock order: the
 * GIL, then mu; the watchdog thread never waits for the GIL while holding
 * mu. */
struct evfnpy_watchdog {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	struct evfnpy_wd_slot *running;
	bool started;
	bool stop;
};

int evfnpy_watchdog_init(struct evfnpy_watchdog *wd);
/* Starts the thread; 0 or -errno. Idempotent. */
int evfnpy_watchdog_start(struct evfnpy_watchdog *wd);
/* Stops and joins the thread; call without the GIL. */
void evfnpy_watchdog_stop(struct evfnpy_watchdog *wd);
void evfnpy_watchdog_destroy(struct evfnpy_watchdog *wd);
/* Both with the GIL held, on the handler's thread. disarm() reports
 * whether the deadline passed, and if so removes an exception that was
 * set but not yet delivered, so it cannot hit the thread's next handler. */
void evfnpy_watchdog_arm(struct evfnpy_watchdog *wd, struct evfnpy_wd_slot *s,
                         int64_t deadline_ns);
bool evfnpy_watchdog_disarm(struct evfnpy_watchdog *wd,
                            struct evfnpy_wd_slot *s);

/* --- completion.c --- */

struct evfnpy_done;

/* Resolves invoke_async futures on a thread of its own, in batches; see
 * completion.c. */
struct evfnpy_completer {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	struct evfnpy_done *head, *tail;
	bool started;
	bool stop;
};

int evfnpy_completer_init(struct evfnpy_completer *c);
/* Starts the thread; 0 or -errno. Idempotent. */
int evfnpy_completer_start(struct evfnpy_completer *c);
/* Resolves what is queued, then stops the thread; call without the GIL
 * and after the runtime is freed (free delivers the last results). */
void evfnpy_completer_stop(struct evfnpy_completer *c);
void evfnpy_completer_destroy(struct evfnpy_completer *c);
/* With the GIL: the record of one submission, holding a reference to the
 * Python callback; NULL on ENOMEM. */
struct evfnpy_done *evfnpy_done_new(struct evfnpy_completer *c,
                                    PyObject *callback);
/* With the GIL: drop a record whose submission failed. */
void evfnpy_done_discard(struct evfnpy_done *d);
/* A malloc'ed, NUL-terminated copy of len bytes, or NULL; no GIL needed. */
char *evfnpy_dup(const void *data, size_t len);
/* The evfn_result_cb of a submission (arg: its record); no GIL. */
void evfnpy_completer_result(const evfn_result *res, void *arg);

/* --- event.c --- */

extern PyTypeObject evfnpy_event_type;
/* Wraps an event, taking a reference to it. New reference or NULL. */
PyObject *evfnpy_event_wrap(const evfn_event *ev);

/* --- context.c --- */

typedef struct {
	PyObject_HEAD
	evfn_ctx *ctx; /* NULL once the handler returned */
	bool *timed_out; /* the watchdog slot's flag, valid while ctx is */
} evfnpy_context;

extern PyTypeObject evfnpy_context_type;
PyObject *evfnpy_context_wrap(evfn_ctx *ctx, bool *timed_out);
/* Called when the handler returned: later use raises evfn.Error(EPERM). */
void evfnpy_context_invalidate(PyObject *c);

/* --- handler.c --- */

struct evfnpy_runtime;
/* Registers callable under name with the given (already built) options;
 * the function's userdata holds a strong reference to callable. */
int evfnpy_register(struct evfnpy_runtime *self, const char *name,
                    PyObject *callable, evfn_fn_options *o);

/* --- runtime.c --- */

typedef struct evfnpy_runtime {
	PyObject_HEAD
	evfn_rt *rt; /* NULL once closed */
	struct evfnpy_watchdog wd;
	struct evfnpy_completer comp;
	bool initialized; /* the mutexes below exist */
	bool started;
	bool drained;
	PyObject *handed_back; /* list of (name, Event) not yet returned */
	/* Calls that run without the GIL and use rt (sync invoke, drain):
	 * close waits for them before freeing rt. */
	pthread_mutex_t busy_mu;
	pthread_cond_t busy_cond;
	int busy;
} evfnpy_runtime;

extern PyTypeObject evfnpy_runtime_type;

/* --- schedule.c --- */

extern PyTypeObject evfnpy_schedule_type;

#endif /* EVFNPY_H */
