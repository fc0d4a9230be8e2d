/* SPDX-License-Identifier: MIT */
/*
 * What the C files of the Lua binding share: the metatable names, the
 * runtime object and registered-function records, the Lua state that runs
 * handlers (with its pool of reusable coroutines), and the helpers each
 * file provides to the others. Nothing here is seen by Lua code or by C
 * hosts; their interface is evfnlua.h.
 */
#ifndef EVFNLUA_INTERNAL_H
#define EVFNLUA_INTERNAL_H

#include <stddef.h>

#include <stdbool.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include <evfn.h>

#include "evfnlua.h"

#define EVFNLUA_RUNTIME "evfn.runtime"
#define EVFNLUA_EVENT "evfn.event"
#define EVFNLUA_EXTENSIONS "evfn.extensions"
#define EVFNLUA_CONTEXT "evfn.context"
#define EVFNLUA_OUTCOME "evfn.outcome"
#define EVFNLUA_GUARD "evfn.guard"
#define EVFNLUA_TRIGGER "evfn.trigger"
#define EVFNLUA_HTTP "evfn.http"
#define EVFNLUA_PG "evfn.pg"

/* Coroutines a Lua state keeps for the next handlers. */
#define EVFNLUA_IDLE_MAX 8

struct event;
struct event_base;
struct evfnlua_call;
struct evfnlua_trigger;
struct evfnlua_log;

/* A Lua state that runs handlers. L is the thread that creates and
 * resumes handler coroutines: a worker's own state, or for the loop the
 * thread currently inside a runtime method that drives the base. */
struct evfnlua_vm {
	lua_State *L;
	int idle[EVFNLUA_IDLE_MAX]; /* registry refs of finished coroutines */
	int nidle;
};

/* A link in a runtime object's list of what it must close before itself
 * (triggers, HTTP servers): evfn_rt_free() refuses while they live. */
struct evfnlua_link {
	struct evfnlua_link *next;
	struct evfnlua_link **pprev; /* NULL when not on a list */
};

static inline void
evfnlua_link_push(struct evfnlua_link **head, struct evfnlua_link *l)
{
	l->next = *head;
	if (l->next)
		l->next->pprev = &l->next;
	l->pprev = head;
	*head = l;
}

static inline void
evfnlua_link_remove(struct evfnlua_link *l)
{
	if (!l->pprev)
		return;
	*l->pprev = l->next;
	if (l->next)
		l->next->pprev = l->pprev;
	l->next = NULL;
	l->pprev = NULL;
}

#define EVFNLUA_CONTAINER_OF(ptr, type, member)                             \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* The userdata behind a Lua runtime object. Its address is stable, so
 * evfn and libevent callbacks get it as their argument. */
struct evfnlua_rt {
	evfn_rt *rt;                /* NULL once closed */
	struct event_base *base;    /* owned; the runtime is embedded in it */
	struct event *timer;        /* ends run()/run_once() waits */
	struct evfnlua_vm vm;       /* loop handlers run here */
	lua_State *main;            /* the owning state's main thread */
	struct evfnlua_call *sleeping; /* loop calls waiting in evfn.sleep */
	struct evfnlua_link *triggers; /* open triggers, freed first */
	struct evfnlua_link *servers;  /* open HTTP servers, freed first */
	struct evfnlua_link *pg_sources; /* open PostgreSQL sources, too */
	struct evfnlua_log *log;    /* on_record's queue, or NULL */
	lua_CFunction opener;       /* opens the module in a worker's state */
	char *cb_error;             /* a Lua callback's error, to re-raise */
	int64_t grace_ms;           /* default wait for work in flight */
	int depth;                  /* > 0 while a method drives the base */
	bool started;
	bool drained;
};

/* A registered Lua function: the userdata given to evfn_register(). A
 * closure (ref) runs on the loop in the creator's state; a module runs on
 * the pool in one Lua state per worker, built from module/path/cpath. */
struct evfnlua_fn {
	struct evfnlua_rt *owner;
	int ref;
	char *module;
	char *path;
	char *cpath;
};

