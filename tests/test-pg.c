/* SPDX-License-Identifier: MIT */
/*
 * The PostgreSQL sources against a real server: a throwaway cluster that
 * tests/pg-cluster.sh starts around this binary (run by hand, the binary
 * re-executes itself through that script). Changes made with psql and
 * with libpq arrive once each in commit order with the documented
 * mapping; handler failures retry and dead-letter; the slot position
 * never passes an event that has not ended; a host SIGKILLed mid-stream
 * (this binary re-executed with --child) resumes from the slot with
 * nothing lost and nothing repeated that had ended; a server restart; a
 * 100,000-row insert with bounded memory; LISTEN/NOTIFY; and the specific
 * errors: malformed conninfo, unreachable server, unknown role and
 * database, missing publication, role without REPLICATION, missing and
 * dropped slots. Each case uses its own tables, publication and slot.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <evfn/pg.h>

#include "harness.h"

/* ---- the server ----------------------------------------------------------- */

static PGconn *db; /* the test's own connection, for setup and checks */

static const char *
conninfo(void)
{
	const char *c = getenv("EVFN_PG_CONNINFO");
	if (!c)
		fail_msg("EVFN_PG_CONNINFO unset: run through tests/pg-cluster.sh");
	return c;
}

/* Runs SQL on the test's connection; fails the test on an error. Returns
 * the first column of the first row, or "" (static buffer). */
