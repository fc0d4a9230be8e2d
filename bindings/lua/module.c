/* SPDX-License-Identifier: MIT */
/*
 * The module table (`require "evfn"`): the runtime constructor, the
 * outcome helpers evfn.retry and evfn.fail, evfn.sleep, evfn.now,
 * evfn.next_fire (from trigger.c), the evfn.errors table generated from
 * EVFN_ERRNO_MAP, and the small helpers the other files share (the nil,
 * message, code error convention, seconds to milliseconds, guards that
 * keep evfn objects from leaking when a Lua error is raised).
 */
/* dladdr() and RTLD_NODELETE are GNU extensions; the meson build
 * defines this for every file, a luarocks build does not. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

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

/* evfn.now(): monotonic seconds, comparable with ctx.deadline. */
static int
l_now(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)evfnlua_now_ns() / 1e9);
	return 1;
}

static int
l_strerror(lua_State *L)
{
	lua_pushstring(L, evfn_strerror((int)luaL_checkinteger(L, 1)));
	return 1;
}

static int
l_errname(lua_State *L)
{
	lua_pushstring(L, evfn_err_name((int)luaL_checkinteger(L, 1)));
	return 1;
}

/* evfn.errors: name (without the EVFN_ prefix) -> code, one entry per
 * line of EVFN_ERRNO_MAP so that a new code needs no change here. */
static void
push_errors(lua_State *L)
{
	lua_newtable(L);
#define EVFNLUA_ERRNO_FIELD(name, value, msg)                                \
	lua_pushinteger(L, (value));                                         \
	lua_setfield(L, -2, #name);
	EVFN_ERRNO_MAP(EVFNLUA_ERRNO_FIELD)
#undef EVFNLUA_ERRNO_FIELD
}

static const luaL_Reg module_fns[] = {
	{"runtime", evfnlua_l_runtime},
	{"retry", evfnlua_l_retry},
	{"fail", evfnlua_l_fail},
	{"sleep", evfnlua_l_sleep},
	{"now", l_now},
	{"next_fire", evfnlua_l_next_fire},
	{"strerror", l_strerror},
	{"errname", l_errname},
	{NULL, NULL},
};

/* Keeps this module loaded for the life of the process. lua_close()
 * dlclose()s the C modules its state required, but evfn threads (a
 * worker stuck in a handler past its runtime's close, a pool thread on
 * its way out) may still run this module's code, or libevfn's and
 * libevent's that it pulled in: unmapping them under a running thread
 * crashes the process. Re-opening the module with RTLD_NODELETE pins it
 * and everything it depends on. */
static void
stay_resident(void)
{
	Dl_info info;
	if (dladdr((void *)luaopen_evfn, &info) && info.dli_fname)
		(void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD |
		                                     RTLD_NODELETE);
}

int
luaopen_evfn(lua_State *L)
{
	static pthread_once_t resident = PTHREAD_ONCE_INIT;
	pthread_once(&resident, stay_resident);
	if (luaL_newmetatable(L, EVFNLUA_GUARD)) {
		lua_pushcfunction(L, guard_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	evfnlua_event_open(L);
	evfnlua_call_open(L);
	evfnlua_runtime_open(L);
	evfnlua_trigger_open(L);
	evfnlua_deadletter_open(L);
	evfnlua_flow_open(L);
	evfnlua_http_open(L);
#ifdef EVFNLUA_HAVE_PG
	evfnlua_pg_open(L);
#endif

	luaL_newlib(L, module_fns);
	push_errors(L);
	lua_setfield(L, -2, "errors");
	lua_pushstring(L, evfn_version_string());
	lua_setfield(L, -2, "version");
	return 1;
}
