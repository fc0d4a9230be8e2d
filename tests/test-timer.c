/* SPDX-License-Identifier: MIT */
/*
 * The schedule trigger: @every fires on its anchored grid with the
 * scheduled instant as the event time, at() fires once at its instant,
 * the missed-fire policies with the loop really blocked by a loop
 * handler, the catch-up arithmetic on fixed clocks, refusals and drain
 * counted, freeing from inside a loop handler, and bad expressions, zones
 * and targets.
 */
#include <time.h>

#include "sources/trigger-internal.h"
#include "trigger-harness.h"

#define MS INT64_C(1000000)

static void
test_timer_every_fires_on_anchored_grid(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	int64_t before = test_wall_ns();
	evfn_trigger *t;
	ASSERT_OK(
	    evfn_timer_add(rt, " @every 50ms ", NULL, "test.tick", NULL, &t));
	WAIT_FOR(rec_count() >= 5, 5000);
	int64_t first = evfn_event_time(rec_event(0));
	assert_true(first >= before + 50 * MS);
	for (int i = 0; i < 5; i++) {
		const evfn_event *ev = rec_event(i);
		ASSERT_STR(evfn_event_type(ev), "test.tick");
		ASSERT_STR(evfn_event_source(ev), "evfn/schedule");
		ASSERT_STR(evfn_event_subject(ev), "@every 50ms");
		ASSERT_STR(evfn_event_extension(ev, "missed"), NULL);
		int64_t time = evfn_event_time(ev);
		ASSERT_EQ((time - first) % (50 * MS), 0);
		if (i > 0)
			assert_true(time > evfn_event_time(rec_event(i - 1)));
		/* Never before the instant. */
		assert_true(rec.seen_ns[i] >= time);
	}
	int64_t next;
	ASSERT_EQ(evfn_timer_next(t, &next), 1);
	ASSERT_EQ((next - first) % (50 * MS), 0);
	/* Counted when admission returns, which may be after the handler
	 * ran. */
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_FIRED) >= 5, 5000);
	ASSERT_EQ(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_REFUSED), 0);
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
}

static void
test_timer_named_to_function(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_function(o, "rec"));
	ASSERT_OK(evfn_trigger_options_set_name(o, "heartbeat"));
	evfn_trigger *t;
	ASSERT_OK(
	    evfn_timer_add(rt, "@every 20ms", "Europe/Berlin", NULL, o, &t));
	evfn_trigger_options_free(o);
	WAIT_FOR(rec_count() >= 2, 5000);
	const evfn_event *ev = rec_event(1);
	ASSERT_STR(evfn_event_type(ev), "evfn.schedule");
	ASSERT_STR(evfn_event_source(ev), "evfn/schedule/heartbeat");
	ASSERT_STR(evfn_event_subject(ev), "heartbeat");
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
}

/* at() takes whole seconds: the next second at least 300 ms away. */
static void
test_timer_at_fires_once_at_its_instant(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	int64_t now = test_wall_ns();
	time_t sec = (time_t)(now / 1000000000) + 1;
	if ((int64_t)sec * 1000000000 - now < 300 * MS)
		sec++;
	struct tm tm;
	gmtime_r(&sec, &tm);
	char expr[64];
	snprintf(expr, sizeof(expr), "at(%04d-%02d-%02dT%02d:%02d:%02d)",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec);
	evfn_trigger *t;
	ASSERT_OK(evfn_timer_add(rt, expr, "UTC", NULL, NULL, &t));
	int64_t next;
	ASSERT_EQ(evfn_timer_next(t, &next), 1);
	ASSERT_EQ(next, (int64_t)sec * 1000000000);
	/* The 0.1 name answers as the new one (deprecated.h). */
	int64_t old_next = 0;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	ASSERT_EQ(evfn_timer_get_next(t, &old_next), 1);
#pragma GCC diagnostic pop
	ASSERT_EQ(old_next, next);
	WAIT_FOR(rec_count() == 1, 5000);
	const evfn_event *ev = rec_event(0);
	ASSERT_EQ(evfn_event_time(ev), (int64_t)sec * 1000000000);
	assert_true(rec.seen_ns[0] >= (int64_t)sec * 1000000000);
	ASSERT_STR(evfn_event_subject(ev), expr);
	ASSERT_EQ(evfn_timer_next(t, &next), 0);
	ASSERT_EQ(next, INT64_MAX);
	/* Counted when admission returns, which may be after the handler
	 * ran. */
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_FIRED) == 1, 5000);
	/* Logged after the fire is counted, on the loop thread. */
	WAIT_FOR(test_log_contains("no further fire times"), 5000);
	evfn_trigger_free(t);
	ASSERT_EQ(rec_count(), 1);
	trigger_runtime_free(rt);
}

