//! The shell's state driven without a window (as yaak's host test does):
//! the sandbox starts real replica sets with data and a write load, and a
//! migration started through `AppState` syncs, commits, verifies, and is
//! offered for resume only while unfinished, its load level set at the
//! start and changed live; a reversible migration is committed, reopened
//! in a new window still waiting for its reverse, reversed, reopened
//! mid-reverse, committed back, and then verified the other way round;
//! and the
//! wizard's scope tree shows a time-series collection as one node,
//! counted in measurements, with its buckets folded into it rather than
//! listed on their own.

use std::time::{Duration, Instant};

use bson::{doc, Document};
use mongoferry::catalog::NsKind;
use mongoferry::preflight::inventory::Measurements;
use mongoferry::sandbox::{ReplicaSet, SandboxAuth, SandboxOptions};
use mongoferry::{CommitRequest, CommitVerify, Event, LoadLevel, LoadSetting, Progress, State};
use mongoferry_desktop::commands::types::StartSyncRequest;
use mongoferry_desktop::commands::types::{PreflightRequest, SaveProfileRequest, ScopeRequest};
use mongoferry_desktop::ops;
use mongoferry_desktop::profiles;
use mongoferry_desktop::progress::Sink;
use mongoferry_desktop::session::SessionFile;
use mongoferry_desktop::state::{runs_back, AppState};

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
    // The app's own subscriber, which writes each migration's log.
    static LOGGING: std::sync::Once = std::sync::Once::new();
    LOGGING.call_once(mongoferry_desktop::log::init);
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
            reversible: false,
        })
        .await
        .expect("start");
    assert!(!started.resumed && started.remembered);
    let events = Events::default();
    let first = state.watch(events.clone()).await.expect("watch");
    // The engine names the clusters as the window gave them: forward.
    let mapping = first.direction_mapping.as_ref().expect("a direction");
    assert!(mapping.source.starts_with("cluster0: "), "{mapping:?}");
    assert!(!runs_back(&first) && !first.reversible, "{first:#?}");
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
    // Started without a way back: the engine refuses to reverse it.
    let refused = state.reverse().await.err().map(|e| e.code);
    assert_eq!(refused.as_deref(), Some("not_reversible"));
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
    // The exported report carries the migration's log with it.
    let exported = logs.join("report.json");
    state
        .export_verification(&exported)
        .await
        .expect("export the report");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&exported).expect("read the report"))
            .expect("the report is JSON");
    assert_eq!(report["report"]["identical"], true, "{report:#}");
    assert_eq!(report["logPath"], log.display().to_string());
    let logged = report["log"].as_array().expect("the log's events");
    let said = |m: &str| {
        logged
            .iter()
            .any(|e| e["fields"]["message"].as_str() == Some(m))
    };
    assert!(
        said("preflight report") && said("committed") && said("migration ended"),
        "{logged:#?}"
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

/// A replica set; with `password`, with access control and a root user.
async fn replica_set(name: &str, password: Option<&str>) -> ReplicaSet {
    let options = SandboxOptions {
        auth: password.map(|p| SandboxAuth {
            user: "root".into(),
            password: p.into(),
        }),
        ..SandboxOptions::default()
    };
    match ReplicaSet::start_opts(name, options).await {
        Ok(rs) => rs,
        Err(e) => panic!("{} {}", e, e.remedy()),
    }
}

fn start_request(source: &ReplicaSet, destination: &ReplicaSet) -> StartSyncRequest {
    StartSyncRequest {
        source_uri: source.uri(),
        destination_uri: destination.uri(),
        include: vec![],
        exclude: vec![],
        drop_existing: false,
        event_source: mongoferry::EventSourceChoice::Auto,
        source_profile: None,
        destination_profile: None,
        load: None,
        reversible: true,
    }
}

/// This test's profile names: one per side, unique to the process.
fn profile_names() -> [String; 2] {
    let id = std::process::id();
    [format!("shell-old-{id}"), format!("shell-new-{id}")]
}

/// The request as the wizard sends it for two saved profiles: each
/// connection string redacted, and the profile it came from.
async fn from_profiles(mut request: StartSyncRequest) -> StartSyncRequest {
    let [old, new] = profile_names();
    for (name, uri, profile) in [
        (old, &mut request.source_uri, &mut request.source_profile),
        (
            new,
            &mut request.destination_uri,
            &mut request.destination_profile,
        ),
    ] {
        let saved = profiles::save(SaveProfileRequest {
            name: name.clone(),
            uri: uri.clone(),
            replace: true,
            profile: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{} {}", e.message, e.remedy));
        *uri = saved.display_uri;
        *profile = Some(name);
    }
    request
}

/// Commits once the engine can, and waits for COMMITTED.
async fn commit(state: &AppState) -> Progress {
    wait_for(state, "canCommit", |p| p.can_commit).await;
    state
        .commit(CommitRequest {
            block_source_writes: false,
            verify: CommitVerify::Full,
        })
        .await
        .expect("commit");
    wait_for(state, "the commit", |p| p.state == State::Committed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reversible_migration_through_the_shell_state() {
    // Its clusters come from saved profiles, as a resumable migration's
    // credentials must (a typed-in password is never remembered). The
    // profile store reads its directory from the environment, set first,
    // before any thread of this test reads it; no other test here does.
    let profile_dir = tempfile::tempdir().expect("temp dir");
    std::env::set_var("MONGOFERRY_CONFIG_DIR", profile_dir.path());
    let dir = tempfile::tempdir().expect("temp dir");
    let state = AppState::new(SessionFile::new(dir.path())).with_log_dir(dir.path().join("logs"));
    let old_rs = replica_set("shellold", Some("0ld-pw")).await;
    let open_rs = replica_set("shellopen", None).await;
    let old = old_rs.client().await.expect("old client");
    old.database("shop")
        .collection::<Document>("orders")
        .insert_many((0..500).map(|i| doc! { "_id": i, "n": i }))
        .await
        .expect("seed");

    // A destination without access control cannot keep a way back: the
    // engine's preflight refusal reaches the wizard as its sentence and
    // its remedy, and nothing starts.
    let refused = state
        .start_sync(start_request(&old_rs, &open_rs))
        .await
        .expect_err("no way back onto a cluster without access control");
    assert_eq!(refused.code, "preflight_blocked", "{refused:?}");
    assert_eq!(
        refused.message,
        "The migration cannot start: The destination does not enforce access control, so a reversible migration cannot write back to it."
    );
    assert!(
        refused
            .remedy
            .starts_with("Enable authentication on the destination"),
        "{}",
        refused.remedy
    );
    assert_eq!(
        state.progress().await.err().map(|e| e.code).as_deref(),
        Some("no_migration")
    );
    // The Compatibility step's check, asked for a way back, names it.
    let report = ops::preflight(PreflightRequest {
        source_uri: old_rs.uri(),
        destination_uri: open_rs.uri(),
        include: vec![],
        exclude: vec![],
        event_source: mongoferry::EventSourceChoice::Auto,
        source_profile: None,
        destination_profile: None,
        reversible: true,
    })
    .await
    .unwrap_or_else(|e| panic!("{} {}", e.message, e.remedy));
    let blockers: Vec<&str> = report.blockers().map(|f| f.id.as_str()).collect();
    assert_eq!(blockers, ["reversible_needs_access_control"]);

    let new_rs = replica_set("shellnew", Some("n3w-pw")).await;
    let new = new_rs.client().await.expect("new client");
    let request = from_profiles(start_request(&old_rs, &new_rs)).await;
    let started = state
        .start_sync(request)
        .await
        .unwrap_or_else(|e| panic!("{} {}", e.message, e.remedy));
    assert!(started.remembered, "{started:?}");
    let events = Events::default();
    state.watch(events.clone()).await.expect("watch");
    wait_for(&state, "the engine to say it keeps a way back", |p| {
        p.reversible
    })
    .await;
    let forward = commit(&state).await;
    assert!(forward.reversible && !runs_back(&forward), "{forward:#?}");

    // The window closes while the migration waits for a reverse: a new
    // one offers it again, and reopens it COMMITTED, Reverse available.
    state.shutdown().await;
    let state = reopen_and_resume(dir.path(), ("committed", false), &forward.migration_id).await;
    let reopened = wait_for(&state, "the reopened migration", |p| {
        p.state == State::Committed
    })
    .await;
    assert!(
        reopened.reversible && !runs_back(&reopened),
        "{reopened:#?}"
    );
    let events = Events::default();
    state.watch(events.clone()).await.expect("watch");

    // The applications move to the new cluster, then change their minds.
    new.database("shop")
        .collection::<Document>("orders")
        .insert_many((500..600).map(|i| doc! { "_id": i, "n": i }))
        .await
        .expect("write to the new cluster");
    let reversing = state.reverse().await.expect("reverse");
    assert_eq!(reversing.state, State::Reversing, "{reversing:#?}");
    // Asked twice: the engine takes it as the same reverse, and the shell
    // turns its clusters once.
    state.reverse().await.expect("reverse asked again");
    let back = wait_for(&state, "the reverse to run", |p| {
        p.state == State::Running && p.migration_id != forward.migration_id
    })
    .await;
    let seen = events.0.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(
        seen.iter().any(|e| matches!(
            e,
            Event::StateChanged {
                to: State::Reversing,
                ..
            }
        )),
        "REVERSING was pushed to the window"
    );
    assert!(back.reversible && runs_back(&back), "{back:#?}");
    let mapping = back.direction_mapping.as_ref().expect("a direction");
    assert_eq!(
        mapping.source,
        format!("cluster1: {}", new_rs.host()),
        "{mapping:?}"
    );
    wait_for(&state, "the reverse to catch up", |p| p.can_commit).await;

    // The window closes mid-reverse, and the new cluster changes on: a new
    // window offers the reverse, and resumes it the same way round.
    state.shutdown().await;
    new.database("shop")
        .collection::<Document>("orders")
        .insert_many((600..650).map(|i| doc! { "_id": i, "n": i }))
        .await
        .expect("write to the new cluster");
    let state = reopen_and_resume(dir.path(), ("syncing", true), &back.migration_id).await;
    let resumed = wait_for(&state, "the resumed reverse", |p| {
        p.state == State::Running && p.reversible
    })
    .await;
    assert!(runs_back(&resumed), "{resumed:#?}");
    let committed = commit(&state).await;
    assert_eq!(committed.migration_id, back.migration_id);
    let count = old
        .database("shop")
        .collection::<Document>("orders")
        .count_documents(doc! {})
        .await
        .expect("count");
    assert_eq!(
        count, 650,
        "the new cluster's writes are back on the old one"
    );

    // The Validate step now compares the old cluster with the new, its
    // source.
    let outcome = state
        .verify(mongoferry::verify::VerifyMode::Full, Counter::default())
        .await
        .expect("verification");
    assert!(outcome.report.identical, "{:?}", outcome.report);
    assert!(
        outcome.report.source.contains(&new_rs.host()),
        "the reverse's source is the new cluster: {}",
        outcome.report.source
    );
    // And the way back is itself reversible.
    let again = state.reverse().await.expect("reverse the reverse");
    assert_eq!(again.state, State::Reversing);
    let forth = wait_for(&state, "the second reverse to run", |p| {
        p.state == State::Running && p.migration_id != back.migration_id
    })
    .await;
    assert!(!runs_back(&forth), "{forth:#?}");
    state.shutdown().await;
    let store = mongoferry::connection::ProfileStore::open_default().expect("profile store");
    for name in profile_names() {
        let _ = store.remove(&name);
    }
}

/// A new window, the last one closed: it offers the remembered migration
/// `id` in `phase`, the way back or not (`offer`), and resumes it.
async fn reopen_and_resume(dir: &std::path::Path, offer: (&str, bool), id: &str) -> AppState {
    let state = AppState::new(SessionFile::new(dir)).with_log_dir(dir.join("logs"));
    let found = state
        .find_resumable()
        .await
        .unwrap_or_else(|| panic!("no resume offer; expected {offer:?}"));
    assert_eq!((found.phase.as_str(), found.reversed), offer, "{found:?}");
    assert_eq!(found.migration_id, id);
    state
        .resume_remembered()
        .await
        .unwrap_or_else(|e| panic!("{} {}", e.message, e.remedy));
    state
}
