#!/usr/bin/env bash
# Runs every test of the workspace once `cargo test --no-run` has built
# them; scripts/test.sh calls it inside the keyring and display session the
# tests need. On 2 cores, in turns and lanes:
#
#   1. tests/copy.rs alone: its rate and adaptive-mode tests measure what
#      the copy does to the machine, and a neighbour would blur it;
#   2. two lanes at once: the desktop lane (the desktop crate's tests, then
#      tests/e2e.rs, which builds the app and waits on a real window) beside
#      the engine lane (every other suite, each starting its own replica
#      sets);
#   3. tests/package.rs alone: it rebuilds the app and the CLI in the
#      shared target directory, which must not change under a running test.
#
# The script fails if any of them did, after printing the desktop lane's
# output.
#
# Every call names --workspace and selects targets: `-p mongoferry` alone
# would build the engine without the features the desktop crate turns on
# (cargo unifies features over the packages of one call), which rebuilt
# the engine and every test binary, 2 min 12 s, after `--no-run`.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%s] %s\n' "$(date -u +%T)" "$*" >&2; }

step "tests/copy.rs (alone)"
cargo test --workspace --locked --test copy

desktop_log=$(mktemp)
trap 'rm -f "$desktop_log"' EXIT
step "desktop lane, in the background: mongoferry-desktop's integration tests, then tests/e2e.rs"
(
    cargo test --workspace --locked --test state --test profiles &&
        step "desktop lane: tests/e2e.rs" &&
        cargo test --workspace --locked --test e2e &&
        step "desktop lane: done"
) >"$desktop_log" 2>&1 &
desktop=$!

engine_tests=()
for f in tests/*.rs tests/*/main.rs; do
    [[ -f $f ]] || continue
    if [[ $f == */main.rs ]]; then name=$(basename "$(dirname "$f")"); else name=$(basename "$f" .rs); fi
    case $name in copy | e2e | package) continue ;; esac
    engine_tests+=(--test "$name")
done

engine=0
step "engine lane: unit and doc tests, and $((${#engine_tests[@]} / 2)) integration suites"
{ cargo test --workspace --locked --lib --bins "${engine_tests[@]}" &&
    cargo test --workspace --locked --doc; } || engine=$?
step "engine lane: done"

desktop_status=0
wait "$desktop" || desktop_status=$?
step "the desktop lane's output"
cat "$desktop_log"
if ((engine != 0 || desktop_status != 0)); then
    echo "error: tests failed (engine lane exit $engine, desktop lane exit $desktop_status)" >&2
    exit 1
fi

step "tests/package.rs (alone)"
cargo test --workspace --locked --test package
step "all tests passed"
