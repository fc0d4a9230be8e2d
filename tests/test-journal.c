/* SPDX-License-Identifier: MIT */
/*
 * The journal as a leaf: events and their states go in, survive closing,
 * killing and damage, and come back in publish order. Each promise is
 * attacked where it can break: an append that returned in durable mode
 * is on disk however the process dies (a child process SIGKILLed at
 * random points, many times in a row, during checkpoints too); fast mode
 * commits within its interval and writes nothing for an event that ended
 * first; a torn page or a torn log tail loses no committed batch; a full
 * disk, an I/O error, a damaged or foreign file and a failed allocation
 * each give a specific error and lose nothing that was accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "failing-alloc.h"
#include "harness.h"
#include "faulty-vfs.h"
#include "blocks-internal.h"
#include "common-internal.h"
#include "event-codec-internal.h"
#include "event-internal.h"
#include "journal-internal.h"
#include "journal-pending-internal.h"

/* Sanitized builds run the kill loops fewer times: each child is slower
 * there, and the loops' point is made in the plain build. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KILLS_DEFAULT 5
#else
#define KILLS_DEFAULT 20
#endif

/* ------------------------------------------------------------------ */
/* Fixtures. */

struct tmp {
	char dir[64];
	char path[96];
};

static void
tmp_make(struct tmp *t)
{
	const char *base = getenv("TMPDIR");
	snprintf(t->dir, sizeof(t->dir), "%s/evfn-journal-XXXXXX",
	         base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/journal.db", t->dir);
}

static void
tmp_remove(struct tmp *t)
{
	static const char *const suffixes[] = {"", "-wal", "-shm",
	                                       "-journal", ".copy",
	                                       ".copy-wal"};
	char p[128];
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(suffixes); i++) {
		snprintf(p, sizeof(p), "%s%s", t->path, suffixes[i]);
		unlink(p);
	}
	assert_int_equal(rmdir(t->dir), 0);
}

static long long
file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static long long
journal_size(const char *path)
{
	char wal[128];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	return file_size(path) + file_size(wal);
}

static struct evfn__journal *
journal_open_mode(const char *path, enum evfn__journal_mode mode)
{
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.mode = mode;
	struct evfn__journal *j;
	ASSERT_OK(evfn__journal_open(&j, path, &o));
	return j;
}

/* A started journal at path in mode whose writer commits what nobody
 * waits for after flush_ns; its one function "work" in *fn. */
static struct evfn__journal *
journal_started(const char *path, enum evfn__journal_mode mode,
                int64_t flush_ns, uint32_t *fn)
{
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.mode = mode;
	o.flush_ns = flush_ns;
	o.sync_ns = EVFN__MAX(o.sync_ns, flush_ns);
	struct evfn__journal *j;
	ASSERT_OK(evfn__journal_open(&j, path, &o));
	ASSERT_OK(evfn__journal_fn_id(j, "work", fn));
	ASSERT_OK(evfn__journal_start(j));
	return j;
}

/* A published event: seq stamped, the default source borrowed. */
static evfn_event *
event_of(uint64_t seq, const void *data, size_t len)
{
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "orders.created", data, len));
	evfn__event_freeze(ev, seq, "test-source", evfn__now_ns());
	return ev;
}

/* Appends one event bound for fn, due now. */
static void
append_one(struct evfn__journal *j, uint64_t seq, uint32_t fn)
{
	char payload[32];
	int n = snprintf(payload, sizeof(payload), "payload %llu",
	                 (unsigned long long)seq);
	evfn_event *ev = event_of(seq, payload, (size_t)n);
	ASSERT_OK(evfn__journal_append(j, seq, ev, &fn, 1, NULL));
	evfn_event_unref(ev);
}

/* What recovery returned, copied. */
struct got_rec {
	uint64_t seq;
	uint32_t fn;
	char fn_name[32];
	struct evfn__journal_state st;
	char error[64];
	bool crashed;
	evfn_event *ev;
};

struct got {
	struct got_rec *v;
	size_t n, cap;
};

static int
collect(const struct evfn__journal_record *r, void *arg)
{
	struct got *g = arg;
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->v = realloc(g->v, g->cap * sizeof(*g->v));
		assert_non_null(g->v);
	}
	struct got_rec *c = &g->v[g->n++];
	memset(c, 0, sizeof(*c));
	c->seq = r->seq;
	c->fn = r->fn;
	snprintf(c->fn_name, sizeof(c->fn_name), "%s",
	         r->fn_name ? r->fn_name : "(null)");
	c->st = r->st;
	c->st.last_error = NULL;
	if (r->st.last_error)
		snprintf(c->error, sizeof(c->error), "%s", r->st.last_error);
	c->crashed = r->crashed;
	c->ev = evfn_event_ref(r->ev);
	return 0;
}

static void
got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		evfn_event_unref(g->v[i].ev);
	free(g->v);
	memset(g, 0, sizeof(*g));
}

/* Reopens path and recovers everything into g. */
static struct evfn__journal *
reopen_and_recover(const char *path, struct got *g)
{
	struct evfn__journal *j = journal_open_mode(path, EVFN__JOURNAL_DURABLE);
	int n = evfn__journal_recover(j, collect, g);
	assert_true(n >= 0);
	ASSERT_EQ(n, g->n);
	return j;
}

static const char *
payload_of(const evfn_event *ev, size_t *len)
{
	return evfn_event_data(ev, len);
}

/* ------------------------------------------------------------------ */
/* The event encoding. */

static evfn_event *
rich_event(void)
{
	static const char payload[] = {'a', 0, 'b', 0, (char)0xff};
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "orders.created", payload,
	                         sizeof(payload)));
	ASSERT_OK(evfn_event_set_id(ev, "order-17"));
	ASSERT_OK(evfn_event_set_source(ev, "/shop/eu"));
	ASSERT_OK(evfn_event_set_subject(ev, "customer-9"));
	ASSERT_OK(evfn_event_set_datacontenttype(ev, "application/octet-stream"));
	ASSERT_OK(evfn_event_set_ordering_key(ev, "customer-9"));
	ASSERT_OK(evfn_event_set_extension(ev, "traceparent", "00-abc-01"));
	ASSERT_OK(evfn_event_set_extension(ev, "region", "eu"));
	ASSERT_OK(evfn_event_set_time(ev, 1700000000123456789LL));
	ev->hops = 3;
	evfn__event_freeze(ev, 42, "test-source", evfn__now_ns());
	return ev;
}

static void
assert_same_event(const evfn_event *a, const evfn_event *b)
{
	assert_string_equal(evfn_event_type(a), evfn_event_type(b));
	assert_string_equal(evfn_event_id(a), evfn_event_id(b));
	assert_string_equal(evfn_event_source(a), evfn_event_source(b));
	assert_string_equal(evfn_event_subject(a), evfn_event_subject(b));
	assert_string_equal(evfn_event_datacontenttype(a),
	                    evfn_event_datacontenttype(b));
	assert_string_equal(evfn_event_ordering_key(a),
	                    evfn_event_ordering_key(b));
	ASSERT_EQ(evfn_event_time(a), evfn_event_time(b));
	ASSERT_EQ(evfn_event_hops(a), evfn_event_hops(b));
	const char *an, *bn;
	size_t i = 0;
	for (; evfn_event_extension_at(a, i, &an); i++) {
		assert_non_null(evfn_event_extension_at(b, i, &bn));
		assert_string_equal(an, bn);
		assert_string_equal(evfn_event_extension_at(a, i, NULL),
		                    evfn_event_extension_at(b, i, NULL));
	}
	assert_null(evfn_event_extension_at(b, i, NULL));
	size_t alen, blen;
	const void *ad = evfn_event_data(a, &alen);
	const void *bd = evfn_event_data(b, &blen);
	ASSERT_EQ(alen, blen);
	if (alen)
		assert_memory_equal(ad, bd, alen);
}

static void
test_journal_event_encoding_round_trip(void **state)
{
	evfn_event *ev = rich_event();
	struct evfn__bytes b = {0};
	ASSERT_OK(evfn__event_encode(ev, &b));
	size_t len;
	const void *data = evfn_event_data(ev, &len);
	evfn_event *back;
	ASSERT_OK(evfn__event_decode(&back, b.p, b.len, data, len));
	/* Unpublished until the runtime re-admits it, and then the same. */
	ASSERT_EQ(evfn_event_seq(back), 0);
	evfn__event_freeze(back, 42, "test-source", evfn__now_ns());
	assert_same_event(ev, back);
	evfn_event_unref(back);
	evfn_event_unref(ev);

	/* Defaults stay defaults: the id from the seq, the source from the
	 * runtime, and an empty payload. */
	ASSERT_OK(evfn_event_new(&ev, "t", NULL, 0));
	evfn__event_freeze(ev, 7, "test-source", evfn__now_ns());
	b.len = 0;
	ASSERT_OK(evfn__event_encode(ev, &b));
	ASSERT_OK(evfn__event_decode(&back, b.p, b.len, NULL, 0));
	assert_null(evfn_event_source(back));
	evfn__event_freeze(back, 7, "test-source", evfn__now_ns());
	assert_string_equal(evfn_event_id(back), "7");
	assert_string_equal(evfn_event_source(back), "test-source");
	assert_null(evfn_event_data(back, &len));
	ASSERT_EQ(len, 0);
	evfn_event_unref(back);
	evfn_event_unref(ev);
	evfn__bytes_free(&b);
}