static void
test_timer_at_in_the_past_never_fires(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger *t;
	ASSERT_OK(evfn_timer_add(rt, "at(2001-02-03T04:05:06)", NULL, NULL,
	                         NULL, &t));
	int64_t next;
	ASSERT_EQ(evfn_timer_next(t, &next), 0);
	assert_true(test_log_contains("never fires"));
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
}

/* ---- missed fires with the loop really blocked -------------------------- */

#define BLOCK_MS 500
#define EVERY_MS 100

static _Atomic int64_t block_start, block_end;

static int
block_loop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)ev;
	(void)userdata;
	atomic_store(&block_start, test_wall_ns());
	test_sleep_ms(BLOCK_MS);
	atomic_store(&block_end, test_wall_ns());
	return EVFN_OK;
}

static int
events_after(int64_t when)
{
	int n = 0;
	for (int i = 0; i < rec_count() && i < REC_MAX; i++)
		if (evfn_event_time(rec_event(i)) > when)
			n++;
	return n;
}

/* Runs an @every 100ms schedule, blocks the loop thread for 500 ms with
 * a loop handler, and waits for two fires after the block. */
static evfn_rt *
run_blocked_schedule(evfn_missed_policy policy, evfn_trigger **out)
{
	atomic_store(&block_start, 0);
	atomic_store(&block_end, 0);
	evfn_rt *rt = trigger_runtime(true);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP));
	ASSERT_OK(evfn_fn_options_set_timeout_ms(fo, 10000));
	ASSERT_OK(evfn_register(rt, "block", block_loop, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_missed(o, policy));
	ASSERT_OK(
	    evfn_timer_add(rt, "@every 100ms", NULL, "test.tick", o, out));
	evfn_trigger_options_free(o);
	WAIT_FOR(rec_count() >= 2, 5000);
	ASSERT_OK(evfn_invoke_async(rt, "block", NULL, 0, NULL));
	WAIT_FOR(atomic_load(&block_end) != 0, 5000);
	WAIT_FOR(events_after(atomic_load(&block_end)) >= 2, 5000);
	return rt;
}

/* What holds whatever the box's load: every fire is on the grid, and no
 * instant inside the block got an event before the block ended. */
static void
assert_grid_and_gap(void)
{
	int64_t start = atomic_load(&block_start);
	int64_t end = atomic_load(&block_end);
	int64_t first = evfn_event_time(rec_event(0));
	for (int i = 0; i < rec_count(); i++) {
		int64_t time = evfn_event_time(rec_event(i));
		ASSERT_EQ((time - first) % (EVERY_MS * MS), 0);
		if (time > start && time <= end - EVERY_MS * MS)
			fail_msg("event %d at %lld ms into a %d ms block", i,
			         (long long)((time - start) / MS), BLOCK_MS);
	}
}

