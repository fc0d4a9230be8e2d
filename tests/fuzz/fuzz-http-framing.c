/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the HTTP request framer (http-framing.c). The
 * first input byte chooses the size of the pieces the rest arrives in and
 * how much a reader takes off the front after each, as evhttp would;
 * the rest is the connection's bytes. The framer must neither crash nor
 * lose step with the buffer: after a failure nothing more is framed, and
 * what it framed is still in the buffer or taken.
 */
#include <stdint.h>
#include <stdlib.h>

#include <event2/buffer.h>

#include "sources/http-framing-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
on_change(struct evbuffer *buf, const struct evbuffer_cb_info *info,
          void *arg)
{
	evfn__framer_input(arg, buf, info->n_deleted);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 1 << 16)
		return 0;
	size_t piece = 1 + (data[0] & 0x3f);
	size_t take = (size_t)(data[0] >> 6) * 7;
	data++;
	size--;
	struct evfn__framer f;
	evfn__framer_init(&f);
	struct evbuffer *in = evbuffer_new();
	if (!in || !evbuffer_add_cb(in, on_change, &f))
		abort();
	for (size_t at = 0; at < size && !evfn__framer_failed(&f);) {
		size_t n = size - at < piece ? size - at : piece;
		evbuffer_add(in, data + at, n);
		at += n;
		if (f.pos > evbuffer_get_length(in))
			abort(); /* framed more than there is */
		size_t k = take < f.pos ? take : f.pos;
		evbuffer_drain(in, k);
	}
	evbuffer_free(in);
	return 0;
}
