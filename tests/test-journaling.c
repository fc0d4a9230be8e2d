/* SPDX-License-Identifier: MIT */
/*
 * The runtime with a journal (journaling.c and the hooks in admit.c and
 * dispatch.c): the option, events that outlive a runtime, orphans, dead
 * letters that replay after a restart, a damaged file, a full disk; and
 * the crash tests, which SIGKILL a host process (journaling-host.c,
 * named by EVFN_JOURNALING_HOST) under load again and again and check,
 * from what it logged, that every published event ended, at most once
 * per process, and what ran again after a kill the tail of what each
 * worker had finished (the ends that had not reached the disk).
 * EVFN_JOURNAL_KILLS sets how many kills in a row (default 12).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"
#include "faulty-vfs.h"
#include "common-internal.h"
#include "journaling-internal.h"

struct tmp {
	char dir[64];
	char path[96]; /* the journal */
	char log[96];  /* the host's log */
};

static void
tmp_make(struct tmp *t)
{
	const char *base = getenv("TMPDIR");
	snprintf(t->dir, sizeof(t->dir), "%s/evfn-journaling-XXXXXX",
	         base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/journal.db", t->dir);
	snprintf(t->log, sizeof(t->log), "%s/host.log", t->dir);
}

static void
tmp_remove(struct tmp *t)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
	char p[128];
	for (size_t i = 0; i < EVFN__ARRAY_SIZE(suffixes); i++) {
		snprintf(p, sizeof(p), "%s%s", t->path, suffixes[i]);
		unlink(p);
	}
	unlink(t->log);
	assert_int_equal(rmdir(t->dir), 0);
}

/* A runtime journaling to path in mode. */
static evfn_rt *
journaled_rt(const char *path, evfn_journal_mode mode, bool keep_handed_back)
{
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_workers(o, 1, 2));
	ASSERT_OK(evfn_rt_options_set_journal(o, path, mode));
	ASSERT_OK(evfn_rt_options_set_journal_keep_handed_back(
		o, keep_handed_back));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	return rt;
}

/* ---- handlers ------------------------------------------------------------ */

static atomic_int ran;        /* calls that succeeded */
static atomic_int fail_them;  /* non-zero: handlers fail for good */
static pthread_mutex_t payload_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_payload[64]; /* of the latest call, under payload_lock */

/* Whether the latest call's payload was want. */
static bool
last_payload_is(const char *want)
{
	pthread_mutex_lock(&payload_lock);
	bool same = strcmp(last_payload, want) == 0;
	pthread_mutex_unlock(&payload_lock);
	return same;
}

static int
count_handler(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)userdata;
	if (atomic_load(&fail_them))
		return EVFN_FAIL;
	size_t len;
	const void *data = evfn_event_data(ev, &len);
	if (len < sizeof(last_payload)) {
		pthread_mutex_lock(&payload_lock);
		memcpy(last_payload, data, len);
		last_payload[len] = '\0';
		pthread_mutex_unlock(&payload_lock);
	}
	atomic_fetch_add(&ran, 1);
	return EVFN_OK;
}

static void
register_counter(evfn_rt *rt, const char *name)
{
	ASSERT_OK(evfn_register(rt, name, count_handler, NULL, NULL, NULL));
}

/* A journaled runtime on path with the counting function f, started. */
static evfn_rt *
started_rt(const char *path, evfn_journal_mode mode, bool keep)
{
	evfn_rt *rt = journaled_rt(path, mode, keep);
	register_counter(rt, "f");
	ASSERT_OK(evfn_rt_start(rt));
	return rt;
}

static void
stop_rt(evfn_rt *rt)
{
	ASSERT_OK(evfn_rt_drain(rt, 5000, NULL, NULL));
	ASSERT_OK(evfn_rt_free(rt));
}

/* ---- the option ---------------------------------------------------------- */

static void
test_journaling_option_refuses_bad_arguments(void **state)
{
	(void)state;
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_RC(evfn_rt_options_set_journal(NULL, "j.db",
	                                      EVFN_JOURNAL_DURABLE),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_rt_options_set_journal(o, "", EVFN_JOURNAL_DURABLE),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_rt_options_set_journal(o, "j.db",
	                                      (evfn_journal_mode)7),
	          EVFN_EINVAL);
	char longpath[5000];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	ASSERT_RC(evfn_rt_options_set_journal(o, longpath,
	                                      EVFN_JOURNAL_FAST),
	          EVFN_ENAMETOOLONG);
	ASSERT_RC(evfn_rt_options_set_journal_keep_handed_back(NULL, true),
	          EVFN_EINVAL);
	/* NULL turns it off again. */
	ASSERT_OK(evfn_rt_options_set_journal(o, "j.db", EVFN_JOURNAL_FAST));
	ASSERT_OK(evfn_rt_options_set_journal(o, NULL, EVFN_JOURNAL_FAST));
	evfn_rt_options_free(o);
	ASSERT_EQ(evfn_rt_journal_orphans(NULL), 0);
}

