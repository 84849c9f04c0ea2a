//! Indexes and documents: how TTL and unique indexes are handled during
//! sync, index pairs and options the destination cannot take, documents
//! near the 16 MB limit, and `$`-prefixed, dotted or duplicate field
//! names in the sampled documents. Pure: the inventory holds the facts.
//!
//! Measured on mongod 6.0.5: a unique and a non-unique index on the same
//! key may coexist, but two non-unique ones may not
//! (`IndexOptionsConflict`), which is what the sync-time relaxation of
//! unique indexes would ask the destination to build. Documents with
//! `$`-prefixed, dotted or duplicate field names are inserted, replaced
//! and streamed byte for byte (`tests/preflight.rs` migrates them).

use bson::{Bson, Document};

use super::inventory::{Inventory, NsFacts, Probe, FULL_SCAN_BYTES, NEAR_LIMIT_BYTES};
use super::report::{count, human_bytes, list, Finding};
use super::versions::Version;
use crate::catalog::is_builtin_index;

/// A feature of a collection or index and the feature level (FCV) that
/// introduced it.
struct Feature {
    what: String,
    since: Version,
}

/// The features of a collection and its indexes that need a recent FCV.
fn features(n: &NsFacts) -> Vec<Feature> {
    let mut out = Vec::new();
    let o = &n.ns.options;
    if o.contains_key("clusteredIndex") {
        out.push(Feature {
            what: "a clustered collection".into(),
            since: Version::new(5, 3),
        });
    }
    if o.contains_key("changeStreamPreAndPostImages") {
        out.push(Feature {
            what: "the changeStreamPreAndPostImages option".into(),
            since: Version::new(6, 0),
        });
    }
    for spec in &n.indexes {
        let key = spec.get_document("key").cloned().unwrap_or_default();
        let wildcard = key.keys().any(|k| k == "$**" || k.ends_with(".$**"));
        if wildcard && key.len() > 1 {
            out.push(Feature {
                what: format!(
                    "the compound wildcard index {}",
                    spec.get_str("name").unwrap_or("?")
                ),
                since: Version::new(7, 0),
            });
        }
    }
    out
}

/// The key, collation and filter that make two indexes "the same index"
/// to the server once `unique` is taken away.
fn identity(spec: &Document) -> (Vec<(String, Bson)>, Option<Bson>, Option<Bson>) {
    let key = spec
        .get_document("key")
        .map(|k| k.iter().map(|(a, b)| (a.clone(), b.clone())).collect())
        .unwrap_or_default();
    (
        key,
        spec.get("collation").cloned(),
        spec.get("partialFilterExpression").cloned(),
    )
}

fn is_unique(spec: &Document) -> bool {
    spec.get_bool("unique").unwrap_or(false)
}

fn conflicting(indexes: &[Document]) -> Option<(String, String)> {
    let user: Vec<&Document> = indexes.iter().filter(|s| !is_builtin_index(s)).collect();
    for (i, a) in user.iter().enumerate() {
        for b in &user[i + 1..] {
            if is_unique(a) != is_unique(b) && identity(a) == identity(b) {
                let name = |s: &Document| s.get_str("name").unwrap_or("?").to_string();
                return Some((name(a), name(b)));
            }
        }
    }
    None
}

