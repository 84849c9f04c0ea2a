//! The initial copy: plan each collection into ranges, create the
//! namespaces on the destination, and copy the ranges in parallel as raw
//! BSON with unordered bulk inserts.
//!
//! **Architecture Invariant:** documents are never decoded, and no
//! document can fall between two ranges. Record-id ranges are collection
//! scans bounded by the scan itself (`$_resumeAfter`, then a stop past the
//! upper bound); `_id` ranges are read with `hint({_id: 1})` plus
//! `min`/`max`, which are index bounds rather than a query filter, so a
//! range holds every BSON type between its bounds (the last range, whose
//! implicit upper bound excludes `_id: MaxKey`, fetches that one document
//! on its own).
//!
//! Memory is bounded by `copy_concurrency × 2 × batch_bytes`, whatever the
//! size of the data.

use std::collections::HashMap;
use std::sync::Arc;

use bson::{doc, rawdoc, Binary, Bson, Document, RawBson, RawDocumentBuf};
use futures_util::{stream, StreamExt, TryStreamExt};
use mongodb::raw_batch_cursor::{RawBatch, RawBatchCursor};
use mongodb::Database;
use tokio::sync::mpsc;

use self::batch::{strip_record_id, InsertBatch, RECORD_ID};

use crate::catalog::{self, NsKind, SourceNamespace};
use crate::checkpoint::{MigrationDoc, NamespaceDoc, PartitionDoc, ProblemDoc, RangeKey};
use crate::cluster::Cluster;
use crate::context::Ctx;
use crate::error::{Error, MongoContext, Result, Role};
use crate::retry::{self, with_retry};
use crate::scope::Namespace;
use crate::sharding;

mod batch;

/// Chooses `parts - 1` split points from a sample of `_id`s that the server
/// returned sorted in index order. Repeated values are dropped, so a range
/// is never empty by construction.
pub fn split_points(sorted_sample: &[Bson], parts: usize) -> Vec<Bson> {
    if parts <= 1 || sorted_sample.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Bson> = Vec::with_capacity(parts - 1);
    for i in 1..parts {
        let idx = i * sorted_sample.len() / parts;
        if let Some(v) = sorted_sample.get(idx) {
            if out.last() != Some(v) && Some(v) != sorted_sample.first() {
                out.push(v.clone());
            }
        }
    }
    out
}

/// Below this size a collection is copied as one range.
const MIN_SPLIT_BYTES: u64 = 8 * 1024 * 1024;

/// How many ranges a collection of `bytes` is split into: one per
/// `partition_bytes`, but at least one per parallel reader once the
/// collection is worth splitting, so that one big collection (the common
/// case) keeps every reader busy.
pub fn partition_count(bytes: u64, partition_bytes: u64, concurrency: usize, max: usize) -> usize {
    let by_size = bytes.div_ceil(partition_bytes.max(1)) as usize;
    let by_readers = if bytes >= MIN_SPLIT_BYTES {
        concurrency.min((bytes / MIN_SPLIT_BYTES) as usize)
    } else {
        1
    };
    by_size.max(by_readers).clamp(1, max.max(1))
}

/// The `(min, max]` bounds between split points, from no lower bound to
/// no upper bound (MinKey to MaxKey: every type).
pub fn bounds(points: Vec<Bson>) -> Vec<(Option<Bson>, Option<Bson>)> {
    let mut bounds: Vec<Option<Bson>> = vec![None];
    bounds.extend(points.into_iter().map(Some));
    bounds.push(None);
    bounds
        .windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .collect()
}

/// Turns split points into ranges covering everything, from no lower
/// bound to no upper bound.
pub fn ranges(ns: &str, points: Vec<Bson>, key: RangeKey, node: Option<&str>) -> Vec<PartitionDoc> {
    bounds(points)
        .into_iter()
        .enumerate()
        .map(|(n, (min, max))| PartitionDoc {
            id: format!("{ns}#{n}"),
            ns: ns.to_string(),
            n: n as u32,
            key,
            min,
            max,
            node: node.map(str::to_string),
            fallback_starts: Vec::new(),
            done: false,
            docs: 0,
            bytes: 0,
        })
        .collect()
}

/// Document count and uncompressed data size, summed over shards.
pub async fn estimate(src: &crate::cluster::Cluster, ns: &Namespace) -> Result<(u64, u64)> {
    let stats = catalog::storage_stats(src, ns)
        .await
        .ctx(Role::Source, &format!("read the size of {ns}"))?;
    if stats.count == 0 && ns.timeseries_of_buckets().is_some() {
        // `$collStats` counts no buckets (5.0 and 6.0); the collection's
        // metadata does.
        let count = src
            .client
            .database(&ns.db)
            .collection::<bson::Document>(&ns.coll)
            .estimated_document_count()
            .await
            .ctx(Role::Source, &format!("count the buckets of {ns}"))?;
        return Ok((count, stats.size));
    }
    Ok((stats.count, stats.size))
}

