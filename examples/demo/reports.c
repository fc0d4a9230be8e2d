/* SPDX-License-Identifier: MIT */
/*
 * Reports: POST /reports is an asynchronous route, answered 202 with the
 * event id at once, as Lambda's asynchronous invocation is; "report"
 * builds the report in the background from the ledger and files it in a
 * table under that id. POST /report-status with the id as the body looks
 * it up. (evfn routes match exact paths and hand a function the body, not
 * the query string, so GET /reports/<id> cannot be routed yet.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

#define SLOTS 64 /* the table keeps the latest reports only */

struct slot {
	char id[40];
	bool done;
	char json[200];
};

/* Written by "report" on pool workers, read by "report-status" on the
 * loop thread: a mutex keeps them apart. */
struct demo_reports {
	pthread_mutex_t lock;
	unsigned next;
	struct slot slots[SLOTS];
};

static struct slot *
find(struct demo_reports *r, const char *id)
{
	for (int i = 0; i < SLOTS; i++)
		if (strcmp(r->slots[i].id, id) == 0)
			return &r->slots[i];
	return NULL;
}

/* Files id as running (done = false) or done with its JSON. */
static void
file_report(struct demo_reports *r, const char *id, const char *json)
{
	pthread_mutex_lock(&r->lock);
	struct slot *s = find(r, id);
	if (!s) {
		s = &r->slots[r->next++ % SLOTS]; /* evicts the oldest */
		snprintf(s->id, sizeof(s->id), "%s", id);
	}
	s->done = json != NULL;
	snprintf(s->json, sizeof(s->json), "%s", json ? json : "");
	pthread_mutex_unlock(&r->lock);
}

static int
report(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct demo *d = userdata;
	const char *id = evfn_event_id(ev);
	file_report(d->reports, id, NULL);

	int64_t count, cents;
	if (demo_ledger_summary(ctx, &count, &cents) != 0) {
		evfn_ctx_set_error(ctx, "ledger busy");
		return EVFN_RETRY;
	}
	/* Rendering a real report takes a while: pretend, politely. */
	struct timespec render = {0, 150 * 1000000L};
	while (nanosleep(&render, &render) != 0 && !evfn_ctx_cancelled(ctx))
		;
	char json[200];
	snprintf(json, sizeof(json),
	         "{\"id\":\"%s\",\"status\":\"done\",\"payments\":%lld,"
	         "\"revenue_cents\":%lld}",
	         id, (long long)count, (long long)cents);
	file_report(d->reports, id, json);
	return EVFN_OK;
}

/* POST /report-status, body = a report id. Answers 200 with the report,
 * 202 while it is being built, 404 when the table does not hold the id:
 * still queued, evicted, or never issued. */
static int
report_status(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct demo *d = userdata;
	size_t len;
	const char *body = evfn_event_data(ev, &len);
	char id[40];
	snprintf(id, sizeof(id), "%.*s", (int)(len < 39 ? len : 39),
	         body ? body : "");
	id[strcspn(id, " \r\n")] = '\0';

	char json[200];
	const char *status = "404";
	pthread_mutex_lock(&d->reports->lock);
	struct slot *s = id[0] ? find(d->reports, id) : NULL;
	if (s && s->done) {
		status = "200";
		snprintf(json, sizeof(json), "%s", s->json);
	} else if (s) {
		status = "202";
		snprintf(json, sizeof(json), "{\"status\":\"running\"}");
	} else {
		snprintf(json, sizeof(json), "{\"status\":\"unknown\"}");
	}
	pthread_mutex_unlock(&d->reports->lock);

	evfn_ctx_set_meta(ctx, "status", status);
	evfn_ctx_set_meta(ctx, "header.Content-Type", "application/json");
	return evfn_ctx_respond(ctx, json, strlen(json)) == 0 ? EVFN_OK
	                                                      : EVFN_RETRY;
}

int
demo_reports_setup(struct demo *d)
{
	d->reports = calloc(1, sizeof(*d->reports));
	if (!d->reports)
		return EVFN_ENOMEM;
	pthread_mutex_init(&d->reports->lock, NULL);

	evfn_fn_options *o;
	int rc = evfn_fn_options_new(&o);
	if (rc)
		return rc;
	evfn_fn_options_set_concurrency(o, 2);
	demo_ledger_hooks(o);
	rc = evfn_register(d->rt, "report", report, d, o, NULL);
	if (!rc) {
		/* A lookup takes microseconds: run it on the loop thread. */
		evfn_fn_options_free(o);
		o = NULL;
		if (!(rc = evfn_fn_options_new(&o))) {
			evfn_fn_options_set_executor(o, EVFN_EXECUTOR_LOOP);
			rc = evfn_register(d->rt, "report-status",
			                   report_status, d, o, NULL);
		}
	}
	evfn_fn_options_free(o);
	if (rc)
		return rc;

	evfn_route_options *ro;
	if ((rc = evfn_route_options_new(&ro)))
		return rc;
	evfn_route_options_set_async(ro, true);
	rc = evfn_http_route(d->http, "POST /reports", "report", ro);
	evfn_route_options_free(ro);
	if (!rc)
		rc = evfn_http_route(d->http, "POST /report-status",
		                     "report-status", NULL);
	return rc;
}

void
demo_reports_free(struct demo *d)
{
	if (!d->reports)
		return;
	pthread_mutex_destroy(&d->reports->lock);
	free(d->reports);
	d->reports = NULL;
}
