-- SPDX-License-Identifier: MIT
-- The handlers examples/host.c serves: this file builds the runtime,
-- registers one closure (it runs on the host's loop thread, in the host's
-- Lua state) and one module handler (it runs on the worker pool, one Lua
-- state per worker), starts the runtime and returns it with the HTTP
-- routes the host should serve.
local evfn = require "evfn"

local rt = assert(evfn.runtime{workers = {1, 2}})

assert(rt:register("greet", function(event, ctx)
	assert(ctx:set_meta("header.Content-Type", "text/plain"))
	return "hello, " .. event.data
end))
assert(rt:register("shout", "shout", {timeout = 1}))
assert(rt:start())

return rt, {
	["POST /greet"] = "greet",
	["POST /shout"] = "shout",
}
