/* SPDX-License-Identifier: MIT */
/*
 * What the Redis tests share (test-redis.c, test-redis-faults.c):
 * throwaway redis-server processes on a unix socket in a temporary
 * directory, started, stopped (SIGTERM), killed (SIGKILL) and restarted on
 * the same directory; a synchronous hiredis client for checks; and
 * consumer processes, the test binary re-executed with --consumer, that
 * run one Redis source each and print one line per handler run. Every
 * child process is killed and every directory removed in the teardown,
 * even after a failed assertion.
 */
#ifndef EVFN_TEST_REDIS_HARNESS_H
#define EVFN_TEST_REDIS_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <evfn/redis.h>

#include "harness.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- child processes and temporary directories -------------------------- */

#define MAX_CHILDREN 16
static pid_t children[MAX_CHILDREN];
static char dirs[4][64];

static inline void
track(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (!children[i]) {
			children[i] = pid;
			return;
		}
	fail_msg("too many children");
}

static inline void
untrack(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

/* Sends sig to a tracked child and waits for it; returns its wait
 * status. */
static inline int
reap(pid_t pid, int sig)
{
	int st = 0;
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid) {
			kill(pid, sig);
			waitpid(pid, &st, 0);
			children[i] = 0;
		}
	return st;
}

static inline int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline const char *
new_dir(void)
{
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++)
		if (!dirs[i][0]) {
			strcpy(dirs[i], "/tmp/evfn-redis.XXXXXX");
			assert_non_null(mkdtemp(dirs[i]));
			return dirs[i];
		}
	fail_msg("too many directories");
	return NULL;
}

static inline void
cleanup_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i])
			reap(children[i], SIGKILL);
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++)
		if (dirs[i][0]) {
			nftw(dirs[i], rm_entry, 8, FTW_DEPTH | FTW_PHYS);
			dirs[i][0] = '\0';
		}
}

static inline int
redis_teardown(void **state)
{
	cleanup_children();
	return test_teardown_fds(state);
}

#define RTEST(fn) cmocka_unit_test_setup_teardown(fn, test_setup_fds, redis_teardown)

/* ---- a throwaway redis-server ----------------------------------------- */

enum persistence {
	PERSIST_NONE,
	PERSIST_FSYNC_ALWAYS, /* a SIGKILL of the server loses nothing */
	PERSIST_AOF,          /* appendonly with the default fsync: a SIGTERM
	                       * loses nothing */
};

struct server {
	pid_t pid;
	const char *dir;
	char sock[128];
	char url[160];
	const char *password;
};

/* Gives s its directory and socket, without starting it. */
static inline void
server_prepare(struct server *s)
{
	if (s->dir)
		return;
	s->dir = new_dir();
	snprintf(s->sock, sizeof(s->sock), "%s/r.sock", s->dir);
	snprintf(s->url, sizeof(s->url), "unix://%s", s->sock);
}

static inline redisContext *
connect_cli(const struct server *s)
{
	redisContext *c = redisConnectUnix(s->sock);
	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	if (s->password) {
		redisReply *r = redisCommand(c, "AUTH %s", s->password);
		if (r)
			freeReplyObject(r);
	}
	return c;
}

/* Starts (or restarts, on the same socket and directory) a server and
 * waits until it answers PING. */
static inline void
server_start_with(struct server *s, enum persistence persist,
                  const char *password)
{
	server_prepare(s);
	s->password = password;
	char log[128];
	snprintf(log, sizeof(log), "%s/redis.log", s->dir);
	const char *argv[32] = {"redis-server", "--port", "0", "--unixsocket",
	                        s->sock, "--unixsocketperm", "700", "--save",
	                        "", "--dir", s->dir, "--logfile", log,
	                        "--daemonize", "no", "--databases", "2",
	                        "--appendonly",
	                        persist != PERSIST_NONE ? "yes" : "no"};
	int n = 19;
	if (persist == PERSIST_FSYNC_ALWAYS) {
		argv[n++] = "--appendfsync";
		argv[n++] = "always";
	}
	if (password) {
		argv[n++] = "--requirepass";
		argv[n++] = password;
	}
	argv[n] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Dies with this process, even when it crashes. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execvp("redis-server", (char **)argv);
		_exit(127);
	}
	s->pid = pid;
	track(pid);
	int64_t until = test_now_ms() + 10000;
	for (;;) {
		redisContext *c = connect_cli(s);
		redisReply *r = c ? redisCommand(c, "PING") : NULL;
		bool up = r && r->type == REDIS_REPLY_STATUS;
		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
		if (up)
			return;
		if (test_now_ms() > until)
			fail_msg("redis-server did not start");
		test_sleep_ms(5);
	}
}

