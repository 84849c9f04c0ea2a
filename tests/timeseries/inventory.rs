//! The check's inventory of time-series collections, on real servers (a
//! 6.0 source, and a 5.0 one, whose buckets carry no count of their own):
//! each time-series collection is one row, its `system.buckets` collection
//! folded into it rather than listed (or counted) again; the row carries
//! its exact measurement count, its buckets and its options; a count that
//! runs out of time becomes an estimate that says so; and no finding is
//! made about buckets as if they were the user's documents.

use std::time::Duration;

use bson::{doc, Document};
use mongodb::Client;
use mongoferry::catalog::NsKind;
use mongoferry::cluster::Cluster;
use mongoferry::preflight::inventory::{self, Measurements};
use mongoferry::preflight::CheckRequest;
use mongoferry::sandbox::{MongodVersion, Pair};
use mongoferry::{Namespace, Role, Scope};

use crate::support::preflight::check;
use crate::support::*;

/// Creates the time-series collection `iot.<name>` and inserts
/// `measurements` of them in time order, one a second, up to now (so no
/// TTL deletes them), spread over `sensors` meta values.
async fn time_series(
    c: &Client,
    name: &str,
    options: Document,
    measurements: usize,
    sensors: usize,
) {
    let mut create = doc! { "create": name };
    create.extend(options);
    c.database("iot").run_command(create).await.unwrap();
    let now = bson::DateTime::now().timestamp_millis();
    let coll = c.database("iot").collection::<Document>(name);
    let docs: Vec<Document> = (0..measurements)
        .map(|i| {
            doc! {
                "t": bson::DateTime::from_millis(now - ((measurements - i) as i64) * 1000),
                "m": { "sensor": (i % sensors.max(1)) as i32 },
                "v": i as f64,
            }
        })
        .collect();
    for chunk in docs.chunks(10_000) {
        coll.insert_many(chunk.to_vec()).await.unwrap();
    }
}

/// The buckets of `iot.<name>`, counted on the buckets collection itself.
async fn buckets(c: &Client, name: &str) -> u64 {
    count(c, "iot", &format!("system.buckets.{name}")).await
}

/// The two shapes every source gets, and an ordinary collection.
async fn seed(src: &Client) {
    time_series(
        src,
        "metrics",
        doc! {
            "timeseries": { "timeField": "t", "metaField": "m", "granularity": "seconds" },
            "expireAfterSeconds": 31_536_000_i64,
        },
        5_000,
        7,
    )
    .await;
    time_series(
        src,
        "plain",
        doc! { "timeseries": { "timeField": "t", "granularity": "hours" } },
        300,
        1,
    )
    .await;
    let orders = src.database("iot").collection::<Document>("orders");
    orders
        .insert_many((0..100).map(|i| doc! { "_id": i, "total": i * 2 }))
        .await
        .unwrap();
}

async fn source_cluster(pair: &Pair) -> Cluster {
    Cluster::connect(Role::Source, &pair.source.uri())
        .await
        .unwrap()
}

