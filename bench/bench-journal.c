/* SPDX-License-Identifier: MIT */
/*
 * Journal benchmark: one workload per process, one JSON object on stdout.
 *
 *   durable   P producers append for a while in durable mode, each
 *             waiting for its batch (of --batch events) to be on disk:
 *             events/s, commits (fsyncs) and the raw fsync latency of
 *             the same directory, measured in the same process, which
 *             bounds what P waiting producers can reach.
 *   dispatch  N no-op events through an evfn runtime (2 workers), the
 *             producer building each, appending it to a fast-mode
 *             journal and publishing it, the handler ending it: what the
 *             journal adds to dispatch until it is wired in (--journal
 *             off: the same loop without it); --rate paces the producer.
 *   recover   N pending events written, the file closed, then opened and
 *             recovered into records: seconds.
 *   steady    --seconds of appends and ends with --window events always
 *             pending: the file's size over time.
 *
 * --through runtime runs durable, dispatch and recover through the
 * runtime's own journal (evfn_rt_options_set_journal()) instead of the
 * journal's calls: P producers publishing to a durable runtime (with
 * --batch N, N events per evfn_publish_batch()); no-op
 * dispatch with a fast (or durable) journal; recovery timed as
 * evfn_rt_start() re-admitting N pending events.
 *
 * bench/run.py drives it (--only journal); see bench/README.md.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <evfn.h>

#include "common-internal.h"
#include "dispatch-internal.h"
#include "event-internal.h"
#include "histogram-internal.h"
#include "journal-internal.h"

static struct {
	const char *workload;
	const char *dir;
	const char *journal; /* dispatch: fast, durable or off */
	int producers;
	int batch;
	long events;
	double seconds;
	long window;
	int64_t flush_ms;
	size_t payload;
	double rate;      /* dispatch: events/s, 0 for as fast as possible */
	bool through_rt;  /* --through runtime */
} arg = {
	.workload = "durable",
	.dir = NULL,
	.journal = "fast",
	.producers = 1,
	.batch = 1,
	.events = 1000000,
	.seconds = 3,
	.window = 10000,
	.flush_ms = 10,
	.payload = 64,
};

static char path[512];
static char dir_made[400];

static int64_t
now_ns(void)
{
	return evfn__now_ns();
}

static void
die(const char *what, int rc)
{
	fprintf(stderr, "bench-journal: %s: %s (%s)\n", what,
	        evfn_strerror(rc), evfn_err_name(rc));
	exit(1);
}

static void
check(int rc, const char *what)
{
	if (rc < 0)
		die(what, rc);
}

