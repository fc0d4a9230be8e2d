/* SPDX-License-Identifier: MIT */
/*
 * The pgoutput decoder and the JSON of row changes, on messages built
 * byte by byte as the server sends them: every message kind, every value
 * rendering, keys, LSNs, and the refusals: every truncation of a valid
 * message, trailing bytes, unknown kinds and relations, and running out
 * of memory at each allocation. No server needed (test-pg.c has one).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failing-alloc.h"
#include "harness.h"
#include "sources/pgoutput-internal.h"

/* ---- building messages ---------------------------------------------------- */

struct msg {
	unsigned char b[4096];
	size_t n;
};

static void
u8(struct msg *m, unsigned v)
{
	m->b[m->n++] = (unsigned char)v;
}

static void
u16(struct msg *m, unsigned v)
{
	u8(m, v >> 8);
	u8(m, v & 255);
}

static void
u32(struct msg *m, uint32_t v)
{
	u16(m, v >> 16);
	u16(m, v & 65535);
}

static void
u64(struct msg *m, uint64_t v)
{
	u32(m, (uint32_t)(v >> 32));
	u32(m, (uint32_t)v);
}

static void
str(struct msg *m, const char *s)
{
	size_t n = strlen(s) + 1;
	memcpy(m->b + m->n, s, n);
	m->n += n;
}

/* A column value: NULL for SQL NULL, "\x01" for an unchanged TOAST
 * value, else text. */
static void
value(struct msg *m, const char *v)
{
	if (!v) {
		u8(m, 'n');
	} else if (!strcmp(v, "\x01")) {
		u8(m, 'u');
	} else {
		u8(m, 't');
		u32(m, (uint32_t)strlen(v));
		memcpy(m->b + m->n, v, strlen(v));
		m->n += strlen(v);
	}
}

static void
tuple(struct msg *m, int n, const char *const *v)
{
	u16(m, (unsigned)n);
	for (int i = 0; i < n; i++)
		value(m, v[i]);
}

struct col {
	const char *name;
	uint32_t type;
	bool key;
};

static struct msg
relation(uint32_t oid, const char *schema, const char *table, int n,
         const struct col *cols)
{
	struct msg m = {.n = 0};
	u8(&m, 'R');
	u32(&m, oid);
	str(&m, schema);
	str(&m, table);
	u8(&m, 'd');
	u16(&m, (unsigned)n);
	for (int i = 0; i < n; i++) {
		u8(&m, cols[i].key);
		str(&m, cols[i].name);
		u32(&m, cols[i].type);
		u32(&m, 0xffffffff);
	}
	return m;
}

/* Insert ('I'), update ('U', old tag 'K', 'O' or 0) or delete ('D'). */
static struct msg
change(char kind, uint32_t oid, char old_tag, int n, const char *const *old,
       const char *const *new_values)
{
	struct msg m = {.n = 0};
	u8(&m, (unsigned)kind);
	u32(&m, oid);
	if (old_tag) {
		u8(&m, (unsigned)old_tag);
		tuple(&m, n, old);
	}
	if (kind != 'D') {
		u8(&m, 'N');
		tuple(&m, n, new_values);
	}
	return m;
}

static const struct col order_cols[] = {
	{"id", 23, true},  {"item", 25, false}, {"paid", 16, false},
	{"price", 1700, false}, {"meta", 3802, false}, {"w", 701, false},
};
#define NCOLS 6

static int
decode(struct evfn__pgo *d, const struct msg *m, struct evfn__pgo_msg *out)
{
	return evfn__pgo_decode(d, m->b, m->n, out);
}

/* Decodes m and renders it as "<op> <key> {json}". */
static const char *
render(struct evfn__pgo *d, const struct msg *m)
{
	static char out[2048];
	struct evfn__pgo_msg msg;
	ASSERT_OK(decode(d, m, &msg));
	struct evfn__pgo_buf k = {0}, j = {0};
	if (!evfn__pgo_key(&k, &msg))
		evfn__pgo_buf_str(&k, "-");
	evfn__pgo_json_row(&j, &msg);
	assert_false(k.oom || j.oom);
	snprintf(out, sizeof(out), "%s %s {%s}", evfn__pgo_op_name(msg.kind),
	         k.p, j.p);
	evfn__pgo_buf_free(&k);
	evfn__pgo_buf_free(&j);
	return out;
}

/* ---- cases ---------------------------------------------------------------- */

