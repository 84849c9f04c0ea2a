//! Parity validation: proves the destination equals the source, namespace
//! by namespace and document by document, and names every difference.
//!
//! - **Quick** ([`VerifyMode::Quick`]): namespaces, collection options,
//!   index specifications, view definitions and document counts
//!   ([`metadata`]).
//! - **Full** ([`VerifyMode::Full`]): the same, then every document
//!   ([`documents`]): each collection is split into `_id` ranges, both
//!   sides are read in parallel in the same order, and documents are
//!   compared as raw BSON ([`diff`]).
//! - **Live** ([`VerifyOptions::live`]): while a sync runs, documents that
//!   change or differ are compared again until they are stable
//!   ([`recheck`]), so the result converges once writes stop.
//!
//! **TTL collections** ([`ttl`]): a document that a TTL of the source may
//! delete before the verification ends is not a difference when only one
//! side holds it, since each side's TTL monitor deletes it on its own
//! schedule (and at commit the destination's starts as soon as its TTLs
//! are restored). Full and live modes count such documents
//! ([`VerifyReport::expiring_skipped`]) instead of reporting them; counts
//! leave them out on both sides. Documents both sides hold are compared
//! as any other.
//!
//! Differences stream to a [`DifferenceSink`] as they are found (NDJSON on
//! disk for the CLI); the [`VerifyReport`] keeps counts and a few samples,
//! so memory does not grow with the number of differences or documents.
//!
//! **Architecture Invariant:** verification only reads. It never writes
//! to either cluster, and it knows nothing of the migration that may be
//! running; the commit path calls it like any other client.

pub mod diff;
pub mod documents;
pub mod metadata;
pub mod recheck;
pub mod ttl;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, NsKind, SourceNamespace};
use crate::cluster::{Cluster, Topology};
use crate::error::{Error, Result, Role};
use crate::progress::{RateMeter, VerifyPhase, VerifyProgress};
use crate::scope::{Namespace, Scope};

/// How much a verification compares.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// Namespaces, options, indexes, views and counts.
    Quick,
    /// Everything quick compares, then every document.
    #[default]
    Full,
}

impl std::fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyMode::Quick => "quick",
            VerifyMode::Full => "full",
        })
    }
}

/// Settings of a verification that runs while the source still changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveOptions {
    /// How long after its last change a document is compared again, and
    /// how often a differing one is.
    pub recheck_interval_seconds: f64,
    /// A difference is reported only once the document has not changed on
    /// either side for this long: longer than the sync's lag, so that a
    /// write the sync has not applied yet is not reported.
    pub settle_seconds: f64,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            recheck_interval_seconds: 1.0,
            settle_seconds: 10.0,
        }
    }
}

/// What to verify and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VerifyOptions {
    pub mode: VerifyMode,
    /// Report documents whose fields are in another order (by default a
    /// document is a map and field order does not count).
    pub strict_field_order: bool,
    /// Namespaces to verify, as `mongoferry sync` takes them.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// `_id` ranges compared at once.
    pub concurrency: usize,
    /// Accept what a running sync relaxes on the destination (unique
    /// indexes built non-unique, TTLs held at 2^31-1 s, capped collections
    /// in another natural order). `None`: accept them while the
    /// destination holds a migration that is not committed yet.
    pub allow_sync_relaxations: Option<bool>,
    /// Run while the source still changes, rechecking what changes.
    pub live: Option<LiveOptions>,
    /// Target size of one `_id` range.
    pub partition_bytes: u64,
    /// Bytes per batch handed from a reader to the comparison.
    pub batch_bytes: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            mode: VerifyMode::Full,
            strict_field_order: false,
            include: Vec::new(),
            exclude: Vec::new(),
            concurrency: 4,
            allow_sync_relaxations: None,
            live: None,
            partition_bytes: 64 * 1024 * 1024,
            batch_bytes: 2 * 1024 * 1024,
        }
    }
}

