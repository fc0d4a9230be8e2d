/* SPDX-License-Identifier: MIT */
/*
 * The journal's SQLite file. Schema (format 1, application_id 'evfn'):
 *
 *   meta(one, last_seq, last_dead_letter)   the high-water marks
 *   functions(id, name)                     ids the records refer to
 *   invocations(seq, fn, STATE, attrs, data)
 *                                           an event bound for one
 *                                           function: one row, the
 *                                           event's encoded attributes
 *                                           and payload inline
 *   events(seq, attrs, data)                an event bound for several
 *   targets(seq, fn, STATE)                 and its invocations
 *   dead_letters(id, seq, fn, code, attempts, first_attempt,
 *                last_attempt, error, attrs, data)
 *   idempotency(fn, key, expires, response)
 *
 * where STATE is phase, attempts, due, backoff, first_attempt,
 * last_attempt, last_code, last_error. Most events have one target:
 * journaling one is one insert and ending it one delete. A fanned-out
 * event is written once, its invocations are small rows, and the event
 * row goes with the last of them. Times are wall-clock ns. The file is in
 * WAL mode with an exclusive lock (no other connection, and the WAL
 * index lives in memory), auto vacuum incremental so that housekeeping
 * can give free pages back, and checkpoints run by the writer rather
 * than inside a commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common-internal.h"
#include "event-codec-internal.h"
#include "journal-store-internal.h"

/* 'evfn' in the header's application_id, and the schema's format. */
#define APPLICATION_ID 0x6576666e
#define FORMAT 1
#define PAGE_SIZE 4096

enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_FN_ADD,
	ST_INV_ADD,
	ST_INV_UPDATE,
	ST_INV_PHASE,
	ST_INV_DELETE,
	ST_EVENT_ADD,
	ST_TARGET_ADD,
	ST_TARGET_UPDATE,
	ST_TARGET_PHASE,
	ST_TARGET_DELETE,
	ST_EVENT_DELETE_ORPHAN,
	ST_DL_ADD,
	ST_DL_DELETE,
	ST_DL_PURGE,
	ST_IDEM_PUT,
	ST_IDEM_EXPIRE,
	ST_MARKS,
	ST_COUNT
};

/* The state columns, bound at ?1 seq, ?2 fn, ?3.. state by bind_state(). */
#define STATE_COLUMNS                                                        \
	"phase, attempts, due, backoff, first_attempt, last_attempt, "       \
	"last_code, last_error"
#define STATE_VALUES "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10"
#define STATE_SET                                                            \
	"phase = ?3, attempts = ?4, due = ?5, backoff = ?6, "                \
	"first_attempt = ?7, last_attempt = ?8, last_code = ?9, "            \
	"last_error = ?10"

static const char *const statement_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_FN_ADD] = "INSERT OR IGNORE INTO functions(id, name) VALUES (?1, ?2)",
	[ST_INV_ADD] = "INSERT OR REPLACE INTO invocations(seq, fn, "
	               STATE_COLUMNS ", attrs, data) VALUES (?1, ?2, "
	               STATE_VALUES ", ?11, ?12)",
	[ST_INV_UPDATE] = "UPDATE invocations SET " STATE_SET
	                  " WHERE seq = ?1 AND fn = ?2",
	[ST_INV_PHASE] = "UPDATE invocations SET phase = ?3"
	                 " WHERE seq = ?1 AND fn = ?2",
	[ST_INV_DELETE] = "DELETE FROM invocations WHERE seq = ?1 AND fn = ?2",
	/* A fan-out's event row comes with its first target. */
	[ST_EVENT_ADD] = "INSERT OR IGNORE INTO events(seq, attrs, data) "
	                 "VALUES (?1, ?2, ?3)",
	[ST_TARGET_ADD] = "INSERT OR REPLACE INTO targets(seq, fn, "
	                  STATE_COLUMNS ") VALUES (?1, ?2, " STATE_VALUES ")",
	[ST_TARGET_UPDATE] = "UPDATE targets SET " STATE_SET
	                     " WHERE seq = ?1 AND fn = ?2",
	[ST_TARGET_PHASE] = "UPDATE targets SET phase = ?3"
	                    " WHERE seq = ?1 AND fn = ?2",
	[ST_TARGET_DELETE] = "DELETE FROM targets WHERE seq = ?1 AND fn = ?2",
	[ST_EVENT_DELETE_ORPHAN] =
		"DELETE FROM events WHERE seq = ?1 AND NOT EXISTS "
		"(SELECT 1 FROM targets WHERE seq = ?1)",
	[ST_DL_ADD] = "INSERT OR REPLACE INTO dead_letters(id, seq, fn, code, "
	              "attempts, first_attempt, last_attempt, error, attrs, "
	              "data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[ST_DL_DELETE] = "DELETE FROM dead_letters WHERE id = ?1",
	[ST_DL_PURGE] = "DELETE FROM dead_letters",
	[ST_IDEM_PUT] = "INSERT OR REPLACE INTO idempotency(fn, key, expires, "
	                "response) VALUES (?1, ?2, ?3, ?4)",
	[ST_IDEM_EXPIRE] = "DELETE FROM idempotency WHERE expires <= ?1",
	[ST_MARKS] = "UPDATE meta SET last_seq = max(last_seq, ?1), "
	             "last_dead_letter = max(last_dead_letter, ?2)",
};

