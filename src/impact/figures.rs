//! The figures of the source's health, computed from what it reports:
//! `serverStatus` (cumulative counters, so a figure over an interval is a
//! difference of two), `replSetGetStatus`, and Mongoferry's own timed
//! point reads. Pure: documents in, numbers out.
//!
//! Every field is read where it is, and left out where it is not: a figure
//! an older or newer server lacks is absent, never an error.

use bson::{Bson, Document};

use crate::progress::Latency;

/// What one `serverStatus` says about load, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// `opLatencies.writes`: microseconds spent and operations, since the
    /// server started.
    pub write_micros: Option<f64>,
    pub write_ops: Option<f64>,
    /// `globalLock.currentQueue.total`: operations waiting for a lock.
    pub queued: Option<u64>,
    /// Storage read tickets in use and in all: under
    /// `wiredTiger.concurrentTransactions` up to 6.0, `queues.execution`
    /// from 7.0.
    pub read_tickets_out: Option<u64>,
    pub read_tickets_total: Option<u64>,
    /// WiredTiger's cache, in bytes.
    pub cache_used: Option<f64>,
    pub cache_dirty: Option<f64>,
    pub cache_max: Option<f64>,
}

/// A number at a dotted path, whatever its BSON numeric type.
fn number(doc: &Document, path: &[&str]) -> Option<f64> {
    let (last, parents) = path.split_last()?;
    let mut at = doc;
    for key in parents {
        at = at.get_document(key).ok()?;
    }
    match at.get(last)? {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) if n.is_finite() => Some(*n),
        _ => None,
    }
}

fn count(doc: &Document, path: &[&str]) -> Option<u64> {
    number(doc, path).filter(|n| *n >= 0.0).map(|n| n as u64)
}

impl Status {
    pub fn parse(doc: &Document) -> Status {
        let tickets = |field: &str| {
            count(
                doc,
                &["wiredTiger", "concurrentTransactions", "read", field],
            )
            .or_else(|| count(doc, &["queues", "execution", "read", field]))
        };
        let cache = |field: &str| number(doc, &["wiredTiger", "cache", field]);
        Status {
            write_micros: number(doc, &["opLatencies", "writes", "latency"]),
            write_ops: number(doc, &["opLatencies", "writes", "ops"]),
            queued: count(doc, &["globalLock", "currentQueue", "total"]),
            read_tickets_out: tickets("out"),
            read_tickets_total: tickets("totalTickets"),
            cache_used: cache("bytes currently in the cache"),
            cache_dirty: cache("tracked dirty bytes in the cache"),
            cache_max: cache("maximum bytes configured"),
        }
    }

    /// The cache's fill and dirt, in percent of its size.
    pub fn cache_percent(&self) -> (Option<f64>, Option<f64>) {
        let of = |part: Option<f64>| match (part, self.cache_max) {
            (Some(p), Some(max)) if max > 0.0 => Some(100.0 * p / max),
            _ => None,
        };
        (of(self.cache_used), of(self.cache_dirty))
    }
}

/// The mean write latency between two statuses, in milliseconds; `None`
/// when fewer than `min_ops` writes ran between them (too few to judge),
/// or the counters went back (a restart or a failover to another member).
pub fn write_latency_ms(earlier: &Status, later: &Status, min_ops: f64) -> Option<f64> {
    let ops = later.write_ops? - earlier.write_ops?;
    let micros = later.write_micros? - earlier.write_micros?;
    if ops < min_ops.max(1.0) || micros < 0.0 {
        return None;
    }
    Some(micros / ops / 1000.0)
}

/// p50, p90 and p99 of latencies in milliseconds (nearest rank).
pub fn percentiles(samples: &[f64]) -> Option<Latency> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    };
    Some(Latency {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
    })
}

/// How much larger `now` is than `idle`, in percent; 0 when smaller.
pub fn increase_percent(now: f64, idle: f64) -> Option<f64> {
    (idle > 0.0 && now.is_finite()).then(|| (100.0 * (now / idle - 1.0)).max(0.0))
}

