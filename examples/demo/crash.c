/* SPDX-License-Identifier: MIT */
/*
 * evfn-demo --crash: the demo killed midway and started again on the same
 * journal, then a count of what happened to every event across both runs.
 *
 * The parent runs the host (this binary again, --crash-host DIR RUN) on
 * one directory with a durable journal, SIGKILLs it at a random point of
 * its load, starts it again on the same directory, lets that run finish
 * and drain, and then checks from what each run wrote down:
 *
 *   witness-RUN.log, appended by the host with one write() a line, so a
 *   SIGKILL loses none that returned:
 *     S fn seq      an attempt starts (event log)
 *     W fn seq      an attempt failed or timed out and a retry follows
 *                   unless the event ends (event log)
 *     E fn seq      the event ended: success, dead letter, expiry,
 *                   hand-back or cancel (event log)
 *     A n0 n1 ...   events accepted so far per function (sampled every
 *                   20 ms: the floor of what run 1 accepted before the
 *                   kill)
 *     R fn n        run 2: events the journal gave back at start
 *                   (counted while every function is paused, before the
 *                   load starts)
 *     T fn n        run 2: events accepted in all, after the drain
 *
 * Its test sets EVFN_DEMO_CRASH_LOSE_JOURNAL=1 to remove the journal
 * between the runs: the check must then say NO.
 *
 * fn is the function's index in demo_functions, seq the event's sequence
 * number (evfn_event_seq(): unique across both runs, since a journal
 * continues above the numbers it holds).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

#define MAX_FUNCTIONS 16
#define SAMPLE_MS 20

/* ---- the host's side: writing the witness ------------------------------ */

struct demo_witness {
	int fd;
	atomic_bool stop;
	pthread_t sampler;
	bool sampling;
};

static int
function_index(const char *name)
{
	for (size_t i = 0; name && i < demo_function_count; i++)
		if (strcmp(demo_functions[i], name) == 0)
			return (int)i;
	return -1;
}

/* One line, one write(): appended whole, and kept by a SIGKILL once
 * write() returned. */
static void
witness_line(struct demo_witness *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
witness_line(struct demo_witness *w, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(line) &&
	    write(w->fd, line, (size_t)n) != n)
		fprintf(stderr, "evfn-demo: witness: %s\n", strerror(errno));
}

int
demo_witness_open(struct demo *d)
{
	char path[sizeof(d->root) + 32];
	snprintf(path, sizeof(path), "%s/witness-%d.log", d->root,
	         d->crash_run);
	struct demo_witness *w = calloc(1, sizeof(*w));
	if (!w)
		return EVFN_ENOMEM;
	w->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		int e = errno;
		free(w);
		return -e;
	}
	d->witness = w;
	return 0;
}

void
demo_witness_record(const evfn_record *rec, void *arg)
{
	struct demo *d = arg;
	evfn_record_kind kind = evfn_record_get_kind(rec);
	const evfn_event *ev = evfn_record_event(rec);
	int fn = function_index(evfn_record_function(rec));
	if (!ev || fn < 0)
		return;
	uint64_t seq = evfn_event_seq(ev);
	switch (kind) {
	case EVFN_RECORD_START:
		witness_line(d->witness, "S %d %" PRIu64 "\n", fn, seq);
		break;
	case EVFN_RECORD_RETRY:
	case EVFN_RECORD_TIMEOUT:
		witness_line(d->witness, "W %d %" PRIu64 "\n", fn, seq);
		break;
	case EVFN_RECORD_SUCCESS:
	case EVFN_RECORD_DEAD_LETTER:
	case EVFN_RECORD_EXPIRED:
	case EVFN_RECORD_HANDED_BACK:
	case EVFN_RECORD_CANCELLED:
		witness_line(d->witness, "E %d %" PRIu64 "\n", fn, seq);
		break;
	default:
		break;
	}
}

/* Events accepted so far, per function. */
static void
accepted_now(evfn_rt *rt, uint64_t *n)
{
	for (size_t i = 0; i < demo_function_count; i++) {
		evfn_stats *s;
		n[i] = 0;
		if (evfn_stats_take(rt, demo_functions[i], &s) == 0) {
			n[i] = evfn_stats_value(s, EVFN_STAT_ACCEPTED);
			evfn_stats_free(s);
		}
	}
}

