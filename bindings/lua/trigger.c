/* SPDX-License-Identifier: MIT */
/*
 * Triggers from Lua: rt:schedule, rt:watch, rt:on_signal and rt:on_fd
 * return a trigger object (next, stats, close) over evfn_trigger, and
 * evfn.next_fire tries a schedule expression out. evfn_rt_free()
 * refuses while triggers are alive, so each runtime object keeps the
 * list of its open triggers and frees them before it closes; a trigger
 * object also holds its runtime object (and the Lua file an fd trigger
 * polls) as user values, so neither is collected while it is reachable.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lua-internal.h"

/* Where a trigger object keeps its runtime and its polled file. */
#define UV_RUNTIME 1
#define UV_FILE 2

/* Room evfn_schedule_parse() needs for any reason. */
#define SCHEDULE_ERR_LEN 128

struct evfnlua_trigger {
	evfn_trigger *t;                /* NULL once closed */
	struct evfnlua_rt *owner;
	struct evfnlua_link link;       /* on the owner's open triggers */
};

static void
close_trigger(struct evfnlua_trigger *tr)
{
	evfnlua_link_remove(&tr->link);
	evfn_trigger_free(tr->t);
	tr->t = NULL;
}

void
evfnlua_triggers_free(struct evfnlua_rt *o)
{
	while (o->triggers)
		close_trigger(EVFNLUA_CONTAINER_OF(o->triggers,
		                                   struct evfnlua_trigger, link));
}

static struct evfnlua_trigger *
check_trigger(lua_State *L)
{
	struct evfnlua_trigger *tr = luaL_checkudata(L, 1, EVFNLUA_TRIGGER);
	if (!tr->t)
		luaL_error(L, "evfn: trigger is closed");
	return tr;
}

static void
free_trigger_options(void *p)
{
	evfn_trigger_options_free(p);
}

/* Pushes the diagnostic of a bad schedule expression (the parser's
 * reason and byte offset) as the error triple, or rc's plain message. */
static int
push_schedule_error(lua_State *L, int rc, const char *expr, const char *tz)
{
	if (rc != EVFN_ESCHEDULE)
		return evfnlua_push_error(L, rc, NULL);
	evfn_schedule *s = NULL;
	size_t off = 0;
	char why[SCHEDULE_ERR_LEN] = "";
	int prc = evfn_schedule_parse(expr, tz, &s, &off, why, sizeof(why));
	evfn_schedule_free(s);
	if (prc != EVFN_ESCHEDULE)
		return evfnlua_push_error(L, rc, NULL);
	lua_pushfstring(L, "%s (at byte %d of \"%s\")", why, (int)off, expr);
	return evfnlua_push_error(L, rc, lua_tostring(L, -1));
}

/* What the option table of a trigger may hold, by kind. */
enum trigger_kind { KIND_SCHEDULE, KIND_WATCH, KIND_SIGNAL, KIND_FD };

static const char *const *
option_names(enum trigger_kind kind)
{
	static const char *const schedule[] = {
		"type", "function", "name", "tz", "missed", "tolerance", NULL,
	};
	static const char *const watch[] = {"type", "function", "name",
	                                    "existing", NULL};
	static const char *const signal_fd[] = {"type", "function", "name",
	                                        NULL};
	switch (kind) {
	case KIND_SCHEDULE:
		return schedule;
	case KIND_WATCH:
		return watch;
	default:
		return signal_fd;
	}
}

/* A string option of the table at t, or NULL when absent. The string
 * stays on the stack (above t) while the caller uses it. */
static const char *
opt_string(lua_State *L, int t, const char *name)
{
	if (t == 0 || lua_getfield(L, t, name) == LUA_TNIL)
		return NULL;
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "%s: expected a string", name);
	return lua_tostring(L, -1);
}

/* Applies the option table at t (0: none) to to; returns 0 or evfn's
 * code. */
