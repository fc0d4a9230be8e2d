/* SPDX-License-Identifier: MIT */
/*
 * Running a Lua handler for one attempt. Every attempt runs as a
 * coroutine with a count hook that checks the attempt's deadline every
 * EVFNLUA_HOOK_COUNT instructions and, once it has passed (or the attempt
 * was cancelled), yields the coroutine away for good: a busy loop stops,
 * pcall cannot swallow it, and the attempt ends RETRY with error
 * "timeout". Where it cannot yield (inside a Lua function that C code
 * such as table.sort called) it raises, and from then on it checks every
 * instruction, raising again wherever Lua code runs until control is back
 * in the handler's own frames, where it yields: a pcall that catches one
 * raise runs at most one more instruction. The handler's return value or
 * raised error becomes the outcome. On the loop, evfn.sleep suspends the
 * coroutine (the attempt is EVFN_PENDING) and a libevent timer resumes
 * it. A cancelled attempt (rt:cancel) stops the same way, with error
 * "cancelled". This file also holds the context object (ctx) the handler
 * receives, with the items of a batch call; it is the call record itself.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "lua-internal.h"

/* Instructions between two deadline checks: a clock read per thousand
 * instructions costs well under 1% and stops a busy loop within
 * microseconds of its deadline. */
#define EVFNLUA_HOOK_COUNT 1000

/* The userdata behind ctx, and what the binding knows about the attempt.
 * It is anchored in the registry (self_ref) while the attempt runs, and
 * stays behind as an invalid context if Lua code kept it. */
struct evfnlua_call {
	evfn_ctx *ctx;              /* NULL once the attempt has ended */
	struct evfnlua_vm *vm;
	struct evfnlua_rt *loop;    /* NULL on a pool worker */
	lua_State *co;
	int co_ref;
	int self_ref;
	struct event *timer;        /* evfn.sleep on the loop */
	double sleep_s;
	bool sleeping;              /* yielded by evfn.sleep */
	bool aborting;              /* past the deadline: yielded by the hook */
	bool until_deadline;        /* the sleep outlasts the deadline */
	struct evfnlua_call *prev, *next; /* on loop->sleeping */
};

/* The attempt whose coroutine this thread is running: each OS thread runs
 * at most one Lua handler at a time (nested runs save and restore it), and
 * the hook and evfn.sleep find their attempt here. */
static _Thread_local struct evfnlua_call *current;

/* Why an attempt that evfn_ctx_cancelled() reports must stop: that is
 * also true once the deadline has passed, so time left means rt:cancel
 * asked. */
static const char *
stop_reason(const evfn_ctx *ctx)
{
	return evfn_ctx_remaining_ns(ctx) > 0 ? "cancelled" : "timeout";
}

static void hook(lua_State *L, lua_Debug *ar);

/* The attempt must stop: from now on the hook runs at every instruction
 * of the handler's coroutine, so that an error it raised and a pcall
 * caught is raised again at once (coroutines the handler made keep the
 * count they were created with, which only delays them). */
static void
begin_abort(struct evfnlua_call *c)
{
	if (c->aborting)
		return;
	c->aborting = true;
	lua_sethook(c->co, hook, LUA_MASKCOUNT, 1);
}

/* Stops the attempt from inside Lua code running on L: yielding the
 * handler's own coroutine ends it wherever it is, pcall included;
 * anywhere else (a coroutine of its own, Lua code under a C call that
 * cannot yield) it raises, and the hook raises again on the next
 * instruction until the error reaches the handler's frames. */
static int
abort_here(lua_State *L, struct evfnlua_call *c)
{
	begin_abort(c);
	if (L == c->co && lua_isyieldable(L))
		return lua_yield(L, 0);
	return luaL_error(L, "%s", stop_reason(c->ctx));
}

static void
hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	struct evfnlua_call *c = current;
	if (!c || !c->ctx)
		return;
	if (!c->aborting && !evfn_ctx_cancelled(c->ctx))
		return;
	abort_here(L, c);
}

void
evfnlua_vm_clear(struct evfnlua_vm *vm)
{
	while (vm->nidle > 0)
		luaL_unref(vm->L, LUA_REGISTRYINDEX, vm->idle[--vm->nidle]);
}

