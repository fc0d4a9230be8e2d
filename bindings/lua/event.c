/* SPDX-License-Identifier: MIT */
/*
 * Events on the Lua side: the read-only event object a handler receives
 * (fields id, source, type, subject, time, datacontenttype, data, seq,
 * hops, key and an extensions proxy), which holds a reference to the evfn
 * event so it stays valid after the handler returns, and the builder that
 * turns a payload plus an attribute table into an evfn event for emit and
 * invoke. Besides CloudEvents attributes the table carries how evfn
 * delivers the event: its ordering key and a delay (or a time to deliver
 * at).
 */
#include <string.h>

#include "lua-internal.h"

struct lua_event {
	const evfn_event *ev;
};

void
evfnlua_push_event(lua_State *L, const evfn_event *ev)
{
	struct lua_event *e = lua_newuserdatauv(L, sizeof(*e), 0);
	e->ev = NULL;
	luaL_setmetatable(L, EVFNLUA_EVENT);
	e->ev = evfn_event_ref(ev);
}

static int
event_gc(lua_State *L)
{
	struct lua_event *e = lua_touserdata(L, 1);
	evfn_event_unref(e->ev);
	e->ev = NULL;
	return 0;
}

static void
push_opt_string(lua_State *L, const char *s)
{
	if (s)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
}

static int
event_index(lua_State *L)
{
	struct lua_event *e = luaL_checkudata(L, 1, EVFNLUA_EVENT);
	const char *k = luaL_checkstring(L, 2);
	const evfn_event *ev = e->ev;
	if (strcmp(k, "data") == 0) {
		size_t len;
		const char *d = evfn_event_data(ev, &len);
		lua_pushlstring(L, d ? d : "", len);
	} else if (strcmp(k, "type") == 0) {
		push_opt_string(L, evfn_event_type(ev));
	} else if (strcmp(k, "id") == 0) {
		push_opt_string(L, evfn_event_id(ev));
	} else if (strcmp(k, "source") == 0) {
		push_opt_string(L, evfn_event_source(ev));
	} else if (strcmp(k, "subject") == 0) {
		push_opt_string(L, evfn_event_subject(ev));
	} else if (strcmp(k, "datacontenttype") == 0) {
		push_opt_string(L, evfn_event_datacontenttype(ev));
	} else if (strcmp(k, "time") == 0) {
		lua_pushnumber(L, (lua_Number)evfn_event_time(ev) / 1e9);
	} else if (strcmp(k, "seq") == 0) {
		lua_pushinteger(L, (lua_Integer)evfn_event_seq(ev));
	} else if (strcmp(k, "hops") == 0) {
		lua_pushinteger(L, (lua_Integer)evfn_event_hops(ev));
	} else if (strcmp(k, "key") == 0) {
		push_opt_string(L, evfn_event_ordering_key(ev));
	} else if (strcmp(k, "extensions") == 0) {
		/* A proxy: evfn has no way to list extensions, only to look
		 * one up by name. */
		struct lua_event *x = lua_newuserdatauv(L, sizeof(*x), 0);
		x->ev = NULL;
		luaL_setmetatable(L, EVFNLUA_EXTENSIONS);
		x->ev = evfn_event_ref(ev);
	} else {
		lua_pushnil(L);
	}
	return 1;
}

static int
event_tostring(lua_State *L)
{
	struct lua_event *e = luaL_checkudata(L, 1, EVFNLUA_EVENT);
	lua_pushfstring(L, "evfn.event(%s, id %s)", evfn_event_type(e->ev),
	                evfn_event_id(e->ev));
	return 1;
}

static int
extensions_index(lua_State *L)
{
	struct lua_event *x = luaL_checkudata(L, 1, EVFNLUA_EXTENSIONS);
	push_opt_string(L, evfn_event_extension(x->ev, luaL_checkstring(L, 2)));
	return 1;
}

