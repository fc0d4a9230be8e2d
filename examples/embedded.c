/* SPDX-License-Identifier: MIT */
/*
 * Embedding evfn in a host that already runs a libevent event_base: the
 * host creates the base (with libevent's threading enabled), hands it to
 * evfn, and keeps driving it. Pool handlers run on evfn's workers; a loop
 * handler runs on the host's loop thread and may finish later, here from a
 * host timer, the way an asynchronous I/O completion would.
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <evfn.h>
#include <evfn/libevent.h>

struct host {
	struct event_base *base;
	int done;
};

/* Pool handler: CPU work off the loop, then a child event for the loop. */
static int
resize(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	size_t len;
	evfn_event_data(ev, &len);
	unsigned long sum = 0;
	for (unsigned i = 0; i < 100000; i++)
		sum += i * len;
	char out[32];
	int n = snprintf(out, sizeof(out), "%lu", sum % 1000);
	return evfn_ctx_emit(ctx, "image.resized", out, (size_t)n, NULL) == 0
	               ? EVFN_OK
	               : EVFN_RETRY;
}

struct reply {
	evfn_ctx *ctx;
	struct event *timer;
};

static void
reply_sent(int fd, short what, void *arg)
{
	struct reply *r = arg;
	struct host *h = evfn_ctx_worker_state(r->ctx);
	evfn_ctx_complete(r->ctx, EVFN_OK); /* the attempt ends here */
	event_free(r->timer);
	free(r);
	if (h && ++h->done == 5)
		event_base_loopexit(h->base, NULL);
}

/* Loop handler: starts an "I/O" on the host loop and completes later. */
static int
publish(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct host *h = userdata;
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	printf("publish %.*s on the host loop\n", (int)len, d);
	struct reply *r = malloc(sizeof(*r));
	r->ctx = ctx;
	r->timer = evtimer_new(h->base, reply_sent, r);
	struct timeval tv = {0, 1000};
	evtimer_add(r->timer, &tv);
	return EVFN_PENDING;
}

static int
host_state(void *userdata, void **state)
{
	*state = userdata; /* warm state: here simply the host */
	return 0;
}

int
main(void)
{
	evthread_use_pthreads(); /* before the base: workers wake the loop */
	struct host h = {.base = event_base_new()};

	evfn_rt_options *o;
	evfn_rt_options_new(&o);
	evfn_rt_options_set_event_base(o, h.base);
	evfn_rt_options_set_workers(o, 1, 2);
	evfn_rt *rt;
	int rc = evfn_runtime_new(&rt, o);
	evfn_rt_options_free(o);
	if (rc < 0)
		return 1;

	evfn_register(rt, "resize", resize, NULL, NULL, NULL);
	evfn_fn_options *fo;
	evfn_fn_options_new(&fo);
	evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP);
	evfn_fn_options_set_worker_hooks(fo, host_state, NULL);
	evfn_register(rt, "publish", publish, &h, fo, NULL);
	evfn_fn_options_free(fo);
	evfn_subscribe(rt, "image.uploaded", "resize");
	evfn_subscribe(rt, "image.resized", "publish");
	evfn_runtime_start(rt);

	for (int i = 0; i < 5; i++)
		evfn_emit(rt, "image.uploaded", "pixels", 6, NULL);
	event_base_loop(h.base, EVLOOP_NO_EXIT_ON_EMPTY); /* the host's loop */

	evfn_runtime_drain(rt, 1000, NULL, NULL);
	rc = evfn_runtime_free(rt);
	event_base_free(h.base);
	printf("done: %d published\n", h.done);
	return rc == 0 && h.done == 5 ? 0 : 1;
}
