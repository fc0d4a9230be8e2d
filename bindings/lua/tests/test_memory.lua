-- SPDX-License-Identifier: MIT
-- No growth of the Lua heap over many invocations: after a warm-up, a
-- long run of closure handlers (event and context objects, coroutines,
-- responses, result callbacks) must leave collectgarbage("count") where
-- it was, give or take a small slack. 100,000 invocations, or as many as
-- fit in the time budget on a slow machine.
local evfn = require "evfn"
local tap = require "tap"
local test, eq = tap.test, tap.eq

local TOTAL = 100000
local BUDGET_S = 15
local BATCH = 1000

-- Runs n invocations of "work" in batches; returns how many ran.
local function pump(rt, n, counter, deadline)
	local done = 0
	while done < n and evfn.now() < deadline do
		local target = counter.n + BATCH
		for i = 1, BATCH do
			if i % 10 == 0 then
				assert(rt:invoke_async("work", "with callback",
					function(r) assert(r.ok) end))
			else
				assert(rt:emit("jobs.run", "payload " .. i))
			end
		end
		tap.wait_for(rt, function() return counter.n >= target end, 10)
		done = done + BATCH
	end
	return done
end

local function heap_kb()
	collectgarbage()
	collectgarbage()
	return collectgarbage("count")
end

test("the Lua heap does not grow over 100,000 invocations", function()
	local rt <close> = assert(evfn.runtime{workers = {1, 1}})
	local counter = {n = 0}
	assert(rt:register("work", function(ev, ctx)
		counter.n = counter.n + 1
		local _ = ev.id, ev.type, ev.extensions.none, ctx.attempt,
			ctx.remaining
		return ev.data
	end))
	assert(rt:subscribe("jobs.*", "work"))
	assert(rt:start())
	local deadline = evfn.now() + BUDGET_S
	pump(rt, 10000, counter, deadline) -- warm-up: pools and free lists
	local before = heap_kb()
	local ran = pump(rt, TOTAL, counter, deadline)
	local after = heap_kb()
	print(("# %d invocations, heap %.1f KB -> %.1f KB"):format(ran,
		before, after))
	assert(ran >= 20000, "only " .. ran .. " invocations in budget")
	assert(after - before < 64,
		("heap grew by %.1f KB"):format(after - before))
	eq(rt:stats("work").in_flight, 0, "in_flight")
end)

tap.run()
