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
//!
//! A time-series collection is one row, never two: its buckets collection
//! (`system.buckets.<name>`, which `catalog::list_namespaces` lists beside
//! it, since that is what the migration copies) is folded into it
//! ([`pair_buckets`]). The row's sizes are its buckets' (`$collStats` on a
//! time-series collection has no count), so totals count them once, and
//! it carries its measurements, counted on the collection within
//! [`COUNT_TIME_LIMIT`] or, past that, estimated from a sample of buckets
//! and marked as such ([`Measurements`]). Buckets are never sampled for
//! field names or large documents as if they were the user's documents:
//! their fields are the server's (`control`, `data.<field>.<i>`), a bucket
//! stays far below 16 MB, and the copy moves them as they are.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use bson::{doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::report::{Finding, Totals};
use crate::catalog::{self, number, NsKind, SourceNamespace, StorageStats};
use crate::cluster::Cluster;
use crate::driver_error::redacted_message as reason;
use crate::scope::{Namespace, Scope};

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

/// How long counting a time-series collection's measurements may run on
/// the server. Counting unpacks every bucket; on a large collection that
/// is real work on a production primary, so past this the count is
/// estimated instead.
pub const COUNT_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Buckets sampled to estimate the measurements of a time-series
/// collection too large to count in [`COUNT_TIME_LIMIT`].
pub const ESTIMATE_SAMPLE_BUCKETS: i64 = 100;

/// The server's code for an operation that ran out of its `maxTimeMS`.
const MAX_TIME_MS_EXPIRED: i32 = 50;

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

/// How many measurements a time-series collection holds, and how sure
/// that figure is.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Measurements {
    /// Counted on the collection itself.
    Exact { count: u64 },
    /// Counting was stopped or failed (`why`): the number of buckets times
    /// the average measurements of `sampled` random buckets.
    Estimated {
        count: u64,
        sampled: u64,
        why: String,
    },
    /// Neither counted nor estimated, and why.
    Unknown { why: String },
}

impl Measurements {
    /// The count, exact or estimated.
    pub fn count(&self) -> Option<u64> {
        match self {
            Measurements::Exact { count } | Measurements::Estimated { count, .. } => Some(*count),
            Measurements::Unknown { .. } => None,
        }
    }

    /// "1234 measurements", "about 1200 measurements (estimated from 100
    /// buckets: …)" or "an unknown number of measurements (…)".
    pub fn describe(&self) -> String {
        match self {
            Measurements::Exact { count } => super::report::count(*count as usize, "measurement"),
            Measurements::Estimated {
                count,
                sampled,
                why,
            } => format!(
                "about {} (estimated from {}, because {why})",
                super::report::count(*count as usize, "measurement"),
                super::report::count(*sampled as usize, "sampled bucket"),
            ),
            Measurements::Unknown { why } => {
                format!("an unknown number of measurements ({why})")
            }
        }
    }
}

/// What a time-series collection is, beyond a collection: its options,
/// its buckets and its measurements.
#[derive(Debug, Clone)]
pub struct TimeseriesFacts {
    pub time_field: String,
    pub meta_field: Option<String>,
    /// `seconds`, `minutes` or `hours`; absent when the collection was
    /// made with custom bucketing (`bucketMaxSpanSeconds` and
    /// `bucketRoundingSeconds`, 6.3 and newer).
    pub granularity: Option<String>,
    pub bucket_max_span_seconds: Option<u64>,
    /// The collection's TTL, which deletes whole buckets.
    pub expire_after_seconds: Option<u64>,
    /// The buckets collection as listed (UUID and options), when it was.
    pub buckets_ns: Option<SourceNamespace>,
    /// Documents of the buckets collection, what the copy moves; `None`
    /// when its size could not be read.
    pub buckets: Option<u64>,
    pub measurements: Measurements,
}

