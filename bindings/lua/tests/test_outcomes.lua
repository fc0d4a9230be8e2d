-- SPDX-License-Identifier: MIT
-- What a Lua handler's return value or error means: nothing/true/a
-- string succeed, error() and evfn.retry() retry with their message,
-- evfn.fail() dead-letters at once, attempts run out into a dead letter,
-- and stats account for each.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

-- Retries come fast so that the suite stays short.
local fast = {attempts = 3, backoff = {kind = "fixed", base = 0.001,
	jitter = "none"}}

local function runtime()
	local rt = assert(evfn.runtime{workers = {1, 2}})
	assert(rt:start())
	return rt
end

test("error() retries until attempts run out, then dead-letters", function()
	local rt <close> = runtime()
	local calls = 0
	assert(rt:register("boom", function()
		calls = calls + 1
		error("boom " .. calls)
	end, fast))
	local resp, msg, code = rt:invoke("boom", "")
	eq(resp, nil, "response")
	eq(code, evfn.errors.EEXHAUSTED, "code")
	match(msg, "boom 3$", "last attempt's error")
	eq(calls, 3, "attempts")
	local s = rt:stats("boom")
	eq(s.dead_lettered, 1, "dead_lettered")
	eq(s.attempts, 3, "attempts")
	eq(s.retries, 2, "retries")
	eq(s.attempts_failed, 3, "attempts_failed")
end)

test("evfn.retry() retries and a later attempt may succeed", function()
	local rt <close> = runtime()
	assert(rt:register("flaky", function(ev, ctx)
		if ctx.attempt < 2 then evfn.retry("not yet") end
		return "done on " .. ctx.attempt
	end, fast))
	local result
	assert(rt:invoke_async("flaky", "", function(r) result = r end))
	tap.wait_for(rt, function() return result end)
	eq(result.ok, true, "ok")
	eq(result.response, "done on 2", "response")
	eq(result.attempts, 2, "attempts")
	eq(rt:stats("flaky").succeeded, 1, "succeeded")
end)

test("evfn.fail() dead-letters without retrying", function()
	local rt <close> = runtime()
	local calls = 0
	assert(rt:register("bad", function()
		calls = calls + 1
		evfn.fail("malformed order")
	end, fast))
	local _, msg, code = rt:invoke("bad", "")
	eq(code, evfn.errors.EFAILED, "code")
	match(msg, "malformed order$", "message")
	eq(calls, 1, "one attempt")
	eq(rt:stats("bad").dead_lettered, 1, "dead_lettered")
end)

test("evfn.retry and evfn.fail raise objects that print", function()
	local ok, err = pcall(evfn.fail, "why")
	eq(ok, false, "raises")
	eq(tostring(err), "evfn.fail: why", "tostring")
	ok, err = pcall(evfn.retry)
	eq(tostring(err), "evfn.retry: retry", "default message")
end)

test("return values: false retries, other types fail", function()
	local rt <close> = runtime()
	assert(rt:register("no", function() return false end, fast))
	assert(rt:register("num", function() return 42 end, fast))
	assert(rt:register("tbl", function() error({}) end, fast))
	local _, msg, code = rt:invoke("no", "")
	eq(code, evfn.errors.EEXHAUSTED, "false")
	match(msg, "handler returned false")
	_, msg, code = rt:invoke("num", "")
	eq(code, evfn.errors.EFAILED, "number")
	match(msg, "returned a number")
	_, msg, code = rt:invoke("tbl", "")
	eq(code, evfn.errors.EEXHAUSTED, "table error")
	match(msg, "raised a table value")
end)

test("an error caught by pcall inside the handler is no failure",
	function()
	local rt <close> = runtime()
	assert(rt:register("careful", function()
		local ok = pcall(error, "inner")
		return ok and "?" or "caught"
	end))
	eq(rt:invoke("careful", ""), "caught", "response")
end)

tap.run()
