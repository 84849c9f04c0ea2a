//! Live migrations from older sources through the oplog event source, on
//! real servers: MongoDB 4.4.2 and 5.0.4 sources to a 6.0.5 destination,
//! and the oplog source on a 6.0.5 source. Each runs the scenario of
//! `tests/support/scenario.rs` (DDL of every kind and transactions during
//! a sync under load, then an identical destination), which
//! `tests/ddl.rs` runs through change streams: both event sources are
//! tested on the same data.
//!
//! The tests of one binary run in parallel, so the three sources' servers
//! start together.

use mongoferry_test_support as support;

use mongoferry::sandbox::MongodVersion;
use mongoferry::{EventSource, EventSourceChoice};

use support::scenario::migrate_live_with_ddl_and_transactions;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_4_4_source_migrates_live_with_ddl_and_transactions() {
    migrate_live_with_ddl_and_transactions(
        pair_from(MongodVersion::V4_4).await,
        EventSourceChoice::Auto,
        EventSource::Oplog,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_5_0_source_migrates_live_with_ddl_and_transactions() {
    migrate_live_with_ddl_and_transactions(
        pair_from(MongodVersion::V5_0).await,
        EventSourceChoice::Auto,
        EventSource::Oplog,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_oplog_source_on_6_0_migrates_live_with_ddl_and_transactions() {
    migrate_live_with_ddl_and_transactions(
        pair_from(MongodVersion::V6_0).await,
        EventSourceChoice::Oplog,
        EventSource::Oplog,
    )
    .await;
}

/// What a 4.4 source cannot do is refused before anything is written:
/// change streams (they carry no DDL and no collection UUIDs) and blocking
/// the source's writes at commit (`setUserWriteBlockMode` is new in 6.0).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_4_4_source_refuses_change_streams_and_write_blocking_before_writing() {
    let pair = pair_from(MongodVersion::V4_4).await;
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    seed_all(&src, &[(mongoferry::Namespace::new("a", "b"), 100, 200)]).await;
    for (choice, block, finding) in [
        (
            EventSourceChoice::ChangeStream,
            false,
            "change_stream_unsupported",
        ),
        (
            EventSourceChoice::Auto,
            true,
            "source_fcv_blocks_write_blocking",
        ),
    ] {
        let mut config = mongoferry::SyncConfig::new(pair.source.uri(), pair.destination.uri());
        config.event_source = choice;
        config.block_source_writes = block;
        let migration =
            mongoferry::Migration::connect(config, tokio_util::sync::CancellationToken::new())
                .await
                .expect("connect");
        let err = migration.run().await.expect_err("the check refuses");
        let mongoferry::Error::PreflightBlocked { report } = &err else {
            panic!("expected a preflight blocker, got {err}");
        };
        assert!(
            !report.find(finding).is_empty(),
            "{finding} is among the blockers: {:#?}",
            report.blockers().collect::<Vec<_>>()
        );
        assert!(
            non_system_dbs(&dest).await.is_empty(),
            "nothing is written to the destination"
        );
    }
}
