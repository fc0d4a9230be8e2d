/* SPDX-License-Identifier: MIT */
/*
 * The HTTP trigger's own listener and the connections it accepts: the
 * listening socket handed to evhttp, and a record of every live
 * connection, which gives the connection limit, the framing repair of
 * http-framing.c, a pause when accept() fails (out of file descriptors)
 * instead of a busy loop, and, at close, the knowledge of whether every
 * answer has left for the kernel. A trigger attached to a host's evhttp
 * has none of this: the host owns its listener and connections.
 * Everything here runs on the loop thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include <evfn/libevent.h>

#include "common-internal.h"
#include "http-framing-internal.h"
#include "http-listen-internal.h"
#include "source-internal.h"

/* After accept() fails, accepting resumes after this long, doubling up
 * to the maximum while it goes on failing (or at once when one of the
 * server's own connections closes). */
#define RETRY_MIN_MS 10
#define RETRY_MAX_MS 1000
/* The failure is logged at most once in this long. */
#define LOG_EVERY_NS (60 * EVFN__NS_PER_SEC)

/* One live connection. Its bufferevent is made here (evhttp's bevcb
 * hook), before evhttp has the connection object, which is picked up on
 * the next loop turn ("adopted") to hear of its closing. */
struct conn {
	struct conn *prev, *next;
	struct evfn__listener *l;
	struct bufferevent *bev; /* one reference ours, until released */
	struct event *adopt_ev;  /* NULL once adopted */
	struct evbuffer_cb_entry *in_cb;  /* the framer */
	struct evbuffer_cb_entry *out_cb; /* closing: the flush watch */
	struct evfn__framer framer;
};

struct evfn__listener {
	/* The server's reference and one per connection: a connection's
	 * close callback may come while evhttp_free() runs, after the
	 * server let go. */
	int refs;
	evfn_rt *rt;
	struct event_base *base;
	struct evconnlistener *lev;
	struct evfn__listener *registry_next;
	int port;
	int open, max; /* max 0: no limit */
	bool enabled;
	bool failing;  /* accept() failed: paused until retry or a close */
	bool stopped;  /* closing: never accepting again */
	int retry_ms;
	struct event *retry;
	int64_t logged_ns;
	uint64_t pauses;
	int bad; /* connections whose chunked framing failed */
	struct conn *conns;
	void (*progress)(void *arg);
	void *progress_arg;
};

/* ---- addresses -------------------------------------------------------- */

bool
evfn__parse_address(const char *address, int port,
                    struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return true;
	}
	if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return true;
	}
	return false;
}

/* Opens, binds and listens on a non-blocking socket. Returns the fd or a
 * negative code. */
static int
open_socket(const char *address, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (!evfn__parse_address(address, port, &ss, &len))
		return EVFN_EINVAL;
	int fd = socket(ss.ss_family,
	                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno == ENOMEM || errno == ENOBUFS ? EVFN_ENOMEM
		                                           : -errno;
	/* Lets a restarted server rebind while old connections sit in
	 * TIME_WAIT; a live listener still makes bind() fail. */
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		int err = errno;
		close(fd);
		switch (err) {
		case EADDRINUSE:
			return EVFN_EADDRINUSE;
		case EACCES:
		case EPERM:
			return EVFN_EACCES;
		case EADDRNOTAVAIL:
		case EAFNOSUPPORT:
			return EVFN_EINVAL;
		default:
			return -err;
		}
	}
	return fd;
}

static int
bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- accepting -------------------------------------------------------- */

/* Turns accepting on or off as the limit, a failed accept() and closing
 * say. */
static void
update_accepting(struct evfn__listener *l)
{
	bool want = !l->stopped && !l->failing &&
	            !(l->max > 0 && l->open >= l->max);
	if (!l->lev || want == l->enabled)
		return;
	if (want)
		evconnlistener_enable(l->lev);
	else
		evconnlistener_disable(l->lev);
	l->enabled = want;
}

/*
 * evconnlistener's error callback hands over evhttp's argument (the
 * evhttp server), not ours, and libevent 2.1 has no way to read a
 * listener's own: the listeners are found through this list. It is
 * shared by every runtime's loop thread, hence the lock.
 */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct evfn__listener *registry;

static void
registry_add(struct evfn__listener *l)
{
	pthread_mutex_lock(&registry_lock);
	l->registry_next = registry;
	registry = l;
	pthread_mutex_unlock(&registry_lock);
}

static void
registry_remove(struct evfn__listener *l)
{
	pthread_mutex_lock(&registry_lock);
	struct evfn__listener **pp = &registry;
	while (*pp && *pp != l)
		pp = &(*pp)->registry_next;
	if (*pp)
		*pp = l->registry_next;
	pthread_mutex_unlock(&registry_lock);
}

