/* SPDX-License-Identifier: MIT */
/*
 * HTTP from Lua: rt:http{...} starts evfn's HTTP trigger on the
 * runtime's base (the one rt:run() drives) and returns a server object
 * (port, route, close). evfn_rt_free() refuses while a server is
 * alive, so each runtime object keeps its open servers and closes them
 * first; a server object holds its runtime object as a user value.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <evfn/http.h>

#include "lua-internal.h"

#define UV_RUNTIME 1

/* Stripe's own libraries accept signatures up to 5 minutes old. */
#define STRIPE_TOLERANCE_S 300

struct evfnlua_http {
	evfn_http *http;                /* NULL once closed */
	struct evfnlua_link link;       /* on the owner's open servers */
};

static void
close_server(struct evfnlua_http *s)
{
	evfnlua_link_remove(&s->link);
	evfn_http_free(s->http);
	s->http = NULL;
}

void
evfnlua_servers_free(struct evfnlua_rt *o)
{
	while (o->servers)
		close_server(EVFNLUA_CONTAINER_OF(o->servers, struct evfnlua_http,
		                                  link));
}

static struct evfnlua_http *
check_server(lua_State *L)
{
	struct evfnlua_http *s = luaL_checkudata(L, 1, EVFNLUA_HTTP);
	if (!s->http)
		luaL_error(L, "evfn: HTTP server is closed");
	return s;
}

static void
free_http_options(void *p)
{
	evfn_http_options_free(p);
}

static void
free_route_options(void *p)
{
	evfn_route_options_free(p);
}

/* A field of the options table at t, pushed; its Lua type returned. */
static int
field(lua_State *L, int t, const char *name)
{
	return t ? lua_getfield(L, t, name) : (lua_pushnil(L), LUA_TNIL);
}

/* An integer option at idx as an int; one beyond int's range becomes -1,
 * which every setter it goes to refuses with EVFN_ERANGE (a plain cast
 * would wrap 2^32 + 80 to port 80). */
static int
check_int(lua_State *L, int idx, const char *what)
{
	lua_Integer n = evfnlua_opt_integer(L, idx, what);
	return n >= 0 && n <= INT32_MAX ? (int)n : -1;
}

/* rt:http{address, port, max_body, timeout, max_connections, health,
 * metrics} -> server, or nil, message, code. */
static int
l_http(lua_State *L)
{
	static const char *const names[] = {
		"address", "port", "max_body", "timeout", "max_connections",
		"health", "metrics", NULL,
	};
	struct evfnlua_rt *o = luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
	if (!o->rt)
		luaL_error(L, "evfn: runtime is closed");
	if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
		luaL_typeerror(L, 2, "table of http options");
	int t = lua_istable(L, 2) ? 2 : 0;
	if (t)
		evfnlua_check_keys(L, t, "http options", names);
	evfn_http_options *ho;
	int rc = evfn_http_options_new(&ho);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	evfnlua_guard(L, ho, free_http_options);
	int guard = lua_gettop(L);
	const char *address = NULL;
	if (field(L, t, "address") != LUA_TNIL)
		address = evfnlua_opt_string(L, -1, "address");
	int port = field(L, t, "port") != LUA_TNIL ? check_int(L, -1, "port")
	                                           : 0;
	rc = evfn_http_options_set_address(ho, address, port);
	if (rc == 0 && field(L, t, "max_body") != LUA_TNIL)
		rc = evfn_http_options_set_max_body(
			ho, evfnlua_opt_integer(L, -1, "max_body"));
	if (rc == 0 && field(L, t, "timeout") != LUA_TNIL)
		rc = evfn_http_options_set_timeout_ms(
			ho, evfnlua_check_ms(L, -1, "timeout"));
	if (rc == 0 && field(L, t, "max_connections") != LUA_TNIL)
		rc = evfn_http_options_set_max_connections(
			ho, check_int(L, -1, "max_connections"));
	/* health and metrics: a path, or false to turn the route off. */
	if (rc == 0 && field(L, t, "health") != LUA_TNIL)
		rc = evfn_http_options_set_health_path(
			ho, lua_toboolean(L, -1)
			            ? evfnlua_opt_string(L, -1, "health")
			            : NULL);
	if (rc == 0 && field(L, t, "metrics") != LUA_TNIL)
		rc = evfn_http_options_set_metrics_path(
			ho, lua_toboolean(L, -1)
			            ? evfnlua_opt_string(L, -1, "metrics")
			            : NULL);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	struct evfnlua_http *s = lua_newuserdatauv(L, sizeof(*s), 1);
	memset(s, 0, sizeof(*s));
	luaL_setmetatable(L, EVFNLUA_HTTP);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, UV_RUNTIME);
	rc = evfn_http_new(&s->http, o->rt, ho);
	evfnlua_unguard(L, guard);
	evfn_http_options_free(ho);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	evfnlua_link_push(&o->servers, &s->link);
	return 1;
}

