//! Collection types: which kinds the engine cannot migrate faithfully
//! (Queryable Encryption: a blocker) and how the others it handles
//! specially are treated (time-series, capped, clustered with a TTL, views
//! whose source is left out). Whether the sync can follow time-series
//! collections at all is the event source's question (`events`). Pure: the
//! inventory holds the options.

use super::inventory::{Inventory, TimeseriesFacts};
use super::report::Finding;
use crate::catalog::{number, NsKind};
use crate::scope::{Namespace, Scope};

/// The verdict on a clustered collection with a TTL: the engine creates
/// it without its TTL during sync (`catalog::create_options`), since the
/// server refuses a held value reaching back before 1970, and sets the
/// source's TTL at commit.
fn clustered_ttl(ns: &str, options: &bson::Document) -> Finding {
    let ttl = options
        .get("expireAfterSeconds")
        .map(|v| v.to_string())
        .unwrap_or_default();
    Finding::info(
        "clustered_ttl",
        format!("{ns} is a clustered collection with a TTL ({ttl} s)"),
        "During sync its TTL is off on the destination so that it cannot delete copied documents; documents the source expires are deleted on the destination by the replayed deletes. The commit sets the source's TTL again.",
        "Nothing to do.",
    )
    .on(ns)
}

/// How a time-series collection is migrated.
fn timeseries(ns: &str, options: &bson::Document, facts: Option<&TimeseriesFacts>) -> Finding {
    let holds = match facts {
        Some(f) => format!("It holds {}. ", f.describe()),
        None => String::new(),
    };
    let ttl = match options.get("expireAfterSeconds") {
        Some(v) => format!(" Its TTL ({} s) is off on the destination during sync, so that it cannot delete copied buckets; the buckets the source expires are deleted by the replayed deletes, and the commit sets the TTL again.", number(Some(v))),
        None => String::new(),
    };
    Finding::info(
        "time_series_collection",
        format!("{ns} is a time-series collection"),
        format!("{holds}It is created on the destination with the source's options, its buckets (system.buckets.*) are copied as they are stored, without decoding a measurement, and the writes to them are followed through the source's oplog; verification compares the buckets byte for byte and counts the measurements.{ttl}"),
        "Nothing to do.",
    )
    .on(ns)
}

