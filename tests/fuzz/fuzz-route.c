/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for topic routing, checked against a reference: the
 * input is a pattern and a topic separated by the first newline. The
 * library's verdicts on both (well-formed or which error) must equal a
 * rule checker written from the documentation, and for well-formed pairs
 * its match must equal a plain memoised recursive matcher; a router given
 * the pattern, the topic as an exact subscription and `#` must visit
 * exactly the targets the reference says, and nothing for a malformed
 * topic. Any difference aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <evfn/errors.h>
#include <evfn/types.h>

#include "route-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REF_WORDS 256

struct ref_word {
	const char *s;
	size_t len;
};

/* The documented rule: 1..EVFN_NAME_MAX bytes, dot-separated non-empty
 * words; `*` and `#` only as whole words of a pattern, never in a
 * topic. */
static int
ref_check(const char *s, bool pattern)
{
	size_t n = strlen(s);
	if (n == 0)
		return EVFN_EINVAL;
	if (n > EVFN_NAME_MAX)
		return EVFN_ENAMETOOLONG;
	if (s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
		return EVFN_EPATTERN;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '*' && s[i] != '#')
			continue;
		bool alone = (i == 0 || s[i - 1] == '.') &&
		             (i + 1 == n || s[i + 1] == '.');
		if (!pattern || !alone)
			return EVFN_EPATTERN;
	}
	return 0;
}

static size_t
ref_split(const char *s, struct ref_word *w)
{
	size_t n = 0;
	const char *p = s;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		w[n++] = (struct ref_word){p, len};
		if (!dot)
			return n;
		p = dot + 1;
	}
}

/* memo[i][j]: 0 unknown, 1 no, 2 yes, for pattern words from i against
 * topic words from j. */
static unsigned char memo[REF_WORDS + 1][REF_WORDS + 1];

static bool
ref_match(const struct ref_word *p, size_t np, size_t i,
          const struct ref_word *t, size_t nt, size_t j)
{
	if (memo[i][j])
		return memo[i][j] == 2;
	bool m;
	if (i == np) {
		m = j == nt;
	} else if (p[i].len == 1 && p[i].s[0] == '#') {
		/* None of the words, or one more. */
		m = ref_match(p, np, i + 1, t, nt, j) ||
		    (j < nt && ref_match(p, np, i, t, nt, j + 1));
	} else if (j == nt) {
		m = false;
	} else if (p[i].len == 1 && p[i].s[0] == '*') {
		m = ref_match(p, np, i + 1, t, nt, j + 1);
	} else {
		m = p[i].len == t[j].len &&
		    memcmp(p[i].s, t[j].s, p[i].len) == 0 &&
		    ref_match(p, np, i + 1, t, nt, j + 1);
	}
	memo[i][j] = m ? 2 : 1;
	return m;
}

struct seen {
	int pattern, exact, all, other;
};

static int target_pattern, target_exact, target_all;

static int
visit(void *target, void *arg)
{
	struct seen *s = arg;
	if (target == &target_pattern)
		s->pattern++;
	else if (target == &target_exact)
		s->exact++;
	else if (target == &target_all)
		s->all++;
	else
		s->other++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * EVFN_NAME_MAX + 64)
		return 0;
	char *buf = malloc(size + 2);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	buf[size + 1] = '\0';
	char *nl = memchr(buf, '\n', size);
	char *pattern = buf, *topic = nl ? nl + 1 : buf + size + 1;
	if (nl)
		*nl = '\0';

	int prc = evfn__pattern_check(pattern);
	int trc = evfn__topic_check(topic);
	if (prc != ref_check(pattern, true) || trc != ref_check(topic, false))
		abort();
	bool match = evfn__pattern_match(pattern, topic);
	bool want = false;
	if (prc == 0 && trc == 0) {
		static struct ref_word pw[REF_WORDS], tw[REF_WORDS];
		size_t np = ref_split(pattern, pw), nt = ref_split(topic, tw);
		memset(memo, 0, sizeof(memo));
		want = ref_match(pw, np, 0, tw, nt, 0);
	}
	if (match != want)
		abort();

	evfn__router *r = evfn__router_new();
	if (!r)
		abort();
	if (evfn__router_add(r, pattern, &target_pattern) != prc ||
	    evfn__router_add(r, "#", &target_all) != 0)
		abort();
	if (trc == 0 && evfn__router_add(r, topic, &target_exact) != 0)
		abort();
	struct seen s = {0};
	int n = evfn__router_match(r, topic, visit, &s);
	if (trc < 0) {
		if (n != trc || s.pattern || s.exact || s.all || s.other)
			abort();
	} else {
		/* Each target once: the pattern's may be the exact one's. */
		struct seen expect = {.pattern = want, .exact = 1, .all = 1};
		if (memcmp(&s, &expect, sizeof(s)) != 0 ||
		    n != want + 2)
			abort();
	}
	evfn__router_free(r);
	free(buf);
	return 0;
}
