-- SPDX-License-Identifier: MIT
-- The README's first ```lua block runs as written.
-- Usage: lua5.4 test_readme.lua README.md
local path = assert(arg[1], "usage: test_readme.lua README.md")
local text = assert(io.open(path)):read("a")
local code = text:match("\n```lua\n(.-)\n```\n")
print("1..1")
local chunk, err = load(code or "error('no lua block')", "=README")
local ok = false
if chunk then
	ok, err = pcall(chunk)
end
collectgarbage()
print((ok and "ok" or "not ok") .. " 1 - README example runs")
if not ok then print("# " .. tostring(err)) end
os.exit(ok and 0 or 1, true)
