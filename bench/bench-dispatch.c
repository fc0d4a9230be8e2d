/* SPDX-License-Identifier: MIT */
/*
 * Dispatch benchmark: one system (evfn or a peer pool from peers/), one
 * workload, one run per process, one JSON object on stdout. Workloads:
 * noop (throughput of empty tasks from 1 or more producers), work1us (tasks
 * spinning a calibrated ~1 us), latency (submit-to-start delay at a paced
 * rate), memory (RSS growth per task queued behind blocked workers) and
 * fanout (one publish delivered to N consumers). Every system is timed by
 * the same completion detector: the task function counts completions and
 * the one that reaches the target stamps the end time and wakes the
 * producer through a futex. bench/run.py drives this program; see
 * bench/README.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* POSIX and GNU declarations under -std=c11 */
#endif

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "peers/pool.h"

#ifdef BENCH_HAVE_EVFN
#include <event2/event.h>
#endif

#define BENCH_WARMUP_TASKS 2000
#define BENCH_BATCH_MAX 1024

/* Completion detector, shared by every system. */
static atomic_uint done_count;
static unsigned done_target;
static atomic_uint done_flag;      /* futex word: 1 once target reached */
static _Atomic int64_t done_ns;

/* Gate for the memory workload: tasks wait until it opens. */
static atomic_uint gate_open;      /* futex word */
static atomic_uint gate_entered;

static uint64_t spin_iters;

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
futex_wait(atomic_uint *word, unsigned val)
{
	syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, val, NULL,
	        NULL, 0);
}

static void
futex_wake(atomic_uint *word)
{
	syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, INT32_MAX,
	        NULL, NULL, 0);
}

/* Arms the detector for `target` completions; call before submitting. */
static void
done_arm(unsigned target)
{
	atomic_store(&done_count, 0);
	atomic_store(&done_flag, 0);
	done_target = target;
}

static void
complete_one(void)
{
	unsigned n = atomic_fetch_add_explicit(&done_count, 1,
	                                       memory_order_acq_rel) + 1;

	if (n == done_target) {
		atomic_store(&done_ns, now_ns());
		atomic_store_explicit(&done_flag, 1, memory_order_release);
		futex_wake(&done_flag);
	}
}

/* Sleeps until the armed target is reached; returns the end stamp. */
static int64_t
done_wait(void)
{
	while (atomic_load_explicit(&done_flag, memory_order_acquire) == 0)
		futex_wait(&done_flag, 0);
	return atomic_load(&done_ns);
}

static void
spin(uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		__asm__ __volatile__("" ::: "memory");
}

/*
 * Finds the spin count that takes 1 us: the fastest of several timed runs,
 * so a preemption during calibration cannot inflate it. Returns the
 * measured mean duration of spin(spin_iters) in ns.
 */
static double
spin_calibrate(void)
{
	const uint64_t trial = 2000000;
	int64_t best = INT64_MAX, t;
	int i;

	for (i = 0; i < 7; i++) {
		t = now_ns();
		spin(trial);
		t = now_ns() - t;
		if (t < best)
			best = t;
	}
	spin_iters = (uint64_t)((double)trial * 1000.0 / (double)best + 0.5);
	t = now_ns();
	for (i = 0; i < 20000; i++)
		spin(spin_iters);
	return (double)(now_ns() - t) / 20000.0;
}

static void
task_noop(void *arg)
{
	(void)arg;
	complete_one();
}

static void
task_spin(void *arg)
{
	(void)arg;
	spin(spin_iters);
	complete_one();
}

/* arg points at the submit stamp, which is replaced by the latency. */
static void
task_latency(void *arg)
{
	int64_t *slot = arg;

	*slot = now_ns() - *slot;
	complete_one();
}

static void
task_gate(void *arg)
{
	(void)arg;
	if (atomic_load_explicit(&gate_open, memory_order_acquire) == 0) {
		atomic_fetch_add(&gate_entered, 1);
		while (atomic_load_explicit(&gate_open,
		                            memory_order_acquire) == 0)
			futex_wait(&gate_open, 0);
	}
	complete_one();
}

