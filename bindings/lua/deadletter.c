/* SPDX-License-Identifier: MIT */
/*
 * The dead-letter store from Lua: rt:dead_letters lists what ended
 * without success as plain tables (the event as handlers see it, the
 * function, why, how many attempts, the last error and when), and
 * rt:replay, rt:replay_all, rt:delete_dead_letter and
 * rt:purge_dead_letters act on it. Times are seconds since the epoch.
 */
#include <stdlib.h>

#include "lua-internal.h"

static evfn_rt *
check_open(lua_State *L)
{
	evfn_rt *rt = evfnlua_toruntime(L, 1);
	if (!rt) {
		luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
		luaL_error(L, "evfn: runtime is closed");
	}
	return rt;
}

/* A store id: a positive integer. */
static uint64_t
check_id(lua_State *L, int idx)
{
	lua_Integer id = luaL_checkinteger(L, idx);
	luaL_argcheck(L, id > 0, idx, "dead letter ids are positive");
	return (uint64_t)id;
}

/* The references a listing holds while its tables are built. */
struct listing {
	int n;
	evfn_dead_letter *dl[];
};

static void
free_listing(void *p)
{
	struct listing *l = p;
	for (int i = 0; i < l->n; i++)
		evfn_dead_letter_unref(l->dl[i]);
	free(l);
}

static void
set_time(lua_State *L, const char *key, int64_t ns)
{
	if (ns == 0)
		return; /* no attempt ran */
	lua_pushnumber(L, (lua_Number)ns / 1e9);
	lua_setfield(L, -2, key);
}

static void
push_dead_letter(lua_State *L, const evfn_dead_letter *dl)
{
	lua_createtable(L, 0, 9);
	lua_pushinteger(L, (lua_Integer)evfn_dead_letter_id(dl));
	lua_setfield(L, -2, "id");
	evfnlua_push_event(L, evfn_dead_letter_event(dl));
	lua_setfield(L, -2, "event");
	lua_pushstring(L, evfn_dead_letter_function(dl));
	lua_setfield(L, -2, "function");
	lua_pushstring(L, evfn_dead_letter_reason(dl));
	lua_setfield(L, -2, "reason");
	lua_pushinteger(L, evfn_dead_letter_code(dl));
	lua_setfield(L, -2, "code");
	lua_pushinteger(L, evfn_dead_letter_attempts(dl));
	lua_setfield(L, -2, "attempts");
	const char *err = evfn_dead_letter_error(dl);
	if (err) {
		lua_pushstring(L, err);
		lua_setfield(L, -2, "error");
	}
	set_time(L, "first_attempt", evfn_dead_letter_first_attempt(dl));
	set_time(L, "last_attempt", evfn_dead_letter_last_attempt(dl));
}

/* rt:dead_letters([max[, offset]]) -> array of dead letters, oldest
 * first: every one by default, else up to max after skipping offset. */
static int
l_dead_letters(lua_State *L)
{
	evfn_rt *rt = check_open(L);
	lua_Integer max = lua_isnoneornil(L, 2)
	                          ? (lua_Integer)evfn_dead_letter_count(rt)
	                          : luaL_checkinteger(L, 2);
	lua_Integer offset = luaL_optinteger(L, 3, 0);
	luaL_argcheck(L, max >= 0 && max <= INT32_MAX, 2, "out of range");
	luaL_argcheck(L, offset >= 0, 3, "out of range");
	struct listing *l = malloc(sizeof(*l) +
	                           (size_t)max * sizeof(l->dl[0]));
	if (!l)
		return evfnlua_push_error(L, EVFN_ENOMEM, NULL);
	l->n = 0;
	evfnlua_guard(L, l, free_listing);
	int guard = lua_gettop(L);
	int n = evfn_dead_letters(rt, l->dl, (size_t)max, (size_t)offset);
	if (n < 0)
		return evfnlua_push_error(L, n, NULL);
	l->n = n;
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		push_dead_letter(L, l->dl[i]);
		lua_rawseti(L, -2, i + 1);
	}
	evfnlua_unguard(L, guard);
	free_listing(l);
	return 1;
}

/* rt:replay(id) -> true, or nil, message, code (EVFN_ENOENT, or an
 * admission error: the dead letter then stays). */
static int
l_replay(lua_State *L)
{
	evfn_rt *rt = check_open(L);
	return evfnlua_push_rc(L, evfn_dead_letter_replay(rt, check_id(L, 2)));
}

/* rt:replay_all() -> the number replayed, or the error triple when the
 * first was refused. */
static int
l_replay_all(lua_State *L)
{
	return evfnlua_push_count(L, evfn_dead_letter_replay_all(check_open(L)));
}

static int
l_delete(lua_State *L)
{
	evfn_rt *rt = check_open(L);
	return evfnlua_push_rc(L, evfn_dead_letter_delete(rt, check_id(L, 2)));
}

/* rt:purge_dead_letters() -> the number removed. */
static int
l_purge(lua_State *L)
{
	return evfnlua_push_count(L, evfn_dead_letter_purge(check_open(L)));
}

void
evfnlua_deadletter_open(lua_State *L)
{
	static const luaL_Reg rt_methods[] = {
		{"dead_letters", l_dead_letters},
		{"replay", l_replay},
		{"replay_all", l_replay_all},
		{"delete_dead_letter", l_delete},
		{"purge_dead_letters", l_purge},
		{NULL, NULL},
	};
	evfnlua_runtime_methods(L, rt_methods);
}
