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
//! **Time-series buckets:** change streams report no write to a
//! `system.buckets.*` collection (5.0 and 6.0, either side), so when the
//! scope holds time-series collections on either side when the
//! verification starts, each side's oplog (`local.oplog.rs`) is tailed
//! too, from the same start time, and every insert, update and delete of
//! an in-scope bucket queues its `_id` as a change event does
//! ([`crate::events::oplog::classify`] reads the entries). Entries the
//! server writes for transactions are skipped without reading their
//! chains back: the server writes no buckets inside a transaction (5.0 and
//! 6.0 refuse time-series writes in one). An entry on a bucket that cannot
//! be read queues its whole buckets collection for another comparison. A
//! time-series collection created after the start is not tailed for; a
//! side behind `mongos` has no oplog to tail (its buckets are compared
//! again only while found different). Reading the oplog takes `find` on
//! `local.oplog.rs`, which `clusterMonitor` grants; a user without it is
//! told so.
//!
//! The verification converges when the queue is empty, both change
//! streams have read up to the clusters' current time and each oplog tail
//! up to its side's last write, so no change in flight is missed. While
//! the source keeps changing it keeps going: it ends once writes stop and
//! the sync has caught up.
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
//! change streams and oplogs and drains it by comparing documents again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, RawDocument, RawDocumentBuf, Timestamp};
use futures_util::StreamExt;
use mongodb::change_stream::event::ResumeToken;
use mongodb::raw_batch_cursor::RawBatchCursor;
use tokio::task::JoinHandle;

use super::context::{Ctx, Pair};
use super::documents;
use super::queue::{Due, Feed, Rechecks};
use crate::catalog;
use crate::checkpoint::token_time;
use crate::cluster::Cluster;
use crate::error::{Error, MongoContext, Result, Role};
use crate::events::oplog::{classify, Entry};
use crate::events::Change;
use crate::oplog;
use crate::retry::{self, Backoff};
use crate::scope::{Namespace, Scope, METADATA_DB};

/// How long an idle read of a change stream or an oplog waits for more.
const MAX_AWAIT: Duration = Duration::from_millis(300);

/// Oplog entries read per reply.
const TAIL_BATCH: u32 = 1_000;

/// Watchers that stop when dropped.
pub struct Watchers(Vec<JoinHandle<()>>);