struct begin_args {
	struct evfnlua_vm *vm;
	int fn_ref;
	evfn_ctx *ctx;
	const evfn_event *ev;
	struct evfnlua_rt *loop;
	struct evfnlua_call *call;
};

/* Builds the call record and its coroutine with the handler and its two
 * arguments on it. Runs protected: everything here may raise a memory
 * error, which must not unwind through evfn's or libevent's frames. */
static int
begin_cf(lua_State *L)
{
	struct begin_args *a = lua_touserdata(L, 1);
	struct evfnlua_vm *vm = a->vm;
	struct evfnlua_call *c = lua_newuserdatauv(L, sizeof(*c), 0);
	memset(c, 0, sizeof(*c));
	c->co_ref = LUA_NOREF;
	c->self_ref = LUA_NOREF;
	luaL_setmetatable(L, EVFNLUA_CONTEXT);
	int self = lua_gettop(L);
	lua_State *co;
	if (vm->nidle > 0) {
		c->co_ref = vm->idle[--vm->nidle];
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->co_ref);
		co = lua_tothread(L, -1);
		lua_pop(L, 1);
	} else {
		co = lua_newthread(L);
		lua_sethook(co, hook, LUA_MASKCOUNT, EVFNLUA_HOOK_COUNT);
		c->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	c->co = co;
	c->vm = vm;
	c->loop = a->loop;
	lua_rawgeti(L, LUA_REGISTRYINDEX, a->fn_ref);
	evfnlua_push_event(L, a->ev);
	lua_pushvalue(L, self);
	lua_pushvalue(L, self);
	c->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	/* Only now is the attempt live: an error above leaves a record that
	 * is no context and a coroutine the collector takes. */
	c->ctx = a->ctx;
	lua_xmove(L, co, 3);
	a->call = c;
	return 0;
}

/* The attempt is over: the context goes invalid, the coroutine goes back
 * to the idle pool (only after a clean return: one left in the middle of
 * a function can never run again) and the record is no longer anchored. */
static void
end_call(struct evfnlua_call *c, bool reusable)
{
	struct evfnlua_vm *vm = c->vm;
	c->ctx = NULL;
	if (c->timer) {
		event_free(c->timer);
		c->timer = NULL;
	}
	if (reusable && vm->nidle < EVFNLUA_IDLE_MAX) {
		lua_settop(c->co, 0);
		vm->idle[vm->nidle++] = c->co_ref;
	} else {
		luaL_unref(vm->L, LUA_REGISTRYINDEX, c->co_ref);
	}
	c->co = NULL;
	c->co_ref = LUA_NOREF;
	int self = c->self_ref;
	c->self_ref = LUA_NOREF;
	luaL_unref(vm->L, LUA_REGISTRYINDEX, self);
}

/* The outcome of a handler that returned: nothing or true is OK, a string
 * is the response, false asks for a retry, anything else is a bug. */
static int
returned(struct evfnlua_call *c, int nres)
{
	lua_State *co = c->co;
	int t = nres > 0 ? lua_type(co, -nres) : LUA_TNIL;
	switch (t) {
	case LUA_TNIL:
		return EVFN_OK;
	case LUA_TBOOLEAN:
		if (lua_toboolean(co, -nres))
			return EVFN_OK;
		evfn_ctx_set_error(c->ctx, "handler returned false");
		return EVFN_RETRY;
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(co, -nres, &len);
		if (evfn_ctx_respond(c->ctx, s, len) == 0)
			return EVFN_OK;
		evfn_ctx_set_error(c->ctx, "out of memory for the response");
		return EVFN_RETRY;
	}
	default: {
		char msg[96];
		snprintf(msg, sizeof(msg),
		         "handler returned a %s (expected nothing, a boolean "
		         "or a string)",
		         lua_typename(co, t));
		evfn_ctx_set_error(c->ctx, msg);
		return EVFN_FAIL;
	}
	}
}

/* The outcome of a handler that raised the error object on top of co:
 * evfn.retry/evfn.fail objects say which, any other error is a retry. */
