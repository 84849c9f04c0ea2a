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
//! time-series collection's on its time field), never the destination's,
//! which may be the held value. A document *may expire* when, for one of
//! them, the value at the field path is a date (or an array holding one:
//! the earliest counts, as the server's TTL monitor compares it) earlier
//! than `now + EXPIRY_MARGIN - expireAfterSeconds`, `now` being taken when
//! the comparison happens.
//!
//! - Full and live modes: a document on one side only that may expire is
//!   counted in [`super::report::VerifyReport::expiring_skipped`], not reported.
//!   Documents on both sides are compared as any other.
//! - Counts (quick mode, time-series collections in full mode): both sides
//!   count only the documents that may not expire, with the same cutoff
//!   (`{field: {$not: {$lt: cutoff}}}` per TTL field). Collections without
//!   a TTL keep the cheap count of their `_id` index.
//!
//! Only reads: `listCollections` and `listIndexes` on the source.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// One TTL of a collection: documents whose `path` holds a date older than
/// `expire_after_seconds` are deleted by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlField {
    /// `at`, `a.b`; `_id` for a clustered collection.
    pub path: String,
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
            let path = match options.get_document("timeseries") {
                Ok(ts) => ts.get_str("timeField").ok().map(str::to_string),
                Err(_) if options.contains_key("clusteredIndex") => Some("_id".to_string()),
                Err(_) => None,
            };
            match (path, seconds(ttl)) {
                (Some(path), Some(s)) => fields.push(TtlField {
                    path,
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
                    path,
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

    /// The cutoff dates at `now`: a date earlier than its field's cutoff
    /// may expire before the verification ends.
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
                    (f.path.clone(), DateTime::from_millis(cutoff))
                })
                .collect(),
        )
    }

    /// The cutoff dates now.
    pub fn now(&self) -> Cutoffs {
        self.at(DateTime::now())
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

/// The TTLs of a collection at one moment: each field path with the date
/// before which its documents may expire during the verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Cutoffs(Vec<(String, DateTime)>);

impl Cutoffs {
    /// Whether a TTL may delete `doc` before the verification ends.
    pub fn may_expire(&self, doc: &RawDocument) -> bool {
        self.0.iter().any(|(path, cutoff)| {
            let parts: Vec<&str> = path.split('.').collect();
            earliest_date(RawBsonRef::Document(doc), &parts)
                .is_some_and(|d| d < cutoff.timestamp_millis())
        })
    }

    /// The filter of the documents no TTL will delete before the
    /// verification ends; empty when there is no TTL. `$lt` against a date
    /// matches only dates (and arrays holding an earlier one), which is
    /// exactly what the TTL monitor deletes.
    pub fn lasting_filter(&self) -> Document {
        let mut each: Vec<Document> = self
            .0
            .iter()
            .map(|(path, cutoff)| doc! { path.as_str(): { "$not": { "$lt": *cutoff } } })
            .collect();
        match each.len() {
            0 => Document::new(),
            1 => each.remove(0),
            _ => doc! { "$and": each },
        }
    }
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
        let got: Vec<(&str, i64)> = t
            .fields()
            .iter()
            .map(|f| (f.path.as_str(), f.expire_after_seconds))
            .collect();
        assert_eq!(got, vec![("at", 60), ("a.b", 3600), ("w", 1)]);

        let clustered = doc! { "clusteredIndex": { "key": { "_id": 1 }, "unique": true }, "expireAfterSeconds": 30_i64 };
        let t = Ttls::from_specs(&ns(), &clustered, &[]);
        assert_eq!(
            t.fields(),
            &[TtlField {
                path: "_id".into(),
                expire_after_seconds: 30
            }]
        );
        let ts =
            doc! { "timeseries": { "timeField": "t", "metaField": "m" }, "expireAfterSeconds": 10 };
        assert_eq!(Ttls::from_specs(&ns(), &ts, &[]).fields()[0].path, "t");
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
}
