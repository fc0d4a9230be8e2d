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

/* A started runtime with one function "rows" running handler, at most
 * concurrency at once (0: no limit), with a queue of queue events (0:
 * the default) and attempts attempts, 5 ms apart. */
static evfn_rt *
start_runtime_with(evfn_handler handler, int concurrency, int queue,
                   int attempts)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 1, 4));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	if (concurrency)
		ASSERT_OK(evfn_fn_options_set_concurrency(fo, concurrency));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, attempts));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 5, 1, 5,
	                                      EVFN_JITTER_NONE));
	if (queue)
		ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, queue));
	ASSERT_OK(evfn_register(rt, "rows", handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	return rt;
}

static evfn_rt *
start_runtime(int concurrency, int queue, int attempts)
{
	return start_runtime_with(record_handler, concurrency, queue, attempts);
}

static void
stop_runtime(evfn_rt *rt)
{
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
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

/* The slot is free (its consumer's connection is gone). */
static bool
slot_inactive(const char *slot)
{
	return strcmp(sql("SELECT active FROM pg_replication_slots WHERE "
	                  "slot_name = '%s'", slot), "t") != 0;
}

/* Drops a slot once its consumer's connection is gone, if it exists. */
static void
drop_slot(const char *slot)
{
	WAIT_FOR(slot_inactive(slot), 10000);
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

/* A retryable failure is retried in the process and the change runs
 * once more; a permanent one is dead-lettered with its change; both
 * count as ended and the slot moves past them. */
static void
test_pg_failures_retry_and_dead_letter(void **state)
{
	(void)state;
	rec_reset();
	strcpy(rec.retry_once, "2");
	strcpy(rec.fail_always, "3");
	make_table("fails", "id int PRIMARY KEY, v text");
	evfn_rt *rt = start_runtime(2, 0, 3);
	evfn_pg_source *src = new_source(rt, "p_fails", options("s_fails"));
	wait_streaming(src);
	for (int i = 1; i <= 4; i++)
		sql("INSERT INTO fails VALUES (%d, 'v%d')", i, i);
	uint64_t end = current_lsn();
	WAIT_FOR(evfn_pg_source_stat(src, EVFN_PG_STAT_ENDED) == 4, 10000);
	WAIT_FOR(slot_confirmed("s_fails") >= end, 10000);
	ASSERT_EQ(seen_count(), 3);
	/* 1, 2 twice (RETRY), 3 once (FAIL is for good), 4. */
	ASSERT_EQ(atomic_load(&rec.attempts), 5);
	evfn_dead_letter *dl[2];
	ASSERT_EQ(evfn_dead_letters(rt, dl, 2, 0), 1);
	const evfn_event *ev = evfn_dead_letter_event(dl[0]);
	assert_string_equal(evfn_event_subject(ev), "3");
	assert_string_equal(evfn_event_type(ev), "pg.public.fails.insert");
	ASSERT_RC(evfn_dead_letter_code(dl[0]), EVFN_EFAILED);
	ASSERT_EQ(evfn_dead_letter_attempts(dl[0]), 1);
	evfn_dead_letter_unref(dl[0]);
	assert_accounting(rt, "rows");
	evfn_pg_source_free(src);
	stop_runtime(rt);
	drop_slot("s_fails");
}

/* Events end out of order; the slot never moves past one that has not
 * ended, however many after it have, and moves on once it does. */
static void
test_pg_position_waits_for_events_not_ended(void **state)
{
	(void)state;
	rec_reset();
	strcpy(rec.block, "2");
	make_table("waits", "id int PRIMARY KEY");
	evfn_rt *rt = start_runtime(4, 0, 1);
	evfn_pg_source *src = new_source(rt, "p_waits", options("s_waits"));
	wait_streaming(src);
	sql("INSERT INTO waits VALUES (1)");
	uint64_t before_2 = current_lsn();
	for (int i = 2; i <= 5; i++)
		sql("INSERT INTO waits VALUES (%d)", i);
	WAIT_FOR(evfn_pg_source_stat(src, EVFN_PG_STAT_ENDED) == 4, 10000);
	/* All four ends are in: the position the source may report, and
	 * then the slot's, stays before change 2. */
	uint64_t held = evfn_pg_source_stat(src, EVFN_PG_STAT_CONFIRMED_LSN);
	if (held > before_2 || held == 0)
		fail_msg("position %llx, past change 2 (from %llx on)",
		         (unsigned long long)held,
		         (unsigned long long)before_2);
	WAIT_FOR(slot_confirmed("s_waits") == held, 10000);
	atomic_store(&rec.released, true);
	uint64_t end = current_lsn();
	WAIT_FOR(slot_confirmed("s_waits") >= end, 10000);
	ASSERT_EQ(seen_count(), 5);
	evfn_pg_source_free(src);
	stop_runtime(rt);
	drop_slot("s_waits");
}

/* Changes to tables outside the publication send nothing, yet the slot
 * follows them while the source has nothing outstanding, so that the
 * server can recycle the WAL they fill. */
static void
test_pg_slot_follows_changes_of_other_tables(void **state)
{
	(void)state;
	rec_reset();
	make_table("quiet", "id int PRIMARY KEY");
	sql("DROP TABLE IF EXISTS noisy");
	sql("CREATE TABLE noisy (id int)");
	evfn_rt *rt = start_runtime(1, 0, 1);
	evfn_pg_source *src = new_source(rt, "p_quiet", options("s_quiet"));
	wait_streaming(src);
	for (int i = 0; i < 20; i++)
		sql("INSERT INTO noisy VALUES (%d)", i);
	uint64_t end = current_lsn();
	WAIT_FOR(slot_confirmed("s_quiet") >= end, 10000);
	ASSERT_EQ(seen_count(), 0);
	evfn_pg_source_free(src);
	stop_runtime(rt);
	drop_slot("s_quiet");
}

/* ---- a host in a child process, for SIGKILL ------------------------------ */

/* The child's handler: takes a millisecond (so that at any moment some
 * events have been submitted and not ended), appends "<id> <subject>
 * <lsn>\n" to the log and returns OK; the change whose subject is block
 * never ends. */
static int child_log = -1;
static char child_block[32];

static int
child_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)userdata;
	const char *subject = evfn_event_subject(ev);
	if (subject && !strcmp(subject, child_block))
		for (;;)
			pause();
	test_sleep_ms(1);
	char line[128];
	int n = snprintf(line, sizeof(line), "%s %s %s\n", evfn_event_id(ev),
	                 subject ? subject : "-",
	                 evfn_event_extension(ev, "pglsn"));
	if (write(child_log, line, (size_t)n) != n)
		return EVFN_RETRY;
	return EVFN_OK;
}

/* --child PUBLICATION SLOT LOG BLOCK: a host that runs until killed. */
static int
child_main(char **argv)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	child_log = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0600);
	snprintf(child_block, sizeof(child_block), "%s", argv[3]);
	evfn_rt_options *ro;
	evfn_rt *rt;
	evfn_fn_options *fo;
	if (child_log < 0 || evfn_rt_options_new(&ro) ||
	    evfn_rt_options_set_workers(ro, 1, 4) ||
	    evfn_rt_new(&rt, ro) || evfn_fn_options_new(&fo) ||
	    evfn_fn_options_set_concurrency(fo, 4) ||
	    evfn_register(rt, "rows", child_handler, NULL, fo, NULL) ||
	    evfn_rt_start(rt))
		return 2;
	evfn_pg_options *o;
	evfn_pg_source *src;
	if (evfn_pg_options_new(&o) ||
	    evfn_pg_options_set_conninfo(o, conninfo()) ||
	    evfn_pg_options_set_slot(o, argv[1], true) ||
	    evfn_pg_options_set_feedback_ms(o, 5) ||
	    evfn_pg_source_new(&src, rt, argv[0], "rows", o))
		return 3;
	for (;;)
		pause();
}

