/* SPDX-License-Identifier: MIT */
/*
 * What every C test file shares: cmocka, assertions that name evfn error
 * codes, a bounded wait for a condition, and the open-descriptor check
 * that makes a leaked fd fail the test. Each test file keeps its cases in
 * one table at the bottom and calls evfn_test_main() with it.
 */
#ifndef EVFN_TEST_HARNESS_H
#define EVFN_TEST_HARNESS_H

#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <evfn.h>

/* Fails with both codes' names when rc is not the expected code. */
#define ASSERT_RC(rc, expected)                                              \
	do {                                                                 \
		int rc_ = (rc), exp_ = (expected);                           \
		if (rc_ != exp_)                                             \
			fail_msg("%s returned %s (%d), expected %s (%d)", #rc, \
			         evfn_err_name(rc_), rc_, evfn_err_name(exp_), \
			         exp_);                                      \
	} while (0)
#define ASSERT_OK(rc) ASSERT_RC(rc, 0)
#define ASSERT_EQ(a, b)                                                      \
	do {                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);          \
		if (a_ != b_)                                                \
			fail_msg("%s == %lld, expected %s == %lld", #a, a_, #b, \
			         b_);                                        \
	} while (0)

static inline int64_t
test_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void
test_sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Waits up to timeout_ms for cond to become true, polling it; fails the
 * test on timeout. For conditions no callback can signal (a thread count
 * shrinking, a counter another thread bumps). */
#define WAIT_FOR(cond, timeout_ms)                                           \
	do {                                                                 \
		int64_t until_ = test_now_ms() + (timeout_ms);               \
		while (!(cond)) {                                            \
			if (test_now_ms() > until_)                          \
				fail_msg("timed out waiting for %s", #cond); \
			test_sleep_ms(1);                                    \
		}                                                            \
	} while (0)

/* The entries of a directory of /proc (descriptors, threads), or -1. */
static inline int
test_count_entries(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static inline void
test_on_hang(int sig)
{
	(void)sig;
	static const char msg[] = "not ok - still running when the hang "
	                          "guard expired\n";
	(void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

/* Ends the process as a failure if test_hang_guard_off() is not called
 * within secs: for code that, when wrong, never returns (a loop holding
 * the runtime lock blocks every call that could notice). */
static inline void
test_hang_guard(unsigned secs)
{
	signal(SIGALRM, test_on_hang);
	alarm(secs);
}

static inline void
test_hang_guard_off(void)
{
	alarm(0);
}

/* A runtime with min..max workers and the event log given (NULL for
 * none); fails the test if it cannot be made. */
static inline evfn_rt *
test_runtime_new(int min, int max, evfn_record_cb record_cb)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, min, max));
	if (record_cb)
		ASSERT_OK(evfn_rt_options_set_event_log(o, record_cb, NULL));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	return rt;
}

/* What the runtime's log callback was told, for tests of what evfn logs
 * (a refusal's cause, a trigger's trouble): test_log_capture() is the
 * callback (its argument unused), test_log_contains() looks for a part of
 * a line, test_log_reset() starts over. One capture per test process. */
struct test_log {
	pthread_mutex_t lock;
	char text[16384];
	size_t len;
};

static inline struct test_log *
test_log(void)
{
	static struct test_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
	return &log;
}

static inline void
test_log_capture(evfn_log_level level, const char *msg, void *arg)
{
	(void)level;
	(void)arg;
	struct test_log *c = test_log();
	pthread_mutex_lock(&c->lock);
	int n =
	    snprintf(c->text + c->len, sizeof(c->text) - c->len, "%s\n", msg);
	if (n > 0)
		c->len = c->len + (size_t)n < sizeof(c->text)
		             ? c->len + (size_t)n
		             : sizeof(c->text) - 1;
	pthread_mutex_unlock(&c->lock);
}

static inline bool
test_log_contains(const char *part)
{
	struct test_log *c = test_log();
	pthread_mutex_lock(&c->lock);
	bool found = strstr(c->text, part) != NULL;
	pthread_mutex_unlock(&c->lock);
	return found;
}

static inline void
test_log_reset(void)
{
	struct test_log *c = test_log();
	pthread_mutex_lock(&c->lock);
	c->len = 0;
	c->text[0] = '\0';
	pthread_mutex_unlock(&c->lock);
}

/* A 64-bit mixer (splitmix64's finaliser): deterministic "random" choices
 * from a seed and a counter, so a failing seed can be rerun. */
static inline uint64_t
test_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* What test_publish_to() sets on the event it builds; NULL or 0 for
 * none. */
struct test_event_attrs {
	const char *key; /* ordering key */
	const char *id;
	int64_t delay_ms;
};

/* Builds an event of type fn carrying data (NULL: no payload) and the
 * attributes given, publishes it to function fn and drops the builder's
 * reference; returns the admission's result. */
static inline int
test_publish_to(evfn_rt *rt, const char *fn, const char *data,
                struct test_event_attrs a, uint64_t *seq)
{
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, fn, data, data ? strlen(data) : 0));
	if (a.key)
		ASSERT_OK(evfn_event_set_ordering_key(ev, a.key));
	if (a.id)
		ASSERT_OK(evfn_event_set_id(ev, a.id));
	if (a.delay_ms)
		ASSERT_OK(evfn_event_set_delay_ms(ev, a.delay_ms));
	int rc = evfn_publish_to(rt, fn, ev, seq);
	evfn_event_unref(ev);
	return rc;
}

