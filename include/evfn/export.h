/* SPDX-License-Identifier: MIT */
/*
 * Export and deprecation markers for the public API. Every public
 * declaration carries EVFN_EXPORT; the library is built with hidden
 * visibility, so anything not marked here is private. Anything not declared
 * under include/evfn/ is private.
 */
#ifndef EVFN_EXPORT_H
#define EVFN_EXPORT_H

#if defined(BUILDING_EVFN) && defined(__GNUC__)
#define EVFN_EXPORT __attribute__((visibility("default")))
#else
#define EVFN_EXPORT
#endif

#if defined(__GNUC__)
#define EVFN_DEPRECATED __attribute__((deprecated))
#else
#define EVFN_DEPRECATED
#endif

#endif /* EVFN_EXPORT_H */
