//! The live migration scenario every event source and source version must
//! pass: a copy under a random write load over every `_id` type and every
//! collection option and index kind a 4.4 server has; then, during sync, DDL
//! of every kind (create with options, drop, drop and re-create a name,
//! renames within and across databases and onto an existing name,
//! dropDatabase, index builds on empty and full collections, dropIndexes,
//! collMod of a validator, a TTL and a hidden index, convertToCapped,
//! views), a transaction across two databases and one large enough to be
//! split over several oplog entries; then commit, and the destination must
//! equal the source: documents byte for byte, indexes and options.

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::{Collation, CollationStrength, IndexOptions};
use mongodb::{Client, IndexModel};
use mongoferry::sandbox::Pair;
use mongoferry::{EventSource, EventSourceChoice, Namespace, SyncConfig};

use super::ddl::*;
use super::*;

/// Indexes of every kind a 4.4 server builds: unique, compound, TTL,
/// partial, sparse, text, 2dsphere, hashed, wildcard, and one with its own
/// collation.
pub fn rich_indexes() -> Vec<IndexModel> {
    let ix = |keys: Document, opts: IndexOptions| index(keys, opts);
    vec![
        ix(
            doc! { "n": 1 },
            IndexOptions::builder()
                .unique(true)
                .name("n_unique".to_string())
                .build(),
        ),
        ix(
            doc! { "address.city": 1, "score": -1 },
            IndexOptions::builder().build(),
        ),
        ix(
            doc! { "history.at": 1 },
            IndexOptions::builder()
                .expire_after(Duration::from_secs(10 * 365 * 24 * 3600))
                .build(),
        ),
        ix(
            doc! { "active": 1 },
            IndexOptions::builder()
                .partial_filter_expression(doc! { "active": true })
                .build(),
        ),
        ix(
            doc! { "missing": 1 },
            IndexOptions::builder().sparse(true).build(),
        ),
        ix(doc! { "name": "text" }, IndexOptions::builder().build()),
        ix(doc! { "geo": "2dsphere" }, IndexOptions::builder().build()),
        ix(
            doc! { "address.zip": "hashed" },
            IndexOptions::builder().build(),
        ),
        ix(doc! { "address.$**": 1 }, IndexOptions::builder().build()),
        ix(
            doc! { "name": 1 },
            IndexOptions::builder()
                .collation(
                    Collation::builder()
                        .locale("en")
                        .strength(CollationStrength::Primary)
                        .build(),
                )
                .name("name_ci".to_string())
                .build(),
        ),
    ]
}

/// `shop.customers` with a validator, `shop.events` capped and
/// `shop.people` with a default collation: the options every server
/// version has.
pub async fn create_rich_collections(c: &Client) {
    let shop = c.database("shop");
    shop.create_collection("customers")
        .validator(doc! { "name": { "$type": "string" } })
        .await
        .unwrap();
    shop.create_collection("events")
        .capped(true)
        .size(64 * 1024)
        .await
        .unwrap();
    shop.create_collection("people")
        .collation(
            Collation::builder()
                .locale("fr")
                .strength(CollationStrength::Secondary)
                .build(),
        )
        .await
        .unwrap();
}

/// Collections with the options and index kinds a 4.4 server has.
pub async fn seed_source(c: &Client) {
    let ns = |d: &str, c: &str| Namespace::new(d, c);
    create_rich_collections(c).await;
    seed_all(
        c,
        &[
            (ns("shop", "customers"), 4000, 400),
            (ns("shop", "events"), 300, 200),
            (ns("shop", "people"), 800, 300),
            (ns("ddl", "people"), 1500, 300),
            (ns("ddl", "ren_in"), 400, 300),
            (ns("ddl", "ren_out"), 400, 300),
            (ns("ddl", "ren_drop"), 200, 300),
            (ns("ddl", "target"), 100, 300),
            (ns("ddl", "dropme"), 300, 300),
            (ns("ddl", "capme"), 300, 300),
            (ns("ddl", "recreate"), 200, 300),
            (ns("gone", "c1"), 100, 300),
            (ns("gone", "c2"), 100, 300),
            (ns("load", "l1"), 1500, 300),
            (ns("load", "l2"), 1500, 300),
        ],
    )
    .await;
    c.database("shop")
        .collection::<Document>("customers")
        .create_indexes(rich_indexes())
        .await
        .unwrap();
    c.database("ddl")
        .collection::<Document>("people")
        .create_index(index(doc! { "score": -1 }, named("score_-1")))
        .await
        .unwrap();
    c.database("ddl")
        .collection::<Document>("capme")
        .create_index(index(doc! { "n": 1 }, named("n_1")))
        .await
        .unwrap();
    run(
        c,
        "shop",
        doc! { "create": "active_customers", "viewOn": "customers", "pipeline": [{ "$match": { "active": true } }] },
    )
    .await;
    run(
        c,
        "ddl",
        doc! { "create": "v_old", "viewOn": "people", "pipeline": [{ "$match": { "active": false } }] },
    )
    .await;
}

