//! The namespaces of a migration: listing them on the source with their
//! options and indexes, creating them on the destination, and the index
//! settings that are relaxed during sync and restored at commit; and the
//! collections' storage statistics (`$collStats`), summed over shards.
//!
//! **Invariant:** while a migration syncs, no destination index is unique
//! (except `_id`) and no TTL index expires anything; `finalize_indexes`
//! restores both from the source's own specifications at commit.

use bson::spec::BinarySubtype;
use bson::{doc, rawdoc, Binary, Bson, Document, RawBson, RawDocumentBuf};
use futures_util::future::try_join_all;
use futures_util::TryStreamExt;
use mongodb::options::{CollectionOptions, ReadConcern, SelectionCriteria};
use mongodb::raw_batch_cursor::RawBatchCursor;
use std::sync::Arc;

use crate::cluster::Cluster;
use crate::driver_error::server_code;
use crate::error::{Error, MongoContext, Result, Role};
use crate::scope::{Namespace, Scope};

/// A TTL that never fires within the life of a migration (68 years).
pub const HELD_TTL_SECONDS: i64 = i32::MAX as i64;

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsKind {
    Collection,
    View,
    Timeseries,
}

/// A namespace on the source, as `listCollections` describes it.
#[derive(Debug, Clone)]
pub struct SourceNamespace {
    pub ns: Namespace,
    pub kind: NsKind,
    /// The collection's UUID; views have none.
    pub uuid: Option<Binary>,
    pub options: Document,
}

impl SourceNamespace {
    pub fn is_capped(&self) -> bool {
        self.options.get_bool("capped").unwrap_or(false)
    }

    pub fn is_clustered(&self) -> bool {
        self.options.contains_key("clusteredIndex")
    }
}

/// A server-reported count or size as `u64`, whatever numeric type the
/// server chose; 0 when absent or negative.
pub fn number(v: Option<&Bson>) -> u64 {
    match v {
        Some(Bson::Int32(i)) => (*i).max(0) as u64,
        Some(Bson::Int64(i)) => (*i).max(0) as u64,
        Some(Bson::Double(d)) => d.max(0.0) as u64,
        _ => 0,
    }
}

/// The storage statistics of one collection (`$collStats`
/// `storageStats`), summed over shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// How many reports were summed: one per shard through `mongos`, one
    /// on a replica set; 0 when the server sent none.
    pub reports: usize,
    pub count: u64,
    /// Uncompressed size of the documents.
    pub size: u64,
    /// Size on disk of the documents.
    pub storage_size: u64,
    /// Size on disk of the indexes (`totalIndexSize`).
    pub index_size: u64,
    /// A capped collection's cap (the oplog's size limit); 0 otherwise.
    pub max_size: u64,
}

impl StorageStats {
    /// Adds one `$collStats` result document; one without `storageStats`
    /// is passed over.
    fn add(&mut self, report: &Document) {
        let Ok(st) = report.get_document("storageStats") else {
            return;
        };
        self.reports += 1;
        self.count += number(st.get("count"));
        self.size += number(st.get("size"));
        self.storage_size += number(st.get("storageSize"));
        self.index_size += number(st.get("totalIndexSize"));
        self.max_size += number(st.get("maxSize"));
    }
}

/// Reads the storage statistics of `ns` with `$collStats`, summed over
/// shards. The driver's error is returned as it is, for the caller to word.
pub async fn storage_stats(
    cluster: &Cluster,
    ns: &Namespace,
) -> mongodb::error::Result<StorageStats> {
    let db = cluster.client.database(&ns.db);
    let coll = if ns.db == "local" {
        // `local` does not take the majority read concern a source uses.
        let options = CollectionOptions::builder()
            .read_concern(ReadConcern::local())
            .build();
        db.collection_with_options::<Document>(&ns.coll, options)
    } else {
        db.collection::<Document>(&ns.coll)
    };
    let mut cursor = coll
        .aggregate(vec![doc! { "$collStats": { "storageStats": {} } }])
        .await?;
    let mut stats = StorageStats::default();
    while let Some(report) = cursor.try_next().await? {
        stats.add(&report);
    }
    Ok(stats)
}

/// Lists the in-scope namespaces of a cluster, querying its databases in
/// parallel. Sorted by namespace.
pub async fn list_namespaces(cluster: &Cluster, scope: &Scope) -> Result<Vec<SourceNamespace>> {
    let dbs = cluster
        .client
        .list_database_names()
        .authorized_databases(true)
        .await
        .ctx(cluster.role, "list its databases")?;
    let per_db = dbs
        .into_iter()
        .filter(|db| scope.may_contain_db(db))
        .map(|db| list_db_namespaces(cluster, db, scope));
    let mut all: Vec<SourceNamespace> = try_join_all(per_db).await?.into_iter().flatten().collect();
    all.sort_by(|a, b| a.ns.cmp(&b.ns));
    Ok(all)
}

