/* SPDX-License-Identifier: MIT */
/*
 * The runtime lock's checked preconditions (lib/lock-internal.h), in the
 * builds that check them (all but release): a function that needs the
 * lock aborts when called without it, a callout of the host's code
 * aborts when called with it, and the owner is right across condition
 * waits. Each breach runs in a child process, which must die of SIGABRT.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "callout-internal.h"
#include "dispatch-internal.h"
#include "harness.h"

#if EVFN__CHECK_LOCKS
/* Runs f(arg) in a child and returns how the child ended. */
static int
run_in_child(void (*f)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The breach prints one line; keep the TAP stream clean. */
		freopen("/dev/null", "w", stderr);
		f(arg);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void
assert_aborts(void (*f)(void *), void *arg)
{
	int status = run_in_child(f, arg);
	assert_true(WIFSIGNALED(status));
	ASSERT_EQ(WTERMSIG(status), SIGABRT);
}

static int
ok_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

static evfn_rt *
runtime_with_fn(evfn_fn **fn)
{
	evfn_rt *rt = test_runtime_new(1, 1, NULL);
	ASSERT_OK(evfn_register(rt, "f", ok_handler, NULL, NULL, fn));
	return rt;
}

static void
schedule_without_lock(void *arg)
{
	evfn_fn *fn;
	evfn_rt *rt = runtime_with_fn(&fn);
	(void)arg;
	evfn__fn_schedule_locked(rt, fn);
}

static void
test_lock_locked_function_without_lock_aborts(void **state)
{
	assert_aborts(schedule_without_lock, NULL);
	/* With the lock held, the same call passes. */
	evfn_fn *fn;
	evfn_rt *rt = runtime_with_fn(&fn);
	evfn__lock_acquire(&rt->lock);
	evfn__fn_schedule_locked(rt, fn);
	evfn__lock_release(&rt->lock);
	ASSERT_OK(evfn_rt_free(rt));
}

static void
callout_with_lock(void *arg)
{
	evfn_rt *rt = runtime_with_fn(NULL);
	(void)arg;
	evfn__lock_acquire(&rt->lock);
	evfn__call_handler(&rt->lock, ok_handler, NULL, NULL, NULL);
}

static void
test_lock_callout_under_lock_aborts(void **state)
{
	assert_aborts(callout_with_lock, NULL);
	evfn_rt *rt = runtime_with_fn(NULL);
	ASSERT_EQ(evfn__call_handler(&rt->lock, ok_handler, NULL, NULL, NULL),
	          EVFN_OK);
	ASSERT_OK(evfn_rt_free(rt));
}

static void
key_callout_without_lock(void *arg)
{
	evfn_rt *rt = runtime_with_fn(NULL);
	char key[8];
	(void)arg;
	evfn__call_idempotency_key(&rt->lock, NULL, NULL, key, sizeof(key),
	                           NULL);
}

static void
test_lock_key_callout_expects_the_lock(void **state)
{
	/* The one callback documented to run under the lock asserts it. */
	assert_aborts(key_callout_without_lock, NULL);
}

static struct evfn__lock shared;
static pthread_cond_t shared_cond;

static void *
other_thread(void *arg)
{
	bool *seen = arg;
	evfn__lock_acquire(&shared);
	/* The waiter gave the lock up: this thread holds it, not that one. */
	*seen = evfn__lock_held(&shared);
	pthread_cond_signal(&shared_cond);
	evfn__lock_release(&shared);
	return NULL;
}

static void
test_lock_owner_follows_waits(void **state)
{
	evfn__lock_init(&shared, false);
	evfn__cond_init_monotonic(&shared_cond);
	bool seen = false;
	evfn__lock_acquire(&shared);
	assert_true(evfn__lock_held(&shared));
	pthread_t t;
	ASSERT_EQ(pthread_create(&t, NULL, other_thread, &seen), 0);
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += 10;
	while (!seen)
		if (evfn__lock_wait_until(&shared, &shared_cond, &until) != 0)
			break;
	assert_true(seen);
	assert_true(evfn__lock_held(&shared));
	evfn__lock_release(&shared);
	assert_false(evfn__lock_held(&shared));
	pthread_join(t, NULL);
	pthread_cond_destroy(&shared_cond);
	evfn__lock_destroy(&shared);
}

#endif /* EVFN__CHECK_LOCKS */

/* Release builds check nothing and pay nothing: the lock is a bare
 * mutex. */
static void
test_lock_release_builds_keep_a_bare_mutex(void **state)
{
	size_t extra = sizeof(struct evfn__lock) - sizeof(pthread_mutex_t);
	ASSERT_EQ(extra, EVFN__CHECK_LOCKS ? sizeof(unsigned long) : 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#if EVFN__CHECK_LOCKS
		TEST(test_lock_locked_function_without_lock_aborts),
		TEST(test_lock_callout_under_lock_aborts),
		TEST(test_lock_key_callout_expects_the_lock),
		TEST(test_lock_owner_follows_waits),
#endif
		TEST(test_lock_release_builds_keep_a_bare_mutex),
	};
	return evfn_test_main("lock", tests);
}
