-- SPDX-License-Identifier: MIT
-- The runtime object: options, registration, subscription, emit and
-- invoke (sync and async), the event and context a handler sees, stats,
-- error codes and their nil, message, code convention, drain, close and
-- collection.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match, wait_for = tap.test, tap.eq, tap.match, tap.wait_for

test("errors table is generated from EVFN_ERRNO_MAP", function()
	eq(evfn.errors.EINVAL, -22, "EINVAL")
	eq(evfn.errors.ENOFN, -4001, "ENOFN")
	local n = 0
	for name, code in pairs(evfn.errors) do
		eq(evfn.errname(code), "EVFN_" .. name, "name of " .. code)
		assert(evfn.strerror(code) ~= "unknown error")
		n = n + 1
	end
	assert(n >= 30, "only " .. n .. " codes")
	assert(type(evfn.version) == "string")
end)

test("runtime options are checked", function()
	local rt, msg, code = evfn.runtime{workers = {3, 1}}
	eq(rt, nil, "runtime")
	eq(code, evfn.errors.ERANGE, "code")
	match(msg, "^EVFN_ERANGE: ", "message")
	local ok, err = pcall(evfn.runtime, {wrokers = 2})
	eq(ok, false, "unknown option raises")
	match(err, "unknown option 'wrokers'")
	local rt2 <close> = assert(evfn.runtime{workers = 2, source = "t",
		idle_timeout = 1})
end)

test("closure handler runs on the caller's thread with the event", function()
	local rt <close> = assert(evfn.runtime{workers = {1, 2}})
	local seen
	local main = coroutine.running()
	assert(rt:register("record", function(ev, ctx)
		seen = {type = ev.type, data = ev.data, id = ev.id,
			source = ev.source, subject = ev.subject,
			dct = ev.datacontenttype, trace = ev.extensions.traceid,
			time = ev.time, seq = ev.seq, hops = ev.hops,
			attempt = ctx.attempt, name = ctx.name,
			remaining = ctx.remaining, cancelled = ctx.cancelled}
	end))
	assert(rt:subscribe("orders.*", "record"))
	assert(rt:start())
	local seq = assert(rt:emit("orders.created", "payload\0bytes", {
		id = "o-1", source = "/shop", subject = "42",
		datacontenttype = "text/plain", time = 1700000000.5,
		extensions = {traceid = "abc"}}))
	wait_for(rt, function() return seen end)
	eq(seen.type, "orders.created", "type")
	eq(seen.data, "payload\0bytes", "data")
	eq(seen.id, "o-1", "id")
	eq(seen.source, "/shop", "source")
	eq(seen.subject, "42", "subject")
	eq(seen.dct, "text/plain", "datacontenttype")
	eq(seen.trace, "abc", "extension")
	eq(seen.time, 1700000000.5, "time")
	eq(seen.seq, seq, "seq")
	eq(seen.hops, 0, "hops")
	eq(seen.attempt, 1, "attempt")
	eq(seen.name, "record", "ctx.name")
	eq(seen.cancelled, false, "cancelled")
	assert(seen.remaining > 0 and seen.remaining <= 3, "remaining")
	eq(coroutine.running(), main, "still on the main thread")
end)

test("admission errors come back as nil, message, code", function()
	local rt <close> = assert(evfn.runtime{})
	assert(rt:register("f", function() end))
	local ok, msg, code = rt:register("f", function() end)
	eq(ok, nil, "duplicate register")
	eq(code, evfn.errors.EEXIST, "duplicate code")
	match(msg, "EVFN_EEXIST")
	_, _, code = rt:subscribe("a..b", "f")
	eq(code, evfn.errors.EPATTERN, "bad pattern")
	_, _, code = rt:subscribe("a", "nobody")
	eq(code, evfn.errors.ENOFN, "unknown function")
	_, _, code = rt:emit("nobody.listens", "x")
	eq(code, evfn.errors.ENOSUB, "no subscriber")
	_, _, code = rt:invoke("f", "x")
	eq(code, evfn.errors.ENOTRUNNING, "invoke before start")
	assert(rt:start())
	_, _, code = rt:invoke("nobody", "x")
	eq(code, evfn.errors.ENOFN, "invoke unknown")
	_, _, code = rt:register("g", function() end, {timeout = 0})
	eq(code, evfn.errors.ERANGE, "timeout 0")
	local raised = pcall(rt.register, rt, "h", 42)
	eq(raised, false, "a number is no handler")
	raised = pcall(rt.register, rt, "h", function() end, {tiemout = 1})
	eq(raised, false, "unknown register option")
end)

