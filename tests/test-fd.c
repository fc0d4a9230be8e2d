/* SPDX-License-Identifier: MIT */
/*
 * The descriptor trigger over real pipes and socket pairs: readable and
 * writable events with their attributes, edge and level readiness,
 * delivery to a function, refusals counted and logged, the descriptor
 * left open, freeing from another thread while the trigger fires, a
 * host-owned event_base; and the shared trigger options and their bad
 * input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <evfn/libevent.h>

#include "trigger-harness.h"

static void
make_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void
put_byte(int fd)
{
	assert_int_equal(write(fd, "x", 1), 1);
}

static void
take_byte(int fd)
{
	char c;
	assert_int_equal(read(fd, &c, 1), 1);
}

static void
test_fd_readable_fires_with_attributes(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	int p[2];
	make_pipe(p);
	evfn_trigger *t;
	ASSERT_OK(evfn_fd_add(rt, p[0], EVFN_FD_READ | EVFN_FD_EDGE,
	                      "test.pipe", NULL, &t));
	put_byte(p[1]);
	WAIT_FOR(rec_count() == 1, 5000);
	const evfn_event *ev = rec_event(0);
	char fdtext[16];
	snprintf(fdtext, sizeof(fdtext), "%d", p[0]);
	ASSERT_STR(evfn_event_type(ev), "test.pipe");
	ASSERT_STR(evfn_event_source(ev), "evfn/fd");
	ASSERT_STR(evfn_event_subject(ev), NULL);
	ASSERT_STR(evfn_event_extension(ev, "fd"), fdtext);
	ASSERT_STR(evfn_event_extension(ev, "ready"), "read");
	size_t len;
	evfn_event_data(ev, &len);
	ASSERT_EQ(len, 0);
	/* Counted when admission returns, which may be after the handler
	 * ran. */
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_FIRED) == 1, 5000);
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
	close(p[0]);
	close(p[1]);
}

/* Edge-triggered: one event per arrival into an empty pipe. Level
 * readiness would have fired on every loop iteration meanwhile, so an
 * exact count after the second arrival shows the difference. */
static void
test_fd_edge_fires_once_per_arrival(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	int p[2];
	make_pipe(p);
	evfn_trigger *t;
	ASSERT_OK(
	    evfn_fd_add(rt, p[0], EVFN_FD_READ | EVFN_FD_EDGE, NULL, NULL, &t));
	put_byte(p[1]);
	WAIT_FOR(rec_count() == 1, 5000);
	take_byte(p[0]);
	put_byte(p[1]);
	WAIT_FOR(rec_count() >= 2, 5000);
	ASSERT_EQ(rec_count(), 2);
	ASSERT_STR(evfn_event_type(rec_event(1)), "evfn.fd");
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
	close(p[0]);
	close(p[1]);
}

static void
test_fd_level_repeats_until_consumed(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	int p[2];
	make_pipe(p);
	evfn_trigger *t;
	ASSERT_OK(evfn_fd_add(rt, p[0], EVFN_FD_READ, NULL, NULL, &t));
	put_byte(p[1]);
	WAIT_FOR(rec_count() >= 3, 5000);
	evfn_trigger_free(t);
	take_byte(p[0]);
	trigger_runtime_free(rt);
	close(p[0]);
	close(p[1]);
}

static void
test_fd_writable_to_function_with_name(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
	                 0);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_function(o, "rec"));
	ASSERT_OK(evfn_trigger_options_set_name(o, "uplink"));
	evfn_trigger *t;
	/* "nobody.listens" has no subscriber: delivery to the function
	 * does not use the topic. */
	ASSERT_OK(evfn_fd_add(rt, sv[0], EVFN_FD_WRITE | EVFN_FD_EDGE,
	                      "nobody.listens", o, &t));
	evfn_trigger_options_free(o);
	WAIT_FOR(rec_count() >= 1, 5000);
	const evfn_event *ev = rec_event(0);
	ASSERT_STR(evfn_event_type(ev), "nobody.listens");
	ASSERT_STR(evfn_event_source(ev), "evfn/fd/uplink");
	ASSERT_STR(evfn_event_subject(ev), "uplink");
	ASSERT_STR(evfn_event_extension(ev, "ready"), "write");
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
	close(sv[0]);
	close(sv[1]);
}

