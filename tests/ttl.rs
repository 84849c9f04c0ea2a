//! TTL collections against real mongod: documents a TTL index (or a
//! clustered collection's TTL) would delete survive the sync on the
//! destination, the commit verifies although the destination's TTL monitor
//! deletes them as soon as the TTL is restored, and a verification does not
//! count such documents as differences when only one side still holds them
//! (while a document no TTL will delete, missing on one side, still is).

use mongoferry_test_support as support;

use std::time::Duration;

use bson::{doc, Bson, DateTime, Document};
use futures_util::TryStreamExt;
use mongodb::Client;
use mongoferry::catalog::HELD_TTL_SECONDS;
use mongoferry::sandbox::{Pair, ReplicaSet};
use mongoferry::verify::{DifferenceKind, LiveOptions, NamespaceSummary, VerifyMode, VerifyReport};
use mongoferry::{Phase, State, SyncConfig, VerificationState};

use support::verify::{bucket_ids, copy_raw, options, run_verify, summary};
use support::*;

/// A TTL every test here uses: documents expire a minute after `at`.
const TTL_SECONDS: i64 = 60;
const HOUR_MS: i64 = 3_600_000;
/// Thousands of small documents in the capped collection (see
/// `audit_log`): 150,000 take its re-copy at commit well over the
/// destination's one-second TTL monitor period here.
const AUDIT_BATCHES: i64 = 150;

async fn start_rs(name: &str, args: &[&str]) -> ReplicaSet {
    match ReplicaSet::start_with(name, args).await {
        Ok(rs) => rs,
        Err(e) => panic!("{e} {}", e.remedy()),
    }
}

/// A destination whose TTL monitor runs every second, as a busy
/// production one effectively may, and a source whose monitor is off (it
/// runs every 60 s, lags under load, or has been disabled).
async fn ttl_pair() -> (Pair, Client, Client) {
    let (source, destination) = tokio::join!(
        start_rs("src", &[]),
        start_rs("dst", &["--setParameter", "ttlMonitorSleepSecs=1"])
    );
    let pair = Pair {
        source,
        destination,
    };
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    set_ttl_monitor(&src, false).await;
    (pair, src, dest)
}

async fn set_ttl_monitor(c: &Client, enabled: bool) {
    c.database("admin")
        .run_command(doc! { "setParameter": 1, "ttlMonitorEnabled": enabled })
        .await
        .expect("set ttlMonitorEnabled");
}

fn at(offset_ms: i64) -> DateTime {
    DateTime::from_millis(DateTime::now().timestamp_millis() + offset_ms)
}

/// A number stored in any numeric BSON type.
fn number(v: Option<&Bson>) -> Option<i64> {
    match v? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(f) => Some(*f as i64),
        _ => None,
    }
}

async fn collection_options(c: &Client, db: &str, coll: &str) -> Document {
    let specs: Vec<Document> = c
        .database(db)
        .run_cursor_command(doc! { "listCollections": 1, "filter": { "name": coll } })
        .await
        .expect("listCollections")
        .try_collect()
        .await
        .expect("listCollections");
    specs
        .first()
        .and_then(|s| s.get_document("options").ok())
        .cloned()
        .unwrap_or_else(|| panic!("no collection {db}.{coll}"))
}

async fn count_where(c: &Client, db: &str, coll: &str, filter: Document) -> u64 {
    c.database(db)
        .collection::<Document>(coll)
        .count_documents(filter)
        .await
        .expect("count")
}

async fn create_ttl_collections(c: &Client) {
    let app = c.database("app");
    app.collection::<Document>("sessions")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "at": 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .expire_after(Duration::from_secs(TTL_SECONDS as u64))
                        .build(),
                )
                .build(),
        )
        .await
        .expect("TTL index");
    app.run_command(doc! {
        "create": "events",
        "clusteredIndex": { "key": { "_id": 1 }, "unique": true },
        "expireAfterSeconds": TTL_SECONDS,
    })
    .await
    .expect("create a clustered collection with a TTL");
}

