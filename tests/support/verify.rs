//! Helpers for the verification tests: a source rich in every kind of
//! namespace a verifier must cover (capped, TTL, views, collations,
//! clustered, validators, every common `_id` type), built the same way on
//! any cluster; a time-series collection copied raw, as a migration copies
//! it; and running the engine's verification.

use std::time::Duration;

use bson::{doc, Bson, Document, RawDocumentBuf};
use futures_util::TryStreamExt;
use mongodb::options::{ClusteredIndex, Collation, CollationStrength, IndexOptions};
use mongodb::{Client, IndexModel};
use mongoferry::sandbox::workload::{self, mixed_id};
use mongoferry::sandbox::Pair;
use mongoferry::verify::{self, Difference, DifferenceKind, VecSink, VerifyOptions, VerifyReport};
use mongoferry::Namespace;
use tokio_util::sync::CancellationToken;

/// Documents of `shop.mixed`, the collection split into many ranges.
pub const MIXED_DOCS: u64 = 3000;

pub fn ns(s: &str) -> Namespace {
    Namespace::parse(s).expect("a namespace")
}

fn ix(keys: Document, opts: IndexOptions) -> IndexModel {
    IndexModel::builder().keys(keys).options(opts).build()
}

/// Builds the verification corpus on `c`. Deterministic: two clusters
/// built with it hold the same namespaces, options, indexes and documents.
pub async fn build_corpus(c: &Client) {
    let shop = c.database("shop");
    shop.create_collection("customers")
        .validator(doc! { "name": { "$type": "string" } })
        .await
        .expect("create customers");
    let customers = shop.collection::<Document>("customers");
    workload::seed(c, &ns("shop.customers"), 1500, 400)
        .await
        .expect("seed customers");
    customers
        .create_indexes(vec![
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
            ix(
                doc! { "address.zip": "hashed" },
                IndexOptions::builder().build(),
            ),
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
        ])
        .await
        .expect("customers indexes");

    // Capped: compared in natural order.
    shop.create_collection("events")
        .capped(true)
        .size(256 * 1024)
        .await
        .expect("create events");
    workload::seed(c, &ns("shop.events"), 600, 200)
        .await
        .expect("seed events");

    // A TTL collection (dates far in the future, so nothing expires).
    let sessions = shop.collection::<Document>("sessions");
    let future = bson::DateTime::from_millis(4_000_000_000_000);
    let docs: Vec<Document> = (0..300)
        .map(|n| doc! { "_id": format!("s{n:04}"), "user": n, "lastSeen": future })
        .collect();
    sessions.insert_many(docs).await.expect("seed sessions");
    sessions
        .create_index(ix(
            doc! { "lastSeen": 1 },
            IndexOptions::builder()
                .expire_after(Duration::from_secs(3600))
                .build(),
        ))
        .await
        .expect("TTL index");

    // A non-default collation, with accented string `_id`s.
    shop.create_collection("people")
        .collation(
            Collation::builder()
                .locale("fr")
                .strength(CollationStrength::Secondary)
                .build(),
        )
        .await
        .expect("create people");
    let names = ["Émile", "Zoé", "andré", "Chloé", "Ève", "bernard"];
    let people: Vec<Document> = (0..400)
        .map(|n| doc! { "_id": format!("{} {n:03}", names[n % names.len()]), "n": n as i32 })
        .collect();
    shop.collection::<Document>("people")
        .insert_many(people)
        .await
        .expect("seed people");

    // Clustered, with every `_id` type.
    shop.create_collection("clustered")
        .clustered_index(ClusteredIndex::default())
        .await
        .expect("create clustered");
    workload::seed(c, &ns("shop.clustered"), 900, 300)
        .await
        .expect("seed clustered");

    // Every common `_id` type, in many ranges.
    workload::seed(c, &ns("shop.mixed"), MIXED_DOCS, 500)
        .await
        .expect("seed mixed");

    shop.run_command(doc! {
        "create": "active_customers",
        "viewOn": "customers",
        "pipeline": [{ "$match": { "active": true } }, { "$project": { "name": 1, "n": 1 } }],
    })
    .await
    .expect("create view");

    workload::seed(c, &ns("crm.contacts"), 200, 300)
        .await
        .expect("seed contacts");
}

/// The `_id` of the `n`th seeded document, as a report shows it.
pub fn id_json(n: u64) -> serde_json::Value {
    mixed_id(n).into_canonical_extjson()
}

/// Connects to a sandbox pair as the verification does.
pub async fn connect(pair: &Pair) -> (mongoferry::cluster::Cluster, mongoferry::cluster::Cluster) {
    verify::connect(&pair.source.uri(), &pair.destination.uri())
        .await
        .unwrap_or_else(|e| panic!("connect: {e} {}", e.remedy()))
}

/// Runs a verification and returns its report and every difference.
pub async fn run_verify(pair: &Pair, options: VerifyOptions) -> (VerifyReport, Vec<Difference>) {
    let (src, dest) = connect(pair).await;
    let mut sink = VecSink::default();
    let report = verify::run(&src, &dest, &options, &mut sink, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("verification failed to run: {e} {}", e.remedy()));
    assert_eq!(
        report.differences,
        sink.0.len() as u64,
        "the report counts what the sink received"
    );
    (report, sink.0)
}

