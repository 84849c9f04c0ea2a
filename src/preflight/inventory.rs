//! What is in scope on the source, read once for every check: the
//! namespaces with their options, their sizes, and for each collection its
//! indexes, a probe for documents near 16 MB and a bounded sample of
//! documents for the field-name checks.
//!
//! Cost is kept per collection to two cheap reads (`listIndexes` and a
//! `$sample`), run in parallel. Sizes come from one `dbStats` per
//! database, which the server answers from its cached counters; only
//! collections of a database that is partly in scope, or large enough to
//! hold a document near 16 MB, get a `$collStats` of their own (measured
//! on this machine: 1,000 `$collStats` take over a second, 20 `dbStats`
//! 20 ms). The size probe scans a collection whole only up to
//! [`FULL_SCAN_BYTES`] (a `$sample` above that), and the field-name sample
//! reads at most `sample_size` documents. Reads only.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use bson::{doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use futures_util::{stream, StreamExt, TryStreamExt};

use super::report::{Finding, Totals};
use crate::catalog::{self, number, NsKind, SourceNamespace, StorageStats};
use crate::cluster::Cluster;
use crate::driver_error::redacted_message as reason;
use crate::scope::Scope;

/// A document at least this large is "near 16 MB".
pub const NEAR_LIMIT_BYTES: u64 = 15 * 1024 * 1024;

/// Collections up to this size are scanned whole for large documents;
/// larger ones are probed on a sample.
pub const FULL_SCAN_BYTES: u64 = 256 * 1024 * 1024;

/// Documents sampled by the size probe of a collection too big to scan.
pub const SIZE_SAMPLE_DOCS: i64 = 1000;

/// Collections probed at once.
const CONCURRENCY: usize = 16;

/// How long one probe may run on the server.
const PROBE_TIME_LIMIT: Duration = Duration::from_secs(30);

/// Sizes of one collection or database, summed over shards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sizes {
    pub count: u64,
    /// Uncompressed size of the documents.
    pub size: u64,
    pub storage_size: u64,
    pub index_size: u64,
}

impl From<StorageStats> for Sizes {
    fn from(s: StorageStats) -> Sizes {
        Sizes {
            count: s.count,
            size: s.size,
            storage_size: s.storage_size,
            index_size: s.index_size,
        }
    }
}

/// How a collection was probed for large documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Every document was measured.
    Full,
    /// Too big to scan: a random sample of documents was measured.
    Sampled(u64),
    /// Not needed: the collection (or its whole database) is smaller than
    /// the threshold.
    NotNeeded,
    Failed(String),
}

/// A document found near the 16 MB limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeDoc {
    /// The `_id`, as extended JSON, for the user to find it.
    pub id: String,
    pub bytes: u64,
}

/// Field names found in the sample that deserve a finding: the first
/// document and path of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldFacts {
    pub sampled: u64,
    pub dollar: Option<(String, String)>,
    pub dotted: Option<(String, String)>,
    pub duplicate: Option<(String, String)>,
    pub sample_error: Option<String>,
}

/// One in-scope namespace of the source, with what the checks need.
#[derive(Debug, Clone)]
pub struct NsFacts {
    pub ns: SourceNamespace,
    /// Its own sizes, when they were read (see the module docs).
    pub stats: Option<Sizes>,
    pub indexes: Vec<Document>,
    pub probe: Probe,
    pub large_docs: Vec<LargeDoc>,
    pub fields: FieldFacts,
}

impl NsFacts {
    pub fn bare(ns: SourceNamespace) -> NsFacts {
        NsFacts {
            ns,
            stats: None,
            indexes: Vec::new(),
            probe: Probe::NotNeeded,
            large_docs: Vec::new(),
            fields: FieldFacts::default(),
        }
    }
}

/// The source's in-scope namespaces, or why they could not be listed.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub namespaces: Vec<NsFacts>,
    /// Databases wholly in scope, with their `dbStats` sizes: their totals
    /// come from there rather than from each collection.
    pub whole_dbs: BTreeMap<String, Sizes>,
    pub list_error: Option<String>,
    /// Non-system collections of the `admin` database: never migrated.
    pub admin_collections: Vec<String>,
}

