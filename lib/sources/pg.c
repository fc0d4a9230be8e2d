/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL sources over non-blocking libpq on the runtime's libevent
 * loop: logical decoding (a replication connection that checks the
 * server, creates the slot, streams pgoutput messages and reports the
 * slot position back as events end) and LISTEN/NOTIFY. One connection a
 * source, its socket watched by libevent, no thread of its own; public
 * calls from other threads are marshalled to the loop. The pgoutput
 * messages are decoded in pgoutput.c. Built only when libpq is found.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include <evfn/emit.h>
#include <evfn/event.h>
#include <evfn/libevent.h>
#include <evfn/pg.h>

#include "common-internal.h"
#include "pgoutput-internal.h"
#include "source-internal.h"

/* Longest identifier PostgreSQL keeps (NAMEDATALEN - 1). */
#define PG_NAME_MAX 63
/* Longest type prefix. */
#define PREFIX_MAX 64
/* How long connecting may take before the try counts as failed. */
#define CONNECT_TIMEOUT_MS 10000
/* Status reports at least this often, well inside the server's
 * wal_sender_timeout (60 s by default). */
#define STATUS_INTERVAL_MS 10000
/* Messages handled per loop turn before yielding to other callbacks. */
#define PUMP_BUDGET 1024
/* Retry delay of an event the function refused for want of room. */
#define HOLD_RETRY_MS 20
/* What taking a message returns when the function refused its event:
 * not an error, the message is offered again later. */
#define REFUSED 1
/* Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define PG_EPOCH_US INT64_C(946684800000000)

/* ---- options ------------------------------------------------------------ */

struct evfn_pg_options {
	char *conninfo;
	char *slot; /* NULL: evfn_<publication> */
	bool create_slot;
	char *prefix;
	int max_in_flight;
	int64_t feedback_ms;
	int64_t reconnect_base_ms;
	int64_t reconnect_cap_ms;
};

static void
options_clear(evfn_pg_options *o)
{
	evfn__free(o->conninfo);
	evfn__free(o->slot);
	evfn__free(o->prefix);
	memset(o, 0, sizeof(*o));
}

static int
options_defaults(evfn_pg_options *o)
{
	memset(o, 0, sizeof(*o));
	o->conninfo = evfn__strdup("");
	o->prefix = evfn__strdup("pg");
	o->create_slot = true;
	o->max_in_flight = 1024;
	o->feedback_ms = 100;
	o->reconnect_base_ms = 100;
	o->reconnect_cap_ms = 5000;
	if (!o->conninfo || !o->prefix) {
		options_clear(o);
		return EVFN_ENOMEM;
	}
	return 0;
}

/* A deep copy of src (of the defaults for NULL src) into dst. */
static int
options_copy(evfn_pg_options *dst, const evfn_pg_options *src)
{
	if (!src)
		return options_defaults(dst);
	*dst = *src;
	dst->conninfo = evfn__strdup(src->conninfo);
	dst->slot = src->slot ? evfn__strdup(src->slot) : NULL;
	dst->prefix = evfn__strdup(src->prefix);
	if (!dst->conninfo || !dst->prefix || (src->slot && !dst->slot)) {
		options_clear(dst);
		return EVFN_ENOMEM;
	}
	return 0;
}

int
evfn_pg_options_new(evfn_pg_options **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	evfn_pg_options *o = evfn__malloc(sizeof(*o));
	if (!o)
		return EVFN_ENOMEM;
	int rc = options_defaults(o);
	if (rc) {
		evfn__free(o);
		return rc;
	}
	*out = o;
	return 0;
}

void
evfn_pg_options_free(evfn_pg_options *o)
{
	if (!o)
		return;
	options_clear(o);
	evfn__free(o);
}

int
evfn_pg_options_set_conninfo(evfn_pg_options *o, const char *conninfo)
{
	if (!o || !conninfo)
		return EVFN_EINVAL;
	char *err = NULL;
	PQconninfoOption *parsed = PQconninfoParse(conninfo, &err);
	if (!parsed) {
		/* Without a message libpq ran out of memory. */
		int rc = err ? EVFN_ECONNINFO : EVFN_ENOMEM;
		PQfreemem(err);
		return rc;
	}
	PQconninfoFree(parsed);
	return evfn__strreplace(&o->conninfo, conninfo);
}

/* True for a slot name PostgreSQL accepts: 1..63 of a-z, 0-9, _. */
static bool
slot_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > PG_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

int
evfn_pg_options_set_slot(evfn_pg_options *o, const char *slot, bool create)
{
	if (!o || (slot && !slot_name_ok(slot)))
		return EVFN_EINVAL;
	char *copy = NULL;
	if (slot && !(copy = evfn__strdup(slot)))
		return EVFN_ENOMEM;
	evfn__free(o->slot);
	o->slot = copy;
	o->create_slot = create;
	return 0;
}

int
evfn_pg_options_set_type_prefix(evfn_pg_options *o, const char *prefix)
{
	if (!o || !prefix || !*prefix)
		return EVFN_EINVAL;
	if (strlen(prefix) > PREFIX_MAX)
		return EVFN_ENAMETOOLONG;
	return evfn__strreplace(&o->prefix, prefix);
}

int
evfn_pg_options_set_max_in_flight(evfn_pg_options *o, int n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 1 || n > 1000000)
		return EVFN_ERANGE;
	o->max_in_flight = n;
	return 0;
}

int
evfn_pg_options_set_feedback_ms(evfn_pg_options *o, int64_t ms)
{
	if (!o)
		return EVFN_EINVAL;
	if (ms < 1 || ms > STATUS_INTERVAL_MS)
		return EVFN_ERANGE;
	o->feedback_ms = ms;
	return 0;
}

int
evfn_pg_options_set_reconnect(evfn_pg_options *o, int64_t base_ms,
                              int64_t cap_ms)
{
	if (!o)
		return EVFN_EINVAL;
	if (base_ms < 1 || cap_ms < base_ms || cap_ms > 3600000)
		return EVFN_ERANGE;
	o->reconnect_base_ms = base_ms;
	o->reconnect_cap_ms = cap_ms;
	return 0;
}

/* ---- the source's state ------------------------------------------------- */

enum phase {
	PH_IDLE,       /* no connection: waiting to (re)connect */
	PH_CONNECTING, /* PQconnectPoll() */
	PH_CHECKING,   /* the query about wal_level, publication, slot */
	PH_CREATING,   /* CREATE_REPLICATION_SLOT */
	PH_STARTING,   /* START_REPLICATION, until COPY BOTH */
	PH_STREAMING,
	PH_LISTEN_CMD, /* LISTEN */
	PH_LISTENING
};

/* What follows the command in progress. */
enum next_step {
	NEXT_NONE,
	NEXT_CREATE,
	NEXT_START,
	NEXT_LISTEN
};

/*
 * One submitted event on its way to its end, in a ring in delivery
 * order. The slot may move to pos once this event and all before it have
 * ended. pos is a change's LSN + 1 (a position inside its transaction:
 * after a restart, the changes of that transaction before it are
 * skipped), or the transaction's end once its commit came; 0 while not
 * yet known (the next change may share this one's LSN, as the rows of a
 * multi-row insert do, and only a later LSN or the commit says the
 * record is complete).
 */