/// Options that split every collection into small ranges, so that range
/// boundaries are exercised on small data.
pub fn options(mode: verify::VerifyMode) -> VerifyOptions {
    VerifyOptions {
        mode,
        partition_bytes: 64 * 1024,
        allow_sync_relaxations: Some(false),
        ..VerifyOptions::default()
    }
}

/// The differences of one kind in one namespace.
pub fn of_kind<'a>(
    all: &'a [Difference],
    namespace: &str,
    kind: DifferenceKind,
) -> Vec<&'a Difference> {
    all.iter()
        .filter(|d| d.namespace == namespace && d.kind == kind)
        .collect()
}

/// Each difference as `(namespace, kind, id or index)`, sorted, for
/// comparing whole sets.
pub fn summary(all: &[Difference]) -> Vec<(String, DifferenceKind, String)> {
    let mut v: Vec<_> = all
        .iter()
        .map(|d| {
            let what =
                d.id.as_ref()
                    .map(|i| i.to_string())
                    .or_else(|| d.index.clone())
                    .unwrap_or_default();
            (d.namespace.clone(), d.kind, what)
        })
        .collect();
    v.sort();
    v
}

/// The source's document with this `_id`, fields moved: the first field
/// after `_id` goes to the end.
pub async fn reordered(c: &Client, namespace: &str, id: &Bson) -> Document {
    let n = ns(namespace);
    let d = c
        .database(&n.db)
        .collection::<Document>(&n.coll)
        .find_one(doc! { "_id": id.clone() })
        .await
        .expect("find")
        .expect("the document exists");
    let mut out = Document::new();
    let mut moved = None;
    for (k, v) in d {
        if k != "_id" && moved.is_none() {
            moved = Some((k, v));
        } else {
            out.insert(k, v);
        }
    }
    if let Some((k, v)) = moved {
        out.insert(k, v);
    }
    out
}

/// The destination as a migration leaves a time-series collection
/// `db.ts` during sync: created with the source's time-series options
/// (time field, meta field, granularity) but no TTL, its buckets inserted
/// raw (so their `_id`s are the source's) and its buckets' indexes created
/// from their raw specifications. Measurements inserted on each side
/// separately would fill buckets of different `_id`s.
pub async fn copy_raw(src: &Client, dest: &Client, db: &str, ts: &str) {
    let buckets_coll = format!("system.buckets.{ts}");
    let spec = src
        .database(db)
        .run_command(doc! { "listCollections": 1, "filter": { "name": ts } })
        .await
        .expect("listCollections");
    let options = spec
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .ok()
        .and_then(|b| b.first())
        .and_then(Bson::as_document)
        .and_then(|d| d.get_document("options").ok())
        .expect("the source's time-series collection")
        .clone();
    let timeseries = options.get_document("timeseries").expect("timeseries");
    let mut create = doc! { "timeField": timeseries.get_str("timeField").expect("timeField") };
    for k in ["metaField", "granularity"] {
        if let Some(v) = timeseries.get(k) {
            create.insert(k, v.clone());
        }
    }
    let ddb = dest.database(db);
    ddb.run_command(doc! { "create": ts, "timeseries": create })
        .await
        .expect("create the time-series collection on the destination");
    let buckets: Vec<RawDocumentBuf> = src
        .database(db)
        .collection::<RawDocumentBuf>(&buckets_coll)
        .find(doc! {})
        .await
        .expect("read the buckets")
        .try_collect()
        .await
        .expect("read the buckets");
    assert!(!buckets.is_empty(), "{db}.{ts} has buckets to copy");
    ddb.collection::<RawDocumentBuf>(&buckets_coll)
        .insert_many(buckets)
        .bypass_document_validation(true)
        .await
        .expect("insert the buckets raw");
    let specs: Vec<Document> = super::indexes(src, db, &buckets_coll)
        .await
        .into_iter()
        .map(|mut s| {
            s.remove("v");
            s.remove("ns");
            s
        })
        .collect();
    if !specs.is_empty() {
        ddb.run_command(doc! { "createIndexes": buckets_coll.as_str(), "indexes": specs })
            .await
            .expect("create the buckets' indexes");
    }
}

/// The `_id`s of the buckets of `db.ts` matching `filter`, in order.
pub async fn bucket_ids(c: &Client, db: &str, ts: &str, filter: Document) -> Vec<Bson> {
    let docs: Vec<Document> = c
        .database(db)
        .collection::<Document>(&format!("system.buckets.{ts}"))
        .find(filter)
        .projection(doc! { "_id": 1 })
        .sort(doc! { "_id": 1 })
        .await
        .expect("find buckets")
        .try_collect()
        .await
        .expect("find buckets");
    docs.into_iter()
        .map(|d| d.get("_id").cloned().expect("_id"))
        .collect()
}
