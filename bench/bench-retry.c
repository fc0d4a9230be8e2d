/* SPDX-License-Identifier: MIT */
/*
 * Memory per event waiting for a retry. evfn: N events to a function
 * that answers RETRY with a one-hour backoff, so all N wait in the retry
 * heap; the peer: the same N delays held the naive way, one libevent
 * timer per waiting item with a pointer-sized argument. Prints one JSON
 * line with the RSS growth per waiting item.
 * Usage: bench-retry --system evfn|libevent [--tasks N]
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <evfn.h>

static long
rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * sysconf(_SC_PAGESIZE);
}

static int
retry_later(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_RETRY;
}

static uint64_t
waiting(evfn_rt *rt)
{
	evfn_stats *s;
	evfn_stats_take(rt, "r", &s);
	uint64_t n = evfn_stats_value(s, EVFN_STAT_WAITING_RETRY);
	evfn_stats_free(s);
	return n;
}

static long
run_evfn(long n)
{
	evfn_rt_options *o;
	evfn_rt_options_new(&o);
	evfn_rt_options_set_workers(o, 2, 2);
	evfn_rt *rt;
	evfn_rt_new(&rt, o);
	evfn_rt_options_free(o);
	evfn_fn_options *fo;
	evfn_fn_options_new(&fo);
	evfn_fn_options_set_queue_capacity(fo, n);
	evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 3600000, 1.0,
	                            3600000, EVFN_JITTER_NONE);
	evfn_fn_options_set_max_age_ms(fo, 7200000);
	evfn_register(rt, "r", retry_later, NULL, fo, NULL);
	evfn_fn_options_free(fo);
	evfn_rt_start(rt);
	/* Warm the allocator and the pool before the baseline reading. */
	long rss0 = rss_bytes();
	for (long i = 0; i < n; i++) {
		uint64_t arg = (uint64_t)i;
		while (evfn_invoke_async(rt, "r", &arg, sizeof(arg), NULL) ==
		       EVFN_EQUEUEFULL)
			sched_yield();
	}
	while (waiting(rt) < (uint64_t)n) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	long rss1 = rss_bytes();
	evfn_rt_drain(rt, 1000, NULL, NULL);
	evfn_rt_free(rt);
	return rss1 - rss0;
}

static void
never(int fd, short what, void *arg)
{
}

static long
run_libevent(long n)
{
	struct event_base *base = event_base_new();
	struct event **evs = malloc((size_t)n * sizeof(*evs));
	long rss0 = rss_bytes();
	struct timeval tv = {3600, 0};
	for (long i = 0; i < n; i++) {
		evs[i] = evtimer_new(base, never, (void *)(intptr_t)i);
		event_add(evs[i], &tv);
	}
	long rss1 = rss_bytes();
	for (long i = 0; i < n; i++)
		event_free(evs[i]);
	free(evs);
	event_base_free(base);
	return rss1 - rss0;
}

int
main(int argc, char **argv)
{
	const char *system = "evfn";
	long n = 1000000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--system") == 0)
			system = argv[i + 1];
		else if (strcmp(argv[i], "--tasks") == 0)
			n = atol(argv[i + 1]);
	}
	long grew;
	if (strcmp(system, "evfn") == 0)
		grew = run_evfn(n);
	else if (strcmp(system, "libevent") == 0)
		grew = run_libevent(n);
	else
		return 2;
	printf("{\"system\": \"%s\", \"workload\": \"retrymem\", \"tasks\": %ld,"
	       " \"bytes_per_waiting\": %.1f}\n",
	       system, n, (double)grew / (double)n);
	return 0;
}