static void
test_journaling_publish_before_start_is_refused(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	evfn_rt *rt = journaled_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	register_counter(rt, "f");
	/* Not journaled yet: refused rather than kept in memory only. */
	ASSERT_RC(evfn_invoke_async(rt, "f", "x", 1, NULL), EVFN_ENOTRUNNING);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 0);
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_OK(evfn_invoke_async(rt, "f", "x", 1, NULL));
	stop_rt(rt);
	tmp_remove(&t);
}

/* ---- across a restart ---------------------------------------------------- */

/* Publishes n events to paused function f of a journaled runtime, drains
 * it (they are handed back) and frees it. */
static void
publish_paused_then_drain(const char *path, evfn_journal_mode mode,
                          bool keep, int n)
{
	evfn_rt *rt = started_rt(path, mode, keep);
	ASSERT_OK(evfn_pause(rt, "f"));
	for (int i = 0; i < n; i++) {
		char data[32], id[32];
		snprintf(data, sizeof(data), "payload %d", i);
		snprintf(id, sizeof(id), "id-%d", i);
		ASSERT_OK(test_publish_to(rt, "f", data,
		                          (struct test_event_attrs){
						  .id = id, .key = "k"},
		                          NULL));
	}
	ASSERT_OK(evfn_rt_drain(rt, 5000, NULL, NULL));
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_HANDED_BACK), n);
	ASSERT_OK(evfn_rt_free(rt));
}

static void
test_journaling_handed_back_events_run_after_restart(void **state)
{
	(void)state;
	for (int mode = EVFN_JOURNAL_DURABLE; mode <= EVFN_JOURNAL_FAST;
	     mode++) {
		struct tmp t;
		tmp_make(&t);
		publish_paused_then_drain(t.path, (evfn_journal_mode)mode,
		                          true, 50);
		atomic_store(&ran, 0);
		evfn_rt *rt = started_rt(t.path, (evfn_journal_mode)mode,
		                           true);
		WAIT_FOR(atomic_load(&ran) == 50, 10000);
		/* In publish order (one ordering key), payload kept. */
		assert_true(last_payload_is("payload 49"));
		ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 50);
		ASSERT_OK(evfn_rt_drain(rt, 5000, NULL, NULL));
		assert_accounting(rt, "f");
		ASSERT_OK(evfn_rt_free(rt));
		/* They ended: a third start finds nothing. */
		rt = started_rt(t.path, (evfn_journal_mode)mode, true);
		ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 0);
		stop_rt(rt);
		tmp_remove(&t);
	}
}

static void
test_journaling_discarded_hand_backs_do_not_return(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	publish_paused_then_drain(t.path, EVFN_JOURNAL_DURABLE, false, 10);
	evfn_rt *rt = started_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 0);
	stop_rt(rt);
	tmp_remove(&t);
}

static void
test_journaling_orphans_stay_and_are_counted(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	publish_paused_then_drain(t.path, EVFN_JOURNAL_DURABLE, true, 20);
	/* f is not registered: its events stay, counted and logged. */
	evfn_rt_options *o;
	ASSERT_OK(evfn_rt_options_new(&o));
	ASSERT_OK(evfn_rt_options_set_journal(o, t.path,
	                                      EVFN_JOURNAL_DURABLE));
	test_log_reset();
	ASSERT_OK(evfn_rt_options_set_log(o, test_log_capture, NULL));
	evfn_rt *rt;
	ASSERT_OK(evfn_rt_new(&rt, o));
	evfn_rt_options_free(o);
	register_counter(rt, "g");
	ASSERT_OK(evfn_rt_start(rt));
	ASSERT_EQ(evfn_rt_journal_orphans(rt), 20);
	assert_true(test_log_contains("20 invocations of functions not "
	                              "registered (f"));
	stop_rt(rt);
	/* Registered again, f gets them all. */
	atomic_store(&ran, 0);
	rt = started_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	ASSERT_EQ(evfn_rt_journal_orphans(rt), 0);
	WAIT_FOR(atomic_load(&ran) == 20, 10000);
	stop_rt(rt);
	tmp_remove(&t);
}

