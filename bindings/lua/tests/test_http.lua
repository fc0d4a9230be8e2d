-- SPDX-License-Identifier: MIT
-- HTTP from Lua: a server on the runtime's base answering a closure's
-- response with the status and header it set, an async route's 202, a
-- bearer-protected route, an unknown path, Stripe and GitHub signatures,
-- a route deadline, an unregistered function, the health route, a server
-- closed before its runtime, bad input, and a runtime that closes with
-- its server still open. The client is curl (signatures by openssl) in
-- the background; the test drives the loop until curl's output appears.
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
	-- Not under a sanitizer runtime preloaded for lua5.4 (curl hangs
	-- with it): env -u drops it.
	local args = {"env", "-u", "LD_PRELOAD", "curl", "-s", "-o",
		out .. ".body", "-D", out .. ".hdr", "-w", "'%{http_code}'",
		"-X", method}
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

-- Hex HMAC-SHA256 of text under secret, by openssl.
local function hmac(secret, text)
	local p = assert(io.popen(("printf %%s '%s' | openssl dgst -sha256 " ..
		"-hmac '%s'"):format(text, secret)))
	local out = p:read("a")
	p:close()
	return assert(out:match("(%x+)%s*$"), out)
end

local function github_signature(secret, body)
	return "sha256=" .. hmac(secret, body)
end

local function stripe_signature(secret, t, body)
	return ("t=%d,v1=%s"):format(t, hmac(secret, t .. "." .. body))
end

test("signed routes check GitHub's and Stripe's signatures", function()
	local rt <close> = runtime()
	assert(rt:register("push", function(ev) return "got " .. ev.data end))
	local srv <close> = assert(rt:http{})
	assert(srv:route("POST /hook", "push", {github_secret = "hush"}))
	assert(srv:route("POST /pay", "push", {stripe_secret = "whsec_x",
		stripe_tolerance = 60}))
	local now = os.time()
	local code = await(rt, fetch(srv:port(), "POST", "/pay", "{}",
		{"Stripe-Signature: " .. stripe_signature("whsec_x", now, "{}")}))
	eq(code, 200, "fresh Stripe signature")
	code = await(rt, fetch(srv:port(), "POST", "/pay", "{}",
		{"Stripe-Signature: " ..
			stripe_signature("whsec_x", now - 120, "{}")}))
	eq(code, 401, "Stripe signature beyond the tolerance")
	local body = '{"ref":"main"}'
	local text
	code, text = await(rt, fetch(srv:port(), "POST", "/hook", body,
		{"X-Hub-Signature-256: " .. github_signature("other", body)}))
	eq(code, 401, "wrong secret")
	match(text, "EVFN_ESIGNATURE", "error body")
	code, text = await(rt, fetch(srv:port(), "POST", "/hook", body,
		{"X-Hub-Signature-256: " .. github_signature("hush", body)}))
	eq(code, 200, "right secret")
	eq(text, "got " .. body, "body")
end)

test("a slow handler gets 504, an unregistered function 404", function()
	local rt <close> = runtime()
	assert(rt:register("slow", function()
		evfn.sleep(0.3)
		return "late"
	end))
	local srv <close> = assert(rt:http{health = "/up"})
	assert(srv:route("POST /slow", "slow", {timeout = 0.05}))
	assert(srv:route("POST /ghost", "ghost"))
	local code, body = await(rt, fetch(srv:port(), "POST", "/slow", "x"))
	eq(code, 504, "route deadline")
	match(body, "EVFN_ETIMEDOUT", "error body")
	code, body = await(rt, fetch(srv:port(), "POST", "/ghost", "x"))
	eq(code, 404, "no such function")
	match(body, "EVFN_ENOFN", "error body")
	code, body = await(rt, fetch(srv:port(), "GET", "/up"))
	eq(code, 200, "health at its own path")
	match(body, '"ok"', "health body")
	eq(await(rt, fetch(srv:port(), "GET", "/healthz")), 404,
		"not at the default path")
	-- The closure outlives the request; let it finish before close.
	tap.wait_for(rt, function()
		return rt:stats("slow").succeeded == 1
	end, 5, "the slow handler")
end)

test("a closed server stops answering; the runtime goes on", function()
	local rt <close> = runtime()
	assert(rt:register("greet", function() return "hi" end))
	local srv = assert(rt:http{})
	assert(srv:route("GET /hi", "greet"))
	local port = srv:port()
	eq(await(rt, fetch(port, "GET", "/hi")), 200, "served")
	match(tostring(srv), "port " .. port)
	assert(srv:close())
	assert(srv:close(), "closing twice is a no-op")
	match(tostring(srv), "closed")
	eq(await(rt, fetch(port, "GET", "/hi")), 0, "connection refused")
	eq(rt:invoke("greet", ""), "hi", "the runtime still runs")
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
	ok, msg, code = rt:http{port = 2^32 + 80}
	eq(code, evfn.errors.ERANGE, "port beyond int")
	ok, msg, code = rt:http{port = 70000}
	eq(code, evfn.errors.ERANGE, "port beyond 65535")
	ok, msg, code = rt:http{address = "localhost"}
	eq(code, evfn.errors.EINVAL, "address must be numeric")
	ok, msg, code = rt:http{health = "nope"}
	eq(code, evfn.errors.EROUTE, "health path without /")
	ok, msg, code = srv:route("POST /b", "x", {bearer = ""})
	eq(code, evfn.errors.EINVAL, "empty token")
	ok, msg, code = srv:route("POST /b", "x", {timeout = 0})
	eq(code, evfn.errors.ERANGE, "zero timeout")
	ok, msg = pcall(srv.route, srv, "POST /b", "x",
		{stripe_tolerance = 60})
	eq(ok, false, "a tolerance without a secret raises")
	match(msg, "needs stripe_secret")
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
