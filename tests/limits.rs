//! Limits of the server: documents of nearly 16 MB (whose change events
//! would exceed 16 MB), and a resume point that fell off the source's oplog.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::{doc, Bson, Document};
use mongodb::Client;
use mongoferry::checkpoint::token_time;
use mongoferry::sandbox::ReplicaSet;
use mongoferry::{Migration, Namespace, SyncConfig};
use tokio_util::sync::CancellationToken;

use support::*;

/// The server's largest document.
const MAX_BSON: usize = 16 * 1024 * 1024;

/// A source with a 1 MB oplog, checkpointed every second so that the
/// oplog is truncated promptly (mongod keeps it back to its last
/// checkpoint), a destination, and a client of each.
async fn small_oplog_pair() -> (ReplicaSet, ReplicaSet, Client, Client) {
    let (source, destination) = tokio::join!(
        ReplicaSet::start_with("source", &["--oplogSize", "1", "--syncdelay", "1"]),
        ReplicaSet::start("destination"),
    );
    let (source, destination) = (source.unwrap(), destination.unwrap());
    let src = client(&source).await;
    let dest = client(&destination).await;
    (source, destination, src, dest)
}

/// A document of exactly `size` bytes of BSON.
fn doc_of_size(id: Bson, tag: &str, size: usize) -> Document {
    let mut d = doc! { "_id": id, "tag": tag, "pad": "" };
    let base = bson::to_vec(&d).unwrap().len();
    d.insert("pad", "x".repeat(size - base));
    assert_eq!(bson::to_vec(&d).unwrap().len(), size);
    d
}

