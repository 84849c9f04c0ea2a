//! What a running migration reports: the state machine's states, a progress
//! snapshot, and the events the engine publishes to its observers.
//!
//! The snapshot's JSON follows mongosync's `/api/v1/progress` names so its
//! runbooks carry over. This module computes rates and ETAs; it never
//! touches a server.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::ErrorInfo;

/// The migration's state, as mongosync names them.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    #[default]
    Idle,
    Running,
    Paused,
    Committing,
    Committed,
    /// A reversible migration's way back is starting: the old cluster is
    /// being readied to take the new one's changes.
    Reversing,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "IDLE",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Committing => "COMMITTING",
            State::Committed => "COMMITTED",
            State::Reversing => "REVERSING",
            State::Failed => "FAILED",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a RUNNING migration is doing.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Starting,
    /// Creating namespaces and copying documents.
    Copying,
    /// Applying change events.
    Applying,
    /// Catching up to the commit point and restoring indexes.
    Committing,
    Done,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CollectionProgress {
    pub namespace: String,
    pub estimated_total_docs: u64,
    pub estimated_total_bytes: u64,
    pub copied_docs: u64,
    pub copied_bytes: u64,
    pub done: bool,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CollectionCopy {
    pub estimated_total_bytes: u64,
    pub estimated_copied_bytes: u64,
    pub estimated_total_docs: u64,
    pub copied_docs: u64,
    pub bytes_per_second: f64,
    /// Seconds until the copy finishes, at the current rate.
    pub eta_seconds: Option<f64>,
    pub collections: Vec<CollectionProgress>,
}

/// Where the sync reads the source's changes from.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "camelCase")]
pub enum EventSource {
    /// A cluster-wide change stream with `showExpandedEvents` (6.0 and
    /// newer).
    #[default]
    ChangeStream,
    /// The source's oplog, `local.oplog.rs`, tailed directly (any replica
    /// set from 4.4; what older sources need for DDL and collection UUIDs).
    Oplog,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::ChangeStream => "change stream",
            EventSource::Oplog => "oplog",
        }
    }
}

impl std::fmt::Display for EventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of a migration's progress.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub migration_id: String,
    pub state: State,
    pub phase: Phase,
    pub can_commit: bool,
    /// Whether the application may now write to the destination.
    pub can_write: bool,
    /// Source cluster time minus the time of the last applied event.
    pub lag_time_seconds: Option<f64>,
    /// Where the sync reads the source's changes from, once it is known.
    #[serde(default)]
    pub event_source: Option<EventSource>,
    pub total_events_applied: u64,
    pub events_per_second: f64,
    pub collection_copy: CollectionCopy,
    /// Documents that could not be written; each is recorded in
    /// `__mongoferry.problems` with its `_id` and the server's reason.
    pub documents_failed: u64,
    /// Seconds until the current long step (copy, commit catch-up) ends.
    pub eta_seconds: Option<f64>,
    pub warnings: Vec<String>,
    pub error: Option<ErrorInfo>,
    /// The verification at commit: running, its outcome, or skipped.
    /// Boxed: it is seldom there, and large when it is.
    #[serde(default)]
    pub verification: Option<Box<VerificationStatus>>,
    /// The load level the copy is held to, and what the adaptive mode
    /// does with it. Boxed, as `sourceImpact`.
    #[serde(default)]
    pub load: Option<Box<crate::load::LoadStatus>>,
    /// What the migration's reads do to the source, as measured on it.
    /// Boxed: it is large and the copy's hot path clones progress.
    #[serde(default)]
    pub source_impact: Option<Box<SourceImpact>>,
    /// Whether this migration keeps a way back: its commit blocks the
    /// source's writes, and a reverse can follow.
    #[serde(default)]
    pub reversible: bool,
    /// Which cluster is the source and which the destination now, in
    /// mongosync's shape: a reverse swaps them. Boxed, as `sourceImpact`.
    #[serde(default)]
    pub direction_mapping: Option<Box<DirectionMapping>>,
}

/// What `directionMapping` calls the two clusters by default: the source
/// and the destination a migration is started with (`serve` may start
/// from its `cluster1`: `SyncConfig::cluster_names`).
pub const CLUSTER_NAMES: [&str; 2] = ["cluster0", "cluster1"];

/// The live direction, as mongosync reports it: `"<name>: <hosts>"`, where
/// the names are `serve`'s `cluster0` and `cluster1` (for `sync`, its
/// source and its destination).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct DirectionMapping {
    #[serde(rename = "Source")]
    pub source: String,
    #[serde(rename = "Destination")]
    pub destination: String,
}

impl DirectionMapping {
    /// From each side's name and hosts.
    pub fn new(source: (&str, &str), destination: (&str, &str)) -> DirectionMapping {
        DirectionMapping {
            source: format!("{}: {}", source.0, source.1),
            destination: format!("{}: {}", destination.0, destination.1),
        }
    }

    /// The source's name (`cluster0` or `cluster1`).
    pub fn source_name(&self) -> &str {
        self.source.split_once(": ").map_or("", |(name, _)| name)
    }

    /// The other way round.
    pub fn reversed(&self) -> DirectionMapping {
        DirectionMapping {
            source: self.destination.clone(),
            destination: self.source.clone(),
        }
    }
}

