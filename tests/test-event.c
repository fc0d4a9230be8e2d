/* SPDX-License-Identifier: MIT */
/*
 * Events: construction, CloudEvents attributes, freezing at publish,
 * reference counting, and the zero-copy contract (the free callback runs
 * exactly once, also when the call fails).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "failing-alloc.h"
#include "harness.h"
#include "blocks-internal.h"
#include "event-internal.h"

static int frees;

static void
count_free(void *data, void *arg)
{
	frees++;
	assert_ptr_equal(arg, &frees);
	free(data);
}

static void
test_event_new_copies_type_and_payload(void **state)
{
	char buf[] = "payload";
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "orders.created", buf, 7));
	buf[0] = 'X';
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	ASSERT_EQ(len, 7);
	assert_memory_equal(d, "payload", 7);
	assert_string_equal(evfn_event_type(ev), "orders.created");
	assert_null(evfn_event_subject(ev));
	assert_null(evfn_event_id(ev));
	ASSERT_EQ(evfn_event_seq(ev), 0);
	ASSERT_EQ(evfn_event_hops(ev), 0);
	evfn_event_unref(ev);

	ASSERT_OK(evfn_event_new(&ev, "empty", NULL, 0));
	assert_null(evfn_event_data(ev, &len));
	ASSERT_EQ(len, 0);
	evfn_event_unref(ev);
}

static void
test_event_inline_payload_is_aligned(void **state)
{
	const char *types[] = {"a", "ab", "abc.def", "orders.created.eu",
	                       "a-type-name-of-some-length-here"};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		evfn_event *ev;
		double d = 1.5;
		ASSERT_OK(evfn_event_new(&ev, types[i], &d, sizeof(d)));
		const double *p = evfn_event_data(ev, NULL);
		ASSERT_EQ((uintptr_t)p % 16, 0);
		assert_true(*p == 1.5);
		evfn_event_unref(ev);
	}
}

static int
noop_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

/* What a queued event costs: a small event (a type of up to 15 bytes, an
 * 8-byte payload) is one of blocks.c's blocks, of at most 104 bytes
 * (glibc serves those from its 112-byte chunks), and asks for nothing
 * else; one byte more is an allocation of its own size. */
static void
test_event_small_event_is_one_small_block(void **state)
{
	uint64_t payload = 42;
	evfn_event *ev, *bigger;
	/* Nothing cached here: the block comes from the allocator. */
	evfn__blocks_trim();
	atomic_store(&failing_alloc_last_malloc, 0);
	ASSERT_OK(evfn_event_new(&ev, "fifteen.bytes.x", &payload,
	                         sizeof(payload)));
	ASSERT_EQ(atomic_load(&failing_alloc_last_malloc), EVFN__BLOCK_SIZE);
	assert_true(EVFN__BLOCK_SIZE <= 104);
	assert_true(ev->in_block);
	ASSERT_OK(evfn_event_new(&bigger, "sixteen.bytes.xy", &payload,
	                         sizeof(payload)));
	ASSERT_EQ(atomic_load(&failing_alloc_last_malloc),
	          EVFN__BLOCK_SIZE + 1);
	assert_false(bigger->in_block);
	evfn_event_unref(bigger);
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "fifteen.bytes.x", noop_handler, NULL,
	                        NULL, NULL));
	/* The first publish makes the function's queue; the next event is
	 * stamped and queued with no allocation at all. */
	evfn_event *first;
	ASSERT_OK(evfn_event_new(&first, "fifteen.bytes.x", NULL, 0));
	ASSERT_OK(evfn_publish_to(rt, "fifteen.bytes.x", first, NULL));
	evfn_event_unref(first);
	atomic_store(&failing_alloc_last_malloc, 0);
	ASSERT_OK(evfn_publish_to(rt, "fifteen.bytes.x", ev, NULL));
	ASSERT_EQ(atomic_load(&failing_alloc_last_malloc), 0);
	size_t len;
	ASSERT_EQ(*(const uint64_t *)evfn_event_data(ev, &len), 42);
	ASSERT_EQ(len, sizeof(payload));
	evfn_event_unref(ev);
	ASSERT_OK(evfn_rt_free(rt));
}

/* The payload copy and the type share the event's block, the type after
 * the payload: every length of either reads back whole, payload aligned. */
static void
test_event_type_and_payload_of_any_length(void **state)
{
	char type[EVFN_NAME_MAX + 1];
	unsigned char payload[80];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (unsigned char)(i * 7 + 1);
	for (size_t tl = 1; tl <= EVFN_NAME_MAX; tl += tl < 40 ? 1 : 37) {
		memset(type, 'a' + (int)(tl % 26), tl);
		type[tl] = '\0';
		for (size_t pl = 0; pl <= sizeof(payload); pl++) {
			evfn_event *ev;
			ASSERT_OK(evfn_event_new(&ev, type, payload, pl));
			size_t len;
			const unsigned char *d = evfn_event_data(ev, &len);
			ASSERT_EQ(len, pl);
			if (pl) {
				ASSERT_EQ((uintptr_t)d % 16, 0);
				assert_memory_equal(d, payload, pl);
			} else {
				assert_null(d);
			}
			assert_string_equal(evfn_event_type(ev), type);
			evfn_event_unref(ev);
		}
	}
}