/* helpers.c: call nothing else of the binding */
/* Registers the guard's metatable (evfnlua_guard); luaopen_evfn first. */
void evfnlua_helpers_open(lua_State *L);
/* Pushes nil, "EVFN_X: message[: detail]", code and returns 3. */
int evfnlua_push_error(lua_State *L, int code, const char *detail);
/* Pushes true for rc >= 0, else the error triple; returns the count. */
int evfnlua_push_rc(lua_State *L, int rc);
/* Pushes a table of n counters, names[i] = values[i] (the stats() of the
 * runtime, triggers and sources); returns 1. */
int evfnlua_push_counters(lua_State *L, const char *const *names,
                          const uint64_t *values, int n);
/* Pushes rc as an integer for rc >= 0 (a count), else the error triple. */
int evfnlua_push_count(lua_State *L, int rc);
/* Seconds (a number at idx) as whole milliseconds, raising unless
 * 0 <= seconds <= 1e9; errors name what. */
int64_t evfnlua_check_ms(lua_State *L, int idx, const char *what);
/* Pushes field k of the option table at t and, when it is not nil, sets
 * *opt to k (the option an error message then names) and returns true; a
 * nil field is popped again. */
bool evfnlua_option(lua_State *L, int t, const char *k, const char **opt);
/* Readers of the value at idx as option `what` of a table: a wrong type
 * raises "<what>: <type> expected, got <type>". opt_int sets *rc to
 * EVFN_ERANGE (and returns 0) for an integer beyond int's range instead
 * of letting a cast wrap it; opt_choice returns the index of the string
 * in choices (NULL terminated; def when nil, unless def is NULL). */
lua_Number evfnlua_opt_number(lua_State *L, int idx, const char *what);
lua_Integer evfnlua_opt_integer(lua_State *L, int idx, const char *what);
int evfnlua_opt_int(lua_State *L, int idx, const char *what, int *rc);
const char *evfnlua_opt_string(lua_State *L, int idx, const char *what);
void evfnlua_opt_table(lua_State *L, int idx, const char *what);
int evfnlua_opt_choice(lua_State *L, int idx, const char *what,
                       const char *def, const char *const *choices);
/* CLOCK_MONOTONIC in nanoseconds. */
int64_t evfnlua_now_ns(void);
/* Pushes a userdata that runs fn(p) when collected unless disarmed with
 * evfnlua_unguard(): keeps evfn objects from leaking when a later check
 * raises a Lua error. */
void evfnlua_guard(lua_State *L, void *p, void (*fn)(void *));
void evfnlua_unguard(lua_State *L, int idx);
/* Raises unless every key of the table at idx is one of names (NULL
 * terminated); what names the table in the message. */
void evfnlua_check_keys(lua_State *L, int idx, const char *what,
                        const char *const *names);
/* Registers the metatable of a closable handle (runtime, trigger, HTTP
 * server): methods as __index, close as __gc and __close, tostring. */
void evfnlua_handle_class(lua_State *L, const char *name,
                          const luaL_Reg *methods, lua_CFunction close,
                          lua_CFunction tostring);
/* Adds methods (NULL terminated) to the runtime's, which must be
 * registered already: how each concept's file gives rt its calls. */
void evfnlua_runtime_methods(lua_State *L, const luaL_Reg *methods);
/* Keeps the error a Lua callback raised (on L's top, popped) to re-raise
 * it from the method driving the loop, and stops the loop. */
void evfnlua_keep_cb_error(struct evfnlua_rt *o, lua_State *L);

/* event.c */
void evfnlua_event_open(lua_State *L);
/* Pushes a Lua event object holding a reference to ev. */
void evfnlua_push_event(lua_State *L, const evfn_event *ev);
/* Builds an event of the given type from a payload (string or nil at
 * data) and CloudEvents attributes (table or nil at attrs; 0: none). Raises on
 * wrong Lua types or unknown attributes; returns 0 or evfn's code. */
int evfnlua_event_build(lua_State *L, const char *type, int data, int attrs,
                        evfn_event **out);

