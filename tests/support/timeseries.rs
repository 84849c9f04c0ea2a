//! Helpers of the time-series tests (`tests/timeseries.rs`): replica sets
//! whose TTL monitors run every second, time-series collections of several
//! shapes, a write load of measurements (and, on 6.0, deletes and updates
//! by meta field), and the comparison of two clusters' time-series
//! collections: buckets byte for byte, options, indexes, and what a query
//! on the time-series view returns.

use std::time::Duration;

use bson::{doc, Bson, DateTime, Document, RawDocumentBuf};
use futures_util::TryStreamExt;
use mongodb::Client;
use mongoferry::sandbox::{MongodVersion, Pair, ReplicaSet, SandboxOptions};
use tokio_util::sync::CancellationToken;

use super::{client, eventually, indexes, non_system_dbs};

/// The database every time-series collection here lives in.
pub const DB: &str = "metrics";
/// The TTL of `EXPIRING`: a day.
pub const TTL_SECONDS: i64 = 86_400;
const DAY_MS: i64 = 86_400_000;
/// Old measurements are dated three days back: past the TTL (a day) plus
/// any bucket span (an hour for `seconds`), so a TTL monitor that runs
/// with the TTL in force deletes their buckets on its next pass.
const OLD_MS: i64 = 3 * DAY_MS;
/// Meta values (sensors, hosts, kinds) the measurements spread over.
pub const SENSORS: i64 = 24;
/// The meta value of the burst that fills whole buckets (compressed on 6.0).
const BURST_SENSOR: i64 = 999;

/// One time-series collection: its name and its `timeseries` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub name: &'static str,
    pub time_field: &'static str,
    pub meta_field: Option<&'static str>,
    pub granularity: &'static str,
    pub expire_after_seconds: Option<i64>,
}

/// A meta field that is a document (`meta.sensor`, `meta.site`), seconds,
/// indexed on a meta sub-field and on the time field.
pub const WEATHER: Shape = Shape {
    name: "weather",
    time_field: "ts",
    meta_field: Some("meta"),
    granularity: "seconds",
    expire_after_seconds: None,
};
/// A meta field that is a string, minutes (changed to hours mid-sync).
pub const CPU: Shape = Shape {
    name: "cpu",
    time_field: "t",
    meta_field: Some("host"),
    granularity: "minutes",
    expire_after_seconds: None,
};
/// No meta field, hours.
pub const EVENTS: Shape = Shape {
    name: "events",
    time_field: "at",
    meta_field: None,
    granularity: "hours",
    expire_after_seconds: None,
};
/// A TTL of a day, with old (expired) and new measurements.
pub const EXPIRING: Shape = Shape {
    name: "expiring",
    time_field: "ts",
    meta_field: Some("meta"),
    granularity: "seconds",
    expire_after_seconds: Some(TTL_SECONDS),
};
/// Dropped mid-sync.
pub const DOOMED: Shape = Shape {
    name: "doomed",
    time_field: "ts",
    meta_field: Some("meta"),
    granularity: "minutes",
    expire_after_seconds: None,
};
/// Created mid-sync.
pub const FRESH: Shape = Shape {
    name: "fresh",
    time_field: "ts",
    meta_field: Some("meta"),
    granularity: "hours",
    expire_after_seconds: None,
};

impl Shape {
    pub fn buckets(&self) -> String {
        format!("system.buckets.{}", self.name)
    }

