//! How the copy splits and reads collections: record-id ranges where the
//! storage order allows them, `_id` ranges elsewhere, and ranges whose
//! first document is deleted before they are read.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongoferry::{LoadLevel, LoadSetting, Migration, MigrationHandle, Namespace, SyncConfig};
use tokio_util::sync::CancellationToken;

use support::*;

/// The tests that measure rates and latencies have the machine to
/// themselves: the others of this binary run beside each other only.
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn partitions(dest: &mongodb::Client, ns: &str) -> Vec<Document> {
    dest.database("__mongoferry")
        .collection::<Document>("partitions")
        .find(doc! { "ns": ns })
        .sort(doc! { "n": 1 })
        .await
        .expect("read partitions")
        .try_collect()
        .await
        .expect("read partitions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ranges_whose_first_document_was_deleted_before_the_read_are_still_copied() {
    let _machine = MACHINE.read().await;
    let (pair, src, dest) = clusters().await;
    let orders = Namespace::new("shop", "orders");
    seed_all(&src, &[(orders.clone(), 30_000, 300)]).await;
    // A clustered collection: its record ids are its `_id`s.
    src.database("shop")
        .create_collection("events")
        .clustered_index(mongodb::options::ClusteredIndex::default())
        .await
        .unwrap();
    let events = Namespace::new("shop", "events");
    mongoferry::sandbox::workload::seed(&src, &events, 20_000, 300)
        .await
        .unwrap();

    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.tuning.partition_bytes = 256 * 1024;
    config.tuning.copy_concurrency = 1;
    config.tuning.batch_docs = 100;

    // Stop the first run as soon as the plan is stored, so that most
    // ranges are still to be read.
    let cancel = CancellationToken::new();
    let first = Migration::connect(config.clone(), cancel.clone())
        .await
        .expect("connect");
    let run = tokio::spawn(first.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while partitions(&dest, "shop.events").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no plan was stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    let stopped = run.await.expect("the run does not panic");
    assert!(stopped.is_err(), "the run was cancelled mid-copy");

    let order_ranges = partitions(&dest, "shop.orders").await;
    assert!(order_ranges.len() > 4, "{order_ranges:?}");
    assert!(
        order_ranges
            .iter()
            .all(|p| p.get_str("key") == Ok("recordId") && p.get_str("node").is_ok()),
        "a plain collection is split by record id on the primary: {order_ranges:?}"
    );
    let event_ranges = partitions(&dest, "shop.events").await;
    assert!(event_ranges.len() > 2, "{event_ranges:?}");
    assert!(
        event_ranges.iter().all(|p| p.get_str("key") == Ok("id")),
        "a clustered collection is split by _id: {event_ranges:?}"
    );

    // Delete the document each unread range starts after: resuming at it
    // is no longer possible. For one range, delete its reserve starts too,
    // so that it has to read from the beginning.
    let unread: Vec<&Document> = order_ranges
        .iter()
        .filter(|p| !p.get_bool("done").unwrap() && p.get_i64("min").is_ok())
        .collect();
    assert!(unread.len() >= 3, "{order_ranges:?}");
    let mut doomed: Vec<i64> = unread.iter().map(|p| p.get_i64("min").unwrap()).collect();
    let reserve = unread[unread.len() / 2]
        .get_array("fallbackStarts")
        .unwrap();
    assert!(!reserve.is_empty());
    doomed.extend(reserve.iter().map(|r| r.as_i64().unwrap()));
    let deleted = delete_by_record_id(&src, &orders, &doomed).await;
    assert_eq!(deleted, doomed.len() as u64);

    let (handle, run) = start_migration(config).await;
    commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_eq!(
        total_count(&dest, std::slice::from_ref(&orders)).await,
        30_000 - deleted
    );
    assert_same(&src, &dest).await;
}

/// Deletes the documents stored at the given record ids of the primary.
async fn delete_by_record_id(c: &mongodb::Client, ns: &Namespace, rids: &[i64]) -> u64 {
    let db = c.database(&ns.db);
    let mut cursor = db
        .run_cursor_command(doc! {
            "find": &ns.coll,
            "projection": { "_id": 1 },
            "hint": { "$natural": 1 },
            "showRecordId": true,
        })
        .await
        .expect("scan with record ids");
    let mut ids = Vec::new();
    while let Some(d) = cursor.try_next().await.expect("scan") {
        if rids.contains(&d.get_i64("$recordId").expect("a record id")) {
            ids.push(d.get("_id").cloned().expect("an _id"));
        }
    }
    db.collection::<Document>(&ns.coll)
        .delete_many(doc! { "_id": { "$in": ids } })
        .await
        .expect("delete")
        .deleted_count
}

/// A range is read by whole replies, and only the reply that reaches past
/// its end is read again with each document's record id: every document
/// is copied by exactly the range that holds its record id, none twice and
/// none by no range, whatever the reply size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_document_is_copied_by_exactly_one_record_id_range() {
    let _machine = MACHINE.read().await;
    let (pair, src, dest) = clusters().await;
    let orders = Namespace::new("shop", "orders");
    seed_all(&src, &[(orders.clone(), 20_000, 300)]).await;
    // Record ids are not dense: some documents are gone before the copy.
    src.database("shop")
        .collection::<Document>("orders")
        .delete_many(doc! { "n": { "$mod": [7, 3] } })
        .await
        .unwrap();
    let mut stored: Vec<i64> = Vec::new();
    let mut cursor = src
        .database("shop")
        .run_cursor_command(doc! {
            "find": "orders",
            "projection": { "_id": 1 },
            "hint": { "$natural": 1 },
            "showRecordId": true,
        })
        .await
        .unwrap();
    while let Some(d) = cursor.try_next().await.unwrap() {
        stored.push(d.get_i64("$recordId").unwrap());
    }

    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.tuning.partition_bytes = 256 * 1024;
    // Replies of an odd size, so that they straddle range ends anywhere.
    config.tuning.read_batch_docs = 97;
    let (handle, run) = start_migration(config).await;
    commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_same(&src, &dest).await;

    let ranges = partitions(&dest, "shop.orders").await;
    assert!(ranges.len() > 8, "{ranges:?}");
    let mut copied = 0;
    for p in &ranges {
        assert_eq!(p.get_str("key"), Ok("recordId"), "{p:?}");
        let (min, max) = (p.get_i64("min").ok(), p.get_i64("max").ok());
        let expected = stored
            .iter()
            .filter(|&&r| min.is_none_or(|m| r > m) && max.is_none_or(|m| r <= m))
            .count() as i64;
        let docs = p.get_i64("docs").unwrap();
        assert_eq!(
            docs, expected,
            "range {min:?}..{max:?} copied {docs} documents: {p:?}"
        );
        copied += docs;
    }
    assert_eq!(copied, stored.len() as i64, "every document once");
}

/// A destination that stops taking writes (here `fsyncLock`, as a full disk
/// would) makes the copy wait without an error: progress says so after the
/// stall limit, says again when it moves, and the migration still ends
/// with an identical destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_that_stands_still_is_reported_and_so_is_its_recovery() {
    let _machine = MACHINE.read().await;
    let (pair, src, dest) = clusters().await;
    let docs = Namespace::new("big", "docs");
    seed_all(&src, &[(docs.clone(), 100_000, 1_000)]).await;
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.tuning.stall_warning = Duration::from_secs(3);
    let (handle, run) = start_migration(config).await;
    wait_for(&handle, "the copy to start", Duration::from_secs(60), |p| {
        p.phase == mongoferry::Phase::Copying && p.collection_copy.estimated_total_bytes > 0
    })
    .await;
    let admin = dest.database("admin");
    admin
        .run_command(doc! { "fsync": 1, "lock": true })
        .await
        .expect("fsyncLock the destination");
    let stalled = wait_for(&handle, "the stall warning", Duration::from_secs(30), |p| {
        p.warnings
            .iter()
            .any(|w| w.starts_with("Nothing has been copied for"))
    })
    .await;
    let copy = &stalled.collection_copy;
    assert!(
        copy.estimated_copied_bytes < copy.estimated_total_bytes,
        "the copy was still under way when the destination was locked: {copy:?}"
    );
    let warning = stalled
        .warnings
        .iter()
        .find(|w| w.starts_with("Nothing has been copied for"))
        .unwrap();
    assert!(
        warning.contains("ranges remain") && warning.contains("free space"),
        "{warning}"
    );
    admin
        .run_command(doc! { "fsyncUnlock": 1 })
        .await
        .expect("fsyncUnlock the destination");
    wait_for(&handle, "the recovery note", Duration::from_secs(30), |p| {
        p.warnings
            .iter()
            .any(|w| w.starts_with("The copy is moving again"))
    })
    .await;
    commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_same(&src, &dest).await;
}