impl Drop for Watchers {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Opens a change stream on each side at its current time and, when the
/// scope holds time-series collections, a tail of each side's oplog from
/// the same time.
pub(crate) async fn start_watchers(
    ctx: &Ctx,
    rechecks: Arc<Rechecks>,
    scope: Scope,
) -> Result<Watchers> {
    let mut handles = Vec::new();
    let mut starts = Vec::with_capacity(2);
    for (side, cluster) in [(0usize, &ctx.src), (1usize, &ctx.dest)] {
        let start = cluster.cluster_time().await?;
        starts.push(start);
        rechecks.note_seen(Feed::ChangeStream, side, start);
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
    // Dropped on an error below, which stops the change streams.
    let mut watchers = Watchers(handles);
    if !holds_buckets(ctx, &scope).await? {
        return Ok(watchers);
    }
    for ((side, cluster), start) in [(0usize, &ctx.src), (1usize, &ctx.dest)]
        .into_iter()
        .zip(starts)
    {
        if cluster.is_sharded() {
            tracing::warn!(
                side = %cluster.role,
                "mongos has no oplog to tail: the buckets of time-series collections are compared again only while they differ"
            );
            continue;
        }
        let cursor = open_tail(cluster, start, true).await?;
        // Nothing before the start concerns the verification.
        rechecks.note_seen(Feed::Oplog, side, just_before(start));
        let (cluster, rechecks, scope, cancel) = (
            cluster.clone(),
            rechecks.clone(),
            scope.clone(),
            ctx.cancel.clone(),
        );
        watchers.0.push(tokio::spawn(async move {
            let r = tokio::select! {
                _ = cancel.cancelled() => Ok(()),
                r = tail(&cluster, side, start, cursor, &rechecks, &scope) => r,
            };
            if let Err(e) = r {
                rechecks.fail(e);
            }
        }));
    }
    Ok(watchers)
}

/// Whether either side holds, in scope, a time-series collection or its
/// buckets.
async fn holds_buckets(ctx: &Ctx, scope: &Scope) -> Result<bool> {
    let (src, dst) = tokio::try_join!(
        catalog::list_namespaces(&ctx.src, scope),
        catalog::list_namespaces(&ctx.dest, scope),
    )?;
    Ok(src
        .iter()
        .chain(dst.iter())
        .any(|n| n.kind == catalog::NsKind::Timeseries || n.ns.timeseries_of_buckets().is_some()))
}

/// The cluster time just before `t`.
fn just_before(t: Timestamp) -> Timestamp {
    match t.increment {
        0 => Timestamp {
            time: t.time.saturating_sub(1),
            increment: u32::MAX,
        },
        i => Timestamp {
            time: t.time,
            increment: i - 1,
        },
    }
}

/// What a live verification does, said when the oplog is refused.
const TAIL_ACTION: &str = "read the oplog (find on local.oplog.rs), which a live verification of time-series collections tails because change streams do not report the writes to their buckets";

/// Opens a tail of `cluster`'s oplog after `from` (and at it, when
/// `inclusive`); a user without `find` on it is told what is missing.
async fn open_tail(cluster: &Cluster, from: Timestamp, inclusive: bool) -> Result<RawBatchCursor> {
    match oplog::tail(cluster, from, inclusive, TAIL_BATCH, MAX_AWAIT).await {
        Err(e) if e.server_code() == Some(crate::driver_error::UNAUTHORIZED) => Err(oplog_refused(
            cluster.role,
            authenticated_user(cluster).await,
        )),
        r => r,
    }
}

fn oplog_refused(role: Role, user: Option<String>) -> Error {
    Error::NotAuthorized {
        role,
        user: user.unwrap_or_else(|| "(not authenticated)".into()),
        action: TAIL_ACTION.into(),
    }
}

/// The user this connection is authenticated as, if the server says.
async fn authenticated_user(cluster: &Cluster) -> Option<String> {
    let status = cluster
        .client
        .database("admin")
        .run_command(doc! { "connectionStatus": 1 })
        .await
        .ok()?;
    let users = status
        .get_document("authInfo")
        .ok()?
        .get_array("authenticatedUsers")
        .ok()?;
    let first = users.first()?.as_document()?;
    Some(first.get_str("user").ok()?.to_string())
}

/// Reads one side's oplog into the queue until it fails for good; a tail
/// the server closes, or a transient failure, is opened again after the
/// last entry read.
async fn tail(
    cluster: &Cluster,
    side: usize,
    start: Timestamp,
    mut cursor: RawBatchCursor,
    rechecks: &Rechecks,
    scope: &Scope,
) -> Result<()> {
    let mut last: Option<Timestamp> = None;
    let mut backoff = Backoff::default();
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        let failure = match cursor.next().await {
            Some(Ok(batch)) => {
                failing_since = None;
                let entries = batch
                    .doc_slices()
                    .map_err(|e| Error::mongo(cluster.role, "read the oplog", e))?;
                for entry in entries {
                    let Some(entry) = entry.ok().and_then(|e| e.as_document()) else {
                        continue;
                    };
                    note_entry(entry, rechecks, scope);
                    if let Ok(ts) = entry.get_timestamp("ts") {
                        last = Some(ts);
                    }
                }
                // Noted only once the batch's changes are queued.
                if let Some(ts) = last {
                    rechecks.note_seen(Feed::Oplog, side, ts);
                }
                continue;
            }
            Some(Err(e)) if crate::driver_error::is_transient(&e) => {
                Error::mongo(cluster.role, "read the oplog", e)
            }
            Some(Err(e)) => return Err(Error::mongo(cluster.role, "read the oplog", e)),
            None => Error::Mongo {
                role: cluster.role,
                op: "read the oplog".into(),
                message: "the server closed the oplog cursor".into(),
                code: None,
                transient: true,
            },
        };
        let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() > retry::GIVE_UP_AFTER {
            return Err(failure);
        }
        tokio::time::sleep(backoff.next_delay()).await;
        let reopened = match last {
            Some(ts) => open_tail(cluster, ts, false).await,
            None => open_tail(cluster, start, true).await,
        };
        match reopened {
            Ok(c) => cursor = c,
            Err(e) if e.is_transient() => {}
            Err(e) => return Err(e),
        }
    }
}

/// Queues the buckets one oplog entry writes. Only the entries on an
/// in-scope buckets collection, and commands (a user's `applyOps` may
/// write buckets), are read further; a transaction's entries are skipped
/// (the server writes no buckets in one), and so is everything else.
fn note_entry(entry: &RawDocument, rechecks: &Rechecks, scope: &Scope) {
    let in_scope = |ns: &Namespace| ns.timeseries_of_buckets().is_some() && scope.contains(ns);
    let on_buckets = entry
        .get_str("ns")
        .ok()
        .and_then(Namespace::parse)
        .filter(|ns| in_scope(ns));
    if on_buckets.is_none() && entry.get_str("op") != Ok("c") {
        return;
    }
    match classify(entry) {
        Ok(Entry::Changes(changes)) => {
            for change in changes {
                let Change::Crud(ev) = change else { continue };
                if !in_scope(&ev.ns) {
                    continue;
                }
                let id = ev
                    .key
                    .get("_id")
                    .ok()
                    .flatten()
                    .and_then(|v| Bson::try_from(v.to_raw_bson()).ok());
                match id {
                    Some(id) => rechecks.changed(&ev.ns, &id),
                    None => rechecks.rescan(ev.ns),
                }
            }
        }
        Ok(Entry::Transaction { .. } | Entry::Skip) => {}
        Err(e) => {
            // Which bucket changed is unknown: compare them all again.
            if let Some(ns) = on_buckets {
                tracing::debug!(%ns, error = %e, "an unreadable oplog entry on buckets: comparing them again");
                rechecks.rescan(ns);
            }
        }
    }
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
        .max_await_time(MAX_AWAIT);
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
                    rechecks.note_seen(Feed::ChangeStream, side, t);
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
/// (and oplog tails) have caught up with their cluster's current time.
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
/// and each oplog tail past its side's last write, so that every change
/// made before now is in the queue. Waits a little.
async fn caught_up(ctx: &Ctx, rechecks: &Rechecks) -> Result<bool> {
    let mut targets = Vec::with_capacity(4);
    for (side, cluster) in [(0usize, &ctx.src), (1usize, &ctx.dest)] {
        targets.push((Feed::ChangeStream, side, cluster.cluster_time().await?));
        // The last write is the last entry a tail can read; the cluster
        // time may be ahead of it, with nothing to read in between.
        if rechecks.seen(Feed::Oplog, side).is_some() {
            targets.push((Feed::Oplog, side, oplog::last_write(cluster).await?));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let done = targets
            .iter()
            .all(|&(feed, side, target)| reached(rechecks.seen(feed, side), target));
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

/// Whether a feed that has read up to `seen` has read `target`.
fn reached(seen: Option<Timestamp>, target: Timestamp) -> bool {
    seen.is_some_and(|s| (s.time, s.increment) >= (target.time, target.increment))
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

    fn entry(d: bson::Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    fn uuid() -> bson::Binary {
        bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![7; 16],
        }
    }

    fn ts(time: u32, increment: u32) -> Timestamp {
        Timestamp { time, increment }
    }

    /// The `_id`s queued, sorted, each as `ns/_id`.
    fn queued(r: &Rechecks) -> Vec<String> {
        let mut v: Vec<String> = r
            .due(Instant::now() + Duration::from_secs(3600))
            .into_iter()
            .map(|d| format!("{}/{}", d.ns, d.id))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn oplog_entries_queue_the_buckets_they_write_in_scope_only() {
        let r = Rechecks::new(&LiveOptions::default());
        let scope = Scope::new(&["iot"], &["iot.skipped"]).unwrap();
        let (a, b, c) = (
            bson::oid::ObjectId::from_bytes([1; 12]),
            bson::oid::ObjectId::from_bytes([2; 12]),
            bson::oid::ObjectId::from_bytes([3; 12]),
        );
        let write = |op: &str, ns: &str, id| {
            let mut d = doc! { "op": op, "ns": ns, "ui": uuid(), "ts": ts(5, 1) };
            match op {
                "i" => d.insert(
                    "o",
                    doc! { "_id": id, "control": { "version": 1 }, "data": {} },
                ),
                "u" => {
                    d.insert("o2", doc! { "_id": id });
                    d.insert(
                        "o",
                        doc! { "$v": 2, "diff": { "sdata": { "sv": { "i": { "2": 9 } } } } },
                    )
                }
                _ => d.insert("o", doc! { "_id": id }),
            };
            entry(d)
        };
        // Inserts, updates and deletes of in-scope buckets.
        note_entry(&write("i", "iot.system.buckets.m", a), &r, &scope);
        note_entry(&write("u", "iot.system.buckets.m", b), &r, &scope);
        note_entry(&write("d", "iot.system.buckets.n", c), &r, &scope);
        // Not buckets (the change streams report those), or out of scope.
        note_entry(&write("u", "iot.m", c), &r, &scope);
        note_entry(&write("i", "iot.system.buckets.skipped", c), &r, &scope);
        note_entry(&write("i", "other.system.buckets.m", c), &r, &scope);
        note_entry(&write("i", "iot.system.views", c), &r, &scope);
        // A user's applyOps holding a bucket write.
        let inner = doc! { "op": "i", "ns": "iot.system.buckets.m", "ui": uuid(), "o": { "_id": c, "data": {} } };
        note_entry(
            &entry(
                doc! { "op": "c", "ns": "admin.$cmd", "o": { "applyOps": [inner.clone()] }, "ts": ts(5, 2) },
            ),
            &r,
            &scope,
        );
        let oid = |o: bson::oid::ObjectId| Bson::ObjectId(o).to_string();
        assert_eq!(
            queued(&r),
            vec![
                format!("iot.system.buckets.m/{}", oid(a)),
                format!("iot.system.buckets.m/{}", oid(b)),
                format!("iot.system.buckets.m/{}", oid(c)),
                format!("iot.system.buckets.n/{}", oid(c)),
            ]
        );
        assert!(r.take_rescans().is_empty());

        // The commit point of a transaction is skipped, unread: the server
        // writes no buckets in one.
        let r = Rechecks::new(&LiveOptions::default());
        note_entry(
            &entry(
                doc! { "op": "c", "ns": "admin.$cmd", "o": { "applyOps": [inner] }, "prevOpTime": { "ts": ts(4, 1), "t": 1_i64 }, "ts": ts(5, 3) },
            ),
            &r,
            &scope,
        );
        assert!(r.is_empty());
        // An entry on buckets that cannot be read: the whole collection
        // is compared again; an unreadable other entry is not ours.
        note_entry(
            &entry(
                doc! { "op": "u", "ns": "iot.system.buckets.m", "ui": uuid(), "o": { "$v": 2 }, "ts": ts(5, 4) },
            ),
            &r,
            &scope,
        );
        note_entry(
            &entry(doc! { "op": "u", "ns": "iot.plain", "o": {}, "ts": ts(5, 5) }),
            &r,
            &scope,
        );
        assert!(r.is_empty());
        assert_eq!(
            r.take_rescans(),
            vec![Namespace::new("iot", "system.buckets.m")]
        );
    }

    #[test]
    fn a_tail_is_caught_up_once_it_has_read_its_target() {
        assert_eq!(just_before(ts(10, 5)), ts(10, 4));
        assert_eq!(just_before(ts(10, 0)), ts(9, u32::MAX));
        assert!(reached(Some(ts(10, 5)), ts(10, 5)));
        assert!(reached(Some(ts(11, 0)), ts(10, 5)));
        assert!(!reached(Some(ts(10, 4)), ts(10, 5)));
        assert!(!reached(None, ts(0, 0)));
        // A tail started at a time with nothing written since has read
        // the last write, which is before it.
        assert!(reached(Some(just_before(ts(10, 1))), ts(10, 0)));
        assert!(!reached(Some(just_before(ts(10, 1))), ts(10, 1)));
    }

    #[test]
    fn a_refused_oplog_says_which_privilege_is_missing_and_what_to_grant() {
        let e = oplog_refused(Role::Destination, Some("verifier".into()));
        assert_eq!(e.code(), "not_authorized");
        let text = e.to_string();
        assert!(text.starts_with("The destination user verifier is not allowed to read the oplog (find on local.oplog.rs)"), "{text}");
        assert!(text.contains("time-series"), "{text}");
        assert_eq!(text.matches(". ").count(), 0, "one sentence: {text}");
        assert!(e.remedy().contains("clusterMonitor"), "{}", e.remedy());
        let anonymous = oplog_refused(Role::Source, None).to_string();
        assert!(anonymous.contains("(not authenticated)"), "{anonymous}");
    }
}