    /// What measurements are grouped by in `by_meta`.
    fn group_key(&self) -> &'static str {
        match self.meta_field {
            Some("meta") => "$meta.sensor",
            Some("host") => "$host",
            _ => "$kind",
        }
    }

    /// One measurement at `at` of meta value `sensor`; `n` numbers it.
    pub fn measurement(&self, at: DateTime, sensor: i64, n: i64) -> Document {
        match self.meta_field {
            Some("meta") => doc! {
                self.time_field: at,
                "meta": { "sensor": sensor, "site": format!("site-{}", sensor % 3) },
                "temp": n % 50,
                "n": n,
            },
            Some(meta) => doc! {
                self.time_field: at,
                meta: format!("h{sensor:03}"),
                "load": n % 100,
                "n": n,
            },
            None => doc! {
                self.time_field: at,
                "kind": format!("k{}", sensor % 4),
                "v": n % 7,
                "n": n,
            },
        }
    }

    /// The filter of measurements older than the TTL, on the buckets
    /// collection: buckets whose newest measurement is two days old.
    fn old_buckets_filter(&self) -> Document {
        let cutoff = DateTime::from_millis(DateTime::now().timestamp_millis() - 2 * DAY_MS);
        doc! { format!("control.max.{}", self.time_field): { "$lt": cutoff } }
    }
}

/// Replica sets of `version` (the source) and 6.0 (the destination) whose
/// TTL monitors run every second instead of every minute, so that a TTL
/// in force deletes within a second or two. The source's monitor starts
/// off: what the test dates in the past stays until it turns it on.
pub async fn ts_pair(version: MongodVersion) -> (Pair, Client, Client) {
    let options = |version| SandboxOptions {
        version,
        extra_args: vec!["--setParameter".into(), "ttlMonitorSleepSecs=1".into()],
        ..SandboxOptions::default()
    };
    let (source, destination) = tokio::join!(
        ReplicaSet::start_opts("source", options(version)),
        ReplicaSet::start_opts("destination", options(MongodVersion::V6_0))
    );
    let pair = Pair {
        source: source.unwrap_or_else(|e| panic!("{e} {}", e.remedy())),
        destination: destination.unwrap_or_else(|e| panic!("{e} {}", e.remedy())),
    };
    let src = client(&pair.source).await;
    let dest = client(&pair.destination).await;
    set_ttl_monitor(&src, false).await;
    (pair, src, dest)
}

pub async fn set_ttl_monitor(c: &Client, enabled: bool) {
    c.database("admin")
        .run_command(doc! { "setParameter": 1, "ttlMonitorEnabled": enabled })
        .await
        .expect("set ttlMonitorEnabled");
}

