//! The Debian package (issue 17). `scripts/package.sh --debug` builds it from
//! the dev profile, whose build `cargo test --workspace --features
//! mongoferry-desktop/custom-protocol` (scripts/run-tests.sh) has just made (the
//! lean `dist` build is for the package shipped, and too slow for CI); this
//! test then reads the package's control data and file list, unpacks it with
//! `dpkg-deb -x` into a scratch folder and runs the unpacked `mongoferry`.
//! What it checks is the same in both profiles: the script, the bundle
//! configuration and the generated man pages and completions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The end of a long output, enough to see why a step failed.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let chars: Vec<char> = text.chars().collect();
    chars[chars.len().saturating_sub(6000)..].iter().collect()
}

fn run(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A control field of the package.
fn field(deb: &Path, name: &str) -> String {
    let out = run(
        &format!("dpkg-deb -f {} {name}", deb.display()),
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(name),
    );
    stdout(&out).trim().to_string()
}

/// A file of the unpacked package that must be there and not be empty.
fn non_empty(root: &Path, path: &str) -> Vec<u8> {
    let full = root.join(path);
    let bytes =
        std::fs::read(&full).unwrap_or_else(|e| panic!("the package has no readable {path}: {e}"));
    assert!(!bytes.is_empty(), "the package's {path} is empty");
    bytes
}

#[test]
fn the_package_holds_the_app_and_the_cli_with_man_pages_and_completions() {
    let root = workspace();
    assert!(
        Command::new("dpkg-deb").arg("--version").output().is_ok(),
        "dpkg-deb is missing: the package test needs a Debian or Ubuntu machine (apt-get install dpkg)"
    );
    assert!(
        root.join("ui/node_modules").is_dir(),
        "the front end's npm packages are missing: run `npm ci` in ui/ (scripts/setup-deps.sh does)"
    );

    // The tests' own cargo has finished building by now and holds no lock
    // on the target directory.
    let built = run(
        "scripts/package.sh --debug",
        mongoferry_test_support::clean_cargo_env(&mut Command::new("bash"))
            .arg(root.join("scripts/package.sh"))
            .arg("--debug")
            .env("CARGO", env!("CARGO"))
            .current_dir(&root),
    );
    let printed = stdout(&built);
    let deb = printed
        .lines()
        .find_map(|l| l.strip_prefix("Package: "))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("package.sh printed no `Package: PATH` line:\n{printed}"));
    assert!(deb.is_file(), "{} was not built", deb.display());
    assert!(
        printed.contains("Size: "),
        "package.sh printed no size:\n{printed}"
    );

    // Recompressed with xz by the script.
    let members = stdout(&run("ar t", Command::new("ar").arg("t").arg(&deb)));
    assert!(
        members.lines().any(|m| m == "data.tar.xz"),
        "the package's data is not xz-compressed: {members}"
    );

    // Control data.
    assert_eq!(field(&deb, "Package"), "mongoferry");
    assert_eq!(field(&deb, "Version"), env!("CARGO_PKG_VERSION"));
    let arch = stdout(&run(
        "dpkg --print-architecture",
        Command::new("dpkg").arg("--print-architecture"),
    ));
    assert_eq!(field(&deb, "Architecture"), arch.trim());
    let depends = field(&deb, "Depends");
    for needed in ["libwebkit2gtk-4.1-0", "libgtk-3-0", "libdbus-1-3"] {
        assert!(
            depends.split(',').any(|d| d.trim().starts_with(needed)),
            "Depends does not name {needed}: {depends}"
        );
    }

    // The file list: path and mode of every entry.
    let listing = stdout(&run(
        "dpkg-deb -c",
        Command::new("dpkg-deb").arg("-c").arg(&deb),
    ));
    let entries: Vec<(String, String)> = listing
        .lines()
        .filter_map(|l| {
            let mode = l.split_whitespace().next()?;
            let path = l.split_whitespace().last()?;
            Some((mode.to_string(), path.trim_start_matches('.').to_string()))
        })
        .collect();
    let mode_of = |path: &str| {
        entries
            .iter()
            .find(|(_, p)| p == path)
            .map(|(m, _)| m.clone())
            .unwrap_or_else(|| panic!("the package has no {path}:\n{listing}"))
    };
    for bin in ["/usr/bin/mongoferry", "/usr/bin/mongoferry-desktop"] {
        assert_eq!(mode_of(bin), "-rwxr-xr-x", "{bin} is not executable");
    }
    for file in [
        "/usr/share/man/man1/mongoferry.1.gz",
        "/usr/share/man/man1/mongoferry-sync.1.gz",
        "/usr/share/bash-completion/completions/mongoferry",
        "/usr/share/zsh/vendor-completions/_mongoferry",
        "/usr/share/fish/vendor_completions.d/mongoferry.fish",
    ] {
        assert_eq!(mode_of(file), "-rw-r--r--", "{file} has an odd mode");
    }
    let has = |prefix: &str, suffix: &str| {
        entries
            .iter()
            .any(|(_, p)| p.starts_with(prefix) && p.ends_with(suffix))
    };
    assert!(
        has("/usr/share/applications/", ".desktop"),
        "no menu entry:\n{listing}"
    );
    assert!(
        has("/usr/share/icons/hicolor/", ".png"),
        "no icon:\n{listing}"
    );
    for (_, path) in &entries {
        if path.starts_with("/usr/share/man/") && !path.ends_with('/') {
            assert!(path.ends_with(".gz"), "{path} is not gzipped");
        }
    }

    // Unpacked: the CLI runs, and every generated file has content.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let unpacked = scratch.path();
    run(
        "dpkg-deb -x",
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(unpacked),
    );
    let version = stdout(&run(
        "the unpacked mongoferry --version",
        Command::new(unpacked.join("usr/bin/mongoferry")).arg("--version"),
    ));
    assert_eq!(
        version.trim(),
        format!("mongoferry {}", env!("CARGO_PKG_VERSION"))
    );

    let man = stdout(&run(
        "gzip -dc mongoferry.1.gz",
        Command::new("gzip")
            .arg("-dc")
            .arg(unpacked.join("usr/share/man/man1/mongoferry.1.gz")),
    ));
    assert!(
        man.contains(".TH MONGOFERRY 1") && man.contains("sync"),
        "the man page is not roff about mongoferry:\n{}",
        man.chars().take(500).collect::<String>()
    );
    for (path, marker) in [
        (
            "usr/share/bash-completion/completions/mongoferry",
            "mongoferry",
        ),
        (
            "usr/share/zsh/vendor-completions/_mongoferry",
            "#compdef mongoferry",
        ),
        (
            "usr/share/fish/vendor_completions.d/mongoferry.fish",
            "complete -c mongoferry",
        ),
    ] {
        let text = String::from_utf8_lossy(&non_empty(unpacked, path)).into_owned();
        assert!(text.contains(marker), "{path} does not contain `{marker}`");
    }

    let desktop = std::fs::read_dir(unpacked.join("usr/share/applications"))
        .expect("usr/share/applications")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "desktop"))
        .expect("a .desktop file");
    let entry = std::fs::read_to_string(&desktop).expect("the .desktop file");
    assert!(
        entry.lines().any(|l| l == "Exec=mongoferry-desktop"),
        "the menu entry does not start mongoferry-desktop:\n{entry}"
    );
    assert!(
        entry.lines().any(|l| l.starts_with("Icon=")),
        "the menu entry has no icon:\n{entry}"
    );
}