static const char *
sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *
sql(const char *fmt, ...)
{
	static char out[256];
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	PGresult *r = PQexec(db, q);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
		PQclear(r);
		fail_msg("SQL failed: %s\n%s", q, msg);
	}
	out[0] = '\0';
	if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		snprintf(out, sizeof(out), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

static long long
sql_int(const char *fmt, const char *arg)
{
	return atoll(sql(fmt, arg));
}

/* Runs a script with psql (the standard client), each statement in its
 * own transaction unless the script says BEGIN; fails the test unless
 * every statement succeeds. */
static void
psql(const char *script)
{
	int in[2];
	assert_int_equal(pipe(in), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(in[0], 0);
		dup2(null, 1);
		close(in[1]);
		execlp("psql", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f",
		       "-", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	size_t len = strlen(script);
	assert_int_equal(write(in[1], script, len), (ssize_t)len);
	close(in[1]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("psql failed (status %d): %s", st, script);
}

/* A table t<n>(id int primary key, v text) in a publication p<n>, for
 * the case numbered n. */
static void
make_table(const char *name, const char *columns)
{
	sql("DROP PUBLICATION IF EXISTS p_%s", name);
	sql("DROP TABLE IF EXISTS %s", name);
	sql("CREATE TABLE %s (%s)", name, columns);
	sql("CREATE PUBLICATION p_%s FOR TABLE %s", name, name);
}

static uint64_t
parse_lsn(const char *s)
{
	unsigned hi, lo;
	if (sscanf(s, "%X/%X", &hi, &lo) != 2)
		return 0;
	return (uint64_t)hi << 32 | lo;
}

/* The slot's confirmed position on the server (0 when it has none). */
static uint64_t
slot_confirmed(const char *slot)
{
	return parse_lsn(sql("SELECT confirmed_flush_lsn FROM "
	                     "pg_replication_slots WHERE slot_name = '%s'",
	                     slot));
}

static uint64_t
current_lsn(void)
{
	return parse_lsn(sql("SELECT pg_current_wal_lsn()"));
}

/* ---- what the handlers saw ---------------------------------------------- */

#define MAX_SEEN 4096

struct seen {
	char type[96];
	char subject[64];
	char id[48];
	char lsn[24];
	char xid[16];
	char okey[96];
	char data[512];
	int64_t time;
};

static struct {
	pthread_mutex_t lock;
	struct seen v[MAX_SEEN];
	atomic_int n;
	atomic_int bad;   /* events without the attributes every one has */
	/* Behaviour: a subject that fails once (RETRY), one that always
	 * fails (FAIL), one that blocks until released. */
	char retry_once[32];
	char fail_always[32];
	char block[32];
	atomic_bool released;
	atomic_int attempts;
} rec = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
rec_reset(void)
{
	pthread_mutex_lock(&rec.lock);
	atomic_store(&rec.n, 0);
	atomic_store(&rec.bad, 0);
	atomic_store(&rec.released, false);
	atomic_store(&rec.attempts, 0);
	rec.retry_once[0] = rec.fail_always[0] = rec.block[0] = '\0';
	pthread_mutex_unlock(&rec.lock);
}

static void
copy_attr(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static int
record_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	atomic_fetch_add(&rec.attempts, 1);
	const char *subject = evfn_event_subject(ev);
	subject = subject ? subject : "";
	if (rec.block[0] && !strcmp(subject, rec.block))
		while (!atomic_load(&rec.released))
			test_sleep_ms(1);
	if (rec.fail_always[0] && !strcmp(subject, rec.fail_always)) {
		evfn_ctx_set_error(ctx, "refused by the test");
		return EVFN_FAIL;
	}
	if (rec.retry_once[0] && !strcmp(subject, rec.retry_once) &&
	    evfn_ctx_attempt(ctx) == 1)
		return EVFN_RETRY;
	const char *src = evfn_event_source(ev);
	const char *dct = evfn_event_datacontenttype(ev);
	if (!src || strncmp(src, "evfn/pg/", 8) || !dct ||
	    strcmp(dct, "application/json") || !evfn_event_time(ev))
		atomic_fetch_add(&rec.bad, 1);
	pthread_mutex_lock(&rec.lock);
	int i = atomic_load(&rec.n);
	if (i < MAX_SEEN) {
		struct seen *s = &rec.v[i];
		size_t len;
		const char *d = evfn_event_data(ev, &len);
		snprintf(s->data, sizeof(s->data), "%.*s", (int)len,
		         d ? d : "");
		copy_attr(s->type, sizeof(s->type), evfn_event_type(ev));
		copy_attr(s->subject, sizeof(s->subject), subject);
		copy_attr(s->id, sizeof(s->id), evfn_event_id(ev));
		copy_attr(s->lsn, sizeof(s->lsn),
		          evfn_event_extension(ev, "pglsn"));
		copy_attr(s->xid, sizeof(s->xid),
		          evfn_event_extension(ev, "pgxid"));
		copy_attr(s->okey, sizeof(s->okey),
		          evfn_event_ordering_key(ev));
		s->time = evfn_event_time(ev);
		atomic_store(&rec.n, i + 1);
	}
	pthread_mutex_unlock(&rec.lock);
	return EVFN_OK;
}

static int
seen_count(void)
{
	return atomic_load(&rec.n);
}

/* The i-th event seen as "type subject data". */
static const char *
seen_line(int i)
{
	static char line[700];
	pthread_mutex_lock(&rec.lock);
	snprintf(line, sizeof(line), "%s %s %s", rec.v[i].type,
	         rec.v[i].subject, rec.v[i].data);
	pthread_mutex_unlock(&rec.lock);
	return line;
}

/* ---- runtime and sources ---------------------------------------------- */

static evfn_rt *
start_runtime(int concurrency, int queue, int attempts)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 1, 4));
	evfn_rt *rt;
	ASSERT_OK(evfn_runtime_new(&rt, o));
	evfn_rt_options_free(o);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_concurrency(fo, concurrency));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, attempts));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 5, 1, 5,
	                                      EVFN_JITTER_NONE));
	if (queue)
		ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, queue));
	ASSERT_OK(evfn_register(rt, "rows", record_handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_runtime_start(rt));
	return rt;
}

static void
stop_runtime(evfn_rt *rt)
{
	ASSERT_OK(evfn_runtime_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_runtime_free(rt));
}

