//! Quick verification: which namespaces exist on each side, their kind,
//! collection options (validator, collation, capped size, clustering,
//! TTL...), index specifications, view definitions, and document counts.
//!
//! While a sync runs, the destination differs from the source on purpose
//! in two ways (see `catalog::sync_index_spec`): unique indexes are built
//! non-unique and TTLs are held at 2^31-1 s. When the verification allows
//! sync relaxations, exactly those two are accepted; everything else must
//! match. Numbers of another type with the same value (a size stored as
//! long on one side and int on the other) are not a difference in
//! metadata: servers normalize them differently from version to version.
//!
//! A TTL collection's counts leave out, on both sides, the documents a TTL
//! may delete before the verification ends (see [`super::ttl`]): each
//! side's TTL monitor deletes them on its own schedule, so their numbers
//! may differ without the data differing.
//!
//! This module only reads, with `listCollections`, `listIndexes` and
//! `count`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document, RawDocumentBuf};
use futures_util::{stream, StreamExt, TryStreamExt};
use mongodb::options::Hint;

use super::context::{kind_name, Ctx, Pair};
use super::diff::{self, numeric_text};
use super::report::{Difference, DifferenceKind, FieldChange, FieldDifference};
use super::ttl::{self, Ttls};
use crate::catalog::{self, NsKind, SourceNamespace, HELD_TTL_SECONDS};
use crate::cluster::Cluster;
use crate::error::{Error, MongoContext, Result};
use crate::scope::Namespace;

/// Compares the namespaces, options, indexes and views of every pair.
pub(crate) async fn compare(ctx: &Arc<Ctx>, pairs: &[Pair]) -> Result<()> {
    // Owned items and an owned context in each future: futures that
    // borrow from the caller are not provably `Send` to the compiler.
    let per_ns = stream::iter(pairs.to_vec())
        .map(|p| {
            let ctx = ctx.clone();
            async move { namespace_differences(&ctx, &p).await }
        })
        .buffered(ctx.options.concurrency.max(1));
    let found: Vec<Vec<Difference>> = per_ns.try_collect().await?;
    for d in found.into_iter().flatten() {
        ctx.report(d).await?;
    }
    Ok(())
}

async fn namespace_differences(ctx: &Ctx, p: &Pair) -> Result<Vec<Difference>> {
    let ns = &p.ns;
    let (s, d) = match (&p.src, &p.dst) {
        (Some(s), None) => {
            let kind = if s.kind == NsKind::View {
                DifferenceKind::MissingView
            } else {
                DifferenceKind::MissingCollection
            };
            return Ok(vec![Difference::namespace_level(
                ns,
                kind,
                format!(
                    "The {} exists on the source but not on the destination.",
                    kind_name(s.kind)
                ),
            )]);
        }
        (None, Some(d)) => {
            let kind = if d.kind == NsKind::View {
                DifferenceKind::ExtraView
            } else {
                DifferenceKind::ExtraCollection
            };
            return Ok(vec![Difference::namespace_level(
                ns,
                kind,
                format!(
                    "The {} exists on the destination but not on the source.",
                    kind_name(d.kind)
                ),
            )]);
        }
        (Some(s), Some(d)) => (s, d),
        (None, None) => return Ok(Vec::new()),
    };
    if s.kind != d.kind {
        return Ok(vec![Difference::namespace_level(
            ns,
            DifferenceKind::NamespaceType,
            format!(
                "It is a {} on the source but a {} on the destination.",
                kind_name(s.kind),
                kind_name(d.kind)
            ),
        )]);
    }
    let mut out = Vec::new();
    if s.kind == NsKind::View {
        let fields = compare_view(&s.options, &d.options)?;
        if !fields.is_empty() {
            out.push(
                Difference::namespace_level(
                    ns,
                    DifferenceKind::ViewDefinition,
                    format!("The view's definition differs ({}).", paths(&fields)),
                )
                .with_fields(fields),
            );
        }
        return Ok(out);
    }
    let fields = compare_options(&s.options, &d.options, ctx.relaxed)?;
    if !fields.is_empty() {
        out.push(
            Difference::namespace_level(
                ns,
                DifferenceKind::CollectionOptions,
                format!("Collection options differ: {}.", paths(&fields)),
            )
            .with_fields(fields),
        );
    }
    let (si, di) = tokio::try_join!(
        catalog::list_indexes_raw(&ctx.src, ns),
        catalog::list_indexes_raw(&ctx.dest, ns)
    )?;
    // Read once: the document comparison and the counts need the TTLs too.
    ctx.ttls.remember(ns, Some(s), &si);
    out.extend(compare_indexes(ns, &si, &di, ctx.relaxed)?);
    Ok(out)
}

