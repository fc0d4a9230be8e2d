/* SPDX-License-Identifier: MIT */
/*
 * The GLib peer: a GThreadPool with max_threads = workers and exclusive
 * threads, so its threads start at once and are not shared with other
 * pools. The task function is bound at g_thread_pool_new(); a submit is
 * g_thread_pool_push() of the argument alone (GLib queues the pointer in a
 * GAsyncQueue, no per-task record of ours).
 */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

#include "pool.h"

struct gpool {
	GThreadPool *tp;
	bench_task_fn fn;
};

static void
gpool_run(gpointer data, gpointer user_data)
{
	struct gpool *pool = user_data;

	pool->fn(data);
}

static void *
gpool_create(const struct bench_pool_config *cfg)
{
	struct gpool *pool = calloc(1, sizeof(*pool));
	GError *err = NULL;

	if (pool == NULL)
		return NULL;
	pool->fn = cfg->fn;
	pool->tp = g_thread_pool_new(gpool_run, pool, cfg->workers, TRUE,
	                             &err);
	if (pool->tp == NULL) {
		fprintf(stderr, "g_thread_pool_new: %s\n",
		        err != NULL ? err->message : "?");
		g_clear_error(&err);
		free(pool);
		return NULL;
	}
	return pool;
}

static int
gpool_submit(void *p, void *arg)
{
	struct gpool *pool = p;

	/* Returns FALSE only when a new thread could not be started, which
	 * cannot happen for an exclusive pool after creation. */
	return g_thread_pool_push(pool->tp, arg, NULL) ? 0 : -1;
}

static void
gpool_destroy(void *p)
{
	struct gpool *pool = p;

	/* immediate FALSE: run what is queued; wait TRUE: join. */
	g_thread_pool_free(pool->tp, FALSE, TRUE);
	free(pool);
}

static const char *
gpool_version(void)
{
	static char buf[32];

	snprintf(buf, sizeof(buf), "%u.%u.%u", glib_major_version,
	         glib_minor_version, glib_micro_version);
	return buf;
}

const struct bench_pool_ops bench_glib_ops = {
	.name = "glib",
	.create = gpool_create,
	.submit = gpool_submit,
	.submit_fanout = NULL,
	.destroy = gpool_destroy,
	.backoffs = NULL,
	.version = gpool_version,
};
