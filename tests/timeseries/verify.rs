//! Verification of time-series collections on real mongod: the buckets,
//! copied raw to the destination as a migration copies them, are compared
//! byte for byte (full mode) and counted (quick mode), the measurements of
//! the time-series collection are counted in both modes, the TTL that sync
//! holds off is accepted only while relaxations are, and a bucket the
//! source's TTL may delete during the verification is no difference; a
//! live verification follows the buckets' changes through each side's
//! oplog, which change streams do not report. From a 6.0 source and from
//! a 5.0 one.

use bson::{doc, Bson, DateTime, Document, RawDocumentBuf};
use futures_util::TryStreamExt;
use mongodb::Client;
use mongoferry::progress::VerifyPhase;
use mongoferry::sandbox::{MongodVersion, Pair};
use mongoferry::verify::{
    DifferenceKind, LiveOptions, NamespaceSummary, VecSink, Verifier, VerifyMode, VerifyOptions,
    VerifyReport,
};
use tokio_util::sync::CancellationToken;

use crate::support::verify::*;
use crate::support::*;

const DB: &str = "iot";
const TS: &str = "m";
const BUCKETS: &str = "system.buckets.m";
const SENSORS: i64 = 10;
const POINTS: i64 = 300;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// The source's TTL: long enough that nothing seeded by
/// `seed_measurements` expires.
const LONG_TTL: i64 = 30 * 86_400;

/// Creates `iot.m` on the source (granularity seconds: a bucket spans an
/// hour at most), with a TTL and a secondary index on the meta field.
async fn create_source(src: &Client, expire_after_seconds: i64) {
    let db = src.database(DB);
    db.run_command(doc! {
        "create": TS,
        "timeseries": { "timeField": "t", "metaField": "s", "granularity": "seconds" },
        "expireAfterSeconds": expire_after_seconds,
    })
    .await
    .expect("create a time-series collection");
    db.run_command(doc! {
        "createIndexes": TS,
        "indexes": [{ "key": { "s.id": 1, "t": -1 }, "name": "sensor_time" }],
    })
    .await
    .expect("a secondary index on the meta field");
}

/// `POINTS` measurements a minute apart for each of `SENSORS` sensors,
/// ending now, in time order (an earlier one would open a bucket of its
/// own): some sixty buckets.
async fn seed_measurements(src: &Client) {
    let now = DateTime::now().timestamp_millis();
    let points: Vec<Document> = (0..SENSORS * POINTS)
        .map(|i| {
            let sensor = i % SENSORS;
            doc! {
                "t": DateTime::from_millis(now - (POINTS - 1 - i / SENSORS) * MINUTE_MS),
                "s": { "id": sensor, "site": format!("site-{}", sensor % 3) },
                "v": i as f64 / 7.0,
                "note": "x".repeat(40),
            }
        })
        .collect();
    insert_points(src, points).await;
}

async fn insert_points(c: &Client, points: Vec<Document>) {
    crate::support::insert_into(c, DB, TS, points).await;
}

/// The destination as a migration leaves `iot.m` during sync.
async fn copy_raw(src: &Client, dest: &Client) {
    crate::support::verify::copy_raw(src, dest, DB, TS).await;
}

async fn bucket_ids(c: &Client) -> Vec<Bson> {
    crate::support::verify::bucket_ids(c, DB, TS, doc! {}).await
}

fn with_relaxations(mode: VerifyMode, relaxed: bool) -> VerifyOptions {
    let mut o = options(mode);
    o.allow_sync_relaxations = Some(relaxed);
    o
}

fn of<'a>(report: &'a VerifyReport, namespace: &str) -> &'a NamespaceSummary {
    report
        .namespaces
        .iter()
        .find(|n| n.namespace == namespace)
        .unwrap_or_else(|| panic!("{namespace} is in the report: {report:#?}"))
}