impl TimeseriesFacts {
    /// The shape of a time-series collection from its `listCollections`
    /// options (or its buckets', which hold the same `timeseries`
    /// document). Nothing is counted yet.
    pub fn from_options(options: &Document) -> TimeseriesFacts {
        let ts = options.get_document("timeseries").ok();
        let text = |k: &str| ts.and_then(|t| t.get_str(k).ok()).map(str::to_string);
        let whole = |v: Option<&Bson>| match v {
            Some(Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_)) => Some(number(v)),
            _ => None,
        };
        TimeseriesFacts {
            time_field: text("timeField").unwrap_or_default(),
            meta_field: text("metaField"),
            granularity: text("granularity"),
            bucket_max_span_seconds: whole(ts.and_then(|t| t.get("bucketMaxSpanSeconds"))),
            expire_after_seconds: whole(options.get("expireAfterSeconds")),
            buckets_ns: None,
            buckets: None,
            measurements: Measurements::Unknown {
                why: "they were not counted".into(),
            },
        }
    }

    /// One line for a finding: "1234 measurements in 12 buckets (timeField
    /// t, metaField m, granularity seconds, expireAfterSeconds 3600)".
    pub fn describe(&self) -> String {
        let buckets = match self.buckets {
            Some(b) => format!(" in {}", super::report::count(b as usize, "bucket")),
            None => String::new(),
        };
        let mut shape = vec![format!("timeField {}", self.time_field)];
        if let Some(m) = &self.meta_field {
            shape.push(format!("metaField {m}"));
        }
        match (&self.granularity, self.bucket_max_span_seconds) {
            (Some(g), _) => shape.push(format!("granularity {g}")),
            (None, Some(span)) => shape.push(format!("bucketMaxSpanSeconds {span}")),
            (None, None) => {}
        }
        if let Some(ttl) = self.expire_after_seconds {
            shape.push(format!("expireAfterSeconds {ttl}"));
        }
        format!(
            "{}{buckets} ({})",
            self.measurements.describe(),
            shape.join(", ")
        )
    }
}

