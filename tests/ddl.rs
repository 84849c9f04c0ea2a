//! DDL on the source while a migration runs: during sync, and during the
//! copy. The destination must end up identical after commit.

mod support;

use std::time::Duration;

use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use mongoferry::sandbox::workload::{mixed_id, sample_doc};
use mongoferry::{MigrationHandle, Namespace, Phase, Progress, SyncConfig};

use support::*;

/// Inserts documents numbered `from..to` (so `_id`s never collide with
/// those `workload::seed` gave `0..from`).
async fn insert_range(c: &Client, db: &str, coll: &str, from: u64, to: u64, size: usize) {
    let docs: Vec<Document> = (from..to)
        .map(|i| sample_doc(mixed_id(i), i, size))
        .collect();
    c.database(db)
        .collection::<Document>(coll)
        .insert_many(docs)
        .await
        .expect("insert");
}

async fn run(c: &Client, db: &str, cmd: Document) {
    c.database(db)
        .run_command(cmd.clone())
        .await
        .unwrap_or_else(|e| panic!("{cmd} failed on the source: {e}"));
}

async fn rename(c: &Client, from: &str, to: &str, drop_target: bool) {
    run(
        c,
        "admin",
        doc! { "renameCollection": from, "to": to, "dropTarget": drop_target },
    )
    .await;
}

/// Every user collection and view, as `db.name`, sorted.
async fn namespaces(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for db in non_system_dbs(c).await {
        if db == "__mongoferry" {
            continue;
        }
        let specs: Vec<Document> = c
            .database(&db)
            .run_cursor_command(doc! { "listCollections": 1, "nameOnly": true })
            .await
            .expect("listCollections")
            .try_collect()
            .await
            .expect("listCollections");
        for s in specs {
            let name = s.get_str("name").unwrap_or_default();
            if !name.starts_with("system.") {
                out.push(format!("{db}.{name}"));
            }
        }
    }
    out.sort();
    out
}

/// Waits until the destination has the source's namespaces: the DDL was
/// replayed during sync, not only repaired at commit.
async fn wait_same_namespaces(src: &Client, dest: &Client, timeout: Duration) {
    wait_until_equal(
        "the destination's namespaces do not follow the source's DDL",
        timeout,
        || async { (namespaces(src).await, namespaces(dest).await) },
    )
    .await;
}

/// Polls `read` (a source reading and a destination reading) until the two
/// are equal, failing with both after `timeout`.
async fn wait_until_equal<T, F, Fut>(what: &str, timeout: Duration, mut read: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (T, T)>,
{
    let start = std::time::Instant::now();
    let (mut s, mut d) = read().await;
    while s != d {
        assert!(
            start.elapsed() < timeout,
            "{what}:\nsource:      {s:?}\ndestination: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        (s, d) = read().await;
    }
}

/// The names of a collection's indexes and its validator: what index and
/// `collMod` DDL change.
async fn shape(c: &Client, db: &str, coll: &str) -> (Vec<String>, Option<Document>) {
    let mut names: Vec<String> = c
        .database(db)
        .collection::<Document>(coll)
        .list_index_names()
        .await
        .unwrap_or_default();
    names.sort();
    let spec: Option<Document> = c
        .database(db)
        .run_cursor_command(doc! { "listCollections": 1, "filter": { "name": coll } })
        .await
        .expect("listCollections")
        .try_next()
        .await
        .expect("listCollections");
    let validator = spec.and_then(|s| {
        s.get_document("options")
            .ok()
            .and_then(|o| o.get_document("validator").ok().cloned())
    });
    (names, validator)
}

/// Waits until the destination's `db.coll` has the source's indexes (by
/// name) and validator: index DDL was replayed during sync, not only
/// repaired when commit restores indexes.
async fn wait_same_shape(src: &Client, dest: &Client, db: &str, coll: &str, timeout: Duration) {
    wait_until_equal(
        &format!("{db}.{coll} on the destination does not follow the source's DDL"),
        timeout,
        || async { (shape(src, db, coll).await, shape(dest, db, coll).await) },
    )
    .await;
}

fn index(keys: Document, opts: IndexOptions) -> IndexModel {
    IndexModel::builder().keys(keys).options(opts).build()
}

fn named(name: &str) -> IndexOptions {
    IndexOptions::builder().name(name.to_string()).build()
}

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
