/* SPDX-License-Identifier: MIT */
/*
 * Validation of the names evfn takes from callers (function names, topics,
 * sources): one rule, one error for each way it can be broken. Function
 * names also go out as text others parse (Prometheus label values, JSON),
 * so they must be UTF-8.
 */
#include <string.h>

#include <evfn/types.h>

#include "common-internal.h"
#include "text-internal.h"

int
evfn__name_len(const char *name)
{
	if (!name)
		return EVFN_EINVAL;
	size_t n = strnlen(name, EVFN_NAME_MAX + 1);
	if (n == 0)
		return EVFN_EINVAL;
	return n > EVFN_NAME_MAX ? EVFN_ENAMETOOLONG : (int)n;
}

int
evfn__check_name(const char *name)
{
	int n = evfn__name_len(name);
	return n < 0 ? n : 0;
}

int
evfn__check_fn_name(const char *name)
{
	int rc = evfn__check_name(name);
	if (rc == 0 && !evfn__utf8_valid(name, strlen(name)))
		rc = EVFN_EILSEQ;
	return rc;
}
