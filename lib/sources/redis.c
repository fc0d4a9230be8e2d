/* SPDX-License-Identifier: MIT */
/*
 * Redis Streams trigger and sink over hiredis's async API on the runtime's
 * libevent loop: URL parsing, a self-reconnecting connection, the source
 * (XREADGROUP into batched submits, batched XACK, reclaiming with XPENDING +
 * XCLAIM, dead letters) and the sink (XADD, directly or as a function).
 * Every hiredis call happens on the loop thread; public calls from other
 * threads are marshalled there. Built only when hiredis is found.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <evfn/context.h>
#include <evfn/emit.h>
#include <evfn/event.h>
#include <evfn/function.h>
#include <evfn/libevent.h>
#include <evfn/redis.h>

#include "common-internal.h"
#include "text-internal.h"
#include "event-internal.h"
#include "hash-internal.h"
#include "kv-internal.h"
#include "options-internal.h"
#include "source-internal.h"

/* Longest stream entry id: two 20-digit numbers and a dash. */
#define ID_MAX 48
/* Most ids in one XACK or XCLAIM. */
#define ACK_BATCH 512
/* Room for an RFC 3339 time, with margin for snprintf's range check. */
#define TIME_BUF EVFN__RFC3339_MAX
/* Most appends a sink keeps waiting. */
#define SINK_QUEUE_MAX 65536
/* Retry delay of a read refused for want of room in the function. */
#define READ_RETRY_MS 50
/* Most entries submitted under one hold of the runtime lock: a whole
 * read of the default size (64), and more. */
#define SUBMIT_BATCH 256

/* ---- options ------------------------------------------------------------ */

struct redis_url {
	bool is_unix;
	char *host; /* host name, or socket path for unix */
	int port;
	int db;
	char *user;     /* NULL: none */
	char *password; /* NULL: no AUTH */
};

struct evfn_redis_options {
	struct redis_url url;
	char *group;
	char *consumer;  /* NULL: <hostname>-<pid> */
	bool from_start;
	int batch;
	int64_t block_ms;
	int max_in_flight;
	int64_t claim_min_idle_ms;
	int64_t claim_interval_ms;
	int max_deliveries; /* 0: the function's attempts */
	char *dead_stream;  /* NULL: <stream>:dead */
	char *data_field;
	int64_t reconnect_base_ms;
	int64_t reconnect_cap_ms;
	int64_t maxlen;
};

static void
url_clear(struct redis_url *u)
{
	evfn__free(u->host);
	evfn__free(u->user);
	evfn__free(u->password);
	memset(u, 0, sizeof(*u));
}

/* Copies s[0..n) into *out, decoding %XX escapes. Returns 0, EVFN_EURL
 * for a malformed escape or an escaped NUL, or EVFN_ENOMEM. */
static int
pct_decode(const char *s, size_t n, char **out)
{
	char *d = evfn__malloc(n + 1);
	if (!d)
		return EVFN_ENOMEM;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			d[j++] = s[i];
			continue;
		}
		int hi = i + 2 < n ? evfn__hex_value(s[i + 1]) : -1;
		int lo = i + 2 < n ? evfn__hex_value(s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			evfn__free(d);
			return EVFN_EURL;
		}
		d[j++] = (char)(hi * 16 + lo);
		i += 2;
	}
	d[j] = '\0';
	*out = d;
	return 0;
}

/* Parses s[0..n) as a decimal number in [min, max]; false if it is not. */
static bool
parse_num(const char *s, size_t n, long min, long max, long *v)
{
	if (n == 0 || n > 9)
		return false;
	long x = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (s[i] - '0');
	}
	if (x < min || x > max)
		return false;
	*v = x;
	return true;
}

/* Splits "[user]:password@" off the front of *rest when the authority
 * (up to the first '/', or the end) holds an '@'. */
static int
parse_userinfo(const char **rest, struct redis_url *u)
{
	const char *p = *rest;
	size_t auth_len = strcspn(p, "/");
	const char *at = NULL;
	for (size_t i = 0; i < auth_len; i++)
		if (p[i] == '@')
			at = p + i;
	if (!at)
		return 0;
	const char *colon = memchr(p, ':', (size_t)(at - p));
	if (!colon)
		return EVFN_EURL;
	int rc = 0;
	if (colon > p)
		rc = pct_decode(p, (size_t)(colon - p), &u->user);
	if (!rc && at > colon + 1)
		rc = pct_decode(colon + 1, (size_t)(at - colon - 1),
		                &u->password);
	if (!rc && u->user && !u->password)
		rc = EVFN_EURL;
	*rest = at + 1;
	return rc;
}

static int
parse_unix(const char *p, struct redis_url *u)
{
	if (*p != '/')
		return EVFN_EURL;
	size_t path_len = strcspn(p, "?#");
	if (path_len < 2 || path_len >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return EVFN_EURL;
	const char *q = p + path_len;
	if (*q == '?') {
		if (strncmp(q, "?db=", 4) != 0)
			return EVFN_EURL;
		long db;
		if (!parse_num(q + 4, strlen(q + 4), 0, 65535, &db))
			return EVFN_EURL;
		u->db = (int)db;
	} else if (*q) {
		return EVFN_EURL;
	}
	return pct_decode(p, path_len, &u->host);
}

static int
parse_tcp(const char *p, struct redis_url *u)
{
	size_t host_len;
	const char *host = p;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (!close || close == p + 1)
			return EVFN_EURL;
		host = p + 1;
		host_len = (size_t)(close - host);
		p = close + 1;
	} else {
		host_len = strcspn(p, ":/?#");
		p += host_len;
	}
	if (host_len == 0 || host_len > 253)
		return EVFN_EURL;
	for (size_t i = 0; i < host_len; i++)
		if ((unsigned char)host[i] <= ' ' || host[i] == '@' ||
		    host[i] == '%' || host[i] == '[' || host[i] == ']')
			return EVFN_EURL;
	u->port = 6379;
	if (*p == ':') {
		p++;
		size_t n = strcspn(p, "/");
		long port;
		if (!parse_num(p, n, 1, 65535, &port))
			return EVFN_EURL;
		u->port = (int)port;
		p += n;
	}
	if (*p == '/') {
		p++;
		long db = 0;
		if (*p && !parse_num(p, strlen(p), 0, 65535, &db))
			return EVFN_EURL;
		u->db = (int)db;
	} else if (*p) {
		return EVFN_EURL;
	}
	u->host = evfn__malloc(host_len + 1);
	if (!u->host)
		return EVFN_ENOMEM;
	memcpy(u->host, host, host_len);
	u->host[host_len] = '\0';
	return 0;
}

/* Parses a URL of the grammar in evfn/redis.h into *u (cleared first and
 * on failure). Returns 0, EVFN_EURL or EVFN_ENOMEM. */
static int
url_parse(const char *s, struct redis_url *u)
{
	memset(u, 0, sizeof(*u));
	const char *rest;
	if (strncmp(s, "redis://", 8) == 0) {
		rest = s + 8;
	} else if (strncmp(s, "unix://", 7) == 0) {
		rest = s + 7;
		u->is_unix = true;
	} else {
		return EVFN_EURL;
	}
	int rc = parse_userinfo(&rest, u);
	if (!rc)
		rc = u->is_unix ? parse_unix(rest, u) : parse_tcp(rest, u);
	if (rc)
		url_clear(u);
	return rc;
}

static int
url_copy(struct redis_url *dst, const struct redis_url *src)
{
	*dst = *src;
	dst->host = evfn__strdup(src->host);
	dst->user = src->user ? evfn__strdup(src->user) : NULL;
	dst->password = src->password ? evfn__strdup(src->password) : NULL;
	if (!dst->host || (src->user && !dst->user) ||
	    (src->password && !dst->password)) {
		url_clear(dst);
		return EVFN_ENOMEM;
	}
	return 0;
}

static void
options_clear(evfn_redis_options *o)
{
	url_clear(&o->url);
	evfn__free(o->group);
	evfn__free(o->consumer);
	evfn__free(o->dead_stream);
	evfn__free(o->data_field);
	memset(o, 0, sizeof(*o));
}

static int
options_defaults(evfn_redis_options *o)
{
	memset(o, 0, sizeof(*o));
	o->url.host = evfn__strdup("127.0.0.1");
	o->url.port = 6379;
	o->group = evfn__strdup("evfn");
	o->data_field = evfn__strdup("data");
	o->batch = 64;
	o->block_ms = 1000;
	o->max_in_flight = 1024;
	o->claim_min_idle_ms = 30000;
	o->claim_interval_ms = 5000;
	o->reconnect_base_ms = 100;
	o->reconnect_cap_ms = 5000;
	if (!o->url.host || !o->group || !o->data_field) {
		options_clear(o);
		return EVFN_ENOMEM;
	}
	return 0;
}

/* A deep copy of src (or of the defaults for NULL src) into dst. */
static int
options_copy(evfn_redis_options *dst, const evfn_redis_options *src)
{
	if (!src)
		return options_defaults(dst);
	*dst = *src;
	memset(&dst->url, 0, sizeof(dst->url));
	dst->group = evfn__strdup(src->group);
	dst->consumer = src->consumer ? evfn__strdup(src->consumer) : NULL;
	dst->dead_stream =
		src->dead_stream ? evfn__strdup(src->dead_stream) : NULL;
	dst->data_field = evfn__strdup(src->data_field);
	if (url_copy(&dst->url, &src->url) != 0 || !dst->group ||
	    !dst->data_field || (src->consumer && !dst->consumer) ||
	    (src->dead_stream && !dst->dead_stream)) {
		options_clear(dst);
		return EVFN_ENOMEM;
	}
	return 0;
}

int
evfn_redis_options_new(evfn_redis_options **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	evfn_redis_options *o = evfn__malloc(sizeof(*o));
	if (!o)
		return EVFN_ENOMEM;
	int rc = options_defaults(o);
	if (rc) {
		evfn__free(o);
		return rc;
	}
	*out = o;
	return 0;
}

void
evfn_redis_options_free(evfn_redis_options *o)
{
	if (!o)
		return;
	options_clear(o);
	evfn__free(o);
}

int
evfn_redis_options_set_url(evfn_redis_options *o, const char *url)
{
	if (!o || !url)
		return EVFN_EINVAL;
	struct redis_url u;
	int rc = url_parse(url, &u);
	if (rc)
		return rc;
	url_clear(&o->url);
	o->url = u;
	return 0;
}

