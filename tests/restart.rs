//! Restarts of the source or the destination `mongod` while a migration
//! runs: the engine retries with backoff, never fails, and commits to an
//! identical destination.

use mongoferry_test_support as support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use mongoferry::sandbox::{MongodVersion, Pair};
use mongoferry::{EventSourceChoice, Namespace, SyncConfig};

use support::restart::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_restart_during_sync_is_retried_and_the_commit_is_identical() {
    restart_during_sync(Side::Source, MongodVersion::V6_0, EventSourceChoice::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_restart_during_sync_is_retried_and_the_commit_is_identical() {
    restart_during_sync(
        Side::Destination,
        MongodVersion::V6_0,
        EventSourceChoice::Auto,
    )
    .await;
}

/// Starts a migration that copies in small batches, one range at a time,
/// and returns once the copy is under way: it must still be copying when
/// a restarted server is back, however fast the copy path is.
async fn start_slow_copy(
    pair: &Pair,
) -> (
    mongoferry::MigrationHandle,
    tokio::task::JoinHandle<mongoferry::Result<mongoferry::Progress>>,
) {
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.tuning.copy_concurrency = 1;
    config.tuning.partition_bytes = 4 * 1024 * 1024;
    config.tuning.batch_docs = 100;
    config.tuning.read_batch_docs = 100;
    let (handle, task) = start_migration(config).await;
    wait_for(
        &handle,
        "the copy to be under way",
        Duration::from_secs(60),
        |p| p.collection_copy.copied_docs > 0,
    )
    .await;
    (handle, task)
}

async fn restart_during_copy(side: Side) {
    let mut pair: Pair = pair().await;
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    seed_all(
        &src,
        &[
            (Namespace::new("big", "a"), 30_000, 1000),
            (Namespace::new("big", "b"), 30_000, 1000),
        ],
    )
    .await;
    let (handle, task) = start_slow_copy(&pair).await;
    let failed = watch_for_failure(&handle);
    match side {
        Side::Source => pair.source.restart().await,
        Side::Destination => pair.destination.restart().await,
    }
    .unwrap_or_else(|e| panic!("restart of the {side:?}: {e}"));
    let p = handle.progress();
    eprintln!(
        "{side:?} back with {} of 60000 documents copied",
        p.collection_copy.copied_docs
    );
    assert!(
        p.collection_copy.copied_docs < 60_000,
        "the restart was meant to happen during the copy: {p:#?}"
    );
    let done = commit_and_wait(&handle, task, Duration::from_secs(120)).await;
    assert!(
        !failed.load(Ordering::SeqCst),
        "the migration reported FAILED during the {side:?} restart"
    );
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_restart_during_the_copy_is_retried() {
    restart_during_copy(Side::Source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_restart_during_the_copy_is_retried() {
    restart_during_copy(Side::Destination).await;
}

/// A destination that stops taking the copy's writes for good (here its
/// user writes are blocked) fails the migration with the server's reason.
/// The copy's reader must not sit forever on a batch its failed writer
/// will never take.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_that_refuses_the_copys_writes_fails_with_the_reason() {
    let pair: Pair = pair().await;
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    seed_all(&src, &[(Namespace::new("big", "a"), 30_000, 1000)]).await;
    let (handle, task) = start_slow_copy(&pair).await;
    dest.database("admin")
        .run_command(bson::doc! { "setUserWriteBlockMode": 1, "global": true })
        .await
        .expect("block the destination's user writes");
    let ended = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap_or_else(|_| panic!("the copy hung: {:#?}", handle.progress()))
        .expect("the migration task");
    let e = ended.expect_err("a destination that refuses every write fails the migration");
    let text = e.to_string();
    assert!(
        text.contains("big.a") && text.to_lowercase().contains("blocked"),
        "the error names the collection and the server's reason: {text}"
    );
    assert!(
        e.remedy().contains("setUserWriteBlockMode"),
        "the remedy says how to unblock: {}",
        e.remedy()
    );
    assert!(
        handle.progress().collection_copy.copied_docs < 30_000,
        "the writes were meant to be blocked during the copy"
    );
}