static pid_t
start_child(const char *publication, const char *slot, const char *log,
            const char *block)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test-pg", "--child", publication, slot,
		      log, block, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void
kill_child(pid_t pid)
{
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

/* Lines of a child's log: "<id> <subject> <lsn>". */
struct logged {
	char id[48];
	int subject;
	uint64_t lsn;
};

static int
read_log(const char *path, struct logged *out, int max)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	int n = 0;
	char id[48], lsn[24];
	int subject;
	while (n < max && fscanf(f, "%47s %d %23s", id, &subject, lsn) == 3) {
		strcpy(out[n].id, id);
		out[n].subject = subject;
		out[n].lsn = parse_lsn(lsn);
		n++;
	}
	fclose(f);
	return n;
}

static int
log_lines(const char *path)
{
	static struct logged buf[2000];
	return read_log(path, buf, 2000);
}

/* Two hosts in turn on one slot: a directory for their logs, inside the
 * cluster's own (which pg-cluster.sh removes even if the test fails). */
struct hosts {
	char dir[128];
	char log1[160], log2[160];
};

/* Makes table (id int PRIMARY KEY) in publication p_<table>, drops the
 * slot if a former run left it, and starts the first host, logging to
 * h->log1 with block as the subject that never ends ("-": none); returns
 * once the host streams from its new slot. */