static inline void
server_start(struct server *s, bool persist, const char *password)
{
	server_start_with(s, persist ? PERSIST_FSYNC_ALWAYS : PERSIST_NONE,
	                  password);
}

/* SIGKILL: whatever was not written to disk is lost. */
static inline void
server_kill(struct server *s)
{
	reap(s->pid, SIGKILL);
	s->pid = 0;
}

/* SIGTERM: the server writes its append-only file and exits. */
static inline void
server_stop(struct server *s)
{
	int st = reap(s->pid, SIGTERM);
	s->pid = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("redis-server exited with status %d", st);
}

static inline long long
cmd_int(redisContext *c, const char *fmt, const char *a, const char *b)
{
	redisReply *r = redisCommand(c, fmt, a, b);
	assert_non_null(r);
	long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER)
		v = r->element[0]->integer; /* XPENDING summary */
	freeReplyObject(r);
	return v;
}

static inline long long
pending(redisContext *c, const char *stream, const char *group)
{
	return cmd_int(c, "XPENDING %s %s", stream, group);
}

static inline long long
xlen(redisContext *c, const char *stream)
{
	return cmd_int(c, "XLEN %s", stream, NULL);
}

/* Adds entries data=first..first+n-1 (decimal), pipelined. */
/* The number an entry of add_entries() carries as its data, or -1. */
static inline int
entry_number(const evfn_event *ev)
{
	size_t len;
	const char *d = evfn_event_data(ev, &len);
	char buf[16] = "";
	if (!d || len >= sizeof(buf))
		return -1;
	memcpy(buf, d, len);
	return atoi(buf);
}

static inline void
add_entries(redisContext *c, const char *stream, int first, int n)
{
	for (int i = 0; i < n; i++) {
		char v[16];
		snprintf(v, sizeof(v), "%d", first + i);
		redisAppendCommand(c, "XADD %s * data %s", stream, v);
	}
	for (int i = 0; i < n; i++) {
		redisReply *r;
		assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
		assert_int_equal(r->type, REDIS_REPLY_STRING);
		freeReplyObject(r);
	}
}

/* Starts a server with entries data=0..n-1 in stream "s" and returns a
 * client connected to it. */
static inline redisContext *
server_with_entries(struct server *s, enum persistence persist, int n)
{
	server_start_with(s, persist, NULL);
	redisContext *c = connect_cli(s);
	assert_non_null(c);
	add_entries(c, "s", 0, n);
	return c;
}

/* The value of field name in a flat [f, v, ...] reply, or "". */
static inline const char *
field_of(const redisReply *fields, const char *name)
{
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
		if (!strcmp(fields->element[i]->str, name))
			return fields->element[i + 1]->str;
	return "";
}

/* ---- consumer processes: the child side ------------------------------- */

#define MAX_ENTRIES 20000

/*
 * How a consumer process runs its source and its function. 0 leaves a
 * setting at its default. With chaos set, an entry's number decides what
 * its handler does (see chaos_kind()).
 */
struct consumer_spec {
	int delay_ms;          /* each run sleeps this long */
	int batch;             /* 10 */
	int max_in_flight;     /* twice the batch */
	int claim_idle_ms;     /* 300 */
	int claim_interval_ms; /* 100 */
	int concurrency;
	int queue_capacity;
	int timeout_ms;
	int attempts;
	int chaos;
};

static const struct {
	const char *name;
	size_t off;
} spec_fields[] = {
#define SPEC_FIELD(f) {#f, offsetof(struct consumer_spec, f)}
	SPEC_FIELD(delay_ms),      SPEC_FIELD(batch),
	SPEC_FIELD(max_in_flight), SPEC_FIELD(claim_idle_ms),
	SPEC_FIELD(claim_interval_ms), SPEC_FIELD(concurrency),
	SPEC_FIELD(queue_capacity), SPEC_FIELD(timeout_ms),
	SPEC_FIELD(attempts),      SPEC_FIELD(chaos),
#undef SPEC_FIELD
};