/// How many passes the TTL monitor has made since the server started.
pub async fn ttl_passes(c: &Client) -> i64 {
    let status = c
        .database("admin")
        .run_command(doc! { "serverStatus": 1 })
        .await
        .expect("serverStatus");
    status
        .get_document("metrics")
        .and_then(|m| m.get_document("ttl"))
        .ok()
        .and_then(|t| match t.get("passes") {
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no metrics.ttl.passes in serverStatus: {status}"))
}

/// Waits until the TTL monitor of `c` has made `n` more passes: whatever
/// it would delete with the TTLs in force now, it has deleted.
pub async fn wait_ttl_passes(c: &Client, n: i64, timeout: Duration) {
    let first = ttl_passes(c).await;
    eventually(
        &format!("{n} passes of the TTL monitor"),
        timeout,
        || async {
            let now = ttl_passes(c).await;
            (now >= first + n, format!("passes {first} then {now}"))
        },
    )
    .await;
}

/// Creates `shape` on `c`.
pub async fn create(c: &Client, shape: Shape) {
    let mut timeseries = doc! { "timeField": shape.time_field, "granularity": shape.granularity };
    if let Some(meta) = shape.meta_field {
        timeseries.insert("metaField", meta);
    }
    let mut cmd = doc! { "create": shape.name, "timeseries": timeseries };
    if let Some(ttl) = shape.expire_after_seconds {
        cmd.insert("expireAfterSeconds", ttl);
    }
    run(c, cmd).await;
}

pub async fn run(c: &Client, cmd: Document) -> Document {
    c.database(DB)
        .run_command(cmd.clone())
        .await
        .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
}

/// Inserts measurements `n0..n0 + count`, spread over the sensors, dated
/// from `base_ms` one millisecond apart.
pub async fn insert(c: &Client, shape: Shape, n0: i64, count: i64, base_ms: i64) {
    let docs: Vec<Document> = (n0..n0 + count)
        .map(|n| {
            let at = DateTime::from_millis(base_ms + (n - n0));
            shape.measurement(at, n % SENSORS, n)
        })
        .collect();
    for chunk in docs.chunks(5000) {
        c.database(DB)
            .collection::<Document>(shape.name)
            .insert_many(chunk.to_vec())
            .await
            .unwrap_or_else(|e| panic!("insert into {}: {e}", shape.name));
    }
}

/// `count` measurements of one meta value at once: whole buckets of 1000
/// are closed, and a 6.0 server compresses them (a full replacement of
/// the bucket in the oplog).
pub async fn insert_burst(c: &Client, shape: Shape, n0: i64, count: i64) {
    let base = DateTime::now().timestamp_millis();
    let docs: Vec<Document> = (n0..n0 + count)
        .map(|n| shape.measurement(DateTime::from_millis(base + (n - n0)), BURST_SENSOR, n))
        .collect();
    c.database(DB)
        .collection::<Document>(shape.name)
        .insert_many(docs)
        .await
        .unwrap_or_else(|e| panic!("burst into {}: {e}", shape.name));
}

pub fn now_ms() -> i64 {
    DateTime::now().timestamp_millis()
}

pub fn old_ms() -> i64 {
    now_ms() - OLD_MS
}

/// The source before the migration: every shape but `FRESH` (created
/// mid-sync), with secondary indexes on a meta sub-field and on the time
/// field, measurements of the last minutes and, in `EXPIRING`, expired
/// ones.
pub async fn seed_source(c: &Client) {
    for shape in [WEATHER, CPU, EVENTS, EXPIRING, DOOMED] {
        create(c, shape).await;
    }
    run(
        c,
        doc! { "createIndexes": WEATHER.name, "indexes": [
            { "key": { "meta.sensor": 1 }, "name": "sensor_1" },
            { "key": { "ts": -1 }, "name": "ts_-1" },
        ] },
    )
    .await;
    run(
        c,
        doc! { "createIndexes": CPU.name, "indexes": [
            { "key": { "host": 1, "t": 1 }, "name": "host_1_t_1" },
        ] },
    )
    .await;
    run(
        c,
        doc! { "createIndexes": EVENTS.name, "indexes": [
            { "key": { "at": 1 }, "name": "at_1" },
        ] },
    )
    .await;
    run(
        c,
        doc! { "createIndexes": EXPIRING.name, "indexes": [
            { "key": { "meta.sensor": 1, "ts": 1 }, "name": "sensor_1_ts_1" },
        ] },
    )
    .await;
    let recent = now_ms() - 10 * 60 * 1000;
    insert(c, WEATHER, 0, 12_000, recent).await;
    insert(c, CPU, 0, 6_000, recent).await;
    insert(c, EVENTS, 0, 4_000, recent).await;
    insert(c, DOOMED, 0, 2_000, recent).await;
    insert(c, EXPIRING, 0, 3_000, recent).await;
    insert(c, EXPIRING, 1_000_000, 2_000, old_ms()).await;
}

/// Buckets of `shape` on `c` whose measurements are all past the TTL.
pub async fn old_buckets(c: &Client, shape: Shape) -> u64 {
    c.database(DB)
        .collection::<Document>(&shape.buckets())
        .count_documents(shape.old_buckets_filter())
        .await
        .expect("count old buckets")
}

/// What a load did.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadStats {
    pub rounds: u64,
    pub inserted: u64,
    pub deleted: u64,
    pub updated: u64,
}

/// A write load on the source: measurements dated now into every shape
/// of `shapes`, and with `by_meta` (6.0: 5.0 refuses both), deletes and
/// updates of `WEATHER`'s measurements by meta field.
pub struct Load {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<LoadStats>,
}

impl Load {
    pub fn start(c: &Client, shapes: Vec<Shape>, by_meta: bool, n0: i64) -> Load {
        let stop = CancellationToken::new();
        let c = c.clone();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut stats = LoadStats::default();
            let mut n = n0;
            while !token.is_cancelled() {
                let round = stats.rounds as i64;
                for shape in &shapes {
                    let at = DateTime::now();
                    let docs: Vec<Document> = (0..20)
                        .map(|i| shape.measurement(at, (round * 7 + i) % SENSORS, n + i))
                        .collect();
                    n += 20;
                    c.database(DB)
                        .collection::<Document>(shape.name)
                        .insert_many(docs)
                        .await
                        .unwrap_or_else(|e| panic!("the load's insert into {}: {e}", shape.name));
                    stats.inserted += 20;
                }
                if by_meta {
                    let weather = c.database(DB).collection::<Document>(WEATHER.name);
                    let sensor = (round / 4) % SENSORS;
                    match round % 4 {
                        1 => {
                            let r = weather
                                .update_many(
                                    doc! { "meta.sensor": sensor },
                                    doc! { "$set": { "meta.site": format!("moved-{round}") } },
                                )
                                .await
                                .unwrap_or_else(|e| panic!("the load's update by meta: {e}"));
                            stats.updated += r.modified_count;
                        }
                        3 => {
                            let r = weather
                                .delete_many(doc! { "meta.sensor": sensor })
                                .await
                                .unwrap_or_else(|e| panic!("the load's delete by meta: {e}"));
                            stats.deleted += r.deleted_count;
                        }
                        _ => {}
                    }
                }
                stats.rounds += 1;
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(40)) => {}
                }
            }
            stats
        });
        Load { stop, task }
    }

    pub async fn stop(self) -> LoadStats {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the load stops within 30 s")
            .expect("the load does not panic")
    }
}

