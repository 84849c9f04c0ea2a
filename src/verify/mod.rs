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
//! - **Time-series collections**: a time-series collection `db.X` is a
//!   view over its buckets, `db.system.buckets.X`, which a migration copies
//!   and follows as they are stored. Full mode compares the buckets byte
//!   for byte like any collection; both modes compare the options and
//!   indexes of each and count the measurements of `db.X`.
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

mod context;
pub mod diff;
pub mod documents;
mod matcher;
pub mod metadata;
mod options;
mod queue;
pub mod recheck;
pub mod report;
mod sink;
pub mod ttl;

pub use options::{LiveOptions, VerifyOptions};
pub use report::{
    Difference, DifferenceKind, FieldChange, FieldDifference, NamespaceSummary, VerifyMode,
    VerifyReport, MAX_SAMPLES,
};
pub use sink::{DifferenceSink, NdjsonSink, NullSink, VecSink};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, NsKind, SourceNamespace};
use crate::cluster::{Cluster, Topology};
use crate::error::{Error, Result, Role};
use crate::progress::{RateMeter, VerifyPhase, VerifyProgress};
use crate::scope::{Namespace, Scope};
use context::{kind_name, Ctx, Meter, Pair};
use queue::Rechecks;

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
            .map(|l| Arc::new(Rechecks::new(l)));
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
                    "time-series: its measurements are counted; its buckets are compared byte for byte"
                }
                NsKind::Collection if p.ns.timeseries_of_buckets().is_some() => {
                    "the buckets of a time-series collection, as they are stored"
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

    #[test]
    fn time_series_notes_say_what_is_counted_and_what_is_compared() {
        let side = |ns: &Namespace, kind| SourceNamespace {
            ns: ns.clone(),
            kind,
            uuid: None,
            options: bson::Document::new(),
        };
        let pair = |ns: &str, kind| {
            let ns = Namespace::parse(ns).unwrap();
            Pair {
                src: Some(side(&ns, kind)),
                dst: Some(side(&ns, kind)),
                ns,
            }
        };
        let pairs = [
            pair("iot.m", NsKind::Timeseries),
            pair("iot.system.buckets.m", NsKind::Collection),
            pair("iot.plain", NsKind::Collection),
        ];
        let full = notes(&pairs, VerifyMode::Full);
        let names: Vec<String> = full.iter().map(|(ns, _)| ns.to_string()).collect();
        assert_eq!(names, ["iot.m", "iot.system.buckets.m"]);
        assert!(full[0].1.contains("measurements are counted"), "{full:?}");
        assert!(full[0].1.contains("buckets are compared byte for byte"));
        // Quick mode counts everything: only the buckets are explained.
        let quick = notes(&pairs, VerifyMode::Quick);
        assert_eq!(quick.len(), 1);
        assert_eq!(quick[0].0.to_string(), "iot.system.buckets.m");
    }
}
