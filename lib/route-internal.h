/* SPDX-License-Identifier: MIT */
/*
 * The router: which targets subscribe to which topic patterns. Exact
 * topics are found by hash; patterns with `*` (one word) or `#` (zero or
 * more words) are matched word by word. Targets are opaque pointers, so the
 * router knows nothing of functions. Not thread-safe: the runtime lock
 * guards it.
 */
#ifndef EVFN_ROUTE_INTERNAL_H
#define EVFN_ROUTE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct evfn__router evfn__router;

/* Called once per distinct target subscribed to a matching pattern.
 * Returns 0 to go on, or a negative code that stops the walk and is
 * returned by evfn__router_match(). */
typedef int (*evfn__route_visit)(void *target, void *arg);

/* A new, empty router, or NULL when out of memory. */
evfn__router *evfn__router_new(void);
/* Frees the router; NULL is a no-op. Targets are not touched. */
void evfn__router_free(evfn__router *r);

/* Checks pattern syntax: 0, EVFN_EINVAL (NULL or empty),
 * EVFN_ENAMETOOLONG (over EVFN_NAME_MAX bytes) or EVFN_EPATTERN (an empty
 * word, a wildcard inside a word). */
int evfn__pattern_check(const char *pattern);

/* Checks an emitted topic by the same rule, with no wildcard at all: 0,
 * EVFN_EINVAL, EVFN_ENAMETOOLONG or EVFN_EPATTERN (an empty word, a `*`
 * or `#` anywhere). */
int evfn__topic_check(const char *topic);

/* True when the topic matches the pattern; false when either is
 * malformed. */
bool evfn__pattern_match(const char *pattern, const char *topic);

/* Subscribes target to pattern; subscribing the same pair twice is a
 * no-op. Returns 0, the errors of evfn__pattern_check(), or EVFN_ENOMEM. */
int evfn__router_add(evfn__router *r, const char *pattern, void *target);

/* Visits every distinct target whose pattern matches topic. Returns the
 * number of targets visited, the errors of evfn__topic_check() for a
 * malformed topic (nothing visited), or the first negative value visit
 * returned. */
int evfn__router_match(const evfn__router *r, const char *topic,
                       evfn__route_visit visit, void *arg);

#endif /* EVFN_ROUTE_INTERNAL_H */
