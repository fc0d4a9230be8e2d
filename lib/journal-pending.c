/* SPDX-License-Identifier: MIT */
/*
 * The buffer of journal operations awaiting their commit. Appends are
 * indexed by sequence number, directly: a batch's appends cover a short
 * range of consecutive numbers, so index[seq - base] finds an append in
 * one access to memory written moments before, where a hash table would
 * miss the cache on every call. The end of an invocation appended in the
 * same buffer (the common case in fast mode: a short handler) finds its
 * append there and cancels it. Other operations are not indexed: they
 * are kept in call order and applied so by the writer. Callers hold the
 * journal's lock.
 */
#include <string.h>

#include "common-internal.h"
#include "journal-pending-internal.h"

/* Appends may reach the journal slightly out of order (producers race
 * from admission to it): the index starts this far below the first. */
#define INDEX_BELOW 256
/* An append this far past the range (beyond twice the operations) is not
 * indexed: the index stays proportional to the buffer. */
#define INDEX_SLACK 65536

/* Notes the append at position pos in the index, when it fits. Not
 * indexing is always safe: an end that finds no append is written. */
static void
index_append(struct evfn__jpending *p, uint64_t seq, size_t pos)
{
	if (p->base == 0)
		p->base = seq > INDEX_BELOW ? seq - INDEX_BELOW : 1;
	if (seq < p->base)
		return;
	uint64_t off = seq - p->base;
	if (off >= p->index_cap) {
		if (off > 2 * (uint64_t)p->n + INDEX_SLACK)
			return;
		size_t cap = p->index_cap ? p->index_cap : 4096;
		while (cap <= off)
			cap *= 2;
		uint32_t *index = evfn__realloc(p->index, cap * sizeof(*index));
		if (!index)
			return;
		memset(index + p->index_cap, 0,
		       (cap - p->index_cap) * sizeof(*index));
		p->index = index;
		p->index_cap = cap;
	}
	/* The first of the seq's appends: a fan-out's follow it. */
	if (p->index[off] == 0)
		p->index[off] = (uint32_t)pos + 1;
	if (off >= p->index_used)
		p->index_used = (size_t)off + 1;
}

/* The invocation's append in the buffer, a cancelled one too (its end
 * came: it ended), or NULL. */
static struct evfn__jop *
lookup(struct evfn__jpending *p, uint64_t seq, uint32_t fn)
{
	if (seq < p->base || seq - p->base >= p->index_used)
		return NULL;
	uint32_t at = p->index[seq - p->base];
	for (size_t i = at ? at - 1 : p->n; i < p->n && p->ops[i].seq == seq;
	     i++) {
		struct evfn__jop *op = &p->ops[i];
		if (op->fn == fn && (op->kind == EVFN__JOP_APPEND ||
		                     op->kind == EVFN__JOP_NONE))
			return op;
	}
	return NULL;
}

int
evfn__jpending_push(struct evfn__jpending *p, const struct evfn__jop *op)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		if (cap > UINT32_MAX)
			return EVFN_ENOMEM; /* the index holds 32-bit positions */
		struct evfn__jop *ops = evfn__realloc(p->ops, cap * sizeof(*ops));
		if (!ops)
			return EVFN_ENOMEM;
		p->ops = ops;
		p->cap = cap;
	}
	if (p->n == 0)
		p->first_ns = evfn__now_ns();
	p->ops[p->n] = *op;
	if (op->waiter)
		p->waiters++;
	if (op->kind == EVFN__JOP_APPEND) {
		index_append(p, op->seq, p->n);
		p->appends++;
		p->max_seq = EVFN__MAX(p->max_seq, op->seq);
	} else if (op->kind == EVFN__JOP_DEAD_LETTER) {
		p->max_dead_letter = EVFN__MAX(p->max_dead_letter, op->id);
	}
	p->n++;
	return 0;
}

struct evfn__jop *
evfn__jpending_find(struct evfn__jpending *p, uint64_t seq, uint32_t fn)
{
	struct evfn__jop *op = lookup(p, seq, fn);
	return op && op->kind == EVFN__JOP_APPEND ? op : NULL;
}