/// `listCollections` on one database, with an optional filter, parsed.
async fn list_specs(cluster: &Cluster, db: &str, filter: Document) -> Result<Vec<SourceNamespace>> {
    let specs: Vec<Document> = cluster
        .client
        .database(db)
        .run_cursor_command(doc! { "listCollections": 1, "filter": filter })
        .await
        .ctx(cluster.role, "list collections")?
        .try_collect()
        .await
        .ctx(cluster.role, "list collections")?;
    Ok(specs
        .iter()
        .filter_map(|s| parse_collection_spec(db, s))
        .collect())
}

/// Lists the in-scope namespaces of one database.
pub async fn list_db_namespaces(
    cluster: &Cluster,
    db: String,
    scope: &Scope,
) -> Result<Vec<SourceNamespace>> {
    let mut all = list_specs(cluster, &db, doc! {}).await?;
    all.retain(|n| scope.contains(&n.ns));
    Ok(all)
}

/// Looks one collection up by name; `None` when it does not exist.
pub async fn find_namespace(cluster: &Cluster, ns: &Namespace) -> Result<Option<SourceNamespace>> {
    let found = list_specs(cluster, &ns.db, doc! { "name": &ns.coll }).await?;
    Ok(found.into_iter().next())
}

/// The current name of the collection with this UUID in `db`; `None` when
/// it no longer exists there.
pub async fn current_namespace(
    cluster: &Cluster,
    db: &str,
    uuid: &Binary,
) -> Result<Option<Namespace>> {
    let found = list_specs(cluster, db, doc! { "info.uuid": uuid.clone() }).await?;
    Ok(found.into_iter().next().map(|n| n.ns))
}

/// A `find` of `ns` that names the collection by UUID where the cluster
/// allows it (a replica set), so that a rename on the source cannot make
/// the read miss it or hit another collection; by name through `mongos`.
/// Returns `None` when the collection no longer exists.
pub async fn find_raw(
    cluster: &Cluster,
    ns: &Namespace,
    uuid: Option<&Binary>,
    options: RawDocumentBuf,
) -> Result<Option<mongodb::Cursor<RawDocumentBuf>>> {
    find_raw_on(cluster, ns, uuid, options, None).await
}

/// [`find_raw`], served by the member at `node` (`host:port`) when one is
/// named, primary or not: record ids are that member's own.
pub async fn find_raw_on(
    cluster: &Cluster,
    ns: &Namespace,
    uuid: Option<&Binary>,
    options: RawDocumentBuf,
    node: Option<&str>,
) -> Result<Option<mongodb::Cursor<RawDocumentBuf>>> {
    let db = cluster.client.database(&ns.db);
    let found = find_command(cluster, &db, ns, uuid, options, node, None).await;
    absent_if_dropped(cluster, ns, found.map(|c| c.with_type::<RawDocumentBuf>()))
}

/// The filter of the `_id`s in `[min, max)`, either bound absent for none.
///
/// Ranges are otherwise read with `hint({_id: 1})` and `min`/`max` index
/// bounds, which hold every BSON type. A time-series collection's buckets
/// are read with this filter instead: on 5.0 their clustered `_id` is no
/// index to hint (the server refuses it), and an `_id` range is a scan
/// bounded by record (5.0) or a clustered index scan (6.0). Type
/// bracketing keeps it to the bounds' type, which is all there is: the
/// buckets' validator allows only ObjectId `_id`s.
pub fn id_range_filter(min: Option<&Bson>, max: Option<&Bson>) -> Result<RawDocumentBuf> {
    let mut range = Document::new();
    if let Some(min) = min {
        range.insert("$gte", min.clone());
    }
    if let Some(max) = max {
        range.insert("$lt", max.clone());
    }
    let filter = if range.is_empty() {
        Document::new()
    } else {
        doc! { "_id": range }
    };
    RawDocumentBuf::from_document(&filter).map_err(|e| Error::Other(e.to_string()))
}

/// Whether `doc`'s `_id` is `MaxKey`.
pub fn has_max_key_id(doc: &bson::RawDocument) -> bool {
    matches!(doc.get("_id"), Ok(Some(bson::RawBsonRef::MaxKey)))
}

