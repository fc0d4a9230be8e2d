/* SPDX-License-Identifier: MIT */
/*
 * libevfn.so loaded the way the Python and Lua bindings load it: by
 * dlopen(), into a process that did not link it. The library keeps a few
 * words of initial-exec thread-local storage (the runtime whose handler
 * or loop callback runs on a thread: lib/worker.c, lib/loop.c; each
 * thread's cache of event blocks: lib/blocks.c), which a
 * dlopen()ed library can only have from the static TLS space left over
 * when the process started; this checks that the library is marked so
 * (DF_STATIC_TLS, or the check would prove nothing), that it loads, that
 * events made on one thread and released on others work through it, and
 * that it unloads and loads again. This executable does not link evfn:
 * it reaches every call through dlsym(). EVFN_LIBRARY names the file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <evfn.h>

struct api {
	void *lib;
	int (*event_new)(evfn_event **, const char *, const void *, size_t);
	void (*event_unref)(const evfn_event *);
	const void *(*event_data)(const evfn_event *, size_t *);
};

static void
api_open(struct api *a)
{
	const char *path = getenv("EVFN_LIBRARY");
	assert_non_null(path);
	a->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!a->lib)
		fail_msg("dlopen(%s): %s", path, dlerror());
	a->event_new = (int (*)(evfn_event **, const char *, const void *,
	                        size_t))dlsym(a->lib, "evfn_event_new");
	a->event_unref =
		(void (*)(const evfn_event *))dlsym(a->lib, "evfn_event_unref");
	a->event_data = (const void *(*)(const evfn_event *,
	                                 size_t *))dlsym(a->lib,
	                                                 "evfn_event_data");
	assert_non_null(a->event_new);
	assert_non_null(a->event_unref);
	assert_non_null(a->event_data);
}

/* Whether the loaded object's dynamic section carries DF_STATIC_TLS. */
static bool
uses_static_tls(void *lib)
{
	struct link_map *map = NULL;
	assert_int_equal(dlinfo(lib, RTLD_DI_LINKMAP, &map), 0);
	for (const ElfW(Dyn) *d = map->l_ld; d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_STATIC_TLS))
			return true;
	return false;
}

#define EVENTS 20000
#define RELEASERS 2

struct handover {
	struct api *api;
	evfn_event **events;
	int first, step; /* the releaser's share */
	int bad;
};

static void *
make_events(void *arg)
{
	struct handover *h = arg;
	for (int i = 0; i < EVENTS; i++) {
		uint64_t v = (uint64_t)i;
		if (h->api->event_new(&h->events[i], "dl.test", &v,
		                      sizeof(v)) != 0)
			h->bad++;
	}
	return NULL;
}

static void *
release_events(void *arg)
{
	struct handover *h = arg;
	for (int i = h->first; i < EVENTS; i += h->step) {
		size_t len = 0;
		const uint64_t *v = h->api->event_data(h->events[i], &len);
		if (len != sizeof(*v) || *v != (uint64_t)i)
			h->bad++;
		h->api->event_unref(h->events[i]);
	}
	return NULL;
}

/* Events made on one thread, released on two others, all inside the
 * dlopen()ed library; every thread exits before the library unloads. */
static void
exercise(struct api *a)
{
	evfn_event **events = calloc(EVENTS, sizeof(*events));
	assert_non_null(events);
	struct handover maker = {a, events, 0, 1, 0};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, make_events, &maker), 0);
	pthread_join(th, NULL);
	assert_int_equal(maker.bad, 0);
	struct handover rel[RELEASERS];
	pthread_t rth[RELEASERS];
	for (int i = 0; i < RELEASERS; i++) {
		rel[i] = (struct handover){a, events, i, RELEASERS, 0};
		assert_int_equal(pthread_create(&rth[i], NULL, release_events,
		                                &rel[i]),
		                 0);
	}
	for (int i = 0; i < RELEASERS; i++) {
		pthread_join(rth[i], NULL);
		assert_int_equal(rel[i].bad, 0);
	}
	free(events);
}

static void
test_dlopen_library_with_static_tls_loads_and_works(void **state)
{
	(void)state;
	struct api a;
	api_open(&a);
	assert_true(uses_static_tls(a.lib));
	exercise(&a);
	assert_int_equal(dlclose(a.lib), 0);
	/* Unloaded and loaded again: its static TLS is found again. */
	api_open(&a);
	exercise(&a);
	assert_int_equal(dlclose(a.lib), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_dlopen_library_with_static_tls_loads_and_works),
	};
	return cmocka_run_group_tests_name("dlopen", tests, NULL, NULL);
}
