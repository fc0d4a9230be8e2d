/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the pgoutput decoder and the JSON it renders: the
 * input is a sequence of messages, each a 2-byte big-endian length and
 * that many bytes, decoded in order by one decoder (so that Relation
 * messages describe the tables later changes name). Every message is
 * decoded or refused with EVFN_EINVAL; a decoded change renders, and its
 * JSON nests its braces and brackets properly outside strings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <evfn/errors.h>

#include "sources/pgoutput-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Braces and brackets balance outside strings, and strings close. */
static int
balanced(const char *s, size_t n)
{
	int depth = 0;
	int in_string = 0;
	for (size_t i = 0; i < n; i++) {
		if (in_string) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_string = 0;
			else if ((unsigned char)s[i] < 0x20)
				return 0;
			continue;
		}
		if (s[i] == '"')
			in_string = 1;
		else if (s[i] == '{' || s[i] == '[')
			depth++;
		else if ((s[i] == '}' || s[i] == ']') && --depth < 0)
			return 0;
	}
	return !in_string && depth == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evfn__pgo d = {0};
	struct evfn__pgo_buf b = {0};
	while (size >= 2) {
		size_t n = (size_t)data[0] << 8 | data[1];
		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		/* An exact copy, so that reads past n are caught. */
		unsigned char *msg = malloc(n ? n : 1);
		memcpy(msg, data, n);
		struct evfn__pgo_msg m;
		int rc = evfn__pgo_decode(&d, msg, n, &m);
		if (rc != 0 && rc != EVFN_EINVAL && rc != EVFN_ENOMEM)
			abort();
		if (rc == 0 && m.kind >= EVFN__PGO_INSERT &&
		    m.kind <= EVFN__PGO_DELETE) {
			b.len = 0;
			evfn__pgo_buf_add(&b, "{", 1);
			evfn__pgo_json_row(&b, &m);
			evfn__pgo_buf_add(&b, "}", 1);
			/* Values of json columns are the server's, taken as
			 * they are: only their absence may be checked. */
			int has_json = 0;
			for (int i = 0; i < m.rel->ncols; i++)
				if (m.rel->cols[i].type == 114 ||
				    m.rel->cols[i].type == 3802)
					has_json = 1;
			if (!b.oom && !has_json && !balanced(b.p, b.len))
				abort();
			b.len = 0;
			(void)evfn__pgo_key(&b, &m);
		}
		free(msg);
		data += n;
		size -= n;
	}
	evfn__pgo_buf_free(&b);
	evfn__pgo_clear(&d);
	return 0;
}
