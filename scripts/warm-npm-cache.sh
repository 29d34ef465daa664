#!/usr/bin/env bash
# Fills npm's cache with what installing the packed tarball needs (the registry metadata and tarballs
# of the dependencies it does not bundle), so the install test can run it with --offline, as every
# test runs without the internet. `npm ci` alone caches the tarballs but not that metadata. Needs the
# npm registry, once per machine; run it after `npm ci` (it packs the built CLI). CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
npm pack --ignore-scripts --silent --pack-destination "$work" >/dev/null
npm install --global --prefix "$work/prefix" --prefer-offline --no-audit --no-fund --loglevel=error "$work"/modelfetch-*.tgz >/dev/null
echo "warm-npm-cache: npm's cache holds what installing the packed modelfetch needs"