int
evfn_redis_options_set_group(evfn_redis_options *o, const char *group,
                             const char *consumer)
{
	if (!o)
		return EVFN_EINVAL;
	int rc = evfn__check_name(group);
	if (!rc && consumer)
		rc = evfn__check_name(consumer);
	if (rc)
		return rc;
	char *g = evfn__strdup(group);
	char *c = consumer ? evfn__strdup(consumer) : NULL;
	if (!g || (consumer && !c)) {
		evfn__free(g);
		evfn__free(c);
		return EVFN_ENOMEM;
	}
	evfn__free(o->group);
	evfn__free(o->consumer);
	o->group = g;
	o->consumer = c;
	return 0;
}

int
evfn_redis_options_set_from_start(evfn_redis_options *o, bool from_start)
{
	if (!o)
		return EVFN_EINVAL;
	o->from_start = from_start;
	return 0;
}

int
evfn_redis_options_set_batch(evfn_redis_options *o, int count,
                             int64_t block_ms)
{
	if (!o)
		return EVFN_EINVAL;
	if (count < 1 || count > 10000 || block_ms < 1 || block_ms > 3600000)
		return EVFN_ERANGE;
	o->batch = count;
	o->block_ms = block_ms;
	return 0;
}

int
evfn_redis_options_set_max_in_flight(evfn_redis_options *o, int n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 1 || n > 1000000)
		return EVFN_ERANGE;
	o->max_in_flight = n;
	return 0;
}

int
evfn_redis_options_set_claim(evfn_redis_options *o, int64_t min_idle_ms,
                             int64_t interval_ms)
{
	if (!o)
		return EVFN_EINVAL;
	if (min_idle_ms < 0 || interval_ms < 1)
		return EVFN_ERANGE;
	o->claim_min_idle_ms = min_idle_ms;
	o->claim_interval_ms = interval_ms;
	return 0;
}

int
evfn_redis_options_set_max_deliveries(evfn_redis_options *o, int n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 0 || n > 1000000)
		return EVFN_ERANGE;
	o->max_deliveries = n;
	return 0;
}

int
evfn_redis_options_set_dead_letter_stream(evfn_redis_options *o,
                                          const char *stream)
{
	if (!o || (stream && !*stream))
		return EVFN_EINVAL;
	return evfn__strreplace(&o->dead_stream, stream);
}

int
evfn_redis_options_set_data_field(evfn_redis_options *o, const char *name)
{
	if (!o || !name || !*name)
		return EVFN_EINVAL;
	return evfn__strreplace(&o->data_field, name);
}

int
evfn_redis_options_set_reconnect(evfn_redis_options *o, int64_t base_ms,
                                 int64_t cap_ms)
{
	if (!o)
		return EVFN_EINVAL;
	if (base_ms < 1 || cap_ms < base_ms || cap_ms > 3600000)
		return EVFN_ERANGE;
	o->reconnect_base_ms = base_ms;
	o->reconnect_cap_ms = cap_ms;
	return 0;
}

int
evfn_redis_options_set_maxlen(evfn_redis_options *o, int64_t n)
{
	if (!o)
		return EVFN_EINVAL;
	if (n < 0)
		return EVFN_ERANGE;
	o->maxlen = n;
	return 0;
}

/* ---- small helpers ------------------------------------------------------ */

/* What an error reply (or a missing one) means. */
static int
reply_code(const redisReply *r)
{
	if (!r)
		return EVFN_ECONNREFUSED;
	if (r->type != REDIS_REPLY_ERROR)
		return 0;
	if (!strncmp(r->str, "NOAUTH", 6) || !strncmp(r->str, "WRONGPASS", 9) ||
	    !strncmp(r->str, "ERR invalid password", 20) ||
	    !strncmp(r->str, "ERR AUTH", 8) || !strncmp(r->str, "NOPERM", 6))
		return EVFN_EAUTH;
	if (!strncmp(r->str, "WRONGTYPE", 9))
		return EVFN_EWRONGTYPE;
	if (!strncmp(r->str, "NOGROUP", 7))
		return EVFN_ENOENT;
	if (!strncmp(r->str, "BUSYGROUP", 9))
		return EVFN_EEXIST;
	return EVFN_EINVAL;
}

static bool
is_string(const redisReply *r)
{
	return r && (r->type == REDIS_REPLY_STRING ||
	             r->type == REDIS_REPLY_STATUS);
}

/* True for a string reply that is a C string (no NUL inside). */
static bool
is_cstring(const redisReply *r)
{
	return is_string(r) && strlen(r->str) == r->len;
}

static bool
field_is(const redisReply *f, const char *name)
{
	size_t n = strlen(name);
	return f->len == n && memcmp(f->str, name, n) == 0;
}


static void
add_timer_ms(struct event *ev, int64_t ms)
{
	struct timeval tv = evfn__timeval_ns(ms * EVFN__NS_PER_MS);
	event_add(ev, &tv);
}

/* ---- connection ----------------------------------------------------------- */

/*
 * One hiredis async connection that keeps itself connected: on a refused
 * or lost connection it tries again after a capped exponential backoff. A
 * new connection sends AUTH and SELECT as the URL asks, then PING; the
 * owner is told it is ready when PING answers, and may send commands only
 * while c->ready. Commands queued on a dying connection get a NULL reply
 * (hiredis runs every pending callback so), and callbacks must then not
 * send anything. An authentication failure is fatal: the owner is told
 * with EVFN_EAUTH and the connection does not come back.
 */
struct conn {
	redisAsyncContext *ac;
	evfn_rt *rt;
	struct event_base *base;
	const struct redis_url *url;
	const char *role;          /* for log lines */
	struct event *retry_ev;
	int64_t base_ms, cap_ms, delay_ms;
	bool ready;
	bool closed;               /* no reconnecting */
	void (*on_ready)(void *owner);
	/* Lost (EVFN_ECONNREFUSED: reconnecting; why is NULL) or refused
	 * for good (EVFN_EAUTH, EVFN_EURL for a bad db, or what the owner
	 * asked for; why is the server's answer). */
	void (*on_down)(void *owner, int code, const char *why);
	void *owner;
};

static void conn_connect(struct conn *c);

static void
conn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (!c->closed && !c->ac)
		conn_connect(c);
}

static int
conn_init(struct conn *c, evfn_rt *rt, const evfn_redis_options *o,
          const char *role, void (*on_ready)(void *),
          void (*on_down)(void *, int, const char *), void *owner)
{
	memset(c, 0, sizeof(*c));
	c->rt = rt;
	c->base = evfn_rt_event_base(rt);
	c->url = &o->url;
	c->role = role;
	c->base_ms = c->delay_ms = o->reconnect_base_ms;
	c->cap_ms = o->reconnect_cap_ms;
	c->on_ready = on_ready;
	c->on_down = on_down;
	c->owner = owner;
	c->retry_ev = evtimer_new(c->base, conn_retry_cb, c);
	return c->retry_ev ? 0 : EVFN_ENOMEM;
}

static void
conn_lost(struct conn *c, int code)
{
	c->ac = NULL;
	c->ready = false;
	if (c->closed)
		return;
	c->on_down(c->owner, code, NULL);
	if (c->closed)
		return;
	add_timer_ms(c->retry_ev, c->delay_ms);
	c->delay_ms = EVFN__MIN(c->delay_ms * 2, c->cap_ms);
}

static void
conn_connect_cb(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;
	if (status == REDIS_OK)
		return;
	evfn__rt_log(c->rt, EVFN_LOG_WARN, "redis %s: connect: %s", c->role,
	             ac->errstr);
	/* hiredis frees the context after this callback without calling the
	 * disconnect callback. */
	conn_lost(c, EVFN_ECONNREFUSED);
}

static void
conn_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;
	if (!c->closed)
		evfn__rt_log(c->rt, EVFN_LOG_WARN,
		             "redis %s: disconnected: %s", c->role,
		             status == REDIS_OK ? "closed" : ac->errstr);
	conn_lost(c, EVFN_ECONNREFUSED);
}

/* A fatal refusal: no reconnecting; the context closes once its pending
 * replies are in. */
static void
conn_refused(struct conn *c, int code, const char *why)
{
	if (c->closed)
		return;
	evfn__rt_log(c->rt, EVFN_LOG_ERROR, "redis %s: %s: %s", c->role,
	             evfn_err_name(code), why);
	c->closed = true;
	c->ready = false;
	if (c->ac)
		redisAsyncDisconnect(c->ac);
	c->on_down(c->owner, code, why);
}

static void
conn_auth_cb(redisAsyncContext *ac, void *r, void *priv)
{
	(void)ac;
	redisReply *reply = r;
	/* Any error to AUTH is an authentication failure, a password given
	 * to a server without one included. */
	if (reply && reply->type == REDIS_REPLY_ERROR)
		conn_refused(priv, EVFN_EAUTH, reply->str);
}

static void
conn_select_cb(redisAsyncContext *ac, void *r, void *priv)
{
	(void)ac;
	redisReply *reply = r;
	/* Past NOAUTH, an error to SELECT means the URL's db does not
	 * exist. */
	if (reply && reply->type == REDIS_REPLY_ERROR)
		conn_refused(priv,
		             reply_code(reply) == EVFN_EAUTH ? EVFN_EAUTH
		                                             : EVFN_EURL,
		             reply->str);
}

static void
conn_ping_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct conn *c = priv;
	redisReply *reply = r;
	if (!reply || c->closed)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		int code = reply_code(reply);
		if (code == EVFN_EAUTH) {
			conn_refused(c, code, reply->str);
			return;
		}
		/* LOADING and the like: try again later. */
		evfn__rt_log(c->rt, EVFN_LOG_WARN, "redis %s: %s", c->role,
		             reply->str);
		redisAsyncDisconnect(ac);
		return;
	}
	c->ready = true;
	c->delay_ms = c->base_ms;
	c->on_ready(c->owner);
}

