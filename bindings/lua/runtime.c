/* SPDX-License-Identifier: MIT */
/*
 * The runtime object: evfn.runtime{...} and its methods. Each runtime is
 * embedded in an event_base the binding owns, and the methods that drive
 * that base (run, run_once, invoke, drain, close) do so on the calling
 * thread, so the loop thread is the Lua thread and closures registered
 * here run in this Lua state. Failures of evfn calls come back as
 * nil, message, code; wrong argument types and unknown options raise.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <evfn/libevent.h>

#include "lua-internal.h"

/* How long drain, close, <close> and the collector wait for work in
 * flight unless told otherwise (evfn.runtime{grace = s}). */
#define DEFAULT_GRACE_MS 5000

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static int threads_rc;

static void
enable_threads(void)
{
	threads_rc = evthread_use_pthreads();
}

static struct evfnlua_rt *
check_rt(lua_State *L)
{
	struct evfnlua_rt *o = luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
	if (!o->rt)
		luaL_error(L, "evfn: runtime is closed");
	return o;
}

evfn_rt *
evfnlua_toruntime(lua_State *L, int idx)
{
	struct evfnlua_rt *o = luaL_testudata(L, idx, EVFNLUA_RUNTIME);
	return o ? o->rt : NULL;
}

/* Methods that let evfn or libevent call back into Lua make L the thread
 * those callbacks use, and restore the previous one when they return:
 * the caller's thread may be a coroutine that is gone later. */
static lua_State *
enter(struct evfnlua_rt *o, lua_State *L)
{
	lua_State *prev = o->vm.L;
	o->vm.L = L;
	o->depth++;
	return prev;
}

static void
leave(struct evfnlua_rt *o, lua_State *prev)
{
	o->depth--;
	o->vm.L = prev;
}

static void
raise_cb_error(struct evfnlua_rt *o, lua_State *L)
{
	if (!o->cb_error)
		return;
	lua_pushstring(L, o->cb_error);
	free(o->cb_error);
	o->cb_error = NULL;
	lua_error(L);
}

static void
timer_cb(int fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(((struct evfnlua_rt *)arg)->base);
}

/* One pass of the loop: waits up to ms for something to happen (0: not
 * at all), runs what is ready, and returns. */
