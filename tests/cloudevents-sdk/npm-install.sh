#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the CloudEvents SDK the suite 'cloudevents-sdk' uses, exactly as
# package-lock.json pins it, into DIR/node_modules (DIR in the build
# directory): `npm ci` once, again only when the lock file changes. Says
# why and fails when node or npm is missing or the registry cannot be
# reached, so that the suite fails rather than passes without the SDK.
# Usage: npm-install.sh DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=$1
for tool in node npm; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "npm-install.sh: $tool not found: install Debian's nodejs and npm (./dev setup does)" >&2
		exit 1
	fi
done
mkdir -p "$dir"
if [ -f "$dir/node_modules/.installed-lock.json" ] &&
	cmp -s "$here/package-lock.json" "$dir/node_modules/.installed-lock.json"; then
	exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$dir/"
if ! (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts \
	--fetch-retries=1 --fetch-timeout=30000 --loglevel=error); then
	echo "npm-install.sh: npm ci could not install the CloudEvents SDK from the npm registry (offline, or no proxy?)" >&2
	exit 1
fi
cp "$here/package-lock.json" "$dir/node_modules/.installed-lock.json"
