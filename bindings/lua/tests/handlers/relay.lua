-- SPDX-License-Identifier: MIT
-- Pool handler for the tests: emits a child event with the payload
-- reversed, to a topic any subscriber may take.
return function(event, ctx)
	assert(ctx:emit("relayed", event.data:reverse()))
end
