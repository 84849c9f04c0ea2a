#!/usr/bin/env bash
# Installs what building, running and testing Mongoferry needs on Debian or
# Ubuntu: system libraries (WebKitGTK for the desktop shell, the libraries
# mongod links against, a virtual display for headless runs), the Rust
# toolchain and Node.js when missing, the front end's npm packages, and the
# mongod used by the tests and the sandbox. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

APT_PACKAGES=(
    build-essential pkg-config curl ca-certificates
    libwebkit2gtk-4.1-dev libssl-dev librsvg2-dev
    libcurl4 liblzma5 libssl3
    xvfb xauth
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "Installing system packages: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "Installing the Rust toolchain with rustup..." >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy -c rustfmt
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
fi

if ! command -v npm >/dev/null; then
    echo "Installing Node.js and npm..." >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if [[ -f ui/package-lock.json ]]; then
    (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi

scripts/install-mongod.sh >/dev/null