#define STATE_SCHEMA                                                         \
	" phase INTEGER NOT NULL, attempts INTEGER NOT NULL,"                \
	" due INTEGER NOT NULL, backoff INTEGER NOT NULL,"                   \
	" first_attempt INTEGER NOT NULL, last_attempt INTEGER NOT NULL,"    \
	" last_code INTEGER NOT NULL, last_error TEXT"

static const char schema_sql[] =
	"BEGIN;"
	"CREATE TABLE meta(one INTEGER PRIMARY KEY CHECK (one = 1),"
	" last_seq INTEGER NOT NULL, last_dead_letter INTEGER NOT NULL);"
	"INSERT INTO meta VALUES (1, 0, 0);"
	"CREATE TABLE functions(id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
	"CREATE TABLE invocations(seq INTEGER PRIMARY KEY, fn INTEGER NOT NULL,"
	STATE_SCHEMA ", attrs BLOB NOT NULL, data BLOB);"
	"CREATE TABLE events(seq INTEGER PRIMARY KEY, attrs BLOB NOT NULL,"
	" data BLOB);"
	"CREATE TABLE targets(seq INTEGER NOT NULL, fn INTEGER NOT NULL,"
	STATE_SCHEMA ", PRIMARY KEY (seq, fn)) WITHOUT ROWID;"
	"CREATE TABLE dead_letters(id INTEGER PRIMARY KEY,"
	" seq INTEGER NOT NULL, fn INTEGER NOT NULL, code INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL, first_attempt INTEGER NOT NULL,"
	" last_attempt INTEGER NOT NULL, error TEXT, attrs BLOB NOT NULL,"
	" data BLOB);"
	"CREATE TABLE idempotency(fn INTEGER NOT NULL, key TEXT NOT NULL,"
	" expires INTEGER NOT NULL, response BLOB,"
	" PRIMARY KEY (fn, key)) WITHOUT ROWID;"
	"CREATE INDEX idempotency_expiry ON idempotency(expires);"
	"COMMIT;";

struct evfn__jstore {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	const struct evfn__journal_options *o;
	struct evfn__bytes scratch; /* an event's encoding */
	uint32_t wal_pages;
};

/* The errno behind an SQLite I/O error: SQLite's record of it, or else
 * the thread's errno as the failed call left it (SQLite 3.40 keeps none
 * for a failed write, whose errno tells a full disk or a file size limit
 * from a broken disk). */
static int
errno_of(sqlite3 *db, int saved_errno)
{
	int sys = db ? sqlite3_system_errno(db) : 0;
	return sys ? sys : saved_errno;
}

/* The EVFN_E* code for an SQLite result, looking at the errno behind an
 * I/O error: a full disk is not the same failure as a broken one. */
static int
code_of(int rc, int sys)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_NOMEM:
		return EVFN_ENOMEM;
	case SQLITE_FULL:
		return EVFN_ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EVFN_EBUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_FORMAT:
		return EVFN_ECORRUPT;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return EVFN_EACCES;
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
		if (rc == SQLITE_IOERR_NOMEM)
			return EVFN_ENOMEM;
		if (sys == ENOSPC || sys == EDQUOT || sys == EFBIG)
			return EVFN_ENOSPC;
		if (sys == EACCES || sys == EPERM || sys == EROFS)
			return EVFN_EACCES;
		if (sys == ENOENT && (rc & 0xff) == SQLITE_CANTOPEN)
			return EVFN_ENOENT;
		if (sys == ENOTDIR)
			return EVFN_ENOTDIR;
		return EVFN_EJOURNAL;
	default:
		return EVFN_EJOURNAL;
	}
}

