/* SPDX-License-Identifier: MIT */
/*
 * The live status page of the HTTP trigger: a self-contained HTML page
 * (inline CSS and JavaScript, no external resources) that polls a JSON
 * document every second and draws rates, latencies, concurrency, queues,
 * cost and the dead letters; the JSON document itself, built with
 * jansson; and the dead-letter actions (replay, delete, purge) behind a
 * bearer token. http.c hands over every request under the page's path.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include <evfn/deadletter.h>
#include <evfn/errors.h>
#include <evfn/event.h>
#include <evfn/stats.h>

#include "common-internal.h"
#include "event-internal.h"
#include "source-internal.h"
#include "stats-internal.h"
#include "signature-internal.h"
#include "http-reply-internal.h"
#include "status-internal.h"
#include "text-internal.h"

/* Memory size the cost view prices, as a common small Lambda. */
#define COST_MEMORY_MB 512
/* Newest dead letters listed in the JSON document. */
#define MAX_DEAD_LETTERS 100
/* Payload bytes shown per dead letter. */
#define MAX_PAYLOAD 4096
/* Largest action body read. */
#define MAX_ACTION_BODY 1024

/* The page, one line an element so no literal nears the 4095-byte limit
 * C11 guarantees. It only uses textContent for data, so nothing from an
 * event can become markup. */