/// The copy's rate over `window`, in MiB/s, from its progress.
async fn copy_rate(handle: &mongoferry::MigrationHandle, window: Duration) -> f64 {
    let before = handle.progress().collection_copy.estimated_copied_bytes;
    tokio::time::sleep(window).await;
    let after = handle.progress().collection_copy.estimated_copied_bytes;
    (after - before) as f64 / window.as_secs_f64() / (1024.0 * 1024.0)
}

async fn set_level(handle: &MigrationHandle, level: LoadLevel) {
    let status = handle
        .set_load(LoadSetting::fixed(level))
        .await
        .expect("a valid level is taken");
    assert_eq!(status.setting.level, level);
    assert_eq!(handle.progress().load.map(|l| l.setting.level), Some(level));
}

/// The load level holds the copy to its rate, and a new level changes the
/// rate within seconds, both ways, while the copy runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_load_level_bounds_the_copy_rate_and_changes_it_live() {
    let _machine = MACHINE.write().await;
    let (pair, src, dest) = clusters().await;
    let docs = Namespace::new("big", "docs");
    seed_all(&src, &[(docs.clone(), 200_000, 1_000)]).await;
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.load = Some(LoadSetting::fixed(LoadLevel::Gentle));
    let (handle, run) = start_migration(config).await;
    wait_for(&handle, "the copy to move", Duration::from_secs(60), |p| {
        p.collection_copy.estimated_copied_bytes > 0
    })
    .await;
    let second = Duration::from_secs(1);
    tokio::time::sleep(second).await;
    let gentle = copy_rate(&handle, Duration::from_secs(3)).await;
    // 5 MiB/s, and a reply or two read before its charge was paid.
    assert!(
        gentle > 1.0 && gentle < 7.5,
        "gentle copies at {gentle:.1} MiB/s"
    );

    // Capped too, so that the copy is still under way afterwards.
    set_level(&handle, LoadLevel::MibPerSecond(30.0)).await;
    tokio::time::sleep(second).await;
    let faster = copy_rate(&handle, Duration::from_secs(2)).await;
    assert!(
        faster > 3.0 * gentle,
        "a higher level speeds the copy up within seconds: {gentle:.1} -> {faster:.1} MiB/s"
    );

    set_level(&handle, LoadLevel::Gentle).await;
    tokio::time::sleep(second).await;
    let slower = copy_rate(&handle, Duration::from_secs(3)).await;
    assert!(
        slower < 7.5,
        "a lower level slows it down within seconds: {faster:.1} -> {slower:.1} MiB/s"
    );
    eprintln!(
        "copy rate: gentle {gentle:.1}, 30 MiB/s {faster:.1}, gentle again {slower:.1} MiB/s"
    );
    let left = handle.progress().collection_copy;
    assert!(
        left.estimated_copied_bytes < left.estimated_total_bytes,
        "the copy was still under way at the end: {left:?}"
    );

    set_level(&handle, LoadLevel::Full).await;
    commit_and_wait(&handle, run, Duration::from_secs(180)).await;
    assert_same(&src, &dest).await;
}