static int
raised(struct evfnlua_call *c)
{
	lua_State *co = c->co;
	int outcome = EVFN_RETRY;
	const char *msg = NULL;
	char buf[96];
	lua_checkstack(co, 4);
	if (lua_type(co, -1) == LUA_TTABLE && lua_getmetatable(co, -1)) {
		luaL_getmetatable(co, EVFNLUA_OUTCOME);
		bool ours = lua_rawequal(co, -1, -2);
		lua_pop(co, 2);
		if (ours) {
			lua_getfield(co, -1, "kind");
			const char *kind = lua_tostring(co, -1);
			if (kind && strcmp(kind, "fail") == 0)
				outcome = EVFN_FAIL;
			lua_pop(co, 1);
			lua_getfield(co, -1, "message");
		}
	}
	int t = lua_type(co, -1);
	if (t == LUA_TSTRING || t == LUA_TNUMBER) {
		msg = lua_tostring(co, -1);
	} else {
		snprintf(buf, sizeof(buf), "handler raised a %s value",
		         luaL_typename(co, -1));
		msg = buf;
	}
	evfn_ctx_set_error(c->ctx, msg);
	return outcome;
}

static void wake_cb(int fd, short what, void *arg);

static void
unlink_sleeping(struct evfnlua_call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->loop->sleeping = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Waits on the loop for the sleep evfn.sleep asked for, but never past
 * the deadline: the attempt then ends as timed out. */
static bool
arm_sleep(struct evfnlua_call *c)
{
	if (!c->timer)
		c->timer = evtimer_new(c->loop->base, wake_cb, c);
	if (!c->timer)
		return false;
	double left = (double)evfn_ctx_remaining_ns(c->ctx) / 1e9;
	/* Decided now, not when the timer fires: a timer may fire a hair
	 * before the deadline, and must not then resume a sleep cut short. */
	c->until_deadline = c->sleep_s >= left;
	double s = c->until_deadline ? left : c->sleep_s;
	struct timeval tv = {.tv_sec = (time_t)s,
	                     .tv_usec = (suseconds_t)((s - (double)(time_t)s) *
	                                              1e6)};
	if (evtimer_add(c->timer, &tv) < 0)
		return false;
	c->prev = NULL;
	c->next = c->loop->sleeping;
	if (c->next)
		c->next->prev = c;
	c->loop->sleeping = c;
	return true;
}

/* Resumes the coroutine and turns how it stopped into an outcome. */
static int
step(struct evfnlua_call *c, int nargs)
{
	struct evfnlua_call *outer = current;
	current = c;
	int nres = 0;
	int st = lua_resume(c->co, c->vm->L, nargs, &nres);
	current = outer;
	int outcome;
	bool reusable = false;
	if (c->aborting) {
		evfn_ctx_set_error(c->ctx, stop_reason(c->ctx));
		outcome = EVFN_RETRY;
	} else if (st == LUA_YIELD && c->sleeping) {
		lua_pop(c->co, nres);
		if (arm_sleep(c))
			return EVFN_PENDING;
		evfn_ctx_set_error(c->ctx, "evfn.sleep: no timer");
		outcome = EVFN_RETRY;
	} else if (st == LUA_YIELD) {
		evfn_ctx_set_error(c->ctx,
		                   "handler yielded outside evfn.sleep");
		outcome = EVFN_FAIL;
	} else if (st == LUA_OK) {
		outcome = returned(c, nres);
		reusable = true;
	} else {
		outcome = raised(c);
	}
	end_call(c, reusable);
	return outcome;
}

int
evfnlua_call_run(struct evfnlua_vm *vm, int fn_ref, evfn_ctx *ctx,
                 const evfn_event *ev, struct evfnlua_rt *loop)
{
	lua_State *L = vm->L;
	struct begin_args a = {vm, fn_ref, ctx, ev, loop, NULL};
	lua_pushcfunction(L, begin_cf);
	lua_pushlightuserdata(L, &a);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		evfn_ctx_set_error(ctx, msg ? msg : "cannot start the handler");
		lua_pop(L, 1);
		return EVFN_RETRY;
	}
	return step(a.call, 2);
}

/* The end of an evfn.sleep on the loop: resume, or end the attempt if its
 * deadline passed meanwhile, then tell evfn the outcome. */