/* Reports a failure through the log callback and returns its code.
 * Call it right after the failed call, before errno changes. */
static int
fail(struct evfn__jstore *s, sqlite3 *db, int rc, const char *what)
{
	int saved_errno = errno;
	int sys = (rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN
	                  ? errno_of(db, saved_errno)
	                  : 0;
	int code = code_of(rc, sys);
	if (s->o->log_cb) {
		char msg[512];
		snprintf(msg, sizeof(msg), "journal: %s: %s%s%s", what,
		         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
		         sys ? "; " : "", sys ? strerror(sys) : "");
		s->o->log_cb(code, msg, s->o->log_arg);
	}
	return code;
}

/* Runs one prepared statement to completion and resets it. */
static int
step(struct evfn__jstore *s, enum stmt which)
{
	sqlite3_stmt *st = s->st[which];
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	rc = fail(s, s->db, rc, statement_sql[which]);
	sqlite3_reset(st);
	return rc;
}

static int
exec(struct evfn__jstore *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(s, s->db, rc, sql);
}

/* The integer a one-row query gives, or an error. */
static int
query_int(struct evfn__jstore *s, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		rc = fail(s, s->db, rc, sql);
	sqlite3_finalize(st);
	return rc;
}

static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	(void)db;
	(void)name;
	((struct evfn__jstore *)arg)->wal_pages = (uint32_t)pages;
	return SQLITE_OK;
}

/* A new file gets the schema; an existing one must be a journal of this
 * format, whatever else it may be. */
static int
check_or_create(struct evfn__jstore *s)
{
	int64_t app = 0, version = 0, tables = 0;
	int rc = query_int(s, "PRAGMA application_id", &app);
	if (rc == 0)
		rc = query_int(s, "PRAGMA user_version", &version);
	if (rc == 0)
		rc = query_int(s, "SELECT count(*) FROM sqlite_schema", &tables);
	if (rc < 0)
		return rc;
	if (tables == 0 && app == 0) {
		char pragmas[128];
		snprintf(pragmas, sizeof(pragmas),
		         "PRAGMA auto_vacuum = INCREMENTAL;"
		         "PRAGMA application_id = %d; PRAGMA user_version = %d",
		         APPLICATION_ID, FORMAT);
		rc = exec(s, pragmas);
		return rc < 0 ? rc : exec(s, schema_sql);
	}
	if (app != APPLICATION_ID || version != FORMAT) {
		if (s->o->log_cb)
			s->o->log_cb(EVFN_ECORRUPT,
			             "journal: the file is an SQLite database "
			             "but not an evfn journal of format 1",
			             s->o->log_arg);
		return EVFN_ECORRUPT;
	}
	return 0;
}

static int
load_marks(struct evfn__jstore *s, struct evfn__jstore_marks *m)
{
	sqlite3_stmt *st;
	const char *sql = "SELECT last_seq, last_dead_letter FROM meta";
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		m->last_seq = (uint64_t)sqlite3_column_int64(st, 0);
		m->last_dead_letter = (uint64_t)sqlite3_column_int64(st, 1);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_CORRUPT; /* the row every journal has is gone */
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : fail(s, s->db, rc, sql);
}

/* SQLite reports a file it cannot open as "unable to open", with the
 * errno of its last try (read-only, after read-write failed), which for
 * a directory nobody may write to is ENOENT: opening the file here first
 * gives the cause. */
static int
probe(struct evfn__jstore *s, const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	int code;
	switch (errno) {
	case ENOENT: code = EVFN_ENOENT; break;
	case ENOTDIR: code = EVFN_ENOTDIR; break;
	case EACCES:
	case EPERM:
	case EROFS: code = EVFN_EACCES; break;
	case ENOSPC:
	case EDQUOT: code = EVFN_ENOSPC; break;
	case ENOMEM: code = EVFN_ENOMEM; break;
	default: code = EVFN_EJOURNAL; break;
	}
	if (s->o->log_cb) {
		char msg[512];
		snprintf(msg, sizeof(msg), "journal: %s: %s", path,
		         strerror(errno));
		s->o->log_cb(code, msg, s->o->log_arg);
	}
	return code;
}

