//! The shell's state driven without a window (as yaak's host test does):
//! the sandbox starts real replica sets with data and a write load, and a
//! migration started through `AppState` syncs, commits, verifies, and is
//! offered for resume only while unfinished, its load level set at the
//! start and changed live; and the wizard's scope tree
//! shows a time-series collection as one node, counted in measurements,
//! with its buckets folded into it rather than listed on their own.

use std::time::{Duration, Instant};

use bson::{doc, Document};
use mongoferry::catalog::NsKind;
use mongoferry::preflight::inventory::Measurements;
use mongoferry::sandbox::ReplicaSet;
use mongoferry::{CommitRequest, CommitVerify, Event, LoadLevel, LoadSetting, Progress, State};
use mongoferry_desktop::commands::types::ScopeRequest;
use mongoferry_desktop::commands::types::StartSyncRequest;
use mongoferry_desktop::ops;
use mongoferry_desktop::progress::Sink;
use mongoferry_desktop::session::SessionFile;
use mongoferry_desktop::state::AppState;

#[derive(Clone, Default)]
struct Events(std::sync::Arc<std::sync::Mutex<Vec<Event>>>);

impl Sink<Event> for Events {
    fn send(&self, event: Event) -> bool {
        self.0.lock().map(|mut v| v.push(event)).is_ok()
    }
}

#[derive(Clone, Default)]
struct Counter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Sink<mongoferry::VerifyProgress> for Counter {
    fn send(&self, _: mongoferry::VerifyProgress) -> bool {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        true
    }
}

async fn wait_for(state: &AppState, what: &str, f: impl Fn(&Progress) -> bool) -> Progress {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let p = state.progress().await.expect("progress");
        assert!(
            p.state != State::Failed,
            "failed while waiting for {what}: {:?}",
            p.error
        );
        if f(&p) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {p:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sandbox_migration_through_the_shell_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let state = AppState::new(SessionFile::new(dir.path())).with_log_dir(logs.clone());

    let sandbox = match state.start_sandbox().await {
        Ok(s) => s,
        Err(e) => panic!("{} {}", e.message, e.remedy),
    };
    assert!(sandbox.write_load_running);
    let source = mongodb::Client::with_uri_str(&sandbox.source_uri)
        .await
        .expect("source client");
    let orders = source.database("shop").collection::<Document>("orders");
    let before = orders.count_documents(doc! {}).await.expect("count");
    assert!(before >= 30_000, "seeded: {before}");
    // The write load is running.
    let ops = |c: &mongodb::Client| {
        let c = c.clone();
        async move {
            let status = c
                .database("admin")
                .run_command(doc! { "serverStatus": 1 })
                .await
                .expect("serverStatus");
            let o = status.get_document("opcounters").expect("opcounters");
            ["insert", "update", "delete"]
                .iter()
                .map(|k| mongoferry::catalog::number(o.get(*k)))
                .sum::<u64>()
        }
    };
    let first = ops(&source).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(ops(&source).await > first + 20, "the write load writes");
    assert_eq!(
        state.start_sandbox().await.expect("second call").source_uri,
        sandbox.source_uri,
        "a second call returns the running sandbox"
    );

    // No migration yet: a load change says so.
    let refused = state
        .set_load(LoadSetting::fixed(LoadLevel::Gentle))
        .await
        .err()
        .map(|e| e.code);
    assert_eq!(refused.as_deref(), Some("no_migration"));

    // A migration through the shell, observed through an event sink. It
    // starts gentle, as a DBA would in business hours.
    let started = state
        .start_sync(StartSyncRequest {
            source_uri: sandbox.source_uri.clone(),
            destination_uri: sandbox.destination_uri.clone(),
            include: vec!["shop".into()],
            exclude: vec![],
            drop_existing: false,
            event_source: mongoferry::EventSourceChoice::Auto,
            source_profile: None,
            destination_profile: None,
            load: Some(serde_json::json!({ "level": "gentle" })),
        })
        .await
        .expect("start");
    assert!(!started.resumed && started.remembered);
    let events = Events::default();
    state.watch(events.clone()).await.expect("watch");
    let level = |p: &Progress| p.load.as_ref().map(|l| l.setting.level);
    let gentle = wait_for(&state, "the gentle level", |p| {
        level(p) == Some(LoadLevel::Gentle)
    })
    .await;
    let cap = gentle.load.as_ref().and_then(|l| l.bytes_per_second);
    assert_eq!(cap, Some(5.0 * 1024.0 * 1024.0), "{:?}", gentle.load);
    // Turned up live, as at night: no cap, and progress says so.
    let full = state
        .set_load(LoadSetting::fixed(LoadLevel::Full))
        .await
        .expect("set the load to full");
    assert_eq!(full.bytes_per_second, None);
    assert_eq!(
        level(&state.progress().await.expect("progress")),
        Some(LoadLevel::Full)
    );
    wait_for(&state, "the copy", |p| p.can_commit).await;
    assert!(
        state.find_resumable().await.is_none(),
        "no offer while this window runs the migration"
    );
    state.stop_sandbox_load().await.expect("stop the load");
    state
        .commit(CommitRequest {
            block_source_writes: false,
            verify: CommitVerify::Full,
        })
        .await
        .expect("commit");
    let committed = wait_for(&state, "the commit", |p| p.state == State::Committed).await;
    // The migration's log: opened before the preflight, named by its id.
    let log = state.log_path().await.expect("the migration has a log");
    assert_eq!(log, logs.join(format!("{}.log", committed.migration_id)));
    assert!(log.is_file(), "{}", log.display());
    // A committed migration takes no load level: the engine's refusal.
    let refused = state
        .set_load(LoadSetting::fixed(LoadLevel::Gentle))
        .await
        .err()
        .map(|e| e.code);
    assert_eq!(refused.as_deref(), Some("invalid_state"));
    let counter = Counter::default();
    let outcome = state
        .verify(mongoferry::verify::VerifyMode::Full, counter.clone())
        .await
        .expect("verification");
    assert!(outcome.report.identical, "{:?}", outcome.report);
    assert!(outcome.report.documents_compared >= 52_000);
    assert!(
        counter.0.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "verification progress was sent"
    );
    let seen = events.0.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(seen.iter().any(|e| matches!(
        e,
        Event::StateChanged {
            to: State::Committed,
            ..
        }
    )));
    let snapshots = seen
        .iter()
        .filter(|e| matches!(e, Event::Progress(_)))
        .count();
    assert!(snapshots > 3, "progress was pushed: {snapshots}");

    // A fresh window (new state, same data dir) offers nothing: committed.
    let reopened = AppState::new(SessionFile::new(dir.path()));
    assert!(reopened.find_resumable().await.is_none());
    state.shutdown().await;
}

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
