/* SPDX-License-Identifier: MIT */
/*
 * The directory watch: an inotify descriptor on the runtime's base turns
 * each file written and closed in, or renamed into, one directory into an
 * event carrying the file's path. It optionally emits the files already
 * there (at the start and after an inotify queue overflow). It does not
 * recurse into subdirectories. The shared trigger object is in fd.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include <evfn/libevent.h>
#include <evfn/triggers.h>

#include "common-internal.h"
#include "trigger-internal.h"

/* Reads per callback: a directory filling faster than we read must not
 * keep the loop from its other events; the descriptor stays readable. */
#define READS_PER_CALLBACK 16

struct watch_trigger {
	struct evfn_trigger base;
	int ifd;    /* inotify descriptor; -1 before it exists */
	int wd;     /* the directory's watch in it */
	bool ended; /* the directory went away; the watch is over */
	char *dir;  /* without trailing slashes */
	char *glob;
	bool existing;
};

static int
errno_code(int err)
{
	switch (err) {
	case ENOENT:
	case ELOOP:
		return EVFN_ENOENT;
	case ENOTDIR:
		return EVFN_ENOTDIR;
	case EACCES:
	case EPERM:
		return EVFN_EACCES;
	case ENAMETOOLONG:
		return EVFN_ENAMETOOLONG;
	default:
		return EVFN_ENOMEM;
	}
}

static bool
matches(const struct watch_trigger *w, const char *name)
{
	/* FNM_PERIOD: hidden files (editors' and rsync's temporaries) only
	 * match a glob that asks for them. */
	return fnmatch(w->glob, name, FNM_PERIOD) == 0;
}

/* Publishes one arrival: the path as payload, the name as subject. */
static void
arrive(struct watch_trigger *w, const char *name, const char *why)
{
	size_t dlen = strlen(w->dir), nlen = strlen(name);
	char *path = evfn__malloc(dlen + 1 + nlen + 1);
	if (!path) {
		evfn__trigger_count(&w->base, EVFN_TRIGGER_STAT_REFUSED, 1);
		evfn__trigger_log(&w->base, EVFN_LOG_ERROR,
		                  "out of memory; arrival of \"%s\" lost",
		                  name);
		return;
	}
	memcpy(path, w->dir, dlen);
	path[dlen] = '/';
	memcpy(path + dlen + 1, name, nlen + 1);
	struct evfn__trigger_fire f = {
	    .data = path,
	    .len = dlen + 1 + nlen,
	    .datacontenttype = "text/plain",
	    .subject = name,
	    .ext = {{"arrival", why}},
	};
	evfn__trigger_fire(&w->base, &f);
	evfn__free(path);
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether a directory entry is a regular file (following symlinks). */
static bool
is_file(DIR *d, const struct dirent *de)
{
	if (de->d_type == DT_REG)
		return true;
	if (de->d_type != DT_UNKNOWN && de->d_type != DT_LNK)
		return false;
	struct stat st;
	return fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
	       S_ISREG(st.st_mode);
}

/* Emits the matching files in the directory in name order (strcmp, not
 * the locale's collation, so the order is the same everywhere). Returns
 * 0 or the code for opendir()'s error. */
static int
scan(struct watch_trigger *w)
{
	DIR *d = opendir(w->dir);
	if (!d)
		return errno_code(errno);
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!matches(w, de->d_name) || !is_file(d, de))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **grown =
			    evfn__realloc(names, ncap * sizeof(*names));
			if (!grown) {
				rc = EVFN_ENOMEM;
				break;
			}
			names = grown;
			cap = ncap;
		}
		if (!(names[n] = evfn__strdup(de->d_name))) {
			rc = EVFN_ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc == 0) {
		qsort(names, n, sizeof(*names), by_name);
		for (size_t i = 0; i < n; i++)
			arrive(w, names[i], "existing");
	}
	for (size_t i = 0; i < n; i++)
		evfn__free(names[i]);
	evfn__free(names);
	return rc;
}