struct mark {
	struct evfn_pg_source *src;
	uint64_t lsn;
	uint64_t pos;
	bool ended;
};

struct evfn_pg_source {
	evfn_rt *rt;
	struct event_base *base;
	evfn_pg_options cfg;
	bool listen;      /* LISTEN/NOTIFY instead of logical decoding */
	char *name;       /* the publication, or the channel */
	char *fn_name;
	char *slot;
	char *ce_source;  /* CloudEvents source attribute */
	atomic_int refs;  /* the owner's, plus one per event not ended */
	atomic_int status;
	atomic_uint_least64_t stat[EVFN_PG_STAT_COUNT];

	/* Loop thread only. */
	bool closed;
	int fatal;
	enum phase phase;
	PGconn *conn;
	int fd;
	struct event *io_ev;    /* the socket: connect polling, then reads */
	struct event *write_ev; /* output libpq could not send yet */
	struct event *retry_ev; /* reconnect backoff, connect deadline */
	struct event *pump_ev;  /* resume reading and submitting */
	struct event *feedback_ev;
	int64_t delay_ms;
	bool reading;           /* io_ev added for reads */
	bool stop_intake;       /* the runtime is draining */
	bool slot_seen;         /* the slot existed during this source's life */
	/* The command in progress: what its results said so far. */
	enum next_step next;
	int cmd_code;
	char cmd_why[512];

	/* The stream. */
	struct evfn__pgo dec;
	struct evfn__pgo_buf data, key, text;
	bool in_txn;
	uint64_t txn_commit;    /* commit LSN of the transaction received */
	int64_t txn_time_ns;
	uint32_t txn_xid;
	uint32_t txn_index;     /* changes of it so far */
	/* What was delivered before, to skip when the server sends it
	 * again: changes of transactions committed at or before
	 * resume_commit, up to index resume_next in that one (UINT32_MAX:
	 * all, and its commit); and, at the first transaction after a
	 * start, changes below the slot's position when that position lies
	 * inside it. */
	bool resumed;
	uint64_t resume_commit;
	uint32_t resume_next;
	uint64_t first_skip_lsn; /* 0: none */
	/* A message (or notification) the function refused, to offer again,
	 * and how many of its events were taken. */
	char *stalled;
	int stalled_len;
	uint32_t stalled_part;
	PGnotify *stalled_notify;

	/* Positions. */
	struct mark *marks;
	size_t cap, head, count;
	/* The latest change of the transaction being received, whose
	 * position awaits the next change or the commit: the ring's last
	 * mark, or (once it ended with nothing before it) open_done. */
	bool open_mark;
	uint64_t open_done;      /* its LSN; 0: none */
	uint64_t confirmed;      /* every change before it ended */
	uint64_t received;       /* the furthest position the server sent */
	bool feedback_armed;
};

static void schedule_reconnect(struct evfn_pg_source *s);
static void pump(struct evfn_pg_source *s);
static void send_status(struct evfn_pg_source *s, bool reply);

static void
count(struct evfn_pg_source *s, evfn_pg_stat which, uint64_t n)
{
	atomic_fetch_add_explicit(&s->stat[which], n, memory_order_relaxed);
}

static void
add_timer_ms(struct event *ev, int64_t ms)
{
	struct timeval tv = evfn__timeval_ns(ms * EVFN__NS_PER_MS);
	event_add(ev, &tv);
}

static const char *
what(const struct evfn_pg_source *s)
{
	return s->listen ? "listen" : "slot";
}

