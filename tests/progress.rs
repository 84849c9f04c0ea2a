//! What a migration reports while it runs: documents and bytes against
//! the estimates, per collection and overall, the copy's rate and ETA,
//! then events a second and the lag while it syncs under a write load, and
//! canCommit following the lag.

use mongoferry_test_support as support;

use std::time::{Duration, Instant};

use mongoferry::sandbox::workload;
use mongoferry::{Namespace, Phase, Progress, State, SyncConfig};
use tokio_util::sync::CancellationToken;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_copy_and_the_sync_report_rates_etas_and_lag() {
    let (pair, src, dest) = clusters().await;
    let big = Namespace::new("shop", "orders");
    let small = Namespace::new("shop", "tags");
    seed_all(
        &src,
        &[(big.clone(), 150_000, 500), (small.clone(), 300, 200)],
    )
    .await;

    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    // One reader, small batches: a copy of a few seconds, for the samples.
    config.tuning.copy_concurrency = 1;
    config.tuning.batch_docs = 500;
    let (handle, run) = start_migration(config).await;

    // Sample the copy every 50 ms.
    let mut copying: Vec<Progress> = Vec::new();
    let started = Instant::now();
    loop {
        let p = handle.progress();
        assert_ne!(p.state, State::Failed, "{:?}", p.error);
        if p.phase == Phase::Copying {
            copying.push(p);
        } else if p.phase == Phase::Applying {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the copy did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mid: Vec<&Progress> = copying
        .iter()
        .filter(|p| {
            let c = &p.collection_copy;
            c.copied_docs > 0 && c.copied_docs < c.estimated_total_docs
        })
        .collect();
    assert!(
        mid.len() >= 3,
        "too few samples inside the copy: {}",
        mid.len()
    );
    for p in &mid {
        let c = &p.collection_copy;
        // Never "0 s left" while documents are left: unknown, or a time.
        assert!(c.eta_seconds.is_none_or(|e| e > 0.0), "{c:#?}");
        assert!(p.eta_seconds.is_none_or(|e| e > 0.0), "{p:#?}");
        assert_eq!(c.estimated_total_docs, 150_300, "{c:#?}");
        assert!(
            c.estimated_copied_bytes <= c.estimated_total_bytes,
            "{c:#?}"
        );
        for coll in &c.collections {
            assert!(coll.copied_docs <= coll.estimated_total_docs, "{coll:#?}");
        }
    }
    // Each sample counts at least what the one before did.
    for w in mid.windows(2) {
        assert!(w[1].collection_copy.copied_docs >= w[0].collection_copy.copied_docs);
    }
    // After the first second, the rate and the ETA are known, and the ETA
    // is about what remains at that rate.
    let measured: Vec<&&Progress> = mid
        .iter()
        .filter(|p| {
            let c = &p.collection_copy;
            c.bytes_per_second > 0.0 && c.eta_seconds.is_some() && p.eta_seconds.is_some()
        })
        .collect();
    assert!(
        !measured.is_empty(),
        "no sample with a rate and an ETA: {mid:#?}"
    );
    for p in &measured {
        let c = &p.collection_copy;
        let eta = p.eta_seconds.unwrap_or_default();
        let left = (c.estimated_total_bytes - c.estimated_copied_bytes) as f64 / c.bytes_per_second;
        // Refreshed once a second, so up to a second (more on a loaded
        // box) behind the counts, which only grow.
        assert!(
            eta > 0.0 && (eta - left).abs() <= left * 0.5 + 3.0,
            "eta {eta} s for {left} s left: {c:#?}"
        );
        assert_eq!(c.eta_seconds, p.eta_seconds);
    }

    // Once syncing: every collection done, with what was estimated.
    let p = handle.progress();
    for coll in &p.collection_copy.collections {
        assert!(coll.done, "{coll:#?}");
        assert_eq!(coll.copied_docs, coll.estimated_total_docs, "{coll:#?}");
    }

    // Under a write load: events a second, and a lag of about nothing.
    let stop = CancellationToken::new();
    let load = tokio::spawn(workload::run(
        src.clone(),
        vec![big.clone(), small.clone()],
        1_000_000,
        Some(300),
        7,
        stop.clone(),
    ));
    let p = wait_for(&handle, "events a second", Duration::from_secs(30), |p| {
        p.events_per_second > 50.0
    })
    .await;
    assert!(p.total_events_applied > 0, "{p:#?}");
    let lag = p.lag_time_seconds.expect("a lag while syncing");
    assert!((0.0..5.0).contains(&lag), "lag {lag} s under a light load");
    assert!(p.can_commit, "{p:#?}");
    stop.cancel();
    let stats = load.await.unwrap().unwrap();
    assert!(stats.total() > 100, "{stats:?}");

    let done = commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_eq!(done.eta_seconds, Some(0.0), "{done:#?}");
    assert_same(&src, &dest).await;
}

/// canCommit follows the lag both ways: a destination that stops taking
/// writes (fsyncLock) falls behind the source's write load until the lag
/// passes the limit, canCommit turns false and a commit is refused with
/// the lag as its reason; once it takes writes again the sync catches up
/// and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn can_commit_turns_false_while_the_destination_falls_behind() {
    let (pair, src, dest) = clusters().await;
    let ns = Namespace::new("shop", "orders");
    seed_all(&src, &[(ns.clone(), 2_000, 300)]).await;
    let mut config = SyncConfig::new(pair.source.uri(), pair.destination.uri());
    config.tuning.max_commit_lag = Duration::from_secs(2);
    let (handle, run) = start_migration(config).await;
    let (stop, load) = start_load(&src, vec![ns.clone()], 1_000_000, Some(200), 11);
    wait_for(
        &handle,
        "canCommit under load",
        Duration::from_secs(60),
        |p| p.can_commit && p.total_events_applied > 0,
    )
    .await;

    let admin = dest.database("admin");
    admin
        .run_command(bson::doc! { "fsync": 1, "lock": true })
        .await
        .expect("fsyncLock the destination");
    let behind = wait_for(&handle, "canCommit false", Duration::from_secs(30), |p| {
        !p.can_commit
    })
    .await;
    let refused = handle.commit(mongoferry::CommitRequest::default());
    admin
        .run_command(bson::doc! { "fsyncUnlock": 1 })
        .await
        .expect("fsyncUnlock the destination");
    assert_eq!(behind.state, State::Running, "{behind:#?}");
    assert_eq!(behind.phase, Phase::Applying, "{behind:#?}");
    let lag = behind.lag_time_seconds.expect("a lag while syncing");
    assert!(lag > 2.0, "canCommit went false at a lag of {lag} s");
    let err = refused.expect_err("a commit while the lag is over the limit");
    assert_eq!(err.code(), "not_ready_to_commit", "{err}");
    assert!(err.to_string().contains("behind the source"), "{err}");

    // Writable again: the sync catches up while the load goes on.
    let caught_up = wait_for(&handle, "canCommit again", Duration::from_secs(60), |p| {
        p.can_commit
    })
    .await;
    assert!(
        caught_up.lag_time_seconds.is_some_and(|l| l <= 2.0),
        "{caught_up:#?}"
    );
    stop.cancel();
    let stats = load.await.unwrap().unwrap();
    assert!(stats.total() > 100, "{stats:?}");
    commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_same(&src, &dest).await;
}
