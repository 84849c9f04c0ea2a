//! A restart of an older source (4.4, 5.0), and of a 6.0 source read
//! through its oplog, while the sync applies: the oplog tail is opened
//! again from the saved position and the commit is identical. A binary of
//! its own, so that these servers do not run beside `tests/restart.rs`'s
//! on the same two cores.

use mongoferry_test_support as support;

use mongoferry::sandbox::MongodVersion;
use mongoferry::EventSourceChoice;

use support::restart::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_restart_with_the_oplog_source_on_6_0_resumes_its_tail_and_the_commit_is_identical(
) {
    restart_during_sync(Side::Source, MongodVersion::V6_0, EventSourceChoice::Oplog).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_4_4_source_restart_during_sync_resumes_its_oplog_tail_and_the_commit_is_identical() {
    restart_during_sync(Side::Source, MongodVersion::V4_4, EventSourceChoice::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_5_0_source_restart_during_sync_resumes_its_oplog_tail_and_the_commit_is_identical() {
    restart_during_sync(Side::Source, MongodVersion::V5_0, EventSourceChoice::Auto).await;
}