impl Inventory {
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            databases: self.databases().len() as u64,
            ..Totals::default()
        };
        let mut add = |s: &Sizes| {
            t.documents += s.count;
            t.data_bytes += s.size;
            t.storage_bytes += s.storage_size;
            t.index_bytes += s.index_size;
        };
        for s in self.whole_dbs.values() {
            add(s);
        }
        for n in &self.namespaces {
            if let (false, Some(s)) = (self.whole_dbs.contains_key(&n.ns.ns.db), &n.stats) {
                add(s);
            }
        }
        for n in &self.namespaces {
            match n.ns.kind {
                NsKind::View => t.views += 1,
                _ => t.collections += 1,
            }
        }
        t
    }

    /// The databases with an in-scope namespace, sorted.
    pub fn databases(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .namespaces
            .iter()
            .map(|n| n.ns.ns.db.as_str())
            .collect();
        set.into_iter().map(String::from).collect()
    }

    /// Findings about the inventory itself: the source could not be listed.
    pub fn failure_findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Some(e) = &self.list_error {
            out.push(Finding::blocker(
                "inventory_failed",
                "The source's collections could not be listed",
                format!("Listing the source's databases and collections failed: {e}. The migration needs this list, and every other check of the collections was skipped."),
                "Grant the source user the readAnyDatabase role (see the privilege findings), then check again.",
            ));
        }
        if !self.admin_collections.is_empty() {
            out.push(Finding::info(
                "admin_collections_skipped",
                "Collections in the admin database are not migrated",
                format!(
                    "The source's admin database holds {}; admin, config and local belong to the server and are never migrated (neither are users and roles).",
                    super::report::list(&self.admin_collections, 5)
                ),
                "Move application data out of admin before migrating, or copy these collections yourself after the commit.",
            ));
        }
        out
    }
}

