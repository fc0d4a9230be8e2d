/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for the Redis Streams source, with real redis-server
 * processes and real consumer processes (this binary re-executed with
 * --consumer) that the cases start, stop, SIGKILL and restart themselves:
 * a consumer whose function refuses entries (a tiny queue), a slow
 * consumer whose backlog outlasts the claim idle time beside an idle
 * peer, and a chaos run with an outside producer (redis-py), handlers
 * that fail, retry and overrun their deadline, consumers SIGKILLed and
 * replaced, and the server restarted on its append-only file. Each case
 * checks every entry: it succeeded exactly once unless a SIGKILL explains
 * a second run, no two live consumers ran it, it was dead-lettered only
 * after `attempts` real failures, nothing was lost, and the group's
 * pending list is empty at the end.
 *
 * --soak ROUNDS runs the chaos case at the scale of issue 18 (20,000
 * entries at 1,000/s, kills at 5 and 15 s, a restart at 10 s) ROUNDS
 * times; it takes about half a minute a round.
 */
#include "redis-harness.h"

/* ---- a consumer that refuses entries ------------------------------------ */

/* Entries the function refused stay held by this consumer without being
 * read again, so without counting deliveries: a consumer with a queue of
 * 2 is refused many times, then stops gracefully and releases what it
 * did not run (no delivery counted); its peer runs every entry once and
 * dead-letters none. */
static void
test_redis_faults_refusals_count_no_delivery(void **state)
{
	(void)state;
	enum { N = 300 };
	struct server srv = {0};
	redisContext *c = server_with_entries(&srv, PERSIST_NONE, N);
	struct runs r;
	runs_init(&r, N);
	struct consumer k[2];
	struct consumer_spec tiny = {.queue_capacity = 2, .concurrency = 1,
	                             .delay_ms = 2, .claim_idle_ms = 500,
	                             .batch = 20, .max_in_flight = 40};
	consumer_start(&k[0], 0, &srv, "s", "a", &tiny);
	int64_t until = test_now_ms() + 20000;
	while (succeeded_count(&r) < 100) {
		if (test_now_ms() > until)
			fail_msg("a ran %d entries", succeeded_count(&r));
		consumers_poll(k, 1, &r, 10);
	}
	/* A stops gracefully: what it ran is acknowledged, what it holds is
	 * released, with no delivery counted. */
	consumers_stop(k, 1, &r);
	redisReply *p = redisCommand(c, "XPENDING s g - + %d", N);
	assert_non_null(p);
	for (size_t i = 0; i < p->elements; i++)
		if (p->element[i]->element[3]->integer != 0)
			fail_msg("entry %s shows %lld deliveries",
			         p->element[i]->element[0]->str,
			         p->element[i]->element[3]->integer);
	freeReplyObject(p);

	struct consumer_spec plain = {.claim_idle_ms = 500};
	consumer_start(&k[1], 1, &srv, "s", "b", &plain);
	until = test_now_ms() + 20000;
	while (succeeded_count(&r) < N || pending(c, "s", "g") != 0) {
		if (test_now_ms() > until)
			fail_msg("%d of %d succeeded, %lld pending, %lld dead",
			         succeeded_count(&r), N, pending(c, "s", "g"),
			         xlen(c, "s:dead"));
		consumers_poll(&k[1], 1, &r, 10);
	}
	consumers_stop(&k[1], 1, &r);
	ASSERT_EQ(xlen(c, "s:dead"), 0);
	for (int e = 0; e < N; e++)
		if (r.ok[e] != 1 || r.failed[e] != 0)
			fail_msg("entry %d: %d runs succeeded, %d failed", e,
			         r.ok[e], r.failed[e]);
	runs_free(&r);
	redisFree(c);
	server_kill(&srv);
}

/* ---- a slow consumer beside an idle one --------------------------------- */

/* A holds a backlog three times longer than the claim idle time; B, idle
 * beside it, claims nothing that A still holds, so no entry runs on
 * both. */