static void
test_journal_event_decoding_refuses_damaged_bytes(void **state)
{
	evfn_event *ev = rich_event();
	struct evfn__bytes b = {0};
	ASSERT_OK(evfn__event_encode(ev, &b));
	evfn_event *back = (evfn_event *)1;
	/* Every truncation is refused, never read past. */
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *cut = malloc(n ? n : 1);
		memcpy(cut, b.p, n);
		ASSERT_RC(evfn__event_decode(&back, cut, n, NULL, 0),
		          EVFN_ECORRUPT);
		assert_null(back);
		free(cut);
	}
	uint8_t *bad = malloc(b.len + 1);
	/* A trailing byte, an unknown format, an unknown flag. */
	memcpy(bad, b.p, b.len);
	bad[b.len] = 0;
	ASSERT_RC(evfn__event_decode(&back, bad, b.len + 1, NULL, 0),
	          EVFN_ECORRUPT);
	bad[0] = 2;
	ASSERT_RC(evfn__event_decode(&back, bad, b.len, NULL, 0),
	          EVFN_ECORRUPT);
	bad[0] = b.p[0];
	bad[1] |= 0x80;
	ASSERT_RC(evfn__event_decode(&back, bad, b.len, NULL, 0),
	          EVFN_ECORRUPT);
	/* A NUL inside the type (after format, flags, hops, time, len). */
	memcpy(bad, b.p, b.len);
	bad[12] = 0;
	ASSERT_RC(evfn__event_decode(&back, bad, b.len, NULL, 0),
	          EVFN_ECORRUPT);
	/* Every single-byte change either decodes or is refused. */
	for (size_t i = 0; i < b.len; i++) {
		memcpy(bad, b.p, b.len);
		bad[i] ^= 0x5a;
		int rc = evfn__event_decode(&back, bad, b.len, NULL, 0);
		assert_true(rc == 0 || rc == EVFN_ECORRUPT);
		evfn_event_unref(back);
	}
	free(bad);
	evfn__bytes_free(&b);
	evfn_event_unref(ev);
}

/* ------------------------------------------------------------------ */
/* The buffer of pending operations. */

static void
test_journal_pending_folds_updates_and_cancels_appends(void **state)
{
	struct evfn__jpending p = {0};
	evfn_event *ev = event_of(1, "x", 1);
	struct evfn__jdrop drop = {0};
	for (uint64_t seq = 1; seq <= 3000; seq++) {
		struct evfn__jop op = {.seq = seq, .fn = 1,
		                       .kind = EVFN__JOP_APPEND,
		                       .ev = evfn_event_ref(ev)};
		ASSERT_OK(evfn__jpending_push(&p, &op));
	}
	/* An update folds into its append: still one operation. */
	struct evfn__journal_state st = {.attempts = 1,
	                                 .phase = EVFN__JPHASE_RUNNING,
	                                 .last_error = "boom"};
	ASSERT_OK(evfn__jpending_update(&p, 5, 1, &st));
	ASSERT_EQ(p.n, 3000);
	struct evfn__jop *op = evfn__jpending_find(&p, 5, 1);
	ASSERT_EQ(op->kind, EVFN__JOP_APPEND);
	ASSERT_EQ(op->st.attempts, 1);
	assert_string_equal(op->text, "boom");
	/* An end cancels its buffered append: nothing to write. */
	ASSERT_OK(evfn__jpending_end(&p, 5, 1, EVFN__JEND_SUCCEEDED, &drop));
	ASSERT_EQ(drop.n, 1);
	evfn__jdrop_release(&drop);
	assert_null(evfn__jpending_find(&p, 5, 1));
	ASSERT_EQ(p.cancelled, 1);
	/* A late update of an ended invocation changes nothing. */
	ASSERT_OK(evfn__jpending_update(&p, 6, 1, &st));
	ASSERT_OK(evfn__jpending_end(&p, 6, 1, EVFN__JEND_EXPIRED, &drop));
	ASSERT_OK(evfn__jpending_update(&p, 6, 1, &st));
	ASSERT_EQ(p.n, 3000);
	/* Without a buffered append (it was committed before): the update
	 * and the end are kept, in order, for the writer. */
	ASSERT_OK(evfn__jpending_update(&p, 9000, 2, &st));
	ASSERT_OK(evfn__jpending_end(&p, 9000, 2, EVFN__JEND_CANCELLED, &drop));
	ASSERT_EQ(p.n, 3002);
	ASSERT_EQ(p.ops[3000].kind, EVFN__JOP_UPDATE);
	assert_string_equal(p.ops[3000].text, "boom");
	ASSERT_EQ(p.ops[3001].kind, EVFN__JOP_END);
	/* A hand-back marks a buffered append, or is kept. */
	ASSERT_OK(evfn__jpending_end(&p, 7, 1, EVFN__JEND_HANDED_BACK, &drop));
	ASSERT_EQ(evfn__jpending_find(&p, 7, 1)->st.phase,
	          EVFN__JPHASE_HANDED_BACK);
	ASSERT_OK(evfn__jpending_end(&p, 9001, 2, EVFN__JEND_HANDED_BACK,
	                             &drop));
	ASSERT_EQ(p.ops[3002].kind, EVFN__JOP_HAND_BACK);
	/* A dead letter supersedes a buffered append. */
	struct evfn__jop dl = {.seq = 8, .fn = 1, .id = 1,
	                       .kind = EVFN__JOP_DEAD_LETTER,
	                       .ev = evfn_event_ref(ev)};
	ASSERT_OK(evfn__jpending_supersede(&p, &dl, &drop));
	evfn__jdrop_release(&drop);
	ASSERT_EQ(p.ops[p.n - 1].kind, EVFN__JOP_DEAD_LETTER);
	assert_null(evfn__jpending_find(&p, 8, 1));
	ASSERT_EQ(p.ops[7].kind, EVFN__JOP_NONE);
	ASSERT_EQ(p.cancelled, 3); /* 5 and 6 ended, 8 dead-lettered */
	/* A failed call's operations are taken back, index included. */
	size_t n = p.n;
	struct evfn__jop late = {.seq = 3001, .fn = 1,
	                         .kind = EVFN__JOP_APPEND,
	                         .ev = evfn_event_ref(ev)};
	ASSERT_OK(evfn__jpending_push(&p, &late));
	assert_non_null(evfn__jpending_find(&p, 3001, 1));
	evfn__jpending_truncate(&p, n);
	ASSERT_EQ(p.n, n);
	assert_null(evfn__jpending_find(&p, 3001, 1));
	/* Emptied: nothing is found after, and it fills again, from any
	 * sequence number. */
	evfn__jpending_reset(&p);
	assert_null(evfn__jpending_find(&p, 9, 1));
	struct evfn__jop again = {.seq = 1u << 30, .fn = 1,
	                          .kind = EVFN__JOP_APPEND,
	                          .ev = evfn_event_ref(ev)};
	ASSERT_OK(evfn__jpending_push(&p, &again));
	ASSERT_EQ(evfn__jpending_find(&p, 1u << 30, 1)->kind,
	          EVFN__JOP_APPEND);
	/* Slightly out of order, and far out of range: found, or not
	 * indexed (then its end is written: never wrong). */
	again.seq = (1u << 30) - 10;
	again.ev = evfn_event_ref(ev);
	ASSERT_OK(evfn__jpending_push(&p, &again));
	assert_non_null(evfn__jpending_find(&p, (1u << 30) - 10, 1));
	again.seq = (uint64_t)1 << 40;
	again.ev = evfn_event_ref(ev);
	ASSERT_OK(evfn__jpending_push(&p, &again));
	assert_null(evfn__jpending_find(&p, (uint64_t)1 << 40, 1));
	evfn__jpending_free(&p);
	evfn_event_unref(ev);
}

/* ------------------------------------------------------------------ */
/* Round trips through the file. */

static int
dead_letter_seen(const struct evfn__journal_dead_letter *dl, void *arg)
{
	char *out = arg;
	size_t len;
	const char *data = evfn_event_data(dl->ev, &len);
	size_t used = strlen(out);
	snprintf(out + used, 256 - used, "%llu:%s:%d:%u:%lld:%lld:%s:%.*s;",
	         (unsigned long long)dl->id, dl->fn_name, dl->code,
	         dl->attempts, (long long)dl->first_attempt_ns,
	         (long long)dl->last_attempt_ns,
	         dl->error ? dl->error : "-", (int)len, data);
	return 0;
}

