//! Helpers of the DDL tests: running DDL on a source, and waiting until the
//! destination's namespaces, indexes and validators follow it.

use std::time::Duration;

use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use mongoferry::sandbox::workload::{mixed_id, sample_doc};

use super::non_system_dbs;

/// Inserts documents numbered `from..to` (so `_id`s never collide with
/// those `workload::seed` gave `0..from`).
pub async fn insert_range(c: &Client, db: &str, coll: &str, from: u64, to: u64, size: usize) {
    let docs: Vec<Document> = (from..to)
        .map(|i| sample_doc(mixed_id(i), i, size))
        .collect();
    c.database(db)
        .collection::<Document>(coll)
        .insert_many(docs)
        .await
        .expect("insert");
}

pub async fn run(c: &Client, db: &str, cmd: Document) {
    c.database(db)
        .run_command(cmd.clone())
        .await
        .unwrap_or_else(|e| panic!("{cmd} failed on the source: {e}"));
}

pub async fn rename(c: &Client, from: &str, to: &str, drop_target: bool) {
    run(
        c,
        "admin",
        doc! { "renameCollection": from, "to": to, "dropTarget": drop_target },
    )
    .await;
}

/// Every user collection and view, as `db.name`, sorted.
pub async fn namespaces(c: &Client) -> Vec<String> {
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
pub async fn wait_same_namespaces(src: &Client, dest: &Client, timeout: Duration) {
    wait_until_equal(
        "the destination's namespaces do not follow the source's DDL",
        timeout,
        || async { (namespaces(src).await, namespaces(dest).await) },
    )
    .await;
}

/// Polls `read` (a source reading and a destination reading) until the two
/// are equal, failing with both after `timeout`.
pub async fn wait_until_equal<T, F, Fut>(what: &str, timeout: Duration, mut read: F)
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
pub async fn shape(c: &Client, db: &str, coll: &str) -> (Vec<String>, Option<Document>) {
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
pub async fn wait_same_shape(src: &Client, dest: &Client, db: &str, coll: &str, timeout: Duration) {
    wait_until_equal(
        &format!("{db}.{coll} on the destination does not follow the source's DDL"),
        timeout,
        || async { (shape(src, db, coll).await, shape(dest, db, coll).await) },
    )
    .await;
}

pub fn index(keys: Document, opts: IndexOptions) -> IndexModel {
    IndexModel::builder().keys(keys).options(opts).build()
}

pub fn named(name: &str) -> IndexOptions {
    IndexOptions::builder().name(name.to_string()).build()
}
