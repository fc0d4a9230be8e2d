-- SPDX-License-Identifier: MIT
-- The dead-letter store from Lua (list, replay, replay_all, delete,
-- purge) and the function options that decide where failures and
-- successes go: on_failure / on_success destinations, idempotency by
-- event id, max_stuck.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

local fast = {attempts = 2, backoff = {kind = "fixed", base = 0.001,
	jitter = "none"}}

local function runtime()
	local rt = assert(evfn.runtime{workers = 1})
	assert(rt:start())
	return rt
end

-- A closure that fails until healthy() says otherwise.
local function flaky(rt, name, healthy, opts)
	local runs = 0
	assert(rt:register(name, function(ev)
		runs = runs + 1
		if not healthy() then error("disk full") end
		return "stored " .. ev.data
	end, opts or fast))
	return function() return runs end
end

test("a failing handler leaves a dead letter; replay succeeds", function()
	local rt <close> = runtime()
	local healthy = false
	local runs = flaky(rt, "save", function() return healthy end)
	local before = os.time()
	local _, msg, code = rt:invoke("save", "order-7",
		{id = "ev-7", extensions = {tenant = "acme"}})
	eq(code, evfn.errors.EEXHAUSTED, "outcome")
	match(msg, "disk full")
	local dl = rt:dead_letters()
	eq(#dl, 1, "one dead letter")
	local d = dl[1]
	assert(math.type(d.id) == "integer" and d.id > 0, "id")
	eq(d["function"], "save", "function")
	eq(d.reason, "attempts_exhausted", "reason")
	eq(d.code, evfn.errors.EEXHAUSTED, "code")
	eq(d.attempts, 2, "attempts")
	match(d.error, "disk full$", "error")
	eq(d.event.id, "ev-7", "event id")
	eq(d.event.data, "order-7", "event data")
	eq(d.event.extensions.tenant, "acme", "event extension")
	assert(d.first_attempt >= before - 1 and
		d.last_attempt >= d.first_attempt, "attempt times")

	healthy = true
	assert(rt:replay(d.id))
	eq(#rt:dead_letters(), 0, "replay removes it")
	tap.wait_for(rt, function() return rt:stats("save").succeeded == 1 end,
		5, "the replayed event to succeed")
	eq(runs(), 3, "two failed attempts and the replay")
	local _, _, c = rt:replay(d.id)
	eq(c, evfn.errors.ENOENT, "replaying twice")
end)

test("evfn.fail() dead-letters with reason failed", function()
	local rt <close> = runtime()
	assert(rt:register("parse", function() evfn.fail("bad json") end,
		fast))
	assert(not rt:invoke("parse", "{"))
	local d = rt:dead_letters()[1]
	eq(d.reason, "failed", "reason")
	eq(d.code, evfn.errors.EFAILED, "code")
	eq(d.attempts, 1, "attempts")
	match(d.error, "bad json", "error")
end)

test("listing pages, delete, replay_all and purge", function()
	local rt <close> = runtime()
	local healthy = false
	flaky(rt, "save", function() return healthy end)
	for i = 1, 4 do assert(not rt:invoke("save", "n" .. i)) end
	eq(#rt:dead_letters(), 4, "all")
	local page = rt:dead_letters(2, 1)
	eq(#page, 2, "page size")
	eq(page[1].event.data, "n2", "oldest first, after offset")
	eq(page[2].event.data, "n3", "second of the page")
	eq(#rt:dead_letters(0), 0, "max 0")
	eq(#rt:dead_letters(10, 10), 0, "offset past the end")
	assert(rt:delete_dead_letter(page[1].id))
	local _, _, code = rt:delete_dead_letter(page[1].id)
	eq(code, evfn.errors.ENOENT, "deleted twice")
	local ok, err = pcall(rt.delete_dead_letter, rt, 0)
	eq(ok, false, "id 0 raises")
	match(err, "positive")
	ok = pcall(rt.dead_letters, rt, -1)
	eq(ok, false, "negative max raises")

	healthy = true
	eq(rt:replay_all(), 3, "replayed")
	tap.wait_for(rt, function() return rt:stats("save").succeeded == 3 end,
		5, "the replayed events")
	healthy = false
	for i = 1, 2 do assert(not rt:invoke("save", "again" .. i)) end
	eq(rt:purge_dead_letters(), 2, "purged")
	eq(#rt:dead_letters(), 0, "empty")
	eq(rt:purge_dead_letters(), 0, "nothing to purge")
end)

test("on_failure destination gets the event with its reason", function()
	local rt <close> = runtime()
	local got = {}
	assert(rt:register("sink", function(ev) got[#got + 1] = ev end))
	local opts = {attempts = 2, backoff = fast.backoff,
		destinations = {on_failure = "sink"}}
	flaky(rt, "save", function() return false end, opts)
	assert(not rt:invoke("save", "lost order", {id = "ev-9"}))
	tap.wait_for(rt, function() return #got == 1 end, 5, "the sink")
	local ev = got[1]
	eq(ev.data, "lost order", "payload")
	eq(ev.id, "ev-9", "the original event")
	eq(ev.extensions.evfnreason, "attempts_exhausted", "evfnreason")
	eq(ev.extensions.evfnattempts, "2", "evfnattempts")
	match(ev.extensions.evfnerror, "disk full", "evfnerror")
	eq(ev.extensions.evfnfunction, "save", "evfnfunction")
	assert(tonumber(ev.extensions.evfnfirstattempt), "evfnfirstattempt")
	eq(ev.hops, 1, "hop count plus one")
	eq(#rt:dead_letters(), 1, "the store keeps it too")
end)

test("on_success destination gets the response", function()
	local rt <close> = runtime()
	local got = {}
	assert(rt:register("audit", function(ev) got[#got + 1] = ev end))
	flaky(rt, "save", function() return true end,
		{destinations = {on_success = "audit"}})
	eq(rt:invoke("save", "a1", {id = "ev-1"}), "stored a1", "response")
	tap.wait_for(rt, function() return #got == 1 end, 5, "the audit")
	eq(got[1].data, "stored a1", "payload is the response")
	eq(got[1].extensions.evfnparent, "ev-1", "evfnparent")
	eq(got[1].extensions.evfnfunction, "save", "evfnfunction")
	local ok, err = pcall(rt.register, rt, "x", function() end,
		{destinations = {on_error = "audit"}})
	eq(ok, false, "unknown destination key raises")
	match(err, "unknown option 'on_error'")
	local _, _, code = rt:register("y", function() end,
		{destinations = {on_success = ""}})
	eq(code, evfn.errors.EINVAL, "empty destination")
end)

test("idempotency: a repeated event id does not run again", function()
	local rt <close> = runtime()
	local runs = flaky(rt, "charge", function() return true end,
		{idempotency = {window = 60}, max_stuck = 2})
	eq(rt:invoke("charge", "5 EUR", {id = "pay-1"}), "stored 5 EUR",
		"first")
	eq(rt:invoke("charge", "5 EUR", {id = "pay-1"}), "stored 5 EUR",
		"repeat gets the stored response")
	eq(runs(), 1, "ran once")
	eq(rt:invoke("charge", "6 EUR", {id = "pay-2"}), "stored 6 EUR",
		"another id")
	eq(runs(), 2, "ran for the new id")
	local ok, err = pcall(rt.register, rt, "z", function() end,
		{idempotency = {window = 1, key = print}})
	eq(ok, false, "a key function is not supported")
	match(err, "unknown option 'key'")
	local _, _, code = rt:register("z", function() end, {max_stuck = 0})
	eq(code, evfn.errors.ERANGE, "max_stuck 0")
end)

tap.run()
