/* SPDX-License-Identifier: MIT */
/*
 * Request framing in front of evhttp (see http-framing-internal.h): a
 * scanner over a connection's input buffer that mirrors how libevent 2.1
 * frames requests, and rewrites chunk-size lines evhttp would misread.
 * It mirrors exactly what evhttp does (the first Transfer-Encoding and
 * Content-Length headers, HEAD and TRACE without a body, empty lines
 * between chunks) and stops following a connection at anything else, so
 * it never changes how evhttp frames a request, only the chunk-size lines
 * it would refuse. It does not judge the request beyond that: the HTTP
 * trigger checks the headers (two Content-Lengths, Transfer-Encoding
 * together with Content-Length) once evhttp has parsed them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "common-internal.h"
#include "http-framing-internal.h"
#include "text-internal.h"

enum {
	F_START,   /* the request line */
	F_HEAD,    /* header lines up to an empty one */
	F_BODY,    /* the rest of a Content-Length body */
	F_SIZE,    /* a chunk-size line (or the empty line after data) */
	F_DATA,    /* the rest of a chunk's data */
	F_TRAILER, /* trailer lines up to an empty one */
	F_OFF      /* not followed any more */
};

/* A chunk-size or trailer line longer than this is refused: evhttp would
 * buffer it without limit. Headers have evhttp's own limit. */
#define LINE_LIMIT 4096
/* The part of a line the framer copies out to look at: any chunk-size
 * or trailer line, the start of a header line (the values it needs,
 * Content-Length and Transfer-Encoding, are short). */
#define LINE_COPY (LINE_LIMIT + 1)
/* More significant hex digits than this make a chunk size no body can
 * have (beyond 2^60): it is handed on as the largest, for evhttp's 413. */
#define SIZE_DIGITS_MAX 15

void
evfn__framer_init(struct evfn__framer *f)
{
	memset(f, 0, sizeof(*f));
	f->state = F_START;
}

/* RFC 9110 5.6.2: the characters of a token. */
static bool
tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t
skip_bws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

static size_t
skip_token(const char *s, size_t i, size_t n)
{
	while (i < n && tchar((unsigned char)s[i]))
		i++;
	return i;
}

/* The end of the quoted-string at s[i] (its opening quote), or 0. */
static size_t
skip_quoted(const char *s, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (++i >= n)
				return 0;
			c = (unsigned char)s[i];
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 0;
}

/* Whether s[i..n) is a valid chunk-ext (RFC 9112 7.1.1):
 * *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ). */
static bool
valid_extensions(const char *s, size_t i, size_t n)
{
	for (;;) {
		i = skip_bws(s, i, n);
		if (i == n)
			return true;
		if (s[i] != ';')
			return false;
		i = skip_bws(s, i + 1, n);
		size_t name = i;
		if ((i = skip_token(s, i, n)) == name)
			return false;
		size_t eq = skip_bws(s, i, n);
		if (eq == n || s[eq] != '=')
			continue;
		i = skip_bws(s, eq + 1, n);
		if (i < n && s[i] == '"') {
			if (!(i = skip_quoted(s, i, n)))
				return false;
		} else {
			size_t value = i;
			if ((i = skip_token(s, i, n)) == value)
				return false;
		}
	}
}

/* Parses a chunk-size line (n bytes, no line end): 1*HEXDIG then
 * extensions. Sets *size (the largest int64 for an impossible size) and
 * *bare (the line is hex digits alone, as evhttp reads it). */
static bool
parse_chunk_size(const char *s, size_t n, int64_t *size, bool *bare)
{
	size_t i = 0, significant = 0;
	uint64_t v = 0;
	for (; i < n && evfn__hex_value(s[i]) >= 0; i++) {
		if (v == 0 && s[i] == '0')
			continue;
		if (++significant <= SIZE_DIGITS_MAX)
			v = v << 4 | (uint64_t)evfn__hex_value(s[i]);
	}
	if (i == 0 || !valid_extensions(s, i, n))
		return false;
	*size = significant > SIZE_DIGITS_MAX ? INT64_MAX : (int64_t)v;
	*bare = i == n && significant <= SIZE_DIGITS_MAX;
	return true;
}

