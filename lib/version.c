/* SPDX-License-Identifier: MIT */
/*
 * The run-time version, taken from the same generated header that gives
 * the compile-time one, so the two can only differ across a header/library
 * mismatch.
 */
#include <evfn/version.h>

int
evfn_version(void)
{
	return EVFN_VERSION_NUMBER;
}

const char *
evfn_version_string(void)
{
	return EVFN_VERSION_STRING;
}
