/* SPDX-License-Identifier: MIT */
/*
 * The load generator: four threads in the demo's own process play the
 * outside world over real interfaces. One is Stripe, posting signed
 * webhooks (a few with a wrong signature); one is a user uploading
 * images into the watched directory; one asks for reports and polls for
 * them; one calls the flaky function directly. The HTTP client is
 * libevent's, on an event_base of the thread's own.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "demo.h"

/* Target rates, per second. */
#define PAYMENT_RATE 200
#define UPLOAD_RATE 10
#define FLAKY_RATE 50
#define BAD_SIGNATURE_EVERY 40 /* one payment in 40 is forged */
#define IMAGE_W 640
#define IMAGE_H 480

struct demo_load {
	struct demo *d;
	atomic_bool stop;
	pthread_t threads[4];
	int started;

	atomic_uint_fast64_t payments_acked, payments_rejected,
		payments_failed;
	atomic_uint_fast64_t uploads;
	atomic_uint_fast64_t reports_done, reports_lost, report_ms;
	atomic_uint_fast64_t flaky_sent, flaky_refused;
};

/* ---- pacing ---------------------------------------------------------- */

struct pacer {
	struct timespec next;
	long interval_ns;
};

static void
pacer_init(struct pacer *p, int per_second)
{
	clock_gettime(CLOCK_MONOTONIC, &p->next);
	p->interval_ns = 1000000000L / per_second;
}

/* Sleeps until the next slot. A thread that fell behind starts afresh
 * rather than bursting to catch up. */
static void
pacer_wait(struct pacer *p)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	p->next.tv_nsec += p->interval_ns;
	while (p->next.tv_nsec >= 1000000000L) {
		p->next.tv_nsec -= 1000000000L;
		p->next.tv_sec++;
	}
	if (now.tv_sec > p->next.tv_sec + 1)
		p->next = now;
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &p->next, NULL);
}

/* ---- a small blocking HTTP client on libevent -------------------------- */

struct client {
	struct event_base *base;
	struct evhttp_connection *conn;
	int status; /* 0 when the request failed without an answer */
	char body[512];
};

static int
client_open(struct client *c, int port)
{
	c->base = event_base_new();
	c->conn = c->base ? evhttp_connection_base_new(c->base, NULL,
	                                               "127.0.0.1",
	                                               (uint16_t)port)
	                  : NULL;
	if (c->conn)
		evhttp_connection_set_timeout(c->conn, 10);
	return c->conn ? 0 : -1;
}

static void
client_close(struct client *c)
{
	if (c->conn)
		evhttp_connection_free(c->conn);
	if (c->base)
		event_base_free(c->base);
}

static void
on_response(struct evhttp_request *req, void *arg)
{
	struct client *c = arg;
	int n = 0;
	c->status = req ? evhttp_request_get_response_code(req) : 0;
	if (req)
		n = evbuffer_remove(evhttp_request_get_input_buffer(req),
		                    c->body, sizeof(c->body) - 1);
	c->body[n > 0 ? n : 0] = '\0';
	event_base_loopbreak(c->base);
}

/* POSTs body to path and waits for the answer: the status, or 0. */
static int
client_post(struct client *c, const char *path, const char *body,
            const char *stripe_signature)
{
	struct evhttp_request *req = evhttp_request_new(on_response, c);
	if (!req)
		return 0;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", "127.0.0.1");
	evhttp_add_header(h, "Content-Type", "application/json");
	if (stripe_signature)
		evhttp_add_header(h, "Stripe-Signature", stripe_signature);
	evbuffer_add(evhttp_request_get_output_buffer(req), body,
	             strlen(body));
	c->status = 0;
	c->body[0] = '\0';
	/* libevent owns req from here on, and frees it after on_response. */
	if (evhttp_make_request(c->conn, req, EVHTTP_REQ_POST, path) != 0)
		return 0;
	event_base_dispatch(c->base);
	return c->status;
}

