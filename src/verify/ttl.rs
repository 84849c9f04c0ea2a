//! TTL collections: which documents a TTL may delete while a verification
//! runs, so that their absence on one side is not taken for a difference.
//!
//! Each side's TTL monitor deletes expired documents on its own schedule:
//! every 60 s by default, later on a busy server, never where it is
//! disabled, and on a destination during a sync not at all (its TTLs are
//! held at 2^31-1 s until commit, see `catalog::sync_index_spec`). Once a
//! TTL is live on both sides, an expired document may be on one side and
//! already gone from the other; at commit, the destination's monitor
//! deletes what the source's has not deleted yet. Neither is a difference:
//! both sides will converge without any write from a migration.
//!
//! A collection's TTLs are read from the **source's** specifications (its
//! TTL indexes, a clustered collection's `expireAfterSeconds` on `_id`, a
//! time-series collection's on its time field and on its buckets' `_id`),
//! never the destination's, which may be the held value. A document *may
//! expire* when, for one of them, the value at the field path is a date (or
//! an array holding one: the earliest counts, as the server's TTL monitor
//! compares it) earlier than `now + EXPIRY_MARGIN - expireAfterSeconds`,
//! `now` being taken when the comparison happens.
//!
//! **Time-series buckets** (`system.buckets.<name>`) are deleted whole, by
//! their `_id`: an ObjectId whose time is the bucket's earliest time,
//! rounded down. The server deletes a bucket only once that time plus the
//! bucket's maximum span (`bucketMaxSpanSeconds`) has expired, so that no
//! measurement in it is still live (`safeExpirationDate` in the server's
//! `ttl.cpp`, the same in 5.0 and 6.0). So a bucket may expire when its
//! `_id`'s time is earlier than that cutoff less the span. A measurement
//! counted on the time-series collection itself (its time field not
//! earlier than the cutoff) is never in such a bucket: every measurement
//! in it is older than the bucket's time plus its span.
//!
//! - Full and live modes: a document on one side only that may expire is
//!   counted in [`super::report::VerifyReport::expiring_skipped`], not reported.
//!   Documents on both sides are compared as any other.
//! - Counts (quick mode, time-series collections in full mode): both sides
//!   count only the documents that may not expire, with the same cutoff
//!   (`{field: {$not: {$lt: cutoff}}}` per TTL field; `_id` against an
//!   ObjectId of the cutoff's second for buckets). Collections without a
//!   TTL keep the cheap count of their `_id` index.
//!
//! Only reads: `listCollections` and `listIndexes` on the source.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::oid::ObjectId;
use bson::{doc, Binary, Bson, DateTime, Document, RawBsonRef, RawDocument};

use crate::catalog::{self, SourceNamespace};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::scope::Namespace;

/// How far ahead of its expiry a document counts as one a TTL may delete
/// during the verification. It covers what lies between a TTL monitor's
/// clock and the moment the two sides are compared: a monitor pass runs
/// every 60 s by default and takes longer, or starts late, on a loaded
/// server; the two sides of a document are read at different moments, the
/// longer apart the longer the range; and the clocks of this host and of
/// both servers may disagree by a few minutes. Ten minutes is well past
/// all of these, and only excuses a document that is about to be deleted
/// anyway.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(10 * 60);

/// How long the TTLs read from the source serve a live verification before
/// they are read again (a TTL index may be created or changed meanwhile).
const REFRESH_AFTER: Duration = Duration::from_secs(60);

/// What one TTL reads to decide that a document has expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlKey {
    /// A date at a field path (`at`, `a.b`; `_id` for a clustered
    /// collection; the time field of a time-series collection's
    /// measurements).
    Date(String),
    /// The `_id` of a time-series bucket, an ObjectId holding the bucket's
    /// earliest time: the bucket expires once that time plus
    /// `max_span_seconds` is older than the TTL.
    BucketId { max_span_seconds: i64 },
}

/// One TTL of a collection: documents whose key is older than
/// `expire_after_seconds` are deleted by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlField {
    pub key: TtlKey,
    pub expire_after_seconds: i64,
}