static void
arm_timer(struct evfnlua_rt *o, int64_t ms)
{
	struct timeval tv = {.tv_sec = ms / 1000,
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(o->timer, &tv);
}

static void
loop_once(struct evfnlua_rt *o, int64_t ms)
{
	if (ms <= 0) {
		event_base_loop(o->base, EVLOOP_NONBLOCK);
		return;
	}
	arm_timer(o, ms);
	event_base_loop(o->base, EVLOOP_ONCE);
	evtimer_del(o->timer);
}

static void
free_options(void *p)
{
	evfn_rt_options_free(p);
}

/* Reads workers = {min, max} or workers = n (both n); a count that does
 * not fit an int is out of range, not wrapped (2^32 + 2 is no 2). */
static int
set_workers(lua_State *L, int t, evfn_rt_options *ro)
{
	int type = lua_getfield(L, t, "workers");
	int rc = 0, min = 0, max = 0;
	if (type == LUA_TTABLE) {
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		min = evfnlua_opt_int(L, -2, "workers[1]", &rc);
		max = evfnlua_opt_int(L, -1, "workers[2]", &rc);
		lua_pop(L, 2);
	} else if (type != LUA_TNIL) {
		if (!lua_isnumber(L, -1))
			luaL_error(L, "workers: {min, max} or a number "
			              "expected, got %s",
			           luaL_typename(L, -1));
		min = max = evfnlua_opt_int(L, -1, "workers", &rc);
	}
	if (rc == 0 && type != LUA_TNIL)
		rc = evfn_rt_options_set_workers(ro, min, max);
	lua_pop(L, 1);
	return rc;
}

/* Applies evfn.runtime's option table at t; on failure *opt names the
 * option evfn refused. */
static int
apply_rt_options(lua_State *L, int t, evfn_rt_options *ro,
                 struct evfnlua_rt *o, const char **opt)
{
	static const char *const names[] = {"workers", "idle_timeout",
	                                    "source", "on_record", "grace",
	                                    "journal", "journal_mode", NULL};
	evfnlua_check_keys(L, t, "evfn.runtime", names);
	int type = lua_getfield(L, t, "on_record");
	if (type != LUA_TNIL && type != LUA_TFUNCTION)
		luaL_error(L, "on_record: function expected, got %s",
		           luaL_typename(L, -1));
	lua_pop(L, 1);
	int top = lua_gettop(L);
	*opt = "workers";
	int rc = set_workers(L, t, ro);
	if (rc == 0 && evfnlua_option(L, t, "idle_timeout", opt))
		rc = evfn_rt_options_set_idle_timeout_ms(
			ro, evfnlua_check_ms(L, -1, "idle_timeout"));
	if (rc == 0 && evfnlua_option(L, t, "source", opt))
		rc = evfn_rt_options_set_source(
			ro, evfnlua_opt_string(L, -1, "source"));
	if (rc == 0 && evfnlua_option(L, t, "grace", opt))
		o->grace_ms = evfnlua_check_ms(L, -1, "grace");
	if (rc == 0 && evfnlua_option(L, t, "journal", opt)) {
		/* journal_mode: "durable" (the default) or "fast". */
		static const char *const modes[] = {"durable", "fast", NULL};
		lua_getfield(L, t, "journal_mode");
		int mode = luaL_checkoption(L, -1, "durable", modes);
		lua_pop(L, 1);
		rc = evfn_rt_options_set_journal(
			ro, evfnlua_opt_string(L, -1, "journal"),
			mode ? EVFN_JOURNAL_FAST : EVFN_JOURNAL_DURABLE);
	}
	lua_settop(L, top);
	return rc;
}

int
evfnlua_l_runtime(lua_State *L)
{
	bool has_opts = !lua_isnoneornil(L, 1);
	if (has_opts)
		luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	evfn_rt_options *ro;
	int rc = evfn_rt_options_new(&ro);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	evfnlua_guard(L, ro, free_options);

	struct evfnlua_rt *o = lua_newuserdatauv(L, sizeof(*o), 0);
	memset(o, 0, sizeof(*o));
	o->grace_ms = DEFAULT_GRACE_MS;
	o->opener = lua_tocfunction(L, lua_upvalueindex(1));
	luaL_setmetatable(L, EVFNLUA_RUNTIME);
	const char *opt = NULL;
	if (has_opts && (rc = apply_rt_options(L, 1, ro, o, &opt)) < 0)
		return evfnlua_push_error(L, rc, opt);
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	o->main = lua_tothread(L, -1);
	lua_pop(L, 1);
	o->vm.L = o->main;

	/* libevent's locks must be on before the base exists: workers
	 * complete attempts and wake the loop from their own threads. */
	pthread_once(&threads_once, enable_threads);
	if (threads_rc != 0)
		return evfnlua_push_error(L, EVFN_ENOMEM, "libevent threads");
	o->base = event_base_new();
	if (o->base)
		o->timer = evtimer_new(o->base, timer_cb, o);
	if (!o->base || !o->timer)
		return evfnlua_push_error(L, EVFN_ENOMEM, NULL);
	rc = evfn_rt_options_set_event_base(ro, o->base);
	if (rc == 0 && has_opts &&
	    lua_getfield(L, 1, "on_record") == LUA_TFUNCTION) {
		rc = evfnlua_log_new(o, L, lua_gettop(L));
		if (rc == 0)
			rc = evfnlua_log_attach(o, ro);
	}
	if (rc == 0)
		rc = evfn_rt_new(&o->rt, ro);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	lua_settop(L, 3); /* the runtime object */
	return 1;
}

/* Releases what the runtime object holds besides the evfn runtime. */
static void
release(struct evfnlua_rt *o)
{
	evfnlua_log_free(o, o->main);
	evfnlua_vm_clear(&o->vm);
	if (o->timer)
		event_free(o->timer);
	o->timer = NULL;
	if (o->base)
		event_base_free(o->base);
	o->base = NULL;
	free(o->cb_error);
	o->cb_error = NULL;
}

static void
fn_release(struct evfnlua_fn *f, lua_State *L)
{
	if (!f)
		return;
	if (f->ref != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, f->ref);
	free(f->module);
	free(f->path);
	free(f->cpath);
	free(f);
}

/* The userdata destructor evfn calls at evfn_rt_free(), from within
 * close or the collector, where vm.L is the thread running them. */
static void
fn_free(void *userdata)
{
	struct evfnlua_fn *f = userdata;
	fn_release(f, f->owner->vm.L);
}

static int
loop_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct evfnlua_fn *f = userdata;
	return evfnlua_call_run(&f->owner->vm, f->ref, ctx, ev, f->owner);
}

static void
loop_cancel(evfn_ctx *ctx, void *userdata)
{
	struct evfnlua_fn *f = userdata;
	evfnlua_call_cancel(f->owner, ctx);
}