/// What every source version must show.
async fn assert_inventory(pair: &Pair, src: &Client) {
    let cluster = source_cluster(pair).await;
    // Named one by one, so that the totals come from each row's sizes.
    let scope = Scope::new(&["iot.metrics", "iot.plain", "iot.orders"], &[] as &[&str]).unwrap();
    let inv = inventory::gather(&cluster, &scope, 100).await;
    assert_eq!(inv.list_error, None);
    let names: Vec<String> = inv.namespaces.iter().map(|n| n.ns.ns.to_string()).collect();
    assert_eq!(names, ["iot.metrics", "iot.orders", "iot.plain"]);

    let (metrics_buckets, plain_buckets) =
        (buckets(src, "metrics").await, buckets(src, "plain").await);
    assert!(metrics_buckets >= 7, "one bucket per sensor at least");

    let metrics = &inv.namespaces[0];
    assert_eq!(metrics.ns.kind, NsKind::Timeseries);
    let ts = metrics.timeseries.as_ref().expect("time-series facts");
    assert_eq!(ts.measurements, Measurements::Exact { count: 5_000 });
    assert_eq!(ts.buckets, Some(metrics_buckets));
    assert_eq!(
        metrics.stats.as_ref().map(|s| s.count),
        Some(metrics_buckets)
    );
    assert_eq!(ts.time_field, "t");
    assert_eq!(ts.meta_field.as_deref(), Some("m"));
    assert_eq!(ts.granularity.as_deref(), Some("seconds"));
    assert_eq!(ts.bucket_max_span_seconds, Some(3_600));
    assert_eq!(ts.expire_after_seconds, Some(31_536_000));
    let listed = ts.buckets_ns.as_ref().expect("the buckets, as listed");
    assert_eq!(listed.ns, Namespace::new("iot", "system.buckets.metrics"));
    assert!(listed.uuid.is_some());
    // Buckets are not sampled as the user's documents.
    assert_eq!(metrics.fields.sampled, 0);
    assert!(metrics.large_docs.is_empty());

    let plain = &inv.namespaces[2];
    let ts = plain.timeseries.as_ref().expect("time-series facts");
    assert_eq!(ts.measurements, Measurements::Exact { count: 300 });
    assert_eq!(ts.buckets, Some(plain_buckets));
    assert_eq!(
        (ts.meta_field.clone(), ts.expire_after_seconds),
        (None, None)
    );
    assert_eq!(ts.granularity.as_deref(), Some("hours"));
    assert!(
        ts.describe().starts_with("300 measurements in "),
        "{}",
        ts.describe()
    );

    let orders = &inv.namespaces[1];
    assert!(orders.timeseries.is_none());
    assert_eq!(orders.fields.sampled, 100);

    // Counted once: the buckets are the time-series collections' rows.
    let totals = inv.totals();
    assert_eq!((totals.collections, totals.views), (3, 0));
    assert_eq!(totals.documents, 100 + metrics_buckets + plain_buckets);

    // With its database wholly in scope, still one row each.
    let whole = inventory::gather(&cluster, &Scope::all(), 100).await;
    let names: Vec<String> = whole
        .namespaces
        .iter()
        .map(|n| n.ns.ns.to_string())
        .collect();
    assert_eq!(names, ["iot.metrics", "iot.orders", "iot.plain"]);
    assert_eq!(whole.totals().collections, 3);

    // No finding names a buckets collection.
    let report = check(
        &pair.source.uri(),
        &pair.destination.uri(),
        CheckRequest::default(),
    )
    .await;
    assert_eq!(report.totals.collections, 3);
    let about_buckets: Vec<_> = report
        .findings
        .iter()
        .filter(|f| {
            f.namespace
                .as_deref()
                .is_some_and(|n| n.contains("system.buckets"))
                || f.detail.contains("system.buckets.metrics")
                || f.detail.contains("system.buckets.plain")
        })
        .collect();
    assert!(about_buckets.is_empty(), "{about_buckets:#?}");
    cluster.close().await;
}

/// A count that runs out of its time limit is estimated from a sample of
/// buckets, and says so.
async fn assert_estimate(pair: &Pair, src: &Client) {
    time_series(
        src,
        "large",
        doc! { "timeseries": { "timeField": "t", "metaField": "m", "granularity": "seconds" } },
        100_000,
        10,
    )
    .await;
    let cluster = source_cluster(pair).await;
    let ns = Namespace::new("iot", "large");
    let buckets = buckets(src, "large").await;
    let m = inventory::measure(&cluster, &ns, "t", Some(buckets), Duration::from_millis(1)).await;
    match &m {
        Measurements::Estimated {
            count,
            sampled,
            why,
        } => {
            assert!(*sampled > 0 && *sampled <= 100, "{m:?}");
            assert!(
                (70_000..=130_000).contains(count),
                "an estimate near 100,000: {m:?}"
            );
            assert!(why.contains("longer than"), "{why}");
        }
        other => panic!("expected an estimate, got {other:?}"),
    }
    assert!(m.describe().starts_with("about "), "{}", m.describe());
    // Without the bucket count there is nothing to scale: unknown, and why.
    let m = inventory::measure(&cluster, &ns, "t", None, Duration::from_millis(1)).await;
    assert!(
        matches!(&m, Measurements::Unknown { why } if why.contains("number of its buckets")),
        "{m:?}"
    );
    // Given the time, the same collection is counted exactly.
    let m = inventory::measure(
        &cluster,
        &ns,
        "t",
        Some(buckets),
        inventory::COUNT_TIME_LIMIT,
    )
    .await;
    assert_eq!(m, Measurements::Exact { count: 100_000 });
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_series_collections_are_one_row_with_their_measurements_on_6_0() {
    let (pair, src, _dest) = clusters().await;
    seed(&src).await;
    assert_inventory(&pair, &src).await;
    assert_estimate(&pair, &src).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_series_collections_are_one_row_with_their_measurements_on_5_0() {
    let pair = pair_from(MongodVersion::V5_0).await;
    let src = client(&pair.source).await;
    seed(&src).await;
    assert_inventory(&pair, &src).await;
    assert_estimate(&pair, &src).await;
}