int
evfn__jstore_open(struct evfn__jstore **out, const char *path,
                  const struct evfn__journal_options *o,
                  struct evfn__jstore_marks *marks)
{
	*out = NULL;
	struct evfn__jstore *s = evfn__calloc(1, sizeof(*s));
	if (!s)
		return EVFN_ENOMEM;
	s->o = o;
	/* Another VFS may not name files: only the default is probed. */
	int rc = o->vfs ? 0 : probe(s, path);
	if (rc < 0)
		goto out;
	rc = sqlite3_open_v2(path, &s->db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                                 SQLITE_OPEN_NOMUTEX,
	                         o->vfs);
	if (rc != SQLITE_OK) {
		rc = fail(s, s->db, rc, path);
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* Exclusive before the first WAL access: the WAL index then lives
	 * in this process's memory (no -shm file), and no other
	 * connection can open the journal while this one has it. */
	rc = exec(s, "PRAGMA locking_mode = EXCLUSIVE");
	if (rc == 0)
		rc = check_or_create(s);
	char pragmas[256];
	snprintf(pragmas, sizeof(pragmas),
	         "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;"
	         "PRAGMA journal_size_limit = %lld; PRAGMA cache_size = -16384;"
	         "PRAGMA wal_autocheckpoint = 0;"
	         /* Takes the exclusive lock now rather than at the first
	          * commit: a second opener fails at open. */
	         "BEGIN EXCLUSIVE; COMMIT",
	         o->mode == EVFN__JOURNAL_DURABLE ? "FULL" : "NORMAL",
	         (long long)o->checkpoint_pages * PAGE_SIZE);
	if (rc == 0)
		rc = exec(s, pragmas);
	if (rc == 0)
		rc = load_marks(s, marks);
	for (int i = 0; rc == 0 && i < ST_COUNT; i++) {
		int src = sqlite3_prepare_v3(s->db, statement_sql[i], -1,
		                             SQLITE_PREPARE_PERSISTENT, &s->st[i],
		                             NULL);
		if (src != SQLITE_OK)
			rc = fail(s, s->db, src, statement_sql[i]);
	}
	if (rc == 0)
		sqlite3_wal_hook(s->db, wal_hook, s);
out:
	if (rc < 0) {
		evfn__jstore_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

int
evfn__jstore_functions(struct evfn__jstore *s,
                       int (*cb)(uint32_t id, const char *name, void *arg),
                       void *arg)
{
	sqlite3_stmt *st;
	const char *sql = "SELECT id, name FROM functions ORDER BY id";
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	int ret = 0;
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		if (id <= 0 || id > UINT32_MAX || !name) {
			rc = SQLITE_CORRUPT;
			break;
		}
		if ((ret = cb((uint32_t)id, name, arg)) != 0)
			break;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (ret != 0)
		return ret;
	return rc == SQLITE_DONE ? 0 : fail(s, s->db, rc, sql);
}

int
evfn__jstore_begin(struct evfn__jstore *s)
{
	return step(s, ST_BEGIN);
}

int
evfn__jstore_commit(struct evfn__jstore *s)
{
	int rc = step(s, ST_COMMIT);
	if (rc < 0)
		evfn__jstore_rollback(s);
	return rc;
}

void
evfn__jstore_rollback(struct evfn__jstore *s)
{
	/* After some errors SQLite has rolled back already. */
	if (!sqlite3_get_autocommit(s->db))
		(void)step(s, ST_ROLLBACK);
}

static void
bind_state(sqlite3_stmt *st, const struct evfn__jop *op)
{
	sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
	sqlite3_bind_int64(st, 2, op->fn);
	sqlite3_bind_int(st, 3, (int)op->st.phase);
	sqlite3_bind_int64(st, 4, op->st.attempts);
	sqlite3_bind_int64(st, 5, op->st.due_ns);
	sqlite3_bind_int64(st, 6, op->st.backoff_ns);
	sqlite3_bind_int64(st, 7, op->st.first_attempt_ns);
	sqlite3_bind_int64(st, 8, op->st.last_attempt_ns);
	sqlite3_bind_int(st, 9, op->st.last_code);
	sqlite3_bind_text(st, 10, op->text, -1, SQLITE_STATIC);
}

/* Binds an event's encoding and payload at columns col, col + 1: both
 * stay valid until the statement runs (the scratch buffer and the
 * reference the operation holds). */
static int
bind_event(struct evfn__jstore *s, sqlite3_stmt *st, int col,
           const evfn_event *ev)
{
	s->scratch.len = 0;
	if (evfn__event_encode(ev, &s->scratch) < 0)
		return EVFN_ENOMEM;
	size_t len;
	const void *data = evfn_event_data(ev, &len);
	sqlite3_bind_blob(st, col, s->scratch.p, (int)s->scratch.len,
	                  SQLITE_STATIC);
	sqlite3_bind_blob64(st, col + 1, data, len, SQLITE_STATIC);
	return 0;
}

/* Runs statement which (bound at ?1 seq, ?2 fn) on the invocation
 * row, or when it names none, other on the fan-out target row. *hit
 * says whether a target row was the one. */
static int
step_invocation(struct evfn__jstore *s, const struct evfn__jop *op,
                enum stmt which, enum stmt other, bool *target)
{
	sqlite3_bind_int64(s->st[which], 1, (sqlite3_int64)op->seq);
	sqlite3_bind_int64(s->st[which], 2, op->fn);
	int rc = step(s, which);
	*target = false;
	if (rc < 0 || sqlite3_changes(s->db) > 0)
		return rc;
	*target = true;
	sqlite3_stmt *st = s->st[other];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
	sqlite3_bind_int64(st, 2, op->fn);
	if (other == ST_TARGET_UPDATE)
		bind_state(st, op);
	else if (other == ST_TARGET_PHASE)
		sqlite3_bind_int(st, 3, EVFN__JPHASE_HANDED_BACK);
	return step(s, other);
}

/* Removes an invocation, and a fan-out's event with its last target. */
static int
remove_invocation(struct evfn__jstore *s, const struct evfn__jop *op)
{
	bool target;
	int rc = step_invocation(s, op, ST_INV_DELETE, ST_TARGET_DELETE,
	                         &target);
	if (rc == 0 && target && sqlite3_changes(s->db) > 0) {
		sqlite3_bind_int64(s->st[ST_EVENT_DELETE_ORPHAN], 1,
		                   (sqlite3_int64)op->seq);
		rc = step(s, ST_EVENT_DELETE_ORPHAN);
	}
	return rc;
}

static int
append(struct evfn__jstore *s, const struct evfn__jop *op,
       uint64_t *event_written)
{
	sqlite3_stmt *st;
	int rc;
	if (!op->fanout) {
		st = s->st[ST_INV_ADD];
		bind_state(st, op);
		rc = bind_event(s, st, 11, op->ev);
		return rc < 0 ? rc : step(s, ST_INV_ADD);
	}
	/* The targets of one event are buffered together. */
	if (*event_written != op->seq) {
		st = s->st[ST_EVENT_ADD];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		rc = bind_event(s, st, 2, op->ev);
		if (rc == 0)
			rc = step(s, ST_EVENT_ADD);
		if (rc < 0)
			return rc;
		*event_written = op->seq;
	}
	bind_state(s->st[ST_TARGET_ADD], op);
	return step(s, ST_TARGET_ADD);
}

static int
apply_one(struct evfn__jstore *s, const struct evfn__jop *op,
          uint64_t *event_written)
{
	sqlite3_stmt *st;
	bool target;
	int rc = 0;
	switch ((enum evfn__jop_kind)op->kind) {
	case EVFN__JOP_NONE:
	case EVFN__JOP_SYNC:
		return 0;
	case EVFN__JOP_FUNCTION:
		st = s->st[ST_FN_ADD];
		sqlite3_bind_int64(st, 1, op->fn);
		sqlite3_bind_text(st, 2, op->text, -1, SQLITE_STATIC);
		return step(s, ST_FN_ADD);
	case EVFN__JOP_APPEND:
		return append(s, op, event_written);
	case EVFN__JOP_UPDATE:
		bind_state(s->st[ST_INV_UPDATE], op);
		return step_invocation(s, op, ST_INV_UPDATE, ST_TARGET_UPDATE,
		                       &target);
	case EVFN__JOP_HAND_BACK:
		sqlite3_bind_int(s->st[ST_INV_PHASE], 3,
		                 EVFN__JPHASE_HANDED_BACK);
		return step_invocation(s, op, ST_INV_PHASE, ST_TARGET_PHASE,
		                       &target);
	case EVFN__JOP_END:
		return remove_invocation(s, op);
	case EVFN__JOP_DEAD_LETTER:
		st = s->st[ST_DL_ADD];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)op->seq);
		sqlite3_bind_int64(st, 3, op->fn);
		sqlite3_bind_int(st, 4, op->st.last_code);
		sqlite3_bind_int64(st, 5, op->st.attempts);
		sqlite3_bind_int64(st, 6, op->st.first_attempt_ns);
		sqlite3_bind_int64(st, 7, op->st.last_attempt_ns);
		sqlite3_bind_text(st, 8, op->text, -1, SQLITE_STATIC);
		rc = bind_event(s, st, 9, op->ev);
		if (rc == 0)
			rc = step(s, ST_DL_ADD);
		if (rc == 0 && op->seq)
			rc = remove_invocation(s, op);
		return rc;
	case EVFN__JOP_DEAD_LETTER_DELETE:
		sqlite3_bind_int64(s->st[ST_DL_DELETE], 1,
		                   (sqlite3_int64)op->id);
		return step(s, ST_DL_DELETE);
	case EVFN__JOP_DEAD_LETTER_PURGE:
		return step(s, ST_DL_PURGE);
	case EVFN__JOP_IDEMPOTENCY:
		st = s->st[ST_IDEM_PUT];
		sqlite3_bind_int64(st, 1, op->fn);
		sqlite3_bind_text(st, 2, op->text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)op->id);
		sqlite3_bind_blob64(st, 4, op->blob, op->blob_len,
		                    SQLITE_STATIC);
		return step(s, ST_IDEM_PUT);
	}
	return 0;
}

