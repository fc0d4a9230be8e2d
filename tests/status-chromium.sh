#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Renders the live status page in headless Chromium and checks that the
# JavaScript drew the function rows and the dead letter from the JSON
# document. Not registered in meson (Chromium is too heavy for CI); run by
# hand: tests/status-chromium.sh BUILD_DIR. Exits 77 (skipped) without
# /usr/bin/chromium.
set -eu
build=${1:?usage: status-chromium.sh BUILD_DIR}
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "no $chromium: skipped"; exit 77; }

tmp=$(mktemp -d /tmp/evfn-status.XXXXXX)
host=
cleanup() {
	[ -n "$host" ] && kill "$host" 2>/dev/null && wait "$host" || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"$build/tests/test-status" --serve 60 > "$tmp/url" &
host=$!
i=0
while [ ! -s "$tmp/url" ]; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { echo "host did not start"; exit 1; }
	sleep 0.1
done
url=$(head -n 1 "$tmp/url")

timeout 60 "$chromium" --headless --no-sandbox --disable-gpu \
	--disable-background-networking --disable-component-update \
	--disable-sync --no-first-run --user-data-dir="$tmp/profile" \
	--virtual-time-budget=3000 --dump-dom "$url" > "$tmp/dom.html" \
	2> "$tmp/chromium.log" || { cat "$tmp/chromium.log"; exit 1; }

fail=0
check() {
	if grep -q "$1" "$tmp/dom.html"; then
		echo "ok: $2"
	else
		echo "FAIL: $2"
		fail=1
	fi
}
check '<tr class="fn" data-fn="ok">' 'row of function ok rendered'
check '<tr class="fn" data-fn="flaky">' 'row of function flaky rendered'
check '<tr class="dl">' 'dead letter rendered'
check 'upstream said no' 'dead letter error shown'
check 'id="state">live' 'page reports live'
[ "$fail" = 0 ] || { echo "DOM:"; cat "$tmp/dom.html"; }
exit "$fail"