test("invoke returns the response; async invoke calls back", function()
	local rt <close> = assert(evfn.runtime{})
	assert(rt:register("upper", function(ev) return ev.data:upper() end))
	assert(rt:register("meta", function(ev, ctx)
		assert(ctx:respond("via respond"))
		assert(ctx:set_meta("status", "201"))
	end))
	assert(rt:register("quiet", function() return true end))
	assert(rt:start())
	eq(rt:invoke("upper", "hello"), "HELLO", "response")
	eq(rt:invoke("meta", ""), "via respond", "ctx:respond")
	eq(rt:invoke("quiet", ""), "", "no response")
	local result
	local seq = assert(rt:invoke_async("meta", "x", {subject = "s"},
		function(r) result = r end))
	wait_for(rt, function() return result end)
	eq(result.ok, true, "ok")
	eq(result.code, 0, "code")
	eq(result.response, "via respond", "response")
	eq(result.meta.status, "201", "meta")
	eq(result.attempts, 1, "attempts")
	eq(result.event.seq, seq, "event")
	eq(result.event.subject, "s", "subject")
	-- Without a callback it is fire and forget.
	assert(rt:invoke_async("quiet", "y"))
	wait_for(rt, function() return rt:stats("quiet").succeeded == 2 end)
end)

test("stats report every counter", function()
	local rt <close> = assert(evfn.runtime{})
	assert(rt:register("f", function() end))
	assert(rt:start())
	for _ = 1, 5 do assert(rt:invoke("f", "")) end
	local s = assert(rt:stats("f"))
	eq(s.accepted, 5, "accepted")
	eq(s.succeeded, 5, "succeeded")
	eq(s.dead_lettered, 0, "dead_lettered")
	eq(s.attempts, 5, "attempts")
	eq(s.in_flight, 0, "in_flight")
	eq(assert(rt:stats()).succeeded, 5, "sum over all")
	local _, _, code = rt:stats("nobody")
	eq(code, evfn.errors.ENOFN, "unknown function")
end)

test("calls that would wait on the loop are refused inside handlers",
	function()
	local rt <close> = assert(evfn.runtime{})
	local codes = {}
	assert(rt:register("inner", function() end))
	assert(rt:register("outer", function()
		codes.invoke = select(3, rt:invoke("inner", ""))
		codes.run = select(3, rt:run_once())
		codes.drain = select(3, rt:drain(0))
		codes.close = select(3, rt:close())
	end))
	assert(rt:start())
	assert(rt:invoke("outer", ""))
	eq(codes.invoke, evfn.errors.EDEADLK, "invoke")
	eq(codes.run, evfn.errors.EDEADLK, "run_once")
	eq(codes.drain, evfn.errors.EDEADLK, "drain")
	eq(codes.close, evfn.errors.EDEADLK, "close")
end)

test("a context used after its attempt raises", function()
	local rt <close> = assert(evfn.runtime{})
	local kept
	assert(rt:register("keep", function(ev, ctx) kept = ctx end))
	assert(rt:start())
	assert(rt:invoke("keep", ""))
	local ok, err = pcall(function() return kept.attempt end)
	eq(ok, false, "raises")
	match(err, "after its attempt ended")
end)

test("child events from ctx:emit reach their subscribers", function()
	local rt <close> = assert(evfn.runtime{})
	local hops
	assert(rt:register("parent", function(ev, ctx)
		assert(ctx:emit("child.made", ev.data .. "!"))
	end))
	assert(rt:register("child", function(ev) hops = {ev.hops, ev.data} end))
	assert(rt:subscribe("child.#", "child"))
	assert(rt:start())
	assert(rt:invoke("parent", "p"))
	wait_for(rt, function() return hops end)
	eq(hops[1], 1, "hops")
	eq(hops[2], "p!", "data")
end)

test("run(seconds) returns in time and stop() ends run()", function()
	local rt <close> = assert(evfn.runtime{})
	local t0 = evfn.now()
	assert(rt:run(0.1))
	local dt = evfn.now() - t0
	assert(dt >= 0.09 and dt < 2, "run(0.1) took " .. dt)
	assert(rt:register("stopper", function() rt:stop() end))
	assert(rt:invoke_async("stopper", ""))
	t0 = evfn.now()
	assert(rt:run(10))
	assert(evfn.now() - t0 < 5, "stop() ended run()")
end)

