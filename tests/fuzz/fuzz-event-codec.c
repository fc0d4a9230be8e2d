/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the journal's event encoding: any bytes either
 * decode into an event or are refused with EVFN_ECORRUPT (never read past
 * their end), and an event that decodes encodes back to the same bytes.
 * The input is the encoded attributes; the payload is irrelevant to the
 * decoder and stays empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <evfn/errors.h>

#include "event-codec-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	evfn_event *ev;
	int rc = evfn__event_decode(&ev, data, size, NULL, 0);
	if (rc == EVFN_ENOMEM)
		return 0;
	if (rc != 0) {
		if (rc != EVFN_ECORRUPT || ev)
			abort();
		return 0;
	}
	/* Decoded events are unpublished (no default id or source) and the
	 * encoding is canonical: encoding gives the input back. */
	struct evfn__bytes b = {0};
	if (evfn__event_encode(ev, &b) == 0 &&
	    (b.len != size || memcmp(b.p, data, size) != 0))
		abort();
	evfn__bytes_free(&b);
	evfn_event_unref(ev);
	return 0;
}
