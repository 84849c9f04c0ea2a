//! Crashes and stops of the `mongoferry sync` process, and resuming with the
//! same command: kill -9 during the copy and during sync, and SIGTERM.

use mongoferry_test_support as support;

use std::time::Duration;

use mongoferry::sandbox::MongodVersion;
use mongoferry::Namespace;
use serde_json::Value;

use support::*;

fn copied(p: &Value) -> u64 {
    p["collectionCopy"]["estimatedCopiedBytes"]
        .as_u64()
        .unwrap_or(0)
}

fn total(p: &Value) -> u64 {
    p["collectionCopy"]["estimatedTotalBytes"]
        .as_u64()
        .unwrap_or(0)
}

fn events(p: &Value) -> u64 {
    p["totalEventsApplied"].as_u64().unwrap_or(0)
}

fn copying_under_way(p: &Value) -> bool {
    p["phase"] == "copying" && copied(p) > 0 && copied(p) < total(p)
}

/// Three collections of small documents with every common `_id` type.
fn copy_namespaces() -> Vec<(Namespace, u64, usize)> {
    vec![
        (Namespace::new("shop", "orders"), 70_000, 300),
        (Namespace::new("shop", "customers"), 70_000, 300),
        (Namespace::new("crm", "contacts"), 60_000, 300),
    ]
}

/// Kills the sync mid-copy, then runs the same command to commit. A source
/// older than 6.0 is read through its oplog.
async fn kill_9_during_the_copy(version: MongodVersion) {
    let pair = pair_from(version).await;
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    let specs = copy_namespaces();
    seed_all(&src, &specs).await;
    let nss: Vec<Namespace> = specs.iter().map(|s| s.0.clone()).collect();
    let seeded: u64 = specs.iter().map(|s| s.1).sum();

    let port = api_port();
    let mut first = CliProcess::sync_pair(&pair, port, &[]);
    let p = wait_api(
        &mut first,
        port,
        "the copy to be under way",
        Duration::from_secs(60),
        copying_under_way,
    )
    .await;
    let status = first.kill9();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );

    // The destination holds a partial copy and a checkpoint of it.
    let partial = total_count(&dest, &nss).await;
    assert!(
        partial > 0 && partial < seeded,
        "expected a partial copy, found {partial} of {seeded} documents; progress at the kill: {p:#}"
    );
    let state = stored_state(&dest)
        .await
        .expect("a checkpoint on the destination");
    assert_eq!(state.get_str("phase"), Ok("copying"), "{state}");
    let migration_id = state.get_str("migrationId").unwrap().to_string();

    // The same command, now committing when ready (the source is idle).
    let mut second = CliProcess::sync_pair(&pair, port, &["--commit-when-ready"]);
    let status = second.wait_exit(Duration::from_secs(180)).await;
    assert!(
        status.success(),
        "the resumed sync failed with {status}; stderr:\n{}",
        second.stderr()
    );
    let state = stored_state(&dest).await.expect("a checkpoint");
    assert_eq!(
        state.get_str("migrationId"),
        Ok(migration_id.as_str()),
        "the migration was resumed, not started over"
    );
    assert_eq!(state.get_str("phase"), Ok("committed"), "{state}");
    assert_same(&src, &dest).await;
}

