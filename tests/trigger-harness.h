/* SPDX-License-Identifier: MIT */
/*
 * What the tests of the triggers on the loop share (test-fd.c,
 * test-signal.c, test-watch.c, test-timer.c): a recorder function that
 * keeps a reference to every event it receives with the wall-clock time it
 * saw it, a log capture, and a started runtime with the recorder
 * subscribed to the "evfn.#" and "test.#" topics. The runtime has one
 * worker, so the recorder sees events in the order they were published.
 */
#ifndef EVFN_TEST_TRIGGER_HARNESS_H
#define EVFN_TEST_TRIGGER_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <evfn/triggers.h>

#include "harness.h"

#define REC_MAX 4096

struct recorder {
	pthread_mutex_t lock;
	const evfn_event *ev[REC_MAX];
	int64_t seen_ns[REC_MAX]; /* wall clock when the handler ran */
	atomic_int n;             /* events received, also past REC_MAX */
};

static struct recorder rec = {.lock = PTHREAD_MUTEX_INITIALIZER};

static inline int64_t
test_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
record_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	struct recorder *r = userdata;
	int64_t now = test_wall_ns();
	pthread_mutex_lock(&r->lock);
	int i = atomic_load(&r->n);
	if (i < REC_MAX) {
		r->ev[i] = evfn_event_ref(ev);
		r->seen_ns[i] = now;
	}
	atomic_store(&r->n, i + 1);
	pthread_mutex_unlock(&r->lock);
	return EVFN_OK;
}

static inline int
rec_count(void)
{
	return atomic_load(&rec.n);
}

/* The i-th recorded event, borrowed until rec_reset(). */
static inline const evfn_event *
rec_event(int i)
{
	pthread_mutex_lock(&rec.lock);
	const evfn_event *ev = i < REC_MAX ? rec.ev[i] : NULL;
	pthread_mutex_unlock(&rec.lock);
	assert_non_null(ev);
	return ev;
}

static inline void
rec_reset(void)
{
	pthread_mutex_lock(&rec.lock);
	int n = atomic_load(&rec.n);
	for (int i = 0; i < n && i < REC_MAX; i++)
		evfn_event_unref(rec.ev[i]);
	atomic_store(&rec.n, 0);
	pthread_mutex_unlock(&rec.lock);
}

/* A runtime with one worker, the log captured, and function "rec"
 * subscribed to "evfn.#" and "test.#"; started unless told otherwise. */
static inline evfn_rt *
trigger_runtime(bool start)
{
	rec_reset();
	test_log_reset();
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 1, 1));
	ASSERT_OK(evfn_rt_options_set_log(o, test_log_capture, NULL));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, "rec", record_handler, &rec, NULL, NULL));
	ASSERT_OK(evfn_subscribe(rt, "evfn.#", "rec"));
	ASSERT_OK(evfn_subscribe(rt, "test.#", "rec"));
	if (start)
		ASSERT_OK(evfn_rt_start(rt));
	return rt;
}

/* Drains and frees a runtime whose triggers are freed already. */
static inline void
trigger_runtime_free(evfn_rt *rt)
{
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
	rec_reset();
}

static inline evfn_trigger_options *
trigger_options(void)
{
	evfn_trigger_options *o;
	ASSERT_OK(evfn_trigger_options_new(&o));
	return o;
}

/* Asserts a string attribute (NULL for unset). */
#define ASSERT_STR(actual, expected)                                           \
	do {                                                                   \
		const char *a_ = (actual), *e_ = (expected);                   \
		if (!e_ ? a_ != NULL : !a_ || strcmp(a_, e_) != 0)             \
			fail_msg("%s == \"%s\", expected \"%s\"", #actual,     \
			         a_ ? a_ : "(null)", e_ ? e_ : "(null)");      \
	} while (0)

#endif /* EVFN_TEST_TRIGGER_HARNESS_H */