static void
conn_connect(struct conn *c)
{
	const struct redis_url *u = c->url;
	redisAsyncContext *ac = u->is_unix ? redisAsyncConnectUnix(u->host)
	                                   : redisAsyncConnect(u->host, u->port);
	if (!ac || ac->err) {
		evfn__rt_log(c->rt, EVFN_LOG_WARN, "redis %s: connect: %s",
		             c->role, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		conn_lost(c, EVFN_ECONNREFUSED);
		return;
	}
	ac->data = c;
	if (redisLibeventAttach(ac, c->base) != REDIS_OK) {
		redisAsyncFree(ac);
		conn_lost(c, EVFN_ECONNREFUSED);
		return;
	}
	redisAsyncSetConnectCallback(ac, conn_connect_cb);
	redisAsyncSetDisconnectCallback(ac, conn_disconnect_cb);
	c->ac = ac;
	/* Queued now, sent in order once the socket is up. */
	if (u->password && u->user)
		redisAsyncCommand(ac, conn_auth_cb, c, "AUTH %s %s", u->user,
		                  u->password);
	else if (u->password)
		redisAsyncCommand(ac, conn_auth_cb, c, "AUTH %s", u->password);
	if (u->db)
		redisAsyncCommand(ac, conn_select_cb, c, "SELECT %d", u->db);
	redisAsyncCommand(ac, conn_ping_cb, c, "PING");
}

/* Sends a command if the connection is ready; false if it was not sent
 * (the callback then never runs). */
static bool
conn_send(struct conn *c, redisCallbackFn *fn, void *priv, int argc,
          const char **argv, const size_t *lens)
{
	if (!c->ready || !c->ac)
		return false;
	return redisAsyncCommandArgv(c->ac, fn, priv, argc, argv, lens) ==
	       REDIS_OK;
}

/* As conn_send() for a command of at most 16 C strings. */
static bool
conn_send_strs(struct conn *c, redisCallbackFn *fn, void *priv, int argc,
               const char **argv)
{
	size_t lens[16];
	if (argc > 16)
		return false;
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	return conn_send(c, fn, priv, argc, argv, lens);
}

/* Closes for good, running every pending callback with a NULL reply
 * before it returns. Not from inside a hiredis callback. */
static void
conn_close(struct conn *c)
{
	c->closed = true;
	c->ready = false;
	if (c->retry_ev)
		event_del(c->retry_ev);
	if (c->ac) {
		redisAsyncContext *ac = c->ac;
		redisAsyncFree(ac);
		c->ac = NULL;
	}
}

static void
conn_destroy(struct conn *c)
{
	if (c->retry_ev)
		event_free(c->retry_ev);
	c->retry_ev = NULL;
}

/* ---- argv building ---------------------------------------------------------- */

/* A command under construction: argument pointers and lengths that
 * borrow their bytes. */
struct argv {
	const char **v;
	size_t *len;
	int n, cap;
	bool oom;
};

static void
argv_add(struct argv *a, const char *s, size_t len)
{
	if (a->n == a->cap) {
		int cap = a->cap ? a->cap * 2 : 16;
		const char **v = evfn__realloc(a->v, (size_t)cap * sizeof(*v));
		if (v)
			a->v = v;
		size_t *l = v ? evfn__realloc(a->len, (size_t)cap * sizeof(*l))
		              : NULL;
		if (!v || !l) {
			a->oom = true;
			return;
		}
		a->len = l;
		a->cap = cap;
	}
	a->v[a->n] = s;
	a->len[a->n] = len;
	a->n++;
}

static void
argv_str(struct argv *a, const char *s)
{
	argv_add(a, s, strlen(s));
}

static void
argv_free(struct argv *a)
{
	evfn__free(a->v);
	evfn__free(a->len);
	memset(a, 0, sizeof(*a));
}

/* Appends an event's fields (see evfn/redis.h): the payload under
 * data_field, then id, type, source, subject, datacontenttype, time
 * (formatted into timebuf, TIME_BUF bytes) and extensions. */
static void
argv_event(struct argv *a, const evfn_event *ev, const char *data_field,
           char *timebuf)
{
	size_t len;
	const void *data = evfn_event_data(ev, &len);
	argv_str(a, data_field);
	argv_add(a, data ? data : "", data ? len : 0);
	static const char *const names[] = {"id", "type", "source", "subject",
	                                    "datacontenttype"};
	const char *values[] = {evfn_event_id(ev), evfn_event_type(ev),
	                        evfn_event_source(ev), evfn_event_subject(ev),
	                        evfn_event_datacontenttype(ev)};
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(names); i++) {
		if (!values[i])
			continue;
		argv_str(a, names[i]);
		argv_str(a, values[i]);
	}
	if (evfn__event_has_time(ev)) {
		evfn__rfc3339_format(evfn_event_time(ev), timebuf);
		argv_str(a, "time");
		argv_str(a, timebuf);
	}
	const struct evfn__kv *kv;
	for (size_t i = 0; (kv = evfn__kv_at(evfn__event_ext(ev), i)); i++) {
		argv_str(a, kv->key);
		argv_str(a, kv->value);
	}
}

/* ---- source ------------------------------------------------------------- */

/*
 * Who may run an entry, and how deliveries are counted.
 *
 * An entry is held by the consumer that has it in its Redis pending list,
 * from its read until its XACK. A live source refreshes every entry it
 * holds (waiting for room in the function, queued, running, waiting for a
 * retry, or ended and waiting for its XACK or dead letter) every third of
 * the claim idle time, whatever XPENDING says, so that its entries never
 * look idle long enough to be claimed. Claims take only entries idle for
 * the claim idle time, checked on the server in the same step as the
 * XCLAIM: entries whose holder stopped (or could not reach Redis for that
 * long). Refreshing and claiming are Lua scripts (EVAL) so that each
 * check and its XCLAIM are one atomic step.
 *
 * The Redis delivery count of a pending entry counts its deliveries that
 * may have run: the first read (1), then one per takeover from a
 * consumer that stopped (a claim, or a restarted process finding its own
 * pending entries), less one for a delivery handed back by a draining
 * runtime before it ran. evfn never re-reads an entry it holds
 * (XREADGROUP with an id would count a delivery and reset the idle time),
 * refreshes with XCLAIM JUSTID (which counts none), and takes entries
 * over and releases them with an explicit RETRYCOUNT: +1 for a takeover,
 * +0 for an entry read for this very process whose reply the connection
 * lost. Each delivery runs with the function's attempts, retried in this
 * process; a delivery to a consumer that stopped counts as one run,
 * whatever that consumer did before it stopped, since nothing it did was
 * acknowledged. An entry whose count would pass max_deliveries when
 * taken over is dead-lettered without running. The count lives in
 * Redis's pending list, so it survives any consumer crash; it needs no
 * key of its own and costs nothing per attempt.
 */

/* Refreshes the ids still pending under this consumer (idle time back to
 * 0, delivery count unchanged) and returns the others: acknowledged, or
 * claimed by another consumer. KEYS[1] stream; ARGV group, consumer,
 * ids. */
static const char refresh_lua[] =
	"local args, lost = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0'}, {}\n"
	"for i = 3, #ARGV do\n"
	"  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i],"
	" ARGV[i], 1)[1]\n"
	"  if p and p[2] == ARGV[2] then args[#args + 1] = ARGV[i]\n"
	"  else lost[#lost + 1] = ARGV[i] end\n"
	"end\n"
	"if #args > 5 then\n"
	"  args[#args + 1] = 'JUSTID'\n"
	"  redis.call(unpack(args))\n"
	"end\n"
	"return lost\n";

/* Takes pending entries over: those of this consumer (min_idle < 0) or
 * those idle for at least min_idle ms, setting their delivery count to
 * the count + inc. Returns {id, deliveries, fields or nil} for each taken
 * (nil: the entry is no longer in the stream). KEYS[1] stream; ARGV
 * group, consumer, min_idle, inc, ids. */
static const char take_lua[] =
	"local out = {}\n"
	"local min_idle, inc = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"for i = 5, #ARGV do\n"
	"  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i],"
	" ARGV[i], 1)[1]\n"
	"  if p and ((min_idle < 0 and p[2] == ARGV[2]) or\n"
	"            (min_idle >= 0 and p[3] >= min_idle)) then\n"
	"    local n = p[4] + inc\n"
	"    local e = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0',"
	" ARGV[i], 'RETRYCOUNT', n)[1]\n"
	"    out[#out + 1] = {ARGV[i], n, e and e[2] or false}\n"
	"  end\n"
	"end\n"
	"return out\n";

/* Lets entries handed back unfinished go to the other consumers at once:
 * for each id still pending under this consumer, sets its idle time (so
 * that it can be claimed now) and its delivery count (one less when it
 * never ran here). KEYS[1] stream; ARGV group, consumer, idle, then id
 * and delivery count pairs. */
static const char release_lua[] =
	"for i = 4, #ARGV - 1, 2 do\n"
	"  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i],"
	" ARGV[i], 1)[1]\n"
	"  if p and p[2] == ARGV[2] then\n"
	"    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0', ARGV[i],"
	" 'IDLE', ARGV[3], 'RETRYCOUNT', ARGV[i + 1], 'JUSTID')\n"
	"  end\n"
	"end\n"
	"return 0\n";

/* Most ids listed in one step of finding own pending entries. */
#define ADOPT_PAGE 512

/* How a record leaves once its entry is done with here: acknowledged
 * (XACK), or released (handed back unfinished, for the other consumers
 * to claim at once, see release_lua). Each kind goes out in commands of
 * up to ACK_BATCH ids, once per loop turn. */
enum leave {
	LEAVE_ACK,
	LEAVE_RELEASE,
	LEAVE_KINDS
};

enum rec_state {
	REC_WAITING, /* refused by the function: to submit again */
	REC_RUNNING, /* submitted, outcome not in */
	REC_LEAVING, /* queued to leave (rec->leave says how) */
	REC_LEFT,    /* its XACK or release sent */
	REC_DEAD,    /* failed for good: dead letter to write */
	REC_DEADING  /* dead letter being written */
};

/* One entry the source holds, from its read (or takeover) until its XACK
 * is confirmed; keyed by entry id so that an entry taken again while held
 * here is not run twice by this process. Loop thread only, except that
 * after the source closed a running record belongs to its result
 * callback. */
struct rec {
	UT_hash_handle hh;
	struct rec *next;    /* waiting, leaving or dead queue */
	struct evfn_redis_source *src;
	enum rec_state state;
	enum leave leave;    /* REC_LEAVING, REC_LEFT */
	bool lost;           /* another consumer took it over meanwhile */
	int code;
	unsigned attempts;
	unsigned deliveries; /* its Redis delivery count, this one included */
	evfn_event *ev;      /* REC_WAITING: the event to submit */
	char *error;
	char id[ID_MAX];
};

struct evfn_redis_source {
	evfn_rt *rt;
	struct event_base *base;
	evfn_redis_options cfg;
	char *stream;
	char *fn_name;
	char *dead_stream;
	char *consumer;
	int max_deliveries;
	struct conn reader; /* XGROUP CREATE and the blocking XREADGROUP */
	struct conn cmd;    /* XACK, refreshes, takeovers, dead letters */
	atomic_int refs;    /* the owner's, plus one per running record */
	atomic_int status;
	atomic_uint_least64_t acked;
	atomic_size_t held; /* HASH_COUNT(recs), for any thread */