/// Plans one collection: records it, creates it on the destination, splits
/// it into ranges and records those.
async fn plan_collection(ctx: &Ctx, src_ns: &SourceNamespace) -> Result<()> {
    let ns = &src_ns.ns;
    let key = ns.to_string();
    let (docs, bytes) = estimate(&ctx.src, ns).await?;
    let record = NamespaceDoc {
        ns: key.clone(),
        kind: NsKind::Collection,
        uuid: src_ns.uuid.clone(),
        capped: src_ns.is_capped(),
        estimated_docs: docs,
        estimated_bytes: bytes,
        copied: false,
    };
    // Recorded before it is created, so that --fresh can always clean up.
    ctx.store.put_namespace(&record).await?;
    catalog::create_namespace(&ctx.dest, ns, &src_ns.options).await?;
    if ctx.dest.is_sharded() {
        sharding::shard_like_source(&ctx.src, &ctx.dest, ns).await?;
    }
    let parts = if src_ns.is_capped() {
        1
    } else {
        partition_count(
            bytes,
            ctx.tuning.partition_bytes,
            ctx.tuning.copy_concurrency,
            ctx.tuning.max_partitions,
        )
    };
    let planned = if parts <= 1 {
        ranges(&key, Vec::new(), RangeKey::Natural, None)
    } else {
        let sample = sample_ids(&ctx.src, ns, parts).await?;
        // Record ids are the storage order, so reading by them is
        // sequential where `_id` order (random UUIDs, mixed types) makes
        // every document a random read. They exist per node on a replica
        // set and equal `_id` on a clustered collection.
        let by_record_id = if ctx.src.is_sharded() || src_ns.is_clustered() {
            None
        } else {
            sample_record_ids(ctx, ns, src_ns.uuid.as_ref(), &sample).await?
        };
        match by_record_id {
            Some((node, sampled)) => {
                let points =
                    record_id_points(ctx, ns, src_ns.uuid.as_ref(), &node, &sampled, parts).await?;
                // Probed split points exist too: reserves for the ranges
                // after them.
                let mut known: Vec<i64> = sampled.iter().chain(&points).copied().collect();
                known.sort_unstable();
                known.dedup();
                record_id_ranges(&key, &node, &points, &known)
            }
            None => ranges(&key, split_points(&sample, parts), RangeKey::Id, None),
        }
    };
    ctx.store.put_partitions(&planned).await
}

/// A sample of the collection's `_id`s, sixteen for each of `parts`
/// ranges, sorted in index order by the server.
pub async fn sample_ids(src: &Cluster, ns: &Namespace, parts: usize) -> Result<Vec<Bson>> {
    let sample_size = (parts * 16).min(16_384) as i64;
    let coll = src.client.database(&ns.db).collection::<Document>(&ns.coll);
    let sample: Vec<Document> = coll
        .aggregate(vec![
            doc! { "$sample": { "size": sample_size } },
            doc! { "$project": { "_id": 1 } },
            doc! { "$sort": { "_id": 1 } },
        ])
        .await
        .ctx(Role::Source, &format!("sample {ns}"))?
        .try_collect()
        .await
        .ctx(Role::Source, &format!("sample {ns}"))?;
    Ok(sample
        .into_iter()
        .filter_map(|d| d.get("_id").cloned())
        .collect())
}

/// The record ids of the sampled documents, sorted, and the node they
/// belong to: the current primary, where they are looked up.
/// `None` where record ids cannot be had, and `_id` ranges serve instead.
async fn sample_record_ids(
    ctx: &Ctx,
    ns: &Namespace,
    uuid: Option<&Binary>,
    sample: &[Bson],
) -> Result<Option<(String, Vec<i64>)>> {
    let hello = ctx
        .src
        .client
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .ctx(Role::Source, "read its topology")?;
    let Ok(node) = hello.get_str("me") else {
        return Ok(None);
    };
    let options = rawdoc! {
        "filter": { "_id": { "$in": RawBson::Array(ids_array(sample)?) } },
        "projection": { "_id": 1 },
        "showRecordId": true,
        "batchSize": sample.len() as i32 + 1,
    };
    let Some(found) = record_id_docs(ctx, ns, uuid, node, options).await? else {
        return Ok(None);
    };
    let mut ids: Vec<i64> = found
        .iter()
        .filter_map(|d| d.get_i64(RECORD_ID).ok())
        .collect();
    if ids.len() < found.len() {
        // Not the 64-bit record ids of a plain collection.
        return Ok(None);
    }
    ids.sort_unstable();
    Ok(Some((node.to_string(), ids)))
}

