/* SPDX-License-Identifier: MIT */
/*
 * The ready-made event logger: one JSON object a line on a stdio stream,
 * built with jansson so that names and messages are escaped properly,
 * written whole under the logger's lock. Starts and successes can be
 * sampled per event; failures are always written.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <evfn/event.h>
#include <evfn/metrics.h>

#include "common-internal.h"
#include "text-internal.h"

struct evfn_json_log {
	pthread_mutex_t lock;
	FILE *f;
	uint64_t threshold; /* a start/success is written below it */
};

int
evfn_json_log_new(evfn_json_log **out, FILE *f, double sample)
{
	if (out)
		*out = NULL;
	if (!out || !f)
		return EVFN_EINVAL;
	if (!(sample > 0.0 && sample <= 1.0))
		return EVFN_ERANGE;
	evfn_json_log *log = evfn__calloc(1, sizeof(*log));
	if (!log)
		return EVFN_ENOMEM;
	pthread_mutex_init(&log->lock, NULL);
	log->f = f;
	log->threshold = sample >= 1.0 ? UINT64_MAX
	                               : (uint64_t)(sample * 18446744073709551615.0);
	*out = log;
	return 0;
}

void
evfn_json_log_free(evfn_json_log *log)
{
	if (!log)
		return;
	pthread_mutex_destroy(&log->lock);
	evfn__free(log);
}

/* The same answer for an event's start and success: a hash of its
 * sequence number against the threshold. */
static bool
sampled(const evfn_json_log *log, uint64_t seq)
{
	if (log->threshold == UINT64_MAX)
		return true;
	uint64_t x = seq * UINT64_C(0x9e3779b97f4a7c15);
	x ^= x >> 31;
	return x < log->threshold;
}

void
evfn_json_log_record(const evfn_record *rec, void *arg)
{
	evfn_json_log *log = arg;
	evfn_record_kind kind = evfn_record_get_kind(rec);
	const evfn_event *ev = evfn_record_event(rec);
	if ((kind == EVFN_RECORD_START || kind == EVFN_RECORD_SUCCESS) &&
	    !sampled(log, evfn_event_seq(ev)))
		return;
	char when[EVFN__RFC3339_MAX];
	evfn__rfc3339_format(evfn__wall_ns(), when);

	json_t *o = json_object();
	if (!o)
		return;
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "kind", json_string(evfn_record_kind_name(kind)));
	json_object_set_new(o, "function",
	                    json_string(evfn_record_function(rec)));
	if (ev) /* records about a function (its breaker) have none */
		json_object_set_new(o, "event_id",
		                    json_string(evfn_event_id(ev)));
	json_object_set_new(o, "attempt",
	                    json_integer(evfn_record_attempt(rec)));
	if (ev && kind != EVFN_RECORD_START)
		json_object_set_new(
			o, "duration_ms",
			json_real((double)evfn_record_duration_ns(rec) / 1e6));
	int code = evfn_record_code(rec);
	if (code < 0)
		json_object_set_new(
			o, "reason",
			json_string(evfn_dead_letter_reason_name(code)));
	const char *err = evfn_record_error(rec);
	if (err && kind != EVFN_RECORD_SUCCESS)
		json_object_set_new(o, "error", json_string(err));
	char *line = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!line)
		return;
	pthread_mutex_lock(&log->lock);
	fputs(line, log->f);
	fputc('\n', log->f);
	fflush(log->f);
	pthread_mutex_unlock(&log->lock);
	free(line); /* jansson allocates with malloc */
}
