-- SPDX-License-Identifier: MIT
-- A small TAP producer for the Lua binding's tests: cases are registered
-- with test(name, fn) and run in order by run(), which prints "1..N" and
-- one "ok"/"not ok" line per case (failures with their traceback as "#"
-- comments), so meson's TAP parser and the project's result counter see
-- every case. Also the assertions, the accounting check and the bounded
-- wait the cases share.
local evfn = require "evfn"

local M = {}
local cases = {}

function M.test(name, fn)
	cases[#cases + 1] = {name = name, fn = fn}
end

function M.eq(got, want, what)
	if got ~= want then
		error(("%s: got %s, want %s"):format(what or "value",
			tostring(got), tostring(want)), 2)
	end
end

function M.match(s, pattern, what)
	if type(s) ~= "string" or not s:find(pattern) then
		error(("%s: %s does not match %q"):format(what or "string",
			tostring(s), pattern), 2)
	end
end

-- Drives rt's loop until cond() holds; fails after seconds (default 5).
function M.wait_for(rt, cond, seconds, what)
	local deadline = evfn.now() + (seconds or 5)
	while not cond() do
		if evfn.now() > deadline then
			error("timed out waiting for " .. (what or "condition"), 2)
		end
		rt:run_once(0.01)
	end
end

-- The accounting invariant of a stats table: every accepted event has
-- ended one way or waits or runs somewhere.
function M.balanced(s, what)
	local sum = s.succeeded + s.dead_lettered + s.expired + s.handed_back
		+ s.cancelled + s.in_flight + s.queued + s.waiting_retry
		+ s.delayed
	if s.accepted ~= sum then
		error(("%s: accepted %d, but ended + waiting + running is %d")
			:format(what or "stats", s.accepted, sum), 2)
	end
end

function M.run()
	print("1.." .. #cases)
	local failed = 0
	for i, c in ipairs(cases) do
		local ok, err = xpcall(c.fn, debug.traceback)
		-- Runtimes a case left behind are closed before the next one.
		collectgarbage()
		if ok then
			print(("ok %d - %s"):format(i, c.name))
		else
			failed = failed + 1
			print(("not ok %d - %s"):format(i, c.name))
			for line in tostring(err):gmatch("[^\n]+") do
				print("# " .. line)
			end
		end
		io.stdout:flush()
	end
	-- Closing the state runs every runtime's __gc before exit.
	os.exit(failed == 0 and 0 or 1, true)
end

return M