/* ---- Stripe ------------------------------------------------------------ */

/* Stripe's scheme: "t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">". */
static void
stripe_sign(const char *secret, const char *body, char *out, size_t size)
{
	long long t = (long long)time(NULL);
	size_t len = strlen(body) + 32;
	char *msg = malloc(len);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	if (msg) {
		int n = snprintf(msg, len, "%lld.%s", t, body);
		HMAC(EVP_sha256(), secret, (int)strlen(secret),
		     (const unsigned char *)msg, (size_t)n, mac, &maclen);
		free(msg);
	}
	int n = snprintf(out, size, "t=%lld,v1=", t);
	for (unsigned i = 0; i < maclen && (size_t)n + 3 <= size; i++)
		n += snprintf(out + n, size - (size_t)n, "%02x", mac[i]);
}

static void *
play_stripe(void *arg)
{
	struct demo_load *l = arg;
	struct client c = {0};
	if (client_open(&c, l->d->port) != 0)
		return NULL;
	struct pacer p;
	pacer_init(&p, PAYMENT_RATE);
	for (unsigned n = 1; !atomic_load(&l->stop); n++) {
		char body[256], sig[128];
		snprintf(body, sizeof(body),
		         "{\"id\":\"evt_%06u\",\"type\":"
		         "\"payment_intent.succeeded\",\"data\":{\"object\":"
		         "{\"amount\":%u,\"currency\":\"eur\"}}}",
		         l->d->id_base + n, 500 + n * 37 % 20000);
		bool forged = n % BAD_SIGNATURE_EVERY == 0;
		stripe_sign(forged ? "whsec_guessed" : DEMO_STRIPE_SECRET,
		            body, sig, sizeof(sig));
		int status = client_post(&c, "/webhooks/stripe", body, sig);
		if (status == 200)
			atomic_fetch_add(&l->payments_acked, 1);
		else if (status == 401 && forged)
			atomic_fetch_add(&l->payments_rejected, 1);
		else
			atomic_fetch_add(&l->payments_failed, 1);
		pacer_wait(&p);
	}
	client_close(&c);
	return NULL;
}

/* ---- uploads ------------------------------------------------------------ */

static void *
play_uploader(void *arg)
{
	struct demo_load *l = arg;
	const struct demo *d = l->d;
	char head[32];
	int hn = snprintf(head, sizeof(head), "P5\n%d %d\n255\n", IMAGE_W,
	                  IMAGE_H);
	size_t len = (size_t)hn + IMAGE_W * IMAGE_H;
	unsigned char *img = malloc(len);
	if (!img)
		return NULL;
	memcpy(img, head, (size_t)hn);
	struct pacer p;
	pacer_init(&p, UPLOAD_RATE);
	for (unsigned n = 1; !atomic_load(&l->stop); n++) {
		/* A moving diagonal pattern: every image is different. */
		unsigned char *px = img + hn;
		for (unsigned y = 0; y < IMAGE_H; y++)
			for (unsigned x = 0; x < IMAGE_W; x++)
				*px++ = (unsigned char)((x + y + n * 8) ^
				                        (x * y >> 6));
		/* Written elsewhere, then renamed in: the watch sees whole
		 * files only. */
		char tmp[160], path[160];
		snprintf(tmp, sizeof(tmp), "%s/img-%06u.pgm", d->staging,
		         d->id_base + n);
		snprintf(path, sizeof(path), "%s/img-%06u.pgm", d->inbox,
		         d->id_base + n);
		FILE *f = fopen(tmp, "wb");
		if (f) {
			bool ok = fwrite(img, 1, len, f) == len;
			if (fclose(f) == 0 && ok && rename(tmp, path) == 0)
				atomic_fetch_add(&l->uploads, 1);
			else
				unlink(tmp);
		}
		pacer_wait(&p);
	}
	free(img);
	return NULL;
}

