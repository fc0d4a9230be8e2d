/* SPDX-License-Identifier: MIT */
/*
 * Text helpers: UTF-8 validation (whole strings and one character),
 * checked case by case against the classic malformed forms and
 * exhaustively, for every sequence of up to three bytes and every
 * four-byte lead, against a decoder that computes each code point and
 * then applies RFC 3629's limits.
 */
#include <string.h>

#include "harness.h"
#include "text-internal.h"

static void
test_text_utf8_known_cases(void **state)
{
	static const char *const good[] = {
		"", "plain ascii", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e",
		"\xed\x9f\xbf",     /* U+D7FF, below the surrogates */
		"\xee\x80\x80",     /* U+E000, above them */
		"\xef\xbf\xbf",     /* U+FFFF */
		"\xf4\x8f\xbf\xbf", /* U+10FFFF, the last */
		"quote\" back\\slash\nnew line\x01",
	};
	static const char *const bad[] = {
		"\x80",             /* a lone continuation byte */
		"a\xff", "\xfe",    /* never in UTF-8 */
		"\xc0\xaf",         /* overlong '/' */
		"\xc1\xbf",         /* overlong */
		"\xe0\x80\xaf",     /* overlong, three bytes */
		"\xf0\x80\x80\xaf", /* overlong, four bytes */
		"\xed\xa0\x80",     /* U+D800, a surrogate */
		"\xed\xbf\xbf",     /* U+DFFF */
		"\xf4\x90\x80\x80", /* U+110000 */
		"\xf5\x80\x80\x80", /* past any code point */
		"\xe2\x82",         /* truncated */
		"\xc3",             /* truncated at the end */
		"\xe2\x28\xa1",     /* a continuation that is not */
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!evfn__utf8_valid(good[i], strlen(good[i])))
			fail_msg("refused good case %zu", i);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (evfn__utf8_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted bad case %zu", i);
	/* The length counts, not a NUL. */
	assert_false(evfn__utf8_valid("\xc3\xa9", 1));
	assert_true(evfn__utf8_valid("a\0b", 3));
}

/* The reference: decode one sequence by its lead byte's length, then
 * refuse what RFC 3629 excludes by value (overlong, surrogate, too big).
 * Returns the sequence's length, or 0 when it is malformed. */
static size_t
ref_decode(const unsigned char *p, size_t len)
{
	if (p[0] < 0x80)
		return 1;
	size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
	if (n == 0 || p[0] >= 0xf8 || len < n)
		return 0;
	unsigned long cp = p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	static const unsigned long least[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < least[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

static bool
ref_valid(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = ref_decode(p + i, len - i);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

static void
test_text_utf8_agrees_with_a_decoder(void **state)
{
	unsigned char b[4];
	for (unsigned x = 0; x < 0x1000000; x++) {
		b[0] = (unsigned char)(x >> 16);
		b[1] = (unsigned char)(x >> 8);
		b[2] = (unsigned char)x;
		/* The prefixes of 1 and 2 bytes come up along the way. */
		for (size_t len = 1; len <= 3; len++) {
			if (len < 3 && (x & (0xffffffu >> (8 * len))) != 0)
				continue;
			if (evfn__utf8_valid((const char *)b, len) !=
			    ref_valid(b, len) ||
			    evfn__utf8_char_len(b, len) != ref_decode(b, len))
				fail_msg("disagree on %02x %02x %02x (%zu bytes)",
				         b[0], b[1], b[2], len);
		}
	}
	/* Four bytes: every lead and second byte, two continuations. */
	for (unsigned x = 0; x < 0x10000; x++) {
		b[0] = (unsigned char)(x >> 8);
		b[1] = (unsigned char)x;
		b[2] = 0x80;
		b[3] = 0xbf;
		if (evfn__utf8_valid((const char *)b, 4) != ref_valid(b, 4) ||
		    evfn__utf8_char_len(b, 4) != ref_decode(b, 4))
			fail_msg("disagree on %02x %02x 80 bf", b[0], b[1]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_text_utf8_known_cases),
		TEST(test_text_utf8_agrees_with_a_decoder),
	};
	return evfn_test_main("text", tests);
}