static const char *const page[] = {
	"<!DOCTYPE html>\n",
	"<html lang=\"en\"><head><meta charset=\"utf-8\">\n",
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale="
	"1\">\n",
	"<title>evfn status</title>\n",
	"<style>\n",
	"body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222;backgr"
	"ound:#fafafa}\n",
	"h1{font-size:1.3em;margin:0 0 .5em}h2{font-size:1.1em;margin:1.2em 0"
	" .4em}\n",
	"table{border-collapse:collapse;background:#fff}\n",
	"th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-s"
	"pace:nowrap}\n",
	"th{background:#eee}td.l,th.l{text-align:left}td.bad{color:#b00;font-"
	"weight:bold}\n",
	"pre{background:#fff;border:1px solid #ddd;padding:6px;max-width:60em"
	";overflow:auto;white-space:pre-wrap;text-align:left}\n",
	"#state{color:#666;margin-left:1em}canvas{background:#fff;border:1px "
	"solid #ddd}\n",
	".key{display:inline-block;width:1em;height:.6em;margin:0 .3em 0 1em}"
	"\n",
	"button{margin:0 2px}\n",
	"</style></head><body>\n",
	"<h1>evfn status<span id=\"state\">loading</span></h1>\n",
	"<h2>Functions</h2>\n",
	"<table><thead><tr><th class=\"l\">function</th><th class=\"l\">state"
	"</th><th>inv/s</th><th>accepted</th>\n",
	"<th>succeeded</th><th>errors</th><th>retries</th><th>p50 run</th>\n",
	"<th>p99 run</th><th>in flight</th><th>peak</th><th>queued</th>\n",
	"<th>delayed</th><th>oldest queued</th><th>cost (USD)</th></tr>"
	"</thead>\n",
	"<tbody id=\"fns\"></tbody></table>\n",
	"<h2>Last minutes</h2>\n",
	"<canvas id=\"chart\" width=\"720\" height=\"140\"></canvas><br>\n",
	"<span class=\"key\" style=\"background:#36c\"></span>invocations/s\n",
	"<span class=\"key\" style=\"background:#c33\"></span>errors/s\n",
	"<h2>Cost</h2>\n",
	"<div id=\"cost\"></div>\n",
	"<h2>Dead letters</h2>\n",
	"<p>Token: <input id=\"token\" type=\"password\" size=\"30\">\n",
	"<button id=\"purge\">purge all</button> <span id=\"msg\"></span></p>"
	"\n",
	"<table><thead><tr><th>id</th><th class=\"l\">function</th><th class="
	"\"l\">reason</th>\n",
	"<th>attempts</th><th class=\"l\">error</th><th class=\"l\">first att"
	"empt</th>\n",
	"<th class=\"l\">last attempt</th><th class=\"l\">actions</th></tr></"
	"thead>\n",
	"<tbody id=\"dls\"></tbody></table>\n",
	"<p id=\"dlinfo\"></p>\n",
	"<script>\n",
	"\"use strict\";\n",
	"const $ = (id) => document.getElementById(id);\n",
	"const base = location.pathname.replace(/[/]+$/, \"\");\n",
	"const HIST_MAX = 300;\n",
	"const hist = [];\n",
	"const open = new Set();\n",
	"let prev = null;\n",
	"\n",
	"$(\"token\").value = sessionStorage.getItem(\"evfn-token\") || \"\";"
	"\n",
	"$(\"token\").addEventListener(\"input\", (e) =>\n",
	"  sessionStorage.setItem(\"evfn-token\", e.target.value));\n",
	"$(\"purge\").addEventListener(\"click\", () => act(\"purge\"));\n",
	"\n",
	"function cell(tr, text, cls) {\n",
	"  const td = document.createElement(\"td\");\n",
	"  td.textContent = String(text);\n",
	"  if (cls) td.className = cls;\n",
	"  tr.appendChild(td);\n",
	"  return td;\n",
	"}\n",
	"function ms(v) {\n",
	"  if (!(v > 0)) return \"-\";\n",
	"  return v < 1 ? (v * 1000).toFixed(0) + \" us\"\n",
	"    : v.toFixed(v < 10 ? 2 : 0) + \" ms\";\n",
	"}\n",
	"function when(v) { return v > 0 ? new Date(v).toISOString() : \"-\";"
	" }\n",
	"function usd(v) { return \"$\" + v.toFixed(6); }\n",
	"/* Flow control a function is held by: paused, or its breaker. */\n",
	"function state(f) {\n",
	"  const s = [];\n",
	"  if (f.paused) s.push(\"paused\");\n",
	"  if (f.circuit_state === 1) s.push(\"circuit open\");\n",
	"  if (f.circuit_state === 2) s.push(\"half-open\");\n",
	"  return s.join(\", \") || \"running\";\n",
	"}\n",
	"\n",
	"async function act(what, id) {\n",
	"  const body = id === undefined ? {} : { id: String(id) };\n",
	"  try {\n",
	"    const r = await fetch(base + \"/dead-letters/\" + what, {\n",
	"      method: \"POST\",\n",
	"      headers: { \"Authorization\": \"Bearer \" + $(\"token\").value"
	",\n",
	"                 \"Content-Type\": \"application/json\" },\n",
	"      body: JSON.stringify(body) });\n",
	"    const j = await r.json().catch(() => ({}));\n",
	"    $(\"msg\").textContent = r.ok ? what + \": done\"\n",
	"      : what + \": \" + r.status + \" \" + (j.message || j.error || "
	"\"\");\n",
	"  } catch (e) {\n",
	"    $(\"msg\").textContent = what + \": \" + e;\n",
	"  }\n",
	"  tick();\n",
	"}\n",
	"\n",
	"function button(td, label, fn) {\n",
	"  const b = document.createElement(\"button\");\n",
	"  b.textContent = label;\n",
	"  b.addEventListener(\"click\", fn);\n",
	"  td.appendChild(b);\n",
	"}\n",
	"\n",
	"function renderFunctions(d) {\n",
	"  const rows = [];\n",
	"  let rate = 0, errs = 0;\n",
	"  for (const f of d.functions) {\n",
	"    const p = prev && prev.fns[f.name];\n",
	"    let r = 0, e = 0;\n",
	"    const bad = f.dead_lettered + f.expired;\n",
	"    if (p && d.now_ms > prev.t) {\n",
	"      const dt = (d.now_ms - prev.t) / 1000;\n",
	"      r = Math.max(0, f.accepted - p.accepted) / dt;\n",
	"      e = Math.max(0, bad - p.dead_lettered - p.expired) / dt;\n",
	"    }\n",
	"    rate += r; errs += e;\n",
	"    const tr = document.createElement(\"tr\");\n",
	"    tr.className = \"fn\";\n",
	"    tr.dataset.fn = f.name;\n",
	"    cell(tr, f.name, \"l\");\n",
	"    const st = state(f);\n",
	"    cell(tr, st, st === \"running\" ? \"l\" : \"l bad\");\n",
	"    cell(tr, r.toFixed(1));\n",
	"    cell(tr, f.accepted);\n",
	"    cell(tr, f.succeeded);\n",
	"    cell(tr, bad, bad ? \"bad\" : \"\");\n",
	"    cell(tr, f.retries);\n",
	"    cell(tr, ms(f.run_p50_ms));\n",
	"    cell(tr, ms(f.run_p99_ms));\n",
	"    cell(tr, f.in_flight);\n",
	"    cell(tr, f.concurrency_peak);\n",
	"    cell(tr, f.queued);\n",
	"    cell(tr, f.delayed);\n",
	"    cell(tr, f.queued ? f.oldest_queued_ms + \" ms\" : \"-\");\n",
	"    cell(tr, usd(f.cost_usd));\n",
	"    rows.push(tr);\n",
	"  }\n",
	"  $(\"fns\").replaceChildren(...rows);\n",
	"  prev = { t: d.now_ms,\n",
	"           fns: Object.fromEntries(d.functions.map((f) => [f.name, f"
	"])) };\n",
	"  hist.push({ rate: rate, errs: errs });\n",
	"  if (hist.length > HIST_MAX) hist.shift();\n",
	"}\n",
	"\n",
	"function draw() {\n",
	"  const c = $(\"chart\"), g = c.getContext(\"2d\");\n",
	"  g.clearRect(0, 0, c.width, c.height);\n",
	"  let max = 1;\n",
	"  for (const h of hist) max = Math.max(max, h.rate, h.errs);\n",
	"  g.fillStyle = \"#666\";\n",
	"  g.fillText(max.toFixed(1) + \"/s\", 4, 12);\n",
	"  g.fillText((HIST_MAX / 60) + \" min\", c.width - 40, c.height - 4)"
	";\n",
	"  for (const [key, color] of [[\"rate\", \"#36c\"], [\"errs\", \"#c3"
	"3\"]]) {\n",
	"    g.strokeStyle = color;\n",
	"    g.beginPath();\n",
	"    hist.forEach((h, i) => {\n",
	"      const x = c.width - (hist.length - 1 - i) * c.width / HIST_MAX"
	";\n",
	"      const y = c.height - 2 - h[key] / max * (c.height - 20);\n",
	"      if (i) g.lineTo(x, y); else g.moveTo(x, y);\n",
	"    });\n",
	"    g.stroke();\n",
	"  }\n",
	"}\n",
	"\n",
	"function renderCost(d) {\n",
	"  const c = d.cost;\n",
	"  $(\"cost\").textContent = usd(c.total_usd) + \" so far at \" + c.m"
	"emory_mb +\n",
	"    \" MB (\" + c.usd_per_million_requests + \" USD per million requ"
	"ests, \" +\n",
	"    c.usd_per_gb_second + \" USD per GB-second); billed \" +\n",
	"    d.totals.billed_ms + \" ms over \" + d.totals.attempts + \" atte"
	"mpts.\";\n",
	"}\n",
	"\n",
	"function detail(dl) {\n",
	"  const ev = dl.event;\n",
	"  const attrs = Object.assign({}, ev);\n",
	"  delete attrs.data;\n",
	"  return JSON.stringify(attrs, null, 2) + \"\\n\\npayload (\" + ev.d"
	"ata_encoding +\n",
	"    \", \" + ev.data_size + \" bytes\" + (ev.data_truncated ? \", tr"
	"uncated\" : \"\") +\n",
	"    \"):\\n\" + ev.data;\n",
	"}\n",
	"\n",
	"function renderDeadLetters(d) {\n",
	"  const rows = [];\n",
	"  for (const dl of d.dead_letters.items.slice().reverse()) {\n",
	"    const tr = document.createElement(\"tr\");\n",
	"    tr.className = \"dl\";\n",
	"    cell(tr, dl.id);\n",
	"    cell(tr, dl.function, \"l\");\n",
	"    cell(tr, dl.reason, \"l\");\n",
	"    cell(tr, dl.attempts);\n",
	"    cell(tr, dl.error, \"l\");\n",
	"    cell(tr, when(dl.first_attempt_ms), \"l\");\n",
	"    cell(tr, when(dl.last_attempt_ms), \"l\");\n",
	"    const td = cell(tr, \"\", \"l\");\n",
	"    button(td, open.has(dl.id) ? \"hide\" : \"inspect\", () => {\n",
	"      if (open.has(dl.id)) open.delete(dl.id); else open.add(dl.id);"
	"\n",
	"      renderDeadLetters(d);\n",
	"    });\n",
	"    button(td, \"replay\", () => act(\"replay\", dl.id));\n",
	"    button(td, \"delete\", () => act(\"delete\", dl.id));\n",
	"    rows.push(tr);\n",
	"    if (open.has(dl.id)) {\n",
	"      const more = document.createElement(\"tr\");\n",
	"      const td2 = document.createElement(\"td\");\n",
	"      td2.colSpan = 8;\n",
	"      const pre = document.createElement(\"pre\");\n",
	"      pre.textContent = detail(dl);\n",
	"      td2.appendChild(pre);\n",
	"      more.appendChild(td2);\n",
	"      rows.push(more);\n",
	"    }\n",
	"  }\n",
	"  $(\"dls\").replaceChildren(...rows);\n",
	"  const n = d.dead_letters;\n",
	"  $(\"dlinfo\").textContent = n.count + \" stored\" +\n",
	"    (n.count > n.items.length ? \", newest \" + n.items.length + \" "
	"shown\" : \"\") +\n",
	"    (n.evicted ? \", \" + n.evicted + \" evicted\" : \"\");\n",
	"}\n",
	"\n",
	"let last = null;\n",
	"async function tick() {\n",
	"  try {\n",
	"    const r = await fetch(base + \"/data\", { cache: \"no-store\" })"
	";\n",
	"    if (!r.ok) throw new Error(\"HTTP \" + r.status);\n",
	"    last = await r.json();\n",
	"    renderFunctions(last);\n",
	"    draw();\n",
	"    renderCost(last);\n",
	"    renderDeadLetters(last);\n",
	"    $(\"state\").textContent = \"live, \" + new Date().toLocaleTimeS"
	"tring();\n",
	"  } catch (e) {\n",
	"    $(\"state\").textContent = \"offline: \" + e.message;\n",
	"  }\n",
	"}\n",
	"tick();\n",
	"setInterval(tick, 1000);\n",
	"</script></body></html>\n",
};

