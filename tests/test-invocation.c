/* SPDX-License-Identifier: MIT */
/*
 * Invocations (invocation.c): a cleared invocation is zero in every field
 * but its list link, whatever its last use left in it, and lets go of
 * what it held; the pool hands out zeroed invocations.
 */
#include <string.h>

#include "harness.h"
#include "../lib/common-internal.h"
#include "../lib/event-internal.h"
#include "../lib/invocation-internal.h"
#include "../lib/kv-internal.h"

/* Bytes of struct evfn__inv no field covers, on 64-bit targets: after
 * attempt (4), after the last flag (1), after ctx.cancelled (3), after
 * ctx.early_outcome (4). A clear that misses a field leaves more. */
#define INV_PADDING 12

static void
test_invocation_clear_zeroes_every_field_but_its_link(void **state)
{
	struct evfn__inv_pool pool = {0};
	struct evfn__inv *inv = evfn__inv_get(&pool);
	assert_non_null(inv);
	/* Every byte set, as no single use sets them; then what the clear
	 * lets go of, held for real (ASan sees a leak or a bad free). */
	memset(inv, 0xa5, sizeof(*inv));
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "t", "x", 1));
	inv->ev = evfn_event_ref(ev);
	inv->ctx.resp = evfn__strdup("response");
	inv->ctx.error = evfn__strdup("error");
	inv->ctx.meta = NULL;
	ASSERT_OK(evfn__kv_set(&inv->ctx.meta, "content-type", "text/plain"));
	struct evfn__inv *link = inv->next;

	evfn__inv_clear(inv);

	assert_ptr_equal(inv->next, link);
	const unsigned char *b = (const unsigned char *)inv;
	size_t dirty = 0;
	for (size_t i = sizeof(inv->next); i < sizeof(*inv); i++)
		dirty += b[i] != 0;
	if (sizeof(void *) == 8 && dirty > INV_PADDING)
		fail_msg("%zu bytes left set, %d of padding", dirty,
		         INV_PADDING);
	assert_null(inv->ev);
	assert_null(inv->ctx.resp);
	assert_null(inv->ctx.error);
	assert_null(inv->ctx.meta);
	ASSERT_EQ(atomic_load(&inv->ctx.state), 0);
	/* Ours is the last reference now. */
	ASSERT_EQ(atomic_load(&ev->refs), 1);
	evfn_event_unref(ev);

	/* Given back and taken again: zeroed, final_stat -1, unlinked. */
	inv->next = NULL;
	evfn__inv_put(&pool, inv);
	struct evfn__inv *again = evfn__inv_get(&pool);
	assert_ptr_equal(again, inv);
	assert_null(again->next);
	ASSERT_EQ(again->final_stat, -1);
	evfn__inv_put(&pool, again);
	evfn__inv_pool_free(&pool);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_invocation_clear_zeroes_every_field_but_its_link),
	};
	return evfn_test_main("invocation", tests);
}
