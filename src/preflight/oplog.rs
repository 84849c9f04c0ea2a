//! The oplog window: how far back the source's oplog reaches, against how
//! long the copy will take (data size divided by the stated throughput).
//! The sync replays the source's changes from the copy's start, whether
//! through a change stream or by tailing the oplog itself, so the oplog
//! must still hold that point when the copy ends.
//!
//! The copy's start falls out of the oplog once `maxSize` bytes have been
//! written after it, so the window is `maxSize / write rate`, whether the
//! oplog is full yet or not. The write rate is the last minute's, where
//! the oplog reaches back further than that, and the whole oplog's
//! otherwise: a source that was just bulk loaded (a restore, a seed) and
//! is quiet since has an oplog that spans seconds, yet keeps the copy's
//! start for as long as it stays quiet; judging it by the load's rate
//! refused migrations that were safe. `storage.oplogMinRetentionHours`,
//! when set, keeps entries longer.
//!
//! The reads work alike on every supported source. Measured on 4.4.2,
//! 5.0.4 and 6.0.5: `collStats` of `local.oplog.rs` reports `maxSize`,
//! `size` and `count` (only `max` differs: -1 on 4.4, 0 later, and it is
//! not read), `$collStats` with `storageStats` works, and the oplog is
//! read with read concern local, sorted by `$natural`, on all three.

use super::report::{human_bytes, human_duration, Finding};
use crate::cluster::Topology;
use crate::oplog::write_rate;
pub use crate::oplog::{gather, window_seconds, Facts};

/// The smallest oplog `replSetResizeOplog` accepts, in MB.
const MIN_OPLOG_MB: u64 = 990;

