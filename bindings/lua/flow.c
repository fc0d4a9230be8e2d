/* SPDX-License-Identifier: MIT */
/*
 * Flow control from Lua: the register() options that shape when a
 * function's attempts start (batch, rate, breaker) and the runtime
 * methods that act on work already accepted (rt:pause, rt:resume,
 * rt:cancel). Per-event controls (ordering key, delay) are event
 * attributes and live in event.c; batch items and per-item failures are
 * context methods and live in call.c.
 */
#include <string.h>

#include "lua-internal.h"

/* Defaults of the breaker fields that may be left out: those of a
 * service that sees a few calls a second. */
#define BREAKER_MIN_CALLS 10
#define BREAKER_WINDOW_MS 60000
#define BREAKER_COOLDOWN_MS 30000

/* An integer field of the table at t, or def when absent; raises on a
 * wrong type, naming what.k. Beyond int's range it is EVFN_ERANGE
 * through *rc; the ranges themselves are the library's to judge. */
static int
int_field(lua_State *L, int t, const char *what, const char *k, int def,
          int *rc)
{
	int v = def;
	if (lua_getfield(L, t, k) != LUA_TNIL) {
		lua_pushfstring(L, "%s.%s", what, k);
		v = evfnlua_opt_int(L, -2, lua_tostring(L, -1), rc);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return v;
}

/* A number field of the table at t, or def when absent. */
static lua_Number
number_field(lua_State *L, int t, const char *what, const char *k,
             lua_Number def)
{
	lua_Number v = def;
	if (lua_getfield(L, t, k) != LUA_TNIL) {
		lua_pushfstring(L, "%s.%s", what, k);
		v = evfnlua_opt_number(L, -2, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return v;
}

/* A seconds field of the table at t as milliseconds, or def. */
static int64_t
ms_field(lua_State *L, int t, const char *what, const char *k, int64_t def)
{
	int64_t v = def;
	if (lua_getfield(L, t, k) != LUA_TNIL) {
		lua_pushfstring(L, "%s.%s", what, k);
		v = evfnlua_check_ms(L, -2, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return v;
}

/* batch = {max = n, window = seconds}: module handlers only, as evfn
 * runs batches on the pool. */
static int
set_batch(lua_State *L, int t, evfn_fn_options *fo)
{
	static const char *const names[] = {"max", "window", NULL};
	evfnlua_opt_table(L, t, "batch");
	evfnlua_check_keys(L, t, "batch", names);
	int rc = 0;
	lua_getfield(L, t, "max");
	int max = evfnlua_opt_int(L, -1, "batch.max", &rc);
	lua_pop(L, 1);
	int64_t window = ms_field(L, t, "batch", "window", 0);
	return rc < 0 ? rc : evfn_fn_options_set_batch(fo, max, window);
}

/* rate = {per_second = x, burst = n} */
static int
set_rate(lua_State *L, int t, evfn_fn_options *fo)
{
	static const char *const names[] = {"per_second", "burst", NULL};
	evfnlua_opt_table(L, t, "rate");
	evfnlua_check_keys(L, t, "rate", names);
	lua_getfield(L, t, "per_second");
	lua_Number per_second = evfnlua_opt_number(L, -1, "rate.per_second");
	lua_pop(L, 1);
	int rc = 0;
	int burst = int_field(L, t, "rate", "burst", 1, &rc);
	return rc < 0 ? rc
	              : evfn_fn_options_set_rate_limit(fo, per_second, burst);
}

/* breaker = {consecutive = n, failure_rate = r, min_calls = n,
 * window = s, cooldown = s, policy = "queue" | "refuse"}: at least one
 * of the two triggers (consecutive, failure_rate) must be given. */
static int
set_breaker(lua_State *L, int t, evfn_fn_options *fo)
{
	static const char *const names[] = {
		"consecutive", "failure_rate", "min_calls", "window",
		"cooldown", "policy", NULL,
	};
	/* In the order of evfn_circuit_policy. */
	static const char *const policies[] = {"queue", "refuse", NULL};
	evfnlua_opt_table(L, t, "breaker");
	evfnlua_check_keys(L, t, "breaker", names);
	int rc = 0;
	int consecutive = int_field(L, t, "breaker", "consecutive", 0, &rc);
	int min_calls = int_field(L, t, "breaker", "min_calls",
	                          BREAKER_MIN_CALLS, &rc);
	lua_Number rate = number_field(L, t, "breaker", "failure_rate", 0);
	lua_getfield(L, t, "policy");
	int policy = evfnlua_opt_choice(L, -1, "breaker.policy", "queue",
	                                policies);
	lua_pop(L, 1);
	int64_t window = ms_field(L, t, "breaker", "window", BREAKER_WINDOW_MS);
	int64_t cooldown = ms_field(L, t, "breaker", "cooldown",
	                            BREAKER_COOLDOWN_MS);
	if (rc < 0)
		return rc;
	return evfn_fn_options_set_circuit_breaker(
		fo, consecutive, rate, min_calls, window, cooldown,
		(evfn_circuit_policy)policy);
}

int
evfnlua_flow_options(lua_State *L, int t, evfn_fn_options *fo,
                     const char **opt)
{
	int top = lua_gettop(L);
	int rc = 0;
	if (evfnlua_option(L, t, "batch", opt))
		rc = set_batch(L, lua_gettop(L), fo);
	if (rc == 0 && evfnlua_option(L, t, "rate", opt))
		rc = set_rate(L, lua_gettop(L), fo);
	if (rc == 0 && evfnlua_option(L, t, "breaker", opt))
		rc = set_breaker(L, lua_gettop(L), fo);
	lua_settop(L, top);
	return rc;
}

static struct evfnlua_rt *
check_open(lua_State *L)
{
	struct evfnlua_rt *o = luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
	if (!o->rt)
		luaL_error(L, "evfn: runtime is closed");
	return o;
}

/* rt:pause(name) -> true, or nil, message, code (EVFN_ENOFN). */
static int
l_pause(lua_State *L)
{
	struct evfnlua_rt *o = check_open(L);
	return evfnlua_push_rc(L, evfn_pause(o->rt, luaL_checkstring(L, 2)));
}

/* rt:resume(name) -> as rt:pause. */
static int
l_resume(lua_State *L)
{
	struct evfnlua_rt *o = check_open(L);
	return evfnlua_push_rc(L, evfn_resume(o->rt, luaL_checkstring(L, 2)));
}

/* rt:cancel(event_id[, name]) -> how many invocations were cancelled or
 * asked to stop, or nil, message, code (EVFN_ENOENT when nothing waits or
 * runs under that id, EVFN_ENOFN for an unknown name). The id is a
 * string, or the seq emit returned (the default id is its decimal). */
static int
l_cancel(lua_State *L)
{
	struct evfnlua_rt *o = check_open(L);
	luaL_argexpected(L, lua_type(L, 2) == LUA_TSTRING || lua_isinteger(L, 2),
	                 2, "event id (string or seq)");
	const char *id = lua_tostring(L, 2);
	const char *name = luaL_optstring(L, 3, NULL);
	int rc = evfn_cancel(o->rt, name, id);
	if (rc > 0)
		evfnlua_call_cancel_requested(o);
	return evfnlua_push_count(L, rc);
}

void
evfnlua_flow_open(lua_State *L)
{
	static const luaL_Reg rt_methods[] = {
		{"pause", l_pause},
		{"resume", l_resume},
		{"cancel", l_cancel},
		{NULL, NULL},
	};
	evfnlua_runtime_methods(L, rt_methods);
}
