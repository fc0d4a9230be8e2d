-- SPDX-License-Identifier: MIT
-- Closing a runtime whose handler is stuck in C code: rt:close(grace)
-- waits no longer than the grace in all and reports EVFN_EBUSY, leaving
-- the runtime open for a later close; leaving a `<close>` scope raises
-- that failure, unless an error is already propagating, which goes on
-- unmasked; the runtime's `grace` option sets the default wait.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

-- A runtime whose one worker is blocked in os.execute for `seconds`,
-- its attempt already fenced at its 0.1 s deadline.
local function stuck_runtime(seconds, opts)
	opts = opts or {}
	opts.workers = {1, 1}
	local rt = assert(evfn.runtime(opts))
	assert(rt:register("stuck", "handlers.stuck",
		{timeout = 0.1, attempts = 1}))
	assert(rt:start())
	assert(rt:invoke_async("stuck", tostring(seconds)))
	tap.wait_for(rt, function()
		return rt:stats("stuck").dead_lettered == 1
	end, 5, "the attempt fenced at its deadline")
	return rt
end

test("close(grace) waits at most the grace, then reports EBUSY", function()
	local rt = stuck_runtime(2)
	local t0 = evfn.now()
	local ok, msg, code = rt:close(0.3)
	local dt = evfn.now() - t0
	eq(ok, nil, "close while the handler is stuck")
	eq(code, evfn.errors.EBUSY, "code")
	match(msg, "^EVFN_EBUSY")
	-- The handler blocks for 2 s: waiting that long ignored the grace.
	assert(dt >= 0.25 and dt < 1.5, "close(0.3) took " .. dt .. " s")
	eq(tostring(rt), "evfn.runtime (open)", "still open")
	-- Once the handler returns a later close frees it.
	assert(rt:close(10))
	eq(tostring(rt), "evfn.runtime (closed)", "closed")
end)

-- Leaves the scope of a `local rt <close>` whose handler is stuck, by an
-- error (body_error) or normally; returns what pcall returned, once the
-- runtime, left open, is closed after all.
local function leave_scope(body_error)
	local kept
	local ok, err = pcall(function()
		local rt <close> = stuck_runtime(1, {grace = 0.2})
		kept = rt
		if body_error then error(body_error, 0) end
	end)
	assert(kept:close(10))
	return ok, err
end

test("leaving a <close> scope raises when the runtime stays open",
	function()
	local ok, err = leave_scope(nil)
	eq(ok, false, "scope exit raised")
	match(err, "EVFN_EBUSY")
end)

test("an error leaving a <close> scope is not masked by close",
	function()
	local ok, err = leave_scope("the body failed")
	eq(ok, false, "raised")
	eq(err, "the body failed", "the body's error goes on")
end)

test("the grace option is checked", function()
	local ok, err = pcall(evfn.runtime, {grace = -1})
	eq(ok, false, "raises")
	match(err, "grace")
	ok, err = pcall(evfn.runtime, {grace = "soon"})
	eq(ok, false, "raises")
	match(err, "grace: number expected, got string")
end)

tap.run()
