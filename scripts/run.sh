#!/usr/bin/env bash
# Installs what Mongoferry needs, builds it, and starts the desktop app.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
if [[ -f "$HOME/.cargo/env" ]]; then source "$HOME/.cargo/env"; fi
export MONGOD="${MONGOD:-$(scripts/install-mongod.sh)}"
(cd ui && npm run --silent build)
cargo build --release -p mongoferry-desktop --features custom-protocol
exec target/release/mongoferry-desktop "$@"
