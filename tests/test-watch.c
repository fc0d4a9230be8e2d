/* SPDX-License-Identifier: MIT */
/*
 * The directory watch on real files in mkdtemp directories: a file
 * written and closed, and one renamed in, each become one event with the
 * path; names the glob does not match, hidden files and directories do
 * not; files already there are emitted once in name order when asked; an
 * inotify queue overflow is counted and, with existing files emitted,
 * repaired by a scan; and bad directories get their specific errors
 * (EVFN_EACCES is checked as an unprivileged user even when the tests run
 * as root).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "trigger-harness.h"

struct tmpdir {
	char path[64];
};

static void
tmpdir_make(struct tmpdir *d)
{
	strcpy(d->path, "/tmp/evfn-watch-XXXXXX");
	assert_non_null(mkdtemp(d->path));
}

static void
path_of(const struct tmpdir *d, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", d->path, name);
}

static void
write_file(const struct tmpdir *d, const char *name)
{
	char path[128];
	path_of(d, name, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "data", 4), 4);
	close(fd);
}

/* Removes the directory's files and subdirectories (one level), then the
 * directory. */
static void
tmpdir_remove(struct tmpdir *d)
{
	DIR *dir = opendir(d->path);
	assert_non_null(dir);
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char path[sizeof(d->path) + sizeof(de->d_name) + 1];
		path_of(d, de->d_name, path, sizeof(path));
		if (unlink(path) != 0)
			assert_int_equal(rmdir(path), 0);
	}
	closedir(dir);
	assert_int_equal(rmdir(d->path), 0);
}

static void
assert_arrival(const evfn_event *ev, const struct tmpdir *d, const char *name,
               const char *why)
{
	char path[128];
	path_of(d, name, path, sizeof(path));
	size_t len;
	const char *data = evfn_event_data(ev, &len);
	if (len != strlen(path) || memcmp(data, path, len) != 0)
		fail_msg("payload \"%.*s\", expected \"%s\"", (int)len, data,
		         path);
	ASSERT_STR(evfn_event_subject(ev), name);
	ASSERT_STR(evfn_event_extension(ev, "arrival"), why);
	ASSERT_STR(evfn_event_datacontenttype(ev), "text/plain");
}

static void
test_watch_written_file_arrives(void **state)
{
	(void)state;
	struct tmpdir d;
	tmpdir_make(&d);
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger *t;
	ASSERT_OK(evfn_watch_add(rt, d.path, "*.csv", NULL, NULL, &t));
	write_file(&d, "orders.csv");
	WAIT_FOR(rec_count() == 1, 5000);
	const evfn_event *ev = rec_event(0);
	assert_arrival(ev, &d, "orders.csv", "written");
	ASSERT_STR(evfn_event_type(ev), "evfn.file.created");
	ASSERT_STR(evfn_event_source(ev), "evfn/watch");
	/* Counted when admission returns, which may be after the handler
	 * ran. */
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_FIRED) == 1, 5000);
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
	tmpdir_remove(&d);
}

static void
test_watch_renamed_file_arrives(void **state)
{
	(void)state;
	struct tmpdir d, outside;
	tmpdir_make(&d);
	tmpdir_make(&outside);
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_name(o, "uploads"));
	evfn_trigger *t;
	/* A trailing slash is not part of the paths events carry. */
	char dir[80];
	snprintf(dir, sizeof(dir), "%s/", d.path);
	ASSERT_OK(evfn_watch_add(rt, dir, NULL, "test.upload", o, &t));
	evfn_trigger_options_free(o);
	write_file(&outside, "part");
	char from[128], to[128];
	path_of(&outside, "part", from, sizeof(from));
	path_of(&d, "photo.jpg", to, sizeof(to));
	assert_int_equal(rename(from, to), 0);
	WAIT_FOR(rec_count() == 1, 5000);
	const evfn_event *ev = rec_event(0);
	assert_arrival(ev, &d, "photo.jpg", "moved");
	ASSERT_STR(evfn_event_type(ev), "test.upload");
	ASSERT_STR(evfn_event_source(ev), "evfn/watch/uploads");
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
	tmpdir_remove(&d);
	tmpdir_remove(&outside);
}

