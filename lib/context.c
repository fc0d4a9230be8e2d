/* SPDX-License-Identifier: MIT */
/*
 * The invocation context as handlers see it: attempt, deadline, the
 * cancelled flag, warm state, and what a handler hands back (response,
 * metadata, error message): the invocation's side a handler sees, which
 * knows nothing of the runtime. Completing a PENDING attempt,
 * evfn_ctx_complete(), is the loop executor's (loopexec.c); a handler's
 * child emits are in publish.c; evfn_ctx_rt(), which needs the
 * function's layout, is registry.c's.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <evfn/context.h>

#include "common-internal.h"
#include "invocation-internal.h"
#include "kv-internal.h"

unsigned
evfn_ctx_attempt(const evfn_ctx *ctx)
{
	return ctx ? EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx)->attempt
	           : 0;
}

int64_t
evfn_ctx_deadline_ns(const evfn_ctx *ctx)
{
	return ctx ? ctx->deadline_ns : 0;
}

int64_t
evfn_ctx_remaining_ns(const evfn_ctx *ctx)
{
	if (!ctx)
		return 0;
	int64_t left = ctx->deadline_ns - evfn__now_ns();
	return left > 0 ? left : 0;
}

bool
evfn_ctx_cancelled(const evfn_ctx *ctx)
{
	return ctx && (atomic_load(&((evfn_ctx *)ctx)->cancelled) ||
	               evfn_ctx_remaining_ns(ctx) == 0);
}

evfn_fn *
evfn_ctx_function(const evfn_ctx *ctx)
{
	return ctx ? EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx)->fn : NULL;
}

void *
evfn_ctx_worker_state(const evfn_ctx *ctx)
{
	return ctx ? ctx->worker_state : NULL;
}

int
evfn_ctx_respond(evfn_ctx *ctx, const void *data, size_t len)
{
	if (!ctx || (!data && len > 0))
		return EVFN_EINVAL;
	void *copy = NULL;
	if (len && !(copy = evfn__malloc(len)))
		return EVFN_ENOMEM;
	if (len)
		memcpy(copy, data, len);
	evfn__free(ctx->resp);
	ctx->resp = copy;
	ctx->resp_len = len;
	return 0;
}

int
evfn_ctx_set_meta(evfn_ctx *ctx, const char *key, const char *value)
{
	if (!ctx || !key || !*key)
		return EVFN_EINVAL;
	return evfn__kv_set(&ctx->meta, key, value);
}

/* The length of msg kept when it is cut to at most max bytes: never in
 * the middle of a UTF-8 sequence, so that a binding decoding the message
 * as UTF-8 gets whole characters (a cut character is dropped whole). Text
 * that is not UTF-8 is cut at max, as before. */
static size_t
utf8_cut_len(const char *msg, size_t max)
{
	size_t len = strnlen(msg, max);
	if (msg[len] == '\0')
		return len; /* nothing cut */
	/* msg[len] is the first byte dropped: while it continues a sequence
	 * (10xxxxxx), that sequence began before the cut; back off to its
	 * lead byte, at most 3 bytes (the longest sequence is 4). */
	size_t keep = len;
	while (keep > 0 && len - keep < 3 &&
	       ((unsigned char)msg[keep] & 0xC0) == 0x80)
		keep--;
	return ((unsigned char)msg[keep] & 0xC0) == 0xC0 ? keep : len;
}

int
evfn_ctx_set_error(evfn_ctx *ctx, const char *msg)
{
	if (!ctx || !msg)
		return EVFN_EINVAL;
	size_t len = utf8_cut_len(msg, 1023);
	char *copy = evfn__malloc(len + 1);
	if (!copy)
		return EVFN_ENOMEM;
	memcpy(copy, msg, len);
	copy[len] = '\0';
	evfn__free(ctx->error);
	ctx->error = copy;
	return 0;
}

int
evfn_ctx_errorf(evfn_ctx *ctx, const char *fmt, ...)
{
	if (!ctx || !fmt)
		return EVFN_EINVAL;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return evfn_ctx_set_error(ctx, buf);
}

size_t
evfn_ctx_batch_size(const evfn_ctx *ctx)
{
	if (!ctx)
		return 0;
	return ctx->batch ? ctx->batch->n : 1;
}

const evfn_event *
evfn_ctx_batch_event(const evfn_ctx *ctx, size_t i)
{
	if (!ctx || i >= evfn_ctx_batch_size(ctx))
		return NULL;
	if (ctx->batch)
		return ctx->batch->items[i]->ev;
	return EVFN__CONTAINER_OF(ctx, struct evfn__inv, ctx)->ev;
}

int
evfn_ctx_batch_item_failed(evfn_ctx *ctx, size_t i, evfn_outcome outcome)
{
	if (!ctx || i >= evfn_ctx_batch_size(ctx) ||
	    (outcome != EVFN_RETRY && outcome != EVFN_FAIL))
		return EVFN_EINVAL;
	if (!ctx->batch)
		return 0; /* one event: the handler's return says it all */
	ctx->batch->outcomes[i] = (signed char)outcome;
	return 0;
}