static int
apply_trigger_options(lua_State *L, int t, enum trigger_kind kind,
                      evfn_trigger_options *to)
{
	static const char *const policies[] = {"fire_once", "skip", NULL};
	if (t == 0)
		return 0;
	evfnlua_check_keys(L, t, "trigger", option_names(kind));
	int top = lua_gettop(L);
	int rc = 0;
	const char *s = opt_string(L, t, "function");
	if (s)
		rc = evfn_trigger_options_set_function(to, s);
	if (rc == 0 && (s = opt_string(L, t, "name")))
		rc = evfn_trigger_options_set_name(to, s);
	if (rc == 0 && lua_getfield(L, t, "missed") != LUA_TNIL)
		rc = evfn_trigger_options_set_missed(
			to, (evfn_missed_policy)evfnlua_opt_choice(
				    L, -1, "missed", NULL, policies));
	if (rc == 0 && lua_getfield(L, t, "tolerance") != LUA_TNIL)
		rc = evfn_trigger_options_set_tolerance_ms(
			to, evfnlua_check_ms(L, -1, "tolerance"));
	if (rc == 0 && lua_getfield(L, t, "existing") != LUA_TNIL) {
		if (!lua_isboolean(L, -1))
			luaL_error(L, "existing: boolean expected, got %s",
			           luaL_typename(L, -1));
		rc = evfn_trigger_options_set_existing(to,
		                                       lua_toboolean(L, -1));
	}
	lua_settop(L, top);
	return rc;
}

/* What the add functions share: the runtime (stack index 1), the kind's
 * options (table at opts, 0 for none) and where the result goes. */
struct add_args {
	evfn_rt *rt;
	const char *type;
	const evfn_trigger_options *to;
	evfn_trigger **out;
};

typedef int (*add_fn)(const struct add_args *a, void *what);

/* What a schedule trigger is built from (its errors name the expr). */
struct schedule_what {
	const char *expr;
	const char *tz;
};

/* Creates a trigger: pushes the trigger object first (so that a raise
 * later cannot leak the evfn trigger), builds the options, calls add,
 * and links the object into its runtime's list. Returns the Lua result
 * count: the object, or the error triple. */
static int
new_trigger(lua_State *L, int opts, enum trigger_kind kind, add_fn add,
            void *what)
{
	struct evfnlua_rt *o = luaL_checkudata(L, 1, EVFNLUA_RUNTIME);
	if (!o->rt)
		luaL_error(L, "evfn: runtime is closed");
	if (lua_isnoneornil(L, opts))
		opts = 0;
	else
		luaL_checktype(L, opts, LUA_TTABLE);

	evfn_trigger_options *to;
	int rc = evfn_trigger_options_new(&to);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	evfnlua_guard(L, to, free_trigger_options);
	int guard = lua_gettop(L);
	rc = apply_trigger_options(L, opts, kind, to);
	const char *type = rc == 0 ? opt_string(L, opts, "type") : NULL;

	struct evfnlua_trigger *tr = lua_newuserdatauv(L, sizeof(*tr), 2);
	memset(tr, 0, sizeof(*tr));
	luaL_setmetatable(L, EVFNLUA_TRIGGER);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, UV_RUNTIME);
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	struct add_args a = {o->rt, type, to, &tr->t};
	rc = add(&a, what);
	evfnlua_unguard(L, guard);
	evfn_trigger_options_free(to);
	if (rc < 0 && kind == KIND_SCHEDULE) {
		struct schedule_what *w = what;
		return push_schedule_error(L, rc, w->expr, w->tz);
	}
	if (rc < 0)
		return evfnlua_push_error(L, rc, NULL);
	tr->owner = o;
	evfnlua_link_push(&o->triggers, &tr->link);
	return 1;
}

static int
add_schedule(const struct add_args *a, void *what)
{
	struct schedule_what *w = what;
	return evfn_timer_add(a->rt, w->expr, w->tz, a->type, a->to, a->out);
}