/* Arrivals are read and published in order and the runtime's single
 * worker records them in order, so once the last file's event is seen,
 * an event for an earlier one would have been seen too. */
static void
test_watch_ignores_unmatched_hidden_and_directories(void **state)
{
	(void)state;
	struct tmpdir d, outside;
	tmpdir_make(&d);
	tmpdir_make(&outside);
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger *t;
	ASSERT_OK(evfn_watch_add(rt, d.path, "*.csv", NULL, NULL, &t));
	write_file(&d, "notes.txt");
	write_file(&d, ".partial.csv");
	char sub[128], from[128], to[128];
	path_of(&d, "sub.csv", sub, sizeof(sub));
	assert_int_equal(mkdir(sub, 0755), 0);
	path_of(&outside, "moved.csv", from, sizeof(from));
	assert_int_equal(mkdir(from, 0755), 0);
	path_of(&d, "moved.csv", to, sizeof(to));
	assert_int_equal(rename(from, to), 0);
	/* Not recursive: a file inside a subdirectory is not an arrival. */
	char inner[160];
	snprintf(inner, sizeof(inner), "%s/inner.csv", sub);
	int fd = open(inner, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	unlink(inner);
	write_file(&d, "last.csv");
	WAIT_FOR(rec_count() >= 1, 5000);
	ASSERT_EQ(rec_count(), 1);
	assert_arrival(rec_event(0), &d, "last.csv", "written");
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
	tmpdir_remove(&d);
	tmpdir_remove(&outside);
}

static void
test_watch_existing_files_emitted_once_in_order(void **state)
{
	(void)state;
	struct tmpdir d;
	tmpdir_make(&d);
	write_file(&d, "c.csv");
	write_file(&d, "a.csv");
	write_file(&d, "b.csv");
	write_file(&d, "skip.txt");
	char sub[128];
	path_of(&d, "dir.csv", sub, sizeof(sub));
	assert_int_equal(mkdir(sub, 0755), 0);
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_existing(o, true));
	evfn_trigger *t;
	ASSERT_OK(evfn_watch_add(rt, d.path, "*.csv", NULL, o, &t));
	evfn_trigger_options_free(o);
	/* They are published before evfn_watch_add() returns. */
	ASSERT_EQ(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_FIRED), 3);
	write_file(&d, "d.csv");
	WAIT_FOR(rec_count() >= 4, 5000);
	ASSERT_EQ(rec_count(), 4);
	assert_arrival(rec_event(0), &d, "a.csv", "existing");
	assert_arrival(rec_event(1), &d, "b.csv", "existing");
	assert_arrival(rec_event(2), &d, "c.csv", "existing");
	assert_arrival(rec_event(3), &d, "d.csv", "written");
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
	tmpdir_remove(&d);
}

/* A loop function that holds the loop thread until released, so that
 * the watch cannot read its inotify queue meanwhile. */
static atomic_bool loop_held, loop_release;

static int
hold_loop(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)ev;
	(void)userdata;
	atomic_store(&loop_held, true);
	while (!atomic_load(&loop_release))
		test_sleep_ms(1);
	return EVFN_OK;
}

static int
read_queue_limit(void)
{
	FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
	assert_non_null(f);
	int limit = 0;
	assert_int_equal(fscanf(f, "%d", &limit), 1);
	fclose(f);
	return limit;
}

/* Counts the events of the overflow test, which are too many for the
 * recorder: all of them, and those a scan emitted. */
static atomic_int bulk_total, bulk_existing;

