/* SPDX-License-Identifier: MIT */
/*
 * Events: construction in one block (header, type and payload copy),
 * attribute setters that refuse once the event is published, getters, and
 * reference counting. Publishing itself (routing, sequence numbers) is in
 * admit.c.
 */
#include <string.h>

#include "blocks-internal.h"
#include "common-internal.h"
#include "event-internal.h"

/* A small event (a type of up to 15 bytes, an 8-byte payload) is one
 * block, and a block is exactly what malloc gives for a glibc chunk
 * (16n + 8 bytes), so a block made by the allocator wastes nothing. */
EVFN__STATIC_ASSERT(EVFN__PAYLOAD_OFF + 8 + 16 <= EVFN__BLOCK_SIZE,
                    "a small event fits a block");
EVFN__STATIC_ASSERT(EVFN__BLOCK_SIZE % 16 == 8,
                    "a block fills its allocator chunk");

/* An event of `size` bytes: a cached block (blocks.c: no lock and no
 * allocator call in the common case, and the worker that frees it keeps
 * it for a producer) when it fits one, else an allocation of its own.
 * The header is zeroed up to the default id's buffer, which nothing
 * reads before the id is rendered (id_state); NULL when out of
 * memory. */
static evfn_event *
event_alloc(size_t size)
{
	bool small = size <= EVFN__BLOCK_SIZE;
	evfn_event *ev = small ? evfn__block_alloc() : evfn__malloc(size);
	if (EVFN__LIKELY(ev != NULL)) {
		memset(ev, 0, offsetof(struct evfn_event, id_buf));
		ev->in_block = small;
	}
	return ev;
}

static void
event_free(evfn_event *ev)
{
	if (ev->in_block)
		evfn__block_free(ev);
	else
		evfn__free(ev);
}

/* memcpy() for the short types and payloads most events have: from 4 to
 * 16 bytes two fixed-size moves that may overlap, not a call. */
static inline void
copy_short(char *dst, const void *from, size_t n)
{
	const char *src = from;
	if (n >= 8 && n <= 16) {
		uint64_t head, tail;
		memcpy(&head, src, 8);
		memcpy(&tail, src + n - 8, 8);
		memcpy(dst, &head, 8);
		memcpy(dst + n - 8, &tail, 8);
	} else if (n >= 4 && n < 8) {
		uint32_t head, tail;
		memcpy(&head, src, 4);
		memcpy(&tail, src + n - 4, 4);
		memcpy(dst, &head, 4);
		memcpy(dst + n - 4, &tail, 4);
	} else if (n) {
		memcpy(dst, src, n);
	}
}

/* The event's optional attributes, allocated on first need; NULL when out
 * of memory. Only before publish (one owner). */
static struct evfn__event_extra *
extra_of(evfn_event *ev)
{
	if (!ev->extra)
		ev->extra = evfn__calloc(1, sizeof(*ev->extra));
	return ev->extra;
}

/* The zero-copy contract: a borrowed buffer is released even when the
 * call fails. Returns rc. */
static int
create_failed(int rc, bool copy, const void *data, evfn_free_cb free_cb,
              void *free_arg)
{
	if (!copy && free_cb)
		free_cb((void *)data, free_arg);
	return rc;
}

int
evfn__event_create(evfn_event **out, const char *type, const void *data,
                   size_t len, bool copy, evfn_free_cb free_cb, void *free_arg,
                   unsigned hops)
{
	if (out)
		*out = NULL;
	/* One pass over the type: validity and length together. */
	int tlen = !out || (!data && len > 0) ? EVFN_EINVAL
	                                      : evfn__name_len(type);
	if (EVFN__UNLIKELY(tlen < 0))
		return create_failed(tlen, copy, data, free_cb, free_arg);
	tlen++; /* the NUL */
	/* The payload copy comes first and the type after it: a small
	 * event then fits one block. */
	size_t data_off = EVFN__PAYLOAD_OFF;
	size_t inline_len = copy ? len : 0;
	/* The type's offset and the length are 32 bits: an inline copy of
	 * 4 GiB is refused as the allocation it would be. */
	evfn_event *ev = inline_len <= UINT32_MAX - data_off - (size_t)tlen
	                         ? event_alloc(data_off + inline_len +
	                                       (size_t)tlen)
	                         : NULL;
	if (EVFN__UNLIKELY(!ev))
		return create_failed(EVFN_ENOMEM, copy, data, free_cb,
		                     free_arg);
	/* A borrowed payload's pointer lives in the extra block. */
	if (!copy && (data || free_cb)) {
		struct evfn__event_extra *x = extra_of(ev);
		if (!x) {
			event_free(ev);
			return create_failed(EVFN_ENOMEM, copy, data, free_cb,
			                     free_arg);
		}
		x->ref_data = data;
		x->ref_len = len;
		x->free_cb = free_cb;
		x->free_arg = free_arg;
	}
	atomic_init(&ev->refs, 1); /* the rest was zeroed by event_alloc() */
	ev->hops = (uint16_t)hops;
	ev->type_off = (uint32_t)(data_off + inline_len);
	copy_short((char *)ev + ev->type_off, type, (size_t)tlen);
	if (copy) {
		copy_short((char *)ev + data_off, data, len);
		ev->len = (uint32_t)len;
	}
	*out = ev;
	return 0;
}

