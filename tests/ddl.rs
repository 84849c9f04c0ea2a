//! DDL on the source while a migration runs: during sync, and during the
//! copy. The destination must end up identical after commit.

mod support;

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongoferry::{MigrationHandle, Namespace, Phase, Progress, SyncConfig};

use support::ddl::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_during_sync_is_replayed_and_commit_gives_an_identical_destination() {
    let (pair, src, dest) = clusters().await;
    let ns = |d: &str, c: &str| Namespace::new(d, c);
    seed_all(
        &src,
        &[
            (ns("ddl", "people"), 2000, 300),
            (ns("ddl", "ren_in"), 500, 300),
            (ns("ddl", "ren_out"), 500, 300),
            (ns("ddl", "dropme"), 300, 300),
            (ns("ddl", "recreate"), 200, 300),
            (ns("ddl", "target"), 100, 300),
            (ns("ddl", "ren_drop"), 200, 300),
            (ns("gone", "c1"), 100, 300),
            (ns("gone", "c2"), 100, 300),
            (ns("load", "l1"), 2000, 300),
            (ns("load", "l2"), 2000, 300),
        ],
    )
    .await;
    let people = src.database("ddl").collection::<Document>("people");
    people
        .create_index(index(doc! { "score": -1 }, named("score_-1")))
        .await
        .unwrap();
    run(
        &src,
        "ddl",
        doc! { "create": "v_old", "viewOn": "people", "pipeline": [{ "$match": { "active": false } }] },
    )
    .await;

    // A load on other collections runs throughout.
    let (stop, load) = start_load(
        &src,
        vec![ns("load", "l1"), ns("load", "l2")],
        1_000_000,
        Some(200),
        9,
    );
    let (handle, task) =
        start_migration(SyncConfig::new(pair.source.uri(), pair.destination.uri())).await;
    wait_for(&handle, "canCommit", Duration::from_secs(60), |p| {
        p.can_commit
    })
    .await;

    // A new collection with options, and documents in it.
    src.database("ddl")
        .create_collection("fresh")
        .validator(doc! { "name": { "$type": "string" } })
        .await
        .unwrap();
    insert_range(&src, "ddl", "fresh", 0, 300, 300).await;
    // Unique, TTL and plain indexes; drop an index the copy built.
    people
        .create_indexes(vec![
            index(
                doc! { "n": 1 },
                IndexOptions::builder()
                    .unique(true)
                    .name("n_unique".to_string())
                    .build(),
            ),
            index(
                doc! { "expiresAt": 1 },
                IndexOptions::builder()
                    .expire_after(Duration::from_secs(3600))
                    .name("expiresAt_1".to_string())
                    .build(),
            ),
            index(doc! { "address.city": 1 }, named("city_1")),
        ])
        .await
        .unwrap();
    people.drop_index("score_-1").await.unwrap();
    // collMod: a validator, a TTL change, a hidden index.
    run(
        &src,
        "ddl",
        doc! { "collMod": "people", "validator": { "n": { "$type": "long" } }, "validationLevel": "moderate" },
    )
    .await;
    run(
        &src,
        "ddl",
        doc! { "collMod": "people", "index": { "name": "expiresAt_1", "expireAfterSeconds": 7200 } },
    )
    .await;
    run(
        &src,
        "ddl",
        doc! { "collMod": "people", "index": { "name": "city_1", "hidden": true } },
    )
    .await;
    // Renames: within a database, across databases, onto an existing name.
    rename(&src, "ddl.ren_in", "ddl.ren_in2", false).await;
    rename(&src, "ddl.ren_out", "moved.ren_out", false).await;
    rename(&src, "ddl.ren_drop", "ddl.target", true).await;
    // Drops: a collection, a database, a view; a new view.
    src.database("ddl")
        .collection::<Document>("dropme")
        .drop()
        .await
        .unwrap();
    src.database("gone").drop().await.unwrap();
    run(
        &src,
        "ddl",
        doc! { "create": "v_new", "viewOn": "fresh", "pipeline": [{ "$match": { "active": true } }] },
    )
    .await;
    run(&src, "ddl", doc! { "drop": "v_old" }).await;
    // Drop and recreate a name with other options and other documents.
    src.database("ddl")
        .collection::<Document>("recreate")
        .drop()
        .await
        .unwrap();
    src.database("ddl")
        .create_collection("recreate")
        .validator(doc! { "active": { "$type": "bool" } })
        .await
        .unwrap();
    insert_range(&src, "ddl", "recreate", 100, 400, 500).await;
    // Writes to the renamed collections.
    insert_range(&src, "ddl", "ren_in2", 500, 800, 300).await;
    insert_range(&src, "moved", "ren_out", 500, 700, 300).await;
    src.database("ddl")
        .collection::<Document>("ren_in2")
        .update_many(
            doc! { "n": { "$lt": 100 } },
            doc! { "$set": { "renamed": true } },
        )
        .await
        .unwrap();
    src.database("moved")
        .collection::<Document>("ren_out")
        .delete_many(doc! { "n": { "$gte": 400, "$lt": 450 } })
        .await
        .unwrap();

    wait_same_namespaces(&src, &dest, Duration::from_secs(30)).await;
    wait_same_shape(&src, &dest, "ddl", "people", Duration::from_secs(30)).await;
    wait_same_shape(&src, &dest, "ddl", "recreate", Duration::from_secs(30)).await;
    stop.cancel();
    load.await.unwrap().unwrap();
    let done = commit_and_wait(&handle, task, Duration::from_secs(90)).await;
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    assert_same(&src, &dest).await;
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
