/* SPDX-License-Identifier: MIT */
/*
 * Handlers named by module ("handlers.resize") run on evfn's worker pool
 * with one Lua state per worker and function, so Lua work uses every
 * core while no lua_State is ever shared between threads. The worker init
 * hook builds the state (standard libraries, the evfn module, the package
 * paths of the state that registered the function) and requires the
 * module, whose value is the handler (a function, or a table with a
 * `handler` function); the fini hook closes it on the same thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "lua-internal.h"

struct worker {
	struct evfnlua_vm vm;
	int handler;                /* registry ref; LUA_NOREF until loaded */
	char error[512];            /* why the module did not load */
};

static char *
copy_field(lua_State *L, const char *field)
{
	int top = lua_gettop(L);
	const char *s = "";
	if (lua_getglobal(L, "package") == LUA_TTABLE &&
	    lua_getfield(L, -1, field) == LUA_TSTRING)
		s = lua_tostring(L, -1);
	char *copy = strdup(s);
	lua_settop(L, top);
	return copy;
}

/* True when package.searchpath finds name on path. */
static bool
found_on(lua_State *L, const char *name, const char *path)
{
	int top = lua_gettop(L);
	bool found = false;
	if (lua_getglobal(L, "package") == LUA_TTABLE &&
	    lua_getfield(L, -1, "searchpath") == LUA_TFUNCTION) {
		lua_pushstring(L, name);
		lua_pushstring(L, path);
		lua_call(L, 2, 1);
		found = !lua_isnil(L, -1);
	}
	lua_settop(L, top);
	return found;
}

int
evfnlua_fn_module(lua_State *L, int idx, struct evfnlua_fn *f)
{
	const char *name = lua_tostring(L, idx);
	f->module = strdup(name);
	f->path = copy_field(L, "path");
	f->cpath = copy_field(L, "cpath");
	if (!f->module || !f->path || !f->cpath) {
		lua_pushliteral(L, "module name");
		return EVFN_ENOMEM;
	}
	/* Fail at registration rather than on every worker for a module
	 * that is nowhere to be found; loading it here instead would run
	 * its code in the wrong state. */
	if (!found_on(L, name, f->path) && !found_on(L, name, f->cpath)) {
		lua_pushfstring(L, "module '%s' not found on package.path or "
		                   "package.cpath",
		                name);
		return EVFN_ENOENT;
	}
	return 0;
}

static int
setup_cf(lua_State *L)
{
	struct evfnlua_fn *f = lua_touserdata(L, 1);
	luaL_openlibs(L);
	luaL_requiref(L, "evfn", f->owner->opener, 0);
	lua_getglobal(L, "package");
	lua_pushstring(L, f->path);
	lua_setfield(L, -2, "path");
	lua_pushstring(L, f->cpath);
	lua_setfield(L, -2, "cpath");
	return 0;
}

static int
load_cf(lua_State *L)
{
	struct evfnlua_fn *f = lua_touserdata(L, 1);
	lua_getglobal(L, "require");
	lua_pushstring(L, f->module);
	lua_call(L, 1, 1);
	if (lua_istable(L, -1))
		lua_getfield(L, -1, "handler");
	if (!lua_isfunction(L, -1))
		return luaL_error(L,
		                  "module '%s' gave a %s: expected a function "
		                  "or a table with a handler function",
		                  f->module, luaL_typename(L, -1));
	return 1;
}

/* Requires the module and keeps its handler; on failure keeps the reason
 * and returns false (the next attempt tries again). */
static bool
load(struct worker *w, struct evfnlua_fn *f)
{
	lua_State *L = w->vm.L;
	lua_pushcfunction(L, load_cf);
	lua_pushlightuserdata(L, f);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		snprintf(w->error, sizeof(w->error), "loading module '%s': %s",
		         f->module, msg ? msg : "error object is not a string");
		lua_pop(L, 1);
		return false;
	}
	w->handler = luaL_ref(L, LUA_REGISTRYINDEX);
	return w->handler != LUA_REFNIL;
}

int
evfnlua_worker_init(void *userdata, void **state)
{
	struct evfnlua_fn *f = userdata;
	struct worker *w = calloc(1, sizeof(*w));
	lua_State *L = luaL_newstate();
	if (!w || !L) {
		free(w);
		if (L)
			lua_close(L);
		return EVFN_ENOMEM;
	}
	w->vm.L = L;
	w->handler = LUA_NOREF;
	lua_pushcfunction(L, setup_cf);
	lua_pushlightuserdata(L, f);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		lua_close(L);
		free(w);
		return EVFN_ENOMEM;
	}
	/* The module loads now, before the first event, as a Lambda INIT
	 * would; a failure is reported (and retried) by the handler. */
	load(w, f);
	*state = w;
	return 0;
}

void
evfnlua_worker_fini(void *userdata, void *state)
{
	(void)userdata;
	struct worker *w = state;
	if (!w)
		return;
	lua_close(w->vm.L);
	free(w);
}

int
evfnlua_pool_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct worker *w = evfn_ctx_worker_state(ctx);
	if (w->handler == LUA_NOREF && !load(w, userdata)) {
		evfn_ctx_set_error(ctx, w->error);
		return EVFN_RETRY;
	}
	return evfnlua_call_run(&w->vm, w->handler, ctx, ev, NULL);
}
