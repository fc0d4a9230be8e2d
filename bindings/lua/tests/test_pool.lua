-- SPDX-License-Identifier: MIT
-- Handlers named by module run on the worker pool, one Lua state per
-- worker: two of them run at once in distinct states, a module may give a
-- table with a handler, a missing module is refused at registration and
-- one that fails to load retries with the reason, and a pool handler's
-- child events reach loop handlers.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

local function runtime()
	local rt = assert(evfn.runtime{workers = {2, 2}})
	assert(rt:start())
	return rt
end

test("two module handlers overlap in distinct worker states", function()
	local rt <close> = runtime()
	assert(rt:register("slow", "handlers.slow"))
	local results = {}
	for _ = 1, 2 do
		assert(rt:invoke_async("slow", "0.3", function(r)
			assert(r.ok, r.error)
			results[#results + 1] = r.response
		end))
	end
	tap.wait_for(rt, function() return #results == 2 end)
	local a_id, a_start, a_end = results[1]:match("(%S+) (%S+) (%S+)")
	local b_id, b_start, b_end = results[2]:match("(%S+) (%S+) (%S+)")
	assert(a_id ~= b_id, "distinct states: " .. a_id)
	a_start, a_end = tonumber(a_start), tonumber(a_end)
	b_start, b_end = tonumber(b_start), tonumber(b_end)
	assert(a_start < b_end and b_start < a_end,
		"the two runs overlapped in time")
	eq(rt:workers(), 2, "workers")
end)

test("a module handler answers synchronous invokes", function()
	local rt <close> = runtime()
	assert(rt:register("echo", "handlers.echo"))
	match(rt:invoke("echo", "abc"), "^ABC 0x", "response")
end)

test("a missing module is refused at registration", function()
	local rt <close> = runtime()
	local ok, msg, code = rt:register("nope", "handlers.nope")
	eq(ok, nil, "result")
	eq(code, evfn.errors.ENOENT, "code")
	match(msg, "handlers.nope")
end)

test("a module that fails to load retries with the reason", function()
	local rt <close> = runtime()
	assert(rt:register("broken", "handlers.broken", {attempts = 2,
		backoff = {kind = "fixed", base = 0.001}}))
	local _, msg, code = rt:invoke("broken", "")
	eq(code, evfn.errors.EEXHAUSTED, "code")
	match(msg, "loading module 'handlers.broken': .*broken on purpose")
end)

test("child events from the pool reach a loop handler", function()
	local rt <close> = runtime()
	local got
	assert(rt:register("relay", "handlers.relay"))
	assert(rt:register("sink", function(ev) got = ev.data end))
	assert(rt:subscribe("relayed", "sink"))
	assert(rt:invoke("relay", "abc"))
	tap.wait_for(rt, function() return got end)
	eq(got, "cba", "payload")
end)

tap.run()
