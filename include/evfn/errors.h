/* SPDX-License-Identifier: MIT */
/**
 * @file
 * Error codes. Every fallible evfn call returns 0 (or a count) on success and
 * a negative EVFN_E* code on failure. Codes that have a POSIX counterpart
 * equal -errno; evfn's own codes live in the reserved range -4000 and below.
 * The list below is the only place a code is defined: the enum,
 * evfn_strerror(), evfn_err_name() and the binding constants are all
 * generated from it. Anything not declared under include/evfn/ is private.
 */
#ifndef EVFN_ERRORS_H
#define EVFN_ERRORS_H

#include <evfn/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Every error code, as XX(name, value, message): EVFN_<name> is the code,
 * value its number and message what evfn_strerror() returns for it. Apply
 * it to a macro of your own to generate tables (the Python and Lua
 * bindings do). Values are literal so that the header needs no <errno.h>;
 * tests check them against errno.h on the build platform. Where a code
 * covers several causes, the documentation of each call says which apply
 * to it.
 *
 * @param XX a macro taking (name, value, message).
 * @since 0.1
 */
#define EVFN_ERRNO_MAP(XX)                                                   \
	XX(EPERM, -1, "operation not permitted on this object now")          \
	XX(ENOENT, -2, "not found: no such file, directory, event id, dead letter, route, group or database") \
	XX(EACCES, -13, "permission denied")                                 \
	XX(ENOTDIR, -20, "not a directory")                                  \
	XX(ENOSPC, -28, "no space left for the journal (disk full or file size limit)") \
	XX(ENOMEM, -12, "out of memory")                                     \
	XX(EBUSY, -16, "still in use (a running runtime, its work or triggers, or a journal opened elsewhere)") \
	XX(EEXIST, -17, "already exists (a function, route or group by that name)") \
	XX(EINVAL, -22, "invalid argument or setting: NULL, empty, or a value the call (or server) does not take") \
	XX(ERANGE, -34, "number out of its documented range")                \
	XX(EDEADLK, -35, "call would wait on the thread that must finish it") \
	XX(ENAMETOOLONG, -36, "name, topic or path longer than its documented limit") \
	XX(EPROTO, -71, "protocol error: malformed message framing")         \
	XX(EILSEQ, -84, "text is not well-formed UTF-8")                     \
	XX(EADDRINUSE, -98, "address already in use")                        \
	XX(ESHUTDOWN, -108, "runtime is draining or drained: intake stopped") \
	XX(ETIMEDOUT, -110, "timed out")                                     \
	XX(ECONNREFUSED, -111, "connection refused")                         \
	XX(EALREADY, -114, "already done (started or drained twice)")        \
	XX(ECANCELED, -125, "canceled by request, or torn down first")      \
	XX(ENOFN, -4001, "no function registered under this name")          \
	XX(ENOSUB, -4002, "no function subscribes to this topic")           \
	XX(EQUEUEFULL, -4003, "queue is full; event refused")               \
	XX(EPATTERN, -4004, "malformed topic or topic pattern")            \
	XX(EFAILED, -4005, "handler failed permanently; event dead-lettered") \
	XX(EEXHAUSTED, -4006, "attempts exhausted; event dead-lettered")     \
	XX(EHANDEDBACK, -4007, "event handed back at shutdown")              \
	XX(ENOTRUNNING, -4008, "runtime has not been started (the bindings' calls that need it)")               \
	XX(EEXPIRED, -4009, "event older than its maximum age; expired")     \
	XX(ESCHEDULE, -4010, "malformed schedule expression")               \
	XX(ETIMEZONE, -4011, "unknown or unusable time zone")              \
	XX(EROUTE, -4012, "malformed route or path (expected \"METHOD /path\")") \
	XX(ESIGNATURE, -4013, "missing, invalid or stale signature")         \
	XX(ECLOUDEVENT, -4014, "malformed CloudEvent")                      \
	XX(EUNHEALTHY, -4015, "function unhealthy: too many handlers stuck past their deadline") \
	XX(EURL, -4016, "malformed URL, or its database refused by the server") \
	XX(EWRONGTYPE, -4017, "key holds the wrong kind of value")          \
	XX(EAUTH, -4018, "authentication failed")                           \
	XX(ELOOPDETECTED, -4019, "event chain exceeded the hop limit")     \
	XX(ECIRCUITOPEN, -4020, "the function's circuit breaker is open")   \
	XX(EMEDIATYPE, -4021, "unsupported media type")                     \
	XX(ECONNINFO, -4022, "malformed database connection string")        \
	XX(ENOPUBLICATION, -4023, "no such publication in the database")    \
	XX(ENOSLOT, -4024, "replication slot missing (dropped?)")           \
	XX(EJOURNAL, -4025, "the journal cannot be written or read (I/O error)") \
	XX(ECORRUPT, -4026, "the journal file is damaged or not an evfn journal") \
	XX(ECRASHED, -4027, "the attempt was running when the process died")

/** Error codes; see EVFN_ERRNO_MAP for the text of each. @since 0.1 */
typedef enum evfn_errno {
#define EVFN__ERRNO_ENUM(name, value, msg) EVFN_##name = (value),
	EVFN_ERRNO_MAP(EVFN__ERRNO_ENUM)
#undef EVFN__ERRNO_ENUM
	EVFN__ERRNO_END = -9999
} evfn_errno;

/**
 * Describe an error code in English.
 *
 * @param err a value returned by an evfn call (negative), or any other int.
 * @return a static string (the message of EVFN_ERRNO_MAP); "unknown
 *         error" for codes not in the list and "success" for 0 or
 *         positive values. Never NULL.
 *
 * Ownership: a static string.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_strerror(int err);

/**
 * Name of an error code, such as "EVFN_EQUEUEFULL".
 *
 * @param err a value returned by an evfn call (negative), or any other int.
 * @return a static string; "EVFN_UNKNOWN" for codes not in the list and
 *         "EVFN_OK" for 0 or positive values. Never NULL.
 *
 * Ownership: a static string.
 *
 * Thread-safety: any thread.
 * @since 0.1
 */
EVFN_EXPORT const char *evfn_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* EVFN_ERRORS_H */