static void
test_timer_missed_fire_once(void **state)
{
	(void)state;
	evfn_trigger *t;
	evfn_rt *rt = run_blocked_schedule(EVFN_MISSED_FIRE_ONCE, &t);
	uint64_t missed = evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_MISSED);
	evfn_trigger_free(t);
	assert_grid_and_gap();
	int64_t end = atomic_load(&block_end);
	int catch_up = 0;
	uint64_t folded = 0;
	for (int i = 0; i < rec_count(); i++) {
		const evfn_event *ev = rec_event(i);
		const char *m = evfn_event_extension(ev, "missed");
		if (!m)
			continue;
		folded += strtoull(m, NULL, 10);
		/* The block misses 4 or 5 instants; a loaded box may add a
		 * late fire of its own, but not one that missed 3. */
		if (strtoull(m, NULL, 10) >= 3) {
			catch_up++;
			int64_t time = evfn_event_time(ev);
			assert_true(time > end - EVERY_MS * MS);
			assert_true(time <= rec.seen_ns[i]);
		}
	}
	ASSERT_EQ(catch_up, 1);
	ASSERT_EQ(missed, folded);
	/* Logged after the count is bumped, maybe on another thread. */
	WAIT_FOR(test_log_contains("the latest fires once"), 5000);
	trigger_runtime_free(rt);
}

static void
test_timer_missed_skip(void **state)
{
	(void)state;
	evfn_trigger *t;
	evfn_rt *rt = run_blocked_schedule(EVFN_MISSED_SKIP, &t);
	uint64_t missed = evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_MISSED);
	evfn_trigger_free(t);
	assert_grid_and_gap();
	int64_t start = atomic_load(&block_start);
	int64_t end = atomic_load(&block_end);
	for (int i = 0; i < rec_count(); i++) {
		const evfn_event *ev = rec_event(i);
		ASSERT_STR(evfn_event_extension(ev, "missed"), NULL);
		int64_t time = evfn_event_time(ev);
		if (time > start && time <= end)
			fail_msg("event %d at %lld ms into the block", i,
			         (long long)((time - start) / MS));
	}
	assert_true(missed >= 3);
	WAIT_FOR(test_log_contains("skipped"), 5000);
	trigger_runtime_free(rt);
}

/* ---- the catch-up arithmetic on fixed clocks ----------------------------- */

static evfn_schedule *
parse(const char *expr)
{
	evfn_schedule *s;
	ASSERT_OK(evfn_schedule_parse(expr, NULL, &s, NULL, NULL, 0));
	return s;
}

static void
test_timer_plan_interval(void **state)
{
	(void)state;
	evfn_schedule *s = parse("@every 50ms");
	const int64_t anchor = INT64_C(1700000000) * 1000000000;
	const int64_t due = anchor + 50 * MS;
	struct evfn__timer_plan p;

	/* On time (within the tolerance): fires, nothing missed. */
	evfn__timer_plan(s, anchor, due, due + 1 * MS, EVFN_MISSED_SKIP,
	                 1000 * MS, &p);
	assert_true(p.fire);
	ASSERT_EQ(p.missed, 0);
	ASSERT_EQ(p.latest_ns, due);
	assert_true(p.has_next);
	ASSERT_EQ(p.next_ns, due + 50 * MS);

	/* One instant, later than the tolerance. */
	evfn__timer_plan(s, anchor, due, due + 1 * MS, EVFN_MISSED_FIRE_ONCE, 0,
	                 &p);
	assert_true(p.fire);
	ASSERT_EQ(p.missed, 0);
	evfn__timer_plan(s, anchor, due, due + 1 * MS, EVFN_MISSED_SKIP, 0, &p);
	assert_false(p.fire);
	ASSERT_EQ(p.missed, 1);
	ASSERT_EQ(p.next_ns, due + 50 * MS);

	/* Seven instants passed (due .. due + 300 ms). */
	evfn__timer_plan(s, anchor, due, due + 325 * MS, EVFN_MISSED_FIRE_ONCE,
	                 1000 * MS, &p);
	assert_true(p.fire);
	ASSERT_EQ(p.latest_ns, due + 300 * MS);
	ASSERT_EQ(p.missed, 6);
	ASSERT_EQ(p.next_ns, due + 350 * MS);
	evfn__timer_plan(s, anchor, due, due + 325 * MS, EVFN_MISSED_SKIP,
	                 1000 * MS, &p);
	assert_false(p.fire);
	ASSERT_EQ(p.missed, 7);
	ASSERT_EQ(p.next_ns, due + 350 * MS);

	/* Exactly on the following instant: both are due. */
	evfn__timer_plan(s, anchor, due, due + 50 * MS, EVFN_MISSED_FIRE_ONCE,
	                 1000 * MS, &p);
	ASSERT_EQ(p.latest_ns, due + 50 * MS);
	ASSERT_EQ(p.missed, 1);
	evfn_schedule_free(s);
}

