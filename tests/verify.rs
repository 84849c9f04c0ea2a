//! Parity validation on real mongod: identical clusters pass; every kind
//! of planted difference is found with its kind and field path; the CLI's
//! exit codes and NDJSON report; a live verification during a sync
//! converges; and commit verifies by default.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::{doc, Bson, Document};
use mongoferry::sandbox::workload::{self, mixed_id};
use mongoferry::verify::{
    self, DifferenceKind, FieldChange, LiveOptions, VecSink, Verifier, VerifyMode, VerifyOptions,
};
use mongoferry::{CommitRequest, Namespace, State, SyncConfig, VerificationState};
use tokio_util::sync::CancellationToken;

use support::verify::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_clusters_pass_quick_and_full() {
    let (pair, src, dest) = clusters().await;
    tokio::join!(build_corpus(&src), build_corpus(&dest));

    let (quick, diffs) = run_verify(&pair, options(VerifyMode::Quick)).await;
    assert!(quick.identical, "{diffs:#?}");
    let people = quick
        .namespaces
        .iter()
        .find(|n| n.namespace == "shop.people")
        .expect("shop.people is verified");
    assert_eq!(people.source_documents, Some(400));
    assert_eq!(people.destination_documents, Some(400));

    let (full, diffs) = run_verify(&pair, options(VerifyMode::Full)).await;
    assert!(full.identical, "{diffs:#?}");
    let expected = [
        ("shop.customers", 1500),
        ("shop.sessions", 300),
        ("shop.people", 400),
        ("shop.clustered", 900),
        ("shop.mixed", MIXED_DOCS),
        ("crm.contacts", 200),
    ];
    for (namespace, docs) in expected {
        let s = full
            .namespaces
            .iter()
            .find(|n| n.namespace == namespace)
            .unwrap_or_else(|| panic!("{namespace} is in the report: {full:#?}"));
        assert_eq!(s.documents_compared, docs, "{namespace}: {s:?}");
        assert_eq!(s.destination_documents, Some(docs), "{namespace}: {s:?}");
        assert_eq!(s.differences, 0);
    }
    // The capped collection is compared whole, whatever it kept.
    let events = count(&src, "shop", "events").await;
    let s = full
        .namespaces
        .iter()
        .find(|n| n.namespace == "shop.events")
        .expect("shop.events");
    assert!(events > 0);
    assert_eq!(s.documents_compared, events);
    let view = full
        .namespaces
        .iter()
        .find(|n| n.namespace == "shop.active_customers")
        .expect("the view is in the report");
    assert_eq!(view.kind, "view");
    assert!(view.note.is_some());
    assert_eq!(
        full.documents_compared,
        expected.iter().map(|(_, n)| n).sum::<u64>() + events
    );
    assert!(full.bytes_compared > 0);

    // Strict field order passes too: the documents are byte for byte equal.
    let mut strict = options(VerifyMode::Full);
    strict.strict_field_order = true;
    let (report, diffs) = run_verify(&pair, strict).await;
    assert!(report.identical, "{diffs:#?}");

    // A time-series collection, its buckets copied raw to the destination
    // as a migration copies them: options, counts of measurements, and
    // the buckets byte for byte.
    let db = src.database("metrics");
    db.run_command(
        doc! { "create": "cpu", "timeseries": { "timeField": "at", "metaField": "host" } },
    )
    .await
    .unwrap();
    let points: Vec<Document> = (0..500)
        .map(|n| doc! { "at": bson::DateTime::from_millis(1_700_000_000_000 + n * 1000), "host": format!("h{}", n % 5), "load": n as f64 })
        .collect();
    db.collection::<Document>("cpu")
        .insert_many(points)
        .await
        .unwrap();
    copy_raw(&src, &dest, "metrics", "cpu").await;
    let buckets = bucket_ids(&src, "metrics", "cpu", doc! {}).await;
    let (report, diffs) = run_verify(&pair, options(VerifyMode::Full)).await;
    assert!(report.identical, "{diffs:#?}");
    let ts = report
        .namespaces
        .iter()
        .find(|n| n.namespace == "metrics.cpu")
        .expect("the time-series collection is verified");
    assert_eq!(ts.kind, "timeseries");
    assert_eq!(
        (ts.source_documents, ts.destination_documents),
        (Some(500), Some(500))
    );
    let b = report
        .namespaces
        .iter()
        .find(|n| n.namespace == "metrics.system.buckets.cpu")
        .expect("its buckets are verified");
    assert_eq!(b.documents_compared, buckets.len() as u64, "{b:?}");
    // Deleting a host's measurements deletes its buckets.
    let gone: Vec<(String, DifferenceKind, String)> =
        bucket_ids(&src, "metrics", "cpu", doc! { "meta": "h1" })
            .await
            .into_iter()
            .map(|id| {
                (
                    "metrics.system.buckets.cpu".to_string(),
                    DifferenceKind::MissingOnDestination,
                    id.into_canonical_extjson().to_string(),
                )
            })
            .collect();
    assert!(!gone.is_empty());
    dest.database("metrics")
        .collection::<Document>("cpu")
        .delete_many(doc! { "host": "h1" })
        .await
        .unwrap();
    let (_, diffs) = run_verify(&pair, options(VerifyMode::Full)).await;
    let mut expected = vec![(
        "metrics.cpu".to_string(),
        DifferenceKind::Count,
        String::new(),
    )];
    expected.extend(gone);
    expected.sort();
    assert_eq!(summary(&diffs), expected, "{diffs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_acknowledged_just_before_a_verification_are_all_seen() {
    // Written with w:1 a moment before the verification starts, as commit
    // re-copies capped collections: majority reads alone could miss the
    // last of them until the majority snapshot catches up.
    let (pair, src, dest) = clusters().await;
    let w1 = mongodb::options::WriteConcern::builder()
        .w(mongodb::options::Acknowledgment::Nodes(1))
        .build();
    let docs: Vec<Document> = (0..20_000).map(|n| doc! { "_id": n, "v": n }).collect();
    for c in [&src, &dest] {
        c.database("fresh")
            .collection::<Document>("docs")
            .insert_many(docs.clone())
            .write_concern(w1.clone())
            .await
            .unwrap();
    }
    let (report, diffs) = run_verify(&pair, options(VerifyMode::Full)).await;
    assert!(report.identical, "{diffs:#?}");
    assert_eq!(report.documents_compared, 20_000);
    let (report, diffs) = run_verify(&pair, options(VerifyMode::Quick)).await;
    assert!(report.identical, "{diffs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_planted_difference_is_found_with_its_kind_and_field_path() {
    let (pair, src, dest) = clusters().await;
    tokio::join!(build_corpus(&src), build_corpus(&dest));
    let shop = dest.database("shop");
    let mixed = shop.collection::<Document>("mixed");
    let customers = shop.collection::<Document>("customers");

    // Documents: one missing, one extra, one changed in nested places,
    // one int instead of long, one with its fields in another order.
    mixed
        .delete_one(doc! { "_id": mixed_id(10) })
        .await
        .unwrap();
    mixed
        .insert_one(doc! { "_id": "extra-1", "x": 1 })
        .await
        .unwrap();
    customers
        .update_one(
            doc! { "_id": mixed_id(5) },
            doc! { "$set": { "address.geo.lat": 1234.5, "history.0.v": 99 } },
        )
        .await
        .unwrap();
    customers
        .update_one(doc! { "_id": mixed_id(6) }, doc! { "$set": { "n": 6_i32 } })
        .await
        .unwrap();
    let moved = reordered(&src, "shop.customers", &mixed_id(7)).await;
    customers
        .replace_one(doc! { "_id": mixed_id(7) }, moved)
        .await
        .unwrap();
    // Metadata: a missing index, a changed index option, another
    // validator, an extra and a missing collection, a missing view.
    customers
        .drop_index("address.city_1_score_-1")
        .await
        .unwrap();
    shop.run_command(
        doc! { "collMod": "customers", "index": { "name": "active_1", "hidden": true } },
    )
    .await
    .unwrap();
    shop.run_command(doc! { "collMod": "customers", "validator": { "name": { "$type": "int" } } })
        .await
        .unwrap();
    dest.database("crm")
        .collection::<Document>("extra")
        .insert_one(doc! { "x": 1 })
        .await
        .unwrap();
    dest.database("crm")
        .collection::<Document>("contacts")
        .drop()
        .await
        .unwrap();
    shop.collection::<Document>("active_customers")
        .drop()
        .await
        .unwrap();

    let metadata_kinds = vec![
        (
            "crm.contacts".to_string(),
            DifferenceKind::MissingCollection,
            String::new(),
        ),
        (
            "crm.extra".to_string(),
            DifferenceKind::ExtraCollection,
            String::new(),
        ),
        (
            "shop.active_customers".to_string(),
            DifferenceKind::MissingView,
            String::new(),
        ),
        (
            "shop.customers".to_string(),
            DifferenceKind::CollectionOptions,
            String::new(),
        ),
        (
            "shop.customers".to_string(),
            DifferenceKind::MissingIndex,
            "address.city_1_score_-1".to_string(),
        ),
        (
            "shop.customers".to_string(),
            DifferenceKind::IndexOptions,
            "active_1".to_string(),
        ),
    ];

    // Quick: the metadata differences, nothing about single documents
    // (shop.mixed lost one and gained one, so its count still matches).
    let (quick, diffs) = run_verify(&pair, options(VerifyMode::Quick)).await;
    assert!(!quick.identical);
    let mut want = metadata_kinds.clone();
    want.sort();
    assert_eq!(summary(&diffs), want, "{diffs:#?}");

    // Full: every planted difference, and nothing else.
    let (full, diffs) = run_verify(&pair, options(VerifyMode::Full)).await;
    let mut want = metadata_kinds.clone();
    want.extend([
        (
            "shop.mixed".to_string(),
            DifferenceKind::MissingOnDestination,
            id_json(10).to_string(),
        ),
        (
            "shop.mixed".to_string(),
            DifferenceKind::ExtraOnDestination,
            Bson::String("extra-1".into())
                .into_canonical_extjson()
                .to_string(),
        ),
        (
            "shop.customers".to_string(),
            DifferenceKind::Different,
            id_json(5).to_string(),
        ),
        (
            "shop.customers".to_string(),
            DifferenceKind::Type,
            id_json(6).to_string(),
        ),
    ]);
    want.sort();
    assert_eq!(summary(&diffs), want, "{diffs:#?}");
    assert_eq!(full.differences, want.len() as u64);
    assert_eq!(full.differences_by_kind[&DifferenceKind::Different], 1);

    let changed = of_kind(&diffs, "shop.customers", DifferenceKind::Different)[0];
    assert_eq!(changed.field_paths, vec!["address.geo.lat", "history.0.v"]);
    assert!(changed
        .fields
        .iter()
        .all(|f| f.change == FieldChange::Value));
    assert_eq!(changed.fields[1].destination.as_deref(), Some("99 (int)"));
    let typed = of_kind(&diffs, "shop.customers", DifferenceKind::Type)[0];
    assert_eq!(typed.field_paths, vec!["n"]);
    assert_eq!(typed.fields[0].source.as_deref(), Some("6 (long)"));
    assert_eq!(typed.fields[0].destination.as_deref(), Some("6 (int)"));
    let hidden = of_kind(&diffs, "shop.customers", DifferenceKind::IndexOptions)[0];
    assert_eq!(hidden.field_paths, vec!["hidden"]);
    let validator = of_kind(&diffs, "shop.customers", DifferenceKind::CollectionOptions)[0];
    assert_eq!(validator.field_paths, vec!["validator.name.$type"]);
    let summary_of = |ns: &str| {
        full.namespaces
            .iter()
            .find(|n| n.namespace == ns)
            .cloned()
            .unwrap_or_else(|| panic!("{ns} in the report"))
    };
    assert_eq!(summary_of("shop.mixed").differences, 2);
    assert_eq!(summary_of("shop.mixed").documents_compared, MIXED_DOCS);
    assert_eq!(summary_of("shop.customers").differences, 5);

    // Strict field order: the moved field is reported too, by path.
    let mut strict = options(VerifyMode::Full);
    strict.strict_field_order = true;
    let (_, diffs) = run_verify(&pair, strict).await;
    let ordered = of_kind(&diffs, "shop.customers", DifferenceKind::FieldOrder);
    assert_eq!(ordered.len(), 1, "{diffs:#?}");
    assert_eq!(ordered[0].id, Some(id_json(7)));
    assert!(
        ordered[0].field_paths.contains(&"n".to_string()),
        "{:?}",
        ordered[0].field_paths
    );
    assert!(ordered[0]
        .fields
        .iter()
        .all(|f| f.change == FieldChange::Order));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_relaxations_are_accepted_only_while_allowed() {
    let (pair, src, dest) = clusters().await;
    for c in [&src, &dest] {
        workload::seed(c, &ns("shop.customers"), 200, 300)
            .await
            .unwrap();
    }
    let ix = |unique: bool, ttl: i64| {
        doc! { "createIndexes": "customers", "indexes": [
            if unique {
                doc! { "key": { "n": 1 }, "name": "n_unique", "unique": true }
            } else {
                doc! { "key": { "n": 1 }, "name": "n_unique" }
            },
            doc! { "key": { "history.at": 1 }, "name": "ttl", "expireAfterSeconds": ttl },
        ] }
    };
    let year = 10 * 365 * 24 * 3600;
    src.database("shop")
        .run_command(ix(true, year))
        .await
        .unwrap();
    // What a sync builds on the destination.
    dest.database("shop")
        .run_command(ix(false, mongoferry::catalog::HELD_TTL_SECONDS))
        .await
        .unwrap();

    let mut allowed = options(VerifyMode::Quick);
    allowed.allow_sync_relaxations = Some(true);
    let (report, diffs) = run_verify(&pair, allowed).await;
    assert!(report.identical, "{diffs:#?}");
    assert!(report.sync_relaxations_allowed);

    let (report, diffs) = run_verify(&pair, options(VerifyMode::Quick)).await;
    assert!(!report.sync_relaxations_allowed);
    let mut found: Vec<(String, Vec<String>)> = diffs
        .iter()
        .map(|d| (d.index.clone().unwrap_or_default(), d.field_paths.clone()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("n_unique".to_string(), vec!["unique".to_string()]),
            ("ttl".to_string(), vec!["expireAfterSeconds".to_string()]),
        ],
        "{diffs:#?}"
    );

    // Without a stored migration on the destination, `None` verifies
    // strictly: the destination claims to be final.
    let mut auto = options(VerifyMode::Quick);
    auto.allow_sync_relaxations = None;
    let (report, _) = run_verify(&pair, auto).await;
    assert!(!report.sync_relaxations_allowed);
    assert_eq!(report.differences, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collection_with_another_collation_is_compared_by_lookup() {
    let (pair, src, dest) = clusters().await;
    let fr = mongodb::options::Collation::builder()
        .locale("fr")
        .strength(mongodb::options::CollationStrength::Secondary)
        .build();
    src.database("shop")
        .create_collection("people")
        .collation(fr)
        .await
        .unwrap();
    let people: Vec<Document> = (0..700)
        .map(|n| doc! { "_id": format!("{} {n:03}", ["émile", "Zoé", "andré", "Ève"][n % 4]), "n": n as i32 })
        .collect();
    for c in [&src, &dest] {
        c.database("shop")
            .collection::<Document>("people")
            .insert_many(people.clone())
            .await
            .unwrap();
    }
    dest.database("shop")
        .collection::<Document>("people")
        .delete_one(doc! { "_id": "Zoé 001" })
        .await
        .unwrap();

    let (report, diffs) = run_verify(&pair, options(VerifyMode::Full)).await;
    let s = summary(&diffs);
    assert_eq!(
        s,
        vec![
            (
                "shop.people".to_string(),
                DifferenceKind::MissingOnDestination,
                "\"Zoé 001\"".to_string()
            ),
            (
                "shop.people".to_string(),
                DifferenceKind::CollectionOptions,
                String::new()
            ),
            (
                "shop.people".to_string(),
                DifferenceKind::IndexOptions,
                "_id_".to_string()
            ),
        ],
        "{diffs:#?}"
    );
    let people = &report.namespaces[0];
    assert_eq!(people.documents_compared, 700);
    assert_eq!(people.destination_documents, Some(699));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_exits_0_1_or_2_and_streams_every_difference_to_ndjson() {
    let (pair, src, dest) = clusters().await;
    for c in [&src, &dest] {
        workload::seed(c, &ns("app.items"), 6000, 300)
            .await
            .unwrap();
        workload::seed(c, &ns("app.small"), 50, 300).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("differences.ndjson");
    let base = |extra: &[&str]| {
        let mut a = vec![
            "verify".to_string(),
            "--source".into(),
            pair.source.uri(),
            "--destination".into(),
            pair.destination.uri(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    let out = run_cli(&base(&[]), Duration::from_secs(120)).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("app.items"), "{}", out.stdout);
    assert!(out.stdout.contains("IDENTICAL"), "{}", out.stdout);

    // Most of one collection gone, plus one changed document: every
    // difference reaches the report, far more than the screen shows.
    dest.database("app")
        .collection::<Document>("items")
        .delete_many(doc! { "n": { "$lt": 5000_i64 } })
        .await
        .unwrap();
    dest.database("app")
        .collection::<Document>("small")
        .update_one(
            doc! { "_id": mixed_id(3) },
            doc! { "$set": { "address.city": "Nowhere" } },
        )
        .await
        .unwrap();
    let report_arg = report.display().to_string();
    let out = run_cli(&base(&["--report", &report_arg]), Duration::from_secs(120)).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("DIFFERENT"), "{}", out.stdout);
    let text = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<verify::Difference> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one difference"))
        .collect();
    assert_eq!(lines.len(), 5001, "{}", &text[..text.len().min(2000)]);
    assert_eq!(
        lines
            .iter()
            .filter(|d| d.kind == DifferenceKind::MissingOnDestination && d.namespace == "app.items")
            .count(),
        5000
    );
    let changed: Vec<_> = lines
        .iter()
        .filter(|d| d.kind == DifferenceKind::Different)
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].namespace, "app.small");
    assert_eq!(changed[0].field_paths, vec!["address.city"]);
    assert_eq!(changed[0].id, Some(id_json(3)));

    // --json: the report as one JSON object on stdout.
    let out = run_cli(
        &base(&["--json", "--mode", "quick", "--include", "app.items"]),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["mode"], "quick");
    assert_eq!(v["identical"], false);
    assert_eq!(v["differences"], 1);
    assert_eq!(v["samples"][0]["kind"], "count");
    assert_eq!(v["namespaces"].as_array().map(|a| a.len()), Some(1));

    // 2: it could not run, said in one sentence with what to do.
    let out = run_cli(
        &[
            "verify",
            "--source",
            &pair.source.uri(),
            "--destination",
            "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
        ],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    // One classified sentence about the destination, then what to do.
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("destination"),
        "{out:?}"
    );
    assert!(lines[0].trim_end().ends_with('.'), "{out:?}");
    let out = run_cli(
        &base(&["--include", "bad pattern"]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("not valid"), "{out:?}");
}

/// Starts a live verification of `include` in its own task.
async fn start_live(
    pair: &mongoferry::sandbox::Pair,
    include: &str,
) -> (
    tokio::sync::watch::Receiver<mongoferry::VerifyProgress>,
    tokio::task::JoinHandle<(
        mongoferry::Result<verify::VerifyReport>,
        Vec<verify::Difference>,
    )>,
) {
    let (s, d) = connect(pair).await;
    let verifier = Verifier::new(
        s,
        d,
        VerifyOptions {
            mode: VerifyMode::Full,
            include: vec![include.into()],
            partition_bytes: 128 * 1024,
            // A settle time well over the sync's lag on a loaded 2-core
            // box, or a write still in flight would count as a difference.
            live: Some(LiveOptions {
                recheck_interval_seconds: 2.0,
                settle_seconds: 15.0,
            }),
            ..VerifyOptions::default()
        },
    )
    .unwrap();
    let progress = verifier.watch_progress();
    let task = tokio::spawn(async move {
        let mut sink = VecSink::default();
        let r = verifier.run(&mut sink, &CancellationToken::new()).await;
        (r, sink.0)
    });
    (progress, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_verification_during_a_sync_converges_once_writes_stop() {
    let (pair, src, dest) = clusters().await;
    let nss: Vec<Namespace> = ["live.a", "live.b"].iter().map(|s| ns(s)).collect();
    seed_all(
        &src,
        &[(nss[0].clone(), 3000, 400), (nss[1].clone(), 3000, 400)],
    )
    .await;
    let (handle, run) =
        start_migration(SyncConfig::new(pair.source.uri(), pair.destination.uri())).await;
    wait_for(&handle, "canCommit", Duration::from_secs(120), |p| {
        p.can_commit
    })
    .await;
    // A real difference, which no change event will ever touch.
    dest.database("live")
        .collection::<Document>("a")
        .insert_one(doc! { "_id": "intruder" })
        .await
        .unwrap();

    let (stop, load) = start_load(&src, nss.clone(), 100_000, Some(400), 11);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Two verifications at once, under the same writes: one of the whole
    // database, one of the collection without the planted difference.
    let (progress, whole) = start_live(&pair, "live").await;
    let (_, clean) = start_live(&pair, "live.b").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !whole.is_finished() && !clean.is_finished(),
        "a live verification waits while writes go on"
    );
    stop.cancel();
    let stats = load.await.unwrap().unwrap();
    assert!(stats.total() > 100, "{stats:?}");

    let finish = |task: tokio::task::JoinHandle<_>| async move {
        let (result, diffs): (
            mongoferry::Result<verify::VerifyReport>,
            Vec<verify::Difference>,
        ) = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("the live verification converges once writes stop")
            .unwrap();
        (
            result.unwrap_or_else(|e| panic!("{e} {}", e.remedy())),
            diffs,
        )
    };
    let (report, diffs) = finish(clean).await;
    assert!(
        report.identical,
        "writes in flight must not be reported: {diffs:#?}"
    );
    assert!(report.live);
    assert!(
        report.sync_relaxations_allowed,
        "a migration is in progress"
    );
    assert!(report.rechecks > 0, "changed documents were compared again");
    assert!(report.documents_compared >= 3000, "{report:#?}");

    let (report, diffs) = finish(whole).await;
    assert_eq!(
        summary(&diffs),
        vec![(
            "live.a".to_string(),
            DifferenceKind::ExtraOnDestination,
            "\"intruder\"".to_string()
        )],
        "only the planted difference remains: {diffs:#?}"
    );
    assert!(report.rechecks > 0);
    assert_eq!(
        progress.borrow().phase,
        mongoferry::progress::VerifyPhase::Done
    );

    dest.database("live")
        .collection::<Document>("a")
        .delete_one(doc! { "_id": "intruder" })
        .await
        .unwrap();
    commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_verifies_by_default_and_shows_the_result_in_progress() {
    let (pair, src, dest) = clusters().await;
    build_corpus(&src).await;
    let (handle, run) =
        start_migration(SyncConfig::new(pair.source.uri(), pair.destination.uri())).await;
    let done = commit_and_wait(&handle, run, Duration::from_secs(180)).await;
    let v = done.verification.expect("a verification ran at commit");
    assert_eq!(v.state, VerificationState::Passed, "{v:#?}");
    // A small migration is verified in full by default.
    assert_eq!(v.mode, Some(VerifyMode::Full));
    let report = v.report.expect("the report is in progress");
    assert!(report.identical);
    assert!(
        !report.sync_relaxations_allowed,
        "after commit nothing is relaxed"
    );
    assert!(report.documents_compared >= 1500 + 300 + 400 + 900 + MIXED_DOCS + 200);
    assert_eq!(v.progress.phase, mongoferry::progress::VerifyPhase::Done);
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_verification_at_commit_fails_the_migration_and_says_how_to_see_why() {
    let (pair, src, dest) = clusters().await;
    workload::seed(&src, &ns("shop.orders"), 2000, 300)
        .await
        .unwrap();
    let (handle, run) =
        start_migration(SyncConfig::new(pair.source.uri(), pair.destination.uri())).await;
    wait_for(&handle, "canCommit", Duration::from_secs(120), |p| {
        p.can_commit
    })
    .await;
    // Someone writes to the destination behind the sync's back.
    dest.database("shop")
        .collection::<Document>("orders")
        .insert_one(doc! { "_id": "intruder", "total": 1 })
        .await
        .unwrap();
    handle
        .commit(CommitRequest {
            verify: mongoferry::migration::CommitVerify::Quick,
            ..Default::default()
        })
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the commit ends")
        .unwrap()
        .expect_err("a destination that differs must not be committed");
    assert_eq!(err.code(), "verification_failed", "{err}");
    assert!(err.to_string().contains("shop.orders"), "{err}");
    assert!(
        err.remedy().contains("mongoferry verify"),
        "{}",
        err.remedy()
    );
    let p = handle.progress();
    assert_eq!(p.state, State::Failed);
    let v = p.verification.expect("the verification is shown");
    assert_eq!(v.state, VerificationState::Failed);
    let report = v.report.expect("with its report");
    assert_eq!(report.samples[0].kind, DifferenceKind::Count);
    assert_eq!(report.samples[0].namespace, "shop.orders");
    let stored = stored_state(&dest).await.expect("the migration is stored");
    assert_ne!(stored.get_str("phase").unwrap(), "committed");
    drop(src);
}
