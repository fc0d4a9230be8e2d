/* SPDX-License-Identifier: MIT */
/*
 * The descriptor trigger: each readiness of a file descriptor (readable,
 * writable, level or edge triggered) becomes an event on the loop. The fd
 * is the caller's; evfn never closes it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include <evfn/emit.h>
#include <evfn/event.h>
#include <evfn/libevent.h>
#include <evfn/triggers.h>

#include "common-internal.h"
#include "source-internal.h"
#include "trigger-internal.h"

#define FD_FLAGS (EVFN_FD_READ | EVFN_FD_WRITE | EVFN_FD_EDGE)

struct fd_trigger {
	struct evfn_trigger base;
	char fd_text[16];
};

static void
fd_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	struct fd_trigger *ft = arg;
	const char *ready = (what & EV_READ) && (what & EV_WRITE) ? "read,write"
	                    : (what & EV_READ)                    ? "read"
	                                                          : "write";
	struct evfn__trigger_fire f = {
	    .subject = ft->base.name,
	    .ext = {{"fd", ft->fd_text}, {"ready", ready}},
	};
	evfn__trigger_fire(&ft->base, &f);
}

int
evfn_fd_add(evfn_rt *rt, int fd, int flags, const char *type,
            const evfn_trigger_options *opts, evfn_trigger **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	if (fd < 0 || (flags & ~FD_FLAGS) ||
	    !(flags & (EVFN_FD_READ | EVFN_FD_WRITE)))
		return EVFN_EINVAL;
	char label[32];
	snprintf(label, sizeof(label), "fd %d", fd);
	struct evfn_trigger *t;
	int rc = evfn__trigger_new(rt, sizeof(struct fd_trigger), "fd", type,
	                           "evfn.fd", opts, label, &t);
	if (rc < 0)
		return rc;
	struct fd_trigger *ft = (struct fd_trigger *)t;
	snprintf(ft->fd_text, sizeof(ft->fd_text), "%d", fd);
	short what = EV_PERSIST;
	if (flags & EVFN_FD_READ)
		what |= EV_READ;
	if (flags & EVFN_FD_WRITE)
		what |= EV_WRITE;
	if (flags & EVFN_FD_EDGE)
		what |= EV_ET;
	t->ev = event_new(evfn_rt_event_base(rt), fd, what, fd_cb, ft);
	/* The backend refuses descriptors it cannot poll (closed ones, and
	 * regular files with epoll) when the event is added. */
	return evfn__trigger_arm(t, out);
}