int
evfn__jstore_apply(struct evfn__jstore *s, const struct evfn__jop *ops,
                   size_t n)
{
	uint64_t event_written = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = apply_one(s, &ops[i], &event_written);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
evfn__jstore_set_marks(struct evfn__jstore *s,
                       const struct evfn__jstore_marks *m)
{
	sqlite3_stmt *st = s->st[ST_MARKS];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)m->last_seq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)m->last_dead_letter);
	return step(s, ST_MARKS);
}

uint64_t
evfn__jstore_rows(const struct evfn__jstore *s)
{
	return (uint64_t)sqlite3_total_changes64(s->db);
}

uint32_t
evfn__jstore_wal_pages(const struct evfn__jstore *s)
{
	return s->wal_pages;
}

int
evfn__jstore_checkpoint(struct evfn__jstore *s, bool truncate)
{
	if (s->o->checkpoint_hook)
		s->o->checkpoint_hook(s->o->checkpoint_arg);
	int rc = sqlite3_wal_checkpoint_v2(
		s->db, NULL,
		truncate ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE,
		NULL, NULL);
	if (rc != SQLITE_OK)
		return fail(s, s->db, rc, "checkpoint");
	s->wal_pages = 0;
	return 0;
}

int
evfn__jstore_housekeep(struct evfn__jstore *s, int64_t now_ns)
{
	sqlite3_bind_int64(s->st[ST_IDEM_EXPIRE], 1, now_ns);
	int rc = step(s, ST_IDEM_EXPIRE);
	int64_t free_pages = 0, pages = 0;
	if (rc == 0)
		rc = query_int(s, "PRAGMA freelist_count", &free_pages);
	if (rc == 0)
		rc = query_int(s, "PRAGMA page_count", &pages);
	/* After a backlog drained the file keeps its size, its pages free
	 * for the next one; over half the file and 4 MiB of them go back
	 * to the file system. */
	if (rc == 0 && free_pages >= 1024 && free_pages * 2 >= pages)
		rc = exec(s, "PRAGMA incremental_vacuum");
	return rc;
}

