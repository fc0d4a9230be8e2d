/* SPDX-License-Identifier: MIT */
/*
 * Request framing in front of libevent 2.1's evhttp: a scanner that
 * follows each connection's incoming bytes the way evhttp will frame them
 * (request head, Content-Length body, chunked body and trailers) and
 * rewrites what evhttp reads wrongly. evhttp refuses chunk extensions
 * ("3;name=value", allowed by RFC 9112 section 7.1.1) and answers any bad
 * chunk size 413; the framer hands it the bare size instead, and ends the
 * body of a request whose chunked framing is malformed, marking the
 * connection so that the HTTP trigger answers 400 and closes it. It knows
 * evbuffers and nothing of evhttp's objects.
 */
#ifndef EVFN_HTTP_FRAMING_INTERNAL_H
#define EVFN_HTTP_FRAMING_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* One connection's framing state; zeroed (or evfn__framer_init()) before
 * the first byte. */
struct evfn__framer {
	unsigned char state;
	bool may_have_body; /* the request's method lets evhttp read one */
	bool te_seen;       /* a first Transfer-Encoding was read */
	bool chunked;       /* it is "chunked" */
	bool length_seen;   /* a first Content-Length was read */
	bool framing_seen;  /* the last header was the first TE or CL */
	bool failed;        /* malformed chunked framing: see above */
	bool busy;          /* inside its own edit of the buffer */
	int64_t length;     /* the first Content-Length */
	int64_t left;       /* body or chunk bytes still to pass over */
	size_t pos;         /* bytes at the buffer's front already framed */
	size_t seek;        /* where the search for the next line end goes
	                     * on, past pos */
};

void evfn__framer_init(struct evfn__framer *f);

/*
 * Frames what was added to the end of in since the last call, after
 * deleted bytes were taken from its front (by evhttp): meant for an
 * evbuffer callback on a connection's input buffer, which runs before
 * evhttp reads the new bytes. Rewrites in place; stops following the
 * connection (leaving evhttp to itself) at anything it does not mirror
 * exactly, such as a folded Transfer-Encoding header.
 */
void evfn__framer_input(struct evfn__framer *f, struct evbuffer *in,
                        size_t deleted);

/* Whether the connection sent malformed chunked framing (a bad chunk
 * size or extension, or a bad trailer line). */
static inline bool
evfn__framer_failed(const struct evfn__framer *f)
{
	return f->failed;
}

#endif /* EVFN_HTTP_FRAMING_INTERNAL_H */
