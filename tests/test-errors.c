/* SPDX-License-Identifier: MIT */
/*
 * Error codes: each equals -errno where POSIX has the code, each has a
 * name and a message, and unknown codes are named as such.
 */
#include <errno.h>
#include <string.h>

#include "harness.h"

static void
test_errors_posix_codes_equal_minus_errno(void **state)
{
	ASSERT_EQ(EVFN_EPERM, -EPERM);
	ASSERT_EQ(EVFN_ENOENT, -ENOENT);
	ASSERT_EQ(EVFN_EACCES, -EACCES);
	ASSERT_EQ(EVFN_ENOTDIR, -ENOTDIR);
	ASSERT_EQ(EVFN_ENOSPC, -ENOSPC);
	ASSERT_EQ(EVFN_EADDRINUSE, -EADDRINUSE);
	ASSERT_EQ(EVFN_ECONNREFUSED, -ECONNREFUSED);
	ASSERT_EQ(EVFN_ECANCELED, -ECANCELED);
	ASSERT_EQ(EVFN_ENOMEM, -ENOMEM);
	ASSERT_EQ(EVFN_EBUSY, -EBUSY);
	ASSERT_EQ(EVFN_EEXIST, -EEXIST);
	ASSERT_EQ(EVFN_EINVAL, -EINVAL);
	ASSERT_EQ(EVFN_ERANGE, -ERANGE);
	ASSERT_EQ(EVFN_EDEADLK, -EDEADLK);
	ASSERT_EQ(EVFN_ENAMETOOLONG, -ENAMETOOLONG);
	ASSERT_EQ(EVFN_EPROTO, -EPROTO);
	ASSERT_EQ(EVFN_EILSEQ, -EILSEQ);
	ASSERT_EQ(EVFN_ESHUTDOWN, -ESHUTDOWN);
	ASSERT_EQ(EVFN_ETIMEDOUT, -ETIMEDOUT);
	ASSERT_EQ(EVFN_EALREADY, -EALREADY);
}

static void
test_errors_every_code_has_name_and_message(void **state)
{
	static const int codes[] = {
#define XX(name, value, msg) EVFN_##name,
		EVFN_ERRNO_MAP(XX)
#undef XX
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_true(codes[i] < 0);
		assert_true(strncmp(evfn_err_name(codes[i]), "EVFN_E", 6) == 0);
		assert_string_not_equal(evfn_strerror(codes[i]),
		                        "unknown error");
		for (size_t j = 0; j < i; j++)
			assert_true(codes[i] != codes[j]);
	}
	assert_string_equal(evfn_err_name(EVFN_EQUEUEFULL), "EVFN_EQUEUEFULL");
}

static void
test_errors_unknown_and_success(void **state)
{
	assert_string_equal(evfn_strerror(0), "success");
	assert_string_equal(evfn_err_name(0), "EVFN_OK");
	assert_string_equal(evfn_strerror(-3999), "unknown error");
	assert_string_equal(evfn_err_name(-3999), "EVFN_UNKNOWN");
}

static void
test_errors_version_matches_header(void **state)
{
	ASSERT_EQ(evfn_version(), EVFN_VERSION_NUMBER);
	assert_string_equal(evfn_version_string(), EVFN_VERSION_STRING);
}

static void
test_errors_allocator_locked_after_first_allocation(void **state)
{
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "t", NULL, 0));
	evfn_event_unref(ev);
	ASSERT_RC(evfn_set_allocator(malloc, realloc, calloc, free),
	          EVFN_EPERM);
	ASSERT_RC(evfn_set_allocator(NULL, realloc, calloc, free),
	          EVFN_EINVAL);
	evfn_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_errors_posix_codes_equal_minus_errno),
		TEST(test_errors_every_code_has_name_and_message),
		TEST(test_errors_unknown_and_success),
		TEST(test_errors_version_matches_header),
		TEST(test_errors_allocator_locked_after_first_allocation),
	};
	return evfn_test_main("errors", tests);
}
