/* SPDX-License-Identifier: MIT */
/*
 * pgoutput protocol version 1, the message formats of PostgreSQL's
 * "Logical Replication Message Formats" chapter: Begin, Commit, Origin,
 * Relation, Type, Insert, Update, Delete, Truncate and Message, decoded
 * with every length checked against the bytes received, and the JSON of
 * a row change. Nothing here knows about connections or events.
 */
#include <stdio.h>
#include <string.h>

#include "common-internal.h"
#include "pgoutput-internal.h"

/* pg_type OIDs of the columns rendered as something other than a JSON
 * string. */
enum {
	OID_BOOL = 16,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_OID = 26,
	OID_JSON = 114,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_NUMERIC = 1700,
	OID_JSONB = 3802
};

/* ---- text buffer ---------------------------------------------------------- */

void
evfn__pgo_buf_add(struct evfn__pgo_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = evfn__realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
evfn__pgo_buf_str(struct evfn__pgo_buf *b, const char *s)
{
	evfn__pgo_buf_add(b, s, strlen(s));
}

void
evfn__pgo_buf_json_string(struct evfn__pgo_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	evfn__pgo_buf_add(b, "\"", 1);
	size_t run = 0; /* bytes copied as they are, pending */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		evfn__pgo_buf_add(b, s + run, i - run);
		run = i + 1;
		char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			evfn__pgo_buf_add(b, esc, 2);
		} else if (c == '\n') {
			evfn__pgo_buf_add(b, "\\n", 2);
		} else if (c == '\t') {
			evfn__pgo_buf_add(b, "\\t", 2);
		} else if (c == '\r') {
			evfn__pgo_buf_add(b, "\\r", 2);
		} else {
			evfn__pgo_buf_add(b, esc, 6);
		}
	}
	evfn__pgo_buf_add(b, s + run, n - run);
	evfn__pgo_buf_add(b, "\"", 1);
}

