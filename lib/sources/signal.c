/* SPDX-License-Identifier: MIT */
/*
 * The signal trigger: libevent's signal event on the runtime's base turns
 * each delivery of a signal into an event built on the loop thread. The
 * handler libevent installs only writes to its self-pipe, so nothing of
 * ours runs in signal context. The shared trigger object is in fd.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* sigabbrev_np() */
#endif
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include <evfn/libevent.h>
#include <evfn/triggers.h>

#include "common-internal.h"
#include "trigger-internal.h"

struct signal_trigger {
	struct evfn_trigger base;
	char number[16]; /* extension "signal" */
	char abbrev[32]; /* "SIGUSR1", the default subject */
};

static void
signal_cb(evutil_socket_t signo, short what, void *arg)
{
	(void)signo;
	(void)what;
	struct signal_trigger *st = arg;
	struct evfn__trigger_fire f = {
	    .subject = st->base.name ? st->base.name : st->abbrev,
	    .ext = {{"signal", st->number}},
	};
	evfn__trigger_fire(&st->base, &f);
}

/* "SIGUSR1", "SIGRTMIN+3", or the number when the C library has no
 * name for it. */
static void
signal_name(int signo, char *buf, size_t len)
{
	const char *abbrev = NULL;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
	abbrev = sigabbrev_np(signo);
#endif
	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
#ifdef SIGRTMIN
	else if (signo >= SIGRTMIN && signo <= SIGRTMAX)
		snprintf(buf, len, "SIGRTMIN+%d", signo - SIGRTMIN);
#endif
	else
		snprintf(buf, len, "%d", signo);
}

int
evfn_signal_add(evfn_rt *rt, int signo, const char *type,
                const evfn_trigger_options *opts, evfn_trigger **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
		return EVFN_EINVAL;
	char abbrev[32];
	signal_name(signo, abbrev, sizeof(abbrev));
	char label[48];
	snprintf(label, sizeof(label), "signal %s", abbrev);
	struct evfn_trigger *t;
	int rc = evfn__trigger_new(rt, sizeof(struct signal_trigger), "signal",
	                           type, "evfn.signal", opts, label, &t);
	if (rc < 0)
		return rc;
	struct signal_trigger *st = (struct signal_trigger *)t;
	snprintf(st->number, sizeof(st->number), "%d", signo);
	memcpy(st->abbrev, abbrev, sizeof(abbrev));
	t->ev = evsignal_new(evfn_rt_event_base(rt), signo, signal_cb, st);
	/* sigaction() refuses signals that cannot be caught and numbers
	 * glibc reserves for itself (the first real-time signals) when the
	 * event is added. */
	return evfn__trigger_arm(t, out);
}
