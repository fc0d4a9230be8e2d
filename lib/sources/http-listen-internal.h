/* SPDX-License-Identifier: MIT */
/*
 * The HTTP trigger's own listener with its connections (http-listen.c),
 * which an evfn_http attached to a host's server does not have.
 */
#ifndef EVFN_HTTP_LISTEN_INTERNAL_H
#define EVFN_HTTP_LISTEN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <evfn/types.h>

struct evhttp;
struct evhttp_request;

struct evfn__listener;

/* Parses a numeric IPv4 or IPv6 address and port into ss. */
bool evfn__parse_address(const char *address, int port,
                         struct sockaddr_storage *ss, socklen_t *len);

/*
 * Listens at address:port for evh on the runtime's base (loop thread):
 * at most max_conns connections open at once (0: no limit), chunked
 * framing repaired (http-framing.c), and accept() failures met by a
 * paused, backed-off listener rather than a busy loop. Returns 0 or
 * EVFN_EADDRINUSE, EVFN_EACCES, EVFN_EINVAL (an address not on this
 * host), EVFN_ENOMEM, another -errno.
 */
int evfn__listener_open(struct evfn__listener **out, evfn_rt *rt,
                        struct evhttp *evh, const char *address, int port,
                        int max_conns);

int evfn__listener_port(const struct evfn__listener *l);

/* Whether req came on a connection whose chunked framing was malformed
 * (its body was cut there: answer 400 and close). l may be NULL. */
bool evfn__listener_bad_framing(const struct evfn__listener *l,
                                struct evhttp_request *req);

/* Connections open now, and how many times accept() failed. */
void evfn__listener_stats(const struct evfn__listener *l, int *open,
                          uint64_t *pauses);

/* Stops accepting for good. From then on progress(arg), when not NULL,
 * is called whenever an answer leaves a connection's output buffer or a
 * connection closes (NULL stops the calls). */
void evfn__listener_stop(struct evfn__listener *l, void (*progress)(void *),
                         void *arg);

/* Whether every connection's output has left for the kernel. */
bool evfn__listener_flushed(const struct evfn__listener *l);

/* After evhttp_free() of its server: releases what is left. NULL-safe. */
void evfn__listener_free(struct evfn__listener *l);

#endif /* EVFN_HTTP_LISTEN_INTERNAL_H */
