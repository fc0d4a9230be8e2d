/* SPDX-License-Identifier: MIT */
/*
 * The libuv peer: tasks run through uv_queue_work() on libuv's threadpool,
 * sized with UV_THREADPOOL_SIZE before the first libuv call. libuv allows
 * uv_queue_work() only on the loop thread, and the producers here are other
 * threads, so a submit allocates the request, pushes it on a lock-free
 * multi-producer stack and wakes the loop with uv_async_send() when the
 * stack was empty; the loop's async callback takes the whole stack, restores
 * FIFO order and queues each request. after_work runs on the loop thread and
 * frees the request. This is how a multi-threaded host has to feed libuv,
 * and the hand-off costs one atomic CAS per task on the producer side.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* POSIX and GNU declarations under -std=c11 */
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "pool.h"

/* The caller-allocated request plus one link: 136 bytes, the smallest
 * record a libuv user can queue. The task function is the pool's, found
 * from req.loop. */
struct uvp_req {
	uv_work_t req;          /* req.data holds the task argument */
	struct uvp_req *next;   /* link on the submission stack */
};

struct uvp {
	uv_loop_t loop;
	uv_async_t async;
	pthread_t thread;
	_Atomic(struct uvp_req *) stack;
	atomic_int stop;
	bench_task_fn fn;
};

static void
uvp_work(uv_work_t *req)
{
	struct uvp *pool = (struct uvp *)((char *)req->loop -
	                                  offsetof(struct uvp, loop));

	pool->fn(req->data);
}

static void
uvp_after_work(uv_work_t *req, int status)
{
	(void)status;
	free(req);
}

/*
 * Loop thread: take every pending request at once, reverse the LIFO stack to
 * submission order, queue each. The stop flag is checked only after the
 * stack is emptied, and destroy sets it after the producers finished, so no
 * request is left behind; closing the async handle then lets uv_run() return
 * once the last after_work callback has run.
 */
static void
uvp_async_cb(uv_async_t *h)
{
	struct uvp *pool = h->data;
	struct uvp_req *r = atomic_exchange(&pool->stack, NULL);
	struct uvp_req *fifo = NULL;

	while (r != NULL) {
		struct uvp_req *next = r->next;

		r->next = fifo;
		fifo = r;
		r = next;
	}
	while (fifo != NULL) {
		struct uvp_req *next = fifo->next;

		uv_queue_work(&pool->loop, &fifo->req, uvp_work,
		              uvp_after_work);
		fifo = next;
	}
	if (atomic_load(&pool->stop))
		uv_close((uv_handle_t *)h, NULL);
}

static void *
uvp_thread(void *p)
{
	struct uvp *pool = p;

	uv_run(&pool->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void *
uvp_create(const struct bench_pool_config *cfg)
{
	struct uvp *pool;
	char n[16];

	/* Must precede the first uv_queue_work(): the threadpool reads it
	 * once, when it starts. */
	snprintf(n, sizeof(n), "%d", cfg->workers);
	setenv("UV_THREADPOOL_SIZE", n, 1);
	pool = calloc(1, sizeof(*pool));
	if (pool == NULL)
		return NULL;
	pool->fn = cfg->fn;
	atomic_init(&pool->stack, NULL);
	atomic_init(&pool->stop, 0);
	if (uv_loop_init(&pool->loop) != 0 ||
	    uv_async_init(&pool->loop, &pool->async, uvp_async_cb) != 0) {
		free(pool);
		return NULL;
	}
	pool->async.data = pool;
	if (pthread_create(&pool->thread, NULL, uvp_thread, pool) != 0) {
		free(pool);
		return NULL;
	}
	return pool;
}

static int
uvp_submit(void *p, void *arg)
{
	struct uvp *pool = p;
	struct uvp_req *r = malloc(sizeof(*r));
	struct uvp_req *head;

	if (r == NULL)
		return -1;
	r->req.data = arg;
	head = atomic_load_explicit(&pool->stack, memory_order_relaxed);
	do {
		r->next = head;
	} while (!atomic_compare_exchange_weak_explicit(
	        &pool->stack, &head, r, memory_order_release,
	        memory_order_relaxed));
	/* Only the push onto an empty stack wakes the loop: every later push
	 * lands on a stack whose first pusher has yet to call, or has called,
	 * uv_async_send(), and the callback that send guarantees takes it. */
	if (head == NULL)
		uv_async_send(&pool->async);
	return 0;
}

static void
uvp_destroy(void *p)
{
	struct uvp *pool = p;

	atomic_store(&pool->stop, 1);
	uv_async_send(&pool->async);
	pthread_join(pool->thread, NULL);
	uv_loop_close(&pool->loop);
	free(pool);
}

static const char *
uvp_version(void)
{
	return uv_version_string();
}

const struct bench_pool_ops bench_libuv_ops = {
	.name = "libuv",
	.create = uvp_create,
	.submit = uvp_submit,
	.submit_fanout = NULL,
	.destroy = uvp_destroy,
	.backoffs = NULL,
	.version = uvp_version,
};
