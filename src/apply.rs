//! Continuous sync: read the source's cluster-wide change stream and apply
//! each batch of events to the destination, then checkpoint.
//!
//! **Architecture Invariant:** the resume token is persisted only after
//! every event before it has been applied. A DDL event is a barrier: the
//! CRUD batch before it is flushed, then the DDL is applied, alone.
//!
//! Events name collections by UUID, and the destination collection that
//! mirrors each source UUID is tracked in [`Mapping`]. Events of a UUID the
//! migration does not mirror (out of scope, or an incarnation dropped before
//! the copy saw it) are skipped; that is what makes DDL during the copy safe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, rawdoc, Binary, Document, RawArrayBuf, RawBsonRef, RawDocument, RawDocumentBuf};
use futures_util::{stream, StreamExt, TryStreamExt};
use mongodb::change_stream::ChangeStream;
use tokio::sync::mpsc;

use crate::catalog::{self, NsKind};
use crate::checkpoint::{token_time, MigrationDoc, NamespaceDoc, ProblemDoc, StoredPhase};
use crate::error::{Error, MongoContext, Result, Role};
use crate::events::{self, Batch, Change, CrudEvent, DdlEvent, DocOp};
use crate::migration::Ctx;
use crate::retry::{self, with_retry, Backoff};
use crate::scope::{Namespace, Scope, METADATA_DB, SYSTEM_DBS};

/// Full documents larger than this are dropped from events by the server
/// and fetched instead, so that no event can exceed 16 MB.
const INLINE_DOC_LIMIT: i32 = 4 * 1024 * 1024;
/// Statements per `update`/`delete` command, and ids per fetch.
const WRITE_CHUNK: usize = 1000;
const WRITE_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Documents larger than this are written one by one.
const LARGE_DOC_BYTES: usize = 8 * 1024 * 1024;
/// The longest events wait in the reader before they are handed over.
const CHUNK_MAX_WAIT: Duration = Duration::from_millis(100);

/// Which destination collection mirrors which source collection.
#[derive(Debug, Default, Clone)]
pub struct Mapping {
    by_uuid: HashMap<Vec<u8>, Namespace>,
}

impl Mapping {
    pub fn from_docs(docs: &[NamespaceDoc]) -> Mapping {
        let mut m = Mapping::default();
        for d in docs {
            if let Some(u) = &d.uuid {
                m.by_uuid.insert(u.bytes.clone(), d.namespace());
            }
        }
        m
    }

    pub fn get(&self, uuid: &Binary) -> Option<&Namespace> {
        self.by_uuid.get(&uuid.bytes)
    }

    fn holder_of(&self, ns: &Namespace) -> Option<Vec<u8>> {
        self.by_uuid
            .iter()
            .find(|(_, n)| *n == ns)
            .map(|(u, _)| u.clone())
    }

    fn insert(&mut self, uuid: &Binary, ns: Namespace) {
        self.by_uuid.insert(uuid.bytes.clone(), ns);
    }

    fn remove(&mut self, uuid: &[u8]) -> Option<Namespace> {
        self.by_uuid.remove(uuid)
    }
}

/// The server-side part of the change stream pipeline.
pub fn pipeline() -> Vec<Document> {
    vec![
        doc! { "$match": { "ns.db": { "$nin": SYSTEM_DBS.to_vec() } } },
        doc! { "$set": { "fullDocument": { "$cond": [
            { "$lt": [ { "$bsonSize": "$fullDocument" }, INLINE_DOC_LIMIT ] },
            "$fullDocument",
            "$$REMOVE",
        ] } } },
        doc! { "$unset": ["updateDescription", "stateBeforeChange", "wallTime"] },
    ]
}

/// Events read from the stream, with the token that follows the last one.
struct Chunk {
    events: Vec<RawDocumentBuf>,
    token: Option<Document>,
}

/// Why the apply loop returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ApplyExit {
    /// Commit was requested and every event up to its target is applied.
    CaughtUp,
    /// Paused: the loop stops reading until resumed.
    Paused,
}

