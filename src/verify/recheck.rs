//! Live verification: while a sync still applies changes, a document that
//! changes after it was compared, or that was found different, is compared
//! again until it is stable, as migration-verifier's recheck queue does.
//!
//! Before anything is read, a change stream opens on each side at its
//! current cluster time. Every insert, update, replace and delete queues
//! its document's `_id`. A queued document is looked up on both sides once
//! it has been quiet for the recheck interval: equal, it leaves the queue;
//! different, it stays, and is reported only once it has not changed on
//! either side for the settle time (longer than the sync's lag). A rename
//! queues the whole renamed collection for another full comparison.
//!
//! The verification converges when the queue is empty and both change
//! streams have read up to the clusters' current time, so no change in
//! flight is missed. While the source keeps changing it keeps going: it
//! ends once writes stop and the sync has caught up.
//!
//! Memory: one entry (namespace, `_id`, times) per document changed or
//! found different and not yet settled, [`MAX_QUEUED`](super::queue::MAX_QUEUED) at most. A change
//! to another document once the queue is full queues its whole collection
//! for another full comparison instead, so endless writes to ever new
//! documents cannot grow it without bound, and the change-stream readers
//! never stop reading (a reader that waited could see its place leave the
//! oplog). A difference found once it is full ends the verification with
//! [`Error::TooManyLiveDifferences`]: that many differences mean the sync
//! is far behind. The recheck takes at most [`RECHECK_BATCH`](super::queue::RECHECK_BATCH) at a time.
//!
//! The queue itself is [`super::queue`]; this module feeds it from the
//! change streams and drains it by comparing documents again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, RawDocumentBuf, Timestamp};
use mongodb::change_stream::event::ResumeToken;
use tokio::task::JoinHandle;

use super::context::{Ctx, Pair};
use super::documents;
use super::queue::{Due, Rechecks};
use crate::catalog;
use crate::checkpoint::token_time;
use crate::cluster::Cluster;
use crate::error::{Error, MongoContext, Result};
use crate::retry::{self, Backoff};
use crate::scope::{Namespace, Scope, METADATA_DB};

/// Watchers that stop when dropped.
pub struct Watchers(Vec<JoinHandle<()>>);

