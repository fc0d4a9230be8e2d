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
/* Frees every function (its userdata through its destructor), at free. */
void evfn__registry_free(struct evfn_rt *rt);

#endif /* EVFN_REGISTRY_INTERNAL_H */
