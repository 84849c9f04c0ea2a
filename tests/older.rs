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

mod support;

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
