/* SPDX-License-Identifier: MIT */
/*
 * Topic patterns: what `*` and `#` match, what is malformed, that emitted
 * topics follow the same rule as subscribed patterns, that hostile
 * patterns and topics (all dots, long runs of `#`) are refused or matched
 * in bounded time, and that the router visits each subscribed target once
 * per topic.
 */
#include <string.h>

#include "harness.h"
#include "route-internal.h"

static int
noop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

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

/* 255 dots are 256 empty words: refused before any word is stored, as
 * a pattern, as a topic, and as a topic emitted while a wildcard
 * subscription makes the router split it. */
static void
test_route_dots_only_are_refused_before_splitting(void **state)
{
	char dots[EVFN_NAME_MAX + 1];
	memset(dots, '.', EVFN_NAME_MAX);
	dots[EVFN_NAME_MAX] = '\0';
	ASSERT_RC(evfn__pattern_check(dots), EVFN_EPATTERN);
	ASSERT_RC(evfn__topic_check(dots), EVFN_EPATTERN);
	assert_false(evfn__pattern_match(dots, dots));
	assert_false(evfn__pattern_match("#", dots));
	evfn__router *r = evfn__router_new();
	int a;
	ASSERT_RC(evfn__router_add(r, dots, &a), EVFN_EPATTERN);
	ASSERT_OK(evfn__router_add(r, "#", &a));
	ASSERT_RC(evfn__router_match(r, dots, NULL, NULL), EVFN_EPATTERN);
	evfn__router_free(r);

	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "f", noop, NULL, NULL, NULL));
	ASSERT_RC(evfn_subscribe(rt, dots, "f"), EVFN_EPATTERN);
	ASSERT_OK(evfn_subscribe(rt, "#", "f"));
	ASSERT_RC(evfn_emit(rt, dots, NULL, 0, NULL), EVFN_EPATTERN);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 0);
	ASSERT_OK(evfn_rt_free(rt));
}

/* The most words a topic can have (128 one-letter words) split and match,
 * as pattern and as topic. */
static void
test_route_most_words_match(void **state)
{
	char most[EVFN_NAME_MAX + 1];
	for (int i = 0; i < EVFN_NAME_MAX; i++)
		most[i] = i % 2 ? '.' : 'a';
	most[EVFN_NAME_MAX] = '\0';
	ASSERT_OK(evfn__pattern_check(most));
	ASSERT_OK(evfn__topic_check(most));
	assert_true(evfn__pattern_match(most, most));
	assert_true(evfn__pattern_match("#", most));
	assert_true(evfn__pattern_match("a.#.a", most));
	char topic[EVFN_NAME_MAX + 1];
	memcpy(topic, most, sizeof(topic));
	topic[EVFN_NAME_MAX - 1] = 'z';
	assert_false(evfn__pattern_match(most, topic));
	most[EVFN_NAME_MAX - 1] = '*';
	assert_true(evfn__pattern_match(most, topic));
}

/* K `#` words then `z`, against 100 words without `z`: a backtracking
 * matcher tries every way to share the words among the `#`s (exponential
 * in K); this one takes at most (K + 2) steps a word. Run under a hang
 * guard, directly and through a runtime's router (which holds the
 * runtime lock while it matches). */
static void
test_route_runs_of_hash_match_in_bounded_time(void **state)
{
	char topic[EVFN_NAME_MAX + 1] = "";
	for (int i = 0; i < 100; i++)
		strcat(topic, i ? ".a" : "a");
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "f", noop, NULL, NULL, NULL));
	test_hang_guard(30);
	char pattern[EVFN_NAME_MAX + 1];
	for (int k = 1; k <= 120; k++) {
		pattern[0] = '\0';
		for (int i = 0; i < k; i++)
			strcat(pattern, "#.");
		strcat(pattern, "z");
		ASSERT_OK(evfn__pattern_check(pattern));
		assert_false(evfn__pattern_match(pattern, topic));
		pattern[strlen(pattern) - 1] = 'a';
		assert_true(evfn__pattern_match(pattern, topic));
		pattern[strlen(pattern) - 1] = 'z';
		ASSERT_OK(evfn_subscribe(rt, pattern, "f"));
	}
	/* Every one of the 120 patterns is matched against the topic. */
	ASSERT_RC(evfn_emit(rt, topic, NULL, 0, NULL), EVFN_ENOSUB);
	test_hang_guard_off();
	ASSERT_OK(evfn_rt_free(rt));
}

