-- SPDX-License-Identifier: MIT
-- Real deadlines and coroutine handlers: a busy Lua handler is stopped by
-- the debug hook at its deadline (on the loop and on the pool, pcall or
-- not) and the attempt ends RETRY with error "timeout" while the runtime
-- goes on; evfn.sleep suspends a loop handler without blocking the loop,
-- and never past the deadline.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

local once = {timeout = 0.2, attempts = 1}

local function runtime()
	local rt = assert(evfn.runtime{workers = {2, 2}})
	assert(rt:start())
	return rt
end

-- Invokes name and checks that it timed out after about 200 ms.
local function times_out(rt, name)
	local t0 = evfn.now()
	local resp, msg, code = rt:invoke(name, "")
	local dt = evfn.now() - t0
	eq(resp, nil, "response")
	-- The hook says "timeout" and the attempts run out; evfn's
	-- watchdog, when it is first (it can be for pool and sleeping
	-- handlers), ends the event as timed out and names the deadline.
	assert(code == evfn.errors.EEXHAUSTED or code == evfn.errors.ETIMEDOUT,
		"code " .. tostring(code))
	assert(msg:find(": timeout$") or msg:find("deadline of 200 ms exceeded$"),
		"error: " .. msg)
	assert(dt >= 0.19 and dt < 2, "took " .. dt .. " s")
end

test("a busy loop on the loop is stopped at its deadline", function()
	local rt <close> = runtime()
	assert(rt:register("spin", function() while true do end end, once))
	assert(rt:register("ok", function() return "still here" end))
	times_out(rt, "spin")
	eq(rt:invoke("ok", ""), "still here", "the runtime goes on")
	local s = rt:stats("spin")
	eq(s.dead_lettered, 1, "dead_lettered")
	eq(s.in_flight, 0, "in_flight")
end)

test("pcall cannot swallow the timeout", function()
	local rt <close> = runtime()
	assert(rt:register("stubborn", function()
		while true do
			pcall(function() while true do end end)
		end
	end, once))
	times_out(rt, "stubborn")
end)

test("pcall around C code calling busy Lua cannot swallow the timeout",
	function()
	local rt <close> = runtime()
	assert(rt:register("sortspin", function()
		while true do
			pcall(table.sort, {3, 2, 1}, function(a, b)
				while true do end
			end)
		end
	end, once))
	times_out(rt, "sortspin")
	-- Nested deeper: each pcall that catches the abort is re-raised at
	-- once, outward, until the handler's own frame can be left.
	assert(rt:register("nested_pcalls", function()
		while true do
			pcall(table.sort, {3, 2, 1}, function(a, b)
				while true do
					pcall(function() while true do end end)
				end
			end)
		end
	end, once))
	times_out(rt, "nested_pcalls")
	assert(rt:register("xpcall_loop", function()
		while true do
			xpcall(string.gsub, function() end, "aaa", "a",
				function() while true do end end)
		end
	end, once))
	times_out(rt, "xpcall_loop")
	assert(rt:register("ok", function() return "still here" end))
	eq(rt:invoke("ok", ""), "still here", "the runtime goes on")
end)

test("on the pool, busy Lua under pcall and C code is stopped", function()
	local rt <close> = runtime()
	assert(rt:register("sortspin", "handlers.sortspin", once))
	assert(rt:register("echo", "handlers.echo"))
	times_out(rt, "sortspin")
	match(rt:invoke("echo", "x"), "^X ", "the pool goes on")
	local s = rt:stats("sortspin")
	eq(s.in_flight, 0, "in_flight")
end)

test("a busy coroutine inside the handler is stopped too", function()
	local rt <close> = runtime()
	assert(rt:register("nested", function()
		local co = coroutine.wrap(function()
			while true do end
		end)
		co()
	end, once))
	times_out(rt, "nested")
end)

test("a busy module handler on the pool is stopped", function()
	local rt <close> = runtime()
	assert(rt:register("busy", "handlers.busy", once))
	assert(rt:register("echo", "handlers.echo"))
	times_out(rt, "busy")
	match(rt:invoke("echo", "x"), "^X ", "the pool goes on")
end)

test("evfn.sleep suspends loop handlers without blocking the loop",
	function()
	local rt <close> = runtime()
	assert(rt:register("nap", function(ev, ctx)
		local t0 = evfn.now()
		evfn.sleep(0.3)
		local slept = evfn.now() - t0
		assert(slept >= 0.29, "slept " .. slept)
		assert(ctx.attempt == 1 and ctx.remaining > 0)
		return ev.data
	end))
	local done = {}
	local t0 = evfn.now()
	for i = 1, 4 do
		assert(rt:invoke_async("nap", tostring(i), function(r)
			done[#done + 1] = r.response
		end))
	end
	tap.wait_for(rt, function() return #done == 4 end)
	local dt = evfn.now() - t0
	-- Four 300 ms naps in sequence would take 1.2 s.
	assert(dt < 0.9, "naps overlapped: " .. dt .. " s")
	table.sort(done)
	eq(table.concat(done), "1234", "responses")
end)

test("a sleep past the deadline ends the attempt at the deadline",
	function()
	local rt <close> = runtime()
	local woke = false
	assert(rt:register("oversleep", function()
		evfn.sleep(10)
		woke = true
	end, once))
	times_out(rt, "oversleep")
	eq(woke, false, "the coroutine was not resumed")
end)

test("evfn.sleep outside a handler raises", function()
	local ok, err = pcall(evfn.sleep, 0.01)
	eq(ok, false, "raises")
	match(err, "only a handler")
end)

test("a sleeping handler survives errors after it wakes", function()
	local rt <close> = runtime()
	assert(rt:register("late", function(ev, ctx)
		evfn.sleep(0.01)
		if ctx.attempt == 1 then error("after sleep") end
		evfn.sleep(0.01)
		return "second"
	end, {attempts = 2, backoff = {kind = "fixed", base = 0.001}}))
	eq(rt:invoke("late", ""), "second", "retried after a sleep")
end)

tap.run()
