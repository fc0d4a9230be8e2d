-- SPDX-License-Identifier: MIT
-- Pool handler for the tests, registered with batches: reports each
-- call's items to topic "batch.seen" ("<n>:<data>,<data>,..."), fails
-- the item "flaky" once (retried alone) and the item "bad" for good; the
-- other items of the call succeed.
local failed_flaky = false

return function(event, ctx)
	local items = ctx:batch()
	assert(items[1].data == event.data, "item 1 is the handler's event")
	local data = {}
	for i, ev in ipairs(items) do
		data[i] = ev.data
		if ev.data == "flaky" and not failed_flaky then
			failed_flaky = true
			assert(ctx:fail_item(i, "retry", "flaky once"))
		elseif ev.data == "bad" then
			assert(ctx:fail_item(i, "fail", "bad item"))
		end
	end
	assert(ctx:emit("batch.seen", #items .. ":" .. table.concat(data, ",")))
end
