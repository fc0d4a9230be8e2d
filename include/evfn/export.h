/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Export and deprecation markers for the public API. Every public
 * declaration carries EVFN_EXPORT; the library is built with hidden
 * visibility, so anything not marked here is private. Anything not declared
 * under include/evfn/ is private.
 */
#ifndef EVFN_EXPORT_H
#define EVFN_EXPORT_H

/** Marks a public declaration: exported from the shared library when evfn
 * itself is built (BUILDING_EVFN), empty for its users. @since 0.1 */
#if defined(BUILDING_EVFN) && defined(__GNUC__)
#define EVFN_EXPORT __attribute__((visibility("default")))
#else
#define EVFN_EXPORT
#endif

/** Marks a declaration that will be removed: using it warns (GCC and
 * Clang). The deprecated calls are declared in evfn/deprecated.h.
 * @since 0.1 */
#if defined(__GNUC__)
#define EVFN_DEPRECATED __attribute__((deprecated))

#else
#define EVFN_DEPRECATED
#endif

#endif /* EVFN_EXPORT_H */
