/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL from Lua: rt:pg_changes(publication, fn[, opts]) delivers
 * the row changes of a publication's tables through logical decoding,
 * rt:pg_listen(channel, fn[, opts]) the notifications of a channel, each
 * returning a source object (status, stats, close) over evfn/pg.h. The
 * source runs on the runtime's base, so it reads only while the loop is
 * driven (rt:run() ...). evfn_rt_free() refuses while a source is
 * alive, so each runtime object keeps its open sources and closes them
 * first; a source object holds its runtime object as a user value. Built
 * only where evfn has the pg source (EVFNLUA_HAVE_PG).
 */
#ifdef EVFNLUA_HAVE_PG

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <evfn/pg.h>

#include "lua-internal.h"

#define UV_RUNTIME 1

struct evfnlua_pg {
	evfn_pg_source *src;            /* NULL once closed */
	bool listen;
	struct evfnlua_link link;       /* on the owner's open sources */
};

static void
close_source(struct evfnlua_pg *p)
{
	evfnlua_link_remove(&p->link);
	evfn_pg_source_free(p->src);
	p->src = NULL;
}

void
evfnlua_pg_sources_free(struct evfnlua_rt *o)
{
	while (o->pg_sources)
		close_source(EVFNLUA_CONTAINER_OF(o->pg_sources,
		                                  struct evfnlua_pg, link));
}

static struct evfnlua_pg *
check_source(lua_State *L)
{
	struct evfnlua_pg *p = luaL_checkudata(L, 1, EVFNLUA_PG);
	if (!p->src)
		luaL_error(L, "evfn: pg source is closed");
	return p;
}

static void
free_pg_options(void *p)
{
	evfn_pg_options_free(p);
}

/* A field of the options table at t, pushed; its Lua type returned. */
static int
field(lua_State *L, int t, const char *name)
{
	return t ? lua_getfield(L, t, name) : (lua_pushnil(L), LUA_TNIL);
}

/* Applies the options table at t (0: none) to o; 0 or evfn's code. */
static int
apply_options(lua_State *L, int t, bool listen, evfn_pg_options *o)
{
	static const char *const changes[] = {
		"conninfo", "slot", "create_slot", "type_prefix",
		"max_in_flight", "feedback", "reconnect", NULL,
	};
	static const char *const channel[] = {
		"conninfo", "type_prefix", "reconnect", NULL,
	};
	if (!t)
		return 0;
	evfnlua_check_keys(L, t, "pg options", listen ? channel : changes);
	int top = lua_gettop(L);
	int rc = 0;
	if (field(L, t, "conninfo") != LUA_TNIL)
		rc = evfn_pg_options_set_conninfo(o, luaL_checkstring(L, -1));
	bool create = field(L, t, "create_slot") == LUA_TNIL ||
	              lua_toboolean(L, -1);
	const char *slot = field(L, t, "slot") != LUA_TNIL
	                           ? luaL_checkstring(L, -1)
	                           : NULL;
	if (rc == 0 && (slot || !create))
		rc = evfn_pg_options_set_slot(o, slot, create);
	if (rc == 0 && field(L, t, "type_prefix") != LUA_TNIL)
		rc = evfn_pg_options_set_type_prefix(o,
		                                     luaL_checkstring(L, -1));
	if (rc == 0 && field(L, t, "max_in_flight") != LUA_TNIL) {
		int n = evfnlua_opt_int(L, -1, "max_in_flight", &rc);
		if (rc == 0)
			rc = evfn_pg_options_set_max_in_flight(o, n);
	}
	if (rc == 0 && field(L, t, "feedback") != LUA_TNIL)
		rc = evfn_pg_options_set_feedback_ms(
			o, evfnlua_check_ms(L, -1, "feedback"));
	if (rc == 0 && field(L, t, "reconnect") != LUA_TNIL) {
		luaL_checktype(L, -1, LUA_TTABLE);
		int r = lua_gettop(L);
		lua_geti(L, r, 1);
		lua_geti(L, r, 2);
		rc = evfn_pg_options_set_reconnect(
			o, evfnlua_check_ms(L, -2, "reconnect[1]"),
			evfnlua_check_ms(L, -1, "reconnect[2]"));
	}
	lua_settop(L, top);
	return rc;
}

/* What rt:pg_changes and rt:pg_listen share: the source object is pushed
 * first, so that a raise later cannot leak the evfn source. */