static long long
size_of(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

static long long
journal_bytes(void)
{
	char wal[600];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	return size_of(path) + size_of(wal);
}

static void
make_path(void)
{
	const char *base = arg.dir ? arg.dir : ".";
	snprintf(dir_made, sizeof(dir_made), "%s/bench-journal-XXXXXX", base);
	if (!mkdtemp(dir_made)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/journal.db", dir_made);
}

static void
remove_path(void)
{
	char p[600];
	static const char *const suffixes[] = {"", "-wal", "-shm", ".fsync"};
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(suffixes); i++) {
		snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
		unlink(p);
	}
	rmdir(dir_made);
}

static struct evfn__journal *
open_journal(enum evfn__journal_mode mode)
{
	struct evfn__journal_options o;
	evfn__journal_options_init(&o);
	o.mode = mode;
	o.flush_ns = arg.flush_ms * EVFN__NS_PER_MS;
	if (o.sync_ns < o.flush_ns)
		o.sync_ns = o.flush_ns;
	struct evfn__journal *j;
	check(evfn__journal_open(&j, path, &o), "open");
	return j;
}

/* A published event with a payload of arg.payload bytes. */
static evfn_event *
bench_event(uint64_t seq)
{
	char *data = calloc(1, arg.payload + 1);
	memset(data, 'x', arg.payload);
	evfn_event *ev;
	check(evfn_event_new(&ev, "bench.event", data, arg.payload), "event");
	free(data);
	evfn__event_freeze(ev, seq, "bench", now_ns());
	return ev;
}

/* The median of a few write+fdatasync rounds of one 4 KiB page in the
 * journal's directory: the disk's commit latency. */
static double
fsync_us(void)
{
	char p[600];
	snprintf(p, sizeof(p), "%s.fsync", path);
	int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	char page[4096];
	memset(page, 1, sizeof(page));
	enum { ROUNDS = 31 };
	double us[ROUNDS];
	for (int i = 0; i < ROUNDS; i++) {
		int64_t t0 = now_ns();
		if (pwrite(fd, page, sizeof(page), (i % 8) * 4096) < 0 ||
		    fdatasync(fd) < 0)
			return -1;
		us[i] = (double)(now_ns() - t0) / 1e3;
	}
	close(fd);
	unlink(p);
	for (int i = 1; i < ROUNDS; i++)
		for (int k = i; k > 0 && us[k - 1] > us[k]; k--) {
			double t = us[k];
			us[k] = us[k - 1];
			us[k - 1] = t;
		}
	return us[ROUNDS / 2];
}

/* Commit delays as p50, p99 and max from the journal's histogram. */
static void
print_delays(struct evfn__journal *j)
{
	uint64_t counts[EVFN__HIST_BUCKETS], total = 0;
	evfn__journal_commit_delays(j, counts);
	for (unsigned i = 0; i < EVFN__HIST_BUCKETS; i++)
		total += counts[i];
	double q[2] = {0.5, 0.99}, v[2] = {0, 0};
	for (int k = 0; k < 2 && total; k++) {
		uint64_t want = (uint64_t)(q[k] * (double)total), seen = 0;
		for (unsigned i = 0; i < EVFN__HIST_BUCKETS; i++) {
			seen += counts[i];
			if (seen > want) {
				v[k] = (double)evfn__hist_upper(i) / 1e6;
				break;
			}
		}
	}
	struct evfn__journal_stats s;
	evfn__journal_stats_get(j, &s);
	printf(", \"commit_delay_p50_ms\": %.3f, \"commit_delay_p99_ms\": %.3f"
	       ", \"commit_delay_max_ms\": %.3f",
	       v[0], v[1], (double)s.commit_delay_max_ns / 1e6);
}

/* ---- durable: producers waiting for their batches ---------------- */

static struct evfn__journal *dj;
static uint32_t dfn;
static atomic_uint_fast64_t next_seq;
static atomic_bool stop;
static atomic_long appended;

static void *
durable_producer(void *unused)
{
	(void)unused;
	evfn_event *ev = bench_event(1);
	struct evfn__journal_entry *e = calloc((size_t)arg.batch, sizeof(*e));
	long mine = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint64_t seq = atomic_fetch_add(&next_seq, (uint64_t)arg.batch);
		for (int i = 0; i < arg.batch; i++)
			e[i] = (struct evfn__journal_entry){seq + (uint64_t)i,
			                                    ev, &dfn, 1, NULL};
		check(evfn__journal_append_many(dj, e, (size_t)arg.batch),
		      "append");
		mine += arg.batch;
	}
	atomic_fetch_add(&appended, mine);
	free(e);
	evfn_event_unref(ev);
	return NULL;
}

/* A runtime with 2 workers and a no-op function "bench" (the handler
 * given), journaling to path in mode unless journal is NULL. */
static evfn_rt *
bench_rt(const char *journal, evfn_journal_mode mode, evfn_handler h)
{
	evfn_rt_options *ro;
	evfn_fn_options *fo;
	evfn_rt *rt;
	check(evfn_rt_options_new(&ro), "rt options");
	check(evfn_rt_options_set_workers(ro, 2, 2), "workers");
	if (journal)
		check(evfn_rt_options_set_journal(ro, journal, mode),
		      "journal");
	check(evfn_rt_new(&rt, ro), "runtime");
	evfn_rt_options_free(ro);
	check(evfn_fn_options_new(&fo), "fn options");
	check(evfn_fn_options_set_queue_capacity(fo, 1 << 22), "capacity");
	check(evfn_register(rt, "bench", h, NULL, fo, NULL), "register");
	evfn_fn_options_free(fo);
	return rt;
}

