-- SPDX-License-Identifier: MIT
-- Pool handler for the tests: never returns on its own; only the
-- deadline hook can stop it.
return function(event, ctx)
	local n = 0
	while true do
		n = n + 1
	end
end