static evfn_pg_options *
options(const char *slot)
{
	evfn_pg_options *o;
	ASSERT_OK(evfn_pg_options_new(&o));
	ASSERT_OK(evfn_pg_options_set_conninfo(o, conninfo()));
	if (slot)
		ASSERT_OK(evfn_pg_options_set_slot(o, slot, true));
	ASSERT_OK(evfn_pg_options_set_feedback_ms(o, 10));
	ASSERT_OK(evfn_pg_options_set_reconnect(o, 20, 200));
	return o;
}

static evfn_pg_source *
new_source(evfn_rt *rt, const char *publication, evfn_pg_options *o)
{
	evfn_pg_source *src;
	ASSERT_OK(evfn_pg_source_new(&src, rt, publication, "rows", o));
	evfn_pg_options_free(o);
	return src;
}

/* Waits until the source streams (status 0 after a connection). */
static void
wait_streaming(evfn_pg_source *src)
{
	WAIT_FOR(evfn_pg_source_stat(src, EVFN_PG_STAT_CONNECTS) > 0 &&
	         evfn_pg_source_status(src) == 0, 10000);
}

static void
drop_slot(const char *slot)
{
	sql("SELECT pg_drop_replication_slot(slot_name) FROM "
	    "pg_replication_slots WHERE slot_name = '%s'", slot);
}

/* ---- cases --------------------------------------------------------------- */

