#include <evfn.h>
#include <stdio.h>

/* A handler: reads the event's payload, answers, reports the outcome. */
static int
greet(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata; /* set at evfn_register(); unused here */
	size_t len;
	const char *name = evfn_event_data(ev, &len);
	char reply[64];
	int n = snprintf(reply, sizeof reply, "hello, %.*s", (int)len, name);
	return evfn_ctx_respond(ctx, reply, (size_t)n) == 0 ? EVFN_OK
	                                                   : EVFN_RETRY;
}

int
main(void)
{
	evfn_rt *rt;
	if (evfn_rt_new(&rt, NULL) != 0) /* defaults, own loop thread */
		return 1;
	evfn_register(rt, "greet", greet, NULL, NULL, NULL); /* 3 s, 3 tries */
	evfn_subscribe(rt, "users.*", "greet");
	evfn_rt_start(rt);

	evfn_emit(rt, "users.created", "ada", 3, NULL); /* async, by topic */
	void *resp;
	size_t len;
	int rc = evfn_invoke(rt, "greet", "world", 5, &resp, &len); /* sync */
	if (rc == 0) {
		printf("%.*s\n", (int)len, (char *)resp);
		evfn_free(resp);
	} else {
		fprintf(stderr, "invoke: %s\n", evfn_strerror(rc));
	}
	evfn_rt_drain(rt, 1000, NULL, NULL); /* finish in-flight work */
	return evfn_rt_free(rt) == 0 && rc == 0 ? 0 : 1;
}
