#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then
# runs format, lint and type checks, the Rust unit and integration tests
# (on real mongod), and the front end's tests. Fails on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
if [[ -f "$HOME/.cargo/env" ]]; then source "$HOME/.cargo/env"; fi
export MONGOD="${MONGOD:-$(scripts/install-mongod.sh)}"
# The older sources the engine migrates from (4.4 and 5.0 need Debian 11's
# libssl1.1, which the script unpacks into its cache, never system-wide).
export MONGOD_44="${MONGOD_44:-$(scripts/install-mongod.sh 4.4)}"
export MONGOD_50="${MONGOD_50:-$(scripts/install-mongod.sh 5.0)}"

step() { printf '\n==> [%s] %s\n' "$(date -u +%T)" "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (workspace, all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [[ -f ui/package.json ]]; then
    step "front end: svelte-check and tsc"
    (cd ui && npm run --silent check)
    step "front end: vitest"
    (cd ui && npm test --silent)
    step "front end: build"
    (cd ui && npm run --silent build)
    # ui/dist is built from this tree: tests/e2e.rs and scripts/package.sh
    # --debug need not build it again (the app embeds it, and a rebuilt
    # dist, newer, would make cargo compile the app again under the tests).
    export MONGOFERRY_UI_BUILT=1
fi

step "cargo test --no-run (workspace: build every test)"
scripts/run-tests.sh --build

step "cargo test (integration tests start real mongod replica sets)"
# The keyring tests need real keyrings: a kernel session keyring
# (keyctl session) and a Secret Service (gnome-keyring under its own D-Bus
# session, its login keyring unlocked with an empty password and kept in a
# temp dir, so the developer's own keyring is never touched).
keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
XDG_DATA_HOME="$keyring_home" keyctl session - \
    dbus-run-session -- bash -c '
        printf "\n" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        # The desktop end-to-end test opens a real window: give it a
        # virtual display unless one is already there.
        if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
            exec xvfb-run -a scripts/run-tests.sh
        fi
        exec scripts/run-tests.sh
    '
