/* SPDX-License-Identifier: MIT */
/*
 * The request framer on its own: bytes go into an evbuffer with the
 * framer watching it, as on a connection's input, in pieces of every size
 * and with a reader taking bytes off the front meanwhile; what comes out
 * is what evhttp would read. Chunk extensions and other spellings evhttp
 * refuses become bare sizes; bodies, heads and bytes it need not touch
 * pass unchanged; malformed chunked framing ends the request and marks
 * the connection.
 */
#include <string.h>

#include <event2/buffer.h>

#include "harness.h"
#include "sources/http-framing-internal.h"

#define EVFN_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

struct fed {
	struct evfn__framer f;
	struct evbuffer *in;
	struct evbuffer *out; /* what the reader took off the front */
};

static void
on_change(struct evbuffer *buf, const struct evbuffer_cb_info *info,
          void *arg)
{
	struct fed *fd = arg;
	evfn__framer_input(&fd->f, buf, info->n_deleted);
}

/* Feeds text in pieces of `piece` bytes (0: all at once); after each
 * piece a reader takes up to `take` framed bytes off the front, as evhttp
 * would. Returns everything read, NUL-terminated, to be freed. */
static char *
feed(const char *text, size_t len, size_t piece, size_t take, bool *failed)
{
	struct fed fd;
	evfn__framer_init(&fd.f);
	fd.in = evbuffer_new();
	fd.out = evbuffer_new();
	assert_non_null(evbuffer_add_cb(fd.in, on_change, &fd));
	for (size_t at = 0; at < len;) {
		size_t n = piece ? EVFN_TEST_MIN(piece, len - at) : len - at;
		assert_int_equal(evbuffer_add(fd.in, text + at, n), 0);
		at += n;
		/* evhttp reads nothing more once the body ends. */
		if (evfn__framer_failed(&fd.f))
			break;
		size_t k = EVFN_TEST_MIN(take, fd.f.pos);
		if (k)
			evbuffer_remove_buffer(fd.in, fd.out, k);
	}
	evbuffer_add_buffer(fd.out, fd.in);
	size_t n = evbuffer_get_length(fd.out);
	char *s = malloc(n + 1);
	assert_non_null(s);
	evbuffer_remove(fd.out, s, n);
	s[n] = '\0';
	*failed = evfn__framer_failed(&fd.f);
	evbuffer_free(fd.in);
	evbuffer_free(fd.out);
	return s;
}

/* Checks that text comes out as want (and fails or not), fed at once,
 * byte by byte, in pieces of 7 with a reader, and in pieces of 64. */
static void
expect(const char *text, const char *want, bool want_failed)
{
	static const size_t pieces[][2] = {{0, 0}, {1, 0}, {7, 5}, {64, 1000}};
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		bool failed;
		char *got = feed(text, strlen(text), pieces[i][0],
		                 pieces[i][1], &failed);
		if (strcmp(got, want) != 0 || failed != want_failed)
			fail_msg("pieces of %zu: got \"%s\"%s, want \"%s\"%s",
			         pieces[i][0], got, failed ? " (failed)" : "",
			         want, want_failed ? " (failed)" : "");
		free(got);
	}
}

#define CHUNKED "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
#define NEXT "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"

static void
test_http_framing_extensions_become_bare_sizes(void **state)
{
	(void)state;
	expect(CHUNKED "3;ext=1\r\nabc\r\n"
	               "4 ; a=\"q\\\"x;\" ;b\r\ndefg\r\n"
	               "B;n=v\nhello world\r\n"
	               "0;last\r\nX-Trailer: 1\r\n\r\n" NEXT,
	       CHUNKED "3\r\nabc\r\n"
	               "4\r\ndefg\r\n"
	               "b\r\nhello world\r\n"
	               "0\r\nX-Trailer: 1\r\n\r\n" NEXT,
	       false);
	/* Bare sizes, leading zeros included, are left as sent. */
	expect(CHUNKED "0003\r\nabc\r\n0\r\n\r\n" NEXT,
	       CHUNKED "0003\r\nabc\r\n0\r\n\r\n" NEXT, false);
	/* Chunk data that looks like a size line is data. */
	expect(CHUNKED "5\r\n1;x\r\n\r\n0\r\n\r\n",
	       CHUNKED "5\r\n1;x\r\n\r\n0\r\n\r\n", false);
}