static void
source_unref(struct evfn_pg_source *s)
{
	if (atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	options_clear(&s->cfg);
	evfn__free(s->name);
	evfn__free(s->fn_name);
	evfn__free(s->slot);
	evfn__free(s->ce_source);
	evfn__free(s->marks);
	evfn__free(s);
}

/* ---- connection --------------------------------------------------------- */

/* The SQLSTATE of the last server error in a libpq message written with
 * PQERRORS_VERBOSE ("...FATAL:  28P01: password authentication failed"),
 * into code[6]; false when there is none (a network error). The severity
 * word may be translated, the code never is. */
static bool
sqlstate_in(const char *msg, char code[6])
{
	bool found = false;
	for (const char *p = msg; p && (p = strstr(p, ":  ")); p++) {
		const char *c = p + 3;
		int i = 0;
		while (i < 5 && ((c[i] >= '0' && c[i] <= '9') ||
		                 (c[i] >= 'A' && c[i] <= 'Z')))
			i++;
		if (i == 5 && c[5] == ':') {
			memcpy(code, c, 5);
			code[5] = '\0';
			found = true;
		}
	}
	return found;
}

/* What a refused connection means: a code that stops the source for good,
 * or EVFN_ECONNREFUSED to try again. */
static int
connect_error_code(PGconn *conn)
{
	char code[6];
	if (PQconnectionNeedsPassword(conn))
		return EVFN_EAUTH;
	if (!sqlstate_in(PQerrorMessage(conn), code))
		return EVFN_ECONNREFUSED;
	if (!strncmp(code, "28", 2))
		return EVFN_EAUTH;
	if (!strcmp(code, "42501"))
		return EVFN_EACCES;
	if (!strcmp(code, "3D000"))
		return EVFN_ENOENT;
	return EVFN_ECONNREFUSED;
}

/* A message without its trailing newlines, for one log line. */
static const char *
one_line(struct evfn_pg_source *s, const char *msg)
{
	s->text.len = 0;
	s->text.oom = false;
	evfn__pgo_buf_str(&s->text, msg ? msg : "");
	while (s->text.len && (s->text.p[s->text.len - 1] == '\n' ||
	                       s->text.p[s->text.len - 1] == ' '))
		s->text.p[--s->text.len] = '\0';
	for (size_t i = 0; i < s->text.len; i++)
		if (s->text.p[i] == '\n')
			s->text.p[i] = ' ';
	return s->text.oom ? "(out of memory)" : s->text.p;
}

static void
update_status(struct evfn_pg_source *s, int code)
{
	atomic_store(&s->status, s->fatal ? s->fatal : code);
}

/* Closes the connection, if any, and forgets what was only valid on it:
 * the transaction being received and a message held back (the server
 * sends both again; a notification held back is lost, as LISTEN
 * promises no more). */
static void
disconnect(struct evfn_pg_source *s)
{
	if (s->io_ev) {
		event_free(s->io_ev);
		s->io_ev = NULL;
	}
	if (s->write_ev) {
		event_free(s->write_ev);
		s->write_ev = NULL;
	}
	event_del(s->retry_ev);
	event_del(s->pump_ev);
	if (s->conn) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
	s->fd = -1;
	s->reading = false;
	s->phase = PH_IDLE;
	s->in_txn = false;
	PQfreemem(s->stalled);
	s->stalled = NULL;
	PQfreemem(s->stalled_notify);
	s->stalled_notify = NULL;
}

/* The connection failed or was lost: try again later, or stop for good
 * when code says retrying cannot help. */
static void
connection_failed(struct evfn_pg_source *s, int code, const char *why)
{
	/* Copied first: why may live in the connection closed below. */
	const char *line = one_line(s, why);
	bool was_up = s->phase == PH_STREAMING || s->phase == PH_LISTENING;
	disconnect(s);
	if (s->closed)
		return;
	const char *label = s->listen ? s->name : s->slot;
	if (code != EVFN_ECONNREFUSED) {
		s->fatal = code;
		update_status(s, code);
		evfn__rt_log(s->rt, EVFN_LOG_ERROR, "pg %s %s: stopped: %s: %s",
		             what(s), label, evfn_err_name(code), line);
		event_del(s->feedback_ev);
		return;
	}
	evfn__rt_log(s->rt, was_up ? EVFN_LOG_WARN : EVFN_LOG_INFO,
	             "pg %s %s: %s; retrying in %lld ms", what(s), label, line,
	             (long long)s->delay_ms);
	update_status(s, EVFN_ECONNREFUSED);
	schedule_reconnect(s);
}

/* Sends what libpq buffered; waits for the socket when it could not. */
static bool
flush_output(struct evfn_pg_source *s)
{
	int r = PQflush(s->conn);
	if (r < 0) {
		connection_failed(s, EVFN_ECONNREFUSED, PQerrorMessage(s->conn));
		return false;
	}
	if (r > 0)
		event_add(s->write_ev, NULL);
	else
		event_del(s->write_ev);
	return true;
}

static void
write_cb(evutil_socket_t fd, short ev_what, void *arg)
{
	(void)fd;
	(void)ev_what;
	struct evfn_pg_source *s = arg;
	if (flush_output(s) && s->phase == PH_STREAMING)
		pump(s);
}

static bool
send_query(struct evfn_pg_source *s, const char *sql, enum phase next)
{
	s->next = NEXT_NONE;
	s->cmd_code = 0;
	s->cmd_why[0] = '\0';
	if (!PQsendQuery(s->conn, sql)) {
		connection_failed(s, EVFN_ECONNREFUSED, PQerrorMessage(s->conn));
		return false;
	}
	s->phase = next;
	return flush_output(s);
}


static void io_cb(evutil_socket_t fd, short ev_what, void *arg);
static void on_connected(struct evfn_pg_source *s);

/* Watches the socket for flags (EV_READ or EV_WRITE, maybe EV_PERSIST),
 * replacing the event when the socket or the flags changed: libpq may
 * open a new socket for each address it tries. */
static bool
watch(struct evfn_pg_source *s, int fd, short flags)
{
	if (fd < 0)
		return false;
	if (s->io_ev && (fd != s->fd || event_get_events(s->io_ev) != flags)) {
		event_free(s->io_ev);
		s->io_ev = NULL;
	}
	s->fd = fd;
	if (!s->io_ev && !(s->io_ev = event_new(s->base, fd, flags, io_cb, s)))
		return false;
	return event_add(s->io_ev, NULL) == 0;
}

static void
pause_reading(struct evfn_pg_source *s)
{
	if (!s->reading)
		return;
	event_del(s->io_ev);
	s->reading = false;
	count(s, EVFN_PG_STAT_PAUSES, 1);
}

static void
resume_reading(struct evfn_pg_source *s)
{
	if (s->reading || !s->io_ev)
		return;
	event_add(s->io_ev, NULL);
	s->reading = true;
}

/* Polls the connection attempt, then waits for what libpq asks. */
static void
connect_step(struct evfn_pg_source *s)
{
	PostgresPollingStatusType st = PQconnectPoll(s->conn);
	if (st == PGRES_POLLING_OK) {
		on_connected(s);
		return;
	}
	if (st == PGRES_POLLING_FAILED) {
		connection_failed(s, connect_error_code(s->conn),
		                  PQerrorMessage(s->conn));
		return;
	}
	if (!watch(s, PQsocket(s->conn),
	           st == PGRES_POLLING_READING ? EV_READ : EV_WRITE))
		connection_failed(s, EVFN_ECONNREFUSED, "cannot watch socket");
}

static void
start_connect(struct evfn_pg_source *s)
{
	/* dbname carries the whole connection string (expand_dbname); the
	 * keywords after it override what it says. */
	const char *keys[4] = {"dbname"}, *values[4] = {s->cfg.conninfo};
	int n = 1;
	if (!s->listen) {
		keys[n] = "replication";
		values[n++] = "database";
	}
	keys[n] = "fallback_application_name";
	values[n++] = "evfn";
	keys[n] = values[n] = NULL;
	s->conn = PQconnectStartParams(keys, values, 1);
	if (!s->conn) {
		connection_failed(s, EVFN_ECONNREFUSED, "out of memory");
		return;
	}
	/* Messages then carry the SQLSTATE, which connect_error_code()
	 * reads. */
	PQsetErrorVerbosity(s->conn, PQERRORS_VERBOSE);
	if (PQstatus(s->conn) == CONNECTION_BAD) {
		connection_failed(s, connect_error_code(s->conn),
		                  PQerrorMessage(s->conn));
		return;
	}
	s->phase = PH_CONNECTING;
	add_timer_ms(s->retry_ev, CONNECT_TIMEOUT_MS);
	/* Before the first poll libpq waits to write. */
	if (!watch(s, PQsocket(s->conn), EV_WRITE))
		connection_failed(s, EVFN_ECONNREFUSED, "cannot watch socket");
}

static void
schedule_reconnect(struct evfn_pg_source *s)
{
	add_timer_ms(s->retry_ev, s->delay_ms);
	s->delay_ms = EVFN__MIN(s->delay_ms * 2, s->cfg.reconnect_cap_ms);
}

/* The backoff ran out (connect again), or connecting took too long. */
static void
retry_cb(evutil_socket_t fd, short ev_what, void *arg)
{
	(void)fd;
	(void)ev_what;
	struct evfn_pg_source *s = arg;
	if (s->closed || s->fatal)
		return;
	if (s->phase == PH_CONNECTING)
		connection_failed(s, EVFN_ECONNREFUSED, "connection timed out");
	else if (s->phase == PH_IDLE)
		start_connect(s);
}

/* Streaming or listening: the connection is up. */
static void
connection_up(struct evfn_pg_source *s)
{
	s->delay_ms = s->cfg.reconnect_base_ms;
	update_status(s, 0);
	count(s, EVFN_PG_STAT_CONNECTS, 1);
}

/* ---- logical decoding: setting up the stream -------------------------- */

static void
check_query(struct evfn_pg_source *s)
{
	char *pub = PQescapeLiteral(s->conn, s->name, strlen(s->name));
	char *slot = PQescapeLiteral(s->conn, s->slot, strlen(s->slot));
	if (!pub || !slot) {
		PQfreemem(pub);
		PQfreemem(slot);
		connection_failed(s, EVFN_ECONNREFUSED, PQerrorMessage(s->conn));
		return;
	}
	struct evfn__pgo_buf *q = &s->text;
	q->len = 0;
	q->oom = false;
	evfn__pgo_buf_str(q, "SELECT current_setting('wal_level'), EXISTS "
	                  "(SELECT 1 FROM pg_catalog.pg_publication WHERE "
	                  "pubname = ");
	evfn__pgo_buf_str(q, pub);
	evfn__pgo_buf_str(q, "), s.plugin, s.database = current_database(), "
	                  "s.confirmed_flush_lsn FROM (SELECT 1) AS one "
	                  "LEFT JOIN pg_catalog.pg_replication_slots s ON "
	                  "s.slot_name = ");
	evfn__pgo_buf_str(q, slot);
	PQfreemem(pub);
	PQfreemem(slot);
	if (q->oom)
		connection_failed(s, EVFN_ECONNREFUSED, "out of memory");
	else
		send_query(s, q->p, PH_CHECKING);
}

/* Where the slot stands at (re)connection. Outside this process's first
 * transaction nothing depends on it: what was received here decides
 * what to skip. A position inside a transaction (not 8-byte aligned,
 * since WAL records start aligned and it is a change's LSN + 1) says
 * which of its changes ended before a restart. */
static void
slot_position(struct evfn_pg_source *s, const char *text)
{
	uint64_t lsn;
	if (!text || !evfn__pgo_lsn_parse(text, &lsn))
		return;
	if (lsn > s->confirmed)
		s->confirmed = lsn;
	atomic_store_explicit(&s->stat[EVFN_PG_STAT_CONFIRMED_LSN],
	                      s->confirmed, memory_order_release);
	if (!s->resumed)
		s->first_skip_lsn = (lsn & 7) ? lsn : 0;
}

/* Judges the check query's one row: wal_level, the publication, and the
 * slot's plugin, database and position. Returns the next step, or sets
 * *code (and why) to stop or retry. */
static enum next_step
judge_check(struct evfn_pg_source *s, const PGresult *res, int *code,
            char *why, size_t why_len)
{
	if (PQntuples(res) != 1 || PQnfields(res) != 5) {
		*code = EVFN_ECONNREFUSED;
		snprintf(why, why_len, "unexpected answer to the check query");
		return NEXT_NONE;
	}
	const char *wal_level = PQgetvalue(res, 0, 0);
	bool publication = PQgetvalue(res, 0, 1)[0] == 't';
	bool slot = !PQgetisnull(res, 0, 2);
	const char *plugin = PQgetvalue(res, 0, 2);
	bool same_db = PQgetvalue(res, 0, 3)[0] == 't';
	if (strcmp(wal_level, "logical") != 0) {
		*code = EVFN_EINVAL;
		snprintf(why, why_len, "wal_level is '%s': logical decoding "
		         "needs wal_level = logical", wal_level);
	} else if (!publication) {
		*code = EVFN_ENOPUBLICATION;
		snprintf(why, why_len, "publication \"%s\" does not exist",
		         s->name);
	} else if (!slot && (s->slot_seen || !s->cfg.create_slot)) {
		*code = EVFN_ENOSLOT;
		snprintf(why, why_len, s->slot_seen
		         ? "replication slot \"%s\" was dropped: changes since "
		           "its last position may be lost"
		         : "replication slot \"%s\" does not exist", s->slot);
	} else if (!slot) {
		return NEXT_CREATE;
	} else if (strcmp(plugin, "pgoutput") != 0 || !same_db) {
		*code = EVFN_EINVAL;
		snprintf(why, why_len, "replication slot \"%s\" is not a "
		         "pgoutput slot of this database (plugin %s)", s->slot,
		         plugin);
	} else {
		s->slot_seen = true;
		slot_position(s, PQgetisnull(res, 0, 4) ? NULL
		                                        : PQgetvalue(res, 0, 4));
		return NEXT_START;
	}
	return NEXT_NONE;
}

/* One result of the command in progress. */
static enum next_step
judge_result(struct evfn_pg_source *s, const PGresult *res, int *code,
             char *why, size_t why_len)
{
	if (PQresultStatus(res) == PGRES_FATAL_ERROR) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* Created meanwhile by someone else: use it. */
		if (s->phase == PH_CREATING && state &&
		    !strcmp(state, "42710"))
			return NEXT_START;
		/* Anything else may pass: a slot in use by another consumer
		 * (55006), a slot dropped since the check (42704; the next
		 * check says so), a server shutting down. */
		*code = EVFN_ECONNREFUSED;
		snprintf(why, why_len, "%s", PQresultErrorMessage(res));
		return NEXT_NONE;
	}
	switch (s->phase) {
	case PH_CHECKING:
		return judge_check(s, res, code, why, why_len);
	case PH_CREATING:
		/* slot_name, consistent_point, snapshot_name, output_plugin */
		s->slot_seen = true;
		evfn__rt_log(s->rt, EVFN_LOG_INFO, "pg slot %s: created",
		             s->slot);
		if (PQntuples(res) == 1 && PQnfields(res) >= 2)
			slot_position(s, PQgetvalue(res, 0, 1));
		return NEXT_START;
	case PH_LISTEN_CMD:
		return NEXT_LISTEN;
	default:
		return NEXT_NONE;
	}
}

