/* SPDX-License-Identifier: MIT */
/*
 * HTTP asynchronous intake: a server on loopback that answers 202 to
 * GET /intake, either through evfn (an async route queueing an event to a
 * no-op function, answered with the event id) or as a bare evhttp handler
 * that answers 202 without evfn. bench/run.py drives both with wrk in the
 * same run. Prints the port on stdout, then serves until stdin closes.
 * Usage: bench-http --system evfn|bare
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include <evfn.h>
#include <evfn/libevent.h>

static int
noop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

/* The same reply as evfn's: headers Content-Type, Date and
 * Content-Length, body {"id":"N"}, written straight into the request's
 * output buffer. */
static void
bare_cb(struct evhttp_request *req, void *arg)
{
	evbuffer_add_printf(evhttp_request_get_output_buffer(req),
	                    "{\"id\":\"%lu\"}", ++*(unsigned long *)arg);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	                  "Content-Type", "application/json");
	evhttp_send_reply(req, 202, "Accepted", NULL);
}

static void
stdin_closed(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];
	if (read(fd, buf, sizeof(buf)) <= 0)
		event_base_loopbreak(arg);
}

int
main(int argc, char **argv)
{
	const char *system = argc > 2 ? argv[2] : "evfn";
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	struct event_base *base = event_base_new();
	struct event *in = event_new(base, 0, EV_READ | EV_PERSIST,
	                             stdin_closed, base);
	event_add(in, NULL);
	if (strcmp(system, "bare") == 0) {
		unsigned long n = 0;
		struct evhttp *http = evhttp_new(base);
		struct evhttp_bound_socket *s =
			evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
		evhttp_set_cb(http, "/intake", bare_cb, &n);
		/* evfn's default I/O timeout (evfn_http_options_set_timeout_ms):
		 * without one evhttp arms no timer per read and write, work an
		 * evfn server cannot skip. */
		evhttp_set_timeout(http, 30);
		evutil_socket_t fd = evhttp_bound_socket_get_fd(s);
		struct sockaddr_in sin;
		socklen_t len = sizeof(sin);
		getsockname(fd, (struct sockaddr *)&sin, &len);
		printf("%d\n", ntohs(sin.sin_port));
		fflush(stdout);
		event_base_dispatch(base);
		evhttp_free(http);
	} else {
		/* evfn embedded on the same kind of host base, 2 workers. */
		evfn_rt_options *o;
		evfn_rt_options_new(&o);
		evfn_rt_options_set_event_base(o, base);
		evfn_rt_options_set_workers(o, 2, 2);
		evfn_rt *rt;
		evfn_rt_new(&rt, o);
		evfn_rt_options_free(o);
		evfn_fn_options *fo;
		evfn_fn_options_new(&fo);
		evfn_fn_options_set_queue_capacity(fo, 1 << 20);
		evfn_register(rt, "intake", noop, NULL, fo, NULL);
		evfn_fn_options_free(fo);
		evfn_rt_start(rt);
		evfn_http *http;
		evfn_http_new(&http, rt, NULL);
		evfn_route_options *ro;
		evfn_route_options_new(&ro);
		evfn_route_options_set_async(ro, true);
		evfn_http_route(http, "GET /intake", "intake", ro);
		evfn_route_options_free(ro);
		printf("%d\n", evfn_http_port(http));
		fflush(stdout);
		event_base_dispatch(base);
		evfn_http_free(http);
		evfn_rt_drain(rt, 1000, NULL, NULL);
		evfn_rt_free(rt);
	}
	event_free(in);
	event_base_free(base);
	return 0;
}