static int
count_bulk(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	(void)ctx;
	(void)userdata;
	atomic_fetch_add(&bulk_total, 1);
	const char *why = evfn_event_extension(ev, "arrival");
	if (why && !strcmp(why, "existing"))
		atomic_fetch_add(&bulk_existing, 1);
	return EVFN_OK;
}

/* Opens a file for writing and closes it: one IN_CLOSE_WRITE. */
static void
touch_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
}

/* More arrivals than the kernel queues while the loop is held: the
 * overflow is counted and logged, and the scan that follows emits the
 * files again, so none is lost (delivery is at least once). Writes
 * alternate between two files because the kernel merges an event that
 * repeats the one before it. */
static void
test_watch_overflow_counted_and_rescanned(void **state)
{
	(void)state;
	int arrivals = read_queue_limit() + 64;
	struct tmpdir d;
	tmpdir_make(&d);
	write_file(&d, "a.csv");
	write_file(&d, "b.csv");
	char a[128], b[128];
	path_of(&d, "a.csv", a, sizeof(a));
	path_of(&d, "b.csv", b, sizeof(b));
	atomic_store(&loop_held, false);
	atomic_store(&loop_release, false);
	atomic_store(&bulk_total, 0);
	atomic_store(&bulk_existing, 0);
	evfn_rt *rt = trigger_runtime(true);
	evfn_fn_options *fo;
	ASSERT_OK(evfn_fn_options_new(&fo));
	ASSERT_OK(evfn_fn_options_set_executor(fo, EVFN_EXECUTOR_LOOP));
	ASSERT_OK(evfn_register(rt, "hold", hold_loop, NULL, fo, NULL));
	evfn_fn_options_free(fo);
	ASSERT_OK(evfn_register(rt, "count", count_bulk, NULL, NULL, NULL));
	ASSERT_OK(evfn_subscribe(rt, "bulk.files", "count"));
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_existing(o, true));
	evfn_trigger *t;
	ASSERT_OK(evfn_watch_add(rt, d.path, "*.csv", "bulk.files", o, &t));
	evfn_trigger_options_free(o);
	WAIT_FOR(atomic_load(&bulk_existing) == 2, 5000);
	ASSERT_OK(evfn_invoke_async(rt, "hold", NULL, 0, NULL));
	WAIT_FOR(atomic_load(&loop_held), 5000);
	for (int i = 0; i < arrivals; i++)
		touch_file(i % 2 ? b : a);
	atomic_store(&loop_release, true);
	WAIT_FOR(evfn_trigger_get_stat(t, EVFN_TRIGGER_STAT_OVERFLOWS) == 1,
	         10000);
	/* The scan after the overflow emitted both files once more. */
	WAIT_FOR(atomic_load(&bulk_existing) == 4, 10000);
	assert_true(atomic_load(&bulk_total) > arrivals / 2);
	/* Logged after the count is bumped, maybe on another thread. */
	WAIT_FOR(test_log_contains("overflow"), 5000);
	evfn_trigger_free(t);
	trigger_runtime_free(rt);
	tmpdir_remove(&d);
}