/// Lists and probes the source's in-scope namespaces. Never fails: what
/// cannot be read is recorded for the findings.
pub async fn gather(src: &Cluster, scope: &Scope, sample_size: u32) -> Inventory {
    let (listed, admin_collections) =
        tokio::join!(catalog::list_namespaces(src, scope), admin_collections(src));
    let namespaces = match listed {
        Ok(n) => n,
        Err(e) => {
            return Inventory {
                list_error: Some(e.to_string().trim_end_matches('.').to_string()),
                admin_collections,
                ..Inventory::default()
            }
        }
    };
    let dbs: BTreeSet<String> = namespaces.iter().map(|n| n.ns.db.clone()).collect();
    let db_sizes: BTreeMap<String, Option<Sizes>> = stream::iter(dbs)
        .map(|db| async move {
            let sizes = db_stats(src, &db).await;
            (db, sizes)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let whole_dbs: BTreeMap<String, Sizes> = db_sizes
        .iter()
        .filter(|(db, _)| scope.covers_db(db))
        .filter_map(|(db, s)| Some((db.clone(), s.clone()?)))
        .collect();
    let mut probed: Vec<NsFacts> = stream::iter(namespaces)
        .map(|n| {
            // A collection's own sizes are needed when its database's
            // totals do not stand for it, or when the database is big
            // enough to hold a document near 16 MB.
            let own_sizes = match whole_dbs.get(&n.ns.db) {
                Some(db) => db.size >= NEAR_LIMIT_BYTES,
                None => true,
            };
            probe_namespace(src, n, own_sizes, sample_size)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    probed.sort_by(|a, b| a.ns.ns.cmp(&b.ns.ns));
    Inventory {
        namespaces: probed,
        whole_dbs,
        list_error: None,
        admin_collections,
    }
}

async fn db_stats(src: &Cluster, db: &str) -> Option<Sizes> {
    let r = src
        .client
        .database(db)
        .run_command(doc! { "dbStats": 1 })
        .await
        .ok()?;
    Some(Sizes {
        count: number(r.get("objects")),
        size: number(r.get("dataSize")),
        storage_size: number(r.get("storageSize")),
        index_size: number(r.get("indexSize")),
    })
}

async fn admin_collections(src: &Cluster) -> Vec<String> {
    let Ok(names) = src.client.database("admin").list_collection_names().await else {
        return Vec::new();
    };
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| !Scope::is_system_coll(n))
        .map(|n| format!("admin.{n}"))
        .collect();
    names.sort();
    names
}

async fn probe_namespace(
    src: &Cluster,
    ns: SourceNamespace,
    own_sizes: bool,
    sample_size: u32,
) -> NsFacts {
    let mut facts = NsFacts::bare(ns);
    if facts.ns.kind != NsKind::Collection {
        return facts;
    }
    let stats = async {
        if own_sizes {
            Some(coll_stats(src, &facts.ns).await)
        } else {
            None
        }
    };
    let (stats, indexes, fields) = tokio::join!(
        stats,
        index_specs(src, &facts.ns),
        field_sample(src, &facts.ns, sample_size)
    );
    facts.indexes = indexes.unwrap_or_default();
    facts.fields = fields;
    match stats {
        Some(Ok(s)) => facts.stats = Some(s),
        Some(Err(e)) => {
            facts.probe = Probe::Failed(format!("its size could not be read: {e}"));
        }
        None => {}
    }
    if let Some(s) = facts.stats.clone() {
        (facts.probe, facts.large_docs) = size_probe(src, &facts.ns, &s).await;
    }
    facts
}

/// The index specifications exactly as the server keeps them. (The
/// driver's `IndexModel` would drop options it does not model, such as
/// `prepareUnique`, which is one of the things to look at.)
async fn index_specs(src: &Cluster, ns: &SourceNamespace) -> Result<Vec<Document>, String> {
    let cursor = src
        .client
        .database(&ns.ns.db)
        .run_cursor_command(doc! { "listIndexes": &ns.ns.coll })
        .await;
    match cursor {
        Ok(c) => c.try_collect().await.map_err(|e| reason(&e)),
        Err(e)
            if crate::driver_error::server_code(&e)
                == Some(crate::driver_error::NAMESPACE_NOT_FOUND) =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(reason(&e)),
    }
}

async fn coll_stats(src: &Cluster, ns: &SourceNamespace) -> Result<Sizes, String> {
    catalog::storage_stats(src, &ns.ns)
        .await
        .map(Sizes::from)
        .map_err(|e| reason(&e))
}

/// Finds documents near 16 MB: the whole collection when it is small
/// enough to scan, otherwise a random sample. A collection smaller than
/// the threshold cannot hold such a document and is not read at all.
async fn size_probe(src: &Cluster, ns: &SourceNamespace, stats: &Sizes) -> (Probe, Vec<LargeDoc>) {
    if stats.size < NEAR_LIMIT_BYTES {
        return (Probe::NotNeeded, Vec::new());
    }
    let mut pipeline = Vec::new();
    let probe = if stats.size > FULL_SCAN_BYTES {
        pipeline.push(doc! { "$sample": { "size": SIZE_SAMPLE_DOCS } });
        Probe::Sampled(SIZE_SAMPLE_DOCS as u64)
    } else {
        Probe::Full
    };
    pipeline.extend([
        doc! { "$project": { "_id": 1, "s": { "$bsonSize": "$$ROOT" } } },
        doc! { "$match": { "s": { "$gte": NEAR_LIMIT_BYTES as i64 } } },
        doc! { "$sort": { "s": -1 } },
        doc! { "$limit": 3 },
    ]);
    let coll = src
        .client
        .database(&ns.ns.db)
        .collection::<Document>(&ns.ns.coll);
    let found: Result<Vec<Document>, _> =
        match coll.aggregate(pipeline).max_time(PROBE_TIME_LIMIT).await {
            Ok(c) => c.try_collect().await,
            Err(e) => Err(e),
        };
    match found {
        Ok(docs) => (
            probe,
            docs.iter()
                .map(|d| LargeDoc {
                    id: d.get("_id").map(show_id).unwrap_or_default(),
                    bytes: number(d.get("s")),
                })
                .collect(),
        ),
        Err(e) => (Probe::Failed(reason(&e)), Vec::new()),
    }
}

/// Reads a random sample of up to `size` documents (all of them when the
/// collection is that small: `$sample` then scans and shuffles it) and
/// looks at their field names.
async fn field_sample(src: &Cluster, ns: &SourceNamespace, size: u32) -> FieldFacts {
    let mut facts = FieldFacts::default();
    if size == 0 {
        return facts;
    }
    let coll = src
        .client
        .database(&ns.ns.db)
        .collection::<Document>(&ns.ns.coll);
    let cursor = coll
        .aggregate(vec![doc! { "$sample": { "size": size as i64 } }])
        .max_time(PROBE_TIME_LIMIT)
        .await
        .map(|c| c.with_type::<RawDocumentBuf>());
    let mut cursor = match cursor {
        Ok(c) => c,
        Err(e) => {
            facts.sample_error = Some(reason(&e));
            return facts;
        }
    };
    loop {
        match cursor.try_next().await {
            Ok(Some(d)) => {
                facts.sampled += 1;
                inspect_fields(&d, &mut facts);
            }
            Ok(None) => break,
            Err(e) => {
                facts.sample_error = Some(reason(&e));
                break;
            }
        }
    }
    facts
}

/// Records the first `$`-prefixed, dotted and duplicate field name of a
/// document, by path.
pub fn inspect_fields(doc: &RawDocument, facts: &mut FieldFacts) {
    if facts.dollar.is_some() && facts.dotted.is_some() && facts.duplicate.is_some() {
        return;
    }
    let id = match doc.get("_id") {
        Ok(Some(v)) => Bson::try_from(v.to_raw_bson())
            .map(|b| show_id(&b))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let mut found = Found::default();
    walk(doc, "", 0, &mut found);
    let keep = |slot: &mut Option<(String, String)>, path: Option<String>| {
        if slot.is_none() {
            if let Some(p) = path {
                *slot = Some((id.clone(), p));
            }
        }
    };
    keep(&mut facts.dollar, found.dollar);
    keep(&mut facts.dotted, found.dotted);
    keep(&mut facts.duplicate, found.duplicate);
}

#[derive(Default)]
struct Found {
    dollar: Option<String>,
    dotted: Option<String>,
    duplicate: Option<String>,
}

/// BSON nests at most about 100 levels deep; stop well past that.
const MAX_DEPTH: usize = 200;

fn walk(doc: &RawDocument, prefix: &str, depth: usize, found: &mut Found) {
    if depth > MAX_DEPTH {
        return;
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for elem in doc.iter() {
        // A malformed element ends the walk of this document; the copy
        // sends the bytes as they are and the server judges them.
        let Ok((key, value)) = elem else { return };
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        if key.starts_with('$') && found.dollar.is_none() {
            found.dollar = Some(path.clone());
        }
        if key.contains('.') && found.dotted.is_none() {
            found.dotted = Some(path.clone());
        }
        if !seen.insert(key) && found.duplicate.is_none() {
            found.duplicate = Some(path.clone());
        }
        descend(value, &path, depth, found);
    }
}

fn descend(value: RawBsonRef<'_>, path: &str, depth: usize, found: &mut Found) {
    match value {
        RawBsonRef::Document(d) => walk(d, path, depth + 1, found),
        RawBsonRef::Array(a) => {
            for (i, v) in a.into_iter().enumerate() {
                let Ok(v) = v else { return };
                descend(v, &format!("{path}.{i}"), depth + 1, found);
            }
        }
        _ => {}
    }
}

/// An `_id` as the shell would show it.
pub fn show_id(v: &Bson) -> String {
    let s = match v {
        Bson::String(s) => format!("{s:?}"),
        other => other.clone().into_relaxed_extjson().to_string(),
    };
    if s.len() > 80 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(77).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn field_names_are_inspected_at_every_depth() {
        let mut facts = FieldFacts::default();
        inspect_fields(
            &rawdoc! { "_id": 1, "a": { "b": [ { "c": 1 } ] } },
            &mut facts,
        );
        assert_eq!(facts, FieldFacts::default());

        let mut d = RawDocumentBuf::new();
        d.append("_id", 7);
        let mut inner = RawDocumentBuf::new();
        inner.append("x", 1);
        inner.append("x", 2);
        let mut arr = bson::RawArrayBuf::new();
        arr.push(inner);
        d.append("list", arr);
        d.append("$price", 3);
        d.append("a.b", 4);
        inspect_fields(&d, &mut facts);
        assert_eq!(facts.duplicate, Some(("7".into(), "list.0.x".into())));
        assert_eq!(facts.dollar, Some(("7".into(), "$price".into())));
        assert_eq!(facts.dotted, Some(("7".into(), "a.b".into())));

        // The first occurrence is kept.
        inspect_fields(&rawdoc! { "_id": 8, "$other": 1 }, &mut facts);
        assert_eq!(facts.dollar, Some(("7".into(), "$price".into())));
    }

    #[test]
    fn ids_are_shown_readably_and_bounded() {
        assert_eq!(show_id(&Bson::Int32(5)), "5");
        assert_eq!(show_id(&Bson::String("k".into())), "\"k\"");
        let oid = bson::oid::ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
        assert_eq!(
            show_id(&Bson::ObjectId(oid)),
            r#"{"$oid":"65a1b2c3d4e5f60718293a4b"}"#
        );
        assert!(show_id(&Bson::String("x".repeat(500))).chars().count() <= 81);
    }

    #[test]
    fn totals_come_from_whole_databases_or_from_each_collection() {
        let col = |db: &str, c: &str, kind, stats| NsFacts {
            stats,
            ..NsFacts::bare(SourceNamespace {
                ns: crate::Namespace::new(db, c),
                kind,
                uuid: None,
                options: Document::new(),
            })
        };
        let s = |count, size| Sizes {
            count,
            size,
            storage_size: size / 2,
            index_size: 10,
        };
        let inv = Inventory {
            namespaces: vec![
                col("a", "x", NsKind::Collection, None),
                col("a", "v", NsKind::View, None),
                col("b", "y", NsKind::Collection, Some(s(2, 100))),
            ],
            // "a" is wholly in scope: its dbStats stand for it.
            whole_dbs: [("a".to_string(), s(3, 300))].into_iter().collect(),
            ..Inventory::default()
        };
        assert_eq!(
            inv.totals(),
            Totals {
                databases: 2,
                collections: 2,
                views: 1,
                documents: 5,
                data_bytes: 400,
                storage_bytes: 200,
                index_bytes: 20
            }
        );
        assert_eq!(inv.databases(), vec!["a".to_string(), "b".to_string()]);
    }
}