static void
test_journaling_dead_letters_replay_after_restart(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	evfn_rt *rt = started_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	atomic_store(&fail_them, 1);
	for (int i = 0; i < 3; i++)
		ASSERT_OK(evfn_invoke_async(rt, "f", "dl", 2, NULL));
	WAIT_FOR(evfn_dead_letter_count(rt) == 3, 10000);
	evfn_dead_letter *dls[3];
	ASSERT_EQ(evfn_dead_letters(rt, dls, 3, 0), 3);
	uint64_t ids[3];
	char event_id[32];
	snprintf(event_id, sizeof(event_id), "%s",
	         evfn_event_id(evfn_dead_letter_event(dls[0])));
	for (int i = 0; i < 3; i++) {
		ids[i] = evfn_dead_letter_id(dls[i]);
		evfn_dead_letter_unref(dls[i]);
	}
	/* One deleted before the restart stays deleted. */
	ASSERT_OK(evfn_dead_letter_delete(rt, ids[2]));
	stop_rt(rt);

	atomic_store(&fail_them, 0);
	atomic_store(&ran, 0);
	rt = started_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	ASSERT_EQ(evfn_dead_letter_count(rt), 2);
	ASSERT_EQ(evfn_dead_letters(rt, dls, 2, 0), 2);
	ASSERT_EQ(evfn_dead_letter_id(dls[0]), ids[0]);
	ASSERT_EQ(evfn_dead_letter_id(dls[1]), ids[1]);
	/* The default id came back from the sequence number. */
	ASSERT_EQ(strcmp(evfn_event_id(evfn_dead_letter_event(dls[0])),
	                 event_id),
	          0);
	ASSERT_EQ(evfn_dead_letter_code(dls[0]), EVFN_EFAILED);
	ASSERT_EQ(strcmp(evfn_dead_letter_function(dls[0]), "f"), 0);
	evfn_dead_letter_unref(dls[0]);
	evfn_dead_letter_unref(dls[1]);
	ASSERT_OK(evfn_dead_letter_replay(rt, ids[0]));
	WAIT_FOR(atomic_load(&ran) == 1, 10000);
	assert_true(last_payload_is("dl"));
	/* New dead letters continue above the journal's ids. */
	atomic_store(&fail_them, 1);
	ASSERT_OK(evfn_invoke_async(rt, "f", "dl", 2, NULL));
	WAIT_FOR(evfn_dead_letter_count(rt) == 2, 10000);
	ASSERT_EQ(evfn_dead_letters(rt, dls, 2, 0), 2);
	assert_true(evfn_dead_letter_id(dls[1]) > ids[2]);
	evfn_dead_letter_unref(dls[0]);
	evfn_dead_letter_unref(dls[1]);
	atomic_store(&fail_them, 0);
	stop_rt(rt);

	/* The replayed one is gone for good, the new one kept. */
	rt = started_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	ASSERT_EQ(evfn_dead_letter_count(rt), 2);
	ASSERT_EQ(evfn_dead_letter_purge(rt), 2);
	stop_rt(rt);
	rt = started_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	ASSERT_EQ(evfn_dead_letter_count(rt), 0);
	stop_rt(rt);
	tmp_remove(&t);
}

/* A runtime on path whose function f answers a key once per minute. */
static evfn_rt *
idempotent_rt(const char *path)
{
	evfn_rt *rt = journaled_rt(path, EVFN_JOURNAL_DURABLE, true);
	evfn_fn_options *o;
	ASSERT_OK(evfn_fn_options_new(&o));
	ASSERT_OK(evfn_fn_options_set_idempotency(o, 60000, NULL));
	ASSERT_OK(evfn_register(rt, "f", count_handler, NULL, o, NULL));
	evfn_fn_options_free(o);
	ASSERT_OK(evfn_rt_start(rt));
	return rt;
}

static void
test_journaling_idempotency_keys_survive_a_restart(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	atomic_store(&ran, 0);
	evfn_rt *rt = idempotent_rt(t.path);
	ASSERT_OK(test_publish_to(rt, "f", "once",
	                          (struct test_event_attrs){.id = "pay-1"},
	                          NULL));
	WAIT_FOR(atomic_load(&ran) == 1, 10000);
	WAIT_FOR(stat_of(rt, "f", EVFN_STAT_SUCCEEDED) == 1, 10000);
	stop_rt(rt);
	/* The same id after a restart is answered, not run again; a new
	 * one runs. */
	rt = idempotent_rt(t.path);
	ASSERT_OK(test_publish_to(rt, "f", "again",
	                          (struct test_event_attrs){.id = "pay-1"},
	                          NULL));
	ASSERT_OK(test_publish_to(rt, "f", "new",
	                          (struct test_event_attrs){.id = "pay-2"},
	                          NULL));
	WAIT_FOR(stat_of(rt, "f", EVFN_STAT_SUCCEEDED) == 2, 10000);
	ASSERT_EQ(atomic_load(&ran), 2);
	stop_rt(rt);
	tmp_remove(&t);
}

