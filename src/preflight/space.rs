//! Space: what the copy will occupy on the destination (the source's
//! on-disk size of the documents and indexes in scope, plus the growth of
//! the destination's own oplog, which records every copied insert until
//! it is full) against the free space of the destination's disk
//! (`dbStats` `fsTotalSize` and `fsUsedSize`).
//!
//! The estimate assumes the destination compresses like the source (the
//! WiredTiger default, snappy, on both); the disk read is the one of the
//! member that answered, normally the primary.

use bson::doc;

use super::report::{human_bytes, Finding, Totals};
use crate::catalog::{self, number};
use crate::cluster::{Cluster, Topology};
use crate::driver_error::redacted_message as reason;
use crate::scope::{Namespace, METADATA_DB};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `(fsTotalSize, fsUsedSize)` of the destination's data disk.
    pub fs: Result<(u64, u64), String>,
    /// `(size, maxSize)` of the destination's oplog, when readable.
    pub oplog: Option<(u64, u64)>,
}

pub async fn gather(dest: &Cluster) -> Facts {
    let (fs, oplog) = tokio::join!(disk(dest), oplog(dest));
    Facts { fs, oplog }
}

/// `dbStats` reports the disk only for a database that exists; one of
/// these always does on a replica set or through mongos.
async fn disk(dest: &Cluster) -> Result<(u64, u64), String> {
    let mut last = "no database reported its disk".to_string();
    for db in ["admin", "config", "local", METADATA_DB] {
        match dest
            .client
            .database(db)
            .run_command(doc! { "dbStats": 1 })
            .await
        {
            Ok(r) => {
                let total = number(r.get("fsTotalSize"));
                if total > 0 {
                    return Ok((total, number(r.get("fsUsedSize"))));
                }
            }
            Err(e) => last = reason(&e),
        }
    }
    Err(last)
}

async fn oplog(dest: &Cluster) -> Option<(u64, u64)> {
    if !matches!(dest.topology, Topology::ReplicaSet { .. }) {
        return None;
    }
    let st = catalog::storage_stats(dest, &Namespace::new("local", "oplog.rs"))
        .await
        .ok()?;
    (st.reports > 0).then_some((st.size, st.max_size))
}

pub fn assess(facts: &Facts, totals: &Totals, keep_free: Option<u64>) -> Vec<Finding> {
    let oplog_growth = facts
        .oplog
        .map(|(used, max)| max.saturating_sub(used).min(totals.data_bytes))
        .unwrap_or(0);
    let needed = totals.storage_bytes + totals.index_bytes + oplog_growth;
    if needed == 0 {
        return Vec::new();
    }
    let (total, used) = match &facts.fs {
        Ok(fs) => *fs,
        Err(e) => {
            return vec![Finding::info(
                "space_unknown",
                "The destination's free disk space could not be read",
                format!("dbStats did not report the disk ({e}). The copy needs about {} on the destination.", human_bytes(needed)),
                "Check the free space of the destination's data disks yourself.",
            )]
        }
    };
    let free = total.saturating_sub(used);
    let keep = keep_free.unwrap_or(total / 10);
    let figures = format!(
        "The copy needs about {} on the destination ({} of documents and {} of indexes as the source stores them, plus {} of growth of the destination's oplog); its disk has {} free of {}.",
        human_bytes(needed),
        human_bytes(totals.storage_bytes),
        human_bytes(totals.index_bytes),
        human_bytes(oplog_growth),
        human_bytes(free),
        human_bytes(total),
    );
    if needed > free {
        vec![Finding::blocker(
            "insufficient_space",
            "The destination's disk is too small for the copy",
            format!("{figures} The copy would fill the disk and the destination would stop accepting writes."),
            format!("Free or add at least {} on every data-bearing member of the destination, or migrate fewer namespaces with --exclude.", human_bytes(needed - free + keep)),
        )]
    } else if free - needed < keep {
        vec![Finding::warning(
            "low_space",
            "The destination's disk will be nearly full after the copy",
            format!("{figures} Less than {} would be left for the sync, indexes built later and normal growth.", human_bytes(keep)),
            format!("Add about {} of disk to the destination's members before starting.", human_bytes(keep - (free - needed))),
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Severity;
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;

    fn totals(storage: u64, index: u64) -> Totals {
        Totals {
            data_bytes: storage * 3,
            storage_bytes: storage,
            index_bytes: index,
            ..Totals::default()
        }
    }

    #[test]
    fn the_copy_must_fit_with_room_to_spare() {
        let disk = |free: u64| Facts {
            fs: Ok((100 * GIB, 100 * GIB - free)),
            oplog: None,
        };
        // 30 GiB into 60 GiB free: fine (the default keeps 10 GiB).
        assert!(assess(&disk(60 * GIB), &totals(25 * GIB, 5 * GIB), None).is_empty());
        // 30 GiB into 35 GiB free: 5 GiB left, under the 10 GiB kept.
        let f = assess(&disk(35 * GIB), &totals(25 * GIB, 5 * GIB), None);
        assert_eq!(
            (f[0].id.as_str(), f[0].severity),
            ("low_space", Severity::Warning)
        );
        assert!(f[0].remedy.contains("5.0 GiB"), "{}", f[0].remedy);
        // 30 GiB into 20 GiB free: blocked.
        let f = assess(&disk(20 * GIB), &totals(25 * GIB, 5 * GIB), None);
        assert_eq!(
            (f[0].id.as_str(), f[0].severity),
            ("insufficient_space", Severity::Blocker)
        );
        assert!(
            f[0].detail.contains("30.0 GiB") && f[0].detail.contains("20.0 GiB free"),
            "{}",
            f[0].detail
        );
        // A stated reserve replaces the default.
        assert!(assess(&disk(35 * GIB), &totals(25 * GIB, 5 * GIB), Some(GIB)).is_empty());
    }

    #[test]
    fn the_destination_oplog_growth_is_counted_up_to_its_maximum() {
        let f = Facts {
            fs: Ok((100 * GIB, 50 * GIB)),
            oplog: Some((GIB, 11 * GIB)),
        };
        // 10 GiB stored (30 GiB of data): the oplog grows by its 10 GiB room.
        let out = assess(&f, &totals(10 * GIB, 0), Some(0));
        assert!(out.is_empty());
        let out = assess(&f, &totals(10 * GIB, 0), Some(31 * GIB));
        assert_eq!(out[0].id, "low_space");
        assert!(
            out[0].detail.contains("plus 10.0 GiB of growth"),
            "{}",
            out[0].detail
        );
    }

    #[test]
    fn nothing_to_copy_needs_no_space_and_an_unread_disk_is_said() {
        let f = Facts {
            fs: Err("not authorized".into()),
            oplog: None,
        };
        assert!(assess(&f, &totals(0, 0), None).is_empty());
        let out = assess(&f, &totals(GIB, 0), None);
        assert_eq!(
            (out[0].id.as_str(), out[0].severity),
            ("space_unknown", Severity::Info)
        );
    }
}
