/* SPDX-License-Identifier: MIT */
/*
 * A C host that loads the evfn module the way lua5.4 does (require, so
 * dlopen) and closes its Lua state while an evfn worker is still blocked
 * in a handler (resident.lua). lua_close() dlclose()s the module; the
 * worker then comes back through the module's code, which must still be
 * mapped. The test waits until the worker thread has exited, so it passes
 * only if nothing crashed on the way. TAP on stdout.
 */
#include <dirent.h>
#include <stdio.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* Threads of this process now. */
static int
thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s resident.lua\n", argv[0]);
		return 2;
	}
	printf("1..2\n");
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	if (luaL_dofile(L, argv[1]) != LUA_OK) {
		printf("not ok 1 - %s\n", lua_tostring(L, -1));
		return 1;
	}
	/* Collects the runtime: its close gives up after the grace. */
	lua_close(L);
	printf("ok 1 - the state closed with a worker still blocked\n");
	fflush(stdout);
	/* The blocked worker returns after about 1 s, runs the module's
	 * deadline hook, ends, and its thread exits (the pool keeps none:
	 * min 0, idle timeout 0.05 s). */
	struct timespec step = {0, 10 * 1000 * 1000};
	for (int i = 0; i < 1000 && thread_count() > 1; i++)
		nanosleep(&step, NULL);
	if (thread_count() > 1) {
		printf("not ok 2 - the worker thread never exited\n");
		return 1;
	}
	printf("ok 2 - the worker came back through the module and exited\n");
	return 0;
}
