/* SPDX-License-Identifier: MIT */
/*
 * evfn-demo: a host that wires the parts of this directory together on one
 * runtime, drives them with its own load generator for a while, then
 * drains and prints what happened. It exits 0 when every accepted event
 * ended exactly once. Everything listens on loopback and writes to one
 * temporary directory, removed at exit.
 *
 * Usage: evfn-demo [--seconds N] [--serve | --crash]
 *   --seconds N  length of the load phase (default 20)
 *   --serve      keep serving after the load phase until SIGINT/SIGTERM
 *   --crash      run the host with a durable journal, SIGKILL it midway,
 *                run it again on the same journal and directory, and
 *                show that no accepted event was lost (crash.c)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw's FTW_DEPTH and FTW_PHYS */
#endif
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

const char *const demo_functions[] = {
	"payment", "bookkeeping", "resize", "publish", "cleanup",
	"report",  "report-status", "flaky",
};
const size_t demo_function_count =
	sizeof(demo_functions) / sizeof(demo_functions[0]);

double
demo_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Diagnostics worth a look (a handler past its deadline, a refused
 * trigger event) go to stderr. This runs under evfn's locks: no evfn
 * calls here. */
static void
log_to_stderr(evfn_log_level level, const char *msg, void *arg)
{
	if (level >= EVFN_LOG_ERROR)
		fprintf(stderr, "\nevfn: %s\n", msg);
}

/* ---- temporary directories --------------------------------------------- */

static bool
make_dir(const char *path)
{
	return mkdir(path, 0700) == 0 || errno == EEXIST;
}

/* The run's directories: a new temporary one, or (a --crash host) the
 * one given, which the run before may have filled. */
static int
make_dirs(struct demo *d, const char *given)
{
	if (given) {
		snprintf(d->root, sizeof(d->root), "%s", given);
	} else {
		snprintf(d->root, sizeof(d->root), "/tmp/evfn-demo.XXXXXX");
		if (!mkdtemp(d->root)) {
			perror("mkdtemp");
			return -1;
		}
	}
	snprintf(d->inbox, sizeof(d->inbox), "%s/inbox", d->root);
	snprintf(d->staging, sizeof(d->staging), "%s/staging", d->root);
	snprintf(d->outbox, sizeof(d->outbox), "%s/outbox", d->root);
	snprintf(d->db, sizeof(d->db), "%s/ledger.db", d->root);
	if (!make_dir(d->inbox) || !make_dir(d->staging) ||
	    !make_dir(d->outbox)) {
		perror("mkdir");
		return -1;
	}
	return 0;
}

static int
remove_entry(const char *path, const struct stat *st, int flag,
             struct FTW *ftw)
{
	return remove(path);
}

void
demo_remove_tree(const char *root)
{
	if (root[0] && strstr(root, "/tmp/evfn-demo.") == root)
		nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
remove_dirs(struct demo *d)
{
	if (!d->crash_run) /* else the parent's, which removes it */
		demo_remove_tree(d->root);
}

/* ---- the run ------------------------------------------------------------ */

struct sample {
	double t;
	uint64_t accepted, succeeded, dead;
};

static struct sample
take_sample(evfn_rt *rt, uint64_t *pending)
{
	struct sample x = {demo_now_s(), 0, 0, 0};
	evfn_stats *s;
	*pending = 0;
	if (evfn_stats_take(rt, NULL, &s) == 0) {
		x.accepted = evfn_stats_value(s, EVFN_STAT_ACCEPTED);
		x.succeeded = evfn_stats_value(s, EVFN_STAT_SUCCEEDED);
		x.dead = evfn_stats_value(s, EVFN_STAT_DEAD_LETTERED) +
		         evfn_stats_value(s, EVFN_STAT_EXPIRED);
		*pending = demo_pending(s);
		evfn_stats_free(s);
	}
	return x;
}

/* Waits up to ms for SIGINT or SIGTERM (blocked in every thread, so they
 * queue up for this call); true when one came. */
static bool
interrupted(long ms)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	return sigtimedwait(&set, NULL, &ts) > 0;
}

/* The load phase: a progress line four times a second, with rates over
 * the last second. On a terminal it rewrites itself; in a log it is
 * printed once a second. */