pub fn assess(inv: &Inventory, dest_level: Option<Version>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut ttl = Vec::new();
    let mut unique = Vec::new();
    let mut sampled = Vec::new();
    let mut failed = Vec::new();
    for n in &inv.namespaces {
        let ns = n.ns.ns.to_string();
        if let Some((a, b)) = conflicting(&n.indexes) {
            out.push(
                Finding::blocker(
                    "conflicting_indexes",
                    format!("{ns} has a unique and a non-unique index on the same key ({a}, {b})"),
                    "During sync Mongoferry builds unique indexes non-unique (replayed events may briefly collide), and the server refuses two non-unique indexes on the same key, so the copy would stop when it builds them.",
                    format!("Drop one of the two indexes on the source (usually the non-unique {b}, which the unique one can serve), or exclude {ns}."),
                )
                .on(&ns),
            );
        }
        if let Some(level) = dest_level {
            let lacking: Vec<String> = features(n)
                .into_iter()
                .filter(|f| f.since > level)
                .map(|f| format!("{} (needs {})", f.what, f.since))
                .collect();
            if !lacking.is_empty() {
                out.push(
                    Finding::blocker(
                        "unsupported_on_destination",
                        format!("{ns} uses what the destination does not support"),
                        format!(
                            "It has {}, and the destination's feature level is {level}: it would refuse to create it.",
                            lacking.join(", "),
                        ),
                        "Raise the destination's feature compatibility version (setFeatureCompatibilityVersion) or upgrade it, or exclude the collection.",
                    )
                    .on(&ns),
                );
            }
        }
        for spec in n.indexes.iter().filter(|s| !is_builtin_index(s)) {
            if spec.get_bool("prepareUnique").unwrap_or(false) && !is_unique(spec) {
                out.push(
                    Finding::warning(
                        "prepare_unique_not_kept",
                        format!("The index {} of {ns} is being converted to unique (prepareUnique)", spec.get_str("name").unwrap_or("?")),
                        "Mongoferry builds it without prepareUnique, so on the destination it stays an ordinary index that accepts duplicates again.",
                        "Finish the conversion on the source (collMod with unique: true) before migrating, or set prepareUnique again on the destination after the commit.",
                    )
                    .on(&ns),
                );
            }
            if spec.contains_key("expireAfterSeconds") && !ttl.contains(&ns) {
                ttl.push(ns.clone());
            }
            if is_unique(spec) && !unique.contains(&ns) {
                unique.push(ns.clone());
            }
        }
        match &n.probe {
            Probe::Sampled(k) => sampled.push(format!("{ns} ({k} documents)")),
            Probe::Failed(e) => failed.push(format!("{ns}: {e}")),
            _ => {}
        }
        if let Some(e) = &n.fields.sample_error {
            failed.push(format!("{ns}: {e}"));
        }
        if let Some(big) = n.large_docs.first() {
            out.push(
                Finding::info(
                    "large_document",
                    format!("{ns} holds documents near the 16 MB limit"),
                    format!(
                        "The largest found is {} (_id {}). Mongoferry copies them, and takes their changes from the source rather than from change events, so no event exceeds 16 MB; but an update that would grow one past 16 MB fails on the source, and other change-stream readers with full documents can hit the limit.",
                        human_bytes(big.bytes),
                        big.id
                    ),
                    "Nothing to do for the migration; consider splitting such documents.",
                )
                .on(&ns),
            );
        }
        field_findings(n, &ns, &mut out);
    }
    if !ttl.is_empty() {
        out.push(Finding::info(
            "ttl_index",
            format!("{} with TTL indexes", count(ttl.len(), "collection")),
            format!("In {}: during sync their TTL is held on the destination (68 years) so that it cannot delete copied documents; what the source expires is deleted on the destination by the replayed deletes. The commit restores each TTL.", list(&ttl, 5)),
            "Nothing to do.",
        ));
    }
    if !unique.is_empty() {
        out.push(Finding::info(
            "unique_index",
            format!("{} with unique indexes", count(unique.len(), "collection")),
            format!("In {}: during sync they are built non-unique (replayed events may briefly collide); the commit makes them unique again (collMod prepareUnique, then unique), and stops with the duplicates named if the data is not unique.", list(&unique, 5)),
            "Nothing to do.",
        ));
    }
    if !sampled.is_empty() {
        out.push(Finding::info(
            "large_document_probe_sampled",
            format!("{} probed for large documents on a sample", count(sampled.len(), "collection")),
            format!("Collections over {} are not scanned whole for documents near 16 MB: {}.", human_bytes(FULL_SCAN_BYTES), list(&sampled, 5)),
            format!("To scan one fully: db.coll.aggregate([{{$match: {{$expr: {{$gte: [{{$bsonSize: \"$$ROOT\"}}, {NEAR_LIMIT_BYTES}]}}}}}}, {{$count: \"n\"}}])."),
        ));
    }
    if !failed.is_empty() {
        out.push(Finding::info(
            "probe_failed",
            format!("{} could not be probed", count(failed.len(), "collection")),
            format!(
                "Their documents were not checked for size or field names: {}.",
                list(&failed, 3)
            ),
            "Check the source user's find privilege on them.",
        ));
    }
    out
}