/// The TTLs of one collection, as the source specifies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ttls {
    fields: Vec<TtlField>,
}

impl Ttls {
    /// The TTLs in a collection's options (from `listCollections`) and
    /// index specifications (from `listIndexes`). Pure.
    pub fn from_specs(ns: &Namespace, options: &Document, indexes: &[Document]) -> Ttls {
        let mut fields = Vec::new();
        if let Some(ttl) = options.get("expireAfterSeconds") {
            let key = match options.get_document("timeseries") {
                // The buckets hold the options of their collection, time
                // field included, but no field of theirs is that date.
                Ok(ts) if ns.timeseries_of_buckets().is_some() => Some(TtlKey::BucketId {
                    max_span_seconds: bucket_max_span(ts),
                }),
                Ok(ts) => ts
                    .get_str("timeField")
                    .ok()
                    .map(|f| TtlKey::Date(f.to_string())),
                Err(_) if options.contains_key("clusteredIndex") => {
                    Some(TtlKey::Date("_id".to_string()))
                }
                Err(_) => None,
            };
            match (key, seconds(ttl)) {
                (Some(key), Some(s)) => fields.push(TtlField {
                    key,
                    expire_after_seconds: s,
                }),
                _ => {
                    tracing::warn!(%ns, expire_after_seconds = %ttl, "a collection TTL that is not understood is ignored")
                }
            }
        }
        for spec in indexes {
            let Some(ttl) = spec.get("expireAfterSeconds") else {
                continue;
            };
            let name = spec.get_str("name").unwrap_or_default();
            let key = spec.get_document("key").ok();
            // The server's TTL monitor ignores compound indexes.
            let path = match key.map(|k| k.keys().collect::<Vec<_>>()).as_deref() {
                Some([only]) => Some(only.to_string()),
                _ => None,
            };
            match (path, seconds(ttl)) {
                (Some(path), Some(s)) => fields.push(TtlField {
                    key: TtlKey::Date(path),
                    expire_after_seconds: s,
                }),
                _ => {
                    tracing::debug!(%ns, index = name, "an index TTL that deletes nothing is ignored")
                }
            }
        }
        Ttls { fields }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn fields(&self) -> &[TtlField] {
        &self.fields
    }

    /// The cutoffs at `now`: a key earlier than its cutoff may expire
    /// before the verification ends.
    pub fn at(&self, now: DateTime) -> Cutoffs {
        let margin = i64::try_from(EXPIRY_MARGIN.as_millis()).unwrap_or(i64::MAX);
        let now = now.timestamp_millis();
        Cutoffs(
            self.fields
                .iter()
                .map(|f| {
                    let cutoff = now
                        .saturating_add(margin)
                        .saturating_sub(f.expire_after_seconds.saturating_mul(1000));
                    match &f.key {
                        TtlKey::Date(path) => Cutoff::Date {
                            path: path.clone(),
                            before: DateTime::from_millis(cutoff),
                        },
                        TtlKey::BucketId { max_span_seconds } => {
                            let at = cutoff.saturating_sub(max_span_seconds.saturating_mul(1000));
                            // An ObjectId's time is whole seconds from 1970
                            // in 32 bits: a cutoff before 1970 lets nothing
                            // expire, one past 2106 everything.
                            let secs = at.div_euclid(1000).clamp(0, i64::from(u32::MAX));
                            Cutoff::BucketId {
                                before_secs: u32::try_from(secs).unwrap_or(u32::MAX),
                            }
                        }
                    }
                })
                .collect(),
        )
    }

    /// The cutoffs now.
    pub fn now(&self) -> Cutoffs {
        self.at(DateTime::now())
    }
}

/// The span of a time-series collection's buckets: its
/// `bucketMaxSpanSeconds` (which 5.0 and 6.0 always list), else its
/// granularity's own; 0 when neither is known, which lets the most
/// buckets expire (a TTL not understood must not raise differences).
fn bucket_max_span(timeseries: &Document) -> i64 {
    if let Some(span) = timeseries.get("bucketMaxSpanSeconds").and_then(seconds) {
        return span;
    }
    match timeseries.get_str("granularity").unwrap_or("seconds") {
        "seconds" => 3_600,
        "minutes" => 86_400,
        "hours" => 2_592_000,
        _ => 0,
    }
}

/// A TTL's `expireAfterSeconds`, whole seconds; `None` when it is not a
/// number a TTL can have.
fn seconds(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(n) if *n >= 0 => Some(i64::from(*n)),
        Bson::Int64(n) if *n >= 0 => Some(*n),
        // `as` saturates, and a TTL this long never fires anyway.
        Bson::Double(f) if f.is_finite() && *f >= 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// One TTL at one moment: what may expire before the verification ends.
#[derive(Debug, Clone, PartialEq)]
enum Cutoff {
    /// A date at `path` earlier than `before`.
    Date { path: String, before: DateTime },
    /// A bucket whose `_id` is an ObjectId of a second before
    /// `before_secs`.
    BucketId { before_secs: u32 },
}

/// The TTLs of a collection at one moment, each with the cutoff before
/// which its documents may expire during the verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Cutoffs(Vec<Cutoff>);

impl Cutoffs {
    /// Whether a TTL may delete `doc` before the verification ends.
    pub fn may_expire(&self, doc: &RawDocument) -> bool {
        self.0.iter().any(|c| match c {
            Cutoff::Date { path, before } => {
                let parts: Vec<&str> = path.split('.').collect();
                earliest_date(RawBsonRef::Document(doc), &parts)
                    .is_some_and(|d| d < before.timestamp_millis())
            }
            Cutoff::BucketId { before_secs } => match doc.get("_id") {
                Ok(Some(RawBsonRef::ObjectId(id))) => oid_secs(&id) < *before_secs,
                _ => false,
            },
        })
    }

    /// The filter of the documents no TTL will delete before the
    /// verification ends; empty when there is no TTL. `$lt` against a date
    /// matches only dates (and arrays holding an earlier one), which is
    /// exactly what the TTL monitor deletes; against an ObjectId, only
    /// ObjectIds, and the first ObjectId of a second is below every other
    /// of that second.
    pub fn lasting_filter(&self) -> Document {
        let mut each: Vec<Document> = self
            .0
            .iter()
            .map(|c| match c {
                Cutoff::Date { path, before } => {
                    doc! { path.as_str(): { "$not": { "$lt": *before } } }
                }
                Cutoff::BucketId { before_secs } => {
                    doc! { "_id": { "$not": { "$lt": first_oid_of(*before_secs) } } }
                }
            })
            .collect();
        match each.len() {
            0 => Document::new(),
            1 => each.remove(0),
            _ => doc! { "$and": each },
        }
    }
}

/// The seconds an ObjectId holds: its first four bytes, big-endian.
fn oid_secs(id: &ObjectId) -> u32 {
    let b = id.bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The smallest ObjectId of a second.
fn first_oid_of(secs: u32) -> ObjectId {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&secs.to_be_bytes());
    ObjectId::from_bytes(b)
}

/// The earliest date at `path` under `value`, as a query (and so the TTL
/// monitor, which deletes with `$lt`) sees it: arrays of documents on the
/// way are traversed element by element (a numeric part also indexes
/// into one), and an array at the end counts by its date elements.
fn earliest_date(value: RawBsonRef<'_>, path: &[&str]) -> Option<i64> {
    let Some((first, rest)) = path.split_first() else {
        return match value {
            RawBsonRef::DateTime(d) => Some(d.timestamp_millis()),
            RawBsonRef::Array(a) => a
                .into_iter()
                .flatten()
                .filter_map(|v| match v {
                    RawBsonRef::DateTime(d) => Some(d.timestamp_millis()),
                    _ => None,
                })
                .min(),
            _ => None,
        };
    };
    match value {
        RawBsonRef::Document(d) => d
            .get(first)
            .ok()
            .flatten()
            .and_then(|v| earliest_date(v, rest)),
        RawBsonRef::Array(a) => {
            let mut best = a
                .into_iter()
                .flatten()
                .filter(|v| matches!(v, RawBsonRef::Document(_)))
                .filter_map(|v| earliest_date(v, path))
                .min();
            if let Ok(i) = first.parse::<usize>() {
                if let Some(v) = a.get(i).ok().flatten() {
                    best = best.into_iter().chain(earliest_date(v, rest)).min();
                }
            }
            best
        }
        _ => None,
    }
}

/// The TTLs of each collection, read from the source once per
/// verification (again after [`REFRESH_AFTER`] in a long live one), with
/// the UUID of the collection they were read from.
#[derive(Default)]
pub(crate) struct TtlCache {
    by_ns: std::sync::Mutex<HashMap<Namespace, Cached>>,
}

/// When the TTLs were read, from which collection.
type Cached = (Instant, Option<Binary>, Arc<Ttls>);

impl TtlCache {
    fn get(&self, ns: &Namespace) -> Option<(Option<Binary>, Arc<Ttls>)> {
        let all = self.by_ns.lock().unwrap_or_else(|e| e.into_inner());
        all.get(ns)
            .filter(|(read, _, _)| read.elapsed() < REFRESH_AFTER)
            .map(|(_, uuid, t)| (uuid.clone(), t.clone()))
    }

    fn put(&self, ns: &Namespace, uuid: Option<Binary>, ttls: Ttls) -> Arc<Ttls> {
        let ttls = Arc::new(ttls);
        self.by_ns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.clone(), (Instant::now(), uuid, ttls.clone()));
        ttls
    }
}

impl TtlCache {
    /// The TTLs of `ns` on the source, read when first needed.
    pub(crate) async fn of(&self, source: &Cluster, ns: &Namespace) -> Result<Arc<Ttls>> {
        if let Some((_, t)) = self.get(ns) {
            return Ok(t);
        }
        let src = catalog::find_namespace(source, ns).await?;
        self.read(source, ns, src.as_ref()).await
    }