static void
free_fn_options(void *p)
{
	evfn_fn_options_free(p);
}

static int
set_backoff(lua_State *L, int t, evfn_fn_options *fo)
{
	static const char *const names[] = {
		"kind", "base", "multiplier", "cap", "jitter", NULL,
	};
	static const char *const kinds[] = {"fixed", "linear", "exponential",
	                                    NULL};
	static const char *const jitters[] = {"none", "full", "equal",
	                                      "decorrelated", NULL};
	evfnlua_opt_table(L, t, "backoff");
	evfnlua_check_keys(L, t, "backoff", names);
	int top = lua_gettop(L);
	lua_getfield(L, t, "kind");
	int kind = evfnlua_opt_choice(L, -1, "backoff.kind", "exponential",
	                              kinds);
	lua_getfield(L, t, "base");
	int64_t base = lua_isnil(L, -1) ? 100
	                                : evfnlua_check_ms(L, -1, "backoff.base");
	lua_getfield(L, t, "multiplier");
	double mult = lua_isnil(L, -1)
	                      ? 2.0
	                      : evfnlua_opt_number(L, -1, "backoff.multiplier");
	lua_getfield(L, t, "cap");
	int64_t cap = lua_isnil(L, -1) ? (base > 30000 ? base : 30000)
	                               : evfnlua_check_ms(L, -1, "backoff.cap");
	lua_getfield(L, t, "jitter");
	int jitter = evfnlua_opt_choice(L, -1, "backoff.jitter", "full",
	                                jitters);
	lua_settop(L, top);
	return evfn_fn_options_set_backoff(fo, (evfn_backoff)kind, base, mult,
	                                   cap, (evfn_jitter)jitter);
}

/* destinations = {on_success = name, on_failure = name} */
static int
set_destinations(lua_State *L, int t, evfn_fn_options *fo)
{
	static const char *const names[] = {"on_success", "on_failure", NULL};
	evfnlua_opt_table(L, t, "destinations");
	evfnlua_check_keys(L, t, "destinations", names);
	lua_getfield(L, t, "on_success");
	lua_getfield(L, t, "on_failure");
	const char *ok =
		lua_isnil(L, -2)
			? NULL
			: evfnlua_opt_string(L, -2, "destinations.on_success");
	const char *fail =
		lua_isnil(L, -1)
			? NULL
			: evfnlua_opt_string(L, -1, "destinations.on_failure");
	int rc = evfn_fn_options_set_destinations(fo, ok, fail);
	lua_pop(L, 2);
	return rc;
}

/* idempotency = {window = seconds}: the key is the event id (a key
 * function would run under a core lock, where Lua cannot). */
static int
set_idempotency(lua_State *L, int t, evfn_fn_options *fo)
{
	static const char *const names[] = {"window", NULL};
	evfnlua_opt_table(L, t, "idempotency");
	evfnlua_check_keys(L, t, "idempotency", names);
	lua_getfield(L, t, "window");
	int64_t ms = evfnlua_check_ms(L, -1, "idempotency.window");
	lua_pop(L, 1);
	return evfn_fn_options_set_idempotency(fo, ms, NULL);
}

/* The integer option on top of the stack, which must lie in
 * [min, max] (an int): 0 and *n, or EVFN_ERANGE. */
static int
int_option(lua_State *L, const char *what, int min, int max, int *n)
{
	int rc = 0;
	*n = evfnlua_opt_int(L, -1, what, &rc);
	return rc < 0 || *n < min || *n > max ? EVFN_ERANGE : 0;
}

/* Applies register()'s option table at t to fo; on failure *opt names
 * the option evfn refused. */