fn paths(fields: &[FieldDifference]) -> String {
    let mut p: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
    p.dedup();
    p.join(", ")
}

/// Index differences of one collection, matched by index name.
pub fn compare_indexes(
    ns: &Namespace,
    src: &[Document],
    dst: &[Document],
    relaxed: bool,
) -> Result<Vec<Difference>> {
    let name = |d: &Document| d.get_str("name").unwrap_or_default().to_string();
    let mut out = Vec::new();
    let index_diff = |kind, index: &str, detail: String| {
        let mut d = Difference::namespace_level(ns, kind, detail);
        d.index = Some(index.to_string());
        d
    };
    for s in src {
        let n = name(s);
        match dst.iter().find(|d| name(d) == n) {
            None => out.push(index_diff(
                DifferenceKind::MissingIndex,
                &n,
                format!(
                    "The index {n} {} is missing on the destination.",
                    key_text(s)
                ),
            )),
            Some(d) => {
                let fields = compare_index(s, d, relaxed)?;
                if !fields.is_empty() {
                    out.push(
                        index_diff(
                            DifferenceKind::IndexOptions,
                            &n,
                            format!("The index {n} differs: {}.", paths(&fields)),
                        )
                        .with_fields(fields),
                    );
                }
            }
        }
    }
    for d in dst {
        let n = name(d);
        if !src.iter().any(|s| name(s) == n) {
            out.push(index_diff(
                DifferenceKind::ExtraIndex,
                &n,
                format!(
                    "The index {n} {} exists only on the destination.",
                    key_text(d)
                ),
            ));
        }
    }
    Ok(out)
}

fn key_text(spec: &Document) -> String {
    spec.get_document("key")
        .map(|k| format!("on {}", Bson::Document(k.clone()).into_relaxed_extjson()))
        .unwrap_or_default()
}

/// Field differences between two option documents, ignoring numeric type.
fn option_fields(src: &Document, dst: &Document, strict: bool) -> Result<Vec<FieldDifference>> {
    let raw = |d: &Document| {
        RawDocumentBuf::from_document(d).map_err(|e| Error::Other(format!("encode options: {e}")))
    };
    let (s, d) = (raw(src)?, raw(dst)?);
    Ok(diff::diff(&s, &d, strict)?
        .map(|dd| dd.fields)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.change != FieldChange::Type)
        .collect())
}

/// Whether `v` is the TTL that sync holds indexes at.
fn is_held_ttl(v: Option<&Bson>) -> bool {
    let Some(v) = v else { return false };
    let Ok(raw) = bson::RawBson::try_from(v.clone()) else {
        return false;
    };
    numeric_text(raw.as_raw_bson_ref()) == numeric_text(bson::RawBsonRef::Int64(HELD_TTL_SECONDS))
}

/// Collection options that differ. With `relaxed`, a clustered
/// collection's TTL held by sync is accepted.
pub fn compare_options(
    src: &Document,
    dst: &Document,
    relaxed: bool,
) -> Result<Vec<FieldDifference>> {
    // A default stated is the same as a default left out: `collMod`
    // writes these two out whenever it sets a validator.
    let normalize = |o: &Document| {
        let mut o = o.clone();
        for (k, default) in [("validationLevel", "strict"), ("validationAction", "error")] {
            if o.get_str(k) == Ok(default) {
                o.remove(k);
            }
        }
        o
    };
    let (mut s, d) = (normalize(src), normalize(dst));
    // During sync a clustered collection's TTL is off on the destination
    // (`catalog::create_options`).
    if relaxed && s.contains_key("expireAfterSeconds") && !d.contains_key("expireAfterSeconds") {
        s.remove("expireAfterSeconds");
    }
    option_fields(&s, &d, false)
}

/// A view's source, pipeline or collation that differ. Pipelines compare
/// in order: the order of stages and of their fields is their meaning.
pub fn compare_view(src: &Document, dst: &Document) -> Result<Vec<FieldDifference>> {
    option_fields(src, dst, true)
}

/// Options whose `false` is the same as their absence.
const FALSE_IS_DEFAULT: &[&str] = &["unique", "sparse", "hidden", "prepareUnique"];

