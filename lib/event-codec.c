/* SPDX-License-Identifier: MIT */
/*
 * The journal's encoding of an event's attributes. Format 1, little
 * endian, lengths as LEB128 varints:
 *
 *   u8 format (1), u8 flags (which optional attributes follow),
 *   varint hops, u64 time (ns since the epoch, two's complement),
 *   str type, then in this order those the flags name: str id,
 *   str source, str subject, str datacontenttype, str ordering key;
 *   varint count, then count pairs (str name, str value) of extensions.
 *
 * A str is a varint length and that many bytes, no terminator. The
 * encoding is canonical (shortest varints, each extension once), and
 * decoding accepts nothing else: encoding what was decoded gives the same
 * bytes. It checks every length against the bytes left and hands each
 * attribute to the event's own setter, so that a damaged record can be
 * refused but never make an event the public API could not have made.
 */
#include <string.h>

#include "common-internal.h"
#include "event-codec-internal.h"
#include "event-internal.h"

#define FORMAT_1 1

enum attr_flag {
	HAS_ID = 1 << 0,
	HAS_SOURCE = 1 << 1,
	HAS_SUBJECT = 1 << 2,
	HAS_DCT = 1 << 3,
	HAS_OKEY = 1 << 4,
};
#define ALL_FLAGS (HAS_ID | HAS_SOURCE | HAS_SUBJECT | HAS_DCT | HAS_OKEY)

/* Longest varint of a 64-bit value. */
#define VARINT_MAX 10

