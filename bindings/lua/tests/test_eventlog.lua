-- SPDX-License-Identifier: MIT
-- The event log from Lua: evfn.runtime{on_record = fn} gets every
-- attempt start, every retry and every event's end, for closures and for
-- module handlers on the pool, on the loop thread while it is driven.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

-- A runtime whose records land in the returned list.
local function logged_runtime()
	local records = {}
	local rt = assert(evfn.runtime{workers = 1, on_record = function(rec)
		records[#records + 1] = rec
	end})
	assert(rt:start())
	return rt, records
end

local function kinds(records, fn)
	local out = {}
	for _, r in ipairs(records) do
		if r["function"] == fn then out[#out + 1] = r.kind end
	end
	return table.concat(out, " ")
end

test("a retried closure logs its starts, its retry and its success",
function()
	local rt <close>, records = logged_runtime()
	assert(rt:register("flaky", function(ev, ctx)
		if ctx.attempt < 2 then error("not yet") end
	end, {backoff = {kind = "fixed", base = 0.001}}))
	assert(rt:invoke("flaky", "x", {id = "ev-1"}))
	tap.wait_for(rt, function() return #records >= 4 end, 5, "records")
	eq(kinds(records, "flaky"), "start retry start success", "kinds")
	eq(records[2].attempt, 1, "the retry follows attempt 1")
	match(records[2].error, "not yet", "the retry's error")
	eq(records[3].attempt, 2, "second start's attempt")
	eq(records[4].event.id, "ev-1", "event")
	eq(records[4].code, 0, "success code")
end)

test("a dead letter is logged with its reason and error", function()
	local rt <close>, records = logged_runtime()
	assert(rt:register("bad", function() evfn.fail("no such user") end))
	assert(not rt:invoke("bad", ""))
	tap.wait_for(rt, function() return #records >= 2 end, 5, "records")
	eq(kinds(records, "bad"), "start dead_letter", "kinds")
	eq(records[2].code, evfn.errors.EFAILED, "code")
	match(records[2].error, "no such user", "error")
end)

test("records of pool workers arrive on the loop", function()
	local rt <close>, records = logged_runtime()
	assert(rt:register("echo", "handlers.echo"))
	eq(rt:invoke("echo", "hi"):sub(1, 2), "HI", "response")
	tap.wait_for(rt, function() return #records >= 2 end, 5, "records")
	eq(kinds(records, "echo"), "start success", "kinds")
end)

test("an error in on_record is raised by the method driving the loop",
function()
	local rt <close> = assert(evfn.runtime{on_record = function()
		error("log sink down")
	end})
	assert(rt:register("ok", function() end))
	assert(rt:invoke_async("ok", ""))
	local ok, err = pcall(tap.wait_for, rt, function() return false end,
		5, "nothing")
	eq(ok, false, "raised")
	match(err, "log sink down")
	ok, err = pcall(evfn.runtime, {on_record = "print"})
	eq(ok, false, "on_record must be a function")
	match(err, "on_record")
end)

test("records of the last moments arrive at close", function()
	local rt, records = logged_runtime()
	assert(rt:register("late", function() end))
	assert(rt:invoke_async("late", ""))
	-- The event has not started: closing drains and hands it back.
	assert(rt:close())
	eq(kinds(records, "late"), "handed_back", "kinds")
end)

tap.run()