static void *
sample_accepted(void *arg)
{
	struct demo *d = arg;
	while (!atomic_load(&d->witness->stop)) {
		uint64_t n[MAX_FUNCTIONS];
		accepted_now(d->rt, n);
		char line[256];
		int len = snprintf(line, sizeof(line), "A");
		for (size_t i = 0; i < demo_function_count; i++)
			len += snprintf(line + len, sizeof(line) - (size_t)len,
			                " %" PRIu64, n[i]);
		witness_line(d->witness, "%s\n", line);
		struct timespec ts = {0, SAMPLE_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int
demo_witness_pause_all(struct demo *d)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < demo_function_count; i++)
		rc = evfn_pause(d->rt, demo_functions[i]);
	return rc;
}

int
demo_witness_start(struct demo *d)
{
	if (d->crash_run == 2) {
		/* Every function is paused: what was accepted is exactly what
		 * the journal gave back. */
		uint64_t n[MAX_FUNCTIONS];
		accepted_now(d->rt, n);
		for (size_t i = 0; i < demo_function_count; i++) {
			witness_line(d->witness, "R %zu %" PRIu64 "\n", i, n[i]);
			int rc = evfn_resume(d->rt, demo_functions[i]);
			if (rc)
				return rc;
		}
	}
	if (pthread_create(&d->witness->sampler, NULL, sample_accepted, d))
		return EVFN_ENOMEM;
	d->witness->sampling = true;
	return 0;
}

void
demo_witness_finish(struct demo *d)
{
	struct demo_witness *w = d->witness;
	if (!w)
		return;
	if (w->sampling) {
		atomic_store(&w->stop, true);
		pthread_join(w->sampler, NULL);
	}
	uint64_t n[MAX_FUNCTIONS];
	if (d->rt) {
		accepted_now(d->rt, n);
		for (size_t i = 0; i < demo_function_count; i++)
			witness_line(w, "T %zu %" PRIu64 "\n", i, n[i]);
	}
	close(w->fd);
	free(w);
	d->witness = NULL;
}

/* ---- the parent's side: two runs, one kill ---------------------------- */

/* What both runs wrote about one invocation (an event at a function). */
struct inv {
	uint64_t seq; /* 0: a free slot */
	int fn;
	unsigned starts[2], retries[2], ends[2]; /* per run */
};

struct ledger {
	struct inv *v;
	size_t n, cap; /* open addressing, cap a power of two */
	uint64_t sampled[MAX_FUNCTIONS];   /* run 1's last A line */
	uint64_t recovered[MAX_FUNCTIONS]; /* R */
	uint64_t total2[MAX_FUNCTIONS];    /* T */
	bool have_r, have_t;
};

static size_t
slot_of(const struct ledger *l, uint64_t seq, int fn)
{
	uint64_t h = (seq * 0x9E3779B97F4A7C15ull) ^ (uint64_t)fn;
	size_t i = (size_t)(h >> 17) & (l->cap - 1);
	while (l->v[i].seq && (l->v[i].seq != seq || l->v[i].fn != fn))
		i = (i + 1) & (l->cap - 1);
	return i;
}

static struct inv *
inv_at(struct ledger *l, uint64_t seq, int fn)
{
	if ((l->n + 1) * 2 > l->cap) {
		struct ledger bigger = *l;
		bigger.cap = l->cap ? l->cap * 2 : 4096;
		bigger.v = calloc(bigger.cap, sizeof(*bigger.v));
		if (!bigger.v)
			return NULL;
		for (size_t i = 0; i < l->cap; i++)
			if (l->v[i].seq)
				bigger.v[slot_of(&bigger, l->v[i].seq,
				                 l->v[i].fn)] = l->v[i];
		free(l->v);
		*l = bigger;
	}
	struct inv *x = &l->v[slot_of(l, seq, fn)];
	if (!x->seq) {
		x->seq = seq;
		x->fn = fn;
		l->n++;
	}
	return x;
}

/* Reads witness-RUN.log into l. */
static bool
ledger_read(struct ledger *l, const char *root, int run)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/witness-%d.log", root, run);
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return false;
	}
	char line[512];
	bool ok = true;
	while (ok && fgets(line, sizeof(line), f)) {
		int fn;
		uint64_t seq;
		char tag = line[0];
		if ((tag == 'S' || tag == 'W' || tag == 'E') &&
		    sscanf(line + 1, "%d %" SCNu64, &fn, &seq) == 2 &&
		    fn >= 0 && (size_t)fn < demo_function_count) {
			struct inv *x = inv_at(l, seq, fn);
			ok = x != NULL;
			if (ok)
				(tag == 'S'   ? x->starts
				 : tag == 'W' ? x->retries
				              : x->ends)[run - 1]++;
		} else if (tag == 'A' && run == 1) {
			char *p = line + 1;
			for (size_t i = 0; i < demo_function_count; i++)
				l->sampled[i] = strtoull(p, &p, 10);
		} else if ((tag == 'R' || tag == 'T') &&
		           sscanf(line + 1, "%d %" SCNu64, &fn, &seq) == 2 &&
		           fn >= 0 && (size_t)fn < demo_function_count) {
			(tag == 'R' ? l->recovered : l->total2)[fn] = seq;
			*(tag == 'R' ? &l->have_r : &l->have_t) = true;
		}
		/* Anything else: a line cut by the kill (none: one write
		 * each), or a function of another version. */
	}
	fclose(f);
	return ok;
}