static void
test_fd_left_open_after_free(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	int p[2];
	make_pipe(p);
	evfn_trigger *t;
	ASSERT_OK(evfn_fd_add(rt, p[0], EVFN_FD_READ, NULL, NULL, &t));
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
	assert_true(fcntl(p[0], F_GETFD) >= 0);
	put_byte(p[1]);
	take_byte(p[0]);
	close(p[0]);
	close(p[1]);
}

/* A handler that holds the single worker until released, so that the
 * function's one-slot queue fills. */
static atomic_bool hold_release;

static int
hold_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)ev;
	(void)userdata;
	while (!atomic_load(&hold_release))
		test_sleep_ms(1);
	return EVFN_OK;
}

static void
test_fd_refusals_counted_and_logged(void **state)
{
	(void)state;
	atomic_store(&hold_release, false);
	evfn_rt *rt = trigger_runtime(true);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_queue_capacity(fo, 1));
	ASSERT_OK(evfn_register(rt, "hold", hold_handler, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_function(o, "hold"));
	int p[2];
	make_pipe(p);
	evfn_trigger *t;
	ASSERT_OK(evfn_fd_add(rt, p[0], EVFN_FD_READ, NULL, o, &t));
	evfn_trigger_options_free(o);
	put_byte(p[1]);
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_FIRED) == 2 &&
	             evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_REFUSED) >= 4,
	         5000);
	/* One running, one queued: everything else was refused. */
	ASSERT_EQ(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_FIRED), 2);
	ASSERT_EQ(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_SHUTDOWN), 0);
	/* Logged after the count is bumped, maybe on another thread. */
	WAIT_FOR(test_log_contains("trigger fd "), 5000);
	WAIT_FOR(test_log_contains("EVFN_EQUEUEFULL"), 5000);
	evfn_trigger_free(t);
	atomic_store(&hold_release, true);
	trigger_runtime_free(rt);
	close(p[0]);
	close(p[1]);
}

static void
test_fd_shutdown_refusals_are_not_errors(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	int p[2];
	make_pipe(p);
	evfn_trigger *t;
	ASSERT_OK(evfn_fd_add(rt, p[0], EVFN_FD_READ, NULL, NULL, &t));
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	put_byte(p[1]);
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_SHUTDOWN) >= 2,
	         5000);
	ASSERT_EQ(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_REFUSED), 0);
	WAIT_FOR(test_log_contains("draining"), 5000);
	assert_false(test_log_contains("refused"));
	evfn_trigger *t2;
	ASSERT_RC(evfn_fd_add(rt, p[0], EVFN_FD_READ, NULL, NULL, &t2),
	          EVFN_ESHUTDOWN);
	assert_null(t2);
	evfn_trigger_free(t);
	ASSERT_OK(evfn_rt_free(rt));
	rec_reset();
	close(p[0]);
	close(p[1]);
}

struct freer {
	evfn_trigger *t;
};

static void *
free_trigger_thread(void *arg)
{
	evfn_trigger_free(((struct freer *)arg)->t);
	return NULL;
}

/* The pipe stays readable, so the loop runs the trigger's callback over
 * and over while another thread frees it: libevent makes the free wait
 * for a running callback, and nothing fires afterwards. */
static void
test_fd_free_from_other_thread_while_firing(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(true);
	int p[2];
	make_pipe(p);
	struct freer f;
	ASSERT_OK(evfn_fd_add(rt, p[0], EVFN_FD_READ, NULL, NULL, &f.t));
	put_byte(p[1]);
	WAIT_FOR(rec_count() >= 10, 5000);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, free_trigger_thread, &f), 0);
	pthread_join(th, NULL);
	trigger_runtime_free(rt);
	close(p[0]);
	close(p[1]);
}