static pid_t
first_host(struct hosts *h, const char *table, const char *slot,
           const char *block)
{
	snprintf(h->dir, sizeof(h->dir), "%s/kill.XXXXXX", getenv("PGHOST"));
	assert_non_null(mkdtemp(h->dir));
	snprintf(h->log1, sizeof(h->log1), "%s/1", h->dir);
	snprintf(h->log2, sizeof(h->log2), "%s/2", h->dir);
	make_table(table, "id int PRIMARY KEY");
	drop_slot(slot);
	char publication[64];
	snprintf(publication, sizeof(publication), "p_%s", table);
	pid_t child = start_child(publication, slot, h->log1, block);
	WAIT_FOR(!slot_inactive(slot), 10000);
	return child;
}

static void
hosts_cleanup(struct hosts *h, const char *slot)
{
	unlink(h->log1);
	unlink(h->log2);
	rmdir(h->dir);
	drop_slot(slot);
}

/* A host killed with SIGKILL in the middle of a transaction, while one
 * change of it never ends and later ones did: the next host on the slot
 * gets that change and everything after it, once each, and none of the
 * changes before it, which had ended (the slot's position inside the
 * transaction says so). */
static void
test_pg_killed_host_resumes_inside_a_transaction(void **state)
{
	(void)state;
	struct hosts h;
	pid_t child = first_host(&h, "killed", "s_killed", "7");
	psql("INSERT INTO killed VALUES (1);\n"
	     "INSERT INTO killed VALUES (2);\n"
	     "BEGIN;\n"
	     "INSERT INTO killed SELECT g FROM generate_series(3, 12) g;\n"
	     "COMMIT;\n");
	/* 1..6 and 8..12 ended; 7 never will. */
	WAIT_FOR(log_lines(h.log1) == 11, 10000);
	struct logged first[16];
	ASSERT_EQ(read_log(h.log1, first, 16), 11);
	uint64_t lsn6 = 0, lsn8 = 0;
	for (int i = 0; i < 11; i++) {
		if (first[i].subject == 6)
			lsn6 = first[i].lsn;
		if (first[i].subject == 8)
			lsn8 = first[i].lsn;
	}
	assert_true(lsn6 && lsn8 > lsn6);
	/* The position reaches just past 6, never 7. */
	WAIT_FOR(slot_confirmed("s_killed") == lsn6 + 1, 10000);
	kill_child(child);
	WAIT_FOR(slot_inactive("s_killed"), 10000);
	assert_true(slot_confirmed("s_killed") == lsn6 + 1);

	child = start_child("p_killed", "s_killed", h.log2, "-");
	uint64_t end = current_lsn();
	WAIT_FOR(slot_confirmed("s_killed") >= end, 10000);
	kill_child(child);
	struct logged second[16];
	int n = read_log(h.log2, second, 16);
	/* 7 first, then 8..12 again (they had ended behind 7), each once,
	 * with the ids they had before. */
	ASSERT_EQ(n, 6);
	int seen[13] = {0};
	for (int i = 0; i < n; i++) {
		assert_true(second[i].subject >= 7 && second[i].subject <= 12);
		seen[second[i].subject]++;
		for (int j = 0; j < 11; j++)
			if (first[j].subject == second[i].subject)
				assert_string_equal(first[j].id, second[i].id);
	}
	for (int i = 7; i <= 12; i++)
		ASSERT_EQ(seen[i], 1);
	hosts_cleanup(&h, "s_killed");
}