	/* Loop thread only. */
	bool closed;
	int fatal;
	bool stop_reading;   /* the runtime refused intake for good */
	struct rec *recs;    /* uthash on id */
	struct rec *leave_q[LEAVE_KINDS], *dead_q;
	size_t nleave[LEAVE_KINDS];
	struct rec *wait_head, *wait_tail; /* REC_WAITING, in read order */
	bool reading;        /* a read or an adoption step is in flight */
	bool group_ok, flush_pending, claiming, refreshing;
	/* Adoption: taking this consumer's own pending entries that it
	 * does not hold, before reading new ones: at start (an earlier
	 * process of the same name left them) and after a reconnection (a
	 * read or takeover whose reply the connection lost). */
	bool adopt_due;      /* to start, or go on at adopt_from */
	bool adopted_once;   /* one completed: later ones find entries
	                      * read for this very process */
	unsigned adopt_gen;  /* bumped when an adoption starts over */
	char adopt_from[ID_MAX + 1]; /* "-" or "(<id>" */
	int64_t cmd_up_ns;   /* when the command connection came up */
	int64_t retry_ms;    /* delay of the next submit or read retry */
	struct event *flush_ev;
	struct event *claim_ev;
	struct event *refresh_ev;
	struct event *read_ev; /* retries a refused submit or a failed read */
};

static void maybe_read(struct evfn_redis_source *s);
static void schedule_flush(struct evfn_redis_source *s);
static void submit_waiting(struct evfn_redis_source *s);

static void
source_unref(struct evfn_redis_source *s)
{
	if (atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	options_clear(&s->cfg);
	evfn__free(s->stream);
	evfn__free(s->fn_name);
	evfn__free(s->dead_stream);
	evfn__free(s->consumer);
	evfn__free(s);
}

static void
rec_free(struct rec *r)
{
	if (r->ev)
		evfn_event_unref(r->ev);
	evfn__free(r->error);
	evfn__free(r);
}

/* A new record for id, held from now on; NULL without memory. */
static struct rec *
rec_new(struct evfn_redis_source *s, const char *id, size_t len)
{
	struct rec *r = evfn__calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->src = s;
	memcpy(r->id, id, len + 1);
	bool evfn__hash_oom = false;
	HASH_ADD_STR(s->recs, id, r);
	if (evfn__hash_oom) {
		rec_free(r);
		return NULL;
	}
	atomic_store(&s->held, HASH_COUNT(s->recs));
	return r;
}

/* Forgets a record: the entry is no longer held here (acknowledged, or
 * left pending for another consumer). */
static void
rec_drop(struct evfn_redis_source *s, struct rec *r)
{
	HASH_DEL(s->recs, r);
	atomic_store(&s->held, HASH_COUNT(s->recs));
	rec_free(r);
}

static struct rec *
rec_find(struct evfn_redis_source *s, const char *id)
{
	struct rec *r;
	HASH_FIND_STR(s->recs, id, r);
	return r;
}

/* Queues r to leave as how says, with the next flush. */
static void
push_leave(struct evfn_redis_source *s, struct rec *r, enum leave how)
{
	r->state = REC_LEAVING;
	r->leave = how;
	r->next = s->leave_q[how];
	s->leave_q[how] = r;
	s->nleave[how]++;
	schedule_flush(s);
}

static void
push_ack(struct evfn_redis_source *s, struct rec *r)
{
	push_leave(s, r, LEAVE_ACK);
}

/* An entry handed back unfinished: released, its delivery not counted
 * if it never ran here. */
static void
push_release(struct evfn_redis_source *s, struct rec *r, bool ran)
{
	if (!ran && r->deliveries)
		r->deliveries--;
	push_leave(s, r, LEAVE_RELEASE);
}

static void
push_dead(struct evfn_redis_source *s, struct rec *r)
{
	r->state = REC_DEAD;
	r->next = s->dead_q;
	s->dead_q = r;
	schedule_flush(s);
}

static void
update_status(struct evfn_redis_source *s)
{
	if (s->fatal)
		atomic_store(&s->status, s->fatal);
	else if (s->reader.ready && s->cmd.ready)
		atomic_store(&s->status, 0);
}

/* Stops the source for good after a refusal that retrying cannot cure:
 * no more reads, claims or acknowledgements. why is the server's answer
 * (or another explanation) for the log. */
static void
source_fatal(struct evfn_redis_source *s, int code, const char *why)
{
	if (s->fatal)
		return;
	s->fatal = code;
	update_status(s);
	evfn__rt_log(s->rt, EVFN_LOG_ERROR, "redis source %s: stopped: %s (%s)",
	             s->stream, evfn_err_name(code), why ? why : "");
	conn_refused(&s->reader, code, "source stopped");
	conn_refused(&s->cmd, code, "source stopped");
	event_del(s->claim_ev);
	event_del(s->refresh_ev);
	event_del(s->read_ev);
}

/* What an error reply to a command on the stream means for the source:
 * true when it stopped the source (a wrong type or a lost authentication,
 * which no retry cures). */
static bool
fatal_reply(struct evfn_redis_source *s, const redisReply *r)
{
	int code = reply_code(r);
	if (code != EVFN_EAUTH && code != EVFN_EWRONGTYPE)
		return false;
	source_fatal(s, code, r->str);
	return true;
}

/* Arms the read timer, which submits what waits and reads on: after ms,
 * or for ms 0 after a delay that starts at the reconnection base and
 * doubles with each failure in a row up to the reconnection cap. */
static void
retry_later(struct evfn_redis_source *s, int64_t ms)
{
	if (s->closed || s->fatal)
		return;
	if (ms <= 0) {
		ms = s->retry_ms;
		s->retry_ms = EVFN__MIN(s->retry_ms * 2, s->cfg.reconnect_cap_ms);
	}
	add_timer_ms(s->read_ev, ms);
}

/* --- outcomes, acknowledgements, dead letters --- */

static void
on_result(const evfn_result *res, void *arg)
{
	struct rec *r = arg;
	struct evfn_redis_source *s = r->src;
	if (s->closed) {
		/* The source is gone: the entry stays pending in Redis. */
		rec_free(r);
		source_unref(s);
		return;
	}
	int code = evfn_result_code(res);
	if (code == 0) {
		push_ack(s, r);
	} else if (r->lost || code == EVFN_ECANCELED) {
		/* Another consumer took it over and decides its end, or it
		 * was cancelled here: it stays pending, to be claimed. */
		rec_drop(s, r);
	} else if (code == EVFN_EHANDEDBACK) {
		/* A draining runtime gave it back: to another consumer. */
		push_release(s, r, evfn_result_attempts(res) > 0);
	} else {
		r->code = code;
		r->attempts = evfn_result_attempts(res);
		const char *err = evfn_result_error(res);
		r->error = evfn__strdup(err ? err : "");
		push_dead(s, r);
	}
	submit_waiting(s);
	maybe_read(s);
	source_unref(s);
}

struct leave_batch {
	struct evfn_redis_source *src;
	enum leave how;
	int n;
	struct rec *recs[];
};

static void
leave_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct leave_batch *b = priv;
	struct evfn_redis_source *s = b->src;
	redisReply *rep = reply;
	int code = reply_code(rep);
	bool keep = code == EVFN_ECONNREFUSED || code == EVFN_EAUTH ||
	            code == EVFN_EWRONGTYPE;
	for (int i = 0; i < b->n; i++) {
		struct rec *r = b->recs[i];
		if (keep) {
			/* Not done: sent again after reconnecting. */
			r->state = REC_LEAVING;
			r->next = s->leave_q[b->how];
			s->leave_q[b->how] = r;
			s->nleave[b->how]++;
		} else {
			/* Done; or refused because the group is gone (its
			 * entries went with it), which trying again cannot
			 * change. */
			rec_drop(s, r);
		}
	}
	enum leave how = b->how;
	/* Counted whether or not Redis still had them pending: an XACK
	 * sent again after its reply was lost finds nothing left to do. */
	if (!code && how == LEAVE_ACK)
		atomic_fetch_add(&s->acked, (uint64_t)b->n);
	evfn__free(b);
	if (code == EVFN_ECONNREFUSED)
		return;
	if (code && !fatal_reply(s, rep))
		evfn__rt_log(s->rt, EVFN_LOG_WARN, "redis source %s: %s: %s",
		             s->stream, how == LEAVE_ACK ? "XACK" : "releasing",
		             rep->str);
	if (!s->closed) {
		submit_waiting(s);
		maybe_read(s);
	}
}

/* Sends the records queued to leave as how, in batches. */
static void
flush_leaving(struct evfn_redis_source *s, enum leave how)
{
	char idle[24];
	snprintf(idle, sizeof(idle), "%lld",
	         (long long)s->cfg.claim_min_idle_ms);
	while (s->leave_q[how] && s->cmd.ready) {
		int n = (int)EVFN__MIN(s->nleave[how], (size_t)ACK_BATCH);
		struct leave_batch *b =
			evfn__malloc(sizeof(*b) + (size_t)n * sizeof(b->recs[0]));
		/* Delivery counts of released entries, as text. */
		char(*counts)[16] = how == LEAVE_RELEASE
		                            ? evfn__malloc((size_t)n * 16)
		                            : NULL;
		struct argv a = {0};
		bool sent = false;
		if (b && (how == LEAVE_ACK || counts)) {
			b->src = s;
			b->how = how;
			b->n = 0;
			const char *ack[] = {"XACK", s->stream, s->cfg.group};
			const char *release[] = {"EVAL", release_lua, "1",
			                         s->stream, s->cfg.group,
			                         s->consumer, idle};
			if (how == LEAVE_ACK)
				for (size_t i = 0; i < EVFN__ARRAY_SIZE(ack); i++)
					argv_str(&a, ack[i]);
			else
				for (size_t i = 0; i < EVFN__ARRAY_SIZE(release);
				     i++)
					argv_str(&a, release[i]);
			for (struct rec *r = s->leave_q[how]; r && b->n < n;
			     r = r->next) {
				argv_str(&a, r->id);
				if (counts) {
					snprintf(counts[b->n], 16, "%u",
					         r->deliveries);
					argv_str(&a, counts[b->n]);
				}
				b->recs[b->n++] = r;
			}
			sent = !a.oom &&
			       conn_send(&s->cmd, leave_cb, b, a.n, a.v, a.len);
		}
		argv_free(&a);
		evfn__free(counts);
		if (!sent) {
			evfn__free(b);
			return;
		}
		for (int i = 0; i < b->n; i++) {
			s->leave_q[how] = b->recs[i]->next;
			b->recs[i]->state = REC_LEFT;
		}
		s->nleave[how] -= (size_t)b->n;
	}
}

static void
dead_added_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct rec *r = priv;
	struct evfn_redis_source *s = r->src;
	int code = reply_code(reply);
	if (!code) {
		push_ack(s, r);
		return;
	}
	/* Not written: keep it, and write it again later. */
	r->state = REC_DEAD;
	r->next = s->dead_q;
	s->dead_q = r;
	if (code != EVFN_ECONNREFUSED)
		source_fatal(s, code, ((redisReply *)reply)->str);
}