/* ---- a damaged file, a full disk ------------------------------------------ */

static void
test_journaling_damaged_file_is_refused_at_start(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	int fd = open(t.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	char junk[8192];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)test_mix64(i);
	ASSERT_EQ(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	evfn_rt *rt = journaled_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	register_counter(rt, "f");
	ASSERT_RC(evfn_rt_start(rt), EVFN_ECORRUPT);
	/* Left unstarted, and freed without trouble. */
	ASSERT_RC(evfn_invoke_async(rt, "f", "x", 1, NULL), EVFN_ENOTRUNNING);
	ASSERT_OK(evfn_rt_free(rt));
	tmp_remove(&t);
}

static void
use_faulty_vfs(struct evfn__journal_options *o)
{
	o->vfs = "evfn-faulty";
}

/* A started runtime in mode whose journal's options tune sets (a disk
 * that counts fsyncs, and fails when told to). */
static evfn_rt *
tuned_rt(const char *path, evfn_journal_mode mode,
         void (*tune)(struct evfn__journal_options *))
{
	faulty_register();
	faults_clear();
	evfn__journaling_tune = tune;
	return started_rt(path, mode, true);
}

/* The disk counts fsyncs, and the flush interval outlasts the test: only
 * a waiting call (a durable publish, drain's sync) makes a commit. */
static void
use_counting_vfs_without_flush(struct evfn__journal_options *o)
{
	o->vfs = "evfn-faulty";
	o->flush_ns = 60 * EVFN__NS_PER_SEC;
	o->sync_ns = o->flush_ns;
}

/* Durable mode, one producer: each attempt's start and end ride with the
 * next publish's commit instead of forcing commits of their own, so an
 * event costs one fsync (it cost two to three); and drain commits the
 * last end, so nothing runs again after a restart. */
static void
test_journaling_durable_one_producer_pays_one_fsync_per_event(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	evfn_rt *rt = tuned_rt(t.path, EVFN_JOURNAL_DURABLE,
	                       use_counting_vfs_without_flush);
	atomic_store(&ran, 0);
	const int n = 40;
	int before = atomic_load(&syncs);
	for (int i = 1; i <= n; i++) {
		ASSERT_OK(evfn_invoke_async(rt, "f", "x", 1, NULL));
		/* Its attempt ran before the next publish. */
		WAIT_FOR(atomic_load(&ran) == i, 10000);
	}
	/* One fsync a commit, one commit a publish; and one more: SQLite
	 * syncs a fresh write-ahead log's header with its first commit. */
	int fsyncs = atomic_load(&syncs) - before;
	assert_true(fsyncs >= n && fsyncs <= n + 1);
	stop_rt(rt);
	evfn__journaling_tune = NULL;
	rt = started_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	ASSERT_OK(evfn_invoke_async(rt, "f", "last", 4, NULL));
	WAIT_FOR(last_payload_is("last"), 10000);
	ASSERT_EQ(atomic_load(&ran), n + 1);
	stop_rt(rt);
	tmp_remove(&t);
}

/* Durable mode: a batch is journaled in one append, so it costs one
 * fsync, not one per event, and keeps consecutive sequence numbers; all
 * of it comes back after a restart. */
static void
test_journaling_durable_batch_shares_one_fsync(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	evfn_rt *rt = tuned_rt(t.path, EVFN_JOURNAL_DURABLE,
	                       use_counting_vfs_without_flush);
	ASSERT_OK(evfn_pause(rt, "f"));
	/* The first commit of a fresh log also syncs its header. */
	ASSERT_OK(evfn_invoke_async(rt, "f", "first", 5, NULL));
	enum { N = 64 };
	evfn_event *evs[N];
	for (int i = 0; i < N; i++)
		ASSERT_OK(evfn_event_new(&evs[i], "f", "batch", 5));
	int before = atomic_load(&syncs);
	uint64_t first;
	ASSERT_OK(evfn_publish_batch(rt, "f", evs, N, &first));
	ASSERT_EQ(atomic_load(&syncs) - before, 1);
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(evfn_event_seq(evs[i]), first + (uint64_t)i);
		evfn_event_unref(evs[i]);
	}
	stop_rt(rt);
	evfn__journaling_tune = NULL;
	atomic_store(&ran, 0);
	rt = started_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	WAIT_FOR(atomic_load(&ran) == N + 1, 10000);
	stop_rt(rt);
	tmp_remove(&t);
}

/* A started runtime in mode on a disk that works until told to fail,
 * its function f paused so that what it accepts stays journaled. */
