#!/bin/sh
# SPDX-License-Identifier: MIT
# The API reference that -Ddocs=enabled builds (Doxygen, warnings as
# errors) covers the whole API: a page for every public header (Doxygen
# silently leaves out the declarations of a header without an @file
# block) and for every exported symbol of lib/evfn.sym; its man pages
# render with man(1); its main page is README.md.
# Usage: api-reference.sh SOURCE_ROOT REFERENCE_DIR
set -eu
root=$1
ref=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. "$(dirname "$0")/tap.sh"
echo "1..4"

# Prints the names in $1 (one a line) that have no man page in man3/.
missing_pages() {
	while read -r name; do
		[ -f "$ref/man/man3/$name.3" ] || echo "no page for $name"
	done <"$1"
	return 0
}

(cd "$root/include" && ls evfn/*.h && echo evfn.h && echo evfn/version.h) |
	sed 's|^evfn/||' >"$tmp/headers"
missing_pages "$tmp/headers" >"$tmp/missing-headers"
check "every public header has its page" \
	sh -c "cat '$tmp/missing-headers'; test ! -s '$tmp/missing-headers'"

grep -o '^[[:space:]]*evfn_[a-z0-9_]*;' "$root/lib/evfn.sym" |
	tr -d ' \t;' | sort -u >"$tmp/symbols"
missing_pages "$tmp/symbols" >"$tmp/missing-symbols"
check "every exported symbol ($(wc -l <"$tmp/symbols")) has its page" \
	sh -c "cat '$tmp/missing-symbols'; test ! -s '$tmp/missing-symbols'"

# A function's page is a .so link relative to the man directory.
(cd "$ref/man" && MANWIDTH=80 man -l man3/evfn_rt_new.3) \
	>"$tmp/page" 2>&1 || true
check "man -l renders evfn_rt_new(3) with its parameters" \
	sh -c "cat '$tmp/page' | head -40;
		grep -q 'int evfn_rt_new (evfn_rt \\*\\*out' '$tmp/page' &&
		grep -q 'Parameters' '$tmp/page'"

check "the main page is README.md" \
	sh -c "grep -q 'Using it' '$ref/html/index.html' &&
		grep -q 'API overview' '$ref/html/index.html'"
exit "$failed"