/* call.c */
void evfnlua_call_open(lua_State *L);
/* Runs one attempt of the Lua function at registry ref fn_ref in vm, as a
 * coroutine with the deadline hook set; loop is the runtime whose loop
 * runs it (evfn.sleep then suspends it), NULL on a pool worker. Returns
 * the attempt's outcome, or EVFN_PENDING while it sleeps. */
int evfnlua_call_run(struct evfnlua_vm *vm, int fn_ref, evfn_ctx *ctx,
                     const evfn_event *ev, struct evfnlua_rt *loop);
/* Ends a sleeping loop call of ctx now, as timed out (the cancel hook). */
void evfnlua_call_cancel(struct evfnlua_rt *loop, evfn_ctx *ctx);
/* Ends the sleeping loop calls of loop whose cancellation was requested
 * (evfn_cancel() only flags a running attempt). */
void evfnlua_call_cancel_requested(struct evfnlua_rt *loop);
/* Releases the coroutines vm keeps. */
void evfnlua_vm_clear(struct evfnlua_vm *vm);
int evfnlua_l_sleep(lua_State *L);
int evfnlua_l_retry(lua_State *L);
int evfnlua_l_fail(lua_State *L);

/* runtime.c */
void evfnlua_runtime_open(lua_State *L);
/* evfn.runtime(): a closure whose upvalue is the module's opener
 * (luaopen_evfn), kept in the runtime for its workers' states. */
int evfnlua_l_runtime(lua_State *L);

/* eventlog.c */
/* Creates o's record queue for the Lua function at fn, on o's base. */
int evfnlua_log_new(struct evfnlua_rt *o, lua_State *L, int fn);
/* Sends the runtime's event log to o's queue. */
int evfnlua_log_attach(struct evfnlua_rt *o, evfn_rt_options *ro);
/* Delivers what is queued now (the runtime is freed: nothing follows). */
void evfnlua_log_flush(struct evfnlua_rt *o);
/* Frees the queue; L releases the function's reference. */
void evfnlua_log_free(struct evfnlua_rt *o, lua_State *L);

/* trigger.c */
/* Adds rt:schedule, rt:watch, rt:on_signal and rt:on_fd to the runtime
 * metatable (opened before) and creates the trigger metatable. */
void evfnlua_trigger_open(lua_State *L);
/* Frees the open triggers of o; evfn_rt_free() needs them gone. */
void evfnlua_triggers_free(struct evfnlua_rt *o);
int evfnlua_l_next_fire(lua_State *L);

/* deadletter.c */
/* Adds the dead-letter methods to the runtime metatable. */
void evfnlua_deadletter_open(lua_State *L);

/* flow.c */
/* Applies register()'s batch, rate and breaker options (table at t); on
 * failure *opt names the option evfn refused. */
int evfnlua_flow_options(lua_State *L, int t, evfn_fn_options *fo,
                         const char **opt);
/* Adds rt:pause, rt:resume and rt:cancel to the runtime metatable. */
void evfnlua_flow_open(lua_State *L);

/* http.c */
void evfnlua_http_open(lua_State *L);
/* Closes the open HTTP servers of o; evfn_rt_free() needs them
 * gone. */
void evfnlua_servers_free(struct evfnlua_rt *o);

/* pg.c (only where evfn has the pg source) */
#ifdef EVFNLUA_HAVE_PG
/* Adds rt:pg_changes and rt:pg_listen to the runtime metatable and
 * creates the source metatable. */
void evfnlua_pg_open(lua_State *L);
/* Closes the open sources of o; evfn_rt_free() needs them gone. */
void evfnlua_pg_sources_free(struct evfnlua_rt *o);
#endif

/* worker.c */
/* Fills f's module fields from the module name at idx and the calling
 * state's package paths; returns 0, or EVFN_ENOENT (detail pushed as a
 * string) when no searcher path has the module, or EVFN_ENOMEM. */
int evfnlua_fn_module(lua_State *L, int idx, struct evfnlua_fn *f);
int evfnlua_worker_init(void *userdata, void **state);
void evfnlua_worker_fini(void *userdata, void *state);
int evfnlua_pool_handler(evfn_ctx *ctx, const evfn_event *ev,
                         void *userdata);

#endif /* EVFNLUA_INTERNAL_H */
