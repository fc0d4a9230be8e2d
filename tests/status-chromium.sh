#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Renders the live status page in headless Chromium and checks that the
# JavaScript drew the function rows and the dead letter from the JSON
# document. Meson test 'status-chromium' (suite 'browser', run by
# ./dev test), TAP output: tests/status-chromium.sh BUILD_DIR.
# Chromium is a required test dependency (./dev installs the Debian
# package), so a missing browser fails the test instead of skipping it:
# a silent skip would let the page's JavaScript rot unnoticed in CI.
set -eu
build=${1:?usage: status-chromium.sh BUILD_DIR}
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
	echo "Bail out! no $chromium: apt-get install chromium (./dev setup does)"
	exit 1
fi

tmp=$(mktemp -d /tmp/evfn-status.XXXXXX)
host=
cleanup() {
	[ -n "$host" ] && kill "$host" 2>/dev/null && wait "$host" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Prints FILE as TAP diagnostics, so that none of its lines reads as a
# test result.
diag() {
	sed 's/^/# /' "$1"
}

"$build/tests/test-status" --serve 60 > "$tmp/url" &
host=$!
i=0
while [ ! -s "$tmp/url" ]; do
	i=$((i + 1))
	if [ "$i" -ge 100 ] || ! kill -0 "$host" 2>/dev/null; then
		echo "Bail out! status host did not print its URL within 10 s"
		exit 1
	fi
	sleep 0.1
done
url=$(head -n 1 "$tmp/url")

# HOME and XDG_* point into $tmp too: Chromium otherwise keeps its crash
# database under ~/.config/chromium even with --user-data-dir. The
# virtual time budget lets the page's fetch and rendering finish without
# waiting in real time; timeout bounds a hung browser, well inside
# meson's 120 s, so that the log below is shown and $tmp removed.
# --foreground keeps the browser in the test's process group, which
# meson kills with SIGKILL if its own timeout fires first.
if ! HOME="$tmp" XDG_CONFIG_HOME="$tmp/config" XDG_CACHE_HOME="$tmp/cache" \
	timeout --foreground -k 5 60 "$chromium" --headless --no-sandbox --disable-gpu \
	--disable-background-networking --disable-component-update \
	--disable-sync --no-first-run --user-data-dir="$tmp/profile" \
	--virtual-time-budget=3000 --dump-dom "$url" > "$tmp/dom.html" \
	2> "$tmp/chromium.log"; then
	diag "$tmp/chromium.log"
	echo "Bail out! $chromium failed to load $url"
	exit 1
fi

echo "1..7"
n=0
fail=0
check() {
	n=$((n + 1))
	if grep -q "$1" "$tmp/dom.html"; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		fail=1
	fi
}
check '<tr class="fn" data-fn="ok">' 'row of function ok rendered'
check '<tr class="fn" data-fn="flaky">' 'row of function flaky rendered'
check '<tr class="dl">' 'dead letter rendered'
check 'upstream said no' 'dead letter error shown'
check 'id="state">live' 'page reports live'
check '<td class="l">running</td>' 'state of a running function shown'
check '<td class="l bad">paused</td>' 'state of a paused function shown'
if [ "$fail" != 0 ]; then
	echo "# DOM:"
	diag "$tmp/dom.html"
fi
exit "$fail"