/// Sessions `prefix-0..n`, all with `at` offset by `offset_ms` from now.
fn sessions(prefix: &str, n: usize, offset_ms: i64) -> Vec<Document> {
    let at = at(offset_ms);
    (0..n)
        .map(|i| doc! { "_id": format!("{prefix}-{i:04}"), "at": at, "n": i as i32 })
        .collect()
}

/// Clustered events whose `_id` is a date `offset_ms` from now (plus `i`
/// ms, so they are distinct).
fn events(n: usize, offset_ms: i64, tag: &str) -> Vec<Document> {
    let base = DateTime::now().timestamp_millis() + offset_ms;
    (0..n)
        .map(|i| doc! { "_id": DateTime::from_millis(base + i as i64), "tag": tag })
        .collect()
}

async fn insert(c: &Client, coll: &str, docs: Vec<Document>) {
    c.database("app")
        .collection::<Document>(coll)
        .insert_many(docs)
        .await
        .expect("insert");
}

/// A capped collection, which commit copies again whole before it
/// verifies: the second or two that takes leaves the destination's TTL
/// monitor time to run with the restored TTLs before the verification
/// reads the TTL collections, as it would during any long verification.
/// (Without it the verification usually reads them first, and the test
/// would prove nothing.) Returns its document count.
async fn audit_log(c: &Client) -> u64 {
    let app = c.database("app");
    app.create_collection("audit")
        .capped(true)
        .size(256 * 1024 * 1024)
        .await
        .expect("create a capped collection");
    let pad = "x".repeat(20);
    let mut n = 0u64;
    for batch in 0..AUDIT_BATCHES {
        let docs: Vec<Document> = (0..1000)
            .map(|i| doc! { "_id": batch * 1000 + i, "pad": &pad })
            .collect();
        n += docs.len() as u64;
        insert(c, "audit", docs).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_a_ttl_would_expire_survive_the_sync_and_the_commit_verifies() {
    let (pair, src, dest) = ttl_pair().await;
    create_ttl_collections(&src).await;
    // Expired an hour ago (the source's monitor is off, so it keeps
    // them), and fresh: they expire an hour from now.
    insert(&src, "sessions", sessions("old", 100, -HOUR_MS)).await;
    insert(&src, "sessions", sessions("new", 100, HOUR_MS)).await;
    insert(&src, "events", events(50, -HOUR_MS, "old")).await;
    insert(&src, "events", events(50, HOUR_MS, "new")).await;
    let audit = audit_log(&src).await;

    let config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    let (handle, run) = start_migration(config).await;
    wait_for(&handle, "the sync", Duration::from_secs(60), |p| {
        p.phase == Phase::Applying
    })
    .await;
    // More expired documents, replayed from the change stream.
    insert(&src, "sessions", sessions("late", 50, -HOUR_MS)).await;
    insert(&src, "events", events(20, -2 * HOUR_MS, "late")).await;
    eventually(
        "the sync to apply the inserts",
        Duration::from_secs(60),
        || {
            let dest = dest.clone();
            async move {
                let s = count(&dest, "app", "sessions").await;
                let e = count(&dest, "app", "events").await;
                (s == 250 && e == 120, format!("sessions {s}, events {e}"))
            }
        },
    )
    .await;
    // The destination's monitor runs every second: give it a few rounds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(count(&dest, "app", "sessions").await, 250);
    assert_eq!(count(&dest, "app", "events").await, 120);
    let held = index_spec(&dest, "app", "sessions", "at_1").await;
    assert_eq!(
        number(held.get("expireAfterSeconds")),
        Some(HELD_TTL_SECONDS),
        "the TTL is held during sync: {held}"
    );
    let clustered = collection_options(&dest, "app", "events").await;
    assert!(
        !clustered.contains_key("expireAfterSeconds"),
        "the clustered TTL is off during sync: {clustered}"
    );

    // Commit with the default request: automatic (here full) verification,
    // after the TTLs are restored and the destination's monitor deletes
    // what the source still holds.
    wait_for(&handle, "canCommit", Duration::from_secs(60), |p| {
        p.can_commit
    })
    .await;
    handle
        .commit(mongoferry::CommitRequest::default())
        .expect("commit accepted");
    let outcome = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("commit finishes in time")
        .expect("the migration task does not panic");
    let progress = handle.progress();
    let verification = progress.verification.clone();
    let done = outcome.unwrap_or_else(|e| {
        panic!("the migration does not commit: {e}; verification: {verification:#?}")
    });
    assert_eq!(done.state, State::Committed, "{done:#?}");
    let v = done.verification.as_ref().expect("the commit verified");
    assert_eq!(v.state, VerificationState::Passed, "{v:#?}");
    assert_eq!(v.mode, Some(VerifyMode::Full), "{v:#?}");
    // The destination's monitor deleted expired documents before the
    // verification read them (the capped re-copy gives it the time): the
    // verification met them on the source only, and let them be.
    let report = v.report.as_ref().expect("the commit's report");
    assert!(
        report.expiring_skipped > 0,
        "the destination's TTL monitor had not run yet: this run did not test the commit it is about ({report:#?})"
    );

    // The TTLs are the source's again...
    let restored = index_spec(&dest, "app", "sessions", "at_1").await;
    assert_eq!(
        number(restored.get("expireAfterSeconds")),
        Some(TTL_SECONDS),
        "{restored}"
    );
    let clustered = collection_options(&dest, "app", "events").await;
    assert_eq!(
        number(clustered.get("expireAfterSeconds")),
        Some(TTL_SECONDS),
        "{clustered}"
    );
    // ...and the destination's monitor deletes what has expired, and only
    // that. (The clustered TTL pass may come a round later.)
    let cutoff = at(-TTL_SECONDS * 1000);
    eventually(
        "the destination's TTL monitor to delete the expired documents",
        Duration::from_secs(60),
        || {
            let dest = dest.clone();
            async move {
                let s =
                    count_where(&dest, "app", "sessions", doc! { "at": { "$lt": cutoff } }).await;
                let e =
                    count_where(&dest, "app", "events", doc! { "_id": { "$lt": cutoff } }).await;
                (
                    s == 0 && e == 0,
                    format!("expired left: sessions {s}, events {e}"),
                )
            }
        },
    )
    .await;
    assert_eq!(
        count(&dest, "app", "sessions").await,
        100,
        "fresh sessions stay"
    );
    assert_eq!(count(&dest, "app", "events").await, 50, "fresh events stay");
    assert_eq!(
        count_where(
            &dest,
            "app",
            "sessions",
            doc! { "_id": { "$regex": "^new-" } }
        )
        .await,
        100
    );
    // The source, whose monitor is off, still holds everything.
    assert_eq!(count(&src, "app", "sessions").await, 250);
    assert_eq!(count(&src, "app", "events").await, 120);
    assert_eq!(count(&dest, "app", "audit").await, audit);
}

/// The summary of one namespace in a report.
fn of<'a>(report: &'a VerifyReport, namespace: &str) -> &'a NamespaceSummary {
    report
        .namespaces
        .iter()
        .find(|n| n.namespace == namespace)
        .unwrap_or_else(|| panic!("{namespace} is in the report: {report:#?}"))
}

