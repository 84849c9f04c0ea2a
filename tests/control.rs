//! Driving a running `mongoferry sync` through its control API and the
//! `mongoferry pause|resume|commit|progress` clients.

use mongoferry_test_support as support;

use std::time::{Duration, Instant};

use mongoferry::Namespace;
use serde_json::Value;

use support::*;

fn events(p: &Value) -> u64 {
    p["totalEventsApplied"].as_u64().unwrap_or(0)
}

fn copied(p: &Value) -> u64 {
    p["collectionCopy"]["estimatedCopiedBytes"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until `metric` stops changing (two equal readings `settle` apart;
/// the batches in flight at the pause are still written), then checks it
/// stays put for `window`. Returns the value.
async fn assert_frozen(
    port: u16,
    what: &str,
    metric: impl Fn(&Value) -> u64,
    settle: Duration,
    window: Duration,
) -> u64 {
    let start = Instant::now();
    let mut last = metric(&api_progress(port).await.expect("progress"));
    loop {
        tokio::time::sleep(settle).await;
        let now = metric(&api_progress(port).await.expect("progress"));
        if now == last {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} kept changing while paused ({last} -> {now})"
        );
        last = now;
    }
    tokio::time::sleep(window).await;
    let p = api_progress(port).await.expect("progress");
    assert_eq!(metric(&p), last, "{what} changed while paused: {p:#}");
    assert_eq!(p["state"], "PAUSED", "{p:#}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_and_resume_through_the_cli_during_sync_under_load() {
    let (pair, src, dest) = clusters().await;
    let specs = vec![
        (Namespace::new("app", "users"), 3000, 400),
        (Namespace::new("app", "orders"), 3000, 300),
    ];
    seed_all(&src, &specs).await;
    let nss: Vec<Namespace> = specs.iter().map(|s| s.0.clone()).collect();
    let (stop, load) = start_load(&src, nss, 1_000_000, Some(300), 3);

    let port = api_port();
    let port_s = port.to_string();
    let mut sync = CliProcess::sync(&pair.source.uri(), &pair.destination.uri(), port, &[]);
    wait_api(
        &mut sync,
        port,
        "canCommit with events applied",
        Duration::from_secs(60),
        |p| p["canCommit"] == true && events(p) > 0,
    )
    .await;

    let out = run_cli(&["pause", "--port", &port_s], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "mongoferry pause: {out:?}");
    let p = api_progress(port).await.expect("progress");
    assert_eq!(p["state"], "PAUSED", "{p:#}");
    assert_eq!(p["canCommit"], false, "a paused sync cannot commit: {p:#}");

    // While paused: commit and a second pause are refused, with reasons.
    let (code, reply) = api_post(port, "commit", serde_json::json!({})).await;
    assert_eq!(reply["success"], false, "{reply}");
    assert_ne!(code, 200, "{reply}");
    assert!(
        reply["errorDescription"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{reply}"
    );
    let (_, reply) = api_post(port, "pause", serde_json::json!({})).await;
    assert_eq!(reply["success"], false, "{reply}");
    let out = run_cli(&["commit", "--port", &port_s], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(1), "commit while paused: {out:?}");

    // Nothing is applied while paused, though the source keeps changing.
    let frozen = assert_frozen(
        port,
        "totalEventsApplied",
        events,
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await;

    let out = run_cli(&["resume", "--port", &port_s], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "mongoferry resume: {out:?}");
    let p = api_progress(port).await.expect("progress");
    assert_eq!(p["state"], "RUNNING", "{p:#}");
    wait_api(
        &mut sync,
        port,
        "events applied again after resume",
        Duration::from_secs(30),
        |p| events(p) > frozen,
    )
    .await;
    // `mongoferry progress` prints the same report as JSON.
    let out = run_cli(&["progress", "--port", &port_s], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("progress prints JSON");
    assert_eq!(v["progress"]["state"], "RUNNING", "{v:#}");

    stop.cancel();
    load.await.unwrap().unwrap();
    wait_api(
        &mut sync,
        port,
        "canCommit after resume",
        Duration::from_secs(60),
        |p| p["canCommit"] == true,
    )
    .await;
    let out = run_cli(&["commit", "--port", &port_s], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "mongoferry commit: {out:?}");
    let status = sync.wait_exit(Duration::from_secs(60)).await;
    assert!(status.success(), "stderr:\n{}", sync.stderr());
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_during_the_copy_holds_the_copy_until_resumed() {
    let (pair, src, dest) = clusters().await;
    let specs = vec![
        (Namespace::new("big", "a"), 80_000, 300),
        (Namespace::new("big", "b"), 80_000, 300),
    ];
    seed_all(&src, &specs).await;

    let port = api_port();
    let port_s = port.to_string();
    let mut sync = CliProcess::sync(
        &pair.source.uri(),
        &pair.destination.uri(),
        port,
        &["--commit-when-ready", "--copy-concurrency", "1"],
    );
    wait_api(
        &mut sync,
        port,
        "the copy to be under way",
        Duration::from_secs(60),
        |p| p["phase"] == "copying" && copied(p) > 0,
    )
    .await;
    let out = run_cli(&["pause", "--port", &port_s], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "mongoferry pause: {out:?}");
    let held = assert_frozen(
        port,
        "estimatedCopiedBytes",
        copied,
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await;
    let p = api_progress(port).await.expect("progress");
    assert_eq!(p["phase"], "copying", "the copy was still under way: {p:#}");
    assert!(
        held < p["collectionCopy"]["estimatedTotalBytes"]
            .as_u64()
            .unwrap_or(0),
        "{p:#}"
    );

    let out = run_cli(&["resume", "--port", &port_s], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "mongoferry resume: {out:?}");
    // --commit-when-ready takes it from here.
    let status = sync.wait_exit(Duration::from_secs(90)).await;
    assert!(status.success(), "stderr:\n{}", sync.stderr());
    assert_same(&src, &dest).await;
}
