/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the CloudEvents HTTP binding parser. The input is a
 * request as text: header lines "name: value", an empty line, then the
 * body; every outcome must be an event array or a clean refusal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <evfn/event.h>

#include "sources/cloudevents-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 16

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	struct evfn__ce_header h[MAX_HEADERS];
	size_t nh = 0;
	char *p = text, *body = NULL;
	size_t body_len = 0;
	/* Header lines up to the first empty line; the rest is the body. */
	while (*p) {
		char *eol = strchr(p, '\n');
		if (eol)
			*eol = '\0';
		if (*p == '\0') {
			body = eol ? eol + 1 : NULL;
			break;
		}
		char *colon = strchr(p, ':');
		if (colon && nh < MAX_HEADERS) {
			*colon = '\0';
			char *v = colon + 1;
			while (*v == ' ')
				v++;
			h[nh].name = p;
			h[nh].value = v;
			nh++;
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	if (body)
		body_len = size - (size_t)(body - text);
	enum evfn__ce_mode mode;
	evfn_event **events;
	size_t n;
	char err[EVFN__CE_ERR_MAX];
	if (evfn__ce_parse(nh ? h : NULL, nh, body, body_len, "fuzz", &mode,
	                   &events, &n, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < n; i++) {
			size_t len;
			(void)evfn_event_data(events[i], &len);
			(void)evfn_event_type(events[i]);
		}
		evfn__ce_events_free(events, n);
	}
	free(text);
	return 0;
}
