#!/bin/sh
# SPDX-License-Identifier: MIT
# evfn as a meson subproject, exactly as README.md's "Meson subproject"
# paragraph says: a scratch project vendors this source tree under
# subprojects/evfn and uses the README's meson lines verbatim, with no -D
# options. Checks that it builds and runs the README example, that nothing
# of evfn beyond the library is built (no tests, examples or bindings) and
# nothing is installed, and that a static parent links evfn statically.
# Usage: api-subproject.sh SOURCE_ROOT
set -eu
root=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
echo "1..5"
mkdir -p "$tmp/app/subprojects"
ln -s "$root" "$tmp/app/subprojects/evfn"
cp "$root/examples/hello.c" "$tmp/app/app.c"
# The README's block: the first ```meson fence after "**Meson subproject.**".
readme_lines=$(awk '/^\*\*Meson subproject\.\*\*/ { s = 1 }
	s == 1 && /^```meson/ { s = 2; next }
	s == 2 && /^```/ { exit }
	s == 2 { print }' "$root/README.md")
if [ -z "$readme_lines" ]; then
	echo "Bail out! README.md has no meson block under **Meson subproject.**"
	exit 1
fi
{
	echo "project('app', 'c', default_options: ['c_std=c11'])"
	printf '%s\n' "$readme_lines"
} >"$tmp/app/meson.build"

if meson setup "$tmp/build" "$tmp/app" >"$tmp/log" 2>&1 &&
	ninja -C "$tmp/build" >>"$tmp/log" 2>&1; then
	echo "ok 1 - a project builds with evfn as a subproject, README lines verbatim"
else
	echo "not ok 1 - subproject build"
	sed 's/^/# /' "$tmp/log" | tail -30
	exit 1
fi
if [ "$("$tmp/build/app")" = "hello, world" ]; then
	echo "ok 2 - the README example runs against the subproject"
else
	echo "not ok 2 - the example did not print hello, world"
fi
targets=$(meson introspect "$tmp/build" --targets | $py -c '
import json, sys
print(" ".join(sorted(t["name"] for t in json.load(sys.stdin))))')
ntests=$(meson introspect "$tmp/build" --tests | $py -c '
import json, sys; print(len(json.load(sys.stdin)))')
if [ "$targets" = "app evfn evfn-internal" ] && [ "$ntests" = 0 ]; then
	echo "ok 3 - only the library is built; no tests are listed in the parent"
else
	echo "not ok 3 - built: $targets; tests listed: $ntests"
fi
installed=$(meson introspect "$tmp/build" --installed)
if [ "$installed" = "{}" ]; then
	echo "ok 4 - nothing of evfn is installed into the parent's prefix"
else
	echo "not ok 4 - installs: $installed"
fi
if meson setup "$tmp/build-static" "$tmp/app" -Ddefault_library=static \
	>"$tmp/log" 2>&1 && ninja -C "$tmp/build-static" >>"$tmp/log" 2>&1 &&
	[ "$("$tmp/build-static/app")" = "hello, world" ] &&
	! readelf -d "$tmp/build-static/app" | grep -q 'libevfn'; then
	echo "ok 5 - a static parent links evfn statically"
else
	echo "not ok 5 - static parent"
	sed 's/^/# /' "$tmp/log" | tail -30
	readelf -d "$tmp/build-static/app" 2>/dev/null | grep NEEDED | sed 's/^/# /'
fi
