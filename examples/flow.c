/* SPDX-License-Identifier: MIT */
/*
 * Flow control in one host: customer updates are pushed to a CRM whose
 * API takes batches, allows 100 calls a second and goes down for a while.
 * Updates of one customer must arrive in order (an ordering key per
 * customer); the CRM's outage trips a circuit breaker, so the queued
 * updates wait instead of burning their attempts; follow-up mails are
 * delayed jobs, and the ones that became pointless are cancelled.
 * Prints what happened and exits 0 only if every customer's updates
 * arrived in order and every event is accounted for.
 *
 * Usage: flow [--updates N]
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <evfn.h>

#define CUSTOMERS 20

struct update {
	int customer;
	int version;
};

/* What the fake CRM has applied, per customer (one writer at a time per
 * customer: the ordering key sees to it). */
static int applied[CUSTOMERS];
static atomic_int out_of_order, crm_calls, mails_sent;

/* The CRM: calls 5 to 11 fail as if it were down. */
static int
crm_sync(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ev;
	(void)userdata;
	int call = atomic_fetch_add(&crm_calls, 1);
	if (call >= 5 && call < 12) {
		evfn_ctx_set_error(ctx, "CRM returned 503");
		return EVFN_RETRY; /* the whole batch again, later */
	}
	for (size_t i = 0; i < evfn_ctx_batch_size(ctx); i++) {
		const struct update *u =
			evfn_event_data(evfn_ctx_batch_event(ctx, i), NULL);
		if (u->version != applied[u->customer] + 1)
			atomic_fetch_add(&out_of_order, 1);
		applied[u->customer] = u->version;
	}
	return EVFN_OK;
}

static int
send_mail(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)ev;
	(void)userdata;
	atomic_fetch_add(&mails_sent, 1);
	return EVFN_OK;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Publishes data to fn with an ordering key or a delay; returns its id. */
static uint64_t
publish(evfn_rt *rt, const char *fn, const void *data, size_t len,
        const char *key, int64_t delay_ms)
{
	evfn_event *ev;
	uint64_t seq = 0;
	if (evfn_event_new(&ev, fn, data, len) < 0)
		return 0;
	if (key)
		evfn_event_set_ordering_key(ev, key);
	if (delay_ms)
		evfn_event_set_delay_ms(ev, delay_ms);
	int rc = evfn_publish_to(rt, fn, ev, &seq);
	if (rc < 0)
		fprintf(stderr, "publish to %s: %s\n", fn, evfn_strerror(rc));
	evfn_event_unref(ev);
	return seq;
}

/* Every accepted event ended: nothing queued, running or waiting. */
static bool
settled(evfn_rt *rt, const char *fn)
{
	evfn_stats *s;
	if (evfn_stats_take(rt, fn, &s) < 0)
		return false;
	uint64_t busy = evfn_stats_value(s, EVFN_STAT_QUEUED) +
	                evfn_stats_value(s, EVFN_STAT_IN_FLIGHT) +
	                evfn_stats_value(s, EVFN_STAT_WAITING_RETRY) +
	                evfn_stats_value(s, EVFN_STAT_DELAYED);
	evfn_stats_free(s);
	return busy == 0;
}

static void
report(evfn_rt *rt, const char *fn)
{
	static const evfn_stat shown[] = {
		EVFN_STAT_ACCEPTED,  EVFN_STAT_SUCCEEDED,
		EVFN_STAT_CANCELLED, EVFN_STAT_ATTEMPTS,
		EVFN_STAT_BATCHES,   EVFN_STAT_RATE_LIMITED,
		EVFN_STAT_CIRCUIT_OPENS,
	};
	evfn_stats *s;
	if (evfn_stats_take(rt, fn, &s) < 0)
		return;
	printf("%-10s", fn);
	for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
		printf(" %s=%" PRIu64, evfn_stat_name(shown[i]),
		       evfn_stats_value(s, shown[i]));
	printf("\n");
	evfn_stats_free(s);
}

int
main(int argc, char **argv)
{
	int updates = 400;
	if (argc == 3 && strcmp(argv[1], "--updates") == 0)
		updates = atoi(argv[2]);
	evfn_rt *rt;
	if (evfn_rt_new(&rt, NULL) < 0)
		return 1;

	evfn_fn_options *o;
	evfn_fn_options_new(&o);
	evfn_fn_options_set_attempts(o, 5);
	evfn_fn_options_set_backoff(o, EVFN_BACKOFF_FIXED, 20, 1.0, 20,
	                            EVFN_JITTER_NONE);
	evfn_fn_options_set_concurrency(o, 2);
	evfn_fn_options_set_batch(o, 10, 20);       /* 10 a call, or 20 ms */
	evfn_fn_options_set_rate_limit(o, 100, 5);  /* the CRM's quota */
	evfn_fn_options_set_circuit_breaker(o, 3, 0, 1, 10000, 150,
	                                    EVFN_CIRCUIT_QUEUE);
	evfn_register(rt, "crm-sync", crm_sync, NULL, o, NULL);
	evfn_fn_options_free(o);
	evfn_register(rt, "mail", send_mail, NULL, NULL, NULL);
	evfn_rt_start(rt);

	/* Follow-up mails in 300 ms; two of them are called off. */
	uint64_t mails[4];
	for (int i = 0; i < 4; i++)
		mails[i] = publish(rt, "mail", "follow-up", 9, NULL, 300);
	for (int i = 0; i < 2; i++) {
		char id[24];
		snprintf(id, sizeof(id), "%" PRIu64, mails[i]);
		if (evfn_cancel(rt, "mail", id) != 1)
			fprintf(stderr, "mail %s was not cancelled\n", id);
	}

	for (int n = 0; n < updates; n++) {
		struct update u = {n % CUSTOMERS, n / CUSTOMERS + 1};
		char key[16];
		snprintf(key, sizeof(key), "customer-%d", u.customer);
		publish(rt, "crm-sync", &u, sizeof(u), key, 0);
	}
	for (int waited = 0; !(settled(rt, "crm-sync") && settled(rt, "mail"));
	     waited += 10) {
		if (waited > 60000) {
			fprintf(stderr, "gave up waiting\n");
			break;
		}
		sleep_ms(10);
	}
	report(rt, "crm-sync");
	report(rt, "mail");

	int versions = 0;
	for (int c = 0; c < CUSTOMERS; c++)
		versions += applied[c];
	bool ok = atomic_load(&out_of_order) == 0 && versions == updates &&
	          atomic_load(&mails_sent) == 2 && settled(rt, "crm-sync") &&
	          settled(rt, "mail");
	printf("%d updates applied in order per customer: %s; %d of 4 "
	       "follow-ups sent\n",
	       versions, atomic_load(&out_of_order) ? "NO" : "yes",
	       atomic_load(&mails_sent));
	evfn_rt_drain(rt, 5000, NULL, NULL);
	evfn_rt_free(rt);
	return ok ? 0 : 1;
}