static int
new_source(lua_State *L, bool listen)
{
	struct evfnlua_rt *o = luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
	if (!o->rt)
		luaL_error(L, "evfn: runtime is closed");
	const char *name = luaL_checkstring(L, 2);
	const char *fn = luaL_checkstring(L, 3);
	int t = 0;
	if (!lua_isnoneornil(L, 4)) {
		luaL_checktype(L, 4, LUA_TTABLE);
		t = 4;
	}
	evfn_pg_options *po;
	int rc = evfn_pg_options_new(&po);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	evfnlua_guard(L, po, free_pg_options);
	int guard = lua_gettop(L);
	rc = apply_options(L, t, listen, po);
	struct evfnlua_pg *p = lua_newuserdatauv(L, sizeof(*p), 1);
	memset(p, 0, sizeof(*p));
	p->listen = listen;
	luaL_setmetatable(L, EVFNLUA_PG);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, UV_RUNTIME);
	if (rc == 0)
		rc = listen ? evfn_pg_listen_new(&p->src, o->rt, name, fn, po)
		            : evfn_pg_source_new(&p->src, o->rt, name, fn, po);
	evfnlua_unguard(L, guard);
	evfn_pg_options_free(po);
	if (rc < 0)
		return evfnlua_push_error(L, rc, name);
	evfnlua_link_push(&o->pg_sources, &p->link);
	return 1;
}

/* rt:pg_changes(publication, fn[, {conninfo, slot, create_slot,
 * type_prefix, max_in_flight, feedback, reconnect = {base, cap}}]) ->
 * source, or nil, message, code */
static int
l_pg_changes(lua_State *L)
{
	return new_source(L, false);
}

/* rt:pg_listen(channel, fn[, {conninfo, type_prefix, reconnect}]) ->
 * source, or nil, message, code */
static int
l_pg_listen(lua_State *L)
{
	return new_source(L, true);
}

/* source:status() -> 0 while streaming or listening, else a code of
 * evfn.errors (ECONNREFUSED while reconnecting; why it stopped). */
static int
l_status(lua_State *L)
{
	lua_pushinteger(L, evfn_pg_source_status(check_source(L)->src));
	return 1;
}

/* source:stats() -> {submitted, ended, skipped, pauses, connects,
 * dropped, confirmed_lsn} */
static int
l_stats(lua_State *L)
{
	static const char *const names[EVFN_PG_STAT_COUNT] = {
		[EVFN_PG_STAT_SUBMITTED] = "submitted",
		[EVFN_PG_STAT_ENDED] = "ended",
		[EVFN_PG_STAT_SKIPPED] = "skipped",
		[EVFN_PG_STAT_PAUSES] = "pauses",
		[EVFN_PG_STAT_CONNECTS] = "connects",
		[EVFN_PG_STAT_DROPPED] = "dropped",
		[EVFN_PG_STAT_CONFIRMED_LSN] = "confirmed_lsn",
	};
	struct evfnlua_pg *p = check_source(L);
	uint64_t values[EVFN_PG_STAT_COUNT];
	for (int i = 0; i < EVFN_PG_STAT_COUNT; i++)
		values[i] = evfn_pg_source_stat(p->src, (evfn_pg_stat)i);
	return evfnlua_push_counters(L, names, values, EVFN_PG_STAT_COUNT);
}

/* source:close(), __close and __gc; closing twice is a no-op. */
static int
l_close(lua_State *L)
{
	struct evfnlua_pg *p = luaL_checkudata(L, 1, EVFNLUA_PG);
	if (p->src)
		close_source(p);
	lua_pushboolean(L, 1);
	return 1;
}

static int
l_tostring(lua_State *L)
{
	struct evfnlua_pg *p = luaL_checkudata(L, 1, EVFNLUA_PG);
	lua_pushfstring(L, "evfn.pg (%s, %s)", p->listen ? "listen" : "changes",
	                p->src ? "open" : "closed");
	return 1;
}

void
evfnlua_pg_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"status", l_status},
		{"stats", l_stats},
		{"close", l_close},
		{NULL, NULL},
	};
	evfnlua_handle_class(L, EVFNLUA_PG, methods, l_close, l_tostring);
	static const luaL_Reg rt_methods[] = {
		{"pg_changes", l_pg_changes},
		{"pg_listen", l_pg_listen},
		{NULL, NULL},
	};
	evfnlua_runtime_methods(L, rt_methods);
}

#endif /* EVFNLUA_HAVE_PG */