/// An `_id` as `summary` shows it.
fn id(v: impl Into<Bson>) -> String {
    v.into().into_canonical_extjson().to_string()
}

fn expected(mut v: Vec<(&str, DifferenceKind, String)>) -> Vec<(String, DifferenceKind, String)> {
    v.sort();
    v.into_iter()
        .map(|(n, k, i)| (n.to_string(), k, i))
        .collect()
}

/// Both sides' TTL collections, the destination's as a sync leaves them
/// (TTL index held at 2^31-1 s, clustered TTL off; a time-series
/// collection's buckets copied raw): the verification must judge by the
/// source's TTLs.
async fn verification_corpus(src: &Client, dest: &Client) {
    for (c, ttl) in [(src, TTL_SECONDS), (dest, HELD_TTL_SECONDS)] {
        let app = c.database("app");
        app.run_command(doc! {
            "createIndexes": "sessions",
            "indexes": [{ "key": { "at": 1 }, "name": "at_1", "expireAfterSeconds": ttl }],
        })
        .await
        .expect("TTL index");
        app.run_command(doc! {
            "createIndexes": "devices",
            "indexes": [{ "key": { "seen.at": 1 }, "name": "seen_at", "expireAfterSeconds": TTL_SECONDS }],
        })
        .await
        .expect("TTL index on a nested path");
        app.create_collection("plain").await.expect("create plain");
    }
    src.database("metrics")
        .run_command(doc! {
            "create": "cpu",
            "timeseries": { "timeField": "t", "metaField": "host" },
            "expireAfterSeconds": TTL_SECONDS,
        })
        .await
        .expect("create a time-series collection with a TTL");
    src.database("app")
        .run_command(doc! {
            "create": "events",
            "clusteredIndex": { "key": { "_id": 1 }, "unique": true },
            "expireAfterSeconds": TTL_SECONDS,
        })
        .await
        .expect("create a clustered collection with a TTL");
    dest.database("app")
        .run_command(
            doc! { "create": "events", "clusteredIndex": { "key": { "_id": 1 }, "unique": true } },
        )
        .await
        .expect("create a clustered collection");

    let base = DateTime::now().timestamp_millis();
    let old = DateTime::from_millis(base - HOUR_MS);
    let new = DateTime::from_millis(base + HOUR_MS);
    for c in [src, dest] {
        // Equal on both sides, expired ones included: compared as usual.
        let fresh: Vec<Document> = (0..200)
            .map(|i| doc! { "_id": format!("fresh-{i:04}"), "at": new })
            .collect();
        insert(c, "sessions", fresh).await;
        let both_old: Vec<Document> = (0..10)
            .map(|i| doc! { "_id": format!("both-old-{i}"), "at": old })
            .collect();
        insert(c, "sessions", both_old).await;
        let events: Vec<Document> = (0..30)
            .map(|i| doc! { "_id": DateTime::from_millis(base + HOUR_MS + i), "v": 1 })
            .collect();
        insert(c, "events", events).await;
        let devices: Vec<Document> = (0..20)
            .map(|i| doc! { "_id": i, "seen": [{ "at": new }] })
            .collect();
        insert(c, "devices", devices).await;
        // No TTL here: `at` is just a field.
        let plain: Vec<Document> = (0..50).map(|i| doc! { "_id": i, "at": old }).collect();
        insert(c, "plain", plain).await;
    }
    // The time-series collection's measurements fill buckets whose `_id`s
    // each side would choose on its own: the destination gets the source's
    // buckets raw, as a migration copies them, and the same TTL.
    let points: Vec<Document> = (0..100)
        .map(|i| doc! { "t": DateTime::from_millis(base + HOUR_MS + i), "host": "h1", "load": i })
        .collect();
    insert_into(src, "metrics", "cpu", points).await;
    copy_raw(src, dest, "metrics", "cpu").await;
    dest.database("metrics")
        .run_command(doc! { "collMod": "cpu", "expireAfterSeconds": TTL_SECONDS })
        .await
        .expect("the same TTL on the destination");

    // On one side only, and a TTL may delete them before a verification
    // ends.
    insert(src, "sessions", sessions("src-old", 30, -HOUR_MS)).await;
    let arrays: Vec<Document> = (0..5)
        .map(|i| doc! { "_id": format!("src-arr-{i}"), "at": [new, "x", old] })
        .collect();
    insert(src, "sessions", arrays).await;
    // Expires in six minutes: within the margin.
    insert(src, "sessions", sessions("src-soon", 1, 5 * 60 * 1000)).await;
    insert(dest, "sessions", sessions("dst-old", 20, -HOUR_MS)).await;
    insert(src, "events", events(10, -HOUR_MS, "old")).await;
    insert(dest, "events", events(6, -2 * HOUR_MS, "old")).await;
    let devices: Vec<Document> = (100..104)
        .map(|i| doc! { "_id": i, "seen": [{ "at": new }, { "at": old }] })
        .collect();
    insert(src, "devices", devices).await;
    // Two hours old, in a bucket of their own (another host: the open
    // bucket of h1 stays as copied): past the TTL and the bucket's span
    // (an hour), so the server may delete the bucket.
    let points: Vec<Document> = (0..40)
        .map(|i| doc! { "t": DateTime::from_millis(base - 2 * HOUR_MS + i), "host": "h9", "load": i })
        .collect();
    insert_into(src, "metrics", "cpu", points).await;
}