/* A host killed at an arbitrary moment of a stream of transactions: no
 * change is lost, and only changes at or after the position the slot had
 * reached are delivered again; every change before it had ended in the
 * killed host. */
static void
test_pg_killed_host_loses_nothing(void **state)
{
	(void)state;
	struct hosts h;
	pid_t child = first_host(&h, "stream", "s_stream", "-");
	enum { ROWS = 600 };
	pid_t writer = fork();
	assert_true(writer >= 0);
	if (writer == 0) {
		PGconn *c = PQconnectdb(conninfo());
		for (int i = 0; i < ROWS; i++) {
			char q[64];
			snprintf(q, sizeof(q), "INSERT INTO stream VALUES (%d)", i);
			PQclear(PQexec(c, q));
		}
		PQfinish(c);
		_exit(0);
	}
	WAIT_FOR(log_lines(h.log1) >= ROWS / 4, 20000);
	kill_child(child);
	WAIT_FOR(slot_inactive("s_stream"), 10000);
	uint64_t at_kill = slot_confirmed("s_stream");
	child = start_child("p_stream", "s_stream", h.log2, "-");
	int st;
	assert_int_equal(waitpid(writer, &st, 0), writer);
	uint64_t end = current_lsn();
	WAIT_FOR(slot_confirmed("s_stream") >= end, 20000);
	kill_child(child);

	static struct logged a[ROWS * 2], b[ROWS * 2];
	int na = read_log(h.log1, a, ROWS * 2), nb = read_log(h.log2, b, ROWS * 2);
	static int in_a[ROWS], in_b[ROWS];
	memset(in_a, 0, sizeof(in_a));
	memset(in_b, 0, sizeof(in_b));
	for (int i = 0; i < na; i++)
		in_a[a[i].subject]++;
	for (int i = 0; i < nb; i++)
		in_b[b[i].subject]++;
	int again = 0;
	for (int r = 0; r < ROWS; r++) {
		if (in_a[r] > 1 || in_b[r] > 1 || in_a[r] + in_b[r] == 0)
			fail_msg("row %d: %d + %d deliveries", r, in_a[r],
			         in_b[r]);
		again += in_a[r] && in_b[r];
	}
	/* One change a transaction: its id is "<commit LSN>:0". The server
	 * sends again exactly the transactions committed at or after the
	 * position; those before it all ended in the killed host. */
	for (int i = 0; i < nb; i++) {
		uint64_t commit = parse_lsn(b[i].id);
		if (commit < at_kill)
			fail_msg("row %d (commit %s) delivered again, slot was at "
			         "%llx", b[i].subject, b[i].id,
			         (unsigned long long)at_kill);
	}
	for (int i = 0; i < na; i++)
		if (parse_lsn(a[i].id) >= at_kill && !in_b[a[i].subject])
			fail_msg("row %d after the position not delivered again",
			         a[i].subject);
	print_message("# %d of %d rows delivered again after the kill\n",
	              again, ROWS);
	hosts_cleanup(&h, "s_stream");
}

/* The server stops and starts again: the source reports the lost
 * connection, reconnects by itself and carries on; each change arrives
 * once, those sent again after the reconnection skipped. */
static void
test_pg_server_restart(void **state)
{
	(void)state;
	rec_reset();
	make_table("restarts", "id int PRIMARY KEY");
	evfn_rt *rt = start_runtime(2, 0, 1);
	evfn_pg_source *src = new_source(rt, "p_restarts",
	                                 options("s_restarts"));
	wait_streaming(src);
	for (int i = 1; i <= 20; i++)
		sql("INSERT INTO restarts VALUES (%d)", i);
	PQfinish(db);
	db = NULL;
	const char *cluster = getenv("EVFN_PG_CLUSTER");
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "sh '%s' stop", cluster);
	assert_int_equal(system(cmd), 0);
	WAIT_FOR(evfn_pg_source_status(src) == EVFN_ECONNREFUSED, 10000);
	snprintf(cmd, sizeof(cmd), "sh '%s' start", cluster);
	assert_int_equal(system(cmd), 0);
	db = PQconnectdb(conninfo());
	assert_int_equal(PQstatus(db), CONNECTION_OK);
	WAIT_FOR(evfn_pg_source_stat(src, EVFN_PG_STAT_CONNECTS) >= 2 &&
	         evfn_pg_source_status(src) == 0, 10000);
	for (int i = 21; i <= 40; i++)
		sql("INSERT INTO restarts VALUES (%d)", i);
	uint64_t end = current_lsn();
	WAIT_FOR(slot_confirmed("s_restarts") >= end, 10000);
	ASSERT_EQ(seen_count(), 40);
	int hits[41] = {0};
	for (int i = 0; i < 40; i++)
		hits[atoi(rec.v[i].subject)]++;
	for (int i = 1; i <= 40; i++)
		ASSERT_EQ(hits[i], 1);
	evfn_pg_source_free(src);
	stop_runtime(rt);
	drop_slot("s_restarts");
}