/* Embedded: the host drives its own base; the trigger fires there. */
static void
test_fd_on_host_event_base(void **state)
{
	(void)state;
	rec_reset();
	/* A host enables libevent's locks before it creates its base. */
	assert_int_equal(evthread_use_pthreads(), 0);
	struct event_base *base = event_base_new();
	assert_non_null(base);
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 1, 1));
	ASSERT_OK(evfn_rt_options_set_event_base(o, base));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP));
	ASSERT_OK(evfn_register(rt, "rec", record_handler, &rec, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_subscribe(rt, "evfn.#", "rec"));
	ASSERT_OK(evfn_rt_start(rt));
	int p[2];
	make_pipe(p);
	evfn_trigger *t;
	ASSERT_OK(
	    evfn_fd_add(rt, p[0], EVFN_FD_READ | EVFN_FD_EDGE, NULL, NULL, &t));
	put_byte(p[1]);
	int64_t until = test_now_ms() + 5000;
	while (rec_count() < 1 && test_now_ms() < until)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	ASSERT_EQ(rec_count(), 1);
	ASSERT_STR(evfn_event_extension(rec_event(0), "ready"), "read");
	evfn_trigger_free(t);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
	event_base_free(base);
	rec_reset();
	close(p[0]);
	close(p[1]);
}

static void
test_fd_bad_input(void **state)
{
	(void)state;
	evfn_rt *rt = trigger_runtime(false);
	int p[2];
	make_pipe(p);
	evfn_trigger *t = (evfn_trigger *)&t;
	ASSERT_RC(evfn_fd_add(rt, -1, EVFN_FD_READ, NULL, NULL, &t),
	          EVFN_EINVAL);
	assert_null(t);
	ASSERT_RC(evfn_fd_add(rt, p[0], 0, NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_fd_add(rt, p[0], EVFN_FD_EDGE, NULL, NULL, &t),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_fd_add(rt, p[0], EVFN_FD_READ | 64, NULL, NULL, &t),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_fd_add(NULL, p[0], EVFN_FD_READ, NULL, NULL, &t),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_fd_add(rt, p[0], EVFN_FD_READ, NULL, NULL, NULL),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_fd_add(rt, p[0], EVFN_FD_READ, "", NULL, &t),
	          EVFN_EINVAL);
	char longtype[EVFN_NAME_MAX + 2];
	memset(longtype, 'a', sizeof(longtype) - 1);
	longtype[sizeof(longtype) - 1] = '\0';
	ASSERT_RC(evfn_fd_add(rt, p[0], EVFN_FD_READ, longtype, NULL, &t),
	          EVFN_ENAMETOOLONG);
	/* A descriptor that is not open, and a regular file (epoll cannot
	 * poll one). */
	int closed = dup(p[0]);
	close(closed);
	/* Nothing told the arguments apart so far; these two are EVFN_EINVAL
	 * too, and the log says why. */
	assert_false(test_log_contains("backend"));
	ASSERT_RC(evfn_fd_add(rt, closed, EVFN_FD_READ, NULL, NULL, &t),
	          EVFN_EINVAL);
	WAIT_FOR(test_log_contains("refused by the event loop's backend: Bad file"),
	         5000);
	char path[] = "/tmp/evfn-fd-XXXXXX";
	int file = mkstemp(path);
	assert_true(file >= 0);
	unlink(path);
	ASSERT_RC(evfn_fd_add(rt, file, EVFN_FD_READ, NULL, NULL, &t),
	          EVFN_EINVAL);
	WAIT_FOR(test_log_contains("refused by the event loop's backend: Operation "
	                      "not permitted"),
	         5000);
	close(file);
	/* Function targets are checked when the trigger is made. */
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_function(o, "nope"));
	ASSERT_RC(evfn_fd_add(rt, p[0], EVFN_FD_READ, NULL, o, &t), EVFN_ENOFN);
	evfn_trigger_options_free(o);
	/* A descriptor trigger is not a schedule. */
	ASSERT_OK(evfn_fd_add(rt, p[0], EVFN_FD_READ, NULL, NULL, &t));
	int64_t next;
	ASSERT_RC(evfn_timer_next(t, &next), EVFN_EINVAL);
	ASSERT_EQ(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_COUNT), 0);
	ASSERT_EQ(evfn_trigger_get_stat(t, (evfn_trigger_stat)-1), 0);
	evfn_trigger_free(t);
	ASSERT_EQ(evfn_trigger_get_stat(NULL, EVFN_TRIGGER_STAT_FIRED), 0);
	evfn_trigger_free(NULL);
	ASSERT_OK(evfn_rt_free(rt));
	close(p[0]);
	close(p[1]);
}