/// Runs continuous sync until commit has caught up. Transient failures of
/// either side restart the stream from the last checkpoint with backoff.
pub(crate) async fn run(ctx: &Arc<Ctx>, m: &mut MigrationDoc) -> Result<()> {
    let mut mapping = Mapping::from_docs(&ctx.store.all_namespaces().await?);
    let mut backoff = Backoff::default();
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        ctx.gate().await?;
        match run_stream(ctx, m, &mut mapping).await {
            Ok(ApplyExit::CaughtUp) => return Ok(()),
            Ok(ApplyExit::Paused) => {
                backoff.reset();
                failing_since = None;
            }
            Err(e) if e.is_transient() => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > retry::GIVE_UP_AFTER {
                    return Err(e);
                }
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, ?delay, "sync interrupted; resuming from the last checkpoint");
                ctx.tracker
                    .warn(format!("{} Retrying in {:.1} s.", e, delay.as_secs_f64()));
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

async fn open_stream(ctx: &Ctx, m: &MigrationDoc) -> Result<ChangeStream<RawDocumentBuf>> {
    let mut watch = ctx
        .src
        .client
        .watch()
        .pipeline(pipeline())
        .show_expanded_events(true)
        .max_await_time(Duration::from_millis(ctx.tuning.max_await_ms))
        .batch_size(ctx.tuning.stream_batch as u32);
    watch = match &m.resume_token {
        Some(t) => {
            let token: mongodb::change_stream::event::ResumeToken =
                bson::from_document(t.clone()).map_err(|e| Error::Other(e.to_string()))?;
            watch.start_after(token)
        }
        None => watch.start_at_operation_time(m.start_at),
    };
    let stream = watch.await.ctx(Role::Source, "open the change stream")?;
    Ok(stream.with_type::<RawDocumentBuf>())
}

async fn read_stream(
    mut stream: ChangeStream<RawDocumentBuf>,
    tx: mpsc::Sender<Result<Chunk>>,
    max_events: usize,
) {
    let mut events = Vec::new();
    let mut bytes = 0usize;
    let mut started = std::time::Instant::now();
    loop {
        match stream.next_if_any().await {
            Ok(Some(ev)) => {
                if events.is_empty() {
                    started = std::time::Instant::now();
                }
                bytes += ev.as_bytes().len();
                events.push(ev);
                // Under a steady load the stream never runs dry: hand over
                // what has come after a short while, to keep the lag low.
                if events.len() < max_events
                    && bytes < WRITE_CHUNK_BYTES
                    && started.elapsed() < CHUNK_MAX_WAIT
                {
                    continue;
                }
            }
            Ok(None) => {}
            Err(e) => {
                let _ = tx
                    .send(Err(Error::mongo(Role::Source, "read the change stream", e)))
                    .await;
                return;
            }
        }
        let token = stream
            .resume_token()
            .and_then(|t| bson::to_document(&t).ok());
        let chunk = Chunk {
            events: std::mem::take(&mut events),
            token,
        };
        bytes = 0;
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
}

async fn run_stream(
    ctx: &Arc<Ctx>,
    m: &mut MigrationDoc,
    mapping: &mut Mapping,
) -> Result<ApplyExit> {
    let stream = open_stream(ctx, m).await?;
    let (tx, mut rx) = mpsc::channel(4);
    let reader = tokio::spawn(read_stream(stream, tx, ctx.tuning.stream_batch));
    let _abort = AbortOnDrop(reader);
    let mut control = ctx.control.clone();
    loop {
        if let Some(exit) = check_control(ctx, m).await? {
            return Ok(exit);
        }
        let first = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
            _ = control.changed() => continue,
            c = rx.recv() => c,
        };
        let Some(first) = first else {
            return Err(Error::Other("the change stream reader stopped".into()));
        };
        let mut chunks = vec![first?];
        while chunks.len() < 8 {
            match rx.try_recv() {
                Ok(c) => chunks.push(c?),
                Err(_) => break,
            }
        }
        let token = chunks.iter().rev().find_map(|c| c.token.clone());
        let mut batch = Batch::default();
        let mut applied_events = 0u64;
        for raw in chunks.into_iter().flat_map(|c| c.events) {
            let parsed = events::parse(&raw).map_err(|e| Error::Other(e.to_string()))?;
            match parsed.change {
                Change::Crud(ev) => batch.push(ev),
                Change::Ddl(ddl) => {
                    applied_events += flush(ctx, mapping, std::mem::take(&mut batch)).await?;
                    apply_ddl(ctx, mapping, ddl).await?;
                    applied_events += 1;
                }
            }
        }
        applied_events += flush(ctx, mapping, batch).await?;
        if let Some(token) = token {
            // Every event up to this token is applied: now it may be saved.
            ctx.store.save_token(&token).await?;
            ctx.tracker.applied(applied_events, token_time(&token));
            m.resume_token = Some(token);
        } else {
            ctx.tracker.applied(applied_events, None);
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Acts on pause and commit requests between batches.
async fn check_control(ctx: &Arc<Ctx>, m: &mut MigrationDoc) -> Result<Option<ApplyExit>> {
    let control = ctx.control.borrow().clone();
    if control.paused && m.phase == StoredPhase::Applying {
        return Ok(Some(ApplyExit::Paused));
    }
    if let Some(req) = control.commit {
        if m.phase == StoredPhase::Applying {
            if req.block_source_writes {
                ctx.src
                    .client
                    .database("admin")
                    .run_command(doc! { "setUserWriteBlockMode": 1, "global": true })
                    .await
                    .ctx(Role::Source, "block writes (setUserWriteBlockMode)")?;
            }
            let target = ctx.src.cluster_time().await?;
            m.phase = StoredPhase::Committing;
            m.commit_target = Some(target);
            ctx.store.save(m).await?;
            ctx.tracker.committing(target);
            tracing::info!(?target, "commit: catching up to the source");
        }
    }
    if m.phase == StoredPhase::Committing {
        let target = m.commit_target.unwrap_or(m.start_at);
        let applied = m.resume_token.as_ref().and_then(token_time);
        if applied.is_some_and(|a| (a.time, a.increment) >= (target.time, target.increment)) {
            return Ok(Some(ApplyExit::CaughtUp));
        }
    }
    Ok(None)
}

/// Applies a collapsed batch; returns how many events it held.
async fn flush(ctx: &Arc<Ctx>, mapping: &Mapping, batch: Batch) -> Result<u64> {
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
    let mut ids = RawArrayBuf::new();
    for ev in evs {
        if let Ok(Some(id)) = ev.key.get("_id") {
            ids.push(id.to_raw_bson());
        }
    }
    let options = rawdoc! { "filter": { "_id": { "$in": ids } } };
    match catalog::find_raw(&ctx.src, &first.ns, Some(&first.uuid), options).await? {
        Some(cursor) => cursor.try_collect().await.ctx(
            Role::Source,
            &format!("read changed documents of {}", first.ns),
        ),
        None => Ok(Vec::new()),
    }
}

/// Turns an `update`/`delete` reply into an error (write concern, or a
/// transient per-statement failure, so the idempotent batch is retried) or
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
        if retry::TRANSIENT_WRITE_CODES.contains(&e.code) {
            return Err(Error::Mongo {
                role: Role::Destination,
                op: op(),
                message: crate::uri::redact_text(e.message),
                code: Some(e.code),
                transient: true,
            });
        }
        if let Some(doc) = docs.get(e.index) {
            problems.push(ProblemDoc::new(&ns.to_string(), doc, e.code, e.message));
        }
    }
    ctx.record_problems(&ns.to_string(), problems).await
}

fn in_scope(scope: &Scope, ns: &Namespace) -> bool {
    scope.contains(ns) && ns.db != METADATA_DB
}

/// Applies one DDL event. Each arm is idempotent against the destination's
/// current state, because after a crash the event may be replayed.
async fn apply_ddl(ctx: &Arc<Ctx>, mapping: &mut Mapping, ddl: DdlEvent) -> Result<()> {
    tracing::debug!(?ddl, "applying DDL");
    match ddl {
        DdlEvent::Create {
            ns,
            uuid,
            description,
        } => {
            if !in_scope(&ctx.scope, &ns) {
                return Ok(());
            }
            let mut options = description;
            options.remove("idIndex");
            match uuid {
                None => {
                    // A view: views carry no UUID and no data.
                    if options.contains_key("viewOn") {
                        record(ctx, &ns, NsKind::View, None, false).await?;
                        catalog::create_namespace(&ctx.dest, &ns, &options).await?;
                    }
                }
                Some(uuid) => {
                    if mapping.get(&uuid).is_some() {
                        return Ok(()); // the copy already saw it
                    }
                    if mapping.holder_of(&ns).is_some() {
                        return Ok(()); // an older incarnation; a later one was copied
                    }
                    if options.contains_key("timeseries") {
                        ctx.tracker.warn(format!(
                            "The time-series collection {ns} was created on the source during sync and cannot be migrated live; move it with mongodump and mongorestore."
                        ));
                        return Ok(());
                    }
                    let capped = options.get_bool("capped").unwrap_or(false);
                    record(ctx, &ns, NsKind::Collection, Some(&uuid), capped).await?;
                    catalog::create_namespace(&ctx.dest, &ns, &options).await?;
                    mapping.insert(&uuid, ns);
                }
            }
        }
        DdlEvent::Drop { ns, uuid } => match uuid {
            Some(uuid) => {
                if let Some(dest_ns) = mapping.remove(&uuid.bytes) {
                    forget(ctx, &dest_ns).await?;
                }
            }
            None => {
                if in_scope(&ctx.scope, &ns) && mapping.holder_of(&ns).is_none() {
                    forget(ctx, &ns).await?;
                }
            }
        },
        DdlEvent::Rename { ns: _, to, uuid } => {
            let Some(uuid) = uuid else { return Ok(()) };
            let target_in_scope = in_scope(&ctx.scope, &to);
            match mapping.get(&uuid).cloned() {
                Some(from) if from == to => {}
                Some(from) => {
                    if target_in_scope {
                        if let Some(holder) = mapping.holder_of(&to) {
                            mapping.remove(&holder);
                        }
                        rename_on_destination(ctx, &from, &to).await?;
                        let old = ctx
                            .store
                            .namespaces()
                            .find_one(doc! { "_id": from.to_string() })
                            .await
                            .ctx(Role::Destination, "read a namespace")?;
                        let mut rec = old.unwrap_or(NamespaceDoc {
                            ns: String::new(),
                            kind: NsKind::Collection,
                            uuid: Some(uuid.clone()),
                            capped: false,
                            estimated_docs: 0,
                            estimated_bytes: 0,
                            copied: true,
                        });
                        rec.ns = to.to_string();
                        ctx.store.put_namespace(&rec).await?;
                        ctx.store.remove_namespace(&from.to_string()).await?;
                        mapping.insert(&uuid, to);
                    } else {
                        mapping.remove(&uuid.bytes);
                        forget(ctx, &from).await?;
                    }
                }
                None if target_in_scope => {
                    // Renamed into scope from outside it: copy it now, if
                    // the source still holds this very collection there.
                    let current = catalog::find_namespace(&ctx.src, &to).await?;
                    if let Some(src_ns) = current.filter(|c| c.uuid.as_ref() == Some(&uuid)) {
                        if let Some(holder) = mapping.holder_of(&to) {
                            mapping.remove(&holder);
                            catalog::drop_namespace(&ctx.dest, &to).await?;
                        }
                        record(
                            ctx,
                            &to,
                            NsKind::Collection,
                            Some(&uuid),
                            src_ns.is_capped(),
                        )
                        .await?;
                        catalog::create_namespace(&ctx.dest, &to, &src_ns.options).await?;
                        crate::copy::copy_whole(ctx, &to, Some(&uuid)).await?;
                        let specs = catalog::list_indexes(&ctx.src, &to).await?;
                        catalog::create_indexes(&ctx.dest, &to, &specs).await?;
                        mapping.insert(&uuid, to);
                    }
                }
                None => {}
            }
        }
        DdlEvent::DropDatabase { db } => {
            if !ctx.scope.may_contain_db(&db) {
                return Ok(());
            }
            let gone: Vec<Vec<u8>> = mapping
                .by_uuid
                .iter()
                .filter(|(_, n)| n.db == db)
                .map(|(u, _)| u.clone())
                .collect();
            for u in gone {
                mapping.remove(&u);
            }
            let dest_db = ctx.dest.client.database(&db);
            let dest_names = dest_db
                .list_collection_names()
                .await
                .ctx(Role::Destination, "list collections")?;
            for name in &dest_names {
                let ns = Namespace::new(&db, name);
                if in_scope(&ctx.scope, &ns) {
                    forget(ctx, &ns).await?;
                }
            }
            // What is left may be only the server's own bookkeeping (the
            // `system.views` of dropped views): then the database goes too,
            // as it went on the source.
            let left = dest_db
                .list_collection_names()
                .await
                .ctx(Role::Destination, "list collections")?;
            if left.iter().all(|n| Scope::is_system_coll(n)) {
                dest_db
                    .drop()
                    .await
                    .ctx(Role::Destination, &format!("drop database {db}"))?;
            }
        }
        DdlEvent::CreateIndexes {
            ns: _,
            uuid,
            indexes,
        } => {
            if let Some(dest_ns) = uuid.as_ref().and_then(|u| mapping.get(u)) {
                catalog::create_indexes(&ctx.dest, dest_ns, &indexes).await?;
            }
        }
        DdlEvent::DropIndexes {
            ns: _,
            uuid,
            indexes,
        } => {
            if let Some(dest_ns) = uuid.as_ref().and_then(|u| mapping.get(u)) {
                for ix in indexes {
                    let Ok(name) = ix.get_str("name") else {
                        continue;
                    };
                    let res = ctx
                        .dest
                        .client
                        .database(&dest_ns.db)
                        .run_command(doc! { "dropIndexes": &dest_ns.coll, "index": name })
                        .await;
                    match res {
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                retry::server_code(&e),
                                Some(retry::INDEX_NOT_FOUND) | Some(retry::NAMESPACE_NOT_FOUND)
                            ) => {}
                        Err(e) => {
                            return Err(Error::mongo(
                                Role::Destination,
                                format!("drop index {name} on {dest_ns}"),
                                e,
                            ))
                        }
                    }
                }
            }
        }
        DdlEvent::Modify {
            ns,
            uuid,
            description,
        } => {
            let target = match &uuid {
                Some(u) => mapping.get(u).cloned(),
                None => in_scope(&ctx.scope, &ns).then_some(ns.clone()),
            };
            if let Some(dest_ns) = target {
                let cmd = catalog::sync_coll_mod(&dest_ns.coll, &description);
                match ctx.dest.client.database(&dest_ns.db).run_command(cmd).await {
                    Ok(_) => {}
                    Err(e) if retry::server_code(&e) == Some(retry::NAMESPACE_NOT_FOUND) => {}
                    Err(e) => {
                        return Err(Error::mongo(
                            Role::Destination,
                            format!("modify {dest_ns}"),
                            e,
                        ))
                    }
                }
            }
        }
        DdlEvent::Other { operation, ns } => {
            if let Some(ns) = ns.filter(|n| in_scope(&ctx.scope, n)) {
                tracing::info!(%ns, operation, "event has nothing to replay");
                if operation.contains("hard") || operation.contains("ShardKey") {
                    ctx.tracker.warn(format!(
                        "The source ran {operation} on {ns} during sync; the destination's sharding is not changed to match."
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Drops a namespace on the destination and from the migration's records.
async fn forget(ctx: &Ctx, ns: &Namespace) -> Result<()> {
    catalog::drop_namespace(&ctx.dest, ns).await?;
    ctx.store.remove_namespace(&ns.to_string()).await
}

async fn record(
    ctx: &Ctx,
    ns: &Namespace,
    kind: NsKind,
    uuid: Option<&Binary>,
    capped: bool,
) -> Result<()> {
    ctx.store
        .put_namespace(&NamespaceDoc {
            ns: ns.to_string(),
            kind,
            uuid: uuid.cloned(),
            capped,
            estimated_docs: 0,
            estimated_bytes: 0,
            copied: true,
        })
        .await
}

async fn rename_on_destination(ctx: &Ctx, from: &Namespace, to: &Namespace) -> Result<()> {
    let res = ctx
        .dest
        .client
        .database("admin")
        .run_command(doc! {
            "renameCollection": from.to_string(),
            "to": to.to_string(),
            "dropTarget": true,
        })
        .await;
    match res {
        Ok(_) => Ok(()),
        // Already renamed before a restart.
        Err(e) if retry::server_code(&e) == Some(retry::NAMESPACE_NOT_FOUND) => Ok(()),
        Err(e) => Err(Error::mongo(
            Role::Destination,
            format!("rename {from} to {to}"),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_filters_system_databases_and_trims_events() {
        let p = pipeline();
        let m = p[0]
            .get_document("$match")
            .unwrap()
            .get_document("ns.db")
            .unwrap();
        let excluded: Vec<&str> = m
            .get_array("$nin")
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for db in ["admin", "local", "config", "__mongoferry"] {
            assert!(excluded.contains(&db), "{db}");
        }
        assert!(p[2]
            .get_array("$unset")
            .unwrap()
            .iter()
            .any(|v| v.as_str() == Some("updateDescription")));
    }

    #[test]
    fn mapping_tracks_renames() {
        let u = Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![1; 16],
        };
        let mut m = Mapping::default();
        m.insert(&u, Namespace::new("a", "x"));
        assert_eq!(
            m.holder_of(&Namespace::new("a", "x")),
            Some(u.bytes.clone())
        );
        m.insert(&u, Namespace::new("a", "y"));
        assert_eq!(m.get(&u), Some(&Namespace::new("a", "y")));
        assert_eq!(m.holder_of(&Namespace::new("a", "x")), None);
    }
}
