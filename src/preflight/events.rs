//! The event source: where the sync will read the source's changes
//! (`--event-source auto|change-stream|oplog`), resolved against the
//! source's version and topology.
//!
//! Mongoferry follows the source's DDL (created collections and indexes,
//! renames, collMod) and knows collections by UUID. Change streams give
//! both only with `showExpandedEvents`, which MongoDB 6.0 introduced.
//! Measured on mongod 4.4.2 and 5.0.4: `showExpandedEvents` is refused
//! (code 40415), and the default stream reports `rename`, `drop` and
//! `dropDatabase` only, without `collectionUUID`. So a 4.4 or 5.0 replica
//! set is followed by tailing `local.oplog.rs` instead (`auto` does so
//! below 6.0). A sharded cluster keeps one oplog per shard, out of reach
//! through mongos: the oplog source is for replica sets only, and a
//! sharded source needs 6.0 change streams.
//!
//! The `event_source` info is given when the sync departs from the
//! long-standing default, a change stream on 6.0 or newer: when it reads
//! the oplog, and when the version could not be read and `auto` had to
//! guess.
//!
//! Pure: the choice is the request's, the version and topology were
//! learned when the source was connected.

use super::report::Finding;
use super::versions::{Release, Version, MIN_SOURCE_VERSION, WRITE_BLOCKING_VERSION};
use crate::cluster::Topology;
use crate::context::{EventSourceChoice, SourceFacts};
use crate::progress::EventSource;

/// The first release whose change streams report DDL and collection UUIDs
/// (`showExpandedEvents`).
pub const EXPANDED_EVENTS_VERSION: Version = Version::new(6, 0);

/// What the event source checks look at.
#[derive(Debug, Clone)]
pub struct Facts {
    pub choice: EventSourceChoice,
    /// The source's `buildInfo.version`.
    pub source_version: String,
    pub source_topology: Topology,
    /// The time-series collections in scope.
    pub timeseries: Vec<String>,
}

/// The event source the sync will read for this choice and source.
pub fn resolve(f: &Facts) -> EventSource {
    f.choice.resolve(&SourceFacts {
        version: f.source_version.clone(),
        sharded: f.source_topology == Topology::Sharded,
        timeseries: !f.timeseries.is_empty(),
    })
}

/// How the user's choice is written on the command line.
fn flag(choice: EventSourceChoice) -> &'static str {
    match choice {
        EventSourceChoice::Auto => "--event-source auto",
        EventSourceChoice::ChangeStream => "--event-source change-stream",
        EventSourceChoice::Oplog => "--event-source oplog",
    }
}

pub fn assess(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let src = Release::parse(&f.source_version);
    if src.is_some_and(|r| r.line < MIN_SOURCE_VERSION) {
        // source_version_unsupported says all there is to say.
        return out;
    }
    // `None` when the version is unreadable (version_unparsed says so).
    let old = src.map(|r| r.line < EXPANDED_EVENTS_VERSION);
    let resolved = resolve(f);
    match &f.source_topology {
        // No oplog, so no event source at all: source_standalone blocks.
        Topology::Standalone => {}
        Topology::Sharded => {
            if let (Some(true), Some(src)) = (old, src) {
                out.push(sharded_too_old(src));
                return out;
            }
            if resolved == EventSource::Oplog {
                out.push(oplog_sharded(f.choice));
                return out;
            }
            out.extend(f.timeseries.iter().map(|ns| timeseries_sharded(ns)));
            out.extend(reads(f, resolved, src));
        }
        Topology::ReplicaSet { .. } => match (f.choice, old, src) {
            (EventSourceChoice::ChangeStream, Some(true), Some(src)) => {
                out.push(change_stream_unsupported(src));
            }
            _ if !f.timeseries.is_empty() && resolved == EventSource::ChangeStream => {
                out.extend(
                    f.timeseries
                        .iter()
                        .map(|ns| timeseries_needs_oplog(f.choice, ns)),
                );
            }
            _ => out.extend(reads(f, resolved, src)),
        },
    }
    if let (Some(true), Some(src)) = (old, src) {
        out.push(older_source(src));
    }
    out
}

/// Change streams report no writes to the buckets of a time-series
/// collection; the oplog does.
fn timeseries_needs_oplog(choice: EventSourceChoice, ns: &str) -> Finding {
    Finding::blocker(
        "time_series_needs_oplog",
        format!("Change streams cannot follow the time-series collection {ns}"),
        format!("{} was asked, but change streams do not report the writes to a time-series collection's buckets (system.buckets.*), where its measurements are stored; only the source's oplog carries them, so the destination would stop receiving new measurements after the copy.", flag(choice)),
        format!("Use --event-source auto (the default) or oplog, which tail the source's oplog; or exclude it with --exclude {ns} and move it with mongodump and mongorestore."),
    )
    .on(ns)
}

