/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL row changes through evfn's pg source, beside the rate at
 * which the same server takes the inserts that make them. Runs inside a
 * throwaway cluster (tests/pg-cluster.sh run bench-pg ...), and in each
 * round, back to back:
 *   insert   pgbench inserts ROWS rows, one a transaction, from 2 clients
 *            (-n -c 2 -j 2): the server's insert rate, the ceiling
 *            (then the slot is moved past them, so that the next source
 *            run starts with no backlog);
 *   source   the same inserts while a pg source streams them to a no-op
 *            function: rows from the first commit to the last handler
 *            end, per second;
 *   latency  pgbench paced at RATE transactions a second for SECS s with
 *            the source on: commit (the transaction's commit time, from
 *            the stream) to handler start, p50 and p99.
 * Prints one JSON object a round. bench/run.py takes medians over the
 * rounds and the ratio source/insert per round.
 * Usage: bench-pg [--rounds R] [--rows N] [--rate RATE] [--secs SECS]
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <evfn.h>
#include <evfn/pg.h>

static int64_t
wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
die(const char *what, const char *why)
{
	fprintf(stderr, "bench-pg: %s: %s\n", what, why);
	exit(1);
}

static void
exec_sql(PGconn *db, const char *sql)
{
	PGresult *r = PQexec(db, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		die(sql, PQerrorMessage(db));
	PQclear(r);
}

/* Runs pgbench with the insert script and options ("-t", N or "-R",
 * RATE, "-T", SECS; NULL ends them) and returns the tps it reports,
 * connection time excluded. */
static double
pgbench(const char *script, const char *opt1, const char *val1,
        const char *opt2, const char *val2)
{
	int out[2];
	if (pipe(out))
		die("pipe", "failed");
	pid_t pid = fork();
	if (pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		execlp("pgbench", "pgbench", "-n", "-c", "2", "-j", "2", "-f",
		       script, opt1, val1, opt2, val2, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	char buf[8192];
	size_t n = 0;
	ssize_t r;
	while (n + 1 < sizeof(buf) &&
	       (r = read(out[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(out[0]);
	int st;
	waitpid(pid, &st, 0);
	const char *tps = strstr(buf, "tps = ");
	if (!WIFEXITED(st) || WEXITSTATUS(st) || !tps)
		die("pgbench", buf);
	return atof(tps + 6);
}

/* ---- the function ----------------------------------------------------------- */

static struct {
	long long baseline; /* rows with larger ids count */
	atomic_long count;
	atomic_llong first_commit_ns; /* earliest commit seen */
	atomic_llong last_end_ns;
	/* Latency samples (commit to start, ns), when on. */
	atomic_bool sampling;
	int64_t *samples;
	atomic_long nsamples;
	long max_samples;
} run;

static int
noop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)userdata;
	int64_t now = wall_ns();
	int64_t commit = evfn_event_time(ev);
	/* A row of an earlier round delivered again (its end had not
	 * reached the slot when that round's source closed) counts not. */
	const char *id = evfn_event_subject(ev);
	if (!id || atoll(id) <= run.baseline)
		return EVFN_OK;
	if (atomic_load_explicit(&run.sampling, memory_order_relaxed)) {
		long i = atomic_fetch_add(&run.nsamples, 1);
		if (i < run.max_samples)
			run.samples[i] = now - commit;
	}
	long long first = atomic_load(&run.first_commit_ns);
	while ((first == 0 || commit < first) &&
	       !atomic_compare_exchange_weak(&run.first_commit_ns, &first,
	                                     commit))
		;
	atomic_fetch_add(&run.count, 1);
	atomic_store(&run.last_end_ns, wall_ns());
	return EVFN_OK;
}

static long long
max_id(PGconn *db)
{
	PGresult *r = PQexec(db, "SELECT coalesce(max(id), 0) FROM bench_rows");
	long long v = PQresultStatus(r) == PGRES_TUPLES_OK
	                      ? atoll(PQgetvalue(r, 0, 0))
	                      : 0;
	PQclear(r);
	return v;
}

static void
reset(PGconn *db)
{
	run.baseline = max_id(db);
	atomic_store(&run.count, 0);
	atomic_store(&run.first_commit_ns, 0);
	atomic_store(&run.last_end_ns, 0);
	atomic_store(&run.nsamples, 0);
}

/* Waits until the function has seen n rows. */
static void
wait_rows(long n)
{
	int64_t until = wall_ns() + 120 * INT64_C(1000000000);
	while (atomic_load(&run.count) < n) {
		if (wall_ns() > until)
			die("rows", "not all arrived within 120 s");
		usleep(1000);
	}
}

/* Moves the slot past everything written so far, once the source that
 * used it is gone; a new slot is created at the first call. */
static void
skip_backlog(PGconn *db)
{
	for (int i = 0; i < 10000; i++) {
		PGresult *r = PQexec(db, "SELECT count(*) FROM "
		                     "pg_replication_slots WHERE slot_name = "
		                     "'bench' AND active");
		bool active = PQresultStatus(r) == PGRES_TUPLES_OK &&
		              atoi(PQgetvalue(r, 0, 0)) > 0;
		PQclear(r);
		if (!active)
			break;
		usleep(1000);
	}
	exec_sql(db, "SELECT pg_create_logical_replication_slot('bench', "
	             "'pgoutput') WHERE NOT EXISTS (SELECT 1 FROM "
	             "pg_replication_slots WHERE slot_name = 'bench')");
	exec_sql(db, "SELECT pg_replication_slot_advance('bench', "
	             "pg_current_wal_lsn())");
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	int rounds = 3, rate = 2000, secs = 3;
	long rows = 50000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rows"))
			rows = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--rate"))
			rate = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--secs"))
			secs = atoi(argv[i + 1]);
	}
	const char *conninfo = getenv("EVFN_PG_CONNINFO");
	if (!conninfo)
		die("EVFN_PG_CONNINFO", "unset: run through tests/pg-cluster.sh");
	PGconn *db = PQconnectdb(conninfo);
	if (PQstatus(db) != CONNECTION_OK)
		die("connect", PQerrorMessage(db));
	exec_sql(db, "SET client_min_messages = warning");
	exec_sql(db, "DROP TABLE IF EXISTS bench_rows");
	exec_sql(db, "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, "
	             "v text)");
	exec_sql(db, "DROP PUBLICATION IF EXISTS bench");
	exec_sql(db, "CREATE PUBLICATION bench FOR TABLE bench_rows");
	/* In the cluster's directory, which pg-cluster.sh removes. */
	char script[256];
	snprintf(script, sizeof(script), "%s/bench-insert.XXXXXX",
	         getenv("PGHOST") ? getenv("PGHOST") : "/tmp");
	int fd = mkstemp(script);
	const char *line = "INSERT INTO bench_rows (v) VALUES ('row');\n";
	if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		die("script", "cannot write");
	close(fd);
	run.max_samples = (long)rate * secs * 2;
	run.samples = malloc(sizeof(int64_t) * (size_t)run.max_samples);

	evfn_rt_options *ro;
	evfn_rt_options_new(&ro);
	evfn_rt_options_set_workers(ro, 1, 1);
	evfn_rt *rt;
	evfn_rt_new(&rt, ro);
	evfn_rt_options_free(ro);
	evfn_fn_options *fo;
	evfn_fn_options_new(&fo);
	evfn_fn_options_set_queue_capacity(fo, 1 << 16);
	evfn_register(rt, "noop", noop, NULL, fo, NULL);
	evfn_fn_options_free(fo);
	evfn_rt_start(rt);

	char per_client[24];
	snprintf(per_client, sizeof(per_client), "%ld", rows / 2);
	char rate_s[16], secs_s[16];
	snprintf(rate_s, sizeof(rate_s), "%d", rate);
	snprintf(secs_s, sizeof(secs_s), "%d", secs);
	for (int r = 0; r < rounds; r++) {
		/* Alternating which runs first, as run.py does for pairs. */
		double insert_rate = 0, source_rate = 0, cpu_us = 0;
		for (int step = 0; step < 2; step++) {
			bool with_source = (step == 0) == (r % 2 == 1);
			if (!with_source) {
				insert_rate = pgbench(script, "-t", per_client,
				                      NULL, NULL);
				/* No backlog for the next source run: the slot
				 * (free by now) moves past these rows. */
				skip_backlog(db);
				continue;
			}
			evfn_pg_options *po;
			evfn_pg_source *src;
			evfn_pg_options_new(&po);
			evfn_pg_options_set_conninfo(po, conninfo);
			evfn_pg_options_set_slot(po, "bench", true);
			if (evfn_pg_source_new(&src, rt, "bench", "noop", po))
				die("source", "not created");
			evfn_pg_options_free(po);
			while (!evfn_pg_source_stat(src, EVFN_PG_STAT_CONNECTS))
				usleep(1000);
			reset(db);
			struct rusage ru0, ru1;
			getrusage(RUSAGE_SELF, &ru0);
			(void)pgbench(script, "-t", per_client, NULL, NULL);
			wait_rows(rows);
			getrusage(RUSAGE_SELF, &ru1);
			cpu_us = ((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 +
			          (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
			          (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 +
			          (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec)) /
			         (double)rows;
			source_rate = (double)rows * 1e9 /
			              (double)(atomic_load(&run.last_end_ns) -
			                       atomic_load(&run.first_commit_ns));
			/* Latency at a pace the server keeps easily. */
			reset(db);
			atomic_store(&run.sampling, true);
			(void)pgbench(script, "-R", rate_s, "-T", secs_s);
			wait_rows(max_id(db) - run.baseline);
			atomic_store(&run.sampling, false);
			evfn_pg_source_free(src);
		}
		long n = atomic_load(&run.nsamples);
		if (n > run.max_samples)
			n = run.max_samples;
		qsort(run.samples, (size_t)n, sizeof(int64_t), cmp64);
		double p50 = n ? run.samples[n / 2] / 1e3 : 0;
		double p99 = n ? run.samples[n * 99 / 100] / 1e3 : 0;
		printf("{\"round\": %d, \"rows\": %ld, \"insert_rows_per_s\": "
		       "%.1f, \"pg_rows_per_s\": %.1f, \"ratio\": %.4f, "
		       "\"latency_samples\": %ld, \"p50_us\": %.1f, "
		       "\"p99_us\": %.1f, \"cpu_us_per_row\": %.2f}\n",
		       r, rows, insert_rate, source_rate,
		       source_rate / insert_rate, n, p50, p99, cpu_us);
		fflush(stdout);
	}
	unlink(script);
	evfn_rt_drain(rt, 5000, NULL, NULL);
	evfn_rt_free(rt);
	PQfinish(db);
	free(run.samples);
	return 0;
}