/* Per function, what both runs did. */
struct tally {
	uint64_t ended1;    /* distinct events ended in run 1 */
	uint64_t running;   /* an attempt running at the kill */
	uint64_t waiting;   /* started in run 1, waiting for a retry at
	                     * the kill */
	uint64_t rerun;     /* ended in run 1, seen again in run 2 (their
	                     * end had not reached the disk) */
	uint64_t ended2;    /* distinct events ended in run 2 */
	uint64_t ended;     /* distinct events ended in either run */
	uint64_t lost;      /* started in run 1, never ended */
	uint64_t unended2;  /* seen in run 2, not ended there */
	uint64_t twice;     /* ended twice within one run */
};

static void
tally(const struct ledger *l, struct tally *t)
{
	memset(t, 0, sizeof(*t) * demo_function_count);
	for (size_t i = 0; i < l->cap; i++) {
		const struct inv *x = &l->v[i];
		if (!x->seq)
			continue;
		struct tally *f = &t[x->fn];
		bool seen2 = x->starts[1] || x->ends[1];
		f->ended1 += x->ends[0] > 0;
		f->ended2 += x->ends[1] > 0;
		f->ended += x->ends[0] || x->ends[1];
		bool unended1 = x->starts[0] && !x->ends[0];
		f->running += unended1 && x->starts[0] > x->retries[0];
		f->waiting += unended1 && x->starts[0] == x->retries[0];
		f->rerun += x->ends[0] && seen2;
		f->lost += !x->ends[0] && !x->ends[1];
		f->unended2 += seen2 && !x->ends[1];
		f->twice += x->ends[0] > 1 || x->ends[1] > 1;
	}
}

static pid_t
host_spawn(const char *self, const char *root, int run, double seconds)
{
	char r[8], s[32];
	snprintf(r, sizeof(r), "%d", run);
	snprintf(s, sizeof(s), "%g", seconds);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execl(self, self, "--crash-host", root, r, "--seconds", s,
		      (char *)NULL);
		perror(self);
		_exit(127);
	}
	if (pid < 0)
		perror("fork");
	return pid;
}

/* Whether run 1 has accepted load yet (an A line with a count). */
static bool
under_load(const char *root)
{
	char path[256], line[512];
	snprintf(path, sizeof(path), "%s/witness-1.log", root);
	FILE *f = fopen(path, "r");
	bool loaded = false;
	while (f && !loaded && fgets(line, sizeof(line), f)) {
		if (line[0] != 'A')
			continue;
		char *p = line + 1;
		for (size_t i = 0; i < demo_function_count; i++)
			loaded |= strtoull(p, &p, 10) > 0;
	}
	if (f)
		fclose(f);
	return loaded;
}

static void
sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

/* The test's fault: the journal gone between the runs. */
static void
lose_journal(const char *root)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), "%s/journal.db%s", root,
		         suffixes[i]);
		unlink(path);
	}
	printf("==> the journal removed (EVFN_DEMO_CRASH_LOSE_JOURNAL)\n");
}