/* What a chaos handler does with entry e, by its number: about 2% fail
 * on every attempt (dead-lettered as exhausted), 1% fail for good at
 * once, 5% fail their first attempt, 1% overrun the deadline on their
 * first attempt; the rest succeed. */
enum chaos_kind {
	CHAOS_OK,
	CHAOS_ALWAYS_RETRY,
	CHAOS_FAIL,
	CHAOS_RETRY_ONCE,
	CHAOS_OVERRUN_ONCE
};

static inline enum chaos_kind
chaos_kind(int e)
{
	if (e % 50 == 7)
		return CHAOS_ALWAYS_RETRY;
	if (e % 100 == 13)
		return CHAOS_FAIL;
	if (e % 20 == 3)
		return CHAOS_RETRY_ONCE;
	if (e % 100 == 41)
		return CHAOS_OVERRUN_ONCE;
	return CHAOS_OK;
}

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static struct consumer_spec child_spec;
static volatile sig_atomic_t child_stop;

/* Child side: runs entry e as the spec says and prints "<e> S|F
 * <attempt>" once the run is over, before its outcome reaches the
 * runtime. A run cut short by a SIGKILL prints nothing. */
static inline int
print_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)userdata;
	int e = entry_number(ev);
	unsigned attempt = evfn_ctx_attempt(ctx);
	if (child_spec.delay_ms)
		test_sleep_ms(child_spec.delay_ms);
	int outcome = EVFN_OK;
	switch (child_spec.chaos ? chaos_kind(e) : CHAOS_OK) {
	case CHAOS_OK:
		break;
	case CHAOS_ALWAYS_RETRY:
		outcome = EVFN_RETRY;
		break;
	case CHAOS_FAIL:
		outcome = EVFN_FAIL;
		break;
	case CHAOS_RETRY_ONCE:
		outcome = attempt == 1 ? EVFN_RETRY : EVFN_OK;
		break;
	case CHAOS_OVERRUN_ONCE:
		/* Past the deadline, and a failure even if the deadline did
		 * not fence it in time. */
		if (attempt == 1) {
			test_sleep_ms(evfn_ctx_remaining_ns(ctx) / 1000000 + 50);
			outcome = EVFN_RETRY;
		}
		break;
	}
	char line[48];
	int n = snprintf(line, sizeof(line), "%d %c %u\n", e,
	                 outcome == EVFN_OK ? 'S' : 'F', attempt);
	pthread_mutex_lock(&out_mu);
	ssize_t w = write(1, line, (size_t)n);
	pthread_mutex_unlock(&out_mu);
	return w == n ? outcome : EVFN_FAIL;
}

static inline void
child_on_term(int sig)
{
	(void)sig;
	child_stop = 1;
}

/* --consumer URL STREAM NAME [field=value ...]: runs entries until
 * stdin closes or SIGTERM comes, then stops gracefully: the runtime
 * drains, the source acknowledges what ended, and then it is freed. */
