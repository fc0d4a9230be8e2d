#!/bin/sh
# SPDX-License-Identifier: MIT
# evfn as a meson subproject: a scratch project vendors this source tree
# under subprojects/evfn, finds it with dependency('evfn'), and builds and
# runs the README example against it.
# Usage: api-subproject.sh SOURCE_ROOT
set -eu
root=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..2"
mkdir -p "$tmp/app/subprojects"
ln -s "$root" "$tmp/app/subprojects/evfn"
cp "$root/examples/hello.c" "$tmp/app/hello.c"
cat >"$tmp/app/meson.build" <<'MESON'
project('app', 'c', default_options: ['c_std=c11'])
evfn_dep = dependency('evfn', fallback: ['evfn', 'evfn_dep'])
executable('hello', 'hello.c', dependencies: evfn_dep)
MESON
if meson setup "$tmp/build" "$tmp/app" -Devfn:tests=false \
	-Devfn:examples=false -Devfn:python=disabled -Devfn:lua=disabled \
	-Devfn:redis=disabled >"$tmp/log" 2>&1 &&
	ninja -C "$tmp/build" >>"$tmp/log" 2>&1; then
	echo "ok 1 - a project builds with evfn as a subproject"
else
	echo "not ok 1 - subproject build"
	sed 's/^/# /' "$tmp/log" | tail -30
	exit 1
fi
if [ "$("$tmp/build/hello")" = "hello, world" ]; then
	echo "ok 2 - the README example runs against the subproject"
else
	echo "not ok 2 - the example did not print hello, world"
	exit 1
fi