/* ---- backpressure ---------------------------------------------------------- */

static atomic_int bulk_count;

static int
bulk_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)ev;
	(void)userdata;
	atomic_fetch_add(&bulk_count, 1);
	return EVFN_OK;
}

static long
proc_status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n))
			v = atol(line + n + 1);
	if (f)
		fclose(f);
	return v;
}

/* 100,000 rows in one statement, while the function is paused and its
 * queue takes 256: the source stops reading once the queue is full, so
 * that the server stops sending, and the process's peak memory stays far
 * below what holding the rows would take (about 80 MB here); once the
 * function resumes, every row arrives. */
static void
test_pg_bulk_insert_keeps_memory_bounded(void **state)
{
	(void)state;
	enum { ROWS = 100000, QUEUE = 256 };
	make_table("bulk", "id int PRIMARY KEY, v text");
	evfn_rt *rt = start_runtime_with(bulk_handler, 0, QUEUE, 1);
	atomic_store(&bulk_count, 0);
	evfn_pg_source *src = new_source(rt, "p_bulk", options("s_bulk"));
	wait_streaming(src);
	ASSERT_OK(evfn_pause(rt, "rows"));
	/* Peak memory from here on. */
	FILE *f = fopen("/proc/self/clear_refs", "w");
	assert_non_null(f);
	fputs("5", f);
	fclose(f);
	long rss_before = proc_status_kb("VmRSS:");
	psql("INSERT INTO bulk SELECT g, repeat('x', 600) FROM "
	     "generate_series(1, 100000) g;\n");
	char end_of_insert[32];
	snprintf(end_of_insert, sizeof(end_of_insert), "%s",
	         sql("SELECT pg_current_wal_lsn()"));
	WAIT_FOR(evfn_pg_source_stat(src, EVFN_PG_STAT_SUBMITTED) == QUEUE &&
	         evfn_pg_source_stat(src, EVFN_PG_STAT_PAUSES) > 0, 30000);
	/* The server stops sending: once it has read the transaction it
	 * streams the rows, and its walsender waits for the socket to drain.
	 * A source that read on would take the rows in and hold them; a
	 * second later, the walsender still waits. This one window is an
	 * observation that something does not happen, not a wait for
	 * something that does. */
	const char *blocked = "SELECT count(*) FROM pg_stat_replication r JOIN "
	                      "pg_stat_activity a USING (pid) WHERE "
	                      "a.wait_event = 'WalSenderWriteData' AND "
	                      "pg_wal_lsn_diff('%s', r.sent_lsn) < 65536";
	WAIT_FOR(!strcmp(sql(blocked, end_of_insert), "1"), 30000);
	test_sleep_ms(1000);
	assert_string_equal(sql(blocked, end_of_insert), "1");
	ASSERT_EQ(evfn_pg_source_stat(src, EVFN_PG_STAT_SUBMITTED), QUEUE);
	long paused_peak = proc_status_kb("VmHWM:");
	ASSERT_OK(evfn_resume(rt, "rows"));
	WAIT_FOR(atomic_load(&bulk_count) == ROWS, 60000);
	long peak = proc_status_kb("VmHWM:");
	print_message("# peak memory grew by %ld kB while paused, %ld kB in "
	              "all; %llu pauses\n", paused_peak - rss_before,
	              peak - rss_before,
	              (unsigned long long)evfn_pg_source_stat(
			      src, EVFN_PG_STAT_PAUSES));
	if (paused_peak - rss_before > 16 * 1024)
		fail_msg("peak memory grew by %ld kB", paused_peak - rss_before);
#ifndef __SANITIZE_ADDRESS__
	/* (ASan keeps freed memory in quarantine: no bound holds there.) */
	if (peak - rss_before > 24 * 1024)
		fail_msg("peak memory grew by %ld kB", peak - rss_before);
#endif
	uint64_t end = current_lsn();
	WAIT_FOR(slot_confirmed("s_bulk") >= end, 10000);
	ASSERT_EQ(evfn_pg_source_stat(src, EVFN_PG_STAT_ENDED), ROWS);
	evfn_pg_source_free(src);
	stop_runtime(rt);
	drop_slot("s_bulk");
}

