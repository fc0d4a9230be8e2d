/* SPDX-License-Identifier: MIT */
/*
 * Small text helpers shared by the parsers and writers of untrusted or
 * user-facing text: hexadecimal digits and RFC 3339 timestamps.
 */
#ifndef EVFN_TEXT_INTERNAL_H
#define EVFN_TEXT_INTERNAL_H

#include <stdint.h>

/* The value of a hexadecimal digit (either case), or -1. */
int evfn__hex_value(char c);

/* Parses an RFC 3339 date-time ("2024-05-01T12:00:00.5+02:00", 'T' or
 * 't' or ' ' between date and time) into nanoseconds since the Unix
 * epoch. Returns 0, or EVFN_EINVAL for a malformed time or one outside
 * the int64 nanosecond range (1677-2262). */
int evfn__rfc3339_parse(const char *s, int64_t *ns);

/* Longest text evfn__rfc3339_format() writes, NUL included. */
#define EVFN__RFC3339_MAX 48

/* Writes unix_ns as RFC 3339 in UTC with nanoseconds
 * ("2024-05-01T10:00:00.000000001Z"). */
void evfn__rfc3339_format(int64_t unix_ns, char buf[EVFN__RFC3339_MAX]);

#endif /* EVFN_TEXT_INTERNAL_H */