/* Reads the state columns col.. of a recovery row into st; false when a
 * value is out of its range (a damaged row). */
static bool
read_state(sqlite3_stmt *q, int col, struct evfn__journal_state *st)
{
	int64_t phase = sqlite3_column_int64(q, col);
	int64_t attempts = sqlite3_column_int64(q, col + 1);
	*st = (struct evfn__journal_state){
		.phase = (enum evfn__journal_phase)phase,
		.attempts = (uint32_t)attempts,
		.due_ns = sqlite3_column_int64(q, col + 2),
		.backoff_ns = sqlite3_column_int64(q, col + 3),
		.first_attempt_ns = sqlite3_column_int64(q, col + 4),
		.last_attempt_ns = sqlite3_column_int64(q, col + 5),
		.last_code = (int32_t)sqlite3_column_int64(q, col + 6),
		.last_error = (const char *)sqlite3_column_text(q, col + 7),
	};
	return phase >= EVFN__JPHASE_WAITING &&
	       phase <= EVFN__JPHASE_HANDED_BACK && attempts >= 0 &&
	       attempts <= UINT32_MAX;
}

/* Decodes the event at columns col (attributes), col + 1 (payload). */
static int
read_event(sqlite3_stmt *q, int col, evfn_event **ev)
{
	const void *attrs = sqlite3_column_blob(q, col);
	int attrs_len = sqlite3_column_bytes(q, col);
	const void *data = sqlite3_column_blob(q, col + 1);
	int data_len = sqlite3_column_bytes(q, col + 1);
	if (!attrs) {
		*ev = NULL;
		return EVFN_ECORRUPT; /* an invocation without its event */
	}
	return evfn__event_decode(ev, attrs, (size_t)attrs_len, data,
	                          (size_t)data_len);
}

