/* SPDX-License-Identifier: MIT */
/*
 * The module table (`require "evfn"`): the runtime constructor, the
 * outcome helpers evfn.retry and evfn.fail, evfn.sleep, evfn.now,
 * evfn.next_fire (from trigger.c), the evfn.errors table generated from
 * EVFN_ERRNO_MAP. It is the top of the binding: it opens every other
 * file and hands its own opener to evfn.runtime() for the workers' Lua
 * states, so that nothing below calls back up into it; the helpers the
 * files share are in helpers.c, at the bottom.
 */
/* dladdr() and RTLD_NODELETE are GNU extensions; the meson build
 * defines this for every file, a luarocks build does not. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>

#include "lua-internal.h"

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
	evfnlua_helpers_open(L);
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
	/* evfn.runtime() keeps this opener, with which each worker's Lua
	 * state opens the module for its handlers. */
	lua_pushcfunction(L, luaopen_evfn);
	lua_pushcclosure(L, evfnlua_l_runtime, 1);
	lua_setfield(L, -2, "runtime");
	push_errors(L);
	lua_setfield(L, -2, "errors");
	lua_pushstring(L, evfn_version_string());
	lua_setfield(L, -2, "version");
	return 1;
}