static inline int
consumer_main(int argc, char **argv)
{
	for (int i = 5; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		size_t n = eq ? (size_t)(eq - argv[i]) : 0;
		size_t f = 0;
		while (f < ARRAY_LEN(spec_fields) &&
		       (strlen(spec_fields[f].name) != n ||
		        strncmp(spec_fields[f].name, argv[i], n)))
			f++;
		if (f == ARRAY_LEN(spec_fields))
			return 2;
		*(int *)((char *)&child_spec + spec_fields[f].off) =
			atoi(eq + 1);
	}
	struct consumer_spec *sp = &child_spec;
	int batch = sp->batch ? sp->batch : 10;
	struct sigaction sa = {.sa_handler = child_on_term};
	sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: read() returns */
	signal(SIGPIPE, SIG_IGN);
	evfn_rt *rt;
	evfn_rt_options *ro;
	if (evfn_rt_options_new(&ro) || evfn_rt_options_set_workers(ro, 1, 2) ||
	    evfn_rt_new(&rt, ro))
		return 3;
	evfn_rt_options_free(ro);
	evfn_fn_options *fo;
	if (evfn_fn_options_new(&fo) ||
	    (sp->concurrency &&
	     evfn_fn_options_set_concurrency(fo, sp->concurrency)) ||
	    (sp->queue_capacity &&
	     evfn_fn_options_set_queue_capacity(fo, sp->queue_capacity)) ||
	    (sp->timeout_ms && evfn_fn_options_set_timeout_ms(fo, sp->timeout_ms)) ||
	    (sp->attempts && evfn_fn_options_set_attempts(fo, sp->attempts)) ||
	    evfn_fn_options_set_backoff(fo, EVFN_BACKOFF_FIXED, 10, 1, 10,
	                                EVFN_JITTER_NONE) ||
	    evfn_register(rt, "work", print_handler, NULL, fo, NULL) ||
	    evfn_rt_start(rt))
		return 4;
	evfn_fn_options_free(fo);
	evfn_redis_options *o;
	evfn_redis_source *src;
	if (evfn_redis_options_new(&o) || evfn_redis_options_set_url(o, argv[2]) ||
	    evfn_redis_options_set_group(o, "g", argv[4]) ||
	    evfn_redis_options_set_from_start(o, true) ||
	    evfn_redis_options_set_batch(o, batch, 100) ||
	    evfn_redis_options_set_max_in_flight(
		    o, sp->max_in_flight ? sp->max_in_flight : batch * 2) ||
	    evfn_redis_options_set_claim(
		    o, sp->claim_idle_ms ? sp->claim_idle_ms : 300,
		    sp->claim_interval_ms ? sp->claim_interval_ms : 100) ||
	    evfn_redis_options_set_reconnect(o, 20, 200) ||
	    evfn_redis_source_new(&src, rt, argv[3], "work", o))
		return 5;
	evfn_redis_options_free(o);
	char buf[64];
	while (!child_stop && read(0, buf, sizeof(buf)) != 0)
		;
	/* Nothing more starts; what runs finishes, what waits is handed
	 * back and stays pending for the other consumers. */
	if (evfn_rt_drain(rt, 5000, NULL, NULL))
		return 6;
	int64_t until = test_now_ms() + 5000;
	while (evfn_redis_source_held(src) > 0 && test_now_ms() < until)
		test_sleep_ms(1);
	evfn_redis_source_free(src);
	/* A handler fenced at its deadline may still be sleeping. */
	int rc;
	until = test_now_ms() + 5000;
	while ((rc = evfn_rt_free(rt)) == EVFN_EBUSY &&
	       test_now_ms() < until)
		test_sleep_ms(1);
	return rc ? 7 : 0;
}

/* ---- consumer processes: the parent side ------------------------------ */

/* What the consumers printed, per entry, in total and per consumer slot
 * (a replaced consumer gets a slot of its own). */
#define MAX_SLOTS 8
struct runs {
	int n;
	int *ok;             /* successful runs */
	int *failed;         /* failed runs */
	uint8_t *ok_by;      /* [e * MAX_SLOTS + slot] */
	uint8_t *failed_by;
};

static inline void
runs_init(struct runs *r, int n)
{
	r->n = n;
	r->ok = calloc((size_t)n, sizeof(int));
	r->failed = calloc((size_t)n, sizeof(int));
	r->ok_by = calloc((size_t)n * MAX_SLOTS, 1);
	r->failed_by = calloc((size_t)n * MAX_SLOTS, 1);
	assert_true(r->ok && r->failed && r->ok_by && r->failed_by);
}

static inline void
runs_free(struct runs *r)
{
	free(r->ok);
	free(r->failed);
	free(r->ok_by);
	free(r->failed_by);
}

/* Runs of entry e by slot: successful, or any. */
static inline int
runs_ok_by(const struct runs *r, int e, int slot)
{
	return r->ok_by[(size_t)e * MAX_SLOTS + (size_t)slot];
}

static inline int
runs_by(const struct runs *r, int e, int slot)
{
	return runs_ok_by(r, e, slot) +
	       r->failed_by[(size_t)e * MAX_SLOTS + (size_t)slot];
}

struct consumer {
	pid_t pid;
	int slot;        /* its column in struct runs, < MAX_SLOTS */
	int in, out;     /* its stdin (ours to close), its stdout */
	char buf[256];
	size_t len;
	bool killed;     /* SIGKILLed: its runs may be repeated */
};

/* Starts a consumer process named name on stream with spec (NULL for
 * the defaults) as slot. */