impl Drop for Watchers {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Opens a change stream on each side at its current time.
pub(crate) async fn start_watchers(
    ctx: &Ctx,
    rechecks: Arc<Rechecks>,
    scope: Scope,
) -> Result<Watchers> {
    let mut handles = Vec::new();
    for (side, cluster) in [(0usize, &ctx.src), (1usize, &ctx.dest)] {
        let start = cluster.cluster_time().await?;
        rechecks.note_seen(side, start);
        let stream = open(cluster, start, None).await?;
        let (cluster, rechecks, scope, cancel) = (
            cluster.clone(),
            rechecks.clone(),
            scope.clone(),
            ctx.cancel.clone(),
        );
        handles.push(tokio::spawn(async move {
            let r = tokio::select! {
                _ = cancel.cancelled() => Ok(()),
                r = watch(&cluster, side, start, stream, &rechecks, &scope) => r,
            };
            if let Err(e) = r {
                rechecks.fail(e);
            }
        }));
    }
    Ok(Watchers(handles))
}

fn pipeline() -> Vec<bson::Document> {
    vec![doc! { "$match": {
        "ns.db": { "$nin": ["admin", "local", "config", METADATA_DB] },
        "operationType": { "$in": ["insert", "update", "replace", "delete", "rename"] },
    } }]
}

async fn open(
    cluster: &Cluster,
    start: Timestamp,
    after: Option<ResumeToken>,
) -> Result<mongodb::change_stream::ChangeStream<RawDocumentBuf>> {
    let mut w = cluster
        .client
        .watch()
        .pipeline(pipeline())
        .max_await_time(Duration::from_millis(300));
    w = match after {
        Some(t) => w.start_after(t),
        None => w.start_at_operation_time(start),
    };
    let s = w.await.ctx(cluster.role, "open a change stream")?;
    Ok(s.with_type::<RawDocumentBuf>())
}

/// Reads one side's change stream into the queue until it fails for good.
async fn watch(
    cluster: &Cluster,
    side: usize,
    start: Timestamp,
    mut stream: mongodb::change_stream::ChangeStream<RawDocumentBuf>,
    rechecks: &Rechecks,
    scope: &Scope,
) -> Result<()> {
    let mut backoff = Backoff::default();
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        match stream.next_if_any().await {
            Ok(event) => {
                failing_since = None;
                if let Some(ev) = event {
                    note_event(&ev, rechecks, scope);
                }
                if let Some(t) = stream
                    .resume_token()
                    .and_then(|t| bson::to_document(&t).ok())
                    .as_ref()
                    .and_then(token_time)
                {
                    rechecks.note_seen(side, t);
                }
            }
            Err(e) if crate::driver_error::is_transient(&e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > retry::GIVE_UP_AFTER {
                    return Err(Error::mongo(cluster.role, "read a change stream", e));
                }
                tokio::time::sleep(backoff.next_delay()).await;
                let token = stream.resume_token();
                match open(cluster, start, token).await {
                    Ok(s) => stream = s,
                    Err(e) if e.is_transient() => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(Error::mongo(cluster.role, "read a change stream", e)),
        }
    }
}

fn note_event(ev: &RawDocumentBuf, rechecks: &Rechecks, scope: &Scope) {
    let ns_of = |field: &str| {
        let n = ev.get_document(field).ok()?;
        Some(Namespace::new(
            n.get_str("db").ok()?,
            n.get_str("coll").ok()?,
        ))
    };
    let Some(ns) = ns_of("ns") else { return };
    if ev.get_str("operationType") == Ok("rename") {
        if let Some(to) = ns_of("to").filter(|to| scope.contains(to)) {
            rechecks.rescan(to);
        }
        return;
    }
    if !scope.contains(&ns) {
        return;
    }
    let id = ev
        .get_document("documentKey")
        .ok()
        .and_then(|k| k.get("_id").ok().flatten())
        .and_then(|v| Bson::try_from(v.to_raw_bson()).ok());
    if let Some(id) = id {
        rechecks.changed(&ns, &id);
    }
}

/// Runs rechecks until nothing is left to recheck and both change streams
/// have caught up with their cluster's current time.
pub(crate) async fn converge(
    ctx: &Arc<Ctx>,
    rechecks: &Arc<Rechecks>,
    scope: &Scope,
) -> Result<()> {
    loop {
        if let Some(e) = rechecks.failure() {
            return Err(e);
        }
        rescan(ctx, rechecks, scope).await?;
        recheck_due(ctx, rechecks).await?;
        if rechecks.is_empty() && caught_up(ctx, rechecks).await? && rechecks.is_empty() {
            if let Some(e) = rechecks.failure() {
                return Err(e);
            }
            return Ok(());
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
            _ = tokio::time::sleep(rechecks.interval.min(Duration::from_millis(250))) => {}
        }
    }
}

/// Compares again, whole, each collection renamed into scope meanwhile.
async fn rescan(ctx: &Arc<Ctx>, rechecks: &Rechecks, scope: &Scope) -> Result<()> {
    let names = rechecks.take_rescans();
    if names.is_empty() {
        return Ok(());
    }
    let mut pairs = Vec::new();
    for ns in names {
        if !scope.contains(&ns) {
            continue;
        }
        let (src, dst) = tokio::try_join!(
            catalog::find_namespace(&ctx.src, &ns),
            catalog::find_namespace(&ctx.dest, &ns)
        )?;
        pairs.push(Pair { ns, src, dst });
    }
    documents::compare_all(ctx, &pairs).await
}

/// Looks up every document due, namespace by namespace.
async fn recheck_due(ctx: &Ctx, rechecks: &Rechecks) -> Result<()> {
    let due = rechecks.due(Instant::now());
    if due.is_empty() {
        return Ok(());
    }
    let mut by_ns: HashMap<Namespace, Vec<Due>> = HashMap::new();
    for d in due {
        by_ns.entry(d.ns.clone()).or_default().push(d);
    }
    for (ns, items) in by_ns {
        for chunk in items.chunks(500) {
            let ids: Vec<Bson> = chunk.iter().map(|d| d.id.clone()).collect();
            let outcomes = documents::lookup_compare(ctx, &ns, &ids).await?;
            ctx.meter
                .rechecks
                .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let now = Instant::now();
            for (due, (_, outcome)) in chunk.iter().zip(outcomes) {
                if let Some(confirmed) = rechecks.resolve(due, outcome, now) {
                    ctx.report(confirmed).await?;
                }
            }
        }
    }
    Ok(())
}

/// Whether both change streams have read past the clusters' current time,
/// so that every change made before now is in the queue. Waits a little.
async fn caught_up(ctx: &Ctx, rechecks: &Rechecks) -> Result<bool> {
    let targets = [
        ctx.src.cluster_time().await?,
        ctx.dest.cluster_time().await?,
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let done = (0..2).all(|side| {
            rechecks.seen(side).is_some_and(|s| {
                (s.time, s.increment) >= (targets[side].time, targets[side].increment)
            })
        });
        if done {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        if let Some(e) = rechecks.failure() {
            return Err(e);
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::LiveOptions;

    #[test]
    fn events_queue_in_scope_documents_and_renames_queue_rescans() {
        let r = Rechecks::new(&LiveOptions::default());
        let scope = Scope::new(&["shop"], &[] as &[&str]).unwrap();
        let ev = |op: &str, db: &str| {
            RawDocumentBuf::from_document(&doc! {
                "operationType": op,
                "ns": { "db": db, "coll": "c" },
                "documentKey": { "_id": 5 },
                "to": { "db": "shop", "coll": "d" },
            })
            .unwrap()
        };
        note_event(&ev("update", "shop"), &r, &scope);
        note_event(&ev("update", "other"), &r, &scope);
        assert_eq!(r.len(), 1);
        note_event(&ev("rename", "other"), &r, &scope);
        assert_eq!(r.take_rescans(), vec![Namespace::new("shop", "d")]);
    }
}