/// The document of `ns` whose `_id` is `MaxKey`, if there is one.
///
/// A read of the `_id` index with a `min` bound and no `max` ends before
/// `MaxKey`: the bound the server puts in for the missing `max` is
/// `MaxKey`, and upper bounds are exclusive. (A clustered collection's
/// bounds bound its scan instead, which reaches it.) So the last range of
/// an `_id`-ordered read fetches this one document on its own.
pub async fn max_key_document(
    cluster: &Cluster,
    ns: &Namespace,
    uuid: Option<&Binary>,
    after: Option<bson::Timestamp>,
    ids_only: bool,
) -> Result<Option<RawDocumentBuf>> {
    let mut options = rawdoc! { "filter": { "_id": RawBson::MaxKey }, "limit": 1 };
    if ids_only {
        options.append("projection", rawdoc! { "_id": 1 });
    }
    let db = cluster.client.database(&ns.db);
    let found = find_command(cluster, &db, ns, uuid, options, None, after).await;
    let Some(cursor) = absent_if_dropped(cluster, ns, found)? else {
        return Ok(None);
    };
    let docs: Vec<RawDocumentBuf> = cursor
        .with_type::<RawDocumentBuf>()
        .try_collect()
        .await
        .map_err(|e| Error::mongo(cluster.role, format!("read {ns}"), e))?;
    Ok(docs.into_iter().next())
}

/// A `find` of `ns` by name whose majority read waits until the cluster
/// has reached `after`, when given (a causally consistent re-read).
pub async fn find_raw_after(
    cluster: &Cluster,
    ns: &Namespace,
    options: RawDocumentBuf,
    after: Option<bson::Timestamp>,
) -> Result<Option<mongodb::Cursor<RawDocumentBuf>>> {
    let db = cluster.client.database(&ns.db);
    let found = find_command(cluster, &db, ns, None, options, None, after).await;
    absent_if_dropped(cluster, ns, found.map(|c| c.with_type::<RawDocumentBuf>()))
}

/// [`find_raw_on`], read a whole reply at a time: each batch's documents
/// stay in the reply's buffer, `batch_size` to a reply after the first.
pub async fn find_batches_on(
    cluster: &Cluster,
    ns: &Namespace,
    uuid: Option<&Binary>,
    options: RawDocumentBuf,
    node: Option<&str>,
    batch_size: u32,
) -> Result<Option<RawBatchCursor>> {
    let db = cluster.client.database(&ns.db);
    let found = find_command(cluster, &db, ns, uuid, options, node, None)
        .batch_size(batch_size)
        .batch()
        .await;
    absent_if_dropped(cluster, ns, found)
}

fn find_command<'a>(
    cluster: &Cluster,
    db: &'a mongodb::Database,
    ns: &Namespace,
    uuid: Option<&Binary>,
    options: RawDocumentBuf,
    node: Option<&str>,
    after: Option<bson::Timestamp>,
) -> mongodb::action::RunCursorCommand<'a> {
    let mut cmd = match uuid.filter(|_| !cluster.is_sharded()) {
        Some(u) => rawdoc! { "find": RawBson::Binary(u.clone()) },
        None => rawdoc! { "find": ns.coll.as_str() },
    };
    for (k, v) in options.iter().flatten() {
        cmd.append_ref(k, v);
    }
    let mut concern = rawdoc! { "level": "majority" };
    if let Some(t) = after {
        concern.append("afterClusterTime", t);
    }
    cmd.append("readConcern", concern);
    let mut action = db.run_raw_cursor_command(cmd);
    if let Some(node) = node {
        let node = node.to_ascii_lowercase();
        action = action.selection_criteria(SelectionCriteria::Predicate(Arc::new(move |s| {
            s.address().to_string().to_ascii_lowercase() == node
        })));
    }
    action
}

fn absent_if_dropped<C>(
    cluster: &Cluster,
    ns: &Namespace,
    found: mongodb::error::Result<C>,
) -> Result<Option<C>> {
    match found {
        Ok(c) => Ok(Some(c)),
        // Dropped since: its drop event follows.
        Err(e) if server_code(&e) == Some(crate::driver_error::NAMESPACE_NOT_FOUND) => Ok(None),
        Err(e) => Err(Error::mongo(cluster.role, format!("read {ns}"), e)),
    }
}

