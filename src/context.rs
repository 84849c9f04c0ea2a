//! What every task of a running migration shares: both clusters, the
//! scope, the durable store, the tuning, cancellation, the pause and commit
//! controls, and the progress tracker.
//!
//! The copy and the apply path take a [`Ctx`] and stop at its
//! [`gate`](Ctx::gate), a safe point; the state machine
//! ([`crate::migration`]) builds it and drives them. Nothing here decides
//! what to copy or when to commit.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{ProblemDoc, Store};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::progress::EventSource;
use crate::scope::Scope;
use crate::throttle::Limiter;
use crate::tracker::Tracker;

/// Knobs for throughput and memory. The defaults suit a workstation.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Ranges copied at once, across all collections.
    pub copy_concurrency: usize,
    /// Target size of one `_id` range.
    pub partition_bytes: u64,
    pub max_partitions: usize,
    /// Documents and bytes per insert.
    pub batch_docs: usize,
    pub batch_bytes: usize,
    pub read_batch_docs: u32,
    /// Events per read from the change stream.
    pub stream_batch: usize,
    pub max_await_ms: u64,
    /// Collections written at once while applying a batch.
    pub apply_concurrency: usize,
    /// `canCommit` stays false while the lag is over this.
    pub max_commit_lag: Duration,
    /// A copy with ranges left that moves nothing for this long is said to
    /// be stalled, in a warning.
    pub stall_warning: Duration,
}

impl Default for Tuning {
    /// Measured with `mongoferry bench` on 2 cores (source, destination and
    /// engine on one box): more parallel ranges only added cache churn on
    /// the source; 2 MiB insert batches and 2,000-document replies kept
    /// peak memory at 173 MB, where 4 MiB and 4,000 reached 285-302 MB, at
    /// the same speed.
    fn default() -> Self {
        Tuning {
            copy_concurrency: 4,
            partition_bytes: 64 * 1024 * 1024,
            max_partitions: 512,
            batch_docs: 10_000,
            batch_bytes: 2 * 1024 * 1024,
            read_batch_docs: 2_000,
            stream_batch: 5_000,
            max_await_ms: 300,
            apply_concurrency: 8,
            max_commit_lag: Duration::from_secs(10),
            stall_warning: Duration::from_secs(60),
        }
    }
}

/// Which event source the user asked for: `auto` reads the oplog of a
/// source older than 6.0 (its change streams report no DDL and no
/// collection UUIDs) and of a replica set with time-series collections in
/// scope (change streams do not report the writes to their buckets), and
/// change streams otherwise.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventSourceChoice {
    #[default]
    Auto,
    ChangeStream,
    Oplog,
}

impl EventSourceChoice {
    /// `auto`, `change-stream`, `oplog`: as the command line takes them.
    pub fn parse(s: &str) -> Option<EventSourceChoice> {
        match s {
            "auto" => Some(EventSourceChoice::Auto),
            "change-stream" => Some(EventSourceChoice::ChangeStream),
            "oplog" => Some(EventSourceChoice::Oplog),
            _ => None,
        }
    }

    /// The event source for a source server of `source_version`
    /// (`buildInfo.version`), sharded or not, with or without time-series
    /// collections in scope. A sharded source's oplogs are out of reach, so
    /// `auto` gives it change streams whatever it holds.
    pub fn resolve(self, source: &SourceFacts) -> EventSource {
        match self {
            EventSourceChoice::ChangeStream => EventSource::ChangeStream,
            EventSourceChoice::Oplog => EventSource::Oplog,
            EventSourceChoice::Auto => {
                let major = source
                    .version
                    .split('.')
                    .next()
                    .and_then(|m| m.parse::<u32>().ok());
                match major {
                    Some(m) if m < 6 => EventSource::Oplog,
                    _ if source.timeseries && !source.sharded => EventSource::Oplog,
                    _ => EventSource::ChangeStream,
                }
            }
        }
    }
}

/// What the choice of an event source depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceFacts {
    /// `buildInfo.version`.
    pub version: String,
    pub sharded: bool,
    /// Whether the scope holds a time-series collection.
    pub timeseries: bool,
}

impl SourceFacts {
    /// The facts of a connected source, with `timeseries` as found.
    pub fn of(src: &Cluster, timeseries: bool) -> SourceFacts {
        SourceFacts {
            version: src.version.clone(),
            sharded: src.is_sharded(),
            timeseries,
        }
    }
}

/// Options of a commit.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitRequest {
    /// Block user writes on the source (`setUserWriteBlockMode`) before
    /// catching up, instead of relying on the user to have stopped them.
    #[serde(default)]
    pub block_source_writes: bool,
    /// How the destination is verified before it is declared COMMITTED.
    #[serde(default)]
    pub verify: CommitVerify,
}

/// The verification at commit, after the final catch-up and the index
/// restoration, before COMMITTED.
///
/// The default, `auto`, compares every document when the migration is up
/// to [`AUTO_FULL_MAX_BYTES`] and runs the quick checks (namespaces,
/// options, indexes, views, counts) above that. The source's writes are
/// stopped while the commit runs, so its verification is downtime: a full
/// comparison reads both sides whole, which takes seconds for a small
/// migration but hours for terabytes. For those, the quick checks still
/// catch a missing or altered namespace, option, index or view, and any
/// document count that differs, in seconds; a document-by-document proof
/// is best had beforehand with `mongoferry verify --live`, which runs
/// during the sync and converges.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitVerify {
    #[default]
    Auto,
    Quick,
    Full,
    /// No verification: the commit is reported as not verified.
    None,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Control {
    pub paused: bool,
    pub commit: Option<CommitRequest>,
    /// The load setting last asked for while the migration runs; it wins
    /// over the one the migration started with or stored.
    pub load: Option<crate::load::LoadSetting>,
    /// A committed reversible migration was asked to sync back.
    pub reverse: bool,
}

/// Shared by every task of a running migration.
pub(crate) struct Ctx {
    pub src: Cluster,
    pub dest: Cluster,
    pub scope: Scope,
    pub store: Store,
    pub tuning: Tuning,
    /// Where the sync reads the source's changes from.
    pub event_source: EventSource,
    pub cancel: CancellationToken,
    pub tracker: Tracker,
    pub control: watch::Receiver<Control>,
    /// Holds the copy to the load level; changed live through the handle.
    pub limiter: std::sync::Arc<Limiter>,
}

impl Ctx {
    /// A safe point: returns `Interrupted` on shutdown, and waits while the
    /// migration is paused.
    pub async fn gate(&self) -> Result<()> {
        let mut control = self.control.clone();
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            if !control.borrow_and_update().paused {
                return Ok(());
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(Error::Interrupted),
                _ = control.changed() => {}
            }
        }
    }
}

impl Ctx {
    /// Counts documents that could not be written, and keeps them in
    /// `__mongoferry.problems` for the user: they never vanish silently.
    pub async fn record_problems(&self, ns: &str, problems: Vec<ProblemDoc>) -> Result<()> {
        if problems.is_empty() {
            return Ok(());
        }
        tracing::warn!(ns, count = problems.len(), "documents could not be written");
        self.tracker.add_failed(problems.len() as u64);
        self.store.record_problems(problems).await
    }
}
