#!/bin/sh
# SPDX-License-Identifier: MIT
# What a user of the installed library does: install into a scratch
# prefix, then build and run the README example with nothing but
# `pkg-config --cflags --libs evfn`, against the shared and the static
# library.
# Usage: api-pkgconfig.sh SOURCE_ROOT BUILD_DIR
set -eu
root=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..4"
meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/dest" >"$tmp/log" 2>&1 || {
	echo "not ok 1 - meson install"; sed 's/^/# /' "$tmp/log"; exit 1; }
prefix=$(meson introspect "$build" --buildoptions |
	/usr/bin/python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
libdir=$(meson introspect "$build" --buildoptions |
	/usr/bin/python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"][0])')
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
pcdir=$tmp/dest$libdir/pkgconfig
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$tmp/dest"
echo "ok 1 - installed into a scratch prefix"
# No public header needs a dependency's flags: --cflags is evfn's include
# directory alone (hiredis's would add -I.../hiredis and -D_FILE_OFFSET_BITS).
# (The sysroot shows the system directory, which pkg-config otherwise
# drops, as $tmp/dest/usr/include: left out here.)
cflags=$(pkg-config --cflags evfn | tr ' ' '\n' |
	grep -v -x -e "-I$tmp/dest/usr/include" -e '' | tr '\n' ' ' | sed 's/ *$//')
if [ "$cflags" = "-I$tmp/dest$prefix/include" ]; then
	echo "ok 2 - pkg-config --cflags gives only evfn's include directory"
else
	echo "not ok 2 - pkg-config --cflags gives: $cflags"
fi
# shellcheck disable=SC2046
if cc -std=c11 -Wall -Wextra -Werror "$root/examples/hello.c" -o "$tmp/hello" $(pkg-config --cflags --libs evfn) 2>"$tmp/err" &&
	[ "$(LD_LIBRARY_PATH="$tmp/dest$libdir" "$tmp/hello")" = "hello, world" ]; then
	echo "ok 3 - hello.c built with pkg-config against libevfn.so"
else
	echo "not ok 3 - hello.c with pkg-config (shared)"; sed 's/^/# /' "$tmp/err"; exit 1
fi
# shellcheck disable=SC2046
# The README's static link: the archive named, then what --static lists.
if cc -std=c11 "$root/examples/hello.c" -o "$tmp/hello-static" $(pkg-config --cflags evfn) \
	"$(pkg-config --variable=libdir evfn)/libevfn.a" $(pkg-config --static --libs evfn | sed 's/-levfn//') 2>"$tmp/err" &&
	! readelf -d "$tmp/hello-static" | grep -q libevfn &&
	[ "$("$tmp/hello-static")" = "hello, world" ]; then
	echo "ok 4 - hello.c linked statically with pkg-config --static"
else
	echo "not ok 4 - hello.c with pkg-config (static)"; sed 's/^/# /' "$tmp/err"; exit 1
fi