/* The original entry is in: write the dead letter. */
static void
dead_range_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct rec *r = priv;
	struct evfn_redis_source *s = r->src;
	redisReply *rep = reply;
	int code = reply_code(rep);
	struct argv a = {0};
	char attempts[16], deliveries[16], failed_at[TIME_BUF];
	if (code)
		goto keep;
	snprintf(attempts, sizeof(attempts), "%u", r->attempts);
	snprintf(deliveries, sizeof(deliveries), "%u", r->deliveries);
	evfn__rfc3339_format(evfn__wall_ns(), failed_at);
	argv_str(&a, "XADD");
	argv_str(&a, s->dead_stream);
	argv_str(&a, "*");
	const char *meta[][2] = {
		{"original_id", r->id},     {"stream", s->stream},
		{"group", s->cfg.group},    {"consumer", s->consumer},
		{"reason", evfn_err_name(r->code)},
		{"error", r->error ? r->error : ""},
		{"attempts", attempts},     {"deliveries", deliveries},
		{"failed_at", failed_at},
	};
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(meta); i++) {
		argv_str(&a, meta[i][0]);
		argv_str(&a, meta[i][1]);
	}
	/* XRANGE: [[id, [f, v, ...]]], empty when the entry was trimmed. */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
	    rep->element[0]->type == REDIS_REPLY_ARRAY &&
	    rep->element[0]->elements == 2) {
		const redisReply *f = rep->element[0]->element[1];
		for (size_t i = 0; f->type == REDIS_REPLY_ARRAY &&
		                   i + 1 < f->elements; i += 2) {
			if (!is_string(f->element[i]) ||
			    !is_string(f->element[i + 1]))
				continue;
			argv_add(&a, f->element[i]->str, f->element[i]->len);
			argv_add(&a, f->element[i + 1]->str,
			         f->element[i + 1]->len);
		}
	}
	if (!a.oom && conn_send(&s->cmd, dead_added_cb, r, a.n, a.v, a.len)) {
		argv_free(&a);
		return;
	}
	argv_free(&a);
keep:
	r->state = REC_DEAD;
	r->next = s->dead_q;
	s->dead_q = r;
	if (code && code != EVFN_ECONNREFUSED)
		source_fatal(s, code, rep->str);
}

static void
flush_dead(struct evfn_redis_source *s)
{
	while (s->dead_q && s->cmd.ready) {
		struct rec *r = s->dead_q;
		const char *argv[] = {"XRANGE", s->stream, r->id, r->id};
		if (!conn_send_strs(&s->cmd, dead_range_cb, r, 4, argv))
			return;
		s->dead_q = r->next;
		r->state = REC_DEADING;
	}
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evfn_redis_source *s = arg;
	s->flush_pending = false;
	if (s->fatal)
		return;
	flush_dead(s);
	for (int how = 0; how < LEAVE_KINDS; how++)
		flush_leaving(s, (enum leave)how);
}

/* Acknowledgements wait for the end of the loop turn, to go out as one
 * XACK; a full batch goes at once. */
static void
schedule_flush(struct evfn_redis_source *s)
{
	if (s->closed || s->fatal)
		return;
	for (int how = 0; how < LEAVE_KINDS; how++)
		if (s->nleave[how] >= ACK_BATCH)
			flush_leaving(s, (enum leave)how);
	if (!s->flush_pending) {
		s->flush_pending = true;
		event_active(s->flush_ev, EV_TIMEOUT, 0);
	}
}

/* --- entries into events --- */

/* Builds the event of one entry (mapping in evfn/redis.h). */
static int
build_event(struct evfn_redis_source *s, const char *id,
            const redisReply *fields, unsigned deliveries, evfn_event **out)
{
	const redisReply *data = NULL, *type = NULL;
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *f = fields->element[i];
		const redisReply *v = fields->element[i + 1];
		if (!is_string(f) || !is_string(v))
			continue;
		if (field_is(f, s->cfg.data_field))
			data = v;
		else if (field_is(f, "type") && is_cstring(v))
			type = v;
	}
	evfn_event *ev;
	int rc = evfn_event_new(&ev, type ? type->str : s->stream,
	                        data ? data->str : NULL, data ? data->len : 0);
	if (rc && type)
		rc = evfn_event_new(&ev, s->stream, data ? data->str : NULL,
		                    data ? data->len : 0);
	if (rc)
		return rc;
	rc = evfn_event_set_id(ev, id);
	for (size_t i = 0; !rc && i + 1 < fields->elements; i += 2) {
		const redisReply *f = fields->element[i];
		const redisReply *v = fields->element[i + 1];
		if (!is_cstring(f) || !is_cstring(v) || !v->len ||
		    field_is(f, s->cfg.data_field))
			continue;
		int64_t t;
		/* Malformed attribute values are left out, not fatal. */
		if (field_is(f, "source"))
			(void)evfn_event_set_source(ev, v->str);
		else if (field_is(f, "subject"))
			(void)evfn_event_set_subject(ev, v->str);
		else if (field_is(f, "datacontenttype"))
			(void)evfn_event_set_datacontenttype(ev, v->str);
		else if (field_is(f, "time") && evfn__rfc3339_parse(v->str, &t) == 0)
			(void)evfn_event_set_time(ev, t);
		else if (!field_is(f, "type") && !field_is(f, "id") &&
		         !field_is(f, "specversion") && !field_is(f, "time"))
			(void)evfn_event_set_extension(ev, f->str, v->str);
	}
	if (!rc && deliveries > 1) {
		char buf[16];
		snprintf(buf, sizeof(buf), "%u", deliveries);
		rc = evfn_event_set_extension(ev, "deliverycount", buf);
	}
	if (rc == EVFN_ENOMEM) {
		evfn_event_unref(ev);
		return rc;
	}
	*out = ev;
	return 0;
}

/* The function refused the head of the waiting list with rc: it stays
 * held here and is offered again later, except at shutdown. */
static void
submit_refused(struct evfn_redis_source *s, int rc)
{
	if (rc == EVFN_ESHUTDOWN) {
		/* The runtime drains: what waits goes to another consumer,
		 * and nothing more is read. */
		s->stop_reading = true;
		while (s->wait_head) {
			struct rec *r = s->wait_head;
			s->wait_head = r->next;
			evfn_event_unref(r->ev);
			r->ev = NULL;
			push_release(s, r, false);
		}
		s->wait_tail = NULL;
		return;
	}
	if (rc == EVFN_EQUEUEFULL) {
		/* Room comes with the next result, or at the latest here. */
		retry_later(s, READ_RETRY_MS);
		return;
	}
	if (rc == EVFN_ENOFN)
		atomic_store(&s->status, EVFN_ENOFN);
	evfn__rt_log(s->rt, EVFN_LOG_WARN, "redis source %s: submit: %s",
	             s->stream, evfn_err_name(rc));
	retry_later(s, 0);
}

/* Submits the entries waiting for room, in order, until the function
 * refuses one: a read's entries (up to SUBMIT_BATCH at a time) under one
 * hold of the runtime lock. */
static void
submit_waiting(struct evfn_redis_source *s)
{
	bool any = false;
	/* A stopped source could not acknowledge what it submits. */
	while (s->wait_head && !s->closed && !s->fatal) {
		evfn_event *evs[SUBMIT_BATCH];
		void *recs[SUBMIT_BATCH];
		size_t n = 0;
		for (struct rec *r = s->wait_head; r && n < SUBMIT_BATCH;
		     r = r->next) {
			evs[n] = r->ev;
			recs[n++] = r;
		}
		/* A reference for each callback to come, given back for the
		 * entries not taken. */
		atomic_fetch_add(&s->refs, (int)n);
		size_t taken;
		int rc = evfn__rt_publish_front(s->rt, s->fn_name, evs, n,
		                                on_result, recs, &taken);
		atomic_fetch_sub(&s->refs, (int)(n - taken));
		for (size_t i = 0; i < taken; i++) {
			struct rec *r = s->wait_head;
			s->wait_head = r->next;
			evfn_event_unref(r->ev);
			r->ev = NULL;
			r->state = REC_RUNNING;
		}
		if (!s->wait_head)
			s->wait_tail = NULL;
		if (rc) {
			submit_refused(s, rc);
			return;
		}
		any = true;
	}
	if (any) {
		s->retry_ms = s->cfg.reconnect_base_ms;
		update_status(s);
	}
}

/* Takes one entry read or taken over: queues it for the function unless
 * this process holds it already. fields is its [f, v, ...] array, or
 * anything else for an entry no longer in the stream; deliveries its
 * Redis delivery count, this delivery included. Without memory the entry
 * is left: it stays pending here and is claimed again later. */
static void
take_entry(struct evfn_redis_source *s, const redisReply *id,
           const redisReply *fields, unsigned deliveries)
{
	if (!is_cstring(id) || id->len >= ID_MAX || rec_find(s, id->str))
		return;
	struct rec *r = rec_new(s, id->str, id->len);
	if (!r)
		return;
	r->deliveries = deliveries;
	if (!fields || fields->type != REDIS_REPLY_ARRAY) {
		/* Deleted from the stream while pending: nothing to run. */
		push_ack(s, r);
		return;
	}
	if ((int)deliveries > s->max_deliveries) {
		r->code = EVFN_EEXHAUSTED;
		r->attempts = deliveries - 1;
		char msg[96];
		snprintf(msg, sizeof(msg), "taken from a stopped consumer: "
		         "delivered %u times, at most %d allowed", deliveries,
		         s->max_deliveries);
		r->error = evfn__strdup(msg);
		push_dead(s, r);
		return;
	}
	if (build_event(s, id->str, fields, deliveries, &r->ev) != 0) {
		rec_drop(s, r);
		return;
	}
	r->state = REC_WAITING;
	if (s->wait_tail)
		s->wait_tail->next = r;
	else
		s->wait_head = r;
	s->wait_tail = r;
}

/* --- reading --- */

static void group_create(struct evfn_redis_source *s);

static void
read_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct evfn_redis_source *s = priv;
	redisReply *rep = reply;
	s->reading = false;
	int code = reply_code(rep);
	if (code == EVFN_ECONNREFUSED || s->closed || fatal_reply(s, rep))
		return;
	if (code == EVFN_ENOENT) {
		/* The group vanished (a server restarted without its data,
		 * or the key was deleted). */
		s->group_ok = false;
		group_create(s);
		return;
	}
	if (code && !strncmp(rep->str, "UNBLOCKED", 9)) {
		/* The key was deleted under the blocked read: what is there
		 * now (nothing, a new stream, another type) shows at once. */
		maybe_read(s);
		return;
	}
	if (code) {
		evfn__rt_log(s->rt, EVFN_LOG_WARN,
		             "redis source %s: XREADGROUP: %s", s->stream,
		             rep->str);
		retry_later(s, 0);
		return;
	}
	s->retry_ms = s->cfg.reconnect_base_ms;
	/* [[stream, [[id, [f, v, ...]], ...]]], or nil when the block timed
	 * out. */
	const redisReply *entries = NULL;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
	    rep->element[0]->type == REDIS_REPLY_ARRAY &&
	    rep->element[0]->elements == 2 &&
	    rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
		entries = rep->element[0]->element[1];
	for (size_t i = 0; entries && i < entries->elements; i++) {
		const redisReply *e = entries->element[i];
		if (e->type == REDIS_REPLY_ARRAY && e->elements == 2)
			take_entry(s, e->element[0], e->element[1], 1);
	}
	submit_waiting(s);
	maybe_read(s);
}

