#!/usr/bin/env bash
# Installs the real third-party peers that tests and benchmarks drive (nginx, aria2c, Chromium, umoci, skopeo),
# and a Python venv (.venv-interop/, gitignored) with huggingface_hub + transformers from the offline wheel index
# for the cache interop tests. apt needs root; otherwise it prints what is missing and those tests skip.
# With arguments (program names, e.g. `aria2c nginx`), only those are installed, and no venv (the benchmark uses this).
set -euo pipefail

install_interop_venv() {
  local root venv index
  root="$(cd "$(dirname "$0")/.." && pwd)"
  venv="$root/.venv-interop"
  index="${MODELFETCH_PYPI_INDEX:-file:///opt/pypi/simple}"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import huggingface_hub, transformers' >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v python3 >/dev/null 2>&1; then
    echo "install-system-deps: no python3; the Python interop tests will skip" >&2
    return 0
  fi
  echo "install-system-deps: creating $venv (huggingface_hub, transformers from $index)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --index-url "$index" huggingface_hub transformers >&2
}
[ $# -eq 0 ] && install_interop_venv
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
