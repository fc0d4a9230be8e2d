-- SPDX-License-Identifier: MIT
-- Run by resident.c: leaves a runtime whose only worker is blocked in C
-- code past the runtime's grace, so that closing the state gives up on
-- freeing it (a warning) while that worker still has to come back
-- through the evfn module.
local evfn = require "evfn"
local rt = assert(evfn.runtime{workers = {0, 1}, idle_timeout = 0.05,
	grace = 0.1})
assert(rt:register("stuck", "handlers.stuck", {timeout = 0.1, attempts = 1}))
assert(rt:start())
assert(rt:invoke_async("stuck", "1"))
local deadline = evfn.now() + 5
while rt:stats("stuck").dead_lettered == 0 do
	assert(evfn.now() < deadline, "the attempt was never fenced")
	rt:run_once(0.01)
end