static void
test_http_framing_leaves_other_bodies_alone(void **state)
{
	(void)state;
	/* A Content-Length body that looks chunked, then a chunked
	 * request: only the latter's sizes are touched. */
	const char *text =
		"POST /a HTTP/1.1\r\nContent-Length: 11\r\n\r\n3;x=1\r\nab\r\n"
		CHUNKED "1;y\r\nz\r\n0\r\n\r\n";
	expect(text,
	       "POST /a HTTP/1.1\r\nContent-Length: 11\r\n\r\n3;x=1\r\nab\r\n"
	       CHUNKED "1\r\nz\r\n0\r\n\r\n",
	       false);
	/* evhttp 2.1 reads no body for HEAD and TRACE, whatever the
	 * headers say, and reads one for GET. */
	expect("HEAD / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	       CHUNKED "1;y\r\nz\r\n0\r\n\r\n",
	       "HEAD / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	       CHUNKED "1\r\nz\r\n0\r\n\r\n",
	       false);
	expect("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	       "1;y\r\nz\r\n0\r\n\r\n",
	       "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	       "1\r\nz\r\n0\r\n\r\n",
	       false);
	/* Only the first Transfer-Encoding counts, as in evhttp; "gzip,
	 * chunked" is not chunked to evhttp (the trigger refuses it). */
	expect("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	       "1;y\r\n",
	       "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	       "1;y\r\n",
	       false);
	/* A folded framing header: the framer stops following. */
	const char *folded = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	                     " x\r\n\r\n1;y\r\nz\r\n0\r\n\r\n";
	expect(folded, folded, false);
}

static void
test_http_framing_malformed_chunks_fail(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"zz\r\n", "3 x\r\n", "3;\r\n", "3;=v\r\n", "3;a=\r\n",
		"3;a=\"open\r\n", "3;a b\r\n", "-3\r\n", "0x3\r\n", ";a\r\n",
		" 3\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), CHUNKED "2\r\nok\r\n%sabc\r\n0\r\n\r\n"
		         NEXT, bad[i]);
		/* The body ends where the bad line was; the rest is gone. */
		expect(text, CHUNKED "2\r\nok\r\n0\r\n\r\n", true);
	}
	/* A trailer line that is not a header. */
	expect(CHUNKED "0\r\nnot a header\r\n\r\n" NEXT,
	       CHUNKED "0\r\n\r\n", true);
	/* A size line that never ends. */
	char *endless = malloc(8192);
	assert_non_null(endless);
	strcpy(endless, CHUNKED "3;a=");
	size_t n = strlen(endless);
	memset(endless + n, 'v', 8000);
	endless[n + 8000] = '\0';
	bool failed;
	char *got = feed(endless, strlen(endless), 100, 0, &failed);
	assert_true(failed);
	assert_string_equal(got, CHUNKED "0\r\n\r\n");
	free(got);
	free(endless);
}

static void
test_http_framing_impossible_size_left_to_evhttp(void **state)
{
	(void)state;
	/* More than 60 bits: no body has it; evhttp answers 413. */
	expect(CHUNKED "10000000000000000;x\r\n",
	       CHUNKED "7fffffffffffffff\r\n", false);
}

static void
test_http_framing_stops_when_out_of_step(void **state)
{
	(void)state;
	struct fed fd;
	evfn__framer_init(&fd.f);
	fd.in = evbuffer_new();
	assert_non_null(evbuffer_add_cb(fd.in, on_change, &fd));
	/* Half a line: the framer has not framed it yet. */
	evbuffer_add(fd.in, "POST / HT", 9);
	ASSERT_EQ(fd.f.pos, 0);
	/* A reader that takes bytes the framer has not seen puts it out of
	 * step: from then on it touches nothing. */
	evbuffer_drain(fd.in, 4);
	evbuffer_add(fd.in, "TP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\n",
	             44);
	size_t n = evbuffer_get_length(fd.in);
	char buf[128];
	evbuffer_remove(fd.in, buf, n);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "3;x\r\n"));
	evbuffer_free(fd.in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_http_framing_extensions_become_bare_sizes),
		TEST(test_http_framing_leaves_other_bodies_alone),
		TEST(test_http_framing_malformed_chunks_fail),
		TEST(test_http_framing_impossible_size_left_to_evhttp),
		TEST(test_http_framing_stops_when_out_of_step),
	};
	return evfn_test_main("http-framing", tests);
}