static void
test_journal_round_trip_keeps_what_did_not_end(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal *j = journal_open_mode(t.path,
	                                            EVFN__JOURNAL_DURABLE);
	ASSERT_EQ(evfn__journal_last_seq(j), 0);
	uint32_t a, b, again;
	ASSERT_OK(evfn__journal_fn_id(j, "charge", &a));
	ASSERT_OK(evfn__journal_fn_id(j, "email", &b));
	ASSERT_OK(evfn__journal_fn_id(j, "charge", &again));
	ASSERT_EQ(a, again);
	assert_true(a != b);
	ASSERT_OK(evfn__journal_start(j));

	/* 1: fan-out to both, a ends, b is running at the "crash".
	 * 2: retry scheduled after two attempts. 3: succeeded.
	 * 4: delayed, never started. 5: handed back. 6: handed back,
	 * then taken by the host. 7: dead-lettered into the store. */
	evfn_event *rich = rich_event();
	uint32_t both[2] = {a, b};
	ASSERT_OK(evfn__journal_append(j, 1, rich, both, 2, NULL));
	for (uint64_t seq = 2; seq <= 7; seq++)
		append_one(j, seq, a);
	struct evfn__journal_state delayed = {.due_ns = 4102444800000000000LL};
	ASSERT_OK(evfn__journal_update(j, 4, a, &delayed));
	ASSERT_OK(evfn__journal_end(j, 1, a, EVFN__JEND_SUCCEEDED));
	struct evfn__journal_state running = {
		.attempts = 1, .phase = EVFN__JPHASE_RUNNING,
		.first_attempt_ns = 1000, .last_attempt_ns = 1000};
	ASSERT_OK(evfn__journal_update(j, 1, b, &running));
	struct evfn__journal_state retry = {
		.attempts = 2, .phase = EVFN__JPHASE_WAITING,
		.due_ns = 5000, .backoff_ns = 250000000,
		.first_attempt_ns = 1000, .last_attempt_ns = 2000,
		.last_code = EVFN_ETIMEDOUT, .last_error = "deadline exceeded"};
	ASSERT_OK(evfn__journal_update(j, 2, a, &retry));
	ASSERT_OK(evfn__journal_end(j, 3, a, EVFN__JEND_SUCCEEDED));
	ASSERT_OK(evfn__journal_end(j, 5, a, EVFN__JEND_HANDED_BACK));
	ASSERT_OK(evfn__journal_end(j, 6, a, EVFN__JEND_HANDED_BACK));
	ASSERT_OK(evfn__journal_end(j, 6, a, EVFN__JEND_DISCARDED));
	evfn_event *seven = event_of(7, "seven", 5);
	struct evfn__journal_dead_letter dl = {
		.id = 11, .ev = seven, .code = EVFN_EFAILED, .attempts = 3,
		.first_attempt_ns = 100, .last_attempt_ns = 300,
		.error = "card declined"};
	ASSERT_OK(evfn__journal_dead_letter(j, 7, a, &dl));
	evfn_event_unref(seven);
	ASSERT_OK(evfn__journal_close(j));

	struct got g = {0};
	j = reopen_and_recover(t.path, &g);
	ASSERT_EQ(evfn__journal_last_seq(j), 7);
	ASSERT_EQ(evfn__journal_last_dead_letter_id(j), 11);
	ASSERT_EQ(g.n, 4);
	/* Publish order: 1 (b), 2, 4, 5. */
	ASSERT_EQ(g.v[0].seq, 1);
	ASSERT_EQ(g.v[0].fn, b);
	assert_string_equal(g.v[0].fn_name, "email");
	assert_true(g.v[0].crashed);
	ASSERT_EQ(g.v[0].st.phase, EVFN__JPHASE_WAITING);
	ASSERT_EQ(g.v[0].st.attempts, 1);
	ASSERT_EQ(g.v[0].st.last_code, EVFN_ECRASHED);
	evfn__event_freeze(g.v[0].ev, 1, "test-source", evfn__now_ns());
	assert_same_event(rich, g.v[0].ev);

	ASSERT_EQ(g.v[1].seq, 2);
	assert_string_equal(g.v[1].fn_name, "charge");
	assert_false(g.v[1].crashed);
	ASSERT_EQ(g.v[1].st.attempts, 2);
	ASSERT_EQ(g.v[1].st.due_ns, 5000);
	ASSERT_EQ(g.v[1].st.backoff_ns, 250000000);
	ASSERT_EQ(g.v[1].st.first_attempt_ns, 1000);
	ASSERT_EQ(g.v[1].st.last_attempt_ns, 2000);
	ASSERT_EQ(g.v[1].st.last_code, EVFN_ETIMEDOUT);
	assert_string_equal(g.v[1].error, "deadline exceeded");
	size_t len;
	const char *p = payload_of(g.v[1].ev, &len);
	ASSERT_EQ(len, 9);
	assert_memory_equal(p, "payload 2", 9);

	ASSERT_EQ(g.v[2].seq, 4);
	ASSERT_EQ(g.v[2].st.due_ns, 4102444800000000000LL);
	ASSERT_EQ(g.v[2].st.attempts, 0);
	ASSERT_EQ(g.v[3].seq, 5);
	ASSERT_EQ(g.v[3].st.phase, EVFN__JPHASE_HANDED_BACK);

	/* The dead letter came back whole, its invocation gone. */
	char seen[256] = "";
	ASSERT_EQ(evfn__journal_recover_dead_letters(j, dead_letter_seen,
	                                             seen),
	          1);
	assert_string_equal(seen, "11:charge:-4005:3:100:300:card declined:"
	                          "seven;");
	got_free(&g);
	evfn_event_unref(rich);
	ASSERT_OK(evfn__journal_close(j));
	tmp_remove(&t);
}

static int
key_seen(const struct evfn__journal_idempotency *k, void *arg)
{
	char *out = arg;
	size_t used = strlen(out);
	snprintf(out + used, 256 - used, "%s:%s:%lld:%.*s;", k->fn_name,
	         k->key, (long long)k->expires_ns, (int)k->resp_len,
	         (const char *)k->resp);
	return 0;
}

static void
test_journal_dead_letters_and_keys_survive(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal *j = journal_open_mode(t.path,
	                                            EVFN__JOURNAL_DURABLE);
	uint32_t fn;
	ASSERT_OK(evfn__journal_fn_id(j, "charge", &fn));
	ASSERT_OK(evfn__journal_start(j));
	for (uint64_t seq = 1; seq <= 4; seq++)
		append_one(j, seq, fn);
	for (uint64_t id = 1; id <= 4; id++) {
		char data[8];
		snprintf(data, sizeof(data), "dl%llu", (unsigned long long)id);
		evfn_event *ev = event_of(id, data, strlen(data));
		struct evfn__journal_dead_letter dl = {
			.id = id, .ev = ev, .code = EVFN_EEXHAUSTED,
			.attempts = 3, .first_attempt_ns = 10,
			.last_attempt_ns = 20,
			.error = id == 2 ? NULL : "no"};
		ASSERT_OK(evfn__journal_dead_letter(j, id, fn, &dl));
		evfn_event_unref(ev);
	}
	/* Replayed or deleted: gone; purge, then one more. */
	ASSERT_OK(evfn__journal_dead_letter_delete(j, 3));
	char seen[256] = "";
	ASSERT_OK(evfn__journal_sync(j));
	ASSERT_OK(evfn__journal_idempotency_put(j, fn, "k1", "r1", 2,
	                                        INT64_MAX - 1));
	ASSERT_OK(evfn__journal_idempotency_put(j, fn, "k2", "old", 3,
	                                        INT64_MAX - 1));
	ASSERT_OK(evfn__journal_idempotency_put(j, fn, "k2", "new", 3,
	                                        INT64_MAX - 2));
	ASSERT_OK(evfn__journal_idempotency_put(j, fn, "gone", "x", 1, 5));
	ASSERT_OK(evfn__journal_close(j));

	j = journal_open_mode(t.path, EVFN__JOURNAL_DURABLE);
	ASSERT_EQ(evfn__journal_recover(j, collect, &(struct got){0}), 0);
	ASSERT_EQ(evfn__journal_recover_dead_letters(j, dead_letter_seen,
	                                             seen),
	          3);
	assert_string_equal(seen, "1:charge:-4006:3:10:20:no:dl1;"
	                          "2:charge:-4006:3:10:20:-:dl2;"
	                          "4:charge:-4006:3:10:20:no:dl4;");
	seen[0] = '\0';
	ASSERT_EQ(evfn__journal_recover_idempotency(j, 1000, key_seen, seen),
	          2);
	char expect[256];
	snprintf(expect, sizeof(expect), "charge:k1:%lld:r1;charge:k2:%lld:new;",
	         (long long)(INT64_MAX - 1), (long long)(INT64_MAX - 2));
	assert_string_equal(seen, expect);
	ASSERT_OK(evfn__journal_start(j));
	ASSERT_OK(evfn__journal_dead_letter_purge(j));
	ASSERT_OK(evfn__journal_close(j));
	j = journal_open_mode(t.path, EVFN__JOURNAL_DURABLE);
	ASSERT_EQ(evfn__journal_recover_dead_letters(j, dead_letter_seen,
	                                             seen),
	          0);
	ASSERT_EQ(evfn__journal_last_dead_letter_id(j), 4);
	ASSERT_OK(evfn__journal_close(j));
	tmp_remove(&t);
}

/* ------------------------------------------------------------------ */
/* Child processes that journal under load until they are killed. Each
 * reports on its stdout, in records a pipe writes whole, what returned:
 * 'A' an append (with its time), 'E' an end made durable by a sync, 'C' a
 * checkpoint starting. */

struct report {
	char tag;
	uint64_t seq;
	int64_t t_ns; /* CLOCK_MONOTONIC: the same clock in every process */
};

/* Events a child appends end when seq % ENDED_EVERY == 0. */
#define ENDED_EVERY 3
#define CHILD_THREADS 8

struct child_cfg {
	struct evfn__journal *j;
	uint32_t fn;
	atomic_uint_fast64_t next;
	bool fast;
	size_t payload;
};