static void
start_replication(struct evfn_pg_source *s)
{
	/* The publication goes in as an identifier list inside a string
	 * literal: quoted as an identifier, then as a literal. */
	struct evfn__pgo_buf *q = &s->text;
	q->len = 0;
	q->oom = false;
	evfn__pgo_buf_str(q, "START_REPLICATION SLOT \"");
	evfn__pgo_buf_str(q, s->slot);
	evfn__pgo_buf_str(q, "\" LOGICAL 0/0 (proto_version '1', "
	                  "publication_names '\"");
	for (const char *p = s->name; *p; p++) {
		if (*p == '"')
			evfn__pgo_buf_add(q, "\"\"", 2);
		else if (*p == '\'')
			evfn__pgo_buf_add(q, "''", 2);
		else
			evfn__pgo_buf_add(q, p, 1);
	}
	evfn__pgo_buf_str(q, "\"')");
	if (q->oom)
		connection_failed(s, EVFN_ECONNREFUSED, "out of memory");
	else
		send_query(s, q->p, PH_STARTING);
}

static void take_notifications(struct evfn_pg_source *s);

static void
streaming_started(struct evfn_pg_source *s)
{
	s->phase = PH_STREAMING;
	connection_up(s);
	evfn__rt_log(s->rt, EVFN_LOG_INFO, "pg slot %s: streaming publication "
	             "%s", s->slot, s->name);
	/* Whatever ended while the connection was down. */
	send_status(s, false);
	if (s->phase == PH_STREAMING)
		pump(s);
}

/* Reads the results of the command in progress; once it is over (libpq
 * hands out NULL), sends the next one. What the results said waits in
 * the source meanwhile: the end may come in a later read. */
