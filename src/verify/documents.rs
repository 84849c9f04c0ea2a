//! Full verification: every document of every collection both sides hold,
//! compared with its counterpart.
//!
//! Each collection is planned into `_id` ranges as the copy plans them
//! (a sorted `$sample`, then `find` with `hint({_id: 1})` plus `min`/`max`
//! index bounds, which hold every BSON type, so no `_id` falls between
//! ranges). Both sides of a range are read in parallel by two reader
//! tasks, in the same index order, and merged by a [`Matcher`]: documents
//! whose `_id`s arrive together are compared at once; one that has no
//! partner yet waits a little, and one that cannot have a partner any more
//! is settled by looking both sides up by `_id` (`$in`). Capped
//! collections are read in natural order, whose sequence is checked too
//! when the destination claims to be final.
//!
//! A time-series collection's buckets (`system.buckets.<name>`) are
//! compared byte for byte like any collection, in the ranges of their
//! `_id`s (ObjectIds holding each bucket's time, which the buckets'
//! validator requires). They are clustered by `_id` without an `_id` index
//! to hint (5.0 refuses the hint), so their ranges are read with an `_id`
//! filter, which both 5.0 and 6.0 turn into a bounded scan of the cluster
//! in `_id` order. The time-series collection itself, a view of its
//! buckets with no `_id` order, is compared by its count of measurements.
//!
//! A collection whose default collation differs between the sides has a
//! different `_id` order on each, so it is compared by lookups instead: the
//! source's documents are looked up on the destination, then the
//! destination's `_id`s on the source.
//!
//! A document found on one side only is a difference unless a TTL of the
//! source may delete it before the verification ends ([`super::ttl`]):
//! each side's TTL monitor deletes expired documents on its own schedule,
//! so such a document is counted as skipped instead. The check happens
//! where every lone document is settled, [`lookup_compare`], with the
//! cutoff taken at that moment.
//!
//! **Memory is bounded** whatever the size of the data: per range, two
//! channels of one batch each, the matcher's waiting documents (capped by
//! [`PENDING_BUDGET`], beyond which the oldest are settled by lookup), and
//! one lookup batch. Differences leave through the sink as they are found.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bson::{doc, rawdoc, Bson, RawDocument, RawDocumentBuf, Timestamp};
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::context::{Ctx, Pair};
use super::diff::{self, id_key_owned, value_key};
use super::matcher::{Matched, Matcher, Side};
use super::report::{Difference, DifferenceKind, FieldChange, FieldDifference};
use crate::catalog::{self, NsKind};
use crate::cluster::Cluster;
use crate::copy;
use crate::error::{Error, MongoContext, Result};
use crate::retry::{self, with_retry, Backoff};
use crate::scope::Namespace;

/// Documents waiting for their partner, per range, before the oldest are
/// settled by lookup instead.
pub const PENDING_BUDGET: usize = 4 * 1024 * 1024;
/// Source documents per range, at most: with small documents a range of
/// many megabytes would hold millions, and what a range remembers grows
/// with its documents in the worst case.
const MAX_RANGE_DOCS: u64 = 200_000;
/// Ranges per collection, at most.
const MAX_RANGES: usize = 4096;
/// `_id`s per lookup.
const LOOKUP_IDS: usize = 500;
/// Bytes of documents per lookup.
const LOOKUP_BYTES: usize = 4 * 1024 * 1024;
/// Documents per batch a reader hands over, at most.
const BATCH_DOCS: usize = 10_000;
/// The server's cursor batch size.
const CURSOR_BATCH: i32 = 4_000;

/// One unit of work: a range of one collection, or a whole collection
/// compared by lookups.
#[derive(Debug, Clone)]
struct Job {
    ns: Namespace,
    min: Option<Bson>,
    max: Option<Bson>,
    natural: bool,
    /// Read by an `_id` filter rather than by the `_id` index.
    id_filter: bool,
    check_order: bool,
    by_lookup: bool,
    tally: Arc<Tally>,
}

