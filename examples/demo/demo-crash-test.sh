#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs evfn-demo --crash briefly: run 1 is SIGKILLed under load, run 2
# restarts on the same journal, and the demo says every accepted event
# was accounted for across the crash (and exits 0); its table has a row
# per function; its directory is removed. Then the same with the journal
# removed between the runs: the demo must notice (NO, exit non-zero).
# Usage: demo-crash-test.sh EVFN_DEMO_EXE
set -u
exe=$1
out=$(mktemp "${TMPDIR:-/tmp}/evfn-demo-crash-test.XXXXXX")
lost=$(mktemp "${TMPDIR:-/tmp}/evfn-demo-crash-test.XXXXXX")
trap 'rm -f "$out" "$lost"' EXIT INT TERM

. "$(dirname "$0")/../../tests/tap.sh"
echo "1..6"

"$exe" --crash --seconds 2 >"$out" 2>&1
rc=$?
check "--crash exits 0" test "$rc" -eq 0
check "run 1 was killed with SIGKILL" \
	grep -q '^==> run 1 killed (SIGKILL)$' "$out"
check "every accepted event accounted for across the crash: yes" \
	grep -q '^every accepted event accounted for across the crash: yes$' \
	"$out"
rows=$(sed -n '/^function  *run 1/,/^published: /p' "$out" | sed '1d;$d')
check "the crash table has a row per function, each ok" sh -c "
	test \$(printf '%s\n' '$rows' | grep -c ' ok\$') -eq 8"
root=$(sed -n 's/^evfn-demo --crash: run 1 on a durable journal under \([^ ,]*\),.*/\1/p' "$out")
check "the run's directory is removed" sh -c "test -n '$root' && test ! -e '$root'"

EVFN_DEMO_CRASH_LOSE_JOURNAL=1 "$exe" --crash --seconds 1.5 >"$lost" 2>&1
rc=$?
check "with the journal removed between the runs: NO, exit non-zero" sh -c "
	test $rc -ne 0 &&
	grep -q '^every accepted event accounted for across the crash: NO\$' '$lost'"
[ "$failed" -eq 0 ] || { sed 's/^/# /' "$out"; sed 's/^/# lost: /' "$lost"; }
exit "$failed"
