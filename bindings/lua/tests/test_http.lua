-- SPDX-License-Identifier: MIT
-- HTTP from Lua: a server on the runtime's base answering a closure's
-- response with the status and header it set, an async route's 202, a
-- bearer-protected route, an unknown path, bad input, and a runtime that
-- closes with its server still open. The client is curl in the
-- background; the test drives the loop until curl's output file appears.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

local function runtime()
	local rt = assert(evfn.runtime{workers = 1})
	assert(rt:start())
	return rt
end

-- Starts curl in the background; returns a function that reports
-- (status, body) once it finished, or nil while it runs.
local function fetch(port, method, path, body, headers)
	local out = os.tmpname()
	local args = {"curl", "-s", "-o", out .. ".body", "-D", out .. ".hdr",
		"-w", "'%{http_code}'", "-X", method}
	for _, h in ipairs(headers or {}) do
		args[#args + 1] = "-H"
		args[#args + 1] = "'" .. h .. "'"
	end
	if body then
		args[#args + 1] = "--data-binary"
		args[#args + 1] = "'" .. body .. "'"
	end
	args[#args + 1] = ("http://127.0.0.1:%d%s"):format(port, path)
	-- The whole pipeline in the background: the loop must run meanwhile.
	os.execute("(" .. table.concat(args, " ") .. " > " .. out ..
		".code 2>/dev/null; mv " .. out .. ".code " .. out .. ".done) &")
	return function()
		local f = io.open(out .. ".done")
		if not f then return nil end
		local code = tonumber(f:read("a"))
		f:close()
		local function slurp(name)
			local h = io.open(name)
			local text = h and h:read("a") or ""
			if h then h:close() end
			os.remove(name)
			return text
		end
		local text, hdr = slurp(out .. ".body"), slurp(out .. ".hdr")
		os.remove(out .. ".done"); os.remove(out)
		return code, text, hdr
	end
end

local function await(rt, poll)
	local code, body, hdr
	tap.wait_for(rt, function()
		code, body, hdr = poll()
		return code ~= nil
	end, 10, "the HTTP response")
	return code, body, hdr
end

test("a sync route answers with the closure's response, status and header",
function()
	local rt <close> = runtime()
	assert(rt:register("greet", function(ev, ctx)
		ctx:set_meta("status", "201")
		ctx:set_meta("header.X-Greeting", "yes")
		return "hello, " .. ev.data
	end))
	local srv <close> = assert(rt:http{port = 0})
	assert(srv:port() > 0, "a port was bound")
	assert(srv:route("POST /greet", "greet"))
	local code, body, hdr = await(rt, fetch(srv:port(), "POST", "/greet",
		"lua"))
	eq(code, 201, "status from metadata")
	eq(body, "hello, lua", "body")
	match(hdr, "X%-Greeting: yes", "header from metadata")
end)

test("an async route answers 202 with the event id at once", function()
	local rt <close> = runtime()
	local got = {}
	assert(rt:register("job", function(ev) got[#got + 1] = ev.id end))
	local srv <close> = assert(rt:http{})
	assert(srv:route("POST /jobs", "job", {async = true}))
	local code, body = await(rt, fetch(srv:port(), "POST", "/jobs", "x"))
	eq(code, 202, "accepted")
	match(body, '"id"', "the id in JSON")
	tap.wait_for(rt, function() return #got == 1 end, 5, "the job ran")
	match(body, got[1], "the id is the event's")
end)

test("a bearer-protected route refuses without the token", function()
	local rt <close> = runtime()
	assert(rt:register("secret", function() return "in" end))
	local srv <close> = assert(rt:http{})
	assert(srv:route("POST /secret", "secret", {bearer = "s3cret"}))
	local code = await(rt, fetch(srv:port(), "POST", "/secret", "x"))
	eq(code, 401, "no token")
	local body
	code, body = await(rt, fetch(srv:port(), "POST", "/secret", "x",
		{"Authorization: Bearer s3cret"}))
	eq(code, 200, "with the token")
	eq(body, "in", "body")
	code = await(rt, fetch(srv:port(), "GET", "/nowhere"))
	eq(code, 404, "unknown path")
	code, body = await(rt, fetch(srv:port(), "GET", "/metrics"))
	eq(code, 200, "metrics")
	match(body, 'evfn_succeeded_total{function="secret"} 1', "metrics body")
end)

test("bad input gets error codes", function()
	local rt <close> = runtime()
	local srv <close> = assert(rt:http{})
	local ok, msg, code = srv:route("POST", "x")
	eq(ok, nil, "bad route")
	eq(code, evfn.errors.EROUTE, "EROUTE")
	match(msg, "EVFN_EROUTE", "message")
	assert(srv:route("GET /a", "x"))
	ok, msg, code = srv:route("GET /a", "x")
	eq(code, evfn.errors.EEXIST, "duplicate route")
	local busy <close> = assert(rt:http{})
	ok, msg, code = rt:http{port = busy:port()}
	eq(code, evfn.errors.EADDRINUSE, "port in use")
	assert(not pcall(rt.http, rt, {nope = 1}), "unknown option raises")
	srv:close()
	assert(not pcall(srv.port, srv), "closed server raises")
end)

test("a runtime closes with its server still open", function()
	local rt = runtime()
	local srv = assert(rt:http{})
	assert(rt:close())
	assert(not pcall(srv.port, srv), "the server went with the runtime")
end)

tap.run()
