/* SPDX-License-Identifier: MIT */
/*
 * An order pipeline in one process: orders are emitted from two producer
 * threads; "validate" rejects bad ones for good (dead letter) and passes
 * the rest on; "charge" talks to a flaky payment provider and is retried
 * with backoff; "notify" runs on the loop thread; "audit" sees every event
 * under orders.#. At the end it prints each function's accounting and
 * exits 0 only if every accepted event reached a terminal state.
 *
 * Usage: orders [--orders N]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <evfn.h>

struct order {
	uint32_t id;
	uint32_t cents;
};

static int
validate(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	size_t len;
	const struct order *o = evfn_event_data(ev, &len);
	if (len != sizeof(*o) || o->cents == 0) {
		evfn_ctx_set_error(ctx, "order has no amount");
		return EVFN_FAIL; /* permanent: no retry helps */
	}
	return evfn_ctx_emit(ctx, "orders.validated", o, sizeof(*o), NULL) == 0
	               ? EVFN_OK
	               : EVFN_RETRY;
}

/* The payment provider fails about one call in four. */
static int
charge(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	const struct order *o = evfn_event_data(ev, NULL);
	uint32_t h = o->id * 2654435761u ^ evfn_ctx_attempt(ctx) * 40503u;
	h ^= h >> 15;
	h *= 0x2c1b3c6du;
	h ^= h >> 12;
	if (h % 4 == 0) {
		evfn_ctx_set_error(ctx, "payment provider: 503");
		return EVFN_RETRY;
	}
	return evfn_ctx_emit(ctx, "orders.charged", o, sizeof(*o), NULL) == 0
	               ? EVFN_OK
	               : EVFN_RETRY;
}

static int
notify(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	atomic_fetch_add((atomic_uint_fast64_t *)userdata, 1);
	return EVFN_OK;
}

static int
audit(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

struct producer {
	evfn_rt *rt;
	uint32_t first, count;
};

static void *
produce(void *arg)
{
	struct producer *p = arg;
	for (uint32_t i = 0; i < p->count; i++) {
		uint32_t id = p->first + i;
		struct order o = {id, id % 100 == 7 ? 0 : 100 + id % 5000};
		while (evfn_emit(p->rt, "orders.created", &o, sizeof(o), NULL) ==
		       EVFN_EQUEUEFULL) {
			struct timespec ts = {0, 100000};
			nanosleep(&ts, NULL); /* back-pressure: wait, retry */
		}
	}
	return NULL;
}

static const char *const fns[] = {"validate", "charge", "notify", "audit"};

/* True when nothing is queued, running or waiting in any function. */
static bool
settled(evfn_rt *rt, uint64_t *done)
{
	evfn_stats *s;
	evfn_stats_take(rt, NULL, &s);
	uint64_t busy = evfn_stats_value(s, EVFN_STAT_QUEUED) +
	                evfn_stats_value(s, EVFN_STAT_IN_FLIGHT) +
	                evfn_stats_value(s, EVFN_STAT_WAITING_RETRY);
	*done = evfn_stats_value(s, EVFN_STAT_ACCEPTED) - busy;
	evfn_stats_free(s);
	return busy == 0;
}

int
main(int argc, char **argv)
{
	uint32_t n = 20000;
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--orders") == 0)
			n = (uint32_t)strtoul(argv[++i], NULL, 10);

	evfn_rt *rt;
	if (evfn_rt_new(&rt, NULL) != 0)
		return 1;
	evfn_fn_options *fo;
	evfn_fn_options_new(&fo);
	evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_EXPONENTIAL, 1, 2.0, 20,
	                            EVFN_JITTER_FULL);
	evfn_fn_options_set_attempts(fo, 4);
	evfn_fn_options_set_concurrency(fo, 4);
	evfn_register(rt, "validate", validate, NULL, NULL, NULL);
	evfn_register(rt, "charge", charge, NULL, fo, NULL);
	evfn_fn_options_free(fo);
	static atomic_uint_fast64_t notified;
	evfn_fn_options_new(&fo);
	evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP);
	evfn_register(rt, "notify", notify, &notified, fo, NULL);
	evfn_fn_options_free(fo);
	evfn_register(rt, "audit", audit, NULL, NULL, NULL);
	evfn_subscribe(rt, "orders.created", "validate");
	evfn_subscribe(rt, "orders.validated", "charge");
	evfn_subscribe(rt, "orders.charged", "notify");
	evfn_subscribe(rt, "orders.#", "audit");
	evfn_rt_start(rt);

	printf("evfn %s: %" PRIu32 " orders from 2 producers\n",
	       evfn_version_string(), n);
	struct producer p[2] = {{rt, 0, n / 2}, {rt, n / 2, n - n / 2}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, produce, &p[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	uint64_t done = 0;
	for (int ticks = 0; !settled(rt, &done); ticks++) {
		if (ticks % 20 == 0) {
			printf("\r  %" PRIu64 " events finished", done);
			fflush(stdout);
		}
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	printf("\r  %" PRIu64 " events finished\n\n", done);

	printf("%-9s %9s %9s %9s %9s %9s %7s\n", "function", "accepted",
	       "succeeded", "dead", "attempts", "retries", "peak");
	bool balanced = true;
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		evfn_stats *s;
		evfn_stats_take(rt, fns[i], &s);
		uint64_t acc = evfn_stats_value(s, EVFN_STAT_ACCEPTED);
		uint64_t ok = evfn_stats_value(s, EVFN_STAT_SUCCEEDED);
		uint64_t dead = evfn_stats_value(s, EVFN_STAT_DEAD_LETTERED);
		uint64_t expired = evfn_stats_value(s, EVFN_STAT_EXPIRED);
		uint64_t back = evfn_stats_value(s, EVFN_STAT_HANDED_BACK);
		balanced &= acc == ok + dead + expired + back;
		printf("%-9s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
		       " %9" PRIu64 " %7" PRIu64 "\n",
		       fns[i], acc, ok, dead,
		       evfn_stats_value(s, EVFN_STAT_ATTEMPTS),
		       evfn_stats_value(s, EVFN_STAT_RETRIES),
		       evfn_stats_value(s, EVFN_STAT_CONCURRENCY_PEAK));
		evfn_stats_free(s);
	}
	evfn_rt_drain(rt, 5000, NULL, NULL);
	int rc = evfn_rt_free(rt);
	printf("\nnotified %" PRIu64 " customers; every event accounted for: "
	       "%s\n",
	       (uint64_t)atomic_load(&notified), balanced ? "yes" : "NO");
	return balanced && rc == 0 ? 0 : 1;
}
