#!/usr/bin/env bash
# Builds the Debian package of Mongoferry: the desktop app (with its menu
# entry and icons, from the Tauri deb bundler) and the `mongoferry` command
# line at /usr/bin/mongoferry, its man pages (gzipped, in
# /usr/share/man/man1) and its bash, zsh and fish completions.
#
#   scripts/package.sh           # lean build (cargo profile `dist`): the package to ship
#   scripts/package.sh --debug   # dev profile, reusing `cargo test`'s build: for the package test
#
# Prints the .deb's path and size at the end. Needs what scripts/setup-deps.sh
# installs (Rust, Node.js with ui/node_modules, WebKitGTK's -dev package).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

die() {
    echo "error: $*" >&2
    exit 1
}

mode=dist
case "${1:-}" in
    "") ;;
    --debug) mode=debug ;;
    -h | --help)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown option '$1': run scripts/package.sh [--debug]." ;;
esac

if [[ -f "$HOME/.cargo/env" ]]; then source "$HOME/.cargo/env"; fi
cargo="${CARGO:-cargo}"
command -v "$cargo" >/dev/null || die "cargo is not installed: run scripts/setup-deps.sh first."
command -v npm >/dev/null || die "npm is not installed: run scripts/setup-deps.sh first."
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing: this script builds a Debian package and needs a Debian or Ubuntu machine."
[[ -d ui/node_modules ]] || die "the front end's npm packages are missing: run scripts/setup-deps.sh (or 'npm ci' in ui/) first."
pkg-config --exists webkit2gtk-4.1 2>/dev/null ||
    die "WebKitGTK's development files are missing (libwebkit2gtk-4.1-dev): run scripts/setup-deps.sh first."

target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
if [[ $mode == debug ]]; then
    cargo_profile=(--profile dev)
    out_dir="$target_dir/debug"
    # The debug binaries are large and only tested: compress them fast.
    xz_level=1
else
    # [profile.dist] in Cargo.toml: LTO, one codegen unit, stripped.
    cargo_profile=(--profile dist)
    out_dir="$target_dir/dist"
    tauri_args=(-- --profile dist --locked)
    xz_level=9
fi

step() { printf '\n==> %s\n' "$*" >&2; }

# 1. The command line (and, for --debug, the app). `--workspace` resolves
# the engine's features as the desktop build does, so that both binaries
# share one build of the engine. --debug builds both with a test target
# in the selection, so that features resolve as `cargo test --workspace
# --features mongoferry-desktop/custom-protocol` resolved them
# (scripts/run-tests.sh): its build is reused, not made again for the
# package test (a plain build leaves out the dev-dependencies' features,
# tokio's test-util among them, and rebuilds every crate above tokio).
if [[ $mode == debug ]]; then
    step "building the front end, the mongoferry CLI and the desktop app ($mode)"
    # scripts/test.sh has just built ui/dist from this tree, and says so.
    [[ -n ${MONGOFERRY_UI_BUILT:-} ]] || (cd ui && npm run --silent build)
    "$cargo" build --locked --workspace --bin mongoferry --bin mongoferry-desktop --test package \
        --features mongoferry-desktop/custom-protocol "${cargo_profile[@]}"
else
    step "building the mongoferry CLI ($mode)"
    "$cargo" build --locked --workspace --bin mongoferry "${cargo_profile[@]}"
fi
cli="$out_dir/mongoferry"
[[ -x $cli ]] || die "cargo built no $cli: check the cargo output above."

# 2. What the package adds beside the app, staged under one usr/ tree that
# tauri.conf.json's bundle is told to copy (the path is the same on every
# run, so the desktop build is not redone when only its content changes).
stage="$target_dir/package/$mode"
rm -rf "$stage"
mkdir -p "$stage/usr/bin" "$stage/usr/share/man/man1" \
    "$stage/usr/share/bash-completion/completions" \
    "$stage/usr/share/zsh/vendor-completions" \
    "$stage/usr/share/fish/vendor_completions.d"
cp "$cli" "$stage/usr/bin/mongoferry"

step "generating the man pages and shell completions"
for sub in completions man; do
    "$cli" "$sub" --help >/dev/null 2>&1 ||
        die "this mongoferry has no '$sub' subcommand, which the package needs for its man pages and completions: update the source tree (git pull) and run scripts/package.sh again."
done
"$cli" completions bash >"$stage/usr/share/bash-completion/completions/mongoferry"
"$cli" completions zsh >"$stage/usr/share/zsh/vendor-completions/_mongoferry"
"$cli" completions fish >"$stage/usr/share/fish/vendor_completions.d/mongoferry.fish"
man_tmp="$stage/man"
mkdir -p "$man_tmp"
"$cli" man "$man_tmp" >/dev/null
shopt -s nullglob
pages=("$man_tmp"/*.1)
shopt -u nullglob
((${#pages[@]})) || die "'mongoferry man' wrote no page (*.1) into $man_tmp: check its output above."
for page in "${pages[@]}"; do
    # -n: no name or time stamp in the archive, so a rebuild is identical.
    gzip -9n -c "$page" >"$stage/usr/share/man/man1/$(basename "$page").gz"
done
rm -rf "$man_tmp"
for f in "$stage/usr/share/bash-completion/completions/mongoferry" \
    "$stage/usr/share/zsh/vendor-completions/_mongoferry" \
    "$stage/usr/share/fish/vendor_completions.d/mongoferry.fish"; do
    [[ -s $f ]] || die "the generated $(basename "$f") is empty: check 'mongoferry completions' by hand."
done

# 3. The desktop app and the package. The Tauri CLI runs the front end's
# build (beforeBuildCommand), builds mongoferry-desktop (for --debug, step
# 1 did both), and bundles the .deb with the staged files
# (bundle.linux.deb.files, merged in here).
overlay="$target_dir/package/tauri-files-$mode.json"
printf '{"bundle":{"linux":{"deb":{"files":{"/usr":"%s"}}}}}\n' "$stage/usr" >"$overlay"
bundle_dir="$out_dir/bundle/deb"
rm -f "$bundle_dir"/*.deb
if [[ $mode == debug ]]; then
    # The app is built (step 1): the Tauri CLI only bundles it.
    step "bundling the .deb ($mode)"
    (cd ui && npm run --silent tauri -- bundle --ci --debug --bundles deb --config "$overlay")
else
    step "building the desktop app and the .deb ($mode)"
    (cd ui && npm run --silent tauri -- build --ci --bundles deb --config "$overlay" "${tauri_args[@]}")
fi

shopt -s nullglob
debs=("$bundle_dir"/*.deb)
shopt -u nullglob
((${#debs[@]} == 1)) || die "expected one .deb in $bundle_dir after the build, found ${#debs[@]}: check the Tauri output above."
deb="${debs[0]}"

# Tauri compresses the package's files with gzip; xz, Debian's own
# default, makes the binaries about a quarter smaller. dpkg-deb unpacks
# and packs again (control files and md5sums kept, owned by root).
step "compressing the package with xz"
repack="$target_dir/package/repack-$mode"
rm -rf "$repack"
dpkg-deb -R "$deb" "$repack"
chmod -R u+rwX,go+rX,go-w "$repack"
dpkg-deb --root-owner-group -Zxz "-z$xz_level" -b "$repack" "$deb.new" >/dev/null
mv "$deb.new" "$deb"
rm -rf "$repack"

bytes=$(stat -c %s "$deb")
printf '\nPackage: %s\nSize: %s bytes (%s MiB)\n' "$deb" "$bytes" \
    "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
