//! Reading a replica set's oplog (`local.oplog.rs`): how far back it
//! reaches, its last write, one entry by `ts`, and a tailable cursor from a
//! position.
//!
//! What the entries mean is [`crate::events::oplog`]'s to say; following
//! them is the apply path's. This module only reads, and only what a
//! member with read access to the `local` database may read.
//!
//! Reads of the oplog use the majority read concern, like every other read
//! of the source: an entry a failover could roll back is never returned,
//! so it is never applied.

use std::time::Duration;

use bson::{doc, rawdoc, Document, RawDocumentBuf, Timestamp};
use futures_util::TryStreamExt;
use mongodb::options::{CollectionOptions, CursorType, ReadConcern};
use mongodb::raw_batch_cursor::RawBatchCursor;

use crate::catalog;
use crate::cluster::{Cluster, Topology};
use crate::driver_error::redacted_message as reason;
use crate::error::{Error, MongoContext, Result};
use crate::scope::Namespace;

const DB: &str = "local";
const COLLECTION: &str = "oplog.rs";

/// The time of the oldest oplog entry; `None` where it cannot be read (a
/// `mongos`, or a user without read access to `local`).
pub async fn oldest_entry(src: &Cluster) -> Option<Timestamp> {
    // `local` does not take the majority read concern the source client
    // uses for finds of this kind; the oldest entry is committed anyway.
    let options = mongodb::options::CollectionOptions::builder()
        .read_concern(ReadConcern::local())
        .build();
    src.client
        .database(DB)
        .collection_with_options::<Document>(COLLECTION, options)
        .find_one(doc! {})
        .sort(doc! { "$natural": 1 })
        .projection(doc! { "ts": 1 })
        .await
        .ok()
        .flatten()
        .and_then(|d| d.get_timestamp("ts").ok())
}

/// The `ts` of the last entry the member has written (`hello`'s
/// `lastWrite.opTime`): what a sync that has applied it has caught up to.
pub async fn last_write(src: &Cluster) -> Result<Timestamp> {
    let hello = src
        .client
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .ctx(src.role, "read its last write (hello)")?;
    hello
        .get_document("lastWrite")
        .and_then(|w| w.get_document("opTime"))
        .and_then(|o| o.get_timestamp("ts"))
        .map_err(|_| Error::NotReplicaSet { role: src.role })
}

/// The entry whose `ts` is `ts`, if the oplog still holds it.
pub async fn entry_at(src: &Cluster, ts: Timestamp) -> Result<Option<RawDocumentBuf>> {
    // A range on `ts`, not an equality: the server turns a `ts` range on
    // the oplog into a bounded scan of its timestamp-keyed records.
    let cmd = rawdoc! {
        "find": COLLECTION,
        "filter": { "ts": { "$gte": ts, "$lte": ts } },
        "limit": 1,
        "readConcern": { "level": "majority" },
    };
    let cursor = src
        .client
        .database(DB)
        .run_raw_cursor_command(cmd)
        .await
        .ctx(src.role, "read an oplog entry")?;
    let found: Vec<RawDocumentBuf> = cursor
        .with_type::<RawDocumentBuf>()
        .try_collect()
        .await
        .ctx(src.role, "read an oplog entry")?;
    Ok(found.into_iter().next())
}

/// A tailable, awaiting cursor over the entries after `from` (and at it,
/// when `inclusive`), read a whole reply at a time. An idle `getMore`
/// returns an empty batch after `max_await`, and the cursor stays open.
pub async fn tail(
    src: &Cluster,
    from: Timestamp,
    inclusive: bool,
    batch_size: u32,
    max_await: Duration,
) -> Result<RawBatchCursor> {
    let bound = if inclusive { "$gte" } else { "$gt" };
    let mut filter = RawDocumentBuf::new();
    filter.append(bound, from);
    let cmd = rawdoc! {
        "find": COLLECTION,
        "filter": { "ts": filter },
        "tailable": true,
        "awaitData": true,
        "batchSize": batch_size as i32,
        "readConcern": { "level": "majority" },
    };
    src.client
        .database(DB)
        .run_raw_cursor_command(cmd)
        .cursor_type(CursorType::TailableAwait)
        .max_time(max_await)
        .batch_size(batch_size)
        .batch()
        .await
        .ctx(src.role, "read the oplog")
}

// The oplog's window: how long it keeps an entry, from its size and the
// rate it is written at. The preflight check weighs the copy against it,
// and the impact sampler watches the migration's start against it.
/// How far back the recent write rate is measured, in seconds.
const RECENT_SECONDS: u32 = 60;