/// One in-scope namespace of the source, with what the checks need.
#[derive(Debug, Clone)]
pub struct NsFacts {
    pub ns: SourceNamespace,
    /// Its own sizes, when they were read (see the module docs). A
    /// time-series collection's are its buckets' (`count` is buckets).
    pub stats: Option<Sizes>,
    pub indexes: Vec<Document>,
    pub probe: Probe,
    pub large_docs: Vec<LargeDoc>,
    pub fields: FieldFacts,
    /// For a time-series collection, what it holds.
    pub timeseries: Option<TimeseriesFacts>,
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
            timeseries: None,
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
    let listed = pair_buckets(namespaces);
    let dbs: BTreeSet<String> = listed.iter().map(|(n, _)| n.ns.db.clone()).collect();
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
    let mut probed: Vec<NsFacts> = stream::iter(listed)
        .map(|(n, buckets)| {
            // A collection's own sizes are needed when its database's
            // totals do not stand for it, or when the database is big
            // enough to hold a document near 16 MB.
            let own_sizes = match whole_dbs.get(&n.ns.db) {
                Some(db) => db.size >= NEAR_LIMIT_BYTES,
                None => true,
            };
            async move {
                match n.kind {
                    NsKind::Timeseries => probe_timeseries(src, n, buckets).await,
                    NsKind::Collection | NsKind::View => {
                        probe_namespace(src, n, own_sizes, sample_size).await
                    }
                }
            }
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

/// Folds each time-series collection's buckets into it: every listed
/// namespace once, a time-series collection with its `system.buckets.*`
/// collection beside it. A buckets collection whose time-series collection
/// was not listed (created or dropped between the two reads) stays a row
/// of its own.
pub fn pair_buckets(
    namespaces: Vec<SourceNamespace>,
) -> Vec<(SourceNamespace, Option<SourceNamespace>)> {
    let series: BTreeSet<Namespace> = namespaces
        .iter()
        .filter(|n| n.kind == NsKind::Timeseries)
        .map(|n| n.ns.buckets())
        .collect();
    let (buckets, rest): (Vec<SourceNamespace>, Vec<SourceNamespace>) = namespaces
        .into_iter()
        .partition(|n| n.kind == NsKind::Collection && series.contains(&n.ns));
    let mut buckets: BTreeMap<Namespace, SourceNamespace> =
        buckets.into_iter().map(|b| (b.ns.clone(), b)).collect();
    rest.into_iter()
        .map(|n| {
            let b = match n.kind {
                NsKind::Timeseries => buckets.remove(&n.ns.buckets()),
                NsKind::Collection | NsKind::View => None,
            };
            (n, b)
        })
        .collect()
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
    // Buckets listed without their time-series collection: their fields
    // are the server's and a bucket never nears 16 MB, so neither probe
    // would say anything true about the user's documents.
    let buckets = facts.ns.ns.timeseries_of_buckets().is_some();
    let stats = async {
        if own_sizes {
            Some(coll_stats(src, &facts.ns.ns).await)
        } else {
            None
        }
    };
    let (stats, indexes, fields) = tokio::join!(
        stats,
        index_specs(src, &facts.ns),
        field_sample(src, &facts.ns, if buckets { 0 } else { sample_size })
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
    if let (false, Some(s)) = (buckets, facts.stats.clone()) {
        (facts.probe, facts.large_docs) = size_probe(src, &facts.ns, &s).await;
    }
    facts
}

/// A time-series collection: its indexes (as the collection shows them,
/// on measurement fields), its buckets' sizes, and its measurements.
async fn probe_timeseries(
    src: &Cluster,
    ns: SourceNamespace,
    buckets_ns: Option<SourceNamespace>,
) -> NsFacts {
    let mut facts = NsFacts::bare(ns);
    let mut series = TimeseriesFacts::from_options(&facts.ns.options);
    let (indexes, stats) = tokio::join!(
        index_specs(src, &facts.ns),
        buckets_sizes(src, &facts.ns.ns)
    );
    facts.indexes = indexes.unwrap_or_default();
    match stats {
        Ok(s) => {
            series.buckets = Some(s.count);
            facts.stats = Some(s);
        }
        Err(e) => {
            facts.probe = Probe::Failed(format!(
                "the size of its buckets could not be read: {}",
                reason(&e)
            ));
        }
    }
    series.measurements = measure(
        src,
        &facts.ns.ns,
        &series.time_field,
        series.buckets,
        COUNT_TIME_LIMIT,
    )
    .await;
    series.buckets_ns = buckets_ns;
    facts.timeseries = Some(series);
    facts
}

/// The sizes of the time-series collection `ts`, which are its buckets':
/// `count` is how many buckets. `$collStats` gives no count on a
/// time-series collection nor on its buckets (5.0.4 and 6.0.5 both answer
/// for the buckets with the collection's time-series statistics, whose
/// `bucketCount` is what the server's bucket catalog has seen since it
/// started), so the count is the buckets collection's fast count, which
/// `count` without a filter reads from the collection's metadata.
pub async fn buckets_sizes(src: &Cluster, ts: &Namespace) -> mongodb::error::Result<Sizes> {
    let buckets = ts.buckets();
    let coll = src
        .client
        .database(&buckets.db)
        .collection::<Document>(&buckets.coll);
    let (stats, count) = tokio::join!(
        catalog::storage_stats(src, &buckets),
        coll.estimated_document_count()
    );
    Ok(Sizes {
        count: count?,
        ..Sizes::from(stats?)
    })
}

/// The measurements of the time-series collection `ts`: counted exactly
/// within `limit` of server time, otherwise estimated from `buckets` (its
/// bucket count) and a sample of [`ESTIMATE_SAMPLE_BUCKETS`] buckets, or
/// unknown, always with the reason. Never fails: a check must not stop
/// because a count is slow.
pub async fn measure(
    src: &Cluster,
    ts: &Namespace,
    time_field: &str,
    buckets: Option<u64>,
    limit: Duration,
) -> Measurements {
    let why = match count_measurements(src, ts, limit).await {
        Ok(count) => return Measurements::Exact { count },
        Err(e) if crate::driver_error::server_code(&e) == Some(MAX_TIME_MS_EXPIRED) => format!(
            "counting them exactly would take the source longer than {}",
            super::report::human_duration(limit.as_secs_f64())
        ),
        Err(e) => format!("counting them failed: {}", reason(&e)),
    };
    let Some(buckets) = buckets else {
        return Measurements::Unknown {
            why: format!("{why}, and the number of its buckets could not be read"),
        };
    };
    match sample_buckets(src, &ts.buckets(), time_field).await {
        Ok(per_bucket) => match estimate(buckets, &per_bucket) {
            Some(count) => Measurements::Estimated {
                count,
                sampled: per_bucket.len() as u64,
                why,
            },
            None => Measurements::Unknown {
                why: format!("{why}, and no sampled bucket said how many it holds"),
            },
        },
        Err(e) => Measurements::Unknown {
            why: format!("{why}, and sampling its buckets failed: {e}"),
        },
    }
}

/// Counts the measurements on the collection itself, which unpacks every
/// bucket (5.0 buckets carry no count of their own).
async fn count_measurements(
    src: &Cluster,
    ts: &Namespace,
    limit: Duration,
) -> mongodb::error::Result<u64> {
    let coll = src.client.database(&ts.db).collection::<Document>(&ts.coll);
    let mut cursor = coll
        .aggregate(vec![doc! { "$count": "n" }])
        .max_time(limit)
        .await?;
    // An empty collection gives no document at all.
    Ok(cursor.try_next().await?.map_or(0, |d| number(d.get("n"))))
}

/// The measurements in each of a random sample of buckets, reading only
/// `control.count` and the time field's column.
async fn sample_buckets(
    src: &Cluster,
    buckets: &Namespace,
    time_field: &str,
) -> Result<Vec<u64>, String> {
    let mut project = doc! { "_id": 0, "control.count": 1 };
    if time_field.is_empty() || time_field.contains('.') || time_field.starts_with('$') {
        project.insert("data", 1);
    } else {
        project.insert(format!("data.{time_field}"), 1);
    }
    let coll = src
        .client
        .database(&buckets.db)
        .collection::<Document>(&buckets.coll);
    let sampled: Vec<Document> = coll
        .aggregate(vec![
            doc! { "$sample": { "size": ESTIMATE_SAMPLE_BUCKETS } },
            doc! { "$project": project },
        ])
        .max_time(PROBE_TIME_LIMIT)
        .await
        .map_err(|e| reason(&e))?
        .try_collect()
        .await
        .map_err(|e| reason(&e))?;
    Ok(sampled
        .iter()
        .filter_map(|b| measurements_in_bucket(b, time_field))
        .collect())
}

/// How many measurements one bucket holds: its `control.count` (6.0's
/// compressed buckets, version 2), or else the entries of its time field's
/// column (`data.<timeField>` is `{"0": …, "1": …}` in an uncompressed
/// bucket, version 1, the only kind 5.0 writes). `None` when neither is
/// there to read.
pub fn measurements_in_bucket(bucket: &Document, time_field: &str) -> Option<u64> {
    let count = bucket
        .get_document("control")
        .ok()
        .and_then(|c| c.get("count"));
    if let Some(c @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))) = count {
        return Some(number(Some(c)));
    }
    match bucket.get_document("data").ok()?.get(time_field)? {
        Bson::Document(column) => Some(column.len() as u64),
        _ => None,
    }
}

/// `buckets` times the average of the sampled buckets' measurements,
/// rounded; 0 for no buckets, `None` when nothing was sampled to average.
pub fn estimate(buckets: u64, per_bucket: &[u64]) -> Option<u64> {
    if buckets == 0 {
        return Some(0);
    }
    if per_bucket.is_empty() {
        return None;
    }
    let mean = per_bucket.iter().sum::<u64>() as f64 / per_bucket.len() as f64;
    Some((buckets as f64 * mean).round() as u64)
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

async fn coll_stats(src: &Cluster, ns: &Namespace) -> Result<Sizes, String> {
    catalog::storage_stats(src, ns)
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

    fn listed(name: &str, kind: NsKind, options: Document) -> SourceNamespace {
        SourceNamespace {
            ns: crate::Namespace::parse(name).unwrap(),
            kind,
            uuid: None,
            options,
        }
    }

    #[test]
    fn buckets_are_folded_into_their_time_series_collection() {
        let names = |v: &[(SourceNamespace, Option<SourceNamespace>)]| {
            v.iter()
                .map(|(n, b)| (n.ns.to_string(), b.as_ref().map(|b| b.ns.to_string())))
                .collect::<Vec<_>>()
        };
        let all = vec![
            listed("iot.metrics", NsKind::Timeseries, Document::new()),
            listed("iot.orders", NsKind::Collection, Document::new()),
            listed(
                "iot.system.buckets.metrics",
                NsKind::Collection,
                Document::new(),
            ),
            // Its time-series collection was not listed: it stays a row.
            listed(
                "iot.system.buckets.gone",
                NsKind::Collection,
                Document::new(),
            ),
            listed("iot.recent", NsKind::View, Document::new()),
        ];
        assert_eq!(
            names(&pair_buckets(all)),
            vec![
                (
                    "iot.metrics".into(),
                    Some("iot.system.buckets.metrics".into())
                ),
                ("iot.orders".into(), None),
                ("iot.system.buckets.gone".into(), None),
                ("iot.recent".into(), None),
            ]
        );
        // A time-series collection whose buckets were not listed.
        let alone = pair_buckets(vec![listed("a.ts", NsKind::Timeseries, Document::new())]);
        assert_eq!(names(&alone), vec![("a.ts".into(), None)]);
    }

    #[test]
    fn a_time_series_collection_counts_once_with_its_buckets_sizes() {
        let s = |count, size| Sizes {
            count,
            size,
            storage_size: size / 2,
            index_size: 10,
        };
        let mut ts = NsFacts::bare(listed("iot.metrics", NsKind::Timeseries, Document::new()));
        ts.stats = Some(s(40, 4000));
        let mut plain = NsFacts::bare(listed("shop.orders", NsKind::Collection, Document::new()));
        plain.stats = Some(s(5, 500));
        let inv = Inventory {
            namespaces: vec![ts, plain],
            ..Inventory::default()
        };
        assert_eq!(
            inv.totals(),
            Totals {
                databases: 2,
                collections: 2,
                views: 0,
                documents: 45,
                data_bytes: 4500,
                storage_bytes: 2250,
                index_bytes: 20
            }
        );
    }

    #[test]
    fn time_series_shape_comes_from_its_options() {
        let f = TimeseriesFacts::from_options(&doc! {
            "expireAfterSeconds": 86_400_i64,
            "timeseries": { "timeField": "t", "metaField": "m", "granularity": "minutes", "bucketMaxSpanSeconds": 86_400 },
        });
        assert_eq!(f.time_field, "t");
        assert_eq!(f.meta_field.as_deref(), Some("m"));
        assert_eq!(f.granularity.as_deref(), Some("minutes"));
        assert_eq!(f.bucket_max_span_seconds, Some(86_400));
        assert_eq!(f.expire_after_seconds, Some(86_400));
        assert_eq!(f.measurements.count(), None);

        // Custom bucketing, no metaField, no TTL; "off" is no TTL.
        let mut f = TimeseriesFacts::from_options(&doc! {
            "expireAfterSeconds": "off",
            "timeseries": { "timeField": "at", "bucketMaxSpanSeconds": 600, "bucketRoundingSeconds": 600 },
        });
        assert_eq!((f.meta_field.clone(), f.granularity.clone()), (None, None));
        assert_eq!(f.expire_after_seconds, None);
        f.buckets = Some(3);
        f.measurements = Measurements::Exact { count: 2500 };
        assert_eq!(
            f.describe(),
            "2500 measurements in 3 buckets (timeField at, bucketMaxSpanSeconds 600)"
        );
    }

    #[test]
    fn a_bucket_says_how_many_measurements_it_holds() {
        // 6.0 compressed (version 2): control.count; the column is binary.
        let v2 = doc! {
            "control": { "version": 2, "count": 7 },
            "data": { "t": bson::Binary { subtype: bson::spec::BinarySubtype::Column, bytes: vec![0] } },
        };
        assert_eq!(measurements_in_bucket(&v2, "t"), Some(7));
        // 5.0 (version 1): one entry per measurement in the time column.
        let v1 = doc! {
            "control": { "version": 1 },
            "data": { "t": { "0": bson::DateTime::now(), "1": bson::DateTime::now(), "2": bson::DateTime::now() } },
        };
        assert_eq!(measurements_in_bucket(&v1, "t"), Some(3));
        assert_eq!(measurements_in_bucket(&v1, "other"), None);
        assert_eq!(measurements_in_bucket(&doc! {}, "t"), None);
    }

    #[test]
    fn estimates_scale_the_sample_and_say_they_are_estimates() {
        assert_eq!(estimate(0, &[]), Some(0));
        assert_eq!(estimate(10, &[]), None);
        assert_eq!(estimate(1000, &[100, 200, 300]), Some(200_000));
        assert_eq!(estimate(3, &[1, 2]), Some(5)); // 4.5 rounds up

        let exact = Measurements::Exact { count: 1 };
        assert_eq!(exact.describe(), "1 measurement");
        let estimated = Measurements::Estimated {
            count: 200_000,
            sampled: 100,
            why: "counting them exactly would take the source longer than 10 s".into(),
        };
        assert_eq!(estimated.count(), Some(200_000));
        assert_eq!(
            estimated.describe(),
            "about 200000 measurements (estimated from 100 sampled buckets, because counting them exactly would take the source longer than 10 s)"
        );
        let unknown = Measurements::Unknown {
            why: "counting them failed: not authorized".into(),
        };
        assert_eq!(unknown.count(), None);
        assert!(unknown
            .describe()
            .starts_with("an unknown number of measurements ("));
        // What the wizard receives: a tagged object.
        assert_eq!(
            serde_json::to_value(&estimated).unwrap(),
            serde_json::json!({ "kind": "estimated", "count": 200_000, "sampled": 100, "why": "counting them exactly would take the source longer than 10 s" })
        );
    }
}