static evfn_rt *
faulty_disk_rt(const char *path, evfn_journal_mode mode)
{
	evfn_rt *rt = tuned_rt(path, mode, use_faulty_vfs);
	ASSERT_OK(evfn_pause(rt, "f"));
	return rt;
}

static void
test_journaling_full_disk_refuses_admission_and_loses_nothing(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	evfn_rt *rt = faulty_disk_rt(t.path, EVFN_JOURNAL_DURABLE);
	ASSERT_OK(evfn_invoke_async(rt, "f", "before", 6, NULL));
	atomic_store(&fail_writes, ENOSPC);
	/* Refused with the disk's error; the event stays the caller's. */
	evfn_event *ev;
	ASSERT_OK(evfn_event_new(&ev, "f", "full", 4));
	ASSERT_RC(evfn_publish_to(rt, "f", ev, NULL), EVFN_ENOSPC);
	ASSERT_EQ(evfn_event_seq(ev), 0);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 1);
	atomic_store(&fail_writes, EIO);
	ASSERT_RC(evfn_publish_to(rt, "f", ev, NULL), EVFN_EJOURNAL);
	faults_clear();
	/* Publishable again once the disk has room. */
	ASSERT_OK(evfn_publish_to(rt, "f", ev, NULL));
	evfn_event_unref(ev);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 2);
	stop_rt(rt);
	evfn__journaling_tune = NULL;

	/* Exactly the two accepted ones come back. */
	atomic_store(&ran, 0);
	rt = started_rt(t.path, EVFN_JOURNAL_DURABLE, true);
	WAIT_FOR(atomic_load(&ran) == 2, 10000);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 2);
	stop_rt(rt);
	tmp_remove(&t);
}

/* A batch is journaled whole or not at all: in both modes a batch
 * publish of a paused function comes back after a restart, every event
 * of it; a batch the disk refuses is refused whole, its events the
 * caller's, and none of them comes back. */
static void
test_journaling_batch_all_or_nothing(void **state)
{
	(void)state;
	for (int mode = EVFN_JOURNAL_DURABLE; mode <= EVFN_JOURNAL_FAST;
	     mode++) {
		struct tmp t;
		tmp_make(&t);
		evfn_rt *rt = faulty_disk_rt(t.path, (evfn_journal_mode)mode);
		evfn_event *evs[8];
		for (int i = 0; i < 8; i++)
			ASSERT_OK(evfn_event_new(&evs[i], "f", "batch", 5));
		uint64_t first;
		ASSERT_OK(evfn_publish_batch(rt, "f", evs, 5, &first));
		ASSERT_EQ(evfn_event_seq(evs[4]), first + 4);
		if (mode == EVFN_JOURNAL_DURABLE) {
			atomic_store(&fail_writes, ENOSPC);
			ASSERT_RC(evfn_publish_batch(rt, "f", &evs[5], 3, NULL),
			          EVFN_ENOSPC);
			for (int i = 5; i < 8; i++)
				ASSERT_EQ(evfn_event_seq(evs[i]), 0);
			ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 5);
			faults_clear();
		}
		for (int i = 0; i < 8; i++)
			evfn_event_unref(evs[i]);
		stop_rt(rt);
		evfn__journaling_tune = NULL;
		atomic_store(&ran, 0);
		rt = started_rt(t.path, (evfn_journal_mode)mode, true);
		WAIT_FOR(atomic_load(&ran) == 5, 10000);
		ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), 5);
		stop_rt(rt);
		tmp_remove(&t);
	}
}

/* Fast mode: appends return before their commit, so the first ones of a
 * full disk are accepted; once a commit has failed, admission is refused
 * until one succeeds, and what was accepted meanwhile is written then. */
static void
test_journaling_fast_mode_full_disk_refuses_and_keeps_the_accepted(
	void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	evfn_rt *rt = faulty_disk_rt(t.path, EVFN_JOURNAL_FAST);
	atomic_store(&fail_writes, ENOSPC);
	int accepted = 0, rc;
	int64_t until = test_now_ms() + 10000;
	while ((rc = evfn_invoke_async(rt, "f", "x", 1, NULL)) == 0) {
		accepted++;
		if (test_now_ms() > until)
			fail_msg("never refused");
		test_sleep_ms(1);
	}
	ASSERT_RC(rc, EVFN_ENOSPC);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), accepted);
	faults_clear();
	/* Taken again once a commit succeeds. */
	WAIT_FOR(evfn_invoke_async(rt, "f", "x", 1, NULL) == 0, 10000);
	accepted++;
	stop_rt(rt);
	evfn__journaling_tune = NULL;

	atomic_store(&ran, 0);
	rt = started_rt(t.path, EVFN_JOURNAL_FAST, true);
	WAIT_FOR(atomic_load(&ran) == accepted, 10000);
	ASSERT_EQ(stat_of(rt, "f", EVFN_STAT_ACCEPTED), accepted);
	stop_rt(rt);
	tmp_remove(&t);
}

