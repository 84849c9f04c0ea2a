//! The wizard's scope tree read from a real replica set, without a window:
//! a time-series collection is one node, counted in measurements, with its
//! buckets folded into it rather than listed as a collection of their own.

use bson::{doc, Document};
use mongoferry::catalog::NsKind;
use mongoferry::preflight::inventory::Measurements;
use mongoferry::sandbox::ReplicaSet;
use mongoferry_desktop::commands::types::ScopeRequest;
use mongoferry_desktop::ops;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_series_collection_is_one_node_with_its_measurements() {
    let rs = match ReplicaSet::start("scopets").await {
        Ok(rs) => rs,
        Err(e) => panic!("{} {}", e, e.remedy()),
    };
    let client = rs.client().await.expect("client");
    let db = client.database("iot");
    db.run_command(doc! {
        "create": "readings",
        "timeseries": { "timeField": "t", "metaField": "sensor", "granularity": "minutes" },
        "expireAfterSeconds": 86_400,
    })
    .await
    .expect("create");
    let now = bson::DateTime::now().timestamp_millis();
    let readings: Vec<Document> = (0..1000_i64)
        .map(|i| doc! { "t": bson::DateTime::from_millis(now - (1000 - i) * 1000), "sensor": i % 4, "v": i })
        .collect();
    db.collection::<Document>("readings")
        .insert_many(readings)
        .await
        .expect("insert");
    db.collection::<Document>("orders")
        .insert_many((0..10).map(|i| doc! { "_id": i }))
        .await
        .expect("insert");
    let buckets = db
        .collection::<Document>("system.buckets.readings")
        .count_documents(doc! {})
        .await
        .expect("count");

    let tree = ops::scope_tree(ScopeRequest {
        source_uri: rs.uri(),
        source_profile: None,
    })
    .await
    .unwrap_or_else(|e| panic!("{} {}", e.message, e.remedy));
    let iot = tree
        .databases
        .iter()
        .find(|d| d.name == "iot")
        .expect("the iot database");
    let names: Vec<&str> = iot.collections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["orders", "readings"]);
    let node = &iot.collections[1];
    assert_eq!(node.kind, NsKind::Timeseries);
    assert_eq!(node.documents, buckets);
    assert!(node.bytes > 0);
    let ts = node.timeseries.as_ref().expect("time-series facts");
    assert_eq!(ts.measurements, Measurements::Exact { count: 1000 });
    assert_eq!(ts.buckets, buckets);
    assert_eq!(ts.granularity.as_deref(), Some("minutes"));
    assert_eq!(ts.meta_field.as_deref(), Some("sensor"));
    assert_eq!(ts.expire_after_seconds, Some(86_400));
    assert!(iot.collections[0].timeseries.is_none());
    assert_eq!(iot.documents, 10 + buckets);
}