bool
evfn__status_owns(const char *prefix, const char *path, size_t len,
                  const char **rest)
{
	size_t n = strlen(prefix);
	if (len < n || memcmp(path, prefix, n) != 0 ||
	    (len > n && path[n] != '/'))
		return false;
	*rest = path + n;
	return true;
}

/* ---- answering ------------------------------------------------------- */

static void
serve_page(struct evhttp_request *req)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(page); i++)
		evbuffer_add(out, page[i], strlen(page[i]));
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, 200, NULL, NULL);
}

/* ---- the JSON document ----------------------------------------------- */

static double
cost_of(const evfn_stats *s)
{
	return evfn_stats_serverless_cost(s, COST_MEMORY_MB,
	                                  EVFN_LAMBDA_USD_PER_MILLION_REQUESTS,
	                                  EVFN_LAMBDA_USD_PER_GB_SECOND);
}

/* One snapshot as an object; name NULL for the totals. */
static json_t *
stats_json(const char *name, const evfn_stats *s)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = name ? json_object_set_new(o, "name", json_string(name)) : 0;
	/* Every stat, under its evfn_stat_name(). */
	for (int i = 0; i < EVFN_STAT_COUNT; i++)
		bad |= json_object_set_new(
			o, evfn_stat_name((evfn_stat)i),
			json_integer(
				(json_int_t)evfn_stats_value(s, (evfn_stat)i)));
	const struct {
		const char *key;
		evfn_histogram h;
		double q;
	} quantiles[] = {
		{"run_p50_ms", EVFN_HIST_RUN, 0.5},
		{"run_p99_ms", EVFN_HIST_RUN, 0.99},
		{"wait_p99_ms", EVFN_HIST_QUEUE_WAIT, 0.99},
	};
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(quantiles); i++)
		bad |= json_object_set_new(
			o, quantiles[i].key,
			json_real((double)evfn_stats_quantile(
					  s, quantiles[i].h, quantiles[i].q) /
			          1e6));
	bad |= json_object_set_new(o, "cost_usd", json_real(cost_of(s)));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Every function's snapshot (taken under one lock, so they agree), in
 * registration order. */