static evfn_rt *durable_rt;

static int
plain_noop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)ev;
	(void)userdata;
	return EVFN_OK;
}

/* Each publish returns once its event is on disk; with --batch N, each
 * evfn_publish_batch() of N events once all N are (one append). */
static void *
durable_rt_producer(void *unused)
{
	(void)unused;
	char payload[256] = {0};
	size_t len = arg.payload < sizeof(payload) ? arg.payload
	                                          : sizeof(payload);
	evfn_event *evs[EVFN_BATCH_MAX];
	int batch = arg.batch < EVFN_BATCH_MAX ? arg.batch : EVFN_BATCH_MAX;
	long mine = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (batch <= 1) {
			check(evfn_invoke_async(durable_rt, "bench", payload,
			                        len, NULL),
			      "invoke_async");
			mine++;
			continue;
		}
		for (int i = 0; i < batch; i++)
			check(evfn_event_new(&evs[i], "bench", payload, len),
			      "event");
		check(evfn_publish_batch(durable_rt, "bench", evs,
		                         (size_t)batch, NULL),
		      "publish_batch");
		for (int i = 0; i < batch; i++)
			evfn_event_unref(evs[i]);
		mine += batch;
	}
	atomic_fetch_add(&appended, mine);
	return NULL;
}

static void
run_durable(void)
{
	make_path();
	double disk_us = fsync_us();
	if (arg.through_rt) {
		durable_rt = bench_rt(path, EVFN_JOURNAL_DURABLE, plain_noop);
		check(evfn_rt_start(durable_rt), "start");
		dj = durable_rt->journal;
	} else {
		dj = open_journal(EVFN__JOURNAL_DURABLE);
		check(evfn__journal_fn_id(dj, "bench", &dfn), "fn_id");
		check(evfn__journal_start(dj), "start");
	}
	atomic_store(&next_seq, 1);
	pthread_t th[64];
	int p = arg.producers > 64 ? 64 : arg.producers;
	int64_t t0 = now_ns();
	for (int i = 0; i < p; i++)
		pthread_create(&th[i], NULL,
		               arg.through_rt ? durable_rt_producer
		                              : durable_producer,
		               NULL);
	struct timespec ts = {(time_t)arg.seconds,
	                      (long)((arg.seconds - (time_t)arg.seconds) * 1e9)};
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	for (int i = 0; i < p; i++)
		pthread_join(th[i], NULL);
	double secs = (double)(now_ns() - t0) / 1e9;
	struct evfn__journal_stats s;
	evfn__journal_stats_get(dj, &s);
	long n = atomic_load(&appended);
	printf("{\"workload\": \"durable\", \"through\": \"%s\""
	       ", \"producers\": %d, \"batch\": %d"
	       ", \"events\": %ld, \"seconds\": %.3f, \"events_per_s\": %.1f"
	       ", \"commits\": %" PRIu64 ", \"events_per_commit\": %.2f"
	       ", \"fsync_us\": %.1f, \"fsync_bound_events_per_s\": %.1f",
	       arg.through_rt ? "runtime" : "journal", p, arg.batch, n, secs,
	       (double)n / secs, s.commits,
	       s.commits ? (double)n / (double)s.commits : 0.0, disk_us,
	       disk_us > 0 ? p * arg.batch * 1e6 / disk_us : 0.0);
	print_delays(dj);
	printf("}\n");
	if (arg.through_rt) {
		check(evfn_rt_drain(durable_rt, 10000, NULL, NULL), "drain");
		check(evfn_rt_free(durable_rt), "free");
	} else {
		check(evfn__journal_close(dj), "close");
	}
	remove_path();
}

/* ---- dispatch: fast mode around a no-op runtime ------------------- */

static struct evfn__journal *fj;
static uint32_t ffn;
static atomic_long completed;
static long target;
static _Atomic int64_t done_at;

