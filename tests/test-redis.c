/* SPDX-License-Identifier: MIT */
/*
 * The Redis Streams source and sink against real redis-server processes
 * that each case starts on a unix socket in a temporary directory (and
 * kills, restarts or starts with a password as the case needs): delivery
 * exactly as acknowledged, field mapping, dead letters, backpressure,
 * reconnection with nothing lost, consumer groups shared by several
 * processes (this binary re-executed with --consumer) with reclaiming
 * after a SIGKILL, and the URL, type and authentication errors. Every
 * child process is killed in the teardown, even after a failed assertion.
 */
#include "redis-harness.h"

/* ---- in-process runtime and handlers ----------------------------------- */

static long long
max_ll(long long a, long long b)
{
	return a > b ? a : b;
}

struct tally {
	atomic_int hits[MAX_ENTRIES];
	atomic_int total;
	atomic_int bad;
	atomic_int redelivered[4]; /* runs by deliverycount 0 (none), 1..3 */
	int delay_ms;
};

static int
tally_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	struct tally *t = userdata;
	int i = entry_number(ev);
	const char *id = evfn_event_id(ev);
	/* The event id is the entry id: "<ms>-<seq>". */
	if (i < 0 || i >= MAX_ENTRIES || !id || !strchr(id, '-'))
		atomic_fetch_add(&t->bad, 1);
	else
		atomic_fetch_add(&t->hits[i], 1);
	const char *dc = evfn_event_extension(ev, "deliverycount");
	int n = dc ? atoi(dc) : 0;
	atomic_fetch_add(&t->redelivered[n >= 0 && n < 4 ? n : 0], 1);
	if (t->delay_ms)
		test_sleep_ms(t->delay_ms);
	atomic_fetch_add(&t->total, 1);
	return EVFN_OK;
}

/* The log lines of a runtime, kept for the cases that check them. */
struct log_lines {
	pthread_mutex_t mu;
	char text[16384];
	size_t len;
};

static void
log_keep(evfn_log_level level, const char *msg, void *arg)
{
	(void)level;
	struct log_lines *l = arg;
	pthread_mutex_lock(&l->mu);
	int n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s\n",
	                 msg);
	if (n > 0 && (size_t)n < sizeof(l->text) - l->len)
		l->len += (size_t)n;
	pthread_mutex_unlock(&l->mu);
}

/* How many kept lines contain both a and b (b may be NULL). */
static int
log_count(struct log_lines *l, const char *a, const char *b)
{
	int n = 0;
	pthread_mutex_lock(&l->mu);
	for (const char *line = l->text; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char buf[512];
		snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
		n += strstr(buf, a) && (!b || strstr(buf, b));
		line += len + (end != NULL);
	}
	pthread_mutex_unlock(&l->mu);
	return n;
}

static evfn_rt *
start_runtime_logged(const char *fn, evfn_handler h, void *ud,
                     evfn_fn_options *fo, struct log_lines *log)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 1, 2));
	if (log)
		ASSERT_OK(evfn_rt_options_set_log(o, log_keep, log));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, fn, h, ud, fo, NULL));
	ASSERT_OK(evfn_rt_start(rt));
	return rt;
}

static evfn_rt *
start_runtime(const char *fn, evfn_handler h, void *ud,
              evfn_fn_options *fo)
{
	return start_runtime_logged(fn, h, ud, fo, NULL);
}

