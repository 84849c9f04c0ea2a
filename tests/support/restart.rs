//! Restarting a replica set while a migration runs, and watching that the
//! migration never reports FAILED meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mongoferry::sandbox::{MongodVersion, Pair};
use mongoferry::{EventSourceChoice, MigrationHandle, Namespace, State, SyncConfig};

use super::*;

/// Records whether the migration ever reports FAILED, however briefly.
pub fn watch_for_failure(handle: &MigrationHandle) -> Arc<AtomicBool> {
    let failed = Arc::new(AtomicBool::new(false));
    let flag = failed.clone();
    let mut rx = handle.watch_progress();
    tokio::spawn(async move {
        // Until the migration (the sender) is gone.
        loop {
            if rx.borrow_and_update().state == State::Failed {
                flag.store(true, Ordering::SeqCst);
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
    failed
}

#[derive(Clone, Copy, Debug)]
pub enum Side {
    Source,
    Destination,
}

pub async fn restart_during_sync(side: Side, version: MongodVersion, choice: EventSourceChoice) {
    let mut pair: Pair = pair_from(version).await;
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    let specs = vec![
        (Namespace::new("app", "users"), 3000, 400),
        (Namespace::new("app", "orders"), 3000, 300),
        (Namespace::new("crm", "leads"), 2000, 300),
    ];
    seed_all(&src, &specs).await;
    let nss: Vec<Namespace> = specs.iter().map(|s| s.0.clone()).collect();
    // The load tolerates the failures of writes while the source is down.
    let (stop, load) = start_load(&src, nss, 1_000_000, Some(200), 17);

    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.event_source = choice;
    let (handle, task) = start_migration(config).await;
    let failed = watch_for_failure(&handle);
    let before = wait_for(
        &handle,
        "canCommit with events applied",
        Duration::from_secs(60),
        |p| p.can_commit && p.total_events_applied > 0,
    )
    .await;

    // Down for longer than the engine's server selection timeout (10 s), so
    // that its own retries, not only the driver's, must carry it through.
    let rs = match side {
        Side::Source => &mut pair.source,
        Side::Destination => &mut pair.destination,
    };
    rs.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    rs.restart()
        .await
        .unwrap_or_else(|e| panic!("restart of the {side:?}: {e}"));

    // Sync goes on past the restart, with more writes, and catches up.
    let after = wait_for(
        &handle,
        "events applied after the restart",
        Duration::from_secs(60),
        |p| p.total_events_applied > before.total_events_applied + 300,
    )
    .await;
    assert_eq!(after.state, State::Running, "{after:#?}");
    wait_for(
        &handle,
        "canCommit after the restart",
        Duration::from_secs(60),
        |p| p.can_commit,
    )
    .await;
    stop.cancel();
    let stats = load.await.unwrap().unwrap();
    assert!(stats.total() > 300, "{stats:?}");
    let done = commit_and_wait(&handle, task, Duration::from_secs(90)).await;
    assert!(
        !failed.load(Ordering::SeqCst),
        "the migration reported FAILED during the {side:?} restart"
    );
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    if !done.warnings.is_empty() {
        eprintln!("warnings: {:#?}", done.warnings);
    }
    assert_same(&src, &dest).await;
}