/// The buckets of a sharded source's time-series collections are written
/// on its shards, whose oplogs Mongoferry does not read.
fn timeseries_sharded(ns: &str) -> Finding {
    Finding::blocker(
        "time_series_sharded_source",
        format!("The time-series collection {ns} cannot be followed on a sharded source"),
        "A time-series collection's measurements are followed through the oplog, since change streams do not report the writes to its buckets, and a sharded cluster keeps one oplog per shard, out of reach through mongos.",
        format!("Exclude it with --exclude {ns} and move it with mongodump and mongorestore during a short write pause."),
    )
    .on(ns)
}

fn change_stream_unsupported(src: Release) -> Finding {
    let min = EXPANDED_EVENTS_VERSION;
    Finding::blocker(
        "change_stream_unsupported",
        format!("Change streams cannot follow a MongoDB {src} source"),
        format!("--event-source change-stream was asked, but MongoDB {src} change streams refuse showExpandedEvents: they report no created collections, created indexes or collMod, and carry no collection UUIDs, so the destination would miss the source's DDL. Change streams that report them need MongoDB {min}."),
        format!("Use --event-source oplog, or auto (the default), which tails the oplog of a source older than {min}."),
    )
}

fn oplog_sharded(choice: EventSourceChoice) -> Finding {
    let min = EXPANDED_EVENTS_VERSION;
    Finding::blocker(
        "oplog_sharded_source",
        "The oplog event source cannot follow a sharded source",
        format!("{} reads the oplog, but a sharded cluster keeps one oplog per shard, out of reach through mongos, and following DDL across shards needs the config servers' view; Mongoferry tails the oplog of a single replica set only.", flag(choice)),
        format!("Use --event-source change-stream or auto: a sharded source of MongoDB {min} or newer is migrated with change streams through mongos. Upgrade an older sharded source to {min} first."),
    )
}

fn sharded_too_old(src: Release) -> Finding {
    let min = EXPANDED_EVENTS_VERSION;
    Finding::blocker(
        "sharded_source_too_old",
        format!("The source is a sharded cluster of MongoDB {src}, older than {min}"),
        format!("A sharded source is followed with change streams through mongos, and before MongoDB {min} they report no created collections, created indexes or collMod and no collection UUIDs. Following its DDL through the oplog instead would need one oplog per shard and the config servers' view, which Mongoferry does not read."),
        format!("Upgrade the sharded cluster to MongoDB {min} or newer, then check again; or migrate it with mongodump and mongorestore during a downtime."),
    )
}

/// The `event_source` info: which source the sync reads, and why; none
/// for a change stream on a source known to be 6.0 or newer.
fn reads(f: &Facts, resolved: EventSource, src: Option<Release>) -> Option<Finding> {
    let min = EXPANDED_EVENTS_VERSION;
    let (title, detail, remedy) = match (resolved, src) {
        (EventSource::Oplog, Some(src)) if src.line < min => (
            "The sync reads the source's oplog",
            format!("MongoDB {src} change streams report no DDL (created collections and indexes, collMod) and no collection UUIDs, so the sync tails local.oplog.rs instead ({} chose it).", flag(f.choice)),
            "Nothing to do: the source user needs find on local.oplog.rs, which any source_privileges_missing finding names.".to_string(),
        ),
        (EventSource::Oplog, _) if f.choice == EventSourceChoice::Auto => (
            "The sync reads the source's oplog",
            format!("The scope holds time-series collections, and change streams do not report the writes to their buckets (system.buckets.*), so the sync tails local.oplog.rs instead ({} chose it).", flag(f.choice)),
            "Nothing to do: the source user needs find on local.oplog.rs, which any source_privileges_missing finding names.".to_string(),
        ),
        (EventSource::Oplog, _) => (
            "The sync reads the source's oplog",
            format!("{} was asked: the sync tails local.oplog.rs on the source's replica set instead of opening a change stream.", flag(f.choice)),
            format!("Nothing to do: the source user needs find on local.oplog.rs, which any source_privileges_missing finding names. --event-source auto would use change streams on a source of MongoDB {min} or newer."),
        ),
        (EventSource::ChangeStream, Some(_)) => return None,
        (EventSource::ChangeStream, None) => (
            "The sync reads the source's change stream",
            format!("The source's version '{}' could not be read, so {} chose change streams, which report DDL and collection UUIDs from MongoDB {min} only.", f.source_version, flag(f.choice)),
            format!("If the source is older than MongoDB {min}, use --event-source oplog."),
        ),
    };
    Some(Finding::info("event_source", title, detail, remedy))
}