/// How many record ids below its start a range keeps in reserve.
const FALLBACK_STARTS: usize = 8;

/// Record-id ranges split at `points`, each with the known record ids
/// (`known`, sorted) just below its start in reserve.
pub fn record_id_ranges(ns: &str, node: &str, points: &[i64], known: &[i64]) -> Vec<PartitionDoc> {
    let mut out = ranges(
        ns,
        points.iter().copied().map(Bson::Int64).collect(),
        RangeKey::RecordId,
        Some(node),
    );
    for p in &mut out {
        if let Some(Bson::Int64(min)) = p.min {
            let below = known.partition_point(|&r| r < min);
            p.fallback_starts = known[..below]
                .iter()
                .rev()
                .take(FALLBACK_STARTS)
                .copied()
                .collect();
        }
    }
    out
}

/// Split points for `parts` record-id ranges: quantiles of the sampled
/// record ids, plus record ids found by probing wherever the sample left a
/// range much wider than its share of the collection's record ids.
///
/// `$sample` is not uniform over recently written data: on a freshly
/// loaded 1 GB collection (the benchmark's) all its picks lay in the first
/// half of the record ids, which left the last range holding half the
/// documents and the copy running on one reader for half its time. Record
/// ids of a plain collection are handed out in insert order, so the gap
/// shows against the first and last record ids, and a record id in it
/// that exists is found by trying a few (`$_resumeAfter` fails on a
/// missing one).
async fn record_id_points(
    ctx: &Ctx,
    ns: &Namespace,
    uuid: Option<&Binary>,
    node: &str,
    sampled: &[i64],
    parts: usize,
) -> Result<Vec<i64>> {
    let as_bson: Vec<Bson> = sampled.iter().copied().map(Bson::Int64).collect();
    let mut points: Vec<i64> = split_points(&as_bson, parts)
        .iter()
        .filter_map(Bson::as_i64)
        .collect();
    let Some((first, last)) = edge_record_ids(ctx, ns, uuid, node).await? else {
        return Ok(points);
    };
    let wanted = gap_targets(&points, first, last, parts, ctx.tuning.max_partitions);
    // A gap of deleted record ids (a TTL or queue collection) is no gap in
    // the data: stop probing once several targets in a row find nothing,
    // and never probe more than a bounded number.
    let mut misses = 0;
    for target in wanted.into_iter().take(MAX_PROBED_TARGETS) {
        match existing_record_id(ctx, ns, uuid, node, target).await? {
            Some(found) => {
                points.push(found);
                misses = 0;
            }
            None if misses + 1 >= MAX_MISSED_TARGETS => break,
            None => misses += 1,
        }
    }
    points.sort_unstable();
    points.dedup();
    Ok(points)
}

/// Probed split points per collection, at most.
const MAX_PROBED_TARGETS: usize = 64;
/// Probed split points that find nothing in a row before probing stops.
const MAX_MISSED_TARGETS: usize = 4;

/// Record ids at which to split the ranges between `points` (and the
/// collection's `first` and `last` record ids) that are more than twice as
/// wide as `parts` equal ranges would be, so that none stays wider; at
/// most `max_ranges` ranges in all.
pub fn gap_targets(
    points: &[i64],
    first: i64,
    last: i64,
    parts: usize,
    max_ranges: usize,
) -> Vec<i64> {
    let parts = parts.max(1) as i64;
    let width = ((last - first) / parts).max(1);
    let mut edges = Vec::with_capacity(points.len() + 2);
    edges.push(first - 1);
    edges.extend(points.iter().copied().filter(|&p| p >= first && p < last));
    edges.push(last);
    let mut budget = max_ranges.saturating_sub(points.len() + 1);
    let mut out = Vec::new();
    for w in edges.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        if hi - lo <= 2 * width {
            continue;
        }
        let mut t = lo + width;
        while t < hi - width / 2 && budget > 0 {
            out.push(t);
            budget -= 1;
            t += width;
        }
    }
    out
}

/// The first and last record ids of the collection on `node`; `None`
/// when it is empty.
async fn edge_record_ids(
    ctx: &Ctx,
    ns: &Namespace,
    uuid: Option<&Binary>,
    node: &str,
) -> Result<Option<(i64, i64)>> {
    let first = first_record_id(ctx, ns, uuid, node, one_record_id(1)).await?;
    let last = first_record_id(ctx, ns, uuid, node, one_record_id(-1)).await?;
    Ok(first.zip(last))
}