static int
apply_fn_options(lua_State *L, int t, evfn_fn_options *fo, const char **opt)
{
	static const char *const names[] = {
		"timeout", "attempts", "backoff", "max_age", "concurrency",
		"queue", "max_stuck", "destinations", "idempotency", "batch",
		"rate", "breaker", NULL,
	};
	evfnlua_check_keys(L, t, "register", names);
	int rc = 0, n = 0;
	int top = lua_gettop(L);
	if (evfnlua_option(L, t, "timeout", opt))
		rc = evfn_fn_options_set_timeout_ms(
			fo, evfnlua_check_ms(L, -1, "timeout"));
	if (rc == 0 && evfnlua_option(L, t, "attempts", opt) &&
	    (rc = int_option(L, "attempts", 1, 1000, &n)) == 0)
		rc = evfn_fn_options_set_attempts(fo, n);
	if (rc == 0 && evfnlua_option(L, t, "max_age", opt))
		rc = evfn_fn_options_set_max_age_ms(
			fo, evfnlua_check_ms(L, -1, "max_age"));
	if (rc == 0 && evfnlua_option(L, t, "concurrency", opt) &&
	    (rc = int_option(L, "concurrency", 1, INT32_MAX, &n)) == 0)
		rc = evfn_fn_options_set_concurrency(fo, n);
	if (rc == 0 && evfnlua_option(L, t, "queue", opt))
		rc = evfn_fn_options_set_queue_capacity(
			fo, evfnlua_opt_integer(L, -1, "queue"));
	if (rc == 0 && evfnlua_option(L, t, "backoff", opt))
		rc = set_backoff(L, lua_gettop(L), fo);
	if (rc == 0 && evfnlua_option(L, t, "max_stuck", opt) &&
	    (rc = int_option(L, "max_stuck", 1, INT32_MAX, &n)) == 0)
		rc = evfn_fn_options_set_max_stuck(fo, n);
	if (rc == 0 && evfnlua_option(L, t, "destinations", opt))
		rc = set_destinations(L, lua_gettop(L), fo);
	if (rc == 0 && evfnlua_option(L, t, "idempotency", opt))
		rc = set_idempotency(L, lua_gettop(L), fo);
	lua_settop(L, top);
	if (rc == 0)
		rc = evfnlua_flow_options(L, t, fo, opt);
	return rc;
}

/* rt:register(name, handler, opts): handler is a function (runs on the
 * loop in this state) or a module name (runs on the pool, one Lua state
 * per worker). */
static int
l_register(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	const char *name = luaL_checkstring(L, 2);
	int ht = lua_type(L, 3);
	luaL_argexpected(L, ht == LUA_TFUNCTION || ht == LUA_TSTRING, 3,
	                 "function or module name");
	if (!lua_isnoneornil(L, 4))
		luaL_checktype(L, 4, LUA_TTABLE);
	lua_settop(L, 4);
	evfn_fn_options *fo;
	int rc = evfn_fn_options_new(&fo);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	evfnlua_guard(L, fo, free_fn_options);
	const char *opt = NULL;
	if (!lua_isnil(L, 4) && (rc = apply_fn_options(L, 4, fo, &opt)) < 0)
		return evfnlua_push_error(L, rc, opt);

	struct evfnlua_fn *f = calloc(1, sizeof(*f));
	if (!f)
		return evfnlua_push_error(L, EVFN_ENOMEM, NULL);
	f->owner = o;
	f->ref = LUA_NOREF;
	evfn_handler handler;
	if (ht == LUA_TFUNCTION) {
		lua_pushvalue(L, 3);
		f->ref = luaL_ref(L, LUA_REGISTRYINDEX);
		evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP);
		evfn_fn_options_set_cancel_hook(fo, loop_cancel);
		handler = loop_handler;
	} else {
		rc = evfnlua_fn_module(L, 3, f);
		if (rc < 0) {
			fn_release(f, L);
			return evfnlua_push_error(L, rc, lua_tostring(L, -1));
		}
		evfn_fn_options_set_worker_hooks(fo, evfnlua_worker_init,
		                                 evfnlua_worker_fini);
		handler = evfnlua_pool_handler;
	}
	evfn_fn_options_set_userdata_free(fo, fn_free);
	rc = evfn_register(o->rt, name, handler, f, fo, NULL);
	if (rc < 0)
		fn_release(f, L); /* refused: the userdata is still ours */
	return evfnlua_push_rc(L, rc);
}

static int
l_subscribe(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	const char *pattern = luaL_checkstring(L, 2);
	const char *name = luaL_checkstring(L, 3);
	return evfnlua_push_rc(L, evfn_subscribe(o->rt, pattern, name));
}

static int
push_seq(lua_State *L, int rc, uint64_t seq)
{
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	lua_pushinteger(L, (lua_Integer)seq);
	return 1;
}

/* rt:emit(topic, data[, attrs]) -> seq */
static int
l_emit(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	const char *topic = luaL_checkstring(L, 2);
	uint64_t seq = 0;
	if (lua_isnoneornil(L, 4)) {
		size_t len = 0;
		const char *d = luaL_optlstring(L, 3, "", &len);
		return push_seq(L, evfn_emit(o->rt, topic, d, len, &seq), seq);
	}
	evfn_event *ev;
	int rc = evfnlua_event_build(L, topic, 3, 4, &ev);
	if (rc == 0) {
		rc = evfn_publish(o->rt, ev, &seq);
		evfn_event_unref(ev);
	}
	return push_seq(L, rc, seq);
}