/// What kind of difference was found.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// A document the source has and the destination lacks.
    MissingOnDestination,
    /// A document the destination has and the source lacks.
    ExtraOnDestination,
    /// A document whose values differ.
    Different,
    /// A document whose only differences are numeric types of the same
    /// value (int 5 against long 5).
    Type,
    /// A document whose only differences are the order of its fields
    /// (strict mode only).
    FieldOrder,
    /// A capped collection whose documents are in another natural order.
    DocumentOrder,
    MissingCollection,
    ExtraCollection,
    MissingView,
    ExtraView,
    /// A collection on one side is a view (or time-series) on the other.
    NamespaceType,
    /// Validator, collation, capped size, clustering and other options.
    CollectionOptions,
    /// A view's source collection, pipeline or collation.
    ViewDefinition,
    MissingIndex,
    ExtraIndex,
    /// An index of the same name with another key or options.
    IndexOptions,
    /// Document counts differ (quick mode).
    Count,
}

impl DifferenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DifferenceKind::MissingOnDestination => "missing_on_destination",
            DifferenceKind::ExtraOnDestination => "extra_on_destination",
            DifferenceKind::Different => "different",
            DifferenceKind::Type => "type",
            DifferenceKind::FieldOrder => "field_order",
            DifferenceKind::DocumentOrder => "document_order",
            DifferenceKind::MissingCollection => "missing_collection",
            DifferenceKind::ExtraCollection => "extra_collection",
            DifferenceKind::MissingView => "missing_view",
            DifferenceKind::ExtraView => "extra_view",
            DifferenceKind::NamespaceType => "namespace_type",
            DifferenceKind::CollectionOptions => "collection_options",
            DifferenceKind::ViewDefinition => "view_definition",
            DifferenceKind::MissingIndex => "missing_index",
            DifferenceKind::ExtraIndex => "extra_index",
            DifferenceKind::IndexOptions => "index_options",
            DifferenceKind::Count => "count",
        }
    }
}

impl std::fmt::Display for DifferenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one field (or option) differs.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldChange {
    Value,
    /// Same number, another numeric type.
    Type,
    MissingOnDestination,
    ExtraOnDestination,
    /// The field is at another position (strict mode).
    Order,
}

impl FieldChange {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldChange::Value => "value",
            FieldChange::Type => "type",
            FieldChange::MissingOnDestination => "missing_on_destination",
            FieldChange::ExtraOnDestination => "extra_on_destination",
            FieldChange::Order => "order",
        }
    }
}

/// One differing field, with short previews of both values.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDifference {
    /// `a.b.c`, `arr.2.x`; for options, the option's path.
    pub path: String,
    pub change: FieldChange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// One difference between the source and the destination.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub namespace: String,
    pub kind: DifferenceKind,
    /// The document's `_id` as canonical extended JSON (which keeps its
    /// type); absent for namespace-level differences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    /// The index concerned, for index differences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The paths that differ: document fields (`a.b.c`, `arr.2.x`) or
    /// options (`validator.$jsonSchema.required`, `unique`).
    #[serde(default)]
    pub field_paths: Vec<String>,
    /// How each of them differs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDifference>,
    /// One sentence for people.
    pub detail: String,
}

impl Difference {
    pub(crate) fn namespace_level(ns: &Namespace, kind: DifferenceKind, detail: String) -> Self {
        Difference {
            namespace: ns.to_string(),
            kind,
            id: None,
            index: None,
            field_paths: Vec::new(),
            fields: Vec::new(),
            detail,
        }
    }

    pub(crate) fn with_fields(mut self, fields: Vec<FieldDifference>) -> Self {
        self.field_paths = fields.iter().map(|f| f.path.clone()).collect();
        self.fields = fields;
        self
    }

    /// The `_id` as relaxed extended JSON, for display.
    pub fn id_text(&self) -> Option<String> {
        let id = self.id.as_ref()?;
        Some(match bson::Bson::try_from(id.clone()) {
            Ok(b) => b.into_relaxed_extjson().to_string(),
            Err(_) => id.to_string(),
        })
    }
}