/* Whether s is a well-formed pattern, by the documented rule, written
 * without the library's splitter. */
static bool
rule_allows(const char *s, bool pattern)
{
	size_t n = strlen(s);
	if (n == 0 || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '*' && s[i] != '#')
			continue;
		if (!pattern)
			return false;
		bool alone = (i == 0 || s[i - 1] == '.') &&
		             (i + 1 == n || s[i + 1] == '.');
		if (!alone)
			return false;
	}
	return true;
}

/* Every string of up to 5 characters over {a, ., *, #}: evfn_subscribe()
 * takes it as a pattern exactly when the rule allows it, and evfn_emit()
 * takes it as a topic exactly when it is such a pattern without a
 * wildcard; the internal checks agree. Nothing malformed is accepted by
 * one and refused by the other. */
static void
test_route_emit_and_subscribe_share_one_rule(void **state)
{
	evfn_rt *subs, *emits;
	ASSERT_OK(evfn_rt_new(&subs, NULL));
	ASSERT_OK(evfn_rt_new(&emits, NULL));
	ASSERT_OK(evfn_register(subs, "f", noop, NULL, NULL, NULL));
	ASSERT_OK(evfn_register(emits, "f", noop, NULL, NULL, NULL));
	ASSERT_OK(evfn_subscribe(emits, "#", "f"));
	static const char alphabet[] = "a.*#";
	char s[6];
	uint64_t topics = 0;
	for (int len = 1; len <= 5; len++) {
		int combos = 1;
		for (int i = 0; i < len; i++)
			combos *= 4;
		for (int c = 0; c < combos; c++) {
			for (int i = 0, x = c; i < len; i++, x /= 4)
				s[i] = alphabet[x % 4];
			s[len] = '\0';
			int want_pattern = rule_allows(s, true) ? 0
			                                        : EVFN_EPATTERN;
			int want_topic = rule_allows(s, false) ? 0
			                                       : EVFN_EPATTERN;
			ASSERT_RC(evfn__pattern_check(s), want_pattern);
			ASSERT_RC(evfn__topic_check(s), want_topic);
			ASSERT_RC(evfn_subscribe(subs, s, "f"), want_pattern);
			int rc = evfn_emit(emits, s, NULL, 0, NULL);
			if (rc != want_topic)
				fail_msg("evfn_emit(\"%s\") returned %s, "
				         "expected %s",
				         s, evfn_err_name(rc),
				         evfn_err_name(want_topic));
			topics += rc == 0;
		}
	}
	ASSERT_EQ(stat_of(emits, "f", EVFN_STAT_ACCEPTED), topics);
	/* The cases the issue named, through the public calls. */
	const char *bad[] = {"a..b", ".", "a.", ".a", "a*", "x#y"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_RC(evfn_emit(emits, bad[i], "x", 1, NULL),
		          EVFN_EPATTERN);
		ASSERT_RC(evfn_subscribe(subs, bad[i], "f"), EVFN_EPATTERN);
	}
	ASSERT_RC(evfn_emit(emits, "a.*", "x", 1, NULL), EVFN_EPATTERN);
	ASSERT_RC(evfn_emit(emits, "#", "x", 1, NULL), EVFN_EPATTERN);
	/* A trigger's type is its topic unless it names a function. */
	evfn_trigger *t = (evfn_trigger *)&t;
	ASSERT_RC(evfn_timer_add(emits, "rate(1 hour)", NULL, "a..b", NULL, &t),
	          EVFN_EPATTERN);
	assert_null(t);
	evfn_trigger_options *o;
	ASSERT_OK(evfn_trigger_options_new(&o));
	ASSERT_OK(evfn_trigger_options_set_function(o, "f"));
	ASSERT_OK(evfn_timer_add(emits, "rate(1 hour)", NULL, "a..b", o, &t));
	evfn_trigger_options_free(o);
	evfn_trigger_free(t);
	ASSERT_OK(evfn_rt_free(subs));
	ASSERT_OK(evfn_rt_free(emits));
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
		TEST(test_route_dots_only_are_refused_before_splitting),
		TEST(test_route_most_words_match),
		TEST(test_route_runs_of_hash_match_in_bounded_time),
		TEST(test_route_emit_and_subscribe_share_one_rule),
	};
	return evfn_test_main("route", tests);
}
