/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics: where the runtime's log lines go (the host's log
 * callback, or nowhere). The one place that formats a line and calls
 * the callback, log.c.
 */
#ifndef EVFN_LOG_INTERNAL_H
#define EVFN_LOG_INTERNAL_H

#include <stdarg.h>

#include <evfn/runtime.h>

struct evfn__logger {
	evfn_log_cb cb; /* NULL: lines go nowhere */
	void *arg;
};

/* Formats a line (cut at 511 bytes) and passes it to the callback, if
 * any. May be called with the runtime lock held: the lines that report
 * what went wrong inside a transition (out of memory, a worker that
 * could not start) are logged there, since putting them off would need
 * memory that may be missing. The callback is documented to run "while
 * evfn holds internal locks" and must not call evfn. */
void evfn__logf(const struct evfn__logger *log, evfn_log_level level,
                const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void evfn__logv(const struct evfn__logger *log, evfn_log_level level,
                const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#endif /* EVFN_LOG_INTERNAL_H */