/* Replaces len bytes at offset at of in with the text `with`. An evbuffer
 * has no edit in the middle: the front is moved out, the edit made at
 * the front, and the front put back, so that only the buffer's front is
 * touched (a bufferevent freezes the end of its input between reads).
 * Returns false when out of memory, the buffer then unchanged or lost. */
static bool
replace(struct evfn__framer *f, struct evbuffer *in, size_t at, size_t len,
        const char *with)
{
	struct evbuffer *front = evbuffer_new();
	if (!front)
		return false;
	/* The edits call the buffer's callbacks, this framer's among them. */
	f->busy = true;
	bool ok = evbuffer_remove_buffer(in, front, at) == (int)at &&
	          evbuffer_drain(in, len) == 0 &&
	          evbuffer_prepend(in, with, strlen(with)) == 0 &&
	          evbuffer_prepend_buffer(in, front) == 0;
	f->busy = false;
	evbuffer_free(front);
	return ok;
}

/* Ends the request at offset at (the start of a bad line) with `end`,
 * drops everything after it and marks the connection. */
static void
fail_at(struct evfn__framer *f, struct evbuffer *in, size_t at,
        const char *end)
{
	replace(f, in, at, evbuffer_get_length(in) - at, end);
	f->failed = true;
	f->state = F_OFF;
}

/* Reads a header value as evhttp keeps it: leading spaces and trailing
 * blanks removed, in place. */
static char *
header_value(char *v)
{
	v += strspn(v, " ");
	size_t n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		v[--n] = '\0';
	return v;
}

/* A header line of the request head (NUL-terminated, complete). */
static void
head_line(struct evfn__framer *f, char *line)
{
	if (*line == ' ' || *line == '\t') {
		/* Folded onto the previous header's value by evhttp: when
		 * that was a framing header, the framer no longer knows
		 * its value. */
		if (f->framing_seen)
			f->state = F_OFF;
		return;
	}
	f->framing_seen = false;
	char *colon = strchr(line, ':');
	if (!colon) {
		f->state = F_OFF; /* evhttp refuses the request */
		return;
	}
	*colon = '\0';
	char *value = header_value(colon + 1);
	if (strcasecmp(line, "Transfer-Encoding") == 0 && !f->te_seen) {
		f->te_seen = f->framing_seen = true;
		f->chunked = strcasecmp(value, "chunked") == 0;
	} else if (strcasecmp(line, "Content-Length") == 0 &&
	           !f->length_seen) {
		char *end;
		long long v = strtoll(value, &end, 10);
		if (!*value || *end || v < 0) {
			f->state = F_OFF; /* evhttp refuses the request */
			return;
		}
		f->length_seen = f->framing_seen = true;
		f->length = v;
	}
}

/* The head ended: where evhttp goes next. */
static void
head_end(struct evfn__framer *f)
{
	if (!f->may_have_body)
		f->state = F_START;
	else if (f->chunked)
		f->state = F_SIZE;
	else if (f->length_seen && f->length > 0) {
		f->state = F_BODY;
		f->left = f->length;
	} else {
		f->state = F_START;
	}
}

/* Handles one complete line at offset f->pos, len bytes before its '\n'
 * (a copy of whose start is in line, copied bytes of it). Advances
 * f->pos past it unless it stopped. */
