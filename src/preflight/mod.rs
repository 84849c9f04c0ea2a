//! The preflight compatibility check: everything that would make a
//! migration fail or lose data, found before anything is written.
//!
//! [`run`] reads both clusters (never writes to either) and returns a
//! [`Report`]: the totals in scope, for ETAs, and a list of [`Finding`]s,
//! each a blocker, a warning or an info with a plain explanation and the
//! fix. `Migration::check`, `mongoferry check` and `mongoferry sync` all
//! use it; a migration refuses to start while the report holds a blocker.
//!
//! Each group of checks lives in its own file and is split in two: an
//! async `gather` that reads what it needs from the servers, and a pure
//! `assess` that turns those facts into findings. The decisions are
//! therefore unit-tested with any figures, and the reads on real `mongod`.
//! Gathering runs concurrently: the checks in parallel, and the per
//! collection probes of the source in parallel too (see [`inventory`]).
//!
//! **Invariant:** nothing here writes to either cluster, and no finding
//! carries a secret (connection strings are shown redacted, driver errors
//! reduced to their message).
//!
//! # Finding ids
//! Stable snake_case codes that clients match on: `source_standalone`,
//! `destination_standalone`, `same_cluster`, `destination_sharded`,
//! `source_sharded_destination_not`, `version_unparsed`,
//! `source_version_unsupported`, `destination_version_unsupported`,
//! `version_downgrade`, `minor_version_downgrade`, `version_upgrade`,
//! `fcv_unreadable`, `fcv_changing`, `destination_fcv_too_low`,
//! `source_fcv_blocks_write_blocking`, `fcv_older_than_source`,
//! `event_source`, `change_stream_unsupported`, `oplog_sharded_source`,
//! `sharded_source_too_old`, `older_source`,
//! `not_authenticated`, `access_control_off`, `privileges_unreadable`,
//! `source_privileges_missing`, `destination_privileges_missing`,
//! `source_privileges_limited`, `destination_privileges_limited`,
//! `oplog_window_too_short`, `oplog_window_tight`, `oplog_unreadable`,
//! `oplog_not_checked`, `destination_not_empty`, `destination_namespace_dropped`,
//! `destination_unreadable`, `scope_mismatch`, `source_mismatch`,
//! `history_lost`, `resume`, `already_committed`, `previous_migration_discarded`,
//! `insufficient_space`, `low_space`, `space_unknown`, `time_series_collection`,
//! `queryable_encryption`, `clustered_ttl`, `capped_collection`,
//! `view_source_excluded`, `admin_collections_skipped`, `inventory_failed`,
//! `conflicting_indexes`, `unsupported_on_destination`, `prepare_unique_not_kept`,
//! `ttl_index`, `unique_index`, `large_document`, `large_document_probe_sampled`,
//! `probe_failed`, `dollar_field_names`, `dotted_field_names`,
//! `duplicate_field_names`, `shard_keys`, `source_balancer_running`,
//! `destination_balancer_running`, `sharding_unreadable`.

mod collections;
mod destination;
mod events;
mod indexes;
pub mod inventory;
mod oplog;
pub mod privileges;
pub mod report;
mod request;
mod reverse;
mod sharding;
mod space;
mod topology;
mod versions;

use std::time::Instant;

use crate::cluster::{Cluster, Topology};
use crate::error::{Error, Result, Role};
use crate::scope::Scope;

pub use report::{
    blocked_message, blocked_remedy, count, human_bytes, human_duration, list, Finding, Report,
    ServerSummary, Severity, Totals,
};
pub use request::{CheckRequest, DEFAULT_COPY_BYTES_PER_SECOND, DEFAULT_SAMPLE_SIZE};

/// Connects to both clusters and checks them. Connection failures are
/// errors (the check could not run); everything else is a finding.
pub async fn check(
    source_uri: &str,
    destination_uri: &str,
    request: CheckRequest,
) -> Result<Report> {
    // Patterns first: bad input fails before any connection is made.
    Scope::new(&request.include, &request.exclude)?;
    let (src, dest) = tokio::try_join!(
        Cluster::connect(Role::Source, source_uri),
        Cluster::connect(Role::Destination, destination_uri),
    )?;
    let report = run(&src, &dest, &request).await;
    tokio::join!(src.close(), dest.close());
    report
}

