-- SPDX-License-Identifier: MIT
-- Pool handler for the tests: blocks in C code (a child process) for the
-- number of seconds in the payload, where no hook can reach it, then
-- spins in Lua, which the hook stops at once as the deadline is past.
return function(event, ctx)
	os.execute("sleep " .. tonumber(event.data))
	while true do end
end
