/* SPDX-License-Identifier: MIT */
/*
 * A flaky downstream: "flaky" calls a service that answers 503 on about a
 * fifth of the calls (RETRY), rejects a few for good (FAIL), and hangs on
 * some past the function's 200 ms deadline, so that retries with backoff,
 * timeouts and dead letters all show up in the summary.
 */
#include <time.h>

#include "demo.h"

#define TIMEOUT_MS 200
#define HANG_MS 300

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The same event and attempt always behave the same: a hash, not rand(),
 * which is not thread-safe. */
static unsigned
roll(uint64_t seq, unsigned attempt)
{
	uint64_t h = seq * 0x9e3779b97f4a7c15u;
	h ^= attempt * 0xbf58476d1ce4e5b9u;
	h ^= h >> 31;
	h *= 0x94d049bb133111ebu;
	h ^= h >> 29;
	return (unsigned)(h % 100);
}

static int
flaky(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	unsigned r = roll(evfn_event_seq(ev), evfn_ctx_attempt(ctx));
	if (r < 8) {
		/* The service hangs, in a blocking call the handler cannot
		 * interrupt. At the deadline the watchdog fences the
		 * attempt: it counts a timeout, schedules the retry at once
		 * and starts a worker in place of this one; what this
		 * returns later is counted late and ignored. (A handler whose
		 * calls can be interrupted polls evfn_ctx_cancelled().) */
		sleep_ms(HANG_MS);
		return EVFN_RETRY;
	}
	sleep_ms(2); /* the round trip */
	if (r < 28) {
		evfn_ctx_set_error(ctx, "downstream: 503 service unavailable");
		return EVFN_RETRY;
	}
	if (r < 30) {
		evfn_ctx_set_error(ctx, "downstream: 422 rejected");
		return EVFN_FAIL; /* no retry will change its mind */
	}
	return EVFN_OK;
}

int
demo_flaky_setup(struct demo *d)
{
	evfn_fn_options *o;
	int rc = evfn_fn_options_new(&o);
	if (rc)
		return rc;
	evfn_fn_options_set_timeout_ms(o, TIMEOUT_MS);
	evfn_fn_options_set_attempts(o, 3);
	/* Fast backoff for a demo: 10 ms, 20 ms, ... at most 100 ms. */
	evfn_fn_options_set_backoff(o, EVFN_BACKOFF_EXPONENTIAL, 10, 2.0, 100,
	                            EVFN_JITTER_FULL);
	/* Protect the downstream: at most 4 calls at once; and tolerate a
	 * few handlers still hanging past their deadline. */
	evfn_fn_options_set_concurrency(o, 4);
	evfn_fn_options_set_max_stuck(o, 8);
	rc = evfn_register(d->rt, "flaky", flaky, NULL, o, NULL);
	evfn_fn_options_free(o);
	return rc;
}
