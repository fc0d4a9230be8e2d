/* SPDX-License-Identifier: MIT */
/*
 * Clients for the tests of evfn's HTTP trigger and status page: a
 * blocking evhttp client (one request on a fresh connection and base,
 * answered within 10 s, with the headers those tests look at), plain
 * sockets for requests no well-behaved client sends, and curl, the
 * outside client.
 */
#ifndef EVFN_TEST_HTTP_CLIENT_H
#define EVFN_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "harness.h"

struct hdr {
	const char *name, *value;
};

/* An answer. body is NUL-terminated (never NULL) and lives until the
 * next request: tests read one answer at a time and free nothing. */
struct resp {
	struct event_base *base;
	bool done;
	int status;
	char *body;
	size_t len;
	char ctype[128], retry[16], allow[64], etype[128], clen[16];
};

static inline void
keep_header(struct evkeyvalq *h, const char *name, char *dst, size_t n)
{
	const char *v = evhttp_find_header(h, name);
	snprintf(dst, n, "%s", v ? v : "");
}

static inline void
client_done(struct evhttp_request *req, void *arg)
{
	struct resp *r = arg;
	r->done = true;
	if (req) {
		r->status = evhttp_request_get_response_code(req);
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		r->len = evbuffer_get_length(b);
		r->body = malloc(r->len + 1);
		assert_non_null(r->body);
		evbuffer_remove(b, r->body, r->len);
		r->body[r->len] = '\0';
		struct evkeyvalq *h = evhttp_request_get_input_headers(req);
		keep_header(h, "Content-Type", r->ctype, sizeof(r->ctype));
		keep_header(h, "Retry-After", r->retry, sizeof(r->retry));
		keep_header(h, "Allow", r->allow, sizeof(r->allow));
		keep_header(h, "X-Event-Type", r->etype, sizeof(r->etype));
		keep_header(h, "Content-Length", r->clen, sizeof(r->clen));
	}
	event_base_loopbreak(r->base);
}

/* Sends one request (nh headers besides Host, len bytes of body) and
 * waits at most 10 s for the answer. */
static inline struct resp
http_request(int port, enum evhttp_cmd_type cmd, const char *path,
             const struct hdr *h, size_t nh, const void *body, size_t len)
{
	static char *last_body; /* the previous answer's, freed now */
	free(last_body);
	struct resp r = {0};
	r.base = event_base_new();
	assert_non_null(r.base);
	struct evhttp_connection *conn = evhttp_connection_base_new(
		r.base, NULL, "127.0.0.1", (unsigned short)port);
	evhttp_connection_set_timeout(conn, 10);
	struct evhttp_request *req = evhttp_request_new(client_done, &r);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "Host", "127.0.0.1");
	for (size_t i = 0; i < nh; i++)
		evhttp_add_header(out, h[i].name, h[i].value);
	if (len)
		evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	assert_int_equal(evhttp_make_request(conn, req, cmd, path), 0);
	event_base_dispatch(r.base);
	evhttp_connection_free(conn);
	event_base_free(r.base);
	assert_true(r.done);
	if (!r.body)
		r.body = calloc(1, 1);
	last_body = r.body;
	return r;
}

/* ---- plain sockets ---------------------------------------------------- */

/* Fails with text (what was received) when cond is false. */
#define ASSERT_TRUE_MSG(cond, text)                                          \
	do {                                                                 \
		if (!(cond))                                                 \
			fail_msg("%s (got \"%s\")", #cond, (text));          \
	} while (0)

static inline int
connect_raw(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static inline void
send_all(int fd, const void *s, size_t n)
{
	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

static inline void
send_raw(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/* Reads what arrives within ms; returns the byte count, 0 at EOF, -1 when
 * nothing came in time. */
static inline ssize_t
recv_within(int fd, char *buf, size_t n, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, ms) <= 0)
		return -1;
	ssize_t got = recv(fd, buf, n - 1, 0);
	if (got >= 0)
		buf[got] = '\0';
	return got;
}

/* Reads a socket or pipe until the peer closes, at most n - 1 bytes and
 * timeout_ms in all; returns the byte count (buf NUL-terminated), or -1 when the peer
 * did not close in time. */
static inline ssize_t
read_to_eof(int fd, char *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	int64_t until = test_now_ms() + timeout_ms;
	buf[0] = '\0';
	for (;;) {
		int left = (int)(until - test_now_ms());
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
		ssize_t r = read(fd, buf + got, n - 1 - got);
		if (r > 0)
			got += (size_t)r;
		buf[got] = '\0';
		if (r <= 0 || got == n - 1)
			return r < 0 ? -1 : (ssize_t)got;
	}
}

/* An answer read off a plain socket: status 0 when none came. body
 * points into text, past the head. */
struct raw_resp {
	int status;
	char text[16384];
	const char *body;
};

static inline void
raw_parse(struct raw_resp *r)
{
	r->status = 0;
	r->body = "";
	if (strncmp(r->text, "HTTP/1.", 7) == 0 && strlen(r->text) > 12)
		r->status = atoi(r->text + 9);
	const char *end = strstr(r->text, "\r\n\r\n");
	if (end)
		r->body = end + 4;
}

/* Sends len bytes (a whole request, which should ask for "Connection:
 * close") on a fresh connection and reads the answer until the server
 * closes, within 10 s. */
static inline void
raw_exchange(int port, const void *request, size_t len, struct raw_resp *r)
{
	int fd = connect_raw(port);
	send_all(fd, request, len);
	if (read_to_eof(fd, r->text, sizeof(r->text), 10000) < 0)
		fail_msg("no answer closed within 10 s (got \"%s\")", r->text);
	close(fd);
	raw_parse(r);
}

/* ---- curl ------------------------------------------------------------- */

/* Runs curl with args (NULL-terminated) after "-sS --max-time 10 -o -
 * -w \n%{http_code}", and keeps its output: the body, and the status
 * (0 when curl got none). */
struct curl_resp {
	int status;
	char body[8192];
};

extern char **environ;

static inline struct curl_resp
curl_run(const char *const *args)
{
	const char *argv[64] = {"curl", "-sS", "--max-time", "10", "-o", "-",
	                        "-w", "\n%{http_code}"};
	size_t n = 8;
	for (size_t i = 0; args[i]; i++) {
		assert_true(n < sizeof(argv) / sizeof(argv[0]) - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	int out[2];
	assert_int_equal(pipe(out), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	pid_t pid;
	int rc = posix_spawnp(&pid, "curl", &fa, NULL, (char *const *)argv,
	                      environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	assert_int_equal(rc, 0);
	static char text[sizeof(((struct curl_resp *)0)->body) + 16];
	ssize_t got = read_to_eof(out[0], text, sizeof(text), 15000);
	close(out[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(got >= 0);
	struct curl_resp r = {0};
	char *nl = strrchr(text, '\n');
	assert_non_null(nl);
	r.status = atoi(nl + 1);
	*nl = '\0';
	size_t len = (size_t)(nl - text);
	if (len >= sizeof(r.body))
		len = sizeof(r.body) - 1;
	memcpy(r.body, text, len);
	r.body[len] = '\0';
	return r;
}

#endif /* EVFN_TEST_HTTP_CLIENT_H */