/// Every collection of `DB`, `system.*` included (buckets and views), sorted.
pub async fn collection_names(c: &Client) -> Vec<String> {
    let mut names = c
        .database(DB)
        .list_collection_names()
        .await
        .expect("listCollections");
    names.sort();
    names
}

/// The type and options of `DB.name` as `listCollections` shows them,
/// without the collection's UUID.
pub async fn spec(c: &Client, name: &str) -> Option<(String, Document)> {
    let specs: Vec<Document> = c
        .database(DB)
        .run_cursor_command(doc! { "listCollections": 1, "filter": { "name": name } })
        .await
        .expect("listCollections")
        .try_collect()
        .await
        .expect("listCollections");
    let s = specs.into_iter().next()?;
    let mut options = s.get_document("options").cloned().unwrap_or_default();
    options.remove("uuid");
    normalise_numbers(&mut options);
    Some((s.get_str("type").unwrap_or_default().to_string(), options))
}

/// Whole numbers as `i64`, whatever type a server stored them in (a TTL
/// given as a long may come back as an int).
fn normalise_numbers(d: &mut Document) {
    for (_, v) in d.iter_mut() {
        match v {
            Bson::Int32(n) => *v = Bson::Int64(i64::from(*n)),
            Bson::Document(inner) => normalise_numbers(inner),
            _ => {}
        }
    }
}

/// The options of the time-series collection `shape` on `c`.
pub async fn options(c: &Client, shape: Shape) -> Document {
    let (kind, options) = spec(c, shape.name)
        .await
        .unwrap_or_else(|| panic!("no collection {DB}.{}", shape.name));
    assert_eq!(
        kind, "timeseries",
        "{DB}.{} is a time-series collection",
        shape.name
    );
    options
}

/// The buckets of `shape`, raw, in `_id` order.
pub async fn raw_buckets(c: &Client, shape: Shape) -> Vec<RawDocumentBuf> {
    c.database(DB)
        .collection::<RawDocumentBuf>(&shape.buckets())
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .expect("find buckets")
        .try_collect()
        .await
        .expect("read buckets")
}

/// The measurements of `shape` through its time-series view, by `_id`.
pub async fn measurements(c: &Client, shape: Shape) -> Vec<Document> {
    c.database(DB)
        .collection::<Document>(shape.name)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .expect("find measurements")
        .try_collect()
        .await
        .expect("read measurements")
}

