-- SPDX-License-Identifier: MIT
-- Flow control from Lua: batches with per-item failures, ordering keys,
-- the rate limit, the circuit breaker (and its event-log records, which
-- carry no event), delayed events, cancelling waiting and running events,
-- pausing and resuming a function. Every case waits on a condition, and
-- every stats table it checks must balance.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

local fast = {kind = "fixed", base = 0.001, jitter = "none"}

local function runtime(opts)
	local rt = assert(evfn.runtime(opts or {workers = 1}))
	assert(rt:start())
	return rt
end

-- Sets of numbers and strings made readable for eq().
local function joined(list) return table.concat(list, " ") end

test("flow options are checked", function()
	local rt <close> = runtime()
	local function code_of(opts)
		return select(3, rt:register("f", "handlers.echo", opts))
	end
	local _, msg, code = rt:register("c", function() end,
		{batch = {max = 2}})
	eq(code, evfn.errors.EINVAL, "a batch closure (loop executor)")
	match(msg, "^EVFN_EINVAL")
	eq(code_of{batch = {max = 0}}, evfn.errors.ERANGE, "batch max 0")
	eq(code_of{batch = {max = 10001}}, evfn.errors.ERANGE,
		"batch max over the library's bound")
	eq(code_of{batch = {max = 1 << 40}}, evfn.errors.ERANGE,
		"batch max past a C int")
	eq(code_of{breaker = {consecutive = -(1 << 40)}}, evfn.errors.ERANGE,
		"consecutive past a C int")
	eq(code_of{batch = {max = 2, window = 3601}}, evfn.errors.ERANGE,
		"batch window over an hour")
	eq(code_of{rate = {per_second = -1}}, evfn.errors.ERANGE, "rate < 0")
	eq(code_of{rate = {per_second = 5, burst = 0}}, evfn.errors.ERANGE,
		"burst 0")
	eq(code_of{breaker = {}}, evfn.errors.EINVAL, "no breaker trigger")
	eq(code_of{breaker = {failure_rate = 1.5}}, evfn.errors.ERANGE,
		"failure rate over 1")
	for _, bad in ipairs{{batch = {size = 2}}, {rate = {burst = 2}},
			{breaker = {consecutive = 1, policy = "drop"}},
			{breaker = {consecutive = 1, window = -1}}} do
		local ok = pcall(rt.register, rt, "f", "handlers.echo", bad)
		eq(ok, false, "raises")
	end
	assert(rt:register("f", "handlers.echo", {batch = {max = 2},
		rate = {per_second = 100, burst = 5}, breaker = {
		consecutive = 3, failure_rate = 0.5, min_calls = 4,
		window = 10, cooldown = 1, policy = "refuse"}}))
	local s = rt:stats("f")
	for _, k in ipairs{"cancelled", "delayed", "rate_limited",
			"circuit_opens", "circuit_state", "paused", "batches"} do
		eq(s[k], 0, k)
	end
end)