static void
report(char tag, uint64_t seq)
{
	struct report r = {tag, seq, evfn__now_ns()};
	if (write(1, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(5);
}

static void
report_checkpoint(void *arg)
{
	(void)arg;
	report('C', 0);
}

/* The payload of seq: its number, then filler up to size bytes (buf has
 * room for size + 32). Returns its length. */
static size_t
child_payload(uint64_t seq, char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, 32, "payload %llu ",
	                            (unsigned long long)seq);
	if (n >= size)
		return n;
	memset(buf + n, 'p', size - n);
	return size;
}

static void *
child_producer(void *arg)
{
	struct child_cfg *c = arg;
	char *buf = malloc(c->payload + 32);
	for (;;) {
		uint64_t seq = atomic_fetch_add(&c->next, 1);
		evfn_event *ev = event_of(seq, buf,
		                          child_payload(seq, buf, c->payload));
		int rc = evfn__journal_append(c->j, seq, ev, &c->fn, 1, NULL);
		evfn_event_unref(ev);
		if (rc < 0)
			_exit(3);
		report('A', seq);
		if (seq % ENDED_EVERY == 0) {
			if (evfn__journal_end(c->j, seq, c->fn,
			                      EVFN__JEND_SUCCEEDED) < 0 ||
			    evfn__journal_sync(c->j) < 0)
				_exit(4);
			report('E', seq);
		}
		if (c->fast) /* paced: the parent checks by time */
			test_sleep_ms(1);
	}
	return NULL;
}

/* argv: --child durable|fast PATH CHECKPOINT_PAGES PAYLOAD [hook] */
static int
child_main(int argc, char **argv)
{
	if (argc < 6)
		return 2;
	static struct child_cfg c;
	c.fast = strcmp(argv[2], "fast") == 0;
	c.payload = (size_t)atoi(argv[5]);
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.mode = c.fast ? EVFN__JOURNAL_FAST : EVFN__JOURNAL_DURABLE;
	o.checkpoint_pages = (uint32_t)atoi(argv[4]);
	if (argc > 6)
		o.checkpoint_hook = report_checkpoint;
	if (evfn__journal_open(&c.j, argv[3], &o) < 0 ||
	    evfn__journal_fn_id(c.j, "work", &c.fn) < 0 ||
	    evfn__journal_start(c.j) < 0)
		return 2;
	atomic_init(&c.next, evfn__journal_last_seq(c.j) + 1);
	pthread_t th;
	for (int i = 0; i < (c.fast ? 1 : CHILD_THREADS); i++)
		pthread_create(&th, NULL, child_producer, &c);
	for (;;)
		pause(); /* until SIGKILL */
}

struct child {
	pid_t pid;
	int out;
};

static void
child_start(struct child *k, const char *mode, const char *path,
            int checkpoint_pages, int payload, bool hook)
{
	int out[2];
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	char pages[16], bytes[16];
	snprintf(pages, sizeof(pages), "%d", checkpoint_pages);
	snprintf(bytes, sizeof(bytes), "%d", payload);
	const char *argv[] = {"test-journal", "--child", mode, path, pages,
	                      bytes, hook ? "hook" : NULL, NULL};
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(out[1], 1);
		execv("/proc/self/exe", (char **)argv);
		_exit(127);
	}
	close(out[1]);
	k->pid = pid;
	k->out = out[0];
}

/* Reads one report, waiting up to timeout_ms; false at the end of the
 * stream or on timeout. */