static json_t *
functions_json(evfn_rt *rt)
{
	size_t n;
	struct evfn__fn_snapshot *snaps = evfn__stats_snapshot_all(rt, &n);
	json_t *a = snaps ? json_array() : NULL;
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, stats_json(snaps[i].name,
		                                        &snaps[i].s))) {
			json_decref(a);
			a = NULL;
		}
	evfn__free(snaps);
	return a;
}

/* Whether the payload reads as text: valid UTF-8 (checked by jansson)
 * without control characters other than tab and line breaks. */
static bool
printable(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' &&
		     p[i] != '\r') ||
		    p[i] == 0x7f)
			return false;
	return true;
}

/* The payload as text when printable, else as lowercase hex. */
static int
set_payload(json_t *o, const evfn_event *ev)
{
	size_t len = 0;
	const unsigned char *data = evfn_event_data(ev, &len);
	size_t shown = len < MAX_PAYLOAD ? len : MAX_PAYLOAD;
	json_t *text = NULL;
	if (!data || printable(data, shown))
		text = json_stringn(data ? (const char *)data : "", shown);
	/* A cut through a multi-byte character is not valid UTF-8; hex is
	 * then the honest rendering. */
	const char *encoding = text ? "text" : "hex";
	if (!text) {
		static const char digits[] = "0123456789abcdef";
		char *hex = evfn__malloc(shown * 2 + 1);
		if (!hex)
			return -1;
		for (size_t i = 0; i < shown; i++) {
			hex[2 * i] = digits[data[i] >> 4];
			hex[2 * i + 1] = digits[data[i] & 15];
		}
		text = json_stringn(hex, shown * 2);
		evfn__free(hex);
	}
	return json_object_set_new(o, "data", text) |
	       json_object_set_new(o, "data_encoding", json_string(encoding)) |
	       json_object_set_new(o, "data_size",
	                           json_integer((json_int_t)len)) |
	       json_object_set_new(o, "data_truncated",
	                           json_boolean(shown < len));
}

