-- SPDX-License-Identifier: MIT
-- LuaRocks build of the evfn Lua binding against an installed libevfn
-- (headers and library under EVFN_DIR, found like any external
-- dependency) and libevent. From bindings/lua:
--   luarocks --lua-version 5.4 make evfn-scm-1.rockspec EVFN_DIR=/usr/local
-- (EVFN_DIR is a luarocks variable: an argument, not the environment).
rockspec_format = "3.0"
package = "evfn"
version = "scm-1"
source = {
	url = "git+https://example.invalid/evfn.git",
}
description = {
	summary = "Lambda-style event processing inside any host program",
	detailed = [[
Named functions bound to topics, a worker pool with one Lua state per
worker, retries with backoff, real deadlines on Lua handlers, triggers,
dead letters, metrics.]],
	license = "MIT",
}
dependencies = {
	"lua >= 5.4, < 5.5",
}
external_dependencies = {
	EVFN = {header = "evfn.h", library = "evfn"},
	LIBEVENT = {header = "event2/thread.h", library = "event_pthreads"},
}
build = {
	type = "builtin",
	modules = {
		evfn = {
			sources = {"call.c", "deadletter.c", "event.c",
				"eventlog.c", "flow.c", "helpers.c", "module.c",
				"runtime.c", "trigger.c", "worker.c", "http.c"},
			incdirs = {"$(EVFN_INCDIR)", "$(LIBEVENT_INCDIR)", "."},
			libdirs = {"$(EVFN_LIBDIR)", "$(LIBEVENT_LIBDIR)"},
			libraries = {"evfn", "event_core", "event_pthreads", "m"},
		},
	},
}
