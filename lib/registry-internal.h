/* SPDX-License-Identifier: MIT */
/*
 * The registry (registry.c): functions by name and their subscriptions.
 * Functions live until the runtime is freed.
 */
#ifndef EVFN_REGISTRY_INTERNAL_H
#define EVFN_REGISTRY_INTERNAL_H

struct evfn_fn;
struct evfn_rt;

/* The function registered under name, or NULL. rt->lock held. */
struct evfn_fn *evfn__fn_find_locked(struct evfn_rt *rt, const char *name);
/* The function registered under name if it is the one last found or in
 * the directory of functions found before (a slot per name's hash, the
 * last one found there), else NULL: a hint for the fast path, which
 * takes the lock when it gets none. Any thread, no lock. */
struct evfn_fn *evfn__fn_find_fast(struct evfn_rt *rt, const char *name);
/* The one function subscribed to topic, if a locked publish remembered
 * it (evfn__route_one_remember_locked()) since the subscriptions last
 * changed, else NULL: a hint for the fast path, which takes the lock
 * when it gets none. Any thread, no lock. */
struct evfn_fn *evfn__route_one_fast(struct evfn_rt *rt, const char *topic);
/* Remembers that topic routes to fn alone (the router found it so under
 * the lock), for evfn__route_one_fast(). Out of memory, or past a bound
 * on what it keeps, it remembers nothing. rt->lock held. */
void evfn__route_one_remember_locked(struct evfn_rt *rt, const char *topic,
                                     struct evfn_fn *fn);
/* Frees every function (its userdata through its destructor), at free. */
void evfn__registry_free(struct evfn_rt *rt);

#endif /* EVFN_REGISTRY_INTERNAL_H */