static void
run_load(struct demo *d, double seconds)
{
	bool tty = isatty(STDOUT_FILENO);
	struct sample ring[5];
	uint64_t pending;
	double start = demo_now_s();
	printf("per second over the last second: events accepted, succeeded, "
	       "dead-lettered or expired;\n"
	       "pending: events accepted and not ended yet (running, queued, "
	       "waiting for a retry or delay)\n");
	for (int i = 0; i < 5; i++)
		ring[i] = take_sample(d->rt, &pending);
	for (unsigned tick = 1; demo_now_s() - start < seconds; tick++) {
		if (interrupted(250))
			break;
		struct sample now = take_sample(d->rt, &pending);
		struct sample old = ring[tick % 5];
		ring[tick % 5] = now;
		double dt = now.t - old.t > 0 ? now.t - old.t : 1;
		if (!tty && tick % 4)
			continue;
		printf("%s%5.1fs  accepted %5.0f/s  succeeded %5.0f/s  "
		       "dead %4.0f/s  pending %3" PRIu64 "%s",
		       tty ? "\r" : "", now.t - start,
		       (double)(now.accepted - old.accepted) / dt,
		       (double)(now.succeeded - old.succeeded) / dt,
		       (double)(now.dead - old.dead) / dt, pending,
		       tty ? "  " : "\n");
		fflush(stdout);
	}
	if (tty)
		printf("\n");
}

/* After the load: wait (bounded) until nothing is pending, so that the
 * drain has nothing to hand back. */
static void
settle(evfn_rt *rt)
{
	uint64_t pending;
	double until = demo_now_s() + 10;
	do
		take_sample(rt, &pending);
	while (pending && demo_now_s() < until && !interrupted(20));
}

static void
count_handback(const evfn_event *ev, const char *fn_name, void *arg)
{
	(*(unsigned *)arg)++;
}

static int
setup(struct demo *d)
{
	evfn_rt_options *ro;
	int rc = evfn_rt_options_new(&ro);
	if (rc)
		return rc;
	/* The pool grows while events wait: hanging downstream calls and
	 * report rendering must not starve the webhook. */
	evfn_rt_options_set_workers(ro, 2, 16);
	evfn_rt_options_set_source(ro, "evfn-demo");
	evfn_rt_options_set_log(ro, log_to_stderr, NULL);
	/* Accepted events kept in a journal: a crash of the demo would
	 * lose at most its last 10 ms of them (fast mode); none with
	 * --crash, whose journal is durable (a publish returns once its
	 * event is on disk), and whose event log is its witness. */
	char journal[sizeof(d->root) + 16];
	snprintf(journal, sizeof(journal), "%s/journal.db", d->root);
	rc = evfn_rt_options_set_journal(ro, journal,
	                                 d->crash_run ? EVFN_JOURNAL_DURABLE
	                                              : EVFN_JOURNAL_FAST);
	if (rc == 0 && d->crash_run)
		rc = evfn_rt_options_set_event_log(ro, demo_witness_record, d);
	if (rc == 0)
		rc = evfn_rt_new(&d->rt, ro);
	evfn_rt_options_free(ro);
	if (rc)
		return rc;
	/* One HTTP server for every route: 127.0.0.1, a port the system
	 * picks, the built-in routes GET /healthz and GET /metrics (the
	 * Prometheus text of evfn_metrics_prometheus()), and the live status
	 * page at /status, whose dead-letter buttons need the token. */
	evfn_http_options *ho;
	if ((rc = evfn_http_options_new(&ho)))
		return rc;
	rc = evfn_http_options_set_status(ho, "/status", DEMO_STATUS_TOKEN);
	if (rc == 0)
		rc = evfn_http_new(&d->http, d->rt, ho);
	evfn_http_options_free(ho);
	if (rc)
		return rc;
	d->port = evfn_http_port(d->http);
	/* Functions, routes and triggers may all be set up before start. */
	if ((rc = demo_payments_setup(d)) ||
	    (rc = demo_uploads_setup(d)) || (rc = demo_reports_setup(d)) ||
	    (rc = demo_flaky_setup(d)))
		return rc;
	/* A restart counts what the journal gives back before anything
	 * runs. */
	if (d->crash_run == 2 && (rc = demo_witness_pause_all(d)))
		return rc;
	if ((rc = evfn_rt_start(d->rt)))
		return rc;
	return d->crash_run ? demo_witness_start(d) : 0;
}

/* Frees the runtime, waiting (up to 10 s) for handlers that overran
 * their deadline to return: their threads cannot be stopped, and the
 * runtime refuses to go (EVFN_EBUSY) while they run. */