/* The events rt:emit_many builds, dropped by a guard if a Lua error
 * (a wrong type in an item) cuts the building short. */
struct emit_batch {
	size_t n;
	evfn_event *evs[];
};

static void
free_emit_batch(void *p)
{
	struct emit_batch *b = p;
	for (size_t i = 0; i < b->n; i++)
		evfn_event_unref(b->evs[i]);
	free(b);
}

/* rt:emit_many({{topic, data[, attrs]}, ...}) -> first seq, count: all
 * or none (evfn_publish_batch()); the events have first .. first+count-1
 * in order. */
static int
l_emit_many(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	size_t n = (size_t)lua_rawlen(L, 2);
	struct emit_batch *b =
		malloc(sizeof(*b) + (n ? n : 1) * sizeof(b->evs[0]));
	if (!b)
		return evfnlua_push_error(L, EVFN_ENOMEM, NULL);
	b->n = 0;
	evfnlua_guard(L, b, free_emit_batch);
	int guard = lua_gettop(L);
	int rc = 0;
	for (size_t i = 1; i <= n && rc == 0; i++) {
		if (lua_rawgeti(L, 2, (lua_Integer)i) != LUA_TTABLE)
			return luaL_error(L, "emit_many: item %d: table "
			                  "{topic, data[, attrs]} expected, "
			                  "got %s", (int)i, luaL_typename(L, -1));
		int item = lua_gettop(L);
		lua_rawgeti(L, item, 1);
		lua_rawgeti(L, item, 2);
		lua_rawgeti(L, item, 3);
		if (lua_type(L, item + 1) != LUA_TSTRING)
			return luaL_error(L, "emit_many: item %d: topic "
			                  "(string) expected, got %s", (int)i,
			                  luaL_typename(L, item + 1));
		const char *topic = lua_tostring(L, item + 1);
		rc = evfnlua_event_build(L, topic, item + 2,
		                         lua_isnil(L, item + 3) ? 0 : item + 3,
		                         &b->evs[b->n]);
		b->n += rc == 0;
		lua_settop(L, guard);
	}
	uint64_t first = 0;
	if (rc == 0)
		rc = evfn_publish_batch(o->rt, NULL, b->evs, n, &first);
	evfnlua_unguard(L, guard);
	free_emit_batch(b);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	lua_pushinteger(L, (lua_Integer)first);
	lua_pushinteger(L, (lua_Integer)n);
	return 2;
}

/* What a synchronous invoke waits for, filled by its result callback. */
struct sync_wait {
	bool done;
	int code;
	char *resp;
	size_t resp_len;
	char *error;
	unsigned attempts;
};

static char *
copy_bytes(const void *p, size_t len)
{
	char *s = malloc(len + 1);
	if (s) {
		if (len)
			memcpy(s, p, len);
		s[len] = '\0';
	}
	return s;
}

static void
sync_done(const evfn_result *res, void *arg)
{
	struct sync_wait *w = arg;
	size_t len = 0;
	const void *d = evfn_result_data(res, &len);
	const char *err = evfn_result_error(res);
	w->code = evfn_result_code(res);
	w->resp = copy_bytes(d, d ? len : 0);
	w->resp_len = d ? len : 0;
	w->error = err ? copy_bytes(err, strlen(err)) : NULL;
	w->attempts = evfn_result_attempts(res);
	w->done = true;
}

/* rt:invoke(name, data[, attrs]) -> response (a string, "" for none), or
 * nil, message, code with the handler's last error in the message. Runs
 * the loop until the outcome is known, so it may not be called from a
 * handler or result callback of this runtime (EVFN_EDEADLK). */
static int
l_invoke(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	const char *name = luaL_checkstring(L, 2);
	if (o->depth > 0)
		return evfnlua_push_error(L, EVFN_EDEADLK, NULL);
	if (!o->started)
		return evfnlua_push_error(L, EVFN_ENOTRUNNING, NULL);
	evfn_event *ev;
	int rc = evfnlua_event_build(L, name, 3, 4, &ev);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	struct sync_wait w = {0};
	rc = evfn_submit(o->rt, name, ev, sync_done, &w, NULL);
	evfn_event_unref(ev);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	/* The callback runs exactly once, on this loop: drive it until
	 * then. Nothing below raises, so w outlives the callback. */
	lua_State *prev = enter(o, L);
	while (!w.done)
		loop_once(o, 100);
	leave(o, prev);
	int n;
	if (w.code == 0 && w.resp) {
		lua_pushlstring(L, w.resp, w.resp_len);
		n = 1;
	} else if (w.code == 0) {
		n = evfnlua_push_error(L, EVFN_ENOMEM, "response");
	} else {
		n = evfnlua_push_error(L, w.code, w.error);
	}
	free(w.resp);
	free(w.error);
	raise_cb_error(o, L);
	return n;
}