fn parse_collection_spec(db: &str, spec: &Document) -> Option<SourceNamespace> {
    let name = spec.get_str("name").ok()?;
    let kind = match spec.get_str("type").unwrap_or("collection") {
        "collection" => NsKind::Collection,
        "view" => NsKind::View,
        "timeseries" => NsKind::Timeseries,
        _ => return None,
    };
    let uuid = spec
        .get_document("info")
        .ok()
        .and_then(|i| match i.get("uuid") {
            Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Uuid => Some(b.clone()),
            _ => None,
        });
    Some(SourceNamespace {
        ns: Namespace::new(db, name),
        kind,
        uuid,
        options: spec.get_document("options").cloned().unwrap_or_default(),
    })
}

/// The index specifications of a collection, `_id` and clustered included.
pub async fn list_indexes(cluster: &Cluster, ns: &Namespace) -> Result<Vec<Document>> {
    let coll = cluster
        .client
        .database(&ns.db)
        .collection::<Document>(&ns.coll);
    match coll.list_indexes().await {
        Ok(cursor) => {
            let models: Vec<_> = cursor
                .try_collect()
                .await
                .ctx(cluster.role, "list indexes")?;
            models
                .into_iter()
                .map(|m| bson::to_document(&m).map_err(|e| Error::Other(e.to_string())))
                .collect()
        }
        Err(e) if server_code(&e) == Some(crate::driver_error::NAMESPACE_NOT_FOUND) => {
            Ok(Vec::new())
        }
        Err(e) => Err(Error::mongo(cluster.role, "list indexes", e)),
    }
}

/// `listIndexes` as the server returns it (no driver model in between,
/// which could change a type); empty when the collection does not exist.
pub async fn list_indexes_raw(cluster: &Cluster, ns: &Namespace) -> Result<Vec<Document>> {
    let cursor = cluster
        .client
        .database(&ns.db)
        .run_cursor_command(doc! { "listIndexes": &ns.coll })
        .await;
    match cursor {
        Ok(c) => c
            .try_collect()
            .await
            .ctx(cluster.role, &format!("list the indexes of {ns}")),
        Err(e) if server_code(&e) == Some(crate::driver_error::NAMESPACE_NOT_FOUND) => {
            Ok(Vec::new())
        }
        Err(e) => Err(Error::mongo(
            cluster.role,
            format!("list the indexes of {ns}"),
            e,
        )),
    }
}

/// Whether an index is the one the server makes with the collection.
pub fn is_builtin_index(spec: &Document) -> bool {
    spec.get_str("name") == Ok("_id_") || spec.get_bool("clustered").unwrap_or(false)
}

/// The specification to build on the destination while syncing: unique
/// indexes non-unique (events replayed out of order may briefly collide)
/// and TTL indexes held (they would delete copied documents).
pub fn sync_index_spec(spec: &Document) -> Document {
    let mut out = spec.clone();
    out.remove("ns");
    if !is_builtin_index(spec) {
        out.remove("unique");
    }
    out.remove("prepareUnique");
    if out.contains_key("expireAfterSeconds") {
        out.insert("expireAfterSeconds", HELD_TTL_SECONDS);
    }
    out
}

/// The span of a bucket each granularity implies, which `create` fills in
/// and which need not be given back.
fn default_bucket_span(granularity: &str) -> Option<i64> {
    match granularity {
        "seconds" => Some(3_600),
        "minutes" => Some(86_400),
        "hours" => Some(2_592_000),
        _ => None,
    }
}

/// What `create` takes to make a time-series collection like one described
/// by `options`: those of the collection itself (`listCollections` type
/// `timeseries`) or of its buckets (the oplog's `create` of
/// `system.buckets.<name>`, with the validator and clustered index the
/// server makes on its own). `bucketMaxSpanSeconds` is kept only where it
/// is not the granularity's own.
pub fn timeseries_options(options: &Document) -> Document {
    let mut out = Document::new();
    if let Ok(ts) = options.get_document("timeseries") {
        let mut spec = ts.clone();
        let implied = ts.get_str("granularity").ok().and_then(default_bucket_span);
        let span = spec
            .get("bucketMaxSpanSeconds")
            .map(|v| number(Some(v)) as i64);
        if span.is_some() && span == implied {
            spec.remove("bucketMaxSpanSeconds");
        }
        out.insert("timeseries", spec);
    }
    if let Some(ttl) = options.get("expireAfterSeconds") {
        out.insert("expireAfterSeconds", ttl.clone());
    }
    out
}

/// Collection options to create with on the destination.
pub fn create_options(options: &Document) -> Document {
    let mut out = if options.contains_key("timeseries") {
        timeseries_options(options)
    } else {
        options.clone()
    };
    // A clustered collection's TTL deletes just like a TTL index, so sync
    // runs without it. It cannot be held at a huge value as an index TTL
    // is: the server refuses a clustered `expireAfterSeconds` that reaches
    // back before 1970. Commit sets the source's value with `collMod`.
    out.remove("expireAfterSeconds");
    out
}