/// The verification's findings for one namespace.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSummary {
    pub namespace: String,
    /// `collection`, `view` or `timeseries` (the source's, or the
    /// destination's when the source lacks it).
    pub kind: String,
    /// Documents counted on each side (quick), or read (full).
    pub source_documents: Option<u64>,
    pub destination_documents: Option<u64>,
    /// Source documents compared one by one with their counterpart.
    pub documents_compared: u64,
    pub bytes_compared: u64,
    pub differences: u64,
    /// Documents found on one side only that a TTL of the source may
    /// delete before the verification ends: not differences.
    #[serde(default)]
    pub expiring_skipped: u64,
    pub seconds: f64,
    /// Why documents were not compared one by one, where they were not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The outcome of a verification.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub mode: VerifyMode,
    pub strict_field_order: bool,
    pub live: bool,
    /// Whether sync-time relaxations on the destination were accepted.
    pub sync_relaxations_allowed: bool,
    /// The connection strings, redacted.
    pub source: String,
    pub destination: String,
    pub identical: bool,
    pub differences: u64,
    pub differences_by_kind: BTreeMap<DifferenceKind, u64>,
    pub documents_compared: u64,
    pub bytes_compared: u64,
    /// Live: document comparisons repeated because the document changed
    /// or differed.
    pub rechecks: u64,
    /// Documents found on one side only that a TTL index (or a clustered
    /// or time-series collection's TTL) of the source may delete before
    /// the verification ends, and so not reported as differences: each
    /// side's TTL monitor deletes them on its own schedule. Full and live
    /// modes (quick mode leaves them out of its counts); a document
    /// rechecked live may count twice. Absent from reports written before
    /// it existed.
    #[serde(default)]
    pub expiring_skipped: u64,
    pub seconds: f64,
    pub namespaces: Vec<NamespaceSummary>,
    /// The first differences found (the sink receives them all).
    pub samples: Vec<Difference>,
}

/// How many differences a report keeps as samples.
pub const MAX_SAMPLES: usize = 20;

/// Where differences go as they are found, one by one. Called from one
/// task, in the order the differences were found.
pub trait DifferenceSink: Send {
    fn record(&mut self, difference: &Difference) -> Result<()>;

    /// Called once when the verification ends (successfully or not).
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Keeps nothing: the report's counts and samples are enough.
#[derive(Debug, Default)]
pub struct NullSink;

impl DifferenceSink for NullSink {
    fn record(&mut self, _: &Difference) -> Result<()> {
        Ok(())
    }
}

/// Keeps every difference in memory; for tests and small checks only.
#[derive(Debug, Default)]
pub struct VecSink(pub Vec<Difference>);

impl DifferenceSink for VecSink {
    fn record(&mut self, d: &Difference) -> Result<()> {
        self.0.push(d.clone());
        Ok(())
    }
}

/// Writes each difference as one JSON line, as it is found.
pub struct NdjsonSink<W: Write + Send> {
    out: std::io::BufWriter<W>,
    path: String,
}

impl NdjsonSink<std::fs::File> {
    /// Creates (or truncates) the report file.
    pub fn create(path: &std::path::Path) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| Error::ReportFailed {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(NdjsonSink::new(file, path.display().to_string()))
    }
}

impl<W: Write + Send> NdjsonSink<W> {
    pub fn new(out: W, path: String) -> Self {
        NdjsonSink {
            out: std::io::BufWriter::new(out),
            path,
        }
    }