/* A Lua callback waiting for an event's outcome. */
struct async_cb {
	struct evfnlua_rt *owner;
	int ref;
};

static void
push_result(lua_State *L, const evfn_result *res)
{
	int code = evfn_result_code(res);
	lua_createtable(L, 0, 8);
	lua_pushboolean(L, code == 0);
	lua_setfield(L, -2, "ok");
	lua_pushinteger(L, code);
	lua_setfield(L, -2, "code");
	size_t len;
	const char *d = evfn_result_data(res, &len);
	if (d) {
		lua_pushlstring(L, d, len);
		lua_setfield(L, -2, "response");
	}
	const char *err = evfn_result_error(res);
	if (err) {
		lua_pushstring(L, err);
		lua_setfield(L, -2, "error");
	}
	lua_pushinteger(L, evfn_result_attempts(res));
	lua_setfield(L, -2, "attempts");
	lua_newtable(L);
	const char *key;
	const char *v;
	for (size_t i = 0; (v = evfn_result_meta_at(res, i, &key)); i++) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, key);
	}
	lua_setfield(L, -2, "meta");
	evfnlua_push_event(L, evfn_result_event(res));
	lua_setfield(L, -2, "event");
}

static int
deliver_cf(lua_State *L)
{
	const evfn_result *res = lua_touserdata(L, 1);
	struct async_cb *a = lua_touserdata(L, 2);
	lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
	push_result(L, res);
	lua_call(L, 1, 0);
	return 0;
}

static void
async_done(const evfn_result *res, void *arg)
{
	struct async_cb *a = arg;
	struct evfnlua_rt *o = a->owner;
	lua_State *L = o->vm.L;
	lua_pushcfunction(L, deliver_cf);
	lua_pushlightuserdata(L, (void *)res);
	lua_pushlightuserdata(L, a);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK)
		evfnlua_keep_cb_error(o, L);
	luaL_unref(L, LUA_REGISTRYINDEX, a->ref);
	free(a);
}

/* rt:invoke_async(name, data[, attrs][, callback]) -> seq. With a
 * callback, it is called once with the outcome table (ok, code, response,
 * error, attempts, meta, event) on the loop. */
static int
l_invoke_async(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	const char *name = luaL_checkstring(L, 2);
	int cb = 0;
	int attrs = 4;
	if (lua_isfunction(L, 4)) {
		cb = 4;
		attrs = 0;
	} else if (lua_isfunction(L, 5)) {
		cb = 5;
	} else if (!lua_isnoneornil(L, 5)) {
		luaL_typeerror(L, 5, "function");
	}
	evfn_event *ev;
	int rc = evfnlua_event_build(L, name, 3, attrs, &ev);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	uint64_t seq = 0;
	if (!cb) {
		rc = evfn_publish_to(o->rt, name, ev, &seq);
		evfn_event_unref(ev);
		return push_seq(L, rc, seq);
	}
	struct async_cb *a = malloc(sizeof(*a));
	if (!a) {
		evfn_event_unref(ev);
		return evfnlua_push_error(L, EVFN_ENOMEM, NULL);
	}
	a->owner = o;
	lua_pushvalue(L, cb);
	a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	rc = evfn_submit(o->rt, name, ev, async_done, a, &seq);
	evfn_event_unref(ev);
	if (rc < 0) {
		luaL_unref(L, LUA_REGISTRYINDEX, a->ref);
		free(a);
	}
	return push_seq(L, rc, seq);
}

static int
l_stats(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	const char *name = luaL_optstring(L, 2, NULL);
	evfn_stats *s;
	int rc = evfn_stats_take(o->rt, name, &s);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	const char *names[EVFN_STAT_COUNT];
	uint64_t values[EVFN_STAT_COUNT];
	for (int i = 0; i < EVFN_STAT_COUNT; i++) {
		names[i] = evfn_stat_name((evfn_stat)i);
		values[i] = evfn_stats_value(s, (evfn_stat)i);
	}
	evfn_stats_free(s);
	return evfnlua_push_counters(L, names, values, EVFN_STAT_COUNT);
}

