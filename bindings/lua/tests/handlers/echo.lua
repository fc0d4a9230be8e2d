-- SPDX-License-Identifier: MIT
-- Pool handler for the tests: answers with the payload, upper-cased, and
-- this worker state's identity (a table address unique to the state).
local state_id = tostring({}):match("0x%x+")

return function(event, ctx)
	return event.data:upper() .. " " .. state_id
end
