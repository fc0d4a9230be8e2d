-- SPDX-License-Identifier: MIT
-- Pool handler for the tests: busy Lua code inside a callback that C code
-- (table.sort) calls, in a pcall, in a loop: the deadline must still stop
-- it, though the hook cannot yield there and pcall catches what it raises.
return function(event, ctx)
	while true do
		pcall(table.sort, {3, 2, 1}, function(a, b)
			while true do end
		end)
	end
end
