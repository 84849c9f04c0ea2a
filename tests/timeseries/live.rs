//! Time-series collections migrated live, on real servers: 5.0 and 6.0
//! sources to a 6.0 destination. A time-series collection is a view over
//! its `system.buckets` collection; the migration creates it with the
//! source's options (its TTL held off during sync), copies the buckets raw
//! and follows them through the source's oplog (change streams do not
//! report bucket writes).
//!
//! The scenario: collections of several shapes (with and without a meta
//! field, each granularity, one with a TTL, secondary indexes on a meta
//! sub-field and on the time field) under a load of new measurements (and,
//! on 6.0, deletes and updates by meta field) during the copy and the
//! sync; mid-sync a granularity change, an index build, a collection
//! created and one dropped, a burst that fills whole buckets (which 6.0
//! compresses), and the source's TTL monitor deleting expired buckets;
//! then commit, a full verification, and the buckets byte for byte, the
//! options, the indexes and what the views return all equal. Also kill -9
//! of the CLI under load and resuming, and the change-stream source refused
//! by the check.
//!
//! Each test runs one pair of servers; both TTL monitors run every second
//! (`ttl_pair`), the source's off until the test turns it on, so what a
//! TTL deletes and when is the test's choice, not the clock's.

use std::time::Duration;

use mongoferry::preflight::Severity;
use mongoferry::sandbox::MongodVersion;
use mongoferry::verify::VerifyMode;
use mongoferry::{
    CommitRequest, CommitVerify, EventSource, EventSourceChoice, State, SyncConfig,
    VerificationState,
};

use crate::support::ddl::wait_until_equal;
use crate::support::timeseries::*;
use crate::support::*;

/// The check's blocker for time-series collections with the change-stream
/// event source (change streams do not report bucket writes).
const TIME_SERIES_NEEDS_OPLOG: &str = "time_series_needs_oplog";

/// The shapes the destination holds after the scenario's DDL.
const FINAL_SHAPES: [Shape; 5] = [WEATHER, CPU, EVENTS, EXPIRING, FRESH];

fn events(p: &serde_json::Value) -> u64 {
    p["totalEventsApplied"].as_u64().unwrap_or(0)
}

/// The DDL on time-series collections run while the sync applies: a
/// granularity change (minutes to hours), an index on a meta sub-field and
/// the time field, a collection created (with an index and measurements)
/// and one dropped.
async fn ddl_during_sync(src: &mongodb::Client) {
    run(
        src,
        bson::doc! { "collMod": CPU.name, "timeseries": { "granularity": "hours" } },
    )
    .await;
    run(
        src,
        bson::doc! { "createIndexes": WEATHER.name, "indexes": [
            { "key": { "meta.site": 1, "ts": -1 }, "name": "site_1_ts_-1" },
        ] },
    )
    .await;
    create(src, FRESH).await;
    run(
        src,
        bson::doc! { "createIndexes": FRESH.name, "indexes": [
            { "key": { "meta.sensor": 1 }, "name": "sensor_1" },
        ] },
    )
    .await;
    insert(src, FRESH, 0, 1_500, now_ms() - 60_000).await;
    run(src, bson::doc! { "drop": DOOMED.name }).await;
}

/// Waits until the destination follows the DDL during sync: the same
/// collections, `CPU`'s new granularity, `WEATHER`'s and `FRESH`'s indexes.
async fn wait_ddl_followed(src: &mongodb::Client, dest: &mongodb::Client) {
    let timeout = Duration::from_secs(60);
    wait_until_equal(
        "the destination's collections do not follow the source's DDL",
        timeout,
        || async { (collection_names(src).await, collection_names(dest).await) },
    )
    .await;
    wait_until_equal(
        "the destination's cpu does not follow the granularity change",
        timeout,
        || async {
            let granularity = |o: Option<(String, bson::Document)>| {
                o.and_then(|(_, o)| o.get_document("timeseries").ok().cloned())
            };
            (
                granularity(spec(src, CPU.name).await),
                granularity(spec(dest, CPU.name).await),
            )
        },
    )
    .await;
    for shape in [WEATHER, FRESH] {
        wait_until_equal(
            &format!("the destination's {} indexes do not follow", shape.name),
            timeout,
            || async {
                (
                    indexes(src, DB, shape.name).await,
                    indexes(dest, DB, shape.name).await,
                )
            },
        )
        .await;
    }
}

