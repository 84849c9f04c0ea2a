#!/usr/bin/env bash
# Runs every test of the workspace once `cargo test --no-run` has built
# them; scripts/test.sh calls it inside the keyring and display session the
# tests need. On 2 cores, in turns and lanes:
#
#   1. tests/copy.rs alone: its rate and adaptive-mode tests measure what
#      the copy does to the machine, and a neighbour would blur it;
#   2. every other suite (each starting its own replica sets; e2e waits
#      on a real window), and the unit and doc tests, two at a time;
#   3. tests/package.rs alone: it rebuilds the app and the CLI in the
#      shared target directory, which must not change under a running test.
#
# The script fails if any of them did, once all have run.
#
# `scripts/run-tests.sh --build` builds it all first (`cargo test
# --no-run`), with the same flags, which scripts/test.sh runs before.
#
# Every cargo call goes through `cargo_test`: one selection of packages
# and features, so that no call builds anything again. `-p mongoferry`
# alone would build the engine without the features the desktop crate
# turns on (cargo unifies features over the packages of one call), which
# rebuilt the engine and every test binary, 2 min 12 s, after `--no-run`.
# The desktop app is built with `custom-protocol` (its front end embedded),
# which tests/e2e.rs and tests/package.rs run: their own builds, made with
# dev-dependencies selected (a test target) and the same features, then
# find it built. A plain `cargo build` resolves features without the
# dev-dependencies (tokio's test-util, syn's fold), and rebuilt every
# crate above tokio and the proc macros, for each of the two.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%s] %s\n' "$(date -u +%T)" "$*" >&2; }
cargo_test() { cargo test --workspace --locked --features mongoferry-desktop/custom-protocol "$@"; }

if [[ ${1:-} == --build ]]; then
    cargo_test --no-run
    exit 0
fi

step "tests/copy.rs (alone)"
cargo_test --test copy

# Every other suite, and the unit and doc tests, as jobs for two workers,
# the longest first (as measured in CI), so that both end at about the
# same time; a suite not named here runs after them, in name order. Each
# job's output goes to its own log, printed when the job ends.
longest_first=(resume ddl cli control e2e limits load restart_older restart tls
    install progress timeseries older preflight)
jobs=()
for name in "${longest_first[@]}"; do jobs+=("--test $name"); done
for f in tests/*.rs tests/*/main.rs src-tauri/tests/*.rs; do
    [[ -f $f ]] || continue
    if [[ $f == */main.rs ]]; then name=$(basename "$(dirname "$f")"); else name=$(basename "$f" .rs); fi
    case " copy package ${longest_first[*]} " in *" $name "*) continue ;; esac
    jobs+=("--test $name")
done
jobs+=("--lib --bins" "--doc")

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# One job: its cargo call, its log, and a line when it ends.
run_job() {
    local job=$1 log
    log="$logs/$(tr -c 'a-z0-9' '_' <<<"$job").log"
    local started=$SECONDS status=ok
    # shellcheck disable=SC2086 # the job is words: "--test NAME", "--lib --bins"
    cargo_test $job >"$log" 2>&1 || status=FAILED
    [[ $status == ok ]] || touch "$logs/failed"
    # One job's output at a time.
    {
        flock 9
        step "$status: $job ($((SECONDS - started)) s)"
        cat "$log" >&2
    } 9>"$logs/print.lock"
}
export -f run_job cargo_test step
export logs
step "${#jobs[@]} jobs on two workers"
printf '%s\n' "${jobs[@]}" | xargs -d '\n' -P 2 -I{} bash -c 'run_job "$1"' _ {}
if [[ -e "$logs/failed" ]]; then
    echo "error: tests failed (see FAILED above)" >&2
    exit 1
fi

step "tests/package.rs (alone)"
cargo_test --test package
step "all tests passed"
