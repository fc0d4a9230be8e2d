/* SPDX-License-Identifier: MIT */
/*
 * Embedding evfn in a host that already runs a libevent HTTP server. The
 * host owns the event_base (created with libevent's threading enabled),
 * its evhttp server and its own pages; evfn runs on that base, and its
 * HTTP trigger is attached to the host's server: POST /thumbnail goes to
 * a pool function with a deadline and retries, and the request is
 * answered from the function's result. The host keeps every other path
 * (GET / here) and shuts down gracefully on SIGINT or SIGTERM: drain,
 * free the trigger, free the runtime, then its own server.
 *
 *   embedded [--port N]     (0, the default, picks a free port)
 *   curl --data-binary @image.pgm http://127.0.0.1:N/thumbnail
 *
 * The function makes a thumbnail of a binary PGM image (P5, 8-bit gray)
 * a quarter of its size in each direction. Its "storage" fails now and
 * then, as a network dependency would: the attempt returns EVFN_RETRY
 * and evfn tries again after a backoff, within the route's deadline.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include <evfn.h>
#include <evfn/libevent.h>

#define SCALE 4

/* Parses a binary PGM header ("P5 <width> <height> 255" and one blank);
 * returns the offset of the pixels, or 0 when it is not one. */
static size_t
pgm_header(const unsigned char *p, size_t len, unsigned *w, unsigned *h)
{
	char head[64];
	size_t n = len < sizeof(head) - 1 ? len : sizeof(head) - 1;
	memcpy(head, p, n);
	head[n] = '\0';
	int used = 0;
	unsigned max;
	if (sscanf(head, "P5 %u %u %u%n", w, h, &max, &used) != 3 ||
	    max != 255 || *w == 0 || *h == 0 || *w > 8192 || *h > 8192 ||
	    (size_t)used >= n)
		return 0;
	size_t at = (size_t)used + 1; /* the single blank after maxval */
	return len - at == (size_t)*w * *h ? at : 0;
}

/* Fails every third call, like a flaky blob store. */
static atomic_uint storage_calls;

/* Pool handler: the CPU work runs on evfn's workers, off the host's
 * loop. Bad input is the client's fault: it is answered 422, not
 * retried. */
static int
thumbnail(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	size_t len;
	const unsigned char *img = evfn_event_data(ev, &len);
	unsigned w, h;
	size_t at = pgm_header(img, len, &w, &h);
	if (!at) {
		const char *msg = "{\"error\":\"not a binary PGM image\"}";
		evfn_ctx_set_meta(ctx, "status", "422");
		evfn_ctx_set_meta(ctx, "header.Content-Type",
		                  "application/json");
		evfn_ctx_respond(ctx, msg, strlen(msg));
		return EVFN_OK;
	}
	if (atomic_fetch_add(&storage_calls, 1) % 3 == 2) {
		evfn_ctx_set_error(ctx, "storage unavailable");
		return EVFN_RETRY; /* transient: evfn tries again */
	}
	unsigned tw = (w + SCALE - 1) / SCALE, th = (h + SCALE - 1) / SCALE;
	char head[32];
	int hn = snprintf(head, sizeof(head), "P5\n%u %u\n255\n", tw, th);
	size_t out_len = (size_t)hn + (size_t)tw * th;
	unsigned char *out = malloc(out_len);
	if (!out)
		return EVFN_RETRY;
	memcpy(out, head, (size_t)hn);
	/* Each thumbnail pixel is the mean of its SCALE x SCALE block. */
	for (unsigned y = 0; y < th; y++)
		for (unsigned x = 0; x < tw; x++) {
			unsigned sum = 0, count = 0;
			for (unsigned dy = 0; dy < SCALE && y * SCALE + dy < h;
			     dy++)
				for (unsigned dx = 0;
				     dx < SCALE && x * SCALE + dx < w; dx++) {
					sum += img[at + (size_t)(y * SCALE + dy) *
					                        w +
					           x * SCALE + dx];
					count++;
				}
			out[hn + (size_t)y * tw + x] =
				(unsigned char)(sum / count);
		}
	char attempt[16];
	snprintf(attempt, sizeof(attempt), "%u", evfn_ctx_attempt(ctx));
	evfn_ctx_set_meta(ctx, "header.Content-Type", "image/x-portable-graymap");
	evfn_ctx_set_meta(ctx, "header.X-Attempt", attempt);
	int rc = evfn_ctx_respond(ctx, out, out_len);
	free(out);
	return rc == 0 ? EVFN_OK : EVFN_RETRY;
}