/* ---- reports ------------------------------------------------------------ */

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *
play_analyst(void *arg)
{
	struct demo_load *l = arg;
	struct client c = {0};
	if (client_open(&c, l->d->port) != 0)
		return NULL;
	while (!atomic_load(&l->stop)) {
		int64_t start = now_ms();
		char id[40];
		if (client_post(&c, "/reports", "{\"period\":\"today\"}",
		                NULL) != 202 ||
		    sscanf(c.body, "{\"id\": \"%39[^\"]\"", id) != 1) {
			atomic_fetch_add(&l->reports_lost, 1);
			usleep(100000);
			continue;
		}
		/* Poll until it is done; give up after 5 s. */
		int status = 0;
		while (now_ms() - start < 5000 &&
		       (status = client_post(&c, "/report-status", id,
		                             NULL)) != 200)
			usleep(20000);
		if (status == 200) {
			atomic_fetch_add(&l->reports_done, 1);
			atomic_fetch_add(&l->report_ms,
			                 (uint64_t)(now_ms() - start));
		} else {
			atomic_fetch_add(&l->reports_lost, 1);
		}
		usleep(200000);
	}
	client_close(&c);
	return NULL;
}

/* ---- the flaky function, called directly ------------------------------ */

static void *
play_caller(void *arg)
{
	struct demo_load *l = arg;
	struct pacer p;
	pacer_init(&p, FLAKY_RATE);
	while (!atomic_load(&l->stop)) {
		/* Admission may refuse (queue full, too many stuck
		 * handlers): the caller keeps the event and moves on. */
		if (evfn_invoke_async(l->d->rt, "flaky", "ping", 4, NULL) == 0)
			atomic_fetch_add(&l->flaky_sent, 1);
		else
			atomic_fetch_add(&l->flaky_refused, 1);
		pacer_wait(&p);
	}
	return NULL;
}

/* ---- control ------------------------------------------------------------ */

int
demo_load_start(struct demo *d, struct demo_load **out)
{
	struct demo_load *l = calloc(1, sizeof(*l));
	if (!l)
		return EVFN_ENOMEM;
	l->d = d;
	void *(*players[])(void *) = {play_stripe, play_uploader, play_analyst,
	                              play_caller};
	for (int i = 0; i < 4; i++) {
		if (pthread_create(&l->threads[i], NULL, players[i], l) != 0) {
			demo_load_stop(l);
			demo_load_free(l);
			return EVFN_ENOMEM;
		}
		l->started++;
	}
	*out = l;
	return 0;
}

void
demo_load_stop(struct demo_load *l)
{
	atomic_store(&l->stop, true);
	for (int i = 0; i < l->started; i++)
		pthread_join(l->threads[i], NULL);
	l->started = 0;
}

void
demo_load_print(const struct demo_load *l)
{
	uint64_t done = atomic_load(&l->reports_done);
	printf("load: %" PRIu64 " payments acknowledged, %" PRIu64
	       " forged ones refused (401), %" PRIu64 " failed;\n"
	       "      %" PRIu64 " images uploaded; %" PRIu64
	       " reports fetched (%" PRIu64 " ms on average), %" PRIu64
	       " lost;\n"
	       "      %" PRIu64 " flaky calls queued, %" PRIu64 " refused\n",
	       (uint64_t)atomic_load(&l->payments_acked),
	       (uint64_t)atomic_load(&l->payments_rejected),
	       (uint64_t)atomic_load(&l->payments_failed),
	       (uint64_t)atomic_load(&l->uploads), done,
	       done ? (uint64_t)atomic_load(&l->report_ms) / done : 0,
	       (uint64_t)atomic_load(&l->reports_lost),
	       (uint64_t)atomic_load(&l->flaky_sent),
	       (uint64_t)atomic_load(&l->flaky_refused));
}

void
demo_load_free(struct demo_load *l)
{
	free(l);
}