static void
test_watch_ends_when_directory_goes(void **state)
{
	(void)state;
	struct tmpdir d, moved;
	tmpdir_make(&d);
	tmpdir_make(&moved);
	evfn_rt *rt = trigger_runtime(true);
	evfn_trigger *removed_t, *moved_t;
	ASSERT_OK(evfn_watch_add(rt, d.path, NULL, NULL, NULL, &removed_t));
	ASSERT_OK(evfn_watch_add(rt, moved.path, NULL, NULL, NULL, &moved_t));
	assert_int_equal(rmdir(d.path), 0);
	WAIT_FOR(test_log_contains("removed or unmounted; the watch ends"), 5000);
	struct tmpdir dest;
	tmpdir_make(&dest);
	char to[128], late[160];
	path_of(&dest, "moved", to, sizeof(to));
	assert_int_equal(rename(moved.path, to), 0);
	WAIT_FOR(test_log_contains("moved; the watch ends"), 5000);
	/* Too late for the watch, which was removed before this. */
	snprintf(late, sizeof(late), "%s/late.csv", to);
	int fd = open(late, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	evfn_trigger_free(removed_t);
	evfn_trigger_free(moved_t);
	ASSERT_OK(evfn_rt_drain(rt, 10000, NULL, NULL));
	ASSERT_EQ(rec_count(), 0);
	ASSERT_OK(evfn_rt_free(rt));
	assert_int_equal(unlink(late), 0);
	tmpdir_remove(&dest);
}

static void
test_watch_bad_directories(void **state)
{
	(void)state;
	struct tmpdir d;
	tmpdir_make(&d);
	evfn_rt *rt = trigger_runtime(false);
	evfn_trigger *t = (evfn_trigger *)&t;
	char missing[128], file[128];
	path_of(&d, "missing", missing, sizeof(missing));
	ASSERT_RC(evfn_watch_add(rt, missing, NULL, NULL, NULL, &t),
	          EVFN_ENOENT);
	assert_null(t);
	write_file(&d, "plain");
	path_of(&d, "plain", file, sizeof(file));
	ASSERT_RC(evfn_watch_add(rt, file, NULL, NULL, NULL, &t), EVFN_ENOTDIR);
	ASSERT_RC(evfn_watch_add(rt, "", NULL, NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_watch_add(rt, NULL, NULL, NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_watch_add(rt, d.path, "", NULL, NULL, &t), EVFN_EINVAL);
	ASSERT_RC(evfn_watch_add(rt, d.path, "a/*.csv", NULL, NULL, &t),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_watch_add(NULL, d.path, NULL, NULL, NULL, &t),
	          EVFN_EINVAL);
	ASSERT_RC(evfn_watch_add(rt, d.path, NULL, NULL, NULL, NULL),
	          EVFN_EINVAL);
	evfn_trigger_options *o = trigger_options();
	ASSERT_OK(evfn_trigger_options_set_function(o, "nope"));
	ASSERT_RC(evfn_watch_add(rt, d.path, NULL, NULL, o, &t), EVFN_ENOFN);
	evfn_trigger_options_free(o);
	ASSERT_OK(evfn_rt_free(rt));
	tmpdir_remove(&d);
}

/* An unreadable directory. Root reads everything, so as root the check
 * runs in a child that first becomes the unprivileged user "nobody". */
static int
unreadable_result(const char *dir)
{
	evfn_rt *rt;
	if (evfn_rt_new(&rt, NULL) != 0)
		return 100;
	evfn_trigger *t;
	int rc = evfn_watch_add(rt, dir, NULL, NULL, NULL, &t);
	if (rc == 0)
		evfn_trigger_free(t);
	evfn_rt_free(rt);
	return rc;
}

static void
test_watch_unreadable_directory(void **state)
{
	(void)state;
	struct tmpdir d;
	tmpdir_make(&d);
	if (geteuid() != 0) {
		assert_int_equal(chmod(d.path, 0), 0);
		ASSERT_RC(unreadable_result(d.path), EVFN_EACCES);
	} else {
		/* mkdtemp made it 0700 and root's. */
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(101);
			_exit(unreadable_result(d.path) == EVFN_EACCES ? 0
			                                               : 102);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		ASSERT_EQ(WEXITSTATUS(status), 0);
	}
	assert_int_equal(chmod(d.path, 0700), 0);
	tmpdir_remove(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(test_watch_written_file_arrives),
	    TEST(test_watch_renamed_file_arrives),
	    TEST(test_watch_ignores_unmatched_hidden_and_directories),
	    TEST(test_watch_existing_files_emitted_once_in_order),
	    TEST(test_watch_overflow_counted_and_rescanned),
	    TEST(test_watch_ends_when_directory_goes),
	    TEST(test_watch_bad_directories),
	    TEST(test_watch_unreadable_directory),
	};
	return evfn_test_main("watch", tests);
}