/// Checks a migration between two connected clusters. Reads only.
pub async fn run(
    source: &Cluster,
    destination: &Cluster,
    request: &CheckRequest,
) -> Result<Report> {
    let started = Instant::now();
    let scope = Scope::new(&request.include, &request.exclude)?;
    let throughput = request.copy_bytes_per_second.max(1);
    let (
        inv,
        src_fcv,
        dest_fcv,
        src_auth,
        dest_auth,
        oplog_facts,
        dest_facts,
        space_facts,
        shard_facts,
    ) = tokio::join!(
        inventory::gather(source, &scope, request.sample_size),
        versions::read_fcv(source),
        versions::read_fcv(destination),
        privileges::gather(source),
        privileges::gather(destination),
        oplog::gather(source),
        destination::gather(destination, &scope),
        space::gather(destination),
        sharding::gather(source, destination, &scope),
    );

    // What the sync will read on the source: decides what is checked.
    let event_facts = events::Facts {
        choice: request.event_source,
        source_version: source.version.clone(),
        source_topology: source.topology.clone(),
        timeseries: inv
            .namespaces
            .iter()
            .filter(|n| n.ns.kind == crate::catalog::NsKind::Timeseries)
            .map(|n| n.ns.ns.to_string())
            .collect(),
    };
    let event_source = events::resolve(&event_facts);
    let totals = inv.totals();
    let estimated_copy_seconds = totals.data_bytes as f64 / throughput as f64;
    let mut findings = Vec::new();
    findings.extend(topology::assess(source, destination));
    findings.extend(versions::assess(&versions::Facts {
        source_version: source.version.clone(),
        destination_version: destination.version.clone(),
        source_fcv: src_fcv.clone(),
        destination_fcv: dest_fcv.clone(),
        block_source_writes: request.block_source_writes,
    }));
    findings.extend(events::assess(&event_facts));
    if request.reversible {
        findings.extend(reverse::assess(&reverse::Facts {
            source_version: &source.version,
            source_fcv: versions::settled(&src_fcv),
            source_sharded: source.is_sharded(),
            destination_version: &destination.version,
            destination_fcv: versions::settled(&dest_fcv),
            destination_sharded: destination.is_sharded(),
        }));
    }
    let needs = privileges::Needs {
        source_dbs: inv.databases(),
        source_sharded: source.is_sharded(),
        destination_sharded: destination.is_sharded() && source.is_sharded(),
        // Before 6.0 there is no write blocking to need a privilege for:
        // source_fcv_blocks_write_blocking says so.
        block_source_writes: (request.block_source_writes || request.reversible)
            && versions::can_block_writes(&source.version),
        reversible: request.reversible,
        discard_stored: request.fresh && matches!(dest_facts.stored, Ok(Some(_))),
    };
    findings.extend(privileges::assess(
        Role::Source,
        &src_auth,
        &needs,
        event_source,
    ));
    findings.extend(privileges::assess(
        Role::Destination,
        &dest_auth,
        &needs,
        event_source,
    ));
    let resuming = !request.fresh && matches!(dest_facts.stored, Ok(Some(_)));
    let (oplog_findings, window) = oplog::assess(
        &oplog_facts,
        &source.topology,
        totals.data_bytes,
        throughput,
        resuming,
    );
    findings.extend(oplog_findings);
    findings.extend(destination::assess(
        &dest_facts,
        request,
        &scope,
        &source.identity,
        oplog_facts.oldest(),
    ));
    findings.extend(space::assess(
        &space_facts,
        &totals,
        request.keep_free_bytes,
    ));
    findings.extend(inv.failure_findings());
    findings.extend(collections::assess(&inv, &scope));
    let dest_features = versions::feature_level(&destination.version, versions::settled(&dest_fcv));
    findings.extend(indexes::assess(&inv, dest_features));
    findings.extend(sharding::assess(&shard_facts, &destination.topology));

    // Blockers first; within a severity, the order the checks ran in.
    findings.sort_by_key(|f| f.severity);
    let report = Report {
        source: summary(source, &src_fcv),
        destination: summary(destination, &dest_fcv),
        totals,
        findings,
        copy_bytes_per_second: throughput,
        estimated_copy_seconds,
        oplog_window_seconds: window,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    tracing::info!(
        blockers = report.blockers().count(),
        warnings = report.warnings().count(),
        elapsed_ms = report.elapsed_ms,
        collections = report.totals.collections,
        "preflight check done"
    );
    Ok(report)
}

fn summary(c: &Cluster, fcv: &std::result::Result<Option<String>, String>) -> ServerSummary {
    let replica_set = match &c.topology {
        Topology::ReplicaSet { name } => Some(name.clone()),
        Topology::Standalone | Topology::Sharded => None,
    };
    ServerSummary {
        uri: c.display_uri.clone(),
        version: c.version.clone(),
        feature_compatibility_version: versions::settled(fcv).map(str::to_string),
        topology: c.topology.kind().to_string(),
        replica_set,
    }
}

impl From<Report> for Error {
    fn from(report: Report) -> Error {
        Error::PreflightBlocked {
            report: Box::new(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(findings: Vec<Finding>) -> Report {
        let s = ServerSummary {
            uri: "mongodb://h/".into(),
            version: "6.0.5".into(),
            feature_compatibility_version: Some("6.0".into()),
            topology: "replicaSet".into(),
            replica_set: Some("rs".into()),
        };
        Report {
            source: s.clone(),
            destination: s,
            totals: Totals::default(),
            findings,
            copy_bytes_per_second: 1,
            estimated_copy_seconds: 0.0,
            oplog_window_seconds: None,
            elapsed_ms: 0,
        }
    }

    #[test]
    fn findings_serialize_in_the_documented_shape() {
        let f = Finding::blocker("destination_not_empty", "T", "D", "R").on("a.b");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": "destination_not_empty", "severity": "blocker", "namespace": "a.b", "title": "T", "detail": "D", "remedy": "R"})
        );
        let v = serde_json::to_value(Finding::info("x", "T", "D", "R")).unwrap();
        assert!(v.get("namespace").is_none(), "{v}");
        let t = serde_json::to_value(Totals::default()).unwrap();
        for key in [
            "databases",
            "collections",
            "documents",
            "dataBytes",
            "indexBytes",
        ] {
            assert!(t.get(key).is_some(), "{key} in {t}");
        }
        let back: CheckRequest =
            serde_json::from_value(serde_json::json!({"include": ["a"]})).unwrap();
        assert_eq!(back.copy_bytes_per_second, DEFAULT_COPY_BYTES_PER_SECOND);
        assert_eq!(back.sample_size, DEFAULT_SAMPLE_SIZE);
    }

    #[test]
    fn the_blocked_error_names_every_blocker_in_one_sentence() {
        let one = report(vec![
            Finding::blocker(
                "a",
                "The destination already holds shop.orders",
                "d",
                "Drop it.",
            ),
            Finding::warning("w", "Something else", "d", "r"),
        ]);
        let e = Error::from(one);
        assert_eq!(e.code(), "preflight_blocked");
        assert_eq!(
            e.to_string(),
            "The migration cannot start: The destination already holds shop.orders."
        );
        assert_eq!(e.remedy(), "Drop it.");
        let two = report(vec![
            Finding::blocker("a", "First.", "d", "r1"),
            Finding::blocker("b", "Second", "d", "r2"),
        ]);
        let e = Error::from(two);
        assert_eq!(
            e.to_string(),
            "The migration cannot start (2 blockers): First; Second."
        );
        assert!(e.remedy().contains("mongoferry check"), "{}", e.remedy());
        let many = report(
            (0..10)
                .map(|i| Finding::blocker("x", format!("B{i}"), "d", "r"))
                .collect(),
        );
        assert_eq!(
            Error::from(many).to_string(),
            "The migration cannot start (10 blockers): B0; B1; B2; and 7 more."
        );
    }

    #[test]
    fn people_read_sizes_and_durations() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(human_duration(12.0), "12 s");
        assert_eq!(human_duration(600.0), "10 min");
        assert_eq!(human_duration(3.0 * 3600.0), "3.0 h");
        assert_eq!(human_duration(3.0 * 86400.0), "3.0 days");
        let items: Vec<String> = (1..=5).map(|i| i.to_string()).collect();
        assert_eq!(list(&items, 3), "1, 2, 3 and 2 more");
        assert_eq!(list(&items[..2], 3), "1, 2");
        assert_eq!(count(1, "collection"), "1 collection");
        assert_eq!(count(3, "collection"), "3 collections");
    }
}
