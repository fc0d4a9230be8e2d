/* SPDX-License-Identifier: MIT */
/*
 * Topic routing. Exact subscriptions live in a hash from topic to a list of
 * targets, so the common case costs one lookup; wildcard subscriptions live
 * in a list and are matched word by word, without recursion, in at most
 * (pattern words + 1) x (topic words + 1) steps for any pattern. A target reached through several subscriptions is
 * visited once per topic. Topics and patterns follow one rule, checked
 * here for both.
 */
#include <stdbool.h>
#include <string.h>

#include <evfn/types.h>

#include "common-internal.h"
#include "hash-internal.h"
#include "route-internal.h"

struct target_list {
	void **items;
	size_t n, cap;
};

struct exact_sub {
	UT_hash_handle hh;
	struct target_list targets;
	char topic[];
};

struct word {
	const char *s;
	size_t len;
};

/* A wildcard subscription, split into its words once, when it is added:
 * words point into pattern, which follows them in the same block. */
struct pattern_sub {
	struct pattern_sub *next;
	void *target;
	const char *pattern;
	int nwords;
	struct word words[];
};

struct evfn__router {
	struct exact_sub *exact;
	struct pattern_sub *patterns;
};

/* Topics and patterns are at most EVFN_NAME_MAX bytes of non-empty words
 * separated by dots (a word and its dot take two bytes at least), so at
 * most this many words. */
#define MAX_WORDS ((EVFN_NAME_MAX + 1) / 2)

/* The one rule for emitted topics and subscribed patterns, and the split
 * into words that matching needs: s is 1..EVFN_NAME_MAX bytes of words
 * separated by dots, no word empty; in a pattern `*` and `#` appear only
 * as whole words, in a topic not at all. Each word is checked before it is
 * written to words (MAX_WORDS entries; NULL to check only). Returns the
 * number of words, or EVFN_EINVAL (NULL or empty), EVFN_ENAMETOOLONG or
 * EVFN_EPATTERN. */
static int
split_checked(const char *s, bool pattern, struct word *words)
{
	int rc = evfn__check_name(s);
	if (rc < 0)
		return rc;
	int n = 0;
	for (const char *p = s;;) {
		/* Up to the word's end, or to a wildcard in it. */
		size_t len = strcspn(p, ".*#");
		if (p[len] == '*' || p[len] == '#') {
			/* Only a whole word, and only in a pattern. */
			if (!pattern || len > 0 || (p[1] != '.' && p[1] != '\0'))
				return EVFN_EPATTERN;
			len = 1;
		}
		if (len == 0)
			return EVFN_EPATTERN;
		/* Unreachable within EVFN_NAME_MAX bytes, and kept where the
		 * array is written. */
		if (n == MAX_WORDS)
			return EVFN_ENAMETOOLONG;
		if (words)
			words[n] = (struct word){p, len};
		n++;
		if (!p[len])
			return n;
		p += len + 1;
	}
}

int
evfn__pattern_check(const char *pattern)
{
	int n = split_checked(pattern, true, NULL);
	return n < 0 ? n : 0;
}

int
evfn__topic_check(const char *topic)
{
	int n = split_checked(topic, false, NULL);
	return n < 0 ? n : 0;
}

static bool
has_wildcard(const char *pattern)
{
	return strpbrk(pattern, "*#") != NULL;
}

static bool
is_wild(const struct word *w, char c)
{
	return w->len == 1 && w->s[0] == c;
}

/* Whether pattern word p matches topic word t: `*` any, a literal the
 * same word. */
static bool
word_matches(const struct word *p, const struct word *t)
{
	return is_wild(p, '*') ||
	       (p->len == t->len && memcmp(p->s, t->s, t->len) == 0);
}

/* Whether pattern words p[0..np) match topic words t[0..nt). Words pair
 * one by one until a pair fails; then the last `#` passed takes one more
 * topic word and the pairing resumes after it. Going back to the last
 * `#` alone suffices (an earlier one could only take words the later one
 * can take too), so there is no recursion: for each word the last `#`
 * takes, the pairing runs over at most np words, (np + 1) * (nt + 1)
 * steps in all, whatever the pattern. */
static bool
match_words(const struct word *p, int np, const struct word *t, int nt)
{
	int i = 0, j = 0;
	int hash = -1, taken_to = 0; /* the last `#`, and its words' end */
	while (j < nt) {
		if (i < np && is_wild(&p[i], '#')) {
			hash = i++;
			taken_to = j; /* no word yet */
		} else if (i < np && word_matches(&p[i], &t[j])) {
			i++;
			j++;
		} else if (hash >= 0) {
			i = hash + 1;
			j = ++taken_to;
		} else {
			return false;
		}
	}
	while (i < np && is_wild(&p[i], '#'))
		i++;
	return i == np;
}

