/* SPDX-License-Identifier: MIT */
/*
 * The helpers every file of the Lua binding shares: the nil, message,
 * code error convention; options read from tables, with errors that name
 * the option; seconds to milliseconds; guards that keep evfn objects from
 * leaking when a Lua error is raised; the classes of handle objects and
 * the runtime's methods; and keeping a callback's error to re-raise.
 * They call nothing else of the binding: module.c, at the top, opens the
 * other files.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "lua-internal.h"

int
evfnlua_push_error(lua_State *L, int code, const char *detail)
{
	lua_pushnil(L);
	if (detail)
		lua_pushfstring(L, "%s: %s: %s", evfn_err_name(code),
		                evfn_strerror(code), detail);
	else
		lua_pushfstring(L, "%s: %s", evfn_err_name(code),
		                evfn_strerror(code));
	lua_pushinteger(L, code);
	return 3;
}

int
evfnlua_push_rc(lua_State *L, int rc)
{
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	lua_pushboolean(L, 1);
	return 1;
}

int
evfnlua_push_count(lua_State *L, int rc)
{
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	lua_pushinteger(L, rc);
	return 1;
}

int
evfnlua_push_counters(lua_State *L, const char *const *names,
                      const uint64_t *values, int n)
{
	lua_createtable(L, 0, n);
	for (int i = 0; i < n; i++) {
		lua_pushinteger(L, (lua_Integer)values[i]);
		lua_setfield(L, -2, names[i]);
	}
	return 1;
}

/* Raises "<what>: <expected> expected, got <type of the value at idx>":
 * luaL_check* would say "bad argument #-1" for a value read from an
 * option table, which names nothing the caller wrote. */
static int
option_type_error(lua_State *L, int idx, const char *what,
                  const char *expected)
{
	return luaL_error(L, "%s: %s expected, got %s", what, expected,
	                  luaL_typename(L, idx));
}

lua_Number
evfnlua_opt_number(lua_State *L, int idx, const char *what)
{
	int isnum;
	lua_Number n = lua_tonumberx(L, idx, &isnum);
	if (!isnum)
		option_type_error(L, idx, what, "number");
	return n;
}

lua_Integer
evfnlua_opt_integer(lua_State *L, int idx, const char *what)
{
	int isnum;
	lua_Integer n = lua_tointegerx(L, idx, &isnum);
	if (!isnum) {
		if (lua_isnumber(L, idx))
			luaL_error(L, "%s: number has no integer representation",
			           what);
		option_type_error(L, idx, what, "integer");
	}
	return n;
}

int
evfnlua_opt_int(lua_State *L, int idx, const char *what, int *rc)
{
	lua_Integer n = evfnlua_opt_integer(L, idx, what);
	if (n < INT_MIN || n > INT_MAX) {
		*rc = EVFN_ERANGE;
		return 0;
	}
	return (int)n;
}

const char *
evfnlua_opt_string(lua_State *L, int idx, const char *what)
{
	const char *s = lua_tostring(L, idx);
	if (!s)
		option_type_error(L, idx, what, "string");
	return s;
}

void
evfnlua_opt_table(lua_State *L, int idx, const char *what)
{
	if (!lua_istable(L, idx))
		option_type_error(L, idx, what, "table");
}

int
evfnlua_opt_choice(lua_State *L, int idx, const char *what, const char *def,
                   const char *const *choices)
{
	const char *s = def && lua_isnoneornil(L, idx)
	                        ? def
	                        : evfnlua_opt_string(L, idx, what);
	for (int i = 0; choices[i]; i++)
		if (strcmp(choices[i], s) == 0)
			return i;
	return luaL_error(L, "%s: invalid option '%s'", what, s);
}

bool
evfnlua_option(lua_State *L, int t, const char *k, const char **opt)
{
	if (lua_getfield(L, t, k) == LUA_TNIL) {
		lua_pop(L, 1);
		return false;
	}
	*opt = k;
	return true;
}

int64_t
evfnlua_check_ms(lua_State *L, int idx, const char *what)
{
	lua_Number s = evfnlua_opt_number(L, idx, what);
	if (!(s >= 0 && s <= 1e9))
		luaL_error(L, "%s: %f seconds is out of range", what,
		           (double)s);
	return (int64_t)llround(s * 1000.0);
}

int64_t
evfnlua_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct guard {
	void *p;
	void (*fn)(void *);
};

static int
guard_gc(lua_State *L)
{
	struct guard *g = luaL_checkudata(L, 1, EVFNLUA_GUARD);
	if (g->p)
		g->fn(g->p);
	g->p = NULL;
	return 0;
}

void
evfnlua_guard(lua_State *L, void *p, void (*fn)(void *))
{
	struct guard *g = lua_newuserdatauv(L, sizeof(*g), 0);
	g->p = NULL;
	luaL_setmetatable(L, EVFNLUA_GUARD);
	g->p = p;
	g->fn = fn;
}

void
evfnlua_unguard(lua_State *L, int idx)
{
	struct guard *g = luaL_checkudata(L, idx, EVFNLUA_GUARD);
	g->p = NULL;
}

void
evfnlua_helpers_open(lua_State *L)
{
	if (luaL_newmetatable(L, EVFNLUA_GUARD)) {
		lua_pushcfunction(L, guard_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
}

void
evfnlua_handle_class(lua_State *L, const char *name, const luaL_Reg *methods,
                     lua_CFunction close, lua_CFunction tostring)
{
	if (luaL_newmetatable(L, name)) {
		lua_newtable(L);
		luaL_setfuncs(L, methods, 0);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, close);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, close);
		lua_setfield(L, -2, "__close");
		lua_pushcfunction(L, tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
}

void
evfnlua_runtime_methods(lua_State *L, const luaL_Reg *methods)
{
	luaL_getmetatable(L, EVFNLUA_RUNTIME);
	lua_getfield(L, -1, "__index");
	luaL_setfuncs(L, methods, 0);
	lua_pop(L, 2);
}

void
evfnlua_check_keys(lua_State *L, int idx, const char *what,
                   const char *const *names)
{
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		bool known = false;
		if (lua_type(L, -1) == LUA_TSTRING) {
			const char *k = lua_tostring(L, -1);
			for (const char *const *n = names; *n && !known; n++)
				known = strcmp(k, *n) == 0;
		}
		if (!known)
			luaL_error(L, "%s: unknown option '%s'", what,
			           luaL_tolstring(L, -1, NULL));
	}
}

/* Keeps the first error a Lua callback raised, to re-raise it from the
 * method that was driving the loop, and stops the loop. */
void
evfnlua_keep_cb_error(struct evfnlua_rt *o, lua_State *L)
{
	if (!o->cb_error) {
		const char *msg = lua_tostring(L, -1);
		o->cb_error = strdup(msg ? msg : "a callback raised a value");
	}
	lua_pop(L, 1);
	if (o->base)
		event_base_loopbreak(o->base);
}