test("batches take max items; reported items retry or fail alone",
function()
	local rt <close> = runtime()
	local seen = {}
	assert(rt:register("sink", function(ev) seen[#seen + 1] = ev.data end))
	assert(rt:subscribe("batch.seen", "sink"))
	assert(rt:register("collect", "handlers.batch", {attempts = 3,
		backoff = fast, batch = {max = 3, window = 0.05}}))
	-- Paused, all six wait, so the first two calls take three each.
	assert(rt:pause("collect"))
	for _, d in ipairs{"a", "flaky", "c", "d", "bad", "f"} do
		assert(rt:invoke_async("collect", d))
	end
	assert(rt:resume("collect"))
	-- A call reports before it returns: wait for the six ends.
	tap.wait_for(rt, function()
		local s = rt:stats("collect")
		return s.succeeded + s.dead_lettered == 6
	end, 5, "six ends")
	eq(joined(seen), "3:a,flaky,c 3:d,bad,f 1:flaky", "calls")
	local s = rt:stats("collect")
	eq(s.batches, 3, "batches")
	eq(s.succeeded, 5, "succeeded")
	eq(s.dead_lettered, 1, "dead lettered")
	eq(s.retries, 1, "retries")
	tap.balanced(s, "collect")
	local dl = rt:dead_letters()
	eq(#dl, 1, "dead letters")
	eq(dl[1].event.data, "bad", "dead letter")
	eq(dl[1].reason, "failed", "reason")
	eq(dl[1].error, "bad item", "error")
end)

test("a function without batches sees a batch of one", function()
	local rt <close> = runtime()
	assert(rt:register("one", function(ev, ctx)
		local items = ctx:batch()
		local _, _, code = ctx:fail_item(2, "retry")
		return #items .. " " .. items[1].data .. " " .. code
	end))
	eq(rt:invoke("one", "x"), "1 x " .. evfn.errors.EINVAL, "response")
end)

test("one key runs one at a time in order, retries included; keys overlap",
function()
	local rt <close> = runtime()
	local starts, running, busy = {}, {}, 0
	local key_peak, peak, failed = 0, 0, false
	assert(rt:register("ordered", function(ev)
		local k = ev.key
		starts[#starts + 1] = ev.data
		running[k] = (running[k] or 0) + 1
		busy = busy + 1
		key_peak = math.max(key_peak, running[k])
		peak = math.max(peak, busy)
		evfn.sleep(0.02)
		running[k] = running[k] - 1
		busy = busy - 1
		if ev.data == "a1" and not failed then
			failed = true
			error("once")
		end
	end, {concurrency = 4, backoff = {kind = "fixed", base = 0.01,
		jitter = "none"}}))
	for i = 1, 3 do
		assert(rt:invoke_async("ordered", "a" .. i, {key = "a"}))
		assert(rt:invoke_async("ordered", "b" .. i, {key = "b"}))
	end
	tap.wait_for(rt, function()
		return rt:stats("ordered").succeeded == 6
	end, 5, "six successes")
	local a, b = {}, {}
	for _, d in ipairs(starts) do
		local t = d:sub(1, 1) == "a" and a or b
		t[#t + 1] = d
	end
	eq(joined(a), "a1 a1 a2 a3", "key a: the retry holds a2 back")
	eq(joined(b), "b1 b2 b3", "key b")
	eq(key_peak, 1, "one at a time per key")
	eq(peak, 2, "the two keys ran side by side")
	tap.balanced(rt:stats("ordered"))
end)

test("the rate limit spaces starts", function()
	local rt <close> = runtime()
	local starts = {}
	assert(rt:register("limited", function()
		starts[#starts + 1] = evfn.now()
	end, {concurrency = 8, rate = {per_second = 20, burst = 1}}))
	for i = 1, 6 do assert(rt:invoke_async("limited", tostring(i))) end
	tap.wait_for(rt, function() return #starts == 6 end, 5, "six starts")
	local spread = starts[6] - starts[1]
	-- Five gaps of 1/20 s; a hair of slack for timer rounding.
	assert(spread >= 0.24, "six starts within " .. spread .. " s")
	local s = rt:stats("limited")
	assert(s.rate_limited >= 1, "rate_limited " .. s.rate_limited)
	tap.wait_for(rt, function()
		return rt:stats("limited").succeeded == 6
	end)
	tap.balanced(rt:stats("limited"))
end)

test("the breaker opens, holds the queue, refuses, probes and closes",
function()
	local records = {}
	local rt <close> = runtime{workers = 1, on_record = function(rec)
		if rec.kind:find("^circuit") then
			records[#records + 1] = rec
		end
	end}
	local healthy = false
	assert(rt:register("dep", function()
		if not healthy then evfn.fail("down") end
		return "up"
	end, {concurrency = 1, breaker = {consecutive = 2, cooldown = 0.1,
		policy = "refuse"}}))
	local results = {}
	for i = 1, 3 do
		assert(rt:invoke_async("dep", tostring(i), function(r)
			results[i] = r
		end))
	end
	tap.wait_for(rt, function() return results[2] end, 5, "two failures")
	eq(results[1].code, evfn.errors.EFAILED, "first")
	eq(results[2].code, evfn.errors.EFAILED, "second")
	local s = rt:stats("dep")
	eq(s.circuit_state, 1, "open")
	eq(s.circuit_opens, 1, "opens")
	eq(s.attempts, 2, "the third spends no attempt while open")
	eq(s.queued, 1, "the third waits")
	local _, msg, code = rt:invoke("dep", "")
	eq(code, evfn.errors.ECIRCUITOPEN, "invoke refused")
	match(msg, "^EVFN_ECIRCUITOPEN")
	eq(select(3, rt:invoke_async("dep", "")), evfn.errors.ECIRCUITOPEN,
		"invoke_async refused")
	healthy = true
	-- After the cool-down the waiting event is the probe.
	tap.wait_for(rt, function() return results[3] end, 5, "the probe")
	eq(results[3].response, "up", "the probe succeeds")
	s = rt:stats("dep")
	eq(s.circuit_state, 0, "closed")
	eq(s.accepted, 3, "refused events are not accepted")
	tap.balanced(s)
	eq(rt:invoke("dep", ""), "up", "closed again")
	tap.wait_for(rt, function() return #records == 3 end, 5, "records")
	local kinds = {}
	for i, r in ipairs(records) do
		kinds[i] = r.kind
		eq(r.event, nil, r.kind .. ": no event")
		eq(r.attempt, 0, r.kind .. ": attempt")
		eq(r["function"], "dep", r.kind .. ": function")
	end
	eq(joined(kinds), "circuit_open circuit_half_open circuit_closed",
		"kinds")
	match(records[1].error, "2 consecutive", "why it opened")
end)

test("a delayed event is not delivered early", function()
	local rt <close> = runtime()
	local ran_at
	assert(rt:register("later", function() ran_at = evfn.now() end))
	local t0 = evfn.now()
	assert(rt:invoke_async("later", "x", {delay = 0.2}))
	local s = rt:stats("later")
	eq(s.delayed, 1, "delayed")
	eq(s.queued, 0, "queued")
	tap.balanced(s, "while delayed")
	tap.wait_for(rt, function() return ran_at end, 5, "the delivery")
	assert(ran_at - t0 >= 0.2, "ran after " .. (ran_at - t0) .. " s")
	s = rt:stats("later")
	eq(s.delayed, 0, "no longer delayed")
	tap.balanced(s, "after")
	-- A time already past means no delay.
	assert(rt:invoke("later", "y", {at = os.time() - 10}))
	local ok, err = pcall(rt.emit, rt, "t", "", {delay = 1, at = 1})
	eq(ok, false, "delay and at together raise")
	match(err, "not both")
	eq(pcall(rt.emit, rt, "t", "", {delay = -1}), false, "delay < 0")
end)

test("a handler emits keyed and delayed children", function()
	local rt <close> = runtime()
	local child
	assert(rt:register("parent", function(ev, ctx)
		assert(ctx:emit("child", ev.data, {key = "k1", delay = 0.01,
			subject = "s"}))
	end))
	assert(rt:register("kid", function(ev) child = ev end))
	assert(rt:subscribe("child", "kid"))
	assert(rt:invoke("parent", "p"))
	tap.wait_for(rt, function() return child end, 5, "the child")
	eq(child.key, "k1", "key")
	eq(child.subject, "s", "subject")
	eq(child.hops, 1, "hops")
end)

test("cancelling a delayed event ends it as cancelled", function()
	local rt <close> = runtime()
	local ran = 0
	assert(rt:register("later", function() ran = ran + 1 end))
	local result
	local seq = assert(rt:invoke_async("later", "x", {delay = 10},
		function(r) result = r end))
	eq(rt:cancel(seq), 1, "cancelled by seq")
	tap.wait_for(rt, function() return result end, 5, "the outcome")
	eq(result.code, evfn.errors.ECANCELED, "outcome")
	local s = rt:stats("later")
	eq(s.cancelled, 1, "cancelled")
	eq(s.delayed, 0, "delayed")
	eq(s.dead_lettered, 0, "no dead letter")
	tap.balanced(s)
	local n, _, code = rt:cancel(seq)
	eq(n, nil, "again")
	eq(code, evfn.errors.ENOENT, "nothing left under that id")

	-- By id, in one function or in every function it went to.
	assert(rt:invoke_async("later", "y", {id = "job-7", delay = 10}))
	eq(select(3, rt:cancel("job-7", "nope")), evfn.errors.ENOFN, "ENOFN")
	eq(rt:cancel("job-7", "later"), 1, "by id in one function")
	assert(rt:register("also", function() ran = ran + 1 end))
	assert(rt:subscribe("jobs", "later"))
	assert(rt:subscribe("jobs", "also"))
	seq = assert(rt:emit("jobs", "z", {delay = 10}))
	eq(rt:cancel(seq), 2, "both functions")
	eq(rt:stats().cancelled, 4, "all cancelled")
	eq(ran, 0, "nothing ran")
	tap.balanced(rt:stats())
end)

test("cancelling running attempts stops them", function()
	local rt <close> = runtime()
	assert(rt:register("slow", "handlers.slow"))
	assert(rt:register("nap", function() evfn.sleep(30) end))
	local results = {}
	local t0 = evfn.now()
	local pool = assert(rt:invoke_async("slow", "30",
		function(r) results.slow = r end))
	local loop = assert(rt:invoke_async("nap", "",
		function(r) results.nap = r end))
	tap.wait_for(rt, function()
		return rt:stats().in_flight == 2
	end, 5, "both running")
	eq(rt:cancel(pool), 1, "the pool attempt asked to stop")
	eq(rt:cancel(loop), 1, "the sleeping closure asked to stop")
	tap.wait_for(rt, function() return results.slow and results.nap end,
		5, "both outcomes")
	assert(evfn.now() - t0 < 5, "stopped early")
	for name, r in pairs(results) do
		eq(r.code, evfn.errors.ECANCELED, name .. " outcome")
		eq(r.error, "cancelled", name .. " error")
		eq(r.attempts, 1, name .. " attempts")
	end
	eq(rt:stats().cancelled, 2, "cancelled")
	tap.balanced(rt:stats())
end)

test("a paused function accepts events and runs them once resumed",
function()
	local rt <close> = runtime()
	local ran = {}
	assert(rt:register("p", function(ev) ran[#ran + 1] = ev.data end))
	assert(rt:register("other", function() end))
	eq(rt:pause("p"), true, "pause")
	eq(rt:pause("p"), true, "pause again is a no-op")
	eq(rt:stats("p").paused, 1, "paused gauge")
	for i = 1, 3 do assert(rt:invoke_async("p", tostring(i))) end
	-- The loop runs other work while p waits.
	assert(rt:invoke("other", ""))
	for _ = 1, 5 do rt:run_once(0.01) end
	eq(#ran, 0, "nothing ran while paused")
	local s = rt:stats("p")
	eq(s.queued, 3, "queued")
	tap.balanced(s, "paused")
	assert(rt:resume("p"))
	tap.wait_for(rt, function() return #ran == 3 end, 5, "three runs")
	eq(joined(ran), "1 2 3", "in order")
	eq(rt:stats("p").paused, 0, "paused gauge")
	tap.balanced(rt:stats("p"), "resumed")
	eq(select(3, rt:pause("nope")), evfn.errors.ENOFN, "unknown")
	eq(select(3, rt:resume("nope")), evfn.errors.ENOFN, "unknown")
end)

tap.run()
