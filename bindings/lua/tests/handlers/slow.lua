-- SPDX-License-Identifier: MIT
-- Pool handler for the tests: sleeps (blocking its worker only) for the
-- number of seconds in the payload, and reports when it ran and in which
-- worker state, so a test can see two workers overlap.
local evfn = require "evfn"
local state_id = tostring({}):match("0x%x+")

return {
	handler = function(event, ctx)
		local started = evfn.now()
		evfn.sleep(tonumber(event.data))
		return ("%s %.6f %.6f"):format(state_id, started, evfn.now())
	end,
}
