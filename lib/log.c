/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics to the host's log callback: one line a call, formatted on
 * the caller's stack. Nothing is kept and nothing allocated.
 */
#include <stdio.h>

#include "callout-internal.h"
#include "log-internal.h"

void
evfn__logv(const struct evfn__logger *log, evfn_log_level level,
           const char *fmt, va_list ap)
{
	if (!log->cb)
		return;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	evfn__call_log(log->cb, level, msg, log->arg);
}

void
evfn__logf(const struct evfn__logger *log, evfn_log_level level,
           const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evfn__logv(log, level, fmt, ap);
	va_end(ap);
}
