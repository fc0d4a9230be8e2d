/* SPDX-License-Identifier: MIT */
/*
 * Payments: Stripe posts signed webhooks to POST /webhooks/stripe. The
 * route checks the Stripe-Signature header before any code runs, the
 * "payment" function acknowledges synchronously with a ledger entry, and
 * its on_success destination hands that entry to "bookkeeping", which
 * writes it to SQLite through a connection each worker opens once (the
 * warm state a serverless function would rebuild on every cold start).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "demo.h"

/* A worker's warm state: its own connection and prepared statements.
 * SQLite connections must not be shared between threads without a mutex;
 * one per worker needs none. "report" (reports.c) uses the same state. */
struct ledger_conn {
	sqlite3 *db;
	sqlite3_stmt *insert;
	sqlite3_stmt *summary;
};

static void
ledger_close(void *userdata, void *state)
{
	struct ledger_conn *c = state;
	sqlite3_finalize(c->insert);
	sqlite3_finalize(c->summary);
	sqlite3_close(c->db);
	free(c);
}

/* Worker init hook: runs once per worker thread, before its first
 * invocation. A failure makes that attempt a RETRY. */
static int
ledger_open(void *userdata, void **state)
{
	const struct demo *d = userdata;
	struct ledger_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return EVFN_ENOMEM;
	if (sqlite3_open_v2(d->db, &c->db, SQLITE_OPEN_READWRITE, NULL) ||
	    sqlite3_busy_timeout(c->db, 1000) ||
	    sqlite3_prepare_v2(c->db,
	                       "INSERT OR IGNORE INTO ledger"
	                       " (payment, amount_cents, currency)"
	                       " VALUES (?1, ?2, ?3)",
	                       -1, &c->insert, NULL) ||
	    sqlite3_prepare_v2(c->db,
	                       "SELECT count(*), coalesce(sum(amount_cents), 0)"
	                       " FROM ledger",
	                       -1, &c->summary, NULL)) {
		fprintf(stderr, "demo: ledger: %s\n", sqlite3_errmsg(c->db));
		ledger_close(userdata, c);
		return EVFN_EINVAL;
	}
	*state = c;
	return 0;
}

/* Copies the value of "key" in a flat JSON object into buf (quotes
 * stripped). A demo needs no full JSON parser for payloads it knows the
 * shape of; a real host would use one (jansson is what evfn links). */
static bool
json_field(const char *json, size_t len, const char *key, char *buf,
           size_t size)
{
	char pattern[64];
	snprintf(pattern, sizeof(pattern), "\"%s\":", key);
	const char *end = json + len;
	const char *p = memmem(json, len, pattern, strlen(pattern));
	if (!p)
		return false;
	p += strlen(pattern);
	while (p < end && *p == ' ')
		p++;
	if (p < end && *p == '"')
		p++;
	size_t n = 0;
	while (p + n < end && !strchr("\",}", p[n]))
		n++;
	if (n == 0 || n >= size)
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}

/* POST /webhooks/stripe. The signature was checked by the route; this
 * answers Stripe at once with the ledger entry, which the on_success
 * destination passes on to "bookkeeping". */
static int
payment(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	size_t len;
	const char *body = evfn_event_data(ev, &len);
	char id[64], amount[24], currency[8];
	if (!body || !json_field(body, len, "id", id, sizeof(id)) ||
	    !json_field(body, len, "amount", amount, sizeof(amount)) ||
	    !json_field(body, len, "currency", currency, sizeof(currency))) {
		evfn_ctx_set_error(ctx, "malformed payment event");
		return EVFN_FAIL; /* retrying cannot fix the payload */
	}
	char entry[160];
	int n = snprintf(entry, sizeof(entry),
	                 "{\"payment\":\"%s\",\"amount\":%lld,"
	                 "\"currency\":\"%s\"}",
	                 id, strtoll(amount, NULL, 10), currency);
	if (evfn_ctx_set_meta(ctx, "header.Content-Type", "application/json") ||
	    evfn_ctx_respond(ctx, entry, (size_t)n))
		return EVFN_RETRY;
	return EVFN_OK;
}

/* Writes one ledger entry. INSERT OR IGNORE keyed by the payment id makes
 * a redelivered entry harmless. */