static void
test_event_new_rejects_bad_arguments(void **state)
{
	evfn_event *ev = (evfn_event *)&ev;
	ASSERT_RC(evfn_event_new(&ev, NULL, "x", 1), EVFN_EINVAL);
	assert_null(ev);
	ASSERT_RC(evfn_event_new(&ev, "", "x", 1), EVFN_EINVAL);
	ASSERT_RC(evfn_event_new(&ev, "t", NULL, 1), EVFN_EINVAL);
	ASSERT_RC(evfn_event_new(NULL, "t", "x", 1), EVFN_EINVAL);
	char name[EVFN_NAME_MAX + 2];
	memset(name, 't', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ASSERT_RC(evfn_event_new(&ev, name, "x", 1), EVFN_ENAMETOOLONG);
}

/* Every way creating or decorating an event can run out of memory
 * reports EVFN_ENOMEM, keeps the zero-copy contract and leaks nothing
 * (the sanitizer builds check the last). */
static void
test_event_out_of_memory_is_enomem(void **state)
{
	evfn_event *ev = (evfn_event *)&ev;
	/* Nothing cached: a block has to come from the allocator. */
	evfn__blocks_trim();
	atomic_store(&failing_alloc_left, 0);
	ASSERT_RC(evfn_event_new(&ev, "t", "x", 1), EVFN_ENOMEM);
	assert_null(ev);

	/* The event block, then the extra block holding the free callback. */
	frees = 0;
	atomic_store(&failing_alloc_left, 1);
	ASSERT_RC(evfn_event_new_ref(&ev, "t", strdup("p"), 1, count_free,
	                             &frees),
	          EVFN_ENOMEM);
	ASSERT_EQ(frees, 1);

	atomic_store(&failing_alloc_left, -1);
	ASSERT_OK(evfn_event_new(&ev, "t", "x", 1));
	atomic_store(&failing_alloc_left, 0);
	ASSERT_RC(evfn_event_set_subject(ev, "s"), EVFN_ENOMEM);
	atomic_store(&failing_alloc_left, 1); /* the copy, not the extra block */
	ASSERT_RC(evfn_event_set_subject(ev, "s"), EVFN_ENOMEM);
	atomic_store(&failing_alloc_left, 0);
	ASSERT_RC(evfn_event_set_delay_ms(ev, 10), EVFN_ENOMEM);
	ASSERT_RC(evfn_event_set_deliver_at(ev, 10), EVFN_ENOMEM);
	ASSERT_RC(evfn_event_set_extension(ev, "ext", "v"), EVFN_ENOMEM);
	/* Clearing what was never set needs no memory. */
	ASSERT_OK(evfn_event_set_ordering_key(ev, NULL));
	assert_null(evfn_event_subject(ev));
	atomic_store(&failing_alloc_left, -1);
	ASSERT_OK(evfn_event_set_subject(ev, "s"));
	assert_string_equal(evfn_event_subject(ev), "s");
	evfn_event_unref(ev);

	/* The type's offset is 32 bits: a 4 GiB inline copy is refused
	 * before the payload is read. */
	if (SIZE_MAX > UINT32_MAX) {
		ev = (evfn_event *)&ev;
		ASSERT_RC(evfn_event_new(&ev, "t", "x", (size_t)UINT32_MAX),
		          EVFN_ENOMEM);
		assert_null(ev);
	}
}

static void
test_event_ref_free_cb_runs_once_at_last_unref(void **state)
{
	frees = 0;
	evfn_event *ev;
	ASSERT_OK(evfn_event_new_ref(&ev, "t", strdup("abc"), 3, count_free,
	                             &frees));
	evfn_event *again = evfn_event_ref(ev);
	assert_ptr_equal(again, ev);
	evfn_event_unref(ev);
	ASSERT_EQ(frees, 0);
	evfn_event_unref(again);
	ASSERT_EQ(frees, 1);
	assert_null(evfn_event_ref(NULL));
	evfn_event_unref(NULL);
}

static void
test_event_ref_free_cb_runs_once_when_call_fails(void **state)
{
	frees = 0;
	evfn_event *ev;
	ASSERT_RC(evfn_event_new_ref(&ev, "", strdup("abc"), 3, count_free,
	                             &frees),
	          EVFN_EINVAL);
	ASSERT_EQ(frees, 1);
	assert_null(ev);
	/* NULL free_cb: static memory, never released. */
	static char fixed[] = "static";
	ASSERT_OK(evfn_event_new_ref(&ev, "t", fixed, 6, NULL, NULL));
	evfn_event_unref(ev);
}

static void
test_event_attributes_set_and_cleared(void **state)
{
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "t", NULL, 0));
	ASSERT_OK(evfn_event_set_id(ev, "id-1"));
	ASSERT_OK(evfn_event_set_id(ev, "id-2"));
	ASSERT_OK(evfn_event_set_source(ev, "/orders"));
	ASSERT_OK(evfn_event_set_subject(ev, "order/42"));
	ASSERT_OK(evfn_event_set_datacontenttype(ev, "application/json"));
	ASSERT_OK(evfn_event_set_time(ev, INT64_C(1764000000000000000)));
	ASSERT_OK(evfn_event_set_extension(ev, "traceparent", "00-ab"));
	ASSERT_OK(evfn_event_set_extension(ev, "tenant", "acme"));
	ASSERT_OK(evfn_event_set_extension(ev, "tenant", "other"));
	assert_string_equal(evfn_event_id(ev), "id-2");
	assert_string_equal(evfn_event_source(ev), "/orders");
	assert_string_equal(evfn_event_subject(ev), "order/42");
	assert_string_equal(evfn_event_datacontenttype(ev), "application/json");
	ASSERT_EQ(evfn_event_time(ev), INT64_C(1764000000000000000));
	assert_string_equal(evfn_event_extension(ev, "tenant"), "other");
	assert_string_equal(evfn_event_extension(ev, "traceparent"), "00-ab");
	const char *name;
	assert_string_equal(evfn_event_extension_at(ev, 0, &name), "00-ab");
	assert_string_equal(name, "traceparent");
	assert_string_equal(evfn_event_extension_at(ev, 1, &name), "other");
	assert_null(evfn_event_extension_at(ev, 2, &name));
	assert_null(name);
	ASSERT_OK(evfn_event_set_extension(ev, "tenant", NULL));
	assert_null(evfn_event_extension(ev, "tenant"));
	ASSERT_OK(evfn_event_set_subject(ev, NULL));
	assert_null(evfn_event_subject(ev));
	ASSERT_RC(evfn_event_set_extension(ev, "Bad", "x"), EVFN_EINVAL);
	ASSERT_RC(evfn_event_set_extension(ev, "has-dash", "x"), EVFN_EINVAL);
	ASSERT_RC(evfn_event_set_extension(ev, "", "x"), EVFN_EINVAL);
	/* The empty string is a value, not absence. */
	ASSERT_OK(evfn_event_set_extension(ev, "blank", ""));
	assert_string_equal(evfn_event_extension(ev, "blank"), "");
	/* CloudEvents advises names of at most 20 characters but does not
	 * require it: longer ones are taken up to EVFN_NAME_MAX. */
	ASSERT_OK(evfn_event_set_extension(ev, "abcdefghijklmnopqrstu", "x"));
	assert_string_equal(evfn_event_extension(ev, "abcdefghijklmnopqrstu"),
	                    "x");
	char longest[EVFN_NAME_MAX + 2];
	memset(longest, 'n', sizeof(longest) - 1);
	longest[EVFN_NAME_MAX] = '\0';
	ASSERT_OK(evfn_event_set_extension(ev, longest, "y"));
	assert_string_equal(evfn_event_extension(ev, longest), "y");
	longest[EVFN_NAME_MAX] = 'n';
	longest[EVFN_NAME_MAX + 1] = '\0';
	ASSERT_RC(evfn_event_set_extension(ev, longest, "y"),
	          EVFN_ENAMETOOLONG);
	longest[EVFN_NAME_MAX] = '-';
	ASSERT_RC(evfn_event_set_extension(ev, longest, "y"), EVFN_EINVAL);
	ASSERT_RC(evfn_event_set_source(ev, ""), EVFN_EINVAL);
	ASSERT_RC(evfn_event_set_id(NULL, "x"), EVFN_EINVAL);
	evfn_event_unref(ev);
}