static void
test_redis_faults_slow_consumer_keeps_its_backlog(void **state)
{
	(void)state;
	enum { N = 120 };
	struct server srv = {0};
	redisContext *c = server_with_entries(&srv, PERSIST_NONE, N);
	struct runs r;
	runs_init(&r, N);
	struct consumer k[2];
	struct consumer_spec slow = {.concurrency = 1, .delay_ms = 25,
	                             .timeout_ms = 1000, .claim_idle_ms = 1000,
	                             .batch = 50, .max_in_flight = 200};
	struct consumer_spec idle = slow;
	idle.delay_ms = 0;
	consumer_start(&k[0], 0, &srv, "s", "a", &slow);
	/* B starts once A holds every entry. */
	int64_t until = test_now_ms() + 10000;
	while (pending(c, "s", "g") + succeeded_count(&r) < N) {
		if (test_now_ms() > until)
			fail_msg("a holds %lld", pending(c, "s", "g"));
		consumers_poll(k, 1, &r, 10);
	}
	consumer_start(&k[1], 1, &srv, "s", "b", &idle);
	until = test_now_ms() + 30000;
	while (succeeded_count(&r) < N || pending(c, "s", "g") != 0) {
		if (test_now_ms() > until)
			fail_msg("%d of %d succeeded", succeeded_count(&r), N);
		consumers_poll(k, 2, &r, 10);
	}
	consumers_stop(k, 2, &r);
	int both = 0;
	for (int e = 0; e < N; e++) {
		both += runs_by(&r, e, 0) && runs_by(&r, e, 1);
		if (r.ok[e] != 1)
			fail_msg("entry %d ran %d times", e, r.ok[e]);
	}
	ASSERT_EQ(both, 0);
	runs_free(&r);
	redisFree(c);
	server_kill(&srv);
}

/* ---- chaos ---------------------------------------------------------------- */

/* The outside producer: redis-py adds entries data=0..n-1 at a steady
 * rate, with explicit ids so that an XADD repeated after a lost reply is
 * refused rather than added twice. */
static const char producer_py[] =
	"import sys, time, redis\n"
	"sock, stream, n, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), "
	"float(sys.argv[4])\n"
	"r = redis.Redis(unix_socket_path=sock)\n"
	"t0 = time.monotonic()\n"
	"i = 0\n"
	"while i < n:\n"
	"    wait = t0 + i / rate - time.monotonic()\n"
	"    if wait > 0:\n"
	"        time.sleep(wait)\n"
	"    try:\n"
	"        r.xadd(stream, {'data': str(i)}, id='%d-1' % (i + 1))\n"
	"        i += 1\n"
	"    except redis.exceptions.ConnectionError:\n"
	"        time.sleep(0.01)\n"
	"    except redis.exceptions.ResponseError as e:\n"
	"        if 'equal or smaller' not in str(e):\n"
	"            raise\n"
	"        i += 1\n";

static pid_t
producer_start(const struct server *s, int n, int rate)
{
	char ns[16], rs[16];
	snprintf(ns, sizeof(ns), "%d", n);
	snprintf(rs, sizeof(rs), "%d", rate);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/usr/bin/python3", "python3", "-c", producer_py, s->sock,
		      "s", ns, rs, (char *)NULL);
		_exit(127);
	}
	track(pid);
	return pid;
}

/* The scale of a chaos run; times are from the producer's start. */
struct chaos {
	int entries, rate;
	int claim_idle_ms, timeout_ms, attempts;
	int kill_ms, restart_ms, kill2_ms;
	int limit_ms;
};

static const struct chaos chaos_test = {
	.entries = 3000, .rate = 1500, .claim_idle_ms = 1000,
	.timeout_ms = 300, .attempts = 3, .kill_ms = 600,
	.restart_ms = 1200, .kill2_ms = 1800, .limit_ms = 30000,
};

static const struct chaos chaos_soak = {
	.entries = 20000, .rate = 1000, .claim_idle_ms = 2000,
	.timeout_ms = 500, .attempts = 3, .kill_ms = 5000,
	.restart_ms = 10000, .kill2_ms = 15000, .limit_ms = 90000,
};