int
evfn_event_new(evfn_event **out, const char *type, const void *data,
               size_t len)
{
	return evfn__event_create(out, type, data, len, true, NULL, NULL, 0);
}

int
evfn_event_new_ref(evfn_event **out, const char *type, void *data, size_t len,
                   evfn_free_cb free_cb, void *free_arg)
{
	return evfn__event_create(out, type, data, len, false, free_cb,
	                          free_arg, 0);
}

evfn_event *
evfn_event_ref(const evfn_event *cev)
{
	evfn_event *ev = (evfn_event *)cev;
	if (ev)
		atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
	return ev;
}

void
evfn_event_unref(const evfn_event *cev)
{
	evfn_event *ev = (evfn_event *)cev;
	if (!ev)
		return;
	/* Release on the decrement, acquire before freeing: every write made
	 * through another reference happens before the free. */
	if (atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) != 1)
		return;
	struct evfn__event_extra *x = ev->extra;
	if (x) {
		if (x->free_cb)
			x->free_cb((void *)x->ref_data, x->free_arg);
		evfn__free(x->id);
		evfn__free(x->subject);
		evfn__free(x->dct);
		evfn__free(x->okey);
		evfn__kv_free(&x->ext);
		evfn__free(x);
	}
	if (!ev->source_borrowed)
		evfn__free(ev->source);
	event_free(ev);
}

/* Which string attribute a setter replaces. */
enum string_attr { ATTR_ID, ATTR_SOURCE, ATTR_SUBJECT, ATTR_DCT, ATTR_OKEY };

static char **
string_slot(evfn_event *ev, enum string_attr which)
{
	if (which == ATTR_SOURCE)
		return &ev->source;
	struct evfn__event_extra *x = extra_of(ev);
	if (!x)
		return NULL;
	switch (which) {
	case ATTR_ID: return &x->id;
	case ATTR_SUBJECT: return &x->subject;
	case ATTR_DCT: return &x->dct;
	default: return &x->okey;
	}
}

/* Replaces one heap-held string attribute. `limit`: at most
 * EVFN_NAME_MAX bytes; NULL value clears it. */
static int
set_string(evfn_event *ev, enum string_attr which, const char *value,
           bool limit)
{
	if (!ev || (value && !*value))
		return EVFN_EINVAL;
	if (ev->frozen)
		return EVFN_EPERM;
	if (value && limit && strnlen(value, EVFN_NAME_MAX + 1) > EVFN_NAME_MAX)
		return EVFN_ENAMETOOLONG;
	if (!value && which != ATTR_SOURCE && !ev->extra)
		return 0; /* clearing what was never set */
	char *copy = NULL;
	if (value && !(copy = evfn__strdup(value)))
		return EVFN_ENOMEM;
	char **slot = string_slot(ev, which);
	if (!slot) {
		evfn__free(copy);
		return EVFN_ENOMEM;
	}
	evfn__free(*slot);
	*slot = copy;
	return 0;
}

int
evfn_event_set_id(evfn_event *ev, const char *id)
{
	return set_string(ev, ATTR_ID, id, true);
}

int
evfn_event_set_source(evfn_event *ev, const char *source)
{
	return set_string(ev, ATTR_SOURCE, source, true);
}

int
evfn_event_set_subject(evfn_event *ev, const char *subject)
{
	return set_string(ev, ATTR_SUBJECT, subject, true);
}

int
evfn_event_set_datacontenttype(evfn_event *ev, const char *dct)
{
	return set_string(ev, ATTR_DCT, dct, false);
}

int
evfn_event_set_ordering_key(evfn_event *ev, const char *key)
{
	return set_string(ev, ATTR_OKEY, key, true);
}