static inline int
test_count_fds(void)
{
	return test_count_entries("/proc/self/fd");
}

/* The threads of this process now. */
static inline int
test_count_threads(void)
{
	return test_count_entries("/proc/self/task");
}

/* Each case is wrapped so that a descriptor it leaks fails it. */
static int test_fds_before;

static inline int
test_setup_fds(void **state)
{
	(void)state;
	test_fds_before = test_count_fds();
	return 0;
}

static inline int
test_teardown_fds(void **state)
{
	(void)state;
	test_hang_guard_off(); /* left armed by a case that failed */
	int after = test_count_fds();
	if (after != test_fds_before) {
		print_error("file descriptors: %d before, %d after\n",
		            test_fds_before, after);
		return -1;
	}
	return 0;
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, test_setup_fds, test_teardown_fds)

/* One group per executable: several plans confuse meson's TAP parser.
 * EVFN_TEST_FILTER=pattern runs only the matching cases (by hand). */
#define evfn_test_main(name, tests)                                          \
	(getenv("EVFN_TEST_FILTER")                                          \
	         ? cmocka_set_test_filter(getenv("EVFN_TEST_FILTER"))        \
	         : (void)0,                                                  \
	 cmocka_run_group_tests_name(name, tests, NULL, NULL))

/* Runs n threads of body, each given its index (0..n-1) as its argument,
 * and joins them all. */
static inline void
test_threads_run(void *(*body)(void *), int n)
{
	pthread_t th[64];
	assert_true(n <= 64);
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_create(&th[i], NULL, body,
		                                (void *)(uintptr_t)i),
		                 0);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

/* Counts the accounting invariant over one snapshot. */
static inline void
assert_accounting(evfn_rt *rt, const char *fn)
{
	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, fn, &s));
	uint64_t accepted = evfn_stats_value(s, EVFN_STAT_ACCEPTED);
	uint64_t parts = evfn_stats_value(s, EVFN_STAT_SUCCEEDED) +
	                 evfn_stats_value(s, EVFN_STAT_DEAD_LETTERED) +
	                 evfn_stats_value(s, EVFN_STAT_EXPIRED) +
	                 evfn_stats_value(s, EVFN_STAT_HANDED_BACK) +
	                 evfn_stats_value(s, EVFN_STAT_CANCELLED) +
	                 evfn_stats_value(s, EVFN_STAT_IN_FLIGHT) +
	                 evfn_stats_value(s, EVFN_STAT_QUEUED) +
	                 evfn_stats_value(s, EVFN_STAT_WAITING_RETRY) +
	                 evfn_stats_value(s, EVFN_STAT_DELAYED);
	evfn_stats_free(s);
	ASSERT_EQ(accepted, parts);
}

static inline uint64_t
stat_of(evfn_rt *rt, const char *fn, evfn_stat which)
{
	evfn_stats *s;
	ASSERT_OK(evfn_stats_take(rt, fn, &s));
	uint64_t v = evfn_stats_value(s, which);
	evfn_stats_free(s);
	return v;
}

/* A thread taking snapshots of fn's accepted count until stopped, which
 * keeps any count that is not a multiple of unit: the sign that a batch
 * of unit events admitted under one hold of the lock was seen in part. */
struct test_split_watch {
	evfn_rt *rt;
	const char *fn;
	uint64_t unit;
	atomic_bool stop;
	atomic_ullong split; /* 0: none seen */
	pthread_t thread;
};

static inline void *
test_split_watch_main(void *arg)
{
	struct test_split_watch *w = arg;
	while (!atomic_load(&w->stop)) {
		uint64_t acc = stat_of(w->rt, w->fn, EVFN_STAT_ACCEPTED);
		if (acc % w->unit)
			atomic_store(&w->split, acc);
	}
	return NULL;
}

static inline void
test_split_watch_start(struct test_split_watch *w, evfn_rt *rt,
                       const char *fn, uint64_t unit)
{
	w->rt = rt;
	w->fn = fn;
	w->unit = unit;
	atomic_store(&w->stop, false);
	atomic_store(&w->split, 0);
	pthread_create(&w->thread, NULL, test_split_watch_main, w);
}

/* Stops the watch; returns a split count seen, or 0. */
static inline uint64_t
test_split_watch_stop(struct test_split_watch *w)
{
	atomic_store(&w->stop, true);
	pthread_join(w->thread, NULL);
	return atomic_load(&w->split);
}

#endif /* EVFN_TEST_HARNESS_H */