/// `resuming`: a stored migration will carry on, so no copy starts over
/// from scratch; whether its own start is still in the oplog is the
/// destination check's business (`history_lost`).
pub fn assess(
    facts: &Facts,
    topology: &Topology,
    data_bytes: u64,
    bytes_per_second: u64,
    resuming: bool,
) -> (Vec<Finding>, Option<f64>) {
    let copy = data_bytes as f64 / bytes_per_second.max(1) as f64;
    let rate = format!("{}/s", human_bytes(bytes_per_second));
    match facts {
        Facts::NotApplicable if *topology == Topology::Sharded => (
            vec![Finding::info(
                "oplog_not_checked",
                "The oplog windows of the source's shards were not checked",
                format!(
                    "Each shard keeps its own oplog, which mongos does not expose. The copy of {} is estimated at {} at {rate}, and every shard's oplog must reach back that far when it ends.",
                    human_bytes(data_bytes),
                    human_duration(copy)
                ),
                "On each shard's primary run rs.printReplicationInfo() and check that the log length is well above the copy estimate.",
            )],
            None,
        ),
        Facts::NotApplicable => (Vec::new(), None),
        Facts::Unreadable(e) => (
            vec![Finding::warning(
                "oplog_unreadable",
                "The source's oplog window could not be measured",
                format!("Reading local.oplog.rs failed: {e}. If the oplog is shorter than the copy ({} at {rate}), the migration fails after the copy and must start over.", human_duration(copy)),
                "Grant the source user the clusterMonitor role (or the read role on the local database), or check the window yourself with rs.printReplicationInfo().",
            )],
            None,
        ),
        Facts::Read {
            first,
            last,
            used_bytes,
            max_bytes,
            ..
        } => {
            let Some(window) = window_seconds(facts) else {
                return (Vec::new(), None);
            };
            let span = (last.time as f64 - first.time as f64).max(1.0);
            // What would hold twice the copy at the current write rate,
            // or the whole oplog's if that is higher: a size to suggest
            // must not count on a quiet minute lasting.
            let whole = *used_bytes as f64 / span;
            let per_second = write_rate(facts).unwrap_or(0.0).max(whole);
            let wanted_mb = ((per_second * copy * 2.0) / 1e6).ceil() as u64;
            let wanted_mb = wanted_mb.max(MIN_OPLOG_MB);
            let figures = format!(
                "The source's oplog holds {} of {} and reaches back {}, so it keeps about {} of history at the current write rate; copying {} at {rate} takes about {}.",
                human_bytes(*used_bytes),
                human_bytes(*max_bytes),
                human_duration(span),
                human_duration(window),
                human_bytes(data_bytes),
                human_duration(copy),
            );
            let remedy = format!(
                "Make the oplog larger on every member of the source, e.g. db.adminCommand({{replSetResizeOplog: 1, size: {wanted_mb}}}) (MB) for twice the copy time, or set storage.oplogMinRetentionHours; if the copy is faster than {rate}, say so with --copy-throughput (MiB/s)."
            );
            let mut out = Vec::new();
            if resuming {
                return (out, Some(window));
            }
            if copy >= window {
                out.push(Finding::blocker(
                    "oplog_window_too_short",
                    "The source's oplog is too short for the copy",
                    format!("{figures} The changes made during the copy would be gone from the oplog before the copy ends, so the migration could never catch up."),
                    remedy,
                ));
            } else if copy * 2.0 >= window {
                out.push(Finding::warning(
                    "oplog_window_tight",
                    "The source's oplog window is tight for the copy",
                    format!("{figures} A burst of writes during the copy, or a slower copy, would push its start out of the oplog and the migration would have to start over."),
                    remedy,
                ));
            }
            (out, Some(window))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Severity;
    use super::*;
    use bson::Timestamp;

    fn read(span: u32, used: u64, max: u64) -> Facts {
        read_recent(span, used, max, None)
    }

    fn read_recent(span: u32, used: u64, max: u64, recent_bytes: Option<u64>) -> Facts {
        Facts::Read {
            first: Timestamp {
                time: 1000,
                increment: 1,
            },
            last: Timestamp {
                time: 1000 + span,
                increment: 1,
            },
            used_bytes: used,
            max_bytes: max,
            min_retention_hours: 0.0,
            recent_bytes,
        }
    }

    const MB: u64 = 1024 * 1024;
    const RS: Topology = Topology::Standalone;

    fn rs() -> Topology {
        Topology::ReplicaSet { name: "s".into() }
    }

    #[test]
    fn a_full_oplog_reaches_back_its_span() {
        let f = read(3600, 990 * MB, 990 * MB);
        assert_eq!(window_seconds(&f), Some(3600.0));
        // 10 GiB at 10 MiB/s: 1024 s, under half the window: fine.
        let (out, w) = assess(&f, &rs(), 10 * 1024 * MB, 10 * MB, false);
        assert!(out.is_empty(), "{out:#?}");
        assert_eq!(w, Some(3600.0));
        // 20 GiB: 2048 s, over half: tight.
        let (out, _) = assess(&f, &rs(), 20 * 1024 * MB, 10 * MB, false);
        assert_eq!(
            (out[0].id.as_str(), out[0].severity),
            ("oplog_window_tight", Severity::Warning)
        );
        // 40 GiB: 4096 s, longer than the window: blocked.
        let (out, w) = assess(&f, &rs(), 40 * 1024 * MB, 10 * MB, true);
        assert!(
            out.is_empty(),
            "a resumed migration does not copy from scratch"
        );
        assert_eq!(w, Some(3600.0));
        let (out, _) = assess(&f, &rs(), 40 * 1024 * MB, 10 * MB, false);
        assert_eq!(
            (out[0].id.as_str(), out[0].severity),
            ("oplog_window_too_short", Severity::Blocker)
        );
        assert!(out[0].detail.contains("60 min"), "{}", out[0].detail);
        assert!(
            out[0].remedy.contains("replSetResizeOplog"),
            "{}",
            out[0].remedy
        );
    }

    #[test]
    fn a_filling_oplog_is_projected_to_its_full_size() {
        // A tenth full after 10 minutes: it will hold about 100 minutes.
        let f = read(600, 99 * MB, 990 * MB);
        assert_eq!(window_seconds(&f), Some(6000.0));
        // A retention floor wins when it is longer.
        let Facts::Read {
            first,
            last,
            used_bytes,
            max_bytes,
            ..
        } = f
        else {
            unreachable!()
        };
        let kept = Facts::Read {
            first,
            last,
            used_bytes,
            max_bytes,
            min_retention_hours: 24.0,
            recent_bytes: None,
        };
        assert_eq!(window_seconds(&kept), Some(86400.0));
    }

    #[test]
    fn a_quiet_minute_after_a_bulk_load_is_the_rate_that_counts() {
        // 990 MB loaded in 30 s, then two quiet minutes: the oplog spans
        // 150 s, but the last minute wrote 60 kB (no-ops): its start stays
        // for days at that rate.
        let loaded = read_recent(150, 990 * MB, 990 * MB, Some(60_000));
        let w = window_seconds(&loaded).unwrap();
        assert!(w > 86_400.0, "{w}");
        let (out, _) = assess(&loaded, &rs(), 100 * 1024 * MB, 20 * MB, false);
        assert!(out.is_empty(), "{out:#?}");
        // A minute as busy as the load: the window is what the load left.
        let busy = read_recent(150, 990 * MB, 990 * MB, Some(990 * MB / 150 * 60));
        let w = window_seconds(&busy).unwrap();
        assert!((w - 150.0).abs() < 1.0, "{w}");
        let (out, _) = assess(&busy, &rs(), 100 * 1024 * MB, 20 * MB, false);
        assert_eq!(out[0].id, "oplog_window_too_short");
        // A busier last minute than the oplog's average shortens it.
        let spike = read_recent(3600, 990 * MB, 990 * MB, Some(990 * MB / 10));
        assert!((window_seconds(&spike).unwrap() - 600.0).abs() < 1.0);
    }

    #[test]
    fn the_suggested_size_holds_twice_the_copy() {
        // 100 MB written in 100 s: 1 MB/s. A copy of 10,000 s wants 20,000 MB.
        let f = read(100, 100_000_000, 100_000_000);
        let (out, _) = assess(&f, &rs(), 10_000 * 1_000_000, 1_000_000, false);
        assert!(out[0].remedy.contains("size: 20000"), "{}", out[0].remedy);
        // Never below the server's minimum.
        let (out, _) = assess(&f, &rs(), 150 * 1_000_000, 1_000_000, false);
        assert!(out[0].remedy.contains("size: 990"), "{}", out[0].remedy);
    }

    #[test]
    fn shards_and_unreadable_oplogs_are_reported_not_guessed() {
        let (out, w) = assess(&Facts::NotApplicable, &Topology::Sharded, MB, MB, false);
        assert_eq!(out[0].id, "oplog_not_checked");
        assert_eq!(w, None);
        let (out, _) = assess(&Facts::NotApplicable, &RS, MB, MB, false);
        assert!(
            out.is_empty(),
            "a standalone is the topology check's business"
        );
        let (out, _) = assess(
            &Facts::Unreadable("not authorized".into()),
            &rs(),
            MB,
            MB,
            false,
        );
        assert_eq!(
            (out[0].id.as_str(), out[0].severity),
            ("oplog_unreadable", Severity::Warning)
        );
    }
}