static void
test_pgoutput_row_changes_render_as_json(void **state)
{
	(void)state;
	struct evfn__pgo d = {0};
	struct evfn__pgo_msg msg;
	struct msg r = relation(100, "shop", "orders", NCOLS, order_cols);
	ASSERT_OK(decode(&d, &r, &msg));
	ASSERT_EQ(msg.kind, EVFN__PGO_OTHER);
	const struct evfn__pgo_relation *rel = evfn__pgo_relation(&d, 100);
	assert_non_null(rel);
	assert_string_equal(rel->schema, "shop");
	assert_string_equal(rel->table, "orders");
	ASSERT_EQ(rel->nkeys, 1);

	const char *row[] = {"7", "tea \"green\"\\\n\t\x01", "t", "3.50",
	                     "{\"a\": [1, 2]}", "-1.5e-07"};
	struct msg m = change('I', 100, 0, NCOLS, NULL, row);
	assert_string_equal(render(&d, &m),
	                    "insert 7 {\"new\":{\"id\":7,\"item\":\"tea "
	                    "\\\"green\\\"\\\\\\n\\t\\u0001\",\"paid\":true,"
	                    "\"price\":3.50,\"meta\":{\"a\": [1, 2]},"
	                    "\"w\":-1.5e-07}}");
	/* An update that kept its key sends no old row: the old key is the
	 * new row's. NULLs and unchanged TOAST values. */
	const char *upd[] = {"7", NULL, "f", "NaN", "\x01", "Infinity"};
	m = change('U', 100, 0, NCOLS, NULL, upd);
	assert_string_equal(render(&d, &m),
	                    "update 7 {\"new\":{\"id\":7,\"item\":null,"
	                    "\"paid\":false,\"price\":\"NaN\",\"w\":"
	                    "\"Infinity\"},\"old\":{\"id\":7}}");
	/* A key change: the old key tuple has NULLs outside the key. */
	const char *old_key[] = {"7", NULL, NULL, NULL, NULL, NULL};
	const char *moved[] = {"8", "x", "t", "0", "null", "0.25"};
	m = change('U', 100, 'K', NCOLS, old_key, moved);
	assert_string_equal(render(&d, &m),
	                    "update 8 {\"new\":{\"id\":8,\"item\":\"x\","
	                    "\"paid\":true,\"price\":0,\"meta\":null,\"w\":"
	                    "0.25},\"old\":{\"id\":7}}");
	/* REPLICA IDENTITY FULL: the whole old row. */
	m = change('U', 100, 'O', NCOLS, moved, row);
	assert_string_equal(render(&d, &m),
	                    "update 7 {\"new\":{\"id\":7,\"item\":\"tea "
	                    "\\\"green\\\"\\\\\\n\\t\\u0001\",\"paid\":true,"
	                    "\"price\":3.50,\"meta\":{\"a\": [1, 2]},"
	                    "\"w\":-1.5e-07},\"old\":{\"id\":8,\"item\":\"x\","
	                    "\"paid\":true,\"price\":0,\"meta\":null,\"w\":"
	                    "0.25}}");
	m = change('D', 100, 'K', NCOLS, old_key, NULL);
	assert_string_equal(render(&d, &m), "delete 7 {\"old\":{\"id\":7}}");
	evfn__pgo_clear(&d);
	assert_null(d.rels);
}