/// Kills the sync while it applies under load, then resumes and commits
/// through the CLI. The checkpoint is the source's position: a resume token
/// from a change stream, an oplog `ts` from an older source's oplog.
async fn kill_9_during_sync(version: MongodVersion, oplog: bool) {
    let extra: &[&str] = if oplog {
        &["--event-source", "oplog"]
    } else {
        &[]
    };
    let pair = pair_from(version).await;
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    let specs = vec![
        (Namespace::new("app", "users"), 4000, 400),
        (Namespace::new("app", "events"), 4000, 300),
        (Namespace::new("billing", "invoices"), 3000, 500),
    ];
    seed_all(&src, &specs).await;
    let nss: Vec<Namespace> = specs.iter().map(|s| s.0.clone()).collect();
    let (stop, load) = start_load(&src, nss, 1_000_000, Some(300), 21);

    let port = api_port();
    let mut first = CliProcess::sync_pair(&pair, port, extra);
    let p = wait_api(
        &mut first,
        port,
        "canCommit with events applied",
        Duration::from_secs(60),
        |p| p["canCommit"] == true && events(p) > 0,
    )
    .await;
    assert_eq!(p["state"], "RUNNING");
    first.kill9();
    let state = stored_state(&dest).await.expect("a checkpoint");
    assert_eq!(state.get_str("phase"), Ok("applying"), "{state}");
    let position = if version == MongodVersion::V6_0 && !oplog {
        state.get_document("resumeToken").is_ok()
    } else {
        state.get_timestamp("oplogPosition").is_ok()
    };
    assert!(position, "the sync's position is saved: {state}");

    // The load goes on while nothing syncs; then the same command again.
    let mut second = CliProcess::sync_pair(&pair, port, extra);
    wait_api(
        &mut second,
        port,
        "canCommit after the restart",
        Duration::from_secs(60),
        |p| p["canCommit"] == true && events(p) > 0,
    )
    .await;
    stop.cancel();
    let stats = load.await.unwrap().unwrap();
    assert!(stats.total() > 100, "{stats:?}");
    wait_api(
        &mut second,
        port,
        "canCommit with the load stopped",
        Duration::from_secs(60),
        |p| p["canCommit"] == true,
    )
    .await;

    let out = run_cli(
        &["commit", "--port", &port.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.code, Some(0), "mongoferry commit: {out:?}");
    let status = second.wait_exit(Duration::from_secs(120)).await;
    assert!(
        status.success(),
        "the sync did not commit: {status}; stderr:\n{}",
        second.stderr()
    );
    assert!(second.stderr().contains("COMMITTED"), "{}", second.stderr());
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_the_copy_then_the_same_command_resumes_to_equality() {
    kill_9_during_the_copy(MongodVersion::V6_0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_the_copy_from_a_4_4_source_resumes_to_equality() {
    kill_9_during_the_copy(MongodVersion::V4_4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_sync_under_load_then_resume_and_commit_through_the_cli() {
    kill_9_during_sync(MongodVersion::V6_0, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_sync_from_a_4_4_source_resumes_from_its_oplog_position() {
    kill_9_during_sync(MongodVersion::V4_4, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_sync_from_a_5_0_source_resumes_from_its_oplog_position() {
    kill_9_during_sync(MongodVersion::V5_0, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_sync_with_the_oplog_source_on_6_0_resumes_from_its_oplog_position() {
    kill_9_during_sync(MongodVersion::V6_0, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_saves_a_checkpoint_exits_130_and_the_same_command_resumes() {
    let (pair, src, dest) = clusters().await;
    // A small collection whose copy finishes first, and big ones.
    let mut specs = copy_namespaces();
    specs.insert(0, (Namespace::new("aaa", "small"), 500, 200));
    seed_all(&src, &specs).await;
    let nss: Vec<Namespace> = specs.iter().map(|s| s.0.clone()).collect();

    let port = api_port();
    let mut first = CliProcess::sync_pair(&pair, port, &["--copy-concurrency", "2"]);
    wait_api(
        &mut first,
        port,
        "the copy to be under way",
        Duration::from_secs(60),
        copying_under_way,
    )
    .await;
    first.signal(libc::SIGTERM);
    let status = first.wait_exit(Duration::from_secs(30)).await;
    let stderr = first.stderr();
    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");
    assert!(
        stderr.contains("Run the same command again"),
        "stderr:\n{stderr}"
    );
    let state = stored_state(&dest).await.expect("a checkpoint");
    assert_eq!(state.get_str("phase"), Ok("copying"), "{state}");
    let migration_id = state.get_str("migrationId").unwrap().to_string();

    // Resume under a write load; stop it with SIGTERM again, during sync.
    let (stop, load) = start_load(&src, nss, 1_000_000, Some(300), 5);
    let mut second = CliProcess::sync_pair(&pair, port, &["--copy-concurrency", "2"]);
    wait_api(
        &mut second,
        port,
        "canCommit after resuming the copy",
        Duration::from_secs(60),
        |p| p["canCommit"] == true && events(p) > 0,
    )
    .await;
    second.signal(libc::SIGTERM);
    let status = second.wait_exit(Duration::from_secs(30)).await;
    let stderr = second.stderr();
    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");
    // A clean stop releases the destination's lease: no waiting for it.
    assert!(!stderr.contains("lease"), "stderr:\n{stderr}");
    let state = stored_state(&dest).await.expect("a checkpoint");
    assert_eq!(state.get_str("phase"), Ok("applying"), "{state}");
    assert_eq!(state.get_str("migrationId"), Ok(migration_id.as_str()));
    assert!(state.get_document("resumeToken").is_ok(), "{state}");

    let mut third = CliProcess::sync_pair(&pair, port, &["--copy-concurrency", "2"]);
    wait_api(
        &mut third,
        port,
        "canCommit after resuming sync",
        Duration::from_secs(30),
        |p| p["canCommit"] == true,
    )
    .await;
    assert!(
        !third.stderr().contains("lease"),
        "a stopped process left its lease behind:\n{}",
        third.stderr()
    );
    stop.cancel();
    load.await.unwrap().unwrap();
    wait_api(
        &mut third,
        port,
        "canCommit with the load stopped",
        Duration::from_secs(60),
        |p| p["canCommit"] == true,
    )
    .await;
    let (code, reply) = api_post(port, "commit", serde_json::json!({})).await;
    assert_eq!(
        (code, &reply["success"]),
        (200, &Value::Bool(true)),
        "{reply}"
    );
    let status = third.wait_exit(Duration::from_secs(120)).await;
    assert!(status.success(), "stderr:\n{}", third.stderr());
    assert_same(&src, &dest).await;
}
