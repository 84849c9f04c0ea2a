//! What every task of one verification shares: both clusters, the
//! options, the tallies the progress ticker reads, the TTL cache, the
//! live recheck queue and the channel to the difference sink.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::options::VerifyOptions;
use super::queue::Rechecks;
use super::report::Difference;
use super::ttl::TtlCache;
use crate::catalog::{NsKind, SourceNamespace};
use crate::cluster::Cluster;
use crate::error::{Error, Result, Role};
use crate::progress::VerifyPhase;
use crate::scope::Namespace;

/// Per-namespace tallies while a verification runs.
#[derive(Debug, Default)]
pub(crate) struct NsStats {
    pub kind: String,
    pub source_documents: Option<u64>,
    pub destination_documents: Option<u64>,
    pub documents_compared: u64,
    pub bytes_compared: u64,
    pub expiring_skipped: u64,
    pub seconds: f64,
    pub note: Option<String>,
}

/// Counters that the progress ticker reads.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    pub compared_docs: AtomicU64,
    pub compared_bytes: AtomicU64,
    pub estimated_docs: AtomicU64,
    pub estimated_bytes: AtomicU64,
    pub namespaces_total: AtomicU64,
    pub namespaces_done: AtomicU64,
    pub differences: AtomicU64,
    pub rechecks: AtomicU64,
    pub expiring_skipped: AtomicU64,
    pub phase: Mutex<VerifyPhase>,
}

/// Shared by every task of one verification.
pub(crate) struct Ctx {
    pub src: Cluster,
    pub dest: Cluster,
    pub options: VerifyOptions,
    pub relaxed: bool,
    pub cancel: CancellationToken,
    pub meter: Meter,
    pub rechecks: Option<Arc<Rechecks>>,
    /// Each side's cluster time when the verification started: every read
    /// waits until the majority snapshot holds it (`afterClusterTime`), so
    /// that no write acknowledged before the start is missed, even one
    /// written with `w: 1` a moment before. `None` on a standalone.
    pub(super) after: [Option<bson::Timestamp>; 2],
    /// The TTLs of each collection, read from the source.
    pub(crate) ttls: TtlCache,
    pub(super) stats: Mutex<HashMap<String, NsStats>>,
    pub(super) tx: mpsc::Sender<Difference>,
}

impl Ctx {
    /// The cluster time reads of `cluster` wait for.
    pub fn read_after(&self, cluster: &Cluster) -> Option<bson::Timestamp> {
        self.after[match cluster.role {
            Role::Source => 0,
            Role::Destination => 1,
        }]
    }

    /// Reports a difference to the sink.
    pub async fn report(&self, d: Difference) -> Result<()> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::Interrupted),
            r = self.tx.send(d) => r.map_err(|_| Error::Interrupted),
        }
    }

    /// A document found different. A static verification reports it; a
    /// live one queues it to be compared again until it is stable.
    pub async fn document_difference(&self, id: &bson::Bson, d: Difference) -> Result<()> {
        match &self.rechecks {
            Some(r) => match Namespace::parse(&d.namespace) {
                Some(ns) => r.suspect(&ns, id),
                None => Ok(()),
            },
            None => self.report(d).await,
        }
    }

    /// Documents on one side only that a TTL may delete: not differences.
    pub fn expiring_skipped(&self, ns: &Namespace, n: u64) {
        self.meter.expiring_skipped.fetch_add(n, Ordering::Relaxed);
        self.stats(&ns.to_string(), |s| s.expiring_skipped += n);
    }

    pub fn stats<T>(&self, ns: &str, f: impl FnOnce(&mut NsStats) -> T) -> T {
        let mut all = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(ns.to_string()).or_default())
    }

    pub fn set_phase(&self, phase: VerifyPhase) {
        *self.meter.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    pub fn is_live(&self) -> bool {
        self.rechecks.is_some()
    }
}

/// A namespace as each side has it.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub ns: Namespace,
    pub src: Option<SourceNamespace>,
    pub dst: Option<SourceNamespace>,
}

pub(crate) fn kind_name(kind: NsKind) -> &'static str {
    match kind {
        NsKind::Collection => "collection",
        NsKind::View => "view",
        NsKind::Timeseries => "timeseries",
    }
}