static struct evfn__listener *
registry_find(const struct evconnlistener *lev)
{
	pthread_mutex_lock(&registry_lock);
	struct evfn__listener *l = registry;
	while (l && l->lev != lev)
		l = l->registry_next;
	pthread_mutex_unlock(&registry_lock);
	return l;
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evfn__listener *l = arg;
	l->failing = false;
	update_accepting(l);
}

/*
 * accept() failed with an error other than the transient ones libevent
 * retries itself: out of file descriptors (EMFILE, ENFILE) or kernel
 * memory, mostly. The pending connection stays in the backlog, so
 * libevent would call accept() again at once, forever, with a warning
 * each time. Instead: stop accepting, count it, log it (once a minute at
 * most), and try again after a back-off, or as soon as one of the
 * server's connections closes and gives a descriptor back.
 */
static void
accept_failed(struct evconnlistener *lev, void *evhttp_arg)
{
	(void)evhttp_arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct evfn__listener *l = registry_find(lev);
	if (!l)
		return;
	l->pauses++;
	int64_t now = evfn__now_ns();
	if (!l->logged_ns || now - l->logged_ns >= LOG_EVERY_NS) {
		l->logged_ns = now;
		evfn__rt_log(l->rt, EVFN_LOG_WARN,
		             "HTTP server on port %d: accept() failed (%s); "
		             "not accepting connections until a descriptor "
		             "frees (%llu times so far)",
		             l->port, evutil_socket_error_to_string(err),
		             (unsigned long long)l->pauses);
	}
	l->failing = true;
	update_accepting(l);
	l->retry_ms = l->retry_ms ? EVFN__MIN(2 * l->retry_ms, RETRY_MAX_MS)
	                          : RETRY_MIN_MS;
	struct timeval tv = {l->retry_ms / 1000, l->retry_ms % 1000 * 1000};
	evtimer_add(l->retry, &tv);
}

/* ---- connections ------------------------------------------------------ */

static void
listener_unref(struct evfn__listener *l)
{
	if (--l->refs > 0)
		return;
	if (l->retry)
		event_free(l->retry);
	evfn__free(l);
}

/* One connection is gone (or never became one): make room, take the
 * watches off its buffers, and drop its references. */
static void
conn_release(struct conn *c)
{
	struct evfn__listener *l = c->l;
	if (c->in_cb)
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev),
		                         c->in_cb);
	if (c->out_cb)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->bev),
		                         c->out_cb);
	if (c->adopt_ev)
		event_free(c->adopt_ev);
	if (evfn__framer_failed(&c->framer))
		l->bad--;
	if (c->prev)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	bufferevent_decref(c->bev);
	evfn__free(c);
	l->open--;
	/* A descriptor came back: try accept() again now. */
	if (l->failing) {
		l->failing = false;
		evtimer_del(l->retry);
	}
	update_accepting(l);
	if (l->progress)
		l->progress(l->progress_arg);
	listener_unref(l);
}

static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	conn_release(arg);
}

/* Hands the connection's end to evhttp's close callback, or releases it
 * when evhttp already freed the connection (bufferevent_free() clears
 * the callbacks, and the reference we hold keeps bev readable). */
static void
conn_adopt(struct conn *c)
{
	bufferevent_data_cb readcb, writecb;
	bufferevent_event_cb eventcb;
	void *evcon = NULL;
	bufferevent_getcb(c->bev, &readcb, &writecb, &eventcb, &evcon);
	event_free(c->adopt_ev);
	c->adopt_ev = NULL;
	if (readcb && evcon)
		evhttp_connection_set_closecb(evcon, conn_closed, c);
	else
		conn_release(c);
}

static void
conn_adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_adopt(arg);
}

static void
conn_input(struct evbuffer *buf, const struct evbuffer_cb_info *info,
           void *arg)
{
	struct conn *c = arg;
	bool failed = evfn__framer_failed(&c->framer);
	evfn__framer_input(&c->framer, buf, info->n_deleted);
	if (!failed && evfn__framer_failed(&c->framer))
		c->l->bad++;
}

/* Closing: an answer left the output buffer for the kernel. */
static void
conn_output(struct evbuffer *buf, const struct evbuffer_cb_info *info,
            void *arg)
{
	struct conn *c = arg;
	if (info->n_deleted && evbuffer_get_length(buf) == 0 &&
	    c->l->progress)
		c->l->progress(c->l->progress_arg);
}

static bool
watch_output(struct conn *c)
{
	c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev),
	                            conn_output, c);
	return c->out_cb != NULL;
}

/* evhttp's hook for making each new connection's bufferevent. libevent
 * 2.1 tells nothing when a server connection closes except through the
 * connection's close callback, and the connection object does not exist
 * yet here: it is picked up on the next loop turn, after evhttp has set
 * it up. (A filter bufferevent's free callback would be simpler, but
 * evhttp loses reads through one.) */
