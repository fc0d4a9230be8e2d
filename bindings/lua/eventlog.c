/* SPDX-License-Identifier: MIT */
/*
 * The event log from Lua: evfn.runtime{on_record = function(rec) end}.
 * evfn reports records on whatever thread the transition happened on,
 * and a lua_State may only be used by the thread driving the loop, so
 * the record callback only copies each record into a queue and wakes the
 * loop; the Lua function gets them there, in order, while a runtime
 * method drives the loop. The queue is bounded: records past it are
 * dropped and counted in the next record delivered.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lua-internal.h"

/* Records kept while the loop is not driven. */
#define QUEUE_MAX 65536

struct record {
	struct record *next;
	evfn_record_kind kind;
	char *function;
	const evfn_event *ev;           /* a reference; NULL for the
	                                   circuit-breaker records */
	unsigned attempt;
	int code;
	char *error;
};

struct evfnlua_log {
	struct evfnlua_rt *owner;
	int ref;                        /* the Lua function */
	struct event *wake;             /* delivers the queue on the loop */
	pthread_mutex_t lock;           /* guards what follows */
	struct record *head;
	struct record **tail;
	size_t n;
	uint64_t dropped;
};

static void
record_free(struct record *r)
{
	free(r->function);
	free(r->error);
	evfn_event_unref(r->ev);
	free(r);
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The evfn_record_cb: any thread, no evfn lock held. */
static void
on_record(const evfn_record *rec, void *arg)
{
	struct evfnlua_log *log = arg;
	struct record *r = calloc(1, sizeof(*r));
	if (r) {
		r->kind = evfn_record_get_kind(rec);
		r->function = dup_or_null(evfn_record_function(rec));
		/* evfn_event_ref(NULL) is NULL: no event to hold. */
		r->ev = evfn_event_ref(evfn_record_event(rec));
		r->attempt = evfn_record_attempt(rec);
		r->code = evfn_record_code(rec);
		r->error = dup_or_null(evfn_record_error(rec));
	}
	pthread_mutex_lock(&log->lock);
	if (r && log->n < QUEUE_MAX) {
		*log->tail = r;
		log->tail = &r->next;
		log->n++;
		r = NULL;
	} else {
		log->dropped++;
	}
	pthread_mutex_unlock(&log->lock);
	if (r)
		record_free(r);
	event_active(log->wake, EV_TIMEOUT, 1);
}

/* Calls the Lua function with one record (a light userdata at 2, the
 * dropped count at 3), in protected mode. */
static int
deliver_cf(lua_State *L)
{
	struct evfnlua_log *log = lua_touserdata(L, 1);
	const struct record *r = lua_touserdata(L, 2);
	lua_Integer dropped = lua_tointeger(L, 3);
	lua_rawgeti(L, LUA_REGISTRYINDEX, log->ref);
	lua_createtable(L, 0, 7);
	const char *kind = evfn_record_kind_name(r->kind);
	lua_pushstring(L, kind ? kind : "unknown");
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, r->function);
	lua_setfield(L, -2, "function");
	if (r->ev) { /* rec.event stays nil for a circuit record */
		evfnlua_push_event(L, r->ev);
		lua_setfield(L, -2, "event");
	}
	lua_pushinteger(L, r->attempt);
	lua_setfield(L, -2, "attempt");
	lua_pushinteger(L, r->code);
	lua_setfield(L, -2, "code");
	if (r->error) {
		lua_pushstring(L, r->error);
		lua_setfield(L, -2, "error");
	}
	if (dropped > 0) {
		lua_pushinteger(L, dropped);
		lua_setfield(L, -2, "dropped");
	}
	lua_call(L, 1, 0);
	return 0;
}

/* Hands the queued records to the Lua function, on the loop thread while
 * a runtime method drives the loop (vm.L is then that method's thread). */
static void
deliver(struct evfnlua_log *log)
{
	pthread_mutex_lock(&log->lock);
	struct record *r = log->head;
	uint64_t dropped = log->dropped;
	log->head = NULL;
	log->tail = &log->head;
	log->n = 0;
	log->dropped = 0;
	pthread_mutex_unlock(&log->lock);
	lua_State *L = log->owner->vm.L;
	while (r) {
		struct record *next = r->next;
		lua_pushcfunction(L, deliver_cf);
		lua_pushlightuserdata(L, log);
		lua_pushlightuserdata(L, r);
		lua_pushinteger(L, (lua_Integer)dropped);
		dropped = 0;
		if (lua_pcall(L, 3, 0, 0) != LUA_OK)
			evfnlua_keep_cb_error(log->owner, L);
		record_free(r);
		r = next;
	}
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	deliver(arg);
}

int
evfnlua_log_new(struct evfnlua_rt *o, lua_State *L, int fn)
{
	struct evfnlua_log *log = calloc(1, sizeof(*log));
	if (!log)
		return EVFN_ENOMEM;
	if (pthread_mutex_init(&log->lock, NULL) != 0) {
		free(log);
		return EVFN_ENOMEM;
	}
	log->owner = o;
	log->tail = &log->head;
	log->wake = event_new(o->base, -1, 0, wake_cb, log);
	if (!log->wake) {
		pthread_mutex_destroy(&log->lock);
		free(log);
		return EVFN_ENOMEM;
	}
	lua_pushvalue(L, fn);
	log->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	o->log = log;
	return 0;
}

int
evfnlua_log_attach(struct evfnlua_rt *o, evfn_rt_options *ro)
{
	return evfn_rt_options_set_event_log(ro, on_record, o->log);
}

void
evfnlua_log_flush(struct evfnlua_rt *o)
{
	if (o->log)
		deliver(o->log);
}

void
evfnlua_log_free(struct evfnlua_rt *o, lua_State *L)
{
	struct evfnlua_log *log = o->log;
	if (!log)
		return;
	o->log = NULL;
	event_free(log->wake);
	for (struct record *r = log->head, *next; r; r = next) {
		next = r->next;
		record_free(r);
	}
	luaL_unref(L, LUA_REGISTRYINDEX, log->ref);
	pthread_mutex_destroy(&log->lock);
	free(log);
}