static void adopt_step(struct evfn_redis_source *s, int room);

/* Issues the next read (or step of adoption) if the group exists,
 * nothing is being read, nothing waits for room in the function, and
 * fewer than max_in_flight entries are held. */
static void
maybe_read(struct evfn_redis_source *s)
{
	if (s->closed || s->fatal || s->stop_reading || s->reading ||
	    !s->group_ok || !s->reader.ready || s->wait_head)
		return;
	int room = s->cfg.max_in_flight - (int)HASH_COUNT(s->recs);
	if (room <= 0)
		return;
	if (s->adopt_due) {
		adopt_step(s, room);
		return;
	}
	char count[16], block[24];
	snprintf(count, sizeof(count), "%d", EVFN__MIN(room, s->cfg.batch));
	snprintf(block, sizeof(block), "%lld", (long long)s->cfg.block_ms);
	const char *argv[] = {"XREADGROUP", "GROUP", s->cfg.group,
	                      s->consumer, "COUNT", count, "BLOCK", block,
	                      "STREAMS", s->stream, ">"};
	/* Not sent for want of a connection: reading resumes on connect. */
	if (conn_send_strs(&s->reader, read_cb, s, (int)EVFN__ARRAY_SIZE(argv),
	                   argv))
		s->reading = true;
}

static void
read_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evfn_redis_source *s = arg;
	submit_waiting(s);
	maybe_read(s);
}

static void
group_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct evfn_redis_source *s = priv;
	redisReply *rep = reply;
	int code = reply_code(rep);
	if (code == EVFN_ECONNREFUSED || s->closed)
		return;
	if (code && code != EVFN_EEXIST) {
		source_fatal(s, code, rep->str);
		return;
	}
	s->group_ok = true;
	maybe_read(s);
}

static void
group_create(struct evfn_redis_source *s)
{
	const char *argv[] = {"XGROUP", "CREATE", s->stream, s->cfg.group,
	                      s->cfg.from_start ? "0" : "$", "MKSTREAM"};
	(void)conn_send_strs(&s->reader, group_cb, s, 6, argv);
}

/* Looks for own pending entries not held here again, from the start. */
static void
adopt_restart(struct evfn_redis_source *s)
{
	s->adopt_due = true;
	s->adopt_gen++;
	strcpy(s->adopt_from, "-");
}

static void
reader_ready(void *owner)
{
	struct evfn_redis_source *s = owner;
	update_status(s);
	/* A read whose reply the lost connection took may have given this
	 * consumer entries: find them before reading on. */
	adopt_restart(s);
	s->group_ok = false;
	group_create(s);
}

static void
conn_down(void *owner, int code, const char *why)
{
	struct evfn_redis_source *s = owner;
	if (code != EVFN_ECONNREFUSED) {
		source_fatal(s, code, why);
		return;
	}
	if (!s->fatal)
		atomic_store(&s->status, code);
}

static void refresh_held(struct evfn_redis_source *s);

static void
cmd_ready(void *owner)
{
	struct evfn_redis_source *s = owner;
	update_status(s);
	s->cmd_up_ns = evfn__now_ns();
	/* First of all keep what this process holds, which may have looked
	 * idle while the connection was down; then look for takeovers whose
	 * replies were lost. */
	refresh_held(s);
	adopt_restart(s);
	schedule_flush(s);
	maybe_read(s);
}

/* --- takeovers: adoption and claims --- */

/* Arguments of take_lua in front of the ids. */
#define TAKE_HEAD 8

/* Starts the arguments of a takeover: room for TAKE_HEAD arguments that
 * send_take() fills in, then the ids. */
static void
take_args_begin(struct argv *a)
{
	for (int i = 0; i < TAKE_HEAD; i++)
		argv_add(a, "", 0);
}

/* Sends take_lua for the ids in a (see take_args_begin()) with cb; false
 * if it was not sent. */
static bool
send_take(struct evfn_redis_source *s, struct argv *a, int64_t min_idle,
          unsigned inc, redisCallbackFn *cb)
{
	char idle[24], incs[16];
	snprintf(idle, sizeof(idle), "%lld", (long long)min_idle);
	snprintf(incs, sizeof(incs), "%u", inc);
	const char *head[TAKE_HEAD] = {"EVAL", take_lua, "1", s->stream,
	                               s->cfg.group, s->consumer, idle, incs};
	if (a->oom)
		return false;
	for (int i = 0; i < TAKE_HEAD; i++) {
		a->v[i] = head[i];
		a->len[i] = strlen(head[i]);
	}
	return conn_send(&s->cmd, cb, s, a->n, a->v, a->len);
}

/* Handles a reply that should be an array (of a script, or XPENDING)
 * but is an error or missing, logging what failed; true in that case. */
static bool
script_failed(struct evfn_redis_source *s, const redisReply *rep,
              const char *what)
{
	int code = reply_code(rep);
	if (!code && rep->type == REDIS_REPLY_ARRAY)
		return false;
	/* No connection: tried again after reconnecting. No group: the
	 * reader recreates it, and nothing is pending any more. */
	if (code != EVFN_ECONNREFUSED && code != EVFN_ENOENT &&
	    !s->closed && !fatal_reply(s, rep))
		evfn__rt_log(s->rt, EVFN_LOG_WARN, "redis source %s: %s: %s",
		             s->stream, what,
		             rep->str ? rep->str : "unexpected reply");
	return true;
}

/* The reply of take_lua (what: the takeover, for the log): runs what was
 * taken, and reads on. */
static void
taken(struct evfn_redis_source *s, const redisReply *rep, const char *what)
{
	if (s->closed || script_failed(s, rep, what))
		return;
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *e = rep->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 3 ||
		    e->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		take_entry(s, e->element[0], e->element[2],
		           (unsigned)e->element[1]->integer);
	}
	submit_waiting(s);
	maybe_read(s);
}

static void
adopt_taken_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct evfn_redis_source *s = priv;
	s->reading = false;
	taken(s, reply, "taking own entries");
}

struct adopt_call {
	struct evfn_redis_source *src;
	unsigned gen;
	int room;
};

/* A page of this consumer's pending list: [[id, consumer, idle,
 * deliveries], ...]. Entries not held here are taken, as many as there
 * is room for. */
static void
adopt_listed_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct adopt_call call = *(struct adopt_call *)priv;
	evfn__free(priv);
	struct evfn_redis_source *s = call.src;
	redisReply *rep = reply;
	s->reading = false;
	if (s->closed || script_failed(s, rep, "XPENDING"))
		return;
	if (call.gen != s->adopt_gen || !s->adopt_due) {
		/* Started over meanwhile. */
		maybe_read(s);
		return;
	}
	/* Entries an earlier process of this name left count a delivery
	 * when taken over; later ones were read for this very process. */
	unsigned inc = s->adopted_once ? 0 : 1;
	struct argv ids = {0};
	take_args_begin(&ids);
	size_t i;
	for (i = 0; i < rep->elements && ids.n - TAKE_HEAD < call.room; i++) {
		const redisReply *p = rep->element[i];
		if (p->type != REDIS_REPLY_ARRAY || p->elements != 4 ||
		    !is_cstring(p->element[0]) || p->element[0]->len >= ID_MAX)
			continue;
		snprintf(s->adopt_from, sizeof(s->adopt_from), "(%s",
		         p->element[0]->str);
		if (!rec_find(s, p->element[0]->str))
			argv_str(&ids, p->element[0]->str);
	}
	if (i == rep->elements && rep->elements < ADOPT_PAGE) {
		s->adopt_due = false;
		s->adopted_once = true;
	}
	if (ids.n > TAKE_HEAD && send_take(s, &ids, -1, inc, adopt_taken_cb))
		s->reading = true;
	argv_free(&ids);
	maybe_read(s);
}

/* Lists the next page of this consumer's pending entries. */
static void
adopt_step(struct evfn_redis_source *s, int room)
{
	if (!s->cmd.ready)
		return;
	struct adopt_call *call = evfn__malloc(sizeof(*call));
	if (!call) {
		retry_later(s, READ_RETRY_MS);
		return;
	}
	*call = (struct adopt_call){s, s->adopt_gen, room};
	char count[16];
	snprintf(count, sizeof(count), "%d", ADOPT_PAGE);
	const char *argv[] = {"XPENDING", s->stream, s->cfg.group,
	                      s->adopt_from, "+", count, s->consumer};
	if (conn_send_strs(&s->cmd, adopt_listed_cb, call, 7, argv))
		s->reading = true;
	else
		evfn__free(call);
}

static void
claimed_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct evfn_redis_source *s = priv;
	s->claiming = false;
	taken(s, reply, "claiming");
}

/* [[id, consumer, idle, deliveries], ...]: entries idle for the claim
 * idle time. Those not held here are taken over, as many as there is
 * room for; the script checks again that each is still that idle. */
static void
pending_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct evfn_redis_source *s = priv;
	redisReply *rep = reply;
	s->claiming = false;
	if (s->closed || script_failed(s, rep, "XPENDING"))
		return;
	int room = s->cfg.max_in_flight - (int)HASH_COUNT(s->recs);
	struct argv ids = {0};
	take_args_begin(&ids);
	for (size_t i = 0; i < rep->elements && ids.n - TAKE_HEAD < room; i++) {
		const redisReply *p = rep->element[i];
		if (p->type == REDIS_REPLY_ARRAY && p->elements == 4 &&
		    is_cstring(p->element[0]) && !rec_find(s, p->element[0]->str))
			argv_str(&ids, p->element[0]->str);
	}
	if (ids.n > TAKE_HEAD &&
	    send_take(s, &ids, s->cfg.claim_min_idle_ms, 1, claimed_cb))
		s->claiming = true;
	argv_free(&ids);
}

