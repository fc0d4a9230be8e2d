#!/bin/sh
# SPDX-License-Identifier: MIT
# Each public header compiles on its own, as strict C11 and as C++, so that
# it is self-contained and pulls in no dependency of ours; and its doc
# comments pass clang's -Wdocumentation (every @param names a parameter,
# no '@word' in the text that is not a command), which the API reference
# is generated from.
# Usage: api-headers.sh SOURCE_ROOT BUILD_INCLUDE_DIR [CLANG]
set -eu
root=$1
binc=$2
clang=${3:-clang}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
headers="evfn.h $(cd "$root/include" && ls evfn/*.h) evfn/version.h"
n=0
for h in $headers; do n=$((n + 3)); done
echo "1..$n"
i=0
status=0
for h in $headers; do
	printf '#include <%s>\n#include <%s>\nint evfn_header_test;\n' "$h" "$h" >"$tmp/t.c"
	cp "$tmp/t.c" "$tmp/t.cc"
	i=$((i + 1))
	if cc -std=c11 -pedantic -Wall -Wextra -Werror -I"$root/include" -I"$binc" \
		-c "$tmp/t.c" -o "$tmp/t.o" 2>"$tmp/err"; then
		echo "ok $i - $h alone as C11"
	else
		echo "not ok $i - $h alone as C11"
		sed 's/^/# /' "$tmp/err"
		status=1
	fi
	i=$((i + 1))
	if c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I"$root/include" -I"$binc" \
		-c "$tmp/t.cc" -o "$tmp/t.o" 2>"$tmp/err"; then
		echo "ok $i - $h alone as C++"
	else
		echo "not ok $i - $h alone as C++"
		sed 's/^/# /' "$tmp/err"
		status=1
	fi
	i=$((i + 1))
	if "$clang" -std=c11 -Wdocumentation -Wdocumentation-unknown-command \
		-Werror -I"$root/include" -I"$binc" -fsyntax-only "$tmp/t.c" \
		2>"$tmp/err"; then
		echo "ok $i - $h doc comments pass clang -Wdocumentation"
	else
		echo "not ok $i - $h doc comments pass clang -Wdocumentation"
		sed 's/^/# /' "$tmp/err"
		status=1
	fi
done
exit $status