/// Latency percentiles over the last seconds, in milliseconds.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// The source's health while the migration reads it. Every figure is
/// optional: one that cannot be read (a missing privilege, a field an
/// older server lacks, too few operations to judge) is left out, and
/// `notMeasured` says why.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceImpact {
    /// Point reads of one document on the source's primary, timed by
    /// Mongoferry twenty times a second: what an application's query waits
    /// now, over the last 20 s.
    pub read_latency_ms: Option<Latency>,
    /// The same, measured before the copy read anything.
    pub idle_read_latency_ms: Option<Latency>,
    /// How much slower reads are than idle, in percent (p99 against p99).
    pub read_latency_increase_percent: Option<f64>,
    /// The mean latency of the source's writes over the last 10 s, as
    /// the server counts them. Mongoferry never writes to the source, so
    /// these are all the applications'.
    pub write_latency_ms: Option<f64>,
    pub idle_write_latency_ms: Option<f64>,
    /// Operations waiting for a lock or a storage ticket.
    pub queued_operations: Option<u64>,
    /// Storage read tickets in use, of all there are.
    pub read_tickets_out: Option<u64>,
    pub read_tickets_total: Option<u64>,
    /// WiredTiger's cache: how full, and how much of it is dirty, in
    /// percent of its size.
    pub cache_used_percent: Option<f64>,
    pub cache_dirty_percent: Option<f64>,
    /// How far the furthest secondary is behind the primary, and which.
    pub secondary_lag_seconds: Option<f64>,
    pub lagging_member: Option<String>,
    /// How long the source's oplog still keeps the migration's start.
    pub oplog_headroom_seconds: Option<f64>,
    /// Figures left out, each with why.
    pub not_measured: Vec<String>,
}

/// What a verification is doing.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VerifyPhase {
    #[default]
    Starting,
    /// Comparing namespaces, options, indexes, views and counts.
    Metadata,
    /// Comparing every document.
    Documents,
    /// Live: re-comparing documents that changed or differed, until stable.
    Recheck,
    Done,
}

/// A running verification's progress, for a bar with an ETA.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerifyProgress {
    pub phase: VerifyPhase,
    pub namespaces_total: u64,
    pub namespaces_done: u64,
    /// Source documents and bytes to compare (from collection statistics).
    pub estimated_total_docs: u64,
    pub estimated_total_bytes: u64,
    /// Source documents and bytes compared so far.
    pub compared_docs: u64,
    pub compared_bytes: u64,
    pub docs_per_second: f64,
    pub bytes_per_second: f64,
    /// Seconds until every document is compared, at the current rate.
    pub eta_seconds: Option<f64>,
    /// Differences found so far (live: confirmed ones only).
    pub differences: u64,
    /// Live: documents waiting to be compared again.
    pub pending_rechecks: u64,
    pub elapsed_seconds: f64,
}

/// Where the verification at commit stands.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationState {
    Running,
    /// The destination equals the source.
    Passed,
    /// Differences were found; the migration is not committed.
    Failed,
    /// The commit asked for no verification.
    Skipped,
}

/// The verification at commit, as shown in [`Progress`].
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerificationStatus {
    pub state: VerificationState,
    /// `quick` or `full`; absent when skipped.
    pub mode: Option<crate::verify::report::VerifyMode>,
    pub progress: VerifyProgress,
    /// The summary once it has finished: per namespace, and the first
    /// differences (the whole list comes from `mongoferry verify --report`).
    pub report: Option<crate::verify::report::VerifyReport>,
}

/// Everything the engine publishes to observers, as one tagged type.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Event {
    Progress(Progress),
    StateChanged {
        from: State,
        to: State,
    },
    Warning {
        message: String,
    },
    Error(ErrorInfo),
    /// A verification's progress (standalone, or at commit).
    Verify(VerifyProgress),
}

/// A rate over a sliding window, for throughput and ETA figures.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl RateMeter {
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            window,
            samples: Default::default(),
        }
    }

    /// Records the running total at `now`.
    pub fn record(&mut self, now: Instant, total: u64) {
        self.samples.push_back((now, total));
        while let Some(&(t, _)) = self.samples.front() {
            if now.duration_since(t) > self.window && self.samples.len() > 2 {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Units per second over the window; 0 until two samples exist.
    pub fn per_second(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, v0)), Some(&(t1, v1))) if t1 > t0 => {
                v1.saturating_sub(v0) as f64 / t1.duration_since(t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Seconds to reach `target` at the current rate.
    pub fn eta(&self, current: u64, target: u64) -> Option<f64> {
        let rate = self.per_second();
        if current >= target {
            return Some(0.0);
        }
        (rate > 0.0).then(|| (target - current) as f64 / rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(Duration::from_secs(10));
        assert_eq!(m.per_second(), 0.0);
        assert_eq!(m.eta(0, 100), None);
        m.record(t0, 0);
        m.record(t0 + Duration::from_secs(2), 200);
        assert!((m.per_second() - 100.0).abs() < 1e-9);
        assert_eq!(m.eta(200, 1200), Some(10.0));
        assert_eq!(m.eta(1200, 1200), Some(0.0));
        // Old samples fall out of the window.
        m.record(t0 + Duration::from_secs(30), 200);
        m.record(t0 + Duration::from_secs(31), 300);
        assert!((m.per_second() - 100.0).abs() < 1e-9, "{}", m.per_second());
    }

    #[test]
    fn progress_json_uses_mongosync_names() {
        let p = Progress {
            state: State::Running,
            lag_time_seconds: Some(1.5),
            ..Default::default()
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["state"], "RUNNING");
        assert_eq!(v["canCommit"], false);
        assert_eq!(v["lagTimeSeconds"], 1.5);
        assert_eq!(v["totalEventsApplied"], 0);
        assert_eq!(v["collectionCopy"]["estimatedTotalBytes"], 0);
        assert_eq!(v["collectionCopy"]["estimatedCopiedBytes"], 0);
    }
}
