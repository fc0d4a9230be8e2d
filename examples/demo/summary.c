/* SPDX-License-Identifier: MIT */
/*
 * The end of a run: a table of every function's counters and run-time
 * quantiles, a few dead letters with their reasons, the cost of the same
 * work on a pay-per-invocation platform beside a fixed-price server, and
 * the accounting check: every accepted event ended exactly once.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "demo.h"

/* An assumed always-on server: 2 vCPUs, 4 GiB (EC2 t3.medium on demand,
 * us-east-1), in USD per hour. */
#define SERVER_USD_PER_HOUR 0.0416
#define LAMBDA_MEMORY_MB 512
#define MONTH_S (730.0 * 3600.0)

uint64_t
demo_pending(const evfn_stats *s)
{
	return evfn_stats_value(s, EVFN_STAT_IN_FLIGHT) +
	       evfn_stats_value(s, EVFN_STAT_QUEUED) +
	       evfn_stats_value(s, EVFN_STAT_WAITING_RETRY) +
	       evfn_stats_value(s, EVFN_STAT_DELAYED);
}

/* A quantile as what evfn_stats_quantile() knows of it: the upper bound
 * of its histogram bucket ("<=151 ms"), rounded up to three significant
 * digits (a bucket is 12.5% wide, so more would be false precision);
 * "-" for an empty histogram. */
static const char *
format_bound(char *buf, size_t size, int64_t ns)
{
	if (ns <= 0) {
		snprintf(buf, size, "-");
		return buf;
	}
	if (ns == INT64_MAX) {
		snprintf(buf, size, ">18 min");
		return buf;
	}
	double v = (double)ns;
	const char *unit = ns < 1000000 ? "us" : ns < 10000000000 ? "ms" : "s";
	v /= ns < 1000000 ? 1e3 : ns < 10000000000 ? 1e6 : 1e9;
	double step = pow(10, floor(log10(v)) - 2);
	v = ceil(v / step - 1e-9) * step;
	snprintf(buf, size, "<=%.3g %s", v, unit);
	return buf;
}

static void
print_table(evfn_rt *rt)
{
	printf("%-14s %8s %8s %6s %7s %8s %5s %11s %11s %8s\n", "function",
	       "accepted", "attempts", "failed", "retries", "timeouts",
	       "dead", "run p50", "run p99", "billed s");
	for (size_t i = 0; i < demo_function_count; i++) {
		evfn_stats *s;
		if (evfn_stats_take(rt, demo_functions[i], &s) != 0)
			continue;
		char p50[24], p99[24];
		printf("%-14s %8" PRIu64 " %8" PRIu64 " %6" PRIu64
		       " %7" PRIu64 " %8" PRIu64 " %5" PRIu64
		       " %11s %11s %8.2f\n",
		       demo_functions[i],
		       evfn_stats_value(s, EVFN_STAT_ACCEPTED),
		       evfn_stats_value(s, EVFN_STAT_ATTEMPTS),
		       evfn_stats_value(s, EVFN_STAT_ATTEMPTS_FAILED),
		       evfn_stats_value(s, EVFN_STAT_RETRIES),
		       evfn_stats_value(s, EVFN_STAT_TIMEOUTS),
		       evfn_stats_value(s, EVFN_STAT_DEAD_LETTERED),
		       format_bound(p50, sizeof p50,
		                    evfn_stats_quantile(s, EVFN_HIST_RUN, 0.5)),
		       format_bound(p99, sizeof p99,
		                    evfn_stats_quantile(s, EVFN_HIST_RUN, 0.99)),
		       (double)evfn_stats_value(s, EVFN_STAT_BILLED_MS) / 1000);
		evfn_stats_free(s);
	}
	printf("accepted: events admitted; attempts: handler runs, retries "
	       "included; failed: attempts\n"
	       "that did not succeed (errors and timeouts); retries: attempts "
	       "scheduled again;\n"
	       "dead: events dead-lettered; run p50/p99: an attempt's run "
	       "time, as the upper bound\n"
	       "of the histogram bucket (12.5%% wide) that holds the quantile; "
	       "billed s: run time\n"
	       "rounded up to 1 ms per attempt, as Lambda bills.\n");
}

/* One dead letter of each reason, the oldest first. */
static void
print_dead_letters(evfn_rt *rt)
{
	evfn_dead_letter *dl[64];
	int n = evfn_dead_letters(rt, dl, 64, 0);
	printf("\ndead letters: %zu kept%s\n", evfn_dead_letter_count(rt),
	       n > 0 ? "; the oldest of each reason:" : "");
	const char *shown[8];
	int nshown = 0;
	for (int i = 0; i < n; i++) {
		const char *reason = evfn_dead_letter_reason(dl[i]);
		bool seen = false;
		for (int j = 0; j < nshown; j++)
			seen |= strcmp(shown[j], reason) == 0;
		if (!seen && nshown < 8) {
			const char *err = evfn_dead_letter_error(dl[i]);
			shown[nshown++] = reason;
			printf("  %-8s event %-6s %-18s after %u attempt%s:"
			       " %s\n",
			       evfn_dead_letter_function(dl[i]),
			       evfn_event_id(evfn_dead_letter_event(dl[i])),
			       reason, evfn_dead_letter_attempts(dl[i]),
			       evfn_dead_letter_attempts(dl[i]) == 1 ? "" : "s",
			       err ? err : "-");
		}
	}
	/* The reasons are static strings: release the letters only now. */
	for (int i = 0; i < n; i++)
		evfn_dead_letter_unref(dl[i]);
}