/// Creates a collection, view or time-series collection on the
/// destination. An existing namespace is left alone (the call is replayed
/// after restarts). A time-series collection's buckets are made with it,
/// never on their own: a plain collection of that name would take its place.
pub async fn create_namespace(dest: &Cluster, ns: &Namespace, options: &Document) -> Result<()> {
    if ns.timeseries_of_buckets().is_some() {
        return Ok(());
    }
    let mut cmd = doc! { "create": &ns.coll };
    cmd.extend(create_options(options));
    match dest.client.database(&ns.db).run_command(cmd).await {
        Ok(_) => Ok(()),
        Err(e) if server_code(&e) == Some(crate::driver_error::NAMESPACE_EXISTS) => Ok(()),
        Err(e) => Err(Error::mongo(Role::Destination, format!("create {ns}"), e)),
    }
}

/// Puts an existing namespace of the destination in its sync form, as
/// if the copy had made it: unique indexes made non-unique
/// (`forceNonUnique`, 6.0+), TTL indexes held, and a clustered or
/// time-series collection's own TTL off. A reverse does this to the old
/// cluster, whose indexes are real; commit restores them from the source's.
pub async fn relax_for_sync(dest: &Cluster, n: &SourceNamespace) -> Result<()> {
    let db = dest.client.database(&n.ns.db);
    let run = |cmd: Document, what: String| {
        let db = db.clone();
        async move {
            db.run_command(cmd)
                .await
                .map(|_| ())
                .ctx(Role::Destination, &what)
        }
    };
    match n.kind {
        NsKind::View => return Ok(()),
        NsKind::Timeseries => {
            if n.options.contains_key("expireAfterSeconds") {
                run(
                    doc! { "collMod": &n.ns.coll, "expireAfterSeconds": "off" },
                    format!("hold the TTL of {}", n.ns),
                )
                .await?;
            }
            return Ok(());
        }
        NsKind::Collection => {}
    }
    if n.is_clustered()
        && n.options.contains_key("expireAfterSeconds")
        && n.ns.timeseries_of_buckets().is_none()
    {
        run(
            doc! { "collMod": &n.ns.coll, "expireAfterSeconds": "off" },
            format!("hold the TTL of {}", n.ns),
        )
        .await?;
    }
    for spec in list_indexes(dest, &n.ns).await? {
        if is_builtin_index(&spec) {
            continue;
        }
        let name = spec.get_str("name").unwrap_or_default().to_string();
        if spec.get_bool("unique").unwrap_or(false) {
            run(
                doc! { "collMod": &n.ns.coll, "index": { "name": &name, "forceNonUnique": true } },
                format!("make index {name} on {} non-unique for the sync", n.ns),
            )
            .await?;
        }
        if spec.contains_key("expireAfterSeconds") {
            run(
                doc! { "collMod": &n.ns.coll, "index": { "name": &name, "expireAfterSeconds": HELD_TTL_SECONDS } },
                format!("hold the TTL of index {name} on {}", n.ns),
            )
            .await?;
        }
    }
    Ok(())
}

/// Whether the cluster blocks user writes (`setUserWriteBlockMode`), as
/// each primary reports it in `serverStatus().repl.userWriteBlockMode`
/// (2 blocked, 1 not). Through mongos, mongos's own report.
pub async fn user_writes_blocked(cluster: &Cluster) -> Result<bool> {
    let status = cluster
        .client
        .database("admin")
        .run_command(doc! { "serverStatus": 1, "repl": 1, "metrics": 0, "wiredTiger": 0 })
        .await
        .ctx(cluster.role, "read whether user writes are blocked")?;
    let mode = status
        .get_document("repl")
        .ok()
        .and_then(|r| r.get("userWriteBlockMode"))
        .map(|v| number(Some(v)));
    Ok(mode == Some(2))
}

/// Blocks (`allowed: false`) or opens the cluster to user writes. Users
/// with `bypassWriteBlockingMode` (the `restore` role), Mongoferry among
/// them, write either way. Opening an open cluster does nothing.
pub async fn set_user_writes(cluster: &Cluster, allowed: bool) -> Result<()> {
    if allowed && !user_writes_blocked(cluster).await? {
        return Ok(());
    }
    cluster
        .client
        .database("admin")
        .run_command(doc! { "setUserWriteBlockMode": 1, "global": !allowed })
        .await
        .ctx(
            cluster.role,
            if allowed {
                "open to user writes (setUserWriteBlockMode)"
            } else {
                "block user writes (setUserWriteBlockMode)"
            },
        )?;
    tracing::info!(cluster = %cluster.display_uri, blocked = !allowed, "user writes");
    Ok(())
}

