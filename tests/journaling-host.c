/* SPDX-License-Identifier: MIT */
/*
 * The host process that test-journaling.c kills: a runtime with a
 * journal under load (fan-out to two functions, retries, permanent
 * failures, delays, ordering keys), writing what happens to a log file
 * the test reads back. Every line is one write() to a file opened with
 * O_APPEND, so a SIGKILL never leaves half a line:
 *
 *   P gen id          the publish of id returned 0 (it is journaled)
 *   S gen fn id n     fn's attempt n of id started
 *   O gen fn id tid   ... succeeded on thread tid
 *   R gen fn id       ... asked for a retry
 *   F gen fn id       ... failed for good
 *   J gen c id        c's attempt start is on disk
 *   D fn id code      (final) a dead letter in the store, with its code
 *   I fn ok|bad       (final) the accounting invariant of fn
 *   Q orphans n       (final) quiet: nothing left to run
 *
 * usage: journaling-host JOURNAL LOG GEN durable|fast N [final|hang]
 *        [--checkpoint-kill K]
 * N events are published (ids gGEN-0 ...); then the host waits to be
 * killed, or, with "final", runs until nothing is left, reports and
 * exits 0. "hang" publishes one event to a function whose handler never
 * returns (one attempt allowed): killed while it runs, its attempt
 * crashed. --checkpoint-kill K kills the host itself during its K-th
 * checkpoint of the journal (checkpoints made frequent).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <evfn.h>

#include "journal-internal.h"
#include "journaling-internal.h"

static int log_fd;
static int gen;
static int checkpoint_kill;

static void
logline(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
logline(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (write(log_fd, buf, (size_t)n) != n)
		abort();
}

/* The number after the dash of an id gG-N: what decides an event's fate. */
static long
id_number(const char *id)
{
	const char *dash = strchr(id, '-');
	return dash ? strtol(dash + 1, NULL, 10) : -1;
}

static void
spin_us(long us)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L +
	               (b.tv_nsec - a.tv_nsec) / 1000 <
	       us);
}

/* a: every tenth event fails for good, every fourth asks for one retry. */
static int
handler_a(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	const char *id = evfn_event_id(ev);
	unsigned attempt = evfn_ctx_attempt(ctx);
	long n = id_number(id);
	logline("S %d a %s %u\n", gen, id, attempt);
	spin_us(200);
	if (n % 10 == 7) {
		logline("F %d a %s\n", gen, id);
		return EVFN_FAIL;
	}
	if (n % 4 == 0 && attempt == 1) {
		logline("R %d a %s\n", gen, id);
		return EVFN_RETRY;
	}
	logline("O %d a %s %ld\n", gen, id, (long)syscall(SYS_gettid));
	return EVFN_OK;
}

/* b: every fourth event (another quarter) asks for one retry. */
static int
handler_b(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	const char *id = evfn_event_id(ev);
	unsigned attempt = evfn_ctx_attempt(ctx);
	logline("S %d b %s %u\n", gen, id, attempt);
	spin_us(100);
	if (id_number(id) % 4 == 1 && attempt == 1) {
		logline("R %d b %s\n", gen, id);
		return EVFN_RETRY;
	}
	logline("O %d b %s %ld\n", gen, id, (long)syscall(SYS_gettid));
	return EVFN_OK;
}

/* c: never returns (the host is killed while it runs). Its start is
 * journaled without a wait; a durable publish after it returns once
 * everything before it is on disk, which "J" then says. */
static int
handler_c(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	logline("S %d c %s %u\n", gen, evfn_event_id(ev),
	        evfn_ctx_attempt(ctx));
	if (evfn_ctx_emit(ctx, "job", "sync", 4, NULL) == 0)
		logline("J %d c %s\n", gen, evfn_event_id(ev));
	for (;;)
		pause();
	return EVFN_OK;
}

static void
die_in_checkpoint(void *arg)
{
	static int n;
	(void)arg;
	if (++n == checkpoint_kill)
		raise(SIGKILL);
}

static void
tune(struct evfn__journal_options *o)
{
	o->checkpoint_pages = 16;
	o->checkpoint_hook = die_in_checkpoint;
}

static void
check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "journaling-host: %s: %s\n", what,
		        evfn_strerror(rc));
		exit(2);
	}
}

static void
register_fn(evfn_rt *rt, const char *name, evfn_handler h, int attempts,
            int64_t timeout_ms)
{
	evfn_fn_options *o;
	check(evfn_fn_options_new(&o), "options");
	check(evfn_fn_options_set_attempts(o, attempts), "attempts");
	check(evfn_fn_options_set_timeout_ms(o, timeout_ms), "timeout");
	check(evfn_fn_options_set_backoff(o, EVFN_BACKOFF_EXPONENTIAL, 5, 2.0,
	                                  20, EVFN_JITTER_FULL),
	      "backoff");
	check(evfn_register(rt, name, h, NULL, o, NULL), name);
	evfn_fn_options_free(o);
}

/* Publishes event i: to fn alone, or (NULL) to the subscribers of
 * "job". */