/// The DDL of every kind, run on the source while the sync applies.
async fn ddl_during_sync(src: &Client) {
    let people = src.database("ddl").collection::<Document>("people");
    // A new collection with options, and documents in it; indexes built on
    // it empty (one oplog entry each) and full (a two-phase build).
    src.database("ddl")
        .create_collection("fresh")
        .validator(doc! { "name": { "$type": "string" } })
        .await
        .unwrap();
    src.database("ddl")
        .collection::<Document>("fresh")
        .create_index(index(doc! { "name": 1 }, named("name_1")))
        .await
        .unwrap();
    insert_range(src, "ddl", "fresh", 0, 300, 300).await;
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
    // collMod: a validator, a TTL, a hidden index.
    run(
        src,
        "ddl",
        doc! { "collMod": "people", "validator": { "n": { "$type": "long" } }, "validationLevel": "moderate" },
    )
    .await;
    run(
        src,
        "ddl",
        doc! { "collMod": "people", "index": { "keyPattern": { "expiresAt": 1 }, "expireAfterSeconds": 7200 } },
    )
    .await;
    run(
        src,
        "ddl",
        doc! { "collMod": "people", "index": { "name": "city_1", "hidden": true } },
    )
    .await;
    // Renames: within a database, across databases (a copy through a
    // temporary collection before 6.0), onto an existing name.
    rename(src, "ddl.ren_in", "ddl.ren_in2", false).await;
    rename(src, "ddl.ren_out", "moved.ren_out", false).await;
    rename(src, "ddl.ren_drop", "ddl.target", true).await;
    // convertToCapped: a copy into a temporary collection, renamed over.
    run(
        src,
        "ddl",
        doc! { "convertToCapped": "capme", "size": 1024 * 1024 },
    )
    .await;
    // Drops: a collection, a database; views created and dropped.
    src.database("ddl")
        .collection::<Document>("dropme")
        .drop()
        .await
        .unwrap();
    src.database("gone").drop().await.unwrap();
    run(
        src,
        "ddl",
        doc! { "create": "v_new", "viewOn": "fresh", "pipeline": [{ "$match": { "active": true } }] },
    )
    .await;
    run(src, "ddl", doc! { "drop": "v_old" }).await;
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
    insert_range(src, "ddl", "recreate", 100, 400, 500).await;
    // Writes to the renamed and converted collections.
    insert_range(src, "ddl", "ren_in2", 400, 700, 300).await;
    insert_range(src, "moved", "ren_out", 400, 600, 300).await;
    insert_range(src, "ddl", "capme", 300, 350, 300).await;
    src.database("ddl")
        .collection::<Document>("ren_in2")
        .update_many(
            doc! { "n": { "$lt": 100 } },
            doc! { "$set": { "renamed": true } },
        )
        .await
        .unwrap();
}

/// A transaction over collections of two databases.
async fn small_transaction(
    src: &Client,
    session: &mut mongodb::ClientSession,
) -> mongodb::error::Result<()> {
    session.start_transaction().await?;
    let a = src.database("txn").collection::<Document>("a");
    let b = src.database("txn2").collection::<Document>("b");
    // Documents no write load touches, so that the transaction commits
    // without a write conflict.
    let fresh = src.database("ddl").collection::<Document>("fresh");
    a.insert_one(doc! { "_id": 1, "v": "one" })
        .session(&mut *session)
        .await?;
    b.insert_one(doc! { "_id": "b1", "v": 1 })
        .session(&mut *session)
        .await?;
    fresh
        .update_many(
            doc! { "n": { "$lt": 50 } },
            doc! { "$set": { "txn": true } },
        )
        .session(&mut *session)
        .await?;
    fresh
        .delete_many(doc! { "n": { "$gte": 50, "$lt": 60 } })
        .session(&mut *session)
        .await?;
    session.commit_transaction().await
}