/// Builds the given indexes on the destination in their sync form.
pub async fn create_indexes(dest: &Cluster, ns: &Namespace, specs: &[Document]) -> Result<()> {
    let specs: Vec<Document> = specs
        .iter()
        .filter(|s| !is_builtin_index(s))
        .map(sync_index_spec)
        .collect();
    if specs.is_empty() {
        return Ok(());
    }
    let db = dest.client.database(&ns.db);
    let cmd = doc! { "createIndexes": &ns.coll, "indexes": specs.clone() };
    match db.run_command(cmd).await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                server_code(&e),
                Some(crate::driver_error::INDEX_OPTIONS_CONFLICT)
                    | Some(crate::driver_error::INDEX_KEY_SPECS_CONFLICT)
            ) =>
        {
            // An index of that name or key exists with other options (a
            // replayed event meets a later state): rebuild each one alone.
            for spec in specs {
                let name = spec.get_str("name").unwrap_or_default().to_string();
                let _ = db
                    .run_command(doc! { "dropIndexes": &ns.coll, "index": &name })
                    .await;
                db.run_command(doc! { "createIndexes": &ns.coll, "indexes": [spec] })
                    .await
                    .ctx(Role::Destination, &format!("build index {name} on {ns}"))?;
            }
            Ok(())
        }
        Err(e) => Err(Error::mongo(
            Role::Destination,
            format!("build indexes on {ns}"),
            e,
        )),
    }
}

/// Drops a collection or view on the destination; a missing one is fine.
/// Buckets go with their time-series collection, which is dropped whole.
pub async fn drop_namespace(dest: &Cluster, ns: &Namespace) -> Result<()> {
    let ns = &ns.timeseries_of_buckets().unwrap_or_else(|| ns.clone());
    match dest
        .client
        .database(&ns.db)
        .run_command(doc! { "drop": &ns.coll })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if server_code(&e) == Some(crate::driver_error::NAMESPACE_NOT_FOUND) => Ok(()),
        Err(e) => Err(Error::mongo(Role::Destination, format!("drop {ns}"), e)),
    }
}

/// Restores on the destination what sync relaxed: unique indexes become
/// unique, TTL indexes and clustered TTLs get their real expiry. Reads the
/// specifications from the source, which no longer changes at commit.
pub async fn finalize_indexes(src: &Cluster, dest: &Cluster, ns: &Namespace) -> Result<()> {
    let db = dest.client.database(&ns.db);
    let dest_specs = list_indexes(dest, ns).await?;
    for spec in list_indexes(src, ns).await? {
        if is_builtin_index(&spec) {
            continue;
        }
        let name = spec.get_str("name").unwrap_or_default();
        let Some(current) = dest_specs.iter().find(|d| d.get_str("name") == Ok(name)) else {
            // Missing (never expected): build it in its final form.
            db.run_command(doc! { "createIndexes": &ns.coll, "indexes": [without_ns(&spec)] })
                .await
                .ctx(Role::Destination, &format!("build index {name} on {ns}"))?;
            continue;
        };
        if spec.get_bool("unique").unwrap_or(false) && !current.get_bool("unique").unwrap_or(false)
        {
            // 6.0+: an index becomes unique in two steps; the second fails
            // with the duplicates listed if the data is not unique.
            db.run_command(
                doc! { "collMod": &ns.coll, "index": { "name": name, "prepareUnique": true } },
            )
            .await
            .ctx(
                Role::Destination,
                &format!("prepare index {name} on {ns} to be unique"),
            )?;
            db.run_command(doc! { "collMod": &ns.coll, "index": { "name": name, "unique": true } })
                .await
                .ctx(
                    Role::Destination,
                    &format!("make index {name} on {ns} unique"),
                )?;
        }
        if let Some(ttl) = spec.get("expireAfterSeconds") {
            if current.get("expireAfterSeconds") != Some(ttl) {
                db.run_command(doc! { "collMod": &ns.coll, "index": { "name": name, "expireAfterSeconds": ttl.clone() } })
                    .await
                    .ctx(Role::Destination, &format!("restore the TTL of index {name} on {ns}"))?;
            }
        }
    }
    if let Some(src_ns) = find_namespace(src, ns).await? {
        if let Some(ttl) = src_ns.options.get("expireAfterSeconds") {
            // A time-series collection's TTL is set on the collection,
            // which passes it on to its buckets and their view.
            let target = ns.timeseries_of_buckets().unwrap_or_else(|| ns.clone());
            db.run_command(doc! { "collMod": &target.coll, "expireAfterSeconds": ttl.clone() })
                .await
                .ctx(Role::Destination, &format!("restore the TTL of {target}"))?;
        }
    }
    Ok(())
}

