#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then
# runs format, lint and type checks, the Rust unit and integration tests
# (on real mongod), and the front end's tests. Fails on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
if [[ -f "$HOME/.cargo/env" ]]; then source "$HOME/.cargo/env"; fi
export MONGOD="${MONGOD:-$(scripts/install-mongod.sh)}"

step() { printf '\n==> %s\n' "$*" >&2; }

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
fi

step "cargo test (workspace; integration tests start real mongod replica sets)"
# The keyring tests need real keyrings: a kernel session keyring
# (keyctl session) and a Secret Service (gnome-keyring under its own D-Bus
# session, its login keyring unlocked with an empty password and kept in a
# temp dir, so the developer's own keyring is never touched).
keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
XDG_DATA_HOME="$keyring_home" keyctl session - \
    dbus-run-session -- bash -c '
        printf "\n" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        exec cargo test --workspace --locked
    '
