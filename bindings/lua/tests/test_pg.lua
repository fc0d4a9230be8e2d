-- SPDX-License-Identifier: MIT
-- PostgreSQL sources from Lua, against the throwaway cluster that
-- tests/pg-cluster.sh starts around this file (EVFN_PG_CONNINFO): row
-- changes made with psql arrive with the documented mapping and the slot
-- moves past them; LISTEN/NOTIFY; the specific errors; a runtime that
-- closes with a source still open. Sources read only while the loop is
-- driven, so each case drives it with tap.wait_for.
local evfn = require "evfn"
local tap = require "tap"
local test, eq, match = tap.test, tap.eq, tap.match

local conninfo = assert(os.getenv("EVFN_PG_CONNINFO"),
	"run through tests/pg-cluster.sh")

local function psql(script)
	local p = assert(io.popen("psql -X -q -v ON_ERROR_STOP=1 -f - "
		.. ">/dev/null", "w"))
	p:write(script)
	assert(p:close(), "psql failed: " .. script)
end

local function query(sql)
	local p = assert(io.popen("psql -X -A -t -c \"" .. sql .. "\""))
	local out = p:read("a")
	p:close()
	return (out:gsub("%s+$", ""))
end

local function runtime()
	local rt = assert(evfn.runtime{workers = 1})
	assert(rt:start())
	return rt
end

local function collector(rt, name)
	local got = {}
	assert(rt:register(name, function(ev) got[#got + 1] = ev end))
	return got
end

local function table_in_publication(name)
	psql(("SET client_min_messages = warning;\n"
		.. "DROP PUBLICATION IF EXISTS p_%s;\n"
		.. "DROP TABLE IF EXISTS %s;\n"
		.. "CREATE TABLE %s (id int PRIMARY KEY, note text);\n"
		.. "CREATE PUBLICATION p_%s FOR TABLE %s;\n")
		:format(name, name, name, name, name))
end

local function drop_slot(rt, slot)
	tap.wait_for(rt, function()
		return query("SELECT count(*) FROM pg_replication_slots "
			.. "WHERE slot_name = '" .. slot .. "' AND active") == "0"
	end, 10, "slot free")
	query("SELECT pg_drop_replication_slot('" .. slot .. "')")
end

test("row changes arrive in commit order with the mapping", function()
	local rt <close> = runtime()
	table_in_publication("lua_rows")
	local got = collector(rt, "rows")
	local src <close> = assert(rt:pg_changes("p_lua_rows", "rows",
		{conninfo = conninfo, slot = "lua_rows", max_in_flight = 1,
		 feedback = 0.01, reconnect = {0.02, 0.2}}))
	tap.wait_for(rt, function()
		return src:stats().connects == 1 and src:status() == 0
	end, 10, "streaming")
	psql("INSERT INTO lua_rows VALUES (1, 'tea');\n"
		.. "UPDATE lua_rows SET note = 'green' WHERE id = 1;\n"
		.. "DELETE FROM lua_rows WHERE id = 1;\n")
	tap.wait_for(rt, function() return #got == 3 end, 10, "3 changes")
	eq(got[1].type, "pg.public.lua_rows.insert", "insert")
	eq(got[2].type, "pg.public.lua_rows.update", "update")
	eq(got[3].type, "pg.public.lua_rows.delete", "delete")
	eq(got[1].subject, "1", "subject is the key")
	eq(got[1].data, '{"new":{"id":1,"note":"tea"}}', "row as JSON")
	eq(got[3].data, '{"old":{"id":1}}', "old key of a delete")
	eq(got[1].source, "evfn/pg/lua_rows", "source")
	match(got[1].id, ":0$", "id: commit LSN and index")
	local stop = query("SELECT pg_current_wal_lsn()")
	tap.wait_for(rt, function()
		return query("SELECT confirmed_flush_lsn >= '" .. stop
			.. "' FROM pg_replication_slots WHERE slot_name = "
			.. "'lua_rows'") == "t"
	end, 10, "slot past the changes")
	local s = src:stats()
	eq(s.submitted, 3, "submitted")
	eq(s.ended, 3, "ended")
	assert(src:close())
	assert(src:close(), "closing twice is a no-op")
	match(tostring(src), "closed")
	local ok, err = pcall(src.stats, src)
	eq(ok, false, "stats() on a closed source raises")
	match(err, "closed")
	drop_slot(rt, "lua_rows")
end)

test("notifications of a channel arrive", function()
	local rt <close> = runtime()
	local got = collector(rt, "jobs")
	local src <close> = assert(rt:pg_listen("jobs", "jobs",
		{conninfo = conninfo, type_prefix = "db"}))
	tap.wait_for(rt, function() return src:stats().connects == 1 end, 10,
		"listening")
	psql("NOTIFY jobs, 'one';\nSELECT pg_notify('jobs', 'two');\n")
	tap.wait_for(rt, function() return #got == 2 end, 10, "2 notifications")
	eq(got[1].type, "db.jobs", "type")
	eq(got[1].data, "one", "payload")
	eq(got[2].data, "two", "in order")
end)

test("errors are specific", function()
	local rt <close> = runtime()
	assert(rt:register("rows", function() end))
	local src, msg, code = rt:pg_changes("p", "rows",
		{conninfo = "host='unterminated"})
	eq(src, nil, "no source")
	eq(code, evfn.errors.ECONNINFO, "malformed conninfo")
	match(msg, "^EVFN_ECONNINFO")
	src, msg, code = rt:pg_changes("p", "nosuch", {conninfo = conninfo})
	eq(code, evfn.errors.ENOFN, "unknown function")
	src, msg, code = rt:pg_changes("p", "rows", {slot = "Bad-Name"})
	eq(code, evfn.errors.EINVAL, "bad slot name")
	src, msg, code = rt:pg_changes("p", "rows", {reconnect = {2, 1}})
	eq(code, evfn.errors.ERANGE, "reconnect cap below base")
	local ok, err = pcall(rt.pg_changes, rt, "p", "rows", {nosuch = 1})
	eq(ok, false, "unknown option raises")
	match(err, "nosuch")
	ok = pcall(rt.pg_listen, rt, "c", "rows", {slot = "x"})
	eq(ok, false, "a listen source takes no slot")
	local missing <close> = assert(rt:pg_changes("p_nosuch", "rows",
		{conninfo = conninfo, slot = "lua_nosuch"}))
	tap.wait_for(rt, function()
		return missing:status() == evfn.errors.ENOPUBLICATION
	end, 10, "ENOPUBLICATION")
end)

test("a runtime closes with a source still open", function()
	table_in_publication("lua_close")
	local rt = runtime()
	assert(rt:register("rows", function() end))
	local src = assert(rt:pg_changes("p_lua_close", "rows",
		{conninfo = conninfo, slot = "lua_close"}))
	tap.wait_for(rt, function() return src:stats().connects == 1 end, 10,
		"streaming")
	assert(rt:close())
	match(tostring(src), "closed")
	local after = runtime()
	drop_slot(after, "lua_close")
	assert(after:close())
end)

tap.run()