static bool
child_read(struct child *k, struct report *r, int timeout_ms)
{
	struct pollfd p = {.fd = k->out, .events = POLLIN};
	if (poll(&p, 1, timeout_ms) <= 0)
		return false;
	size_t got = 0;
	while (got < sizeof(*r)) {
		ssize_t n = read(k->out, (char *)r + got, sizeof(*r) - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/* What the children said and the journal holds, by seq. */
struct ledger {
	uint8_t *state;   /* 0 unknown, 'A' appended, 'E' ended */
	int64_t *t_ns;    /* when the append returned */
	bool *recovered;
	size_t cap;
};

static void
ledger_reserve(struct ledger *l, uint64_t seq)
{
	if (seq < l->cap)
		return;
	size_t cap = l->cap ? l->cap : 4096;
	while (cap <= seq)
		cap *= 2;
	l->state = realloc(l->state, cap);
	l->t_ns = realloc(l->t_ns, cap * sizeof(*l->t_ns));
	l->recovered = realloc(l->recovered, cap * sizeof(*l->recovered));
	/* recovered too: recovery itself can grow the ledger (the child
	 * appended past what it reported), and a stale true there would
	 * read as an event recovered that nobody appended. */
	memset(l->state + l->cap, 0, cap - l->cap);
	memset(l->t_ns + l->cap, 0, (cap - l->cap) * sizeof(*l->t_ns));
	memset(l->recovered + l->cap, 0,
	       (cap - l->cap) * sizeof(*l->recovered));
	l->cap = cap;
}

static void
ledger_free(struct ledger *l)
{
	free(l->state);
	free(l->t_ns);
	free(l->recovered);
	memset(l, 0, sizeof(*l));
}

static void
ledger_note(struct ledger *l, const struct report *r)
{
	if (r->tag != 'A' && r->tag != 'E')
		return;
	ledger_reserve(l, r->seq);
	l->state[r->seq] = (uint8_t)r->tag;
	if (r->tag == 'A')
		l->t_ns[r->seq] = r->t_ns;
}

static int
mark_recovered(const struct evfn__journal_record *r, void *arg)
{
	struct ledger *l = arg;
	ledger_reserve(l, r->seq);
	l->recovered[r->seq] = true;
	/* The event is the one appended: its payload names its seq. */
	size_t len;
	const char *data = evfn_event_data(r->ev, &len);
	char want[32];
	int n = snprintf(want, sizeof(want), "payload %llu ",
	                 (unsigned long long)r->seq);
	if (len < (size_t)n || memcmp(data, want, (size_t)n) != 0)
		fail_msg("seq %llu recovered with another event's payload",
		         (unsigned long long)r->seq);
	return 0;
}

/* Recovers path into l->recovered. */
static void
ledger_recover(struct ledger *l, const char *path)
{
	ledger_reserve(l, 1);
	memset(l->recovered, 0, l->cap * sizeof(*l->recovered));
	struct evfn__journal *j = journal_open_mode(path,
	                                            EVFN__JOURNAL_DURABLE);
	int n = evfn__journal_recover(j, mark_recovered, l);
	assert_true(n >= 0);
	ASSERT_OK(evfn__journal_close(j));
}

/* The durable promise after a kill: every append that returned is there
 * unless its end returned too; an end that returned is there; what the
 * child had in flight may go either way (and what is there stays). */
static void
ledger_check_durable(struct ledger *l, uint64_t *checked)
{
	unsigned in_flight = 0;
	for (uint64_t seq = 1; seq < l->cap; seq++) {
		bool got = l->recovered[seq];
		switch (l->state[seq]) {
		case 'A':
			if (!got && seq % ENDED_EVERY != 0)
				fail_msg("seq %llu: its append returned, and "
				         "it is lost",
				         (unsigned long long)seq);
			if (!got)
				l->state[seq] = 'E'; /* its end was in flight */
			(*checked)++;
			break;
		case 'E':
			if (got)
				fail_msg("seq %llu: its end returned, and it "
				         "is back", (unsigned long long)seq);
			break;
		default:
			if (got) {
				in_flight++;
				l->state[seq] = 'A';
			}
		}
	}
	if (in_flight > CHILD_THREADS)
		fail_msg("%u events recovered that no append returned for",
		         in_flight);
}

/* Runs the child until it has appended, then for a random time (or
 * until its n-th checkpoint starts), kills it and reads what it said.
 * Returns whether the kill came as a checkpoint started. */
static bool
kill_child_midway(struct child *k, struct ledger *l, int min_ms, int max_ms,
                  int at_checkpoint)
{
	struct report r;
	int64_t kill_at = 0;
	int checkpoints = 0;
	bool at_one = false;
	for (;;) {
		int64_t now = test_now_ms();
		if (kill_at && now >= kill_at)
			break;
		if (!child_read(k, &r, kill_at ? (int)(kill_at - now) : 20000)) {
			if (!kill_at)
				fail_msg("the child said nothing");
			break;
		}
		ledger_note(l, &r);
		if (!kill_at && r.tag == 'A')
			kill_at = test_now_ms() + min_ms +
			          rand() % (max_ms - min_ms + 1);
		if (r.tag == 'C' && at_checkpoint &&
		    ++checkpoints == at_checkpoint) {
			at_one = true;
			break;
		}
	}
	kill(k->pid, SIGKILL);
	while (child_read(k, &r, 5000))
		ledger_note(l, &r);
	int status;
	assert_int_equal(waitpid(k->pid, &status, 0), k->pid);
	if (!WIFSIGNALED(status))
		fail_msg("the child exited by itself (status %d)", status);
	close(k->out);
	return at_one;
}

/* sqlite3's own check of the file, through its command-line client. */
static void
assert_integrity(const char *path)
{
	char cmd[256], out[64] = "";
	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' 'PRAGMA integrity_check' 2>&1",
	         path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	if (!fgets(out, sizeof(out), f))
		out[0] = '\0';
	int rc = pclose(f);
	if (rc != 0 || strcmp(out, "ok\n") != 0)
		fail_msg("sqlite3 integrity_check: %s (exit %d)", out, rc);
}

static int
kills_wanted(void)
{
	const char *v = getenv("EVFN_JOURNAL_KILLS");
	return v && atoi(v) > 0 ? atoi(v) : KILLS_DEFAULT;
}

static void
test_journal_durable_appends_survive_sigkill(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct ledger l = {0};
	uint64_t checked = 0;
	srand((unsigned)time(NULL));
	int kills = kills_wanted();
	for (int i = 0; i < kills; i++) {
		struct child k;
		/* A small log: checkpoints happen between kills too. */
		child_start(&k, "durable", t.path, 64, 200, false);
		kill_child_midway(&k, &l, 20, 300, 0);
		ledger_recover(&l, t.path);
		ledger_check_durable(&l, &checked);
	}
	assert_true(checked > 0);
	assert_integrity(t.path);
	uint64_t appends = 0;
	for (uint64_t seq = 1; seq < l.cap; seq++)
		appends += l.state[seq] != 0;
	print_message("# %d kills, %llu appends\n", kills,
	              (unsigned long long)appends);
	ledger_free(&l);
	tmp_remove(&t);
}

static void
test_journal_kill_during_checkpoint_recovers(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct ledger l = {0};
	uint64_t checked = 0;
	int kills = kills_wanted() / 2, in_checkpoints = 0;
	for (int i = 0; i < kills; i++) {
		struct child k;
		/* 2 KiB events and a 1 MiB log: each checkpoint copies
		 * hundreds of pages, and the kill lands among them. */
		child_start(&k, "durable", t.path, 256, 2048, true);
		in_checkpoints += kill_child_midway(&k, &l, 5000, 5000,
		                                    1 + rand() % 2);
		ledger_recover(&l, t.path);
		ledger_check_durable(&l, &checked);
	}
	assert_true(checked > 0);
	print_message("# %d of %d kills as a checkpoint started\n",
	              in_checkpoints, kills);
	assert_true(in_checkpoints > 0);
	assert_integrity(t.path);
	ledger_free(&l);
	tmp_remove(&t);
}

static void
test_journal_fast_appends_are_committed_within_the_interval(void **state)
{
	struct tmp t;
	tmp_make(&t);
	/* Nobody asks for a commit: the writer makes one by itself. */
	const int64_t flush_ns = 20 * EVFN__NS_PER_MS;
	uint32_t fn;
	struct evfn__journal *j =
		journal_started(t.path, EVFN__JOURNAL_FAST, flush_ns, &fn);
	append_one(j, 1, fn);
	struct evfn__journal_stats st;
	WAIT_FOR((evfn__journal_stats_get(j, &st), st.commits >= 1), 10000);
	ASSERT_OK(evfn__journal_end(j, 1, fn, EVFN__JEND_SUCCEEDED));
	ASSERT_OK(evfn__journal_close(j));

	/* Killed under a paced load: every append older than the interval
	 * (with a margin for a loaded machine's scheduler) is there. */
	const int64_t margin_ns = 500 * EVFN__NS_PER_MS;
	struct ledger l = {0};
	uint64_t checked = 0;
	for (int i = 0; i < 3; i++) {
		struct child k;
		child_start(&k, "fast", t.path, 1024, 100, false);
		kill_child_midway(&k, &l, 700, 1200, 0);
		int64_t killed_ns = evfn__now_ns();
		ledger_recover(&l, t.path);
		for (uint64_t seq = 1; seq < l.cap; seq++) {
			if (l.state[seq] != 'A' || seq % ENDED_EVERY == 0)
				continue;
			if (l.t_ns[seq] < killed_ns - margin_ns - flush_ns) {
				if (!l.recovered[seq])
					fail_msg("seq %llu appended %lld ms "
					         "before the kill is lost",
					         (unsigned long long)seq,
					         (long long)(killed_ns -
					                     l.t_ns[seq]) /
					                 EVFN__NS_PER_MS);
				checked++;
			}
			l.state[seq] = l.recovered[seq] ? 'A' : 'E';
		}
	}
	assert_true(checked > 0);
	ledger_free(&l);
	tmp_remove(&t);
}

static void
test_journal_fast_end_before_commit_writes_nothing(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.mode = EVFN__JOURNAL_FAST;
	o.flush_ns = 60 * EVFN__NS_PER_SEC; /* only the sync commits */
	o.sync_ns = o.flush_ns;
	struct evfn__journal *j;
	ASSERT_OK(evfn__journal_open(&j, t.path, &o));
	uint32_t fn;
	ASSERT_OK(evfn__journal_fn_id(j, "work", &fn));
	ASSERT_OK(evfn__journal_start(j));
	ASSERT_OK(evfn__journal_sync(j));
	struct evfn__journal_stats before, after;
	evfn__journal_stats_get(j, &before);
	for (uint64_t seq = 1; seq <= 1000; seq++) {
		append_one(j, seq, fn);
		struct evfn__journal_state run = {
			.attempts = 1, .phase = EVFN__JPHASE_RUNNING};
		ASSERT_OK(evfn__journal_update(j, seq, fn, &run));
		if (seq != 500)
			ASSERT_OK(evfn__journal_end(j, seq, fn,
			                            EVFN__JEND_SUCCEEDED));
	}
	ASSERT_OK(evfn__journal_sync(j));
	evfn__journal_stats_get(j, &after);
	ASSERT_EQ(after.appends_cancelled - before.appends_cancelled, 999);
	/* One row for the one that did not end, one for the marks. */
	ASSERT_EQ(after.rows_written - before.rows_written, 2);
	ASSERT_OK(evfn__journal_close(j));
	struct got g = {0};
	j = reopen_and_recover(t.path, &g);
	ASSERT_EQ(g.n, 1);
	ASSERT_EQ(g.v[0].seq, 500);
	assert_true(g.v[0].crashed);
	/* The marks count the cancelled appends: seqs are not reused. */
	ASSERT_EQ(evfn__journal_last_seq(j), 1000);
	got_free(&g);
	ASSERT_OK(evfn__journal_close(j));
	tmp_remove(&t);
}

/* Durable mode: an attempt's start and an end, which nobody waits for,
 * force no commit of their own: they ride with the next append's commit,
 * so one producer pays one fsync per event, not three. */
static void
test_journal_durable_unwaited_records_ride_with_the_next_append(void **state)
{
	struct tmp t;
	tmp_make(&t);
	uint32_t fn; /* a flush interval past the test: appends commit */
	struct evfn__journal *j = journal_started(
		t.path, EVFN__JOURNAL_DURABLE, 60 * EVFN__NS_PER_SEC, &fn);
	append_one(j, 1, fn);
	struct evfn__journal_stats before, after;
	evfn__journal_stats_get(j, &before);
	const uint64_t rounds = 50;
	for (uint64_t seq = 1; seq <= rounds; seq++) {
		struct evfn__journal_state run = {
			.attempts = 1, .phase = EVFN__JPHASE_RUNNING};
		ASSERT_OK(evfn__journal_update(j, seq, fn, &run));
		ASSERT_OK(evfn__journal_end(j, seq, fn, EVFN__JEND_SUCCEEDED));
		append_one(j, seq + 1, fn);
	}
	evfn__journal_stats_get(j, &after);
	ASSERT_EQ(after.commits - before.commits, rounds);
	ASSERT_OK(evfn__journal_close(j));
	/* What rode along is on disk: only the last append did not end. */
	struct got g = {0};
	j = reopen_and_recover(t.path, &g);
	ASSERT_EQ(g.n, 1);
	ASSERT_EQ(g.v[0].seq, rounds + 1);
	got_free(&g);
	ASSERT_OK(evfn__journal_close(j));
	tmp_remove(&t);
}

/* Durable mode without a next append: the flush interval commits an end
 * by itself (a crash after it does not run the event again). */
static void
test_journal_durable_unwaited_records_are_committed_within_the_interval(
	void **state)
{
	struct tmp t;
	tmp_make(&t);
	uint32_t fn;
	struct evfn__journal *j = journal_started(
		t.path, EVFN__JOURNAL_DURABLE, 20 * EVFN__NS_PER_MS, &fn);
	append_one(j, 1, fn);
	struct evfn__journal_stats st;
	evfn__journal_stats_get(j, &st);
	uint64_t commits = st.commits;
	ASSERT_OK(evfn__journal_end(j, 1, fn, EVFN__JEND_SUCCEEDED));
	WAIT_FOR((evfn__journal_stats_get(j, &st), st.commits > commits),
	         10000);
	ASSERT_EQ(st.pending, 0);
	ASSERT_OK(evfn__journal_close(j));
	struct got g = {0};
	j = reopen_and_recover(t.path, &g);
	ASSERT_EQ(g.n, 0);
	got_free(&g);
	ASSERT_OK(evfn__journal_close(j));
	tmp_remove(&t);
}

/* A group of producers appending at once in durable mode: each append is
 * on disk when it returns, and they share commits. */
struct group {
	struct evfn__journal *j;
	uint32_t fn;
	atomic_uint_fast64_t next;
};

static void *
group_producer(void *arg)
{
	struct group *g = arg;
	for (int i = 0; i < 40; i++)
		append_one(g->j, atomic_fetch_add(&g->next, 1), g->fn);
	return NULL;
}

static void
test_journal_durable_producers_share_commits(void **state)
{
	struct tmp t;
	tmp_make(&t);
	/* A small log: checkpoints must happen between busy batches. */
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.checkpoint_pages = 16;
	struct group g;
	ASSERT_OK(evfn__journal_open(&g.j, t.path, &o));
	atomic_init(&g.next, 1);
	ASSERT_OK(evfn__journal_fn_id(g.j, "work", &g.fn));
	ASSERT_OK(evfn__journal_start(g.j));
	pthread_t th[8];
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, group_producer, &g);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	struct evfn__journal_stats st;
	evfn__journal_stats_get(g.j, &st);
	ASSERT_EQ(st.appends, 320);
	print_message("# 320 durable appends in %llu commits, %llu "
	              "checkpoints\n",
	              (unsigned long long)st.commits,
	              (unsigned long long)st.checkpoints);
	assert_true(st.commits < st.appends);
	assert_true(st.checkpoints > 0);
	ASSERT_OK(evfn__journal_close(g.j));
	struct got got = {0};
	g.j = reopen_and_recover(t.path, &got);
	ASSERT_EQ(got.n, 320);
	for (size_t i = 0; i < got.n; i++)
		ASSERT_EQ(got.v[i].seq, i + 1);
	got_free(&got);
	ASSERT_OK(evfn__journal_close(g.j));
	tmp_remove(&t);
}

/* ------------------------------------------------------------------ */
/* Damage: torn writes, damaged and foreign files. */

static void
copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(out >= 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Reads the whole file into a malloc'd buffer. */
static uint8_t *
slurp(const char *path, size_t *len)
{
	*len = (size_t)file_size(path);
	uint8_t *buf = malloc(*len ? *len : 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, *len), (ssize_t)*len);
	close(fd);
	return buf;
}

/* A journal whose log holds everything since open: 100 events
 * committed, then 100 more in a second commit, copied aside (database
 * and log, as a crash would leave them) to PATH.copy. */
static void
journal_in_log(struct tmp *t)
{
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.checkpoint_pages = 1u << 20; /* no checkpoint */
	struct evfn__journal *j;
	ASSERT_OK(evfn__journal_open(&j, t->path, &o));
	uint32_t fn;
	ASSERT_OK(evfn__journal_fn_id(j, "work", &fn));
	ASSERT_OK(evfn__journal_start(j));
	char payload[600];
	evfn_event *evs[100];
	struct evfn__journal_entry e[100];
	for (int batch = 0; batch < 2; batch++) {
		for (int i = 0; i < 100; i++) {
			uint64_t seq = (uint64_t)(batch * 100 + i + 1);
			evs[i] = event_of(seq, payload,
			                  child_payload(seq, payload, 500));
			e[i] = (struct evfn__journal_entry){seq, evs[i], &fn, 1,
			                                    NULL};
		}
		ASSERT_OK(evfn__journal_append_many(j, e, 100));
		for (int i = 0; i < 100; i++)
			evfn_event_unref(evs[i]);
	}
	char copy[128], wal[128], copy_wal[128];
	snprintf(copy, sizeof(copy), "%s.copy", t->path);
	snprintf(wal, sizeof(wal), "%s-wal", t->path);
	snprintf(copy_wal, sizeof(copy_wal), "%s.copy-wal", t->path);
	copy_file(t->path, copy);
	copy_file(wal, copy_wal);
	ASSERT_OK(evfn__journal_close(j));
}

/* Recovers PATH.copy: the seqs it holds, as a count, first and last. */
static void
recover_copy(struct tmp *t, size_t *n, uint64_t *first, uint64_t *last)
{
	char copy[128];
	snprintf(copy, sizeof(copy), "%s.copy", t->path);
	struct ledger l = {0};
	ledger_recover(&l, copy);
	*n = 0;
	*first = *last = 0;
	for (uint64_t seq = 1; seq < l.cap; seq++) {
		if (!l.recovered[seq])
			continue;
		if (!*first)
			*first = seq;
		*last = seq;
		(*n)++;
	}
	ledger_free(&l);
}

static void
test_journal_torn_checkpoint_recovers(void **state)
{
	struct tmp t;
	tmp_make(&t);
	journal_in_log(&t);
	/* A checkpoint that died midway: the first half of the log's
	 * frames copied into the database, the next one torn in two. */
	char copy[128], copy_wal[128];
	snprintf(copy, sizeof(copy), "%s.copy", t.path);
	snprintf(copy_wal, sizeof(copy_wal), "%s.copy-wal", t.path);
	size_t len;
	uint8_t *wal = slurp(copy_wal, &len);
	uint32_t page = be32(wal + 8);
	size_t frame = 24 + page, frames = (len - 32) / frame;
	assert_true(frames > 8);
	int db = open(copy, O_WRONLY | O_CLOEXEC);
	assert_true(db >= 0);
	for (size_t f = 0; f <= frames / 2; f++) {
		const uint8_t *h = wal + 32 + f * frame;
		size_t n = f == frames / 2 ? page / 2 : page;
		assert_int_equal(pwrite(db, h + 24, n,
		                        (off_t)(be32(h) - 1) * page),
		                 (ssize_t)n);
	}
	close(db);
	free(wal);
	size_t n;
	uint64_t first, last;
	recover_copy(&t, &n, &first, &last);
	ASSERT_EQ(n, 200);
	ASSERT_EQ(first, 1);
	ASSERT_EQ(last, 200);
	tmp_remove(&t);
}

static void
test_journal_torn_log_tail_keeps_committed_batches(void **state)
{
	struct tmp t;
	tmp_make(&t);
	journal_in_log(&t);
	/* Power lost while the second commit was written: its last frame
	 * is half there. The first commit stands whole, the second is
	 * gone whole. */
	char copy_wal[128];
	snprintf(copy_wal, sizeof(copy_wal), "%s.copy-wal", t.path);
	size_t len;
	free(slurp(copy_wal, &len));
	assert_int_equal(truncate(copy_wal, (off_t)len - 1000), 0);
	size_t n;
	uint64_t first, last;
	recover_copy(&t, &n, &first, &last);
	ASSERT_EQ(n, 100);
	ASSERT_EQ(first, 1);
	ASSERT_EQ(last, 100);
	tmp_remove(&t);
}

static int log_calls;
static int log_last_code;

static void
count_log(int code, const char *message, void *arg)
{
	(void)arg;
	if (getenv("EVFN_TEST_VERBOSE"))
		print_message("# log %s: %s\n", evfn_err_name(code), message);
	log_calls++;
	log_last_code = code;
}

/* Runs SQL on a closed journal file through SQLite directly. */
static void
sql_on_file(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	sqlite3_close(db);
}

/* A journal of n one-target events, closed. */
static void
journal_of(const char *path, int n, size_t payload)
{
	struct evfn__journal *j = journal_open_mode(path, EVFN__JOURNAL_FAST);
	uint32_t fn;
	ASSERT_OK(evfn__journal_fn_id(j, "work", &fn));
	ASSERT_OK(evfn__journal_start(j));
	char *buf = malloc(payload + 32);
	for (int i = 1; i <= n; i++) {
		evfn_event *ev = event_of((uint64_t)i, buf,
		                          child_payload((uint64_t)i, buf,
		                                        payload));
		ASSERT_OK(evfn__journal_append(j, (uint64_t)i, ev, &fn, 1,
		                               NULL));
		evfn_event_unref(ev);
	}
	free(buf);
	ASSERT_OK(evfn__journal_close(j));
}

static int
open_logged(const char *path, struct evfn__journal **j)
{
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.log_cb = count_log;
	log_calls = 0;
	return evfn__journal_open(j, path, &o);
}

static void
test_journal_damaged_or_foreign_file_is_refused(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal *j;
	/* Not an SQLite file at all. */
	int fd = open(t.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	char junk[8192];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	ASSERT_RC(open_logged(t.path, &j), EVFN_ECORRUPT);
	assert_null(j);
	assert_true(log_calls > 0);
	unlink(t.path);

	/* An SQLite database of something else, and a journal of a later
	 * format. */
	sql_on_file(t.path, "CREATE TABLE orders(id INTEGER)");
	ASSERT_RC(open_logged(t.path, &j), EVFN_ECORRUPT);
	unlink(t.path);
	journal_of(t.path, 1, 10);
	sql_on_file(t.path, "PRAGMA user_version = 2");
	ASSERT_RC(open_logged(t.path, &j), EVFN_ECORRUPT);
	unlink(t.path);

	/* A record whose event does not decode. */
	journal_of(t.path, 10, 10);
	sql_on_file(t.path, "UPDATE invocations SET attrs = x'0107' "
	                    "WHERE seq = 5");
	ASSERT_OK(open_logged(t.path, &j));
	struct got g = {0};
	ASSERT_RC(evfn__journal_recover(j, collect, &g), EVFN_ECORRUPT);
	ASSERT_EQ(g.n, 4); /* what came before, nothing after */
	ASSERT_EQ(log_last_code, EVFN_ECORRUPT);
	got_free(&g);
	ASSERT_OK(evfn__journal_close(j));
	unlink(t.path);

	/* Pages of the database overwritten: refused at open or at
	 * recovery, never a crash or a wrong record. */
	journal_of(t.path, 3000, 100);
	long long pages = file_size(t.path) / 4096;
	assert_true(pages > 40);
	fd = open(t.path, O_WRONLY | O_CLOEXEC);
	memset(junk, 0xa5, 4096);
	for (long long p = pages / 2; p < pages / 2 + 4; p++)
		assert_int_equal(pwrite(fd, junk, 4096, (off_t)(p * 4096)),
		                 4096);
	close(fd);
	int rc = open_logged(t.path, &j);
	if (rc == 0) {
		rc = evfn__journal_recover(j, collect, &g);
		got_free(&g);
		ASSERT_OK(evfn__journal_close(j));
	}
	ASSERT_RC(rc, EVFN_ECORRUPT);
	tmp_remove(&t);
}

static void
test_journal_locked_or_unwritable_path_is_refused(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal *j, *other;
	j = journal_open_mode(t.path, EVFN__JOURNAL_DURABLE);
	/* One connection at a time: a second would interleave batches. */
	ASSERT_RC(evfn__journal_open(&other, t.path, NULL), EVFN_EBUSY);
	assert_null(other);
	ASSERT_OK(evfn__journal_close(j));
	ASSERT_OK(evfn__journal_open(&other, t.path, NULL));
	ASSERT_OK(evfn__journal_close(other));

	char missing[128];
	snprintf(missing, sizeof(missing), "%s/no/such/dir/j.db", t.dir);
	ASSERT_RC(evfn__journal_open(&j, missing, NULL), EVFN_ENOENT);
	/* Where nobody may create files, root included (sysfs). */
	ASSERT_RC(evfn__journal_open(&j, "/sys/evfn-journal.db", NULL),
	          EVFN_EACCES);
	/* A directory is no journal. */
	ASSERT_RC(evfn__journal_open(&j, t.dir, NULL), EVFN_EJOURNAL);
	tmp_remove(&t);
}

static void
test_journal_io_errors_are_specific_and_lose_nothing(void **state)
{
	faulty_register();
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.vfs = "evfn-faulty";
	o.log_cb = count_log;
	struct evfn__journal *j;
	ASSERT_OK(evfn__journal_open(&j, t.path, &o));
	uint32_t fn;
	ASSERT_OK(evfn__journal_fn_id(j, "work", &fn));
	ASSERT_OK(evfn__journal_start(j));
	/* Durable: each append returned after an fsync of its commit. */
	ASSERT_OK(evfn__journal_sync(j));
	atomic_store(&syncs, 0);
	for (uint64_t seq = 1; seq <= 3; seq++) {
		append_one(j, seq, fn);
		assert_true(atomic_load(&syncs) >= (int)seq);
	}
	/* A broken disk and a full one: refused, each with its code. */
	log_calls = 0;
	atomic_store(&fail_writes, EIO);
	evfn_event *ev = event_of(4, "four", 4);
	ASSERT_RC(evfn__journal_append(j, 4, ev, &fn, 1, NULL),
	          EVFN_EJOURNAL);
	evfn_event_unref(ev);
	assert_true(log_calls > 0);
	ASSERT_EQ(log_last_code, EVFN_EJOURNAL);
	atomic_store(&fail_writes, ENOSPC);
	ev = event_of(5, "five", 4);
	ASSERT_RC(evfn__journal_append(j, 5, ev, &fn, 1, NULL), EVFN_ENOSPC);
	evfn_event_unref(ev);
	faults_clear();
	append_one(j, 6, fn);
	/* An fsync that fails: refused too (whether the commit reached the
	 * disk is then unknown: it may come back, never lost). */
	atomic_store(&fail_syncs, EIO);
	ev = event_of(7, "seven", 5);
	ASSERT_RC(evfn__journal_append(j, 7, ev, &fn, 1, NULL),
	          EVFN_EJOURNAL);
	evfn_event_unref(ev);
	faults_clear();
	append_one(j, 8, fn);
	/* The end of 6 fails to commit, and is kept for the next one. */
	atomic_store(&fail_writes, EIO);
	ASSERT_OK(evfn__journal_end(j, 6, fn, EVFN__JEND_SUCCEEDED));
	ASSERT_RC(evfn__journal_sync(j), EVFN_EJOURNAL);
	faults_clear();
	ASSERT_OK(evfn__journal_sync(j));
	ASSERT_OK(evfn__journal_close(j));

	struct got g = {0};
	j = reopen_and_recover(t.path, &g);
	uint64_t want[] = {1, 2, 3, 7, 8};
	size_t w = 0;
	for (size_t i = 0; i < g.n; i++) {
		if (g.v[i].seq == 7 && want[w] != 7)
			continue;
		if (want[w] == 7 && g.v[i].seq != 7)
			w++;
		ASSERT_EQ(g.v[i].seq, want[w]);
		w++;
	}
	ASSERT_EQ(w, 5);
	got_free(&g);
	ASSERT_OK(evfn__journal_close(j));

	/* Fast mode: appends do not wait for an fsync; a sync does. */
	struct evfn__journal_options fo = o;
	fo.mode = EVFN__JOURNAL_FAST;
	fo.sync_ns = 3600 * EVFN__NS_PER_SEC;
	fo.flush_ns = 60 * EVFN__NS_PER_SEC;
	ASSERT_OK(evfn__journal_open(&j, t.path, &fo));
	ASSERT_OK(evfn__journal_start(j));
	atomic_store(&syncs, 0);
	for (uint64_t seq = 9; seq <= 100; seq++)
		append_one(j, seq, fn);
	ASSERT_EQ(atomic_load(&syncs), 0);
	ASSERT_OK(evfn__journal_sync(j));
	assert_true(atomic_load(&syncs) > 0);
	ASSERT_OK(evfn__journal_close(j));
	tmp_remove(&t);
}

/* The real thing: a file size limit, as a full disk refuses writes. */
static void
full_disk_round(enum evfn__journal_mode mode)
{
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.mode = mode;
	o.flush_ns = 5 * EVFN__NS_PER_MS;
	o.log_cb = count_log;
	struct evfn__journal *j;
	ASSERT_OK(evfn__journal_open(&j, t.path, &o));
	uint32_t fn;
	ASSERT_OK(evfn__journal_fn_id(j, "work", &fn));
	ASSERT_OK(evfn__journal_start(j));
	ASSERT_OK(evfn__journal_sync(j));
	struct rlimit old, small;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = (rlim_t)journal_size(t.path) + 256 * 1024;
	signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of death */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);

	bool ok[4096] = {false};
	char buf[2100];
	uint64_t seq = 1;
	int rc = 0;
	for (; seq < 4000 && rc == 0; seq++) {
		evfn_event *ev = event_of(seq, buf,
		                          child_payload(seq, buf, 2048));
		rc = evfn__journal_append(j, seq, ev, &fn, 1, NULL);
		evfn_event_unref(ev);
		ok[seq] = rc == 0;
		if (mode == EVFN__JOURNAL_FAST && seq % 20 == 0)
			test_sleep_ms(2); /* let the writer commit */
	}
	ASSERT_RC(rc, EVFN_ENOSPC);
	struct evfn__journal_stats st;
	evfn__journal_stats_get(j, &st);
	assert_true(st.commit_failures > 0);
	ASSERT_EQ(st.last_error, EVFN_ENOSPC);

	/* Space again: appends go on, and nothing accepted was lost. */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	int64_t until = test_now_ms() + 10000;
	for (uint64_t more = seq + 10; seq < more;) {
		evfn_event *ev = event_of(seq, buf, child_payload(seq, buf, 10));
		rc = evfn__journal_append(j, seq, ev, &fn, 1, NULL);
		evfn_event_unref(ev);
		if (rc == EVFN_ENOSPC && test_now_ms() < until) {
			test_sleep_ms(5); /* fast: until the retry commits */
			continue;
		}
		ASSERT_OK(rc);
		ok[seq++] = true;
	}
	ASSERT_OK(evfn__journal_sync(j));
	ASSERT_OK(evfn__journal_close(j));
	struct ledger l = {0};
	ledger_recover(&l, t.path);
	for (uint64_t i = 1; i < seq; i++)
		if ((i < l.cap && l.recovered[i]) != ok[i])
			fail_msg("%s mode: seq %llu %s", mode ? "fast" : "durable",
			         (unsigned long long)i,
			         ok[i] ? "accepted and lost" : "refused, and back");
	ledger_free(&l);
	tmp_remove(&t);
}

static void
test_journal_full_disk_refuses_and_loses_nothing(void **state)
{
	full_disk_round(EVFN__JOURNAL_DURABLE);
	full_disk_round(EVFN__JOURNAL_FAST);
}

static void
test_journal_out_of_memory_loses_nothing(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal *j = NULL;
	/* Every allocation of open fails in turn, then it succeeds. */
	int k = 0;
	for (;; k++) {
		atomic_store(&failing_alloc_left, k);
		int rc = evfn__journal_open(&j, t.path, NULL);
		atomic_store(&failing_alloc_left, -1);
		if (rc == 0)
			break;
		ASSERT_RC(rc, EVFN_ENOMEM);
		assert_true(k < 1000);
	}
	assert_true(k > 0);
	uint32_t fn;
	atomic_store(&failing_alloc_left, 0);
	ASSERT_RC(evfn__journal_fn_id(j, "work", &fn), EVFN_ENOMEM);
	atomic_store(&failing_alloc_left, -1);
	ASSERT_OK(evfn__journal_fn_id(j, "work", &fn));
	ASSERT_EQ(fn, 1);
	ASSERT_OK(evfn__journal_start(j));
	append_one(j, 1, fn);
	append_one(j, 2, fn);
	ASSERT_OK(evfn__journal_sync(j));

	/* A call that cannot copy what it is given changes nothing; of
	 * several appends, none is journaled. */
	evfn_event *ev = event_of(3, "three", 5);
	atomic_store(&failing_alloc_left, 0);
	struct evfn__journal_state failed = {.attempts = 1,
	                                     .last_error = "boom"};
	ASSERT_RC(evfn__journal_update(j, 1, fn, &failed), EVFN_ENOMEM);
	ASSERT_RC(evfn__journal_idempotency_put(j, fn, "k", "r", 1, INT64_MAX),
	          EVFN_ENOMEM);
	struct evfn__journal_dead_letter dl = {.id = 1, .ev = ev,
	                                       .error = "no"};
	ASSERT_RC(evfn__journal_dead_letter(j, 2, fn, &dl), EVFN_ENOMEM);
	struct evfn__journal_entry e[3] = {{3, ev, &fn, 1, NULL},
	                                   {4, ev, &fn, 1, NULL},
	                                   {5, ev, &fn, 1, &failed}};
	ASSERT_RC(evfn__journal_append_many(j, e, 3), EVFN_ENOMEM);
	atomic_store(&failing_alloc_left, -1);
	evfn_event_unref(ev);
	ASSERT_OK(evfn__journal_close(j));

	/* Recovery without memory says so, and can be asked again. */
	j = journal_open_mode(t.path, EVFN__JOURNAL_DURABLE);
	struct got g = {0};
	/* Recovered events are small: none may come from a cached block. */
	evfn__blocks_trim();
	atomic_store(&failing_alloc_left, 0);
	ASSERT_RC(evfn__journal_recover(j, collect, &g), EVFN_ENOMEM);
	atomic_store(&failing_alloc_left, -1);
	ASSERT_EQ(g.n, 0);
	ASSERT_EQ(evfn__journal_recover(j, collect, &g), 2);
	ASSERT_EQ(g.v[0].seq, 1);
	ASSERT_EQ(g.v[0].st.attempts, 0);
	ASSERT_EQ(g.v[1].seq, 2);
	got_free(&g);
	ASSERT_OK(evfn__journal_close(j));
	tmp_remove(&t);
}

static void
test_journal_size_stays_bounded_under_steady_load(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.checkpoint_pages = 128; /* 512 KiB of log */
	struct evfn__journal *j;
	ASSERT_OK(evfn__journal_open(&j, t.path, &o));
	uint32_t fn;
	ASSERT_OK(evfn__journal_fn_id(j, "work", &fn));
	ASSERT_OK(evfn__journal_start(j));
	/* 2,000 events pending at all times; each round 200 new ones are
	 * appended and the 200 oldest end. */
	enum { WINDOW = 2000, ROUND = 200, ROUNDS = 240 };
	char buf[300];
	evfn_event *ev = event_of(1, buf, child_payload(1, buf, 200));
	struct evfn__journal_entry e[ROUND];
	uint64_t head = 1, tail = 1;
	long long first = 0, second = 0;
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < ROUND; i++)
			e[i] = (struct evfn__journal_entry){head + (uint64_t)i,
			                                    ev, &fn, 1, NULL};
		ASSERT_OK(evfn__journal_append_many(j, e, ROUND));
		head += ROUND;
		while (head - tail > WINDOW)
			ASSERT_OK(evfn__journal_end(j, tail++, fn,
			                            EVFN__JEND_SUCCEEDED));
		long long size = journal_size(t.path);
		if (r >= ROUNDS / 6 && r < ROUNDS / 2)
			first = EVFN__MAX(first, size);
		else if (r >= ROUNDS / 2)
			second = EVFN__MAX(second, size);
	}
	evfn_event_unref(ev);
	print_message("# %llu events through a window of %d: at most %lld "
	              "bytes, then %lld\n",
	              (unsigned long long)head - 1, WINDOW, first, second);
	/* Ended rows make room for new ones, the log is checkpointed and
	 * cut back: what 2,000 pending events need (about 1 MiB with the
	 * log), not what 48,000 would (16 MiB), and no growth from the first
	 * half to the second beyond the noise of when checkpoints and
	 * vacuums fall. */
	assert_true(first < 4 * 1024 * 1024);
	assert_true(second < 4 * 1024 * 1024);
	assert_true(second <= 2 * first);
	ASSERT_OK(evfn__journal_close(j));
	tmp_remove(&t);
}

