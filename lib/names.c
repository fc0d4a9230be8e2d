/* SPDX-License-Identifier: MIT */
/*
 * Validation of the names evfn takes from callers (function names, topics,
 * sources): one rule, one error for each way it can be broken.
 */
#include <string.h>

#include <evfn/types.h>

#include "common-internal.h"

int
evfn__check_name(const char *name)
{
	if (!name || !*name)
		return EVFN_EINVAL;
	if (strnlen(name, EVFN_NAME_MAX + 1) > EVFN_NAME_MAX)
		return EVFN_ENAMETOOLONG;
	return 0;
}