static void
read_results(struct evfn_pg_source *s)
{
	for (;;) {
		if (!s->conn || PQisBusy(s->conn))
			return;
		PGresult *res = PQgetResult(s->conn);
		if (!res)
			break;
		if (PQresultStatus(res) == PGRES_COPY_BOTH) {
			PQclear(res);
			streaming_started(s);
			return;
		}
		int code = 0;
		enum next_step n = judge_result(s, res, &code, s->cmd_why,
		                                sizeof(s->cmd_why));
		PQclear(res);
		if (code && !s->cmd_code)
			s->cmd_code = code;
		else if (!code && n != NEXT_NONE)
			s->next = n;
	}
	if (s->cmd_code) {
		connection_failed(s, s->cmd_code, s->cmd_why);
		return;
	}
	enum next_step next = s->next;
	s->next = NEXT_NONE;
	switch (next) {
	case NEXT_CREATE: {
		char sql[160];
		snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT \"%s\" "
		         "LOGICAL pgoutput NOEXPORT_SNAPSHOT", s->slot);
		send_query(s, sql, PH_CREATING);
		break;
	}
	case NEXT_START:
		start_replication(s);
		break;
	case NEXT_LISTEN:
		s->phase = PH_LISTENING;
		connection_up(s);
		take_notifications(s);
		break;
	case NEXT_NONE:
		break;
	}
}

static void
on_connected(struct evfn_pg_source *s)
{
	event_del(s->retry_ev); /* the connect deadline */
	int fd = PQsocket(s->conn);
	if (PQsetnonblocking(s->conn, 1) != 0 ||
	    !watch(s, fd, EV_READ | EV_PERSIST) ||
	    !(s->write_ev = event_new(s->base, fd, EV_WRITE | EV_PERSIST,
	                              write_cb, s))) {
		connection_failed(s, EVFN_ECONNREFUSED, "cannot watch socket");
		return;
	}
	s->reading = true;
	if (!s->listen) {
		check_query(s);
		return;
	}
	char *ident = PQescapeIdentifier(s->conn, s->name, strlen(s->name));
	if (!ident) {
		connection_failed(s, EVFN_ECONNREFUSED, PQerrorMessage(s->conn));
		return;
	}
	char sql[200];
	snprintf(sql, sizeof(sql), "LISTEN %s", ident);
	PQfreemem(ident);
	send_query(s, sql, PH_LISTEN_CMD);
}

/* ---- logical decoding: positions ---------------------------------------- */

static struct mark *
tail_mark(struct evfn_pg_source *s)
{
	return &s->marks[(s->head + s->count - 1) % s->cap];
}

static void
schedule_feedback(struct evfn_pg_source *s)
{
	if (s->feedback_armed || s->phase != PH_STREAMING)
		return;
	add_timer_ms(s->feedback_ev, s->cfg.feedback_ms);
	s->feedback_armed = true;
}

static void
confirm(struct evfn_pg_source *s, uint64_t pos)
{
	if (pos > s->confirmed) {
		s->confirmed = pos;
		atomic_store_explicit(&s->stat[EVFN_PG_STAT_CONFIRMED_LSN], pos,
		                      memory_order_release);
		schedule_feedback(s);
	}
}

/* Moves the confirmed position over the ended events at the head of the
 * ring. The latest change, once it ended, leaves the ring for open_done
 * if its position is not known yet, so that a full ring never waits for
 * a change it cannot read. */
static void
advance(struct evfn_pg_source *s)
{
	while (s->count) {
		struct mark *mk = &s->marks[s->head];
		if (!mk->ended)
			break;
		if (!mk->pos && s->count == 1 && s->open_mark) {
			s->open_done = mk->lsn;
			s->open_mark = false;
		}
		confirm(s, mk->pos);
		s->head = (s->head + 1) % s->cap;
		s->count--;
	}
}

static void
put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t
get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Sends a Standby Status Update: written up to what was received,
 * flushed and applied up to the confirmed position, which is what the
 * server keeps as the slot's confirmed_flush_lsn. */
static void
send_status(struct evfn_pg_source *s, bool reply)
{
	(void)reply;
	if (s->phase != PH_STREAMING)
		return;
	s->feedback_armed = false;
	unsigned char msg[34];
	msg[0] = 'r';
	put_u64(msg + 1, EVFN__MAX(s->received, s->confirmed));
	put_u64(msg + 9, s->confirmed);
	put_u64(msg + 17, s->confirmed);
	put_u64(msg + 25, (uint64_t)(evfn__wall_ns() / 1000 - PG_EPOCH_US));
	msg[33] = 0;
	int r = PQputCopyData(s->conn, (const char *)msg, sizeof(msg));
	if (r < 0) {
		connection_failed(s, EVFN_ECONNREFUSED, PQerrorMessage(s->conn));
		return;
	}
	if (r == 0) {
		/* libpq's buffer is full: try again shortly. */
		add_timer_ms(s->feedback_ev, s->cfg.feedback_ms);
		s->feedback_armed = true;
		return;
	}
	add_timer_ms(s->feedback_ev, STATUS_INTERVAL_MS);
	flush_output(s);
}

static void
feedback_cb(evutil_socket_t fd, short ev_what, void *arg)
{
	(void)fd;
	(void)ev_what;
	send_status(arg, false);
}

/* ---- logical decoding: changes into events ------------------------------ */

/* FNV-1a, for ordering keys too long to use as they are. */
static uint64_t
fnv1a(const char *s, size_t n)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * UINT64_C(1099511628211);
	return h;
}

/* Sets the attributes every change event has (mapping in evfn/pg.h). */
static int
set_change_attributes(struct evfn_pg_source *s, evfn_event *ev, uint64_t lsn)
{
	char id[48], lsn_text[20], commit[20], xid[16];
	evfn__pgo_lsn_format(s->txn_commit, commit);
	snprintf(id, sizeof(id), "%s:%u", commit, s->txn_index - 1);
	evfn__pgo_lsn_format(lsn, lsn_text);
	snprintf(xid, sizeof(xid), "%u", s->txn_xid);
	int rc = evfn_event_set_id(ev, id);
	if (!rc)
		rc = evfn_event_set_source(ev, s->ce_source);
	if (!rc)
		rc = evfn_event_set_time(ev, s->txn_time_ns);
	if (!rc)
		rc = evfn_event_set_datacontenttype(ev, "application/json");
	if (!rc)
		rc = evfn_event_set_extension(ev, "pglsn", lsn_text);
	if (!rc)
		rc = evfn_event_set_extension(ev, "pgxid", xid);
	return rc;
}

/* Subject and ordering key from the row's replica identity key. */
static int
set_key(struct evfn_pg_source *s, evfn_event *ev,
        const struct evfn__pgo_msg *m)
{
	struct evfn__pgo_buf *k = &s->key;
	k->len = 0;
	k->oom = false;
	if (!evfn__pgo_key(k, m))
		return 0;
	if (k->oom)
		return EVFN_ENOMEM;
	if (k->len == 0)
		return 0;
	int rc = 0;
	if (k->len <= EVFN_NAME_MAX)
		rc = evfn_event_set_subject(ev, k->p);
	char okey[EVFN_NAME_MAX + 1];
	int n = snprintf(okey, sizeof(okey), "%s.%s:%s", m->rel->schema,
	                 m->rel->table, k->p);
	if (n < 0 || (size_t)n >= sizeof(okey))
		snprintf(okey, sizeof(okey), "%.110s.%.110s#%016llx",
		         m->rel->schema, m->rel->table,
		         (unsigned long long)fnv1a(k->p, k->len));
	if (!rc)
		rc = evfn_event_set_ordering_key(ev, okey);
	return rc;
}

