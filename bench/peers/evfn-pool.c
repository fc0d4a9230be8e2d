/* SPDX-License-Identifier: MIT */
/*
 * evfn behind the benchmark's pool interface. One runtime with exactly
 * `workers` pool workers (min = max), one pool function "bench" whose queue
 * bound is the config's queue_cap; a submit is evfn_invoke_async() with the
 * 8-byte argument pointer as payload, and the handler copies it back out and
 * calls the task function. For fan-out, `fanout` functions subscribe to one
 * topic and a submit_fanout is a single evfn_emit(); a submit_batch
 * builds its events and admits them with one evfn_publish_batch(). A
 * refused admission
 * (EVFN_EQUEUEFULL) backs off with sched_yield() and retries; the retries
 * are counted and reported. Destroy is evfn_rt_drain() then
 * evfn_rt_free().
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evfn.h>

#include "pool.h"

#define EVP_FN "bench"
#define EVP_TOPIC "bench.fanout"
/* "Features off": deadline and maximum age a year away, one attempt, no
 * backoff; nothing the runtime tracks per event can fire. */
#define EVP_FOREVER_MS ((int64_t)365 * 24 * 3600 * 1000)

struct evp {
	evfn_rt *rt;
	bench_task_fn fn;
	atomic_uint_fast64_t backoffs;
};

static int
evp_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct evp *pool = userdata;
	const void *data;
	size_t len = 0;
	void *arg;

	(void)ctx;
	data = evfn_event_data(ev, &len);
	if (data == NULL || len != sizeof(arg))
		return EVFN_FAIL;
	memcpy(&arg, data, sizeof(arg));
	pool->fn(arg);
	return EVFN_OK;
}

static int
evp_check(int rc, const char *what)
{
	if (rc < 0)
		fprintf(stderr, "evfn: %s: %s (%s)\n", what,
		        evfn_err_name(rc), evfn_strerror(rc));
	return rc;
}

/* Builds the function options every registered function shares. */
static int
evp_fn_options(const struct bench_pool_config *cfg, evfn_fn_options **out)
{
	evfn_fn_options *fo = NULL;
	int rc;

	rc = evp_check(evfn_fn_options_new(&fo), "fn_options_new");
	if (rc == 0)
		rc = evp_check(evfn_fn_options_set_queue_capacity(
		                       fo, cfg->queue_cap),
		               "set_queue_capacity");
	if (rc == 0 && cfg->timeout_ms > 0)
		rc = evp_check(evfn_fn_options_set_timeout_ms(fo,
		                                              cfg->timeout_ms),
		               "set_timeout_ms");
	if (rc == 0 && cfg->features_off) {
		rc = evp_check(evfn_fn_options_set_timeout_ms(fo,
		                                              EVP_FOREVER_MS),
		               "set_timeout_ms");
		if (rc == 0)
			rc = evp_check(evfn_fn_options_set_max_age_ms(
			                       fo, EVP_FOREVER_MS),
			               "set_max_age_ms");
		if (rc == 0)
			rc = evp_check(evfn_fn_options_set_attempts(fo, 1),
			               "set_attempts");
		if (rc == 0)
			rc = evp_check(evfn_fn_options_set_backoff(
			                       fo, EVFN_BACKOFF_FIXED, 0, 1.0,
			                       0, EVFN_JITTER_NONE),
			               "set_backoff");
	}
	if (rc != 0) {
		evfn_fn_options_free(fo);
		fo = NULL;
	}
	*out = fo;
	return rc;
}