static int
noop_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)userdata;
	if (fj && !arg.through_rt) {
		uint64_t seq;
		memcpy(&seq, evfn_event_data(ev, NULL), sizeof(seq));
		check(evfn__journal_end(fj, seq, ffn, EVFN__JEND_SUCCEEDED),
		      "end");
	}
	if (atomic_fetch_add(&completed, 1) + 1 == target)
		atomic_store(&done_at, now_ns());
	return EVFN_OK;
}

/* Once what was appended is on disk: what it cost. */
static void
print_journal_stats(struct evfn__journal *j)
{
	check(evfn__journal_sync(j), "sync");
	struct evfn__journal_stats s;
	evfn__journal_stats_get(j, &s);
	printf(", \"appends_cancelled\": %" PRIu64 ", \"rows_written\": %" PRIu64
	       ", \"commits\": %" PRIu64,
	       s.appends_cancelled, s.rows_written, s.commits);
	print_delays(j);
}

static void
run_dispatch(void)
{
	bool journaled = strcmp(arg.journal, "off") != 0;
	bool durable = strcmp(arg.journal, "durable") == 0;
	enum evfn__journal_mode mode = durable ? EVFN__JOURNAL_DURABLE
	                                       : EVFN__JOURNAL_FAST;
	/* By hand around the runtime, or by the runtime itself. */
	bool with = journaled && !arg.through_rt;
	if (journaled)
		make_path();
	if (with) {
		fj = open_journal(mode);
		check(evfn__journal_fn_id(fj, "bench", &ffn), "fn_id");
		check(evfn__journal_start(fj), "start");
	}
	evfn_rt *rt = bench_rt(journaled && arg.through_rt ? path : NULL,
	                       durable ? EVFN_JOURNAL_DURABLE
	                               : EVFN_JOURNAL_FAST,
	                       noop_handler);
	check(evfn_rt_start(rt), "start");
	if (journaled && arg.through_rt)
		fj = rt->journal; /* for its commit delays */
	target = arg.events;
	long backoffs = 0;
	int64_t t0 = now_ns();
	for (long i = 1; i <= arg.events; i++) {
		/* Paced: each event waits for its due time (absolute, so a
		 * late producer catches up), yielding the core meanwhile. */
		if (arg.rate > 0)
			while (now_ns() < t0 + (int64_t)((double)(i - 1) * 1e9 /
			                                 arg.rate))
				sched_yield();
		/* Each event its own, as admission will journal it: built,
		 * journaled, then queued. The payload is the journal's seq. */
		uint64_t seq = (uint64_t)i;
		evfn_event *ev;
		check(evfn_event_new(&ev, "bench.event", &seq, sizeof(seq)),
		      "event");
		if (with)
			check(evfn__journal_append(fj, seq, ev, &ffn, 1, NULL),
			      "append");
		int rc;
		while ((rc = evfn_publish_to(rt, "bench", ev, NULL)) ==
		       EVFN_EQUEUEFULL) {
			backoffs++;
			sched_yield();
		}
		check(rc, "publish_to");
		evfn_event_unref(ev);
	}
	while (atomic_load(&done_at) == 0)
		sched_yield();
	double secs = (double)(atomic_load(&done_at) - t0) / 1e9;
	printf("{\"workload\": \"dispatch\", \"journal\": \"%s\", \"events\": %ld"
	       ", \"rate\": %.0f, \"seconds\": %.3f, \"events_per_s\": %.1f"
	       ", \"backoffs\": %ld",
	       arg.journal, arg.events, arg.rate, secs,
	       (double)arg.events / secs, backoffs);
	/* The runtime's journal closes with it: its figures first. */
	if (journaled && arg.through_rt)
		print_journal_stats(fj);
	check(evfn_rt_drain(rt, 10000, NULL, NULL), "drain");
	check(evfn_rt_free(rt), "free");
	if (with) {
		print_journal_stats(fj);
		check(evfn__journal_close(fj), "close");
	}
	if (journaled)
		remove_path();
	printf("}\n");
}

/* ---- recover: N pending events back into records ------------------ */