void
evfn__jpending_truncate(struct evfn__jpending *p, size_t n)
{
	while (p->n > n) {
		struct evfn__jop *op = &p->ops[--p->n];
		if (op->waiter)
			p->waiters--;
		if (op->kind == EVFN__JOP_APPEND) {
			p->appends--;
			uint64_t off = op->seq - p->base;
			if (op->seq >= p->base && off < p->index_used &&
			    p->index[off] == p->n + 1)
				p->index[off] = 0;
		}
		op->waiter = NULL;
		evfn__jop_release(op, NULL);
	}
}

void
evfn__jop_release(struct evfn__jop *op, struct evfn__jdrop *drop)
{
	evfn__free(op->text);
	evfn__free(op->blob);
	op->text = NULL;
	op->blob = NULL;
	if (op->ev) {
		if (drop)
			drop->ev[drop->n++] = op->ev;
		else
			evfn_event_unref(op->ev);
		op->ev = NULL;
	}
	/* The waiter stays: it is told when the batch commits. */
	op->kind = EVFN__JOP_NONE;
}

int
evfn__jpending_update(struct evfn__jpending *p, uint64_t seq, uint32_t fn,
                      const struct evfn__journal_state *st)
{
	struct evfn__jop *op = lookup(p, seq, fn);
	if (op && op->kind == EVFN__JOP_NONE)
		return 0; /* it ended: a late update changes nothing */
	char *text = NULL;
	if (st->last_error && !(text = evfn__strdup(st->last_error)))
		return EVFN_ENOMEM;
	if (op) {
		evfn__free(op->text);
		op->text = text;
		op->st = *st;
		op->st.last_error = NULL;
		return 0;
	}
	struct evfn__jop up = {.seq = seq, .fn = fn, .kind = EVFN__JOP_UPDATE,
	                       .st = *st, .text = text};
	up.st.last_error = NULL;
	int rc = evfn__jpending_push(p, &up);
	if (rc < 0)
		evfn__free(text);
	return rc;
}

int
evfn__jpending_end(struct evfn__jpending *p, uint64_t seq, uint32_t fn,
                   enum evfn__journal_end how, struct evfn__jdrop *drop)
{
	struct evfn__jop *op = lookup(p, seq, fn);
	if (op && op->kind == EVFN__JOP_NONE)
		return 0; /* ended twice: the first end stands */
	if (op && how == EVFN__JEND_HANDED_BACK) {
		op->st.phase = EVFN__JPHASE_HANDED_BACK;
		return 0;
	}
	if (op) {
		/* Never written, and now never will be. */
		evfn__jop_release(op, drop);
		p->cancelled++;
		return 0;
	}
	struct evfn__jop end = {.seq = seq, .fn = fn,
	                        .kind = how == EVFN__JEND_HANDED_BACK
	                                        ? EVFN__JOP_HAND_BACK
	                                        : EVFN__JOP_END};
	return evfn__jpending_push(p, &end);
}

int
evfn__jpending_supersede(struct evfn__jpending *p, const struct evfn__jop *op,
                         struct evfn__jdrop *drop)
{
	/* By position: the push may move the operations. */
	struct evfn__jop *old = evfn__jpending_find(p, op->seq, op->fn);
	size_t old_i = old ? (size_t)(old - p->ops) : 0;
	int rc = evfn__jpending_push(p, op);
	if (rc == 0 && old) {
		evfn__jop_release(&p->ops[old_i], drop);
		p->cancelled++;
	}
	return rc;
}

void
evfn__jpending_reset(struct evfn__jpending *p)
{
	for (size_t i = 0; i < p->n; i++)
		evfn__jop_release(&p->ops[i], NULL);
	if (p->index_used)
		memset(p->index, 0, p->index_used * sizeof(*p->index));
	p->n = 0;
	p->index_used = 0;
	p->base = 0;
	p->waiters = 0;
	p->max_seq = 0;
	p->max_dead_letter = 0;
	p->appends = p->cancelled = 0;
}

void
evfn__jpending_free(struct evfn__jpending *p)
{
	evfn__jpending_reset(p);
	evfn__free(p->ops);
	evfn__free(p->index);
	memset(p, 0, sizeof(*p));
}

void
evfn__jdrop_release(struct evfn__jdrop *drop)
{
	for (int i = 0; i < drop->n; i++)
		evfn_event_unref(drop->ev[i]);
	drop->n = 0;
}
