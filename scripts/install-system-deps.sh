#!/usr/bin/env bash
# Installs the real third-party peers that tests and benchmarks drive (nginx, aria2c, Chromium, umoci, skopeo,
# squid, and iproute2's ip and tc for the network-namespace cluster test), and creates the Python venv
# .venv-interop/ (gitignored) with huggingface_hub, hf_xet, safetensors, numpy and transformers for the
# interop tests (without it they skip, and say so under the test summary).
# pip uses its configured index (pip.conf: index-url, extra-index-url, find-links); MODELFETCH_PYPI_INDEX,
# when set, replaces the index for this install. apt needs root; otherwise it prints what is missing and
# those tests skip. With arguments (program names, e.g. `aria2c nginx`), only those are installed, and no
# venv (the benchmark uses this).
set -euo pipefail

PYTHON_PACKAGES=(huggingface_hub hf_xet safetensors numpy transformers)

install_interop_venv() {
  local root venv
  root="$(cd "$(dirname "$0")/.." && pwd)"
  venv="$root/.venv-interop"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import huggingface_hub, hf_xet, safetensors, numpy, transformers' >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v python3 >/dev/null 2>&1; then
    echo "install-system-deps: no python3; the Python interop tests will skip" >&2
    return 0
  fi
  local index=()
  [ -n "${MODELFETCH_PYPI_INDEX:-}" ] && index=(--index-url "$MODELFETCH_PYPI_INDEX")
  echo "install-system-deps: creating $venv (${PYTHON_PACKAGES[*]}; index: ${MODELFETCH_PYPI_INDEX:-as configured for pip})" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # One retry, not pip's five with backoff: where the default index cannot be reached (an offline
  # machine with a local index configured) each package would otherwise wait out all five.
  "$venv/bin/pip" install -q --disable-pip-version-check --retries 1 "${index[@]}" "${PYTHON_PACKAGES[@]}" >&2
}
[ $# -eq 0 ] && install_interop_venv
declare -A want=([nginx]=nginx-light [aria2c]=aria2 [chromium]=chromium [umoci]=umoci [skopeo]=skopeo [squid]=squid [openssl]=openssl [unshare]=util-linux [ip]=iproute2 [tc]=iproute2)
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