static void
one_line(struct evfn__framer *f, struct evbuffer *in, char *line,
         size_t copied, size_t len)
{
	/* evhttp reads lines ending in LF or CRLF. */
	size_t n = len;
	if (n && copied == len && line[n - 1] == '\r')
		line[--n] = '\0', copied--;
	bool whole = copied == n;
	switch (f->state) {
	case F_START:
		f->may_have_body = !(strncmp(line, "HEAD ", 5) == 0 ||
		                     strncmp(line, "TRACE ", 6) == 0);
		f->te_seen = f->chunked = f->length_seen = false;
		f->framing_seen = false;
		f->state = F_HEAD;
		break;
	case F_HEAD:
		if (n == 0)
			head_end(f);
		else if (whole)
			head_line(f, line);
		else if (strncasecmp(line, "Transfer-Encoding", 17) == 0 ||
		         strncasecmp(line, "Content-Length", 14) == 0 ||
		         f->framing_seen)
			f->state = F_OFF; /* a framing value too long to read */
		else
			f->framing_seen = false;
		break;
	case F_SIZE: {
		if (n == 0)
			break; /* the line end after a chunk's data */
		int64_t size;
		bool bare;
		if (!whole || !parse_chunk_size(line, n, &size, &bare)) {
			fail_at(f, in, f->pos, "0\r\n\r\n");
			return;
		}
		if (!bare) {
			char canonical[32];
			snprintf(canonical, sizeof(canonical), "%llx\r\n",
			         (unsigned long long)size);
			if (!replace(f, in, f->pos, len + 1, canonical)) {
				f->state = F_OFF;
				return;
			}
			f->pos += strlen(canonical);
		} else {
			f->pos += len + 1;
		}
		if (size == INT64_MAX)
			f->state = F_OFF; /* evhttp answers 413 */
		else if (size == 0)
			f->state = F_TRAILER;
		else {
			f->state = F_DATA;
			f->left = size;
		}
		return;
	}
	case F_TRAILER:
		if (n == 0) {
			f->state = F_START;
		} else if (line[0] != ' ' && line[0] != '\t') {
			size_t name = skip_token(line, 0, copied);
			if (name == 0 || name == copied || line[name] != ':') {
				fail_at(f, in, f->pos, "\r\n");
				return;
			}
		}
		break;
	default:
		break;
	}
	f->pos += len + 1;
}

void
evfn__framer_input(struct evfn__framer *f, struct evbuffer *in,
                   size_t deleted)
{
	if (f->busy)
		return;
	if (deleted > f->pos) {
		/* evhttp read bytes the framer had not seen: out of step. */
		f->state = F_OFF;
		f->pos = 0;
	} else {
		f->pos -= deleted;
	}
	if (f->state == F_OFF)
		return;
	while (f->state != F_OFF) {
		size_t total = evbuffer_get_length(in);
		if (f->pos >= total)
			break;
		if (f->state == F_BODY || f->state == F_DATA) {
			size_t n = (size_t)EVFN__MIN((int64_t)(total - f->pos),
			                             f->left);
			f->pos += n;
			f->left -= (int64_t)n;
			if (f->left == 0)
				f->state = f->state == F_BODY ? F_START : F_SIZE;
			continue;
		}
		/* A line: search for its end from where the last search
		 * stopped, so that a line arriving byte by byte is not
		 * scanned again for every byte. */
		size_t from = f->pos + f->seek;
		struct evbuffer_ptr p;
		if (from >= total ||
		    evbuffer_ptr_set(in, &p, from, EVBUFFER_PTR_SET) != 0)
			break;
		struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, &p);
		if (eol.pos < 0) {
			f->seek = total - f->pos;
			if ((f->state == F_SIZE || f->state == F_TRAILER) &&
			    f->seek > LINE_LIMIT)
				fail_at(f, in, f->pos,
				        f->state == F_SIZE ? "0\r\n\r\n"
				                           : "\r\n");
			break;
		}
		f->seek = 0;
		size_t len = (size_t)eol.pos - f->pos;
		if ((f->state == F_SIZE || f->state == F_TRAILER) &&
		    len > LINE_LIMIT) {
			fail_at(f, in, f->pos,
			        f->state == F_SIZE ? "0\r\n\r\n" : "\r\n");
			break;
		}
		char line[LINE_COPY];
		size_t copied = EVFN__MIN(len, sizeof(line) - 1);
		struct evbuffer_ptr start;
		if (evbuffer_ptr_set(in, &start, f->pos, EVBUFFER_PTR_SET) !=
		            0 ||
		    evbuffer_copyout_from(in, &start, line, copied) !=
		            (ev_ssize_t)copied) {
			f->state = F_OFF;
			break;
		}
		line[copied] = '\0';
		one_line(f, in, line, copied, len);
	}
}