/// Runs a source operation, failing the test if it fails or hangs.
async fn within<T, E: std::fmt::Display>(
    what: &str,
    op: impl std::future::IntoFuture<Output = Result<T, E>>,
) -> T {
    match tokio::time::timeout(Duration::from_secs(60), op.into_future()).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what} failed on the source: {e}"),
        Err(_) => panic!("{what} took over 60 s on the source"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_of_nearly_16_mb_are_copied_and_synced() {
    let (pair, src, dest) = clusters().await;
    // The sandbox's 256 MB WiredTiger cache refuses a 16 MB insert as "too
    // large for the cache" (code 388): give both sides a larger cache.
    for c in [&src, &dest] {
        c.database("admin")
            .run_command(
                doc! { "setParameter": 1, "wiredTigerEngineRuntimeConfig": "cache_size=1G" },
            )
            .await
            .unwrap();
    }
    let big = MAX_BSON - 16;
    let docs = src.database("big").collection::<Document>("docs");
    // Copied: one huge document among small ones.
    within(
        "insert a 16 MB document",
        docs.insert_one(doc_of_size(Bson::Int32(1), "copied", big)),
    )
    .await;
    for (id, tag) in [
        (2, "replaced"),
        (3, "grown"),
        (4, "deleted"),
        (5, "touched"),
    ] {
        within(
            "insert a small document",
            docs.insert_one(doc_of_size(Bson::Int32(id), tag, 1000)),
        )
        .await;
    }
    seed_all(&src, &[(Namespace::new("big", "small"), 2000, 500)]).await;

    let (handle, task) =
        start_migration(SyncConfig::new(pair.source.uri(), pair.destination.uri())).await;
    wait_for(&handle, "canCommit", Duration::from_secs(90), |p| {
        p.can_commit
    })
    .await;

    // During sync, events whose full document would not fit in 16 MB.
    within(
        "update a 16 MB document",
        docs.update_one(doc! { "_id": 1 }, doc! { "$set": { "touched": true } }),
    )
    .await;
    let mut replacement = doc_of_size(Bson::Int32(2), "replaced", big);
    replacement.remove("_id");
    within(
        "replace a small document with a 16 MB one",
        docs.replace_one(doc! { "_id": 2 }, replacement),
    )
    .await;
    let grown = doc_of_size(Bson::Int32(3), "grown", big);
    within(
        "grow a document to 16 MB",
        docs.update_one(
            doc! { "_id": 3 },
            doc! { "$set": { "pad": grown.get_str("pad").unwrap() } },
        ),
    )
    .await;
    within("delete a document", docs.delete_one(doc! { "_id": 4 })).await;
    within(
        "insert a 16 MB document",
        docs.insert_one(doc_of_size(
            Bson::String("inserted".into()),
            "inserted",
            big,
        )),
    )
    .await;
    // A small change to a document that stays small.
    within(
        "update a small document",
        docs.update_one(doc! { "_id": 5 }, doc! { "$set": { "touched": true } }),
    )
    .await;
    let p = wait_for(
        &handle,
        "canCommit after the changes",
        Duration::from_secs(90),
        |p| p.can_commit,
    )
    .await;
    assert_eq!(p.documents_failed, 0, "{p:#?}");

    let done = commit_and_wait(&handle, task, Duration::from_secs(120)).await;
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    assert_same(&src, &dest).await;
}

/// The source's oldest oplog entry.
async fn oldest_oplog(c: &Client) -> bson::Timestamp {
    let d = c
        .database("local")
        .collection::<Document>("oplog.rs")
        .find_one(doc! {})
        .sort(doc! { "$natural": 1 })
        .await
        .unwrap()
        .expect("an oplog entry");
    d.get_timestamp("ts").unwrap()
}

/// Writes to the source until its oplog no longer holds `point`.
async fn roll_oplog_past(c: &Client, point: bson::Timestamp) {
    let start = std::time::Instant::now();
    let mut round = 0u64;
    let mut oldest = oldest_oplog(c).await;
    while (oldest.time, oldest.increment) <= (point.time, point.increment) {
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "the source's oplog did not roll past {point:?} (oldest entry {oldest:?})"
        );
        let ns = Namespace::new("filler", format!("f{round}"));
        mongoferry::sandbox::workload::seed(c, &ns, 1000, 1000)
            .await
            .unwrap();
        round += 1;
        oldest = oldest_oplog(c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_token_that_fell_off_the_oplog_fails_with_history_lost() {
    let (source, destination, src, dest) = small_oplog_pair().await;
    seed_all(&src, &[(Namespace::new("app", "users"), 2000, 300)]).await;

    let port = api_port();
    let (source_uri, dest_uri) = (source.uri(), destination.uri());
    let mut first = CliProcess::sync(&source_uri, &dest_uri, port, &[]);
    wait_api(
        &mut first,
        port,
        "canCommit",
        Duration::from_secs(60),
        |p| p["canCommit"] == true,
    )
    .await;
    // Wait for a saved resume token, then crash.
    let start = std::time::Instant::now();
    let token = loop {
        if let Some(t) = stored_state(&dest)
            .await
            .and_then(|s| s.get_document("resumeToken").ok().cloned())
        {
            break t;
        }
        first.assert_running("a saved resume token");
        assert!(start.elapsed() < Duration::from_secs(30), "no token saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    first.kill9();
    let saved_at = token_time(&token).expect("the token's time");

    roll_oplog_past(&src, saved_at).await;

    // In-process: the preflight check finds the lost history before the
    // migration takes its lease or opens a stream.
    let migration = Migration::connect(
        SyncConfig::new(source_uri.clone(), dest_uri.clone()),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(60), migration.run())
        .await
        .expect("the engine gives up in time")
        .expect_err("resuming past the oplog must fail");
    assert_eq!(err.code(), "preflight_blocked", "{err}");
    let mongoferry::Error::PreflightBlocked { report } = &err else {
        unreachable!("the code says preflight_blocked")
    };
    assert_eq!(
        report.blockers().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        vec!["history_lost"],
        "{report:#?}"
    );

    // The CLI: the same command fails, and says a fresh start is needed.
    // (On a port picked anew: the first one was freed long ago, and
    // another test's mongod may have taken it since.)
    let port = api_port();
    let mut second = CliProcess::sync(&source_uri, &dest_uri, port, &[]);
    let status = second.wait_exit(Duration::from_secs(60)).await;
    let stderr = second.stderr();
    assert!(
        matches!(status.code(), Some(c) if c != 0 && c != 130),
        "{status}: {stderr}"
    );
    assert!(stderr.contains("oplog"), "{stderr}");
    assert!(stderr.contains("--fresh"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // And starting afresh works.
    let mut fresh = CliProcess::sync(
        &source_uri,
        &dest_uri,
        port,
        &["--fresh", "--commit-when-ready"],
    );
    let status = fresh.wait_exit(Duration::from_secs(90)).await;
    assert!(status.success(), "{status}: {}", fresh.stderr());
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_whose_start_fell_off_the_oplog_fails_with_history_lost() {
    let (source, destination, src, dest) = small_oplog_pair().await;
    seed_all(
        &src,
        &[
            (Namespace::new("big", "a"), 70_000, 300),
            (Namespace::new("big", "b"), 70_000, 300),
        ],
    )
    .await;

    let port = api_port();
    let (source_uri, dest_uri) = (source.uri(), destination.uri());
    // At the throughput it assumes, the preflight check sees that this
    // copy cannot finish inside the oplog window, and refuses to start.
    let mut refused = CliProcess::sync(&source_uri, &dest_uri, port, &["--copy-concurrency", "1"]);
    let status = refused.wait_exit(Duration::from_secs(60)).await;
    assert!(!status.success(), "{}", refused.stderr());
    assert!(
        refused
            .stderr()
            .contains("The source's oplog is too short for the copy"),
        "{}",
        refused.stderr()
    );
    assert!(stored_state(&dest).await.is_none(), "nothing was written");
    // Told that the copy is fast, it starts; the watchdog is what stops
    // this one.
    let fast = ["--copy-concurrency", "1", "--copy-throughput", "100000"];
    let mut first = CliProcess::sync(&source_uri, &dest_uri, port, &fast);
    wait_api(
        &mut first,
        port,
        "the copy to be under way",
        Duration::from_secs(60),
        |p| {
            p["phase"] == "copying"
                && p["collectionCopy"]["estimatedCopiedBytes"]
                    .as_u64()
                    .unwrap_or(0)
                    > 0
        },
    )
    .await;
    first.kill9();
    let state = stored_state(&dest).await.expect("a checkpoint");
    assert_eq!(state.get_str("phase"), Ok("copying"), "{state}");
    let start_at = state.get_timestamp("startAt").expect("startAt");

    roll_oplog_past(&src, start_at).await;

    let port = api_port();
    let mut second = CliProcess::sync(&source_uri, &dest_uri, port, &fast);
    let started = std::time::Instant::now();
    let status = second.wait_exit(Duration::from_secs(90)).await;
    let stderr = second.stderr();
    assert!(
        matches!(status.code(), Some(c) if c != 0 && c != 130),
        "{status}: {stderr}"
    );
    assert!(stderr.contains("oplog"), "{stderr}");
    assert!(stderr.contains("--fresh"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!(
        "history_lost reported {:?} after the restart:\n{stderr}",
        started.elapsed()
    );
}

/// A sync that stood still (paused, here) while the source's oplog moved
/// past its resume point cannot go on: it fails with `history_lost` and
/// says a fresh start is needed, instead of retrying for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_sync_whose_history_left_the_oplog_fails_with_history_lost() {
    let (source, destination, src, dest) = small_oplog_pair().await;
    seed_all(&src, &[(Namespace::new("app", "users"), 500, 300)]).await;

    let mut config = SyncConfig::new(source.uri(), destination.uri());
    config.copy_bytes_per_second = 1 << 30;
    let (handle, run) = start_migration(config).await;
    wait_for(&handle, "the sync", Duration::from_secs(60), |p| {
        p.phase == mongoferry::Phase::Applying
    })
    .await;
    src.database("app")
        .collection::<Document>("users")
        .insert_one(doc! { "_id": "after-the-copy" })
        .await
        .unwrap();
    wait_for(
        &handle,
        "the insert to be applied",
        Duration::from_secs(30),
        |p| p.total_events_applied > 0,
    )
    .await;
    handle.pause().expect("pause");
    wait_for(&handle, "the pause", Duration::from_secs(30), |p| {
        p.state == mongoferry::State::Paused
    })
    .await;
    let token = stored_state(&dest)
        .await
        .and_then(|s| s.get_document("resumeToken").ok().cloned())
        .expect("a saved resume token");
    roll_oplog_past(&src, token_time(&token).expect("the token's time")).await;

    handle.resume().expect("resume");
    let err = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the engine gives up in time")
        .expect("the migration task does not panic")
        .expect_err("a sync past its history must fail");
    assert_eq!(err.code(), "history_lost", "{err}");
    assert!(err.remedy().contains("--fresh"), "{}", err.remedy());
    let p = handle.progress();
    assert_eq!(p.state, mongoferry::State::Failed, "{p:#?}");
}

/// The oplog check weighs the copy at the load level's rate when it is
/// slower than the throughput given: a slow level whose copy would outlast
/// the oplog's window is refused before anything is written, and the same
/// migration at full speed is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_load_level_too_slow_for_the_oplog_window_is_refused_before_the_copy() {
    let (source, destination, src, _dest) = small_oplog_pair().await;
    // 8 MB through a 1 MB oplog: it reaches back seconds.
    seed_all(&src, &[(Namespace::new("big", "a"), 8000, 1000)]).await;
    let check = |level: mongoferry::LoadLevel| {
        let mut config = SyncConfig::new(source.uri(), destination.uri());
        config.copy_bytes_per_second = 1 << 30;
        config.load = Some(mongoferry::LoadSetting::fixed(level));
        async move {
            let m = Migration::connect(config, CancellationToken::new())
                .await
                .expect("connect");
            let r = m.check().await;
            m.source().close().await;
            m.destination().close().await;
            r
        }
    };
    // 8 MB at 0.5 MiB/s: 16 s, past the window.
    match check(mongoferry::LoadLevel::MibPerSecond(0.5)).await {
        Err(mongoferry::Error::PreflightBlocked { report }) => {
            let short = report.find("oplog_window_too_short");
            assert!(!short.is_empty(), "{report:#?}");
            assert!(
                (report.copy_bytes_per_second as f64 - 0.5 * 1024.0 * 1024.0).abs() < 1.0,
                "the level's rate is assumed: {}",
                report.copy_bytes_per_second
            );
        }
        other => panic!("a copy at 0.5 MiB/s outlasts a 1 MB oplog: {other:?}"),
    }
    let r = check(mongoferry::LoadLevel::Full)
        .await
        .expect("at full speed the copy fits the window");
    assert!(r.find("oplog_window_too_short").is_empty(), "{r:#?}");
}
