#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks that lib/evfn.sym lists exactly the functions declared with
# EVFN_EXPORT under include/, and that the shared library exports exactly
# those (and nothing else) under the EVFN_ version nodes.
# Usage: api-symbols.sh SOURCE_ROOT LIBEVFN_SO [SKIPPED_HEADERS]
# (space-separated headers of optional parts that this build left out).
set -eu
root=$1
so=$2
skip=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Declared: the evfn_ name before the first "(" of each EVFN_EXPORT line
# (macro definitions in export.h excluded).
for h in "$root"/include/evfn/*.h "$root"/include/evfn/version.h.in; do
	case " $skip " in *" $(basename "$h") "*) continue ;; esac
	cat "$h"
done |
	grep -v '#define' | tr '\n' ' ' | tr ';' '\n' |
	sed -n 's/.*EVFN_EXPORT[^(]*[ *]\(evfn_[a-z0-9_]*\) *(.*/\1/p' |
	sort -u >"$tmp/declared"
grep -o '^[[:space:]]*evfn_[a-z0-9_]*;' "$root/lib/evfn.sym" |
	tr -d ' \t;' | sort >"$tmp/listed.all"
# Symbols of a skipped header are listed but not built.
if [ -n "$skip" ]; then
	for h in $skip; do cat "$root/include/evfn/$h"; done |
		grep -v '#define' | tr '\n' ' ' |
		tr ';' '\n' |
		sed -n 's/.*EVFN_EXPORT[^(]*[ *]\(evfn_[a-z0-9_]*\) *(.*/\1/p' |
		sort -u >"$tmp/skipped"
	comm -23 "$tmp/listed.all" "$tmp/skipped" >"$tmp/listed"
else
	cp "$tmp/listed.all" "$tmp/listed"
fi
nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^EVFN_' |
	sed 's/@.*//' | sort -u >"$tmp/exported"

status=0
echo "1..2"
if diff -u "$tmp/declared" "$tmp/listed" >"$tmp/d1"; then
	echo "ok 1 - evfn.sym lists every EVFN_EXPORT declaration"
else
	echo "not ok 1 - evfn.sym differs from the EVFN_EXPORT declarations"
	sed 's/^/# /' "$tmp/d1"
	status=1
fi
if diff -u "$tmp/declared" "$tmp/exported" >"$tmp/d2"; then
	echo "ok 2 - the library exports exactly the declared API"
else
	echo "not ok 2 - exported symbols differ from the declared API"
	sed 's/^/# /' "$tmp/d2"
	status=1
fi
exit $status
