/* SPDX-License-Identifier: MIT */
/*
 * Topic routing. Exact subscriptions live in a hash from topic to a list of
 * targets, so the common case costs one lookup; wildcard subscriptions live
 * in a list and are matched word by word, in time linear in the topic's
 * words for any pattern. A target reached through several subscriptions is
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

struct pattern_sub {
	struct pattern_sub *next;
	void *target;
	char pattern[];
};

struct evfn__router {
	struct exact_sub *exact;
	struct pattern_sub *patterns;
};

/* Topics and patterns are at most EVFN_NAME_MAX bytes of non-empty words
 * separated by dots (a word and its dot take two bytes at least), so at
 * most this many words. */
#define MAX_WORDS ((EVFN_NAME_MAX + 1) / 2)

struct word {
	const char *s;
	size_t len;
};

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
	const char *start = s;
	bool wild = false;
	for (const char *p = s;; p++) {
		if (*p == '*' || *p == '#') {
			wild = true;
			continue;
		}
		if (*p != '.' && *p != '\0')
			continue;
		size_t len = (size_t)(p - start);
		if (len == 0 || (wild && (!pattern || len > 1)))
			return EVFN_EPATTERN;
		/* Unreachable within EVFN_NAME_MAX bytes, and kept where the
		 * array is written. */
		if (n == MAX_WORDS)
			return EVFN_ENAMETOOLONG;
		if (words)
			words[n] = (struct word){start, len};
		n++;
		if (!*p)
			return n;
		start = p + 1;
		wild = false;
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

/* Adds to the set of reached pattern positions those that follow a
 * reached `#` (it matches zero words too); in increasing order, so that
 * runs of `#` are followed through. */
static void
reach_past_hashes(const struct word *p, int np, bool *reached)
{
	for (int i = 0; i < np; i++)
		if (reached[i] && is_wild(&p[i], '#'))
			reached[i + 1] = true;
}

/* Whether pattern words p[0..np) match topic words t[0..nt). One pass
 * over the topic carries the set of pattern positions the words so far
 * can reach: a `#` keeps its position (one more word), `*` and an equal
 * literal move to the next one. No backtracking: at most (np + 1) steps
 * per topic word, whatever the pattern. */
static bool
match_words(const struct word *p, int np, const struct word *t, int nt)
{
	bool a[MAX_WORDS + 1], b[MAX_WORDS + 1];
	bool *reached = a, *next = b;
	memset(reached, 0, (size_t)np + 1);
	reached[0] = true;
	reach_past_hashes(p, np, reached);
	for (int j = 0; j < nt; j++) {
		memset(next, 0, (size_t)np + 1);
		bool any = false;
		for (int i = 0; i < np; i++) {
			if (!reached[i])
				continue;
			if (is_wild(&p[i], '#')) {
				next[i] = any = true;
			} else if (is_wild(&p[i], '*') ||
			           (p[i].len == t[j].len &&
			            memcmp(p[i].s, t[j].s, t[j].len) == 0)) {
				next[i + 1] = any = true;
			}
		}
		if (!any)
			return false;
		reach_past_hashes(p, np, next);
		bool *swap = reached;
		reached = next;
		next = swap;
	}
	return reached[np];
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
	size_t len = strlen(pattern);
	struct pattern_sub *p = evfn__calloc(1, sizeof(*p) + len + 1);
	if (!p)
		return EVFN_ENOMEM;
	p->target = target;
	memcpy(p->pattern, pattern, len + 1);
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
	struct word tw[MAX_WORDS];
	int nt = split_checked(topic, false, r->patterns ? tw : NULL);
	if (nt < 0)
		return nt;
	struct target_list seen = {0};
	int count = 0, rc = 0;
	struct exact_sub *e;
	HASH_FIND_STR(r->exact, topic, e);
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
			/* Checked when it was added: it splits. */
			struct word pw[MAX_WORDS];
			int np = split_checked(p->pattern, true, pw);
			if (!match_words(pw, np, tw, nt))
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
