//! End-to-end migrations through the engine's public API, on real mongod.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::TimeseriesOptions;
use mongodb::Client;
use mongoferry::sandbox::workload;
use mongoferry::{CommitRequest, EventSourceChoice, Migration, Namespace, State, SyncConfig};
use tokio_util::sync::CancellationToken;

use support::*;

/// Collections with every option and index kind the engine must carry.
async fn rich_source(c: &Client) -> Vec<Namespace> {
    support::scenario::create_rich_collections(c).await;
    let shop = c.database("shop");
    shop.create_collection("clustered")
        .clustered_index(mongodb::options::ClusteredIndex::default())
        .await
        .unwrap();
    shop.run_command(
        doc! { "create": "audit", "changeStreamPreAndPostImages": { "enabled": true } },
    )
    .await
    .unwrap();
    shop.collection::<Document>("customers")
        .create_indexes(support::scenario::rich_indexes())
        .await
        .unwrap();
    shop.run_command(doc! { "create": "active_customers", "viewOn": "customers", "pipeline": [{ "$match": { "active": true } }] })
        .await
        .unwrap();
    let nss: Vec<Namespace> = ["customers", "events", "people", "clustered", "audit"]
        .iter()
        .map(|c| Namespace::new("shop", *c))
        .collect();
    for (i, ns) in nss.iter().enumerate() {
        let count = if ns.coll == "customers" { 6000 } else { 800 };
        let size = if ns.coll == "events" {
            200
        } else {
            300 + 100 * i
        };
        if ns.coll == "clustered" {
            // Clustered collections need unique, non-array _ids: any type works.
            workload::seed(c, ns, count, size).await.unwrap();
        } else {
            workload::seed(c, ns, count, size).await.unwrap();
        }
    }
    nss
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_and_sync_under_load_then_commit_gives_an_identical_destination() {
    let (pair, src, dest) = clusters().await;
    let nss = rich_source(&src).await;

    // Writes run through the copy, the sync and until commit.
    let stop = CancellationToken::new();
    let load = tokio::spawn(workload::run(
        src.clone(),
        nss.clone(),
        100_000,
        Some(800),
        7,
        stop.clone(),
    ));

    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    // Small ranges, so that one collection is copied by several readers.
    config.tuning.partition_bytes = 256 * 1024;
    config.tuning.batch_docs = 500;
    let (handle, run) = start_migration(config).await;

    let p = wait_for(&handle, "canCommit", Duration::from_secs(120), |p| {
        p.can_commit
    })
    .await;
    assert!(p.collection_copy.copied_docs >= 8000, "{p:#?}");
    assert!(p.collection_copy.estimated_total_bytes > 0);
    // Keep syncing under load for a while, with lag measured.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = handle.progress();
    assert!(p.total_events_applied > 0, "{p:#?}");
    assert!(p.lag_time_seconds.is_some());

    stop.cancel();
    let stats = load.await.unwrap().unwrap();
    assert!(stats.total() > 200, "{stats:?}");
    handle.commit(CommitRequest::default()).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.state, State::Committed);
    assert!(done.can_write);
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_series_collections_with_change_streams_are_refused_before_anything_is_written() {
    let (pair, src, dest) = clusters().await;
    src.database("m")
        .create_collection("metrics")
        .timeseries(
            TimeseriesOptions::builder()
                .time_field("t".to_string())
                .build(),
        )
        .await
        .unwrap();
    // Change streams do not report the writes to its buckets.
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.event_source = EventSourceChoice::ChangeStream;
    let migration = Migration::connect(config, CancellationToken::new())
        .await
        .unwrap();
    let err = migration.run().await.unwrap_err();
    // The preflight check refuses it, with the finding that says why.
    assert_eq!(err.code(), "preflight_blocked", "{err}");
    assert!(err.to_string().contains("m.metrics"), "{err}");
    let mongoferry::Error::PreflightBlocked { report } = &err else {
        unreachable!("the code says preflight_blocked")
    };
    let blockers: Vec<_> = report.blockers().collect();
    assert_eq!(blockers.len(), 1, "{report:#?}");
    assert_eq!(blockers[0].id, "time_series_needs_oplog");
    assert_eq!(blockers[0].namespace.as_deref(), Some("m.metrics"));
    let dbs = dest.list_database_names().await.unwrap();
    assert!(!dbs.contains(&"m".to_string()), "{dbs:?}");
    assert!(
        !dbs.contains(&"__mongoferry".to_string()),
        "nothing may be written: {dbs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_oldest_oplog_entry_is_readable_for_the_copy_watchdog() {
    let rs = replica_set("oplog").await;
    let c = client(&rs).await;
    c.database("a")
        .collection::<Document>("b")
        .insert_one(doc! { "x": 1 })
        .await
        .unwrap();
    let cluster = mongoferry::cluster::Cluster::connect(mongoferry::Role::Source, &rs.uri())
        .await
        .unwrap();
    let oldest = mongoferry::oplog::oldest_entry(&cluster)
        .await
        .expect("oldest oplog entry");
    let now = cluster.cluster_time().await.unwrap();
    assert!(oldest.time > 0 && (oldest.time, oldest.increment) <= (now.time, now.increment));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_process_cannot_drive_the_same_migration() {
    let pair = pair().await;
    let src = client(&pair.source).await;
    workload::seed(&src, &Namespace::new("a", "b"), 100, 200)
        .await
        .unwrap();
    let first = Migration::connect(
        SyncConfig::new(pair.source.uri(), pair.destination.uri()),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let handle = first.handle();
    let cancel_first = CancellationToken::new();
    let run = tokio::spawn(first.run());
    wait_for(&handle, "canCommit", Duration::from_secs(60), |p| {
        p.can_commit
    })
    .await;
    let second = Migration::connect(
        SyncConfig::new(pair.source.uri(), pair.destination.uri()),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(90), second.run())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), "lease_held", "{err}");
    // The first is unharmed and commits.
    handle.commit(CommitRequest::default()).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.state, State::Committed);
    drop(cancel_first);
    assert_same(&src, &client(&pair.destination).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_can_block_writes_on_the_source_and_still_ends_identical() {
    let pair = pair().await;
    let src = client(&pair.source).await;
    let nss = vec![
        Namespace::new("app", "orders"),
        Namespace::new("app", "users"),
    ];
    for ns in &nss {
        workload::seed(&src, ns, 2000, 400).await.unwrap();
    }
    let stop = CancellationToken::new();
    let load = tokio::spawn(workload::run(
        src.clone(),
        nss.clone(),
        50_000,
        Some(500),
        11,
        stop.clone(),
    ));
    let (handle, run) =
        start_migration(SyncConfig::new(pair.source.uri(), pair.destination.uri())).await;
    wait_for(&handle, "canCommit", Duration::from_secs(60), |p| {
        p.can_commit
    })
    .await;
    // The load is still writing: the engine blocks it, then catches up.
    handle
        .commit(CommitRequest {
            block_source_writes: true,
            ..Default::default()
        })
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.state, State::Committed);
    stop.cancel();
    load.await.unwrap().unwrap();
    let err = src
        .database("app")
        .collection::<Document>("orders")
        .insert_one(doc! { "late": true })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("User writes blocked"), "{err}");
    assert_same(&src, &client(&pair.destination).await).await;
}