static struct bufferevent *
conn_new(struct event_base *base, void *arg)
{
	struct evfn__listener *l = arg;
	struct bufferevent *bev =
		bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct conn *c = bev ? evfn__calloc(1, sizeof(*c)) : NULL;
	if (c) {
		c->bev = bev;
		evfn__framer_init(&c->framer);
		c->adopt_ev = event_new(base, -1, 0, conn_adopt_cb, c);
		c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev),
		                           conn_input, c);
	}
	if (!c || !c->adopt_ev || !c->in_cb ||
	    (l->stopped && !watch_output(c))) {
		/* evhttp falls back to a bufferevent of its own, which
		 * nothing here watches. */
		if (c && c->adopt_ev)
			event_free(c->adopt_ev);
		evfn__free(c);
		if (bev)
			bufferevent_free(bev);
		return NULL;
	}
	c->l = l;
	bufferevent_incref(bev);
	c->next = l->conns;
	if (c->next)
		c->next->prev = c;
	l->conns = c;
	l->refs++;
	l->open++;
	l->retry_ms = 0; /* accept() works again */
	event_active(c->adopt_ev, EV_TIMEOUT, 0);
	update_accepting(l);
	return bev;
}

/* ---- the listener ----------------------------------------------------- */

int
evfn__listener_open(struct evfn__listener **out, evfn_rt *rt,
                    struct evhttp *evh, const char *address, int port,
                    int max_conns)
{
	*out = NULL;
	struct event_base *base = evfn_rt_event_base(rt);
	struct evfn__listener *l = evfn__calloc(1, sizeof(*l));
	if (!l || !(l->retry = evtimer_new(base, retry_cb, l))) {
		evfn__free(l);
		return EVFN_ENOMEM;
	}
	l->refs = 1;
	l->rt = rt;
	l->base = base;
	l->max = max_conns;
	int fd = open_socket(address, port);
	if (fd < 0) {
		listener_unref(l);
		return fd;
	}
	l->port = bound_port(fd);
	if (l->port < 0 ||
	    !(l->lev = evconnlistener_new(base, NULL, NULL,
	                                  LEV_OPT_CLOSE_ON_FREE |
	                                          LEV_OPT_CLOSE_ON_EXEC |
	                                          LEV_OPT_DISABLED,
	                                  0, fd))) {
		int rc = l->port < 0 ? l->port : EVFN_ENOMEM;
		close(fd);
		listener_unref(l);
		return rc;
	}
	/* From here evhttp owns the listener, and evhttp_free() frees it. */
	if (!evhttp_bind_listener(evh, l->lev)) {
		evconnlistener_free(l->lev);
		listener_unref(l);
		return EVFN_ENOMEM;
	}
	evconnlistener_set_error_cb(l->lev, accept_failed);
	evhttp_set_bevcb(evh, conn_new, l);
	registry_add(l);
	update_accepting(l);
	*out = l;
	return 0;
}

int
evfn__listener_port(const struct evfn__listener *l)
{
	return l->port;
}

bool
evfn__listener_bad_framing(const struct evfn__listener *l,
                           struct evhttp_request *req)
{
	if (!l || l->bad == 0)
		return false;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev =
		evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	for (const struct conn *c = l->conns; c; c = c->next)
		if (c->bev == bev)
			return evfn__framer_failed(&c->framer);
	return false;
}

void
evfn__listener_stats(const struct evfn__listener *l, int *open,
                     uint64_t *pauses)
{
	*open = l->open;
	*pauses = l->pauses;
}

void
evfn__listener_stop(struct evfn__listener *l, void (*progress)(void *),
                    void *arg)
{
	if (!l->stopped) {
		l->stopped = true;
		update_accepting(l);
		evtimer_del(l->retry);
		registry_remove(l);
	}
	l->progress = progress;
	l->progress_arg = arg;
	for (struct conn *c = l->conns; progress && c; c = c->next)
		if (!c->out_cb)
			watch_output(c);
}

bool
evfn__listener_flushed(const struct evfn__listener *l)
{
	for (const struct conn *c = l->conns; c; c = c->next)
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
			return false;
	return true;
}

void
evfn__listener_free(struct evfn__listener *l)
{
	if (!l)
		return;
	l->lev = NULL; /* freed with the evhttp server */
	evfn__listener_stop(l, NULL, NULL);
	/* Every connection is gone with the server; adopted ones were
	 * released by their close callbacks. Those not adopted yet are
	 * settled now, as their adopt events would never run on a base
	 * nobody drives. */
	while (l->conns)
		conn_release(l->conns);
	listener_unref(l);
}