/* Builds the event of a row change, or of the truncation of rel. */
static int
build_event(struct evfn_pg_source *s, const struct evfn__pgo_msg *m,
            const struct evfn__pgo_relation *rel, uint64_t lsn,
            evfn_event **out)
{
	char type[EVFN_NAME_MAX + 1];
	int n = snprintf(type, sizeof(type), "%s.%s.%s.%s", s->cfg.prefix,
	                 rel->schema, rel->table, evfn__pgo_op_name(m->kind));
	if (n < 0 || (size_t)n >= sizeof(type))
		snprintf(type, sizeof(type), "%s.%s", s->cfg.prefix,
		         evfn__pgo_op_name(m->kind));
	struct evfn__pgo_buf *d = &s->data;
	d->len = 0;
	d->oom = false;
	evfn__pgo_buf_add(d, "{", 1);
	if (m->kind == EVFN__PGO_TRUNCATE) {
		evfn__pgo_buf_str(d, m->truncate_flags & 1 ? "\"cascade\":true"
		                                           : "\"cascade\":false");
		evfn__pgo_buf_str(d, m->truncate_flags & 2
		                  ? ",\"restart_identity\":true"
		                  : ",\"restart_identity\":false");
	} else {
		evfn__pgo_json_row(d, m);
	}
	evfn__pgo_buf_add(d, "}", 1);
	if (d->oom)
		return EVFN_ENOMEM;
	evfn_event *ev;
	int rc = evfn_event_new(&ev, type, d->p, d->len);
	if (rc)
		return rc;
	rc = set_change_attributes(s, ev, lsn);
	if (!rc && m->kind != EVFN__PGO_TRUNCATE)
		rc = set_key(s, ev, m);
	/* A malformed attribute is left out; only memory matters. */
	if (rc == EVFN_ENOMEM) {
		evfn_event_unref(ev);
		return rc;
	}
	*out = ev;
	return 0;
}

/* What to do after the runtime refused an event: wait and offer it again
 * (room may come), or stop taking in (draining: what was not taken stays
 * on the server for the next run). */
static void
refused(struct evfn_pg_source *s, int rc)
{
	pause_reading(s);
	if (rc == EVFN_ESHUTDOWN) {
		s->stop_intake = true;
		return;
	}
	int64_t ms = HOLD_RETRY_MS;
	if (rc != EVFN_EQUEUEFULL && rc != EVFN_ECIRCUITOPEN &&
	    rc != EVFN_EUNHEALTHY) {
		if (rc == EVFN_ENOFN)
			update_status(s, EVFN_ENOFN);
		evfn__rt_log(s->rt, EVFN_LOG_WARN, "pg %s %s: submit: %s",
		             what(s), s->listen ? s->name : s->slot,
		             evfn_err_name(rc));
		ms = s->cfg.reconnect_cap_ms;
	}
	add_timer_ms(s->pump_ev, ms);
}

/* The runtime took an event: clears a status the refusals set. */
static void
taken(struct evfn_pg_source *s)
{
	if (atomic_load(&s->status) == EVFN_ENOFN)
		update_status(s, 0);
	count(s, EVFN_PG_STAT_SUBMITTED, 1);
}

static void on_result(const evfn_result *res, void *arg);

/* Offers the event of the change at lsn to the function; on success its
 * mark joins the ring. Returns false when it was refused. */
static bool
submit_change(struct evfn_pg_source *s, evfn_event *ev, uint64_t lsn)
{
	if (s->count == s->cap) {
		pause_reading(s);
		return false;
	}
	struct mark *mk = &s->marks[(s->head + s->count) % s->cap];
	*mk = (struct mark){.src = s, .lsn = lsn};
	atomic_fetch_add(&s->refs, 1);
	int rc = evfn_submit(s->rt, s->fn_name, ev, on_result, mk, NULL);
	if (rc) {
		atomic_fetch_sub(&s->refs, 1);
		refused(s, rc);
		return false;
	}
	taken(s);
	/* The previous change's record is complete unless this one shares
	 * its LSN. */
	if (s->open_mark) {
		struct mark *prev = tail_mark(s);
		prev->pos = prev->lsn != lsn ? prev->lsn + 1 : 0;
	} else if (s->open_done) {
		if (s->open_done != lsn)
			confirm(s, s->open_done + 1);
		s->open_done = 0;
	}
	s->count++;
	s->open_mark = true;
	advance(s);
	return true;
}

/* True when the change numbered idx of the transaction being received
 * (at lsn) was delivered before. */
static bool
delivered_before(const struct evfn_pg_source *s, uint32_t idx, uint64_t lsn)
{
	if (s->resumed)
		return s->txn_commit < s->resume_commit ||
		       (s->txn_commit == s->resume_commit &&
		        idx < s->resume_next);
	return lsn < s->first_skip_lsn;
}

/* A change (or one table of a truncation): skipped if delivered before,
 * else built and offered. Returns 0 when done with, REFUSED when the
 * function refused it (offered again later), EVFN_ENOMEM. */
static int
take_change(struct evfn_pg_source *s, const struct evfn__pgo_msg *m,
            const struct evfn__pgo_relation *rel, uint64_t lsn)
{
	if (delivered_before(s, s->txn_index, lsn)) {
		s->txn_index++;
		count(s, EVFN_PG_STAT_SKIPPED, 1);
		return 0;
	}
	/* The index goes into the id: counted now, taken back if refused. */
	s->txn_index++;
	evfn_event *ev;
	int rc = build_event(s, m, rel, lsn, &ev);
	if (!rc) {
		if (!submit_change(s, ev, lsn))
			rc = REFUSED;
		evfn_event_unref(ev);
	}
	if (rc) {
		s->txn_index--;
		return rc;
	}
	s->resumed = true;
	s->resume_commit = s->txn_commit;
	s->resume_next = s->txn_index;
	return 0;
}

static void
take_commit(struct evfn_pg_source *s, const struct evfn__pgo_msg *m)
{
	s->in_txn = false;
	s->first_skip_lsn = 0;
	if (s->resumed && (s->txn_commit < s->resume_commit ||
	                   (s->txn_commit == s->resume_commit &&
	                    s->resume_next == UINT32_MAX)))
		return; /* taken before a reconnection */
	if (s->count) {
		/* The last event of this transaction, or of an earlier one
		 * when this one had none to deliver: once it ended, so did
		 * the transaction. */
		struct mark *last = tail_mark(s);
		last->pos = EVFN__MAX(last->pos, m->end_lsn);
		s->open_mark = false;
		advance(s);
	} else {
		confirm(s, m->end_lsn);
	}
	s->open_done = 0;
	s->resumed = true;
	s->resume_commit = s->txn_commit;
	s->resume_next = UINT32_MAX;
}

/* One pgoutput message, at lsn (its XLogData start). *part counts the
 * events of the message taken so far (a truncation has one per table),
 * so that a message refused half-way resumes where it stopped. Returns 0,
 * REFUSED (refused: offer the message again later), EVFN_EINVAL for
 * a message out of place or malformed, EVFN_ENOMEM. */