    /// The TTLs of the source collection `src` (its `listCollections`
    /// entry), read unless they were read from this very collection: one
    /// renamed over its name during a live verification has another UUID.
    pub(crate) async fn of_source(
        &self,
        source: &Cluster,
        src: &SourceNamespace,
    ) -> Result<Arc<Ttls>> {
        match self.get(&src.ns) {
            Some((uuid, t)) if uuid == src.uuid => Ok(t),
            _ => self.read(source, &src.ns, Some(src)).await,
        }
    }

    /// Reads the TTLs of `ns` from the source, given its `listCollections`
    /// entry (`None`: the source has no such collection).
    async fn read(
        &self,
        source: &Cluster,
        ns: &Namespace,
        src: Option<&SourceNamespace>,
    ) -> Result<Arc<Ttls>> {
        let indexes = match src {
            Some(s) if s.kind == catalog::NsKind::Collection => {
                catalog::list_indexes_raw(source, ns).await?
            }
            _ => Vec::new(),
        };
        Ok(self.remember(ns, src, &indexes))
    }

    /// Records the TTLs of `ns` from its source `listCollections` entry and
    /// the `indexes` already listed from the source.
    pub(crate) fn remember(
        &self,
        ns: &Namespace,
        src: Option<&SourceNamespace>,
        indexes: &[Document],
    ) -> Arc<Ttls> {
        let ttls = match src {
            None => Ttls::default(),
            Some(s) if s.kind == catalog::NsKind::View => Ttls::default(),
            Some(s) if s.kind == catalog::NsKind::Timeseries => {
                Ttls::from_specs(ns, &s.options, &[])
            }
            Some(s) => Ttls::from_specs(ns, &s.options, indexes),
        };
        if !ttls.is_empty() {
            tracing::debug!(%ns, ttls = ?ttls.fields(), "TTL collection: documents about to expire are not differences");
        }
        self.put(ns, src.and_then(|s| s.uuid.clone()), ttls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    fn ns() -> Namespace {
        Namespace::new("app", "sessions")
    }

    fn ms(n: i64) -> DateTime {
        DateTime::from_millis(n)
    }

    fn date(path: &str) -> TtlKey {
        TtlKey::Date(path.to_string())
    }

    fn buckets() -> Namespace {
        Namespace::new("app", "system.buckets.sessions")
    }

    /// The options `listCollections` shows for the buckets of a
    /// time-series collection (5.0 and 6.0 alike).
    fn bucket_options(expire_after_seconds: i64, span: Option<i32>) -> Document {
        let mut ts = doc! { "timeField": "t", "metaField": "m", "granularity": "minutes" };
        if let Some(span) = span {
            ts.insert("bucketMaxSpanSeconds", span);
        }
        doc! {
            "validator": { "$jsonSchema": { "bsonType": "object" } },
            "clusteredIndex": true,
            "expireAfterSeconds": expire_after_seconds,
            "timeseries": ts,
        }
    }

    /// A bucket `_id` of the given second, the rest as the server fills it.
    fn bucket_id(secs: i64) -> ObjectId {
        let mut b = [0xab_u8; 12];
        b[..4].copy_from_slice(&u32::try_from(secs).unwrap().to_be_bytes());
        ObjectId::from_bytes(b)
    }

    /// The cutoffs at `NOW` of one single-field TTL index on `path`.
    fn index_cutoffs(path: &str, expire_after_seconds: i32) -> Cutoffs {
        let index =
            doc! { "key": { path: 1 }, "name": path, "expireAfterSeconds": expire_after_seconds };
        Ttls::from_specs(&ns(), &doc! {}, &[index]).at(ms(NOW))
    }

    const NOW: i64 = 1_700_000_000_000;
    const MARGIN: i64 = 600_000;

    #[test]
    fn ttls_come_from_single_field_ttl_indexes_and_clustered_and_timeseries_options() {
        let indexes = vec![
            doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" },
            doc! { "v": 2, "key": { "at": 1 }, "name": "at_1", "expireAfterSeconds": 60 },
            doc! { "v": 2, "key": { "a.b": -1 }, "name": "ab", "expireAfterSeconds": 3600_i64 },
            doc! { "v": 2, "key": { "x": 1, "y": 1 }, "name": "xy", "expireAfterSeconds": 5 },
            doc! { "v": 2, "key": { "z": 1 }, "name": "z_1", "expireAfterSeconds": "soon" },
            doc! { "v": 2, "key": { "w": 1 }, "name": "w_1", "expireAfterSeconds": 1.5 },
        ];
        let t = Ttls::from_specs(&ns(), &doc! {}, &indexes);
        let got: Vec<(TtlKey, i64)> = t
            .fields()
            .iter()
            .map(|f| (f.key.clone(), f.expire_after_seconds))
            .collect();
        assert_eq!(
            got,
            vec![(date("at"), 60), (date("a.b"), 3600), (date("w"), 1)]
        );

        let clustered = doc! { "clusteredIndex": { "key": { "_id": 1 }, "unique": true }, "expireAfterSeconds": 30_i64 };
        let t = Ttls::from_specs(&ns(), &clustered, &[]);
        assert_eq!(
            t.fields(),
            &[TtlField {
                key: date("_id"),
                expire_after_seconds: 30
            }]
        );
        let ts =
            doc! { "timeseries": { "timeField": "t", "metaField": "m" }, "expireAfterSeconds": 10 };
        assert_eq!(Ttls::from_specs(&ns(), &ts, &[]).fields()[0].key, date("t"));
        assert!(Ttls::from_specs(&ns(), &doc! { "capped": true }, &[]).is_empty());
    }

    #[test]
    fn a_date_before_the_cutoff_may_expire_and_anything_else_may_not() {
        let c = index_cutoffs("at", 60);
        let cutoff = NOW + MARGIN - 60_000;
        let may = |d: bson::RawDocumentBuf| c.may_expire(&d);
        assert!(may(rawdoc! { "_id": 1, "at": ms(NOW - 3_600_000) }));
        // Within the margin: it will expire during the verification.
        assert!(may(rawdoc! { "_id": 1, "at": ms(cutoff - 1) }));
        assert!(!may(rawdoc! { "_id": 1, "at": ms(cutoff) }));
        assert!(!may(rawdoc! { "_id": 1, "at": ms(NOW + 3_600_000) }));
        // The earliest date of an array counts; other elements do not.
        assert!(may(
            rawdoc! { "_id": 1, "at": [ms(NOW + 3_600_000), "x", ms(0)] }
        ));
        assert!(!may(rawdoc! { "_id": 1, "at": [ms(NOW + 3_600_000), 5] }));
        // Not a date, or no such field: no TTL deletes it.
        assert!(!may(rawdoc! { "_id": 1, "at": "2000-01-01" }));
        assert!(!may(rawdoc! { "_id": 1, "at": 0 }));
        assert!(!may(rawdoc! { "_id": 1 }));
        assert!(!may(rawdoc! { "_id": 1, "at": { "d": ms(0) } }));
    }

    #[test]
    fn nested_paths_go_through_documents_and_arrays() {
        let c = index_cutoffs("a.b", 0);
        let old = ms(NOW - 3_600_000);
        let new = ms(NOW + 3_600_000);
        assert!(c.may_expire(&rawdoc! { "a": { "b": old } }));
        assert!(!c.may_expire(&rawdoc! { "a": { "b": new } }));
        assert!(c.may_expire(&rawdoc! { "a": [{ "b": new }, { "b": old }] }));
        assert!(!c.may_expire(&rawdoc! { "a": [{ "b": new }, { "c": old }] }));
        assert!(!c.may_expire(&rawdoc! { "a": old }));
        let c = index_cutoffs("a.1", 0);
        assert!(c.may_expire(&rawdoc! { "a": [new, old] }));
        assert!(!c.may_expire(&rawdoc! { "a": [old, new] }));
    }

    #[test]
    fn a_clustered_ttl_applies_to_the_id_and_the_held_ttl_reaches_far_back() {
        let clustered =
            doc! { "clusteredIndex": { "key": { "_id": 1 } }, "expireAfterSeconds": 60 };
        let c = Ttls::from_specs(&ns(), &clustered, &[]).at(ms(NOW));
        assert!(c.may_expire(&rawdoc! { "_id": ms(NOW - 3_600_000) }));
        assert!(!c.may_expire(&rawdoc! { "_id": 5 }));
        // A TTL of 2^31-1 s: only dates 68 years old expire, and the
        // arithmetic does not overflow.
        let held = index_cutoffs("at", i32::MAX);
        assert!(!held.may_expire(&rawdoc! { "at": ms(NOW - 3_600_000) }));
        assert!(held.may_expire(&rawdoc! { "at": ms(i64::MIN) }));
    }

    #[test]
    fn the_count_filter_keeps_what_may_not_expire() {
        let indexes = [
            doc! { "key": { "at": 1 }, "name": "at_1", "expireAfterSeconds": 60 },
            doc! { "key": { "b": 1 }, "name": "b_1", "expireAfterSeconds": 0 },
        ];
        let t = Ttls::from_specs(&ns(), &doc! {}, &indexes[..1]);
        let cutoff = ms(NOW + MARGIN - 60_000);
        assert_eq!(
            t.at(ms(NOW)).lasting_filter(),
            doc! { "at": { "$not": { "$lt": cutoff } } }
        );
        let t = Ttls::from_specs(&ns(), &doc! {}, &indexes);
        assert_eq!(
            t.at(ms(NOW)).lasting_filter(),
            doc! { "$and": [
                { "at": { "$not": { "$lt": cutoff } } },
                { "b": { "$not": { "$lt": ms(NOW + MARGIN) } } },
            ] }
        );
        assert_eq!(Ttls::default().now().lasting_filter(), doc! {});
    }

    #[test]
    fn buckets_expire_by_the_time_of_their_id_plus_their_span() {
        let t = Ttls::from_specs(&buckets(), &bucket_options(3_600, Some(86_400)), &[]);
        assert_eq!(
            t.fields(),
            &[TtlField {
                key: TtlKey::BucketId {
                    max_span_seconds: 86_400
                },
                expire_after_seconds: 3_600
            }]
        );
        let c = t.at(ms(NOW));
        // The server deletes a bucket once its time plus its span is past
        // the TTL; the margin makes that "within ten minutes".
        let edge = (NOW + MARGIN) / 1000 - 3_600 - 86_400;
        let may = |id: ObjectId| {
            c.may_expire(&rawdoc! { "_id": id, "control": { "min": { "t": ms(0) } } })
        };
        assert!(may(bucket_id(edge - 1)));
        assert!(!may(bucket_id(edge)));
        // A bucket whose measurements all passed the TTL, but whose span
        // has not: the server keeps it, so its absence is a difference.
        assert!(!may(bucket_id(NOW / 1000 - 3_600 - 60)));
        // The time field is not a field of a bucket: dates in it, or a
        // date `_id`, do not count.
        assert!(!c.may_expire(&rawdoc! { "_id": ms(0), "t": ms(0) }));
        assert_eq!(
            c.lasting_filter(),
            doc! { "_id": { "$not": { "$lt": first_oid_of(edge as u32) } } }
        );
        // The time-series collection itself keeps its measurements' time.
        let own = doc! { "timeseries": { "timeField": "t", "granularity": "minutes", "bucketMaxSpanSeconds": 86_400 }, "expireAfterSeconds": 3_600_i64 };
        let ts = Ttls::from_specs(&Namespace::new("app", "sessions"), &own, &[]);
        assert_eq!(ts.fields()[0].key, date("t"));
    }

    #[test]
    fn a_bucket_span_comes_from_its_options_or_its_granularity() {
        let span = |options: &Document| match &Ttls::from_specs(&buckets(), options, &[]).fields()
            [0]
        .key
        {
            TtlKey::BucketId { max_span_seconds } => *max_span_seconds,
            other => panic!("{other:?}"),
        };
        assert_eq!(span(&bucket_options(60, Some(120))), 120);
        assert_eq!(span(&bucket_options(60, None)), 86_400);
        let hours = doc! { "timeseries": { "timeField": "t", "granularity": "hours" }, "expireAfterSeconds": 1 };
        assert_eq!(span(&hours), 2_592_000);
        let plain = doc! { "timeseries": { "timeField": "t" }, "expireAfterSeconds": 1 };
        assert_eq!(span(&plain), 3_600);
        let odd = doc! { "timeseries": { "timeField": "t", "granularity": "weeks" }, "expireAfterSeconds": 1 };
        assert_eq!(span(&odd), 0);
        // No TTL on the collection: none on its buckets.
        let mut none = bucket_options(1, Some(60));
        none.remove("expireAfterSeconds");
        assert!(Ttls::from_specs(&buckets(), &none, &[]).is_empty());
    }

    #[test]
    fn bucket_cutoffs_stay_within_what_an_object_id_holds() {
        let t = Ttls::from_specs(
            &buckets(),
            &bucket_options(i64::from(i32::MAX), Some(3_600)),
            &[],
        );
        let c = t.at(ms(NOW));
        assert_eq!(c, Cutoffs(vec![Cutoff::BucketId { before_secs: 0 }]));
        assert!(!c.may_expire(&rawdoc! { "_id": bucket_id(0) }));
        let t = Ttls::from_specs(&buckets(), &bucket_options(0, Some(0)), &[]);
        let c = t.at(ms(i64::MAX));
        assert_eq!(
            c,
            Cutoffs(vec![Cutoff::BucketId {
                before_secs: u32::MAX
            }])
        );
        assert!(c.may_expire(&rawdoc! { "_id": bucket_id(i64::from(u32::MAX) - 1) }));
        assert_eq!(oid_secs(&first_oid_of(1_700_000_000)), 1_700_000_000);
        assert!(first_oid_of(5) < bucket_id(5) && bucket_id(4) < first_oid_of(5));
    }
}
