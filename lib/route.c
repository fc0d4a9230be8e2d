/* SPDX-License-Identifier: MIT */
/*
 * Topic routing. Exact subscriptions live in a hash from topic to a list of
 * targets, so the common case costs one lookup; wildcard subscriptions live
 * in a list and are matched word by word. A target reached through several
 * subscriptions is visited once per topic.
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

/* Topics are at most EVFN_NAME_MAX bytes, so at most this many words. */
#define MAX_WORDS (EVFN_NAME_MAX / 2 + 1)

struct word {
	const char *s;
	size_t len;
};

static size_t
split_words(const char *s, struct word *words)
{
	size_t n = 0;
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);
		words[n].s = s;
		words[n].len = len;
		n++;
		if (!dot)
			return n;
		s = dot + 1;
	}
}

static bool
is_word(const struct word *w, const char *lit)
{
	return w->len == strlen(lit) && memcmp(w->s, lit, w->len) == 0;
}

int
evfn__pattern_check(const char *pattern)
{
	int rc = evfn__check_name(pattern);
	if (rc < 0)
		return rc;
	struct word words[MAX_WORDS + 1];
	size_t n = split_words(pattern, words);
	for (size_t i = 0; i < n; i++) {
		if (words[i].len == 0)
			return EVFN_EPATTERN;
		if (words[i].len > 1 &&
		    (memchr(words[i].s, '*', words[i].len) ||
		     memchr(words[i].s, '#', words[i].len)))
			return EVFN_EPATTERN;
	}
	return 0;
}

static bool
has_wildcard(const char *pattern)
{
	return strpbrk(pattern, "*#") != NULL;
}

/* Matches pattern words p[0..np) against topic words t[0..nt). `#` tries
 * every split, so the cost is bounded by np * nt per `#`; topics and
 * patterns are short. */
static bool
match_words(const struct word *p, size_t np, const struct word *t, size_t nt)
{
	while (np > 0) {
		if (is_word(p, "#")) {
			for (size_t k = 0; k <= nt; k++)
				if (match_words(p + 1, np - 1, t + k, nt - k))
					return true;
			return false;
		}
		if (nt == 0)
			return false;
		if (!is_word(p, "*") &&
		    (p->len != t->len || memcmp(p->s, t->s, p->len) != 0))
			return false;
		p++, np--, t++, nt--;
	}
	return nt == 0;
}

bool
evfn__pattern_match(const char *pattern, const char *topic)
{
	struct word pw[MAX_WORDS + 1], tw[MAX_WORDS + 1];
	size_t np = split_words(pattern, pw);
	size_t nt = split_words(topic, tw);
	return match_words(pw, np, tw, nt);
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
		struct word tw[MAX_WORDS + 1];
		size_t nt = split_words(topic, tw);
		for (struct pattern_sub *p = r->patterns; p; p = p->next) {
			struct word pw[MAX_WORDS + 1];
			size_t np = split_words(p->pattern, pw);
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