static void
test_timer_plan_cron_and_at(void **state)
{
	(void)state;
	evfn_schedule *s = parse("* * * * *");
	int64_t minute;
	ASSERT_EQ(
	    evfn_schedule_next(s, INT64_C(1700000000) * 1000000000, &minute),
	    1);
	const int64_t m = 60000 * MS;
	struct evfn__timer_plan p;
	evfn__timer_plan(s, 0, minute, minute + 150000 * MS,
	                 EVFN_MISSED_FIRE_ONCE, 1000 * MS, &p);
	assert_true(p.fire);
	ASSERT_EQ(p.latest_ns, minute + 2 * m);
	ASSERT_EQ(p.missed, 2);
	ASSERT_EQ(p.next_ns, minute + 3 * m);
	evfn_schedule_free(s);

	s = parse("at(2030-01-01T00:00:00)");
	int64_t at;
	ASSERT_EQ(evfn_schedule_next(s, 0, &at), 1);
	evfn__timer_plan(s, 0, at, at + 5000 * MS, EVFN_MISSED_FIRE_ONCE,
	                 1000 * MS, &p);
	assert_true(p.fire);
	ASSERT_EQ(p.latest_ns, at);
	ASSERT_EQ(p.missed, 0);
	assert_false(p.has_next);
	ASSERT_EQ(p.next_ns, INT64_MAX);
	evfn__timer_plan(s, 0, at, at + 5000 * MS, EVFN_MISSED_SKIP, 1000 * MS,
	                 &p);
	assert_false(p.fire);
	ASSERT_EQ(p.missed, 1);
	evfn_schedule_free(s);
}

/* ---- refusals, drain, freeing -------------------------------------------- */

static void
test_timer_refusals_counted_and_logged(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger *t;
	ASSERT_OK(
	    evfn_timer_add(rt, "@every 20ms", NULL, "nobody.home", NULL, &t));
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_REFUSED) >= 2,
	         5000);
	ASSERT_EQ(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_FIRED), 0);
	WAIT_FOR(test_log_contains("trigger schedule \"@every 20ms\""), 5000);
	WAIT_FOR(test_log_contains("EVFN_ENOSUB"), 5000);
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
}

static void
test_timer_drain_counts_shutdown(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger *t;
	ASSERT_OK(evfn_timer_add(rt, "@every 20ms", NULL, NULL, NULL, &t));
	WAIT_FOR(rec_count() >= 1, 5000);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_SHUTDOWN) >= 2,
	         5000);
	ASSERT_EQ(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_REFUSED), 0);
	evfn_trigger *t2 = (evfn_trigger *)&t2;
	ASSERT_RC(evfn_timer_add(rt, "@every 20ms", NULL, NULL, NULL, &t2),
	          EVFN_ESHUTDOWN);
	assert_null(t2);
	evfn_trigger_free(t);
	ASSERT_OK(evfn_rt_free(rt));
	rec_reset();
}

struct stopper {
	_Atomic(evfn_trigger *) t;
	atomic_int seen;
};

static int
stop_on_first(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)ev;
	struct stopper *s = userdata;
	atomic_fetch_add(&s->seen, 1);
	evfn_trigger_free(atomic_exchange(&s->t, NULL));
	return EVFN_OK;
}