/* ---- batches -------------------------------------------------------------- */

static struct {
	atomic_int rows;
	atomic_int calls;
	atomic_int largest;
} batch;

static int
batch_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ev;
	(void)userdata;
	size_t n = evfn_ctx_batch_size(ctx);
	atomic_fetch_add(&batch.calls, 1);
	atomic_fetch_add(&batch.rows, (int)n);
	if ((int)n > atomic_load(&batch.largest))
		atomic_store(&batch.largest, (int)n);
	return EVFN_OK;
}

/* A batch function (evfn_fn_options_set_batch()) takes a transaction's
 * rows several at a time, each still its own event with its own end:
 * the slot moves past them all. Batches are cut by the function's size
 * and window, not by transaction (pgxid tells the rows apart). */
static void
test_pg_batch_function_takes_rows_together(void **state)
{
	(void)state;
	make_table("batched", "id int PRIMARY KEY");
	evfn_rt_options *ro;
	ASSERT_OK(evfn_rt_options_new(&ro));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, ro));
	evfn_rt_options_free(ro);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_batch(fo, 100, 200));
	ASSERT_OK(evfn_register(rt, "rows", batch_handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_rt_start(rt));
	memset(&batch, 0, sizeof(batch));
	evfn_pg_source *src = new_source(rt, "p_batched",
	                                 options("s_batched"));
	wait_streaming(src);
	psql("INSERT INTO batched SELECT g FROM generate_series(1, 300) g;\n");
	WAIT_FOR(atomic_load(&batch.rows) == 300, 10000);
	assert_true(atomic_load(&batch.largest) > 1);
	assert_true(atomic_load(&batch.calls) < 300);
	uint64_t end = current_lsn();
	WAIT_FOR(slot_confirmed("s_batched") >= end, 10000);
	ASSERT_EQ(evfn_pg_source_stat(src, EVFN_PG_STAT_ENDED), 300);
	evfn_pg_source_free(src);
	stop_runtime(rt);
	drop_slot("s_batched");
}

/* ---- mapping details ------------------------------------------------------- */

/* Composite keys, REPLICA IDENTITY FULL, a truncation, an unchanged
 * large value, a type prefix and the default slot name. */
