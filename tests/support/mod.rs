//! Shared helpers for the integration tests: real replica sets, cluster
//! comparison, and running the CLI as a child process.
#![allow(dead_code)]

pub mod ddl;
pub mod preflight;
pub mod restart;
pub mod scenario;
pub mod serve;
pub mod timeseries;
pub mod tls;
pub mod verify;

use std::time::Duration;

use bson::{doc, Document, RawDocumentBuf};
use futures_util::TryStreamExt;
use mongodb::options::Hint;
use mongodb::Client;
use mongoferry::sandbox::{MongodVersion, Pair, ReplicaSet};
use mongoferry::{MigrationHandle, Progress, State};

/// Two fresh replica sets. Fails (never skips) when mongod is missing.
pub async fn pair() -> Pair {
    match Pair::start().await {
        Ok(p) => p,
        Err(e) => panic!("{} {}", e, e.remedy()),
    }
}

/// A source of `version` and a 6.0 destination. Fails (never skips) when
/// that mongod is missing, saying how to install it.
pub async fn pair_from(version: MongodVersion) -> Pair {
    match Pair::start_versions(version, MongodVersion::V6_0).await {
        Ok(p) => p,
        Err(e) => panic!("{} {}", e, e.remedy()),
    }
}

/// Two fresh replica sets and a client of each.
pub async fn clusters() -> (Pair, Client, Client) {
    let pair = pair().await;
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    (pair, src, dest)
}

pub async fn replica_set(name: &str) -> ReplicaSet {
    match ReplicaSet::start(name).await {
        Ok(p) => p,
        Err(e) => panic!("{} {}", e, e.remedy()),
    }
}

pub async fn client(rs: &ReplicaSet) -> Client {
    rs.client().await.expect("client")
}

/// User databases of a cluster.
async fn user_dbs(c: &Client) -> Vec<String> {
    let mut dbs = non_system_dbs(c).await;
    dbs.retain(|d| d != "__mongoferry");
    dbs
}

async fn collections(c: &Client, db: &str) -> Vec<Document> {
    let mut v: Vec<Document> = c
        .database(db)
        .run_cursor_command(doc! { "listCollections": 1 })
        .await
        .expect("listCollections")
        .try_collect()
        .await
        .expect("listCollections");
    v.retain(|s| !s.get_str("name").unwrap_or("").starts_with("system."));
    v.sort_by(|a, b| {
        a.get_str("name")
            .unwrap_or("")
            .cmp(b.get_str("name").unwrap_or(""))
    });
    v
}

fn comparable_options(spec: &Document) -> Document {
    let mut o = spec.get_document("options").cloned().unwrap_or_default();
    // The server fills these in differently per collection incarnation.
    o.remove("uuid");
    o
}

/// The spec of index `name` on `db.coll`; fails the test when it is not
/// there.
pub async fn index_spec(c: &Client, db: &str, coll: &str, name: &str) -> Document {
    indexes(c, db, coll)
        .await
        .into_iter()
        .find(|s| s.get_str("name") == Ok(name))
        .unwrap_or_else(|| panic!("no index {name} on {db}.{coll}"))
}