bool
evfn__pattern_match(const char *pattern, const char *topic)
{
	struct word pw[MAX_WORDS], tw[MAX_WORDS];
	int np = split_checked(pattern, true, pw);
	int nt = split_checked(topic, false, tw);
	return np > 0 && nt > 0 && match_words(pw, np, tw, nt);
}

evfn__router *
evfn__router_new(void)
{
	return evfn__calloc(1, sizeof(evfn__router));
}

void
evfn__router_free(evfn__router *r)
{
	if (!r)
		return;
	struct exact_sub *e, *tmp;
	HASH_ITER(hh, r->exact, e, tmp)
	{
		HASH_DEL(r->exact, e);
		evfn__free(e->targets.items);
		evfn__free(e);
	}
	struct pattern_sub *p = r->patterns;
	while (p) {
		struct pattern_sub *next = p->next;
		evfn__free(p);
		p = next;
	}
	evfn__free(r);
}

static int
list_add_unique(struct target_list *l, void *target)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i] == target)
			return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		void **items = evfn__realloc(l->items, cap * sizeof(void *));
		if (!items)
			return EVFN_ENOMEM;
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = target;
	return 0;
}

static int
add_exact(evfn__router *r, const char *topic, void *target)
{
	struct exact_sub *e;
	HASH_FIND_STR(r->exact, topic, e);
	if (!e) {
		size_t len = strlen(topic);
		e = evfn__calloc(1, sizeof(*e) + len + 1);
		if (!e)
			return EVFN_ENOMEM;
		memcpy(e->topic, topic, len + 1);
		bool evfn__hash_oom = false;
		HASH_ADD(hh, r->exact, topic[0], len, e);
		if (evfn__hash_oom) {
			evfn__free(e);
			return EVFN_ENOMEM;
		}
	}
	return list_add_unique(&e->targets, target);
}

static int
add_pattern(evfn__router *r, const char *pattern, void *target)
{
	struct pattern_sub **tail = &r->patterns;
	for (; *tail; tail = &(*tail)->next)
		if ((*tail)->target == target &&
		    strcmp((*tail)->pattern, pattern) == 0)
			return 0;
	struct word words[MAX_WORDS];
	int n = split_checked(pattern, true, words);
	if (n < 0)
		return n;
	size_t len = strlen(pattern);
	size_t words_size = (size_t)n * sizeof(struct word);
	struct pattern_sub *p =
		evfn__calloc(1, sizeof(*p) + words_size + len + 1);
	if (!p)
		return EVFN_ENOMEM;
	char *copy = (char *)p->words + words_size;
	memcpy(copy, pattern, len + 1);
	for (int i = 0; i < n; i++)
		p->words[i] = (struct word){copy + (words[i].s - pattern),
		                            words[i].len};
	p->target = target;
	p->pattern = copy;
	p->nwords = n;
	*tail = p; /* appended, so targets are visited in subscription order */
	return 0;
}

int
evfn__router_add(evfn__router *r, const char *pattern, void *target)
{
	int rc = evfn__pattern_check(pattern);
	if (rc < 0)
		return rc;
	return has_wildcard(pattern) ? add_pattern(r, pattern, target)
	                             : add_exact(r, pattern, target);
}

int
evfn__router_match(const evfn__router *r, const char *topic,
                   evfn__route_visit visit, void *arg)
{
	struct exact_sub *e;
	HASH_FIND_STR(r->exact, topic, e);
	/* An exact subscription's topic passed the pattern rule without
	 * wildcards, which is the topic rule: a topic found there needs no
	 * check (the common case costs one lookup), others do, and patterns
	 * need its words. */
	struct word tw[MAX_WORDS];
	int nt = 0;
	if (!e || r->patterns) {
		nt = split_checked(topic, false, r->patterns ? tw : NULL);
		if (nt < 0)
			return nt;
	}
	struct target_list seen = {0};
	int count = 0, rc = 0;
	if (e) {
		for (size_t i = 0; i < e->targets.n; i++) {
			rc = visit(e->targets.items[i], arg);
			if (rc < 0)
				goto out;
			count++;
		}
	}
	if (r->patterns) {
		for (struct pattern_sub *p = r->patterns; p; p = p->next) {
			if (!match_words(p->words, p->nwords, tw, nt))
				continue;
			/* Skip targets already reached by an exact topic or an
			 * earlier pattern: each event reaches a target once. */
			bool dup = false;
			if (e)
				for (size_t i = 0; i < e->targets.n && !dup; i++)
					dup = e->targets.items[i] == p->target;
			for (size_t i = 0; i < seen.n && !dup; i++)
				dup = seen.items[i] == p->target;
			if (dup)
				continue;
			if ((rc = list_add_unique(&seen, p->target)) < 0)
				goto out;
			rc = visit(p->target, arg);
			if (rc < 0)
				goto out;
			count++;
		}
	}
	rc = count;
out:
	evfn__free(seen.items);
	return rc;
}
