-- SPDX-License-Identifier: MIT
-- Bad input names what was wrong: options out of range come back as
-- nil, message, code with the option named (a count beyond a C int is
-- refused, never wrapped), options of the wrong type raise naming the
-- option, and error text cut by evfn stays valid UTF-8.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

test("worker counts beyond an int are refused, not wrapped", function()
	for _, workers in ipairs{2^32 + 2, {1, 2^32 + 2}, {-1, 2}, -1} do
		local rt, msg, code = evfn.runtime{workers = workers}
		eq(rt, nil, "runtime")
		eq(code, evfn.errors.ERANGE, "code")
		match(msg, "workers", "message names the option")
	end
	local ok, err = pcall(evfn.runtime, {workers = "two"})
	eq(ok, false, "a string raises")
	match(err, "workers: {min, max} or a number expected, got string")
end)

test("register option errors name the option", function()
	local rt <close> = assert(evfn.runtime{})
	local f = function() end
	local raising = {
		{{attempts = "x"}, "attempts: integer expected, got string"},
		{{attempts = 1.5}, "attempts: number has no integer"},
		{{timeout = "x"}, "timeout: number expected, got string"},
		{{timeout = -1}, "timeout: .* out of range"},
		{{backoff = 3}, "backoff: table expected, got number"},
		{{backoff = {kind = "nope"}}, "backoff.kind: invalid option 'nope'"},
		{{backoff = {multiplier = "x"}}, "backoff.multiplier: number"},
		{{rate = {per_second = "x"}}, "rate.per_second: number"},
		{{breaker = {consecutive = "x"}}, "breaker.consecutive: integer"},
		{{breaker = {policy = "x"}}, "breaker.policy: invalid option"},
		{{destinations = {on_success = {}}},
			"destinations.on_success: string expected"},
	}
	for i, case in ipairs(raising) do
		local ok, err = pcall(rt.register, rt, "f" .. i, f, case[1])
		eq(ok, false, case[2] .. " raises")
		match(err, case[2])
	end
	local refused = {
		{attempts = 0}, {attempts = 2^40}, {concurrency = -1},
		{max_stuck = 2^33},
	}
	for i, opts in ipairs(refused) do
		local ok, msg, code = rt:register("g" .. i, f, opts)
		eq(ok, nil, "refused")
		eq(code, evfn.errors.ERANGE, "code")
		match(msg, next(opts), "message names the option")
	end
end)

test("rt:http checks its options argument", function()
	local rt <close> = assert(evfn.runtime{})
	local ok, err = pcall(rt.http, rt, "x")
	eq(ok, false, "a string raises")
	match(err, "table of http options expected, got string")
	ok, err = pcall(rt.http, rt, {port = "x"})
	eq(ok, false, "a string port raises")
	match(err, "port: integer expected, got string")
	local srv, msg, code = rt:http{port = 2^32 + 80}
	eq(srv, nil, "port beyond range")
	eq(code, evfn.errors.ERANGE, "code")
end)

test("a long error is cut between UTF-8 characters", function()
	local rt <close> = assert(evfn.runtime{})
	-- 1023 is odd: a run of 2-byte characters straddles the cut.
	assert(rt:register("accents", function()
		error(("\u{e9}"):rep(2000), 0)
	end, {attempts = 1}))
	assert(rt:start())
	local _, msg, code = rt:invoke("accents", "")
	eq(code, evfn.errors.EEXHAUSTED, "code")
	local text = msg:match("^EVFN_EEXHAUSTED: [^:]*: (.*)$")
	assert(text and #text <= 1023 and #text >= 1020, "cut at 1023 bytes")
	assert(utf8.len(text), "valid UTF-8")
	local dl = rt:dead_letters()[1]
	assert(utf8.len(dl.error), "the dead letter's error is valid UTF-8")
end)

tap.run()