fn without_ns(spec: &Document) -> Document {
    let mut s = spec.clone();
    s.remove("ns");
    s
}

/// How coarse a time-series granularity is; the server only lets it grow.
fn granularity_rank(granularity: &str) -> Option<u8> {
    match granularity {
        "seconds" => Some(0),
        "minutes" => Some(1),
        "hours" => Some(2),
        _ => None,
    }
}

/// A source `modify` event without what the destination has already gone
/// past: a time-series granularity finer than the destination's current
/// one. The copy created the collection with the granularity the source
/// had then, and the events replayed from before it may still hold the
/// earlier steps, which the server refuses (it only coarsens).
pub fn without_passed_granularity(description: &Document, current: &Document) -> Document {
    let asked = description
        .get_document("timeseries")
        .ok()
        .and_then(|t| t.get_str("granularity").ok())
        .and_then(granularity_rank);
    let now = current
        .get_document("timeseries")
        .ok()
        .and_then(|t| t.get_str("granularity").ok())
        .and_then(granularity_rank);
    let mut out = description.clone();
    if let (Some(asked), Some(now)) = (asked, now) {
        if asked < now {
            out.remove("timeseries");
        }
    }
    out
}

/// The `collMod` to replay for a source `modify` event, with the same
/// relaxations as [`sync_index_spec`].
pub fn sync_coll_mod(coll: &str, description: &Document) -> Document {
    let mut cmd = doc! { "collMod": coll };
    for (k, v) in description {
        match (k.as_str(), v) {
            ("index", Bson::Document(ix)) => {
                let mut ix = ix.clone();
                ix.remove("unique");
                ix.remove("prepareUnique");
                if ix.contains_key("expireAfterSeconds") {
                    ix.insert("expireAfterSeconds", HELD_TTL_SECONDS);
                }
                // collMod with only a name left has nothing to change.
                if ix.keys().any(|k| k != "name" && k != "keyPattern") {
                    cmd.insert("index", ix);
                }
            }
            // A clustered collection's TTL stays off until commit (see
            // `create_options`).
            ("expireAfterSeconds", _) => {
                cmd.insert("expireAfterSeconds", "off");
            }
            _ => {
                cmd.insert(k, v.clone());
            }
        }
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_specs_relax_unique_and_ttl_only() {
        let unique = doc! { "v": 2, "key": { "email": 1 }, "name": "email_1", "unique": true, "collation": { "locale": "en", "strength": 2 } };
        let s = sync_index_spec(&unique);
        assert!(!s.contains_key("unique"));
        assert_eq!(
            s.get_document("collation").unwrap(),
            unique.get_document("collation").unwrap()
        );
        let ttl = doc! { "v": 2, "key": { "at": 1 }, "name": "at_1", "expireAfterSeconds": 60 };
        assert_eq!(
            sync_index_spec(&ttl).get_i64("expireAfterSeconds").unwrap(),
            HELD_TTL_SECONDS
        );
        let partial = doc! { "v": 2, "key": { "a": 1 }, "name": "a_1", "sparse": true, "partialFilterExpression": { "a": { "$gt": 1 } } };
        assert_eq!(sync_index_spec(&partial), partial);
        let id = doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_", "unique": true };
        assert!(is_builtin_index(&id));
        assert_eq!(sync_index_spec(&id), id);
    }

    #[test]
    fn coll_mod_replay_keeps_relaxations() {
        let cmd = sync_coll_mod(
            "c",
            &doc! { "index": { "name": "at_1", "expireAfterSeconds": 10 } },
        );
        assert_eq!(
            cmd,
            doc! { "collMod": "c", "index": { "name": "at_1", "expireAfterSeconds": HELD_TTL_SECONDS } }
        );
        let cmd = sync_coll_mod("c", &doc! { "index": { "name": "e_1", "unique": true } });
        assert_eq!(cmd, doc! { "collMod": "c" });
        let cmd = sync_coll_mod(
            "c",
            &doc! { "validator": { "a": 1 }, "validationLevel": "moderate" },
        );
        assert_eq!(
            cmd,
            doc! { "collMod": "c", "validator": { "a": 1 }, "validationLevel": "moderate" }
        );
    }

    #[test]
    fn storage_stats_are_summed_over_shards_whatever_their_number_types() {
        let mut st = StorageStats::default();
        st.add(&doc! { "shard": "a", "storageStats": { "count": 2, "size": 100_i64, "storageSize": 40.0, "totalIndexSize": 8, "maxSize": 1_000_i64 } });
        st.add(&doc! { "shard": "b", "storageStats": { "count": 3_i64, "size": 50, "storageSize": 20, "totalIndexSize": -1 } });
        st.add(&doc! { "shard": "c" });
        assert_eq!(
            st,
            StorageStats {
                reports: 2,
                count: 5,
                size: 150,
                storage_size: 60,
                index_size: 8,
                max_size: 1_000,
            }
        );
        assert_eq!(number(None), 0);
        assert_eq!(number(Some(&Bson::String("7".into()))), 0);
    }

    #[test]
    fn time_series_are_created_from_their_own_or_their_buckets_options() {
        let own = doc! { "expireAfterSeconds": 86_400, "timeseries": { "timeField": "t", "metaField": "m", "granularity": "minutes", "bucketMaxSpanSeconds": 86_400 } };
        assert_eq!(
            create_options(&own),
            doc! { "timeseries": { "timeField": "t", "metaField": "m", "granularity": "minutes" } }
        );
        assert_eq!(
            timeseries_options(&own),
            doc! { "timeseries": { "timeField": "t", "metaField": "m", "granularity": "minutes" }, "expireAfterSeconds": 86_400 }
        );
        let buckets = doc! {
            "validator": { "$jsonSchema": { "bsonType": "object" } },
            "clusteredIndex": true,
            "expireAfterSeconds": 60_i64,
            "timeseries": { "timeField": "t", "granularity": "seconds", "bucketMaxSpanSeconds": 3_600 },
        };
        assert_eq!(
            create_options(&buckets),
            doc! { "timeseries": { "timeField": "t", "granularity": "seconds" } }
        );
        // A span other than the granularity's own is asked for again.
        let custom = doc! { "timeseries": { "timeField": "t", "granularity": "seconds", "bucketMaxSpanSeconds": 60 } };
        assert_eq!(create_options(&custom), custom);
    }

    #[test]
    fn id_ranges_by_filter_share_their_bounds() {
        let (a, b) = (
            Bson::ObjectId(bson::oid::ObjectId::from_bytes([1; 12])),
            Bson::ObjectId(bson::oid::ObjectId::from_bytes([2; 12])),
        );
        let f = |min: Option<&Bson>, max: Option<&Bson>| {
            id_range_filter(min, max).unwrap().to_document().unwrap()
        };
        assert_eq!(f(None, None), doc! {});
        assert_eq!(f(None, Some(&a)), doc! { "_id": { "$lt": a.clone() } });
        // Each bound belongs to the range above it, as `min`/`max` do.
        assert_eq!(
            f(Some(&a), Some(&b)),
            doc! { "_id": { "$gte": a.clone(), "$lt": b.clone() } }
        );
        assert_eq!(f(Some(&b), None), doc! { "_id": { "$gte": b } });
    }

    #[test]
    fn a_replayed_granularity_never_goes_back() {
        let current = doc! { "timeseries": { "timeField": "t", "granularity": "hours" } };
        let to_minutes = doc! { "timeseries": { "granularity": "minutes" } };
        assert_eq!(without_passed_granularity(&to_minutes, &current), doc! {});
        let to_hours = doc! { "timeseries": { "granularity": "hours" } };
        assert_eq!(without_passed_granularity(&to_hours, &current), to_hours);
        let at_minutes = doc! { "timeseries": { "granularity": "minutes" } };
        assert_eq!(without_passed_granularity(&to_hours, &at_minutes), to_hours);
        let ttl = doc! { "expireAfterSeconds": 60 };
        assert_eq!(without_passed_granularity(&ttl, &current), ttl);
    }

    #[test]
    fn clustered_ttl_is_off_until_commit() {
        let opts = doc! { "clusteredIndex": { "key": { "_id": 1 }, "unique": true }, "expireAfterSeconds": 5 };
        let created = create_options(&opts);
        assert!(!created.contains_key("expireAfterSeconds"), "{created}");
        assert!(created.contains_key("clusteredIndex"));
        assert_eq!(
            sync_coll_mod("c", &doc! { "expireAfterSeconds": 60 }),
            doc! { "collMod": "c", "expireAfterSeconds": "off" }
        );
    }
}