static int
count_record(const struct evfn__journal_record *r, void *a)
{
	/* What re-admission will do with each: keep the event. */
	evfn_event *ev = evfn_event_ref(r->ev);
	evfn_event_unref(ev);
	(*(long *)a)++;
	return 0;
}

/* Writes arg.events pending events for function "bench"; returns the
 * seconds it took. */
static double
write_pending(void)
{
	struct evfn__journal *j = open_journal(EVFN__JOURNAL_FAST);
	uint32_t fn;
	check(evfn__journal_fn_id(j, "bench", &fn), "fn_id");
	check(evfn__journal_start(j), "start");
	enum { CHUNK = 10000 };
	struct evfn__journal_entry *e = calloc(CHUNK, sizeof(*e));
	evfn_event **evs = calloc(CHUNK, sizeof(*evs));
	int64_t t0 = now_ns();
	for (long base = 1; base <= arg.events; base += CHUNK) {
		int n = 0;
		for (; n < CHUNK && base + n <= arg.events; n++) {
			evs[n] = bench_event((uint64_t)(base + n));
			e[n] = (struct evfn__journal_entry){
				(uint64_t)(base + n), evs[n], &fn, 1, NULL};
		}
		check(evfn__journal_append_many(j, e, (size_t)n), "append");
		for (int i = 0; i < n; i++)
			evfn_event_unref(evs[i]);
	}
	check(evfn__journal_close(j), "close");
	free(e);
	free(evs);
	return (double)(now_ns() - t0) / 1e9;
}

static double recover_secs;

/* evfn_rt_start() of a runtime re-admitting what the journal holds, its
 * function paused so that nothing runs meanwhile: the count. */
static long
recover_through_runtime(void)
{
	evfn_rt *rt = bench_rt(path, EVFN_JOURNAL_FAST, plain_noop);
	check(evfn_pause(rt, "bench"), "pause");
	int64_t t0 = now_ns();
	check(evfn_rt_start(rt), "start");
	recover_secs = (double)(now_ns() - t0) / 1e9;
	evfn_stats *st;
	check(evfn_stats_take(rt, "bench", &st), "stats");
	long n = (long)evfn_stats_value(st, EVFN_STAT_QUEUED);
	evfn_stats_free(st);
	/* Not timed: handing a million back. */
	check(evfn_rt_drain(rt, 0, NULL, NULL), "drain");
	check(evfn_rt_free(rt), "free");
	return n;
}