static void
test_pg_options_refuse_bad_values(void **state)
{
	(void)state;
	evfn_pg_options *o;
	ASSERT_RC(evfn_pg_options_new(NULL), EVFN_EINVAL);
	ASSERT_OK(evfn_pg_options_new(&o));
	const char *bad[] = {"host", "host=a nosuchkey=1", "host='x",
	                     "postgresql://[::1", "port=1 =2",
	                     "postgresql://h/db?nosuch=1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (evfn_pg_options_set_conninfo(o, bad[i]) != EVFN_ECONNINFO)
			fail_msg("conninfo \"%s\" accepted", bad[i]);
	ASSERT_OK(evfn_pg_options_set_conninfo(o, ""));
	ASSERT_OK(evfn_pg_options_set_conninfo(o, "postgresql://u@h:5/d"));
	ASSERT_OK(evfn_pg_options_set_conninfo(o, "host=/tmp port=5 "
	                                          "dbname='a b'"));
	ASSERT_RC(evfn_pg_options_set_conninfo(o, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_pg_options_set_conninfo(NULL, ""), EVFN_EINVAL);
	ASSERT_RC(evfn_pg_options_set_slot(o, "Upper", true), EVFN_EINVAL);
	ASSERT_RC(evfn_pg_options_set_slot(o, "", true), EVFN_EINVAL);
	ASSERT_RC(evfn_pg_options_set_slot(o, "a-b", true), EVFN_EINVAL);
	char longname[80];
	memset(longname, 'a', 64);
	longname[64] = '\0';
	ASSERT_RC(evfn_pg_options_set_slot(o, longname, true), EVFN_EINVAL);
	longname[63] = '\0';
	ASSERT_OK(evfn_pg_options_set_slot(o, longname, false));
	ASSERT_OK(evfn_pg_options_set_slot(o, NULL, true));
	ASSERT_RC(evfn_pg_options_set_type_prefix(o, ""), EVFN_EINVAL);
	memset(longname, 'p', 65);
	longname[65] = '\0';
	ASSERT_RC(evfn_pg_options_set_type_prefix(o, longname),
	          EVFN_ENAMETOOLONG);
	ASSERT_OK(evfn_pg_options_set_type_prefix(o, "db.shop"));
	ASSERT_RC(evfn_pg_options_set_max_in_flight(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_pg_options_set_max_in_flight(o, 1000001), EVFN_ERANGE);
	ASSERT_OK(evfn_pg_options_set_max_in_flight(o, 1));
	ASSERT_RC(evfn_pg_options_set_feedback_ms(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_pg_options_set_feedback_ms(o, 10001), EVFN_ERANGE);
	ASSERT_RC(evfn_pg_options_set_reconnect(o, 0, 10), EVFN_ERANGE);
	ASSERT_RC(evfn_pg_options_set_reconnect(o, 20, 10), EVFN_ERANGE);
	ASSERT_RC(evfn_pg_options_set_reconnect(o, 1, 3600001), EVFN_ERANGE);
	ASSERT_RC(evfn_pg_options_set_max_in_flight(NULL, 1), EVFN_EINVAL);

	evfn_rt *rt = start_runtime(1, 0, 1);
	evfn_pg_source *src = (evfn_pg_source *)1;
	ASSERT_RC(evfn_pg_source_new(&src, rt, "p", "nosuch", o), EVFN_ENOFN);
	assert_null(src);
	ASSERT_RC(evfn_pg_source_new(&src, rt, "", "rows", o), EVFN_EINVAL);
	ASSERT_RC(evfn_pg_source_new(&src, NULL, "p", "rows", o), EVFN_EINVAL);
	ASSERT_RC(evfn_pg_source_new(NULL, rt, "p", "rows", o), EVFN_EINVAL);
	ASSERT_RC(evfn_pg_listen_new(&src, rt, "c", NULL, o), EVFN_EINVAL);
	memset(longname, 'p', 64);
	longname[64] = '\0';
	ASSERT_RC(evfn_pg_source_new(&src, rt, longname, "rows", o),
	          EVFN_ENAMETOOLONG);
	ASSERT_RC(evfn_pg_source_status(NULL), EVFN_EINVAL);
	ASSERT_EQ(evfn_pg_source_stat(NULL, EVFN_PG_STAT_SUBMITTED), 0);
	evfn_pg_source_free(NULL);
	evfn_pg_options_free(o);
	evfn_pg_options_free(NULL);
	stop_runtime(rt);
}

/* Inserts, updates and deletes over several transactions, made with
 * psql, reach the function once each, in commit order and within a
 * transaction in statement order (one event in flight at a time), mapped
 * as evfn/pg.h says; the slot then moves past them. */
static void
test_pg_changes_arrive_once_in_commit_order(void **state)
{
	(void)state;
	rec_reset();
	make_table("orders", "id int PRIMARY KEY, item text, qty int, "
	                     "price numeric, paid bool, meta jsonb");
	evfn_rt *rt = start_runtime(1, 0, 1);
	evfn_pg_options *o = options("s_orders");
	ASSERT_OK(evfn_pg_options_set_max_in_flight(o, 1));
	evfn_pg_source *src = new_source(rt, "p_orders", o);
	wait_streaming(src);
	psql("INSERT INTO orders VALUES (1, 'tea', 2, 3.50, false, "
	     "'{\"gift\": true}');"
	     "BEGIN;"
	     "INSERT INTO orders VALUES (2, 'a \"quoted\"\\ line\n', NULL, "
	     "NULL, NULL, NULL);"
	     "UPDATE orders SET qty = 3, paid = true WHERE id = 1;"
	     "INSERT INTO orders VALUES (3, 'x', 1, 1e-3, true, '[1,2]');"
	     "COMMIT;"
	     "UPDATE orders SET id = 4 WHERE id = 3;"
	     "DELETE FROM orders WHERE id = 2;\n");
	const char *expect[] = {
		"pg.public.orders.insert 1 {\"new\":{\"id\":1,\"item\":\"tea\","
		"\"qty\":2,\"price\":3.50,\"paid\":false,\"meta\":{\"gift\": "
		"true}}}",
		"pg.public.orders.insert 2 {\"new\":{\"id\":2,\"item\":\"a "
		"\\\"quoted\\\"\\\\ line\\n\",\"qty\":null,\"price\":null,"
		"\"paid\":null,\"meta\":null}}",
		"pg.public.orders.update 1 {\"new\":{\"id\":1,\"item\":\"tea\","
		"\"qty\":3,\"price\":3.50,\"paid\":true,\"meta\":{\"gift\": "
		"true}},\"old\":{\"id\":1}}",
		"pg.public.orders.insert 3 {\"new\":{\"id\":3,\"item\":\"x\","
		"\"qty\":1,\"price\":0.001,\"paid\":true,\"meta\":[1, 2]}}",
		"pg.public.orders.update 4 {\"new\":{\"id\":4,\"item\":\"x\","
		"\"qty\":1,\"price\":0.001,\"paid\":true,\"meta\":[1, 2]},"
		"\"old\":{\"id\":3}}",
		"pg.public.orders.delete 2 {\"old\":{\"id\":2}}",
	};
	int n = (int)(sizeof(expect) / sizeof(expect[0]));
	WAIT_FOR(seen_count() >= n, 10000);
	for (int i = 0; i < n; i++)
		if (strcmp(seen_line(i), expect[i]))
			fail_msg("event %d:\n  got  %s\n  want %s", i,
			         seen_line(i), expect[i]);
	ASSERT_EQ(atomic_load(&rec.bad), 0);
	/* The transaction's three changes share its id and commit time,
	 * are numbered 0..2 in their ids, and are ordered by key. */
	ASSERT_EQ(strcmp(rec.v[1].xid, rec.v[3].xid), 0);
	assert_true(strcmp(rec.v[0].xid, rec.v[1].xid) != 0);
	ASSERT_EQ(rec.v[1].time, rec.v[3].time);
	assert_non_null(strstr(rec.v[1].id, ":0"));
	assert_non_null(strstr(rec.v[2].id, ":1"));
	assert_non_null(strstr(rec.v[3].id, ":2"));
	assert_string_equal(rec.v[0].okey, "public.orders:1");
	assert_true(parse_lsn(rec.v[1].lsn) < parse_lsn(rec.v[3].lsn));
	/* Nothing more comes, and the slot moves past all of it. */
	uint64_t end = current_lsn();
	WAIT_FOR(slot_confirmed("s_orders") >= end, 10000);
	ASSERT_EQ(seen_count(), n);
	ASSERT_EQ(evfn_pg_source_stat(src, EVFN_PG_STAT_SUBMITTED), n);
	WAIT_FOR(evfn_pg_source_stat(src, EVFN_PG_STAT_ENDED) == (uint64_t)n,
	         5000);
	ASSERT_EQ(evfn_pg_source_stat(src, EVFN_PG_STAT_SKIPPED), 0);
	evfn_pg_source_free(src);
	stop_runtime(rt);
	drop_slot("s_orders");
}

/* ---- main ------------------------------------------------------------------ */

static void
quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static int
setup_db(void **state)
{
	(void)state;
	db = PQconnectdb(conninfo());
	if (PQstatus(db) != CONNECTION_OK) {
		fprintf(stderr, "cannot connect: %s", PQerrorMessage(db));
		return -1;
	}
	PQsetNoticeProcessor(db, quiet, NULL);
	return 0;
}

static int
teardown_db(void **state)
{
	(void)state;
	PQfinish(db);
	db = NULL;
	return 0;
}

#define PGTEST(fn) cmocka_unit_test_setup_teardown(fn, test_setup_fds, test_teardown_fds)

int
main(int argc, char **argv)
{
	(void)argc;
	if (!getenv("EVFN_PG_CONNINFO")) {
		/* By hand: run again inside a throwaway cluster. */
		execl("/bin/sh", "sh", PG_CLUSTER_SH, "run", argv[0],
		      (char *)NULL);
		perror("exec " PG_CLUSTER_SH);
		return 99;
	}
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		PGTEST(test_pg_options_refuse_bad_values),
		PGTEST(test_pg_changes_arrive_once_in_commit_order),
	};
	if (getenv("EVFN_TEST_FILTER"))
		cmocka_set_test_filter(getenv("EVFN_TEST_FILTER"));
	return cmocka_run_group_tests_name("pg", tests, setup_db, teardown_db);
}