static int
take_message(struct evfn_pg_source *s, const unsigned char *p, size_t n,
             uint64_t lsn, uint32_t *part)
{
	struct evfn__pgo_msg m;
	int rc = evfn__pgo_decode(&s->dec, p, n, &m);
	if (rc)
		return rc;
	bool change = m.kind >= EVFN__PGO_INSERT;
	if ((change || m.kind == EVFN__PGO_COMMIT) && !s->in_txn)
		return EVFN_EINVAL;
	switch (m.kind) {
	case EVFN__PGO_BEGIN:
		s->in_txn = true;
		s->txn_commit = m.commit_lsn;
		s->txn_time_ns = (m.commit_time_us + PG_EPOCH_US) * 1000;
		s->txn_xid = m.xid;
		s->txn_index = 0;
		return 0;
	case EVFN__PGO_COMMIT:
		take_commit(s, &m);
		return 0;
	case EVFN__PGO_TRUNCATE:
		for (; *part < m.ntruncated; ++*part) {
			const unsigned char *o = m.truncated + 4 * *part;
			uint32_t oid = (uint32_t)o[0] << 24 |
			               (uint32_t)o[1] << 16 |
			               (uint32_t)o[2] << 8 | o[3];
			const struct evfn__pgo_relation *rel =
				evfn__pgo_relation(&s->dec, oid);
			if (!rel)
				return EVFN_EINVAL;
			if ((rc = take_change(s, &m, rel, lsn)))
				return rc;
		}
		return 0;
	case EVFN__PGO_INSERT:
	case EVFN__PGO_UPDATE:
	case EVFN__PGO_DELETE:
		return take_change(s, &m, m.rel, lsn);
	default:
		return 0;
	}
}

/* One CopyData message of the stream: XLogData carries a pgoutput
 * message, a keepalive says how far the server has sent. Returns as
 * take_message(). */
static int
take_copy(struct evfn_pg_source *s, const unsigned char *p, size_t n,
          uint32_t *part)
{
	if (n >= 25 && p[0] == 'w') {
		uint64_t start = get_u64(p + 1), end = get_u64(p + 9);
		s->received = EVFN__MAX(s->received, EVFN__MAX(start, end));
		return take_message(s, p + 25, n - 25, start, part);
	}
	if (n >= 18 && p[0] == 'k') {
		uint64_t end = get_u64(p + 1);
		s->received = EVFN__MAX(s->received, end);
		/* Between transactions with nothing outstanding, everything
		 * the server sent up to here is done: moving the slot along
		 * lets the server recycle WAL that other tables' changes
		 * fill, and lets a fast shutdown, which waits until its
		 * walsenders' clients confirmed all they were sent, finish. */
		if (!s->in_txn && s->count == 0)
			confirm(s, end);
		if (p[17])
			send_status(s, true);
		return 0;
	}
	return n && (p[0] == 'w' || p[0] == 'k') ? EVFN_EINVAL : 0;
}

/* The server ended the stream (n -1) or the connection broke (n -2). */
static void
stream_ended(struct evfn_pg_source *s, int n)
{
	PGresult *res = n == -1 && !PQisBusy(s->conn) ? PQgetResult(s->conn)
	                                              : NULL;
	const char *why = res && PQresultStatus(res) == PGRES_FATAL_ERROR
	                          ? PQresultErrorMessage(res)
	                  : n == -1 ? "the server ended the stream"
	                            : PQerrorMessage(s->conn);
	connection_failed(s, EVFN_ECONNREFUSED, why);
	PQclear(res);
}

/* Takes messages from libpq's buffer, at most PUMP_BUDGET a turn, until
 * it is empty (then reads the socket again) or the function has no room
 * (then stops reading, so that the server stops sending). */
static void
pump(struct evfn_pg_source *s)
{
	for (int budget = PUMP_BUDGET; s->phase == PH_STREAMING; budget--) {
		if (s->stop_intake)
			return;
		if (!s->stalled) {
			if (budget == 0) {
				event_active(s->pump_ev, EV_TIMEOUT, 0);
				return;
			}
			int n = PQgetCopyData(s->conn, &s->stalled, 1);
			if (n == 0) {
				resume_reading(s);
				return;
			}
			if (n < 0) {
				stream_ended(s, n);
				return;
			}
			s->stalled_len = n;
			s->stalled_part = 0;
		}
		int rc = take_copy(s, (const unsigned char *)s->stalled,
		                   (size_t)s->stalled_len, &s->stalled_part);
		if (rc == REFUSED)
			return;
		PQfreemem(s->stalled);
		s->stalled = NULL;
		if (rc) {
			connection_failed(s, EVFN_ECONNREFUSED,
			                  rc == EVFN_ENOMEM
			                  ? "out of memory"
			                  : "malformed replication message");
			return;
		}
	}
}

/* An event ended (or was handed back, which is no end: the slot keeps
 * it). Runs on the loop thread, or at evfn_rt_free() after the
 * source closed. */
static void
on_result(const evfn_result *res, void *arg)
{
	struct mark *mk = arg;
	struct evfn_pg_source *s = mk->src;
	if (!s->closed && evfn_result_code(res) != EVFN_EHANDEDBACK) {
		mk->ended = true;
		/* The position first: whoever reads the count then finds it
		 * moved. */
		advance(s);
		atomic_fetch_add_explicit(&s->stat[EVFN_PG_STAT_ENDED], 1,
		                          memory_order_release);
		/* Room again: read on, on the next turn. */
		if (!s->reading && s->phase == PH_STREAMING)
			event_active(s->pump_ev, EV_TIMEOUT, 0);
	}
	source_unref(s);
}

/* ---- LISTEN/NOTIFY ------------------------------------------------------ */

static int
build_notification(struct evfn_pg_source *s, const PGnotify *nf,
                   evfn_event **out)
{
	char type[EVFN_NAME_MAX + 1], pid[16];
	snprintf(type, sizeof(type), "%s.%s", s->cfg.prefix, nf->relname);
	snprintf(pid, sizeof(pid), "%d", nf->be_pid);
	const char *extra = nf->extra ? nf->extra : "";
	evfn_event *ev;
	int rc = evfn_event_new(&ev, type, extra, strlen(extra));
	if (rc)
		return rc;
	rc = evfn_event_set_source(ev, s->ce_source);
	if (!rc)
		rc = evfn_event_set_extension(ev, "pgpid", pid);
	if (rc) {
		evfn_event_unref(ev);
		return rc;
	}
	*out = ev;
	return 0;
}

/* Publishes the notifications libpq has read, until there are no more
 * (then reads the socket again) or the function has no room. */
static void
take_notifications(struct evfn_pg_source *s)
{
	while (s->phase == PH_LISTENING && !s->stop_intake) {
		if (!s->stalled_notify &&
		    !(s->stalled_notify = PQnotifies(s->conn))) {
			resume_reading(s);
			return;
		}
		evfn_event *ev;
		int rc = build_notification(s, s->stalled_notify, &ev);
		if (!rc) {
			rc = evfn_publish_to(s->rt, s->fn_name, ev, NULL);
			evfn_event_unref(ev);
		}
		if (rc == EVFN_EQUEUEFULL || rc == EVFN_ECIRCUITOPEN ||
		    rc == EVFN_EUNHEALTHY || rc == EVFN_ENOMEM ||
		    rc == EVFN_ESHUTDOWN) {
			refused(s, rc); /* offered again later */
			return;
		}
		if (rc) {
			/* At most once: refused for good, this one is lost. */
			if (rc == EVFN_ENOFN)
				update_status(s, EVFN_ENOFN);
			evfn__rt_log(s->rt, EVFN_LOG_WARN, "pg listen %s: "
			             "notification dropped: %s", s->name,
			             evfn_err_name(rc));
			count(s, EVFN_PG_STAT_DROPPED, 1);
		} else {
			taken(s);
		}
		PQfreemem(s->stalled_notify);
		s->stalled_notify = NULL;
	}
}

