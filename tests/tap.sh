# SPDX-License-Identifier: MIT
# TAP for the shell tests, sourced (". tests/tap.sh"): check DESCRIPTION
# COMMAND... runs the command and prints "ok N - DESCRIPTION", or
# "not ok N - DESCRIPTION" followed by the command's output as TAP
# comments and sets failed=1. The caller prints the plan ("1..N") and
# ends with exit "$failed".
n=0
failed=0
check() {
	tap_desc=$1
	shift
	n=$((n + 1))
	tap_out=$(mktemp)
	if "$@" >"$tap_out" 2>&1; then
		echo "ok $n - $tap_desc"
	else
		echo "not ok $n - $tap_desc"
		sed 's/^/# /' "$tap_out"
		failed=1
	fi
	rm -f "$tap_out"
}