static inline void
consumer_start(struct consumer *k, int slot, const struct server *s,
               const char *stream, const char *name,
               const struct consumer_spec *spec)
{
	int in[2], out[2];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	char args[ARRAY_LEN(spec_fields)][40];
	const char *argv[8 + ARRAY_LEN(spec_fields)] = {
		"test-redis", "--consumer", s->url, stream, name};
	int n = 5;
	for (size_t f = 0; spec && f < ARRAY_LEN(spec_fields); f++) {
		int v = *(const int *)((const char *)spec + spec_fields[f].off);
		if (!v)
			continue;
		snprintf(args[f], sizeof(args[f]), "%s=%d",
		         spec_fields[f].name, v);
		argv[n++] = args[f];
	}
	argv[n] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		execv("/proc/self/exe", (char **)argv);
		_exit(127);
	}
	track(pid);
	close(in[0]);
	close(out[1]);
	memset(k, 0, sizeof(*k));
	assert_true(slot >= 0 && slot < MAX_SLOTS);
	k->pid = pid;
	k->slot = slot;
	k->in = in[1];
	k->out = out[0];
}

static inline void
consumer_line(struct consumer *k, struct runs *r, const char *line)
{
	int e;
	char what;
	unsigned attempt;
	if (sscanf(line, "%d %c %u", &e, &what, &attempt) != 3 || e < 0 ||
	    e >= r->n)
		fail_msg("consumer %d printed \"%s\"", k->slot, line);
	size_t at = (size_t)e * MAX_SLOTS + (size_t)k->slot;
	if (what == 'S') {
		r->ok[e]++;
		r->ok_by[at]++;
	} else {
		r->failed[e]++;
		r->failed_by[at]++;
	}
}

/* Reads what the consumers printed for up to ms into r. */
static inline void
consumers_poll(struct consumer *k, int n, struct runs *r, int ms)
{
	struct pollfd p[MAX_CHILDREN];
	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){.fd = k[i].out, .events = POLLIN};
	if (poll(p, (nfds_t)n, ms) <= 0)
		return;
	for (int i = 0; i < n; i++) {
		if (!(p[i].revents & (POLLIN | POLLHUP)) || k[i].out < 0)
			continue;
		ssize_t got = read(k[i].out, k[i].buf + k[i].len,
		                   sizeof(k[i].buf) - 1 - k[i].len);
		if (got <= 0) {
			close(k[i].out);
			k[i].out = -1;
			continue;
		}
		k[i].len += (size_t)got;
		char *nl;
		while ((nl = memchr(k[i].buf, '\n', k[i].len))) {
			*nl = '\0';
			consumer_line(&k[i], r, k[i].buf);
			size_t used = (size_t)(nl + 1 - k[i].buf);
			memmove(k[i].buf, nl + 1, k[i].len - used);
			k[i].len -= used;
		}
	}
}

/* SIGKILLs a consumer, after reading what it printed. */
static inline void
consumer_kill(struct consumer *k, struct runs *r)
{
	reap(k->pid, SIGKILL);
	k->pid = 0;
	k->killed = true;
	close(k->in);
	k->in = -1;
	while (k->out >= 0)
		consumers_poll(k, 1, r, 1000);
}

/* Stops consumers gracefully (stdin closed) and reads the rest of what
 * they print; each must exit with status 0. */
static inline void
consumers_stop(struct consumer *k, int n, struct runs *r)
{
	for (int i = 0; i < n; i++)
		if (k[i].in >= 0) {
			close(k[i].in);
			k[i].in = -1;
		}
	for (int i = 0; i < n; i++) {
		while (r && k[i].out >= 0)
			consumers_poll(&k[i], 1, r, 1000);
		if (k[i].pid) {
			int st;
			assert_int_equal(waitpid(k[i].pid, &st, 0), k[i].pid);
			untrack(k[i].pid);
			k[i].pid = 0;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				fail_msg("consumer %d exited with %d", i, st);
		}
		if (k[i].out >= 0)
			close(k[i].out);
		k[i].out = -1;
	}
}

/* Number of entries that succeeded at least once. */
static inline int
succeeded_count(const struct runs *r)
{
	int c = 0;
	for (int i = 0; i < r->n; i++)
		c += r->ok[i] > 0;
	return c;
}

#endif /* EVFN_TEST_REDIS_HARNESS_H */