/* rt:schedule(expr[, {tz, type, function, name, missed, tolerance}]) */
static int
l_schedule(lua_State *L)
{
	struct schedule_what w = {luaL_checkstring(L, 2), NULL};
	lua_settop(L, 3);
	if (lua_istable(L, 3))
		w.tz = opt_string(L, 3, "tz"); /* stays at index 4 */
	return new_trigger(L, 3, KIND_SCHEDULE, add_schedule, &w);
}

struct watch_what {
	const char *dir;
	const char *glob;
};

static int
add_watch(const struct add_args *a, void *what)
{
	struct watch_what *w = what;
	return evfn_watch_add(a->rt, w->dir, w->glob, a->type, a->to, a->out);
}

/* rt:watch(dir[, glob][, {type, function, name, existing}]) */
static int
l_watch(lua_State *L)
{
	struct watch_what w = {luaL_checkstring(L, 2), NULL};
	int opts = 4;
	if (lua_istable(L, 3))
		opts = 3;
	else
		w.glob = luaL_optstring(L, 3, NULL);
	return new_trigger(L, opts, KIND_WATCH, add_watch, &w);
}

static const struct {
	const char *name;
	int signo;
} signals[] = {
	{"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT},
	{"TERM", SIGTERM}, {"USR1", SIGUSR1},   {"USR2", SIGUSR2},
	{"CHLD", SIGCHLD}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM},
	{"PIPE", SIGPIPE}, {"CONT", SIGCONT},   {"TSTP", SIGTSTP},
};

/* A signal given as a number or a name ("USR1" or "SIGUSR1"). */
static int
check_signal(lua_State *L, int idx)
{
	if (lua_type(L, idx) == LUA_TNUMBER)
		return (int)luaL_checkinteger(L, idx);
	const char *name = luaL_checkstring(L, idx);
	const char *bare = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (strcmp(bare, signals[i].name) == 0)
			return signals[i].signo;
	return luaL_argerror(L, idx, "unknown signal name");
}

static int
add_signal(const struct add_args *a, void *what)
{
	return evfn_signal_add(a->rt, *(int *)what, a->type, a->to, a->out);
}

/* rt:on_signal(signo_or_name[, {type, function, name}]) */
static int
l_on_signal(lua_State *L)
{
	int signo = check_signal(L, 2);
	return new_trigger(L, 3, KIND_SIGNAL, add_signal, &signo);
}

struct fd_what {
	int fd;
	int flags;
};

static int
add_fd(const struct add_args *a, void *what)
{
	struct fd_what *w = what;
	return evfn_fd_add(a->rt, w->fd, w->flags, a->type, a->to, a->out);
}

/* rt:on_fd(fd_or_file, "r"|"w"|"rw"[, {type, function, name}]): a Lua
 * file (io.open, io.popen) is kept open while the trigger lives. */
static int
l_on_fd(lua_State *L)
{
	static const char *const modes[] = {"r", "w", "rw", NULL};
	static const int flags[] = {EVFN_FD_READ, EVFN_FD_WRITE,
	                            EVFN_FD_READ | EVFN_FD_WRITE};
	struct fd_what w = {-1, 0};
	luaL_Stream *file = luaL_testudata(L, 2, LUA_FILEHANDLE);
	if (file) {
		luaL_argcheck(L, file->closef != NULL, 2, "file is closed");
		w.fd = fileno(file->f);
	} else {
		lua_Integer fd = luaL_checkinteger(L, 2);
		luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, 2,
		              "descriptor out of range");
		w.fd = (int)fd;
	}
	w.flags = flags[luaL_checkoption(L, 3, "r", modes)];
	lua_settop(L, 4);
	int n = new_trigger(L, 4, KIND_FD, add_fd, &w);
	if (n == 1 && file) {
		lua_pushvalue(L, 2);
		lua_setiuservalue(L, -2, UV_FILE);
	}
	return n;
}

/* trigger:next() -> seconds since the epoch of the next fire, or nil
 * when the schedule will not fire again. */