fn older_source(src: Release) -> Finding {
    let blocking = WRITE_BLOCKING_VERSION;
    Finding::warning(
        "older_source",
        format!("The source runs MongoDB {src}, older than {}", EXPANDED_EVENTS_VERSION),
        format!("Mongoferry migrates it, with differences you will notice: the commit cannot block the source's writes (--block-source-writes uses setUserWriteBlockMode, new in MongoDB {blocking}), so they must be stopped by hand before it; and the sync tails its oplog, so the source must be a replica set (a standalone keeps no oplog) and its user needs find on local.oplog.rs."),
        format!("Plan to stop the application's writes to the source yourself before the commit, and commit without --block-source-writes; or upgrade the source to MongoDB {blocking} first."),
    )
}

#[cfg(test)]
mod tests {
    use super::super::Severity::{self, *};
    use super::*;

    fn rs() -> Topology {
        Topology::ReplicaSet { name: "rs".into() }
    }

    fn facts(choice: EventSourceChoice, version: &str, topology: Topology) -> Facts {
        Facts {
            choice,
            source_version: version.into(),
            source_topology: topology,
            timeseries: Vec::new(),
        }
    }

    fn resolve(choice: EventSourceChoice, version: &str) -> EventSource {
        super::resolve(&facts(choice, version, rs()))
    }

