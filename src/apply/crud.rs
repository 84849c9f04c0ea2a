//! Applying a collapsed batch of document changes: each collection's share
//! as unordered `update` (upsert of the whole current document) and
//! `delete` commands, collections in parallel. Updates, and inserts whose
//! document the stream left out, are fetched from the source by `_id`.
//! Every write is idempotent, so a replayed batch is harmless.

use std::sync::Arc;

use bson::{
    rawdoc, Binary, Document, RawArrayBuf, RawBson, RawBsonRef, RawDocument, RawDocumentBuf,
};
use futures_util::{stream, StreamExt, TryStreamExt};

use super::mapping::Mapping;
use crate::catalog;
use crate::checkpoint::ProblemDoc;
use crate::context::Ctx;
use crate::error::{Error, MongoContext, Result, Role};
use crate::events::{Batch, CrudEvent, DocOp};
use crate::retry::{self, with_retry};
use crate::scope::Namespace;

/// Statements per `update`/`delete` command, and ids per fetch.
const WRITE_CHUNK: usize = 1000;
pub(super) const WRITE_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Documents larger than this are written one by one.
const LARGE_DOC_BYTES: usize = 8 * 1024 * 1024;

/// Applies a collapsed batch; returns how many events it held.
pub(super) async fn flush(ctx: &Arc<Ctx>, mapping: &Mapping, batch: Batch) -> Result<u64> {
    if batch.is_empty() {
        return Ok(batch.events);
    }
    let events = batch.events;
    let groups: Vec<(Namespace, Vec<CrudEvent>)> = batch
        .by_collection()
        .into_iter()
        .filter_map(|(uuid, evs)| {
            let uuid = Binary {
                subtype: bson::spec::BinarySubtype::Uuid,
                bytes: uuid,
            };
            mapping.get(&uuid).map(|ns| (ns.clone(), evs))
        })
        .collect();
    stream::iter(groups)
        .map(|(dest_ns, evs)| {
            let ctx = ctx.clone();
            async move {
                with_retry(&format!("apply to {dest_ns}"), &ctx.cancel, || {
                    apply_collection(&ctx, &dest_ns, &evs)
                })
                .await
            }
        })
        .buffer_unordered(ctx.tuning.apply_concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(events)
}

/// Writes one collection's share of a batch: fetches, upserts, deletes.
async fn apply_collection(ctx: &Ctx, dest_ns: &Namespace, evs: &[CrudEvent]) -> Result<()> {
    let mut fetch: Vec<&CrudEvent> = Vec::new();
    let mut deletes: Vec<&RawDocument> = Vec::new();
    let mut inline: Vec<&RawDocument> = Vec::new();
    for ev in evs {
        match &ev.op {
            DocOp::Upsert(d) => inline.push(d),
            DocOp::Fetch => fetch.push(ev),
            DocOp::Delete => deletes.push(&ev.key),
        }
    }
    let mut fetched: Vec<RawDocumentBuf> = Vec::new();
    for chunk in fetch.chunks(WRITE_CHUNK) {
        fetched.extend(fetch_current(ctx, chunk).await?);
    }
    let (large, upserts): (Vec<&RawDocument>, Vec<&RawDocument>) = inline
        .into_iter()
        .chain(fetched.iter().map(|d| d.as_ref()))
        .partition(|d| d.as_bytes().len() > LARGE_DOC_BYTES);
    let db = ctx.dest.client.database(&dest_ns.db);
    // A document near 16 MB cannot ride inside an `update` command's body;
    // the driver's replace sends it as a document sequence instead.
    for doc in large {
        let filter =
            Document::try_from(id_key(doc)?.as_ref()).map_err(|e| Error::Other(e.to_string()))?;
        db.collection::<RawDocumentBuf>(&dest_ns.coll)
            .replace_one(filter, doc.to_owned())
            .upsert(true)
            .bypass_document_validation(true)
            .write_concern(
                mongodb::options::WriteConcern::builder()
                    .w(mongodb::options::Acknowledgment::Nodes(1))
                    .build(),
            )
            .await
            .ctx(
                Role::Destination,
                &format!("write a large document to {dest_ns}"),
            )?;
    }
    let mut rest = upserts.as_slice();
    while !rest.is_empty() {
        let mut stmts = RawArrayBuf::new();
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && n < WRITE_CHUNK && (bytes < WRITE_CHUNK_BYTES || n == 0) {
            let doc = rest[n];
            bytes += doc.as_bytes().len();
            let mut stmt = RawDocumentBuf::new();
            stmt.append("q", id_key(doc)?);
            stmt.append_ref("u", RawBsonRef::Document(doc));
            stmt.append("upsert", true);
            stmts.push(stmt);
            n += 1;
        }
        let (sent, later) = rest.split_at(n);
        rest = later;
        let cmd = rawdoc! {
            "update": dest_ns.coll.as_str(), "updates": stmts, "ordered": false,
            "bypassDocumentValidation": true, "writeConcern": { "w": 1 },
        };
        let reply = db
            .run_raw_command(cmd)
            .await
            .ctx(Role::Destination, &format!("write to {dest_ns}"))?;
        check_write_reply(ctx, dest_ns, &reply, sent).await?;
    }
    for chunk in deletes.chunks(WRITE_CHUNK) {
        let mut stmts = RawArrayBuf::new();
        for key in chunk {
            let mut stmt = RawDocumentBuf::new();
            stmt.append_ref("q", RawBsonRef::Document(key));
            stmt.append("limit", 1);
            stmts.push(stmt);
        }
        let cmd = rawdoc! {
            "delete": dest_ns.coll.as_str(), "deletes": stmts, "ordered": false,
            "writeConcern": { "w": 1 },
        };
        let reply = db
            .run_raw_command(cmd)
            .await
            .ctx(Role::Destination, &format!("delete from {dest_ns}"))?;
        check_write_reply(ctx, dest_ns, &reply, chunk).await?;
    }
    Ok(())
}

/// `{_id: <the document's _id>}`.
fn id_key(doc: &RawDocument) -> Result<RawDocumentBuf> {
    let id = doc
        .get("_id")
        .ok()
        .flatten()
        .ok_or_else(|| Error::Other("a document without _id".into()))?;
    let mut key = RawDocumentBuf::new();
    key.append_ref("_id", id);
    Ok(key)
}

/// Reads the current versions of documents from the source, by collection
/// UUID (see [`catalog::find_raw`]).
async fn fetch_current(ctx: &Ctx, evs: &[&CrudEvent]) -> Result<Vec<RawDocumentBuf>> {
    let Some(first) = evs.first() else {
        return Ok(Vec::new());
    };
    let ids: Vec<RawBson> = evs
        .iter()
        .filter_map(|ev| ev.key.get("_id").ok().flatten())
        .map(|id| id.to_raw_bson())
        .collect();
    if first.ns.timeseries_of_buckets().is_some() {
        // Buckets are a clustered collection, where `$in` on `_id` scans
        // the whole collection (measured on 5.0 and 6.0) but an equality
        // reads one record: one read per bucket, a few at a time.
        let reads: Vec<RawDocumentBuf> = ids
            .into_iter()
            .map(|id| rawdoc! { "filter": { "_id": id }, "limit": 1 })
            .collect();
        let found: Vec<Vec<RawDocumentBuf>> = stream::iter(reads)
            .map(|options| read_changed(ctx, first, options))
            .buffer_unordered(BUCKET_READS)
            .try_collect()
            .await?;
        return Ok(found.into_iter().flatten().collect());
    }
    let mut in_ids = RawArrayBuf::new();
    for id in ids {
        in_ids.push(id);
    }
    read_changed(
        ctx,
        first,
        rawdoc! { "filter": { "_id": { "$in": in_ids } } },
    )
    .await
}

/// How many buckets are read from the source at once.
const BUCKET_READS: usize = 8;

async fn read_changed(
    ctx: &Ctx,
    ev: &CrudEvent,
    options: RawDocumentBuf,
) -> Result<Vec<RawDocumentBuf>> {
    let found: Vec<RawDocumentBuf> =
        match catalog::find_raw(&ctx.src, &ev.ns, Some(&ev.uuid), options).await? {
            Some(cursor) => cursor.try_collect().await.ctx(
                Role::Source,
                &format!("read changed documents of {}", ev.ns),
            )?,
            None => Vec::new(),
        };
    // The load level bounds these reads as it does the copy's, except in
    // the commit's catch-up: the source's writes are stopped then, and
    // every second is downtime.
    let committing = ctx.control.borrow().commit.is_some();
    if !committing {
        let bytes: usize = found.iter().map(|d| d.as_bytes().len()).sum();
        ctx.limiter.charge(bytes as u64).await;
    }
    Ok(found)
}

/// Turns an `update`/`delete` reply into an error (see
/// [`retry::write_errors`]: the idempotent batch is retried, or fails) or
/// recorded per-document problems. `docs[i]` holds statement `i`'s `_id`.
async fn check_write_reply(
    ctx: &Ctx,
    ns: &Namespace,
    reply: &Document,
    docs: &[&RawDocument],
) -> Result<()> {
    let op = || format!("write to {ns}");
    let mut problems = Vec::new();
    for e in retry::write_errors(reply, op)? {
        if let Some(doc) = docs.get(e.index) {
            problems.push(ProblemDoc::new(&ns.to_string(), doc, e.code, e.message));
        }
    }
    ctx.record_problems(&ns.to_string(), problems).await
}
