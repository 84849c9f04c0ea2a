//! The preflight compatibility check on real mongod: every check is
//! triggered by a cluster that has the problem and passes on one that
//! does not; `mongoferry check` exits 0, 1 or 2 with a table or JSON; and
//! `mongoferry sync` refuses to start on a blocker, writing nothing.

use mongoferry_test_support as support;

use std::time::{Duration, Instant};

use bson::{doc, Bson, Document, RawDocumentBuf};
use futures_util::{stream, StreamExt, TryStreamExt};
use mongodb::Client;
use mongoferry::cluster::Cluster;
use mongoferry::preflight::{self, privileges, CheckRequest, Severity};
use mongoferry::sandbox::{ReplicaSet, SandboxAuth, SandboxOptions};
use mongoferry::{Migration, Namespace, Phase, Role, State, SyncConfig};
use tokio_util::sync::CancellationToken;

use support::preflight::*;
use support::*;

const T: Duration = Duration::from_secs(60);

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn check_args(source: &str, destination: &str, extra: &[&str]) -> Vec<String> {
    let mut v = strings(&["check", "--source", source, "--destination", destination]);
    v.extend(strings(extra));
    v
}

async fn run_command(c: &Client, db: &str, cmd: Document) {
    c.database(db)
        .run_command(cmd.clone())
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clean_pair_passes_every_check_and_the_cli_says_ready() {
    let (pair, src, dest) = clusters().await;
    seed_all(
        &src,
        &[
            (Namespace::new("shop", "orders"), 3000, 400),
            (Namespace::new("crm", "contacts"), 500, 300),
        ],
    )
    .await;
    src.database("crm")
        .collection::<Document>("contacts")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "name": 1 })
                .build(),
        )
        .await
        .unwrap();
    let (s, d) = (pair.source.uri(), pair.destination.uri());

    // This machine's disk may itself be nearly full (a true low_space
    // warning by the default reserve of a tenth of the disk): state a
    // small reserve so that the verdict depends on the clusters only.
    let clean = CheckRequest {
        keep_free_bytes: Some(1024 * 1024),
        ..CheckRequest::default()
    };
    let r = check(&s, &d, clean).await;
    assert!(!r.has_blockers(), "{:#?}", summary(&r));
    assert_eq!(r.warnings().count(), 0, "{:#?}", summary(&r));
    assert_none(&r, PROBLEM_IDS);
    // Unauthenticated sandboxes: said, not hidden.
    assert_eq!(r.find("access_control_off").len(), 2, "{:#?}", summary(&r));
    // The real version pair passes.
    assert_eq!(r.source.version, "6.0.5");
    assert_eq!(
        r.source.feature_compatibility_version.as_deref(),
        Some("6.0")
    );
    assert_eq!(
        r.destination.feature_compatibility_version.as_deref(),
        Some("6.0")
    );
    assert_eq!(r.source.replica_set.as_deref(), Some("source"));
    // Totals, for ETAs.
    let t = &r.totals;
    assert_eq!(
        (t.databases, t.collections, t.views, t.documents),
        (2, 2, 0, 3500),
        "{t:?}"
    );
    assert!(t.data_bytes > 3000 * 400, "{t:?}");
    assert!(t.index_bytes > 0 && t.storage_bytes > 0, "{t:?}");
    assert!(r.oplog_window_seconds.is_some_and(|w| w > 0.0), "{r:?}");
    assert!(
        (r.estimated_copy_seconds - t.data_bytes as f64 / r.copy_bytes_per_second as f64).abs()
            < 1e-9
    );

    // Space: the probe reads the destination's real disk. Asking to keep
    // all of its free space free makes the copy not fit with room to
    // spare: the warning quotes the figures dbStats reports.
    let (total, used) = disk(&dest).await;
    assert!(total > 0 && used > 0 && used < total, "{total} {used}");
    let req = CheckRequest {
        keep_free_bytes: Some(total - used),
        ..CheckRequest::default()
    };
    let r = check(&s, &d, req).await;
    let low = the(&r, "low_space", None);
    assert_eq!(low.severity, Severity::Warning);
    let total_shown = format!("free of {}", preflight::human_bytes(total));
    assert!(
        low.detail.contains(&total_shown),
        "{} / {total_shown}",
        low.detail
    );

    // The CLI: a table that says ready (perhaps with a warning about this
    // machine's own disk), exit 0.
    let out = run_cli(&check_args(&s, &d, &[]), T).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("\nReady"), "{}", out.stdout);
    assert!(!out.stdout.contains("BLOCKERS"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("2 databases, 2 collections, 0 views, 3500 documents"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("INFO (2)"), "{}", out.stdout);
    // JSON with the documented shape.
    let out = run_cli(&check_args(&s, &d, &["--json", "--include", "shop"]), T).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["totals"]["documents"], 3000, "{v:#}");
    for key in [
        "databases",
        "collections",
        "documents",
        "dataBytes",
        "indexBytes",
    ] {
        assert!(v["totals"][key].is_u64(), "{key}: {v:#}");
    }
    for f in v["findings"].as_array().expect("findings") {
        for key in ["id", "severity", "title", "detail", "remedy"] {
            assert!(f[key].is_string(), "{key} in {f}");
        }
        assert!(
            ["blocker", "warning", "info"].contains(&f["severity"].as_str().unwrap()),
            "{f}"
        );
    }

    // Exit 2: the check itself could not run, with the error's sentence
    // and remedy, and no secret.
    let unreachable = "mongodb://u:s3cretPW@127.0.0.1:1/?serverSelectionTimeoutMS=1000";
    let out = run_cli(&check_args(&s, unreachable, &[]), T).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: The destination server at 127.0.0.1:1 refused the connection."),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("Check that mongod or mongos is running"),
        "{out:?}"
    );
    assert!(!out.all().contains("s3cretPW"), "{out:?}");
    let out = run_cli(&check_args(unreachable, &d, &["--json"]), T).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON error");
    assert_eq!(v["error"]["code"], "connection_refused", "{v:#}");
    let out = run_cli(&check_args(&s, &d, &["--include", "a b"]), T).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("is not valid"), "{out:?}");
    assert!(
        non_system_dbs(&dest).await.is_empty(),
        "the check wrote to the destination"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalones_and_a_cluster_migrated_onto_itself_are_blockers() {
    let (standalone, rs) = tokio::join!(Standalone::start(), replica_set("rs"));
    let sa = standalone.uri();
    let client = Client::with_uri_str(&sa).await.unwrap();
    client
        .database("app")
        .collection::<Document>("things")
        .insert_one(doc! { "a": 1 })
        .await
        .unwrap();

    let r = check(&sa, &rs.uri(), CheckRequest::default()).await;
    let f = the(&r, "source_standalone", None);
    assert_eq!(f.severity, Severity::Blocker);
    assert!(f.remedy.contains("--replSet"), "{}", f.remedy);
    assert_eq!(r.source.topology, "standalone");
    // No oplog to weigh: the topology finding says all there is.
    assert_none(
        &r,
        &[
            "oplog_unreadable",
            "oplog_window_too_short",
            "destination_standalone",
        ],
    );
    assert_eq!(r.totals.documents, 1);

    let r = check(&rs.uri(), &sa, CheckRequest::default()).await;
    assert_eq!(
        the(&r, "destination_standalone", None).severity,
        Severity::Blocker
    );
    assert_none(&r, &["source_standalone"]);

    let r = check(&rs.uri(), &rs.uri(), CheckRequest::default()).await;
    assert_eq!(the(&r, "same_cluster", None).severity, Severity::Blocker);

    let out = run_cli(&check_args(&sa, &rs.uri(), &[]), T).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("BLOCKERS (1)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("The source is a standalone server"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Not ready: 1 blocker must be fixed"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn feature_compatibility_versions_below_6_0_are_found() {
    let (pair, src, dest) = clusters().await;
    let (s, d) = (pair.source.uri(), pair.destination.uri());
    run_command(
        &src,
        "f",
        doc! { "create": "clustered", "clusteredIndex": { "key": { "_id": 1 }, "unique": true } },
    )
    .await;
    run_command(
        &src,
        "f",
        doc! { "create": "images", "changeStreamPreAndPostImages": { "enabled": true } },
    )
    .await;
    run_command(&src, "f", doc! { "create": "plain" }).await;
    run_command(
        &dest,
        "admin",
        doc! { "setFeatureCompatibilityVersion": "5.0" },
    )
    .await;

    let r = check(&s, &d, CheckRequest::default()).await;
    let fcv = the(&r, "destination_fcv_too_low", None);
    assert_eq!(fcv.severity, Severity::Blocker);
    assert!(fcv.title.contains("5.0"), "{}", fcv.title);
    assert_eq!(
        r.destination.feature_compatibility_version.as_deref(),
        Some("5.0")
    );
    // What the destination would refuse, by namespace, with the reason.
    let cl = the(&r, "unsupported_on_destination", Some("f.clustered"));
    assert!(
        cl.detail.contains("clustered collection (needs 5.3)"),
        "{}",
        cl.detail
    );
    let pp = the(&r, "unsupported_on_destination", Some("f.images"));
    assert!(
        pp.detail
            .contains("changeStreamPreAndPostImages option (needs 6.0)"),
        "{}",
        pp.detail
    );
    assert!(r
        .find("unsupported_on_destination")
        .iter()
        .all(|f| f.namespace.as_deref() != Some("f.plain")));
    // The destination really refuses them at that FCV.
    for cmd in [
        doc! { "create": "clustered", "clusteredIndex": { "key": { "_id": 1 }, "unique": true } },
        doc! { "create": "images", "changeStreamPreAndPostImages": { "enabled": true } },
    ] {
        assert!(
            dest.database("f").run_command(cmd.clone()).await.is_err(),
            "{cmd} was accepted"
        );
    }

    // An FCV 5.0 source: fine for the copy and the stream, but it cannot
    // block its writes at commit.
    let r = check(&d, &s, CheckRequest::default()).await;
    assert_none(&r, &["source_fcv_blocks_write_blocking"]);
    let req = CheckRequest {
        block_source_writes: true,
        ..CheckRequest::default()
    };
    let r = check(&d, &s, req).await;
    assert_eq!(
        the(&r, "source_fcv_blocks_write_blocking", None).severity,
        Severity::Blocker
    );
    let refused = dest
        .database("admin")
        .run_command(doc! { "setUserWriteBlockMode": 1, "global": true })
        .await;
    assert!(refused.is_err(), "the server blocked writes at FCV 5.0");

    // Back at 6.0, it passes.
    run_command(
        &dest,
        "admin",
        doc! { "setFeatureCompatibilityVersion": "6.0" },
    )
    .await;
    let r = check(&s, &d, CheckRequest::default()).await;
    assert_none(
        &r,
        &[
            "destination_fcv_too_low",
            "unsupported_on_destination",
            "fcv_older_than_source",
        ],
    );
    assert!(!r.has_blockers(), "{:#?}", summary(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_oplog_window_is_weighed_against_the_copy() {
    let (source, destination) = tokio::join!(
        ReplicaSet::start_with("source", &["--oplogSize", "1"]),
        ReplicaSet::start("destination"),
    );
    let (source, destination) = (source.unwrap(), destination.unwrap());
    let src = client(&source).await;
    // 8 MB through a 1 MB oplog: it is full and reaches back seconds.
    seed_all(&src, &[(Namespace::new("big", "a"), 8000, 1000)]).await;
    let (s, d) = (source.uri(), destination.uri());
    let with = |bytes_per_second: u64| CheckRequest {
        copy_bytes_per_second: bytes_per_second,
        ..CheckRequest::default()
    };

    // At 1 kB/s the copy takes over two hours: far past the window.
    let r = check(&s, &d, with(1000)).await;
    let short = the(&r, "oplog_window_too_short", None);
    assert_eq!(short.severity, Severity::Blocker);
    assert!(
        short.remedy.contains("replSetResizeOplog"),
        "{}",
        short.remedy
    );
    let window = r.oplog_window_seconds.expect("a window");
    assert!(window < 600.0, "a full 1 MB oplog reaches back {window} s");
    assert!(r.estimated_copy_seconds > window, "{r:?}");
    eprintln!("oplog window {window:.1} s; {}", short.detail);

    // A copy of about 90% of the window: tight. The window moves with the
    // source's writes (a no-op every 10 s), so measure it again each try.
    let data = r.totals.data_bytes;
    let mut window = window;
    let mut tight = false;
    for _ in 0..3 {
        let rate = (data as f64 / (0.9 * window)).ceil() as u64;
        let r = check(&s, &d, with(rate)).await;
        if !r.find("oplog_window_tight").is_empty() {
            assert_none(&r, &["oplog_window_too_short"]);
            tight = true;
            break;
        }
        window = r.oplog_window_seconds.expect("a window");
    }
    assert!(tight, "no tight-window warning at 90% of the window");

    // At 1 GB/s the copy takes milliseconds: it passes.
    let r = check(&s, &d, with(1_000_000_000)).await;
    assert_none(
        &r,
        &[
            "oplog_window_too_short",
            "oplog_window_tight",
            "oplog_unreadable",
        ],
    );
    assert!(!r.has_blockers(), "{:#?}", summary(&r));
}

/// Runs a migration of everything until it applies change events, then
/// interrupts it: the destination keeps its state, as after a crash.
async fn interrupted_migration(source: &str, destination: &str) -> Document {
    let cancel = CancellationToken::new();
    let migration = Migration::connect(SyncConfig::new(source, destination), cancel.clone())
        .await
        .expect("connect");
    let handle = migration.handle();
    let run = tokio::spawn(migration.run());
    wait_for(&handle, "the apply phase", T, |p| {
        p.phase == Phase::Applying
    })
    .await;
    cancel.cancel();
    let err = run.await.unwrap().expect_err("interrupted");
    assert_eq!(err.code(), "interrupted", "{err}");
    let dest = Client::with_uri_str(destination).await.unwrap();
    stored_state(&dest).await.expect("a stored migration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_destination_state_is_read_before_anything_is_written() {
    let (pair, other) = tokio::join!(pair(), replica_set("other"));
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    let (s, d) = (pair.source.uri(), pair.destination.uri());
    seed_all(&src, &[(Namespace::new("shop", "orders"), 200, 200)]).await;

    // A destination that already holds an in-scope collection.
    dest.database("shop")
        .collection::<Document>("orders")
        .insert_many(vec![
            doc! { "mine": 1 },
            doc! { "mine": 2 },
            doc! { "mine": 3 },
        ])
        .await
        .unwrap();
    let r = check(&s, &d, CheckRequest::default()).await;
    let f = the(&r, "destination_not_empty", Some("shop.orders"));
    assert_eq!(f.severity, Severity::Blocker);
    assert!(f.detail.contains("about 3 documents"), "{}", f.detail);
    let req = CheckRequest {
        drop_existing: true,
        ..CheckRequest::default()
    };
    let r = check(&s, &d, req).await;
    assert_eq!(
        the(&r, "destination_namespace_dropped", Some("shop.orders")).severity,
        Severity::Warning
    );
    assert!(!r.has_blockers(), "{:#?}", summary(&r));
    // Out of scope, it is no obstacle.
    let req = CheckRequest {
        include: strings(&["crm"]),
        ..CheckRequest::default()
    };
    assert_none(&check(&s, &d, req).await, &["destination_not_empty"]);
    dest.database("shop").drop().await.unwrap();

    // A migration interrupted while applying, as after a crash.
    let state = interrupted_migration(&s, &d).await;
    let id = state.get_str("migrationId").unwrap().to_string();
    let r = check(&s, &d, CheckRequest::default()).await;
    let resume = the(&r, "resume", None);
    assert_eq!(resume.severity, Severity::Info);
    assert!(resume.title.contains("applying"), "{}", resume.title);
    assert!(
        !r.has_blockers(),
        "its own collections are no obstacle: {:#?}",
        summary(&r)
    );

    // Another scope, or another source: blockers.
    let req = CheckRequest {
        include: strings(&["shop"]),
        ..CheckRequest::default()
    };
    let r = check(&s, &d, req).await;
    assert_eq!(the(&r, "scope_mismatch", None).severity, Severity::Blocker);
    let r = check(&other.uri(), &d, CheckRequest::default()).await;
    assert_eq!(the(&r, "source_mismatch", None).severity, Severity::Blocker);
    // --fresh: it will be discarded, with what it created.
    let req = CheckRequest {
        fresh: true,
        ..CheckRequest::default()
    };
    let r = check(&other.uri(), &d, req).await;
    let discarded = the(&r, "previous_migration_discarded", None);
    assert!(discarded.detail.contains(&id), "{}", discarded.detail);
    assert!(!r.has_blockers(), "{:#?}", summary(&r));

    // The engine refuses the same way, and `sync` writes nothing.
    let mut config = SyncConfig::new(s.clone(), d.clone());
    config.include = strings(&["shop"]);
    let m = Migration::connect(config, CancellationToken::new())
        .await
        .unwrap();
    let err = m.check().await.expect_err("a blocker");
    assert_eq!(err.code(), "preflight_blocked", "{err}");
    assert!(err.to_string().contains("different scope"), "{err}");
    let out = run_cli(
        &strings(&[
            "sync",
            "--source",
            &other.uri(),
            "--destination",
            &d,
            "--port",
            &api_port().to_string(),
        ]),
        T,
    )
    .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(lines[0].starts_with("error: The migration cannot start: The destination holds a migration from another source cluster."), "{out:?}");
    assert!(lines[0].contains("--fresh"), "{out:?}");
    let after = stored_state(&dest).await.expect("the state is still there");
    assert_eq!(after.get_str("migrationId").unwrap(), id);
    assert_eq!(
        after.get_datetime("updatedAt").unwrap(),
        state.get_datetime("updatedAt").unwrap(),
        "the state was not touched"
    );
}

/// A document with a field name twice, as some old drivers wrote them.
fn duplicate_fields(id: i32, value: &str) -> RawDocumentBuf {
    let mut d = RawDocumentBuf::new();
    d.append("_id", id);
    d.append("k", value);
    d.append("k", format!("{value}-again"));
    let mut nested = RawDocumentBuf::new();
    nested.append("x", 1);
    nested.append("x", 2);
    d.append("nested", nested);
    d
}

fn odd_names(id: i32) -> RawDocumentBuf {
    let mut d = RawDocumentBuf::new();
    d.append("_id", id);
    d.append("$price", 10);
    d.append("a.b", "dotted");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collection_kinds_indexes_and_documents_are_found_and_the_faithful_ones_migrate() {
    let (pair, src, dest) = clusters().await;
    let (s, d) = (pair.source.uri(), pair.destination.uri());
    // What the engine cannot migrate, or not faithfully, in "bad".
    run_command(
        &src,
        "bad",
        doc! { "create": "ts", "timeseries": { "timeField": "t" } },
    )
    .await;
    run_command(
        &src,
        "bad",
        doc! { "create": "enc", "encryptedFields": { "fields": [
            { "path": "ssn", "bsonType": "string", "keyId": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] } }
        ] } },
    )
    .await;
    run_command(
        &src,
        "bad",
        doc! { "createIndexes": "idx", "indexes": [
            { "key": { "email": 1 }, "name": "email_unique", "unique": true },
            { "key": { "email": 1 }, "name": "email_plain" },
        ] },
    )
    .await;
    run_command(&src, "bad", doc! { "createIndexes": "prep", "indexes": [{ "key": { "p": 1 }, "name": "p_1", "prepareUnique": true }] }).await;
    run_command(&src, "bad", doc! { "create": "secret" }).await;
    run_command(
        &src,
        "bad",
        doc! { "create": "v_out", "viewOn": "secret", "pipeline": [] },
    )
    .await;
    // What it handles specially, in "ok".
    run_command(
        &src,
        "ok",
        doc! { "create": "cl", "clusteredIndex": { "key": { "_id": 1 }, "unique": true }, "expireAfterSeconds": 3600 },
    )
    .await;
    run_command(
        &src,
        "ok",
        doc! { "create": "log", "capped": true, "size": 65536 },
    )
    .await;
    run_command(&src, "ok", doc! { "createIndexes": "ttl", "indexes": [{ "key": { "at": 1 }, "name": "at_1", "expireAfterSeconds": 3600 }] }).await;
    run_command(&src, "ok", doc! { "createIndexes": "uniq", "indexes": [{ "key": { "u": 1 }, "name": "u_1", "unique": true }] }).await;
    let now = bson::DateTime::now();
    src.database("ok")
        .collection::<Document>("cl")
        .insert_many((0..5).map(
            |i| doc! { "_id": bson::DateTime::from_millis(now.timestamp_millis() + i), "v": i },
        ))
        .await
        .unwrap();
    src.database("ok")
        .collection::<Document>("log")
        .insert_many((0..50).map(|i| doc! { "i": i }))
        .await
        .unwrap();
    src.database("ok")
        .collection::<Document>("ttl")
        .insert_one(doc! { "at": now })
        .await
        .unwrap();
    src.database("ok")
        .collection::<Document>("uniq")
        .insert_many((0..10).map(|i| doc! { "u": i }))
        .await
        .unwrap();
    // A document of 15.5 MiB: near the 16 MB limit.
    let big = "x".repeat(31 * 512 * 1024);
    src.database("ok")
        .collection::<Document>("big")
        .insert_one(doc! { "_id": "huge", "blob": &big })
        .await
        .unwrap();
    let fields = src.database("ok").collection::<RawDocumentBuf>("fields");
    fields.insert_one(duplicate_fields(1, "a")).await.unwrap();
    fields.insert_one(odd_names(2)).await.unwrap();

    let req = CheckRequest {
        exclude: strings(&["bad.secret"]),
        ..CheckRequest::default()
    };
    let r = check(&s, &d, req).await;
    let expect = [
        // Migrated live through the oplog, which auto reads for it.
        ("time_series_collection", Severity::Info, Some("bad.ts")),
        ("event_source", Severity::Info, None),
        ("queryable_encryption", Severity::Blocker, Some("bad.enc")),
        ("conflicting_indexes", Severity::Blocker, Some("bad.idx")),
        (
            "prepare_unique_not_kept",
            Severity::Warning,
            Some("bad.prep"),
        ),
        ("view_source_excluded", Severity::Warning, Some("bad.v_out")),
        (
            "duplicate_field_names",
            Severity::Warning,
            Some("ok.fields"),
        ),
        ("clustered_ttl", Severity::Info, Some("ok.cl")),
        ("capped_collection", Severity::Info, Some("ok.log")),
        ("large_document", Severity::Info, Some("ok.big")),
        ("dollar_field_names", Severity::Info, Some("ok.fields")),
        ("dotted_field_names", Severity::Info, Some("ok.fields")),
        ("ttl_index", Severity::Info, None),
        ("unique_index", Severity::Info, None),
    ];
    for (id, severity, ns) in expect {
        assert_eq!(the(&r, id, ns).severity, severity, "{id}");
    }
    assert_eq!(r.blockers().count(), 2, "{:#?}", summary(&r));
    let dup = the(&r, "duplicate_field_names", Some("ok.fields"));
    assert!(
        dup.detail.contains("_id 1") && dup.detail.contains("'k'"),
        "{}",
        dup.detail
    );
    assert!(the(&r, "dollar_field_names", None)
        .detail
        .contains("'$price'"));
    assert!(
        the(&r, "large_document", None).detail.contains("15.5 MiB"),
        "{}",
        the(&r, "large_document", None).detail
    );
    assert!(the(&r, "ttl_index", None).detail.contains("ok.ttl"));
    let unique = &the(&r, "unique_index", None).detail;
    assert!(
        unique.contains("bad.idx") && unique.contains("ok.uniq"),
        "{unique}"
    );
    let conflict = the(&r, "conflicting_indexes", None);
    assert!(
        conflict.title.contains("email_unique") && conflict.title.contains("email_plain"),
        "{}",
        conflict.title
    );
    // The relaxation it warns about is really refused by the server.
    let refused = dest
        .database("probe")
        .run_command(doc! { "createIndexes": "c", "indexes": [
            { "key": { "email": 1 }, "name": "email_unique" },
            { "key": { "email": 1 }, "name": "email_plain" },
        ] })
        .await;
    assert!(
        refused.is_err(),
        "two non-unique indexes on one key were accepted"
    );
    dest.database("probe").drop().await.unwrap();

    // Without "bad": no blocker, and what the findings call faithful
    // migrates byte for byte, including changes made during the sync.
    let mut config = SyncConfig::new(s.clone(), d.clone());
    config.exclude = strings(&["bad"]);
    let migration = Migration::connect(config, CancellationToken::new())
        .await
        .unwrap();
    let report = migration.check().await.expect("no blocker without bad");
    assert!(report.findings.iter().all(|f| !f
        .namespace
        .as_deref()
        .unwrap_or("")
        .starts_with("bad.")));
    let handle = migration.handle();
    let run = tokio::spawn(migration.run());
    wait_for(&handle, "the apply phase", T, |p| {
        p.phase == Phase::Applying
    })
    .await;
    src.database("ok")
        .collection::<Document>("big")
        .update_one(doc! { "_id": "huge" }, doc! { "$set": { "touched": true } })
        .await
        .unwrap();
    fields.insert_one(duplicate_fields(3, "b")).await.unwrap();
    fields.insert_one(odd_names(4)).await.unwrap();
    fields
        .replace_one(doc! { "_id": 1 }, duplicate_fields(1, "replaced"))
        .await
        .unwrap();
    src.database("ok")
        .collection::<Document>("log")
        .insert_one(doc! { "i": 50 })
        .await
        .unwrap();
    // A clustered TTL changed during sync: off on the destination until
    // commit, then the source's.
    run_command(
        &src,
        "ok",
        doc! { "collMod": "cl", "expireAfterSeconds": 7200 },
    )
    .await;
    let done = commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_eq!(done.state, State::Committed);
    src.database("bad").drop().await.unwrap();
    assert_same(&src, &dest).await;
    let cl = dest
        .database("ok")
        .list_collections()
        .filter(doc! { "name": "cl" })
        .await
        .unwrap()
        .try_next()
        .await
        .unwrap()
        .expect("ok.cl on the destination");
    assert_eq!(
        cl.options.expire_after_seconds,
        Some(Duration::from_secs(7200)),
        "the clustered TTL is restored at commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_refuses_on_blockers_and_shows_warnings_before_it_starts() {
    let (pair, src, dest) = clusters().await;
    let (s, d) = (pair.source.uri(), pair.destination.uri());
    seed_all(&src, &[(Namespace::new("shop", "orders"), 300, 200)]).await;
    run_command(
        &src,
        "m",
        doc! { "create": "metrics", "timeseries": { "timeField": "t" } },
    )
    .await;
    dest.database("shop")
        .collection::<Document>("orders")
        .insert_one(doc! { "mine": true })
        .await
        .unwrap();

    // `check`: exit 1, both blockers in the JSON. Change streams do not
    // report the writes to a time-series collection's buckets.
    let out = run_cli(
        &check_args(&s, &d, &["--json", "--event-source", "change-stream"]),
        T,
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let blockers: Vec<(&str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "blocker")
        .map(|f| (f["id"].as_str().unwrap(), f["namespace"].as_str().unwrap()))
        .collect();
    assert_eq!(
        blockers,
        vec![
            ("time_series_needs_oplog", "m.metrics"),
            ("destination_not_empty", "shop.orders")
        ]
    );

    // `sync`: one sentence naming both, nothing written.
    let port = api_port();
    let out = run_cli(
        &strings(&[
            "sync",
            "--source",
            &s,
            "--destination",
            &d,
            "--port",
            &port.to_string(),
            "--event-source",
            "change-stream",
        ]),
        T,
    )
    .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.trim().is_empty(), "{out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(
        lines[0].starts_with("error: The migration cannot start (2 blockers): "),
        "{out:?}"
    );
    assert!(
        lines[0].contains("shop.orders") && lines[0].contains("m.metrics"),
        "{out:?}"
    );
    assert!(lines[0].contains("mongoferry check"), "{out:?}");
    assert_eq!(
        non_system_dbs(&dest).await,
        vec!["shop".to_string()],
        "nothing but the user's own data"
    );
    assert_eq!(count(&dest, "shop", "orders").await, 1);

    // Fixed (excluded, and dropped on purpose): the warning is shown, and
    // the sync runs to its commit.
    let out = run_cli(
        &strings(&[
            "sync",
            "--source",
            &s,
            "--destination",
            &d,
            "--port",
            &port.to_string(),
            "--exclude",
            "m.metrics",
            "--event-source",
            "change-stream",
            "--drop-existing",
            "--commit-when-ready",
        ]),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("warning: shop.orders on the destination will be dropped. Back it up first"),
        "{out:?}"
    );
    assert!(out.stderr.contains("COMMITTED"), "{out:?}");
    assert_eq!(count(&dest, "shop", "orders").await, 300);
}

/// The source's operation counters: (commands, queries, getMores).
async fn op_counters(c: &Client) -> (i64, i64, i64) {
    let status = c
        .database("admin")
        .run_command(doc! { "serverStatus": 1 })
        .await
        .unwrap();
    let ops = status.get_document("opcounters").unwrap();
    let n = |k: &str| match ops.get(k) {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        other => panic!("opcounters.{k}: {other:?}"),
    };
    (n("command"), n("query"), n("getmore"))
}

/// The check's cost on the source is two cheap reads per collection
/// (`listIndexes`, a bounded `$sample`) and a few per database: no
/// `$collStats` or scan per collection where the databases' totals do.
/// Its speed is reported, not asserted; it is a figure for the bench.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_collections_are_checked_with_two_reads_each() {
    let (pair, src, _dest) = clusters().await;
    let started = Instant::now();
    let names: Vec<Namespace> = (0..1000)
        .map(|i| Namespace::new(format!("db{:02}", i % 20), format!("c{i:04}")))
        .collect();
    stream::iter(names)
        .map(|ns| {
            let src = src.clone();
            async move {
                let coll = src.database(&ns.db).collection::<Document>(&ns.coll);
                coll.insert_many(vec![doc! { "a": 1, "b": "x" }, doc! { "a": 2, "b": "y" }])
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!("1000 collections created in {:?}", started.elapsed());

    let source = Cluster::connect(Role::Source, &pair.source.uri())
        .await
        .unwrap();
    let destination = Cluster::connect(Role::Destination, &pair.destination.uri())
        .await
        .unwrap();
    let before = op_counters(&src).await;
    let t = Instant::now();
    let r = preflight::run(&source, &destination, &CheckRequest::default())
        .await
        .unwrap();
    let engine = t.elapsed();
    let after = op_counters(&src).await;
    assert_eq!(r.totals.collections, 1000);
    assert_eq!(r.totals.documents, 2000);
    assert_eq!(r.totals.databases, 20);
    assert!(!r.has_blockers(), "{:#?}", summary(&r));
    let (commands, queries, getmores) =
        (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    eprintln!(
        "preflight on the source: {commands} commands, {queries} queries, {getmores} getMores"
    );
    // 2 a collection, about 4 a database (listCollections, dbStats, ...),
    // and connection handshakes and heartbeats: 2,079 when written. One
    // more command a collection would be 3,000.
    assert!(
        (1000..=2 * 1000 + 5 * 20 + 100).contains(&commands),
        "{commands} commands for 1000 collections in 20 databases"
    );
    assert!(
        queries + getmores <= 20,
        "{queries} finds, {getmores} getMores"
    );
    let t = Instant::now();
    let out = run_cli(
        &check_args(&pair.source.uri(), &pair.destination.uri(), &[]),
        T,
    )
    .await;
    let cli = t.elapsed();
    assert_eq!(out.code, Some(0), "{out:?}");
    eprintln!(
        "BENCH preflight: 1000 collections in 20 databases checked in {} ms (engine); `mongoferry check` end to end {} ms",
        engine.as_millis(),
        cli.as_millis()
    );
}

/// The privileges of a built-in role, as the server defines it.
async fn role_privileges(c: &Client, role: &str) -> Vec<privileges::Privilege> {
    let r = c
        .database("admin")
        .run_command(doc! {
            "rolesInfo": { "role": role, "db": "admin" },
            "showPrivileges": true,
            "showBuiltinRoles": true,
        })
        .await
        .unwrap();
    let roles = r.get_array("roles").unwrap();
    let role = roles[0].as_document().unwrap();
    let privileges = role
        .get_array("inheritedPrivileges")
        .or_else(|_| role.get_array("privileges"))
        .unwrap();
    privileges
        .iter()
        .filter_map(privileges::parse_privilege)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_roles_the_findings_name_grant_what_they_are_named_for() {
    let rs = replica_set("roles").await;
    let c = client(&rs).await;
    let needs = privileges::Needs {
        source_dbs: strings(&["shop"]),
        source_sharded: false,
        destination_sharded: true,
        block_source_writes: true,
        reversible: true,
        discard_stored: true,
    };
    let sharded = privileges::Needs {
        source_sharded: true,
        ..needs.clone()
    };
    let mut checked = 0;
    for (side, needs) in [
        (Role::Source, &needs),
        (Role::Source, &sharded),
        (Role::Destination, &needs),
    ] {
        for need in privileges::required(side, needs) {
            let granted = role_privileges(&c, need.role).await;
            let missing = privileges::missing(&granted, &need);
            assert!(
                missing.is_empty(),
                "{} does not grant {missing:?} on {} ({side})",
                need.role,
                need.target
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn privileges_are_checked_on_auth_replica_sets_and_the_named_roles_suffice() {
    let auth = |name: &str| SandboxOptions {
        auth: Some(SandboxAuth {
            user: "root".into(),
            password: format!("root-{name}-pw"),
        }),
        ..SandboxOptions::default()
    };
    let (source, destination) = tokio::join!(
        ReplicaSet::start_opts("source", auth("source")),
        ReplicaSet::start_opts("destination", auth("destination")),
    );
    let (source, destination) = (
        source.unwrap_or_else(|e| panic!("{e} {}", e.remedy())),
        destination.unwrap_or_else(|e| panic!("{e} {}", e.remedy())),
    );
    let src = client(&source).await;
    let dest = client(&destination).await;
    seed_all(&src, &[(Namespace::new("shop", "orders"), 500, 200)]).await;
    let user_uri = |rs: &ReplicaSet, user: &str| {
        format!(
            "mongodb://{user}:{user}-pw@{}/?replicaSet={}&authSource=admin",
            rs.host(),
            rs.name
        )
    };
    let create = |c: &Client, user: &str, roles: Vec<Document>| {
        let c = c.clone();
        let user = user.to_string();
        async move {
            run_command(
                &c,
                "admin",
                doc! { "createUser": &user, "pwd": format!("{user}-pw"), "roles": roles },
            )
            .await;
        }
    };
    create(&src, "narrow", vec![doc! { "role": "read", "db": "shop" }]).await;
    create(
        &dest,
        "narrow",
        vec![doc! { "role": "readWrite", "db": "shop" }],
    )
    .await;
    create(
        &src,
        "mig",
        vec![
            doc! { "role": "readAnyDatabase", "db": "admin" },
            doc! { "role": "clusterMonitor", "db": "admin" },
            doc! { "role": "backup", "db": "admin" },
        ],
    )
    .await;
    create(
        &dest,
        "mig",
        vec![
            doc! { "role": "readWriteAnyDatabase", "db": "admin" },
            doc! { "role": "restore", "db": "admin" },
            doc! { "role": "dbAdminAnyDatabase", "db": "admin" },
            doc! { "role": "clusterMonitor", "db": "admin" },
        ],
    )
    .await;
    // An application user, without the right to write through a block.
    create(
        &src,
        "app",
        vec![doc! { "role": "readWrite", "db": "shop" }],
    )
    .await;

    // Narrow users: what is missing, named, with the role that grants it.
    let req = CheckRequest {
        block_source_writes: true,
        ..CheckRequest::default()
    };
    let r = check(
        &user_uri(&source, "narrow"),
        &user_uri(&destination, "narrow"),
        req.clone(),
    )
    .await;
    let src_missing = r
        .find("source_privileges_missing")
        .into_iter()
        .find(|f| f.remedy.contains("readAnyDatabase"))
        .unwrap_or_else(|| panic!("{:#?}", r.findings));
    assert_eq!(src_missing.severity, Severity::Blocker);
    assert!(
        src_missing
            .title
            .contains("find, changeStream on all databases"),
        "{}",
        src_missing.title
    );
    assert!(
        src_missing.remedy.contains("readAnyDatabase") && src_missing.remedy.contains("\"narrow\""),
        "{}",
        src_missing.remedy
    );
    assert!(
        src_missing.detail.contains("read@shop"),
        "{}",
        src_missing.detail
    );
    let write_block = r.find("source_privileges_missing").into_iter().any(|f| {
        f.title.contains("setUserWriteBlockMode on the cluster") && f.remedy.contains("backup")
    });
    assert!(write_block, "{:#?}", r.findings);
    assert_eq!(
        the(&r, "source_privileges_limited", None).severity,
        Severity::Warning
    );
    let dest_missing: Vec<_> = r.find("destination_privileges_missing");
    assert!(
        dest_missing.iter().any(|f| f
            .title
            .contains("collMod, bypassDocumentValidation on shop")
            && f.remedy.contains("restore")),
        "{dest_missing:#?}"
    );
    assert!(
        dest_missing
            .iter()
            .any(|f| f.title.contains("on __mongoferry")
                && f.remedy.contains("readWriteAnyDatabase")),
        "{dest_missing:#?}"
    );
    // Without a user at all: refused up front.
    let r = check(
        &source.uri_without_credentials(),
        &user_uri(&destination, "mig"),
        CheckRequest::default(),
    )
    .await;
    assert_eq!(
        the(&r, "not_authenticated", None).severity,
        Severity::Blocker
    );

    // The roles the findings name: no privilege finding at all, and a
    // whole migration, write blocking included, runs with them.
    let (s, d) = (user_uri(&source, "mig"), user_uri(&destination, "mig"));
    let r = check(&s, &d, req).await;
    assert_none(
        &r,
        &[
            "source_privileges_missing",
            "source_privileges_limited",
            "destination_privileges_missing",
            "destination_privileges_limited",
            "access_control_off",
            "not_authenticated",
            "privileges_unreadable",
            "fcv_unreadable",
            "oplog_unreadable",
            "space_unknown",
        ],
    );
    assert!(!r.has_blockers(), "{:#?}", summary(&r));
    let mut config = SyncConfig::new(s, d);
    config.block_source_writes = true;
    let migration = Migration::connect(config, CancellationToken::new())
        .await
        .unwrap();
    migration.check().await.expect("no blocker");
    let handle = migration.handle();
    let run = tokio::spawn(migration.run());
    wait_for(&handle, "canCommit", T, |p| p.can_commit).await;
    handle
        .commit(mongoferry::CommitRequest {
            block_source_writes: true,
            ..Default::default()
        })
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("commit in time")
        .unwrap()
        .expect("the migration commits with the named roles");
    assert_eq!(done.state, State::Committed);
    let app = Client::with_uri_str(user_uri(&source, "app"))
        .await
        .unwrap();
    let blocked = app
        .database("shop")
        .collection::<Document>("orders")
        .insert_one(doc! { "late": true })
        .await
        .expect_err("the source's writes are blocked");
    assert!(blocked.to_string().contains("blocked"), "{blocked}");
    run_command(
        &src,
        "admin",
        doc! { "setUserWriteBlockMode": 1, "global": false },
    )
    .await;
    assert_same(&src, &dest).await;
}