/// During sync the destination keeps buckets its TTL would delete: its
/// `EXPIRING` has no `expireAfterSeconds`, and after two passes of its
/// monitor (every second) it still holds every expired bucket the source
/// (whose monitor is off) holds.
async fn assert_ttl_held(src: &mongodb::Client, dest: &mongodb::Client) {
    let held = options(dest, EXPIRING).await;
    assert!(
        !held.contains_key("expireAfterSeconds"),
        "the destination's TTL is off during sync: {held}"
    );
    let (_, buckets) = spec(dest, &EXPIRING.buckets())
        .await
        .expect("the destination's buckets collection");
    assert!(
        !buckets.contains_key("expireAfterSeconds"),
        "the destination's buckets have no TTL during sync: {buckets}"
    );
    let source = options(src, EXPIRING).await;
    assert_eq!(
        source.get_i64("expireAfterSeconds"),
        Ok(TTL_SECONDS),
        "{source}"
    );
    let expired = old_buckets(src, EXPIRING).await;
    assert!(expired > 0, "the source holds expired buckets");
    wait_until_equal(
        "the destination holds the source's expired buckets",
        Duration::from_secs(60),
        || async {
            (
                old_buckets(src, EXPIRING).await,
                old_buckets(dest, EXPIRING).await,
            )
        },
    )
    .await;
    wait_ttl_passes(dest, 2, Duration::from_secs(30)).await;
    assert_eq!(
        old_buckets(dest, EXPIRING).await,
        expired,
        "the destination's TTL monitor deleted buckets during sync"
    );
}

/// Turns the source's TTL monitor on: it deletes the expired buckets, and
/// the deletes reach the destination through the sync.
async fn expire_on_the_source(src: &mongodb::Client, dest: &mongodb::Client) {
    set_ttl_monitor(src, true).await;
    eventually(
        "the source's TTL monitor to delete the expired buckets",
        Duration::from_secs(60),
        || async {
            let n = old_buckets(src, EXPIRING).await;
            (n == 0, format!("{n} expired buckets left"))
        },
    )
    .await;
    eventually(
        "the source's TTL deletes to reach the destination",
        Duration::from_secs(60),
        || async {
            let n = old_buckets(dest, EXPIRING).await;
            (
                n == 0,
                format!("{n} expired buckets left on the destination"),
            )
        },
    )
    .await;
}

/// After commit: the destination's TTL and granularity are the source's.
async fn assert_options_restored(src: &mongodb::Client, dest: &mongodb::Client) {
    let expiring = options(dest, EXPIRING).await;
    assert_eq!(
        expiring.get_i64("expireAfterSeconds"),
        Ok(TTL_SECONDS),
        "the TTL is restored at commit: {expiring}"
    );
    let cpu = options(dest, CPU).await;
    assert_eq!(
        cpu.get_document("timeseries")
            .and_then(|t| t.get_str("granularity")),
        Ok("hours"),
        "{cpu}"
    );
    for shape in [WEATHER, EVENTS, FRESH] {
        assert_eq!(options(src, shape).await, options(dest, shape).await);
    }
    assert!(
        spec(dest, DOOMED.name).await.is_none(),
        "the dropped collection is gone"
    );
}

