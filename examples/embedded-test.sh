#!/bin/sh
# SPDX-License-Identifier: MIT
# Drives examples/embedded with curl, as an outside client of a host that
# mounted evfn on its own HTTP server: thumbnails come back from the pool
# function (one after a retry), bad input is answered 422, the host's own
# page and evfn's health route answer, and SIGTERM shuts down gracefully.
# Usage: embedded-test.sh EMBEDDED_EXE
set -u
exe=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/evfn-embedded.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $1"; failed=1; }
check() { # check DESCRIPTION COMMAND...
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
failed=0
echo "1..9"

"$exe" >"$dir/out" 2>"$dir/err" &
pid=$!
# The host prints its port once it listens.
i=0
until grep -q '^listening on ' "$dir/out"; do
	i=$((i + 1))
	if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "Bail out! the host did not start: $(cat "$dir/err")"
		exit 1
	fi
	sleep 0.05
done
url=$(sed -n 's/^listening on //p' "$dir/out")

# An 8x8 image, every pixel 100 ('d'): its thumbnail is 2x2, all 100.
{ printf 'P5\n8 8\n255\n'; i=0; while [ $i -lt 64 ]; do printf d; i=$((i + 1)); done; } >"$dir/in.pgm"
printf 'P5\n2 2\n255\ndddd' >"$dir/want.pgm"

all_ok=1
retried=0
for k in 1 2 3 4 5 6; do
	code=$(curl -sS --max-time 10 -D "$dir/h$k" -o "$dir/t$k.pgm" \
		-w '%{http_code}' --data-binary @"$dir/in.pgm" "$url/thumbnail")
	if [ "$code" != 200 ] || ! cmp -s "$dir/t$k.pgm" "$dir/want.pgm"; then
		all_ok=0
	fi
	grep -qi '^X-Attempt: 2' "$dir/h$k" && retried=1
done
check "six thumbnails, each 200 with the right pixels" [ $all_ok = 1 ]
check "a failed storage call was retried within the deadline" [ $retried = 1 ]
check "the thumbnail's type comes from the result" \
	grep -qi '^Content-Type: image/x-portable-graymap' "$dir/h1"

code=$(curl -sS --max-time 10 -o "$dir/bad" -w '%{http_code}' \
	--data-binary 'not an image' "$url/thumbnail")
check "bad input is answered 422 from the result" [ "$code" = 422 ]
check "with the handler's JSON body" \
	grep -q '"error":"not a binary PGM image"' "$dir/bad"

code=$(curl -sS --max-time 10 -o "$dir/get" -w '%{http_code}' "$url/thumbnail")
check "GET /thumbnail is evfn's 405" [ "$code" = 405 ]

code=$(curl -sS --max-time 10 -o "$dir/index" -w '%{http_code}' "$url/")
check "the host keeps its own page" \
	grep -q "host's own page" "$dir/index"

code=$(curl -sS --max-time 10 -o "$dir/health" -w '%{http_code}' "$url/healthz")
check "evfn's health route is mounted" [ "$code" = 200 ]

kill -TERM "$pid"
wait "$pid"
status=$?
pid=
grep -q '^drained: success' "$dir/out" || status=drain
check "SIGTERM drains and exits 0" [ "$status" = 0 ]
exit $failed