static int
l_next(lua_State *L)
{
	struct evfnlua_trigger *tr = check_trigger(L);
	int64_t next_ns;
	int rc = evfn_timer_next(tr->t, &next_ns);
	if (rc < 0)
		return evfnlua_push_error(L, rc, "not a schedule");
	if (rc == 0)
		lua_pushnil(L);
	else
		lua_pushnumber(L, (lua_Number)next_ns / 1e9);
	return 1;
}

/* trigger:stats() -> {fired, refused, shutdown, missed, overflows} */
static int
l_stats(lua_State *L)
{
	static const char *const names[EVFN_TRIGGER_STAT_COUNT] = {
		[EVFN_TRIGGER_STAT_FIRED] = "fired",
		[EVFN_TRIGGER_STAT_REFUSED] = "refused",
		[EVFN_TRIGGER_STAT_SHUTDOWN] = "shutdown",
		[EVFN_TRIGGER_STAT_MISSED] = "missed",
		[EVFN_TRIGGER_STAT_OVERFLOWS] = "overflows",
	};
	struct evfnlua_trigger *tr = check_trigger(L);
	uint64_t values[EVFN_TRIGGER_STAT_COUNT];
	for (int i = 0; i < EVFN_TRIGGER_STAT_COUNT; i++)
		values[i] = evfn_trigger_get_stat(tr->t, (evfn_trigger_stat)i);
	return evfnlua_push_counters(L, names, values,
	                             EVFN_TRIGGER_STAT_COUNT);
}

/* trigger:close(), __close and __gc: stops the trigger; closing twice is
 * a no-op. */
static int
l_close(lua_State *L)
{
	struct evfnlua_trigger *tr = luaL_checkudata(L, 1, EVFNLUA_TRIGGER);
	close_trigger(tr);
	lua_pushboolean(L, 1);
	return 1;
}

static int
l_tostring(lua_State *L)
{
	struct evfnlua_trigger *tr = luaL_checkudata(L, 1, EVFNLUA_TRIGGER);
	lua_pushfstring(L, "evfn.trigger (%s)", tr->t ? "open" : "closed");
	return 1;
}

/* Seconds since the epoch at idx (default: now) as ns. */
static int64_t
check_epoch_ns(lua_State *L, int idx)
{
	if (lua_isnoneornil(L, idx)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	lua_Number s = luaL_checknumber(L, idx);
	luaL_argcheck(L, s >= -9.2e9 && s <= 9.2e9, idx, "out of range");
	return (int64_t)(s * 1e9);
}

/* evfn.next_fire(expr[, tz[, after]]) -> the first fire time after
 * `after` (seconds since the epoch, default now), nil when there is none,
 * or nil, message (with the parser's reason and offset), code. */
int
evfnlua_l_next_fire(lua_State *L)
{
	const char *expr = luaL_checkstring(L, 1);
	const char *tz = luaL_optstring(L, 2, NULL);
	int64_t after = check_epoch_ns(L, 3);
	int64_t next_ns;
	int rc = evfn_schedule_next_expr(expr, tz, after, &next_ns);
	if (rc < 0)
		return push_schedule_error(L, rc, expr, tz);
	if (rc == 0)
		lua_pushnil(L);
	else
		lua_pushnumber(L, (lua_Number)next_ns / 1e9);
	return 1;
}

void
evfnlua_trigger_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"next", l_next},
		{"stats", l_stats},
		{"close", l_close},
		{NULL, NULL},
	};
	evfnlua_handle_class(L, EVFNLUA_TRIGGER, methods, l_close, l_tostring);
	/* The runtime methods that create triggers. */
	static const luaL_Reg rt_methods[] = {
		{"schedule", l_schedule},
		{"watch", l_watch},
		{"on_signal", l_on_signal},
		{"on_fd", l_on_fd},
		{NULL, NULL},
	};
	evfnlua_runtime_methods(L, rt_methods);
}