/* ---- events of the loop --------------------------------------------------- */

static void
io_cb(evutil_socket_t fd, short ev_what, void *arg)
{
	(void)fd;
	(void)ev_what;
	struct evfn_pg_source *s = arg;
	if (s->phase == PH_CONNECTING) {
		connect_step(s);
		return;
	}
	if (!PQconsumeInput(s->conn)) {
		connection_failed(s, EVFN_ECONNREFUSED, PQerrorMessage(s->conn));
		return;
	}
	switch (s->phase) {
	case PH_STREAMING:
		pump(s);
		break;
	case PH_LISTENING:
		/* Errors (the server shutting down) come as results. */
		while (s->conn && !PQisBusy(s->conn)) {
			PGresult *res = PQgetResult(s->conn);
			if (!res)
				break;
			PQclear(res);
		}
		if (s->conn && PQstatus(s->conn) == CONNECTION_BAD)
			connection_failed(s, EVFN_ECONNREFUSED,
			                  PQerrorMessage(s->conn));
		else
			take_notifications(s);
		break;
	default:
		read_results(s);
		break;
	}
}

static void
pump_cb(evutil_socket_t fd, short ev_what, void *arg)
{
	(void)fd;
	(void)ev_what;
	struct evfn_pg_source *s = arg;
	if (s->phase == PH_STREAMING)
		pump(s);
	else if (s->phase == PH_LISTENING)
		take_notifications(s);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void
source_start(void *arg)
{
	start_connect(arg);
}

static void
source_close(void *arg)
{
	struct evfn_pg_source *s = arg;
	s->closed = true;
	disconnect(s);
	event_free(s->retry_ev);
	event_free(s->pump_ev);
	event_free(s->feedback_ev);
	evfn__pgo_clear(&s->dec);
	evfn__pgo_buf_free(&s->data);
	evfn__pgo_buf_free(&s->key);
	evfn__pgo_buf_free(&s->text);
}

/* "evfn_" and the publication's name in the characters a slot name may
 * have, cut at 63. */
static char *
default_slot(const char *publication)
{
	char buf[PG_NAME_MAX + 1];
	int n = snprintf(buf, sizeof(buf), "evfn_%s", publication);
	for (int i = 5; i < n && i < PG_NAME_MAX; i++) {
		char c = buf[i];
		if (c >= 'A' && c <= 'Z')
			buf[i] = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			buf[i] = '_';
	}
	return evfn__strdup(buf);
}

static int
source_new(evfn_pg_source **out, evfn_rt *rt, const char *name,
           const char *fn_name, const evfn_pg_options *opts, bool listen)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	if (!rt || !name || !*name)
		return EVFN_EINVAL;
	if (strlen(name) > PG_NAME_MAX)
		return EVFN_ENAMETOOLONG;
	int rc = evfn__check_name(fn_name);
	if (rc)
		return rc;
	if (!evfn__rt_has_function(rt, fn_name))
		return EVFN_ENOFN;
	struct evfn_pg_source *s = evfn__calloc(1, sizeof(*s));
	if (!s)
		return EVFN_ENOMEM;
	rc = options_copy(&s->cfg, opts);
	if (rc) {
		evfn__free(s);
		return rc;
	}
	atomic_init(&s->refs, 1);
	atomic_init(&s->status, 0);
	for (int i = 0; i < EVFN_PG_STAT_COUNT; i++)
		atomic_init(&s->stat[i], 0);
	s->rt = rt;
	s->base = evfn_rt_event_base(rt);
	s->listen = listen;
	s->fd = -1;
	s->delay_ms = s->cfg.reconnect_base_ms;
	s->name = evfn__strdup(name);
	s->fn_name = evfn__strdup(fn_name);
	if (listen) {
		s->ce_source = evfn__strdup("evfn/pg/listen");
	} else {
		s->slot = s->cfg.slot ? evfn__strdup(s->cfg.slot)
		                      : default_slot(name);
		s->cap = (size_t)s->cfg.max_in_flight;
		s->marks = evfn__calloc(s->cap, sizeof(*s->marks));
		size_t n = s->slot ? strlen(s->slot) + 10 : 0;
		if ((s->ce_source = n ? evfn__malloc(n) : NULL))
			snprintf(s->ce_source, n, "evfn/pg/%s", s->slot);
	}
	s->retry_ev = evtimer_new(s->base, retry_cb, s);
	s->pump_ev = event_new(s->base, -1, 0, pump_cb, s);
	s->feedback_ev = evtimer_new(s->base, feedback_cb, s);
	if (!s->name || !s->fn_name || !s->ce_source ||
	    (!listen && (!s->slot || !s->marks)) || !s->retry_ev ||
	    !s->pump_ev || !s->feedback_ev ||
	    evfn__rt_run_on_loop(rt, source_start, s) != 0) {
		if (s->retry_ev)
			event_free(s->retry_ev);
		if (s->pump_ev)
			event_free(s->pump_ev);
		if (s->feedback_ev)
			event_free(s->feedback_ev);
		source_unref(s);
		return EVFN_ENOMEM;
	}
	evfn__rt_attach(rt);
	*out = s;
	return 0;
}

int
evfn_pg_source_new(evfn_pg_source **out, evfn_rt *rt, const char *publication,
                   const char *fn_name, const evfn_pg_options *opts)
{
	return source_new(out, rt, publication, fn_name, opts, false);
}

int
evfn_pg_listen_new(evfn_pg_source **out, evfn_rt *rt, const char *channel,
                   const char *fn_name, const evfn_pg_options *opts)
{
	return source_new(out, rt, channel, fn_name, opts, true);
}

int
evfn_pg_source_status(const evfn_pg_source *src)
{
	if (!src)
		return EVFN_EINVAL;
	return atomic_load(&((evfn_pg_source *)src)->status);
}

uint64_t
evfn_pg_source_stat(const evfn_pg_source *src, evfn_pg_stat which)
{
	if (!src || (int)which < 0 || which >= EVFN_PG_STAT_COUNT)
		return 0;
	return atomic_load_explicit(&((evfn_pg_source *)src)->stat[which],
	                            memory_order_acquire);
}

void
evfn_pg_source_free(evfn_pg_source *src)
{
	if (!src)
		return;
	/* Without memory for the marshalling event there is no safe way to
	 * close: leak rather than race the loop. */
	evfn_rt *rt = src->rt;
	if (evfn__rt_run_on_loop(rt, source_close, src) != 0)
		return;
	source_unref(src);
	evfn__rt_detach(rt);
}