/* ---- crash tests: a host process killed again and again ----------------- */

static int
kills_wanted(void)
{
	const char *s = getenv("EVFN_JOURNAL_KILLS");
	int n = s ? atoi(s) : 0;
	return n > 0 ? n : 12;
}

/* Runs the host: GEN, N events, extra arguments (NULL-terminated). */
static pid_t
host_spawn(const struct tmp *t, int gen, int n, const char *const *extra)
{
	const char *host = getenv("EVFN_JOURNALING_HOST");
	assert_non_null(host);
	char gen_s[16], n_s[16];
	snprintf(gen_s, sizeof(gen_s), "%d", gen);
	snprintf(n_s, sizeof(n_s), "%d", n);
	const char *argv[16] = {host, t->path, t->log, gen_s, "durable", n_s};
	int argc = 6;
	for (; extra && *extra && argc < 15; extra++)
		argv[argc++] = *extra;
	argv[argc] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execv(host, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Waits up to ms for pid to exit; returns its status, or -1. */
static int
host_wait(pid_t pid, int64_t ms)
{
	int64_t until = test_now_ms() + ms;
	for (;;) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (test_now_ms() > until)
			return -1;
		test_sleep_ms(2);
	}
}

static void
host_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	int status = host_wait(pid, 10000);
	assert_true(status != -1);
	/* Killed by us, not dead of its own failure. */
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("host exited with status %d before the kill", status);
}

static void
host_final(const struct tmp *t, int gen)
{
	const char *final[] = {"final", NULL};
	pid_t pid = host_spawn(t, gen, 0, final);
	int status = host_wait(pid, 60000);
	if (status == -1) {
		kill(pid, SIGKILL);
		(void)host_wait(pid, 10000);
		fail_msg("the final host did not finish");
	}
	ASSERT_EQ(WIFEXITED(status) && WEXITSTATUS(status) == 0, 1);
}

/* Whether the host's log holds a line starting with prefix. */
static bool
log_has(const struct tmp *t, const char *prefix)
{
	FILE *f = fopen(t->log, "re");
	if (!f)
		return false;
	char line[256];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strncmp(line, prefix, strlen(prefix)) == 0;
	fclose(f);
	return found;
}

/* What the log says of one invocation (function a or b, id gG-N). */
struct inv_seen {
	bool published;
	int ok;            /* successful runs */
	int last_ok_gen;   /* 0: none */
	int ok_thread;     /* where the latest success ran: its thread's */
	int ok_pos;        /* slot in gen, and its place among them */
	unsigned ok_attempt; /* the attempt of the latest success */
	unsigned attempt;  /* the latest attempt started */
	bool failed;       /* failed for good (F) at least once */
	char dead[32];     /* its dead letter's code at the end, or "" */
};

/* The successes one worker thread of one process logged, in order, and
 * how many of them ran again in a later process. */
struct thread_oks {
	long tid;
	int count;
	int reruns;
	int first_rerun; /* the place of the first that ran again */
};

#define MAX_GENS 128
#define MAX_THREADS 16

struct crash_log {
	int gens, per_gen;
	struct inv_seen *v; /* [fn][gen][i] */
	int reruns;         /* successes again after a crash */
	int reruns_by_gen[MAX_GENS]; /* by the process of the earlier one */
	struct thread_oks threads[MAX_GENS][MAX_THREADS];
	bool invariant_a, invariant_b, quiet;
	unsigned long long orphans;
};

static struct inv_seen *
seen(struct crash_log *c, char fn, const char *id)
{
	int g, i;
	if ((fn != 'a' && fn != 'b') || sscanf(id, "g%d-%d", &g, &i) != 2 ||
	    g >= MAX_GENS ||
	    g < 1 || g > c->gens || i < 0 || i >= c->per_gen)
		fail_msg("unexpected invocation %c %s in the log", fn, id);
	return &c->v[((fn - 'a') * c->gens + (g - 1)) * c->per_gen + i];
}

/* The slot of thread tid among those of process gen. */
static int
thread_slot(struct crash_log *c, int gen, long tid)
{
	for (int i = 0; i < MAX_THREADS; i++) {
		struct thread_oks *t = &c->threads[gen][i];
		if (t->tid == tid || t->tid == 0) {
			t->tid = tid;
			return i;
		}
	}
	fail_msg("more than %d worker threads in process %d", MAX_THREADS,
	         gen);
	return 0;
}