static void
test_pg_mapping_of_keys_identity_and_truncate(void **state)
{
	(void)state;
	rec_reset();
	sql("DROP PUBLICATION IF EXISTS p_map");
	sql("DROP TABLE IF EXISTS m_pair, m_full");
	sql("CREATE TABLE m_pair (region text, n int, big text, "
	    "PRIMARY KEY (region, n))");
	sql("ALTER TABLE m_pair ALTER big SET STORAGE EXTERNAL");
	sql("CREATE TABLE m_full (a int, b text)");
	sql("ALTER TABLE m_full REPLICA IDENTITY FULL");
	sql("CREATE PUBLICATION p_map FOR TABLE m_pair, m_full");
	evfn_rt *rt = start_runtime(1, 0, 1);
	evfn_pg_options *o = options(NULL);
	ASSERT_OK(evfn_pg_options_set_type_prefix(o, "db"));
	ASSERT_OK(evfn_pg_options_set_max_in_flight(o, 1));
	evfn_pg_source *src = new_source(rt, "p_map", o);
	wait_streaming(src);
	assert_string_equal(sql("SELECT plugin FROM pg_replication_slots "
	                        "WHERE slot_name = 'evfn_p_map'"),
	                    "pgoutput");
	psql("INSERT INTO m_pair VALUES ('eu', 1, repeat('z', 5000));\n"
	     "UPDATE m_pair SET n = 2;\n"
	     "INSERT INTO m_full VALUES (1, 'x');\n"
	     "UPDATE m_full SET b = 'y';\n"
	     "DELETE FROM m_full;\n"
	     "TRUNCATE m_pair, m_full;\n");
	WAIT_FOR(seen_count() == 7, 10000);
	char big[5100];
	memset(big, 'z', 5000);
	big[5000] = '\0';
	assert_string_equal(rec.v[0].type, "db.public.m_pair.insert");
	assert_string_equal(rec.v[0].subject, "[\"eu\",1]");
	assert_string_equal(rec.v[0].okey, "public.m_pair:[\"eu\",1]");
	/* The 5000-byte value did not change: left out of "new". */
	assert_string_equal(seen_line(1), "db.public.m_pair.update [\"eu\",2] "
	                    "{\"new\":{\"region\":\"eu\",\"n\":2},"
	                    "\"old\":{\"region\":\"eu\",\"n\":1}}");
	assert_string_equal(seen_line(3), "db.public.m_full.update [1,\"y\"] "
	                    "{\"new\":{\"a\":1,\"b\":\"y\"},"
	                    "\"old\":{\"a\":1,\"b\":\"x\"}}");
	assert_string_equal(seen_line(4), "db.public.m_full.delete [1,\"y\"] "
	                    "{\"old\":{\"a\":1,\"b\":\"y\"}}");
	assert_string_equal(seen_line(5), "db.public.m_pair.truncate  "
	                    "{\"cascade\":false,\"restart_identity\":false}");
	assert_string_equal(seen_line(6), "db.public.m_full.truncate  "
	                    "{\"cascade\":false,\"restart_identity\":false}");
	assert_string_equal(rec.v[5].okey, "");
	evfn_pg_source_free(src);
	stop_runtime(rt);
	drop_slot("evfn_p_map");
}

/* ---- errors ---------------------------------------------------------------- */

/* A source whose server refuses it for good: its status says why, and it
 * does not try again. */
static void
expect_stopped(evfn_pg_source *src, int code)
{
	WAIT_FOR(evfn_pg_source_status(src) == code, 10000);
	ASSERT_EQ(evfn_pg_source_stat(src, EVFN_PG_STAT_CONNECTS), 0);
}

static evfn_pg_source *
source_with(evfn_rt *rt, const char *publication, const char *extra_conninfo,
            const char *slot, bool create)
{
	evfn_pg_options *o = options(NULL);
	char c[512];
	snprintf(c, sizeof(c), "%s %s", conninfo(), extra_conninfo);
	ASSERT_OK(evfn_pg_options_set_conninfo(o, c));
	ASSERT_OK(evfn_pg_options_set_slot(o, slot, create));
	return new_source(rt, publication, o);
}