/* server:port() */
static int
l_port(lua_State *L)
{
	lua_pushinteger(L, evfn_http_port(check_server(L)->http));
	return 1;
}

/* server:route("METHOD /path", fn_name[, {async, timeout, stripe_secret,
 * stripe_tolerance, github_secret, bearer}]) -> true, or nil, msg, code */
static int
l_route(lua_State *L)
{
	static const char *const names[] = {
		"async", "timeout", "stripe_secret", "stripe_tolerance",
		"github_secret", "bearer", NULL,
	};
	struct evfnlua_http *s = check_server(L);
	const char *route = luaL_checkstring(L, 2);
	const char *fn = luaL_checkstring(L, 3);
	if (!lua_isnoneornil(L, 4) && !lua_istable(L, 4))
		luaL_typeerror(L, 4, "table of route options");
	int t = lua_istable(L, 4) ? 4 : 0;
	if (t)
		evfnlua_check_keys(L, t, "route options", names);
	evfn_route_options *ro;
	int rc = evfn_route_options_new(&ro);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	evfnlua_guard(L, ro, free_route_options);
	int guard = lua_gettop(L);
	if (field(L, t, "async") != LUA_TNIL)
		rc = evfn_route_options_set_async(ro, lua_toboolean(L, -1));
	if (rc == 0 && field(L, t, "timeout") != LUA_TNIL)
		rc = evfn_route_options_set_timeout_ms(
			ro, evfnlua_check_ms(L, -1, "timeout"));
	/* A tolerance means nothing without the secret it applies to. */
	bool has_tolerance = field(L, t, "stripe_tolerance") != LUA_TNIL;
	int64_t tolerance =
		has_tolerance ? evfnlua_opt_integer(L, -1, "stripe_tolerance")
		              : STRIPE_TOLERANCE_S;
	if (field(L, t, "stripe_secret") == LUA_TNIL) {
		if (has_tolerance)
			luaL_error(L, "route options: stripe_tolerance needs "
			              "stripe_secret");
	} else if (rc == 0) {
		rc = evfn_route_options_set_stripe_secret(
			ro, evfnlua_opt_string(L, -1, "stripe_secret"),
			tolerance);
	}
	if (rc == 0 && field(L, t, "github_secret") != LUA_TNIL)
		rc = evfn_route_options_set_github_secret(
			ro, evfnlua_opt_string(L, -1, "github_secret"));
	if (rc == 0 && field(L, t, "bearer") != LUA_TNIL)
		rc = evfn_route_options_set_bearer_token(
			ro, evfnlua_opt_string(L, -1, "bearer"));
	if (rc == 0)
		rc = evfn_http_route(s->http, route, fn, ro);
	evfnlua_unguard(L, guard);
	evfn_route_options_free(ro);
	return evfnlua_push_rc(L, rc);
}

/* server:close(), __close and __gc; closing twice is a no-op. */
static int
l_close(lua_State *L)
{
	struct evfnlua_http *s = luaL_checkudata(L, 1, EVFNLUA_HTTP);
	if (s->http)
		close_server(s);
	lua_pushboolean(L, 1);
	return 1;
}

static int
l_tostring(lua_State *L)
{
	struct evfnlua_http *s = luaL_checkudata(L, 1, EVFNLUA_HTTP);
	if (s->http)
		lua_pushfstring(L, "evfn.http (port %d)",
		                evfn_http_port(s->http));
	else
		lua_pushliteral(L, "evfn.http (closed)");
	return 1;
}

void
evfnlua_http_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"port", l_port},
		{"route", l_route},
		{"close", l_close},
		{NULL, NULL},
	};
	evfnlua_handle_class(L, EVFNLUA_HTTP, methods, l_close, l_tostring);
	static const luaL_Reg rt_methods[] = {
		{"http", l_http},
		{NULL, NULL},
	};
	evfnlua_runtime_methods(L, rt_methods);
}
