//! Shared helpers for the integration tests: real replica sets, cluster
//! comparison, and running the CLI as a child process.
#![allow(dead_code)]

use std::time::Duration;

use bson::{doc, Bson, Document, RawDocumentBuf};
use futures_util::TryStreamExt;
use mongodb::options::Hint;
use mongodb::Client;
use mongoferry::sandbox::{Pair, ReplicaSet};
use mongoferry::{MigrationHandle, Progress, State};

/// Two fresh replica sets. Fails (never skips) when mongod is missing.
pub async fn pair() -> Pair {
    match Pair::start().await {
        Ok(p) => p,
        Err(e) => panic!("{} {}", e, e.remedy()),
    }
}

pub async fn replica_set(name: &str) -> ReplicaSet {
    match ReplicaSet::start(name).await {
        Ok(p) => p,
        Err(e) => panic!("{} {}", e, e.remedy()),
    }
}

pub async fn client(rs: &ReplicaSet) -> Client {
    rs.client().await.expect("client")
}

/// User databases of a cluster.
async fn user_dbs(c: &Client) -> Vec<String> {
    let mut dbs: Vec<String> = c
        .list_database_names()
        .await
        .expect("listDatabases")
        .into_iter()
        .filter(|d| !["admin", "local", "config", "__mongoferry"].contains(&d.as_str()))
        .collect();
    dbs.sort();
    dbs
}

async fn collections(c: &Client, db: &str) -> Vec<Document> {
    let mut v: Vec<Document> = c
        .database(db)
        .run_cursor_command(doc! { "listCollections": 1 })
        .await
        .expect("listCollections")
        .try_collect()
        .await
        .expect("listCollections");
    v.retain(|s| !s.get_str("name").unwrap_or("").starts_with("system."));
    v.sort_by(|a, b| {
        a.get_str("name")
            .unwrap_or("")
            .cmp(b.get_str("name").unwrap_or(""))
    });
    v
}

fn comparable_options(spec: &Document) -> Document {
    let mut o = spec.get_document("options").cloned().unwrap_or_default();
    // The server fills these in differently per collection incarnation.
    o.remove("uuid");
    o
}

async fn indexes(c: &Client, db: &str, coll: &str) -> Vec<Document> {
    let mut v: Vec<Document> = c
        .database(db)
        .run_cursor_command(doc! { "listIndexes": coll })
        .await
        .expect("listIndexes")
        .try_collect()
        .await
        .expect("listIndexes");
    for i in v.iter_mut() {
        i.remove("ns");
    }
    v.sort_by(|a, b| {
        a.get_str("name")
            .unwrap_or("")
            .cmp(b.get_str("name").unwrap_or(""))
    });
    v
}

async fn documents(c: &Client, db: &str, coll: &str, capped: bool) -> Vec<RawDocumentBuf> {
    let coll = c.database(db).collection::<RawDocumentBuf>(coll);
    let find = if capped {
        coll.find(doc! {}).sort(doc! { "$natural": 1 })
    } else {
        coll.find(doc! {}).hint(Hint::Keys(doc! { "_id": 1 }))
    };
    find.await
        .expect("find")
        .try_collect()
        .await
        .expect("read documents")
}

/// Asserts the destination equals the source: the same databases,
/// collections and views with the same options, the same indexes, and the
/// same documents byte for byte.
pub async fn assert_same(src: &Client, dest: &Client) {
    let dbs = user_dbs(src).await;
    assert_eq!(dbs, user_dbs(dest).await, "databases differ");
    for db in &dbs {
        let s = collections(src, db).await;
        let d = collections(dest, db).await;
        let names = |v: &[Document]| {
            v.iter()
                .map(|c| c.get_str("name").unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&s), names(&d), "collections of {db} differ");
        for (sc, dc) in s.iter().zip(d.iter()) {
            let name = sc.get_str("name").unwrap_or("");
            assert_eq!(sc.get_str("type"), dc.get_str("type"), "{db}.{name} type");
            assert_eq!(
                comparable_options(sc),
                comparable_options(dc),
                "{db}.{name} options"
            );
            if sc.get_str("type") == Ok("view") {
                continue;
            }
            assert_eq!(
                indexes(src, db, name).await,
                indexes(dest, db, name).await,
                "{db}.{name} indexes"
            );
            let capped = comparable_options(sc).get_bool("capped").unwrap_or(false);
            let sd = documents(src, db, name, capped).await;
            let dd = documents(dest, db, name, capped).await;
            assert_eq!(sd.len(), dd.len(), "{db}.{name} document count");
            for (a, b) in sd.iter().zip(dd.iter()) {
                assert_eq!(
                    a.as_bytes(),
                    b.as_bytes(),
                    "{db}.{name}: documents differ: {:?} vs {:?}",
                    Document::try_from(a.as_ref()).ok(),
                    Document::try_from(b.as_ref()).ok()
                );
            }
        }
    }
}

/// Waits until `f(progress)` holds, failing after `timeout`.
pub async fn wait_for(
    handle: &MigrationHandle,
    what: &str,
    timeout: Duration,
    f: impl Fn(&Progress) -> bool,
) -> Progress {
    let start = std::time::Instant::now();
    loop {
        let p = handle.progress();
        if f(&p) {
            return p;
        }
        assert!(
            p.state != State::Failed,
            "migration failed while waiting for {what}: {:?}",
            p.error
        );
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}; last progress: {p:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `_id`s of a collection, for counting checks.
pub async fn count(c: &Client, db: &str, coll: &str) -> u64 {
    c.database(db)
        .collection::<Document>(coll)
        .count_documents(doc! {})
        .await
        .expect("count")
}

pub fn bson_i(v: i32) -> Bson {
    Bson::Int32(v)
}