static void
handle(struct watch_trigger *w, const struct inotify_event *ie)
{
	if (ie->mask & IN_Q_OVERFLOW) {
		evfn__trigger_count(&w->base, EVFN_TRIGGER_STAT_OVERFLOWS, 1);
		evfn__trigger_log(&w->base, EVFN_LOG_WARN,
		                  "inotify queue overflowed; arrivals may be "
		                  "lost%s",
		                  w->existing ? ": scanning the directory again"
		                              : "");
		if (w->existing) {
			int rc = scan(w);
			if (rc < 0)
				evfn__trigger_log(&w->base, EVFN_LOG_ERROR,
				                  "scan failed: %s",
				                  evfn_strerror(rc));
		}
		return;
	}
	/* A directory moved elsewhere would keep reporting arrivals under
	 * a path that no longer names it, so its watch ends like that of a
	 * removed one; the kernel then confirms with IN_IGNORED. */
	if (ie->mask & IN_MOVE_SELF) {
		evfn__trigger_log(&w->base, EVFN_LOG_WARN,
		                  "the directory was moved; the watch ends");
		w->ended = true;
		inotify_rm_watch(w->ifd, w->wd);
		return;
	}
	if (ie->mask & IN_IGNORED) {
		if (!w->ended)
			evfn__trigger_log(&w->base, EVFN_LOG_WARN,
			                  "the directory was removed or "
			                  "unmounted; the watch ends");
		w->ended = true;
		return;
	}
	if ((ie->mask & IN_ISDIR) || ie->len == 0 || !matches(w, ie->name))
		return;
	if (ie->mask & IN_CLOSE_WRITE)
		arrive(w, ie->name, "written");
	else if (ie->mask & IN_MOVED_TO)
		arrive(w, ie->name, "moved");
}

static void
watch_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct watch_trigger *w = arg;
	/* Aligned for struct inotify_event; big enough for several events
	 * with names of up to NAME_MAX bytes. */
	char buf[8192]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	for (int i = 0; i < READS_PER_CALLBACK; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
				evfn__trigger_log(&w->base, EVFN_LOG_ERROR,
				                  "read: %s", strerror(errno));
			return;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ie = (const void *)p;
			handle(w, ie);
			p += sizeof(*ie) + ie->len;
		}
	}
}

static void
watch_dispose(struct evfn_trigger *t)
{
	struct watch_trigger *w = (struct watch_trigger *)t;
	if (w->ifd >= 0)
		close(w->ifd);
	evfn__free(w->dir);
	evfn__free(w->glob);
}

/* Opens the inotify descriptor and watches the directory; 0 or the code
 * for the directory's problem (less common failures are logged). */
static int
start_watch(struct watch_trigger *w)
{
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0) {
		evfn__trigger_log(&w->base, EVFN_LOG_ERROR, "inotify_init1: %s",
		                  strerror(errno));
		return EVFN_ENOMEM;
	}
	uint32_t mask =
	    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVE_SELF | IN_ONLYDIR;
	w->wd = inotify_add_watch(w->ifd, w->dir, mask);
	if (w->wd < 0) {
		int err = errno;
		int rc = errno_code(err);
		if (rc == EVFN_ENOMEM)
			evfn__trigger_log(&w->base, EVFN_LOG_ERROR,
			                  "inotify_add_watch: %s",
			                  strerror(err));
		return rc;
	}
	return 0;
}

/* A copy of dir without trailing slashes ("/" stays "/"; the path of an
 * arrival is then "//name", which is still the right file). */
static char *
dir_copy(const char *dir)
{
	char *copy = evfn__strdup(dir);
	if (copy) {
		size_t len = strlen(copy);
		while (len > 1 && copy[len - 1] == '/')
			copy[--len] = '\0';
	}
	return copy;
}

int
evfn_watch_add(evfn_rt *rt, const char *dir, const char *glob, const char *type,
               const evfn_trigger_options *opts, evfn_trigger **out)
{
	if (!out)
		return EVFN_EINVAL;
	*out = NULL;
	if (!glob)
		glob = "*";
	if (!dir || !*dir || !*glob || strchr(glob, '/'))
		return EVFN_EINVAL;
	if (strnlen(dir, PATH_MAX) >= PATH_MAX)
		return EVFN_ENAMETOOLONG;
	opts = evfn__trigger_options(opts);
	char label[300];
	snprintf(label, sizeof(label), "watch \"%s\"",
	         opts->name ? opts->name : dir);
	struct evfn_trigger *t;
	int rc = evfn__trigger_new(rt, sizeof(struct watch_trigger), "watch",
	                           type, "evfn.file.created", opts, label, &t);
	if (rc < 0)
		return rc;
	struct watch_trigger *w = (struct watch_trigger *)t;
	w->ifd = -1;
	t->dispose = watch_dispose;
	w->existing = opts->existing;
	w->dir = dir_copy(dir);
	w->glob = evfn__strdup(glob);
	if (!w->dir || !w->glob) {
		evfn__trigger_destroy(t);
		return EVFN_ENOMEM;
	}
	/* Watch first, then scan: a file arriving during the scan is then
	 * seen by one or both, never by neither. */
	rc = start_watch(w);
	if (rc == 0 && w->existing)
		rc = scan(w);
	if (rc == 0) {
		t->ev = event_new(evfn_rt_event_base(rt), w->ifd,
		                  EV_READ | EV_PERSIST, watch_cb, w);
		rc = !t->ev || event_add(t->ev, NULL) < 0 ? EVFN_ENOMEM : 0;
	}
	if (rc < 0) {
		evfn__trigger_destroy(t);
		return rc;
	}
	*out = t;
	return 0;
}