/* Ends a recovery query: finalizes q and returns the callback's return,
 * the row's error, SQLite's error (sqlite_rc), or the count. */
static int
finish_query(struct evfn__jstore *s, sqlite3_stmt *q, int sqlite_rc, int rc,
             int count, const char *what)
{
	if (rc == 0 && sqlite_rc != SQLITE_DONE)
		rc = fail(s, s->db, sqlite_rc, what);
	else if (rc == EVFN_ECORRUPT && s->o->log_cb)
		s->o->log_cb(rc, "journal: a damaged record", s->o->log_arg);
	sqlite3_finalize(q);
	return rc != 0 ? rc : count;
}

/* The (seq, fn) of a recovery query's current row. */
static bool
row_before(sqlite3_stmt *a, sqlite3_stmt *b)
{
	int64_t sa = sqlite3_column_int64(a, 0), sb = sqlite3_column_int64(b, 0);
	return sa != sb ? sa < sb
	                : sqlite3_column_int64(a, 1) < sqlite3_column_int64(b, 1);
}

int
evfn__jstore_recover(struct evfn__jstore *s, evfn__journal_recover_cb cb,
                     void *arg)
{
	/* Two streams in (seq, fn) order, merged: events with one target
	 * and the targets of fanned-out ones. Same columns in both. */
	static const char *const sql[2] = {
		"SELECT seq, fn, " STATE_COLUMNS ", attrs, data"
		" FROM invocations ORDER BY seq",
		"SELECT t.seq, t.fn, " STATE_COLUMNS ", e.attrs, e.data"
		" FROM targets t LEFT JOIN events e ON e.seq = t.seq"
		" ORDER BY t.seq, t.fn",
	};
	sqlite3_stmt *q[2] = {NULL, NULL};
	int src[2] = {SQLITE_OK, SQLITE_OK};
	for (int k = 0; k < 2; k++) {
		src[k] = sqlite3_prepare_v2(s->db, sql[k], -1, &q[k], NULL);
		if (src[k] == SQLITE_OK)
			src[k] = sqlite3_step(q[k]);
	}
	int rc = 0, count = 0;
	evfn_event *ev = NULL;
	uint64_t ev_seq = 0;
	while (src[0] == SQLITE_ROW || src[1] == SQLITE_ROW) {
		int k = src[0] != SQLITE_ROW                                ? 1
		        : src[1] == SQLITE_ROW && row_before(q[1], q[0]) ? 1
		                                                        : 0;
		struct evfn__journal_record r = {
			.seq = (uint64_t)sqlite3_column_int64(q[k], 0),
		};
		int64_t fn = sqlite3_column_int64(q[k], 1);
		if (!read_state(q[k], 2, &r.st) || fn <= 0 ||
		    fn > UINT32_MAX || r.seq == 0) {
			rc = EVFN_ECORRUPT;
			break;
		}
		r.fn = (uint32_t)fn;
		/* A fan-out's targets are adjacent: one decode. */
		if (!ev || ev_seq != r.seq) {
			evfn_event_unref(ev);
			ev_seq = r.seq;
			if ((rc = read_event(q[k], 10, &ev)) < 0)
				break;
		}
		r.ev = ev;
		if (r.st.phase == EVFN__JPHASE_RUNNING) {
			/* The process died during this attempt: it failed. */
			r.crashed = true;
			r.st.phase = EVFN__JPHASE_WAITING;
			r.st.last_code = EVFN_ECRASHED;
			r.st.last_error = NULL;
		}
		if ((rc = cb(&r, arg)) != 0)
			break;
		count++;
		src[k] = sqlite3_step(q[k]);
	}
	evfn_event_unref(ev);
	/* Stopped by an error of one stream (or the callback, or a row):
	 * that is what the call returns. */
	int k = src[0] == SQLITE_DONE || src[0] == SQLITE_ROW ? 1 : 0;
	int sqlite_rc = src[k] == SQLITE_ROW ? SQLITE_DONE : src[k];
	sqlite3_finalize(q[1 - k]);
	return finish_query(s, q[k], sqlite_rc, rc, count, sql[k]);
}

