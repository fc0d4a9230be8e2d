/* SPDX-License-Identifier: MIT */
/*
 * The baseline peer: the textbook pthread pool. One mutex and one condition
 * variable guard a FIFO linked list; every submit mallocs a node, appends it
 * under the lock and signals the condition variable when a worker is
 * waiting; workers free the node after running it. No batching, no spinning,
 * no lock-free tricks: this is the design every other system should beat.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* POSIX and GNU declarations under -std=c11 */
#endif

#include <gnu/libc-version.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "pool.h"

struct ppool_node {
	struct ppool_node *next;
	bench_task_fn fn;
	void *arg;
};

struct ppool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ppool_node *head;
	struct ppool_node *tail;
	int waiting;            /* workers blocked in pthread_cond_wait */
	int stop;
	int nthreads;
	bench_task_fn fn;
	pthread_t *threads;
};

/*
 * Worker loop: take the head node under the lock, run it outside the lock.
 * On stop, the queue is drained before the worker exits, so destroy never
 * drops work.
 */
static void *
ppool_worker(void *p)
{
	struct ppool *pool = p;

	for (;;) {
		struct ppool_node *n;

		pthread_mutex_lock(&pool->mu);
		while (pool->head == NULL && !pool->stop) {
			pool->waiting++;
			pthread_cond_wait(&pool->cv, &pool->mu);
			pool->waiting--;
		}
		n = pool->head;
		if (n == NULL) {
			pthread_mutex_unlock(&pool->mu);
			return NULL;
		}
		pool->head = n->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pthread_mutex_unlock(&pool->mu);
		n->fn(n->arg);
		free(n);
	}
}

static void *
ppool_create(const struct bench_pool_config *cfg)
{
	struct ppool *pool = calloc(1, sizeof(*pool));
	int i;

	if (pool == NULL)
		return NULL;
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->cv, NULL);
	pool->fn = cfg->fn;
	pool->threads = calloc((size_t)cfg->workers, sizeof(pthread_t));
	if (pool->threads == NULL) {
		free(pool);
		return NULL;
	}
	for (i = 0; i < cfg->workers; i++) {
		if (pthread_create(&pool->threads[i], NULL, ppool_worker,
		                   pool) != 0)
			break;
		pool->nthreads++;
	}
	return pool;
}

static int
ppool_submit(void *p, void *arg)
{
	struct ppool *pool = p;
	struct ppool_node *n = malloc(sizeof(*n));

	if (n == NULL)
		return -1;
	n->next = NULL;
	n->fn = pool->fn;
	n->arg = arg;
	pthread_mutex_lock(&pool->mu);
	if (pool->tail != NULL)
		pool->tail->next = n;
	else
		pool->head = n;
	pool->tail = n;
	if (pool->waiting > 0)
		pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	return 0;
}

static void
ppool_destroy(void *p)
{
	struct ppool *pool = p;
	int i;

	pthread_mutex_lock(&pool->mu);
	pool->stop = 1;
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	for (i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool->threads);
	free(pool);
}

static const char *
ppool_version(void)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "glibc %s", gnu_get_libc_version());
	return buf;
}

const struct bench_pool_ops bench_pthread_ops = {
	.name = "pthread",
	.create = ppool_create,
	.submit = ppool_submit,
	.submit_fanout = NULL,
	.destroy = ppool_destroy,
	.backoffs = NULL,
	.version = ppool_version,
};