static void
stop_runtime(evfn_rt *rt)
{
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

static evfn_redis_options *
source_options(const struct server *s, const char *url)
{
	evfn_redis_options *o;
	ASSERT_OK(evfn_redis_options_new(&o));
	ASSERT_OK(evfn_redis_options_set_url(o, url ? url : s->url));
	ASSERT_OK(evfn_redis_options_set_group(o, "g", "c1"));
	ASSERT_OK(evfn_redis_options_set_from_start(o, true));
	ASSERT_OK(evfn_redis_options_set_batch(o, 50, 100));
	ASSERT_OK(evfn_redis_options_set_reconnect(o, 20, 200));
	return o;
}

static evfn_redis_source *
new_source(evfn_rt *rt, const char *stream, const char *fn,
           evfn_redis_options *o)
{
	evfn_redis_source *src;
	ASSERT_OK(evfn_redis_source_new(&src, rt, stream, fn, o));
	evfn_redis_options_free(o);
	return src;
}

/* The highest delivery count among the group's pending entries (0 when
 * none is pending, or the group does not exist yet). */
static long long
most_deliveries(redisContext *c, const char *stream, const char *group)
{
	redisReply *r = redisCommand(c, "XPENDING %s %s - + 100000", stream,
	                             group);
	assert_non_null(r);
	long long most = 0;
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
		most = max_ll(most, r->element[i]->element[3]->integer);
	freeReplyObject(r);
	return most;
}

static void
assert_each_once(struct tally *t, int n)
{
	ASSERT_EQ(atomic_load(&t->bad), 0);
	for (int i = 0; i < n; i++)
		if (atomic_load(&t->hits[i]) != 1)
			fail_msg("entry %d handled %d times", i,
			         atomic_load(&t->hits[i]));
}

/* ---- options and URLs --------------------------------------------------- */

static void
test_redis_url_grammar(void **state)
{
	(void)state;
	evfn_redis_options *o;
	ASSERT_OK(evfn_redis_options_new(&o));
	static const char *const good[] = {
		"redis://localhost", "redis://127.0.0.1:6380/3",
		"redis://:secret@host:1/0", "redis://user:p%40ss@host",
		"redis://[::1]:6379", "redis://host/",
		"unix:///tmp/r.sock", "unix://:pw@/tmp/r.sock?db=1",
	};
	for (size_t i = 0; i < ARRAY_LEN(good); i++)
		if (evfn_redis_options_set_url(o, good[i]) != 0)
			fail_msg("refused %s", good[i]);
	static const char *const bad[] = {
		"", "http://host", "redis://", "redis://:6379",
		"redis://host:0", "redis://host:65536", "redis://host:x",
		"redis://host/db", "redis://host/70000", "redis://a b",
		"redis://pass@host", "redis://[::1", "redis://:p%4@host",
		"redis://:p%00@host", "unix://tmp/r.sock", "unix://",
		"unix:///tmp/r.sock?db=x", "unix:///tmp/r.sock?x=1",
		"redis+unix:///tmp/r.sock",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (evfn_redis_options_set_url(o, bad[i]) != EVFN_EURL)
			fail_msg("accepted %s", bad[i]);
	ASSERT_RC(evfn_redis_options_set_url(o, NULL), EVFN_EINVAL);
	evfn_redis_options_free(o);
}

static void
test_redis_options_ranges(void **state)
{
	(void)state;
	evfn_redis_options *o;
	ASSERT_RC(evfn_redis_options_new(NULL), EVFN_EINVAL);
	ASSERT_OK(evfn_redis_options_new(&o));
	ASSERT_RC(evfn_redis_options_set_batch(o, 0, 10), EVFN_ERANGE);
	ASSERT_RC(evfn_redis_options_set_batch(o, 10, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_redis_options_set_max_in_flight(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_redis_options_set_claim(o, -1, 10), EVFN_ERANGE);
	ASSERT_RC(evfn_redis_options_set_claim(o, 10, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_redis_options_set_max_deliveries(o, -1), EVFN_ERANGE);
	ASSERT_RC(evfn_redis_options_set_reconnect(o, 10, 5), EVFN_ERANGE);
	ASSERT_RC(evfn_redis_options_set_maxlen(o, -1), EVFN_ERANGE);
	ASSERT_RC(evfn_redis_options_set_group(o, "", NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_redis_options_set_group(o, NULL, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_redis_options_set_data_field(o, ""), EVFN_EINVAL);
	ASSERT_RC(evfn_redis_options_set_dead_letter_stream(o, ""),
	          EVFN_EINVAL);
	ASSERT_OK(evfn_redis_options_set_dead_letter_stream(o, NULL));
	ASSERT_RC(evfn_redis_options_set_from_start(NULL, true), EVFN_EINVAL);
	evfn_redis_options_free(o);
	evfn_redis_options_free(NULL);

	/* A source needs a registered function. */
	struct tally *t = calloc(1, sizeof(*t));
	evfn_rt *rt = start_runtime("work", tally_handler, t, NULL);
	evfn_redis_source *src = (void *)1;
	ASSERT_RC(evfn_redis_source_new(&src, rt, "s", "nope", NULL),
	          EVFN_ENOFN);
	assert_null(src);
	ASSERT_RC(evfn_redis_source_new(&src, rt, "", "work", NULL),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_redis_source_new(&src, NULL, "s", "work", NULL),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_redis_source_status(NULL), EVFN_EINVAL);
	evfn_redis_source_free(NULL);
	evfn_redis_sink_free(NULL);
	stop_runtime(rt);
	free(t);
}

/* ---- one consumer ------------------------------------------------------- */

static void
test_redis_source_handles_each_entry_once(void **state)
{
	(void)state;
	struct server srv = {0};
	server_start(&srv, false, NULL);
	redisContext *c = connect_cli(&srv);
	/* Some entries before the group exists, some after. */
	add_entries(c, "s", 0, 500);
	struct tally *t = calloc(1, sizeof(*t));
	evfn_rt *rt = start_runtime("work", tally_handler, t, NULL);
	evfn_redis_source *src =
		new_source(rt, "s", "work", source_options(&srv, NULL));
	add_entries(c, "s", 500, 500);
	WAIT_FOR(atomic_load(&t->total) == 1000 &&
	                 evfn_redis_source_acked(src) == 1000,
	         15000);
	ASSERT_EQ(pending(c, "s", "g"), 0);
	ASSERT_EQ(evfn_redis_source_status(src), 0);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	assert_each_once(t, 1000);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

/* One read is one admission: the 200 entries of each XREADGROUP reply
 * get consecutive sequence numbers in stream order, and a thread taking
 * snapshots all the while never sees part of a read accepted. */
#define READ_BATCH 200
#define READS 5
static atomic_ullong entry_seq[READ_BATCH * READS];

static int
seq_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)userdata;
	int i = entry_number(ev);
	if (i >= 0 && i < READ_BATCH * READS)
		atomic_store(&entry_seq[i], evfn_event_seq(ev));
	return EVFN_OK;
}

static void
test_redis_source_read_is_one_admission(void **state)
{
	(void)state;
	struct server srv = {0};
	server_start(&srv, false, NULL);
	redisContext *c = connect_cli(&srv);
	add_entries(c, "s", 0, READ_BATCH * READS);
	evfn_rt *rt = start_runtime("work", seq_handler, NULL, NULL);
	struct test_split_watch w;
	test_split_watch_start(&w, rt, "work", READ_BATCH);
	evfn_redis_options *o = source_options(&srv, NULL);
	ASSERT_OK(evfn_redis_options_set_batch(o, READ_BATCH, 100));
	evfn_redis_source *src = new_source(rt, "s", "work", o);
	WAIT_FOR(evfn_redis_source_acked(src) == READ_BATCH * READS, 15000);
	ASSERT_EQ(test_split_watch_stop(&w), 0);
	for (int i = 0; i < READ_BATCH * READS; i++)
		if (i % READ_BATCH)
			ASSERT_EQ(atomic_load(&entry_seq[i]),
			          atomic_load(&entry_seq[i - 1]) + 1);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	redisFree(c);
	server_kill(&srv);
}

struct seen_attrs {
	pthread_mutex_t mu;
	int n;
	char type[64], source[64], subject[64], dct[64], tenant[64], id[64];
	char data[64];
	int64_t time;
	bool has_bad, has_id_ext;
};

static void
copy_attr(char *dst, const char *v)
{
	snprintf(dst, 64, "%s", v ? v : "(null)");
}

static int
attrs_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	struct seen_attrs *a = userdata;
	pthread_mutex_lock(&a->mu);
	copy_attr(a->type, evfn_event_type(ev));
	copy_attr(a->source, evfn_event_source(ev));
	copy_attr(a->subject, evfn_event_subject(ev));
	copy_attr(a->dct, evfn_event_datacontenttype(ev));
	copy_attr(a->tenant, evfn_event_extension(ev, "tenant"));
	copy_attr(a->id, evfn_event_id(ev));
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	snprintf(a->data, sizeof(a->data), "%.*s", (int)len, d ? d : "");
	a->time = evfn_event_time(ev);
	a->has_bad = evfn_event_extension(ev, "bad") != NULL;
	a->n++;
	pthread_mutex_unlock(&a->mu);
	return EVFN_OK;
}

static void
test_redis_source_maps_fields_to_attributes(void **state)
{
	(void)state;
	struct server srv = {0};
	server_start(&srv, false, NULL);
	redisContext *c = connect_cli(&srv);
	redisReply *r = redisCommand(
		c, "XADD s * payload hello type orders.created source shop "
		   "subject o-1 datacontenttype text/plain "
		   "time 2024-05-01T10:00:00.5+02:00 tenant acme Bad-Name x "
		   "data ignored");
	assert_non_null(r);
	char id[64];
	snprintf(id, sizeof(id), "%s", r->str);
	freeReplyObject(r);
	static struct seen_attrs a = {.mu = PTHREAD_MUTEX_INITIALIZER};
	evfn_rt *rt = start_runtime("attrs", attrs_handler, &a, NULL);
	evfn_redis_options *o = source_options(&srv, NULL);
	ASSERT_OK(evfn_redis_options_set_data_field(o, "payload"));
	evfn_redis_source *src = new_source(rt, "s", "attrs", o);
	WAIT_FOR(evfn_redis_source_acked(src) == 1, 10000);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	ASSERT_EQ(a.n, 1);
	assert_string_equal(a.data, "hello");
	assert_string_equal(a.id, id);
	assert_string_equal(a.type, "orders.created");
	assert_string_equal(a.source, "shop");
	assert_string_equal(a.subject, "o-1");
	assert_string_equal(a.dct, "text/plain");
	assert_string_equal(a.tenant, "acme");
	/* 2024-05-01T08:00:00.5Z */
	ASSERT_EQ(a.time, INT64_C(1714550400500000000));
	redisFree(c);
	server_kill(&srv);
}

/* ---- dead letters ------------------------------------------------------- */

static int
picky_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	if (len == 6 && !memcmp(d, "poison", 6))
		return EVFN_RETRY;
	if (len == 5 && !memcmp(d, "fatal", 5)) {
		evfn_ctx_set_error(ctx, "bad input");
		return EVFN_FAIL;
	}
	return EVFN_OK;
}

static void
test_redis_source_dead_letters_failures(void **state)
{
	(void)state;
	struct server srv = {0};
	server_start(&srv, false, NULL);
	redisContext *c = connect_cli(&srv);
	add_entries(c, "s", 0, 10);
	freeReplyObject(redisCommand(c, "XADD s * data poison kind p"));
	freeReplyObject(redisCommand(c, "XADD s * data fatal"));
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_attempts(fo, 2));
	ASSERT_OK(evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 1, 1, 1,
	                                      EVFN_JITTER_NONE));
	evfn_rt *rt = start_runtime("picky", picky_handler, NULL, fo);
	evfn_fn_options_free(fo);
	evfn_redis_source *src =
		new_source(rt, "s", "picky", source_options(&srv, NULL));
	WAIT_FOR(evfn_redis_source_acked(src) == 12, 10000);
	ASSERT_EQ(pending(c, "s", "g"), 0);
	ASSERT_EQ(xlen(c, "s:dead"), 2);
	evfn_redis_source_free(src);
	stop_runtime(rt);

	redisReply *r = redisCommand(c, "XRANGE s:dead - +");
	assert_int_equal(r->elements, 2);
	const redisReply *p = r->element[0]->element[1];
	const redisReply *f = r->element[1]->element[1];
	if (strcmp(field_of(p, "data"), "poison") != 0) {
		const redisReply *x = p;
		p = f;
		f = x;
	}
	assert_string_equal(field_of(p, "reason"), "EVFN_EEXHAUSTED");
	assert_string_equal(field_of(p, "attempts"), "2");
	assert_string_equal(field_of(p, "stream"), "s");
	assert_string_equal(field_of(p, "group"), "g");
	assert_string_equal(field_of(p, "consumer"), "c1");
	assert_string_equal(field_of(p, "data"), "poison");
	assert_string_equal(field_of(p, "kind"), "p");
	assert_true(strchr(field_of(p, "original_id"), '-') != NULL);
	assert_true(strlen(field_of(p, "failed_at")) > 20);
	assert_string_equal(field_of(f, "reason"), "EVFN_EFAILED");
	assert_string_equal(field_of(f, "error"), "bad input");
	assert_string_equal(field_of(f, "attempts"), "1");
	freeReplyObject(r);
	redisFree(c);
	server_kill(&srv);
}

/* ---- backpressure ------------------------------------------------------- */

static void
test_redis_source_full_queue_leaves_entries_pending(void **state)
{
	(void)state;
	struct server srv = {0};
	server_start(&srv, false, NULL);
	redisContext *c = connect_cli(&srv);
	add_entries(c, "s", 0, 300);
	struct tally *t = calloc(1, sizeof(*t));
	t->delay_ms = 1;
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, 3));
	ASSERT_OK(evfn_fn_options_set_concurrency(fo, 1));
	evfn_rt *rt = start_runtime("work", tally_handler, t, fo);
	evfn_fn_options_free(fo);
	evfn_redis_options *o = source_options(&srv, NULL);
	ASSERT_OK(evfn_redis_options_set_max_in_flight(o, 40));
	evfn_redis_source *src = new_source(rt, "s", "work", o);
	/* Refused entries stay held here without being read again: each
	 * pending entry shows one delivery throughout. */
	long long most = 0;
	WAIT_FOR((most = max_ll(most, most_deliveries(c, "s", "g")),
	          evfn_redis_source_acked(src) == 300),
	         15000);
	ASSERT_EQ(most, 1);
	ASSERT_EQ(pending(c, "s", "g"), 0);
	ASSERT_EQ(atomic_load(&t->total), 300);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	assert_each_once(t, 300);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

/* ---- faults ------------------------------------------------------------- */

static void
test_redis_source_survives_server_restart(void **state)
{
	(void)state;
	struct server srv = {0};
	srv.dir = new_dir();
	snprintf(srv.sock, sizeof(srv.sock), "%s/r.sock", srv.dir);
	snprintf(srv.url, sizeof(srv.url), "unix://%s", srv.sock);
	struct tally *t = calloc(1, sizeof(*t));
	t->delay_ms = 1;
	evfn_rt *rt = start_runtime("work", tally_handler, t, NULL);
	/* Nothing listens yet. */
	evfn_redis_source *src =
		new_source(rt, "s", "work", source_options(&srv, NULL));
	WAIT_FOR(evfn_redis_source_status(src) == EVFN_ECONNREFUSED, 5000);

	server_start(&srv, true, NULL);
	redisContext *c = connect_cli(&srv);
	add_entries(c, "s", 0, 400);
	WAIT_FOR(atomic_load(&t->total) >= 50, 10000);
	redisFree(c);
	server_kill(&srv);
	WAIT_FOR(evfn_redis_source_status(src) == EVFN_ECONNREFUSED, 5000);
	server_start(&srv, true, NULL);
	c = connect_cli(&srv);
	add_entries(c, "s", 400, 400);
	WAIT_FOR(pending(c, "s", "g") == 0 && xlen(c, "s") == 800 &&
	                 atomic_load(&t->total) >= 800,
	         20000);
	ASSERT_EQ(evfn_redis_source_status(src), 0);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	/* Nothing lost; an entry whose acknowledgement the restart lost may
	 * have run twice. */
	ASSERT_EQ(atomic_load(&t->bad), 0);
	for (int i = 0; i < 800; i++)
		if (atomic_load(&t->hits[i]) < 1)
			fail_msg("entry %d lost", i);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

static void
test_redis_source_wrong_type_stops(void **state)
{
	(void)state;
	struct server srv = {0};
	server_start(&srv, false, NULL);
	redisContext *c = connect_cli(&srv);
	freeReplyObject(redisCommand(c, "SET s not-a-stream"));
	struct tally *t = calloc(1, sizeof(*t));
	evfn_rt *rt = start_runtime("work", tally_handler, t, NULL);
	evfn_redis_source *src =
		new_source(rt, "s", "work", source_options(&srv, NULL));
	WAIT_FOR(evfn_redis_source_status(src) == EVFN_EWRONGTYPE, 5000);

	/* A sink refuses likewise. */
	evfn_redis_sink *sink;
	evfn_redis_options *o = source_options(&srv, NULL);
	ASSERT_OK(evfn_redis_sink_new(&sink, rt, "s", o));
	evfn_redis_options_free(o);
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "t", "x", 1));
	ASSERT_OK(evfn_redis_xadd(sink, ev));
	evfn_event_unref(ev);
	WAIT_FOR(evfn_redis_sink_status(sink) == EVFN_EWRONGTYPE, 5000);
	ASSERT_EQ(evfn_redis_sink_pending(sink), 0);
	evfn_redis_sink_free(sink);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	ASSERT_EQ(atomic_load(&t->total), 0);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

static void
test_redis_source_auth_failure_is_eauth(void **state)
{
	(void)state;
	struct server srv = {0};
	server_start(&srv, false, "s3cret");
	char wrong[200], right[200];
	snprintf(wrong, sizeof(wrong), "unix://:nope@%s", srv.sock);
	snprintf(right, sizeof(right), "unix://:s3cret@%s?db=1", srv.sock);
	struct tally *t = calloc(1, sizeof(*t));
	evfn_rt *rt = start_runtime("work", tally_handler, t, NULL);
	evfn_redis_source *none =
		new_source(rt, "s", "work", source_options(&srv, NULL));
	evfn_redis_source *bad =
		new_source(rt, "s", "work", source_options(&srv, wrong));
	evfn_redis_source *good =
		new_source(rt, "s", "work", source_options(&srv, right));
	WAIT_FOR(evfn_redis_source_status(none) == EVFN_EAUTH &&
	                 evfn_redis_source_status(bad) == EVFN_EAUTH,
	         5000);
	redisContext *c = connect_cli(&srv);
	freeReplyObject(redisCommand(c, "SELECT 1"));
	add_entries(c, "s", 0, 5);
	WAIT_FOR(evfn_redis_source_acked(good) == 5, 5000);
	ASSERT_EQ(evfn_redis_source_status(good), 0);
	evfn_redis_source_free(none);
	evfn_redis_source_free(bad);
	evfn_redis_source_free(good);
	stop_runtime(rt);
	assert_each_once(t, 5);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

/* A stream replaced by another type while the source reads it stops the
 * source at once, not after the reconnection cap (5 s here). */
static void
test_redis_source_notices_stream_replaced_promptly(void **state)
{
	(void)state;
	struct server srv = {0};
	redisContext *c = server_with_entries(&srv, PERSIST_NONE, 5);
	struct tally *t = calloc(1, sizeof(*t));
	evfn_rt *rt = start_runtime("work", tally_handler, t, NULL);
	evfn_redis_options *o = source_options(&srv, NULL);
	ASSERT_OK(evfn_redis_options_set_reconnect(o, 20, 5000));
	ASSERT_OK(evfn_redis_options_set_batch(o, 50, 10000));
	evfn_redis_source *src = new_source(rt, "s", "work", o);
	WAIT_FOR(evfn_redis_source_acked(src) == 5, 5000);
	freeReplyObject(redisCommand(c, "SET s not-a-stream"));
	WAIT_FOR(evfn_redis_source_status(src) == EVFN_EWRONGTYPE, 1500);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

/* A source that stops for good logs the server's own reason. */
static void
test_redis_source_logs_why_it_stopped(void **state)
{
	(void)state;
	struct server srv = {0};
	server_start(&srv, false, "s3cret");
	char wrong[200], nodb[200];
	snprintf(wrong, sizeof(wrong), "unix://:nope@%s", srv.sock);
	snprintf(nodb, sizeof(nodb), "unix://:s3cret@%s?db=9", srv.sock);
	static struct log_lines log = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct tally *t = calloc(1, sizeof(*t));
	evfn_rt *rt = start_runtime_logged("work", tally_handler, t, NULL,
	                                   &log);
	evfn_redis_source *bad =
		new_source(rt, "s", "work", source_options(&srv, wrong));
	evfn_redis_source *far =
		new_source(rt, "t", "work", source_options(&srv, nodb));
	WAIT_FOR(evfn_redis_source_status(bad) == EVFN_EAUTH &&
	                 evfn_redis_source_status(far) == EVFN_EURL,
	         5000);
	evfn_redis_source_free(bad);
	evfn_redis_source_free(far);
	stop_runtime(rt);
	ASSERT_EQ(log_count(&log, "redis source s: stopped: EVFN_EAUTH",
	                    "WRONGPASS"), 1);
	ASSERT_EQ(log_count(&log, "redis source t: stopped: EVFN_EURL",
	                    "DB index is out of range"), 1);
	ASSERT_EQ(log_count(&log, "stopped", "connection refused"), 0);
	free(t);
	server_kill(&srv);
}

/* A reconnection does not read the entries this process holds again:
 * their delivery count stays 1, and each runs once. */
static void
test_redis_source_reconnect_counts_no_delivery(void **state)
{
	(void)state;
	enum { N = 60 };
	struct server srv = {0};
	redisContext *c = server_with_entries(&srv, PERSIST_FSYNC_ALWAYS, N);
	struct tally *t = calloc(1, sizeof(*t));
	t->delay_ms = 20;
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_concurrency(fo, 1));
	evfn_rt *rt = start_runtime("work", tally_handler, t, fo);
	evfn_fn_options_free(fo);
	evfn_redis_options *o = source_options(&srv, NULL);
	ASSERT_OK(evfn_redis_options_set_max_in_flight(o, 30));
	ASSERT_OK(evfn_redis_options_set_claim(o, 3000, 100));
	evfn_redis_source *src = new_source(rt, "s", "work", o);
	WAIT_FOR(evfn_redis_source_held(src) == 30 &&
	                 atomic_load(&t->total) >= 2,
	         5000);
	redisFree(c);
	server_stop(&srv);
	WAIT_FOR(evfn_redis_source_status(src) == EVFN_ECONNREFUSED, 5000);
	server_start(&srv, true, NULL);
	c = connect_cli(&srv);
	WAIT_FOR(evfn_redis_source_status(src) == 0, 5000);
	long long most = 0;
	WAIT_FOR((most = max_ll(most, most_deliveries(c, "s", "g")),
	          evfn_redis_source_acked(src) >= N &&
	                  pending(c, "s", "g") == 0),
	         15000);
	ASSERT_EQ(most, 1);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	assert_each_once(t, N);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

/* A process that starts under the name of one that stopped takes over
 * its pending entries, counting one more delivery each, and runs each
 * once. */
static void
test_redis_source_takes_over_own_entries_once(void **state)
{
	(void)state;
	enum { N = 20 };
	struct server srv = {0};
	redisContext *c = server_with_entries(&srv, PERSIST_NONE, N);
	/* The first holds every entry in a paused function, then goes
	 * without running any. */
	struct tally *t = calloc(1, sizeof(*t));
	evfn_rt *rt = start_runtime("work", tally_handler, t, NULL);
	ASSERT_OK(evfn_pause(rt, "work"));
	evfn_redis_source *src =
		new_source(rt, "s", "work", source_options(&srv, NULL));
	WAIT_FOR(pending(c, "s", "g") == N, 5000);
	evfn_redis_source_free(src);
	ASSERT_OK(evfn_rt_drain(rt, 0, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
	ASSERT_EQ(atomic_load(&t->total), 0);
	ASSERT_EQ(most_deliveries(c, "s", "g"), 1);

	rt = start_runtime("work", tally_handler, t, NULL);
	src = new_source(rt, "s", "work", source_options(&srv, NULL));
	WAIT_FOR(evfn_redis_source_acked(src) == N, 5000);
	ASSERT_EQ(pending(c, "s", "g"), 0);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	assert_each_once(t, N);
	ASSERT_EQ(atomic_load(&t->redelivered[2]), N);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

/* Entries another consumer claims while this one holds them (as after
 * a stall) are its to end: failures here dead-letter nothing. */
static void
test_redis_source_lets_go_of_entries_claimed_away(void **state)
{
	(void)state;
	enum { N = 5 };
	struct server srv = {0};
	server_start(&srv, false, NULL);
	redisContext *c = connect_cli(&srv);
	for (int i = 0; i < N; i++)
		freeReplyObject(redisCommand(c, "XADD s * data fatal"));
	static struct log_lines log = {.mu = PTHREAD_MUTEX_INITIALIZER};
	evfn_rt *rt = start_runtime_logged("picky", picky_handler, NULL, NULL,
	                                   &log);
	ASSERT_OK(evfn_pause(rt, "picky"));
	evfn_redis_options *o = source_options(&srv, NULL);
	ASSERT_OK(evfn_redis_options_set_claim(o, 1500, 100));
	evfn_redis_source *src = new_source(rt, "s", "picky", o);
	WAIT_FOR(evfn_redis_source_held(src) == N, 5000);
	/* Refreshes every 500 ms find the entries gone to "thief". */
	redisReply *ids = redisCommand(c, "XPENDING s g - + 10");
	for (size_t i = 0; i < ids->elements; i++)
		freeReplyObject(redisCommand(c, "XCLAIM s g thief 0 %s FORCE "
		                             "JUSTID",
		                             ids->element[i]->element[0]->str));
	WAIT_FOR(log_count(&log, "claimed by another consumer", NULL) == N,
	         5000);
	/* The thief stays alive: it refreshes them too. */
	for (size_t i = 0; i < ids->elements; i++)
		freeReplyObject(redisCommand(c, "XCLAIM s g thief 0 %s JUSTID",
		                             ids->element[i]->element[0]->str));
	ASSERT_OK(evfn_resume(rt, "picky"));
	WAIT_FOR(evfn_redis_source_held(src) == 0, 1000);
	ASSERT_EQ(xlen(c, "s:dead"), 0);
	redisReply *p = redisCommand(c, "XPENDING s g");
	ASSERT_EQ(p->element[0]->integer, N);
	assert_string_equal(p->element[3]->element[0]->element[0]->str,
	                    "thief");
	freeReplyObject(p);
	freeReplyObject(ids);
	evfn_redis_source_free(src);
	stop_runtime(rt);
	redisFree(c);
	server_kill(&srv);
}

/* ---- sink ---------------------------------------------------------------- */

static void
test_redis_sink_appends_events(void **state)
{
	(void)state;
	struct server srv = {0};
	server_start(&srv, false, NULL);
	struct tally *t = calloc(1, sizeof(*t));
	evfn_rt *rt = start_runtime("work", tally_handler, t, NULL);
	evfn_redis_options *o = source_options(&srv, NULL);
	ASSERT_OK(evfn_redis_options_set_maxlen(o, 10));
	evfn_redis_sink *sink;
	ASSERT_OK(evfn_redis_sink_new(&sink, rt, "out", o));
	evfn_redis_options_free(o);
	ASSERT_OK(evfn_redis_sink_register(sink, "stream:out", NULL));
	ASSERT_RC(evfn_redis_sink_register(sink, "stream:out", NULL),
	          EVFN_EEXIST);

	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "orders.created", "hello", 5));
	ASSERT_OK(evfn_event_set_subject(ev, "o-1"));
	ASSERT_OK(evfn_event_set_extension(ev, "tenant", "acme"));
	ASSERT_OK(evfn_event_set_time(ev, INT64_C(1714550400500000000)));
	ASSERT_OK(evfn_redis_xadd(sink, ev));
	evfn_event_unref(ev);
	/* Through the function: succeeds once Redis confirmed. */
	ASSERT_OK(evfn_invoke(rt, "stream:out", "second", 6, NULL, NULL));
	ASSERT_EQ(evfn_redis_sink_pending(sink), 0);

	redisContext *c = connect_cli(&srv);
	redisReply *r = redisCommand(c, "XRANGE out - +");
	assert_int_equal(r->elements, 2);
	const redisReply *f = r->element[0]->element[1];
	assert_string_equal(field_of(f, "data"), "hello");
	assert_string_equal(field_of(f, "type"), "orders.created");
	assert_string_equal(field_of(f, "subject"), "o-1");
	assert_string_equal(field_of(f, "tenant"), "acme");
	assert_string_equal(field_of(f, "time"),
	                    "2024-05-01T08:00:00.500000000Z");
	assert_string_equal(field_of(r->element[1]->element[1], "data"),
	                    "second");
	freeReplyObject(r);

	/* MAXLEN ~ keeps the stream near its bound. */
	for (int i = 0; i < 300; i++)
		ASSERT_OK(evfn_invoke_async(rt, "stream:out", "x", 1, NULL));
	WAIT_FOR(stat_of(rt, "stream:out", EVFN_STAT_SUCCEEDED) == 301, 10000);
	assert_true(xlen(c, "out") < 300);

	/* Read back through a source: the sink's fields map back. */
	evfn_redis_sink_free(sink);
	ASSERT_RC(evfn_invoke(rt, "stream:out", "late", 4, NULL, NULL),
	          EVFN_EFAILED);
	stop_runtime(rt);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

static void
test_redis_sink_waits_for_the_server(void **state)
{
	(void)state;
	struct server srv = {0};
	srv.dir = new_dir();
	snprintf(srv.sock, sizeof(srv.sock), "%s/r.sock", srv.dir);
	snprintf(srv.url, sizeof(srv.url), "unix://%s", srv.sock);
	struct tally *t = calloc(1, sizeof(*t));
	evfn_rt *rt = start_runtime("work", tally_handler, t, NULL);
	evfn_redis_sink *sink;
	evfn_redis_options *o = source_options(&srv, NULL);
	ASSERT_OK(evfn_redis_sink_new(&sink, rt, "out", o));
	evfn_redis_options_free(o);
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "t", "x", 1));
	for (int i = 0; i < 20; i++)
		ASSERT_OK(evfn_redis_xadd(sink, ev));
	evfn_event_unref(ev);
	WAIT_FOR(evfn_redis_sink_status(sink) == EVFN_ECONNREFUSED, 5000);
	ASSERT_EQ(evfn_redis_sink_pending(sink), 20);
	server_start(&srv, false, NULL);
	WAIT_FOR(evfn_redis_sink_pending(sink) == 0, 5000);
	redisContext *c = connect_cli(&srv);
	ASSERT_EQ(xlen(c, "out"), 20);
	ASSERT_EQ(evfn_redis_sink_status(sink), 0);
	evfn_redis_sink_free(sink);
	stop_runtime(rt);
	redisFree(c);
	free(t);
	server_kill(&srv);
}

/* ---- several consumer processes ----------------------------------------- */

static void
run_three_consumers(bool kill_one)
{
	enum { N = 900 };
	struct server srv = {0};
	redisContext *c = server_with_entries(&srv, PERSIST_NONE, N);
	struct consumer k[3];
	struct runs r;
	runs_init(&r, N);
	const char *names[] = {"c1", "c2", "c3"};
	struct consumer_spec spec = {.delay_ms = kill_one ? 3 : 0};
	for (int i = 0; i < 3; i++)
		consumer_start(&k[i], i, &srv, "s", names[i], &spec);
	int64_t until = test_now_ms() + 20000;
	while (succeeded_count(&r) < N || pending(c, "s", "g") != 0) {
		if (test_now_ms() > until)
			fail_msg("%d of %d succeeded, %lld pending",
			         succeeded_count(&r), N, pending(c, "s", "g"));
		consumers_poll(k, 3, &r, 10);
		int mine = 0;
		for (int e = 0; e < N; e++)
			mine += runs_by(&r, e, 0) > 0;
		if (kill_one && !k[0].killed && mine >= 30)
			consumer_kill(&k[0], &r);
	}
	/* A duplicate only where the killed consumer handled the entry and
	 * could not acknowledge it. */
	for (int e = 0; e < N; e++)
		if (r.ok[e] > 1 && !(k[0].killed && runs_ok_by(&r, e, 0)))
			fail_msg("entry %d handled %d times", e, r.ok[e]);
	ASSERT_EQ(k[0].killed, kill_one);
	consumers_stop(k, 3, &r);
	runs_free(&r);
	redisFree(c);
	server_kill(&srv);
}

static void
test_redis_consumers_share_a_group(void **state)
{
	(void)state;
	run_three_consumers(false);
}

static void
test_redis_killed_consumer_entries_are_reclaimed(void **state)
{
	(void)state;
	run_three_consumers(true);
}

/* One benchmark round: n entries XADDed in chunks of 1000 while
 * nconsumers consumer processes run them; with kill_one, c1 is SIGKILLed
 * once a third of the entries succeeded, and the others reclaim what it
 * held. Prints the rate from the first XADD to the last acknowledgement. */
static void
bench_round(const struct server *srv, redisContext *c, int n, int nconsumers,
            bool kill_one)
{
	freeReplyObject(redisCommand(c, "DEL s"));
	freeReplyObject(redisCommand(c, "XGROUP CREATE s g $ MKSTREAM"));
	struct runs r;
	runs_init(&r, n);
	struct consumer ks[3];
	const char *names[] = {"c1", "c2", "c3"};
	struct consumer_spec spec = {.batch = 256, .max_in_flight = 512};
	for (int i = 0; i < nconsumers; i++)
		consumer_start(&ks[i], i, srv, "s", names[i], &spec);
	int64_t t0 = test_now_ms();
	for (int i = 0; i < n; i += 1000) {
		add_entries(c, "s", i, n - i < 1000 ? n - i : 1000);
		consumers_poll(ks, nconsumers, &r, 0);
	}
	int64_t t1 = test_now_ms();
	while (succeeded_count(&r) < n || pending(c, "s", "g") != 0) {
		consumers_poll(ks, nconsumers, &r, 10);
		if (kill_one && !ks[0].killed && succeeded_count(&r) >= n / 3)
			consumer_kill(&ks[0], &r);
	}
	int64_t t2 = test_now_ms();
	printf("%d consumer(s)%s: %d entries, XADD done after %lld ms, "
	       "all acknowledged after %lld ms: %.0f entries/s\n", nconsumers,
	       kill_one ? ", one killed" : "", n, (long long)(t1 - t0),
	       (long long)(t2 - t0),
	       n * 1000.0 / (double)(t2 - t0 ? t2 - t0 : 1));
	fflush(stdout);
	consumers_stop(ks, nconsumers, NULL);
	runs_free(&r);
}

/* --bench N: entries per second from XADD to acknowledged handler with 1
 * and 3 consumer processes, and with 3 of which one is SIGKILLed midway,
 * beside redis-benchmark's XADD rate on the same server. A measuring tool
 * run by hand and by bench/run.py, not a test. */
static int
bench_main(int n)
{
	if (n < 1 || n > 10000000)
		return 2;
	static struct server srv;
	server_start(&srv, false, NULL);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "redis-benchmark -s %s -n 200000 -q XADD "
	         "bench '*' f v | tr '\\r' '\\n' | tail -1", srv.sock);
	printf("redis-benchmark: ");
	fflush(stdout);
	if (system(cmd) != 0)
		return 3;
	redisContext *c = connect_cli(&srv);
	bench_round(&srv, c, n, 1, false);
	bench_round(&srv, c, n, 3, false);
	bench_round(&srv, c, n, 3, true);
	redisFree(c);
	server_kill(&srv);
	cleanup_children();
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "--consumer"))
		return consumer_main(argc, argv);
	if (argc == 3 && !strcmp(argv[1], "--bench"))
		return bench_main(atoi(argv[2]));
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		TEST(test_redis_url_grammar),
		RTEST(test_redis_options_ranges),
		RTEST(test_redis_source_handles_each_entry_once),
		RTEST(test_redis_source_read_is_one_admission),
		RTEST(test_redis_source_maps_fields_to_attributes),
		RTEST(test_redis_source_dead_letters_failures),
		RTEST(test_redis_source_full_queue_leaves_entries_pending),
		RTEST(test_redis_source_survives_server_restart),
		RTEST(test_redis_source_wrong_type_stops),
		RTEST(test_redis_source_auth_failure_is_eauth),
		RTEST(test_redis_source_notices_stream_replaced_promptly),
		RTEST(test_redis_source_logs_why_it_stopped),
		RTEST(test_redis_source_reconnect_counts_no_delivery),
		RTEST(test_redis_source_takes_over_own_entries_once),
		RTEST(test_redis_source_lets_go_of_entries_claimed_away),
		RTEST(test_redis_sink_appends_events),
		RTEST(test_redis_sink_waits_for_the_server),
		RTEST(test_redis_consumers_share_a_group),
		RTEST(test_redis_killed_consumer_entries_are_reclaimed),
	};
	return evfn_test_main("redis", tests);
}