static int
noop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	return EVFN_OK;
}

static void
test_event_publish_freezes_and_stamps(void **state)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_source(o, "/test"));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	ASSERT_OK(evfn_register(rt, "f", noop, NULL, NULL, NULL));
	ASSERT_OK(evfn_subscribe(rt, "t", "f"));

	evfn_event *a, *b;
	ASSERT_OK(evfn_event_new(&a, "t", "x", 1));
	ASSERT_OK(evfn_event_new(&b, "t", "y", 1));
	ASSERT_OK(evfn_event_set_id(b, "mine"));
	uint64_t sa, sb;
	ASSERT_OK(evfn_publish(rt, a, &sa));
	ASSERT_OK(evfn_publish_to(rt, "f", b, &sb));
	assert_true(sb == sa + 1);
	ASSERT_EQ(evfn_event_seq(a), sa);
	char id[24];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)sa);
	assert_string_equal(evfn_event_id(a), id);
	assert_string_equal(evfn_event_id(b), "mine");
	assert_string_equal(evfn_event_source(a), "/test");
	assert_true(evfn_event_time(a) > INT64_C(1700000000000000000));
	ASSERT_RC(evfn_event_set_id(a, "z"), EVFN_EPERM);
	ASSERT_RC(evfn_event_set_time(a, 1), EVFN_EPERM);
	ASSERT_RC(evfn_event_set_extension(a, "x", "y"), EVFN_EPERM);
	ASSERT_RC(evfn_publish_to(rt, "f", a, NULL), EVFN_EPERM);
	ASSERT_RC(evfn_publish_to(rt, "nope", b, NULL), EVFN_EPERM);
	evfn_event_unref(a);
	evfn_event_unref(b);
	ASSERT_OK(evfn_rt_free(rt));
}

