/* SPDX-License-Identifier: MIT */
/*
 * The decoder of PostgreSQL's pgoutput logical replication messages
 * (protocol version 1) and the JSON rendering of the row changes they
 * carry: what the pg source (pg.c) reads out of each XLogData message.
 * Pure functions over bytes, with no libpq and no event loop, so that the
 * unit tests and the fuzz target reach them directly.
 */
#ifndef EVFN_PGOUTPUT_INTERNAL_H
#define EVFN_PGOUTPUT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash-internal.h"

/* A growing text buffer; oom is set (and later appends ignored) once an
 * allocation failed. */
struct evfn__pgo_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void evfn__pgo_buf_add(struct evfn__pgo_buf *b, const char *s, size_t n);
void evfn__pgo_buf_str(struct evfn__pgo_buf *b, const char *s);
/* Appends s[0..n) as a JSON string, quotes included. */
void evfn__pgo_buf_json_string(struct evfn__pgo_buf *b, const char *s,
                               size_t n);
void evfn__pgo_buf_free(struct evfn__pgo_buf *b);

struct evfn__pgo_column {
	char *name;
	uint32_t type; /* pg_type OID */
	bool key;      /* part of the replica identity */
};

/* A table as the last Relation message described it. */
struct evfn__pgo_relation {
	UT_hash_handle hh;
	uint32_t oid;
	char *schema; /* "pg_catalog" where the message said "" */
	char *table;
	int ncols;
	int nkeys;
	struct evfn__pgo_column *cols;
};

/* One column value of a tuple, borrowed from the message. */
struct evfn__pgo_value {
	char kind; /* 'n' null, 'u' unchanged TOAST value, 't' text */
	uint32_t len;
	const char *text;
};

struct evfn__pgo_tuple {
	int n; /* 0: absent */
	struct evfn__pgo_value *v;
};

enum evfn__pgo_kind {
	EVFN__PGO_OTHER,  /* Relation, Type, Origin, Message: nothing to run */
	EVFN__PGO_BEGIN,
	EVFN__PGO_COMMIT,
	EVFN__PGO_INSERT,
	EVFN__PGO_UPDATE,
	EVFN__PGO_DELETE,
	EVFN__PGO_TRUNCATE
};

/* One decoded message. Pointers borrow from the message bytes and the
 * decoder, until the next evfn__pgo_decode(). */
struct evfn__pgo_msg {
	enum evfn__pgo_kind kind;
	/* Begin: the transaction's commit LSN, commit time (microseconds
	 * since 2000-01-01) and id. Commit: commit_lsn and end_lsn (the end
	 * of the commit record). */
	uint64_t commit_lsn;
	uint64_t end_lsn;
	int64_t commit_time_us;
	uint32_t xid;
	/* Insert, Update, Delete. */
	const struct evfn__pgo_relation *rel;
	struct evfn__pgo_tuple new_tuple; /* insert, update */
	struct evfn__pgo_tuple old_tuple; /* update (when sent), delete */
	char old_kind; /* 'K': key columns only, 'O': the whole old row */
	/* Truncate: the relations (raw big-endian OIDs) and the flags (1
	 * CASCADE, 2 RESTART IDENTITY). */
	uint32_t ntruncated;
	const unsigned char *truncated;
	uint8_t truncate_flags;
};

/* Decoder state: the relations described so far, and scratch room for
 * tuple values. Zero-initialise; evfn__pgo_clear() releases it. */
struct evfn__pgo {
	struct evfn__pgo_relation *rels;
	struct evfn__pgo_value *vals;
	size_t vals_cap;
};

/* Decodes one pgoutput message (the payload of an XLogData message).
 * Relation messages update d. Returns 0; EVFN_EINVAL for a malformed or
 * unknown message, or a change to a relation not described before;
 * EVFN_ENOMEM. */
int evfn__pgo_decode(struct evfn__pgo *d, const unsigned char *p, size_t n,
                     struct evfn__pgo_msg *m);

/* The relation with this OID, or NULL. */
const struct evfn__pgo_relation *evfn__pgo_relation(const struct evfn__pgo *d,
                                                    uint32_t oid);

void evfn__pgo_clear(struct evfn__pgo *d);

/* The operation's name: "insert", "update", "delete" or "truncate". */
const char *evfn__pgo_op_name(enum evfn__pgo_kind kind);

/* Appends the row change of m as JSON members, without braces:
 * "new":{...} for inserts and updates, then "old":{...} for updates and
 * deletes (the key columns, or the whole old row under REPLICA IDENTITY
 * FULL; for an update that sent no old row, the key columns of the new
 * one). Values: null, true/false for bool, numbers as the server wrote
 * them for integer, float, numeric and oid columns (NaN and infinities
 * as strings), json and jsonb verbatim, strings otherwise; columns whose
 * TOASTed value did not change are left out of "new". */
void evfn__pgo_json_row(struct evfn__pgo_buf *b, const struct evfn__pgo_msg *m);

/* Appends the replica identity key of the changed row: the text of the
 * one key column, or a JSON array of the values of several. Returns false
 * (appending nothing) when the table has no key. */
bool evfn__pgo_key(struct evfn__pgo_buf *b, const struct evfn__pgo_msg *m);

/* Parses "XXX/XXX" (an LSN as PostgreSQL prints it). */
bool evfn__pgo_lsn_parse(const char *s, uint64_t *lsn);
/* Formats an LSN as PostgreSQL does; buf holds at least 20 bytes. */
void evfn__pgo_lsn_format(uint64_t lsn, char *buf);

#endif /* EVFN_PGOUTPUT_INTERNAL_H */