static void
test_journal_refuses_bad_arguments(void **state)
{
	struct tmp t;
	tmp_make(&t);
	struct evfn__journal *j = (struct evfn__journal *)1;
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	ASSERT_RC(evfn__journal_open(NULL, t.path, &o), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_open(&j, NULL, &o), EVFN_EINVAL);
	assert_null(j);
	ASSERT_RC(evfn__journal_open(&j, "", &o), EVFN_EINVAL);
	o.flush_ns = 0;
	ASSERT_RC(evfn__journal_open(&j, t.path, &o), EVFN_EINVAL);
	evfn__journal_options_init(&o);
	o.mode = (enum evfn__journal_mode)7;
	ASSERT_RC(evfn__journal_open(&j, t.path, &o), EVFN_EINVAL);
	evfn__journal_options_init(&o);
	o.checkpoint_pages = 1;
	ASSERT_RC(evfn__journal_open(&j, t.path, &o), EVFN_EINVAL);

	j = journal_open_mode(t.path, EVFN__JOURNAL_DURABLE);
	uint32_t fn;
	char long_name[EVFN_NAME_MAX + 2];
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	ASSERT_RC(evfn__journal_fn_id(j, NULL, &fn), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_fn_id(j, "", &fn), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_fn_id(j, long_name, &fn), EVFN_ENAMETOOLONG);
	ASSERT_OK(evfn__journal_fn_id(j, "work", &fn));
	evfn_event *ev = event_of(1, "x", 1);
	/* Durable appends wait for the writer: not before it starts. */
	ASSERT_RC(evfn__journal_append(j, 1, ev, &fn, 1, NULL),
	          EVFN_ENOTRUNNING);
	ASSERT_RC(evfn__journal_sync(j), EVFN_ENOTRUNNING);
	ASSERT_OK(evfn__journal_start(j));
	ASSERT_RC(evfn__journal_start(j), EVFN_EALREADY);
	ASSERT_RC(evfn__journal_recover(j, collect, NULL), EVFN_EBUSY);
	uint32_t unknown = fn + 1, none = 0;
	ASSERT_RC(evfn__journal_append(j, 1, NULL, &fn, 1, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_append(j, 0, ev, &fn, 1, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_append(j, 1, ev, &fn, 0, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_append(j, 1, ev, &unknown, 1, NULL),
	          EVFN_EINVAL);
	ASSERT_RC(evfn__journal_append(j, 1, ev, &none, 1, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_append_many(j, NULL, 1), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_update(j, 1, fn, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_end(j, 1, fn, (enum evfn__journal_end)99),
	          EVFN_EINVAL);
	ASSERT_RC(evfn__journal_end(j, 0, fn, EVFN__JEND_SUCCEEDED),
	          EVFN_EINVAL);
	struct evfn__journal_dead_letter dl = {.id = 0, .ev = ev};
	ASSERT_RC(evfn__journal_dead_letter(j, 1, fn, &dl), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_dead_letter_delete(j, 0), EVFN_EINVAL);
	ASSERT_RC(evfn__journal_idempotency_put(j, fn, "", "r", 1, 1),
	          EVFN_EINVAL);
	ASSERT_RC(evfn__journal_idempotency_put(j, fn, "k", NULL, 1, 1),
	          EVFN_EINVAL);
	evfn_event_unref(ev);
	ASSERT_OK(evfn__journal_close(j));
	ASSERT_OK(evfn__journal_close(NULL));
	tmp_remove(&t);
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return child_main(argc, argv);
	if (!failing_alloc_install())
		return 1;
	const struct CMUnitTest tests[] = {
		TEST(test_journal_event_encoding_round_trip),
		TEST(test_journal_event_decoding_refuses_damaged_bytes),
		TEST(test_journal_pending_folds_updates_and_cancels_appends),
		TEST(test_journal_round_trip_keeps_what_did_not_end),
		TEST(test_journal_dead_letters_and_keys_survive),
		TEST(test_journal_durable_producers_share_commits),
		TEST(test_journal_durable_unwaited_records_ride_with_the_next_append),
		TEST(test_journal_durable_unwaited_records_are_committed_within_the_interval),
		TEST(test_journal_fast_end_before_commit_writes_nothing),
		TEST(test_journal_fast_appends_are_committed_within_the_interval),
		TEST(test_journal_durable_appends_survive_sigkill),
		TEST(test_journal_kill_during_checkpoint_recovers),
		TEST(test_journal_torn_checkpoint_recovers),
		TEST(test_journal_torn_log_tail_keeps_committed_batches),
		TEST(test_journal_damaged_or_foreign_file_is_refused),
		TEST(test_journal_locked_or_unwritable_path_is_refused),
		TEST(test_journal_io_errors_are_specific_and_lose_nothing),
		TEST(test_journal_full_disk_refuses_and_loses_nothing),
		TEST(test_journal_out_of_memory_loses_nothing),
		TEST(test_journal_size_stays_bounded_under_steady_load),
		TEST(test_journal_refuses_bad_arguments),
	};
	return evfn_test_main("journal", tests);
}