static int soak_rounds;

/* Fail kinds end in the dead-letter stream; the others succeed. */
static bool
must_fail(int e)
{
	return chaos_kind(e) == CHAOS_ALWAYS_RETRY || chaos_kind(e) == CHAOS_FAIL;
}

/* Checks the dead letters: one per failing entry (two only when the
 * consumer that wrote the first was killed before acknowledging), each
 * after as many failed runs as its reason says. */
static void
check_dead_letters(redisContext *c, const struct chaos *ch,
                   const struct runs *r, const struct consumer *k, int nk)
{
	int *dead = calloc((size_t)ch->entries, sizeof(int));
	redisReply *d = redisCommand(c, "XRANGE s:dead - +");
	assert_true(d && d->type == REDIS_REPLY_ARRAY);
	for (size_t i = 0; i < d->elements; i++) {
		const redisReply *f = d->element[i]->element[1];
		int e = atoi(field_of(f, "data"));
		const char *reason = field_of(f, "reason");
		const char *by = field_of(f, "consumer");
		if (e < 0 || e >= ch->entries || !must_fail(e))
			fail_msg("entry %d dead-lettered (%s by %s, %d runs "
			         "succeeded)", e, reason, by, r->ok[e]);
		dead[e]++;
		if (chaos_kind(e) == CHAOS_ALWAYS_RETRY) {
			assert_string_equal(reason, "EVFN_EEXHAUSTED");
			if (r->failed[e] < ch->attempts)
				fail_msg("entry %d exhausted after %d failed "
				         "runs", e, r->failed[e]);
		} else {
			assert_string_equal(reason, "EVFN_EFAILED");
			ASSERT_EQ(r->failed[e] >= 1, 1);
		}
	}
	freeReplyObject(d);
	for (int e = 0; e < ch->entries; e++) {
		if (must_fail(e) && !dead[e])
			fail_msg("entry %d (failing) not dead-lettered", e);
		if (dead[e] > 1) {
			/* Only a consumer killed after writing it and
			 * before acknowledging explains a second. */
			int killed_ran = 0;
			for (int i = 0; i < nk; i++)
				killed_ran += k[i].killed && runs_by(r, e, i);
			if (!killed_ran)
				fail_msg("entry %d dead-lettered %d times", e,
				         dead[e]);
		}
	}
	free(dead);
}

/* Checks the runs of each entry that must succeed: at least one success;
 * at most one on consumers that were never killed; none on two live
 * consumers; and no failing entry succeeded. */
static void
check_runs(const struct chaos *ch, const struct runs *r,
           const struct consumer *k, int nk)
{
	for (int e = 0; e < ch->entries; e++) {
		int live_ok = 0, live_ran = 0;
		for (int i = 0; i < nk; i++) {
			if (runs_ok_by(r, e, i) > 1)
				fail_msg("entry %d succeeded %d times on "
				         "consumer %d", e, runs_ok_by(r, e, i), i);
			if (k[i].killed)
				continue;
			live_ok += runs_ok_by(r, e, i);
			live_ran += runs_by(r, e, i) > 0;
		}
		if (must_fail(e)) {
			ASSERT_EQ(r->ok[e], 0);
			continue;
		}
		if (r->ok[e] < 1)
			fail_msg("entry %d lost", e);
		if (live_ok > 1)
			fail_msg("entry %d succeeded %d times on live "
			         "consumers", e, live_ok);
		if (live_ran > 1)
			fail_msg("entry %d ran on %d live consumers", e,
			         live_ran);
	}
}

/* One chaos run: three consumers on a server with an append-only file;
 * c0 is SIGKILLed at kill_ms and replaced by c3, the server restarted
 * (SIGTERM) at restart_ms, c1 SIGKILLed at kill2_ms and not replaced. */
