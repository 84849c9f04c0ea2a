//! The log of every migration (issue 17): `mongoferry sync --log-dir DIR`
//! writes one file per migration, `<migration id>.log`, JSON lines through
//! `tracing`, that tells the whole story (the preflight report, the start,
//! each phase, pause, resume, commit, the verification, the end) and holds
//! no secret: the source user's password appears nowhere in it. A second
//! run of the same migration appends to the same file.
//!
//! Fails (never skips) when mongod is missing.

use mongoferry_test_support as support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use mongoferry::Namespace;
use serde_json::{json, Value};
use support::tls::root_auth;
use support::*;

/// The source's root password: ':' and '/' need encoding in a URI, so the
/// log must hold neither form.
const SOURCE_PW: &str = "L0g-Secret:pa55/w0rd";

const T: Duration = Duration::from_secs(120);

/// The log files in `dir`.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the log directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

/// Every line of the log, each of which must be one JSON object.
fn read_log(path: &Path) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(path).expect("read the log");
    let lines = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}"))
        })
        .collect();
    (text, lines)
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

/// The lines whose message is `m`.
fn events<'a>(lines: &'a [Value], m: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| message(l) == m).collect()
}

/// `POST /api/v1/<action>`, which must succeed.
async fn control(port: u16, action: &str, body: Value) {
    let (status, reply) = api_post(port, action, body).await;
    assert!(
        status == 200 && reply["success"] == true,
        "{action}: {status} {reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_leaves_one_readable_log_without_secrets() {
    let src = support::tls::replica_set("logsrc", None, Some(root_auth(SOURCE_PW))).await;
    let dest = replica_set("logdest").await;
    let source_uri = src.uri();
    assert!(
        source_uri.contains(&mongoferry::uri::encode_userinfo(SOURCE_PW)),
        "the source's URI carries the password: the test would prove nothing"
    );
    let src_client = src.client().await.expect("source client");
    seed_all(
        &src_client,
        &[(Namespace::new("shop", "orders"), 2_000, 200)],
    )
    .await;

    let logs = tempfile::tempdir().expect("temp dir");
    let log_dir = logs.path().join("nested").join("logs");
    let log_dir_arg = log_dir.to_str().expect("a UTF-8 temp path");
    let port = api_port();
    let mut sync = CliProcess::sync(&source_uri, &dest.uri(), port, &["--log-dir", log_dir_arg]);
    let ready = wait_api(&mut sync, port, "canCommit", T, |p| p["canCommit"] == true).await;
    control(port, "pause", json!({})).await;
    control(port, "resume", json!({})).await;
    wait_api(&mut sync, port, "canCommit after resume", T, |p| {
        p["state"] == "RUNNING" && p["canCommit"] == true
    })
    .await;
    control(port, "commit", json!({ "verify": "full" })).await;
    let status = sync.wait_exit(T).await;
    let stderr = sync.stderr();
    assert!(status.success(), "stderr:\n{stderr}");

    // One file, named by the migration's id, which the CLI printed.
    let id = ready["migrationId"].as_str().expect("a migration id");
    let files = log_files(&log_dir);
    let path = log_dir.join(format!("{id}.log"));
    assert_eq!(
        files,
        std::slice::from_ref(&path),
        "one log, named by the id"
    );
    assert!(
        stderr.contains(&format!("The migration's log is {}", path.display())),
        "the CLI says where the log is; stderr:\n{stderr}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only its owner may read the log");
    }

    let (text, lines) = read_log(&path);
    assert!(!text.contains(SOURCE_PW), "the password is in the log");
    assert!(
        !text.contains(&mongoferry::uri::encode_userinfo(SOURCE_PW)),
        "the encoded password is in the log"
    );
    assert!(!stderr.contains(SOURCE_PW), "the password is on stderr");
    for l in &lines {
        let level = l["level"].as_str().unwrap_or_default();
        assert!(
            ["INFO", "WARN", "ERROR"].contains(&level),
            "a line below info: {l}"
        );
        assert!(l["timestamp"].is_string(), "a line without a time: {l}");
    }

    // The story, in order: the preflight report, the start, each phase,
    // pause, resume, commit, the verification, the end.
    let check = events(&lines, "preflight check");
    assert_eq!(check.len(), 1, "{text}");
    assert_eq!(check[0]["fields"]["migration"], id);
    let shown_source = check[0]["fields"]["source"].as_str().unwrap_or_default();
    assert!(
        shown_source.contains("127.0.0.1") && shown_source.contains("root"),
        "the redacted source: {shown_source}"
    );
    for finding in events(&lines, "preflight finding") {
        let f = &finding["fields"];
        assert!(
            f["id"].is_string() && f["severity"].is_string() && f["title"].is_string(),
            "{finding}"
        );
    }
    let report = events(&lines, "preflight report");
    assert_eq!(report.len(), 1, "{text}");
    assert_eq!(report[0]["fields"]["passed"], true, "{text}");
    let started = events(&lines, "started");
    assert_eq!(started.len(), 1, "{text}");
    assert_eq!(started[0]["fields"]["migration"], id);
    let phases: Vec<&str> = events(&lines, "phase")
        .iter()
        .filter_map(|l| l["fields"]["to"].as_str())
        .collect();
    assert_eq!(
        phases,
        ["Copying", "Applying", "Committing", "Done"],
        "{text}"
    );
    assert!(
        !events(&lines, "collection copied and indexed").is_empty(),
        "{text}"
    );
    let position = |m: &str| {
        lines
            .iter()
            .position(|l| message(l) == m)
            .unwrap_or_else(|| panic!("no '{m}' in the log:\n{text}"))
    };
    let order = [
        "preflight report",
        "started",
        "pause: the migration holds at its next safe point",
        "resume: the migration goes on",
        "commit requested",
        "commit: verifying the destination",
        "commit: the destination equals the source",
        "committed",
        "migration ended",
    ]
    .map(position);
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "out of order: {order:?}\n{text}"
    );
    let commit = events(&lines, "commit requested");
    assert_eq!(commit[0]["fields"]["verify"], "Full", "{text}");
    let end = events(&lines, "migration ended");
    assert_eq!(end.len(), 1, "{text}");
    assert_eq!(end[0]["fields"]["outcome"], "COMMITTED");

    // The same migration run again appends to the same file.
    let port = api_port();
    let mut again = CliProcess::sync(&source_uri, &dest.uri(), port, &["--log-dir", log_dir_arg]);
    let status = again.wait_exit(T).await;
    assert!(status.success(), "stderr:\n{}", again.stderr());
    assert_eq!(
        log_files(&log_dir),
        std::slice::from_ref(&path),
        "still one log"
    );
    let (text, lines) = read_log(&path);
    assert!(!text.contains(SOURCE_PW), "the password is in the log");
    let finding_ids: Vec<&str> = events(&lines, "preflight finding")
        .iter()
        .filter_map(|l| l["fields"]["id"].as_str())
        .collect();
    assert!(finding_ids.contains(&"already_committed"), "{text}");
    let end = events(&lines, "migration ended");
    assert_eq!(end.len(), 2, "{text}");
    assert_eq!(end[1]["fields"]["outcome"], "COMMITTED");
}
