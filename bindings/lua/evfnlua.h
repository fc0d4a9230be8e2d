/* SPDX-License-Identifier: MIT */
/*
 * The Lua 5.4 binding of evfn, as a C host that embeds Lua sees it: the
 * module opener to preload (luaL_requiref(L, "evfn", luaopen_evfn, 1)) and
 * access to the evfn runtime behind a Lua runtime object, so the host can
 * emit into it, attach triggers to it, and drive its event_base itself.
 * Scripts use the module through `require "evfn"`; see README.md.
 */
#ifndef EVFNLUA_H
#define EVFNLUA_H

#include <lua.h>

#include <evfn.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EVFNLUA_EXPORT __attribute__((visibility("default")))
#else
#define EVFNLUA_EXPORT
#endif

/**
 * Open the module: push its table (what `require "evfn"` returns).
 * @return 1 (the number of values pushed).
 */
EVFNLUA_EXPORT int luaopen_evfn(lua_State *L);

/**
 * The evfn runtime behind the Lua runtime object at index idx.
 *
 * The runtime runs on an event_base that the binding owns
 * (evfn_rt_event_base()); a host that drives that base with
 * event_base_loop() must do so on the thread that owns L, outside any Lua
 * call into the runtime object, because loop handlers run in L.
 *
 * @return the runtime, borrowed until the object is closed or collected;
 *         NULL when the value is not an open runtime object.
 */
EVFNLUA_EXPORT evfn_rt *evfnlua_toruntime(lua_State *L, int idx);

#ifdef __cplusplus
}
#endif

#endif /* EVFNLUA_H */