static void
claim_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evfn_redis_source *s = arg;
	if (s->closed || s->fatal || s->stop_reading || s->claiming ||
	    !s->cmd.ready || s->wait_head ||
	    (int)HASH_COUNT(s->recs) >= s->cfg.max_in_flight)
		return;
	/* After the connection came back, the other consumers get a claim
	 * idle time to come back too and refresh what they hold: a server
	 * that restarted counts its downtime as idle time. */
	if (evfn__now_ns() - s->cmd_up_ns < s->cfg.claim_min_idle_ms * 1000000)
		return;
	char min_idle[24], count[16];
	snprintf(min_idle, sizeof(min_idle), "%lld",
	         (long long)s->cfg.claim_min_idle_ms);
	snprintf(count, sizeof(count), "%d", s->cfg.batch);
	const char *argv[] = {"XPENDING", s->stream, s->cfg.group, "IDLE",
	                      min_idle, "-", "+", count};
	if (conn_send_strs(&s->cmd, pending_cb, s, 8, argv))
		s->claiming = true;
}

/* --- refreshing what this process holds --- */

/* A record another consumer took over while this process held it (this
 * process stalled, or could not reach Redis, for about the claim idle
 * time): one waiting for room is let go; one running ends here without
 * an acknowledgement unless it succeeds. */
static void
rec_lost(struct evfn_redis_source *s, struct rec *r)
{
	if (r->lost || (r->state != REC_WAITING && r->state != REC_RUNNING))
		return;
	r->lost = true;
	evfn__rt_log(s->rt, EVFN_LOG_WARN, "redis source %s: entry %s was "
	             "claimed by another consumer while held here", s->stream,
	             r->id);
	if (r->state != REC_WAITING)
		return;
	struct rec **pp = &s->wait_head, *prev = NULL;
	while (*pp != r) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = r->next;
	if (s->wait_tail == r)
		s->wait_tail = prev;
	rec_drop(s, r);
}

static void
refreshed_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct evfn_redis_source *s = priv;
	redisReply *rep = reply;
	s->refreshing = false;
	if (s->closed || script_failed(s, rep, "refreshing held entries"))
		return;
	for (size_t i = 0; i < rep->elements; i++) {
		struct rec *r;
		if (is_cstring(rep->element[i]) &&
		    (r = rec_find(s, rep->element[i]->str)))
			rec_lost(s, r);
	}
	maybe_read(s);
}

/* Resets the idle time of every entry this process holds, in batches;
 * a refresh still in flight is left to finish first. */
static void
refresh_held(struct evfn_redis_source *s)
{
	if (s->closed || s->fatal || s->refreshing || !s->cmd.ready ||
	    s->cfg.claim_min_idle_ms <= 0)
		return;
	struct rec *r = s->recs;
	while (r) {
		struct argv a = {0};
		const char *head[] = {"EVAL", refresh_lua, "1", s->stream,
		                      s->cfg.group, s->consumer};
		for (int i = 0; i < 6; i++)
			argv_str(&a, head[i]);
		for (; r && a.n - 6 < ACK_BATCH; r = r->hh.next)
			argv_str(&a, r->id);
		bool sent = !a.oom &&
		            conn_send(&s->cmd, refreshed_cb, s, a.n, a.v, a.len);
		argv_free(&a);
		if (!sent)
			return;
		s->refreshing = true;
	}
}

static void
refresh_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	refresh_held(arg);
}

/* --- lifecycle --- */

/* Starts a persistent timer firing every ms (at least 1). */
static void
add_periodic(struct event *ev, int64_t ms)
{
	add_timer_ms(ev, EVFN__MAX(ms, 1));
}

static void
source_start(void *arg)
{
	struct evfn_redis_source *s = arg;
	conn_connect(&s->reader);
	conn_connect(&s->cmd);
	if (s->cfg.claim_min_idle_ms > 0) {
		add_periodic(s->claim_ev, s->cfg.claim_interval_ms);
		/* Three refreshes per idle time: a held entry never looks
		 * idle for more than a third of it, plus a round trip. */
		add_periodic(s->refresh_ev, s->cfg.claim_min_idle_ms / 3);
	}
}

static void
source_close(void *arg)
{
	struct evfn_redis_source *s = arg;
	s->closed = true;
	/* Pending callbacks run now, with NULL replies: records go back to
	 * their queues and are dropped below, still pending in Redis. */
	conn_close(&s->reader);
	conn_close(&s->cmd);
	conn_destroy(&s->reader);
	conn_destroy(&s->cmd);
	event_free(s->flush_ev);
	event_free(s->claim_ev);
	event_free(s->refresh_ev);
	event_free(s->read_ev);
	struct rec *r, *tmp;
	HASH_ITER(hh, s->recs, r, tmp) {
		HASH_DEL(s->recs, r);
		/* A running record now belongs to its result callback. */
		if (r->state != REC_RUNNING)
			rec_free(r); /* NOLINT(clang-analyzer-unix.Malloc) */
	}
	atomic_store(&s->held, 0);
}


static char *
default_consumer(void)
{
	char host[256] = "host", buf[300];
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(buf, sizeof(buf), "%.200s-%ld", host, (long)getpid());
	return evfn__strdup(buf);
}

int
evfn_redis_source_new(evfn_redis_source **out, evfn_rt *rt,
                      const char *stream, const char *fn_name,
                      const evfn_redis_options *opts)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	if (!rt)
		return EVFN_EINVAL;
	int rc = evfn__check_name(stream);
	if (!rc)
		rc = evfn__check_name(fn_name);
	if (rc)
		return rc;
	int attempts = evfn__rt_function_attempts(rt, fn_name);
	if (!attempts)
		return EVFN_ENOFN;
	struct evfn_redis_source *s = evfn__calloc(1, sizeof(*s));
	if (!s)
		return EVFN_ENOMEM;
	atomic_init(&s->refs, 1);
	atomic_init(&s->status, 0);
	atomic_init(&s->acked, 0);
	atomic_init(&s->held, 0);
	s->rt = rt;
	s->base = evfn_rt_event_base(rt);
	rc = options_copy(&s->cfg, opts);
	if (rc) {
		evfn__free(s);
		return rc;
	}
	s->max_deliveries = s->cfg.max_deliveries ? s->cfg.max_deliveries
	                                          : attempts;
	s->retry_ms = s->cfg.reconnect_base_ms;
	s->adopt_due = true;
	strcpy(s->adopt_from, "-");
	s->stream = evfn__strdup(stream);
	s->fn_name = evfn__strdup(fn_name);
	s->consumer = s->cfg.consumer ? evfn__strdup(s->cfg.consumer)
	                              : default_consumer();
	if (s->cfg.dead_stream) {
		s->dead_stream = evfn__strdup(s->cfg.dead_stream);
	} else if ((s->dead_stream = evfn__malloc(strlen(stream) + 6))) {
		strcpy(s->dead_stream, stream);
		strcat(s->dead_stream, ":dead");
	}
	s->flush_ev = event_new(s->base, -1, 0, flush_cb, s);
	s->claim_ev = event_new(s->base, -1, EV_PERSIST, claim_timer_cb, s);
	s->refresh_ev = event_new(s->base, -1, EV_PERSIST, refresh_timer_cb, s);
	s->read_ev = evtimer_new(s->base, read_timer_cb, s);
	int rc1 = conn_init(&s->reader, rt, &s->cfg, "source reader",
	                    reader_ready, conn_down, s);
	int rc2 = conn_init(&s->cmd, rt, &s->cfg, "source commands", cmd_ready,
	                    conn_down, s);
	if (!s->stream || !s->fn_name || !s->consumer || !s->dead_stream ||
	    !s->flush_ev || !s->claim_ev || !s->refresh_ev || !s->read_ev ||
	    rc1 || rc2 || evfn__rt_run_on_loop(rt, source_start, s) != 0) {
		conn_destroy(&s->reader);
		conn_destroy(&s->cmd);
		struct event *evs[] = {s->flush_ev, s->claim_ev, s->refresh_ev,
		                       s->read_ev};
		for (size_t i = 0; i < EVFN__ARRAY_SIZE(evs); i++)
			if (evs[i])
				event_free(evs[i]);
		source_unref(s);
		return EVFN_ENOMEM;
	}
	evfn__rt_attach(rt);
	*out = s;
	return 0;
}

int
evfn_redis_source_status(const evfn_redis_source *src)
{
	if (!src)
		return EVFN_EINVAL;
	return atomic_load(&((evfn_redis_source *)src)->status);
}

uint64_t
evfn_redis_source_acked(const evfn_redis_source *src)
{
	if (!src)
		return 0;
	return atomic_load(&((evfn_redis_source *)src)->acked);
}

size_t
evfn_redis_source_held(const evfn_redis_source *src)
{
	if (!src)
		return 0;
	return atomic_load(&((evfn_redis_source *)src)->held);
}

void
evfn_redis_source_free(evfn_redis_source *src)
{
	if (!src)
		return;
	/* Without memory for the marshalling event there is no safe way to
	 * close: leak rather than race the loop. */
	evfn_rt *rt = src->rt;
	if (evfn__rt_run_on_loop(rt, source_close, src) != 0)
		return;
	source_unref(src);
	evfn__rt_detach(rt);
}

/* ---- sink --------------------------------------------------------------- */

/* One append: its XADD arguments in one allocation, and the attempt it
 * completes when it comes from a sink function. Loop thread only once
 * out of the inbox. */
struct sink_item {
	struct sink_item *prev, *next;
	bool sent;
	evfn_ctx *ctx;
	struct evfn_redis_sink *sink;
	int argc;
	const char **argv;
	size_t *lens;
};

/* A sink function's userdata: the sink, until it is freed. Freed by the
 * runtime (userdata destructor). */
struct sink_link {
	struct sink_link *next;
	struct evfn_redis_sink *sink;
};

struct evfn_redis_sink {
	evfn_rt *rt;
	struct event_base *base;
	evfn_redis_options cfg;
	char *stream;
	struct conn conn;
	atomic_int status;
	atomic_size_t pending;

	pthread_mutex_t lock;   /* the inbox and closing */
	struct sink_item *inbox_head, *inbox_tail;
	bool closing;
	struct event *inbox_ev;

	/* Loop thread only. */
	struct sink_item *head, *tail;
	struct sink_link *links;
};

/* Builds the XADD of ev into one allocation. */
static struct sink_item *
item_new(struct evfn_redis_sink *k, const evfn_event *ev)
{
	char maxlen[24], timebuf[TIME_BUF];
	struct argv a = {0};
	argv_str(&a, "XADD");
	argv_str(&a, k->stream);
	if (k->cfg.maxlen) {
		snprintf(maxlen, sizeof(maxlen), "%lld",
		         (long long)k->cfg.maxlen);
		argv_str(&a, "MAXLEN");
		argv_str(&a, "~");
		argv_str(&a, maxlen);
	}
	argv_str(&a, "*");
	argv_event(&a, ev, k->cfg.data_field, timebuf);
	if (a.oom) {
		argv_free(&a);
		return NULL;
	}
	size_t bytes = 0;
	for (int i = 0; i < a.n; i++)
		bytes += a.len[i];
	size_t n = (size_t)a.n;
	struct sink_item *it = evfn__malloc(
		sizeof(*it) + n * (sizeof(char *) + sizeof(size_t)) + bytes);
	if (!it) {
		argv_free(&a);
		return NULL;
	}
	memset(it, 0, sizeof(*it));
	it->sink = k;
	it->argc = a.n;
	it->argv = (const char **)(void *)(it + 1);
	it->lens = (size_t *)(void *)(it->argv + n);
	char *p = (char *)(it->lens + n);
	for (size_t i = 0; i < n; i++) {
		memcpy(p, a.v[i], a.len[i]);
		it->argv[i] = p;
		it->lens[i] = a.len[i];
		p += a.len[i];
	}
	argv_free(&a);
	return it;
}