static int
free_runtime(evfn_rt *rt)
{
	int rc;
	for (int i = 0; i < 1000; i++) {
		if ((rc = evfn_rt_free(rt)) != EVFN_EBUSY)
			return rc;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	return rc;
}

int
main(int argc, char **argv)
{
	double seconds = 20;
	bool serve = false, crash = false;
	const char *crash_dir = NULL;
	int crash_run = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = strtod(argv[++i], NULL);
		} else if (strcmp(argv[i], "--serve") == 0) {
			serve = true;
		} else if (strcmp(argv[i], "--crash") == 0) {
			crash = true;
		} else if (strcmp(argv[i], "--crash-host") == 0 &&
		           i + 2 < argc) {
			/* Internal: one run of --crash (crash.c). */
			crash_dir = argv[++i];
			crash_run = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [--seconds N] "
			        "[--serve | --crash]\n", argv[0]);
			return 2;
		}
	}
	if (!(seconds > 0))
		seconds = 20;
	if ((crash && serve) || (crash_dir && (crash_run < 1 ||
	                                       crash_run > 2))) {
		fprintf(stderr, "%s: --crash runs the load, without --serve\n",
		        argv[0]);
		return 2;
	}
	if (crash)
		return demo_crash_main(argv[0], seconds);

	/* Block SIGINT and SIGTERM before any thread starts, so every
	 * thread inherits the mask and interrupted() receives them; and let
	 * a client that hangs up not kill the process. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	static struct demo d;
	d.crash_run = crash_run;
	d.id_base = (unsigned)crash_run * 1000000u;
	if (make_dirs(&d, crash_dir) != 0) {
		remove_dirs(&d);
		return 1;
	}
	int rc = crash_run ? demo_witness_open(&d) : 0;
	if (!rc)
		rc = setup(&d);
	struct demo_load *load = NULL;
	if (!rc)
		rc = demo_load_start(&d, &load);
	if (rc) {
		fprintf(stderr, "evfn-demo: setup: %s\n", evfn_strerror(rc));
		demo_uploads_stop(&d);
		evfn_http_free(d.http);
		evfn_rt_drain(d.rt, 1000, NULL, NULL);
		demo_witness_finish(&d);
		free_runtime(d.rt);
		demo_reports_free(&d);
		remove_dirs(&d);
		return 1;
	}

	printf("evfn %s demo: http://127.0.0.1:%d, files and the journal "
	       "under %s\n"
	       "load for %g s: signed Stripe webhooks, image uploads, "
	       "report requests, a flaky downstream\n\n",
	       evfn_version_string(), d.port, d.root, seconds);
	double start = demo_now_s();
	run_load(&d, seconds);
	demo_load_stop(load);
	double elapsed = demo_now_s() - start;

	if (serve) {
		printf("\nserving at http://127.0.0.1:%d until Ctrl-C:\n"
		       "  status page: http://127.0.0.1:%d/status (token "
		       DEMO_STATUS_TOKEN ")\n"
		       "  curl http://127.0.0.1:%d/metrics\n"
		       "  curl http://127.0.0.1:%d/healthz\n"
		       "  curl -d '{}' http://127.0.0.1:%d/reports   "
		       "then curl -d <id> .../report-status\n"
		       "  cp some.pgm %s/   (a binary PGM)\n",
		       d.port, d.port, d.port, d.port, d.port, d.inbox);
		fflush(stdout);
		while (!interrupted(1000))
			;
		elapsed = demo_now_s() - start;
	}

	/* Shut down in order: no new arrivals, let the work finish, drain,
	 * then free the server (before the runtime, which it uses). */
	demo_uploads_stop(&d);
	settle(d.rt);
	unsigned handed_back = 0;
	rc = evfn_rt_drain(d.rt, 2000, count_handback, &handed_back);
	printf("\ndrained (%s), %u events handed back\n\n",
	       rc == 0 ? "nothing in flight" : evfn_strerror(rc), handed_back);
	demo_load_print(load);
	printf("\n");
	bool ok = demo_summary_print(&d, elapsed);

	demo_witness_finish(&d);
	evfn_http_free(d.http);
	if (free_runtime(d.rt) != 0)
		ok = false;
	demo_load_free(load);
	demo_reports_free(&d);
	remove_dirs(&d);
	return ok ? 0 : 1;
}