    fn ids(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|f| (f.id.as_str(), f.severity)).collect()
    }

    use EventSourceChoice::{Auto, ChangeStream, Oplog};

    #[test]
    fn auto_reads_the_oplog_below_6_0_and_change_streams_from_it() {
        assert_eq!(resolve(Auto, "4.4.2"), EventSource::Oplog);
        assert_eq!(resolve(Auto, "5.0.4"), EventSource::Oplog);
        assert_eq!(resolve(Auto, "6.0.5"), EventSource::ChangeStream);
        assert_eq!(resolve(Auto, "7.0.2"), EventSource::ChangeStream);
        assert_eq!(resolve(ChangeStream, "4.4.2"), EventSource::ChangeStream);
        assert_eq!(resolve(Oplog, "6.0.5"), EventSource::Oplog);
    }

    #[test]
    fn time_series_collections_are_followed_through_the_oplog_of_a_replica_set() {
        let with_ts = |choice, version: &str, topology| Facts {
            timeseries: vec!["m.metrics".to_string()],
            ..facts(choice, version, topology)
        };
        assert_eq!(
            super::resolve(&with_ts(Auto, "6.0.5", rs())),
            EventSource::Oplog
        );
        assert_eq!(
            super::resolve(&with_ts(Auto, "5.0.4", rs())),
            EventSource::Oplog
        );
        assert_eq!(
            super::resolve(&with_ts(Auto, "6.0.5", Topology::Sharded)),
            EventSource::ChangeStream
        );
        // auto says why it reads the oplog of a 6.0 source.
        let f = assess(&with_ts(Auto, "6.0.5", rs()));
        assert_eq!(ids(&f), vec![("event_source", Severity::Info)]);
        assert!(f[0].detail.contains("time-series"), "{}", f[0].detail);
        // An explicit change stream is refused, with the way out.
        let f = assess(&with_ts(ChangeStream, "6.0.5", rs()));
        assert_eq!(
            ids(&f),
            vec![("time_series_needs_oplog", Severity::Blocker)]
        );
        assert!(
            f[0].remedy.contains("--event-source auto"),
            "{}",
            f[0].remedy
        );
        assert!(assess(&with_ts(Oplog, "6.0.5", rs()))
            .iter()
            .all(|f| f.severity != Severity::Blocker));
        // A sharded source's buckets are out of reach.
        let f = assess(&with_ts(Auto, "6.0.5", Topology::Sharded));
        assert_eq!(
            ids(&f),
            vec![("time_series_sharded_source", Severity::Blocker)]
        );
        let f = assess(&with_ts(Oplog, "6.0.5", Topology::Sharded));
        assert_eq!(ids(&f), vec![("oplog_sharded_source", Severity::Blocker)]);
    }

    #[test]
    fn a_replica_set_source_says_which_it_reads_and_why() {
        let f = assess(&facts(Auto, "4.4.2", rs()));
        assert_eq!(
            ids(&f),
            vec![("event_source", Info), ("older_source", Warning)]
        );
        assert_eq!(f[0].title, "The sync reads the source's oplog");
        assert!(
            f[0].detail.contains(
                "MongoDB 4.4.2 change streams report no DDL (created collections and indexes, collMod) and no collection UUIDs"
            ) && f[0].detail.contains("--event-source auto chose it"),
            "{}",
            f[0].detail
        );
        let f = assess(&facts(Oplog, "5.0.4", rs()));
        assert_eq!(
            ids(&f),
            vec![("event_source", Info), ("older_source", Warning)]
        );
        assert!(f[0].detail.contains("--event-source oplog chose it"));

        // The default, a change stream on 6.0 and newer, goes unsaid.
        assert!(assess(&facts(Auto, "6.0.5", rs())).is_empty());
        assert!(assess(&facts(ChangeStream, "7.0.2", rs())).is_empty());

        // The oplog of a 6.0 source, when asked: no older_source.
        let f = assess(&facts(Oplog, "6.0.5", rs()));
        assert_eq!(ids(&f), vec![("event_source", Info)]);
        assert_eq!(f[0].title, "The sync reads the source's oplog");
        assert!(f[0].detail.contains("--event-source oplog was asked"));

        // An unreadable version: auto falls back to change streams, said.
        let f = assess(&facts(Auto, "x", rs()));
        assert_eq!(ids(&f), vec![("event_source", Info)]);
        assert_eq!(f[0].title, "The sync reads the source's change stream");
        assert!(
            f[0].detail.contains("'x' could not be read"),
            "{}",
            f[0].detail
        );
        assert!(
            f[0].remedy.contains("--event-source oplog"),
            "{}",
            f[0].remedy
        );
    }

    #[test]
    fn change_streams_are_refused_below_6_0() {
        for v in ["4.4.2", "5.0.4"] {
            let f = assess(&facts(ChangeStream, v, rs()));
            assert_eq!(
                ids(&f),
                vec![
                    ("change_stream_unsupported", Blocker),
                    ("older_source", Warning)
                ],
                "{v}"
            );
            assert_eq!(
                f[0].title,
                format!("Change streams cannot follow a MongoDB {v} source")
            );
            assert!(
                f[0].detail.contains("no collection UUIDs") && f[0].detail.contains("DDL"),
                "{}",
                f[0].detail
            );
            assert!(
                f[0].remedy.contains("--event-source oplog") && f[0].remedy.contains("auto"),
                "{}",
                f[0].remedy
            );
        }
        // From 6.0 they are what auto picks anyway.
        assert!(assess(&facts(ChangeStream, "6.0.0", rs())).is_empty());
    }

    #[test]
    fn a_sharded_source_needs_6_0_change_streams() {
        // The oplog of a sharded source, at any version it is asked.
        for v in ["6.0.5", "8.0.1", "x"] {
            let f = assess(&facts(Oplog, v, Topology::Sharded));
            assert_eq!(ids(&f), vec![("oplog_sharded_source", Blocker)], "{v}");
            assert!(
                f[0].detail.contains("one oplog per shard")
                    && f[0].detail.contains("config servers"),
                "{}",
                f[0].detail
            );
            assert!(
                f[0].remedy.contains("change streams") && f[0].remedy.contains("Upgrade"),
                "{}",
                f[0].remedy
            );
        }
        // Older than 6.0: one plain blocker, whatever the choice.
        for choice in [Auto, ChangeStream, Oplog] {
            let f = assess(&facts(choice, "5.0.4", Topology::Sharded));
            assert_eq!(
                ids(&f),
                vec![("sharded_source_too_old", Blocker)],
                "{choice:?}"
            );
            assert_eq!(
                f[0].title,
                "The source is a sharded cluster of MongoDB 5.0.4, older than 6.0"
            );
            assert!(
                f[0].detail.contains("one oplog per shard"),
                "{}",
                f[0].detail
            );
        }
        // 6.0 and newer through mongos: fine.
        for choice in [Auto, ChangeStream] {
            assert!(assess(&facts(choice, "6.0.5", Topology::Sharded)).is_empty());
        }
    }

    #[test]
    fn unsupported_and_standalone_sources_are_left_to_their_own_findings() {
        // source_version_unsupported covers a 4.2 source.
        for choice in [Auto, ChangeStream, Oplog] {
            assert!(assess(&facts(choice, "4.2.8", rs())).is_empty());
            assert!(assess(&facts(choice, "4.2.8", Topology::Sharded)).is_empty());
        }
        // source_standalone covers the missing oplog; an old one is still
        // told what it will miss.
        assert!(assess(&facts(Auto, "6.0.5", Topology::Standalone)).is_empty());
        let f = assess(&facts(Auto, "4.4.2", Topology::Standalone));
        assert_eq!(ids(&f), vec![("older_source", Warning)]);
        assert!(
            f[0].detail.contains("setUserWriteBlockMode")
                && f[0].detail.contains("a standalone keeps no oplog"),
            "{}",
            f[0].detail
        );
        assert!(
            f[0].remedy.contains("without --block-source-writes"),
            "{}",
            f[0].remedy
        );
    }
}