static void
wake_cb(int fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evfnlua_call *c = arg;
	evfn_ctx *ctx = c->ctx;
	unlink_sleeping(c);
	c->sleeping = false;
	int outcome;
	if (c->until_deadline || evfn_ctx_cancelled(ctx)) {
		evfn_ctx_set_error(ctx, c->until_deadline ? "timeout"
		                                          : stop_reason(ctx));
		end_call(c, false);
		outcome = EVFN_RETRY;
	} else {
		outcome = step(c, 0);
	}
	if (outcome != EVFN_PENDING)
		evfn_ctx_complete(ctx, outcome);
}

/* Ends a sleeping call now: its attempt retries (or, cancelled, ends). */
static void
stop_sleeping(struct evfnlua_call *c)
{
	evfn_ctx *ctx = c->ctx;
	unlink_sleeping(c);
	evfn_ctx_set_error(ctx, stop_reason(ctx));
	end_call(c, false);
	evfn_ctx_complete(ctx, EVFN_RETRY);
}

void
evfnlua_call_cancel(struct evfnlua_rt *loop, evfn_ctx *ctx)
{
	for (struct evfnlua_call *c = loop->sleeping; c; c = c->next) {
		if (c->ctx == ctx) {
			stop_sleeping(c);
			return;
		}
	}
}

void
evfnlua_call_cancel_requested(struct evfnlua_rt *loop)
{
	/* Completing an attempt may start handlers that change the list,
	 * so each search starts over from its head. */
	for (;;) {
		struct evfnlua_call *c = loop->sleeping;
		while (c && !evfn_ctx_cancelled(c->ctx))
			c = c->next;
		if (!c)
			return;
		stop_sleeping(c);
	}
}

int
evfnlua_l_sleep(lua_State *L)
{
	lua_Number s = luaL_checknumber(L, 1);
	luaL_argcheck(L, s >= 0 && s <= 1e9, 1, "seconds out of range");
	struct evfnlua_call *c = current;
	if (!c || !c->ctx || L != c->co)
		return luaL_error(L, "evfn.sleep: only a handler itself (not "
		                     "a coroutine inside it) can sleep");
	if (c->loop) {
		if (!lua_isyieldable(L))
			return luaL_error(L, "evfn.sleep: cannot suspend the "
			                     "handler across a C call");
		c->sleep_s = s;
		c->sleeping = true;
		return lua_yield(L, 0);
	}
	/* A pool worker may block: sleep in slices so that the deadline
	 * still ends the attempt on time. */
	int64_t until = evfnlua_now_ns() + (int64_t)(s * 1e9);
	for (;;) {
		if (evfn_ctx_cancelled(c->ctx))
			return abort_here(L, c);
		int64_t left = until - evfnlua_now_ns();
		if (left <= 0)
			return 0;
		if (left > 10000000)
			left = 10000000;
		struct timespec ts = {0, (long)left};
		nanosleep(&ts, NULL);
	}
}

static int
raise_outcome(lua_State *L, const char *kind)
{
	const char *msg = luaL_optstring(L, 1, kind);
	lua_createtable(L, 0, 2);
	lua_pushstring(L, kind);
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, msg);
	lua_setfield(L, -2, "message");
	luaL_setmetatable(L, EVFNLUA_OUTCOME);
	return lua_error(L);
}

int
evfnlua_l_retry(lua_State *L)
{
	return raise_outcome(L, "retry");
}

int
evfnlua_l_fail(lua_State *L)
{
	return raise_outcome(L, "fail");
}

static int
outcome_tostring(lua_State *L)
{
	lua_getfield(L, 1, "kind");
	lua_getfield(L, 1, "message");
	lua_pushfstring(L, "evfn.%s: %s", lua_tostring(L, -2),
	                lua_tostring(L, -1));
	return 1;
}

/* The context as a live attempt, raising once the attempt has ended. */
static evfn_ctx *
check_ctx(lua_State *L)
{
	struct evfnlua_call *c = luaL_checkudata(L, 1, EVFNLUA_CONTEXT);
	if (!c->ctx)
		luaL_error(L, "evfn: context used after its attempt ended");
	return c->ctx;
}

static int
ctx_respond(lua_State *L)
{
	evfn_ctx *ctx = check_ctx(L);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);
	return evfnlua_push_rc(L, evfn_ctx_respond(ctx, s, len));
}

static int
ctx_set_meta(lua_State *L)
{
	evfn_ctx *ctx = check_ctx(L);
	const char *k = luaL_checkstring(L, 2);
	const char *v = luaL_optstring(L, 3, NULL);
	return evfnlua_push_rc(L, evfn_ctx_set_meta(ctx, k, v));
}