fn field_findings(n: &NsFacts, ns: &str, out: &mut Vec<Finding>) {
    let f = &n.fields;
    if let Some((id, path)) = &f.duplicate {
        out.push(
            Finding::warning(
                "duplicate_field_names",
                format!("{ns} has documents with duplicate field names"),
                format!("Document _id {id} has the field '{path}' twice (in a sample of {}). Mongoferry moves such documents byte for byte, but drivers, shells and tools that decode them keep only one of the values, so your applications and any check that decodes documents see less than is stored.", f.sampled),
                "Rewrite these documents with one field per name, before or after the migration.",
            )
            .on(ns),
        );
    }
    if let Some((id, path)) = &f.dollar {
        out.push(
            Finding::info(
                "dollar_field_names",
                format!("{ns} has field names that start with '$'"),
                format!("Document _id {id} has the field '{path}' (in a sample of {}). Mongoferry moves such documents byte for byte; queries and updates must reach these fields with $getField and $setField.", f.sampled),
                "Nothing to do for the migration.",
            )
            .on(ns),
        );
    }
    if let Some((id, path)) = &f.dotted {
        out.push(
            Finding::info(
                "dotted_field_names",
                format!("{ns} has field names that contain '.'"),
                format!("Document _id {id} has a field named '{path}' (in a sample of {}). Mongoferry moves such documents byte for byte; queries cannot address these fields with dot notation.", f.sampled),
                "Nothing to do for the migration.",
            )
            .on(ns),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::inventory::{FieldFacts, LargeDoc};
    use super::super::Severity::{self, *};
    use super::*;
    use crate::catalog::{NsKind, SourceNamespace};
    use crate::scope::Namespace;
    use bson::doc;

    fn coll(name: &str, options: Document, indexes: Vec<Document>) -> NsFacts {
        let mut n = NsFacts::bare(SourceNamespace {
            ns: Namespace::parse(name).unwrap(),
            kind: NsKind::Collection,
            uuid: None,
            options,
        });
        n.indexes = indexes;
        n
    }

    fn id_index() -> Document {
        doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" }
    }

    fn ids(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|f| (f.id.as_str(), f.severity)).collect()
    }

    #[test]
    fn a_unique_and_a_plain_index_on_one_key_cannot_both_be_relaxed() {
        let inv = Inventory {
            namespaces: vec![coll(
                "a.c",
                doc! {},
                vec![
                    id_index(),
                    doc! { "v": 2, "key": { "e": 1 }, "name": "e_u", "unique": true },
                    doc! { "v": 2, "key": { "e": 1 }, "name": "e_plain" },
                ],
            )],
            ..Inventory::default()
        };
        let f = assess(&inv, Some(Version::new(6, 0)));
        assert_eq!(
            ids(&f),
            vec![("conflicting_indexes", Blocker), ("unique_index", Info)]
        );
        assert!(
            f[0].title.contains("e_u") && f[0].title.contains("e_plain"),
            "{}",
            f[0].title
        );
        // A different collation or filter makes them different indexes.
        let inv = Inventory {
            namespaces: vec![coll(
                "a.c",
                doc! {},
                vec![
                    doc! { "v": 2, "key": { "e": 1 }, "name": "e_u", "unique": true },
                    doc! { "v": 2, "key": { "e": 1 }, "name": "e_ci", "collation": { "locale": "en", "strength": 2 } },
                    doc! { "v": 2, "key": { "e": 1, "f": 1 }, "name": "e_f" },
                    doc! { "v": 2, "key": { "f": 1, "e": 1 }, "name": "f_e", "unique": true },
                ],
            )],
            ..Inventory::default()
        };
        assert_eq!(
            ids(&assess(&inv, Some(Version::new(6, 0)))),
            vec![("unique_index", Info)]
        );
    }

    #[test]
    fn features_newer_than_the_destination_are_refused() {
        let inv = Inventory {
            namespaces: vec![
                coll(
                    "a.pp",
                    doc! { "changeStreamPreAndPostImages": { "enabled": true } },
                    vec![],
                ),
                coll(
                    "a.cl",
                    doc! { "clusteredIndex": { "key": { "_id": 1 }, "unique": true } },
                    vec![],
                ),
                coll(
                    "a.cw",
                    doc! {},
                    vec![doc! { "v": 2, "key": { "tenant": 1, "$**": 1 }, "name": "cw" }],
                ),
                coll(
                    "a.w",
                    doc! {},
                    vec![doc! { "v": 2, "key": { "a.$**": 1 }, "name": "w" }],
                ),
            ],
            ..Inventory::default()
        };
        let f = assess(&inv, Some(Version::new(5, 0)));
        let on: Vec<_> = f
            .iter()
            .map(|f| (f.id.as_str(), f.namespace.as_deref()))
            .collect();
        assert_eq!(
            on,
            vec![
                ("unsupported_on_destination", Some("a.pp")),
                ("unsupported_on_destination", Some("a.cl")),
                ("unsupported_on_destination", Some("a.cw")),
            ]
        );
        assert!(
            f[2].detail
                .contains("compound wildcard index cw (needs 7.0)"),
            "{}",
            f[2].detail
        );
        let f = assess(&inv, Some(Version::new(6, 0)));
        assert_eq!(f.len(), 1, "only the 7.0 index is left: {f:#?}");
        assert!(assess(&inv, Some(Version::new(7, 0))).is_empty());
        assert!(
            assess(&inv, None).is_empty(),
            "unknown level: nothing claimed"
        );
    }

    #[test]
    fn ttl_unique_and_prepare_unique_indexes_are_explained() {
        let inv = Inventory {
            namespaces: vec![coll(
                "a.c",
                doc! {},
                vec![
                    id_index(),
                    doc! { "v": 2, "key": { "at": 1 }, "name": "at_1", "expireAfterSeconds": 60 },
                    doc! { "v": 2, "key": { "u": 1 }, "name": "u_1", "unique": true },
                    doc! { "v": 2, "key": { "p": 1 }, "name": "p_1", "prepareUnique": true },
                ],
            )],
            ..Inventory::default()
        };
        assert_eq!(
            ids(&assess(&inv, Some(Version::new(6, 0)))),
            vec![
                ("prepare_unique_not_kept", Warning),
                ("ttl_index", Info),
                ("unique_index", Info)
            ]
        );
    }

    #[test]
    fn documents_and_field_names_found_by_the_probes_are_reported() {
        let mut n = coll("a.c", doc! {}, vec![]);
        n.large_docs = vec![LargeDoc {
            id: "1".into(),
            bytes: 15 * 1024 * 1024 + 1,
        }];
        n.fields = FieldFacts {
            sampled: 10,
            dollar: Some(("2".into(), "$x".into())),
            dotted: Some(("3".into(), "a.b".into())),
            duplicate: Some(("4".into(), "k".into())),
            sample_error: None,
        };
        let mut big = coll("a.big", doc! {}, vec![]);
        big.probe = Probe::Sampled(1000);
        let mut bad = coll("a.bad", doc! {}, vec![]);
        bad.probe = Probe::Failed("not authorized".into());
        let inv = Inventory {
            namespaces: vec![n, big, bad],
            ..Inventory::default()
        };
        assert_eq!(
            ids(&assess(&inv, Some(Version::new(6, 0)))),
            vec![
                ("large_document", Info),
                ("duplicate_field_names", Warning),
                ("dollar_field_names", Info),
                ("dotted_field_names", Info),
                ("large_document_probe_sampled", Info),
                ("probe_failed", Info),
            ]
        );
    }
}