static void
test_pg_errors_are_specific(void **state)
{
	(void)state;
	make_table("errs", "id int PRIMARY KEY");
	sql("DROP ROLE IF EXISTS norepl");
	sql("CREATE ROLE norepl LOGIN");
	evfn_rt *rt = start_runtime(1, 0, 1);
	struct {
		const char *publication, *conninfo, *slot;
		bool create;
		int code;
	} cases[] = {
		{"p_errs", "user=nosuchrole", "s_errs", true, EVFN_EAUTH},
		{"p_errs", "dbname=nosuchdb", "s_errs", true, EVFN_ENOENT},
		{"p_errs", "user=norepl", "s_errs", true, EVFN_EACCES},
		{"p_nosuch", "", "s_errs", true, EVFN_ENOPUBLICATION},
		{"p_errs", "", "s_nosuch", false, EVFN_ENOSLOT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		evfn_pg_source *src =
			source_with(rt, cases[i].publication, cases[i].conninfo,
			            cases[i].slot, cases[i].create);
		expect_stopped(src, cases[i].code);
		evfn_pg_source_free(src);
	}
	/* A slot of another plugin. */
	sql("SELECT pg_create_logical_replication_slot('s_text', "
	    "'test_decoding')");
	evfn_pg_source *src = source_with(rt, "p_errs", "", "s_text", true);
	expect_stopped(src, EVFN_EINVAL);
	evfn_pg_source_free(src);
	drop_slot("s_text");
	/* Nobody listening there: the source keeps trying. */
	evfn_pg_options *o = options("s_errs");
	ASSERT_OK(evfn_pg_options_set_conninfo(
		o, "host=127.0.0.1 port=1 dbname=postgres"));
	src = new_source(rt, "p_errs", o);
	WAIT_FOR(evfn_pg_source_status(src) == EVFN_ECONNREFUSED, 10000);
	evfn_pg_source_free(src);
	stop_runtime(rt);
	sql("DROP ROLE norepl");
}

/* A slot dropped behind the source's back (its connection killed and the
 * slot dropped before it reconnects): the source stops with ENOSLOT
 * rather than create a new slot past the lost changes. */
static void
test_pg_dropped_slot_stops_the_source(void **state)
{
	(void)state;
	rec_reset();
	make_table("dropped", "id int PRIMARY KEY");
	evfn_rt *rt = start_runtime(1, 0, 1);
	evfn_pg_options *o = options("s_dropped");
	ASSERT_OK(evfn_pg_options_set_reconnect(o, 300, 300));
	evfn_pg_source *src = new_source(rt, "p_dropped", o);
	wait_streaming(src);
	sql("DO $$ BEGIN LOOP BEGIN "
	    "PERFORM pg_terminate_backend(active_pid, 5000) FROM "
	    "pg_replication_slots WHERE slot_name = 's_dropped' AND active; "
	    "PERFORM pg_drop_replication_slot('s_dropped'); EXIT; "
	    "EXCEPTION WHEN object_in_use THEN PERFORM pg_sleep(0.01); "
	    "END; END LOOP; END $$");
	WAIT_FOR(evfn_pg_source_status(src) == EVFN_ENOSLOT, 10000);
	assert_string_equal(sql("SELECT count(*) FROM pg_replication_slots "
	                        "WHERE slot_name = 's_dropped'"),
	                    "0");
	evfn_pg_source_free(src);
	stop_runtime(rt);
}

/* ---- LISTEN/NOTIFY ----------------------------------------------------- */

static void
test_pg_listen_delivers_notifications(void **state)
{
	(void)state;
	rec_reset();
	evfn_rt *rt = start_runtime(1, 0, 1);
	evfn_pg_options *o = options(NULL);
	evfn_pg_source *src;
	ASSERT_OK(evfn_pg_listen_new(&src, rt, "Jobs", "rows", o));
	evfn_pg_options_free(o);
	wait_streaming(src);
	psql("NOTIFY \"Jobs\", 'first';\n"
	     "SELECT pg_notify('Jobs', '{\"n\": 2}');\n"
	     "NOTIFY other, 'not ours';\n");
	WAIT_FOR(evfn_pg_source_stat(src, EVFN_PG_STAT_SUBMITTED) == 2, 10000);
	WAIT_FOR(seen_count() == 2, 10000);
	assert_string_equal(seen_line(0), "pg.Jobs  first");
	assert_string_equal(seen_line(1), "pg.Jobs  {\"n\": 2}");
	evfn_pg_source_free(src);
	stop_runtime(rt);
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
	if (argc == 6 && !strcmp(argv[1], "--child"))
		return child_main(argv + 2);
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
		PGTEST(test_pg_failures_retry_and_dead_letter),
		PGTEST(test_pg_position_waits_for_events_not_ended),
		PGTEST(test_pg_slot_follows_changes_of_other_tables),
		PGTEST(test_pg_killed_host_resumes_inside_a_transaction),
		PGTEST(test_pg_killed_host_loses_nothing),
		PGTEST(test_pg_server_restart),
		PGTEST(test_pg_bulk_insert_keeps_memory_bounded),
		PGTEST(test_pg_batch_function_takes_rows_together),
		PGTEST(test_pg_mapping_of_keys_identity_and_truncate),
		PGTEST(test_pg_errors_are_specific),
		PGTEST(test_pg_dropped_slot_stops_the_source),
		PGTEST(test_pg_listen_delivers_notifications),
	};
	if (getenv("EVFN_TEST_FILTER"))
		cmocka_set_test_filter(getenv("EVFN_TEST_FILTER"));
	return cmocka_run_group_tests_name("pg", tests, setup_db, teardown_db);
}