async fn set_ttl_monitor(c: &Client, enabled: bool) {
    c.database("admin")
        .run_command(doc! { "setParameter": 1, "ttlMonitorEnabled": enabled })
        .await
        .expect("setParameter ttlMonitorEnabled");
}

/// A raw copy verifies equal; a changed, a missing and an extra bucket are
/// found in full mode, by `_id` and field path; quick mode counts the
/// measurements and the buckets.
async fn raw_copies_verify_and_planted_differences_are_found(pair: Pair) {
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    create_source(&src, LONG_TTL).await;
    seed_measurements(&src).await;
    copy_raw(&src, &dest).await;
    let ids = bucket_ids(&src).await;
    let buckets_ns = format!("{DB}.{BUCKETS}");
    let ts_ns = format!("{DB}.{TS}");
    let measurements = (SENSORS * POINTS) as u64;

    let (full, diffs) = run_verify(&pair, with_relaxations(VerifyMode::Full, true)).await;
    assert!(full.identical, "{diffs:#?}");
    let b = of(&full, &buckets_ns);
    assert_eq!(b.kind, "collection");
    assert_eq!(b.documents_compared, ids.len() as u64, "{b:?}");
    assert!(b.note.as_deref().is_some_and(|n| n.contains("buckets")));
    let t = of(&full, &ts_ns);
    assert_eq!(t.kind, "timeseries");
    assert_eq!(
        (t.source_documents, t.destination_documents),
        (Some(measurements), Some(measurements))
    );
    assert_eq!(t.documents_compared, 0);
    assert!(
        t.note
            .as_deref()
            .is_some_and(|n| n.contains("byte for byte")),
        "{t:?}"
    );
    assert_eq!(full.documents_compared, ids.len() as u64);

    let (quick, diffs) = run_verify(&pair, with_relaxations(VerifyMode::Quick, true)).await;
    assert!(quick.identical, "{diffs:#?}");
    let t = of(&quick, &ts_ns);
    assert_eq!(t.source_documents, Some(measurements));
    let b = of(&quick, &buckets_ns);
    assert_eq!(
        (b.source_documents, b.destination_documents),
        (Some(ids.len() as u64), Some(ids.len() as u64))
    );

    // Without relaxations the TTL that sync holds off is a difference, on
    // the collection and on its buckets; restored, as commit restores it,
    // they match.
    let (_, diffs) = run_verify(&pair, with_relaxations(VerifyMode::Quick, false)).await;
    assert_eq!(
        summary(&diffs),
        vec![
            (
                ts_ns.clone(),
                DifferenceKind::CollectionOptions,
                String::new()
            ),
            (
                buckets_ns.clone(),
                DifferenceKind::CollectionOptions,
                String::new()
            ),
        ],
        "{diffs:#?}"
    );
    assert!(diffs
        .iter()
        .all(|d| d.field_paths == vec!["expireAfterSeconds".to_string()]));
    dest.database(DB)
        .run_command(doc! { "collMod": TS, "expireAfterSeconds": LONG_TTL })
        .await
        .expect("restore the TTL");
    let (strict, diffs) = run_verify(&pair, with_relaxations(VerifyMode::Full, false)).await;
    assert!(strict.identical, "{diffs:#?}");

    // One bucket changed, two missing, one extra on the destination. (Its
    // meta field changes: 6.0 compresses the data of closed buckets.)
    let buckets = dest.database(DB).collection::<Document>(BUCKETS);
    // A bucket's measurements: its times, or the count of a compressed
    // one (6.0 compresses the buckets it closes).
    let points_of = |b: &Document| match b.get_document("data").and_then(|d| d.get_document("t")) {
        Ok(t) => t.len() as u64,
        Err(_) => b
            .get_document("control")
            .and_then(|c| c.get_i32("count"))
            .map(|n| n as u64)
            .expect("a compressed bucket's count"),
    };
    let changed = ids[3].clone();
    let missing = [ids[ids.len() / 2].clone(), ids[ids.len() / 2 + 1].clone()];
    buckets
        .update_one(
            doc! { "_id": changed.clone() },
            doc! { "$set": { "meta.site": "elsewhere" } },
        )
        .await
        .expect("change a bucket");
    let mut dest_measurements = measurements;
    for id in &missing {
        let gone = buckets
            .find_one(doc! { "_id": id.clone() })
            .await
            .expect("find")
            .expect("the bucket to delete");
        dest_measurements -= points_of(&gone);
        buckets
            .delete_one(doc! { "_id": id.clone() })
            .await
            .expect("delete a bucket");
    }
    let mut extra = src
        .database(DB)
        .collection::<Document>(BUCKETS)
        .find_one(doc! { "_id": ids[0].clone() })
        .await
        .expect("find")
        .expect("a bucket to clone");
    dest_measurements += points_of(&extra);
    let extra_id = Bson::ObjectId(bson::oid::ObjectId::new());
    extra.insert("_id", extra_id.clone());
    buckets
        .insert_one(extra)
        .bypass_document_validation(true)
        .await
        .expect("insert an extra bucket");

    let (full, diffs) = run_verify(&pair, with_relaxations(VerifyMode::Full, true)).await;
    let id = |b: &Bson| b.clone().into_canonical_extjson().to_string();
    let mut expected = vec![
        (buckets_ns.clone(), DifferenceKind::Different, id(&changed)),
        (
            buckets_ns.clone(),
            DifferenceKind::MissingOnDestination,
            id(&missing[0]),
        ),
        (
            buckets_ns.clone(),
            DifferenceKind::MissingOnDestination,
            id(&missing[1]),
        ),
        (
            buckets_ns.clone(),
            DifferenceKind::ExtraOnDestination,
            id(&extra_id),
        ),
    ];
    if dest_measurements != measurements {
        expected.push((ts_ns.clone(), DifferenceKind::Count, String::new()));
    }
    expected.sort();
    assert_eq!(summary(&diffs), expected, "{diffs:#?}");
    let changed_diff = of_kind(&diffs, &buckets_ns, DifferenceKind::Different);
    assert_eq!(changed_diff[0].field_paths, vec!["meta.site".to_string()]);
    assert_eq!(
        of(&full, &ts_ns).destination_documents,
        Some(dest_measurements)
    );

    let (quick, diffs) = run_verify(&pair, with_relaxations(VerifyMode::Quick, true)).await;
    let mut expected = vec![(buckets_ns.clone(), DifferenceKind::Count, String::new())];
    if dest_measurements != measurements {
        expected.push((ts_ns.clone(), DifferenceKind::Count, String::new()));
    }
    expected.sort();
    assert_eq!(summary(&diffs), expected, "{diffs:#?}");
    let b = of(&quick, &buckets_ns);
    assert_eq!(
        (b.source_documents, b.destination_documents),
        (Some(ids.len() as u64), Some(ids.len() as u64 - 1))
    );
    let t = of(&quick, &ts_ns);
    assert_eq!(
        (t.source_documents, t.destination_documents),
        (Some(measurements), Some(dest_measurements))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_are_compared_byte_for_byte_and_measurements_counted() {
    raw_copies_verify_and_planted_differences_are_found(pair().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_from_a_5_0_source_are_compared_on_a_6_0_destination() {
    raw_copies_verify_and_planted_differences_are_found(pair_from(MongodVersion::V5_0).await).await;
}

/// A bucket the source's TTL may delete during the verification is no
/// difference on one side only; one whose measurements have all passed
/// the TTL but whose span has not is kept by the server, so its absence
/// is one.
async fn buckets_a_ttl_may_delete(pair: Pair) {
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    // Both monitors off: what is planted stays planted.
    tokio::join!(set_ttl_monitor(&src, false), set_ttl_monitor(&dest, false));
    // An hour's TTL; granularity seconds, so a bucket spans an hour.
    create_source(&src, 3_600).await;
    let now = DateTime::now().timestamp_millis();
    let at = |ms: i64, sensor: i64| doc! { "t": DateTime::from_millis(ms), "s": { "id": sensor }, "v": 1 };
    // Sensor 1: three hours old, past the TTL and the span: may expire.
    // Sensor 2: ninety minutes old, past the TTL but not the span.
    // Sensor 3: fresh.
    let points: Vec<Document> = (0..5)
        .flat_map(|i| {
            [
                at(now - 3 * HOUR_MS + i * 1000, 1),
                at(now - 90 * MINUTE_MS + i * 1000, 2),
                at(now - 5_000 + i * 1000, 3),
            ]
        })
        .collect();
    insert_points(&src, points).await;
    copy_raw(&src, &dest).await;
    let bucket_of = |sensor: i64| {
        let src = src.clone();
        async move {
            src.database(DB)
                .collection::<Document>(BUCKETS)
                .find_one(doc! { "meta.id": sensor })
                .await
                .expect("find")
                .and_then(|b| b.get("_id").cloned())
                .expect("the sensor's bucket")
        }
    };
    let (old, kept) = (bucket_of(1).await, bucket_of(2).await);
    let buckets = dest.database(DB).collection::<Document>(BUCKETS);
    for id in [&old, &kept] {
        buckets
            .delete_one(doc! { "_id": id.clone() })
            .await
            .expect("delete a bucket on the destination");
    }
    let buckets_ns = format!("{DB}.{BUCKETS}");
    let ts_ns = format!("{DB}.{TS}");

    let (full, diffs) = run_verify(&pair, with_relaxations(VerifyMode::Full, true)).await;
    assert_eq!(
        summary(&diffs),
        vec![(
            buckets_ns.clone(),
            DifferenceKind::MissingOnDestination,
            kept.clone().into_canonical_extjson().to_string()
        )],
        "{diffs:#?}"
    );
    assert_eq!(full.expiring_skipped, 1);
    assert_eq!(of(&full, &buckets_ns).expiring_skipped, 1);
    // The measurements past the TTL are counted on neither side.
    let t = of(&full, &ts_ns);
    assert_eq!(
        (t.source_documents, t.destination_documents),
        (Some(5), Some(5)),
        "{t:?}"
    );

    let (quick, diffs) = run_verify(&pair, with_relaxations(VerifyMode::Quick, true)).await;
    assert_eq!(
        summary(&diffs),
        vec![(buckets_ns.clone(), DifferenceKind::Count, String::new())],
        "{diffs:#?}"
    );
    // The bucket that may expire is counted on neither side.
    let b = of(&quick, &buckets_ns);
    assert_eq!(
        (b.source_documents, b.destination_documents),
        (Some(2), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_a_ttl_may_delete_are_no_difference() {
    buckets_a_ttl_may_delete(pair().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_a_5_0_ttl_may_delete_are_no_difference() {
    buckets_a_ttl_may_delete(pair_from(MongodVersion::V5_0).await).await;
}

/// Copies the source's buckets matching `filter` to the destination raw,
/// as the sync applies the bucket writes it follows in the oplog.
async fn copy_buckets(src: &Client, dest: &Client, filter: Document) {
    let buckets: Vec<RawDocumentBuf> = src
        .database(DB)
        .collection::<RawDocumentBuf>(BUCKETS)
        .find(filter)
        .await
        .expect("read the buckets")
        .try_collect()
        .await
        .expect("read the buckets");
    let to = dest.database(DB).collection::<RawDocumentBuf>(BUCKETS);
    for b in buckets {
        let id = Bson::try_from(b.get("_id").unwrap().unwrap().to_raw_bson()).unwrap();
        to.replace_one(doc! { "_id": id }, b)
            .upsert(true)
            .bypass_document_validation(true)
            .await
            .expect("write a bucket on the destination");
    }
}

/// A measurement of `sensor` now, with the meta field `seed_measurements`
/// gives it, so that it lands in the sensor's open bucket.
fn point_now(sensor: i64, v: f64) -> Document {
    doc! {
        "t": DateTime::now(),
        "s": { "id": sensor, "site": format!("site-{}", sensor % 3) },
        "v": v,
        "note": "x".repeat(40),
    }
}

/// The differences a verification must find between the buckets of
/// `sensor` on each side: each of the source's buckets that the
/// destination lacks or holds otherwise.
async fn differing_buckets(
    src: &Client,
    dest: &Client,
    sensor: i64,
) -> Vec<(String, DifferenceKind, String)> {
    let read = |c: &Client| {
        let c = c.clone();
        async move {
            let docs: Vec<Document> = c
                .database(DB)
                .collection::<Document>(BUCKETS)
                .find(doc! { "meta.id": sensor })
                .await
                .expect("read the buckets")
                .try_collect()
                .await
                .expect("read the buckets");
            docs
        }
    };
    let (s, d) = (read(src).await, read(dest).await);
    let mut out = Vec::new();
    for b in &s {
        let id = b.get("_id").cloned().expect("_id");
        let kind = match d.iter().find(|x| x.get("_id") == Some(&id)) {
            None => DifferenceKind::MissingOnDestination,
            Some(x) if x != b => DifferenceKind::Different,
            Some(_) => continue,
        };
        out.push((
            format!("{DB}.{BUCKETS}"),
            kind,
            id.into_canonical_extjson().to_string(),
        ));
    }
    out.sort();
    out
}

/// A live verification while measurements keep arriving in an open bucket
/// on the source and the destination receives each changed bucket a
/// moment later, as the sync writes it: change streams report none of
/// these writes, the oplog tails do. It keeps going while the bucket
/// changes, converges with no difference once writes stop, and reports a
/// bucket changed on the source after it was compared that the
/// destination never received.
async fn a_live_verification_follows_buckets_through_the_oplog(pair: Pair) {
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    create_source(&src, LONG_TTL).await;
    seed_measurements(&src).await;
    copy_raw(&src, &dest).await;

    // Sensor 0's open bucket changes every 0.8 s, on the source first and
    // 0.2 s later on the destination: never quiet for the recheck
    // interval, equal on both sides most of the time (so that the count
    // of measurements settles).
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (src, dest, stop) = (src.clone(), dest.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.is_cancelled() {
                insert_points(&src, vec![point_now(0, n as f64)]).await;
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                copy_buckets(&src, &dest, doc! { "meta.id": 0 }).await;
                tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let (s, d) = connect(&pair).await;
    let mut options = with_relaxations(VerifyMode::Full, true);
    options.include = vec![DB.into()];
    options.live = Some(LiveOptions {
        recheck_interval_seconds: 1.0,
        settle_seconds: 3.0,
    });
    let verifier = Verifier::new(s, d, options).expect("a verifier");
    let mut progress = verifier.watch_progress();
    let verification = tokio::spawn(async move {
        let mut sink = VecSink::default();
        let r = verifier.run(&mut sink, &CancellationToken::new()).await;
        (r, sink.0)
    });
    let compared = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        progress.wait_for(|p| matches!(p.phase, VerifyPhase::Recheck | VerifyPhase::Done)),
    )
    .await
    .expect("the buckets are compared while the writes go on")
    .map(|p| p.phase == VerifyPhase::Recheck)
    .unwrap_or(false);
    assert!(
        compared,
        "a live verification waits while a bucket keeps changing, but it ended: {:?}",
        verification.await
    );

    // Compared already: a change to sensor 7's bucket on the source only,
    // which the destination never receives.
    insert_points(&src, vec![point_now(7, -1.0)]).await;
    // Longer than the settle time: a bucket that keeps changing is not
    // reported, nor does the verification end, while writes go on.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(
        !verification.is_finished(),
        "a live verification waits while a bucket keeps changing: {:?}",
        verification.await
    );
    stop.cancel();
    let written = writer.await.expect("the writer");
    assert!(written >= 5, "{written} measurements");
    copy_buckets(&src, &dest, doc! { "meta.id": 0 }).await;

    let expected = differing_buckets(&src, &dest, 7).await;
    assert!(!expected.is_empty(), "sensor 7's bucket differs");
    assert_eq!(
        differing_buckets(&src, &dest, 0).await,
        vec![],
        "sensor 0's buckets are synced"
    );
    let (result, diffs) = tokio::time::timeout(std::time::Duration::from_secs(120), verification)
        .await
        .expect("the live verification converges once writes stop")
        .expect("the verification task");
    let report = result.unwrap_or_else(|e| panic!("{e} {}", e.remedy()));
    assert!(report.live);
    assert_eq!(
        summary(&diffs),
        expected,
        "only the bucket the destination never received differs: {diffs:#?}"
    );
    assert!(report.rechecks > 0, "changed buckets were compared again");
    assert_eq!(
        of(&report, &format!("{DB}.{BUCKETS}")).differences,
        expected.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_verification_follows_buckets_through_the_oplog_6_0() {
    a_live_verification_follows_buckets_through_the_oplog(pair().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_verification_follows_buckets_through_the_oplog_of_a_5_0_source() {
    a_live_verification_follows_buckets_through_the_oplog(pair_from(MongodVersion::V5_0).await)
        .await;
}

/// A destination user without `find` on `local.oplog.rs` cannot have the
/// buckets followed live: the verification says which privilege is
/// missing and what to grant, rather than compare without seeing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_verification_says_which_privilege_the_oplog_tail_lacks() {
    const ROOT_PW: &str = "R00t-Verify-Pw";
    const USER_PW: &str = "N0-Oplog-Pw";
    let source = replica_set("tsrefsrc").await;
    let destination = crate::support::tls::replica_set(
        "tsrefdst",
        None,
        Some(crate::support::tls::root_auth(ROOT_PW)),
    )
    .await;
    let src = client(&source).await;
    let dest = client(&destination).await;
    create_source(&src, LONG_TTL).await;
    seed_measurements(&src).await;
    copy_raw(&src, &dest).await;
    // Reads every database but `local`; names collections by UUID.
    let admin = dest.database("admin");
    admin
        .run_command(doc! {
            "createRole": "useUUID",
            "privileges": [{ "resource": { "cluster": true }, "actions": ["useUUID"] }],
            "roles": [],
        })
        .await
        .expect("createRole");
    admin
        .run_command(doc! {
            "createUser": "verifier",
            "pwd": USER_PW,
            "roles": [
                { "role": "readAnyDatabase", "db": "admin" },
                { "role": "useUUID", "db": "admin" },
            ],
        })
        .await
        .expect("createUser");
    let dest_uri = format!(
        "mongodb://verifier:{USER_PW}@127.0.0.1:{}/?replicaSet={}&authSource=admin",
        destination.port, destination.name
    );
    let (s, d) = mongoferry::verify::connect(&source.uri(), &dest_uri)
        .await
        .unwrap_or_else(|e| panic!("connect: {e} {}", e.remedy()));

    // Not live, the oplog is not read: the copy verifies.
    let mut sink = VecSink::default();
    let report = mongoferry::verify::run(
        &s,
        &d,
        &with_relaxations(VerifyMode::Full, true),
        &mut sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e} {}", e.remedy()));
    assert!(report.identical, "{:#?}", sink.0);

    let mut options = with_relaxations(VerifyMode::Full, true);
    options.live = Some(LiveOptions {
        recheck_interval_seconds: 0.5,
        settle_seconds: 1.0,
    });
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        mongoferry::verify::run(&s, &d, &options, &mut sink, &CancellationToken::new()),
    )
    .await
    .expect("the verification ends")
    .expect_err("the oplog tail is refused");
    assert_eq!(err.code(), "not_authorized", "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("The destination user verifier is not allowed to read the oplog (find on local.oplog.rs)"),
        "{text}"
    );
    assert!(err.remedy().contains("clusterMonitor"), "{}", err.remedy());
}