static void
test_fd_trigger_options_bad_input(void **state)
{
	(void)state;
	ASSERT_RC(evfn_trigger_options_new(NULL), EVFN_EINVAL);
	evfn_trigger_options_free(NULL);
	evfn_trigger_options *o = trigger_options();
	ASSERT_RC(evfn_trigger_options_set_function(NULL, "f"), EVFN_EINVAL);
	ASSERT_RC(evfn_trigger_options_set_function(o, ""), EVFN_EINVAL);
	char name[EVFN_NAME_MAX + 2];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ASSERT_RC(evfn_trigger_options_set_function(o, name),
	          EVFN_ENAMETOOLONG);
	ASSERT_OK(evfn_trigger_options_set_function(o, "f"));
	ASSERT_OK(evfn_trigger_options_set_function(o, NULL));
	ASSERT_RC(evfn_trigger_options_set_name(NULL, "n"), EVFN_EINVAL);
	ASSERT_RC(evfn_trigger_options_set_name(o, ""), EVFN_EINVAL);
	/* The name must leave room for "evfn/schedule/" in the source. */
	name[EVFN_NAME_MAX - 15] = '\0';
	ASSERT_RC(evfn_trigger_options_set_name(o, name), EVFN_ENAMETOOLONG);
	name[EVFN_NAME_MAX - 16] = '\0';
	ASSERT_OK(evfn_trigger_options_set_name(o, name));
	ASSERT_OK(evfn_trigger_options_set_name(o, NULL));
	ASSERT_RC(evfn_trigger_options_set_missed(NULL, EVFN_MISSED_SKIP),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_trigger_options_set_missed(o, (evfn_missed_policy)7),
	          EVFN_EINVAL);
	ASSERT_OK(evfn_trigger_options_set_missed(o, EVFN_MISSED_SKIP));
	ASSERT_RC(evfn_trigger_options_set_tolerance_ms(NULL, 1), EVFN_EINVAL);
	ASSERT_RC(evfn_trigger_options_set_tolerance_ms(o, 0), EVFN_ERANGE);
	ASSERT_RC(evfn_trigger_options_set_tolerance_ms(o, 86400001),
	          EVFN_ERANGE);
	ASSERT_OK(evfn_trigger_options_set_tolerance_ms(o, 1));
	ASSERT_RC(evfn_trigger_options_set_existing(NULL, true), EVFN_EINVAL);
	ASSERT_OK(evfn_trigger_options_set_existing(o, true));
	evfn_trigger_options_free(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(test_fd_readable_fires_with_attributes),
	    TEST(test_fd_edge_fires_once_per_arrival),
	    TEST(test_fd_level_repeats_until_consumed),
	    TEST(test_fd_writable_to_function_with_name),
	    TEST(test_fd_left_open_after_free),
	    TEST(test_fd_refusals_counted_and_logged),
	    TEST(test_fd_shutdown_refusals_are_not_errors),
	    TEST(test_fd_free_from_other_thread_while_firing),
	    TEST(test_fd_on_host_event_base),
	    TEST(test_fd_bad_input),
	    TEST(test_fd_trigger_options_bad_input),
	};
	return evfn_test_main("fd", tests);
}
