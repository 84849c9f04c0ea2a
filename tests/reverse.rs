//! A way back after cutover (issue 15): a reversible migration's commit
//! blocks the old cluster's user writes and records where the new
//! cluster's changes start; `reverse` then syncs every write made on the
//! new cluster back to the old one, and committing the reverse makes the
//! old cluster current again, byte-equal to the new one.
//!
//! Real replica sets; fails (never skips) when mongod is missing.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use mongoferry::sandbox::ReplicaSet;
use mongoferry::{
    CommitRequest, CommitVerify, Event, MigrationHandle, Namespace, Phase, Progress, State,
    SyncConfig,
};
use support::tls::root_auth;
use support::*;

const T: Duration = Duration::from_secs(180);

fn ns(s: &str) -> Namespace {
    Namespace::parse(s).expect("a namespace")
}

/// `serverStatus().repl.userWriteBlockMode`: 1 open, 2 blocked.
async fn write_block_mode(c: &Client) -> i64 {
    let status = c
        .database("admin")
        .run_command(doc! { "serverStatus": 1 })
        .await
        .expect("serverStatus");
    let repl = status.get_document("repl").expect("repl section");
    match repl.get("userWriteBlockMode") {
        Some(bson::Bson::Int32(i)) => i64::from(*i),
        Some(bson::Bson::Int64(i)) => *i,
        other => panic!("no userWriteBlockMode: {other:?}"),
    }
}

/// Commits once `canCommit` and waits for COMMITTED; the run goes on,
/// waiting for a reverse.
async fn commit(handle: &MigrationHandle) -> Progress {
    wait_for(handle, "canCommit", T, |p| p.can_commit).await;
    handle
        .commit(CommitRequest {
            verify: CommitVerify::Full,
            ..CommitRequest::default()
        })
        .expect("commit accepted");
    let p = wait_for(handle, "COMMITTED", T, |p| {
        if p.state == State::Failed {
            eprintln!("{:#?}", p.verification);
        }
        p.state == State::Committed
    })
    .await;
    assert!(p.can_write, "{p:#?}");
    let verified = p.verification.as_ref().expect("the commit verified");
    assert!(
        verified.report.as_ref().is_some_and(|r| r.identical),
        "{verified:#?}"
    );
    p
}