async fn migrate_time_series_live(version: MongodVersion) {
    let by_meta = version == MongodVersion::V6_0;
    let (pair, src, dest) = ts_pair(version).await;
    seed_source(&src).await;
    let load = Load::start(
        &src,
        vec![WEATHER, CPU, EVENTS, EXPIRING],
        by_meta,
        10_000_000,
    );

    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    // Small ranges, so that the buckets are copied by several readers.
    config.tuning.partition_bytes = 64 * 1024;
    let (handle, task) = start_migration(config).await;
    let p = wait_for(&handle, "canCommit", Duration::from_secs(120), |p| {
        p.can_commit
    })
    .await;
    assert_eq!(
        p.event_source,
        Some(EventSource::Oplog),
        "time-series collections are followed through the oplog: {p:#?}"
    );

    assert_ttl_held(&src, &dest).await;
    ddl_during_sync(&src).await;
    insert_burst(&src, WEATHER, 20_000_000, 2_500).await;
    insert(&src, EXPIRING, 2_000_000, 500, old_ms()).await;
    if version == MongodVersion::V6_0 {
        assert!(
            compressed_buckets(&src, WEATHER).await > 0,
            "6.0 compressed the full buckets: the test covers their replacement"
        );
    }
    wait_ddl_followed(&src, &dest).await;
    expire_on_the_source(&src, &dest).await;

    let stats = load.stop().await;
    eprintln!("{version} source: the load did {stats:?}");
    assert!(stats.inserted > 1000, "{stats:?}");
    if by_meta {
        assert!(stats.deleted > 0 && stats.updated > 0, "{stats:?}");
    }
    wait_for(
        &handle,
        "canCommit after the load",
        Duration::from_secs(60),
        |p| p.can_commit,
    )
    .await;
    handle
        .commit(CommitRequest {
            verify: CommitVerify::Full,
            ..CommitRequest::default()
        })
        .expect("commit accepted");
    let outcome = tokio::time::timeout(Duration::from_secs(120), task)
        .await
        .expect("commit finishes within 120 s")
        .expect("the migration task does not panic");
    let verification = handle.progress().verification;
    let done = outcome.unwrap_or_else(|e| {
        panic!("the migration does not commit: {e}; verification: {verification:#?}")
    });
    assert_eq!(done.state, State::Committed, "{done:#?}");
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    let v = done.verification.as_ref().expect("the commit verified");
    assert_eq!(v.state, VerificationState::Passed, "{v:#?}");
    assert_eq!(v.mode, Some(VerifyMode::Full), "{v:#?}");
    let report = v.report.as_ref().expect("the commit's report");
    assert!(report.identical, "{report:#?}");
    // Each time-series collection: its measurements counted on both sides,
    // its buckets compared one by one.
    let summary = |namespace: String| {
        report
            .namespaces
            .iter()
            .find(|n| n.namespace == namespace)
            .unwrap_or_else(|| panic!("{namespace} is in the report: {report:#?}"))
    };
    for shape in FINAL_SHAPES {
        let view = summary(format!("{DB}.{}", shape.name));
        let measured = count(&src, DB, shape.name).await;
        assert_eq!(view.kind, "timeseries", "{view:?}");
        assert_eq!(view.differences, 0, "{view:?}");
        assert_eq!(
            (view.source_documents, view.destination_documents),
            (Some(measured), Some(measured)),
            "the measurements are counted: {view:?}"
        );
        let buckets = summary(format!("{DB}.{}", shape.buckets()));
        assert_eq!(buckets.differences, 0, "{buckets:?}");
        assert_eq!(
            buckets.documents_compared,
            count(&src, DB, &shape.buckets()).await,
            "every bucket is compared: {buckets:?}"
        );
    }

    assert_options_restored(&src, &dest).await;
    let counts = assert_same_time_series(&src, &dest, &FINAL_SHAPES).await;
    eprintln!("{version} source: measurements of {FINAL_SHAPES:?}: {counts:?}");
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_series_from_a_5_0_source_migrate_live_and_verify() {
    migrate_time_series_live(MongodVersion::V5_0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_series_from_a_6_0_source_migrate_live_and_verify() {
    migrate_time_series_live(MongodVersion::V6_0).await;
}

/// Kills the CLI while it syncs time-series collections under load from a
/// 5.0 source (the oplog path), runs the same command again, lets the
/// source's TTL delete expired buckets, commits with a full verification
/// through the CLI, and the destination equals the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_time_series_sync_then_resume_and_commit() {
    let (pair, src, dest) = ts_pair(MongodVersion::V5_0).await;
    seed_source(&src).await;
    run(&src, bson::doc! { "drop": DOOMED.name }).await;
    let shapes = [WEATHER, CPU, EVENTS, EXPIRING];
    let load = Load::start(&src, shapes.to_vec(), false, 10_000_000);

    let port = api_port();
    let mut first = CliProcess::sync_pair(&pair, port, &[]);
    let p = wait_api(
        &mut first,
        port,
        "canCommit with events applied",
        Duration::from_secs(90),
        |p| p["canCommit"] == true && events(p) > 0,
    )
    .await;
    assert_eq!(p["state"], "RUNNING", "{p:#}");
    first.kill9();
    let state = stored_state(&dest).await.expect("a checkpoint");
    assert_eq!(state.get_str("phase"), Ok("applying"), "{state}");
    assert!(
        state.get_timestamp("oplogPosition").is_ok(),
        "the sync's oplog position is saved: {state}"
    );
    let migration_id = state.get_str("migrationId").unwrap().to_string();

    // While nothing syncs: the load goes on, expired measurements arrive.
    insert(&src, EXPIRING, 2_000_000, 500, old_ms()).await;
    let mut second = CliProcess::sync_pair(&pair, port, &[]);
    wait_api(
        &mut second,
        port,
        "canCommit after the restart",
        Duration::from_secs(90),
        |p| p["canCommit"] == true && events(p) > 0,
    )
    .await;
    assert_ttl_held(&src, &dest).await;
    expire_on_the_source(&src, &dest).await;
    let stats = load.stop().await;
    assert!(stats.inserted > 1000, "{stats:?}");
    wait_api(
        &mut second,
        port,
        "canCommit with the load stopped",
        Duration::from_secs(60),
        |p| p["canCommit"] == true,
    )
    .await;

    let out = run_cli(
        &["commit", "--port", &port.to_string(), "--verify", "full"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.code, Some(0), "mongoferry commit: {out:?}");
    let status = second.wait_exit(Duration::from_secs(120)).await;
    let stderr = second.stderr();
    assert!(
        status.success(),
        "the sync did not commit: {status}; stderr:\n{stderr}"
    );
    assert!(stderr.contains("COMMITTED"), "{stderr}");
    assert!(
        stderr.contains("Verified at commit (full): the destination equals the source"),
        "{stderr}"
    );
    let state = stored_state(&dest).await.expect("a checkpoint");
    assert_eq!(state.get_str("phase"), Ok("committed"), "{state}");
    assert_eq!(
        state.get_str("migrationId"),
        Ok(migration_id.as_str()),
        "the migration was resumed, not started over"
    );
    let expiring = options(&dest, EXPIRING).await;
    assert_eq!(
        expiring.get_i64("expireAfterSeconds"),
        Ok(TTL_SECONDS),
        "{expiring}"
    );
    assert_same_time_series(&src, &dest, &shapes).await;
}

/// Change streams do not report bucket writes: with a time-series
/// collection in scope, the change-stream source is refused by the check,
/// before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_change_stream_source_is_refused_with_time_series_in_scope() {
    let pair = pair_from(MongodVersion::V6_0).await;
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    create(&src, WEATHER).await;
    insert(&src, WEATHER, 0, 100, now_ms()).await;
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.event_source = EventSourceChoice::ChangeStream;
    let migration =
        mongoferry::Migration::connect(config, tokio_util::sync::CancellationToken::new())
            .await
            .expect("connect");
    let err = migration.run().await.expect_err("the check refuses");
    let mongoferry::Error::PreflightBlocked { report } = &err else {
        panic!("expected a preflight blocker, got {err}");
    };
    let found = report.find(TIME_SERIES_NEEDS_OPLOG);
    assert!(
        found.iter().any(|f| f.severity == Severity::Blocker),
        "{TIME_SERIES_NEEDS_OPLOG} is among the blockers: {:#?}",
        report.findings
    );
    assert!(
        non_system_dbs(&dest).await.is_empty(),
        "nothing is written to the destination"
    );

    // With the event source left to the engine (the oplog), the same
    // source is not refused at all.
    let out = run_cli(
        &[
            "check",
            "--json",
            "--source",
            &pair.source.uri(),
            "--destination",
            &pair.destination.uri(),
        ],
        Duration::from_secs(60),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json prints JSON ({e}): {out:?}"));
    let findings = v["findings"].as_array().expect("findings");
    assert!(
        findings
            .iter()
            .all(|f| f["severity"] != "blocker" && f["id"] != TIME_SERIES_NEEDS_OPLOG),
        "the auto event source migrates time-series collections: {v:#}"
    );
    assert_eq!(out.code, Some(0), "{out:?}");
}
