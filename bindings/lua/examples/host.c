/* SPDX-License-Identifier: MIT */
/*
 * A C host that embeds Lua and evfn: it loads its handlers from a Lua
 * file (which builds the runtime, registers functions and names HTTP
 * routes), serves those routes with evfn's HTTP trigger on the runtime's
 * event_base, and drives that base itself. Closures then run on this
 * thread in this Lua state; module handlers run on evfn's workers. To
 * stay a self-checking example, it sends a few requests to itself with
 * libevent's HTTP client and exits once all are answered.
 * Usage: lua-host [handlers.lua]
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <lauxlib.h>
#include <lualib.h>

#include <evfn.h>
#include <evfn/http.h>
#include <evfn/libevent.h>

#include "evfnlua.h"

struct request {
	const char *path;
	const char *body;
	const char *want;
};

static const struct request requests[] = {
	{"/greet", "world", "hello, world"},
	{"/shout", "hey", "HEY!"},
	{"/greet", "again", "hello, again"},
};

struct client {
	struct event_base *base;
	int answered;
	int failures;
};

static void
on_response(struct evhttp_request *req, void *arg)
{
	struct client *c = arg;
	const struct request *r = &requests[c->answered++];
	char body[256] = "";
	int status = req ? evhttp_request_get_response_code(req) : 0;
	if (req) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(in);
		if (n >= sizeof(body))
			n = sizeof(body) - 1;
		evbuffer_remove(in, body, n);
		body[n] = '\0';
	}
	printf("POST %s %s -> %d %s\n", r->path, r->body, status, body);
	if (status != 200 || strcmp(body, r->want) != 0)
		c->failures++;
	if (c->answered == (int)(sizeof(requests) / sizeof(requests[0])))
		event_base_loopbreak(c->base);
}

/* Queues every request on one connection; they are answered in order. */
static int
send_requests(struct event_base *base, int port, struct client *c,
              struct evhttp_connection **out)
{
	struct evhttp_connection *conn =
		evhttp_connection_base_new(base, NULL, "127.0.0.1",
		                           (unsigned short)port);
	if (!conn)
		return -1;
	*out = conn;
	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		struct evhttp_request *req = evhttp_request_new(on_response, c);
		if (!req)
			return -1;
		evbuffer_add(evhttp_request_get_output_buffer(req),
		             requests[i].body, strlen(requests[i].body));
		evhttp_add_header(evhttp_request_get_output_headers(req),
		                  "Host", "127.0.0.1");
		if (evhttp_make_request(conn, req, EVHTTP_REQ_POST,
		                        requests[i].path) < 0)
			return -1;
	}
	return 0;
}

/* Serves the routes of the table at the top of L's stack. */
static int
serve_routes(lua_State *L, evfn_http *http)
{
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *route = lua_tostring(L, -2);
		const char *fn = lua_tostring(L, -1);
		int rc = route && fn ? evfn_http_route(http, route, fn, NULL)
		                     : EVFN_EINVAL;
		if (rc < 0) {
			fprintf(stderr, "route %s: %s\n", route ? route : "?",
			        evfn_strerror(rc));
			lua_pop(L, 2);
			return rc;
		}
		lua_pop(L, 1);
	}
	return 0;
}

static void
give_up(int fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fprintf(stderr, "no answer in time\n");
	event_base_loopbreak(arg);
}

int
main(int argc, char **argv)
{
	const char *script = argc > 1 ? argv[1] : "handlers.lua";
	lua_State *L = luaL_newstate();
	if (!L)
		return 1;
	luaL_openlibs(L);
	luaL_requiref(L, "evfn", luaopen_evfn, 1);
	lua_pop(L, 1);
	if (luaL_loadfile(L, script) != LUA_OK ||
	    lua_pcall(L, 0, 2, 0) != LUA_OK) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		lua_close(L);
		return 1;
	}
	evfn_rt *rt = evfnlua_toruntime(L, -2);
	if (!rt || !lua_istable(L, -1)) {
		fprintf(stderr, "%s must return a runtime and a route table\n",
		        script);
		lua_close(L);
		return 1;
	}
	struct event_base *base = evfn_rt_event_base(rt);

	int failures = 1;
	evfn_http *http = NULL;
	struct evhttp_connection *conn = NULL;
	struct event *timeout = evtimer_new(base, give_up, base);
	struct client c = {.base = base};
	int rc = evfn_http_new(&http, rt, NULL);
	if (rc == 0)
		rc = serve_routes(L, http);
	if (rc == 0 && timeout &&
	    send_requests(base, evfn_http_port(http), &c, &conn) == 0) {
		struct timeval tv = {10, 0};
		evtimer_add(timeout, &tv);
		/* This thread drives the runtime's loop: closures run here,
		 * in L, and module handlers on the workers. */
		event_base_dispatch(base);
		failures = c.failures +
		           (c.answered == (int)(sizeof(requests) /
		                                sizeof(requests[0]))
		                    ? 0
		                    : 1);
	} else if (rc < 0) {
		fprintf(stderr, "http: %s\n", evfn_strerror(rc));
	}
	if (conn)
		evhttp_connection_free(conn);
	if (timeout)
		event_free(timeout);
	evfn_http_free(http);
	/* Closing the state collects the runtime: it drains and frees. */
	lua_close(L);
	printf("%s\n", failures ? "FAILED" : "all answered");
	return failures ? 1 : 0;
}