/* A string member, or nothing for a NULL attribute. */
static int
set_optional(json_t *o, const char *key, const char *value)
{
	return value ? json_object_set_new(o, key, json_string(value)) : 0;
}

static json_t *
event_json(const evfn_event *ev)
{
	json_t *o = json_object(), *ext = json_object();
	if (!o || !ext) {
		json_decref(o);
		json_decref(ext);
		return NULL;
	}
	char time[EVFN__RFC3339_MAX] = "";
	if (evfn__event_has_time(ev))
		evfn__rfc3339_format(evfn_event_time(ev), time);
	int bad = set_optional(o, "id", evfn_event_id(ev)) |
	          set_optional(o, "type", evfn_event_type(ev)) |
	          set_optional(o, "source", evfn_event_source(ev)) |
	          set_optional(o, "subject", evfn_event_subject(ev)) |
	          set_optional(o, "datacontenttype",
	                       evfn_event_datacontenttype(ev)) |
	          set_optional(o, "time", *time ? time : NULL);
	const char *name, *value;
	for (size_t i = 0; (value = evfn_event_extension_at(ev, i, &name));
	     i++)
		bad |= json_object_set_new(ext, name, json_string(value));
	bad |= json_object_set_new(o, "extensions", ext);
	bad |= set_payload(o, ev);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
dead_letter_json(const evfn_dead_letter *dl)
{
	const char *error = evfn_dead_letter_error(dl);
	json_t *o = json_pack(
		"{s:I, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:o?}", "id",
		(json_int_t)evfn_dead_letter_id(dl), "function",
		evfn_dead_letter_function(dl), "reason",
		evfn_dead_letter_reason(dl), "code",
		evfn_err_name(evfn_dead_letter_code(dl)), "attempts",
		(json_int_t)evfn_dead_letter_attempts(dl), "error",
		error ? error : "", "first_attempt_ms",
		(json_int_t)(evfn_dead_letter_first_attempt(dl) / 1000000),
		"last_attempt_ms",
		(json_int_t)(evfn_dead_letter_last_attempt(dl) / 1000000),
		"event", event_json(evfn_dead_letter_event(dl)));
	/* s:o? stores null when the event could not be rendered, which only
	 * a failed allocation causes. */
	if (o && json_is_null(json_object_get(o, "event"))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The newest MAX_DEAD_LETTERS dead letters, oldest first. */
static json_t *
dead_letters_json(evfn_rt *rt)
{
	size_t count = evfn_dead_letter_count(rt);
	size_t offset = count > MAX_DEAD_LETTERS ? count - MAX_DEAD_LETTERS : 0;
	evfn_dead_letter *dls[MAX_DEAD_LETTERS];
	int n = evfn_dead_letters(rt, dls, MAX_DEAD_LETTERS, offset);
	json_t *items = json_array();
	for (int i = 0; i < n; i++) {
		if (items && json_array_append_new(items,
		                                   dead_letter_json(dls[i]))) {
			json_decref(items);
			items = NULL;
		}
		evfn_dead_letter_unref(dls[i]);
	}
	if (!items)
		return NULL;
	return json_pack("{s:I, s:I, s:o}", "count", (json_int_t)count,
	                 "evicted", (json_int_t)evfn_dead_letter_evicted(rt),
	                 "items", items);
}

static void
serve_data(evfn_rt *rt, struct evhttp_request *req)
{
	evfn_stats *total = NULL;
	int rc = evfn_stats_take(rt, NULL, &total);
	if (rc) {
		evfn__http_reply_error(req, 500, rc, "cannot take statistics", NULL);
		return;
	}
	json_t *body = json_pack(
		"{s:I, s:o, s:o, s:{s:i, s:f, s:f, s:f}, s:o}", "now_ms",
		(json_int_t)(evfn__wall_ns() / 1000000), "functions",
		functions_json(rt), "totals", stats_json(NULL, total), "cost",
		"memory_mb", COST_MEMORY_MB, "usd_per_million_requests",
		EVFN_LAMBDA_USD_PER_MILLION_REQUESTS, "usd_per_gb_second",
		EVFN_LAMBDA_USD_PER_GB_SECOND, "total_usd", cost_of(total),
		"dead_letters", dead_letters_json(rt));
	evfn_stats_free(total);
	evfn__http_reply_json(req, 200, body);
}

/* ---- dead-letter actions --------------------------------------------- */

/* Parses a dead letter id: decimal digits only, no sign, no overflow. */
static bool
parse_id(const char *s, uint64_t *id)
{
	if (!s || !isdigit((unsigned char)*s))
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || errno)
		return false;
	*id = v;
	return true;
}

/* The id in a JSON body {"id": N} or {"id": "N"}, or a form body id=N. */
static bool
body_id(struct evhttp_request *req, uint64_t *id)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char buf[MAX_ACTION_BODY + 1];
	if (len > MAX_ACTION_BODY)
		return false;
	evbuffer_copyout(in, buf, len);
	buf[len] = '\0';
	size_t skip = strspn(buf, " \t\r\n");
	if (buf[skip] == '{') {
		json_t *doc = json_loadb(buf, len, 0, NULL);
		json_t *v = json_object_get(doc, "id");
		bool ok = false;
		if (json_is_integer(v) && json_integer_value(v) >= 0) {
			*id = (uint64_t)json_integer_value(v);
			ok = true;
		} else if (json_is_string(v)) {
			ok = parse_id(json_string_value(v), id);
		}
		json_decref(doc);
		return ok;
	}
	struct evkeyvalq form;
	if (evhttp_parse_query_str(buf, &form) != 0)
		return false;
	bool ok = parse_id(evhttp_find_header(&form, "id"), id);
	evhttp_clear_headers(&form);
	return ok;
}

/* The HTTP status for an error of the dead-letter calls. */
static int
action_status(int rc)
{
	switch (rc) {
	case EVFN_ENOENT:
	case EVFN_ENOFN:
	case EVFN_ENOSUB:
		return 404;
	case EVFN_EQUEUEFULL:
		return 429;
	case EVFN_ESHUTDOWN:
		return 503;
	default:
		return 500;
	}
}

static void
serve_action(evfn_rt *rt, struct evhttp_request *req, const char *action,
             const char *token)
{
	const char *why = NULL;
	int rc = evfn__sig_bearer_verify(
		token,
		evhttp_find_header(evhttp_request_get_input_headers(req),
	                           "Authorization"),
		&why);
	if (rc) {
		evfn__http_reply_error(req, rc == EVFN_ENOMEM ? 500 : 401, rc, why, NULL);
		return;
	}
	if (strcmp(action, "purge") == 0) {
		rc = evfn_dead_letter_purge(rt);
		if (rc < 0)
			evfn__http_reply_error(req, action_status(rc), rc, NULL, NULL);
		else
			evfn__http_reply_json(req, 200,
			           json_pack("{s:b, s:i}", "ok", 1, "purged",
			                     rc));
		return;
	}
	uint64_t id;
	if (!body_id(req, &id)) {
		evfn__http_reply_error(req, 400, EVFN_EINVAL,
		            "the body needs a dead letter id: {\"id\": N} "
		            "or id=N", NULL);
		return;
	}
	rc = strcmp(action, "replay") == 0 ? evfn_dead_letter_replay(rt, id)
	                                   : evfn_dead_letter_delete(rt, id);
	if (rc < 0)
		evfn__http_reply_error(req, action_status(rc), rc,
		            rc == EVFN_ENOENT ? "no dead letter has this id"
		                              : NULL, NULL);
	else
		evfn__http_reply_json(req, 200, json_pack("{s:b, s:I}", "ok", 1, "id",
		                               (json_int_t)id));
}

/* ---- dispatch -------------------------------------------------------- */

#define ACTIONS "/dead-letters/"

const char *
evfn__status_resource(size_t i)
{
	static const char *const resources[] = {
		"", "/data", ACTIONS "replay", ACTIONS "delete", ACTIONS "purge",
	};
	return i < EVFN__ARRAY_SIZE(resources) ? resources[i] : NULL;
}

void
evfn__status_serve(evfn_rt *rt, struct evhttp_request *req,
                   const char *rest, const char *token)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *allow = NULL;
	if (strcmp(rest, "") == 0) {
		if (cmd == EVHTTP_REQ_GET) {
			serve_page(req);
			return;
		}
		allow = "GET";
	} else if (strcmp(rest, "/data") == 0) {
		if (cmd == EVHTTP_REQ_GET) {
			serve_data(rt, req);
			return;
		}
		allow = "GET";
	} else if (strncmp(rest, ACTIONS, strlen(ACTIONS)) == 0) {
		const char *action = rest + strlen(ACTIONS);
		if (strcmp(action, "replay") == 0 ||
		    strcmp(action, "delete") == 0 ||
		    strcmp(action, "purge") == 0) {
			if (cmd == EVHTTP_REQ_POST) {
				serve_action(rt, req, action, token);
				return;
			}
			allow = "POST";
		}
	}
	if (!allow) {
		evfn__http_reply_error(req, 404, EVFN_ENOENT, "no such status resource", NULL);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	                  allow);
	evfn__http_reply_error(req, 405, EVFN_EROUTE, "method not allowed for this path", NULL);
}
