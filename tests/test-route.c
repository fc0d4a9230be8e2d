/* SPDX-License-Identifier: MIT */
/*
 * Topic patterns: what `*` and `#` match, what is malformed, and that the
 * router visits each subscribed target once per topic.
 */
#include <string.h>

#include "harness.h"
#include "route-internal.h"

static void
test_route_star_matches_exactly_one_word(void **state)
{
	assert_true(evfn__pattern_match("orders.*", "orders.created"));
	assert_false(evfn__pattern_match("orders.*", "orders"));
	assert_false(evfn__pattern_match("orders.*", "orders.eu.created"));
	assert_true(evfn__pattern_match("*.created", "orders.created"));
	assert_true(evfn__pattern_match("*.*", "a.b"));
	assert_false(evfn__pattern_match("*", "a.b"));
}

static void
test_route_hash_matches_zero_or_more_words(void **state)
{
	assert_true(evfn__pattern_match("orders.#", "orders"));
	assert_true(evfn__pattern_match("orders.#", "orders.created"));
	assert_true(evfn__pattern_match("orders.#", "orders.eu.created"));
	assert_false(evfn__pattern_match("orders.#", "billing.x"));
	assert_true(evfn__pattern_match("#", "anything.at.all"));
	assert_true(evfn__pattern_match("#.created", "created"));
	assert_true(evfn__pattern_match("#.created", "a.b.created"));
	assert_true(evfn__pattern_match("a.#.z", "a.z"));
	assert_true(evfn__pattern_match("a.#.z", "a.b.c.z"));
	assert_false(evfn__pattern_match("a.#.z", "a.b.c"));
	assert_true(evfn__pattern_match("#.*", "a"));
}

static void
test_route_literal_words_match_exactly(void **state)
{
	assert_true(evfn__pattern_match("a.b", "a.b"));
	assert_false(evfn__pattern_match("a.b", "a.bc"));
	assert_false(evfn__pattern_match("a.b", "a"));
	assert_false(evfn__pattern_match("ab", "a.b"));
}

static void
test_route_malformed_patterns_are_epattern(void **state)
{
	ASSERT_RC(evfn__pattern_check("a..b"), EVFN_EPATTERN);
	ASSERT_RC(evfn__pattern_check(".a"), EVFN_EPATTERN);
	ASSERT_RC(evfn__pattern_check("a."), EVFN_EPATTERN);
	ASSERT_RC(evfn__pattern_check("a*"), EVFN_EPATTERN);
	ASSERT_RC(evfn__pattern_check("x#y"), EVFN_EPATTERN);
	ASSERT_RC(evfn__pattern_check("**"), EVFN_EPATTERN);
	ASSERT_RC(evfn__pattern_check(""), EVFN_EINVAL);
	ASSERT_RC(evfn__pattern_check(NULL), EVFN_EINVAL);
	char long_name[EVFN_NAME_MAX + 2];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	ASSERT_RC(evfn__pattern_check(long_name), EVFN_ENAMETOOLONG);
	long_name[EVFN_NAME_MAX] = '\0';
	ASSERT_OK(evfn__pattern_check(long_name));
	ASSERT_OK(evfn__pattern_check("a.*.#"));
}

struct visits {
	void *seen[8];
	int n;
};

static int
visit(void *target, void *arg)
{
	struct visits *v = arg;
	v->seen[v->n++] = target;
	return 0;
}

static void
test_route_router_visits_each_target_once(void **state)
{
	evfn__router *r = evfn__router_new();
	int a, b, c;
	ASSERT_OK(evfn__router_add(r, "x.y", &a));
	ASSERT_OK(evfn__router_add(r, "x.y", &a)); /* duplicate: no-op */
	ASSERT_OK(evfn__router_add(r, "x.*", &a));
	ASSERT_OK(evfn__router_add(r, "x.#", &b));
	ASSERT_OK(evfn__router_add(r, "#", &b));
	ASSERT_OK(evfn__router_add(r, "z", &c));
	ASSERT_RC(evfn__router_add(r, "x..y", &c), EVFN_EPATTERN);
	struct visits v = {0};
	ASSERT_EQ(evfn__router_match(r, "x.y", visit, &v), 2);
	assert_ptr_equal(v.seen[0], &a);
	assert_ptr_equal(v.seen[1], &b);
	v.n = 0;
	ASSERT_EQ(evfn__router_match(r, "q", visit, &v), 1);
	assert_ptr_equal(v.seen[0], &b);
	v.n = 0;
	ASSERT_EQ(evfn__router_match(r, "z", visit, &v), 2);
	evfn__router_free(r);
	evfn__router_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_route_star_matches_exactly_one_word),
		TEST(test_route_hash_matches_zero_or_more_words),
		TEST(test_route_literal_words_match_exactly),
		TEST(test_route_malformed_patterns_are_epattern),
		TEST(test_route_router_visits_each_target_once),
	};
	return evfn_test_main("route", tests);
}
