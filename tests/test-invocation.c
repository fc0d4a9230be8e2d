/* SPDX-License-Identifier: MIT */
/*
 * Invocations (invocation.c): a cleared invocation is zero in every field
 * but its list link, whatever its last use left in it, and lets go of
 * what it held; the pool hands out zeroed invocations and takes lists
 * back up to its bound.
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

/* A list of n fresh (zeroed) invocations. */
static struct evfn__inv_list
fresh_list(size_t n)
{
	struct evfn__inv_list list = {NULL, NULL};
	for (size_t i = 0; i < n; i++) {
		struct evfn__inv *inv = evfn__calloc(1, sizeof(*inv));
		assert_non_null(inv);
		evfn__inv_list_push(&list, inv);
	}
	return list;
}

static size_t
pool_length(const struct evfn__inv_pool *p)
{
	size_t n = 0;
	for (const struct evfn__inv *inv = p->free; inv; inv = inv->next)
		n++;
	return n;
}

static void
test_invocation_pool_takes_lists_back_up_to_its_bound(void **state)
{
	struct evfn__inv_pool pool = {0};
	/* Nothing given back: nothing changes. */
	struct evfn__inv_list list = fresh_list(0);
	evfn__inv_put_all(&pool, &list);
	ASSERT_EQ(pool.n, 0);
	assert_null(pool.free);
	/* A list with room for all of it: kept whole, counted. */
	list = fresh_list(3);
	struct evfn__inv *first = list.head;
	evfn__inv_put_all(&pool, &list);
	assert_null(list.head);
	assert_null(list.tail);
	ASSERT_EQ(pool.n, 3);
	ASSERT_EQ(pool_length(&pool), 3);
	assert_ptr_equal(evfn__inv_get(&pool), first);
	ASSERT_EQ(pool.n, 2);
	evfn__inv_put(&pool, first);
	/* Lists past the bound: the pool fills to it, the rest are freed
	 * (ASan reports one lost). */
	list = fresh_list(EVFN__INV_POOL_MAX - 5);
	evfn__inv_put_all(&pool, &list);
	ASSERT_EQ(pool.n, EVFN__INV_POOL_MAX - 2);
	list = fresh_list(10);
	evfn__inv_put_all(&pool, &list);
	assert_null(list.head);
	ASSERT_EQ(pool.n, EVFN__INV_POOL_MAX);
	ASSERT_EQ(pool_length(&pool), EVFN__INV_POOL_MAX);
	evfn__inv_pool_free(&pool);
	ASSERT_EQ(pool.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_invocation_clear_zeroes_every_field_but_its_link),
		TEST(test_invocation_pool_takes_lists_back_up_to_its_bound),
	};
	return evfn_test_main("invocation", tests);
}