static void
run_recover(void)
{
	make_path();
	double write_s = write_pending();
	long long bytes = journal_bytes();
	int64_t t0 = now_ns();
	long n = 0;
	struct evfn__journal *j = NULL;
	if (arg.through_rt) {
		n = recover_through_runtime();
	} else {
		j = open_journal(EVFN__JOURNAL_DURABLE);
		check(evfn__journal_recover(j, count_record, &n), "recover");
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	if (arg.through_rt) /* the drain and free are in it */
		secs = recover_secs;
	if (n != arg.events)
		die("recover count", EVFN_ECORRUPT);
	printf("{\"workload\": \"recover\", \"events\": %ld, \"payload\": %zu"
	       ", \"write_s\": %.3f, \"file_bytes\": %lld, \"recover_s\": %.3f"
	       ", \"records_per_s\": %.1f}\n",
	       n, arg.payload, write_s, bytes, secs, (double)n / secs);
	if (j)
		check(evfn__journal_close(j), "close");
	remove_path();
}

/* ---- steady: the file size under a constant load ------------------ */

static void
run_steady(void)
{
	make_path();
	bool durable = strcmp(arg.journal, "durable") == 0;
	struct evfn__journal *j = open_journal(durable ? EVFN__JOURNAL_DURABLE
	                                               : EVFN__JOURNAL_FAST);
	uint32_t fn;
	check(evfn__journal_fn_id(j, "bench", &fn), "fn_id");
	check(evfn__journal_start(j), "start");
	evfn_event *ev = bench_event(1);
	uint64_t head = 1, tail = 1; /* pending: [tail, head) */
	int64_t t0 = now_ns(), next_sample = t0;
	long long max_first = 0, max_second = 0, last = 0;
	long samples = 0;
	enum { ROUND = 500 };
	struct evfn__journal_entry e[ROUND];
	printf("{\"workload\": \"steady\", \"journal\": \"%s\", \"window\": %ld"
	       ", \"payload\": %zu, \"sizes\": [",
	       durable ? "durable" : "fast", arg.window, arg.payload);
	for (;;) {
		int64_t now = now_ns();
		double at = (double)(now - t0) / 1e9;
		if (at >= arg.seconds)
			break;
		/* A round: ROUND new events, and as many of the oldest end
		 * once the window is full: ends of events appended long
		 * before, so that they are deletes of committed rows. */
		for (int i = 0; i < ROUND; i++)
			e[i] = (struct evfn__journal_entry){head + (uint64_t)i,
			                                    ev, &fn, 1, NULL};
		check(evfn__journal_append_many(j, e, ROUND), "append");
		head += ROUND;
		while (head - tail > (uint64_t)arg.window)
			check(evfn__journal_end(j, tail++, fn,
			                        EVFN__JEND_SUCCEEDED),
			      "end");
		if (now >= next_sample) {
			last = journal_bytes();
			if (at < arg.seconds / 2)
				max_first = EVFN__MAX(max_first, last);
			else
				max_second = EVFN__MAX(max_second, last);
			printf("%s[%.1f, %lld]", samples++ ? ", " : "", at, last);
			fflush(stdout);
			next_sample += EVFN__NS_PER_SEC;
		}
	}
	check(evfn__journal_sync(j), "sync");
	double secs = (double)(now_ns() - t0) / 1e9;
	printf("], \"events\": %" PRIu64 ", \"seconds\": %.1f"
	       ", \"events_per_s\": %.1f, \"max_bytes_first_half\": %lld"
	       ", \"max_bytes_second_half\": %lld, \"final_bytes\": %lld}\n",
	       head - 1, secs, (double)(head - 1) / secs, max_first,
	       max_second, journal_bytes());
	evfn_event_unref(ev);
	check(evfn__journal_close(j), "close");
	remove_path();
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: bench-journal --workload durable|dispatch|recover|steady\n"
	        "  [--producers P] [--batch B] [--seconds S] [--events N]\n"
	        "  [--journal fast|durable|off] [--window W] [--flush-ms MS]\n"
	        "  [--payload BYTES] [--dir DIR] [--rate EVENTS_PER_S]\n"
	        "  [--through journal|runtime]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		if (!strcmp(a, "--workload"))
			arg.workload = v;
		else if (!strcmp(a, "--producers"))
			arg.producers = atoi(v);
		else if (!strcmp(a, "--batch"))
			arg.batch = atoi(v);
		else if (!strcmp(a, "--seconds"))
			arg.seconds = atof(v);
		else if (!strcmp(a, "--events"))
			arg.events = atol(v);
		else if (!strcmp(a, "--journal"))
			arg.journal = v;
		else if (!strcmp(a, "--window"))
			arg.window = atol(v);
		else if (!strcmp(a, "--flush-ms"))
			arg.flush_ms = atol(v);
		else if (!strcmp(a, "--payload"))
			arg.payload = (size_t)atol(v);
		else if (!strcmp(a, "--dir"))
			arg.dir = v;
		else if (!strcmp(a, "--rate"))
			arg.rate = atof(v);
		else if (!strcmp(a, "--through"))
			arg.through_rt = !strcmp(v, "runtime");
		else
			usage();
		i++;
	}
	if (arg.producers < 1 || arg.batch < 1 || arg.events < 1)
		usage();
	if (!strcmp(arg.workload, "durable"))
		run_durable();
	else if (!strcmp(arg.workload, "dispatch"))
		run_dispatch();
	else if (!strcmp(arg.workload, "recover"))
		run_recover();
	else if (!strcmp(arg.workload, "steady"))
		run_steady();
	else
		usage();
	return 0;
}
