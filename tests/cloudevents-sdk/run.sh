#!/bin/sh
# SPDX-License-Identifier: MIT
# Suite 'cloudevents-sdk': installs the pinned CloudEvents SDK
# (npm-install.sh), then runs sdk.js against the host. TAP; without the
# SDK it reports one failed case that says why.
# Usage: run.sh HOST_EXE WORK_DIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
host=$1
work=$2
if ! log=$(sh "$here/npm-install.sh" "$work" 2>&1); then
	echo "1..1"
	echo "not ok 1 - install the CloudEvents SDK with npm ci"
	printf '%s\n' "$log" | sed 's/^/# /'
	exit 1
fi
NODE_PATH="$work/node_modules" exec node "$here/sdk.js" "$host"