/* The host's own page. */
static void
index_page(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "the host's own page; POST an image to "
	                       "/thumbnail\n");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	int port = 0;
	if (argc == 3 && strcmp(argv[1], "--port") == 0)
		port = atoi(argv[2]);
	else if (argc != 1) {
		fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
		return 2;
	}
	evthread_use_pthreads(); /* before the base: workers wake the loop */
	struct event_base *base = event_base_new();

	/* The host's server, as it was before evfn came along. */
	struct evhttp *server = evhttp_new(base);
	struct evhttp_bound_socket *bound =
		evhttp_bind_socket_with_handle(server, "127.0.0.1",
		                               (unsigned short)port);
	if (!bound) {
		fprintf(stderr, "cannot listen on port %d\n", port);
		return 1;
	}
	evhttp_set_cb(server, "/", index_page, NULL);

	/* evfn on the host's base. */
	evfn_rt_options *o;
	evfn_rt_options_new(&o);
	evfn_rt_options_set_event_base(o, base);
	evfn_rt_options_set_workers(o, 1, 4);
	evfn_rt *rt;
	int rc = evfn_rt_new(&rt, o);
	evfn_rt_options_free(o);
	if (rc < 0)
		return 1;
	evfn_fn_options *fo;
	evfn_fn_options_new(&fo);
	evfn_fn_options_set_timeout_ms(fo, 1000); /* each attempt's deadline */
	evfn_fn_options_set_attempts(fo, 3);
	evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_EXPONENTIAL, 20, 2.0, 200,
	                            EVFN_JITTER_FULL);
	evfn_register(rt, "thumbnail", thumbnail, NULL, fo, NULL);
	evfn_fn_options_free(fo);
	evfn_rt_start(rt);

	/* The trigger on the host's server: /thumbnail, /healthz and
	 * /metrics are mounted there; the host keeps everything else. */
	evfn_http *http;
	rc = evfn_http_attach(&http, rt, server, NULL);
	evfn_route_options *ro;
	evfn_route_options_new(&ro);
	evfn_route_options_set_timeout_ms(ro, 5000); /* the request's deadline */
	if (rc == 0)
		rc = evfn_http_route(http, "POST /thumbnail", "thumbnail", ro);
	evfn_route_options_free(ro);
	if (rc < 0) {
		fprintf(stderr, "evfn: %s\n", evfn_strerror(rc));
		return 1;
	}

	struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
	struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	evsignal_add(sigint, NULL);
	evsignal_add(sigterm, NULL);
	evutil_socket_t fd = evhttp_bound_socket_get_fd(bound);
	struct sockaddr_storage ss;
	ev_socklen_t len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	printf("listening on http://127.0.0.1:%d\n",
	       ntohs(((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);

	event_base_dispatch(base); /* the host's loop, until a signal */

	/* Graceful: finish what was admitted, answer what is due, then let
	 * go of the server's paths, and only then free the host's things. */
	int drained = evfn_rt_drain(rt, 5000, NULL, NULL);
	evfn_http_free(http);
	rc = evfn_rt_free(rt);
	event_free(sigint);
	event_free(sigterm);
	evhttp_free(server);
	event_base_free(base);
	printf("drained: %s\n", evfn_strerror(drained));
	return drained == 0 && rc == 0 ? 0 : 1;
}