static long
rss_bytes(void)
{
	long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

struct usage {
	double cpu_s;
	long vcsw;
	long ivcsw;
};

static struct usage
usage_now(void)
{
	struct rusage ru;
	struct usage u;

	getrusage(RUSAGE_SELF, &ru);
	u.cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	          (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	u.vcsw = ru.ru_nvcsw;
	u.ivcsw = ru.ru_nivcsw;
	return u;
}

struct bench {
	const struct bench_pool_ops *ops;
	void *pool;
	struct bench_pool_config cfg;
	const char *workload;
	unsigned tasks;
	int producers;
	double rate;
	int fanout_submit;        /* submissions go through fan-out */
	unsigned batch;           /* tasks per submit_batch (1: submit) */
	int features_off;
	int metrics_off;
	unsigned submit_errors;
};

static void
submit_one(struct bench *b, void *arg)
{
	int i, rc = 0;

	if (!b->fanout_submit) {
		rc = b->ops->submit(b->pool, arg);
	} else if (b->ops->submit_fanout != NULL) {
		rc = b->ops->submit_fanout(b->pool, arg);
	} else {
		for (i = 0; i < b->cfg.fanout && rc == 0; i++)
			rc = b->ops->submit(b->pool, arg);
	}
	if (rc != 0) {
		fprintf(stderr, "%s: submit failed (%d)\n", b->ops->name, rc);
		exit(2);
	}
}

/* Any non-NULL argument: GThreadPool refuses NULL data. */
static int64_t dummy_arg;
static void *batch_args[BENCH_BATCH_MAX];

/* Submits count tasks: b->batch at a time through the system's batch
 * call when it has one, else one at a time. */
static void
submit_tasks(struct bench *b, unsigned count)
{
	unsigned i = 0;

	if (b->batch > 1 && b->ops->submit_batch != NULL) {
		for (; i + b->batch <= count; i += b->batch)
			if (b->ops->submit_batch(b->pool, batch_args,
			                         b->batch) != 0) {
				fprintf(stderr, "%s: submit_batch failed\n",
				        b->ops->name);
				exit(2);
			}
	}
	for (; i < count; i++)
		submit_one(b, &dummy_arg);
}

struct producer {
	struct bench *b;
	unsigned count;
	pthread_barrier_t *start;
	pthread_t thread;
};

static void *
producer_main(void *p)
{
	struct producer *pr = p;
	unsigned i;

	pthread_barrier_wait(pr->start);
	submit_tasks(pr->b, pr->count);
	return NULL;
}

/*
 * Runs `tasks` submissions from b->producers threads (the calling thread
 * when there is one), waits for every completion, and returns the elapsed
 * ns from the first submit to the last completion.
 */
static int64_t
run_throughput(struct bench *b, unsigned tasks)
{
	struct producer pr[16];
	pthread_barrier_t start;
	int64_t t0;
	unsigned i;
	int n = b->producers, k;

	done_arm(tasks * (unsigned)(b->fanout_submit ? b->cfg.fanout : 1));
	if (n <= 1) {
		t0 = now_ns();
		submit_tasks(b, tasks);
		return done_wait() - t0;
	}
	pthread_barrier_init(&start, NULL, (unsigned)n + 1);
	for (k = 0; k < n; k++) {
		pr[k].b = b;
		pr[k].count = tasks / (unsigned)n +
		              ((unsigned)k < tasks % (unsigned)n ? 1 : 0);
		pr[k].start = &start;
		pthread_create(&pr[k].thread, NULL, producer_main, &pr[k]);
	}
	t0 = now_ns();
	pthread_barrier_wait(&start);
	for (k = 0; k < n; k++)
		pthread_join(pr[k].thread, NULL);
	t0 = done_wait() - t0;
	pthread_barrier_destroy(&start);
	return t0;
}

static void
warm_up(struct bench *b)
{
	int saved = b->fanout_submit;
	unsigned i;

	b->fanout_submit = 0;
	done_arm(BENCH_WARMUP_TASKS);
	for (i = 0; i < BENCH_WARMUP_TASKS; i++)
		submit_one(b, &dummy_arg);
	done_wait();
	b->fanout_submit = saved;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double
quantile_us(const int64_t *sorted, unsigned n, double q)
{
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);

	return (double)sorted[i] / 1000.0;
}

static void
print_head(const struct bench *b)
{
	printf("{\"system\": \"%s\", \"workload\": \"%s\", "
	       "\"producers\": %d, \"tasks\": %u, \"workers\": %d, "
	       "\"features\": \"%s\", \"metrics\": \"%s\", \"batch\": %u",
	       b->ops->name, b->workload, b->producers, b->tasks,
	       b->cfg.workers, b->features_off ? "off" : "on",
	       b->metrics_off ? "off" : "on",
	       b->ops->submit_batch != NULL ? b->batch : 1);
}

static void
print_usage_delta(const struct usage *u0, const struct usage *u1)
{
	printf(", \"cpu_s\": %.4f, \"vcsw\": %ld, \"ivcsw\": %ld",
	       u1->cpu_s - u0->cpu_s, u1->vcsw - u0->vcsw,
	       u1->ivcsw - u0->ivcsw);
}

static void
print_tail(struct bench *b)
{
	uint64_t backoffs = b->ops->backoffs ? b->ops->backoffs(b->pool) : 0;

	printf(", \"backoffs\": %llu}\n", (unsigned long long)backoffs);
}

static void
workload_throughput(struct bench *b, double spin_ns)
{
	struct usage u0, u1;
	int64_t ns;
	double per_s, deliveries;

	u0 = usage_now();
	ns = run_throughput(b, b->tasks);
	u1 = usage_now();
	deliveries = (double)b->tasks *
	             (b->fanout_submit ? b->cfg.fanout : 1);
	per_s = deliveries * 1e9 / (double)ns;
	print_head(b);
	printf(", \"elapsed_s\": %.6f, \"tasks_per_s\": %.1f", ns / 1e9,
	       per_s);
	if (b->fanout_submit)
		printf(", \"fanout\": %d, \"events_per_s\": %.1f",
		       b->cfg.fanout, (double)b->tasks * 1e9 / (double)ns);
	if (spin_ns > 0) {
		double limit = b->cfg.workers * 1e6;

		printf(", \"spin_ns\": %.1f, \"limit_per_s\": %.1f, "
		       "\"fraction_of_limit\": %.4f",
		       spin_ns, limit, per_s / limit);
	}
	print_usage_delta(&u0, &u1);
	print_tail(b);
}

static void
workload_latency(struct bench *b)
{
	int64_t *slot = calloc(b->tasks, sizeof(*slot));
	int64_t period, t0, t, last = 0;
	struct usage u0, u1;
	unsigned i;
	double q;

	if (slot == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	period = (int64_t)(1e9 / b->rate + 0.5);
	done_arm(b->tasks);
	u0 = usage_now();
	t0 = now_ns();
	for (i = 0; i < b->tasks; i++) {
		int64_t due = t0 + (int64_t)i * period;

		/* Wait for the due time by yielding, not sleeping: a sleep
		 * adds its own timer slack and wake-up to the pacing, and a
		 * plain spin would hold the core a woken worker may need
		 * for a whole scheduler slice (milliseconds on 2 cores). */
		while ((t = now_ns()) < due)
			sched_yield();
		slot[i] = t;
		last = t;
		submit_one(b, &slot[i]);
	}
	done_wait();
	u1 = usage_now();
	qsort(slot, b->tasks, sizeof(*slot), cmp_i64);
	print_head(b);
	printf(", \"rate\": %.0f, \"achieved_rate\": %.1f", b->rate,
	       (double)(b->tasks - 1) * 1e9 / (double)(last - t0));
	printf(", \"p50_us\": %.3f, \"p90_us\": %.3f, \"p99_us\": %.3f, "
	       "\"p999_us\": %.3f, \"max_us\": %.3f",
	       quantile_us(slot, b->tasks, 0.5),
	       quantile_us(slot, b->tasks, 0.9),
	       quantile_us(slot, b->tasks, 0.99),
	       quantile_us(slot, b->tasks, 0.999),
	       quantile_us(slot, b->tasks, 1.0));
	/* A CDF sample for plotting: percentiles 1..99, then the tail. */
	printf(", \"cdf\": [");
	for (i = 1; i <= 99; i++) {
		q = i / 100.0;
		printf("[%.4f, %.3f], ", q, quantile_us(slot, b->tasks, q));
	}
	printf("[0.995, %.3f], [0.999, %.3f], [0.9995, %.3f], "
	       "[0.9999, %.3f], [1.0, %.3f]]",
	       quantile_us(slot, b->tasks, 0.995),
	       quantile_us(slot, b->tasks, 0.999),
	       quantile_us(slot, b->tasks, 0.9995),
	       quantile_us(slot, b->tasks, 0.9999),
	       quantile_us(slot, b->tasks, 1.0));
	print_usage_delta(&u0, &u1);
	print_tail(b);
	free(slot);
}

/*
 * Blocks every worker on the gate, measures RSS, queues b->tasks more,
 * measures again, then opens the gate and waits for all of them.
 */
static void
workload_memory(struct bench *b)
{
	unsigned i, workers = (unsigned)b->cfg.workers;
	long rss0, rss1;
	int64_t t0, t1;

	atomic_store(&gate_open, 0);
	atomic_store(&gate_entered, 0);
	done_arm(b->tasks + workers);
	for (i = 0; i < workers; i++)
		submit_one(b, &dummy_arg);
	while (atomic_load(&gate_entered) < workers)
		usleep(1000);
	rss0 = rss_bytes();
	t0 = now_ns();
	for (i = 0; i < b->tasks; i++)
		submit_one(b, &dummy_arg);
	t1 = now_ns();
	/* Let a loop-thread hand-off (libuv) finish moving the batch. */
	usleep(50000);
	rss1 = rss_bytes();
	atomic_store_explicit(&gate_open, 1, memory_order_release);
	futex_wake(&gate_open);
	done_wait();
	print_head(b);
	printf(", \"rss_before\": %ld, \"rss_after\": %ld, "
	       "\"bytes_per_task\": %.2f, \"submit_s\": %.6f",
	       rss0, rss1, (double)(rss1 - rss0) / b->tasks, (t1 - t0) / 1e9);
	print_tail(b);
}

static const struct bench_pool_ops *
find_system(const char *name)
{
	static const struct bench_pool_ops *all[] = {
		&bench_pthread_ops, &bench_libuv_ops, &bench_glib_ops,
#ifdef BENCH_HAVE_EVFN
		&bench_evfn_ops,
#endif
	};
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

static void
print_versions(void)
{
	printf("{\"pthread\": \"%s\", \"libuv\": \"%s\", \"glib\": \"%s\"",
	       bench_pthread_ops.version(), bench_libuv_ops.version(),
	       bench_glib_ops.version());
#ifdef BENCH_HAVE_EVFN
	printf(", \"evfn\": \"%s\", \"libevent\": \"%s\"",
	       bench_evfn_ops.version(), event_get_version());
#endif
	printf(", \"systems\": [\"pthread\", \"libuv\", \"glib\"%s]}\n",
#ifdef BENCH_HAVE_EVFN
	       ", \"evfn\""
#else
	       ""
#endif
	);
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: bench-dispatch --system S --workload W [options]\n"
	        "       bench-dispatch --versions\n"
	        "  --system   pthread | libuv | glib | evfn\n"
	        "  --workload noop | work1us | latency | memory | fanout\n"
	        "  --tasks N      tasks (fanout: events)     [2000000]\n"
	        "  --producers N  producer threads           [1]\n"
	        "  --workers N    worker threads             [2]\n"
	        "  --rate R       latency: tasks per second  [100000]\n"
	        "  --fanout N     fanout: consumers per event [8]\n"
	        "  --batch N      noop/work1us: tasks per batch submit\n"
	        "                 (systems with one; others one by one) [1]\n"
	        "  --features on|off  evfn: default function options, or\n"
	        "                 no deadline/age/retry      [on]\n"
	        "  --metrics on|off   evfn: latency histograms and\n"
	        "                 billed duration recorded   [on]\n");
	exit(2);
}

/* Returns 1 for "off", 0 for "on"; anything else is a usage error. */
static int
parse_off(const char *v)
{
	if (strcmp(v, "off") == 0)
		return 1;
	if (strcmp(v, "on") != 0)
		usage();
	return 0;
}

int
main(int argc, char **argv)
{
	struct bench b;
	const char *system = NULL;
	double spin_ns = 0;
	int i;

	memset(&b, 0, sizeof(b));
	b.workload = "noop";
	b.tasks = 2000000;
	b.producers = 1;
	b.rate = 100000;
	b.cfg.workers = 2;
	b.cfg.fanout = 8;
	b.batch = 1;
	for (i = 0; i < BENCH_BATCH_MAX; i++)
		batch_args[i] = &dummy_arg;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--versions") == 0) {
			print_versions();
			return 0;
		}
		if (v == NULL)
			usage();
		if (strcmp(a, "--system") == 0)
			system = v;
		else if (strcmp(a, "--workload") == 0)
			b.workload = v;
		else if (strcmp(a, "--tasks") == 0)
			b.tasks = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--producers") == 0)
			b.producers = atoi(v);
		else if (strcmp(a, "--workers") == 0)
			b.cfg.workers = atoi(v);
		else if (strcmp(a, "--rate") == 0)
			b.rate = atof(v);
		else if (strcmp(a, "--fanout") == 0)
			b.cfg.fanout = atoi(v);
		else if (strcmp(a, "--batch") == 0)
			b.batch = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--features") == 0)
			b.features_off = parse_off(v);
		else if (strcmp(a, "--metrics") == 0)
			b.metrics_off = parse_off(v);
		else
			usage();
		i++;
	}
	if (system == NULL || b.tasks < 1 || b.producers < 1 ||
	    b.producers > 16 || b.cfg.workers < 1 || b.rate <= 0 ||
	    b.cfg.fanout < 1 || b.batch < 1 || b.batch > BENCH_BATCH_MAX)
		usage();
	b.ops = find_system(system);
	if (b.ops == NULL) {
		fprintf(stderr, "unknown or unavailable system: %s\n", system);
		return 2;
	}
	if (strcmp(b.workload, "work1us") == 0) {
		spin_ns = spin_calibrate();
	} else if (strcmp(b.workload, "fanout") == 0) {
		b.fanout_submit = 1;
	} else if (strcmp(b.workload, "noop") != 0 &&
	           strcmp(b.workload, "latency") != 0 &&
	           strcmp(b.workload, "memory") != 0) {
		usage();
	}

	if (strcmp(b.workload, "work1us") == 0)
		b.cfg.fn = task_spin;
	else if (strcmp(b.workload, "latency") == 0)
		b.cfg.fn = task_latency;
	else if (strcmp(b.workload, "memory") == 0)
		b.cfg.fn = task_gate;
	else
		b.cfg.fn = task_noop;
	/* Large enough that no bounded queue refuses a run's backlog. */
	b.cfg.queue_cap = (int64_t)b.tasks + 65536;
	b.cfg.features_off = b.features_off;
	b.cfg.metrics_off = b.metrics_off;
	/* Only evfn has per-function consumers to set up for fan-out. */
	if (!b.fanout_submit && strcmp(system, "evfn") == 0)
		b.cfg.fanout = 0;
	/* Workers sit on the gate for the whole memory run: keep the
	 * default 3 s deadline from firing if queueing is slow. */
	if (strcmp(b.workload, "memory") == 0)
		b.cfg.timeout_ms = 600000;

	b.pool = b.ops->create(&b.cfg);
	if (b.pool == NULL) {
		fprintf(stderr, "%s: create failed\n", system);
		return 1;
	}
	/* The gate task lets everything through while the gate is open. */
	atomic_store(&gate_open, 1);
	warm_up(&b);
	if (strcmp(b.workload, "latency") == 0)
		workload_latency(&b);
	else if (strcmp(b.workload, "memory") == 0)
		workload_memory(&b);
	else
		workload_throughput(&b, spin_ns);
	fflush(stdout);
	b.ops->destroy(b.pool);
	return 0;
}