void
evfnlua_event_open(lua_State *L)
{
	if (luaL_newmetatable(L, EVFNLUA_EVENT)) {
		lua_pushcfunction(L, event_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, event_index);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, event_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
	if (luaL_newmetatable(L, EVFNLUA_EXTENSIONS)) {
		lua_pushcfunction(L, event_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, extensions_index);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
}

static void
unref_event(void *ev)
{
	evfn_event_unref(ev);
}

/* Applies one string attribute through its setter, when present. */
static int
set_string_attr(lua_State *L, int attrs, const char *name, evfn_event *ev,
                int (*set)(evfn_event *, const char *))
{
	int rc = 0;
	if (lua_getfield(L, attrs, name) != LUA_TNIL) {
		luaL_argexpected(L, lua_type(L, -1) == LUA_TSTRING, attrs,
		                 "string attribute");
		rc = set(ev, lua_tostring(L, -1));
	}
	lua_pop(L, 1);
	return rc;
}

static int
set_extensions(lua_State *L, int attrs, evfn_event *ev)
{
	int rc = 0;
	if (lua_getfield(L, attrs, "extensions") != LUA_TNIL) {
		evfnlua_opt_table(L, -1, "extensions");
		int t = lua_gettop(L);
		lua_pushnil(L);
		while (rc == 0 && lua_next(L, t)) {
			if (lua_type(L, -2) != LUA_TSTRING ||
			    lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "extensions: names and values "
				              "must be strings");
			rc = evfn_event_set_extension(ev, lua_tostring(L, -2),
			                              lua_tostring(L, -1));
			lua_pop(L, 1);
		}
		if (rc < 0)
			lua_pop(L, 1); /* the key lua_next left */
	}
	lua_pop(L, 1);
	return rc;
}

/* A time attribute (seconds since the epoch) as nanoseconds. */
static int64_t
check_unix_ns(lua_State *L, int idx, const char *what)
{
	lua_Number t = evfnlua_opt_number(L, idx, what);
	if (!(t >= 0 && t < 9.2e9))
		luaL_error(L, "%s: out of range", what);
	return (int64_t)(t * 1e9);
}

/* delay = seconds or at = seconds since the epoch: when evfn delivers the
 * event. Both at once would leave one silently ignored, so it raises. */
static int
set_delivery(lua_State *L, int attrs, evfn_event *ev)
{
	int rc = 0;
	int top = lua_gettop(L);
	bool delay = lua_getfield(L, attrs, "delay") != LUA_TNIL;
	bool at = lua_getfield(L, attrs, "at") != LUA_TNIL;
	if (delay && at)
		luaL_error(L, "event attributes: give delay or at, not both");
	if (delay)
		rc = evfn_event_set_delay_ms(ev,
		                             evfnlua_check_ms(L, top + 1, "delay"));
	else if (at)
		rc = evfn_event_set_deliver_at(ev,
		                               check_unix_ns(L, top + 2, "at"));
	lua_settop(L, top);
	return rc;
}

int
evfnlua_event_build(lua_State *L, const char *type, int data, int attrs,
                    evfn_event **out)
{
	static const char *const names[] = {
		"id", "source", "subject", "datacontenttype", "time",
		"extensions", "key", "delay", "at", NULL,
	};
	*out = NULL;
	size_t len = 0;
	const char *d = luaL_optlstring(L, data, "", &len);
	bool has_attrs = attrs != 0 && !lua_isnoneornil(L, attrs);
	if (has_attrs) {
		attrs = lua_absindex(L, attrs);
		luaL_checktype(L, attrs, LUA_TTABLE);
		evfnlua_check_keys(L, attrs, "event attributes", names);
	}
	evfn_event *ev;
	int rc = evfn_event_new(&ev, type, d, len);
	if (rc < 0 || !has_attrs) {
		*out = rc < 0 ? NULL : ev;
		return rc;
	}
	/* Setters below may raise on wrong types: the guard drops ev. */
	evfnlua_guard(L, ev, unref_event);
	int guard = lua_gettop(L);
	rc = set_string_attr(L, attrs, "id", ev, evfn_event_set_id);
	if (rc == 0)
		rc = set_string_attr(L, attrs, "source", ev,
		                     evfn_event_set_source);
	if (rc == 0)
		rc = set_string_attr(L, attrs, "subject", ev,
		                     evfn_event_set_subject);
	if (rc == 0)
		rc = set_string_attr(L, attrs, "datacontenttype", ev,
		                     evfn_event_set_datacontenttype);
	if (rc == 0)
		rc = set_string_attr(L, attrs, "key", ev,
		                     evfn_event_set_ordering_key);
	if (rc == 0 && lua_getfield(L, attrs, "time") != LUA_TNIL)
		rc = evfn_event_set_time(ev, check_unix_ns(L, -1, "time"));
	lua_settop(L, guard);
	if (rc == 0)
		rc = set_delivery(L, attrs, ev);
	if (rc == 0)
		rc = set_extensions(L, attrs, ev);
	evfnlua_unguard(L, guard);
	lua_pop(L, 1);
	if (rc < 0) {
		evfn_event_unref(ev);
		return rc;
	}
	*out = ev;
	return 0;
}