    fn failed(&self, e: impl std::fmt::Display) -> Error {
        Error::ReportFailed {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

impl<W: Write + Send> DifferenceSink for NdjsonSink<W> {
    fn record(&mut self, d: &Difference) -> Result<()> {
        serde_json::to_writer(&mut self.out, d).map_err(|e| self.failed(e))?;
        self.out.write_all(b"\n").map_err(|e| self.failed(e))
    }

    fn finish(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| self.failed(e))
    }
}

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
    pub rechecks: Option<Arc<recheck::Rechecks>>,
    /// Each side's cluster time when the verification started: every read
    /// waits until the majority snapshot holds it (`afterClusterTime`), so
    /// that no write acknowledged before the start is missed, even one
    /// written with `w: 1` a moment before. `None` on a standalone.
    after: [Option<bson::Timestamp>; 2],
    /// The TTLs of each collection, read from the source.
    pub(crate) ttls: ttl::TtlCache,
    stats: Mutex<HashMap<String, NsStats>>,
    tx: mpsc::Sender<Difference>,
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

/// What the collector gathered from the differences.
#[derive(Default)]
struct Collected {
    total: u64,
    by_kind: BTreeMap<DifferenceKind, u64>,
    by_ns: HashMap<String, u64>,
    samples: Vec<Difference>,
    error: Option<Error>,
}

/// Receives differences from every task and hands them to the sink, in
/// one place, so the sink needs no locking and the counts are exact.
async fn collect(
    mut rx: mpsc::Receiver<Difference>,
    sink: &mut dyn DifferenceSink,
    meter: &Meter,
    done: CancellationToken,
    cancel: CancellationToken,
) -> Collected {
    let mut c = Collected::default();
    loop {
        let next = tokio::select! {
            biased;
            d = rx.recv() => d,
            _ = done.cancelled() => rx.try_recv().ok(),
        };
        let Some(d) = next else { break };
        if c.error.is_some() {
            continue; // draining, so no sender waits forever
        }
        c.total += 1;
        meter.differences.fetch_add(1, Ordering::Relaxed);
        *c.by_kind.entry(d.kind).or_default() += 1;
        *c.by_ns.entry(d.namespace.clone()).or_default() += 1;
        if let Err(e) = sink.record(&d) {
            c.error = Some(e);
            cancel.cancel();
            continue;
        }
        if c.samples.len() < MAX_SAMPLES {
            c.samples.push(d);
        }
    }
    c
}

/// One verification of a destination against a source.
pub struct Verifier {
    src: Cluster,
    dest: Cluster,
    scope: Scope,
    options: VerifyOptions,
    progress: watch::Sender<VerifyProgress>,
}

impl Verifier {
    /// Checks the options; connects nothing.
    pub fn new(src: Cluster, dest: Cluster, options: VerifyOptions) -> Result<Verifier> {
        let scope = Scope::new(&options.include, &options.exclude)?;
        Ok(Verifier {
            src,
            dest,
            scope,
            options,
            progress: watch::channel(VerifyProgress::default()).0,
        })
    }

    /// The latest progress, updated about twice a second.
    pub fn watch_progress(&self) -> watch::Receiver<VerifyProgress> {
        self.progress.subscribe()
    }

    /// Runs the verification to its end. Differences go to `sink` as they
    /// are found; the report summarises them. Cancelling `cancel` stops it
    /// with `Interrupted`.
    pub async fn run(
        &self,
        sink: &mut dyn DifferenceSink,
        cancel: &CancellationToken,
    ) -> Result<VerifyReport> {
        let started = Instant::now();
        if self.options.live.is_some() {
            for c in [&self.src, &self.dest] {
                if c.topology == Topology::Standalone {
                    return Err(Error::NotReplicaSet { role: c.role });
                }
            }
        }
        let relaxed = match self.options.allow_sync_relaxations {
            Some(v) => v,
            None => migration_in_progress(&self.dest).await?,
        };
        let (src_time, dest_time) = tokio::join!(self.src.cluster_time(), self.dest.cluster_time());
        let after = [src_time.ok(), dest_time.ok()];
        let cancel = cancel.child_token();
        let (tx, rx) = mpsc::channel(1024);
        // Quick mode compares no document, so live it only waits for
        // counts to settle; rechecks are for full mode.
        let rechecks = self
            .options
            .live
            .as_ref()
            .filter(|_| self.options.mode == VerifyMode::Full)
            .map(|l| Arc::new(recheck::Rechecks::new(l)));
        let ctx = Arc::new(Ctx {
            src: self.src.clone(),
            dest: self.dest.clone(),
            options: self.options.clone(),
            relaxed,
            cancel: cancel.clone(),
            meter: Meter::default(),
            rechecks,
            after,
            ttls: ttl::TtlCache::default(),
            stats: Mutex::new(HashMap::new()),
            tx,
        });
        let done = CancellationToken::new();
        let work = {
            let ctx = ctx.clone();
            let done = done.clone();
            let scope = self.scope.clone();
            async move {
                let r = tokio::select! {
                    r = work(&ctx, &scope) => r,
                    _ = ticker(&ctx, &self.progress, started) => unreachable_ticker(),
                };
                done.cancel();
                r
            }
        };
        let (result, collected) = tokio::join!(
            work,
            collect(rx, sink, &ctx.meter, done.clone(), cancel.clone())
        );
        let finished = sink.finish();
        if let Some(e) = collected.error {
            return Err(e);
        }
        let namespaces = result?;
        finished?;
        ctx.set_phase(VerifyPhase::Done);
        publish(&ctx, &self.progress, started, &mut None);

        let stats = std::mem::take(&mut *ctx.stats.lock().unwrap_or_else(|e| e.into_inner()));
        let summaries: Vec<NamespaceSummary> = namespaces
            .into_iter()
            .map(|ns| {
                let key = ns.to_string();
                let s = stats.get(&key);
                NamespaceSummary {
                    kind: s.map(|s| s.kind.clone()).unwrap_or_default(),
                    source_documents: s.and_then(|s| s.source_documents),
                    destination_documents: s.and_then(|s| s.destination_documents),
                    documents_compared: s.map(|s| s.documents_compared).unwrap_or(0),
                    bytes_compared: s.map(|s| s.bytes_compared).unwrap_or(0),
                    differences: collected.by_ns.get(&key).copied().unwrap_or(0),
                    expiring_skipped: s.map(|s| s.expiring_skipped).unwrap_or(0),
                    seconds: s.map(|s| s.seconds).unwrap_or(0.0),
                    note: s.and_then(|s| s.note.clone()),
                    namespace: key,
                }
            })
            .collect();
        let report = VerifyReport {
            mode: self.options.mode,
            strict_field_order: self.options.strict_field_order,
            live: self.options.live.is_some(),
            sync_relaxations_allowed: relaxed,
            source: self.src.display_uri.clone(),
            destination: self.dest.display_uri.clone(),
            identical: collected.total == 0,
            differences: collected.total,
            differences_by_kind: collected.by_kind,
            documents_compared: summaries.iter().map(|s| s.documents_compared).sum(),
            bytes_compared: summaries.iter().map(|s| s.bytes_compared).sum(),
            rechecks: ctx.meter.rechecks.load(Ordering::Relaxed),
            expiring_skipped: ctx.meter.expiring_skipped.load(Ordering::Relaxed),
            seconds: started.elapsed().as_secs_f64(),
            namespaces: summaries,
            samples: collected.samples,
        };
        tracing::info!(
            identical = report.identical,
            differences = report.differences,
            documents = report.documents_compared,
            expiring_skipped = report.expiring_skipped,
            seconds = report.seconds,
            "verification finished"
        );
        Ok(report)
    }
}

/// Connects to both clusters and runs one verification: the whole API in
/// one call.
pub async fn run(
    source: &Cluster,
    destination: &Cluster,
    options: &VerifyOptions,
    sink: &mut dyn DifferenceSink,
    cancel: &CancellationToken,
) -> Result<VerifyReport> {
    Verifier::new(source.clone(), destination.clone(), options.clone())?
        .run(sink, cancel)
        .await
}

/// Connects to the two clusters to verify; refuses the same cluster twice,
/// which would always look identical.
pub async fn connect(source_uri: &str, destination_uri: &str) -> Result<(Cluster, Cluster)> {
    let (src, dest) = tokio::try_join!(
        Cluster::connect(Role::Source, source_uri),
        Cluster::connect(Role::Destination, destination_uri),
    )?;
    if src.identity == dest.identity {
        return Err(Error::SameCluster);
    }
    Ok((src, dest))
}

/// Whether the destination holds a migration that is not committed yet,
/// whose relaxations (non-unique indexes, held TTLs) are expected.
async fn migration_in_progress(dest: &Cluster) -> Result<bool> {
    // A user who may not read the state database verifies strictly.
    let stored = crate::checkpoint::Store::new(dest)
        .load()
        .await
        .unwrap_or_else(|e| {
            tracing::debug!(error = %e, "the destination's migration state is not readable");
            None
        });
    Ok(stored.is_some_and(|m| m.phase != crate::checkpoint::StoredPhase::Committed))
}

fn unreachable_ticker() -> Result<Vec<Namespace>> {
    Err(Error::Other("the progress ticker stopped".into()))
}

/// Publishes progress twice a second, forever.
async fn ticker(ctx: &Ctx, tx: &watch::Sender<VerifyProgress>, started: Instant) {
    let mut rate = Some(RateMeter::new(Duration::from_secs(10)));
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        every.tick().await;
        publish(ctx, tx, started, &mut rate);
    }
}

fn publish(
    ctx: &Ctx,
    tx: &watch::Sender<VerifyProgress>,
    started: Instant,
    rate: &mut Option<RateMeter>,
) {
    let m = &ctx.meter;
    let docs = m.compared_docs.load(Ordering::Relaxed);
    let bytes = m.compared_bytes.load(Ordering::Relaxed);
    let total_bytes = m.estimated_bytes.load(Ordering::Relaxed);
    let phase = *m.phase.lock().unwrap_or_else(|e| e.into_inner());
    let elapsed = started.elapsed().as_secs_f64();
    let (bps, eta) = match rate.as_mut() {
        Some(r) => {
            r.record(Instant::now(), bytes);
            let eta = match phase {
                VerifyPhase::Documents => r.eta(bytes, total_bytes.max(bytes)),
                VerifyPhase::Done => Some(0.0),
                _ => None,
            };
            (r.per_second(), eta)
        }
        // The final figure: the average over the whole run.
        None if elapsed > 0.0 => (bytes as f64 / elapsed, Some(0.0)),
        None => (0.0, Some(0.0)),
    };
    let avg_doc = if docs > 0 {
        bytes as f64 / docs as f64
    } else {
        0.0
    };
    let p = VerifyProgress {
        phase,
        namespaces_total: m.namespaces_total.load(Ordering::Relaxed),
        namespaces_done: m.namespaces_done.load(Ordering::Relaxed),
        estimated_total_docs: m.estimated_docs.load(Ordering::Relaxed),
        estimated_total_bytes: total_bytes,
        compared_docs: docs,
        compared_bytes: bytes,
        docs_per_second: if avg_doc > 0.0 { bps / avg_doc } else { 0.0 },
        bytes_per_second: bps,
        eta_seconds: eta,
        differences: m.differences.load(Ordering::Relaxed),
        pending_rechecks: ctx.rechecks.as_ref().map(|r| r.len() as u64).unwrap_or(0),
        elapsed_seconds: elapsed,
    };
    tx.send_replace(p);
}

/// The verification itself; returns every namespace it looked at.
async fn work(ctx: &Arc<Ctx>, scope: &Scope) -> Result<Vec<Namespace>> {
    // Live: the change streams start before anything is read, so every
    // change after a document was compared is seen.
    let _watchers = match &ctx.rechecks {
        Some(r) => Some(recheck::start_watchers(ctx, r.clone(), scope.clone()).await?),
        None => None,
    };
    ctx.set_phase(VerifyPhase::Metadata);
    let (src_ns, dst_ns) = tokio::try_join!(
        catalog::list_namespaces(&ctx.src, scope),
        catalog::list_namespaces(&ctx.dest, scope),
    )?;
    let mut all: Vec<Namespace> = src_ns
        .iter()
        .chain(dst_ns.iter())
        .map(|n| n.ns.clone())
        .collect();
    all.sort();
    all.dedup();
    ctx.meter
        .namespaces_total
        .store(all.len() as u64, Ordering::Relaxed);
    // The destination's kind first, then the source's over it: a
    // namespace on both sides is described as the source has it.
    for n in src_ns.iter().chain(dst_ns.iter()).rev() {
        let kind = kind_name(n.kind).to_string();
        ctx.stats(&n.ns.to_string(), |s| s.kind = kind);
    }
    let pairs = pair_up(&src_ns, &dst_ns);
    if !ctx.is_live() {
        metadata::compare(ctx, &pairs).await?;
    }
    match ctx.options.mode {
        VerifyMode::Quick => {
            metadata::counts(ctx, &pairs).await?;
            ctx.meter
                .namespaces_done
                .store(all.len() as u64, Ordering::Relaxed);
        }
        VerifyMode::Full => {
            ctx.set_phase(VerifyPhase::Documents);
            documents::compare_all(ctx, &pairs).await?;
        }
    }
    if let Some(r) = &ctx.rechecks {
        ctx.set_phase(VerifyPhase::Recheck);
        recheck::converge(ctx, r, scope).await?;
        // The namespaces as they stand once the source has settled.
        let (src_ns, dst_ns) = tokio::try_join!(
            catalog::list_namespaces(&ctx.src, scope),
            catalog::list_namespaces(&ctx.dest, scope),
        )?;
        let pairs = pair_up(&src_ns, &dst_ns);
        metadata::compare(ctx, &pairs).await?;
        for p in &pairs {
            if !all.contains(&p.ns) {
                all.push(p.ns.clone());
            }
        }
        all.sort();
    }
    for (ns, note) in notes(&pairs, ctx.options.mode) {
        ctx.stats(&ns.to_string(), |s| {
            // A TTL collection's counts already have their note.
            s.note = Some(match s.note.take() {
                Some(counted) => format!("{note}; {counted}"),
                None => note,
            });
        });
    }
    Ok(all)
}

/// A namespace as each side has it.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub ns: Namespace,
    pub src: Option<SourceNamespace>,
    pub dst: Option<SourceNamespace>,
}

fn pair_up(src: &[SourceNamespace], dst: &[SourceNamespace]) -> Vec<Pair> {
    let mut by_ns: BTreeMap<Namespace, Pair> = BTreeMap::new();
    for s in src {
        by_ns.insert(
            s.ns.clone(),
            Pair {
                ns: s.ns.clone(),
                src: Some(s.clone()),
                dst: None,
            },
        );
    }
    for d in dst {
        by_ns
            .entry(d.ns.clone())
            .or_insert_with(|| Pair {
                ns: d.ns.clone(),
                src: None,
                dst: None,
            })
            .dst = Some(d.clone());
    }
    by_ns.into_values().collect()
}

pub(crate) fn kind_name(kind: NsKind) -> &'static str {
    match kind {
        NsKind::Collection => "collection",
        NsKind::View => "view",
        NsKind::Timeseries => "timeseries",
    }
}