static int
l_start(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	int rc = evfn_rt_start(o->rt);
	if (rc == 0)
		o->started = true;
	return evfnlua_push_rc(L, rc);
}

static int
start_if_needed(struct evfnlua_rt *o)
{
	if (o->started || o->drained)
		return 0;
	int rc = evfn_rt_start(o->rt);
	if (rc == 0)
		o->started = true;
	return rc;
}

/* rt:run([seconds]): drives the loop until rt:stop() or, given, until
 * that many seconds have passed. Starts the runtime first if needed. */
static int
l_run(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	int64_t ms = lua_isnoneornil(L, 2) ? -1 : evfnlua_check_ms(L, 2, "run");
	if (o->depth > 0)
		return evfnlua_push_error(L, EVFN_EDEADLK, NULL);
	int rc = start_if_needed(o);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	lua_State *prev = enter(o, L);
	if (ms >= 0)
		arm_timer(o, ms);
	event_base_loop(o->base, EVLOOP_NO_EXIT_ON_EMPTY);
	evtimer_del(o->timer);
	leave(o, prev);
	raise_cb_error(o, L);
	lua_pushboolean(L, 1);
	return 1;
}

/* rt:run_once([seconds]): runs what is ready, waiting up to seconds
 * (default 0) for something to happen first. */
static int
l_run_once(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	int64_t ms = lua_isnoneornil(L, 2) ? 0
	                                   : evfnlua_check_ms(L, 2, "run_once");
	if (o->depth > 0)
		return evfnlua_push_error(L, EVFN_EDEADLK, NULL);
	int rc = start_if_needed(o);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	lua_State *prev = enter(o, L);
	loop_once(o, ms);
	leave(o, prev);
	raise_cb_error(o, L);
	lua_pushboolean(L, 1);
	return 1;
}

static int
l_stop(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	event_base_loopbreak(o->base);
	lua_pushboolean(L, 1);
	return 1;
}

struct handback {
	struct evfnlua_rt *owner;
	int cb;                     /* stack index of the Lua callback */
};

static int
handback_cf(lua_State *L)
{
	const evfn_event *ev = lua_touserdata(L, 1);
	const char *fn_name = lua_touserdata(L, 2);
	lua_pushvalue(L, 3);
	evfnlua_push_event(L, ev);
	lua_pushstring(L, fn_name);
	lua_call(L, 2, 0);
	return 0;
}

static void
handback(const evfn_event *ev, const char *fn_name, void *arg)
{
	struct handback *h = arg;
	lua_State *L = h->owner->vm.L;
	lua_pushcfunction(L, handback_cf);
	lua_pushlightuserdata(L, (void *)ev);
	lua_pushlightuserdata(L, (void *)fn_name);
	lua_pushvalue(L, h->cb);
	if (lua_pcall(L, 3, 0, 0) != LUA_OK)
		evfnlua_keep_cb_error(h->owner, L);
}

static int
drain(struct evfnlua_rt *o, lua_State *L, int64_t grace_ms, int cb)
{
	struct handback h = {o, cb};
	lua_State *prev = enter(o, L);
	int rc = evfn_rt_drain(o->rt, grace_ms, cb ? handback : NULL, &h);
	leave(o, prev);
	if (rc == 0 || rc == EVFN_ETIMEDOUT)
		o->drained = true;
	return rc;
}

/* rt:drain([grace][, callback]) -> true, or nil, message, code
 * (EVFN_ETIMEDOUT when work was still in flight after grace seconds). */
static int
l_drain(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	int64_t ms = lua_isnoneornil(L, 2) ? o->grace_ms
	                                   : evfnlua_check_ms(L, 2, "drain");
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TFUNCTION);
	lua_settop(L, 3);
	if (o->depth > 0)
		return evfnlua_push_error(L, EVFN_EDEADLK, NULL);
	int rc = drain(o, L, ms, lua_isnil(L, 3) ? 0 : 3);
	raise_cb_error(o, L);
	return evfnlua_push_rc(L, rc);
}

/* Drains (if needed) and frees the runtime, driving the loop while its
 * last attempts finish: grace_ms bounds the whole wait, drain included.
 * Returns 0, or the code that kept it open (EVFN_EBUSY: a handler still
 * runs; the runtime stays usable and a later close may succeed). */