static void *
evp_create(const struct bench_pool_config *cfg)
{
	struct evp *pool = calloc(1, sizeof(*pool));
	evfn_rt_options *ro = NULL;
	evfn_fn_options *fo = NULL;
	char name[32];
	int rc, i;

	if (pool == NULL)
		return NULL;
	pool->fn = cfg->fn;
	atomic_init(&pool->backoffs, 0);
	rc = evp_check(evfn_rt_options_new(&ro), "rt_options_new");
	if (rc == 0)
		rc = evp_check(evfn_rt_options_set_workers(ro, cfg->workers,
		                                           cfg->workers),
		               "set_workers");
	if (rc == 0 && cfg->metrics_off)
		rc = evp_check(evfn_rt_options_set_metrics(ro, false),
		               "set_metrics");
	if (rc == 0)
		rc = evp_check(evfn_rt_new(&pool->rt, ro), "runtime_new");
	evfn_rt_options_free(ro);
	if (rc == 0)
		rc = evp_fn_options(cfg, &fo);
	if (rc == 0)
		rc = evp_check(evfn_register(pool->rt, EVP_FN, evp_handler,
		                             pool, fo, NULL),
		               "register");
	for (i = 0; rc == 0 && i < cfg->fanout; i++) {
		snprintf(name, sizeof(name), "fan%d", i);
		rc = evp_check(evfn_register(pool->rt, name, evp_handler, pool,
		                             fo, NULL),
		               "register");
		if (rc == 0)
			rc = evp_check(evfn_subscribe(pool->rt, EVP_TOPIC,
			                              name),
			               "subscribe");
	}
	evfn_fn_options_free(fo);
	if (rc == 0)
		rc = evp_check(evfn_rt_start(pool->rt), "runtime_start");
	if (rc != 0) {
		evfn_rt_free(pool->rt);
		free(pool);
		return NULL;
	}
	return pool;
}

static int
evp_submit(void *p, void *arg)
{
	struct evp *pool = p;
	int rc;

	for (;;) {
		rc = evfn_invoke_async(pool->rt, EVP_FN, &arg, sizeof(arg),
		                       NULL);
		if (rc != EVFN_EQUEUEFULL)
			break;
		atomic_fetch_add_explicit(&pool->backoffs, 1,
		                          memory_order_relaxed);
		sched_yield();
	}
	return evp_check(rc, "invoke_async");
}

static int
evp_submit_fanout(void *p, void *arg)
{
	struct evp *pool = p;
	int rc;

	for (;;) {
		rc = evfn_emit(pool->rt, EVP_TOPIC, &arg, sizeof(arg), NULL);
		if (rc != EVFN_EQUEUEFULL)
			break;
		atomic_fetch_add_explicit(&pool->backoffs, 1,
		                          memory_order_relaxed);
		sched_yield();
	}
	return evp_check(rc, "emit");
}

/* A batch is evfn_publish_batch() of built events to the function, all
 * or nothing: a refused batch is offered again whole. */
static int
evp_submit_batch(void *p, void *const *args, unsigned n)
{
	struct evp *pool = p;
	evfn_event *evs[EVFN_BATCH_MAX];
	int rc = 0;
	unsigned made;

	if (n > EVFN_BATCH_MAX)
		return evp_check(EVFN_ERANGE, "submit_batch");
	for (made = 0; made < n; made++) {
		rc = evfn_event_new(&evs[made], EVP_FN, &args[made],
		                    sizeof(args[made]));
		if (rc != 0)
			break;
	}
	while (rc == 0) {
		rc = evfn_publish_batch(pool->rt, EVP_FN, evs, n, NULL);
		if (rc != EVFN_EQUEUEFULL)
			break;
		atomic_fetch_add_explicit(&pool->backoffs, 1,
		                          memory_order_relaxed);
		sched_yield();
		rc = 0;
	}
	for (unsigned i = 0; i < made; i++)
		evfn_event_unref(evs[i]);
	return evp_check(rc, "publish_batch");
}

static void
evp_destroy(void *p)
{
	struct evp *pool = p;
	int rc;

	evp_check(evfn_rt_drain(pool->rt, 10000, NULL, NULL), "drain");
	rc = evp_check(evfn_rt_free(pool->rt), "runtime_free");
	if (rc == 0)
		free(pool);
}

static uint64_t
evp_backoffs(void *p)
{
	struct evp *pool = p;

	return atomic_load(&pool->backoffs);
}

static const char *
evp_version(void)
{
	return evfn_version_string();
}

const struct bench_pool_ops bench_evfn_ops = {
	.name = "evfn",
	.create = evp_create,
	.submit = evp_submit,
	.submit_batch = evp_submit_batch,
	.submit_fanout = evp_submit_fanout,
	.destroy = evp_destroy,
	.backoffs = evp_backoffs,
	.version = evp_version,
};