/// The differences between two specifications of the index of one name.
/// The key compares in order (it is the index's sort order); the other
/// options as a map. `v` (the index format version, chosen by the server)
/// and `background` (ignored since 4.2) do not count. With `relaxed`,
/// sync's non-unique and held-TTL forms are accepted.
pub fn compare_index(
    src: &Document,
    dst: &Document,
    relaxed: bool,
) -> Result<Vec<FieldDifference>> {
    let normalize = |spec: &Document| {
        let mut s = spec.clone();
        for k in ["ns", "v", "background"] {
            s.remove(k);
        }
        for k in FALSE_IS_DEFAULT {
            if s.get_bool(k) == Ok(false) {
                s.remove(k);
            }
        }
        s
    };
    let (mut s, mut d) = (normalize(src), normalize(dst));
    if relaxed {
        if s.get_bool("unique") == Ok(true) && !d.contains_key("unique") {
            s.remove("unique");
        }
        s.remove("prepareUnique");
        d.remove("prepareUnique");
        if s.contains_key("expireAfterSeconds") && is_held_ttl(d.get("expireAfterSeconds")) {
            s.remove("expireAfterSeconds");
            d.remove("expireAfterSeconds");
        }
    }
    let sk = s.remove("key").unwrap_or(Bson::Null);
    let dk = d.remove("key").unwrap_or(Bson::Null);
    let mut fields = option_fields(&doc! { "key": sk }, &doc! { "key": dk }, true)?;
    fields.extend(option_fields(&s, &d, false)?);
    Ok(fields)
}

/// Exact document count of a collection (covered by the `_id` index where
/// there is one), of a time-series collection's buckets, or of its
/// measurements (of the time-series collection itself), counted once the node
/// holds everything up to `after` (a causally consistent session). With a
/// `filter` (a TTL collection's documents that will not expire), only the
/// documents it matches, by whatever plan the server chooses.
pub(crate) async fn count(
    cluster: &Cluster,
    ns: &Namespace,
    kind: NsKind,
    after: Option<bson::Timestamp>,
    filter: Option<Document>,
) -> Result<u64> {
    let op = format!("count the documents of {ns}");
    let mut session = cluster
        .client
        .start_session()
        .causal_consistency(true)
        .await
        .ctx(cluster.role, &op)?;
    if let Some(t) = after {
        session.advance_operation_time(t);
    }
    let coll = cluster
        .client
        .database(&ns.db)
        .collection::<Document>(&ns.coll);
    // A time-series collection's buckets have no `_id` index to hint (5.0
    // refuses it): a scan of their cluster counts them, as it does the
    // measurements of the time-series collection.
    let unhinted = kind == NsKind::Timeseries || ns.timeseries_of_buckets().is_some();
    let counted = match filter {
        Some(filter) => coll.count_documents(filter).session(&mut session).await,
        None if unhinted => coll.count_documents(doc! {}).session(&mut session).await,
        None => {
            coll.count_documents(doc! {})
                .hint(Hint::Keys(doc! { "_id": 1 }))
                .session(&mut session)
                .await
        }
    };
    counted.ctx(cluster.role, &op)
}

/// Quick mode: compares the document counts of every namespace both sides
/// hold (of a TTL collection, the documents no TTL may delete before the
/// verification ends). Live, a count that differs is taken again until it
/// matches or has stopped moving for the settle time.
pub(crate) async fn counts(ctx: &Arc<Ctx>, pairs: &[Pair]) -> Result<()> {
    let countable: Vec<(Namespace, SourceNamespace)> = pairs
        .iter()
        .filter_map(|p| match (&p.src, &p.dst) {
            (Some(s), Some(d)) if s.kind == d.kind && s.kind != NsKind::View => {
                Some((p.ns.clone(), s.clone()))
            }
            _ => None,
        })
        .collect();
    let skipped = pairs.len() - countable.len();
    ctx.meter
        .namespaces_done
        .fetch_add(skipped as u64, std::sync::atomic::Ordering::Relaxed);
    let results = stream::iter(countable)
        .map(|(ns, src)| {
            let ctx = ctx.clone();
            async move {
                let r = match ctx.ttls.of_source(&ctx.src, &src).await {
                    Ok(ttls) => count_until_settled(&ctx, &ns, src.kind, &ttls).await,
                    Err(e) => Err(e),
                };
                ctx.meter
                    .namespaces_done
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                r.map(|c| (ns, c))
            }
        })
        .buffer_unordered(ctx.options.concurrency.max(1));
    let counted: Vec<(Namespace, (u64, u64))> = results.try_collect().await?;
    for (ns, (s, d)) in counted {
        let p = Pair {
            ns,
            src: None,
            dst: None,
        };
        let key = p.ns.to_string();
        ctx.stats(&key, |st| {
            st.source_documents = Some(s);
            st.destination_documents = Some(d);
        });
        if s != d {
            ctx.report(Difference::namespace_level(
                &p.ns,
                DifferenceKind::Count,
                format!("The source holds {s} documents and the destination {d}."),
            ))
            .await?;
        }
    }
    Ok(())
}