/// Users with a unique email, and sessions with a TTL on `at`.
async fn seed_indexed(c: &Client) {
    let users = c.database("shop").collection::<Document>("users");
    users
        .insert_many((0..200).map(|i| doc! { "_id": i, "email": format!("u{i}@example.com") }))
        .await
        .expect("insert users");
    users
        .create_index(
            IndexModel::builder()
                .keys(doc! { "email": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .expect("unique index");
    let sessions = c.database("shop").collection::<Document>("sessions");
    sessions
        .insert_many((0..50).map(|i| doc! { "_id": i, "at": bson::DateTime::now() }))
        .await
        .expect("insert sessions");
    sessions
        .create_index(
            IndexModel::builder()
                .keys(doc! { "at": 1 })
                .options(
                    IndexOptions::builder()
                        .expire_after(Duration::from_secs(3600))
                        .build(),
                )
                .build(),
        )
        .await
        .expect("TTL index");
}

/// What the applications do on the new cluster after the cutover,
/// besides a write load: DDL, a unique value swapped between two users in
/// a transaction, and a session the old cluster's TTL would delete.
async fn use_the_new_cluster(new: &Client) {
    let shop = new.database("shop");
    shop.collection::<Document>("orders")
        .create_index(IndexModel::builder().keys(doc! { "n": -1 }).build())
        .await
        .expect("create an index");
    shop.create_collection("returns")
        .await
        .expect("create a collection");
    shop.collection::<Document>("returns")
        .insert_many((0..20).map(|i| doc! { "_id": i, "order": i * 3 }))
        .await
        .expect("insert returns");
    shop.collection::<Document>("customers")
        .drop()
        .await
        .expect("drop a collection");

    // u1 and u2 swap emails: the unique index holds at every commit, but
    // the reverse sees three updates whose middle one, alone, collides.
    let users = shop.collection::<Document>("users");
    let mut session = new.start_session().await.expect("a session");
    session.start_transaction().await.expect("a transaction");
    for (id, email) in [
        (1, "swap@example.com"),
        (2, "u1@example.com"),
        (1, "u2@example.com"),
    ] {
        users
            .update_one(doc! { "_id": id }, doc! { "$set": { "email": email } })
            .session(&mut session)
            .await
            .expect("swap emails");
    }
    session.commit_transaction().await.expect("commit the swap");

    // The new cluster keeps sessions ten days; the old one's TTL (an hour)
    // would delete this one, which is two hours old.
    new.database("shop")
        .run_command(doc! { "collMod": "sessions", "index": { "keyPattern": { "at": 1 }, "expireAfterSeconds": 864_000 } })
        .await
        .expect("lengthen the TTL");
    let two_hours_ago =
        bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 7_200_000);
    shop.collection::<Document>("sessions")
        .insert_one(doc! { "_id": "kept", "at": two_hours_ago })
        .await
        .expect("insert an old session");
}

/// Two replica sets with access control, as a reversible migration
/// needs: only an authenticated user with `restore` (root here) writes
/// past the old cluster's write block.
async fn guarded(tag: &str) -> (ReplicaSet, ReplicaSet, Client, Client) {
    let old_rs =
        support::tls::replica_set(&format!("{tag}old"), None, Some(root_auth("0ld-pw"))).await;
    let new_rs =
        support::tls::replica_set(&format!("{tag}new"), None, Some(root_auth("n3w-pw"))).await;
    let old = old_rs.client().await.expect("old client");
    let new = new_rs.client().await.expect("new client");
    (old_rs, new_rs, old, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reversed_migration_brings_every_write_made_on_the_new_cluster_back() {
    let (old_rs, new_rs, old, new) = guarded("back").await;
    let orders = ns("shop.orders");
    seed_all(
        &old,
        &[
            (orders.clone(), 3_000, 300),
            (ns("shop.customers"), 500, 200),
        ],
    )
    .await;
    seed_indexed(&old).await;

    let mut config = SyncConfig::new(old_rs.uri(), new_rs.uri());
    config.reversible = true;
    let (handle, run) = start_migration(config).await;
    let (stop, load) = start_load(&old, vec![orders.clone()], 3_000, Some(200), 1);
    wait_for(&handle, "the sync", T, |p| p.phase == Phase::Applying).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    load.await
        .expect("load task")
        .expect("load on the old cluster");
    let forward = commit(&handle).await;
    let forward_id = forward.migration_id.clone();
    assert!(forward.reversible, "{forward:#?}");
    let mapping = forward.direction_mapping.clone().expect("a direction");
    assert!(
        mapping.source.starts_with("cluster0: ") && mapping.destination.starts_with("cluster1: "),
        "{mapping:?}"
    );
    assert!(forward.collection_copy.copied_docs > 0, "{forward:#?}");

    // The old cluster is closed to the applications and equals the new.
    assert_eq!(
        write_block_mode(&old).await,
        2,
        "the old cluster is blocked"
    );
    assert_eq!(write_block_mode(&new).await, 1, "the new cluster is open");
    assert_same(&old, &new).await;

    // The applications move to the new cluster.
    let (stop, load) = start_load(&new, vec![orders.clone()], 1_000_000, Some(200), 2);
    use_the_new_cluster(&new).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let written = load
        .await
        .expect("load task")
        .expect("load on the new cluster");
    assert!(written.total() > 100, "{written:?}");

    // Then change their minds.
    let mut events = handle.subscribe();
    handle.reverse().expect("reverse accepted");
    let running = wait_for(&handle, "the reverse to run", T, |p| {
        p.state == State::Running && p.migration_id != forward_id
    })
    .await;
    assert_eq!(running.phase, Phase::Applying);
    // The progress is the reverse's own: the other way, nothing copied.
    assert_eq!(
        running.direction_mapping.as_deref(),
        Some(&mapping.reversed()),
        "{running:#?}"
    );
    assert!(running.reversible, "{running:#?}");
    assert_eq!(running.collection_copy.copied_docs, 0, "{running:#?}");
    assert_eq!(running.documents_failed, 0, "{running:#?}");
    let mut states = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::StateChanged { to, .. } = e {
            states.push(to);
        }
    }
    assert!(
        states.starts_with(&[State::Reversing]) && states.contains(&State::Running),
        "{states:?}"
    );
    // The old cluster stays blocked while the reverse writes to it.
    assert_eq!(write_block_mode(&old).await, 2);
    let stored = old
        .database("__mongoferry")
        .collection::<Document>("state")
        .find_one(doc! {})
        .await
        .expect("read the reverse's state")
        .expect("the reverse is stored on the old cluster");
    assert_eq!(stored.get_str("reverseOf"), Ok(forward_id.as_str()));

    let back = commit(&handle).await;
    assert_eq!(back.migration_id, running.migration_id);
    // Its events are the new cluster's writes alone, not added to the
    // forward's.
    assert!(
        back.total_events_applied > 0
            && back.total_events_applied < forward.total_events_applied + written.total() as u64,
        "the reverse applied {} events; the forward {}, the applications wrote {}",
        back.total_events_applied,
        forward.total_events_applied,
        written.total()
    );
    // The old cluster is current again, and the new one blocked: the way
    // back is itself reversible.
    assert_eq!(
        write_block_mode(&old).await,
        1,
        "the old cluster is open again"
    );
    assert_eq!(
        write_block_mode(&new).await,
        2,
        "the new cluster is blocked"
    );
    assert_same(&new, &old).await;
    let kept = old
        .database("shop")
        .collection::<Document>("sessions")
        .find_one(doc! { "_id": "kept" })
        .await
        .expect("read sessions");
    assert!(
        kept.is_some(),
        "the old cluster's TTL deleted a session the new one keeps"
    );
    assert!(!old
        .database("shop")
        .list_collection_names()
        .await
        .expect("list")
        .contains(&"customers".to_string()));

    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_started_without_reversible_refuses_to_reverse() {
    let (pair, old, _new) = clusters().await;
    seed_all(&old, &[(ns("shop.orders"), 200, 100)]).await;
    let config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    let (handle, run) = start_migration(config).await;
    let before = handle.reverse().expect_err("nothing to reverse yet");
    assert_eq!(before.code(), "invalid_state", "{before}");
    commit_and_wait(&handle, run, T).await;
    let e = handle.reverse().expect_err("not reversible");
    assert_eq!(e.code(), "not_reversible");
    assert_eq!(
        e.to_string(),
        "This migration cannot be reversed: it was started without a way back (--reversible), so its commit left the source open to writes and recorded no point to sync back from."
    );
    assert!(e.remedy().contains("--reversible"), "{}", e.remedy());
    assert_eq!(
        write_block_mode(&old).await,
        1,
        "a plain commit leaves the source open"
    );
}

/// With access control on, the write blocking is the server's: an
/// application's write to the old cluster during the reverse is refused
/// (UserWritesBlocked), and the reverse goes on unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_old_cluster_refuses_application_writes_during_the_reverse() {
    let (old_rs, new_rs, old, new) = guarded("app").await;
    seed_all(&old, &[(ns("shop.orders"), 500, 100)]).await;
    old.database("admin")
        .run_command(doc! {
            "createUser": "app", "pwd": "app-pw",
            "roles": [{ "role": "readWrite", "db": "shop" }],
        })
        .await
        .expect("create the application's user");
    let app_uri = old_rs
        .uri_without_credentials()
        .replace("mongodb://", "mongodb://app:app-pw@")
        + "&authSource=admin";
    let app = Client::with_uri_str(&app_uri).await.expect("app client");
    let app_orders = app.database("shop").collection::<Document>("orders");
    app_orders
        .insert_one(doc! { "_id": "before" })
        .await
        .expect("the application writes before the cutover");

    let mut config = SyncConfig::new(old_rs.uri(), new_rs.uri());
    config.reversible = true;
    let (handle, run) = start_migration(config).await;
    commit(&handle).await;
    handle.reverse().expect("reverse accepted");
    wait_for(&handle, "the reverse to run", T, |p| {
        p.state == State::Running && p.phase == Phase::Applying
    })
    .await;
    new.database("shop")
        .collection::<Document>("orders")
        .insert_one(doc! { "_id": "after" })
        .await
        .expect("write to the new cluster");

    let refused = app_orders
        .insert_one(doc! { "_id": "stray" })
        .await
        .expect_err("the old cluster refuses the application's write");
    match *refused.kind {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(ref w)) => {
            assert_eq!(w.code, 371, "{refused}")
        }
        mongodb::error::ErrorKind::Command(ref c) => assert_eq!(c.code, 371, "{refused}"),
        _ => panic!("not UserWritesBlocked: {refused}"),
    }
    let p = commit(&handle).await;
    assert!(p.error.is_none(), "{p:#?}");
    assert_same(&new, &old).await;
    assert!(app_orders
        .find_one(doc! { "_id": "after" })
        .await
        .expect("read")
        .is_some());
    run.abort();
}

/// `POST /api/v1/<action>`, which must succeed.
async fn control(port: u16, action: &str, body: serde_json::Value) {
    let (status, reply) = api_post(port, action, body).await;
    assert!(
        status == 200 && reply["success"] == true,
        "{action}: {status} {reply}"
    );
}

/// The command line, killed with -9 in the middle of a reverse, resumes
/// it with the same command: the reverse's state is on the old cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reverse_killed_with_9_resumes_with_the_same_command() {
    let (old_rs, new_rs, old, new) = guarded("kill").await;
    let orders = ns("shop.orders");
    seed_all(&old, &[(orders.clone(), 2_000, 300)]).await;
    seed_indexed(&old).await;
    let port = api_port();
    let args = ["--reversible"];
    let mut sync = CliProcess::sync(&old_rs.uri(), &new_rs.uri(), port, &args);
    wait_api(&mut sync, port, "canCommit", T, |p| p["canCommit"] == true).await;
    control(port, "commit", serde_json::json!({})).await;
    let committed = wait_api(&mut sync, port, "COMMITTED", T, |p| {
        p["state"] == "COMMITTED"
    })
    .await;
    let forward_id = committed["migrationId"]
        .as_str()
        .expect("an id")
        .to_string();

    let (stop, load) = start_load(&new, vec![orders.clone()], 1_000_000, Some(300), 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    control(port, "reverse", serde_json::json!({})).await;
    wait_api(&mut sync, port, "the reverse to run", T, |p| {
        p["state"] == "RUNNING" && p["migrationId"] != forward_id.as_str()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    sync.kill9();
    // The applications go on writing to the new cluster meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    load.await
        .expect("load task")
        .expect("load on the new cluster");

    let mut again = CliProcess::sync(&old_rs.uri(), &new_rs.uri(), port, &args);
    let resumed = wait_api(&mut again, port, "canCommit", T, |p| p["canCommit"] == true).await;
    assert_ne!(resumed["migrationId"], forward_id.as_str(), "{resumed:#}");
    control(port, "commit", serde_json::json!({})).await;
    wait_api(&mut again, port, "COMMITTED", T, |p| {
        p["state"] == "COMMITTED"
    })
    .await;
    assert_same(&new, &old).await;
    assert_eq!(write_block_mode(&old).await, 1);
    assert_eq!(write_block_mode(&new).await, 2);
    // A reversible sync keeps serving at COMMITTED; Ctrl-C ends it, 0.
    again.signal(libc::SIGINT);
    let status = again.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", again.stderr());
}