/* Reads the log back, checking on the way that no process ran an
 * invocation to success twice, and counting the successes run again in
 * a later process: those whose end had not reached the disk when their
 * process was killed. */
static void
crash_log_read(struct crash_log *c, const struct tmp *t)
{
	FILE *f = fopen(t->log, "re");
	assert_non_null(f);
	char line[256], fn[8], id[64], code[32];
	int gen;
	unsigned attempt;
	long tid;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "P %d %63s", &gen, id) == 2) {
			seen(c, 'a', id)->published = true;
			seen(c, 'b', id)->published = true;
		} else if (sscanf(line, "S %d %7s %63s %u", &gen, fn, id,
		                  &attempt) == 4) {
			if (fn[0] != 'c')
				seen(c, fn[0], id)->attempt = attempt;
		} else if (sscanf(line, "O %d %7s %63s %ld", &gen, fn, id,
		                  &tid) == 4) {
			struct inv_seen *s = seen(c, fn[0], id);
			if (s->last_ok_gen == gen)
				fail_msg("%s %s succeeded twice in process %d",
				         fn, id, gen);
			if (s->ok) {
				/* Its attempts count on from what the journal
				 * had: the start of the attempt that succeeded
				 * (when it reached the disk before the kill)
				 * and the crash. */
				if (s->attempt < s->ok_attempt)
					fail_msg("%s %s ran again at attempt %u "
					         "after a success at attempt %u",
					         fn, id, s->attempt,
					         s->ok_attempt);
				c->reruns++;
				c->reruns_by_gen[s->last_ok_gen]++;
				struct thread_oks *th =
					&c->threads[s->last_ok_gen][s->ok_thread];
				if (th->reruns++ == 0 ||
				    s->ok_pos < th->first_rerun)
					th->first_rerun = s->ok_pos;
			}
			s->ok++;
			s->last_ok_gen = gen;
			s->ok_attempt = s->attempt;
			s->ok_thread = thread_slot(c, gen, tid);
			s->ok_pos = c->threads[gen][s->ok_thread].count++;
		} else if (sscanf(line, "F %d %7s %63s", &gen, fn, id) == 3) {
			seen(c, fn[0], id)->failed = true;
		} else if (sscanf(line, "D %7s %63s %31s", fn, id, code) == 3) {
			if (fn[0] != 'c')
				snprintf(seen(c, fn[0], id)->dead,
				         sizeof(seen(c, fn[0], id)->dead), "%s",
				         code);
		} else if (strncmp(line, "I a ok", 6) == 0) {
			c->invariant_a = true;
		} else if (strncmp(line, "I b ok", 6) == 0) {
			c->invariant_b = true;
		} else if (sscanf(line, "Q orphans %llu", &c->orphans) == 1) {
			c->quiet = true;
		}
	}
	fclose(f);
}

/* Every published invocation ended: succeeded, or is a dead letter for
 * a reason it may have (a for good failure; or crashes that used up its
 * attempts); nothing succeeded and was dead-lettered unless it crashed. */
static void
crash_log_check(struct crash_log *c)
{
	assert_true(c->quiet);
	assert_true(c->invariant_a);
	assert_true(c->invariant_b);
	ASSERT_EQ(c->orphans, 0);
	int published = 0;
	for (int fn = 0; fn < 2; fn++)
		for (int g = 1; g <= c->gens; g++)
			for (int i = 0; i < c->per_gen; i++) {
				char id[32];
				snprintf(id, sizeof(id), "g%d-%d", g, i);
				struct inv_seen *s = seen(c, (char)('a' + fn), id);
				if (!s->published)
					continue;
				published++;
				bool permanent = fn == 0 && i % 10 == 7;
				if (permanent && !s->dead[0])
					fail_msg("a %s failed for good but is no "
					         "dead letter", id);
				if (permanent && s->ok)
					fail_msg("a %s succeeded", id);
				if (!permanent && !s->ok && !s->dead[0])
					fail_msg("%c %s was published and never "
					         "ended", 'a' + fn, id);
				if (!permanent && s->dead[0] &&
				    strcmp(s->dead, "EVFN_ECRASHED") != 0 &&
				    strcmp(s->dead, "EVFN_EEXHAUSTED") != 0)
					fail_msg("%c %s dead-lettered as %s",
					         'a' + fn, id, s->dead);
			}
	int most = 0;
	for (int g = 0; g < MAX_GENS; g++)
		most = EVFN__MAX(most, c->reruns_by_gen[g]);
	print_message("# %d invocations published, %d ran again after a "
	              "crash (at most %d for one kill)\n",
	              published, c->reruns, most);
	/* A crash keeps a prefix of the journal's records, and a worker
	 * journals each end before it starts its next attempt: so what one
	 * worker ran to success and runs again after the kill is the tail
	 * of its successes in that process, those whose ends had not
	 * reached the disk. A success in the middle run again is an end the
	 * journal lost or never got. */
	for (int g = 1; g <= c->gens; g++)
		for (int i = 0; i < MAX_THREADS; i++) {
			const struct thread_oks *th = &c->threads[g][i];
			if (th->reruns &&
			    th->reruns != th->count - th->first_rerun)
				fail_msg("process %d, thread %ld: %d of its "
				         "successes from its %dth of %d ran "
				         "again: not its last ones",
				         g, th->tid, th->reruns,
				         th->first_rerun + 1, th->count);
		}
	assert_true(published > 0);
}