static void
test_pgoutput_numbers_only_where_json_allows(void **state)
{
	(void)state;
	struct evfn__pgo d = {0};
	static const struct col cols[] = {{"n", 1700, false}};
	struct msg r = relation(1, "", "nums", 1, cols);
	struct evfn__pgo_msg msg;
	ASSERT_OK(decode(&d, &r, &msg));
	/* An empty schema is pg_catalog. */
	assert_string_equal(evfn__pgo_relation(&d, 1)->schema, "pg_catalog");
	const struct {
		const char *text, *json;
	} cases[] = {
		{"0", "0"},          {"-0", "-0"},          {"12.5", "12.5"},
		{"1e5", "1e5"},      {"1E+5", "1E+5"},      {"01", "\"01\""},
		{"1.", "\"1.\""},    {".5", "\".5\""},      {"-", "\"-\""},
		{"1e", "\"1e\""},    {"+1", "\"+1\""},      {"NaN", "\"NaN\""},
		{"-Infinity", "\"-Infinity\""}, {"", "\"\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *v[] = {cases[i].text};
		struct msg m = change('I', 1, 0, 1, NULL, v);
		char want[64];
		snprintf(want, sizeof(want), "insert - {\"new\":{\"n\":%s}}",
		         cases[i].json);
		assert_string_equal(render(&d, &m), want);
	}
	evfn__pgo_clear(&d);
}

static void
test_pgoutput_composite_key_is_a_json_array(void **state)
{
	(void)state;
	struct evfn__pgo d = {0};
	static const struct col cols[] = {
		{"region", 25, true}, {"n", 20, true}, {"v", 25, false}};
	struct msg r = relation(2, "public", "pairs", 3, cols);
	struct evfn__pgo_msg msg;
	ASSERT_OK(decode(&d, &r, &msg));
	const char *v[] = {"e\"u", "12", "x"};
	struct msg m = change('I', 2, 0, 3, NULL, v);
	assert_string_equal(render(&d, &m),
	                    "insert [\"e\\\"u\",12] {\"new\":{\"region\":"
	                    "\"e\\\"u\",\"n\":12,\"v\":\"x\"}}");
	evfn__pgo_clear(&d);
}

static void
test_pgoutput_begin_commit_truncate(void **state)
{
	(void)state;
	struct evfn__pgo d = {0};
	struct evfn__pgo_msg msg;
	struct msg b = {.n = 0};
	u8(&b, 'B');
	u64(&b, 0x16B374D848ULL);
	u64(&b, 123456789);
	u32(&b, 4242);
	ASSERT_OK(decode(&d, &b, &msg));
	ASSERT_EQ(msg.kind, EVFN__PGO_BEGIN);
	ASSERT_EQ(msg.commit_lsn, 0x16B374D848ULL);
	ASSERT_EQ(msg.commit_time_us, 123456789);
	ASSERT_EQ(msg.xid, 4242);
	struct msg c = {.n = 0};
	u8(&c, 'C');
	u8(&c, 0);
	u64(&c, 0x16B374D848ULL);
	u64(&c, 0x16B374D880ULL);
	u64(&c, 123456789);
	ASSERT_OK(decode(&d, &c, &msg));
	ASSERT_EQ(msg.kind, EVFN__PGO_COMMIT);
	ASSERT_EQ(msg.end_lsn, 0x16B374D880ULL);
	struct msg t = {.n = 0};
	u8(&t, 'T');
	u32(&t, 2);
	u8(&t, 3);
	u32(&t, 10);
	u32(&t, 11);
	ASSERT_OK(decode(&d, &t, &msg));
	ASSERT_EQ(msg.kind, EVFN__PGO_TRUNCATE);
	ASSERT_EQ(msg.ntruncated, 2);
	ASSERT_EQ(msg.truncate_flags, 3);
	ASSERT_EQ(msg.truncated[7], 11);
	/* Origin, Type and Message are taken and ignored. */
	struct msg o = {.n = 0};
	u8(&o, 'O');
	u64(&o, 1);
	str(&o, "elsewhere");
	ASSERT_OK(decode(&d, &o, &msg));
	ASSERT_EQ(msg.kind, EVFN__PGO_OTHER);
	struct msg y = {.n = 0};
	u8(&y, 'Y');
	u32(&y, 9999);
	str(&y, "public");
	str(&y, "mood");
	ASSERT_OK(decode(&d, &y, &msg));
	ASSERT_EQ(msg.kind, EVFN__PGO_OTHER);
	evfn__pgo_clear(&d);
}

/* Every message cut short, or with a byte too many, is refused; so are
 * unknown kinds, tuples of the wrong width and changes to relations
 * never described. Nothing is read past the bytes given (ASan). */
static void
test_pgoutput_refuses_malformed_messages(void **state)
{
	(void)state;
	struct evfn__pgo d = {0};
	struct evfn__pgo_msg msg;
	struct msg r = relation(100, "shop", "orders", NCOLS, order_cols);
	const char *row[] = {"7", "x", "t", "1", "{}", "2"};
	const char *old_key[] = {"7", NULL, NULL, NULL, NULL, NULL};
	struct msg valid[] = {
		r,
		change('I', 100, 0, NCOLS, NULL, row),
		change('U', 100, 'K', NCOLS, old_key, row),
		change('U', 100, 'O', NCOLS, row, row),
		change('D', 100, 'O', NCOLS, row, NULL),
	};
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		ASSERT_OK(decode(&d, &valid[i], &msg));
		for (size_t n = 0; n < valid[i].n; n++) {
			/* A copy of exactly n bytes, so ASan sees overreads. */
			unsigned char *cut = malloc(n ? n : 1);
			memcpy(cut, valid[i].b, n);
			int rc = evfn__pgo_decode(&d, cut, n, &msg);
			free(cut);
			if (rc != EVFN_EINVAL)
				fail_msg("message %zu cut at %zu of %zu: %s", i, n,
				         valid[i].n, evfn_err_name(rc));
		}
		struct msg longer = valid[i];
		u8(&longer, 0);
		ASSERT_RC(decode(&d, &longer, &msg), EVFN_EINVAL);
	}
	struct msg unknown = {.n = 0};
	u8(&unknown, 'Z');
	ASSERT_RC(decode(&d, &unknown, &msg), EVFN_EINVAL);
	struct msg stranger = change('I', 555, 0, NCOLS, NULL, row);
	ASSERT_RC(decode(&d, &stranger, &msg), EVFN_EINVAL);
	struct msg narrow = change('I', 100, 0, 2, NULL, row);
	ASSERT_RC(decode(&d, &narrow, &msg), EVFN_EINVAL);
	struct msg insert_with_old = change('I', 100, 'K', NCOLS, old_key, row);
	ASSERT_RC(decode(&d, &insert_with_old, &msg), EVFN_EINVAL);
	struct msg delete_without_old = change('D', 100, 0, NCOLS, NULL, NULL);
	ASSERT_RC(decode(&d, &delete_without_old, &msg), EVFN_EINVAL);
	struct msg binary = valid[1];
	binary.b[5 + 1 + 2] = 'b';
	ASSERT_RC(decode(&d, &binary, &msg), EVFN_EINVAL);
	struct msg truncate_lies = {.n = 0};
	u8(&truncate_lies, 'T');
	u32(&truncate_lies, 0x40000000);
	u8(&truncate_lies, 0);
	ASSERT_RC(decode(&d, &truncate_lies, &msg), EVFN_EINVAL);
	ASSERT_RC(evfn__pgo_decode(&d, NULL, 0, &msg), EVFN_EINVAL);
	evfn__pgo_clear(&d);
}