#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    /// Sharded (each shard has its own oplog, out of reach through
    /// mongos) or standalone (no oplog at all).
    NotApplicable,
    Unreadable(String),
    Read {
        first: Timestamp,
        last: Timestamp,
        used_bytes: u64,
        max_bytes: u64,
        min_retention_hours: f64,
        /// Oplog bytes written in the last [`RECENT_SECONDS`] before
        /// `last`; `None` when the oplog does not reach back that far.
        recent_bytes: Option<u64>,
    },
}

impl Facts {
    /// The oldest entry still in the oplog.
    pub fn oldest(&self) -> Option<Timestamp> {
        match self {
            Facts::Read { first, .. } => Some(*first),
            _ => None,
        }
    }
}

pub async fn gather(src: &Cluster) -> Facts {
    if !matches!(src.topology, Topology::ReplicaSet { .. }) {
        return Facts::NotApplicable;
    }
    // `local` does not take the majority read concern the source uses.
    let options = CollectionOptions::builder()
        .read_concern(ReadConcern::local())
        .build();
    let oplog = src
        .client
        .database("local")
        .collection_with_options::<Document>("oplog.rs", options);
    let end = |dir: i32| {
        let oplog = oplog.clone();
        async move {
            oplog
                .find_one(doc! {})
                .sort(doc! { "$natural": dir })
                .projection(doc! { "ts": 1, "_id": 0 })
                .await
                .map(|d| d.and_then(|d| d.get_timestamp("ts").ok()))
        }
    };
    let oplog_ns = Namespace::new("local", "oplog.rs");
    let stats = catalog::storage_stats(src, &oplog_ns);
    let retention = async {
        src.client
            .database("admin")
            .run_command(doc! { "getCmdLineOpts": 1 })
            .await
            .ok()
            .and_then(|r| {
                let storage = r
                    .get_document("parsed")
                    .ok()?
                    .get_document("storage")
                    .ok()?;
                match storage.get("oplogMinRetentionHours")? {
                    bson::Bson::Double(h) => Some(*h),
                    bson::Bson::Int32(h) => Some(*h as f64),
                    bson::Bson::Int64(h) => Some(*h as f64),
                    _ => None,
                }
            })
            .unwrap_or(0.0)
    };
    let (first, last, stats, min_retention_hours) = tokio::join!(end(1), end(-1), stats, retention);
    match (first, last, stats) {
        (Ok(Some(first)), Ok(Some(last)), Ok(stats)) => {
            let used_bytes = stats.size;
            let since = last.time.saturating_sub(RECENT_SECONDS);
            let recent_bytes = if first.time < since {
                // The oplog's collection scan seeks to a `ts` lower bound,
                // so this reads only the last minute's entries.
                let recent = oplog
                    .count_documents(
                        doc! { "ts": { "$gt": Timestamp { time: since, increment: u32::MAX } } },
                    )
                    .await;
                match recent {
                    Ok(n) => Some(n.saturating_mul(used_bytes / stats.count.max(1))),
                    Err(e) => return Facts::Unreadable(reason(&e)),
                }
            } else {
                None
            };
            Facts::Read {
                first,
                last,
                used_bytes,
                max_bytes: stats.max_size,
                min_retention_hours,
                recent_bytes,
            }
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Facts::Unreadable(reason(&e)),
        _ => Facts::Unreadable("the oplog is empty".into()),
    }
}

/// The oplog's write rate in bytes a second: the last minute's where the
/// oplog reaches back that far, the whole oplog's otherwise.
pub fn write_rate(facts: &Facts) -> Option<f64> {
    let Facts::Read {
        first,
        last,
        used_bytes,
        recent_bytes,
        ..
    } = facts
    else {
        return None;
    };
    Some(match recent_bytes {
        Some(b) => (*b).max(1) as f64 / RECENT_SECONDS as f64,
        None => (*used_bytes).max(1) as f64 / (last.time as f64 - first.time as f64).max(1.0),
    })
}

/// How long the oplog holds an entry, in seconds, at the current rate.
pub fn window_seconds(facts: &Facts) -> Option<f64> {
    let Facts::Read {
        first,
        last,
        max_bytes,
        used_bytes,
        min_retention_hours,
        recent_bytes,
    } = facts
    else {
        return None;
    };
    let capacity = (*max_bytes).max(*used_bytes) as f64;
    let window = match recent_bytes {
        // The whole oplog's rate: the span, scaled to a full oplog (the
        // same as dividing by the rate, without the rounding).
        None => {
            (last.time as f64 - first.time as f64).max(1.0) * capacity / (*used_bytes).max(1) as f64
        }
        Some(_) => capacity / write_rate(facts)?,
    };
    Some(window.max(min_retention_hours * 3600.0))
}
