/* SPDX-License-Identifier: MIT */
/*
 * The HTTP trigger's own listener when the process runs out of file
 * descriptors: a server in a forked child with a low RLIMIT_NOFILE, and
 * the test (the parent) holding more idle connections than the child can
 * accept. The listener must pause instead of spinning on accept(), say
 * so once, count it in /metrics, and accept again once descriptors come
 * back.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evfn/http.h>

#include "harness.h"
#include "http-client.h"

/* The child's descriptor limit, and the idle connections the parent
 * opens: far more than the child can accept. */
#define CHILD_FDS 64
#define IDLE_CONNS 150

static int log_fd = -1;

/* The child's log callback: every line about accept() goes to the
 * parent, which counts them. */
static void
child_log(evfn_log_level level, const char *msg, void *arg)
{
	(void)level;
	(void)arg;
	if (strstr(msg, "accept() failed")) {
		char line[16] = "paused\n";
		if (write(log_fd, line, strlen(line)) < 0)
			_exit(3);
	}
}

/* Runs the server in the child until the parent closes quit_fd. No
 * cmocka here: the child reports by its exit status. */
static void
child_server(int ready_fd, int quit_fd)
{
	struct rlimit rl = {CHILD_FDS, CHILD_FDS};
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		_exit(2);
	log_fd = ready_fd;
	evfn_rt_options *ro;
	evfn_rt *rt;
	evfn_http *http;
	if (evfn_rt_options_new(&ro) ||
	    evfn_rt_options_set_log(ro, child_log, NULL) ||
	    evfn_rt_new(&rt, ro))
		_exit(4);
	evfn_rt_options_free(ro);
	if (evfn_rt_start(rt) || evfn_http_new(&http, rt, NULL))
		_exit(5);
	char line[32];
	int n = snprintf(line, sizeof(line), "port %d\n", evfn_http_port(http));
	if (write(ready_fd, line, (size_t)n) != n)
		_exit(6);
	char c;
	while (read(quit_fd, &c, 1) < 0 && errno == EINTR)
		;
	evfn_http_free(http);
	if (evfn_rt_drain(rt, 5000, NULL, NULL) ||
	    evfn_rt_free(rt))
		_exit(7);
	_exit(0);
}

/* Reads one line from the child within ms; false when none came. */
static bool
read_line(int fd, char *buf, size_t n, int ms)
{
	size_t got = 0;
	int64_t until = test_now_ms() + ms;
	while (got + 1 < n) {
		int left = (int)(until - test_now_ms());
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		if (read(fd, buf + got, 1) != 1)
			return false;
		if (buf[got++] == '\n')
			break;
	}
	buf[got] = '\0';
	return true;
}

/* CPU time the process has used, user and system, in ms. */
static int64_t
cpu_ms(pid_t pid)
{
	char path[64], stat[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* Fields 14 and 15, counted after the ")" that ends the name. */
	const char *p = strrchr(stat, ')');
	assert_non_null(p);
	unsigned long utime, stime;
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	                                "%*u %*u %lu %lu",
	                        &utime, &stime),
	                 2);
	return (int64_t)(utime + stime) * 1000 / sysconf(_SC_CLK_TCK);
}

static void
test_http_listen_pauses_when_out_of_descriptors(void **state)
{
	(void)state;
	int ready[2], quit[2];
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(quit, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(quit[1]);
		child_server(ready[1], quit[0]);
	}
	close(ready[1]);
	close(quit[0]);
	char line[64];
	int port = 0;
	assert_true(read_line(ready[0], line, sizeof(line), 10000));
	assert_int_equal(sscanf(line, "port %d", &port), 1);

	/* More connections than the child has descriptors: they all
	 * connect (the kernel's backlog takes them), the child accepts
	 * what it can and must then pause. */
	static int conns[IDLE_CONNS];
	for (int i = 0; i < IDLE_CONNS; i++)
		conns[i] = connect_raw(port);
	if (!read_line(ready[0], line, sizeof(line), 10000))
		fail_msg("the child never said it paused accepting");
	assert_string_equal(line, "paused\n");

	/* Paused, not spinning: over a second the child uses little CPU
	 * (a busy accept() loop takes all of a core). */
	int64_t cpu0 = cpu_ms(pid), t0 = test_now_ms();
	test_sleep_ms(1000); /* a measuring window, not a wait */
	int64_t used = cpu_ms(pid) - cpu0, wall = test_now_ms() - t0;
	if (used * 4 > wall)
		fail_msg("child used %lld ms of CPU in %lld ms while paused",
		         (long long)used, (long long)wall);

	/* Descriptors come back: the oldest connections close, and one the
	 * child had not accepted yet is served. */
	for (int i = 0; i < IDLE_CONNS - 20; i++) {
		close(conns[i]);
		conns[i] = -1;
	}
	int last = conns[IDLE_CONNS - 1];
	send_raw(last, "GET /metrics HTTP/1.1\r\nHost: x\r\n"
	               "Connection: close\r\n\r\n");
	struct raw_resp r;
	if (read_to_eof(last, r.text, sizeof(r.text), 10000) <= 0)
		fail_msg("accepting did not resume (got \"%s\")", r.text);
	raw_parse(&r);
	ASSERT_EQ(r.status, 200);
	char want[64];
	snprintf(want, sizeof(want), "evfn_http_accept_paused_total{port=\"%d\"} ",
	         port);
	const char *count = strstr(r.body, want);
	ASSERT_TRUE_MSG(count && atoll(count + strlen(want)) >= 1, r.body);
	assert_non_null(strstr(r.body, "# TYPE evfn_http_connections gauge\n"));

	/* Logged once, however many times accept() failed meanwhile. */
	ASSERT_EQ(read_line(ready[0], line, sizeof(line), 100), false);

	for (int i = 0; i < IDLE_CONNS; i++)
		if (conns[i] >= 0)
			close(conns[i]);
	close(quit[1]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(ready[0]);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("child ended with status %d", status);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_http_listen_pauses_when_out_of_descriptors),
	};
	return evfn_test_main("http-listen", tests);
}