static void
publish(evfn_rt *rt, const char *fn, long i)
{
	evfn_event *ev;
	char id[64];
	snprintf(id, sizeof(id), "g%d-%ld", gen, i);
	check(evfn_event_new(&ev, fn ? fn : "job", id, strlen(id)), "event");
	check(evfn_event_set_id(ev, id), "id");
	if (i % 3 == 1) {
		char key[16];
		snprintf(key, sizeof(key), "k%ld", i % 5);
		check(evfn_event_set_ordering_key(ev, key), "key");
	}
	if (i % 7 == 3)
		check(evfn_event_set_delay_ms(ev, 20), "delay");
	int rc = fn ? evfn_publish_to(rt, fn, ev, NULL)
	            : evfn_publish(rt, ev, NULL);
	if (rc == 0)
		logline("P %d %s\n", gen, id);
	else if (rc != EVFN_EQUEUEFULL)
		check(rc, "publish");
	evfn_event_unref(ev);
}

/* Whether fn has nothing left to run; checks its invariant once so. */
static bool
quiet(evfn_rt *rt, const char *fn, bool report)
{
	evfn_stats *s;
	check(evfn_stats_take(rt, fn, &s), "stats");
	uint64_t left = evfn_stats_value(s, EVFN_STAT_IN_FLIGHT) +
	                evfn_stats_value(s, EVFN_STAT_QUEUED) +
	                evfn_stats_value(s, EVFN_STAT_WAITING_RETRY) +
	                evfn_stats_value(s, EVFN_STAT_DELAYED);
	if (report) {
		uint64_t ended = evfn_stats_value(s, EVFN_STAT_SUCCEEDED) +
		                 evfn_stats_value(s, EVFN_STAT_DEAD_LETTERED) +
		                 evfn_stats_value(s, EVFN_STAT_EXPIRED) +
		                 evfn_stats_value(s, EVFN_STAT_HANDED_BACK) +
		                 evfn_stats_value(s, EVFN_STAT_CANCELLED);
		logline("I %s %s\n", fn,
		        evfn_stats_value(s, EVFN_STAT_ACCEPTED) == ended + left
		                ? "ok"
		                : "bad");
	}
	evfn_stats_free(s);
	return left == 0;
}

int
main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: journaling-host JOURNAL LOG GEN "
		                "durable|fast N [final|hang] "
		                "[--checkpoint-kill K]\n");
		return 2;
	}
	const char *path = argv[1];
	gen = atoi(argv[3]);
	bool fast = strcmp(argv[4], "fast") == 0;
	long n = atol(argv[5]);
	bool final = false, hang = false;
	for (int i = 6; i < argc; i++) {
		if (strcmp(argv[i], "final") == 0)
			final = true;
		else if (strcmp(argv[i], "hang") == 0)
			hang = true;
		else if (strcmp(argv[i], "--checkpoint-kill") == 0 &&
		         i + 1 < argc)
			checkpoint_kill = atoi(argv[++i]);
	}
	log_fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return 2;
	if (checkpoint_kill)
		evfn__journaling_tune = tune;

	evfn_rt_options *o;
	check(evfn_rt_options_new(&o), "options");
	check(evfn_rt_options_set_workers(o, 2, 2), "workers");
	check(evfn_rt_options_set_journal(o, path,
	                                  fast ? EVFN_JOURNAL_FAST
	                                       : EVFN_JOURNAL_DURABLE),
	      "journal");
	evfn_rt *rt;
	check(evfn_rt_new(&rt, o), "runtime");
	evfn_rt_options_free(o);
	register_fn(rt, "a", handler_a, 3, 3000);
	register_fn(rt, "b", handler_b, 3, 3000);
	register_fn(rt, "c", handler_c, 1, 600000);
	check(evfn_subscribe(rt, "job", "a"), "subscribe a");
	check(evfn_subscribe(rt, "job", "b"), "subscribe b");
	check(evfn_rt_start(rt), "start");

	if (hang)
		publish(rt, "c", 0);
	for (long i = 0; i < n; i++)
		publish(rt, NULL, i);
	if (!final) {
		for (;;)
			pause(); /* until killed */
	}
	/* Recovered retries and delays take at most a few backoffs. */
	bool all_quiet = false;
	for (int i = 0; i < 2000 && !all_quiet; i++) {
		all_quiet = quiet(rt, "a", false) && quiet(rt, "b", false);
		if (!all_quiet)
			usleep(10000);
	}
	if (!all_quiet) {
		fprintf(stderr, "journaling-host: work left after 20 s\n");
		return 3;
	}
	(void)quiet(rt, "a", true);
	(void)quiet(rt, "b", true);
	size_t max = evfn_dead_letter_count(rt);
	evfn_dead_letter **dls = calloc(max + 1, sizeof(*dls));
	int k = evfn_dead_letters(rt, dls, max, 0);
	check(k, "dead letters");
	for (int i = 0; i < k; i++) {
		logline("D %s %s %s\n", evfn_dead_letter_function(dls[i]),
		        evfn_event_id(evfn_dead_letter_event(dls[i])),
		        evfn_err_name(evfn_dead_letter_code(dls[i])));
		evfn_dead_letter_unref(dls[i]);
	}
	free(dls);
	logline("Q orphans %llu\n",
	        (unsigned long long)evfn_rt_journal_orphans(rt));
	check(evfn_rt_drain(rt, 1000, NULL, NULL), "drain");
	check(evfn_rt_free(rt), "free");
	close(log_fd);
	return 0;
}
