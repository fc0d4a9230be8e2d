/* SPDX-License-Identifier: MIT */
/*
 * Small text helpers shared by the parsers and writers of untrusted or
 * user-facing text: hexadecimal digits, UTF-8 and RFC 3339 timestamps.
 */
#ifndef EVFN_TEXT_INTERNAL_H
#define EVFN_TEXT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The value of a hexadecimal digit (either case), or -1. */
int evfn__hex_value(char c);

/* The length (1-4) of the well-formed UTF-8 character (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF) that the n > 0
 * bytes at s start with, or 0 when they start with none. */
size_t evfn__utf8_char_len(const unsigned char *s, size_t n);

/* Whether the n bytes at s are well-formed UTF-8 throughout. */
bool evfn__utf8_valid(const char *s, size_t n);

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
