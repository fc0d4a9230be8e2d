/* SPDX-License-Identifier: MIT */
/*
 * The signal trigger with real signals: raise() on the test thread and
 * kill() from another thread each become one event with the signal's
 * number and name; a named trigger delivers to a function; the previous
 * disposition comes back when the trigger is freed; bad signal numbers
 * and the shared creation errors are refused.
 */
#include <signal.h>
#include <unistd.h>

#include "trigger-harness.h"

static void
assert_default_disposition(int signo)
{
	struct sigaction sa;
	assert_int_equal(sigaction(signo, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_DFL);
}

static void
test_signal_delivery_becomes_event(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger *t;
	ASSERT_OK(evfn_signal_add(rt, SIGUSR1, NULL, NULL, &t));
	/* One at a time: deliveries of a signal that is still pending are
	 * merged by the kernel. */
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(raise(SIGUSR1), 0);
		WAIT_FOR(rec_count() == i, 5000);
	}
	char number[16];
	snprintf(number, sizeof(number), "%d", SIGUSR1);
	for (int i = 0; i < 3; i++) {
		const evfn_event *ev = rec_event(i);
		ASSERT_STR(evfn_event_type(ev), "evfn.signal");
		ASSERT_STR(evfn_event_source(ev), "evfn/signal");
		ASSERT_STR(evfn_event_subject(ev), "SIGUSR1");
		ASSERT_STR(evfn_event_extension(ev, "signal"), number);
	}
	/* Counted when admission returns, which may be after the handler
	 * ran. */
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_FIRED) == 3, 5000);
	evfn_trigger_free(t);
	assert_default_disposition(SIGUSR1);
	trigger_runtime_free(rt);
}

static void *
kill_thread(void *arg)
{
	(void)arg;
	kill(getpid(), SIGUSR2);
	return NULL;
}

static void
test_signal_kill_from_other_thread_to_function(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_function(o, "rec"));
	ASSERT_OK(evfn_trigger_options_set_name(o, "reload"));
	evfn_trigger *t;
	ASSERT_OK(evfn_signal_add(rt, SIGUSR2, "nobody.listens", o, &t));
	evfn_trigger_options_free(o);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, kill_thread, NULL), 0);
	pthread_join(th, NULL);
	WAIT_FOR(rec_count() == 1, 5000);
	const evfn_event *ev = rec_event(0);
	ASSERT_STR(evfn_event_type(ev), "nobody.listens");
	ASSERT_STR(evfn_event_source(ev), "evfn/signal/reload");
	ASSERT_STR(evfn_event_subject(ev), "reload");
	evfn_trigger_free(t);
	assert_default_disposition(SIGUSR2);
	trigger_runtime_free(rt);
}

/* Two triggers on one signal: each delivery fires both; the disposition
 * is restored only when the last goes. */
static void
test_signal_two_triggers_share_a_signal(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger *a, *b;
	ASSERT_OK(evfn_signal_add(rt, SIGUSR1, "test.a", NULL, &a));
	ASSERT_OK(evfn_signal_add(rt, SIGUSR1, "test.b", NULL, &b));
	assert_int_equal(raise(SIGUSR1), 0);
	WAIT_FOR(rec_count() == 2, 5000);
	evfn_trigger_free(a);
	struct sigaction sa;
	assert_int_equal(sigaction(SIGUSR1, NULL, &sa), 0);
	assert_true(sa.sa_handler != SIG_DFL);
	assert_int_equal(raise(SIGUSR1), 0);
	WAIT_FOR(rec_count() == 3, 5000);
	ASSERT_STR(evfn_event_type(rec_event(2)), "test.b");
	evfn_trigger_free(b);
	assert_default_disposition(SIGUSR1);
	trigger_runtime_free(rt);
}

static void
test_signal_realtime_name(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger *t;
	ASSERT_OK(evfn_signal_add(rt, SIGRTMIN + 2, NULL, NULL, &t));
	assert_int_equal(raise(SIGRTMIN + 2), 0);
	WAIT_FOR(rec_count() == 1, 5000);
	ASSERT_STR(evfn_event_subject(rec_event(0)), "SIGRTMIN+2");
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
}

static void
test_signal_bad_input(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(false);
	evfn_trigger *t = (evfn_trigger *)&t;
	ASSERT_RC(evfn_signal_add(rt, 0, NULL, NULL, &t), EVFN_EINVAL);
	assert_null(t);
	ASSERT_RC(evfn_signal_add(rt, -1, NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_signal_add(rt, NSIG, NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_signal_add(rt, 100000, NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_signal_add(rt, SIGKILL, NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_signal_add(rt, SIGSTOP, NULL, NULL, &t), EVFN_EINVAL);
	/* glibc keeps the first real-time signals for its threads. */
	ASSERT_RC(evfn_signal_add(rt, SIGRTMIN - 1, NULL, NULL, &t),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_signal_add(NULL, SIGUSR1, NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_signal_add(rt, SIGUSR1, NULL, NULL, NULL), EVFN_EINVAL);
	ASSERT_RC(evfn_signal_add(rt, SIGUSR1, "", NULL, &t), EVFN_EINVAL);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_function(o, "nope"));
	ASSERT_RC(evfn_signal_add(rt, SIGUSR1, NULL, o, &t), EVFN_ENOFN);
	evfn_trigger_options_free(o);
	assert_default_disposition(SIGUSR1);
	ASSERT_OK(evfn_rt_drain(rt, 0, NULL, NULL));
	ASSERT_RC(evfn_signal_add(rt, SIGUSR1, NULL, NULL, &t), EVFN_ESHUTDOWN);
	ASSERT_OK(evfn_rt_free(rt));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(test_signal_delivery_becomes_event),
	    TEST(test_signal_kill_from_other_thread_to_function),
	    TEST(test_signal_two_triggers_share_a_signal),
	    TEST(test_signal_realtime_name),
	    TEST(test_signal_bad_input),
	};
	return evfn_test_main("signal", tests);
}
