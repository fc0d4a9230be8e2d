/* SPDX-License-Identifier: MIT */
/*
 * Error names and messages, generated from EVFN_ERRNO_MAP so that adding a
 * code is a one-line change in include/evfn/errors.h.
 */
#include <evfn/errors.h>

#include "common-internal.h"

const char *
evfn_strerror(int err)
{
	if (err >= 0)
		return "success";
	switch (err) {
#define EVFN__ERRNO_MSG(name, value, msg)                                    \
	case EVFN_##name:                                                    \
		return msg;
		EVFN_ERRNO_MAP(EVFN__ERRNO_MSG)
#undef EVFN__ERRNO_MSG
	default:
		return "unknown error";
	}
}

const char *
evfn_err_name(int err)
{
	if (err >= 0)
		return "EVFN_OK";
	switch (err) {
#define EVFN__ERRNO_NAME(name, value, msg)                                   \
	case EVFN_##name:                                                    \
		return "EVFN_" #name;
		EVFN_ERRNO_MAP(EVFN__ERRNO_NAME)
#undef EVFN__ERRNO_NAME
	default:
		return "EVFN_UNKNOWN";
	}
}