int
evfn__jstore_recover_dead_letters(struct evfn__jstore *s,
                                  evfn__journal_dead_letter_cb cb, void *arg)
{
	const char *sql = "SELECT id, fn, code, attempts, first_attempt,"
	                  " last_attempt, error, attrs, data, seq"
	                  " FROM dead_letters ORDER BY id";
	sqlite3_stmt *q;
	int src = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
	int rc = 0, count = 0;
	while (src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		int64_t fn = sqlite3_column_int64(q, 1);
		int64_t attempts = sqlite3_column_int64(q, 3);
		if (id <= 0 || fn <= 0 || fn > UINT32_MAX || attempts < 0 ||
		    attempts > UINT32_MAX) {
			rc = EVFN_ECORRUPT;
			break;
		}
		struct evfn__journal_dead_letter dl = {
			.id = (uint64_t)id,
			.fn = (uint32_t)fn,
			.code = (int32_t)sqlite3_column_int64(q, 2),
			.attempts = (uint32_t)attempts,
			.first_attempt_ns = sqlite3_column_int64(q, 4),
			.last_attempt_ns = sqlite3_column_int64(q, 5),
			.error = (const char *)sqlite3_column_text(q, 6),
			.seq = (uint64_t)sqlite3_column_int64(q, 9),
		};
		if ((rc = read_event(q, 7, &dl.ev)) < 0)
			break;
		rc = cb(&dl, arg);
		evfn_event_unref(dl.ev);
		if (rc != 0)
			break;
		count++;
		src = SQLITE_OK;
	}
	return finish_query(s, q, src, rc, count, sql);
}

int
evfn__jstore_recover_idempotency(struct evfn__jstore *s, int64_t now_ns,
                                 evfn__journal_idempotency_cb cb, void *arg)
{
	const char *sql = "SELECT fn, key, expires, response FROM idempotency"
	                  " WHERE expires > ?1 ORDER BY fn, key";
	sqlite3_stmt *q;
	int src = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
	int rc = 0, count = 0;
	if (src == SQLITE_OK)
		sqlite3_bind_int64(q, 1, now_ns);
	while (src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t fn = sqlite3_column_int64(q, 0);
		struct evfn__journal_idempotency k = {
			.fn = (uint32_t)fn,
			.key = (const char *)sqlite3_column_text(q, 1),
			.expires_ns = sqlite3_column_int64(q, 2),
			.resp = sqlite3_column_blob(q, 3),
			.resp_len = (size_t)sqlite3_column_bytes(q, 3),
		};
		if (fn <= 0 || fn > UINT32_MAX || !k.key) {
			rc = EVFN_ECORRUPT;
			break;
		}
		if ((rc = cb(&k, arg)) != 0)
			break;
		count++;
		src = SQLITE_OK;
	}
	return finish_query(s, q, src, rc, count, sql);
}

void
evfn__jstore_close(struct evfn__jstore *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close_v2(s->db);
	evfn__bytes_free(&s->scratch);
	evfn__free(s);
}