/* A loop handler (on the loop thread, like the trigger's callback) frees
 * the trigger that feeds it: nothing fires afterwards. */
static void
test_timer_free_inside_loop_handler(void **state)
{
	(void)state;
	static struct stopper s;
	atomic_store(&s.seen, 0);
	evfn_rt *rt = trigger_runtime(false);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP));
	ASSERT_OK(evfn_register(rt, "stop", stop_on_first, &s, fo, NULL));
	evfn_fn_options_free(fo);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_function(o, "stop"));
	evfn_trigger *t;
	ASSERT_OK(evfn_timer_add(rt, "@every 20ms", NULL, NULL, o, &t));
	evfn_trigger_options_free(o);
	atomic_store(&s.t, t);
	ASSERT_OK(evfn_rt_start(rt));
	WAIT_FOR(atomic_load(&s.t) == NULL, 5000);
	/* Nothing can signal that a timer stays quiet: wait ten periods. */
	test_sleep_ms(200);
	assert_true(atomic_load(&s.seen) <= 2);
	trigger_runtime_free(rt);
}

static void
test_timer_bad_input(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(false);
	evfn_trigger *t = (evfn_trigger *)&t;
	ASSERT_RC(evfn_timer_add(rt, "61 * * * *", NULL, NULL, NULL, &t),
	          EVFN_ESCHEDULE);
	assert_null(t);
	/* The parser's reason and where it stopped are in the log. */
	assert_true(test_log_contains("\"61 * * * *\""));
	assert_true(test_log_contains("offset 0"));
	ASSERT_RC(evfn_timer_add(rt, "@every 1m", "Mars/Olympus_Mons", NULL,
	                         NULL, &t),
	          EVFN_ETIMEZONE);
	assert_true(test_log_contains("Mars/Olympus_Mons"));
	/* A leap-second zone is refused, and the log says why. */
	ASSERT_RC(evfn_timer_add(rt, "0 9 * * *", "right/Europe/Berlin", NULL,
	                         NULL, &t),
	          EVFN_ETIMEZONE);
	assert_null(t);
	assert_true(test_log_contains("'right/Europe/Berlin': counts leap seconds"));
	ASSERT_RC(evfn_timer_add(rt, NULL, NULL, NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_timer_add(NULL, "@every 1m", NULL, NULL, NULL, &t),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_timer_add(rt, "@every 1m", NULL, NULL, NULL, NULL),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_timer_add(rt, "@every 1m", NULL, "", NULL, &t),
	          EVFN_EINVAL);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_function(o, "nope"));
	ASSERT_RC(evfn_timer_add(rt, "@every 1m", NULL, NULL, o, &t),
	          EVFN_ENOFN);
	evfn_trigger_options_free(o);
	int64_t next;
	ASSERT_RC(evfn_timer_next(NULL, &next), EVFN_EINVAL);
	ASSERT_OK(evfn_timer_add(rt, "rate(5 minutes)", NULL, NULL, NULL, &t));
	ASSERT_RC(evfn_timer_next(t, NULL), EVFN_EINVAL);
	evfn_trigger_free(t);
	ASSERT_OK(evfn_rt_free(rt));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(test_timer_every_fires_on_anchored_grid),
	    TEST(test_timer_named_to_function),
	    TEST(test_timer_at_fires_once_at_its_instant),
	    TEST(test_timer_at_in_the_past_never_fires),
	    TEST(test_timer_missed_fire_once),
	    TEST(test_timer_missed_skip),
	    TEST(test_timer_plan_interval),
	    TEST(test_timer_plan_cron_and_at),
	    TEST(test_timer_refusals_counted_and_logged),
	    TEST(test_timer_drain_counts_shutdown),
	    TEST(test_timer_free_inside_loop_handler),
	    TEST(test_timer_bad_input),
	};
	return evfn_test_main("timer", tests);
}
