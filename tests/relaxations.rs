//! What the destination relaxes while it syncs, and why: a unique index
//! must not refuse an event applied out of step with another document's,
//! and a TTL index must not delete documents the source still holds. Both
//! are restored at commit.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use mongoferry::{Phase, SyncConfig};

use support::*;

async fn problems(dest: &Client) -> u64 {
    dest.database("__mongoferry")
        .collection::<Document>("problems")
        .count_documents(doc! {})
        .await
        .expect("count problems")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_values_swapped_during_sync_apply_and_are_unique_again_at_commit() {
    let (pair, src, dest) = clusters().await;
    let users = src.database("app").collection::<Document>("users");
    users
        .create_index(
            IndexModel::builder()
                .keys(doc! { "email": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .unwrap();
    let seeded: Vec<Document> = (0..200)
        .map(|i| doc! { "_id": i, "email": format!("u{i}@example.com") })
        .collect();
    users.insert_many(seeded).await.unwrap();

    let config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    let (handle, run) = start_migration(config).await;
    wait_for(&handle, "the sync", Duration::from_secs(60), |p| {
        p.phase == Phase::Applying
    })
    .await;
    let held = index_spec(&dest, "app", "users", "email_1").await;
    assert!(
        !held.get_bool("unique").unwrap_or(false),
        "unique is relaxed during sync: {held}"
    );

    // Pairs of users swap their addresses, each swap in one transaction:
    // its events reach the destination together, where each document's
    // last state is written, and neither order of the two writes is free
    // of a duplicate while the other still holds the old value.
    let mut session = src.start_session().await.unwrap();
    for i in (0..100).step_by(2) {
        let (a, b) = (i, i + 1);
        session.start_transaction().await.unwrap();
        for (id, email) in [
            (a, "swapping".to_string()),
            (b, format!("u{a}@example.com")),
            (a, format!("u{b}@example.com")),
        ] {
            users
                .update_one(doc! { "_id": id }, doc! { "$set": { "email": email } })
                .session(&mut session)
                .await
                .unwrap();
        }
        session.commit_transaction().await.unwrap();
    }

    commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_same(&src, &dest).await;
    let restored = index_spec(&dest, "app", "users", "email_1").await;
    assert_eq!(restored.get_bool("unique"), Ok(true), "{restored}");
    assert_eq!(problems(&dest).await, 0, "no event was refused");
    let swapped = dest
        .database("app")
        .collection::<Document>("users")
        .find_one(doc! { "_id": 0 })
        .await
        .unwrap()
        .expect("user 0");
    assert_eq!(swapped.get_str("email"), Ok("u1@example.com"));
}