/// Ranges left of one namespace, to time it and count it done.
#[derive(Debug)]
struct Tally {
    left: AtomicUsize,
    started: OnceLock<Instant>,
}

/// Compares the documents of every collection both sides hold.
pub(crate) async fn compare_all(ctx: &Arc<Ctx>, pairs: &[Pair]) -> Result<()> {
    let mut collections = Vec::new();
    let mut timeseries = Vec::new();
    let mut others = 0u64;
    for p in pairs {
        match (&p.src, &p.dst) {
            (Some(s), Some(d)) if s.kind == NsKind::Collection && d.kind == NsKind::Collection => {
                collections.push(p.clone())
            }
            (Some(s), Some(d)) if s.kind == NsKind::Timeseries && d.kind == NsKind::Timeseries => {
                timeseries.push(p.clone())
            }
            _ => others += 1,
        }
    }
    ctx.meter
        .namespaces_done
        .fetch_add(others, Ordering::Relaxed);
    // A time-series collection has no `_id` order to read its
    // measurements in: they are counted, and its buckets, a collection of
    // their own, compared document by document.
    super::metadata::counts(ctx, &timeseries).await?;

    let plans: Vec<Vec<Job>> = stream::iter(collections)
        .map(|p| {
            let ctx = ctx.clone();
            async move { plan(&ctx, &p).await }
        })
        .buffered(8)
        .try_collect()
        .await?;
    let jobs: Vec<Job> = plans.into_iter().flatten().collect();
    tracing::info!(ranges = jobs.len(), "comparing documents");
    stream::iter(jobs)
        .map(|job| {
            let ctx = ctx.clone();
            let task = tokio::spawn(async move { run_job(&ctx, &job).await });
            async move {
                AbortOnDrop(Some(task))
                    .join()
                    .await
                    .unwrap_or_else(|e| Err(Error::Other(format!("a comparison task failed: {e}"))))
            }
        })
        .buffer_unordered(ctx.options.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn run_job(ctx: &Arc<Ctx>, job: &Job) -> Result<()> {
    job.tally.started.get_or_init(Instant::now);
    if job.by_lookup {
        compare_by_lookup(ctx, job).await?;
    } else {
        compare_range(ctx, job).await?;
    }
    if job.tally.left.fetch_sub(1, Ordering::AcqRel) == 1 {
        let seconds = job
            .tally
            .started
            .get()
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        ctx.stats(&job.ns.to_string(), |s| s.seconds = seconds);
        ctx.meter.namespaces_done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Splits a collection into the ranges to compare.
async fn plan(ctx: &Arc<Ctx>, p: &Pair) -> Result<Vec<Job>> {
    let (Some(s), Some(d)) = (&p.src, &p.dst) else {
        return Ok(Vec::new());
    };
    let ns = &p.ns;
    // Read now unless read from this very collection, so that one renamed
    // over this name during a live verification is judged by its own TTLs.
    ctx.ttls.of_source(&ctx.src, s).await?;
    let (docs, bytes) = copy::estimate(&ctx.src, ns).await?;
    ctx.meter.estimated_docs.fetch_add(docs, Ordering::Relaxed);
    ctx.meter
        .estimated_bytes
        .fetch_add(bytes, Ordering::Relaxed);
    let by_lookup = s.options.get("collation") != d.options.get("collation");
    let natural = s.is_capped() && !by_lookup;
    let points = if natural || by_lookup {
        Vec::new()
    } else {
        let parts = copy::partition_count(
            bytes,
            ctx.options.partition_bytes,
            ctx.options.concurrency.max(1),
            MAX_RANGES,
        )
        .max(docs.div_ceil(MAX_RANGE_DOCS) as usize)
        .min(MAX_RANGES);
        if parts > 1 {
            copy::split_points(&copy::sample_ids(&ctx.src, ns, parts).await?, parts)
        } else {
            Vec::new()
        }
    };
    let ranges = copy::bounds(points);
    let tally = Arc::new(Tally {
        left: AtomicUsize::new(ranges.len()),
        started: OnceLock::new(),
    });
    Ok(ranges
        .into_iter()
        .map(|(min, max)| Job {
            ns: ns.clone(),
            min,
            max,
            natural,
            id_filter: reads_by_id_filter(ns),
            // During a sync a capped collection is replayed like any other
            // and its natural order may differ until commit re-copies it.
            check_order: natural && !ctx.relaxed && !ctx.is_live(),
            by_lookup,
            tally: tally.clone(),
        })
        .collect())
}

/// Whether `ns` is read by an `_id` filter instead of its `_id` index:
/// the buckets of a time-series collection, clustered by `_id` with no
/// index of it that 5.0 lets a `find` hint.
fn reads_by_id_filter(ns: &Namespace) -> bool {
    ns.timeseries_of_buckets().is_some()
}

/// What a reader reads.
#[derive(Debug, Clone)]
struct ReadSpec {
    ns: Namespace,
    min: Option<Bson>,
    max: Option<Bson>,
    natural: bool,
    id_filter: bool,
    ids_only: bool,
}

fn bound(v: &Bson) -> Result<RawDocumentBuf> {
    RawDocumentBuf::from_document(&doc! { "_id": v.clone() })
        .map_err(|e| Error::Other(e.to_string()))
}

fn find_options(cluster: &Cluster, spec: &ReadSpec, from: Option<&Bson>) -> Result<RawDocumentBuf> {
    let filter = if spec.id_filter && !spec.natural {
        catalog::id_range_filter(from.or(spec.min.as_ref()), spec.max.as_ref())?
    } else {
        RawDocumentBuf::new()
    };
    let mut o = rawdoc! { "filter": filter, "batchSize": CURSOR_BATCH };
    if spec.natural {
        o.append("sort", rawdoc! { "$natural": 1 });
    } else if spec.id_filter {
        // A clustered collection is scanned in `_id` order; mongos merges
        // shards, and needs the sort to merge them in that order.
        if cluster.is_sharded() {
            o.append("sort", rawdoc! { "_id": 1 });
        }
    } else {
        o.append("hint", rawdoc! { "_id": 1 });
        // A replica set returns the hinted index's order; mongos merges
        // shards, and needs the sort to merge them in that order.
        if cluster.is_sharded() {
            o.append("sort", rawdoc! { "_id": 1 });
        }
        if let Some(min) = from.or(spec.min.as_ref()) {
            o.append("min", bound(min)?);
        }
        if let Some(max) = &spec.max {
            o.append("max", bound(max)?);
        }
    }
    if spec.ids_only {
        o.append("projection", rawdoc! { "_id": 1 });
    }
    Ok(o)
}

/// Reads one side of a range into `tx` in batches. A transient failure
/// reopens the cursor after the last `_id` handed over, so the reader's
/// consumer sees one unbroken stream (natural order cannot resume, so
/// there a failure after the first batch is final).
async fn read_side(
    cluster: Cluster,
    after: Option<Timestamp>,
    spec: ReadSpec,
    batch_bytes: usize,
    tx: mpsc::Sender<Vec<RawDocumentBuf>>,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let mut last: Option<(Bson, Vec<u8>)> = None;
    let mut backoff = Backoff::default();
    let started = tokio::time::Instant::now();
    loop {
        let attempt = read_once(&cluster, after, &spec, batch_bytes, &tx, &cancel, &mut last).await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(e)
                if e.is_transient()
                    && started.elapsed() < retry::GIVE_UP_AFTER
                    && !(spec.natural && last.is_some()) =>
            {
                let delay = backoff.next_delay();
                tracing::warn!(ns = %spec.ns, error = %e, ?delay, "verification read interrupted; resuming");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(Error::Interrupted),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

async fn read_once(
    cluster: &Cluster,
    after: Option<Timestamp>,
    spec: &ReadSpec,
    batch_bytes: usize,
    tx: &mpsc::Sender<Vec<RawDocumentBuf>>,
    cancel: &tokio_util::sync::CancellationToken,
    last: &mut Option<(Bson, Vec<u8>)>,
) -> Result<()> {
    let from = last.as_ref().map(|(id, _)| id);
    let options = find_options(cluster, spec, from)?;
    // A read bounded below and not above stops short of `_id: MaxKey`
    // (see `catalog::max_key_document`), unless it was handed over already.
    let short_of_max_key = !spec.natural
        && !spec.id_filter
        && spec.max.is_none()
        && from.or(spec.min.as_ref()).is_some();
    let mut ended_at_max_key = matches!(from, Some(Bson::MaxKey));
    let Some(mut cursor) = catalog::find_raw_after(cluster, &spec.ns, options, after).await? else {
        return Ok(()); // dropped meanwhile: nothing to read
    };
    let op = format!("read {}", spec.ns);
    let mut batch: Vec<RawDocumentBuf> = Vec::new();
    let mut bytes = 0usize;
    // `min` is inclusive: after a resume, the first document may be the
    // one already handed over.
    let mut skip_key = last.as_ref().map(|(_, k)| k.clone());
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return Err(Error::Interrupted),
            n = cursor.try_next() => n.ctx(cluster.role, &op)?,
        };
        let Some(doc) = next else { break };
        if let Some(k) = skip_key.take() {
            if id_key_owned(&doc)? == k {
                continue;
            }
        }
        if short_of_max_key {
            ended_at_max_key = catalog::has_max_key_id(&doc);
        }
        bytes += doc.as_bytes().len();
        batch.push(doc);
        if bytes >= batch_bytes || batch.len() >= BATCH_DOCS {
            hand_over(&mut batch, &mut bytes, tx, last).await?;
        }
    }
    if short_of_max_key && !ended_at_max_key {
        if let Some(doc) =
            catalog::max_key_document(cluster, &spec.ns, None, after, spec.ids_only).await?
        {
            bytes += doc.as_bytes().len();
            batch.push(doc);
        }
    }
    hand_over(&mut batch, &mut bytes, tx, last).await
}

async fn hand_over(
    batch: &mut Vec<RawDocumentBuf>,
    bytes: &mut usize,
    tx: &mpsc::Sender<Vec<RawDocumentBuf>>,
    last: &mut Option<(Bson, Vec<u8>)>,
) -> Result<()> {
    let Some(tail) = batch.last() else {
        return Ok(());
    };
    let tail_id = id_of(tail)?;
    let tail_key = id_key_owned(tail)?;
    *bytes = 0;
    if tx.send(std::mem::take(batch)).await.is_err() {
        // The comparison stopped (it failed, or was cancelled): its error
        // is the one reported.
        return Err(Error::Interrupted);
    }
    *last = Some((tail_id, tail_key));
    Ok(())
}

/// The `_id` of a document, decoded.
pub(crate) fn id_of(doc: &RawDocument) -> Result<Bson> {
    let raw = doc
        .get("_id")
        .map_err(|e| Error::Other(format!("a document is not valid BSON: {e}")))?
        .ok_or_else(|| Error::Other("a document has no _id".into()))?;
    Bson::try_from(raw.to_raw_bson()).map_err(|e| Error::Other(e.to_string()))
}

/// A reader task whose end the consumer can wait for.
struct AbortOnDrop(Option<JoinHandle<Result<()>>>);

impl AbortOnDrop {
    async fn join(mut self) -> std::result::Result<Result<()>, tokio::task::JoinError> {
        match self.0.take() {
            Some(h) => h.await,
            None => Ok(Ok(())),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// The documents of one side, in order, one at a time.
struct Feed {
    rx: mpsc::Receiver<Vec<RawDocumentBuf>>,
    buf: std::vec::IntoIter<RawDocumentBuf>,
    reader: Option<AbortOnDrop>,
    done: bool,
}

impl Feed {
    fn start(ctx: &Ctx, cluster: &Cluster, spec: ReadSpec) -> Feed {
        let (tx, rx) = mpsc::channel(1);
        let reader = tokio::spawn(read_side(
            cluster.clone(),
            ctx.read_after(cluster),
            spec,
            ctx.options.batch_bytes.max(64 * 1024),
            tx,
            ctx.cancel.clone(),
        ));
        Feed {
            rx,
            buf: Vec::new().into_iter(),
            reader: Some(AbortOnDrop(Some(reader))),
            done: false,
        }
    }

    /// The next document; `None` once the side is read to its end. A
    /// reader that failed fails this, before its missing documents could
    /// be mistaken for differences.
    async fn next(&mut self) -> Result<Option<RawDocumentBuf>> {
        loop {
            if let Some(d) = self.buf.next() {
                return Ok(Some(d));
            }
            if self.done {
                return Ok(None);
            }
            match self.rx.recv().await {
                Some(batch) => self.buf = batch.into_iter(),
                None => {
                    self.done = true;
                    if let Some(reader) = self.reader.take() {
                        reader
                            .join()
                            .await
                            .map_err(|e| Error::Other(format!("a reader task failed: {e}")))??;
                    }
                }
            }
        }
    }
}

/// `_id`s to settle by lookup, gathered until a batch is worth a query.
#[derive(Default)]
struct Lookups {
    ids: Vec<Bson>,
    keys: HashSet<Vec<u8>>,
    bytes: usize,
}

impl Lookups {
    fn add(&mut self, doc: &RawDocument) -> Result<()> {
        let id = id_of(doc)?;
        if self.keys.insert(value_key(&id)) {
            self.ids.push(id);
            self.bytes += doc.as_bytes().len();
        }
        Ok(())
    }

    fn full(&self) -> bool {
        self.ids.len() >= LOOKUP_IDS || self.bytes >= LOOKUP_BYTES
    }

    async fn settle(&mut self, ctx: &Ctx, ns: &Namespace) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let ids = std::mem::take(&mut self.ids);
        self.keys.clear();
        self.bytes = 0;
        for (id, found) in lookup_compare(ctx, ns, &ids).await? {
            if let Some(d) = found {
                ctx.document_difference(&id, d).await?;
            }
        }
        Ok(())
    }
}

/// Local tallies, added to the shared ones every few thousand documents.
#[derive(Default)]
struct Counted {
    docs: u64,
    bytes: u64,
    dest_docs: u64,
    unflushed_docs: u64,
    unflushed_bytes: u64,
}

impl Counted {
    fn source(&mut self, ctx: &Ctx, doc: &RawDocument) {
        let b = doc.as_bytes().len() as u64;
        self.docs += 1;
        self.bytes += b;
        self.unflushed_docs += 1;
        self.unflushed_bytes += b;
        if self.unflushed_docs >= 2_000 {
            self.flush(ctx);
        }
    }

    fn flush(&mut self, ctx: &Ctx) {
        ctx.meter
            .compared_docs
            .fetch_add(self.unflushed_docs, Ordering::Relaxed);
        ctx.meter
            .compared_bytes
            .fetch_add(self.unflushed_bytes, Ordering::Relaxed);
        self.unflushed_docs = 0;
        self.unflushed_bytes = 0;
    }

    fn finish(mut self, ctx: &Ctx, ns: &Namespace) {
        self.flush(ctx);
        ctx.stats(&ns.to_string(), |s| {
            s.documents_compared += self.docs;
            s.bytes_compared += self.bytes;
            *s.source_documents.get_or_insert(0) += self.docs;
            *s.destination_documents.get_or_insert(0) += self.dest_docs;
        });
    }
}

/// Compares one `_id` range of a collection, both sides read in parallel.
async fn compare_range(ctx: &Arc<Ctx>, job: &Job) -> Result<()> {
    let spec = ReadSpec {
        ns: job.ns.clone(),
        min: job.min.clone(),
        max: job.max.clone(),
        natural: job.natural,
        id_filter: job.id_filter,
        ids_only: false,
    };
    let mut src = Feed::start(ctx, &ctx.src, spec.clone());
    let mut dst = Feed::start(ctx, &ctx.dest, spec);
    let mut matcher = Matcher::new(job.natural, PENDING_BUDGET);
    let mut lookups = Lookups::default();
    let mut counted = Counted::default();
    let mut out: Vec<Matched> = Vec::new();
    loop {
        let (s, d) = tokio::try_join!(src.next(), dst.next())?;
        if s.is_none() && d.is_none() {
            break;
        }
        if s.is_none() {
            matcher.end(Side::Source, &mut out);
        }
        if d.is_none() {
            matcher.end(Side::Destination, &mut out);
        }
        if let Some(s) = &s {
            counted.source(ctx, s);
        }
        if d.is_some() {
            counted.dest_docs += 1;
        }
        match (s, d) {
            (Some(s), Some(d)) => match matcher.try_step(s, d)? {
                Ok((s, d)) => compare_pair(ctx, &job.ns, &s, &d).await?,
                Err((s, d)) => {
                    matcher.push(Side::Source, s, &mut out)?;
                    matcher.push(Side::Destination, d, &mut out)?;
                }
            },
            (Some(s), None) => matcher.push(Side::Source, s, &mut out)?,
            (None, Some(d)) => matcher.push(Side::Destination, d, &mut out)?,
            (None, None) => {}
        }
        for m in out.drain(..) {
            match m {
                Matched::Pair(s, d) => compare_pair(ctx, &job.ns, &s, &d).await?,
                Matched::Unresolved(doc) => lookups.add(&doc)?,
            }
        }
        if lookups.full() {
            lookups.settle(ctx, &job.ns).await?;
        }
    }
    matcher.finish(&mut out);
    for m in out.drain(..) {
        if let Matched::Unresolved(doc) = m {
            lookups.add(&doc)?;
            if lookups.full() {
                lookups.settle(ctx, &job.ns).await?;
            }
        }
    }
    lookups.settle(ctx, &job.ns).await?;
    counted.finish(ctx, &job.ns);
    if job.check_order && matcher.order_broken {
        ctx.report(Difference::namespace_level(
            &job.ns,
            DifferenceKind::DocumentOrder,
            "The capped collection holds its documents in another natural (insertion) order on the destination.".into(),
        ))
        .await?;
    }
    Ok(())
}

async fn compare_pair(ctx: &Ctx, ns: &Namespace, s: &RawDocument, d: &RawDocument) -> Result<()> {
    if s.as_bytes() == d.as_bytes() {
        return Ok(());
    }
    if let Some(found) = difference(ns, Some(s), Some(d), ctx.options.strict_field_order)? {
        let id = id_of(s)?;
        ctx.document_difference(&id, found).await?;
    }
    Ok(())
}

/// The difference between a document's two versions, if any; either may
/// be absent.
pub(crate) fn difference(
    ns: &Namespace,
    src: Option<&RawDocument>,
    dst: Option<&RawDocument>,
    strict: bool,
) -> Result<Option<Difference>> {
    let (kind, fields, truncated, id) = match (src, dst) {
        (None, None) => return Ok(None),
        (Some(s), None) => (
            DifferenceKind::MissingOnDestination,
            Vec::new(),
            false,
            id_of(s)?,
        ),
        (None, Some(d)) => (
            DifferenceKind::ExtraOnDestination,
            Vec::new(),
            false,
            id_of(d)?,
        ),
        (Some(s), Some(d)) => match diff::diff(s, d, strict)? {
            None => return Ok(None),
            Some(dd) => (dd.kind, dd.fields, dd.truncated, id_of(s)?),
        },
    };
    let listed = |fields: &[FieldDifference]| {
        let mut names: Vec<&str> = fields.iter().take(5).map(|f| f.path.as_str()).collect();
        if fields.len() > 5 || truncated {
            names.push("...");
        }
        names.join(", ")
    };
    let detail = match kind {
        DifferenceKind::MissingOnDestination => {
            "The document is on the source but not on the destination.".to_string()
        }
        DifferenceKind::ExtraOnDestination => {
            "The document is on the destination but not on the source.".to_string()
        }
        DifferenceKind::Type => format!(
            "The same numbers are stored as other types: {}.",
            listed(&fields)
        ),
        DifferenceKind::FieldOrder => format!("Fields are in another order: {}.", listed(&fields)),
        _ => {
            let changed: Vec<_> = fields
                .iter()
                .filter(|f| !matches!(f.change, FieldChange::Type | FieldChange::Order))
                .cloned()
                .collect();
            format!("Fields differ: {}.", listed(&changed))
        }
    };
    let mut d = Difference::namespace_level(ns, kind, detail).with_fields(fields);
    d.id = Some(diff::id_json(&id));
    Ok(Some(d))
}

/// Reads the documents with these `_id`s from one side.
async fn fetch(
    ctx: &Ctx,
    cluster: &Cluster,
    ns: &Namespace,
    ids: &[Bson],
    ids_only: bool,
) -> Result<Vec<RawDocumentBuf>> {
    let mut options = doc! {
        "filter": { "_id": { "$in": ids.to_vec() } },
        "batchSize": CURSOR_BATCH,
    };
    if ids_only {
        options.insert("projection", doc! { "_id": 1 });
    }
    let options =
        RawDocumentBuf::from_document(&options).map_err(|e| Error::Other(e.to_string()))?;
    let Some(cursor) =
        catalog::find_raw_after(cluster, ns, options, ctx.read_after(cluster)).await?
    else {
        return Ok(Vec::new());
    };
    cursor
        .try_collect()
        .await
        .ctx(cluster.role, &format!("read {ns} by _id"))
}

async fn fetch_both(
    ctx: &Ctx,
    ns: &Namespace,
    ids: &[Bson],
) -> Result<(Vec<RawDocumentBuf>, Vec<RawDocumentBuf>)> {
    tokio::try_join!(
        fetch(ctx, &ctx.src, ns, ids, false),
        fetch(ctx, &ctx.dest, ns, ids, false)
    )
}

/// Looks `ids` up on both sides and compares what each holds: the
/// authoritative comparison of documents that were not paired in step,
/// and of rechecked ones. Returns every id with its difference, if any.
/// A document on one side only that a TTL may delete before the
/// verification ends is no difference; it is counted as skipped.
pub(crate) async fn lookup_compare(
    ctx: &Ctx,
    ns: &Namespace,
    ids: &[Bson],
) -> Result<Vec<(Bson, Option<Difference>)>> {
    let ttls = with_retry(&format!("read the TTLs of {ns}"), &ctx.cancel, || {
        ctx.ttls.of(&ctx.src, ns)
    })
    .await?;
    let (src_docs, dst_docs) = with_retry(&format!("compare {ns} by _id"), &ctx.cancel, || {
        fetch_both(ctx, ns, ids)
    })
    .await?;
    // Taken after the reads, when the comparison happens.
    let cutoffs = (!ttls.is_empty()).then(|| ttls.now());
    let mut expiring = 0u64;
    let by_key = |docs: Vec<RawDocumentBuf>| -> Result<HashMap<Vec<u8>, RawDocumentBuf>> {
        docs.into_iter()
            .map(|d| Ok((value_key(&id_of(&d)?), d)))
            .collect()
    };
    let mut src = by_key(src_docs)?;
    let mut dst = by_key(dst_docs)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let k = value_key(id);
        let (s, d) = (src.remove(&k), dst.remove(&k));
        let lone = match (&s, &d) {
            (Some(one), None) | (None, Some(one)) => Some(one),
            _ => None,
        };
        if let (Some(c), Some(one)) = (&cutoffs, lone) {
            if c.may_expire(one) {
                expiring += 1;
                out.push((id.clone(), None));
                continue;
            }
        }
        let found = difference(
            ns,
            s.as_deref(),
            d.as_deref(),
            ctx.options.strict_field_order,
        )?;
        out.push((id.clone(), found));
    }
    if expiring > 0 {
        tracing::debug!(%ns, documents = expiring, "documents on one side only that a TTL may delete: not differences");
        ctx.expiring_skipped(ns, expiring);
    }
    Ok(out)
}

/// Compares a collection whose `_id` order differs between the sides
/// (another collation): the source's documents are looked up on the
/// destination, then the destination's `_id`s on the source.
async fn compare_by_lookup(ctx: &Arc<Ctx>, job: &Job) -> Result<()> {
    let ns = &job.ns;
    let mut counted = Counted::default();
    let spec = |ids_only| ReadSpec {
        ns: ns.clone(),
        min: None,
        max: None,
        natural: false,
        id_filter: job.id_filter,
        ids_only,
    };
    let mut src = Feed::start(ctx, &ctx.src, spec(false));
    let mut lookups = Lookups::default();
    while let Some(doc) = src.next().await? {
        counted.source(ctx, &doc);
        lookups.add(&doc)?;
        if lookups.full() {
            lookups.settle(ctx, ns).await?;
        }
    }
    lookups.settle(ctx, ns).await?;

    let mut dst = Feed::start(ctx, &ctx.dest, spec(true));
    let mut batch: Vec<Bson> = Vec::new();
    loop {
        let next = dst.next().await?;
        let end = next.is_none();
        if let Some(doc) = next {
            counted.dest_docs += 1;
            batch.push(id_of(&doc)?);
        }
        if batch.len() >= LOOKUP_IDS || (end && !batch.is_empty()) {
            let present: HashSet<Vec<u8>> = fetch(ctx, &ctx.src, ns, &batch, true)
                .await?
                .iter()
                .map(|d| id_of(d).map(|id| value_key(&id)))
                .collect::<Result<_>>()?;
            let absent: Vec<Bson> = std::mem::take(&mut batch)
                .into_iter()
                .filter(|id| !present.contains(&value_key(id)))
                .collect();
            if !absent.is_empty() {
                for (id, found) in lookup_compare(ctx, ns, &absent).await? {
                    if let Some(d) = found {
                        ctx.document_difference(&id, d).await?;
                    }
                }
            }
        }
        if end {
            break;
        }
    }
    counted.finish(ctx, ns);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: i32, v: i32) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&doc! { "_id": id, "v": v, "pad": "x".repeat(100) }).unwrap()
    }

    #[test]
    fn the_difference_of_two_versions_names_its_kind_and_id() {
        let ns = Namespace::new("a", "b");
        let x = d(7, 1);
        let y = d(7, 2);
        let found = difference(&ns, Some(&x), Some(&y), false).unwrap().unwrap();
        assert_eq!(found.kind, DifferenceKind::Different);
        assert_eq!(found.field_paths, vec!["v".to_string()]);
        assert_eq!(found.id, Some(serde_json::json!({ "$numberInt": "7" })));
        let missing = difference(&ns, Some(&x), None, false).unwrap().unwrap();
        assert_eq!(missing.kind, DifferenceKind::MissingOnDestination);
        assert!(difference(&ns, Some(&x), Some(&x), true).unwrap().is_none());
    }

    #[test]
    fn buckets_are_read_by_id_ranges() {
        assert!(reads_by_id_filter(&Namespace::new(
            "iot",
            "system.buckets.m"
        )));
        assert!(!reads_by_id_filter(&Namespace::new("iot", "m")));
    }
}