/* kills processes under load in a row, each killed after a random
 * while (or by itself, in a checkpoint), then a last one that finishes
 * the work; checks the log. */
static void
crash_run(int kills, int per_gen, int checkpoint_kill)
{
	struct tmp t;
	tmp_make(&t);
	uint64_t seed = (uint64_t)test_now_ms();
	print_message("# seed %llu\n", (unsigned long long)seed);
	for (int gen = 1; gen <= kills; gen++) {
		char k[16];
		snprintf(k, sizeof(k), "%d", checkpoint_kill);
		const char *extra[] = {"--checkpoint-kill", k, NULL};
		pid_t pid = host_spawn(&t, gen, per_gen,
		                       checkpoint_kill ? extra : NULL);
		if (checkpoint_kill) {
			/* It kills itself in its checkpoint. */
			int status = host_wait(pid, 30000);
			if (status == -1)
				host_kill(pid);
			else
				assert_true(WIFSIGNALED(status) &&
				            WTERMSIG(status) == SIGKILL);
		} else {
			/* Wait for its first publish, then a while more. */
			char p[16];
			snprintf(p, sizeof(p), "P %d ", gen);
			WAIT_FOR(log_has(&t, p) ||
			                 waitpid(pid, NULL, WNOHANG) != 0,
			         20000);
			test_sleep_ms((int64_t)(test_mix64(seed + (uint64_t)gen) %
			                        300));
			host_kill(pid);
		}
	}
	host_final(&t, kills + 1);
	struct crash_log c = {.gens = kills + 1, .per_gen = per_gen};
	c.v = calloc((size_t)2 * c.gens * per_gen, sizeof(*c.v));
	assert_non_null(c.v);
	crash_log_read(&c, &t);
	crash_log_check(&c);
	free(c.v);
	tmp_remove(&t);
}

static void
test_journaling_survives_repeated_sigkill(void **state)
{
	(void)state;
	crash_run(kills_wanted(), 300, 0);
}

static void
test_journaling_kill_during_checkpoint_loses_nothing(void **state)
{
	(void)state;
	crash_run(2, 400, 2);
}

static void
test_journaling_crashed_last_attempt_is_dead_lettered(void **state)
{
	(void)state;
	struct tmp t;
	tmp_make(&t);
	const char *hang[] = {"hang", NULL};
	pid_t pid = host_spawn(&t, 1, 0, hang);
	/* Killed once its attempt's start is on disk (not just begun). */
	WAIT_FOR(log_has(&t, "J 1 c g1-0"), 20000);
	host_kill(pid);
	host_final(&t, 2);
	/* Its one attempt crashed: dead-lettered as crashed, not run. */
	assert_true(log_has(&t, "D c g1-0 EVFN_ECRASHED"));
	assert_false(log_has(&t, "S 2 c"));
	tmp_remove(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_journaling_option_refuses_bad_arguments),
		TEST(test_journaling_publish_before_start_is_refused),
		TEST(test_journaling_handed_back_events_run_after_restart),
		TEST(test_journaling_discarded_hand_backs_do_not_return),
		TEST(test_journaling_orphans_stay_and_are_counted),
		TEST(test_journaling_dead_letters_replay_after_restart),
		TEST(test_journaling_idempotency_keys_survive_a_restart),
		TEST(test_journaling_damaged_file_is_refused_at_start),
		TEST(test_journaling_full_disk_refuses_admission_and_loses_nothing),
		TEST(test_journaling_batch_all_or_nothing),
		TEST(test_journaling_fast_mode_full_disk_refuses_and_keeps_the_accepted),
		TEST(test_journaling_durable_one_producer_pays_one_fsync_per_event),
		TEST(test_journaling_durable_batch_shares_one_fsync),
		TEST(test_journaling_crashed_last_attempt_is_dead_lettered),
		TEST(test_journaling_kill_during_checkpoint_loses_nothing),
		TEST(test_journaling_survives_repeated_sigkill),
	};
	return evfn_test_main("journaling", tests);
}