pub fn assess(inv: &Inventory, scope: &Scope) -> Vec<Finding> {
    let mut out = Vec::new();
    for n in &inv.namespaces {
        // A time-series collection's buckets have its verdict.
        if n.ns.ns.timeseries_of_buckets().is_some() {
            continue;
        }
        let ns = n.ns.ns.to_string();
        let options = &n.ns.options;
        match n.ns.kind {
            NsKind::Timeseries => out.push(timeseries(&ns, options, n.timeseries.as_ref())),
            NsKind::View => {
                let on = options.get_str("viewOn").unwrap_or_default();
                let source = Namespace::new(&n.ns.ns.db, on);
                if !on.is_empty() && !scope.contains(&source) {
                    out.push(
                        Finding::warning(
                            "view_source_excluded",
                            format!("The view {ns} reads {source}, which is not migrated"),
                            "The view is created on the destination, but the collection it reads is out of scope, so it will show nothing (or another collection of that name).",
                            format!("Include {source} as well, or exclude the view with --exclude {ns}."),
                        )
                        .on(&ns),
                    );
                }
            }
            NsKind::Collection => {
                if options.contains_key("encryptedFields") {
                    out.push(
                        Finding::blocker(
                            "queryable_encryption",
                            format!("{ns} uses Queryable Encryption"),
                            format!("Its encrypted fields are kept consistent with the enxcol_.{}.* metadata collections and the __safeContent__ field by the server's encrypted write path; copying the documents as they are would leave the destination's copy unqueryable.", n.ns.ns.coll),
                            format!("Exclude it and its metadata collections with --exclude {ns} --exclude '{}.enxcol_.{}.*', and move them with a tool that supports Queryable Encryption.", n.ns.ns.db, n.ns.ns.coll),
                        )
                        .on(&ns),
                    );
                }
                if n.ns.is_clustered() && options.contains_key("expireAfterSeconds") {
                    out.push(clustered_ttl(&ns, options));
                }
                if n.ns.is_capped() {
                    let size = match (&n.stats, options.get("size")) {
                        (Some(s), _) => super::report::human_bytes(s.size),
                        (None, Some(cap)) => format!(
                            "up to its cap of {}",
                            super::report::human_bytes(number(Some(cap)))
                        ),
                        (None, None) => "all of it".to_string(),
                    };
                    out.push(
                        Finding::info(
                            "capped_collection",
                            format!("{ns} is a capped collection"),
                            format!("It is synced like any collection, then copied again whole ({size}) at commit in insertion order, because replayed inserts could land after documents the source has already aged out. The commit takes longer by that copy."),
                            "Nothing to do; keep capped collections small if the commit must be quick.",
                        )
                        .on(&ns),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::inventory::NsFacts;
    use super::super::Severity::{self, *};
    use super::*;
    use crate::catalog::SourceNamespace;
    use bson::{doc, Document};

    fn ns(name: &str, kind: NsKind, options: Document) -> NsFacts {
        NsFacts::bare(SourceNamespace {
            ns: Namespace::parse(name).unwrap(),
            kind,
            uuid: None,
            options,
        })
    }

    fn ids(f: &[Finding]) -> Vec<(&str, Severity, Option<&str>)> {
        f.iter()
            .map(|f| (f.id.as_str(), f.severity, f.namespace.as_deref()))
            .collect()
    }

    #[test]
    fn each_collection_kind_gets_its_verdict() {
        let inv = Inventory {
            namespaces: vec![
                ns("a.plain", NsKind::Collection, doc! {}),
                ns(
                    "a.ts",
                    NsKind::Timeseries,
                    doc! { "timeseries": { "timeField": "t" }, "expireAfterSeconds": 3600 },
                ),
                // Its buckets, clustered with the TTL: no verdict of their own.
                ns(
                    "a.system.buckets.ts",
                    NsKind::Collection,
                    doc! { "clusteredIndex": true, "expireAfterSeconds": 3600, "timeseries": { "timeField": "t" } },
                ),
                ns(
                    "a.enc",
                    NsKind::Collection,
                    doc! { "encryptedFields": { "fields": [] } },
                ),
                ns(
                    "a.cl",
                    NsKind::Collection,
                    doc! { "clusteredIndex": { "key": { "_id": 1 }, "unique": true }, "expireAfterSeconds": 60_i64 },
                ),
                ns(
                    "a.cl_plain",
                    NsKind::Collection,
                    doc! { "clusteredIndex": { "key": { "_id": 1 }, "unique": true } },
                ),
                ns(
                    "a.log",
                    NsKind::Collection,
                    doc! { "capped": true, "size": 4096 },
                ),
                ns(
                    "a.v_ok",
                    NsKind::View,
                    doc! { "viewOn": "plain", "pipeline": [] },
                ),
                ns(
                    "a.v_out",
                    NsKind::View,
                    doc! { "viewOn": "secret", "pipeline": [] },
                ),
            ],
            ..Inventory::default()
        };
        let scope = Scope::new(&["a"], &["a.secret"]).unwrap();
        assert_eq!(
            ids(&assess(&inv, &scope)),
            vec![
                ("time_series_collection", Info, Some("a.ts")),
                ("queryable_encryption", Blocker, Some("a.enc")),
                ("clustered_ttl", Info, Some("a.cl")),
                ("capped_collection", Info, Some("a.log")),
                ("view_source_excluded", Warning, Some("a.v_out")),
            ]
        );
        let found = assess(&inv, &scope);
        let ts = found
            .iter()
            .find(|f| f.id == "time_series_collection")
            .unwrap();
        assert!(ts.detail.contains("3600 s"), "{}", ts.detail);
    }
}
