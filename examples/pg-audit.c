/* SPDX-License-Identifier: MIT */
/*
 * pg-audit: a host that keeps its data in PostgreSQL and writes an audit
 * log of every insert, update and delete on the tables of a publication,
 * one line per committed row change, in commit order, without a separate
 * CDC pipeline. The changes come through the pg source (logical decoding,
 * at least once: a line may repeat after a crash, never go missing).
 *
 *   pg-audit [--conninfo STR] [--publication NAME] [--log FILE] [--demo]
 *
 * conninfo defaults to libpq's environment (PGHOST, PGPORT ...), the
 * publication to "audited", the log to standard output. The host runs
 * until SIGINT or SIGTERM. --demo creates a table "accounts" in that
 * publication, makes a few changes of its own, checks that each one is in
 * the log, and exits (what ./dev test runs, inside a throwaway cluster
 * from tests/pg-cluster.sh).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <evfn.h>
#include <evfn/pg.h>

struct audit {
	FILE *out;
	unsigned lines;
};

/* One line a change: commit time, operation, table, key, the row. One
 * change at a time (the source holds one event at most), so lines follow
 * commit order and writing needs no lock. */
static int
write_line(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	struct audit *a = userdata;
	/* type: pg.<schema>.<table>.<operation> */
	const char *type = evfn_event_type(ev) + 3;
	const char *op = strrchr(type, '.');
	time_t secs = (time_t)(evfn_event_time(ev) / 1000000000);
	struct tm tm;
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&secs, &tm));
	size_t len;
	const char *row = evfn_event_data(ev, &len);
	const char *key = evfn_event_subject(ev);
	if (fprintf(a->out, "%s %-6s %.*s key=%s xid=%s %.*s\n", when, op + 1,
	            (int)(op - type), type, key ? key : "-",
	            evfn_event_extension(ev, "pgxid"), (int)len, row) < 0 ||
	    fflush(a->out) != 0)
		return EVFN_RETRY; /* the disk may come back */
	a->lines++;
	return EVFN_OK;
}

/* --demo: a table in the publication, and changes to it. */
static int
run_sql(PGconn *db, const char *sql)
{
	PGresult *r = PQexec(db, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
	         PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "pg-audit: %s: %s", sql, PQerrorMessage(db));
	PQclear(r);
	return ok ? 0 : -1;
}

static const char *const demo_setup[] = {
	"DROP PUBLICATION IF EXISTS audited",
	"DROP TABLE IF EXISTS accounts",
	"CREATE TABLE accounts (id int PRIMARY KEY, owner text, "
	"balance numeric NOT NULL)",
	"CREATE PUBLICATION audited FOR TABLE accounts",
};

static const char *const demo_changes[] = {
	"INSERT INTO accounts VALUES (1, 'ada', 100), (2, 'alan', 50)",
	"BEGIN; UPDATE accounts SET balance = balance - 30 WHERE id = 1; "
	"UPDATE accounts SET balance = balance + 30 WHERE id = 2; COMMIT",
	"DELETE FROM accounts WHERE id = 2",
};
#define DEMO_ROWS 5 /* changes the statements above make */

int
main(int argc, char **argv)
{
	const char *conninfo = "", *publication = "audited", *log = NULL;
	int demo = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--conninfo") && i + 1 < argc)
			conninfo = argv[++i];
		else if (!strcmp(argv[i], "--publication") && i + 1 < argc)
			publication = argv[++i];
		else if (!strcmp(argv[i], "--log") && i + 1 < argc)
			log = argv[++i];
		else if (!strcmp(argv[i], "--demo"))
			demo = 1;
		else {
			fprintf(stderr, "usage: pg-audit [--conninfo STR] "
			        "[--publication NAME] [--log FILE] [--demo]\n");
			return 2;
		}
	}
	PGconn *db = NULL;
	if (demo) {
		db = PQconnectdb(conninfo);
		if (PQstatus(db) != CONNECTION_OK) {
			fprintf(stderr, "pg-audit: %s", PQerrorMessage(db));
			return 1;
		}
		run_sql(db, "SET client_min_messages = warning");
		for (size_t i = 0; i < sizeof(demo_setup) / sizeof(*demo_setup); i++)
			if (run_sql(db, demo_setup[i]))
				return 1;
	}
	struct audit a = {.out = log ? fopen(log, "a") : stdout};
	if (!a.out) {
		perror(log);
		return 1;
	}

	/* SIGINT and SIGTERM wait for sigwait() below: blocked before evfn
	 * starts its threads, which inherit the mask. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	evfn_rt *rt;
	evfn_fn_options *fo;
	if (evfn_rt_new(&rt, NULL) || evfn_fn_options_new(&fo))
		return 1;
	evfn_fn_options_set_attempts(fo, 10);
	evfn_register(rt, "audit", write_line, &a, fo, NULL);
	evfn_fn_options_free(fo);
	evfn_rt_start(rt);

	evfn_pg_options *po;
	evfn_pg_source *src;
	int rc = evfn_pg_options_new(&po);
	if (!rc)
		rc = evfn_pg_options_set_conninfo(po, conninfo);
	/* Strict commit order across rows, not only per row. */
	if (!rc)
		rc = evfn_pg_options_set_max_in_flight(po, 1);
	if (!rc)
		rc = evfn_pg_source_new(&src, rt, publication, "audit", po);
	evfn_pg_options_free(po);
	if (rc) {
		fprintf(stderr, "pg-audit: %s\n", evfn_strerror(rc));
		return 1;
	}
	int status = 0;
	if (demo) {
		/* Changes made once the slot exists are the ones it sees. */
		for (int i = 0; i < 1000 && !evfn_pg_source_stat(
		                                 src, EVFN_PG_STAT_CONNECTS); i++)
			usleep(10000);
		for (size_t i = 0; i < sizeof(demo_changes) / sizeof(*demo_changes);
		     i++)
			if (run_sql(db, demo_changes[i]))
				status = 1;
		for (int i = 0; i < 1000 && evfn_pg_source_stat(
		                   src, EVFN_PG_STAT_ENDED) < DEMO_ROWS; i++)
			usleep(10000);
		if (a.lines != DEMO_ROWS) {
			fprintf(stderr, "pg-audit: %u lines, expected %d (status "
			        "%s)\n", a.lines, DEMO_ROWS,
			        evfn_err_name(evfn_pg_source_status(src)));
			status = 1;
		}
	} else {
		int sig;
		sigwait(&stop, &sig);
	}
	if (evfn_pg_source_status(src) != 0) {
		fprintf(stderr, "pg-audit: source: %s\n",
		        evfn_strerror(evfn_pg_source_status(src)));
		status = 1;
	}
	evfn_pg_source_free(src);
	evfn_rt_drain(rt, 5000, NULL, NULL);
	if (evfn_rt_free(rt) != 0)
		status = 1;
	if (demo) {
		/* The slot stays for the next run; the demo cleans up. */
		run_sql(db, "SELECT pg_drop_replication_slot('evfn_audited') "
		            "FROM pg_replication_slots WHERE NOT active AND "
		            "slot_name = 'evfn_audited'");
		PQfinish(db);
	}
	if (log)
		fclose(a.out);
	return status;
}