/// A whole number of any BSON numeric type.
fn bson_number(v: &bson::Bson) -> Option<i64> {
    match v {
        bson::Bson::Int32(n) => Some(i64::from(*n)),
        bson::Bson::Int64(n) => Some(*n),
        bson::Bson::Double(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// The index specs of `db.coll`, by name, without the `ns` old servers add.
pub async fn indexes(c: &Client, db: &str, coll: &str) -> Vec<Document> {
    let mut v: Vec<Document> = c
        .database(db)
        .run_cursor_command(doc! { "listIndexes": coll })
        .await
        .expect("listIndexes")
        .try_collect()
        .await
        .expect("listIndexes");
    for i in v.iter_mut() {
        i.remove("ns");
        // Servers store a TTL as the type it was last given in (4.4 keeps
        // a collMod's long; 6.0 an int): the value is what counts.
        if let Some(secs) = i.get("expireAfterSeconds").and_then(bson_number) {
            i.insert("expireAfterSeconds", secs);
        }
    }
    v.sort_by(|a, b| {
        a.get_str("name")
            .unwrap_or("")
            .cmp(b.get_str("name").unwrap_or(""))
    });
    v
}

async fn documents(c: &Client, db: &str, coll: &str, capped: bool) -> Vec<RawDocumentBuf> {
    let coll = c.database(db).collection::<RawDocumentBuf>(coll);
    let find = if capped {
        coll.find(doc! {}).sort(doc! { "$natural": 1 })
    } else if coll.name().starts_with("system.buckets.") {
        // Clustered by `_id`, with no `_id` index to hint on 5.0.
        coll.find(doc! {}).sort(doc! { "_id": 1 })
    } else {
        coll.find(doc! {}).hint(Hint::Keys(doc! { "_id": 1 }))
    };
    find.await
        .expect("find")
        .try_collect()
        .await
        .expect("read documents")
}

/// Asserts the destination equals the source: the same databases,
/// collections and views with the same options, the same indexes, and the
/// same documents byte for byte (a time-series collection's: its buckets).
pub async fn assert_same(src: &Client, dest: &Client) {
    let dbs = user_dbs(src).await;
    assert_eq!(dbs, user_dbs(dest).await, "databases differ");
    for db in &dbs {
        let s = collections(src, db).await;
        let d = collections(dest, db).await;
        let names = |v: &[Document]| {
            v.iter()
                .map(|c| c.get_str("name").unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&s), names(&d), "collections of {db} differ");
        for (sc, dc) in s.iter().zip(d.iter()) {
            let name = sc.get_str("name").unwrap_or("");
            assert_eq!(sc.get_str("type"), dc.get_str("type"), "{db}.{name} type");
            assert_eq!(
                comparable_options(sc),
                comparable_options(dc),
                "{db}.{name} options"
            );
            if sc.get_str("type") == Ok("view") {
                continue;
            }
            assert_eq!(
                indexes(src, db, name).await,
                indexes(dest, db, name).await,
                "{db}.{name} indexes"
            );
            let capped = comparable_options(sc).get_bool("capped").unwrap_or(false);
            let data = match sc.get_str("type") {
                Ok("timeseries") => format!("system.buckets.{name}"),
                _ => name.to_string(),
            };
            let sd = documents(src, db, &data, capped).await;
            let dd = documents(dest, db, &data, capped).await;
            assert_eq!(sd.len(), dd.len(), "{db}.{name} document count");
            for (a, b) in sd.iter().zip(dd.iter()) {
                assert_eq!(
                    a.as_bytes(),
                    b.as_bytes(),
                    "{db}.{name}: documents differ: {:?} vs {:?}",
                    Document::try_from(a.as_ref()).ok(),
                    Document::try_from(b.as_ref()).ok()
                );
            }
        }
    }
}

/// Polls `f` until it holds, failing with its last word after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, String)>,
{
    let start = std::time::Instant::now();
    loop {
        let (ok, state) = f().await;
        if ok {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; last: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Inserts `docs` into `db.coll`, failing the test on an error.
pub async fn insert_into(c: &Client, db: &str, coll: &str, docs: Vec<bson::Document>) {
    c.database(db)
        .collection::<bson::Document>(coll)
        .insert_many(docs)
        .await
        .expect("insert");
}

/// Waits until `f(progress)` holds, failing after `timeout`.
pub async fn wait_for(
    handle: &MigrationHandle,
    what: &str,
    timeout: Duration,
    f: impl Fn(&Progress) -> bool,
) -> Progress {
    let start = std::time::Instant::now();
    loop {
        let p = handle.progress();
        if f(&p) {
            return p;
        }
        assert!(
            p.state != State::Failed,
            "migration failed while waiting for {what}: {:?}",
            p.error
        );
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}; last progress: {p:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `_id`s of a collection, for counting checks.
pub async fn count(c: &Client, db: &str, coll: &str) -> u64 {
    c.database(db)
        .collection::<Document>(coll)
        .count_documents(doc! {})
        .await
        .expect("count")
}

// ---------------------------------------------------------------------------
// The CLI as a child process, and its control API.
// ---------------------------------------------------------------------------

/// The `mongoferry` binary cargo built for these tests.
/// The `mongoferry` binary cargo built for this test run, beside the
/// `deps` folder the test binary runs from (`CARGO_BIN_EXE_mongoferry` is
/// set only for the mongoferry package's own test targets, not for this
/// crate).
pub fn mongoferry_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary runs from target/<profile>/deps");
    let bin = profile_dir.join(format!("mongoferry{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with cargo test, which builds it",
        bin.display()
    );
    bin
}

/// A command that runs cargo (itself, or through a script) from a test:
/// without the variables cargo sets for the running test
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...). Build scripts (ring's, through
/// cc) rerun when those change, so a nested build would otherwise rebuild
/// ring and every crate above it that the test run's build had made.
pub fn clean_cargo_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    const SET_FOR_TESTS: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "OUT_DIR",
    ];
    for (key, _) in std::env::vars_os() {
        let Some(k) = key.to_str() else { continue };
        if SET_FOR_TESTS.iter().any(|p| k.starts_with(p)) {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// A port nobody listens on yet, for a sync's control API.
pub fn api_port() -> u16 {
    mongoferry::sandbox::free_port().expect("free port")
}

fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and only touches the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A `mongoferry` child process whose stdout and stderr go to files. It is
/// killed (SIGKILL) when dropped, so a failing test leaves nothing behind.
pub struct CliProcess {
    child: Option<std::process::Child>,
    status: Option<std::process::ExitStatus>,
    pub args: Vec<String>,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl CliProcess {
    /// Starts `mongoferry <args>`.
    pub fn spawn<S: AsRef<str>>(args: &[S]) -> CliProcess {
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
        let dir = tempfile::Builder::new()
            .prefix("mongoferry-cli-")
            .tempdir()
            .expect("temp dir");
        let out = dir.path().join("stdout");
        let err = dir.path().join("stderr");
        let mut cmd = std::process::Command::new(mongoferry_bin());
        cmd.args(&args)
            .env_remove("MONGOFERRY_SOURCE")
            .env_remove("MONGOFERRY_DESTINATION")
            .env_remove("MONGOFERRY_LOG")
            // A sync's log goes to the scratch folder, not the user's data
            // directory (`--log-dir` still overrides it).
            .env("MONGOFERRY_LOG_DIR", dir.path().join("logs"))
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"));
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("spawn mongoferry");
        CliProcess {
            child: Some(child),
            status: None,
            args,
            out,
            err,
            _dir: dir,
        }
    }

    /// `mongoferry sync --source S --destination D --port P <extra>`.
    pub fn sync(source: &str, destination: &str, port: u16, extra: &[&str]) -> CliProcess {
        let mut args = vec![
            "sync".to_string(),
            "--source".into(),
            source.to_string(),
            "--destination".into(),
            destination.to_string(),
            "--port".into(),
            port.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        CliProcess::spawn(&args)
    }

    /// `mongoferry sync` from a sandbox pair's source to its destination.
    pub fn sync_pair(pair: &Pair, port: u16, extra: &[&str]) -> CliProcess {
        CliProcess::sync(&pair.source.uri(), &pair.destination.uri(), port, extra)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            if self.status.is_none() {
                // SAFETY: kill(2) on our own child, not yet reaped.
                unsafe {
                    libc::kill(c.id() as libc::pid_t, sig);
                }
            }
        }
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGKILL);
        let status = self.child.as_mut().expect("child").wait().expect("wait");
        self.status = Some(status);
        status
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<std::process::ExitStatus> {
        if self.status.is_none() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(s)) = c.try_wait() {
                    self.status = Some(s);
                }
            }
        }
        self.status
    }

    /// Waits for the process to exit, failing (after killing it) past `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = self.try_status() {
                return s;
            }
            if start.elapsed() > timeout {
                self.kill9();
                panic!(
                    "mongoferry {:?} did not exit within {timeout:?}; stderr:\n{}",
                    self.redacted_args(),
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn redacted_args(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| mongoferry::uri::redact_text(a))
            .collect()
    }

    /// Fails the test (with the process's stderr) if it has exited.
    pub fn assert_running(&mut self, what: &str) {
        if let Some(s) = self.try_status() {
            panic!(
                "mongoferry exited with {s} while waiting for {what}; stderr:\n{}",
                self.stderr()
            );
        }
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.status.is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// What a short-lived `mongoferry` command did.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `mongoferry <args>` to completion (killed after `timeout`).
pub async fn run_cli<S: AsRef<str>>(args: &[S], timeout: Duration) -> CliOutput {
    let mut p = CliProcess::spawn(args);
    let status = p.wait_exit(timeout).await;
    CliOutput {
        code: status.code(),
        stdout: p.stdout(),
        stderr: p.stderr(),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// `GET /api/v1/progress`'s `progress` object; `None` while nothing answers.
pub async fn api_progress(port: u16) -> Option<serde_json::Value> {
    let resp = http()
        .get(format!("http://127.0.0.1:{port}/api/v1/progress"))
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = resp.json().await.ok()?;
    v.get("progress").cloned()
}

/// `POST /api/v1/<action>`: the HTTP status and the JSON reply.
pub async fn api_post(
    port: u16,
    action: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = http()
        .post(format!("http://127.0.0.1:{port}/api/v1/{action}"))
        .json(&body)
        .send()
        .await
        .expect("the control API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON reply"))
}

/// Any request to the control API, as a client other than ours might send
/// it: the HTTP status and the reply, which must be JSON whatever happened.
pub async fn api_raw(
    port: u16,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut req = http()
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("the control API answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("a reply body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} answered {status} with non-JSON ({e}): {text}"));
    (status, json)
}

/// `GET <path>` of the control API as text (for `/metrics`): the HTTP
/// status, the `Content-Type` and the body; `None` while nothing answers.
pub async fn api_text(port: u16, path: &str) -> Option<(u16, String, String)> {
    let resp = http()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Some((status, content_type, resp.text().await.ok()?))
}

/// Polls the API of `sync` until `f(progress)` holds; fails if the process
/// exits, if the migration fails, or after `timeout`.
pub async fn wait_api(
    sync: &mut CliProcess,
    port: u16,
    what: &str,
    timeout: Duration,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    let mut last = None;
    loop {
        sync.assert_running(what);
        if let Some(p) = api_progress(port).await {
            if f(&p) {
                return p;
            }
            assert_ne!(
                p["state"], "FAILED",
                "migration failed while waiting for {what}: {p:#}"
            );
            last = Some(p);
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?} waiting for {what}; last progress: {last:#?}\nstderr:\n{}",
                sync.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Databases of a cluster other than admin, config and local: what a
/// failed command must not have created on a destination.
pub async fn non_system_dbs(c: &Client) -> Vec<String> {
    let mut dbs: Vec<String> = c
        .list_database_names()
        .await
        .expect("listDatabases")
        .into_iter()
        .filter(|d| !["admin", "local", "config"].contains(&d.as_str()))
        .collect();
    dbs.sort();
    dbs
}

/// The stored migration state on a destination, if any.
pub async fn stored_state(dest: &Client) -> Option<Document> {
    dest.database("__mongoferry")
        .collection::<Document>("state")
        .find_one(doc! {})
        .await
        .expect("read __mongoferry.state")
}

/// Runs a write load against `src` until the returned token is cancelled.
pub fn start_load(
    src: &Client,
    namespaces: Vec<mongoferry::Namespace>,
    first_new: u64,
    per_second: Option<u32>,
    seed: u64,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<mongoferry::Result<mongoferry::sandbox::workload::WorkloadStats>>,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn(mongoferry::sandbox::workload::run(
        src.clone(),
        namespaces,
        first_new,
        per_second,
        seed,
        stop.clone(),
    ));
    (stop, load)
}

/// Seeds several collections at once: `(namespace, documents, bytes each)`.
pub async fn seed_all(c: &Client, specs: &[(mongoferry::Namespace, u64, usize)]) {
    let seeds = specs
        .iter()
        .map(|(ns, count, size)| mongoferry::sandbox::workload::seed(c, ns, *count, *size));
    for r in futures_util::future::join_all(seeds).await {
        r.expect("seed the source");
    }
}

/// Documents across several collections.
pub async fn total_count(c: &Client, namespaces: &[mongoferry::Namespace]) -> u64 {
    let mut n = 0;
    for ns in namespaces {
        n += count(c, &ns.db, &ns.coll).await;
    }
    n
}

/// Starts the engine in-process; returns its handle and its run task.
pub async fn start_migration(
    config: mongoferry::SyncConfig,
) -> (
    MigrationHandle,
    tokio::task::JoinHandle<mongoferry::Result<Progress>>,
) {
    let migration =
        mongoferry::Migration::connect(config, tokio_util::sync::CancellationToken::new())
            .await
            .expect("connect");
    let handle = migration.handle();
    (handle, tokio::spawn(migration.run()))
}

/// Commits an in-process migration once it can commit and waits for
/// COMMITTED (the source's writes must have stopped).
pub async fn commit_and_wait(
    handle: &MigrationHandle,
    run: tokio::task::JoinHandle<mongoferry::Result<Progress>>,
    timeout: Duration,
) -> Progress {
    wait_for(handle, "canCommit before commit", timeout, |p| p.can_commit).await;
    handle
        .commit(mongoferry::CommitRequest::default())
        .expect("commit accepted");
    let done = tokio::time::timeout(timeout, run)
        .await
        .expect("commit finishes in time")
        .expect("the migration task does not panic")
        .expect("the migration commits");
    assert_eq!(done.state, State::Committed, "{done:#?}");
    assert!(done.can_write);
    done
}