/// Runs heavy aggregations on the source until `stop`: a competing
/// workload that makes every query on it slower.
fn compete(
    src: &mongodb::Client,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..8)
        .map(|_| {
            let coll = src.database("noise").collection::<Document>("docs");
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let pipeline = vec![doc! { "$group": {
                        "_id": { "$mod": ["$n", 97] },
                        "s": { "$sum": { "$strLenCP": "$pad" } },
                    } }];
                    if let Ok(c) = coll.aggregate(pipeline).await {
                        let _ = c.try_collect::<Vec<Document>>().await;
                    }
                }
            })
        })
        .collect()
}

/// The adaptive mode measures the source idle before the copy, backs off
/// and says why when a competing workload slows the source, and speeds up
/// again when it stops. Every figure of the source's health is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_adaptive_mode_backs_off_when_the_source_suffers_and_recovers() {
    let _machine = MACHINE.write().await;
    let (pair, src, dest) = clusters().await;
    let docs = Namespace::new("big", "docs");
    let noise = Namespace::new("noise", "docs");
    seed_all(
        &src,
        &[(docs.clone(), 300_000, 1_000), (noise, 100_000, 500)],
    )
    .await;
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.include = vec!["big.*".into()];
    let setting = LoadSetting {
        level: LoadLevel::MibPerSecond(6.0),
        max_source_latency_increase_percent: Some(200.0),
        max_secondary_lag_seconds: None,
    };
    config.load = Some(setting);
    let (handle, run) = start_migration(config).await;

    let p = wait_for(
        &handle,
        "the idle baseline and the copy",
        Duration::from_secs(90),
        |p| {
            p.source_impact
                .as_ref()
                .is_some_and(|i| i.idle_read_latency_ms.is_some() && i.read_latency_ms.is_some())
                && p.collection_copy.estimated_copied_bytes > 0
        },
    )
    .await;
    let impact = p.source_impact.expect("figures");
    eprintln!("impact with the copy alone: {impact:?}");
    assert!(
        impact.read_tickets_total.is_some_and(|t| t > 0),
        "{impact:?}"
    );
    assert!(
        impact.cache_used_percent.is_some_and(|c| c > 0.0),
        "{impact:?}"
    );
    assert!(impact.queued_operations.is_some(), "{impact:?}");
    assert!(impact.not_measured.is_empty(), "{impact:?}");
    let status = p.load.expect("the load status");
    assert_eq!(status.setting, setting);

    // What the copy alone was allowed, so that the back-off seen is the
    // competitor's doing.
    let alone = handle
        .progress()
        .load
        .and_then(|l| l.bytes_per_second)
        .unwrap_or(f64::MAX);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let competitors = compete(&src, &stop);
    let slowed = wait_for(
        &handle,
        "the adaptive mode to back off",
        Duration::from_secs(90),
        |p| {
            p.load
                .as_ref()
                .is_some_and(|l| l.throttling && l.bytes_per_second.is_some_and(|b| b < alone))
        },
    )
    .await;
    let load = slowed.load.expect("load");
    let reason = load.reason.clone().unwrap_or_default();
    eprintln!("backed off: {reason} ({:?})", slowed.source_impact);
    assert!(
        reason.starts_with("Slowing the copy to")
            && (reason.contains("over their idle") || reason.contains("queues operations")),
        "{reason}"
    );
    assert!(
        load.bytes_per_second
            .is_some_and(|b| b < 6.0 * 1024.0 * 1024.0),
        "{load:?}"
    );
    assert!(
        slowed
            .warnings
            .iter()
            .any(|w| w.starts_with("Slowing the copy")),
        "{:?}",
        slowed.warnings
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in competitors {
        c.await.expect("the competitor ends");
    }
    let lowest = handle
        .progress()
        .load
        .and_then(|l| l.bytes_per_second)
        .unwrap_or(f64::MAX);
    let recovered = wait_for(
        &handle,
        "the copy to speed up again",
        Duration::from_secs(90),
        |p| {
            p.load
                .as_ref()
                .is_some_and(|l| !l.throttling || l.bytes_per_second.is_some_and(|b| b > lowest))
        },
    )
    .await;
    eprintln!("recovered: {:?}", recovered.load);
    let left = recovered.collection_copy;
    assert!(
        left.estimated_copied_bytes < left.estimated_total_bytes,
        "the copy was still under way: {left:?}"
    );

    set_level(&handle, LoadLevel::Full).await;
    commit_and_wait(&handle, run, Duration::from_secs(180)).await;
    // The competitor's database was out of scope.
    src.database("noise").drop().await.expect("drop noise");
    assert_same(&src, &dest).await;
}
