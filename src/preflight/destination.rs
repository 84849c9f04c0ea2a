//! The destination's current state: in-scope namespaces that already
//! exist (a blocker, unless the user chose to drop them), and a
//! `__mongoferry` state database left by an earlier run (it will resume,
//! or start fresh with `--fresh`; resuming with another scope or source,
//! or past the source's oplog, is a blocker).
//!
//! Reads only: the stored state is read, never taken over.

use std::collections::HashSet;

use bson::Timestamp;
use futures_util::{stream, StreamExt};

use super::report::{human_duration, Finding};
use super::request::CheckRequest;
use crate::catalog::{self, NsKind};
use crate::checkpoint::{MigrationDoc, Store, StoredPhase};
use crate::cluster::Cluster;
use crate::scope::Scope;

/// An in-scope namespace that exists on the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub ns: String,
    pub kind: NsKind,
    /// Estimated from metadata; `None` for views or when unreadable.
    pub documents: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Facts {
    pub stored: Result<Option<MigrationDoc>, String>,
    /// What the stored migration created (dropped again by `--fresh`).
    pub stored_namespaces: Vec<String>,
    pub existing: Result<Vec<Existing>, String>,
}

pub async fn gather(dest: &Cluster, scope: &Scope) -> Facts {
    let store = Store::new(dest);
    let (stored, existing) = tokio::join!(store.load(), catalog::list_namespaces(dest, scope));
    let stored = stored.map_err(|e| e.to_string());
    let stored_namespaces = match &stored {
        Ok(Some(_)) => store
            .all_namespaces()
            .await
            .map(|v| v.into_iter().map(|n| n.ns).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let existing = match existing {
        // A time-series collection is one namespace with its buckets, whose
        // stored count stands for it (counting its view would unpack them).
        Ok(found) => Ok(stream::iter(
            found
                .into_iter()
                .filter(|n| n.ns.timeseries_of_buckets().is_none()),
        )
        .map(|n| async move {
            let counted = match n.kind {
                NsKind::View => None,
                NsKind::Timeseries => Some(n.ns.buckets()),
                NsKind::Collection => Some(n.ns.clone()),
            };
            let documents = match counted {
                None => None,
                Some(ns) => dest
                    .client
                    .database(&ns.db)
                    .collection::<bson::Document>(&ns.coll)
                    .estimated_document_count()
                    .await
                    .ok(),
            };
            Existing {
                ns: n.ns.to_string(),
                kind: n.kind,
                documents,
            }
        })
        .buffered(16)
        .collect()
        .await),
        Err(e) => Err(e.to_string()),
    };
    Facts {
        stored,
        stored_namespaces,
        existing,
    }
}

fn at(t: Timestamp) -> String {
    crate::connection::tls::rfc3339(t.time as i64)
}

/// Where the sync of a stored migration would resume from: the position
/// it saved, a change stream's resume token or an oplog entry's `ts`.
fn resume_point(m: &MigrationDoc) -> Timestamp {
    match m.phase {
        // The copy replays everything from its start once it ends.
        StoredPhase::Copying => m.start_at,
        _ => m.applied_time().unwrap_or(m.start_at),
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

pub fn assess(
    facts: &Facts,
    request: &CheckRequest,
    scope: &Scope,
    source_identity: &str,
    oldest_oplog_entry: Option<Timestamp>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut discarded: HashSet<&str> = HashSet::new();
    match &facts.stored {
        Err(e) => out.push(Finding::warning(
            "destination_unreadable",
            "The destination's migration state could not be read",
            format!("Reading __mongoferry.state failed: {}. Whether an earlier migration would resume is unknown.", e.trim_end_matches('.')),
            "Grant the destination user readWriteAnyDatabase (see the privilege findings), then check again.",
        )),
        Ok(Some(m)) if request.fresh => {
            discarded = facts.stored_namespaces.iter().map(String::as_str).collect();
            out.push(Finding::warning(
                "previous_migration_discarded",
                "--fresh discards the migration stored on the destination",
                format!(
                    "Migration {} ({} phase, started {}) created {} namespaces on the destination; --fresh drops them and its state, and starts over.",
                    m.migration_id,
                    phase(m.phase),
                    at(m.start_at),
                    facts.stored_namespaces.len()
                ),
                "Leave out --fresh to resume it instead.",
            ));
        }
        Ok(Some(m)) => {
            stored_findings(m, scope, source_identity, oldest_oplog_entry, &mut out);
            // Resuming: the namespaces there are the migration's own.
            return out;
        }
        Ok(None) => {}
    }
    match &facts.existing {
        Err(e) => out.push(Finding::warning(
            "destination_unreadable",
            "The destination's collections could not be listed",
            format!("Listing the destination's collections failed: {}. Whether the migration would overwrite something is unknown.", e.trim_end_matches('.')),
            "Grant the destination user readWriteAnyDatabase, then check again.",
        )),
        Ok(existing) => {
            for e in existing.iter().filter(|e| !discarded.contains(e.ns.as_str())) {
                let holds = match (e.kind, e.documents) {
                    (NsKind::View, _) => "a view".to_string(),
                    (_, Some(0)) => "an empty collection, with its own options and indexes".to_string(),
                    (_, Some(n)) => format!("a collection of about {}", super::report::count(n as usize, "document")),
                    (_, None) => "a collection".to_string(),
                };
                if request.drop_existing {
                    out.push(
                        Finding::warning(
                            "destination_namespace_dropped",
                            format!("{} on the destination will be dropped", e.ns),
                            format!("It is {holds}; --drop-existing drops it before the copy, and its data cannot be recovered from Mongoferry."),
                            "Back it up first if you may need it, or exclude it with --exclude.",
                        )
                        .on(&e.ns),
                    );
                } else {
                    out.push(
                        Finding::blocker(
                            "destination_not_empty",
                            format!("The destination already holds {}", e.ns),
                            format!("It is {holds}. The copy would mix the source's documents into it, and its options and indexes would not be the source's."),
                            format!("Drop it on the destination, exclude it with --exclude {}, or pass --drop-existing to let Mongoferry drop it.", e.ns),
                        )
                        .on(&e.ns),
                    );
                }
            }
        }
    }
    out
}

fn phase(p: StoredPhase) -> &'static str {
    match p {
        StoredPhase::Copying => "copying",
        StoredPhase::Applying => "applying",
        StoredPhase::Committing => "committing",
        StoredPhase::Committed => "committed",
    }
}

fn stored_findings(
    m: &MigrationDoc,
    scope: &Scope,
    source_identity: &str,
    oldest: Option<Timestamp>,
    out: &mut Vec<Finding>,
) {
    let mut blocked = false;
    if sorted(&m.include) != sorted(&scope.include_patterns())
        || sorted(&m.exclude) != sorted(&scope.exclude_patterns())
    {
        blocked = true;
        out.push(Finding::blocker(
            "scope_mismatch",
            "The destination holds a migration started with a different scope",
            format!(
                "It was started with include {:?} and exclude {:?}; this run asks for include {:?} and exclude {:?}. Resuming it with another scope would leave namespaces half-migrated.",
                m.include,
                m.exclude,
                scope.include_patterns(),
                scope.exclude_patterns()
            ),
            "Run again with the same --include and --exclude patterns, or pass --fresh to discard that migration and start over.",
        ));
    }
    if m.source_identity != source_identity {
        blocked = true;
        out.push(Finding::blocker(
            "source_mismatch",
            "The destination holds a migration from another source cluster",
            format!(
                "It was started from {}, and this source is {}. Its data and checkpoints belong to that cluster.",
                m.source_identity, source_identity
            ),
            "Point the source at the cluster the migration started from, or pass --fresh to discard that migration and start over.",
        ));
    }
    if blocked {
        return;
    }
    if m.phase == StoredPhase::Committed {
        out.push(Finding::info(
            "already_committed",
            "The destination's migration is already committed",
            format!(
                "Migration {} committed; running it again does nothing.",
                m.migration_id
            ),
            "Pass --fresh to start a new migration into this destination.",
        ));
        return;
    }
    let from = resume_point(m);
    if let Some(oldest) = oldest {
        if (oldest.time, oldest.increment) > (from.time, from.increment) {
            out.push(Finding::blocker(
                "history_lost",
                "The source's oplog no longer holds the point this migration had reached",
                format!(
                    "The stored migration must replay the source's changes from {}, but the source's oplog now starts at {} ({} later): the changes in between are gone, so it can never catch up.",
                    at(from),
                    at(oldest),
                    human_duration(oldest.time.saturating_sub(from.time) as f64)
                ),
                "Start the migration afresh with --fresh, and make the source's oplog larger (replSetResizeOplog) so that it spans the whole copy.",
            ));
            return;
        }
    }
    out.push(Finding::info(
        "resume",
        format!("The migration stored on the destination will resume ({} phase)", phase(m.phase)),
        format!(
            "Migration {} started {} and has replayed the source's changes up to {}; it carries on from there.",
            m.migration_id,
            at(m.start_at),
            at(from)
        ),
        "Nothing to do; pass --fresh to discard it and start over instead.",
    ));
}

#[cfg(test)]
mod tests {
    use super::super::Severity::{self, *};
    use super::*;
    use crate::checkpoint::Store;

    fn ts(time: u32) -> Timestamp {
        Timestamp { time, increment: 1 }
    }

    fn stored(phase: StoredPhase) -> MigrationDoc {
        let mut m =
            Store::new_migration(ts(1000), vec!["shop".into()], vec![], "replset:s:1".into());
        m.phase = phase;
        m
    }

    fn facts(stored: Option<MigrationDoc>, existing: Vec<Existing>) -> Facts {
        Facts {
            stored: Ok(stored),
            stored_namespaces: vec!["shop.orders".into()],
            existing: Ok(existing),
        }
    }

    fn orders(documents: u64) -> Existing {
        Existing {
            ns: "shop.orders".into(),
            kind: NsKind::Collection,
            documents: Some(documents),
        }
    }

    fn ids(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|f| (f.id.as_str(), f.severity)).collect()
    }

    fn scope() -> Scope {
        Scope::new(&["shop"], &[] as &[&str]).unwrap()
    }

    #[test]
    fn existing_namespaces_block_unless_dropped() {
        let req = CheckRequest::default();
        let f = assess(
            &facts(None, vec![orders(3)]),
            &req,
            &scope(),
            "replset:s:1",
            None,
        );
        assert_eq!(ids(&f), vec![("destination_not_empty", Blocker)]);
        assert_eq!(f[0].namespace.as_deref(), Some("shop.orders"));
        assert!(f[0].detail.contains("about 3 documents"), "{}", f[0].detail);
        assert!(f[0].remedy.contains("--drop-existing"), "{}", f[0].remedy);
        let drop = CheckRequest {
            drop_existing: true,
            ..CheckRequest::default()
        };
        let f = assess(
            &facts(None, vec![orders(0)]),
            &drop,
            &scope(),
            "replset:s:1",
            None,
        );
        assert_eq!(ids(&f), vec![("destination_namespace_dropped", Warning)]);
        assert!(assess(&facts(None, vec![]), &req, &scope(), "x", None).is_empty());
    }

    #[test]
    fn a_stored_migration_resumes_when_it_matches() {
        let req = CheckRequest {
            include: vec!["shop".into()],
            ..CheckRequest::default()
        };
        let f = assess(
            &facts(Some(stored(StoredPhase::Copying)), vec![orders(3)]),
            &req,
            &scope(),
            "replset:s:1",
            Some(ts(900)),
        );
        assert_eq!(
            ids(&f),
            vec![("resume", Info)],
            "its own namespaces are no obstacle"
        );
        let f = assess(
            &facts(Some(stored(StoredPhase::Committed)), vec![]),
            &req,
            &scope(),
            "replset:s:1",
            Some(ts(900)),
        );
        assert_eq!(ids(&f), vec![("already_committed", Info)]);
    }

    #[test]
    fn a_stored_migration_with_another_scope_source_or_lost_history_blocks() {
        let req = CheckRequest::default();
        let all = Scope::all();
        let f = assess(
            &facts(Some(stored(StoredPhase::Applying)), vec![]),
            &req,
            &all,
            "replset:other:2",
            None,
        );
        assert_eq!(
            ids(&f),
            vec![("scope_mismatch", Blocker), ("source_mismatch", Blocker)]
        );

        // Copying: the stream replays from the start, now gone.
        let f = assess(
            &facts(Some(stored(StoredPhase::Copying)), vec![]),
            &req,
            &scope(),
            "replset:s:1",
            Some(ts(1001)),
        );
        assert_eq!(ids(&f), vec![("history_lost", Blocker)]);
        assert!(
            f[0].remedy.contains("--fresh") && f[0].remedy.contains("oplog"),
            "{}",
            f[0].remedy
        );

        // Applying: the saved token is what counts.
        let mut m = stored(StoredPhase::Applying);
        m.resume_token = Some(bson::doc! { "_data": "82000007D0000000012B022C0100296E04" });
        let f = assess(
            &facts(Some(m.clone()), vec![]),
            &req,
            &scope(),
            "replset:s:1",
            Some(ts(1500)),
        );
        assert_eq!(
            ids(&f),
            vec![("resume", Info)],
            "token at 2000 is still in an oplog from 1500"
        );
        let f = assess(
            &facts(Some(m), vec![]),
            &req,
            &scope(),
            "replset:s:1",
            Some(ts(2500)),
        );
        assert_eq!(ids(&f), vec![("history_lost", Blocker)]);

        // An oplog sync's saved position counts the same way.
        let mut m = stored(StoredPhase::Applying);
        m.oplog_position = Some(ts(2000));
        let f = assess(
            &facts(Some(m.clone()), vec![]),
            &req,
            &scope(),
            "replset:s:1",
            Some(ts(1500)),
        );
        assert_eq!(
            ids(&f),
            vec![("resume", Info)],
            "an oplog position at 2000 is still in an oplog from 1500"
        );
        let f = assess(
            &facts(Some(m), vec![]),
            &req,
            &scope(),
            "replset:s:1",
            Some(ts(2500)),
        );
        assert_eq!(ids(&f), vec![("history_lost", Blocker)]);
    }

    #[test]
    fn fresh_discards_the_stored_migration_and_what_it_created() {
        let req = CheckRequest {
            fresh: true,
            ..CheckRequest::default()
        };
        let other = Existing {
            ns: "shop.mine".into(),
            kind: NsKind::Collection,
            documents: Some(1),
        };
        let f = assess(
            &facts(Some(stored(StoredPhase::Applying)), vec![orders(3), other]),
            &req,
            &Scope::all(),
            "replset:other:2",
            None,
        );
        assert_eq!(
            ids(&f),
            vec![
                ("previous_migration_discarded", Warning),
                ("destination_not_empty", Blocker)
            ]
        );
        assert_eq!(
            f[1].namespace.as_deref(),
            Some("shop.mine"),
            "only what the old migration did not create"
        );
    }
}