/// A record id that exists on `node` at `target` or a few past it.
async fn existing_record_id(
    ctx: &Ctx,
    ns: &Namespace,
    uuid: Option<&Binary>,
    node: &str,
    target: i64,
) -> Result<Option<i64>> {
    const TRIES: i64 = 8;
    for candidate in target..target + TRIES {
        let mut options = one_record_id(1);
        options.append("$_requestResumeToken", true);
        options.append("$_resumeAfter", rawdoc! { "$recordId": candidate });
        match first_record_id(ctx, ns, uuid, node, options).await {
            // The document after it was found, so `candidate` exists.
            Ok(Some(_)) => return Ok(Some(candidate)),
            Ok(None) => return Ok(None), // the last document: no use
            Err(e) if e.server_code() == Some(crate::driver_error::KEY_NOT_FOUND) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// A natural-order scan, forward (1) or backward (-1), for the record id
/// of one document.
fn one_record_id(direction: i32) -> RawDocumentBuf {
    rawdoc! {
        "filter": {},
        "projection": { "_id": 1 },
        "hint": { "$natural": direction },
        "showRecordId": true,
        "limit": 1,
    }
}

/// The record id of the first document `options` finds on `node`.
async fn first_record_id(
    ctx: &Ctx,
    ns: &Namespace,
    uuid: Option<&Binary>,
    node: &str,
    options: RawDocumentBuf,
) -> Result<Option<i64>> {
    let found = record_id_docs(ctx, ns, uuid, node, options).await?;
    Ok(found.and_then(|f| f.first().and_then(|d| d.get_i64(RECORD_ID).ok())))
}

/// The few documents `options` (with `showRecordId`) finds on `node`;
/// `None` when the collection has been dropped since.
async fn record_id_docs(
    ctx: &Ctx,
    ns: &Namespace,
    uuid: Option<&Binary>,
    node: &str,
    options: RawDocumentBuf,
) -> Result<Option<Vec<RawDocumentBuf>>> {
    let Some(cursor) = catalog::find_raw_on(&ctx.src, ns, uuid, options, Some(node)).await? else {
        return Ok(None);
    };
    let found = cursor
        .try_collect()
        .await
        .ctx(Role::Source, &format!("read record ids of {ns}"))?;
    Ok(Some(found))
}

fn ids_array(values: &[Bson]) -> Result<bson::RawArrayBuf> {
    let mut arr = bson::RawArrayBuf::new();
    for v in values {
        let raw = RawBson::try_from(v.clone()).map_err(|e| Error::Other(e.to_string()))?;
        arr.push(raw);
    }
    Ok(arr)
}

/// Records and creates a namespace that has nothing of its own to copy: a
/// view, or a time-series collection (its buckets are copied).
async fn create_without_copy(ctx: &Ctx, n: &SourceNamespace) -> Result<()> {
    ctx.store
        .put_namespace(&NamespaceDoc {
            ns: n.ns.to_string(),
            kind: n.kind,
            uuid: None,
            capped: false,
            estimated_docs: 0,
            estimated_bytes: 0,
            copied: true,
        })
        .await?;
    catalog::create_namespace(&ctx.dest, &n.ns, &n.options).await
}

/// Plans every in-scope namespace of the source.
pub(crate) async fn plan(ctx: &Arc<Ctx>, m: &mut MigrationDoc) -> Result<()> {
    let namespaces = catalog::list_namespaces(&ctx.src, &ctx.scope).await?;
    // A time-series collection is made first, with its buckets, whose
    // documents are then copied as any collection's are.
    for ts in namespaces.iter().filter(|n| n.kind == NsKind::Timeseries) {
        create_without_copy(ctx, ts).await?;
    }
    let collections: Vec<SourceNamespace> = namespaces
        .iter()
        .filter(|n| n.kind == NsKind::Collection)
        .cloned()
        .collect();
    stream::iter(collections)
        .map(|n| {
            let ctx = ctx.clone();
            async move { plan_collection(&ctx, &n).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    for v in namespaces.iter().filter(|n| n.kind == NsKind::View) {
        create_without_copy(ctx, v).await?;
    }
    m.planned = true;
    ctx.store.save(m).await
}

/// Copies every range not yet done, then builds the indexes of every
/// collection not yet marked copied.
pub(crate) async fn run(ctx: &Arc<Ctx>) -> Result<()> {
    let namespaces = ctx.store.all_namespaces().await?;
    let partitions = ctx.store.all_partitions().await?;
    ctx.tracker.init_collections(&namespaces, &partitions);

    let uuids: HashMap<String, Binary> = namespaces
        .iter()
        .filter_map(|n| n.uuid.clone().map(|u| (n.ns.clone(), u)))
        .collect();
    let pending: Vec<(PartitionDoc, Option<Binary>)> = partitions
        .into_iter()
        .filter(|p| !p.done)
        .map(|p| {
            let uuid = uuids.get(&p.ns).cloned();
            (p, uuid)
        })
        .collect();
    tracing::info!(ranges = pending.len(), "copying");
    stream::iter(pending)
        .map(|(p, uuid)| {
            let ctx = ctx.clone();
            async move {
                // Held to the range's end: the load level's count of readers.
                let _reader = ctx.limiter.reader().await;
                let (docs, bytes) = copy_partition_with_retry(&ctx, uuid.as_ref(), &p).await?;
                ctx.store.mark_partition_done(&p.id, docs, bytes).await?;
                ctx.tracker.range_done();
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(ctx.tuning.copy_concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;

    let unfinished: Vec<NamespaceDoc> = namespaces
        .into_iter()
        .filter(|n| n.kind == NsKind::Collection && !n.copied)
        .collect();
    stream::iter(unfinished)
        .map(|n| {
            let ctx = ctx.clone();
            async move {
                ctx.gate().await?;
                let ns = n.namespace();
                // The source may have renamed it since it was planned.
                let src_ns = match &n.uuid {
                    Some(u) => catalog::current_namespace(&ctx.src, &ns.db, u)
                        .await?
                        .unwrap_or_else(|| ns.clone()),
                    None => ns.clone(),
                };
                let specs = catalog::list_indexes(&ctx.src, &src_ns).await?;
                catalog::create_indexes(&ctx.dest, &ns, &specs).await?;
                ctx.store.mark_copied(&n.ns).await?;
                ctx.tracker.collection_done(&n.ns);
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn copy_partition_with_retry(
    ctx: &Arc<Ctx>,
    uuid: Option<&Binary>,
    p: &PartitionDoc,
) -> Result<(u64, u64)> {
    // A retried range starts over; inserts of documents already copied
    // fail as duplicates and are skipped, and the change events replayed
    // from the migration's start correct any document copied twice.
    with_retry(&format!("copy {}", p.id), &ctx.cancel, || {
        copy_partition(ctx, uuid, p)
    })
    .await
}

/// Copies one range, reading and writing concurrently.
pub(crate) async fn copy_partition(
    ctx: &Arc<Ctx>,
    uuid: Option<&Binary>,
    p: &PartitionDoc,
) -> Result<(u64, u64)> {
    let ns =
        Namespace::parse(&p.ns).ok_or_else(|| Error::Other(format!("bad namespace {}", p.ns)))?;
    let (tx, mut rx) = mpsc::channel::<InsertBatch>(1);
    let reader = read_range(ctx, &ns, uuid, p, tx);
    let writer = async {
        let db = ctx.dest.client.database(&ns.db);
        let (mut docs, mut bytes) = (0u64, 0u64);
        while let Some(batch) = rx.recv().await {
            insert(ctx, &db, &ns, &batch).await?;
            let (n, b) = (batch.len() as u64, batch.doc_bytes() as u64);
            docs += n;
            bytes += b;
            ctx.tracker.add_copied(&p.ns, n, b);
        }
        Ok::<_, Error>((docs, bytes))
    };
    // The first failure ends both halves: a writer that failed must not
    // leave the reader waiting forever to hand it the next batch.
    let ((), written) = tokio::try_join!(reader, writer)?;
    Ok(written)
}

/// `{_id: value}` as raw BSON, for `min` and `max`.
fn bound(v: &Bson) -> Result<RawDocumentBuf> {
    RawDocumentBuf::from_document(&doc! { "_id": v.clone() })
        .map_err(|e| Error::Other(e.to_string()))
}

/// Inserts one batch. Duplicates are copies already made; any other
/// document the destination rejects is recorded, and the copy goes on.
async fn insert(ctx: &Ctx, db: &Database, ns: &Namespace, batch: &InsertBatch) -> Result<()> {
    let op = || format!("insert into {ns}");
    let reply = db
        .run_raw_command(batch.command(&ns.coll)?)
        .await
        .map_err(|e| Error::mongo(Role::Destination, op(), e))?;
    // A write concern error fails the range, which is copied again.
    let rejected: HashMap<usize, retry::WriteError> = retry::write_errors(&reply, op)?
        .into_iter()
        .filter(|e| e.code != crate::driver_error::DUPLICATE_KEY)
        .map(|e| (e.index, e))
        .collect();
    if rejected.is_empty() {
        return Ok(());
    }
    let key = ns.to_string();
    let problems: Vec<ProblemDoc> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, doc)| {
            let e = rejected.get(&i)?;
            Some(ProblemDoc::new(&key, doc, e.code, e.message))
        })
        .collect();
    ctx.record_problems(&key, problems).await
}

/// The documents a reply of the copy holds: the engine's batch, or less
/// at a load level that reads in smaller bites.
fn reply_docs(ctx: &Ctx) -> u32 {
    let engine = ctx.tuning.read_batch_docs;
    ctx.limiter
        .limits()
        .reply_docs
        .map_or(engine, |r| r.min(engine))
        .max(1)
}

async fn read_range(
    ctx: &Arc<Ctx>,
    ns: &Namespace,
    uuid: Option<&Binary>,
    p: &PartitionDoc,
    tx: mpsc::Sender<InsertBatch>,
) -> Result<()> {
    let reply_docs = reply_docs(ctx);
    let mut options = rawdoc! {
        "filter": {},
        "batchSize": reply_docs as i32,
    };
    let mut record_ids = None;
    let cursor = match p.key {
        RangeKey::Id if ns.timeseries_of_buckets().is_some() => {
            // See `catalog::id_range_filter`.
            let filtered = rawdoc! {
                "filter": catalog::id_range_filter(p.min.as_ref(), p.max.as_ref())?,
                "batchSize": reply_docs as i32,
            };
            catalog::find_batches_on(&ctx.src, ns, uuid, filtered, None, reply_docs).await?
        }
        RangeKey::Id => {
            options.append("hint", rawdoc! { "_id": 1 });
            if let Some(min) = &p.min {
                options.append("min", bound(min)?);
            }
            if let Some(max) = &p.max {
                options.append("max", bound(max)?);
            }
            catalog::find_batches_on(&ctx.src, ns, uuid, options, None, reply_docs).await?
        }
        RangeKey::Natural => {
            options.append("hint", rawdoc! { "$natural": 1 });
            catalog::find_batches_on(&ctx.src, ns, uuid, options, None, reply_docs).await?
        }
        RangeKey::RecordId => {
            options.append("hint", rawdoc! { "$natural": 1 });
            // Each reply then ends with the record id of its last document.
            options.append("$_requestResumeToken", true);
            let mut scan = RecordIdScan {
                options,
                stop_after: p.max.as_ref().and_then(Bson::as_i64),
                skip_through: p.min.as_ref().and_then(Bson::as_i64),
                shown: false,
            };
            let opened = open_record_ids(ctx, ns, uuid, &scan.options, p, scan.skip_through, false)
                .await?
                .map(|(cursor, shown)| {
                    scan.shown = shown;
                    cursor
                });
            record_ids = Some(scan);
            opened
        }
    };
    // Dropped on the source since it was planned: nothing to copy.
    let Some(mut cursor) = cursor else {
        return Ok(());
    };
    let capacity = ctx.tuning.batch_bytes;
    let max_docs = ctx.tuning.batch_docs.min(batch::MAX_DOCS);
    let mut batch = InsertBatch::with_capacity(capacity);
    let mut scratch: Vec<u8> = Vec::new();
    // The last `_id` range read through the `_id` index stops short of
    // `_id: MaxKey` (see `catalog::max_key_document`).
    let short_of_max_key = p.key == RangeKey::Id
        && p.min.is_some()
        && p.max.is_none()
        && ns.timeseries_of_buckets().is_none();
    let mut ended_at_max_key = false;
    'read: loop {
        let reply = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
            r = cursor.next() => r,
        };
        let Some(reply) = reply else { break };
        let read_err = |e| Error::mongo(Role::Source, format!("read {ns}"), e);
        let reply = reply.map_err(read_err)?;
        if let Some(scan) = record_ids.as_mut().filter(|s| !s.shown) {
            let last = batch_end(&reply);
            if scan
                .stop_after
                .is_some_and(|end| last.is_none_or(|l| l > end))
            {
                // This reply reaches past the range's end, and its
                // documents do not say where. Read from the last document
                // taken, this time with each document's record id, and stop
                // exactly at the end: one reply shown, not the range.
                drop(cursor);
                let reopened =
                    open_record_ids(ctx, ns, uuid, &scan.options, p, scan.skip_through, true)
                        .await?;
                let Some((c, _)) = reopened else { break };
                cursor = c;
                scan.shown = true;
                continue;
            }
            scan.skip_through = last.or(scan.skip_through);
        }
        let docs = reply.doc_slices().map_err(read_err)?;
        // Charged before the next reply is asked for: the load level's rate.
        ctx.limiter.charge(docs.as_bytes().len() as u64).await;
        for value in docs {
            let value =
                value.map_err(|e| Error::Other(format!("the source sent malformed BSON: {e}")))?;
            let Some(mut doc) = value.as_document() else {
                return Err(Error::Other(format!(
                    "the source returned a non-document from {ns}"
                )));
            };
            if let Some(scan) = record_ids.as_ref().filter(|s| s.shown) {
                let (stored, rid) = strip_record_id(doc, &mut scratch)?;
                if scan.stop_after.is_some_and(|last| rid > last) {
                    break 'read; // dropping the cursor kills it
                }
                if scan.skip_through.is_some_and(|first| rid <= first) {
                    continue; // read from a start below the range's own
                }
                doc = stored;
            }
            if short_of_max_key {
                ended_at_max_key = catalog::has_max_key_id(doc);
            }
            if !batch.fits(doc) && !send(ctx, &tx, &mut batch, capacity).await? {
                return Ok(()); // the writer failed; its error is reported
            }
            batch.push(doc);
            let full = batch.len() >= max_docs || batch.doc_bytes() >= capacity;
            if full && !send(ctx, &tx, &mut batch, capacity).await? {
                return Ok(());
            }
        }
    }
    if short_of_max_key && !ended_at_max_key {
        if let Some(doc) = catalog::max_key_document(&ctx.src, ns, uuid, None, false).await? {
            if !batch.fits(&doc) && !send(ctx, &tx, &mut batch, capacity).await? {
                return Ok(());
            }
            batch.push(&doc);
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    Ok(())
}

/// Hands a full batch to the writer, once the migration is not paused.
/// `false` when the writer has stopped.
async fn send(
    ctx: &Ctx,
    tx: &mpsc::Sender<InsertBatch>,
    batch: &mut InsertBatch,
    capacity: usize,
) -> Result<bool> {
    ctx.gate().await?;
    let full = std::mem::replace(batch, InsertBatch::with_capacity(capacity));
    Ok(tx.send(full).await.is_ok())
}

/// Where the scan of a record-id range `(skip_through, stop_after]`
/// stands.
///
/// Asking the server to show each document's record id (`showRecordId`)
/// makes it rebuild every document with one more field: half again the
/// source's CPU for a scan, measured on 6.0.5. So a range is read without
/// it, by whole replies, each of which ends with the record id of its last
/// document (`postBatchResumeToken`); only the one reply that reaches past
/// the range's end, and a scan that had to start below the range, are read
/// with each document's record id shown.
struct RecordIdScan {
    /// The scan's `find` options, to open it again with.
    options: RawDocumentBuf,
    stop_after: Option<i64>,
    /// Before `shown`: the record id of the last document taken. After:
    /// documents up to it are skipped.
    skip_through: Option<i64>,
    /// Whether each document carries its record id.
    shown: bool,
}

/// The record id of the last document of a reply to a natural-order scan
/// with `$_requestResumeToken`.
fn batch_end(reply: &RawBatch) -> Option<i64> {
    reply
        .as_raw_document()
        .get_document("cursor")
        .ok()?
        .get_document("postBatchResumeToken")
        .ok()?
        .get_i64(RECORD_ID)
        .ok()
}

/// Opens a collection scan that starts right after record id `after`, or
/// at the beginning without one; the cursor comes with whether each of its
/// documents shows its record id, as asked by `shown`, or because the
/// caller must skip through `after` itself.
///
/// `$_resumeAfter` seeks straight to a record id but fails when that
/// document has been deleted since it was seen; the scan then starts at the
/// nearest record id below it that still exists (the range's own start, or
/// one the range keeps in reserve below that), or at last at the
/// beginning, and skips up to `after`. Record ids cannot be filtered on
/// server-side: `{$meta: "recordId"}` is not available to a query filter.
async fn open_record_ids(
    ctx: &Ctx,
    ns: &Namespace,
    uuid: Option<&Binary>,
    options: &RawDocumentBuf,
    p: &PartitionDoc,
    after: Option<i64>,
    shown: bool,
) -> Result<Option<(RawBatchCursor, bool)>> {
    let node = p.node.as_deref();
    let reply_docs = reply_docs(ctx);
    let open = |start: Option<i64>, shown: bool| {
        let mut o = options.clone();
        if shown {
            o.append("showRecordId", true);
        }
        if let Some(start) = start {
            o.append("$_resumeAfter", rawdoc! { "$recordId": start });
        }
        catalog::find_batches_on(&ctx.src, ns, uuid, o, node, reply_docs)
    };
    let Some(after) = after else {
        return Ok(open(None, shown).await?.map(|c| (c, shown)));
    };
    let range_start = p.min.as_ref().and_then(Bson::as_i64);
    let below = range_start
        .filter(|&s| s < after)
        .into_iter()
        .chain(p.fallback_starts.iter().copied());
    for (tried, start) in std::iter::once(after).chain(below).enumerate() {
        let shown = shown || tried > 0;
        match open(Some(start), shown).await {
            Err(e) if e.server_code() == Some(crate::driver_error::KEY_NOT_FOUND) => {
                tracing::debug!(%ns, start, "a scan's start was deleted; trying one below");
            }
            other => return Ok(other?.map(|c| (c, shown))),
        }
    }
    tracing::info!(%ns, range = p.n, "every reserve start of a range was deleted; scanning from the beginning");
    Ok(open(None, true).await?.map(|c| (c, true)))
}

/// Copies a whole collection outside the planned copy: a collection that
/// comes into scope during sync (renamed in from outside). Change events
/// after this point keep it in sync.
pub(crate) async fn copy_whole(
    ctx: &Arc<Ctx>,
    ns: &Namespace,
    uuid: Option<&Binary>,
) -> Result<(u64, u64)> {
    let mut p = ranges(&ns.to_string(), Vec::new(), RangeKey::Natural, None).remove(0);
    p.id = format!("{ns}#adhoc");
    copy_partition_with_retry(ctx, uuid, &p).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_are_even_and_distinct() {
        let sample: Vec<Bson> = (0..100).map(Bson::Int32).collect();
        let pts = split_points(&sample, 4);
        assert_eq!(pts, vec![Bson::Int32(25), Bson::Int32(50), Bson::Int32(75)]);
        let same: Vec<Bson> = std::iter::repeat_n(Bson::Int32(7), 50).collect();
        assert!(split_points(&same, 4).is_empty(), "a range is never empty");
        assert!(split_points(&sample, 1).is_empty());
        assert!(split_points(&[], 8).is_empty());
    }

    #[test]
    fn ranges_cover_everything_from_minkey_to_maxkey() {
        let r = ranges(
            "a.b",
            vec![Bson::Int32(10), Bson::String("m".into())],
            RangeKey::Id,
            None,
        );
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].min, None);
        assert_eq!(r[0].max, Some(Bson::Int32(10)));
        assert_eq!(r[1].min, Some(Bson::Int32(10)));
        assert_eq!(r[1].max, Some(Bson::String("m".into())));
        assert_eq!(r[2].max, None);
        assert_eq!(r[2].id, "a.b#2");
    }

    #[test]
    fn record_id_ranges_keep_the_ids_below_their_start_in_reserve() {
        let sampled: Vec<i64> = (1..=40).map(|i| i * 10).collect();
        let r = record_id_ranges("a.b", "h:1", &[110, 210, 310], &sampled);
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|p| p.key == RangeKey::RecordId));
        assert_eq!(r[0].min, None);
        assert!(r[0].fallback_starts.is_empty());
        assert_eq!(r[1].min, Some(Bson::Int64(110)));
        assert_eq!(r[1].fallback_starts, vec![100, 90, 80, 70, 60, 50, 40, 30]);
        assert_eq!(r[3].max, None);
        assert_eq!(r[2].node.as_deref(), Some("h:1"));
    }

    #[test]
    fn ranges_the_sample_left_too_wide_are_divided() {
        // A sample that saw only the first half of record ids 1..=1000.
        let points = [125, 250, 375];
        let targets = gap_targets(&points, 1, 1000, 8, 512);
        assert_eq!(targets, vec![499, 623, 747, 871]);
        // An even sample needs nothing.
        let even: Vec<i64> = (1..8).map(|i| i * 125).collect();
        assert!(gap_targets(&even, 1, 1000, 8, 512).is_empty());
        // No sample at all: evenly from first to last.
        assert_eq!(gap_targets(&[], 101, 200, 4, 512), vec![124, 148, 172]);
        // Never more ranges than allowed.
        assert_eq!(gap_targets(&points, 1, 1000, 8, 6).len(), 2);
        // A collection of a few record ids is never split finer than one.
        assert!(gap_targets(&[], 5, 6, 8, 512).len() <= 1);
    }

    #[test]
    fn partition_count_is_bounded() {
        assert_eq!(partition_count(0, 64, 4, 100), 1);
        assert_eq!(partition_count(64, 64, 4, 100), 1);
        assert_eq!(partition_count(65, 64, 4, 100), 2);
        assert_eq!(partition_count(u64::MAX / 2, 64, 4, 100), 100);
    }

    #[test]
    fn a_mid_sized_collection_gets_a_range_per_reader() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(partition_count(4 * MIB, 64 * MIB, 4, 100), 1);
        assert_eq!(partition_count(20 * MIB, 64 * MIB, 4, 100), 2);
        assert_eq!(partition_count(40 * MIB, 64 * MIB, 4, 100), 4);
        assert_eq!(partition_count(1024 * MIB, 64 * MIB, 4, 100), 16);
    }
}
