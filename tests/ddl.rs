//! DDL on the source while a migration runs: during sync, and during the
//! copy. The destination must end up identical after commit.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::{doc, Document};

use mongoferry::{MigrationHandle, Namespace, Phase, Progress, SyncConfig};

use support::ddl::*;
use support::*;

/// DDL of every kind and transactions during a sync under load, through
/// change streams (`tests/older.rs` runs the same through the oplog).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_during_sync_is_replayed_and_commit_gives_an_identical_destination() {
    support::scenario::migrate_live_with_ddl_and_transactions(
        pair().await,
        mongoferry::EventSourceChoice::Auto,
        mongoferry::EventSource::ChangeStream,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_a_database_with_views_during_sync_removes_it_from_the_destination() {
    let (pair, src, dest) = clusters().await;
    seed_all(
        &src,
        &[
            (Namespace::new("gone", "c1"), 200, 300),
            (Namespace::new("stays", "c1"), 200, 300),
        ],
    )
    .await;
    run(
        &src,
        "gone",
        doc! { "create": "gv", "viewOn": "c1", "pipeline": [] },
    )
    .await;
    let (handle, task) =
        start_migration(SyncConfig::new(pair.source.uri(), pair.destination.uri())).await;
    wait_for(&handle, "canCommit", Duration::from_secs(60), |p| {
        p.can_commit
    })
    .await;
    src.database("gone").drop().await.unwrap();
    wait_same_namespaces(&src, &dest, Duration::from_secs(30)).await;
    commit_and_wait(&handle, task, Duration::from_secs(60)).await;
    assert!(
        !non_system_dbs(&dest).await.contains(&"gone".to_string()),
        "the dropped database is still listed on the destination: {:?}",
        dest.database("gone").list_collection_names().await
    );
    assert_same(&src, &dest).await;
}

fn coll<'a>(p: &'a Progress, ns: &str) -> Option<&'a mongoferry::progress::CollectionProgress> {
    p.collection_copy
        .collections
        .iter()
        .find(|c| c.namespace == ns)
}

/// A migration whose copy is slow enough to run DDL in the middle of it:
/// one range at a time, in small ranges and batches.
fn slow_copy_config(pair: &mongoferry::sandbox::Pair) -> SyncConfig {
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.tuning.copy_concurrency = 1;
    config.tuning.partition_bytes = 4 * 1024 * 1024;
    config.tuning.batch_docs = 1000;
    config
}

fn copying(p: &Progress, ns: &str) -> bool {
    p.phase == Phase::Copying
        && coll(p, ns).is_some_and(|c| c.copied_docs > 0 && c.copied_docs < c.estimated_total_docs)
}

/// Starts a slow-copying migration and returns once `big.data` is being
/// copied: the moment the DDL-during-copy tests act in.
async fn start_during_big_copy(
    pair: &mongoferry::sandbox::Pair,
) -> (
    MigrationHandle,
    tokio::task::JoinHandle<mongoferry::Result<mongoferry::Progress>>,
) {
    let (handle, task) = start_migration(slow_copy_config(pair)).await;
    wait_for(
        &handle,
        "the copy of big.data to be under way",
        Duration::from_secs(60),
        |p| copying(p, "big.data"),
    )
    .await;
    (handle, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_on_other_collections_during_the_copy_is_replayed() {
    let (pair, src, dest) = clusters().await;
    let ns = |d: &str, c: &str| Namespace::new(d, c);
    // Ranges are copied in namespace order: aaa.* first, then big.*, ddl.*.
    seed_all(
        &src,
        &[
            (ns("aaa", "first"), 1000, 300),
            (ns("big", "data"), 40_000, 1000),
            (ns("ddl", "r1"), 2000, 300),
            (ns("ddl", "x1"), 2000, 300),
            (ns("ddl", "d1"), 1000, 300),
            (ns("ddl", "keep"), 1000, 300),
        ],
    )
    .await;
    let (handle, task) = start_during_big_copy(&pair).await;

    // aaa.first is copied; the ddl.* collections are created but not yet copied.
    rename(&src, "aaa.first", "aaa.first_renamed", false).await;
    rename(&src, "ddl.x1", "other.x1", false).await;
    src.database("ddl")
        .collection::<Document>("d1")
        .drop()
        .await
        .unwrap();
    src.database("ddl").create_collection("new").await.unwrap();
    insert_range(&src, "ddl", "new", 0, 500, 300).await;
    src.database("ddl")
        .collection::<Document>("keep")
        .create_index(index(doc! { "n": 1 }, named("n_1")))
        .await
        .unwrap();
    insert_range(&src, "aaa", "first_renamed", 1000, 1200, 300).await;
    insert_range(&src, "other", "x1", 2000, 2100, 300).await;
    src.database("big")
        .collection::<Document>("data")
        .update_many(
            doc! { "n": { "$lt": 500 } },
            doc! { "$set": { "touched": 1 } },
        )
        .await
        .unwrap();
    let p = handle.progress();
    assert!(
        copying(&p, "big.data"),
        "the DDL was meant to run during the copy of big.data: {p:#?}"
    );

    let done = commit_and_wait(&handle, task, Duration::from_secs(120)).await;
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renaming_collections_before_their_copy_keeps_their_documents() {
    let (pair, src, dest) = clusters().await;
    let ns = |d: &str, c: &str| Namespace::new(d, c);
    seed_all(
        &src,
        &[
            (ns("big", "data"), 40_000, 1000),
            (ns("ddl", "r1"), 2000, 300),
            (ns("ddl", "x1"), 2000, 300),
        ],
    )
    .await;
    let (handle, task) = start_during_big_copy(&pair).await;
    // Planned (and created on the destination) but not copied yet.
    rename(&src, "ddl.r1", "ddl.r1_renamed", false).await;
    rename(&src, "ddl.x1", "other.x1", false).await;
    let p = handle.progress();
    assert!(copying(&p, "big.data"), "{p:#?}");

    let done = commit_and_wait(&handle, task, Duration::from_secs(120)).await;
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    assert_eq!(
        (
            count(&dest, "ddl", "r1_renamed").await,
            count(&dest, "other", "x1").await
        ),
        (2000, 2000),
        "documents of (ddl.r1_renamed, other.x1) on the destination"
    );
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renaming_the_collection_being_copied_keeps_its_documents() {
    let (pair, src, dest) = clusters().await;
    seed_all(&src, &[(Namespace::new("big", "data"), 40_000, 1000)]).await;
    let (handle, task) = start_during_big_copy(&pair).await;
    rename(&src, "big.data", "big.data_renamed", false).await;
    insert_range(&src, "big", "data_renamed", 40_000, 40_100, 1000).await;
    let p = handle.progress();
    assert!(
        p.phase == Phase::Copying,
        "the rename was meant to happen during the copy: {p:#?}"
    );

    let done = commit_and_wait(&handle, task, Duration::from_secs(120)).await;
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    assert_eq!(
        count(&dest, "big", "data_renamed").await,
        40_100,
        "documents of big.data_renamed on the destination"
    );
    assert_same(&src, &dest).await;
}
