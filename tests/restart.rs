//! Restarts of the source or the destination `mongod` while a migration
//! runs: the engine retries with backoff, never fails, and commits to an
//! identical destination.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mongoferry::sandbox::{MongodVersion, Pair};
use mongoferry::{EventSourceChoice, MigrationHandle, Namespace, State, SyncConfig};

use support::*;

/// Records whether the migration ever reports FAILED, however briefly.
fn watch_for_failure(handle: &MigrationHandle) -> Arc<AtomicBool> {
    let failed = Arc::new(AtomicBool::new(false));
    let flag = failed.clone();
    let mut rx = handle.watch_progress();
    tokio::spawn(async move {
        // Until the migration (the sender) is gone.
        loop {
            if rx.borrow_and_update().state == State::Failed {
                flag.store(true, Ordering::SeqCst);
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
    failed
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Source,
    Destination,
}

async fn restart_during_sync(side: Side, version: MongodVersion, choice: EventSourceChoice) {
    let mut pair: Pair = pair_from(version).await;
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    let specs = vec![
        (Namespace::new("app", "users"), 3000, 400),
        (Namespace::new("app", "orders"), 3000, 300),
        (Namespace::new("crm", "leads"), 2000, 300),
    ];
    seed_all(&src, &specs).await;
    let nss: Vec<Namespace> = specs.iter().map(|s| s.0.clone()).collect();
    // The load tolerates the failures of writes while the source is down.
    let (stop, load) = start_load(&src, nss, 1_000_000, Some(200), 17);

    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.event_source = choice;
    let (handle, task) = start_migration(config).await;
    let failed = watch_for_failure(&handle);
    let before = wait_for(
        &handle,
        "canCommit with events applied",
        Duration::from_secs(60),
        |p| p.can_commit && p.total_events_applied > 0,
    )
    .await;

    // Down for longer than the engine's server selection timeout (10 s), so
    // that its own retries, not only the driver's, must carry it through.
    let rs = match side {
        Side::Source => &mut pair.source,
        Side::Destination => &mut pair.destination,
    };
    rs.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    rs.restart()
        .await
        .unwrap_or_else(|e| panic!("restart of the {side:?}: {e}"));

    // Sync goes on past the restart, with more writes, and catches up.
    let after = wait_for(
        &handle,
        "events applied after the restart",
        Duration::from_secs(60),
        |p| p.total_events_applied > before.total_events_applied + 300,
    )
    .await;
    assert_eq!(after.state, State::Running, "{after:#?}");
    wait_for(
        &handle,
        "canCommit after the restart",
        Duration::from_secs(60),
        |p| p.can_commit,
    )
    .await;
    stop.cancel();
    let stats = load.await.unwrap().unwrap();
    assert!(stats.total() > 300, "{stats:?}");
    let done = commit_and_wait(&handle, task, Duration::from_secs(90)).await;
    assert!(
        !failed.load(Ordering::SeqCst),
        "the migration reported FAILED during the {side:?} restart"
    );
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    if !done.warnings.is_empty() {
        eprintln!("warnings: {:#?}", done.warnings);
    }
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_restart_during_sync_is_retried_and_the_commit_is_identical() {
    restart_during_sync(Side::Source, MongodVersion::V6_0, EventSourceChoice::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_restart_with_the_oplog_source_on_6_0_resumes_its_tail_and_the_commit_is_identical(
) {
    restart_during_sync(Side::Source, MongodVersion::V6_0, EventSourceChoice::Oplog).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_4_4_source_restart_during_sync_resumes_its_oplog_tail_and_the_commit_is_identical() {
    restart_during_sync(Side::Source, MongodVersion::V4_4, EventSourceChoice::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_5_0_source_restart_during_sync_resumes_its_oplog_tail_and_the_commit_is_identical() {
    restart_during_sync(Side::Source, MongodVersion::V5_0, EventSourceChoice::Auto).await;
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
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    // Small batches, one range at a time: the copy must still be running
    // when the restarted server is back, however fast the copy path is.
    config.tuning.copy_concurrency = 1;
    config.tuning.partition_bytes = 4 * 1024 * 1024;
    config.tuning.batch_docs = 100;
    config.tuning.read_batch_docs = 100;
    let (handle, task) = start_migration(config).await;
    let failed = watch_for_failure(&handle);
    wait_for(
        &handle,
        "the copy to be under way",
        Duration::from_secs(60),
        |p| p.collection_copy.copied_docs > 0,
    )
    .await;
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
