/* SPDX-License-Identifier: MIT */
/*
 * Strings kept for the life of the library (intern.c).
 */
#ifndef EVFN_INTERN_INTERNAL_H
#define EVFN_INTERN_INTERNAL_H

/* A copy of s (not NULL) that stays valid until the library is unloaded,
 * the same pointer for equal strings; NULL when out of memory. Any
 * thread. */
const char *evfn__intern(const char *s);

#endif /* EVFN_INTERN_INTERNAL_H */