const char *
evfn_event_ordering_key(const evfn_event *ev)
{
	return ev ? evfn__event_okey(ev) : NULL;
}

/* Far enough for any delayed job, near enough that due times stay far
 * from overflow. */
#define MAX_DELAY_NS (EVFN_DURATION_MAX_MS * EVFN__NS_PER_MS)

static int
set_delay(evfn_event *ev, int64_t ns, bool at)
{
	if (!ev)
		return EVFN_EINVAL;
	if (ev->frozen)
		return EVFN_EPERM;
	if (!extra_of(ev))
		return EVFN_ENOMEM;
	ev->extra->delay_ns = ns;
	ev->extra->delay_at = at;
	return 0;
}

int
evfn_event_set_delay_ms(evfn_event *ev, int64_t delay_ms)
{
	if (delay_ms < 0 || delay_ms > MAX_DELAY_NS / EVFN__NS_PER_MS)
		return ev ? EVFN_ERANGE : EVFN_EINVAL;
	return set_delay(ev, delay_ms * EVFN__NS_PER_MS, false);
}

int
evfn_event_set_deliver_at(evfn_event *ev, int64_t unix_ns)
{
	if (unix_ns < 0)
		return ev ? EVFN_ERANGE : EVFN_EINVAL;
	return set_delay(ev, unix_ns, true);
}

int
evfn_event_set_time(evfn_event *ev, int64_t unix_ns)
{
	if (!ev)
		return EVFN_EINVAL;
	if (ev->frozen)
		return EVFN_EPERM;
	ev->time_ns = unix_ns;
	ev->time_set = true;
	return 0;
}

/* CloudEvents 1.0: extension names are lower-case a-z and 0-9. They
 * "SHOULD NOT exceed 20 characters", which is advice to producers, not a
 * limit: a longer name is taken, up to EVFN_NAME_MAX like the other
 * names. Returns 0, EVFN_EINVAL or EVFN_ENAMETOOLONG. */
static int
check_extension_name(const char *name)
{
	size_t n = 0;
	for (; name[n] && n <= EVFN_NAME_MAX; n++)
		if (!((name[n] >= 'a' && name[n] <= 'z') ||
		      (name[n] >= '0' && name[n] <= '9')))
			return EVFN_EINVAL;
	return n == 0 ? EVFN_EINVAL : n > EVFN_NAME_MAX ? EVFN_ENAMETOOLONG : 0;
}

int
evfn_event_set_extension(evfn_event *ev, const char *name, const char *value)
{
	if (!ev || !name)
		return EVFN_EINVAL;
	int rc = check_extension_name(name);
	if (rc)
		return rc;
	if (ev->frozen)
		return EVFN_EPERM;
	if (!extra_of(ev))
		return EVFN_ENOMEM;
	return evfn__kv_set(&ev->extra->ext, name, value);
}

/* Writes v in decimal into buf (at least 21 bytes). On the publish path,
 * where snprintf's generality cost more than the rest of admission. */
static void
u64_to_decimal(uint64_t v, char *buf)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (int i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
}

bool
evfn__event_freeze(evfn_event *ev, uint64_t seq, const char *default_source,
                   int64_t now)
{
	ev->seq = seq;
	if (!ev->source) {
		ev->source = (char *)default_source;
		ev->source_borrowed = true;
	}
	ev->born_ns = now;
	if (!ev->time_set) {
		ev->time_ns = evfn__mono_to_wall(ev->born_ns);
		ev->time_set = true;
	}
	ev->frozen = true;
	if (!ev->extra)
		return false;
	int64_t delay = ev->extra->delay_ns;
	if (ev->extra->delay_at) /* a wall time, turned into a monotonic delay */
		delay = EVFN__MIN(delay - evfn__mono_to_wall(ev->born_ns),
		                  MAX_DELAY_NS);
	if (delay <= 0)
		return false;
	ev->born_ns += delay;
	return true;
}

void
evfn__event_thaw(evfn_event *ev, bool time_was_set, bool source_was_set)
{
	ev->frozen = false;
	ev->seq = 0;
	ev->born_ns = 0;
	/* A default id rendered meanwhile came from this sequence number. */
	atomic_store_explicit(&ev->id_state, 0, memory_order_relaxed);
	if (!source_was_set) {
		ev->source = NULL;
		ev->source_borrowed = false;
	}
	if (!time_was_set) {
		ev->time_set = false;
		ev->time_ns = 0;
	}
}