static void
item_append(struct evfn_redis_sink *k, struct sink_item *it)
{
	it->next = NULL;
	it->prev = k->tail;
	if (k->tail)
		k->tail->next = it;
	else
		k->head = it;
	k->tail = it;
}

static void
item_remove(struct evfn_redis_sink *k, struct sink_item *it)
{
	if (it->prev)
		it->prev->next = it->next;
	else
		k->head = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		k->tail = it->prev;
	atomic_fetch_sub(&k->pending, 1);
	evfn__free(it);
}

static void sink_flush(struct evfn_redis_sink *k);

static void
xadd_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct sink_item *it = priv;
	struct evfn_redis_sink *k = it->sink;
	redisReply *rep = reply;
	int code = reply_code(rep);
	if (code == EVFN_ECONNREFUSED) {
		/* Written again, in order, after reconnecting. */
		it->sent = false;
		return;
	}
	if (code) {
		evfn__rt_log(k->rt, EVFN_LOG_ERROR, "redis sink %s: XADD: %s",
		             k->stream, rep->str);
		atomic_store(&k->status, code);
	}
	/* Removed first: whoever waits for the attempt then sees the sink
	 * with nothing pending. */
	evfn_ctx *ctx = it->ctx;
	item_remove(k, it);
	if (ctx) {
		if (code)
			evfn_ctx_set_error(ctx, rep->str);
		evfn_ctx_complete(ctx, code ? EVFN_FAIL : EVFN_OK);
	}
}

static void
sink_flush(struct evfn_redis_sink *k)
{
	for (struct sink_item *it = k->head; it; it = it->next) {
		if (it->sent)
			continue;
		if (!conn_send(&k->conn, xadd_cb, it, it->argc, it->argv,
		               it->lens))
			return;
		it->sent = true;
	}
}

static void
inbox_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evfn_redis_sink *k = arg;
	pthread_mutex_lock(&k->lock);
	struct sink_item *it = k->inbox_head;
	k->inbox_head = k->inbox_tail = NULL;
	pthread_mutex_unlock(&k->lock);
	while (it) {
		struct sink_item *next = it->next;
		item_append(k, it);
		it = next;
	}
	sink_flush(k);
}

static void
sink_ready(void *owner)
{
	struct evfn_redis_sink *k = owner;
	atomic_store(&k->status, 0);
	sink_flush(k);
}

static void
sink_down(void *owner, int code, const char *why)
{
	(void)why; /* conn_refused() logged it */
	struct evfn_redis_sink *k = owner;
	atomic_store(&k->status, code);
}

static void
sink_start(void *arg)
{
	conn_connect(&((struct evfn_redis_sink *)arg)->conn);
}

static void
sink_destroy(struct evfn_redis_sink *k)
{
	conn_destroy(&k->conn);
	if (k->inbox_ev)
		event_free(k->inbox_ev);
	options_clear(&k->cfg);
	evfn__free(k->stream);
	pthread_mutex_destroy(&k->lock);
	evfn__free(k);
}

int
evfn_redis_sink_new(evfn_redis_sink **out, evfn_rt *rt, const char *stream,
                    const evfn_redis_options *opts)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	if (!rt)
		return EVFN_EINVAL;
	int rc = evfn__check_name(stream);
	if (rc)
		return rc;
	struct evfn_redis_sink *k = evfn__calloc(1, sizeof(*k));
	if (!k)
		return EVFN_ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	atomic_init(&k->status, 0);
	atomic_init(&k->pending, 0);
	k->rt = rt;
	k->base = evfn_rt_event_base(rt);
	rc = options_copy(&k->cfg, opts);
	if (rc) {
		pthread_mutex_destroy(&k->lock);
		evfn__free(k);
		return rc;
	}
	k->stream = evfn__strdup(stream);
	k->inbox_ev = event_new(k->base, -1, 0, inbox_cb, k);
	rc = conn_init(&k->conn, rt, &k->cfg, "sink", sink_ready, sink_down, k);
	if (!k->stream || !k->inbox_ev || rc ||
	    evfn__rt_run_on_loop(rt, sink_start, k) != 0) {
		sink_destroy(k);
		return EVFN_ENOMEM;
	}
	evfn__rt_attach(rt);
	*out = k;
	return 0;
}

int
evfn_redis_xadd(evfn_redis_sink *sink, const evfn_event *ev)
{
	if (!sink || !ev)
		return EVFN_EINVAL;
	struct sink_item *it = item_new(sink, ev);
	if (!it)
		return EVFN_ENOMEM;
	pthread_mutex_lock(&sink->lock);
	int rc = 0;
	if (sink->closing)
		rc = EVFN_ECANCELED;
	else if (atomic_load(&sink->pending) >= SINK_QUEUE_MAX)
		rc = EVFN_EQUEUEFULL;
	if (rc) {
		pthread_mutex_unlock(&sink->lock);
		evfn__free(it);
		return rc;
	}
	atomic_fetch_add(&sink->pending, 1);
	it->next = NULL;
	if (sink->inbox_tail)
		sink->inbox_tail->next = it;
	else
		sink->inbox_head = it;
	sink->inbox_tail = it;
	/* Under the lock: the sink's free cannot release the event between
	 * the closing check and this. */
	event_active(sink->inbox_ev, EV_TIMEOUT, 0);
	pthread_mutex_unlock(&sink->lock);
	return 0;
}

static int
sink_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct sink_link *l = userdata;
	struct evfn_redis_sink *k = l->sink;
	if (!k) {
		evfn_ctx_set_error(ctx, "redis sink freed");
		return EVFN_FAIL;
	}
	struct sink_item *it = item_new(k, ev);
	if (!it)
		return EVFN_RETRY;
	it->ctx = ctx;
	atomic_fetch_add(&k->pending, 1);
	item_append(k, it);
	sink_flush(k);
	return EVFN_PENDING;
}

/* An attempt gave up (deadline, cancellation): forget its append if it
 * was not sent yet, and let the function retry. */
static void
sink_cancel(evfn_ctx *ctx, void *userdata)
{
	struct sink_link *l = userdata;
	struct evfn_redis_sink *k = l->sink;
	if (!k)
		return;
	for (struct sink_item *it = k->head; it; it = it->next) {
		if (it->ctx != ctx)
			continue;
		it->ctx = NULL;
		if (!it->sent)
			item_remove(k, it);
		evfn_ctx_set_error(ctx, "redis sink: append not confirmed in "
		                   "time");
		evfn_ctx_complete(ctx, EVFN_RETRY);
		return;
	}
}

static void
sink_link_free(void *userdata)
{
	evfn__free(userdata);
}

struct sink_register_call {
	struct evfn_redis_sink *sink;
	struct sink_link *link;
};

static void
sink_link_add(void *arg)
{
	struct sink_register_call *c = arg;
	c->link->next = c->sink->links;
	c->sink->links = c->link;
}

int
evfn_redis_sink_register(evfn_redis_sink *sink, const char *fn_name,
                         const evfn_fn_options *opts)
{
	if (!sink)
		return EVFN_EINVAL;
	evfn_fn_options *fo = evfn__malloc(sizeof(*fo));
	struct sink_link *l = evfn__calloc(1, sizeof(*l));
	if (!fo || !l) {
		evfn__free(fo);
		evfn__free(l);
		return EVFN_ENOMEM;
	}
	if (opts)
		*fo = *opts;
	else
		evfn__fn_options_defaults(fo);
	fo->executor = EVFN_EXECUTOR_LOOP;
	fo->cancel_hook = sink_cancel;
	fo->userdata_free = sink_link_free;
	l->sink = sink;
	/* Linked on the loop before registering, so that the sink's free
	 * finds every link a handler may read. */
	struct sink_register_call c = {sink, l};
	int rc = evfn__rt_run_on_loop(sink->rt, sink_link_add, &c);
	if (!rc)
		rc = evfn_register(sink->rt, fn_name, sink_handler, l, fo, NULL);
	evfn__free(fo);
	if (rc)
		l->sink = NULL; /* stays linked, freed with the sink's list */
	return rc;
}

int
evfn_redis_sink_status(const evfn_redis_sink *sink)
{
	if (!sink)
		return EVFN_EINVAL;
	return atomic_load(&((evfn_redis_sink *)sink)->status);
}

size_t
evfn_redis_sink_pending(const evfn_redis_sink *sink)
{
	if (!sink)
		return 0;
	return atomic_load(&((evfn_redis_sink *)sink)->pending);
}

static void
sink_close(void *arg)
{
	struct evfn_redis_sink *k = arg;
	pthread_mutex_lock(&k->lock);
	k->closing = true;
	struct sink_item *inbox = k->inbox_head;
	k->inbox_head = k->inbox_tail = NULL;
	pthread_mutex_unlock(&k->lock);
	while (inbox) {
		struct sink_item *next = inbox->next;
		item_append(k, inbox);
		inbox = next;
	}
	/* Unsent callbacks run now with NULL replies. */
	conn_close(&k->conn);
	size_t dropped = 0;
	while (k->head) {
		struct sink_item *it = k->head;
		if (it->ctx) {
			evfn_ctx_set_error(it->ctx, "redis sink freed");
			evfn_ctx_complete(it->ctx, EVFN_RETRY);
		} else {
			dropped++;
		}
		item_remove(k, it);
	}
	if (dropped)
		evfn__rt_log(k->rt, EVFN_LOG_WARN,
		             "redis sink %s: freed with %zu appends unwritten",
		             k->stream, dropped);
	for (struct sink_link *l = k->links; l;) {
		struct sink_link *next = l->next;
		if (l->sink)
			l->sink = NULL;
		else
			evfn__free(l); /* its registration failed */
		l = next;
	}
	k->links = NULL;
}

void
evfn_redis_sink_free(evfn_redis_sink *sink)
{
	if (!sink)
		return;
	evfn_rt *rt = sink->rt;
	if (evfn__rt_run_on_loop(rt, sink_close, sink) != 0)
		return;
	sink_destroy(sink);
	evfn__rt_detach(rt);
}