static int
bookkeeping(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct ledger_conn *c = evfn_ctx_worker_state(ctx);
	size_t len;
	const char *entry = evfn_event_data(ev, &len);
	char id[64], amount[24], currency[8];
	if (!entry || !json_field(entry, len, "payment", id, sizeof(id)) ||
	    !json_field(entry, len, "amount", amount, sizeof(amount)) ||
	    !json_field(entry, len, "currency", currency, sizeof(currency))) {
		evfn_ctx_set_error(ctx, "malformed ledger entry");
		return EVFN_FAIL;
	}
	sqlite3_bind_text(c->insert, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(c->insert, 2, strtoll(amount, NULL, 10));
	sqlite3_bind_text(c->insert, 3, currency, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(c->insert);
	sqlite3_reset(c->insert);
	if (rc != SQLITE_DONE) {
		/* SQLITE_BUSY and friends are transient: back off, retry. */
		evfn_ctx_errorf(ctx, "ledger: %s", sqlite3_errstr(rc));
		return EVFN_RETRY;
	}
	return EVFN_OK;
}

int
demo_ledger_summary(evfn_ctx *ctx, int64_t *count, int64_t *cents)
{
	struct ledger_conn *c = evfn_ctx_worker_state(ctx);
	int rc = sqlite3_step(c->summary);
	if (rc == SQLITE_ROW) {
		*count = sqlite3_column_int64(c->summary, 0);
		*cents = sqlite3_column_int64(c->summary, 1);
	}
	sqlite3_reset(c->summary);
	return rc == SQLITE_ROW ? 0 : EVFN_EBUSY;
}

int
demo_ledger_hooks(evfn_fn_options *o)
{
	return evfn_fn_options_set_worker_hooks(o, ledger_open, ledger_close);
}

static int
create_schema(const char *path)
{
	sqlite3 *db;
	int rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		/* WAL lets the report readers run beside the writer. */
		rc = sqlite3_exec(db,
		                  "PRAGMA journal_mode=WAL;"
		                  /* IF NOT EXISTS: --crash restarts on it. */
		                  "CREATE TABLE IF NOT EXISTS ledger ("
		                  " payment TEXT PRIMARY KEY,"
		                  " amount_cents INTEGER NOT NULL,"
		                  " currency TEXT NOT NULL,"
		                  " booked_at TEXT DEFAULT CURRENT_TIMESTAMP)",
		                  NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "demo: %s: %s\n", path, sqlite3_errmsg(db));
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : EVFN_EINVAL;
}

int64_t
demo_ledger_count(const struct demo *d, int64_t *cents)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int64_t count = -1;
	if (sqlite3_open_v2(d->db, &db, SQLITE_OPEN_READONLY, NULL) ==
	            SQLITE_OK &&
	    sqlite3_prepare_v2(db,
	                       "SELECT count(*), coalesce(sum(amount_cents), 0)"
	                       " FROM ledger",
	                       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		count = sqlite3_column_int64(st, 0);
		*cents = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return count;
}

int
demo_payments_setup(struct demo *d)
{
	int rc = create_schema(d->db);
	if (rc)
		return rc;

	/* "payment" answers Stripe, then its response goes to
	 * "bookkeeping": the acknowledgement never waits for the database. */
	evfn_fn_options *o;
	if ((rc = evfn_fn_options_new(&o)))
		return rc;
	evfn_fn_options_set_timeout_ms(o, 1000);
	evfn_fn_options_set_destinations(o, "bookkeeping", NULL);
	rc = evfn_register(d->rt, "payment", payment, NULL, o, NULL);
	evfn_fn_options_free(o);
	if (rc)
		return rc;

	/* SQLite has one writer at a time: two workers are plenty, and a
	 * busy database is retried quickly. */
	if ((rc = evfn_fn_options_new(&o)))
		return rc;
	evfn_fn_options_set_concurrency(o, 2);
	evfn_fn_options_set_attempts(o, 5);
	evfn_fn_options_set_backoff(o, EVFN_BACKOFF_EXPONENTIAL, 10, 2.0, 200,
	                            EVFN_JITTER_FULL);
	demo_ledger_hooks(o);
	rc = evfn_register(d->rt, "bookkeeping", bookkeeping, d, o, NULL);
	evfn_fn_options_free(o);
	if (rc)
		return rc;

	/* Stripe's libraries accept signatures up to five minutes old. */
	evfn_route_options *ro;
	if ((rc = evfn_route_options_new(&ro)))
		return rc;
	evfn_route_options_set_stripe_secret(ro, DEMO_STRIPE_SECRET, 300);
	evfn_route_options_set_timeout_ms(ro, 5000);
	rc = evfn_http_route(d->http, "POST /webhooks/stripe", "payment", ro);
	evfn_route_options_free(ro);
	return rc;
}