static bool
print_report(const struct ledger *l, const struct tally *t, int run2_status)
{
	printf("\nacross the crash, per function:\n"
	       "%-14s %15s %21s %10s %9s\n"
	       "%-14s %7s %7s %7s %6s %7s %10s %9s\n",
	       "", "published", "ended", "restart:", "",
	       "function", "run 1", "run 2", "run 1", "run 2", "all",
	       "recovered", "ran again");
	bool all = run2_status == 0 && l->have_r && l->have_t;
	struct tally sum = {0};
	for (size_t i = 0; i < demo_function_count; i++) {
		const struct tally *f = &t[i];
		uint64_t new2 = l->total2[i] - l->recovered[i];
		/* Every event accepted in run 1 ended there or came back at
		 * restart; every event of run 2 ended there, once. */
		bool good = f->lost == 0 && f->unended2 == 0 && f->twice == 0 &&
		            l->total2[i] >= l->recovered[i] &&
		            f->ended2 == l->total2[i] &&
		            f->ended >= l->sampled[i] + new2;
		all &= good;
		char floor[24];
		snprintf(floor, sizeof(floor), ">=%" PRIu64, l->sampled[i]);
		printf("%-14s %7s %7" PRIu64 " %7" PRIu64 " %6" PRIu64
		       " %7" PRIu64 " %10" PRIu64 " %9" PRIu64 "  %s\n",
		       demo_functions[i], floor, new2, f->ended1, f->ended2,
		       f->ended, l->recovered[i], f->running + f->rerun,
		       good ? "ok" : "MISSING");
		if (f->lost)
			printf("  %" PRIu64 " seen and never ended\n", f->lost);
		if (f->unended2)
			printf("  %" PRIu64 " seen in run 2 and not ended\n",
			       f->unended2);
		if (f->twice)
			printf("  %" PRIu64 " ended twice in one run\n",
			       f->twice);
		sum.running += f->running;
		sum.waiting += f->waiting;
		sum.rerun += f->rerun;
		sum.ended += l->recovered[i];
	}
	/* The rest of what came back had not started: queued, delayed. */
	uint64_t again = sum.running + sum.waiting + sum.rerun;
	uint64_t queued = sum.ended > again ? sum.ended - again : 0;
	printf("published: accepted by run 1 (at least: its count %d ms before "
	       "the kill at most),\n"
	       "and new in run 2; ended: events that ended in run 1, in run 2, "
	       "and in either (each\n"
	       "event once); recovered: what the journal gave back at the "
	       "restart (run 2 ended\n"
	       "them): %" PRIu64 " queued or delayed, %" PRIu64 " waiting for a "
	       "retry, and those that ran again:\n"
	       "%" PRIu64 " attempts running at the kill, %" PRIu64 " events "
	       "that had ended but whose end was\n"
	       "not yet on disk (at least once: the journal's bound on "
	       "duplicates)\n",
	       SAMPLE_MS, queued, sum.waiting, sum.running, sum.rerun);
	if (run2_status != 0)
		printf("run 2 did not finish cleanly (status %d)\n", run2_status);
	printf("every accepted event accounted for across the crash: %s\n",
	       all ? "yes" : "NO");
	return all;
}

int
demo_crash_main(const char *self, double seconds)
{
	char root[64];
	snprintf(root, sizeof(root), "/tmp/evfn-demo.XXXXXX");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	srand((unsigned)(now.tv_nsec ^ getpid()));
	double at = seconds * (0.3 + 0.4 * (double)rand() / RAND_MAX);
	printf("evfn-demo --crash: run 1 on a durable journal under %s, "
	       "SIGKILLed about %.1f s into its load;\nthen run 2 on the same "
	       "directory and journal for %g s, drained\n\n",
	       root, at, seconds);

	int status = 1;
	pid_t pid = host_spawn(self, root, 1, seconds);
	if (pid > 0) {
		/* Killed at a random point of its load, not of its setup. */
		double until = demo_now_s() + 30;
		while (!under_load(root) && waitpid(pid, NULL, WNOHANG) == 0 &&
		       demo_now_s() < until)
			sleep_s(0.01);
		sleep_s(at);
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		printf("\n\n==> run 1 %s\n\n",
		       WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL
		               ? "killed (SIGKILL)"
		               : "ended before the kill");
		const char *lose = getenv("EVFN_DEMO_CRASH_LOSE_JOURNAL");
		if (lose && strcmp(lose, "1") == 0)
			lose_journal(root);
		pid = host_spawn(self, root, 2, seconds);
	}
	if (pid > 0) {
		int st;
		waitpid(pid, &st, 0);
		status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	struct ledger l = {0};
	bool ok = ledger_read(&l, root, 1) && ledger_read(&l, root, 2);
	struct tally t[MAX_FUNCTIONS];
	if (ok) {
		tally(&l, t);
		ok = print_report(&l, t, status);
	}
	free(l.v);
	demo_remove_tree(root);
	return ok ? 0 : 1;
}
