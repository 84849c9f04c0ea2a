//! Helpers for the preflight tests: a standalone mongod (the sandbox only
//! starts replica sets), and short ways to run the check and read its
//! findings.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bson::doc;
use mongoferry::preflight::{self, CheckRequest, Finding, Report, Severity};

/// A mongod without `--replSet`: no oplog, no change stream. Killed on drop.
pub struct Standalone {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Standalone {
    /// Starts it and waits until it answers. Fails (never skips) when
    /// mongod is missing.
    pub async fn start() -> Standalone {
        let mongod =
            mongoferry::sandbox::find_mongod().unwrap_or_else(|e| panic!("{} {}", e, e.remedy()));
        let dir = tempfile::Builder::new()
            .prefix("mongoferry-standalone-")
            .tempdir()
            .expect("temp dir");
        let mut s = Standalone {
            port: 0,
            dir,
            child: None,
        };
        // A free port can be taken before mongod binds it: try another.
        for _ in 0..5 {
            s.port = mongoferry::sandbox::free_port().expect("free port");
            s.spawn(&mongod);
            if s.wait_ready().await {
                return s;
            }
            s.kill();
        }
        panic!("a standalone mongod did not start; log:\n{}", s.log());
    }

    fn spawn(&mut self, mongod: &PathBuf) {
        let db = self.dir.path().join("db");
        std::fs::create_dir_all(&db).expect("dbpath");
        let mut cmd = Command::new(mongod);
        cmd.args(["--bind_ip", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dbpath")
            .arg(&db)
            .arg("--logpath")
            .arg(self.log_path())
            .args(["--wiredTigerCacheSizeGB", "0.25"])
            .args(["--setParameter", "diagnosticDataCollectionEnabled=false"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        self.child = Some(cmd.spawn().expect("spawn mongod"));
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mongod.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Ready once our own log says it listens on our port (two processes
    /// cannot both bind it) and it answers a ping.
    async fn wait_ready(&mut self) -> bool {
        let client =
            mongodb::Client::with_uri_str(format!("{}&serverSelectionTimeoutMS=1000", self.uri()))
                .await
                .expect("client");
        for _ in 0..300 {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            let listening = self.log().lines().any(|l| {
                l.contains("\"Waiting for connections\"")
                    && l.contains(&format!("\"port\":{}", self.port))
            });
            if listening
                && client
                    .database("admin")
                    .run_command(doc! { "ping": 1 })
                    .await
                    .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        self.kill();
    }
}

fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and only touches the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Runs the check, failing the test if it could not run.
pub async fn check(source: &str, destination: &str, request: CheckRequest) -> Report {
    match preflight::check(source, destination, request).await {
        Ok(r) => r,
        Err(e) => panic!("the check could not run: {} {}", e, e.remedy()),
    }
}

/// `(id, severity, namespace)` of every finding, for compact assertions.
pub fn summary(r: &Report) -> Vec<(String, Severity, Option<String>)> {
    r.findings
        .iter()
        .map(|f| (f.id.clone(), f.severity, f.namespace.clone()))
        .collect()
}

/// The one finding with this id (and namespace, when given); fails the
/// test with the whole report otherwise.
pub fn the<'a>(r: &'a Report, id: &str, ns: Option<&str>) -> &'a Finding {
    let found: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.id == id && (ns.is_none() || f.namespace.as_deref() == ns))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {id} ({ns:?}) in {:#?}",
        summary(r)
    );
    found[0]
}

/// Fails the test if any finding has one of these ids.
pub fn assert_none(r: &Report, ids: &[&str]) {
    let hit: Vec<_> = r
        .findings
        .iter()
        .filter(|f| ids.contains(&f.id.as_str()))
        .collect();
    assert!(hit.is_empty(), "unexpected findings: {hit:#?}");
}

/// Every finding id the check can produce about the source and the
/// destination of a healthy, unauthenticated sandbox pair: none of them
/// may appear there.
pub const PROBLEM_IDS: &[&str] = &[
    "source_standalone",
    "destination_standalone",
    "same_cluster",
    "version_unparsed",
    "source_version_unsupported",
    "destination_version_unsupported",
    "version_downgrade",
    "minor_version_downgrade",
    "version_upgrade",
    "fcv_unreadable",
    "fcv_changing",
    "destination_fcv_too_low",
    "source_fcv_blocks_write_blocking",
    "fcv_older_than_source",
    "not_authenticated",
    "privileges_unreadable",
    "source_privileges_missing",
    "destination_privileges_missing",
    "source_privileges_limited",
    "destination_privileges_limited",
    "oplog_window_too_short",
    "oplog_window_tight",
    "oplog_unreadable",
    "oplog_not_checked",
    "destination_not_empty",
    "destination_namespace_dropped",
    "destination_unreadable",
    "scope_mismatch",
    "source_mismatch",
    "history_lost",
    "resume",
    "already_committed",
    "previous_migration_discarded",
    "insufficient_space",
    "low_space",
    "space_unknown",
    "time_series_collection",
    "queryable_encryption",
    "clustered_ttl",
    "capped_collection",
    "view_source_excluded",
    "admin_collections_skipped",
    "inventory_failed",
    "conflicting_indexes",
    "unsupported_on_destination",
    "prepare_unique_not_kept",
    "ttl_index",
    "large_document",
    "large_document_probe_sampled",
    "probe_failed",
    "dollar_field_names",
    "dotted_field_names",
    "duplicate_field_names",
    "shard_keys",
    "source_balancer_running",
    "destination_balancer_running",
    "sharding_unreadable",
];

/// The `dbStats` disk figures of a cluster, as the test reads them.
pub async fn disk(c: &mongodb::Client) -> (u64, u64) {
    let r = c
        .database("admin")
        .run_command(doc! { "dbStats": 1 })
        .await
        .expect("dbStats");
    let n = |k: &str| mongoferry::catalog::number(r.get(k));
    (n("fsTotalSize"), n("fsUsedSize"))
}