/// Measurements counted and summed per meta value, through the view.
pub async fn by_meta(c: &Client, shape: Shape) -> Vec<Document> {
    c.database(DB)
        .collection::<Document>(shape.name)
        .aggregate(vec![
            doc! { "$group": {
                "_id": shape.group_key(),
                "count": { "$sum": 1 },
                "sum": { "$sum": "$n" },
                "first": { "$min": format!("${}", shape.time_field) },
                "last": { "$max": format!("${}", shape.time_field) },
            } },
            doc! { "$sort": { "_id": 1 } },
        ])
        .await
        .expect("aggregate by meta")
        .try_collect()
        .await
        .expect("aggregate by meta")
}

/// Buckets of 6.0's compressed format (`control.version` 2) of `shape`.
pub async fn compressed_buckets(c: &Client, shape: Shape) -> u64 {
    c.database(DB)
        .collection::<Document>(&shape.buckets())
        .count_documents(doc! { "control.version": 2 })
        .await
        .expect("count compressed buckets")
}

/// Asserts the destination's time-series collections equal the source's:
/// the same databases and collections of `DB`; for each shape the same
/// options and indexes (on the view and on its buckets), the same buckets
/// byte for byte, the same measurements through the view and the same
/// aggregation by meta field. Returns the measurements of each shape.
pub async fn assert_same_time_series(src: &Client, dest: &Client, shapes: &[Shape]) -> Vec<usize> {
    let user_dbs = |mut v: Vec<String>| {
        v.retain(|d| d != "__mongoferry");
        v
    };
    assert_eq!(
        user_dbs(non_system_dbs(src).await),
        user_dbs(non_system_dbs(dest).await),
        "databases differ"
    );
    assert_eq!(
        collection_names(src).await,
        collection_names(dest).await,
        "the collections of {DB} differ"
    );
    let mut counts = Vec::new();
    for &shape in shapes {
        let name = shape.name;
        assert_eq!(
            options(src, shape).await,
            options(dest, shape).await,
            "{DB}.{name}: options differ"
        );
        let buckets = shape.buckets();
        assert_eq!(
            spec(src, &buckets).await,
            spec(dest, &buckets).await,
            "{DB}.{buckets}: options differ"
        );
        assert_eq!(
            indexes(src, DB, name).await,
            indexes(dest, DB, name).await,
            "{DB}.{name}: indexes differ"
        );
        assert_eq!(
            indexes(src, DB, &buckets).await,
            indexes(dest, DB, &buckets).await,
            "{DB}.{buckets}: indexes differ"
        );
        let (s, d) = tokio::join!(raw_buckets(src, shape), raw_buckets(dest, shape));
        assert!(!s.is_empty(), "{DB}.{buckets} holds buckets");
        let id = |b: &RawDocumentBuf| b.get("_id").ok().flatten().map(|v| format!("{v:?}"));
        if let Some((a, b)) = s
            .iter()
            .zip(d.iter())
            .find(|(a, b)| a.as_bytes() != b.as_bytes())
        {
            panic!(
                "{DB}.{buckets}: buckets differ: source {:?}\ndestination {:?}",
                Document::try_from(a.as_ref()).ok(),
                Document::try_from(b.as_ref()).ok()
            );
        }
        assert_eq!(
            s.len(),
            d.len(),
            "{DB}.{buckets}: bucket counts differ; source's last {:?}, destination's last {:?}",
            s.last().and_then(id),
            d.last().and_then(id)
        );
        let (s, d) = tokio::join!(measurements(src, shape), measurements(dest, shape));
        assert_eq!(s.len(), d.len(), "{DB}.{name}: measurement counts differ");
        if let Some((a, b)) = s.iter().zip(d.iter()).find(|(a, b)| a != b) {
            panic!("{DB}.{name}: measurements differ: source {a}\ndestination {b}");
        }
        counts.push(s.len());
        assert_eq!(
            by_meta(src, shape).await,
            by_meta(dest, shape).await,
            "{DB}.{name}: the aggregation by meta field differs"
        );
    }
    counts
}