/* Any int64 is a time (0 is 1970-01-01T00:00:00Z): a time that was set
 * is kept through publish and copying, whatever its value; only an event
 * without one gets its publish time. */
static void
test_event_any_time_set_is_kept(void **state)
{
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, NULL));
	ASSERT_OK(evfn_register(rt, "f", noop, NULL, NULL, NULL));
	static const int64_t times[] = {0,         -1,        1,
	                                INT64_MIN, INT64_MAX, 1000000000};
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		evfn_event *ev, *copy;
		ASSERT_OK(evfn_event_new(&ev, "t", NULL, 0));
		ASSERT_OK(evfn_event_set_time(ev, times[i]));
		ASSERT_EQ(evfn_event_time(ev), times[i]);
		ASSERT_OK(evfn_publish_to(rt, "f", ev, NULL));
		ASSERT_EQ(evfn_event_time(ev), times[i]);
		/* Replays and destinations publish a copy. */
		ASSERT_OK(evfn__event_clone(&copy, ev, 0));
		ASSERT_OK(evfn_publish_to(rt, "f", copy, NULL));
		ASSERT_EQ(evfn_event_time(copy), times[i]);
		evfn_event_unref(copy);
		evfn_event_unref(ev);
	}
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "t", NULL, 0));
	ASSERT_EQ(evfn_event_time(ev), 0);
	ASSERT_OK(evfn_publish_to(rt, "f", ev, NULL));
	assert_true(evfn_event_time(ev) > INT64_C(1700000000000000000));
	evfn_event_unref(ev);
	ASSERT_OK(evfn_rt_free(rt));
}

#if defined(__SANITIZE_ADDRESS__)
/* A small event is a cached block once freed, not memory the allocator
 * got back: AddressSanitizer must still report a use after the last
 * unref, at any byte of the header (the cache links blocks through their
 * first words). A child process makes the mistake; the parent reads its
 * report. */
static void
test_event_use_after_free_is_reported(void **state)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		evfn_event *ev;
		uint64_t v = 1;
		if (evfn_event_new(&ev, "small", &v, sizeof(v)) != 0 ||
		    !ev->in_block)
			_exit(3);
		evfn_event_unref(ev);
		/* The first byte: the refcount, where the cache's link is. */
		volatile unsigned char first = *(volatile unsigned char *)ev;
		(void)first;
		_exit(0); /* not reported */
	}
	close(fds[1]);
	char out[8192];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(out) - 1 &&
	       (r = read(fds[0], out + n, sizeof(out) - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	/* use-after-poison for a cached block, heap-use-after-free had the
	 * allocator got it back. */
	assert_true(strstr(out, "ERROR: AddressSanitizer: use-after-poison") ||
	            strstr(out, "ERROR: AddressSanitizer: heap-use-after-free"));
}
#endif

int
main(void)
{
	if (!failing_alloc_install())
		return 1;
	const struct CMUnitTest tests[] = {
		TEST(test_event_new_copies_type_and_payload),
		TEST(test_event_inline_payload_is_aligned),
		TEST(test_event_type_and_payload_of_any_length),
		TEST(test_event_small_event_is_one_small_block),
		TEST(test_event_new_rejects_bad_arguments),
		TEST(test_event_out_of_memory_is_enomem),
		TEST(test_event_ref_free_cb_runs_once_at_last_unref),
		TEST(test_event_ref_free_cb_runs_once_when_call_fails),
		TEST(test_event_attributes_set_and_cleared),
		TEST(test_event_publish_freezes_and_stamps),
		TEST(test_event_any_time_set_is_kept),
#if defined(__SANITIZE_ADDRESS__)
		/* Only AddressSanitizer can report it. */
		TEST(test_event_use_after_free_is_reported),
#endif
	};
	return evfn_test_main("event", tests);
}