/// One-sided documents a TTL may delete, planted by `verification_corpus`.
const EXPIRING_SESSIONS: u64 = 30 + 5 + 1 + 20;
const EXPIRING_EVENTS: u64 = 10 + 6;
const EXPIRING_DEVICES: u64 = 4;
/// The bucket of the source's old measurements.
const EXPIRING_BUCKETS: u64 = 1;
const BUCKETS: &str = "metrics.system.buckets.cpu";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_a_ttl_may_delete_are_no_difference_on_one_side_but_lasting_ones_are() {
    let (pair, src, dest) = clusters().await;
    // Both monitors off: what is planted stays planted.
    tokio::join!(set_ttl_monitor(&src, false), set_ttl_monitor(&dest, false));
    verification_corpus(&src, &dest).await;
    // The destination as during a sync: its held TTLs are accepted.
    let relaxed = |mode| {
        let mut o = options(mode);
        o.allow_sync_relaxations = Some(true);
        o
    };

    let (full, diffs) = run_verify(&pair, relaxed(VerifyMode::Full)).await;
    assert!(full.identical, "{diffs:#?}");
    assert_eq!(
        full.expiring_skipped,
        EXPIRING_SESSIONS + EXPIRING_EVENTS + EXPIRING_DEVICES + EXPIRING_BUCKETS,
        "{full:#?}"
    );
    assert_eq!(
        of(&full, "app.sessions").expiring_skipped,
        EXPIRING_SESSIONS
    );
    assert_eq!(of(&full, "app.events").expiring_skipped, EXPIRING_EVENTS);
    assert_eq!(of(&full, "app.devices").expiring_skipped, EXPIRING_DEVICES);
    assert_eq!(of(&full, BUCKETS).expiring_skipped, EXPIRING_BUCKETS);
    assert_eq!(of(&full, "app.plain").expiring_skipped, 0);
    // Documents both sides hold, expired or not, are compared.
    assert_eq!(of(&full, "app.sessions").documents_compared, 210 + 36);
    // The bucket both sides hold is compared; the source's, counted as
    // the sessions are.
    assert_eq!(of(&full, BUCKETS).documents_compared, 1 + EXPIRING_BUCKETS);
    // The time-series collection is counted, its expiring points left out.
    let cpu = of(&full, "metrics.cpu");
    assert_eq!(
        (cpu.source_documents, cpu.destination_documents),
        (Some(100), Some(100)),
        "{cpu:?}"
    );

    let (quick, diffs) = run_verify(&pair, relaxed(VerifyMode::Quick)).await;
    assert!(quick.identical, "{diffs:#?}");
    for (namespace, lasting) in [
        ("app.sessions", 200),
        ("app.events", 30),
        ("app.devices", 20),
        ("app.plain", 50),
        ("metrics.cpu", 100),
        (BUCKETS, 1),
    ] {
        let s = of(&quick, namespace);
        assert_eq!(
            (s.source_documents, s.destination_documents),
            (Some(lasting), Some(lasting)),
            "{s:?}"
        );
    }
    assert!(of(&quick, "app.sessions").note.is_some());
    assert!(of(&quick, "app.plain").note.is_none());

    let mut live = relaxed(VerifyMode::Full);
    live.live = Some(LiveOptions {
        recheck_interval_seconds: 0.2,
        settle_seconds: 1.0,
    });
    let (report, diffs) = run_verify(&pair, live).await;
    assert!(report.identical, "{diffs:#?}");
    assert!(
        report.expiring_skipped
            >= EXPIRING_SESSIONS + EXPIRING_EVENTS + EXPIRING_DEVICES + EXPIRING_BUCKETS,
        "{report:#?}"
    );

    // Documents no TTL will delete before the verification ends, on one
    // side only: still differences.
    let base = DateTime::now().timestamp_millis();
    let later = DateTime::from_millis(base + 20 * 60 * 1000);
    src.database("app")
        .collection::<Document>("sessions")
        .insert_many(vec![
            doc! { "_id": "lasting-later", "at": later },
            doc! { "_id": "lasting-string", "at": "2000-01-01" },
            doc! { "_id": "lasting-none" },
        ])
        .await
        .unwrap();
    dest.database("app")
        .collection::<Document>("sessions")
        .insert_many(vec![
            doc! { "_id": "extra-number", "at": 0 },
            doc! { "_id": "extra-nested", "at": { "d": DateTime::from_millis(0) } },
        ])
        .await
        .unwrap();
    let old = DateTime::from_millis(base - HOUR_MS);
    insert(&src, "plain", vec![doc! { "_id": "plain-old", "at": old }]).await;
    let event_id = DateTime::from_millis(base + 2 * HOUR_MS);
    insert(&src, "events", vec![doc! { "_id": event_id, "v": 1 }]).await;
    insert(
        &dest,
        "devices",
        vec![doc! { "_id": 200, "seen": [{ "at": later }, { "seen": old }] }],
    )
    .await;
    insert_into(
        &src,
        "metrics",
        "cpu",
        vec![doc! { "t": later, "host": "h2", "load": 1 }],
    )
    .await;
    // In a bucket of its own, which lasts.
    let later_bucket = bucket_ids(&src, "metrics", "cpu", doc! { "meta": "h2" }).await;
    assert_eq!(later_bucket.len(), 1);

    let (full, diffs) = run_verify(&pair, relaxed(VerifyMode::Full)).await;
    use DifferenceKind::{Count, ExtraOnDestination as Extra, MissingOnDestination as Missing};
    assert_eq!(
        summary(&diffs),
        expected(vec![
            ("app.sessions", Missing, id("lasting-later")),
            ("app.sessions", Missing, id("lasting-string")),
            ("app.sessions", Missing, id("lasting-none")),
            ("app.sessions", Extra, id("extra-number")),
            ("app.sessions", Extra, id("extra-nested")),
            ("app.plain", Missing, id("plain-old")),
            ("app.events", Missing, id(event_id)),
            ("app.devices", Extra, id(200)),
            ("metrics.cpu", Count, String::new()),
            (BUCKETS, Missing, id(later_bucket[0].clone())),
        ]),
        "{diffs:#?}"
    );
    assert_eq!(
        full.expiring_skipped,
        EXPIRING_SESSIONS + EXPIRING_EVENTS + EXPIRING_DEVICES + EXPIRING_BUCKETS
    );

    let (quick, diffs) = run_verify(&pair, relaxed(VerifyMode::Quick)).await;
    let counted: Vec<(String, Option<u64>, Option<u64>)> = diffs
        .iter()
        .map(|d| {
            assert_eq!(d.kind, Count, "{d:#?}");
            let s = of(&quick, &d.namespace);
            (
                d.namespace.clone(),
                s.source_documents,
                s.destination_documents,
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        counted,
        vec![
            ("app.devices".to_string(), Some(20), Some(21)),
            ("app.events".to_string(), Some(31), Some(30)),
            ("app.plain".to_string(), Some(51), Some(50)),
            ("app.sessions".to_string(), Some(203), Some(202)),
            ("metrics.cpu".to_string(), Some(101), Some(100)),
            (BUCKETS.to_string(), Some(2), Some(1)),
        ],
        "{diffs:#?}"
    );
}