/// The furthest secondary's lag behind the primary, in seconds, and its
/// name, from `replSetGetStatus`; `None` without a primary or a secondary.
pub fn secondary_lag(status: &Document) -> Option<(f64, String)> {
    let members = status.get_array("members").ok()?;
    let optime = |m: &Document| {
        m.get_datetime("optimeDate")
            .ok()
            .map(|d| d.timestamp_millis())
    };
    let state = |m: &Document| m.get_str("stateStr").unwrap_or_default().to_string();
    let members: Vec<&Document> = members.iter().filter_map(Bson::as_document).collect();
    let primary = members
        .iter()
        .find(|m| state(m) == "PRIMARY")
        .and_then(|m| optime(m))?;
    members
        .iter()
        .filter(|m| state(m) == "SECONDARY")
        .filter_map(|m| {
            let behind = (primary - optime(m)?).max(0) as f64 / 1000.0;
            Some((behind, m.get_str("name").unwrap_or("?").to_string()))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The share of the oplog's headroom the rest of the copy may take before
/// the user is warned: the sync must still find the copy's start.
pub const HEADROOM_SHARE: f64 = 0.75;

/// The copy rate, in bytes a second, below which the rest of the copy
/// (`bytes_left`) would take more than [`HEADROOM_SHARE`] of the time the
/// oplog still keeps the migration's start (`headroom`, seconds); `None`
/// when `rate` is enough.
pub fn oplog_needs(bytes_left: f64, rate: f64, headroom: f64) -> Option<f64> {
    if bytes_left <= 0.0 {
        return None;
    }
    let needed = bytes_left / (HEADROOM_SHARE * headroom.max(1.0));
    (rate < needed).then_some(needed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, DateTime};

    #[test]
    fn a_6_0_status_is_read_and_a_7_0_one_finds_its_tickets_elsewhere() {
        let six = doc! {
            "opLatencies": { "writes": { "latency": 5_000_i64, "ops": 10_i64 } },
            "globalLock": { "currentQueue": { "total": 3, "readers": 2, "writers": 1 } },
            "wiredTiger": {
                "concurrentTransactions": { "read": { "out": 2, "available": 126, "totalTickets": 128 } },
                "cache": {
                    "bytes currently in the cache": 800.0,
                    "tracked dirty bytes in the cache": 50_i64,
                    "maximum bytes configured": 1000_i64,
                },
            },
        };
        let s = Status::parse(&six);
        assert_eq!((s.write_micros, s.write_ops), (Some(5_000.0), Some(10.0)));
        assert_eq!(s.queued, Some(3));
        assert_eq!(
            (s.read_tickets_out, s.read_tickets_total),
            (Some(2), Some(128))
        );
        assert_eq!(s.cache_percent(), (Some(80.0), Some(5.0)));

        let seven = doc! { "queues": { "execution": { "read": { "out": 1, "totalTickets": 8 } } } };
        let s = Status::parse(&seven);
        assert_eq!(
            (s.read_tickets_out, s.read_tickets_total),
            (Some(1), Some(8))
        );
        assert_eq!(s.write_ops, None);
        assert_eq!(s.cache_percent(), (None, None));
    }

    #[test]
    fn write_latency_is_the_mean_over_the_interval_and_skips_resets() {
        let at = |micros: f64, ops: f64| Status {
            write_micros: Some(micros),
            write_ops: Some(ops),
            ..Status::default()
        };
        // 100 writes in 150 ms: 1.5 ms each.
        assert_eq!(
            write_latency_ms(&at(1_000.0, 10.0), &at(151_000.0, 110.0), 20.0),
            Some(1.5)
        );
        assert_eq!(write_latency_ms(&at(0.0, 0.0), &at(100.0, 5.0), 20.0), None);
        // A restart resets the counters.
        assert_eq!(
            write_latency_ms(&at(9e9, 1e6), &at(100.0, 50.0), 20.0),
            None
        );
        assert_eq!(
            write_latency_ms(&Status::default(), &at(1.0, 99.0), 1.0),
            None
        );
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = percentiles(&samples).unwrap();
        assert_eq!((l.p50, l.p90, l.p99), (50.0, 90.0, 99.0));
        let one = percentiles(&[0.4]).unwrap();
        assert_eq!((one.p50, one.p99), (0.4, 0.4));
        assert_eq!(percentiles(&[]), None);
        assert_eq!(increase_percent(1.5, 1.0), Some(50.0));
        assert_eq!(increase_percent(0.5, 1.0), Some(0.0));
        assert_eq!(increase_percent(1.0, 0.0), None);
    }

    #[test]
    fn the_copy_is_weighed_against_the_oplog_headroom() {
        // 100 units left in 100 s: at 2/s it takes 50 s, a half; fine.
        assert_eq!(oplog_needs(100.0, 2.0, 100.0), None);
        // At 1/s it takes all of it: it needs 100 / 75.
        let needed = oplog_needs(100.0, 1.0, 100.0).unwrap();
        assert!((needed - 100.0 / 75.0).abs() < 1e-9);
        assert_eq!(oplog_needs(0.0, 0.0, 1.0), None);
    }

    #[test]
    fn the_furthest_secondary_is_named() {
        let t = |ms: i64| DateTime::from_millis(ms);
        let status = doc! { "members": [
            { "name": "a:1", "stateStr": "PRIMARY", "optimeDate": t(100_000) },
            { "name": "b:2", "stateStr": "SECONDARY", "optimeDate": t(98_000) },
            { "name": "c:3", "stateStr": "SECONDARY", "optimeDate": t(86_000) },
            { "name": "d:4", "stateStr": "ARBITER" },
        ]};
        assert_eq!(secondary_lag(&status), Some((14.0, "c:3".to_string())));
        let alone = doc! { "members": [
            { "name": "a:1", "stateStr": "PRIMARY", "optimeDate": t(1) },
        ]};
        assert_eq!(secondary_lag(&alone), None);
    }
}