test("drain hands back queued events; a closed runtime raises", function()
	local rt = assert(evfn.runtime{})
	assert(rt:register("never", function() end))
	-- Queued before start, never run: drain hands them back.
	for i = 1, 3 do assert(rt:invoke_async("never", "e" .. i)) end
	local back = {}
	assert(rt:drain(1, function(ev, fn_name)
		back[#back + 1] = fn_name .. ":" .. ev.data
	end))
	table.sort(back)
	eq(table.concat(back, " "), "never:e1 never:e2 never:e3", "handed back")
	eq(rt:stats("never").handed_back, 3, "stats")
	local _, _, code = rt:emit("x", "")
	eq(code, evfn.errors.ESHUTDOWN, "emit after drain")
	assert(rt:close())
	assert(rt:close(), "close twice")
	local ok, err = pcall(rt.emit, rt, "x", "")
	eq(ok, false, "closed raises")
	match(err, "closed")
end)

test("emit_many admits all or none, with consecutive seqs", function()
	local rt <close> = assert(evfn.runtime{workers = {1, 1}})
	local seen = {}
	assert(rt:register("rec", function(ev)
		seen[#seen + 1] = {seq = ev.seq, type = ev.type, data = ev.data}
	end, {concurrency = 1, queue = 4}))
	assert(rt:subscribe("m.*", "rec"))
	-- Before start nothing runs: what is admitted stays queued.
	local first, n = rt:emit_many{{"m.a", "1"}, {"m.b"},
		{"m.c", "3", {id = "c-3"}}}
	eq(n, 3, "count")
	assert(math.type(first) == "integer" and first > 0, "first seq")
	local nothing, msg, code = rt:emit_many{{"m.d"}, {"m.e"}}
	eq(nothing, nil, "over the bound")
	eq(code, evfn.errors.EQUEUEFULL, "code")
	match(msg, "^EVFN_EQUEUEFULL")
	eq(rt:stats("rec").accepted, 3, "nothing of the refused batch")
	nothing, msg, code = rt:emit_many{}
	eq(code, evfn.errors.EINVAL, "empty")
	nothing, msg, code = rt:emit_many{{"m.d"}, {"no.one"}}
	eq(code, evfn.errors.ENOSUB, "one without subscriber")
	local ok, err = pcall(rt.emit_many, rt, {{"m.d"}, "x"})
	eq(ok, false, "a wrong item raises")
	match(err, "item 2: table")
	ok, err = pcall(rt.emit_many, rt, {{42}})
	eq(ok, false, "a wrong topic raises")
	match(err, "topic %(string%) expected")
	eq(rt:stats("rec").accepted, 3, "still 3")
	assert(rt:start())
	wait_for(rt, function() return #seen == 3 end)
	table.sort(seen, function(a, b) return a.seq < b.seq end)
	for i, want in ipairs{{"m.a", "1"}, {"m.b", ""}, {"m.c", "3"}} do
		eq(seen[i].seq, first + i - 1, "seq " .. i)
		eq(seen[i].type, want[1], "type " .. i)
		eq(seen[i].data, want[2], "data " .. i)
	end
end)

test("collection frees the runtime and releases handler references",
	function()
	local weak = setmetatable({}, {__mode = "k"})
	do
		local rt = assert(evfn.runtime{})
		local handler = function() end
		weak[handler] = true
		assert(rt:register("f", handler))
		assert(rt:start())
		assert(rt:invoke("f", ""))
	end
	collectgarbage()
	collectgarbage()
	eq(next(weak), nil, "handler collected")
end)


test("a journal keeps events across runtimes", function()
	local path = os.tmpname()
	os.remove(path)
	do
		local rt <close> = assert(evfn.runtime{journal = path})
		assert(rt:register("f", function() end))
		assert(rt:start())
		assert(rt:pause("f"))
		for i = 1, 3 do
			assert(rt:invoke_async("f", "e" .. i))
		end
		-- Handed back at close, and kept.
	end
	local got = {}
	local rt <close> = assert(evfn.runtime{journal = path,
		journal_mode = "durable"})
	-- Registered before start, which reads the journal.
	assert(rt:register("f", function(ev) got[#got + 1] = ev.data end))
	assert(rt:start())
	wait_for(rt, function() return #got == 3 end)
	table.sort(got)
	eq(table.concat(got, ","), "e1,e2,e3", "recovered")
	rt:close()
	for _, suffix in ipairs{"", "-wal", "-shm"} do
		os.remove(path .. suffix)
	end
	local ok = pcall(evfn.runtime, {journal = path, journal_mode = "x"})
	eq(ok, false, "a bad journal_mode raises")
end)

tap.run()