/* A relation described again (after ALTER TABLE) replaces the first
 * description. */
static void
test_pgoutput_relation_described_again_replaces(void **state)
{
	(void)state;
	struct evfn__pgo d = {0};
	struct evfn__pgo_msg msg;
	struct msg r = relation(100, "shop", "orders", NCOLS, order_cols);
	ASSERT_OK(decode(&d, &r, &msg));
	static const struct col two[] = {{"id", 23, true}, {"n", 23, false}};
	r = relation(100, "shop", "orders", 2, two);
	ASSERT_OK(decode(&d, &r, &msg));
	const char *v[] = {"1", "2"};
	struct msg m = change('I', 100, 0, 2, NULL, v);
	assert_string_equal(render(&d, &m),
	                    "insert 1 {\"new\":{\"id\":1,\"n\":2}}");
	evfn__pgo_clear(&d);
}

static void
test_pgoutput_out_of_memory_is_enomem(void **state)
{
	(void)state;
	struct msg r = relation(100, "shop", "orders", NCOLS, order_cols);
	const char *row[] = {"7", "x", "t", "1", "{}", "2"};
	struct msg ins = change('I', 100, 0, NCOLS, NULL, row);
	int failures = 0;
	for (int budget = 0;; budget++) {
		struct evfn__pgo d = {0};
		struct evfn__pgo_msg msg;
		atomic_store(&failing_alloc_left, budget);
		int rc = decode(&d, &r, &msg);
		if (!rc)
			rc = decode(&d, &ins, &msg);
		struct evfn__pgo_buf b = {0};
		if (!rc) {
			evfn__pgo_json_row(&b, &msg);
			if (b.oom)
				rc = EVFN_ENOMEM;
		}
		atomic_store(&failing_alloc_left, -1);
		evfn__pgo_buf_free(&b);
		evfn__pgo_clear(&d);
		if (!rc)
			break;
		ASSERT_RC(rc, EVFN_ENOMEM);
		failures++;
	}
	assert_true(failures > 5);
}

static void
test_pgoutput_lsn_text(void **state)
{
	(void)state;
	uint64_t lsn;
	assert_true(evfn__pgo_lsn_parse("16/B374D848", &lsn));
	ASSERT_EQ(lsn, 0x16B374D848ULL);
	char buf[20];
	evfn__pgo_lsn_format(lsn, buf);
	assert_string_equal(buf, "16/B374D848");
	assert_true(evfn__pgo_lsn_parse("0/0", &lsn));
	ASSERT_EQ(lsn, 0);
	assert_true(evfn__pgo_lsn_parse("FFFFFFFF/ffffffff", &lsn));
	ASSERT_EQ(lsn, UINT64_MAX);
	const char *bad[] = {"", "1", "/1", "1/", "G/1", "1/1/1",
	                     "123456789/0", "0/123456789", " 1/1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (evfn__pgo_lsn_parse(bad[i], &lsn))
			fail_msg("\"%s\" parsed", bad[i]);
}

int
main(void)
{
	if (!failing_alloc_install())
		return 1;
	const struct CMUnitTest tests[] = {
		TEST(test_pgoutput_row_changes_render_as_json),
		TEST(test_pgoutput_numbers_only_where_json_allows),
		TEST(test_pgoutput_composite_key_is_a_json_array),
		TEST(test_pgoutput_begin_commit_truncate),
		TEST(test_pgoutput_refuses_malformed_messages),
		TEST(test_pgoutput_relation_described_again_replaces),
		TEST(test_pgoutput_out_of_memory_is_enomem),
		TEST(test_pgoutput_lsn_text),
	};
	return evfn_test_main("pgoutput", tests);
}
