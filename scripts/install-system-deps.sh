#!/usr/bin/env bash
# Installs the real third-party peers that tests and benchmarks drive (nginx, aria2c, Chromium, umoci, skopeo).
# Needs root and apt-get; otherwise prints what is missing and leaves the tests that need them to skip.
# With arguments (program names, e.g. `aria2c nginx`), only those are considered (the benchmark uses this).
set -euo pipefail
declare -A want=([nginx]=nginx-light [aria2c]=aria2 [chromium]=chromium [umoci]=umoci [skopeo]=skopeo [openssl]=openssl [unshare]=util-linux)
missing=()
bins=("$@")
[ ${#bins[@]} -eq 0 ] && bins=("${!want[@]}")
for bin in "${bins[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${want[$bin]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: not root or no apt-get; missing: ${missing[*]} (tests that need them will skip)" >&2
  exit 0
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