/// A transaction of about 20 MB, which the server splits over several
/// oplog entries.
async fn large_transaction(
    src: &Client,
    session: &mut mongodb::ClientSession,
) -> mongodb::error::Result<()> {
    let big = src.database("txn").collection::<Document>("big");
    session.start_transaction().await?;
    for i in 0..40 {
        big.insert_one(doc! { "_id": i, "blob": "y".repeat(500 * 1024) })
            .session(&mut *session)
            .await?;
    }
    session.commit_transaction().await
}

/// Runs both transactions, each again while the server calls its failure
/// transient (a write conflict with a catalog change), as drivers' callback
/// API does.
async fn transactions(src: &Client) {
    let mut session = src.start_session().await.unwrap();
    // The collections exist before the transactions write to them.
    for (db, coll) in [("txn", "a"), ("txn2", "b"), ("txn", "big")] {
        src.database(db)
            .collection::<Document>(coll)
            .insert_one(doc! { "_id": "created" })
            .await
            .unwrap();
    }
    for attempt in 1.. {
        match small_transaction(src, &mut session).await {
            Ok(()) => break,
            Err(e) if e.contains_label("TransientTransactionError") && attempt < 20 => {
                let _ = session.abort_transaction().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the transaction across databases failed: {e}"),
        }
    }
    for attempt in 1.. {
        match large_transaction(src, &mut session).await {
            Ok(()) => break,
            Err(e) if e.contains_label("TransientTransactionError") && attempt < 20 => {
                let _ = session.abort_transaction().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the large transaction failed: {e}"),
        }
    }
}

pub async fn migrate_live_with_ddl_and_transactions(
    pair: Pair,
    choice: EventSourceChoice,
    expected: EventSource,
) {
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    seed_source(&src).await;
    let ns = |d: &str, c: &str| Namespace::new(d, c);
    let (stop, load) = start_load(
        &src,
        vec![
            ns("shop", "customers"),
            ns("shop", "people"),
            ns("load", "l1"),
            ns("load", "l2"),
        ],
        1_000_000,
        Some(200),
        44,
    );

    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.event_source = choice;
    // Small ranges, so that a collection is copied by several readers.
    config.tuning.partition_bytes = 256 * 1024;
    let (handle, task) = start_migration(config).await;
    let p = wait_for(&handle, "canCommit", Duration::from_secs(120), |p| {
        p.can_commit
    })
    .await;
    assert_eq!(
        p.event_source,
        Some(expected),
        "the sync reads from the {expected} as asked ({choice:?}): {p:#?}"
    );
    // The source's health is read on every version, under its write load.
    let p = wait_for(
        &handle,
        "the source's figures",
        Duration::from_secs(30),
        |p| {
            p.source_impact.as_ref().is_some_and(|i| {
                i.read_latency_ms.is_some()
                    && i.write_latency_ms.is_some()
                    && i.oplog_headroom_seconds.is_some()
            })
        },
    )
    .await;
    let impact = p.source_impact.expect("figures");
    // The idle baseline may be missing (the copy began at once); the
    // rest is measured.
    assert!(
        impact
            .not_measured
            .iter()
            .all(|w| w.starts_with("idle read latency")),
        "{impact:?}"
    );
    assert!(
        impact.read_tickets_total.is_some_and(|t| t > 0),
        "{impact:?}"
    );
    assert!(
        impact.cache_used_percent.is_some() && impact.queued_operations.is_some(),
        "{impact:?}"
    );
    assert_eq!(
        impact.secondary_lag_seconds, None,
        "one member, no secondary: {impact:?}"
    );

    ddl_during_sync(&src).await;
    transactions(&src).await;
    // DDL is replayed while the sync runs, not only repaired at commit.
    wait_same_namespaces(&src, &dest, Duration::from_secs(60)).await;
    wait_same_shape(&src, &dest, "ddl", "people", Duration::from_secs(60)).await;
    wait_same_shape(&src, &dest, "ddl", "fresh", Duration::from_secs(60)).await;
    wait_same_shape(&src, &dest, "ddl", "recreate", Duration::from_secs(60)).await;

    stop.cancel();
    let stats = load.await.unwrap().unwrap();
    assert!(stats.total() > 200, "{stats:?}");
    let done = commit_and_wait(&handle, task, Duration::from_secs(120)).await;
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    assert_eq!(
        count(&dest, "txn", "big").await,
        41,
        "the split transaction is applied whole"
    );
    assert_same(&src, &dest).await;
}