static void
chaos_round(const struct chaos *ch)
{
	struct server srv = {0};
	server_start_with(&srv, PERSIST_AOF, NULL);
	struct runs r;
	runs_init(&r, ch->entries);
	struct consumer k[4];
	struct consumer_spec spec = {
		.chaos = 1, .timeout_ms = ch->timeout_ms,
		.attempts = ch->attempts, .claim_idle_ms = ch->claim_idle_ms,
		.claim_interval_ms = 100, .queue_capacity = 8, .batch = 10,
		.max_in_flight = 40};
	const char *names[] = {"c0", "c1", "c2", "c3"};
	int nk = 3;
	for (int i = 0; i < nk; i++)
		consumer_start(&k[i], i, &srv, "s", names[i], &spec);
	int64_t t0 = test_now_ms();
	pid_t producer = producer_start(&srv, ch->entries, ch->rate);
	int expect_ok = 0;
	for (int e = 0; e < ch->entries; e++)
		expect_ok += !must_fail(e);
	bool restarted = false, produced = false;
	redisContext *c = NULL;
	for (;;) {
		int64_t t = test_now_ms() - t0;
		if (t > ch->limit_ms)
			fail_msg("after %lld ms: %d of %d succeeded, %lld "
			         "pending, %lld dead letters", (long long)t,
			         succeeded_count(&r), expect_ok,
			         c ? pending(c, "s", "g") : -1,
			         c ? xlen(c, "s:dead") : -1);
		consumers_poll(k, nk, &r, 10);
		if (!k[0].killed && t >= ch->kill_ms) {
			consumer_kill(&k[0], &r);
			consumer_start(&k[nk], nk, &srv, "s", names[nk], &spec);
			nk++;
		}
		if (!restarted && t >= ch->restart_ms) {
			if (c)
				redisFree(c);
			server_stop(&srv);
			server_start_with(&srv, PERSIST_AOF, NULL);
			c = connect_cli(&srv);
			restarted = true;
		}
		if (!k[1].killed && t >= ch->kill2_ms)
			consumer_kill(&k[1], &r);
		if (!produced) {
			int st;
			pid_t w = waitpid(producer, &st, WNOHANG);
			if (w == producer) {
				untrack(producer);
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
					fail_msg("producer exited with %d", st);
				produced = true;
			}
		}
		if (!c)
			c = connect_cli(&srv);
		/* Every entry ended one way or the other (the checks below
		 * tell whether it was the right way). */
		if (produced && restarted && k[1].killed &&
		    succeeded_count(&r) + xlen(c, "s:dead") >= ch->entries &&
		    pending(c, "s", "g") == 0)
			break;
	}
	consumers_stop(k, nk, &r);
	ASSERT_EQ(xlen(c, "s"), ch->entries);
	ASSERT_EQ(pending(c, "s", "g"), 0);
	check_dead_letters(c, ch, &r, k, nk);
	check_runs(ch, &r, k, nk);
	if (soak_rounds)
		printf("# %lld ms: %d succeeded, %lld dead letters\n",
		       (long long)(test_now_ms() - t0), succeeded_count(&r),
		       xlen(c, "s:dead"));
	redisFree(c);
	runs_free(&r);
	server_kill(&srv);
	cleanup_children();
}

static void
test_redis_faults_chaos(void **state)
{
	(void)state;
	if (!soak_rounds) {
		chaos_round(&chaos_test);
		return;
	}
	for (int i = 0; i < soak_rounds; i++)
		chaos_round(&chaos_soak);
}

int
main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "--consumer"))
		return consumer_main(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && !strcmp(argv[1], "--soak")) {
		soak_rounds = atoi(argv[2]);
		const struct CMUnitTest soak[] = {RTEST(test_redis_faults_chaos)};
		return evfn_test_main("redis-soak", soak);
	}
	const struct CMUnitTest tests[] = {
		RTEST(test_redis_faults_refusals_count_no_delivery),
		RTEST(test_redis_faults_slow_consumer_keeps_its_backlog),
		RTEST(test_redis_faults_chaos),
	};
	return evfn_test_main("redis-faults", tests);
}
