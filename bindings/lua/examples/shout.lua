-- SPDX-License-Identifier: MIT
-- A module handler for examples/host.c: runs on the worker pool, in a Lua
-- state of its worker's own.
return function(event, ctx)
	return event.data:upper() .. "!"
end