void
evfn__bytes_free(struct evfn__bytes *b)
{
	evfn__free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Makes room for n more bytes. Returns 0 or EVFN_ENOMEM. */
static int
bytes_reserve(struct evfn__bytes *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *p = evfn__realloc(b->p, cap);
	if (!p)
		return EVFN_ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* The writers below run after one bytes_reserve() of the whole size. */
static void
put_varint(struct evfn__bytes *b, uint64_t v)
{
	while (v >= 0x80) {
		b->p[b->len++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b->p[b->len++] = (uint8_t)v;
}

static void
put_u64(struct evfn__bytes *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b->p[b->len++] = (uint8_t)(v >> (8 * i));
}

static void
put_str(struct evfn__bytes *b, const char *s)
{
	size_t n = strlen(s);
	put_varint(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static size_t
str_size(const char *s)
{
	size_t n = strlen(s);
	return varint_len(n) + n;
}

int
evfn__event_encode(const evfn_event *ev, struct evfn__bytes *out)
{
	const struct evfn__event_extra *x = ev->extra;
	/* Defaults are left out: the runtime gives them again at
	 * re-admission (the id from the same sequence number). */
	const char *opt[5] = {
		x ? x->id : NULL,
		ev->source_borrowed ? NULL : ev->source,
		x ? x->subject : NULL,
		x ? x->dct : NULL,
		x ? x->okey : NULL,
	};
	unsigned flags = 0;
	const char *type = evfn__event_type(ev);
	size_t size = 2 + varint_len(ev->hops) + 8 + str_size(type);
	for (int i = 0; i < 5; i++) {
		if (opt[i]) {
			flags |= 1u << i;
			size += str_size(opt[i]);
		}
	}
	size_t n_ext = 0;
	for (const struct evfn__kv *kv = evfn__event_ext(ev); kv; kv = kv->next) {
		n_ext++;
		size += str_size(kv->key) + str_size(kv->value);
	}
	size += varint_len(n_ext);
	if (bytes_reserve(out, size) < 0)
		return EVFN_ENOMEM;
	out->p[out->len++] = FORMAT_1;
	out->p[out->len++] = (uint8_t)flags;
	put_varint(out, ev->hops);
	put_u64(out, (uint64_t)ev->time_ns);
	put_str(out, type);
	for (int i = 0; i < 5; i++)
		if (opt[i])
			put_str(out, opt[i]);
	put_varint(out, n_ext);
	for (const struct evfn__kv *kv = evfn__event_ext(ev); kv; kv = kv->next) {
		put_str(out, kv->key);
		put_str(out, kv->value);
	}
	return 0;
}

/* A cursor over untrusted bytes; any overrun sets bad and yields zeros. */
struct reader {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t
get_varint(struct reader *r)
{
	uint64_t v = 0;
	for (int i = 0; i < VARINT_MAX; i++) {
		if (r->p == r->end)
			break;
		uint8_t byte = *r->p++;
		if (i == VARINT_MAX - 1 && byte > 1)
			break; /* past 64 bits */
		v |= (uint64_t)(byte & 0x7f) << (7 * i);
		if (!(byte & 0x80)) {
			if (byte == 0 && i > 0)
				break; /* not the shortest form */
			return v;
		}
	}
	r->bad = true;
	return 0;
}

static uint64_t
get_u64(struct reader *r)
{
	if (r->end - r->p < 8) {
		r->bad = true;
		return 0;
	}
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)*r->p++ << (8 * i);
	return v;
}

/* One string as a C string: in buf when it fits, else in *heap (which
 * the caller frees). NULL when the bytes are short or hold a NUL (a C
 * string cannot carry it); *rc says which: EVFN_ECORRUPT or ENOMEM. */
static const char *
get_str(struct reader *r, char *buf, size_t size, char **heap, int *rc)
{
	uint64_t n = get_varint(r);
	if (r->bad || n > (uint64_t)(r->end - r->p) ||
	    memchr(r->p, '\0', (size_t)n)) {
		r->bad = true;
		*rc = EVFN_ECORRUPT;
		return NULL;
	}
	char *s = buf;
	if (n >= size) {
		s = *heap = evfn__malloc((size_t)n + 1);
		if (!s) {
			*rc = EVFN_ENOMEM;
			return NULL;
		}
	}
	memcpy(s, r->p, (size_t)n);
	s[n] = '\0';
	r->p += n;
	return s;
}

/* A setter's refusal of a decoded attribute means damaged bytes. */
static int
setter_rc(int rc)
{
	return rc == EVFN_ENOMEM || rc == 0 ? rc : EVFN_ECORRUPT;
}

typedef int (*string_setter)(evfn_event *, const char *);

int
evfn__event_decode(evfn_event **out, const void *attrs, size_t len,
                   const void *data, size_t data_len)
{
	static const string_setter setters[5] = {
		evfn_event_set_id,
		evfn_event_set_source,
		evfn_event_set_subject,
		evfn_event_set_datacontenttype,
		evfn_event_set_ordering_key,
	};
	*out = NULL;
	struct reader r = {attrs, (const uint8_t *)attrs + len, false};
	if (len < 2 || r.p[0] != FORMAT_1 || (r.p[1] & ~ALL_FLAGS))
		return EVFN_ECORRUPT;
	unsigned flags = r.p[1];
	r.p += 2;
	uint64_t hops = get_varint(&r);
	int64_t time_ns = (int64_t)get_u64(&r);
	if (r.bad || hops > UINT16_MAX)
		return EVFN_ECORRUPT;

	/* Short attributes are copied through this buffer; longer ones
	 * (a datacontenttype or an extension value may be any length)
	 * through the heap. */
	char buf[EVFN_NAME_MAX + 2], vbuf[EVFN_NAME_MAX + 2];
	char *heap = NULL, *vheap = NULL;
	int rc = 0;
	const char *type = get_str(&r, buf, sizeof(buf), &heap, &rc);
	evfn_event *ev = NULL;
	if (type)
		rc = setter_rc(evfn__event_create(&ev, type, data, data_len,
		                                  true, NULL, NULL,
		                                  (unsigned)hops));
	for (int i = 0; rc == 0 && i < 5; i++) {
		if (!(flags & (1u << i)))
			continue;
		evfn__free(heap);
		heap = NULL;
		const char *s = get_str(&r, buf, sizeof(buf), &heap, &rc);
		if (s)
			rc = setter_rc(setters[i](ev, s));
	}
	uint64_t n_ext = rc == 0 ? get_varint(&r) : 0;
	if (r.bad && rc == 0)
		rc = EVFN_ECORRUPT;
	for (uint64_t i = 0; rc == 0 && i < n_ext; i++) {
		evfn__free(heap);
		evfn__free(vheap);
		heap = vheap = NULL;
		const char *name = get_str(&r, buf, sizeof(buf), &heap, &rc);
		const char *value = name ? get_str(&r, vbuf, sizeof(vbuf),
		                                   &vheap, &rc)
		                         : NULL;
		/* A name twice is not what an event encodes to. */
		if (value && evfn_event_extension(ev, name))
			rc = EVFN_ECORRUPT;
		else if (value)
			rc = setter_rc(evfn_event_set_extension(ev, name,
			                                        value));
	}
	if (rc == 0 && r.p != r.end)
		rc = EVFN_ECORRUPT; /* trailing bytes: not what was written */
	evfn__free(heap);
	evfn__free(vheap);
	if (rc < 0) {
		evfn_event_unref(ev);
		return rc;
	}
	(void)evfn_event_set_time(ev, time_ns); /* unpublished: cannot fail */
	*out = ev;
	return 0;
}
