/* SPDX-License-Identifier: MIT */
/*
 * A published event's attributes as bytes and back: what the journal
 * stores so that an event outlives its process. The payload is not part
 * of the encoding (the journal keeps it beside, as it is), and neither
 * is anything the runtime decides again when it re-admits the event: the
 * sequence number, a delay (the journal keeps the due time), the default
 * id and the default source.
 */
#ifndef EVFN_EVENT_CODEC_INTERNAL_H
#define EVFN_EVENT_CODEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <evfn/event.h>

/* A growable byte buffer; zero-initialised is empty. */
struct evfn__bytes {
	uint8_t *p;
	size_t len, cap;
};

/* Frees the buffer's memory and empties it. */
void evfn__bytes_free(struct evfn__bytes *b);

/*
 * Appends the encoding of a published event's attributes to out: type,
 * CloudEvents time, hop count, and the id, source, subject,
 * datacontenttype, ordering key and extensions that were set (an id or
 * source the runtime defaulted is left out). Returns 0 or EVFN_ENOMEM
 * (out keeps what it held). Reads only: any thread holding a reference.
 */
int evfn__event_encode(const evfn_event *ev, struct evfn__bytes *out);

/*
 * A new, unpublished event from an encoding and its payload (copied),
 * with one reference: the attributes encoded, nothing else set. Freezing
 * it with its original sequence number and source gives back the id and
 * source that were defaulted. Returns 0; EVFN_ECORRUPT for bytes that
 * are not a valid encoding (truncated, an unknown format version, an
 * attribute the setters refuse); EVFN_ENOMEM. *out is NULL on failure.
 */
int evfn__event_decode(evfn_event **out, const void *attrs, size_t len,
                       const void *data, size_t data_len);

#endif /* EVFN_EVENT_CODEC_INTERNAL_H */