const char *
evfn_event_id(const evfn_event *cev)
{
	evfn_event *ev = (evfn_event *)cev;
	if (!ev)
		return NULL;
	if (ev->extra && ev->extra->id)
		return ev->extra->id;
	if (!ev->frozen)
		return NULL;
	/* The default id is rendered on first use, not at publish: most
	 * events are never asked for it. Readers of a frozen event may race
	 * here, so one renders and the others wait for it. */
	int state = atomic_load_explicit(&ev->id_state, memory_order_acquire);
	if (state != 2) {
		unsigned char expected = 0;
		if (atomic_compare_exchange_strong(&ev->id_state, &expected, 1)) {
			u64_to_decimal(ev->seq, ev->id_buf);
			atomic_store_explicit(&ev->id_state, 2,
			                      memory_order_release);
		} else {
			while (atomic_load_explicit(&ev->id_state,
			                            memory_order_acquire) != 2)
				;
		}
	}
	return ev->id_buf;
}

const char *
evfn_event_source(const evfn_event *ev)
{
	return ev ? ev->source : NULL;
}

const char *
evfn_event_type(const evfn_event *ev)
{
	return ev ? evfn__event_type(ev) : NULL;
}

const char *
evfn_event_subject(const evfn_event *ev)
{
	return ev && ev->extra ? ev->extra->subject : NULL;
}

const char *
evfn_event_datacontenttype(const evfn_event *ev)
{
	return ev && ev->extra ? ev->extra->dct : NULL;
}

const char *
evfn_event_extension(const evfn_event *ev, const char *name)
{
	return ev && name ? evfn__kv_get(evfn__event_ext(ev), name) : NULL;
}

int64_t
evfn_event_time(const evfn_event *ev)
{
	return ev ? ev->time_ns : 0;
}

uint64_t
evfn_event_seq(const evfn_event *ev)
{
	return ev ? ev->seq : 0;
}

unsigned
evfn_event_hops(const evfn_event *ev)
{
	return ev ? ev->hops : 0;
}

const void *
evfn_event_data(const evfn_event *ev, size_t *len)
{
	size_t n = 0;
	const void *data = NULL;
	if (ev && ev->extra && ev->extra->ref_data) {
		data = ev->extra->ref_data;
		n = ev->extra->ref_len;
	} else if (ev && ev->len) {
		data = (const char *)ev + EVFN__PAYLOAD_OFF;
		n = ev->len;
	}
	if (len)
		*len = n;
	return data;
}

static void
unref_source(void *data, void *arg)
{
	(void)data;
	evfn_event_unref(arg);
}

int
evfn__event_clone(evfn_event **out, const evfn_event *orig, unsigned hops)
{
	evfn_event *ev;
	/* The payload is shared: the clone holds a reference to orig. */
	size_t len;
	const void *data = evfn_event_data(orig, &len);
	int rc = evfn__event_create(&ev, evfn__event_type(orig), (void *)data,
	                            len, false, unref_source,
	                            evfn_event_ref(orig), hops);
	if (rc < 0) {
		*out = NULL;
		return rc;
	}
	const char *id = evfn_event_id(orig);
	if (id)
		rc = evfn_event_set_id(ev, id);
	if (rc == 0 && orig->source)
		rc = evfn_event_set_source(ev, orig->source);
	if (rc == 0 && evfn_event_subject(orig))
		rc = evfn_event_set_subject(ev, evfn_event_subject(orig));
	if (rc == 0 && evfn_event_datacontenttype(orig))
		rc = evfn_event_set_datacontenttype(
			ev, evfn_event_datacontenttype(orig));
	if (rc == 0 && evfn__event_okey(orig))
		rc = evfn_event_set_ordering_key(ev, evfn__event_okey(orig));
	for (const struct evfn__kv *x = evfn__event_ext(orig); rc == 0 && x;
	     x = x->next)
		rc = evfn_event_set_extension(ev, x->key, x->value);
	ev->time_ns = orig->time_ns;
	ev->time_set = orig->time_set;
	if (rc < 0) {
		evfn_event_unref(ev);
		ev = NULL;
	}
	*out = ev;
	return rc;
}

const char *
evfn_event_extension_at(const evfn_event *ev, size_t i, const char **name)
{
	const struct evfn__kv *kv = ev ? evfn__kv_at(evfn__event_ext(ev), i)
	                               : NULL;
	if (name)
		*name = kv ? kv->key : NULL;
	return kv ? kv->value : NULL;
}
