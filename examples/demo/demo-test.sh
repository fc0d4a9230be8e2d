#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs evfn-demo briefly and reads its tables as a user would: it exits 0
# (every event accounted for), the banner states the load time asked for,
# the columns say what they count and are explained, and each run-time
# quantile is printed as the bucket bound it is, not as a false-precision
# number.
# Usage: demo-test.sh EVFN_DEMO_EXE
set -u
exe=$1
out=$(mktemp "${TMPDIR:-/tmp}/evfn-demo-test.XXXXXX")
trap 'rm -f "$out"' EXIT INT TERM

. "$(dirname "$0")/../../tests/tap.sh"
echo "1..6"

"$exe" --seconds 2.5 >"$out" 2>&1
rc=$?
check "the demo exits 0 (every event accounted for)" test "$rc" -eq 0
check "the banner states the load time asked for" \
	grep -q '^load for 2.5 s:' "$out"
check "the live line's columns are explained" \
	grep -q '^pending: events accepted and not ended yet' "$out"
check "the table counts attempts, not invocations, under a legend" \
	sh -c "grep -q '^function  *accepted attempts failed retries timeouts  *dead  *run p50  *run p99 billed s\$' '$out' &&
	       grep -q '^accepted: events admitted; attempts: handler runs' '$out'"
# Each table row: a name, six counts, two quantile cells, billed seconds.
# A quantile cell is a bucket bound ("<=151 ms") or "-" (no attempt).
rows=$(sed -n '/^function /,/^accepted: /p' "$out" | sed '1d;$d')
check "the table has a row per function" \
	test "$(printf '%s\n' "$rows" | grep -c .)" -eq 8
check "every quantile is a bucket bound (<=N us|ms|s) or -" sh -c "
	printf '%s\n' '$rows' |
	sed -E 's/ (<=[0-9.]+ (us|ms|s)|-) / Q /g; s/ (<=[0-9.]+ (us|ms|s)|-) / Q /g' |
	awk '\$8 != \"Q\" || \$9 != \"Q\" || NF != 10 { bad = 1 } END { exit bad }'"
[ "$failed" -eq 0 ] || sed 's/^/# /' "$out"
exit "$failed"