/// Both sides' counts; of a TTL collection, the documents that no TTL may
/// delete before the verification ends, with one cutoff taken now for
/// both sides.
async fn both_counts(ctx: &Ctx, ns: &Namespace, kind: NsKind, ttls: &Ttls) -> Result<(u64, u64)> {
    let filter = (!ttls.is_empty()).then(|| ttls.now().lasting_filter());
    let (src_filter, dest_filter) = (filter.clone(), filter);
    tokio::try_join!(
        count(&ctx.src, ns, kind, ctx.read_after(&ctx.src), src_filter),
        count(&ctx.dest, ns, kind, ctx.read_after(&ctx.dest), dest_filter)
    )
}

async fn count_until_settled(
    ctx: &Ctx,
    ns: &Namespace,
    kind: NsKind,
    ttls: &Ttls,
) -> Result<(u64, u64)> {
    if !ttls.is_empty() {
        let minutes = ttl::EXPIRY_MARGIN.as_secs() / 60;
        ctx.stats(&ns.to_string(), |s| {
            s.note = Some(format!(
                "a TTL collection: documents expired or expiring within {minutes} minutes are not counted on either side"
            ));
        });
    }
    let mut last = both_counts(ctx, ns, kind, ttls).await?;
    let Some(live) = &ctx.options.live else {
        return Ok(last);
    };
    let interval = Duration::from_secs_f64(live.recheck_interval_seconds.max(0.05));
    let settle = Duration::from_secs_f64(live.settle_seconds.max(0.0));
    let mut still_since = Instant::now();
    while last.0 != last.1 && still_since.elapsed() < settle {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
            _ = tokio::time::sleep(interval) => {}
        }
        // Settled on the gap, not on the counts: a TTL collection's counts
        // move whenever a date passes the moving cutoff, on both sides.
        let now = both_counts(ctx, ns, kind, ttls).await?;
        let gap = |(s, d): (u64, u64)| s as i128 - d as i128;
        if gap(now) != gap(last) {
            still_since = Instant::now();
        }
        last = now;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    fn paths(f: &[FieldDifference]) -> Vec<(&str, FieldChange)> {
        f.iter().map(|f| (f.path.as_str(), f.change)).collect()
    }

    #[test]
    fn sync_relaxations_are_accepted_only_when_allowed() {
        let src = doc! { "v": 2, "key": { "email": 1 }, "name": "email_1", "unique": true };
        let relaxed = catalog::sync_index_spec(&src);
        assert!(compare_index(&src, &relaxed, true).unwrap().is_empty());
        assert_eq!(
            paths(&compare_index(&src, &relaxed, false).unwrap()),
            vec![("unique", FieldChange::MissingOnDestination)]
        );
        let ttl = doc! { "v": 2, "key": { "at": 1 }, "name": "at_1", "expireAfterSeconds": 60 };
        let held = catalog::sync_index_spec(&ttl);
        assert!(compare_index(&ttl, &held, true).unwrap().is_empty());
        assert_eq!(
            paths(&compare_index(&ttl, &held, false).unwrap()),
            vec![("expireAfterSeconds", FieldChange::Value)]
        );
        // Another TTL than the held one is a real difference either way.
        let other = doc! { "v": 2, "key": { "at": 1 }, "name": "at_1", "expireAfterSeconds": 61 };
        assert_eq!(compare_index(&ttl, &other, true).unwrap().len(), 1);
        let clustered = doc! { "clusteredIndex": { "key": { "_id": 1 }, "unique": true }, "expireAfterSeconds": 5_i64 };
        let held = catalog::create_options(&clustered);
        assert!(compare_options(&clustered, &held, true).unwrap().is_empty());
        assert_eq!(compare_options(&clustered, &held, false).unwrap().len(), 1);
    }

    #[test]
    fn index_keys_compare_in_order_and_options_by_value() {
        let a = doc! { "v": 2, "key": { "a": 1, "b": -1 }, "name": "ab", "sparse": false };
        let b = doc! { "v": 1, "name": "ab", "key": { "a": 1_i64, "b": -1.0 } };
        assert!(compare_index(&a, &b, false).unwrap().is_empty());
        let swapped = doc! { "v": 2, "key": { "b": -1, "a": 1 }, "name": "ab" };
        assert_eq!(
            paths(&compare_index(&a, &swapped, false).unwrap()),
            vec![("key.a", FieldChange::Order), ("key.b", FieldChange::Order)]
        );
        let partial = doc! { "v": 2, "key": { "a": 1, "b": -1 }, "name": "ab", "partialFilterExpression": { "a": { "$gt": 1 } } };
        assert_eq!(
            paths(&compare_index(&a, &partial, true).unwrap()),
            vec![("partialFilterExpression", FieldChange::ExtraOnDestination)]
        );
    }

    #[test]
    fn indexes_are_matched_by_name() {
        let ns = Namespace::new("a", "b");
        let id = doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" };
        let x = doc! { "v": 2, "key": { "x": 1 }, "name": "x_1" };
        let y = doc! { "v": 2, "key": { "y": 1 }, "name": "y_1" };
        let found = compare_indexes(&ns, &[id.clone(), x], &[id, y], false).unwrap();
        let kinds: Vec<(DifferenceKind, Option<&str>)> =
            found.iter().map(|d| (d.kind, d.index.as_deref())).collect();
        assert_eq!(
            kinds,
            vec![
                (DifferenceKind::MissingIndex, Some("x_1")),
                (DifferenceKind::ExtraIndex, Some("y_1"))
            ]
        );
    }

    #[test]
    fn validators_and_view_pipelines() {
        let a = doc! { "validator": { "name": { "$type": "string" } } };
        let b = doc! { "validator": { "name": { "$type": "int" } }, "validationLevel": "strict", "validationAction": "error" };
        assert_eq!(
            paths(&compare_options(&a, &b, true).unwrap()),
            vec![("validator.name.$type", FieldChange::Value)]
        );
        let v1 = doc! { "viewOn": "c", "pipeline": [{ "$match": { "a": 1 } }, { "$sort": { "x": 1, "y": 1 } }] };
        let v2 = doc! { "viewOn": "c", "pipeline": [{ "$match": { "a": 1 } }, { "$sort": { "y": 1, "x": 1 } }] };
        assert!(compare_view(&v1, &v1).unwrap().is_empty());
        assert_eq!(compare_view(&v1, &v2).unwrap().len(), 2);
    }

    #[test]
    fn time_series_and_bucket_options_accept_the_ttl_sync_holds_off() {
        let ts = doc! { "timeField": "t", "metaField": "m", "granularity": "minutes", "bucketMaxSpanSeconds": 86_400 };
        let own = doc! { "expireAfterSeconds": 3_600_i64, "timeseries": ts.clone() };
        let buckets = doc! {
            "validator": { "$jsonSchema": { "bsonType": "object", "required": ["_id", "control", "data"] } },
            "clusteredIndex": true,
            "expireAfterSeconds": 3_600_i64,
            "timeseries": ts.clone(),
        };
        for src in [&own, &buckets] {
            // The destination during sync: the same options, no TTL.
            let mut held = src.clone();
            held.remove("expireAfterSeconds");
            assert!(compare_options(src, &held, true).unwrap().is_empty());
            assert_eq!(
                paths(&compare_options(src, &held, false).unwrap()),
                vec![("expireAfterSeconds", FieldChange::MissingOnDestination)]
            );
            // After commit: restored, of whatever number type.
            let mut restored = held.clone();
            restored.insert("expireAfterSeconds", 3_600_i32);
            assert!(compare_options(src, &restored, false).unwrap().is_empty());
            // Another granularity is a difference, relaxed or not.
            let mut other = held.clone();
            other.insert(
                "timeseries",
                doc! { "timeField": "t", "metaField": "m", "granularity": "hours", "bucketMaxSpanSeconds": 2_592_000 },
            );
            let found = compare_options(src, &other, true).unwrap();
            let mut p: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
            p.sort();
            assert_eq!(
                p,
                ["timeseries.bucketMaxSpanSeconds", "timeseries.granularity"]
            );
        }
        // The raw index specifications of buckets compare as any other.
        let key = doc! { "v": 2, "key": { "meta.id": 1, "control.max.t": -1, "control.min.t": -1 }, "name": "sid_t" };
        assert!(compare_index(&key, &key, false).unwrap().is_empty());
    }
}