/// Why some namespaces' documents are not compared one by one.
fn notes(pairs: &[Pair], mode: VerifyMode) -> Vec<(Namespace, String)> {
    let mut out = Vec::new();
    for p in pairs {
        let note = match (&p.src, &p.dst) {
            (Some(_), None) => "missing on the destination: its documents were not compared",
            (None, Some(_)) => "only on the destination: its documents were not compared",
            (Some(s), Some(d)) if s.kind != d.kind => {
                "a different kind of namespace on each side: documents not compared"
            }
            (Some(s), Some(_)) => match s.kind {
                NsKind::View => {
                    "a view: its definition is compared; its documents come from its collection"
                }
                NsKind::Timeseries if mode == VerifyMode::Full => {
                    "time-series: counted, not compared document by document"
                }
                _ => continue,
            },
            (None, None) => continue,
        };
        out.push((p.ns.clone(), note.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_serialize_with_snake_case_kinds_and_camel_case_fields() {
        let d = Difference {
            namespace: "shop.orders".into(),
            kind: DifferenceKind::MissingOnDestination,
            id: Some(diff::id_json(&bson::Bson::Int64(5))),
            index: None,
            field_paths: vec![],
            fields: vec![],
            detail: "x".into(),
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["kind"], "missing_on_destination");
        assert_eq!(v["id"], serde_json::json!({ "$numberLong": "5" }));
        assert_eq!(v["fieldPaths"], serde_json::json!([]));
        assert_eq!(d.id_text().as_deref(), Some("5"));
        let back: Difference = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
        for k in [DifferenceKind::Type, DifferenceKind::IndexOptions] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn the_ndjson_sink_writes_one_line_per_difference() {
        let mut buf = Vec::new();
        {
            let mut sink = NdjsonSink::new(&mut buf, "mem".into());
            for n in 0..3 {
                sink.record(&Difference::namespace_level(
                    &Namespace::new("a", format!("c{n}")),
                    DifferenceKind::Count,
                    "counts differ".into(),
                ))
                .unwrap();
            }
            sink.finish().unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let d: Difference = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(d.namespace, "a.c2");
    }

    #[test]
    fn options_default_to_a_full_order_insensitive_verification() {
        let o: VerifyOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(o.mode, VerifyMode::Full);
        assert!(!o.strict_field_order);
        assert!(o.live.is_none());
        let o: VerifyOptions =
            serde_json::from_value(serde_json::json!({ "mode": "quick", "live": {"recheckIntervalSeconds": 0.5, "settleSeconds": 3.0} })).unwrap();
        assert_eq!(o.mode, VerifyMode::Quick);
        assert_eq!(o.live.unwrap().settle_seconds, 3.0);
    }
}
