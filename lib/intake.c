/* SPDX-License-Identifier: MIT */
/*
 * The intake's ring (contract in intake-internal.h). Its one shared word
 * holds the tail (next position to reserve, low 32 bits) and the head
 * (next position the consumer takes, high 32 bits): a producer moves the
 * tail by compare-and-swap against the head it saw in the same word, so
 * the bound, the all-or-nothing batch and "was empty" are all decided on
 * one consistent snapshot; the consumer moves the head with one atomic add
 * per take, whatever it took. Slots hold the items; NULL marks a slot not
 * yet filled, so the consumer needs no per-slot sequence number.
 */
#include <stdatomic.h>

#include "common-internal.h"
#include "intake-internal.h"

/* A filled slot given up: never returned by a take. Any address that is
 * not an item will do; the intake's own is one. */
#define GIVEN_UP(q) ((void *)(q))

/* The cache line: pos is written by every producer and the consumer, so
 * nothing else shares its line. */
#define LINE 64

struct evfn__intake {
	_Atomic uint64_t pos; /* head << 32 | tail; at a line's start */
	char pad[LINE - sizeof(uint64_t)];
	void *raw;            /* what the allocator returned */
	uint32_t bound;
	uint32_t mask;        /* ring size - 1 */
	_Atomic(void *) slot[];
};

#define TAIL(pos) ((uint32_t)(pos))
#define HEAD(pos) ((uint32_t)((pos) >> 32))

int
evfn__intake_new(struct evfn__intake **out, uint32_t bound)
{
	return evfn__intake_new_at(out, bound, 0);
}

int
evfn__intake_new_at(struct evfn__intake **out, uint32_t bound,
                    uint32_t start)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	if (bound < 1 || bound > EVFN__INTAKE_BOUND_MAX)
		return EVFN_EINVAL;
	uint32_t size = 1;
	while (size < bound)
		size <<= 1;
	/* calloc: every slot starts NULL, "not filled". The allocator
	 * promises less than a line's alignment, so the ring starts at the
	 * first line boundary inside a line's worth more. */
	void *raw = evfn__calloc(1, LINE + sizeof(struct evfn__intake) +
	                                    (size_t)size * sizeof(void *));
	if (!raw)
		return EVFN_ENOMEM;
	struct evfn__intake *q =
		(void *)(((uintptr_t)raw + LINE - 1) & ~(uintptr_t)(LINE - 1));
	q->raw = raw;
	atomic_init(&q->pos, (uint64_t)start << 32 | start);
	q->bound = bound;
	q->mask = size - 1;
	*out = q;
	return 0;
}

void
evfn__intake_free(struct evfn__intake *q)
{
	if (q)
		evfn__free(q->raw);
}

int
evfn__intake_reserve(struct evfn__intake *q, uint32_t n,
                     struct evfn__intake_ticket *t)
{
	if (n == 0)
		return EVFN_EINVAL;
	uint64_t pos = atomic_load_explicit(&q->pos, memory_order_relaxed);
	for (;;) {
		uint32_t used = TAIL(pos) - HEAD(pos);
		/* used <= bound always holds, so this cannot wrap. A refusal
		 * rests on one snapshot of both ends: at that instant the
		 * intake was too full. */
		if (n > q->bound - used)
			return EVFN_EQUEUEFULL;
		uint64_t next = (pos & ~(uint64_t)UINT32_MAX) |
		                (uint32_t)(TAIL(pos) + n);
		/* Acquire: the consumer emptied these slots (stored NULL)
		 * before it released their room by moving the head. */
		if (atomic_compare_exchange_weak_explicit(
			    &q->pos, &pos, next, memory_order_acquire,
			    memory_order_relaxed)) {
			t->pos = TAIL(pos);
			t->n = n;
			t->was_empty = used == 0;
			return 0;
		}
	}
}

void
evfn__intake_fill(struct evfn__intake *q, const struct evfn__intake_ticket *t,
                  uint32_t i, void *item)
{
	atomic_store_explicit(&q->slot[(t->pos + i) & q->mask],
	                      item ? item : GIVEN_UP(q), memory_order_release);
}

size_t
evfn__intake_take(struct evfn__intake *q, void **out, size_t max,
                  bool *drained)
{
	uint64_t pos = atomic_load_explicit(&q->pos, memory_order_acquire);
	uint32_t head = HEAD(pos), avail = TAIL(pos) - head;
	uint32_t stepped = 0; /* slots left behind: taken or given up */
	size_t taken = 0;
	while (stepped < avail && taken < max) {
		_Atomic(void *) *slot = &q->slot[(head + stepped) & q->mask];
		void *item = atomic_load_explicit(slot, memory_order_acquire);
		if (!item)
			break; /* reserved, not filled yet: keep the order */
		atomic_store_explicit(slot, NULL, memory_order_relaxed);
		stepped++;
		if (item != GIVEN_UP(q))
			out[taken++] = item;
	}
	if (stepped == 0) {
		if (drained)
			*drained = avail == 0;
		return 0;
	}
	/* Release: the slots read NULL before a producer may reserve them
	 * again. The add cannot carry into anything: the head is the top
	 * half, and its overflow leaves the word. */
	pos = atomic_fetch_add_explicit(&q->pos, (uint64_t)stepped << 32,
	                                memory_order_release);
	if (drained)
		*drained = TAIL(pos) == (uint32_t)(HEAD(pos) + stepped);
	return taken;
}

uint32_t
evfn__intake_count(const struct evfn__intake *q)
{
	uint64_t pos = atomic_load_explicit(
		&((struct evfn__intake *)q)->pos, memory_order_relaxed);
	return TAIL(pos) - HEAD(pos);
}