/* ctx:emit(topic, data[, attrs]) -> seq: a child event, with the same
 * attributes as rt:emit (key, delay, ...). */
static int
ctx_emit(lua_State *L)
{
	evfn_ctx *ctx = check_ctx(L);
	const char *topic = luaL_checkstring(L, 2);
	uint64_t seq = 0;
	int rc;
	if (lua_isnoneornil(L, 4)) {
		size_t len = 0;
		const char *d = luaL_optlstring(L, 3, "", &len);
		rc = evfn_ctx_emit(ctx, topic, d, len, &seq);
	} else {
		evfn_event *ev;
		rc = evfnlua_event_build(L, topic, 3, 4, &ev);
		if (rc == 0) {
			rc = evfn_ctx_publish(ctx, ev, &seq);
			evfn_event_unref(ev);
		}
	}
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	lua_pushinteger(L, (lua_Integer)seq);
	return 1;
}

/* ctx:batch() -> the events of this call, in order (item 1 is the
 * handler's event); a function without batches has just that one. */
static int
ctx_batch(lua_State *L)
{
	evfn_ctx *ctx = check_ctx(L);
	size_t n = evfn_ctx_batch_size(ctx);
	lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
	for (size_t i = 0; i < n; i++) {
		evfnlua_push_event(L, evfn_ctx_batch_event(ctx, i));
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/* ctx:fail_item(i, "retry" | "fail"[, message]): item i (1-based) of a
 * batch failed although the handler goes on to return normally; only
 * the items reported are retried or dead-lettered. The message becomes
 * the call's error, which goes with every failed item (evfn keeps one
 * per call, so the last message given wins). */
static int
ctx_fail_item(lua_State *L)
{
	static const char *const outcomes[] = {"retry", "fail", NULL};
	evfn_ctx *ctx = check_ctx(L);
	lua_Integer i = luaL_checkinteger(L, 2);
	evfn_outcome outcome = luaL_checkoption(L, 3, NULL, outcomes) == 0
	                               ? EVFN_RETRY
	                               : EVFN_FAIL;
	const char *msg = luaL_optstring(L, 4, NULL);
	int rc = i < 1 ? EVFN_EINVAL
	               : evfn_ctx_batch_item_failed(ctx, (size_t)(i - 1),
	                                            outcome);
	if (rc == 0 && msg)
		rc = evfn_ctx_set_error(ctx, msg);
	return evfnlua_push_rc(L, rc);
}

static int
ctx_index(lua_State *L)
{
	luaL_checkudata(L, 1, EVFNLUA_CONTEXT);
	const char *k = luaL_checkstring(L, 2);
	if (lua_getfield(L, lua_upvalueindex(1), k) != LUA_TNIL)
		return 1;
	evfn_ctx *ctx = check_ctx(L);
	if (strcmp(k, "attempt") == 0)
		lua_pushinteger(L, evfn_ctx_attempt(ctx));
	else if (strcmp(k, "remaining") == 0)
		lua_pushnumber(L, (lua_Number)evfn_ctx_remaining_ns(ctx) / 1e9);
	else if (strcmp(k, "deadline") == 0)
		lua_pushnumber(L, (lua_Number)evfn_ctx_deadline_ns(ctx) / 1e9);
	else if (strcmp(k, "cancelled") == 0)
		lua_pushboolean(L, evfn_ctx_cancelled(ctx));
	else if (strcmp(k, "name") == 0)
		lua_pushstring(L, evfn_fn_name(evfn_ctx_function(ctx)));
	else
		lua_pushnil(L);
	return 1;
}

void
evfnlua_call_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"respond", ctx_respond},
		{"set_meta", ctx_set_meta},
		{"emit", ctx_emit},
		{"batch", ctx_batch},
		{"fail_item", ctx_fail_item},
		{NULL, NULL},
	};
	if (luaL_newmetatable(L, EVFNLUA_CONTEXT)) {
		luaL_newlib(L, methods);
		lua_pushcclosure(L, ctx_index, 1);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
	if (luaL_newmetatable(L, EVFNLUA_OUTCOME)) {
		lua_pushcfunction(L, outcome_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
}