static int
close_rt(struct evfnlua_rt *o, lua_State *L, int64_t grace_ms)
{
	if (!o->rt) {
		release(o); /* also what a failed evfn.runtime() built */
		return 0;
	}
	if (o->depth > 0)
		return EVFN_EDEADLK;
	int64_t until = evfnlua_now_ns() + grace_ms * 1000000;
	evfnlua_triggers_free(o);
	evfnlua_servers_free(o);
#ifdef EVFNLUA_HAVE_PG
	evfnlua_pg_sources_free(o);
#endif
	if (o->started && !o->drained) {
		int rc = drain(o, L, grace_ms, 0);
		if (rc < 0 && rc != EVFN_ETIMEDOUT)
			return rc;
	}
	/* Handlers fenced at their deadline may still run (stuck in C):
	 * evfn_rt_free() refuses until they return. Loop handlers
	 * finish only while the loop runs, hence the loop, not a sleep. */
	lua_State *prev = enter(o, L);
	int rc;
	while ((rc = evfn_rt_free(o->rt)) == EVFN_EBUSY) {
		int64_t left_ms = (until - evfnlua_now_ns()) / 1000000;
		if (left_ms <= 0)
			break;
		loop_once(o, left_ms < 10 ? left_ms : 10);
	}
	if (rc == 0)
		evfnlua_log_flush(o); /* the records of the last moments */
	leave(o, prev);
	if (rc < 0)
		return rc;
	o->rt = NULL;
	release(o);
	return 0;
}

/* rt:close([grace]) -> true, or nil, message, code. */
static int
l_close(lua_State *L)
{
	struct evfnlua_rt *o = luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
	int64_t ms = lua_isnoneornil(L, 2) ? o->grace_ms
	                                   : evfnlua_check_ms(L, 2, "close");
	int rc = close_rt(o, L, ms);
	raise_cb_error(o, L);
	return evfnlua_push_rc(L, rc);
}

/* __gc: as close() with the runtime's grace; a runtime that cannot be
 * freed (a handler stuck in C code past the grace) is left behind with
 * a warning rather than freed under its threads (which is safe: the
 * module stays loaded, see module.c). The collector cannot raise. */
static int
l_gc(lua_State *L)
{
	struct evfnlua_rt *o = luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
	int rc = close_rt(o, L, o->grace_ms);
	if (rc < 0)
		lua_warning(L, "evfn: runtime not freed: work still in flight",
		            0);
	free(o->cb_error);
	o->cb_error = NULL;
	return 0;
}

/* __close (leaving the scope of `local rt <close>`): as close() with the
 * runtime's grace. A failure raises, as Python's `with` does, unless the
 * scope is being left by an error (argument 2): that error goes on and
 * the failure becomes a warning, so it never masks what is propagating. */
static int
l_close_scope(lua_State *L)
{
	struct evfnlua_rt *o = luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
	bool unwinding = !lua_isnoneornil(L, 2);
	int rc = close_rt(o, L, o->grace_ms);
	if (unwinding) {
		if (o->cb_error) {
			lua_warning(L, "evfn: a callback raised while closing: ",
			            1);
			lua_warning(L, o->cb_error, 0);
		}
		free(o->cb_error);
		o->cb_error = NULL;
		if (rc < 0)
			lua_warning(L, "evfn: runtime not freed: work still "
			               "in flight",
			            0);
		return 0;
	}
	raise_cb_error(o, L);
	if (rc < 0) {
		evfnlua_push_error(L, rc, "runtime not closed");
		lua_pop(L, 1); /* the code: the message is the error */
		lua_error(L);
	}
	return 0;
}

static int
l_tostring(lua_State *L)
{
	struct evfnlua_rt *o = luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
	lua_pushfstring(L, "evfn.runtime (%s)", o->rt ? "open" : "closed");
	return 1;
}

static int
l_workers(lua_State *L)
{
	struct evfnlua_rt *o = check_rt(L);
	lua_pushinteger(L, evfn_rt_workers(o->rt));
	return 1;
}

void
evfnlua_runtime_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"register", l_register},
		{"subscribe", l_subscribe},
		{"emit", l_emit},
		{"emit_many", l_emit_many},
		{"invoke", l_invoke},
		{"invoke_async", l_invoke_async},
		{"stats", l_stats},
		{"start", l_start},
		{"run", l_run},
		{"run_once", l_run_once},
		{"stop", l_stop},
		{"drain", l_drain},
		{"close", l_close},
		{"workers", l_workers},
		{NULL, NULL},
	};
	evfnlua_handle_class(L, EVFNLUA_RUNTIME, methods, l_gc, l_tostring);
	luaL_getmetatable(L, EVFNLUA_RUNTIME);
	lua_pushcfunction(L, l_close_scope);
	lua_setfield(L, -2, "__close");
	lua_pop(L, 1);
}