static void
print_cost(evfn_rt *rt, double seconds)
{
	evfn_stats *all;
	if (evfn_stats_take(rt, NULL, &all) != 0)
		return;
	double lambda = evfn_stats_serverless_cost(
		all, LAMBDA_MEMORY_MB, EVFN_LAMBDA_USD_PER_MILLION_REQUESTS,
		EVFN_LAMBDA_USD_PER_GB_SECOND);
	double server = SERVER_USD_PER_HOUR * seconds / 3600.0;
	double month = MONTH_S / seconds;
	printf("\ncost of this work (%" PRIu64 " attempts, each a billed request;"
	       " %.1f billed s,"
	       " %.1f s of wall time)\n",
	       evfn_stats_value(all, EVFN_STAT_ATTEMPTS),
	       (double)evfn_stats_value(all, EVFN_STAT_BILLED_MS) / 1000,
	       seconds);
	printf("  %-40s %12s %14s\n", "USD", "this run", "month at rate");
	printf("  %-40s %12.6f %14.2f\n",
	       "serverless, 512 MB (Lambda x86 prices)", lambda,
	       lambda * month);
	printf("  %-40s %12.6f %14.2f\n",
	       "fixed server, 2 vCPU at $0.0416/h", server, server * month);
	evfn_stats_free(all);
}

/* The invariant of evfn_stats: once nothing is queued, running or waiting
 * for a retry or a delay, every accepted event has ended in exactly one
 * way. */
static bool
print_check(evfn_rt *rt)
{
	printf("\naccounting: accepted = succeeded + dead + expired + "
	       "handed back + cancelled;\nnothing pending\n");
	bool all = true;
	for (size_t i = 0; i < demo_function_count; i++) {
		evfn_stats *s;
		if (evfn_stats_take(rt, demo_functions[i], &s) != 0) {
			all = false;
			continue;
		}
		uint64_t acc = evfn_stats_value(s, EVFN_STAT_ACCEPTED);
		uint64_t ok = evfn_stats_value(s, EVFN_STAT_SUCCEEDED);
		uint64_t dead = evfn_stats_value(s, EVFN_STAT_DEAD_LETTERED);
		uint64_t exp = evfn_stats_value(s, EVFN_STAT_EXPIRED);
		uint64_t back = evfn_stats_value(s, EVFN_STAT_HANDED_BACK);
		uint64_t cancelled = evfn_stats_value(s, EVFN_STAT_CANCELLED);
		uint64_t pending = demo_pending(s);
		bool good = acc == ok + dead + exp + back + cancelled &&
		            pending == 0;
		all &= good;
		printf("  %-14s %6" PRIu64 " = %6" PRIu64 " + %4" PRIu64
		       " + %2" PRIu64 " + %2" PRIu64 " + %2" PRIu64
		       ", %" PRIu64 " pending  %s\n",
		       demo_functions[i], acc, ok, dead, exp, back, cancelled,
		       pending, good ? "ok" : "MISMATCH");
		evfn_stats_free(s);
	}
	return all;
}

bool
demo_summary_print(struct demo *d, double seconds)
{
	print_table(d->rt);
	print_dead_letters(d->rt);
	print_cost(d->rt, seconds);

	int64_t cents = 0;
	int64_t rows = demo_ledger_count(d, &cents);
	printf("\nledger: %" PRId64 " payments, %.2f EUR; %" PRIu64
	       " thumbnails published, %" PRIu64 " cleaned up\n",
	       rows, (double)cents / 100,
	       (uint64_t)atomic_load(&d->published),
	       (uint64_t)atomic_load(&d->cleaned));

	evfn_stats *s;
	bool booked = false;
	if (d->crash_run) {
		/* The ledger holds both runs' payments, the stats this
		 * run's: --crash checks the events across both instead. */
		booked = rows >= 0;
	} else if (evfn_stats_take(d->rt, "bookkeeping", &s) == 0) {
		/* Each successful bookkeeping event wrote one row. */
		booked = rows >= 0 &&
		         (uint64_t)rows ==
		                 evfn_stats_value(s, EVFN_STAT_SUCCEEDED);
		evfn_stats_free(s);
	}
	bool ok = print_check(d->rt);
	if (!d->crash_run)
		printf("  ledger rows = bookkeeping successes  %s\n",
		       booked ? "ok" : "MISMATCH");
	printf("every event accounted for: %s\n", ok && booked ? "yes" : "NO");
	return ok && booked;
}
