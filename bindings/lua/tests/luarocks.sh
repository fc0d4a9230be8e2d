#!/bin/sh
# SPDX-License-Identifier: MIT
# What a Lua user of an installed libevfn does: install evfn into a
# scratch prefix, then run the luarocks command that README.md gives
# (EVFN_DIR pointed at that prefix, the rock into a scratch tree) on a
# copy of the binding's sources, and require the module it built.
# Usage: luarocks.sh BINDING_SOURCE_DIR BUILD_ROOT
set -eu
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..3"
if meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/dest" >"$tmp/log" 2>&1 &&
	header=$(find "$tmp/dest" -path '*/include/evfn.h' | head -n 1) && [ -n "$header" ]; then
	echo "ok 1 - libevfn installed into a scratch prefix"
else
	echo "not ok 1 - meson install"; sed 's/^/# /' "$tmp/log"; exit 1
fi
# The prefix is where include/evfn.h went.
evfn_dir=$(dirname "$(dirname "$header")")
cmd=$(grep -E '^luarocks --lua-version 5\.4 make evfn-scm-1\.rockspec EVFN_DIR=' "$src/README.md" | head -n 1)
if [ -z "$cmd" ]; then
	echo "not ok 2 - README.md gives no 'luarocks --lua-version 5.4 make' line"
	exit 1
fi
# The README's EVFN_DIR is the prefix evfn was installed under.
cmd=$(printf '%s\n' "$cmd" | sed "s#EVFN_DIR=[^ ]*#EVFN_DIR=$evfn_dir#")
mkdir "$tmp/src"
cp "$src"/*.c "$src"/*.h "$src"/*.rockspec "$tmp/src"/
if (cd "$tmp/src" && eval "$cmd --tree '$tmp/tree'") >"$tmp/log" 2>&1; then
	echo "ok 2 - the README's luarocks command built the rock"
else
	echo "not ok 2 - $cmd"; sed 's/^/# /' "$tmp/log"; exit 1
fi
if lua5.4 -e "
	package.cpath = '$tmp/tree/lib/lua/5.4/?.so'
	local evfn = require 'evfn'
	local rt <close> = assert(evfn.runtime{})
	assert(rt:register('shout', function(ev) return ev.data:upper() end))
	assert(rt:start())
	assert(rt:invoke('shout', 'rock') == 'ROCK')
	assert(package.searchpath('evfn', package.cpath))
" >"$tmp/log" 2>&1; then
	echo "ok 3 - the rock's module loads and runs a handler"
else
	echo "not ok 3 - loading the rock's module"; sed 's/^/# /' "$tmp/log"; exit 1
fi