void
evfn__pgo_buf_free(struct evfn__pgo_buf *b)
{
	evfn__free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- LSNs ------------------------------------------------------------------- */

bool
evfn__pgo_lsn_parse(const char *s, uint64_t *lsn)
{
	uint64_t part[2] = {0, 0};
	int digits = 0;
	for (int i = 0; i < 2; i++, s++) {
		digits = 0;
		for (; *s && *s != '/'; s++, digits++) {
			int v = *s >= '0' && *s <= '9'   ? *s - '0'
			        : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
			        : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
			                                 : -1;
			if (v < 0 || digits >= 8)
				return false;
			part[i] = part[i] * 16 + (uint64_t)v;
		}
		if (digits == 0 || (i == 0 && *s != '/') || (i == 1 && *s))
			return false;
	}
	*lsn = part[0] << 32 | part[1];
	return true;
}

void
evfn__pgo_lsn_format(uint64_t lsn, char *buf)
{
	snprintf(buf, 20, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

/* ---- reading ---------------------------------------------------------------- */

/* A cursor over one message: every read checks the bytes left, and a
 * read past the end sets bad (and yields zeros). */
struct rd {
	const unsigned char *p;
	size_t left;
	bool bad;
};

static const unsigned char *
take(struct rd *r, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = true;
		return NULL;
	}
	const unsigned char *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint8_t
rd_u8(struct rd *r)
{
	const unsigned char *p = take(r, 1);
	return p ? p[0] : 0;
}

static uint16_t
rd_u16(struct rd *r)
{
	const unsigned char *p = take(r, 2);
	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

static uint32_t
rd_u32(struct rd *r)
{
	const unsigned char *p = take(r, 4);
	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	                   (uint32_t)p[2] << 8 | p[3]
	         : 0;
}

static uint64_t
rd_u64(struct rd *r)
{
	uint64_t hi = rd_u32(r);
	return hi << 32 | rd_u32(r);
}

/* A NUL-terminated string within the message. */
static const char *
rd_str(struct rd *r)
{
	const unsigned char *end = r->bad ? NULL : memchr(r->p, '\0', r->left);
	if (!end) {
		r->bad = true;
		return "";
	}
	return (const char *)take(r, (size_t)(end - r->p) + 1);
}

/* Reads TupleData into d's scratch values (kind 'n', 'u' or 't'; 'b',
 * binary, is never asked for). The tuple must have the relation's
 * columns. */
static int
rd_tuple(struct rd *r, struct evfn__pgo *d, const struct evfn__pgo_relation *rel,
         size_t first, struct evfn__pgo_tuple *t)
{
	int n = rd_u16(r);
	if (r->bad || n != rel->ncols)
		return EVFN_EINVAL;
	t->n = n;
	t->v = NULL;
	if (n == 0)
		return 0; /* a table without columns */
	if (first + (size_t)n > d->vals_cap) {
		size_t cap = EVFN__MAX(first + (size_t)n, d->vals_cap * 2);
		struct evfn__pgo_value *v =
			evfn__realloc(d->vals, cap * sizeof(*v));
		if (!v)
			return EVFN_ENOMEM;
		d->vals = v;
		d->vals_cap = cap;
	}
	struct evfn__pgo_value *v = d->vals + first;
	for (int i = 0; i < n; i++) {
		v[i].kind = (char)rd_u8(r);
		v[i].len = 0;
		v[i].text = NULL;
		if (v[i].kind == 't') {
			v[i].len = rd_u32(r);
			v[i].text = (const char *)take(r, v[i].len);
		} else if (v[i].kind != 'n' && v[i].kind != 'u') {
			return EVFN_EINVAL;
		}
		if (r->bad)
			return EVFN_EINVAL;
	}
	t->v = v;
	return 0;
}

static void
relation_free(struct evfn__pgo_relation *rel)
{
	if (!rel)
		return;
	for (int i = 0; rel->cols && i < rel->ncols; i++)
		evfn__free(rel->cols[i].name);
	evfn__free(rel->cols);
	evfn__free(rel->schema);
	evfn__free(rel->table);
	evfn__free(rel);
}

/* A Relation message: replaces what d knew of that OID. */
static int
decode_relation(struct evfn__pgo *d, struct rd *r)
{
	struct evfn__pgo_relation *rel = evfn__calloc(1, sizeof(*rel));
	if (!rel)
		return EVFN_ENOMEM;
	rel->oid = rd_u32(r);
	const char *schema = rd_str(r);
	rel->schema = evfn__strdup(*schema ? schema : "pg_catalog");
	rel->table = evfn__strdup(rd_str(r));
	(void)rd_u8(r); /* replica identity setting: the flags say it */
	rel->ncols = rd_u16(r);
	int rc = !rel->schema || !rel->table ? EVFN_ENOMEM : 0;
	if (!rc && (r->bad || !*rel->table))
		rc = EVFN_EINVAL;
	if (!rc && rel->ncols > 0 &&
	    !(rel->cols = evfn__calloc((size_t)rel->ncols, sizeof(*rel->cols))))
		rc = EVFN_ENOMEM;
	for (int i = 0; !rc && i < rel->ncols; i++) {
		struct evfn__pgo_column *c = &rel->cols[i];
		c->key = rd_u8(r) & 1;
		const char *name = rd_str(r);
		c->type = rd_u32(r);
		(void)rd_u32(r); /* type modifier */
		if (r->bad)
			rc = EVFN_EINVAL;
		else if (!(c->name = evfn__strdup(name)))
			rc = EVFN_ENOMEM;
		rel->nkeys += c->key;
	}
	if (rc) {
		relation_free(rel);
		return rc;
	}
	struct evfn__pgo_relation *old;
	HASH_FIND(hh, d->rels, &rel->oid, sizeof(rel->oid), old);
	if (old) {
		HASH_DEL(d->rels, old);
		relation_free(old);
	}
	bool evfn__hash_oom = false;
	HASH_ADD(hh, d->rels, oid, sizeof(rel->oid), rel);
	if (evfn__hash_oom) {
		relation_free(rel);
		return EVFN_ENOMEM;
	}
	return 0;
}

const struct evfn__pgo_relation *
evfn__pgo_relation(const struct evfn__pgo *d, uint32_t oid)
{
	struct evfn__pgo_relation *rel;
	HASH_FIND(hh, d->rels, &oid, sizeof(oid), rel);
	return rel;
}

/* Insert, Update or Delete: the relation, then tuples tagged 'N' (new),
 * 'K' (old key) or 'O' (old row) as the message type allows. */
static int
decode_change(struct evfn__pgo *d, struct rd *r, char type,
              struct evfn__pgo_msg *m)
{
	m->kind = type == 'I'   ? EVFN__PGO_INSERT
	          : type == 'U' ? EVFN__PGO_UPDATE
	                        : EVFN__PGO_DELETE;
	m->rel = evfn__pgo_relation(d, rd_u32(r));
	if (!m->rel)
		return EVFN_EINVAL;
	size_t used = 0;
	int tag = rd_u8(r);
	if ((tag == 'K' || tag == 'O') && type != 'I') {
		m->old_kind = (char)tag;
		int rc = rd_tuple(r, d, m->rel, used, &m->old_tuple);
		if (rc)
			return rc;
		used = (size_t)m->old_tuple.n;
		if (type == 'D')
			return r->left ? EVFN_EINVAL : 0;
		tag = rd_u8(r);
	}
	if (tag != 'N' || type == 'D')
		return EVFN_EINVAL;
	int rc = rd_tuple(r, d, m->rel, used, &m->new_tuple);
	if (!rc && r->left)
		rc = EVFN_EINVAL;
	/* An old tuple read first lives in the same scratch array, which
	 * reading the new one may have moved. */
	if (!rc && m->old_tuple.n)
		m->old_tuple.v = d->vals;
	return rc;
}

int
evfn__pgo_decode(struct evfn__pgo *d, const unsigned char *p, size_t n,
                 struct evfn__pgo_msg *m)
{
	memset(m, 0, sizeof(*m));
	struct rd r = {p, n, false};
	char type = (char)rd_u8(&r);
	int rc = 0;
	switch (type) {
	case 'B':
		m->kind = EVFN__PGO_BEGIN;
		m->commit_lsn = rd_u64(&r);
		m->commit_time_us = (int64_t)rd_u64(&r);
		m->xid = rd_u32(&r);
		break;
	case 'C':
		m->kind = EVFN__PGO_COMMIT;
		(void)rd_u8(&r); /* flags, unused */
		m->commit_lsn = rd_u64(&r);
		m->end_lsn = rd_u64(&r);
		m->commit_time_us = (int64_t)rd_u64(&r);
		break;
	case 'O': /* Origin of a transaction replayed from elsewhere */
		(void)rd_u64(&r);
		(void)rd_str(&r);
		break;
	case 'Y': /* Type: names a type the relations use */
		(void)rd_u32(&r);
		(void)rd_str(&r);
		(void)rd_str(&r);
		break;
	case 'M': /* Message from pg_logical_emit_message(), if asked for */
		r.left = 0;
		break;
	case 'R':
		rc = decode_relation(d, &r);
		break;
	case 'I':
	case 'U':
	case 'D':
		rc = decode_change(d, &r, type, m);
		break;
	case 'T':
		m->kind = EVFN__PGO_TRUNCATE;
		m->ntruncated = rd_u32(&r);
		m->truncate_flags = rd_u8(&r);
		if (m->ntruncated > r.left / 4)
			return EVFN_EINVAL;
		m->truncated = take(&r, (size_t)m->ntruncated * 4);
		break;
	default:
		return EVFN_EINVAL;
	}
	if (!rc && (r.bad || r.left))
		rc = EVFN_EINVAL;
	return rc;
}

void
evfn__pgo_clear(struct evfn__pgo *d)
{
	struct evfn__pgo_relation *rel, *tmp;
	HASH_ITER(hh, d->rels, rel, tmp) {
		HASH_DEL(d->rels, rel);
		relation_free(rel); /* NOLINT(clang-analyzer-unix.Malloc) */
	}
	evfn__free(d->vals);
	memset(d, 0, sizeof(*d));
}

const char *
evfn__pgo_op_name(enum evfn__pgo_kind kind)
{
	switch (kind) {
	case EVFN__PGO_INSERT:
		return "insert";
	case EVFN__PGO_UPDATE:
		return "update";
	case EVFN__PGO_DELETE:
		return "delete";
	case EVFN__PGO_TRUNCATE:
		return "truncate";
	default:
		return "other";
	}
}

/* ---- JSON ------------------------------------------------------------------- */

/* True when s[0..n) is a JSON number (RFC 8259): what integer, float and
 * numeric columns print, except NaN and the infinities. */
static bool
is_json_number(const char *s, size_t n)
{
	size_t i = 0;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n || s[i] < '0' || s[i] > '9')
		return false;
	if (s[i] == '0')
		i++;
	else
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	if (i < n && s[i] == '.') {
		size_t start = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start)
			return false;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t start = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start)
			return false;
	}
	return i == n;
}

static void
json_value(struct evfn__pgo_buf *b, const struct evfn__pgo_column *c,
           const struct evfn__pgo_value *v)
{
	if (v->kind != 't') {
		evfn__pgo_buf_add(b, "null", 4);
		return;
	}
	switch (c->type) {
	case OID_BOOL:
		if (v->len == 1 && (v->text[0] == 't' || v->text[0] == 'f')) {
			evfn__pgo_buf_str(b, v->text[0] == 't' ? "true"
			                                       : "false");
			return;
		}
		break;
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC:
		if (is_json_number(v->text, v->len)) {
			evfn__pgo_buf_add(b, v->text, v->len);
			return;
		}
		break;
	case OID_JSON:
	case OID_JSONB:
		/* The server checked it when it was stored. */
		if (v->len) {
			evfn__pgo_buf_add(b, v->text, v->len);
			return;
		}
		break;
	default:
		break;
	}
	evfn__pgo_buf_json_string(b, v->text, v->len);
}

/* Appends {"col":value,...} of a tuple: every column, or only the key
 * columns; unchanged TOAST values are left out. */
static void
json_tuple(struct evfn__pgo_buf *b, const struct evfn__pgo_relation *rel,
           const struct evfn__pgo_tuple *t, bool keys_only)
{
	evfn__pgo_buf_add(b, "{", 1);
	bool first = true;
	for (int i = 0; i < t->n; i++) {
		const struct evfn__pgo_column *c = &rel->cols[i];
		if ((keys_only && !c->key) || t->v[i].kind == 'u')
			continue;
		if (!first)
			evfn__pgo_buf_add(b, ",", 1);
		first = false;
		evfn__pgo_buf_json_string(b, c->name, strlen(c->name));
		evfn__pgo_buf_add(b, ":", 1);
		json_value(b, c, &t->v[i]);
	}
	evfn__pgo_buf_add(b, "}", 1);
}

void
evfn__pgo_json_row(struct evfn__pgo_buf *b, const struct evfn__pgo_msg *m)
{
	const struct evfn__pgo_relation *rel = m->rel;
	if (m->new_tuple.n) {
		evfn__pgo_buf_add(b, "\"new\":", 6);
		json_tuple(b, rel, &m->new_tuple, false);
	}
	if (m->kind == EVFN__PGO_INSERT)
		return;
	if (m->new_tuple.n)
		evfn__pgo_buf_add(b, ",", 1);
	evfn__pgo_buf_add(b, "\"old\":", 6);
	if (m->old_tuple.n)
		json_tuple(b, rel, &m->old_tuple, m->old_kind == 'K');
	else
		json_tuple(b, rel, &m->new_tuple, true);
}

bool
evfn__pgo_key(struct evfn__pgo_buf *b, const struct evfn__pgo_msg *m)
{
	const struct evfn__pgo_relation *rel = m->rel;
	const struct evfn__pgo_tuple *t =
		m->kind == EVFN__PGO_DELETE ? &m->old_tuple : &m->new_tuple;
	if (!rel || rel->nkeys == 0 || !t->n)
		return false;
	if (rel->nkeys == 1) {
		for (int i = 0; i < t->n; i++)
			if (rel->cols[i].key) {
				if (t->v[i].kind == 't')
					evfn__pgo_buf_add(b, t->v[i].text,
					                  t->v[i].len);
				else
					evfn__pgo_buf_add(b, "null", 4);
			}
		return true;
	}
	evfn__pgo_buf_add(b, "[", 1);
	bool first = true;
	for (int i = 0; i < t->n; i++) {
		if (!rel->cols[i].key)
			continue;
		if (!first)
			evfn__pgo_buf_add(b, ",", 1);
		first = false;
		json_value(b, &rel->cols[i], &t->v[i]);
	}
	evfn__pgo_buf_add(b, "]", 1);
	return true;
}
