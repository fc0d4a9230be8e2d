#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's example is examples/hello.c, character for character: the
# first ```c block of README.md must equal that file, which the 'hello'
# test builds and runs.
# Usage: api-readme.sh SOURCE_ROOT
set -eu
root=$1
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
awk '/^```c$/ && !done {inside=1; next} /^```$/ && inside {inside=0; done=1} inside' \
	"$root/README.md" >"$tmp"
echo "1..1"
if diff -u "$root/examples/hello.c" "$tmp" >"$tmp.diff" 2>&1; then
	echo "ok 1 - README example is examples/hello.c"
else
	echo "not ok 1 - README example differs from examples/hello.c"
	sed 's/^/# /' "$tmp.diff"
	rm -f "$tmp.diff"
	exit 1
fi
rm -f "$tmp.diff"
