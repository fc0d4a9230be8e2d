-- SPDX-License-Identifier: MIT
-- Triggers from Lua: schedules (to a function or a topic, with next()
-- and stats()), evfn.next_fire and its parse diagnostics, a directory
-- watch, a signal, a pipe descriptor, and a runtime that closes with its
-- triggers still open. Triggers fire only while the loop is driven, so
-- each case drives it with tap.wait_for until what it expects arrived.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

local function runtime()
	local rt = assert(evfn.runtime{workers = 1})
	assert(rt:start())
	return rt
end

-- Registers a closure that keeps every event it gets in a list.
local function collector(rt, name)
	local got = {}
	assert(rt:register(name, function(ev) got[#got + 1] = ev end))
	return got
end

test("@every schedule routed to a closure fires while the loop runs",
function()
	local rt <close> = runtime()
	local got = collector(rt, "tick")
	local t <close> = assert(rt:schedule("@every 50ms",
		{["function"] = "tick", name = "ticker", missed = "skip"}))
	local before = os.time()
	local next = t:next()
	assert(next and next >= before and next < before + 2, "next()")
	tap.wait_for(rt, function() return #got >= 3 end, 5, "3 ticks")
	eq(got[1].source, "evfn/schedule/ticker", "source")
	eq(got[1].subject, "ticker", "subject")
	eq(got[1].type, "evfn.schedule", "default type")
	assert(got[2].time > got[1].time, "scheduled instants increase")
	local s = t:stats()
	assert(s.fired >= 3, "fired")
	eq(s.refused, 0, "refused")
	eq(s.overflows, 0, "overflows")
	assert(t:close())
	assert(t:close(), "closing twice is a no-op")
	match(tostring(t), "closed")
	local ok, err = pcall(t.next, t)
	eq(ok, false, "next() on a closed trigger raises")
	match(err, "trigger is closed")
end)

test("a schedule with a type emits to the topic's subscribers", function()
	local rt <close> = runtime()
	local got = collector(rt, "minutes")
	assert(rt:subscribe("clock.*", "minutes"))
	local t <close> = assert(rt:schedule("@every 20ms",
		{type = "clock.tick", tz = "Europe/Berlin", tolerance = 1}))
	tap.wait_for(rt, function() return #got >= 1 end, 5, "a tick")
	eq(got[1].type, "clock.tick", "type")
	eq(got[1].source, "evfn/schedule", "source without a name")
	eq(got[1].subject, "@every 20ms", "subject is the expression")
end)

test("bad schedules come back as nil, message, code", function()
	local rt <close> = runtime()
	local t, msg, code = rt:schedule("0 0 32 * *")
	eq(t, nil, "trigger")
	eq(code, evfn.errors.ESCHEDULE, "code")
	match(msg, "day%-of%-month", "parser's reason")
	match(msg, "at byte 4", "parser's offset")
	t, msg, code = rt:schedule("@daily", {tz = "Nowhere/Atlantis"})
	eq(code, evfn.errors.ETIMEZONE, "unknown zone")
	t, msg, code = rt:schedule("@daily", {["function"] = "missing"})
	eq(code, evfn.errors.ENOFN, "unregistered function")
	local ok, err = pcall(rt.schedule, rt, "@daily", {every = 1})
	eq(ok, false, "unknown option raises")
	match(err, "unknown option 'every'")
	ok, err = pcall(rt.schedule, rt, "@daily", {missed = "later"})
	eq(ok, false, "unknown missed policy raises")
	match(err, "invalid option 'later'")
end)

test("evfn.next_fire tries expressions out", function()
	eq(evfn.next_fire("0 12 * * *", "UTC", 0), 12 * 3600, "cron")
	eq(evfn.next_fire("rate(5 minutes)", nil, 100), 400, "rate")
	eq(evfn.next_fire("at(2000-01-01T00:00:00)"), nil, "past at()")
	-- 12:00 in Berlin is 11:00 UTC in winter.
	eq(evfn.next_fire("0 12 * * *", "Europe/Berlin", 0), 11 * 3600,
		"zone")
	local now = os.time()
	local n = evfn.next_fire("@hourly")
	assert(n > now and n <= now + 3600, "default after is now")
	local t, msg, code = evfn.next_fire("61 * * * *")
	eq(t, nil, "next")
	eq(code, evfn.errors.ESCHEDULE, "code")
	match(msg, "value 61 out of range 0%-59 %(at byte 0",
		"reason and offset")
	t, msg, code = evfn.next_fire("@daily", "../etc/passwd")
	eq(code, evfn.errors.ETIMEZONE, "bad zone")
end)

-- A fresh directory under /tmp; Lua has no mkdtemp.
local function tempdir()
	local dir = os.tmpname()
	assert(os.remove(dir))
	assert(os.execute("mkdir -m 700 " .. dir))
	return dir
end

local function write(path, text)
	local f = assert(io.open(path, "w"))
	f:write(text)
	f:close()
end

test("watch: a file written and closed in the directory arrives",
function()
	local dir = tempdir()
	local rt <close> = runtime()
	local got = collector(rt, "upload")
	local ok, err = pcall(function()
		local w <close> = assert(rt:watch(dir, "*.csv",
			{["function"] = "upload", name = "inbox"}))
		write(dir .. "/skip.txt", "no")
		write(dir .. "/orders.csv", "a,b\n")
		tap.wait_for(rt, function() return #got >= 1 end, 5,
			"the arrival")
		rt:run_once(0.05) -- a second arrival would show up by now
		eq(#got, 1, "only the matching file")
		eq(got[1].data, dir .. "/orders.csv", "payload is the path")
		eq(got[1].subject, "orders.csv", "subject is the name")
		eq(got[1].extensions.arrival, "written", "arrival")
		eq(got[1].source, "evfn/watch/inbox", "source")
		eq(w:stats().fired, 1, "fired")
		local _, msg, code = w:next()
		eq(code, evfn.errors.EINVAL, "next() of a watch")
		match(msg, "not a schedule")
	end)
	os.remove(dir .. "/skip.txt")
	os.remove(dir .. "/orders.csv")
	os.remove(dir)
	assert(ok, err)
end)

test("watch: existing files and a missing directory", function()
	local dir = tempdir()
	local rt <close> = runtime()
	local got = collector(rt, "scan")
	write(dir .. "/old.csv", "")
	local ok, err = pcall(function()
		local w <close> = assert(rt:watch(dir,
			{["function"] = "scan", existing = true}))
		tap.wait_for(rt, function() return #got >= 1 end, 5,
			"the existing file")
		eq(got[1].extensions.arrival, "existing", "arrival")
		local t, _, code = rt:watch(dir .. "/nope", "*")
		eq(t, nil, "trigger")
		eq(code, evfn.errors.ENOENT, "missing directory")
		_, _, code = rt:watch(dir, "a/b")
		eq(code, evfn.errors.EINVAL, "glob with a slash")
	end)
	os.remove(dir .. "/old.csv")
	os.remove(dir)
	assert(ok, err)
end)

test("on_signal: SIGUSR1 sent to the process arrives as an event",
function()
	local rt <close> = runtime()
	local got = collector(rt, "sig")
	local s <close> = assert(rt:on_signal("USR1", {["function"] = "sig"}))
	local pid = assert(io.open("/proc/self/stat")):read("n")
	assert(os.execute("kill -USR1 " .. pid))
	tap.wait_for(rt, function() return #got >= 1 end, 5, "the signal")
	eq(got[1].subject, "SIGUSR1", "subject")
	eq(got[1].source, "evfn/signal", "source")
	assert(tonumber(got[1].extensions.signal), "signal number")
	local ok, err = pcall(rt.on_signal, rt, "SIGNOPE")
	eq(ok, false, "unknown name raises")
	match(err, "unknown signal name")
	local t, _, code = rt:on_signal(9)
	eq(t, nil, "SIGKILL")
	eq(code, evfn.errors.EINVAL, "SIGKILL cannot be caught")
end)

test("on_fd: a readable pipe fires with fd and ready", function()
	local rt <close> = runtime()
	local f = assert(io.popen("echo hello"))
	local lines = {}
	local events = {}
	assert(rt:register("pipe", function(ev)
		events[#events + 1] = ev
		lines[#lines + 1] = f:read("l")
	end))
	local t = assert(rt:on_fd(f, "r", {["function"] = "pipe",
		name = "child"}))
	tap.wait_for(rt, function() return #lines >= 1 end, 5, "readable")
	t:close()
	eq(lines[1], "hello", "the handler read the pipe")
	eq(events[1].extensions.ready, "read", "ready")
	assert(tonumber(events[1].extensions.fd), "fd")
	eq(events[1].subject, "child", "subject")
	f:close()
	local ok, err = pcall(rt.on_fd, rt, f, "r")
	eq(ok, false, "closed file raises")
	match(err, "file is closed")
	local _, _, code = rt:on_fd(1, "w", {["function"] = "missing"})
	eq(code, evfn.errors.ENOFN, "unregistered function")
	ok, err = pcall(rt.on_fd, rt, 0, "rx")
	eq(ok, false, "unknown mode raises")
	match(err, "invalid option 'rx'")
end)

test("closing the runtime frees its open triggers", function()
	local rt = runtime()
	local got = collector(rt, "tick")
	local t = assert(rt:schedule("@every 10ms", {["function"] = "tick"}))
	local w = assert(rt:on_signal("USR2"))
	tap.wait_for(rt, function() return #got >= 1 end, 5, "a tick")
	assert(rt:close())
	match(tostring(t), "closed")
	match(tostring(w), "closed")
	assert(t:close(), "close after the runtime closed")
	local ok = pcall(rt.schedule, rt, "@daily")
	eq(ok, false, "schedule on a closed runtime raises")
	-- Collected triggers and runtimes in any order free cleanly.
	local rt2 = runtime()
	local _ = assert(rt2:schedule("@every 10ms"))
	rt2 = nil
	_ = nil
	collectgarbage()
	collectgarbage()
end)

tap.run()
